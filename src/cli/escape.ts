/**
 * Text the CLI prints reaches an admin's terminal, and much of it came from outside: pre-auth user
 * names, commands, source addresses, key comments, reasons. A terminal obeys control characters in
 * it (clear a line, retitle the window, fake a prompt, reorder text with bidi overrides), so every
 * such character is printed as a visible escape instead (ESC → `\x1b`, U+202E → `\u{202e}`).
 */

// C0 controls, DEL, C1 controls, bidi marks/embeddings/overrides/isolates, line/paragraph separators.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

function visible(ch: string): string {
  const cp = ch.codePointAt(0)!;
  return cp < 0x100 ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`;
}

/** One value inside a line (a table cell, a name, a reason): nothing may break or control the line. */
export function oneLine(value: string): string {
  return value.replace(UNSAFE, visible);
}

/** A whole block of text: its own line breaks and tabs stay, every other control character is escaped. */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, (ch) => (ch === '\n' || ch === '\t' ? ch : visible(ch)));
}

// JSON.stringify escapes U+0000–U+001F but prints DEL, C1 and bidi characters raw. They can only
// occur inside JSON strings, where \uXXXX means the same character: the parsed value is unchanged.
const JSON_UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

/** JSON for `--json`: the same value, with no character a terminal would act on. */
export function terminalSafeJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(JSON_UNSAFE, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Everything the CLI prints (except a session replay, which is terminal output by design) goes through here. */
export function writeText(stream: NodeJS.WritableStream, text: string): void {
  stream.write(terminalSafe(text));
}
