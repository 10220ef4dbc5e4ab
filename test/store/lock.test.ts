/**
 * The data-dir lock: one holder at a time, the refusal names the holder, release lets the next one in, and a
 * note left by a holder that died does not block (its lock died with it).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HOLDER_FILE, lockDataDir } from '../../main/store/lock';
import { openLibrary } from '../../main/store/library';
import { tempDir } from './support/fixtures';

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.dispose());

describe('data-dir lock', () => {
  it('refuses a second holder with a message naming the first, and lets the next in after release', () => {
    const first = lockDataDir(tmp.path, 'lorasmith serve');
    expect(JSON.parse(readFileSync(join(tmp.path, HOLDER_FILE), 'utf8'))).toMatchObject({ pid: process.pid, command: 'lorasmith serve' });
    expect(() => lockDataDir(tmp.path, 'the Lorasmith app')).toThrow(
      expect.objectContaining({ code: 'LIBRARY_IN_USE', message: expect.stringContaining(`in use by lorasmith serve (pid ${process.pid}, since ${first.holder.since})`) }),
    );
    first.release();
    expect(existsSync(join(tmp.path, HOLDER_FILE))).toBe(false);
    const second = lockDataDir(tmp.path, 'the Lorasmith app');
    expect(second.tookOverFrom).toBeNull();
    second.release();
  });

  it('takes over from a holder that died (its note left behind, its lock gone with its process)', () => {
    const dead = { pid: 2 ** 22 + 12345, command: 'lorasmith serve', since: '2026-01-01T00:00:00.000Z', host: 'elsewhere' };
    writeFileSync(join(tmp.path, HOLDER_FILE), JSON.stringify(dead));
    const lock = lockDataDir(tmp.path, 'the Lorasmith app');
    expect(lock.tookOverFrom).toEqual(dead);
    lock.release();
  });

  it('openLibrary with a holder locks until close; without one (tests, readers) it does not', () => {
    const library = openLibrary(join(tmp.path, 'data'), { holder: 'lorasmith serve' });
    expect(() => openLibrary(join(tmp.path, 'data'), { holder: 'the Lorasmith app' })).toThrow(expect.objectContaining({ code: 'LIBRARY_IN_USE' }));
    const reader = openLibrary(join(tmp.path, 'data'), { readonly: true });
    reader.close();
    library.close();
    openLibrary(join(tmp.path, 'data'), { holder: 'the Lorasmith app' }).close();
  });
});
