import { describe, expect, it } from 'vitest';
import type { FileRecord, Store } from '../../../src/store/types.js';
import { filesSection } from '../../../src/web/files.js';

const storeWith = (files: FileRecord[]) => ({ files: { list: async () => files } }) as unknown as Store;

describe('the session page file list', () => {
  it('lists each file with direction, path, size, hash and time; an operator-chosen path is escaped', async () => {
    const out = (await filesSection(storeWith([
      { sessionId: 's', channel: 0, protocol: 'sftp', direction: 'upload', path: '/tmp/<script>alert(1)</script>', size: 12, sha256: 'ab'.repeat(32), at: Date.UTC(2026, 0, 2) },
      { sessionId: 's', channel: 1, protocol: 'scp', direction: 'download', path: '/etc/hosts', size: 3, sha256: 'partial', at: Date.UTC(2026, 0, 2) },
    ]), 's')).value;
    expect(out).toContain('<h2>Files</h2>');
    expect(out).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(out).not.toContain('<script>');
    expect(out).toContain('ab'.repeat(32));
    expect(out).toMatch(/<td>download<\/td><td><code>\/etc\/hosts<\/code><\/td><td>3<\/td><td><code>partial<\/code>/);
    expect(out).toContain('2026-01-02');
  });

  it('says nothing for a session that moved no file', async () => {
    expect((await filesSection(storeWith([]), 's')).value).toBe('');
  });
});
