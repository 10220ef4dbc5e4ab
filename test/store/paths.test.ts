import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataDir } from '../../main/store/paths';
import { StoreError } from '../../main/store/errors';
import { tempDir } from './support/fixtures';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(StoreError);
    return (error as StoreError).code;
  }
  return undefined;
}

describe('DataDir paths', () => {
  let tmp: ReturnType<typeof tempDir>;
  let data: DataDir;
  let outside: string;
  beforeEach(() => {
    tmp = tempDir();
    data = new DataDir(join(tmp.path, 'data'));
    outside = join(tmp.path, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret.txt'), 'x');
  });
  afterEach(() => tmp.dispose());

  it('resolves a stored relative path inside the data directory, existing or not', () => {
    expect(data.resolve('models/mdl_1/config.json')).toBe(join(data.root, 'models', 'mdl_1', 'config.json'));
    expect(data.toStored(join(data.root, 'adapters', 'a', 'v1'))).toBe('adapters/a/v1');
  });

  it("refuses '..' anywhere, absolute paths, and empty or '.' segments", () => {
    expect(codeOf(() => data.resolve('../outside/secret.txt'))).toBe('PATH_OUTSIDE_DATA_DIR');
    expect(codeOf(() => data.resolve('models/../../outside'))).toBe('PATH_OUTSIDE_DATA_DIR');
    expect(codeOf(() => data.resolve('models\\..\\..\\outside'))).toBe('PATH_OUTSIDE_DATA_DIR');
    expect(codeOf(() => data.resolve(join(outside, 'secret.txt')))).toBe('PATH_OUTSIDE_DATA_DIR');
    expect(codeOf(() => data.resolve('C:\\Windows\\system32'))).toBe('PATH_OUTSIDE_DATA_DIR');
    expect(codeOf(() => data.resolve(''))).toBe('PATH_INVALID');
    expect(codeOf(() => data.resolve('models//x'))).toBe('PATH_INVALID');
    expect(codeOf(() => data.resolve('./models'))).toBe('PATH_INVALID');
    expect(codeOf(() => data.resolve('models/\0x'))).toBe('PATH_INVALID');
  });

  it('refuses a symlinked folder that leads outside, and names the path in the message', () => {
    mkdirSync(join(data.root, 'models'));
    symlinkSync(outside, join(data.root, 'models', 'evil'));
    let message = '';
    try {
      data.resolve('models/evil/secret.txt');
    } catch (error) {
      message = (error as Error).message;
      expect((error as StoreError).code).toBe('PATH_OUTSIDE_DATA_DIR');
    }
    expect(message).toContain('models/evil/secret.txt');
    // A file that does not exist yet under the link is refused too: a write would land outside.
    expect(codeOf(() => data.resolve('models/evil/new-file'))).toBe('PATH_OUTSIDE_DATA_DIR');
  });

  it('refuses a dangling symlink that points outside, and toStored of a path outside', () => {
    mkdirSync(join(data.root, 'runs'));
    symlinkSync(join(outside, 'not-yet'), join(data.root, 'runs', 'dangling'));
    expect(codeOf(() => data.resolve('runs/dangling'))).toBe('PATH_OUTSIDE_DATA_DIR');
    expect(codeOf(() => data.toStored(join(outside, 'secret.txt')))).toBe('PATH_OUTSIDE_DATA_DIR');
    expect(codeOf(() => data.toStored(data.root))).toBe('PATH_OUTSIDE_DATA_DIR');
    expect(codeOf(() => data.toStored('relative/path'))).toBe('PATH_INVALID');
  });

  it('accepts a symlink that stays inside the data directory', () => {
    mkdirSync(join(data.root, 'models', 'real'), { recursive: true });
    symlinkSync(join(data.root, 'models', 'real'), join(data.root, 'models', 'alias'));
    expect(data.resolve('models/alias')).toBe(join(data.root, 'models', 'alias'));
  });

  it('works when the data directory itself is reached through a symlink', () => {
    const link = join(tmp.path, 'data-link');
    symlinkSync(data.root, link);
    const viaLink = new DataDir(link);
    expect(viaLink.root).toBe(data.root);
    expect(viaLink.resolve('models/x')).toBe(join(data.root, 'models', 'x'));
  });
});
