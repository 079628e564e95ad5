import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';
import { GatehouseError } from '../shared/errors.js';
import { ensureUserCa } from '../auth/ca.js';

/**
 * The data directory holds everything gatehouse keeps: the SQLite database, the SSH host key, the
 * client key used to reach targets, the master key that seals TOTP secrets, and the recordings.
 * It and every secret file in it must be private to the service account; we refuse to run otherwise
 * rather than silently fix modes someone may have loosened on purpose.
 */
export interface DataPaths {
  dir: string;
  db: string;
  hostKey: string;
  clientKey: string;
  clientKeyPub: string;
  masterKey: string;
  recordings: string;
  targetKeys: string;
  /** Default witness of signed checkpoints (config audit.witness moves it off this volume). */
  witness: string;
  /** Held by the running server (see lock.ts): one server per data directory. */
  lock: string;
}

export interface DataDir {
  paths: DataPaths;
  /** True when this call created the directory (first start). */
  created: boolean;
  hostKey: Buffer;
  clientKey: Buffer;
  clientPublicKey: string;
  masterKey: Buffer;
}

export function dataPaths(dir: string): DataPaths {
  const d = path.resolve(dir);
  return {
    dir: d,
    db: path.join(d, 'gatehouse.db'),
    hostKey: path.join(d, 'ssh_host_ed25519_key'),
    clientKey: path.join(d, 'client_ed25519_key'),
    clientKeyPub: path.join(d, 'client_ed25519_key.pub'),
    masterKey: path.join(d, 'master.key'),
    recordings: path.join(d, 'recordings'),
    targetKeys: path.join(d, 'target_keys'),
    witness: path.join(d, 'witness.log'),
    lock: path.join(d, 'serve.lock'),
  };
}

function datadirError(message: string, hint: string, cause?: unknown): GatehouseError {
  return new GatehouseError('GH_DATADIR', message, { hint, cause });
}

function checkPrivate(file: string, kind: 'directory' | 'file'): void {
  const st = fs.statSync(file);
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    const want = kind === 'directory' ? '700' : '600';
    throw datadirError(
      `${kind} ${file} is accessible by group or others (mode ${mode})`,
      `restrict it with: chmod ${want} ${file}`,
    );
  }
}

function ensureDir(dir: string): boolean {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
    // mkdir's mode is filtered by the umask; make the intent explicit.
    fs.chmodSync(dir, 0o700);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      if (!fs.statSync(dir).isDirectory()) throw datadirError(`${dir} exists and is not a directory`, 'choose another --data DIR');
      return false;
    }
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      fs.mkdirSync(path.dirname(dir), { recursive: true });
      return ensureDir(dir);
    }
    throw datadirError(`cannot create data directory ${dir}: ${(err as Error).message}`,
      'check that the parent directory exists and is writable by this user', err);
  }
}

/**
 * Create a secret file exactly once, even when the CLI and the server race on first use: the content
 * goes to a private temp file that is then hard-linked into place, which fails if the file exists.
 */
function createOnce(file: string, make: () => string | Buffer): void {
  if (fs.existsSync(file)) return;
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, make(), { mode: 0o600, flag: 'wx' });
  try {
    fs.linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    fs.unlinkSync(tmp);
  }
}

function readSecret(file: string): Buffer {
  checkPrivate(file, 'file');
  return fs.readFileSync(file);
}

function generateEd25519(comment: string): { private: string; public: string } {
  const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment });
  return { private: pair.private, public: pair.public };
}

/** Open (creating on first use) the data directory and load its keys. */
export function openDataDir(dir: string): DataDir {
  const paths = dataPaths(dir);
  const created = ensureDir(paths.dir);
  checkPrivate(paths.dir, 'directory');

  createOnce(paths.hostKey, () => generateEd25519('gatehouse host key').private);
  let clientPub: string | undefined;
  createOnce(paths.clientKey, () => {
    const pair = generateEd25519('gatehouse client key');
    clientPub = pair.public;
    return pair.private;
  });
  createOnce(paths.masterKey, () => randomBytes(32).toString('base64') + '\n');
  // The user CA that signs certificates for `--auth cert` hosts (auth/ca.ts): a key of its own.
  ensureUserCa(paths.dir);

  const hostKey = readSecret(paths.hostKey);
  const clientKey = readSecret(paths.clientKey);
  const parsed = ssh2.utils.parseKey(clientKey);
  if (parsed instanceof Error) {
    throw datadirError(`client key ${paths.clientKey} cannot be read: ${parsed.message}`, 'restore it from a backup, or remove it to generate a new one (targets must then trust the new key)');
  }
  const key = Array.isArray(parsed) ? parsed[0]! : parsed;
  clientPub ??= `${key.type} ${key.getPublicSSH().toString('base64')} gatehouse client key`;
  if (!fs.existsSync(paths.clientKeyPub)) fs.writeFileSync(paths.clientKeyPub, clientPub + '\n', { mode: 0o644 });

  const masterKey = Buffer.from(readSecret(paths.masterKey).toString('utf8').trim(), 'base64');
  if (masterKey.length !== 32) {
    throw datadirError(`master key ${paths.masterKey} is not 32 bytes of base64`, 'restore it from a backup: without it enrolled TOTP secrets cannot be read');
  }
  return { paths, created, hostKey, clientKey, clientPublicKey: clientPub.trim(), masterKey };
}

/** Refuse a database file others can read (it holds password hashes); create it private. */
export function preparePrivateFile(file: string): void {
  if (!fs.existsSync(file)) fs.closeSync(fs.openSync(file, 'a', 0o600));
  checkPrivate(file, 'file');
}
