import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openLibrary } from '../../main/store/library';
import { tempDir } from './support/fixtures';

const defaultBinding = join(dirname(createRequire(import.meta.url).resolve('better-sqlite3/package.json')),
  'build', 'Release', 'better_sqlite3.node');

describe('openLibrary', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => tmp.dispose());

  it('passes nativeBinding through to better-sqlite3 (the Electron build plugs in here)', () => {
    const lib = openLibrary(join(tmp.path, 'data'), { nativeBinding: defaultBinding });
    expect(lib.settings.all()).toEqual({});
    lib.close();
    expect(() => openLibrary(join(tmp.path, 'data'), { nativeBinding: join(tmp.path, 'nope.node') }))
      .toThrow(/nope\.node/);
  });

  it('creates the data directory and library.sqlite; a read-only open needs an existing, current library', () => {
    expect(() => openLibrary(join(tmp.path, 'fresh'), { readonly: true })).toThrow();
    const lib = openLibrary(join(tmp.path, 'fresh'));
    lib.settings.set('theme', 'dark');
    const reader = openLibrary(join(tmp.path, 'fresh'), { readonly: true });
    expect(reader.settings.get('theme')).toBe('dark');
    expect(() => reader.settings.set('theme', 'light')).toThrow(/readonly/i);
    reader.close();
    lib.close();
  });
});
