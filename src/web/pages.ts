import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { describe, draft, whereText, type AuditDraft } from '../audit/events.js';
import { exportManifest } from '../recorder/manifest.js';
import { LiveSource } from '../recorder/livesource.js';
import type { RecordingsReport } from '../recorder/verify.js';
import type { RecordingStorage } from '../recorder/storage/types.js';
import { isoTime } from '../shared/clock.js';
import { formatDuration, parseIsoTime } from '../shared/units.js';
import { MIN_SEARCH_CHARS, sessionStatus, type RecordingRecord, type SessionHit, type SessionQuery } from '../store/types.js';
import { Html, html, page } from './html.js';
import { badInput, DATE, digits, matching, oneOf, only, SESSION_ID, text, USER_NAME } from './input.js';
import { filesSection } from './files.js';
import { readFileContent } from '../recorder/filecontent.js';
import { tar } from './tar.js';
import type { WebDeps } from './server.js';

interface PageDeps extends WebDeps {
  recordings: RecordingStorage;
  authenticate: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  verify: (sessionId: string) => Promise<RecordingsReport>;
}

const PAGE_SIZE = 50;
type Q = Record<string, string | undefined>;
/** How long a waiting session page's view covers its reloads (see /sessions/:id). */
const WAIT_AUDIT_MS = 60_000;
const STATUSES = ['live', 'ended', 'terminated', 'interrupted'] as const;

/** What each route accepts (see input.ts): anything else is a 400 before the handler runs. */
const S = {
  none: { querystring: only() },
  sessions: {
    querystring: only({ q: text(200), user: text(64), host: text(255), since: DATE, status: oneOf(['', ...STATUSES]), file: text(4096), page: digits(6) }),
  },
  sessionsExport: {
    querystring: only({ q: text(200), user: text(64), host: text(255), since: DATE, status: oneOf(['', ...STATUSES]), file: text(4096) }),
  },
  session: {
    params: only({ id: SESSION_ID }, ['id']),
    querystring: only({ channel: { ...digits(6), minLength: 1 }, t: matching(/^[0-9]{0,9}(\.[0-9]{1,3})?$/, 16) }),
  },
  sessionFile: { params: only({ id: SESSION_ID, file: text(64) }, ['id', 'file']), querystring: only() },
  audit: { querystring: only({ type: text(64), user: text(64), since: DATE }) },
  kill: { params: only({ id: SESSION_ID }, ['id']), querystring: only(), body: only({ _csrf: text(256) }) },
  userAction: { params: only({ name: USER_NAME, action: oneOf(['disable', 'enable']) }, ['name', 'action']), querystring: only(), body: only({ _csrf: text(256) }) },
  grantRemove: { params: only({ id: { ...digits(15), minLength: 1 } }, ['id']), querystring: only(), body: only({ _csrf: text(256) }) },
};

/** The most sessions one export holds. */
const MAX_EXPORT = 100_000;

/** The list's filters as one store query (the page and the exports read the same). */
function queryOf(q: Q): { query: Omit<SessionQuery, 'limit' | 'offset'>; searchText: string; searching: boolean } {
  const searchText = q.q?.trim() ?? '';
  const searching = [...searchText].length >= MIN_SEARCH_CHARS;
  return {
    query: {
      text: searching ? searchText : undefined, user: q.user || undefined, host: q.host || undefined, since: sinceOf(q),
      status: STATUSES.find((x) => x === q.status), file: q.file || undefined,
    },
    searchText, searching,
  };
}

/** The replay opens half a second before the hit. */
function momentQuery(hit: SessionHit): string {
  return `?channel=${hit.channel}&t=${Math.max(0, hit.t - 0.5).toFixed(1)}`;
}

/** A time shown as UTC; app.js turns it into "3 h ago" with the browser's local time on hover. */
function timeOf(ms: number): Html {
  const iso = isoTime(ms);
  return html`<time datetime="${iso}" title="${iso}">${iso}</time>`;
}

