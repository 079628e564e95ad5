// Kept apart from db.ts (which imports pg) so that naming a store in a message never loads the driver.

/** A URL with its password replaced, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    // pg also takes secrets as parameters (?password=, sslpassword=, sslkey=…): none is shown.
    for (const k of [...u.searchParams.keys()]) if (/pass|key|secret|token/i.test(k)) u.searchParams.set(k, '***');
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@').replace(/\?.*$/, '?…');
  }
}
