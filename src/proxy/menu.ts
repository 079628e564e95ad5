import type { ServerChannel } from 'ssh2';

/**
 * The target menu shown to `ssh -t alice@bastion` with no command: arrow keys or a number, Enter
 * connects, q / Ctrl-C / Ctrl-D quits. Fits an 80x24 terminal (scrolls when the list is longer).
 */
export interface MenuChoice {
  label: string;
  detail: string;
}

const CLEAR = '\x1b[H\x1b[2J';
const ESC_UP = /^\x1b\[A|^\x1bOA/;
const ESC_DOWN = /^\x1b\[B|^\x1bOB/;

export function renderMenu(user: string, choices: MenuChoice[], selected: number, rows: number, typed: string): string {
  const visible = Math.max(3, Math.min(choices.length, rows - 6));
  const top = Math.min(Math.max(0, selected - Math.floor(visible / 2)), Math.max(0, choices.length - visible));
  const lines = [`gatehouse: ${user}, choose a target`, ''];
  for (let i = top; i < top + visible && i < choices.length; i++) {
    const c = choices[i]!;
    const mark = i === selected ? '>' : ' ';
    const line = `${mark} ${String(i + 1).padStart(2)}) ${c.label.padEnd(32)} ${c.detail}`;
    lines.push(i === selected ? `\x1b[7m${line.slice(0, 78)}\x1b[0m` : line.slice(0, 78));
  }
  if (choices.length > visible) lines.push(`   (${choices.length} targets; ↑/↓ to scroll)`);
  lines.push('', `↑/↓ or number, Enter to connect, q to quit${typed ? `   > ${typed}` : ''}`);
  return CLEAR + lines.join('\r\n');
}

/** Runs the menu on a pty channel; resolves with the chosen index, or null when the user quits. */
export function runMenu(ch: ServerChannel, user: string, choices: MenuChoice[], rows: () => number): Promise<number | null> {
  return new Promise((resolve) => {
    let selected = 0;
    let typed = '';
    const draw = () => ch.write(renderMenu(user, choices, selected, rows(), typed));
    const done = (v: number | null) => {
      ch.off('data', onData);
      ch.off('close', onClose);
      ch.pause();
      ch.write(CLEAR);
      resolve(v);
    };
    const onClose = () => done(null);
    const onData = (buf: Buffer) => {
      let s = buf.toString('latin1');
      while (s.length > 0) {
        let m: RegExpExecArray | null;
        if ((m = ESC_UP.exec(s))) { selected = (selected + choices.length - 1) % choices.length; typed = ''; s = s.slice(m[0].length); continue; }
        if ((m = ESC_DOWN.exec(s))) { selected = (selected + 1) % choices.length; typed = ''; s = s.slice(m[0].length); continue; }
        const c = s[0]!;
        s = s.slice(1);
        if (c === '\x03' || c === '\x04' || c === 'q' || c === 'Q') return done(null);
        if (c === '\r' || c === '\n') return done(selected);
        if (c >= '0' && c <= '9') {
          const n = Number(typed + c);
          if (n >= 1 && n <= choices.length) { typed += c; selected = n - 1; } else if (Number(c) >= 1 && Number(c) <= choices.length) { typed = c; selected = Number(c) - 1; }
        } else if (c === '\x7f' || c === '\b') {
          typed = typed.slice(0, -1);
        }
      }
      draw();
    };
    ch.on('data', onData);
    ch.on('close', onClose);
    draw();
  });
}
