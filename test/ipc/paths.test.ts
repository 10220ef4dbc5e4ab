/** Paths from the renderer: Electron accepts only what a dialog returned, once, for its purpose; browser mode checks typed paths. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dialogPaths, typedPaths } from '../../main/ipc/paths';

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lorasmith-paths-'));
  mkdirSync(join(dir, 'model'));
  writeFileSync(join(dir, 'data.jsonl'), '{}\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dialog paths (Electron)', () => {
  it('grants a dialog-chosen path once, for the purpose it was chosen for', async () => {
    const paths = dialogPaths(async (purpose) => (purpose === 'model-folder' ? join(dir, 'model') : join(dir, 'data.jsonl')));
    expect(() => paths.check(join(dir, 'model'), 'model-folder')).toThrow(expect.objectContaining({ code: 'PATH_NOT_GRANTED' }));
    expect(await paths.choose('model-folder')).toEqual({ path: join(dir, 'model'), dialog: true });
    expect(() => paths.check(join(dir, 'model'), 'dataset-file')).toThrow(expect.objectContaining({ code: 'PATH_NOT_GRANTED' }));
    expect(paths.check(join(dir, 'model'), 'model-folder')).toBe(join(dir, 'model'));
    expect(() => paths.check(join(dir, 'model'), 'model-folder')).toThrow(expect.objectContaining({ code: 'PATH_NOT_GRANTED' }));
  });

  it('grants nothing when the dialog is cancelled', async () => {
    const paths = dialogPaths(async () => null);
    expect(await paths.choose('dataset-file')).toEqual({ path: null, dialog: true });
  });
});

describe('typed paths (browser mode)', () => {
  const paths = typedPaths();
  it('accepts an absolute path of the right kind', () => {
    expect(paths.check(join(dir, 'model'), 'model-folder')).toBe(join(dir, 'model'));
    expect(paths.check(join(dir, 'data.jsonl'), 'dataset-file')).toBe(join(dir, 'data.jsonl'));
    expect(paths.check(join(dir, 'new-export'), 'export-folder')).toBe(join(dir, 'new-export'));
  });
  it('refuses relative paths, NUL bytes, wrong kinds and missing parents, naming the path', () => {
    expect(() => paths.check('model', 'model-folder')).toThrow(/not an absolute path/);
    expect(() => paths.check(`${dir}/model\0x`, 'model-folder')).toThrow(expect.objectContaining({ code: 'PATH_INVALID' }));
    expect(() => paths.check(join(dir, 'data.jsonl'), 'model-folder')).toThrow(/is not a folder/);
    expect(() => paths.check(join(dir, 'model'), 'dataset-file')).toThrow(/is not a file/);
    expect(() => paths.check(join(dir, 'nope', 'out'), 'export-folder')).toThrow(/does not exist/);
  });
});
