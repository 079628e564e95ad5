import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gh, ghJson, ghOk, tempDir } from '../helpers/cli.js';
import { freePort } from '../helpers/proc.js';
import { haveOpenSsh, startSshd, type Sshd } from '../helpers/sshd.js';

describe.runIf(haveOpenSsh())('gatehouse host trust (real sshd)', () => {
  let sshd: Sshd;
  let data: string;
  beforeAll(async () => {
    sshd = await startSshd([]);
    data = path.join(tempDir(), 'data');
    ghOk(data, ['host', 'add', 'web1', '--address', '127.0.0.1', '--port', String(sshd.port)]);
  });
  afterAll(async () => { await sshd?.stop(); });

  it('refuses to pin without --yes when nobody can confirm, and pins nothing', () => {
    const r = gh(data, ['host', 'trust', 'web1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/presents ssh-ed25519 SHA256:/);
    expect(r.stderr).toContain('gatehouse host trust web1 --yes');
    expect(ghJson<{ hostKey: string | null }>(data, ['host', 'show', 'web1']).hostKey).toBeNull();
  });

  it('pins the key the host presents, with the fingerprint ssh-keygen computes', () => {
    const expected = execFileSync('ssh-keygen', ['-lf', path.join(sshd.dir, 'host_ed25519.pub')], { encoding: 'utf8' }).split(' ')[1];
    expect(ghOk(data, ['host', 'trust', 'web1', '--yes'])).toContain(`pinned ${expected} for host web1`);
    expect(ghJson<{ hostKey: string; hostKeyFingerprint: string }>(data, ['host', 'show', 'web1'])).toMatchObject({ hostKey: sshd.hostKey, hostKeyFingerprint: expected });
    expect(ghOk(data, ['host', 'trust', 'web1', '--yes'])).toContain('already has');
    const ev = ghJson<{ data: { fingerprint: string; previous: string | null } }[]>(data, ['audit', '--type', 'admin.host.trust']);
    expect(ev).toHaveLength(1);
    expect(ev[0]!.data).toEqual({ host: 'web1', fingerprint: expected, previous: null });
  });

  it('says so when the host cannot be reached', async () => {
    ghOk(data, ['host', 'add', 'dead', '--address', '127.0.0.1', '--port', String(await freePort())]);
    const r = gh(data, ['host', 'trust', 'dead', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot fetch the host key of dead/);
  });
});
