/**
 * A user name as a client sent it, before anyone authenticated, cut to a length fit for an audit
 * row or a log line: SSH lets a client send ~35 KB as its user name on every attempt, and that
 * would otherwise be stored as it is. Names of real users are far shorter, so they pass unchanged.
 * Control characters are left alone here: output escapes them (the CLI's job).
 */
export const MAX_NAME_CHARS = 64;

export function clientName(name: string): string {
  if (name.length <= MAX_NAME_CHARS) return name;
  let head = name.slice(0, MAX_NAME_CHARS);
  // Do not leave half of a surrogate pair behind.
  if (/[\uD800-\uDBFF]$/.test(head)) head = head.slice(0, -1);
  return `${head}…[cut, ${name.length} chars]`;
}
