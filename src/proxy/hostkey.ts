import ssh2 from 'ssh2';
import { fingerprintOf } from '../auth/sshkey.js';

/**
 * Fetch the host key a target presents, without authenticating: the key is captured in
 * hostVerifier and the handshake is then abandoned. Used by `gatehouse host trust`.
 */
export interface PresentedKey {
  publicKey: string;
  fingerprint: string;
}

export function fetchHostKey(address: string, port: number, timeoutMs = 10_000): Promise<PresentedKey> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let key: PresentedKey | null = null;
    const finish = () => {
      client.end();
      if (key) resolve(key); else reject(new Error(`no SSH host key received from ${address}:${port}`));
    };
    client.on('error', (err) => {
      if (key) finish(); else { client.end(); reject(err); }
    });
    client.on('close', finish);
    client.connect({
      host: address, port, username: 'gatehouse-host-trust', readyTimeout: timeoutMs,
      algorithms: { serverHostKey: ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256'] },
      hostVerifier: (blob: Buffer) => {
        const type = blob.subarray(4, 4 + blob.readUInt32BE(0)).toString('latin1');
        key = { publicKey: `${type} ${blob.toString('base64')}`, fingerprint: fingerprintOf(blob) };
        return false; // we only wanted the key
      },
    });
  });
}
