import fs from 'node:fs';
import ssh2 from 'ssh2';
import { totpAt } from './totp.js';
import type { Operator } from './world.js';

/**
 * An ssh2 client logged in through gatehouse as the operator: the key, then the TOTP code from the
 * test's own TOTP implementation. For what OpenSSH will not send (unknown channel types, ports out
 * of range, a client that ignores CLOSE). `from` binds another loopback address.
 */
export function ssh2Login(port: number, op: Operator, opts: { from?: string; username?: string } = {}): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.once('ready', () => resolve(c));
    c.once('error', reject);
    const username = opts.username ?? op.name;
    c.connect({
      host: '127.0.0.1', port, localAddress: opts.from, username, readyTimeout: 20_000, hostVerifier: () => true, strictVendor: false,
      authHandler: (methodsLeft: string[] | null, partial: boolean | null) => {
        if (methodsLeft === null) return { type: 'publickey', username, key: fs.readFileSync(op.key) };
        if (partial && methodsLeft.includes('keyboard-interactive')) {
          return { type: 'keyboard-interactive', username, prompt: (_n: string, _i: string, _l: string, _p: unknown, finish: (a: string[]) => void) => finish([totpAt(op.secret, Math.floor(Date.now() / 1000))]) };
        }
        return false;
      },
    } as ssh2.ConnectConfig);
  });
}