/** The hit's line with the match marked (escaped piece by piece: the line is what a target printed). */
function highlighted(line: string, match: [number, number] | null): Html {
  if (!match) return html`<code class="hit-line">${line}</code>`;
  return html`<code class="hit-line">${line.slice(0, match[0])}<mark>${line.slice(match[0], match[1])}</mark>${line.slice(match[1])}</code>`;
}

/**
 * One CSV field (RFC 4180). A field a spreadsheet would run as a formula (= + - @, tab, CR) gets a
 * leading apostrophe: a target's output must not become a formula in an auditor's spreadsheet.
 */
function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s = String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function exportHref(q: Q, format: 'csv' | 'json'): string {
  const p = new URLSearchParams(Object.entries(q).filter(([k, v]) => k !== 'page' && v) as [string, string][]);
  const qs = p.toString();
  return `/sessions.${format}${qs ? `?${qs}` : ''}`;
}

/** A date filter: empty is no filter; anything else must be an ISO date. */
function sinceOf(q: Q): number | undefined {
  if (!q.since) return undefined;
  try { return parseIsoTime(q.since, 'since'); } catch { throw badInput('since: not an ISO-8601 date (e.g. 2026-12-31 or 2026-12-31T18:00:00Z)'); }
}

function sendPage(reply: FastifyReply, body: string) {
  return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(body);
}

