import fs from 'node:fs';
import { GatehouseError, invalid } from '../shared/errors.js';

/** Read FILE, or standard input for "-". */
export async function readInput(file: string, stdin: NodeJS.ReadStream): Promise<string> {
  if (file !== '-') {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new GatehouseError('GH_INVALID', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
        hint: 'give the path of a public key file (e.g. ~/.ssh/id_ed25519.pub), or - for standard input',
      });
    }
  }
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Read a secret line: without echo on a terminal (asked twice), else the first line of stdin. */
export async function readSecretLine(prompt: string, stdin: NodeJS.ReadStream, stderr: NodeJS.WriteStream): Promise<string> {
  if (!stdin.isTTY) {
    const text = await readInput('-', stdin);
    const line = text.split(/\r?\n/)[0] ?? '';
    if (line === '') throw invalid('no password on standard input', 'pipe it in: printf "%s\\n" "$PASSWORD" | gatehouse user password NAME');
    return line;
  }
  const first = await promptNoEcho(prompt, stdin, stderr);
  const second = await promptNoEcho('Again: ', stdin, stderr);
  if (first !== second) throw invalid('the two passwords differ; nothing was changed');
  return first;
}

function promptNoEcho(prompt: string, stdin: NodeJS.ReadStream, stderr: NodeJS.WriteStream): Promise<string> {
  return new Promise((resolve, reject) => {
    stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let value = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      stderr.write('\n');
      if (err) reject(err); else resolve(value);
    };
    const onData = (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(invalid('cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** Ask a yes/no question on a terminal; false when stdin is not a terminal. */
export async function confirm(question: string, stdin: NodeJS.ReadStream, stderr: NodeJS.WriteStream): Promise<boolean> {
  if (!stdin.isTTY) return false;
  stderr.write(`${question} [y/N] `);
  return new Promise((resolve) => {
    stdin.resume();
    stdin.once('data', (d: Buffer) => {
      stdin.pause();
      resolve(/^y(es)?$/i.test(d.toString('utf8').trim()));
    });
  });
}
