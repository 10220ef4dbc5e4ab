import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import {
  copyDirAtomic, isTempName, moveAtomic, removeAtomic, replaceFileWith, stageDir, sweepTemps, writeFileAtomic,
} from '../../main/store/files';
import { tempDir } from './support/fixtures';

class Crash extends Error {}

describe('atomic files', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => tmp.dispose());

  it('writeFileAtomic: a crash before the rename leaves the old content and only a temp name', () => {
    const target = join(tmp.path, 'a', 'record.json');
    writeFileAtomic(target, '{"v":1}');
    expect(() => writeFileAtomic(target, '{"v":2}', { beforeRename: () => { throw new Crash(); } })).toThrow(Crash);
    expect(readFileSync(target, 'utf8')).toBe('{"v":1}');
    const leftovers = readdirSync(join(tmp.path, 'a')).filter(isTempName);
    expect(leftovers).toHaveLength(1);
    expect(readFileSync(join(tmp.path, 'a', leftovers[0] ?? ''), 'utf8')).toBe('{"v":2}');
    expect(sweepTemps(tmp.path)).toHaveLength(1);
    expect(readdirSync(join(tmp.path, 'a'))).toEqual(['record.json']);
  });

  it('sweepTemps leaves the temps of a live process alone', () => {
    // A process that is certainly alive while the sweep runs (the test runner's parent may not be).
    const writer = spawn('sleep', ['30'], { stdio: 'ignore' });
    onTestFinished(() => void writer.kill());
    const live = join(tmp.path, `.x.tmp-${writer.pid}-0123abcd`);
    const dead = join(tmp.path, '.y.tmp-999999999-0123abcd');
    writeFileSync(live, 'in progress');
    writeFileSync(dead, 'left by a crash');
    expect(sweepTemps(tmp.path)).toEqual([dead]);
    expect(existsSync(live)).toBe(true);
  });

  it('copyDirAtomic follows symlinks (HF cache snapshots) and refuses an existing destination', () => {
    const src = join(tmp.path, 'snapshot');
    mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(join(tmp.path, 'blob'), 'weights');
    symlinkSync(join(tmp.path, 'blob'), join(src, 'model.safetensors'));
    writeFileSync(join(src, 'sub', 'x.txt'), 'x');
    const dst = join(tmp.path, 'copy');
    copyDirAtomic(src, dst);
    expect(readFileSync(join(dst, 'model.safetensors'), 'utf8')).toBe('weights');
    expect(readFileSync(join(dst, 'sub', 'x.txt'), 'utf8')).toBe('x');
    expect(() => copyDirAtomic(src, dst)).toThrow(/already exists/);
  });

  it('stageDir: the folder appears whole or not at all', () => {
    const dst = join(tmp.path, 'datasets', 'ds1');
    expect(() => stageDir(dst, (staging) => {
      writeFileSync(join(staging, 'a.jsonl'), '{}\n');
      throw new Crash();
    })).toThrow(Crash);
    expect(existsSync(dst)).toBe(false);
    expect(readdirSync(join(tmp.path, 'datasets'))).toEqual([]);
    stageDir(dst, (staging) => writeFileSync(join(staging, 'a.jsonl'), '{}\n'));
    expect(readdirSync(dst)).toEqual(['a.jsonl']);
  });

  it('moveAtomic, replaceFileWith and removeAtomic', () => {
    const src = join(tmp.path, 'out.jsonl');
    writeFileSync(src, 'one');
    const dst = join(tmp.path, 'd', 'normalized.jsonl');
    moveAtomic(src, dst);
    expect(existsSync(src)).toBe(false);
    writeFileSync(src, 'two');
    replaceFileWith(src, dst);
    expect(readFileSync(dst, 'utf8')).toBe('two');
    removeAtomic(join(tmp.path, 'd'));
    expect(readdirSync(tmp.path)).toEqual([]);
    removeAtomic(join(tmp.path, 'gone'));
  });
});
