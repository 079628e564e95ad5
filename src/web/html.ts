/**
 * Server-rendered pages. Every interpolated value is escaped unless it is already Html; pages
 * carry no inline script or style (the Content-Security-Policy forbids both).
 */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export function escape(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((v, i) => {
    const part = Array.isArray(v) ? v.map((x) => (x instanceof Html ? x.value : escape(x))).join('') : v instanceof Html ? v.value : escape(v);
    out += part + strings[i + 1]!;
  });
  return new Html(out);
}

export function page(title: string, user: { name: string; roles: string[]; csrf: string } | null, body: Html): string {
  const nav = user
    ? html`<nav>${user.roles.some((r) => r === 'auditor' || r === 'admin')
      ? html`<a href="/sessions">Sessions</a> <a href="/sessions?status=live">Live</a> <a href="/audit">Audit log</a> <a href="/users">Users</a> <a href="/hosts">Hosts</a> <a href="/fleet">Fleet</a> <a href="/grants">Grants</a> <a href="/webauthn">Security keys</a> `
      : ''}<a href="/requests">Requests</a>
        <span class="me">${user.name} (${user.roles.join(', ')})</span>
        <form method="post" action="/logout" class="inline"><input type="hidden" name="_csrf" value="${user.csrf}"><button type="submit" id="logout">Log out</button></form></nav>`
    : html``;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title} · gatehouse</title>
<link rel="stylesheet" href="/static/app.css"><link rel="stylesheet" href="/vendor/asciinema-player.css"></head>
<body>${nav}<main><h1>${title}</h1>${body}</main>
<script src="/vendor/asciinema-player.min.js"></script><script src="/static/app.js"></script><script src="/static/webauthn.js"></script></body></html>`.value;
}