export async function registerPages(app: FastifyInstance, deps: PageDeps): Promise<void> {
  const { store, clock, hub } = deps;
  // Live here, in another worker's spool on this machine, or on another node (recorder/livesource.ts).
  const liveSource = new LiveSource(hub, store, deps.recordings);
  const guard = { preHandler: deps.authenticate, schema: S.none };
  const guarded = (schema: Record<string, unknown>) => ({ preHandler: deps.authenticate, schema });
  const adminOnly = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!req.webUser?.admin) return reply.code(403).type('text/plain').send('admins only');
  };
  const change = (schema: Record<string, unknown>) => ({ preValidation: app.csrfProtection, preHandler: [deps.authenticate, adminOnly], schema });
  const actor = (req: FastifyRequest) => `web:${req.webUser!.name}`;

  app.get('/', guard, async (_req, reply) => reply.redirect('/sessions'));

  app.get('/sessions', guarded(S.sessions), async (req, reply) => {
    const q = req.query as Q;
    const pageNo = Math.max(1, Number(q.page) || 1);
    const { query: filters, searchText, searching } = queryOf(q);
    // Text, filters, paging and the count are one store query: every match is reachable, the count is exact.
    const found = await store.sessions.query({ ...filters, limit: PAGE_SIZE, offset: (pageNo - 1) * PAGE_SIZE });
    const rows = found.items.map((i) => i.session);
    const hits = new Map(found.items.map((i) => [i.session.id, i.hit]));
    const total = found.total;
    const now = clock.now();
    // Command and integrity for the rows on this page only (a file check per recording shown).
    const extra = new Map(await Promise.all(rows.map(async (r) => {
      const [chs, recs] = await Promise.all([store.sessions.channels(r.id), store.recordings.list(r.id)]);
      const command = chs.map((c) => c.command ?? c.kind).join('; ');
      return [r.id, { command, integrity: await integrityOf(recs, deps.recordings) }] as const;
    })));
    const body = html`
      <form method="get" action="/sessions" class="filters">
        <input name="q" placeholder="text the session printed" value="${q.q ?? ''}">
        <input name="user" placeholder="user" value="${q.user ?? ''}"> <input name="host" placeholder="host" value="${q.host ?? ''}">
        <input name="since" placeholder="since (ISO date)" value="${q.since ?? ''}">
        <input name="file" placeholder="file path contains" value="${q.file ?? ''}">
        <select name="status">${['', 'live', 'ended', 'terminated', 'interrupted'].map((s) => html`<option value="${s}"${new Html(q.status === s ? ' selected' : '')}>${s || 'any status'}</option>`)}</select>
        <button type="submit">Find</button></form>
      <p class="count">${found.exact ? '' : 'at least '}${total} session(s)${searchText && !searching ? ` (search needs at least ${MIN_SEARCH_CHARS} characters)` : ''}
        ${total > 0 ? html` · export <a href="${exportHref(q, 'csv')}" id="export-csv">CSV</a> <a href="${exportHref(q, 'json')}" id="export-json">JSON</a>` : ''}</p>
      <table class="sessions"><thead><tr><th>Session</th><th>User</th><th>From</th><th>Target</th><th>Command</th><th>Started</th><th>Duration</th><th>Status</th><th>Recording</th><th>Node</th></tr></thead><tbody>
      ${rows.map((s) => {
        const hit = hits.get(s.id);
        const href = `/sessions/${encodeURIComponent(s.id)}${hit ? momentQuery(hit) : ''}`;
        const x = extra.get(s.id);
        return html`<tr><td><a href="${href}">${s.id}</a></td><td>${s.user}</td><td>${s.sourceAddr}</td><td>${s.host ? `${s.login}@${s.host}` : '-'}</td>
          <td><code>${(x?.command ?? '').slice(0, 80)}</code></td><td>${timeOf(s.startedAt)}</td><td>${formatDuration(wholeSeconds((s.endedAt ?? now) - s.startedAt))}</td><td class="status-${sessionStatus(s)}">${sessionStatus(s)}</td><td class="integrity-${x?.integrity ?? 'none'}">${x?.integrity ?? '-'}</td><td class="node">${s.node ?? '-'}</td></tr>
          ${hit?.line !== undefined ? html`<tr class="hit"><td colspan="10"><a class="moment" href="${href}">channel ${hit.channel} at ${formatDuration(Math.floor(hit.t) * 1000)}</a> ${highlighted(hit.line, hit.match ?? null)}</td></tr>` : ''}`;
      })}
      </tbody></table>
      <p class="pager">${pageNo > 1 ? html`<a href="${pager(q, pageNo - 1)}">previous</a>` : ''} ${pageNo * PAGE_SIZE < total || (!found.exact && rows.length === PAGE_SIZE) ? html`<a href="${pager(q, pageNo + 1)}">next</a>` : ''}</p>`;
    return sendPage(reply, page('Sessions', req.webUser!, body));
  });

  // The whole result of a search, not a page: every match, in the list's order, audited.
  const exportSessions = (format: 'csv' | 'json') => async (req: FastifyRequest, reply: FastifyReply) => {
    const q = req.query as Q;
    const { query: filters } = queryOf(q);
    // One query for the whole result (one pass over the matches), one row more than an export holds.
    const rows = (await store.sessions.query({ ...filters, limit: MAX_EXPORT + 1, offset: 0 })).items;
    if (rows.length > MAX_EXPORT) {
      return reply.code(413).type('text/plain').send(`more than ${MAX_EXPORT} sessions match: an export holds at most ${MAX_EXPORT}; narrow the search (user, host, since, status)`);
    }
    const origin = `${req.protocol}://${req.host}`;
    const out = rows.map(({ session: s, hit }) => ({
      id: s.id, user: s.user, from: s.sourceAddr, target: s.host ? `${s.login}@${s.host}` : null,
      startedAt: isoTime(s.startedAt), endedAt: s.endedAt === null ? null : isoTime(s.endedAt), status: sessionStatus(s), endReason: s.endReason,
      hit: hit ? { channel: hit.channel, t: hit.t, line: hit.line ?? null } : null,
      link: `${origin}/sessions/${encodeURIComponent(s.id)}${hit ? momentQuery(hit) : ''}`,
    }));
    await store.audit.append(draft('sessions.exported', actor(req), {
      format, count: out.length, text: filters.text ?? null, user: filters.user ?? null, host: filters.host ?? null,
      since: filters.since === undefined ? null : isoTime(filters.since), status: filters.status ?? null, file: filters.file ?? null,
    }));
    const name = `gatehouse-sessions-${isoTime(clock.now()).replace(/[:.]/g, '-')}.${format}`;
    reply.header('content-disposition', `attachment; filename="${name}"`).header('cache-control', 'no-store');
    if (format === 'json') return reply.type('application/json; charset=utf-8').send(JSON.stringify(out, null, 2) + '\n');
    const header = ['id', 'user', 'from', 'target', 'started_at', 'ended_at', 'status', 'end_reason', 'hit_channel', 'hit_t', 'hit_line', 'link'];
    const lines = out.map((r) => [r.id, r.user, r.from, r.target, r.startedAt, r.endedAt, r.status, r.endReason, r.hit?.channel, r.hit?.t, r.hit?.line, r.link].map(csvField).join(','));
    return reply.type('text/csv; charset=utf-8').send([header.join(','), ...lines].join('\r\n') + '\r\n');
  };
  app.get('/sessions.csv', guarded(S.sessionsExport), exportSessions('csv'));
  app.get('/sessions.json', guarded(S.sessionsExport), exportSessions('json'));

  app.get('/sessions/:id', guarded(S.session), async (req, reply) => {
    const { id } = req.params as { id: string };
    const q = req.query as Q;
    const s = await store.sessions.get(id);
    if (!s) return reply.code(404).type('text/plain').send('not found');
    const [channels, recordings, events] = await Promise.all([
      store.sessions.channels(s.id), store.recordings.list(s.id), store.audit.list({ session: s.id, limit: 5000 }),
    ]);
    const channel = q.channel !== undefined ? Number(q.channel) : recordings[0]?.channel ?? 0;
    const rec = recordings.find((r) => r.channel === channel);
    const where = await liveSource.where(s.id, channel);
    const live = where !== null && where.at !== 'node';
    const elsewhere = where?.at === 'node' ? where.node : null;
    // Live with no channel yet (the operator still logging in, or at the menu): the page waits for
    // the first one instead of saying "No recording." (web/app.js reloads it, for a while). Not a
    // channel asked for by number, nor a session that only forwards ports: none may ever come.
    const waiting = s.endedAt === null && elsewhere === null && !rec && !live && channels.length === 0
      && q.channel === undefined && !events.some((e) => e.type.startsWith('forward.'));
    // The check re-reads the session's recordings: not on every reload of a page with none yet.
    const report = waiting ? null : await deps.verify(s.id);
    const verdict = report?.items.find((i) => i.channel === channel)?.verdict ?? 'missing';
    // Every view is audited, but the waiting page's reloads (every 2-10 s) are one view: while it
    // waits, a viewer's own view of it in the last minute is not recorded again.
    const viewer = `web:${req.webUser!.name}`;
    const now = clock.now();
    const reload = waiting && events.some((e) => e.type === 'recording.viewed' && e.actor === viewer && e.ts <= now && now - e.ts < WAIT_AUDIT_MS);
    if (!reload) await store.audit.append(draft('recording.viewed', viewer, { session: s.id, sessionUser: s.user, how: 'web' }));
    // A session allowed by an approved access request names it (web/requests.ts).
    const viaRequest = s.grantId !== null ? await store.requests.byGrant(s.grantId) : null;
    const body = html`
      <dl class="meta"><dt>User</dt><dd>${s.user} from ${s.sourceAddr}</dd><dt>Target</dt><dd>${s.host ? `${s.login}@${s.host}` : '-'}</dd>
        <dt>Node</dt><dd class="node">${s.node ?? '-'}</dd>
        <dt>Started</dt><dd>${timeOf(s.startedAt)}</dd><dt>Ended</dt><dd>${s.endedAt ? html`${timeOf(s.endedAt)} (${s.endReason})` : 'live'}</dd>
        <dt>Bytes</dt><dd>${s.bytesUp} up, ${s.bytesDown} down</dd>
        ${viaRequest ? html`<dt>Request</dt><dd id="via-request"><a href="/requests/${viaRequest.id}">#${viaRequest.id}</a>: ${viaRequest.reason} (approved by ${viaRequest.approvals.map((a) => a.by).join(', ')})</dd>` : ''}
        <dt>Integrity</dt><dd class="integrity-${verdict}" id="integrity">${verdict}${report === null || report.chain.ok ? '' : ' (chain broken)'}</dd></dl>
      ${s.endedAt === null && req.webUser!.admin ? postButton(`/sessions/${s.id}/kill`, 'End session', req.webUser!.csrf, 'end-session') : ''}
      <h2>Channels</h2><table><thead><tr><th>#</th><th>Kind</th><th>Target</th><th>Command</th><th>Exit</th><th>Recording</th></tr></thead><tbody>
      ${channels.map((c) => html`<tr><td>${c.channel}</td><td>${c.kind}${c.pty ? ' (pty)' : ''}</td><td>${c.login}@${c.host}</td><td><code>${c.command ?? ''}</code></td>
        <td>${c.exitStatus ?? c.exitSignal ?? ''}</td><td>${recordings.some((r) => r.channel === c.channel) ? html`<a href="/sessions/${s.id}?channel=${c.channel}">replay</a> · <a href="/sessions/${s.id}/${c.channel}.cast">download .cast</a>` : '-'}</td></tr>`)}
      </tbody></table>
      ${await filesSection(store, s.id, deps.recordings)}
      <h2>${live ? 'Live' : 'Replay'}</h2>
      ${elsewhere !== null ? html`<p id="live-elsewhere">Live on node ${elsewhere}: its recording is spooled there (one data directory per node); watch it from that node's web UI, or replay it here once it has closed.</p>` : rec || live ? html`<div id="player" data-cast="${`/sessions/${s.id}/${channel}.cast`}" data-live="${live ? `/live/${s.id}/${channel}` : ''}" data-start="${q.t ?? ''}"></div>`
        : waiting ? html`<p id="live-waiting">Live, with no channel open yet: the operator is still logging in or choosing a target. This page reloads until one opens (for 15 minutes).</p>` : html`<p>No recording.</p>`}
      <p><a href="/sessions/${s.id}/export.tar">download the export bundle</a> (recordings + manifest with hashes and integrity) · <a href="/sessions/${s.id}/manifest.json">manifest only</a></p>
      <h2>Audit events</h2><ul class="events">${events.map((e) => html`<li>${timeOf(e.ts)} <code>${e.type}</code> ${describe({ type: e.type, actor: e.actor, data: e.data } as AuditDraft)}</li>`)}</ul>`;
    return sendPage(reply, page(`Session ${s.id}`, req.webUser!, body));
  });

  // Recordings are served by session id and channel number only: nothing from the request reaches a path.
  app.get('/sessions/:id/:file', guarded(S.sessionFile), async (req, reply) => {
    const { id, file } = req.params as { id: string; file: string };
    const s = await store.sessions.get(id);
    if (!s) return reply.code(404).send('not found');
    if (file === 'manifest.json' || file === 'export.tar') {
      const { manifest, files } = await exportManifest(store, { recordings: deps.recordings, hostKey: deps.dataDir.hostKey, retention: deps.config.recording.retention }, s, actor(req), clock.now());
      if (file === 'manifest.json') return reply.header('content-disposition', `attachment; filename="${s.id}-manifest.json"`).send(manifest);
      // One file at a time, never every read in flight at once; the captured contents' total is capped in manifest.ts.
      const entries: { name: string; data: Buffer }[] = [];
      for (const f of files) entries.push({ name: `${s.id}/${f.name}`, data: await f.read() });
      entries.push({ name: `${s.id}/manifest.json`, data: Buffer.from(JSON.stringify(manifest, null, 2) + '\n') });
      await store.audit.append(draft('recording.viewed', actor(req), { session: s.id, sessionUser: s.user, how: 'export' }));
      return reply.type('application/x-tar').header('content-disposition', `attachment; filename="${s.id}.tar"`).send(tar(entries, clock.now()));
    }
    // A transferred file's stored content (recording.fileContent), by its number in the files list.
    const fc = /^file-([1-9][0-9]{0,8})$/.exec(file);
    if (fc) {
      const f = (await store.files.list(s.id))[Number(fc[1]) - 1];
      const got = f ? await readFileContent(deps.recordings, await store.recordings.list(s.id), f) : { error: 'no such file' };
      if ('error' in got) return reply.code(404).type('text/plain').send(got.error);
      await store.audit.append(draft('file.downloaded', actor(req), { session: s.id, sessionUser: s.user, channel: f!.channel, path: f!.path, sha256: f!.sha256, size: got.content.length, how: 'web' }));
      return reply.type('application/octet-stream').header('cache-control', 'no-store').header('content-disposition', `attachment; filename="${s.id}-file-${fc[1]}"`).send(got.content);
    }
    const m = /^(\d+)\.cast$/.exec(file);
    const rec = m ? (await store.recordings.list(s.id)).find((r) => r.channel === Number(m[1])) : undefined;
    if (!rec) return reply.code(404).send('not found');
    // Through the storage: the local file, or the object in the bucket.
    const body = await deps.recordings.stream(rec.path);
    if (!body) return reply.code(404).send('not found');
    await store.audit.append(draft('recording.viewed', `web:${req.webUser!.name}`, { session: s.id, sessionUser: s.user, how: 'web' }));
    return reply.type('application/x-asciicast').header('cache-control', 'no-store').send(body);
  });

  app.post('/sessions/:id/kill', change(S.kill), async (req, reply) => {
    const { id } = req.params as { id: string };
    if (!(await store.sessions.get(id))) return reply.code(404).send('not found');
    await store.kills.request(id, 'ended from the web UI', { actor: actor(req) }).catch(() => undefined);
    return reply.code(303).header('location', `/sessions/${encodeURIComponent(id)}`).send();
  });

  app.get('/audit', guarded(S.audit), async (req, reply) => {
    const q = req.query as Q;
    const since = sinceOf(q);
    const rows = await store.audit.list({ type: q.type || undefined, user: q.user || undefined, since, limit: 500 });
    const body = html`<form method="get" action="/audit" class="filters"><input name="type" placeholder="type (e.g. auth or admin.user)" value="${q.type ?? ''}">
      <input name="user" placeholder="user" value="${q.user ?? ''}"><input name="since" placeholder="since (ISO date)" value="${q.since ?? ''}"><button type="submit">Filter</button></form>
      <table><thead><tr><th>#</th><th>Time</th><th>Type</th><th>Actor</th><th>What</th></tr></thead><tbody>
      ${rows.reverse().map((e) => html`<tr><td>${e.id}</td><td>${timeOf(e.ts)}</td><td><code>${e.type}</code></td><td>${e.actor}</td><td>${describe({ type: e.type, actor: e.actor, data: e.data } as AuditDraft)}</td></tr>`)}
      </tbody></table>`;
    return sendPage(reply, page('Audit log', req.webUser!, body));
  });

  app.get('/users', guard, async (req, reply) => {
    const users = await store.users.list();
    const admin = req.webUser!.admin;
    const token = req.webUser!.csrf;
    const body = html`<table><thead><tr><th>User</th><th>Roles</th><th>State</th><th>TOTP</th><th>Groups</th>${admin ? html`<th></th>` : ''}</tr></thead><tbody>
      ${users.map((u) => html`<tr><td>${u.name}</td><td>${u.roles.join(', ')}</td><td>${u.disabled ? 'disabled' : 'enabled'}</td><td>${u.totpEnrolled ? 'yes' : 'no'}</td><td>${u.groups.join(', ')}</td>
        ${admin ? html`<td>${postButton(`/users/${u.name}/${u.disabled ? 'enable' : 'disable'}`, u.disabled ? 'Enable' : 'Disable', token)}</td>` : ''}</tr>`)}
      </tbody></table>`;
    return sendPage(reply, page('Users', req.webUser!, body));
  });

  app.post('/users/:name/:action', change(S.userAction), async (req, reply) => {
    const { name, action } = req.params as { name: string; action: 'disable' | 'enable' };
    if (!(await store.users.get(name))) return reply.code(404).send('not found');
    await store.users.setDisabled(name, action === 'disable', action === 'disable' ? 'disabled from the web UI' : '', { actor: actor(req) }).catch(() => undefined);
    return reply.code(303).header('location', '/users').send();
  });

  app.get('/hosts', guard, async (req, reply) => {
    const hosts = await store.hosts.list();
    const body = html`<table><thead><tr><th>Host</th><th>Address</th><th>State</th><th>Groups</th><th>Host key</th></tr></thead><tbody>
      ${hosts.map((h) => html`<tr><td>${h.name}</td><td>${h.address}:${h.port}</td><td>${h.enabled ? 'enabled' : 'disabled'}</td><td>${h.groups.join(', ')}</td><td>${h.hostKey ? 'pinned' : 'not pinned'}</td></tr>`)}
      </tbody></table>`;
    return sendPage(reply, page('Hosts', req.webUser!, body));
  });

  app.get('/grants', guard, async (req, reply) => {
    const grants = await store.grants.list();
    const admin = req.webUser!.admin;
    const token = req.webUser!.csrf;
    const body = html`<table><thead><tr><th>#</th><th>Who</th><th>Where</th><th>Logins</th><th>Rights</th><th>Until</th><th>Reason</th>${admin ? html`<th></th>` : ''}</tr></thead><tbody>
      ${grants.map((g) => html`<tr><td>${g.id}</td><td>${g.who.kind} ${g.who.name}</td><td>${whereText(g.where)}</td><td>${g.logins.join(', ')}</td><td>${g.rights.join(', ')}</td>
        <td>${g.until === null ? '-' : timeOf(g.until)}</td><td>${g.reason}</td>
        ${admin ? html`<td>${postButton(`/grants/${g.id}/remove`, 'Remove', token)}</td>` : ''}</tr>`)}
      </tbody></table>`;
    return sendPage(reply, page('Grants', req.webUser!, body));
  });

  app.post('/grants/:id/remove', change(S.grantRemove), async (req, reply) => {
    const id = Number((req.params as { id: string }).id);
    if (!Number.isSafeInteger(id) || !(await store.grants.get(id))) return reply.code(404).send('not found');
    await store.grants.remove(id, { actor: actor(req) });
    return reply.code(303).header('location', '/grants').send();
  });
}

/**
 * A quick integrity state for a list: the row's state, and the size of the files this machine holds
 * (local storage, or a spool copy not yet uploaded). A recording only in object storage is taken as
 * its row says: one HeadObject per row per view is too many; the full check is on the session page.
 */
export async function integrityOf(recs: RecordingRecord[], storage: RecordingStorage): Promise<string> {
  if (recs.length === 0) return 'none';
  for (const r of recs) {
    if (r.state === 'open') return 'live';
    if (r.state === 'failed') return 'failed';
    // A storage without localStat (a wrapper, a test double) is asked directly: never taken as ok unseen.
    const st = storage.localStat ? storage.localStat(r.path) : await storage.stat(r.path);
    if (st === undefined) continue;
    if (st === null) return 'missing';
    if (st.size !== r.size) return 'modified';
  }
  return recs.some((r) => r.state === 'interrupted') ? 'interrupted' : 'ok';
}

/** Every change is a POST form with its CSRF token (admin actions). */
function postButton(action: string, label: string, csrfToken: string, id?: string): Html {
  return html`<form method="post" action="${action}" class="inline"><input type="hidden" name="_csrf" value="${csrfToken}"><button type="submit"${new Html(id ? ` id="${id}"` : '')}>${label}</button></form>`;
}

/** Durations in the list are shown to the second. */
function wholeSeconds(ms: number): number {
  return Math.max(0, ms - (ms % 1000));
}

function pager(q: Q, pageNo: number): string {
  const p = new URLSearchParams(Object.entries(q).filter(([k, v]) => k !== 'page' && v) as [string, string][]);
  p.set('page', String(pageNo));
  return `/sessions?${p.toString()}`;
}

