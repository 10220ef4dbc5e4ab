/**
 * The content hashes the library and the training record share, checked against coreutils' sha256sum (an
 * independent implementation) and against the folder recipe written out here.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashFile, hashFolder, listFiles } from '../../main/common/hash';

const dir = mkdtempSync(join(tmpdir(), 'lorasmith-hash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sha256sum(path: string): string {
  const run = spawnSync('sha256sum', [path], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`sha256sum failed: ${run.stderr}`);
  return run.stdout.split(' ')[0] as string;
}

describe('content hashes', () => {
  it('hashFile is sha256sum of the bytes, larger than one read chunk too', () => {
    const big = join(dir, 'big.bin');
    const bytes = Buffer.alloc(9 << 20);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
    writeFileSync(big, bytes);
    expect(hashFile(big)).toBe(`sha256:${sha256sum(big)}`);
    writeFileSync(join(dir, 'empty'), '');
    expect(hashFile(join(dir, 'empty'))).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('hashFolder: path, size and bytes of every file in path order; the location does not count', () => {
    const model = join(dir, 'model');
    mkdirSync(join(model, 'sub'), { recursive: true });
    writeFileSync(join(model, 'config.json'), '{"a":1}');
    writeFileSync(join(model, 'sub', 'w.bin'), 'weights');
    const reference = createHash('sha256');
    for (const [name, text] of [['config.json', '{"a":1}'], ['sub/w.bin', 'weights']] as const) reference.update(`${name}\0${text.length}\0${text}`);
    expect(listFiles(model)).toEqual([{ path: 'config.json', bytes: 7 }, { path: 'sub/w.bin', bytes: 7 }]);
    const hash = hashFolder(model);
    expect(hash).toBe(`sha256:${reference.digest('hex')}`);
    cpSync(model, join(dir, 'elsewhere'), { recursive: true });
    expect(hashFolder(join(dir, 'elsewhere'))).toBe(hash);
    renameSync(join(model, 'sub', 'w.bin'), join(model, 'sub', 'v.bin'));
    expect(hashFolder(model)).not.toBe(hash);
  });
});
