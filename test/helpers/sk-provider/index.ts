import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../cli.js';

const SOURCE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'sk-soft.c');

/**
 * Whether the software security key can be built (a C compiler and OpenSSL's headers). In CI
 * (CI=true) their absence is a failure, not a skip.
 */
export function haveSkToolchain(): boolean {
  let ok = fs.existsSync('/usr/include/openssl/evp.h');
  try { execFileSync('cc', ['--version'], { stdio: 'ignore' }); } catch { ok = false; }
  if (!ok && process.env.CI === 'true') throw new Error('cc or the OpenSSL headers are missing: the security-key tests need them (apt-get install gcc libssl-dev)');
  return ok;
}

/**
 * Compile the software FIDO provider (sk-soft.c) for OpenSSH's SecurityKeyProvider into a temp
 * dir of this test file; returns the .so path. The stock ssh-keygen and ssh load it through
 * /usr/lib/openssh/ssh-sk-helper.
 */
export function buildSkProvider(): string {
  const out = path.join(tempDir('gatehouse-sk-'), 'sk-soft.so');
  execFileSync('cc', ['-shared', '-fPIC', '-O1', '-Wall', '-Wextra', '-Werror', '-o', out, SOURCE, '-lcrypto'], { stdio: ['ignore', 'ignore', 'pipe'] });
  return out;
}

/** Enrol a security key with the stock ssh-keygen through the provider; returns the key file. */
export function enrolSkKey(provider: string, file: string, opts: { type?: 'ed25519-sk' | 'ecdsa-sk'; application?: string; verifyRequired?: boolean; comment?: string } = {}): string {
  execFileSync('ssh-keygen', [
    '-q', '-t', opts.type ?? 'ed25519-sk', '-w', provider, '-N', '', '-f', file, '-C', opts.comment ?? path.basename(file),
    ...(opts.application ? ['-O', `application=${opts.application}`] : []), ...(opts.verifyRequired ? ['-O', 'verify-required'] : []),
  ], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SSH_SK_PROVIDER: provider } });
  return file;
}
