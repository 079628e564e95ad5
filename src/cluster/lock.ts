import fs from 'node:fs';
import path from 'node:path';

/**
 * One serve lock per node name in a data directory (datadir/lock.ts: a kernel lock that dies with
 * its process): two nodes with different names may share a data directory (a shared volume), a
 * second server with the same name is refused before it repairs anything. The file name keeps the
 * node name readable; characters a file name must not hold are escaped.
 */
export function nodeLockPath(dataDir: string, name: string): string {
  const dir = path.join(dataDir, 'locks');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const safe = name.replace(/[^A-Za-z0-9._:-]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).replace(/^\./, '%2e');
  return path.join(dir, `${safe}.serve.lock`);
}

/**
 * Where a node that holds the serve lock of `name` notes the incarnation it claimed in the store.
 * The next server of that name on this data directory holds the same lock, so the process that wrote
 * the file is gone: its store row may be taken at once, however fresh its last heartbeat. Proof by
 * host name and PID was not enough (two machines can share both: containers, cloned VMs).
 */
export function nodeIncarnationPath(dataDir: string, name: string): string {
  return nodeLockPath(dataDir, name).replace(/\.serve\.lock$/, '.incarnation');
}
