/**
 * Every path the library stores is relative to the data directory, with '/' separators, so the whole directory
 * can be moved or backed up. `DataDir.resolve` turns a stored path back into an absolute one and refuses any that
 * could reach outside: absolute paths, '..' segments, and symlinks (dangling ones too) that lead out.
 */
import { lstatSync, mkdirSync, readlinkSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep, win32 } from 'node:path';
import { StoreError } from './errors';

/** Where each kind of thing lives under the data directory (../shared/ARCHITECTURE.md "Data on disk"). */
export const layout = {
  database: 'library.sqlite',
  modelDir: (id: string) => `models/${id}`,
  datasetDir: (id: string) => `datasets/${id}`,
  adapterDir: (id: string) => `adapters/${id}`,
  versionDir: (adapterId: string, version: number) => `adapters/${adapterId}/v${version}`,
  runDir: (id: string) => `runs/${id}`,
  checkpointsDir: (runId: string) => `runs/${runId}/checkpoints`,
  runOutputDir: (runId: string) => `runs/${runId}/output`,
  /** Hub downloads in progress, one staging folder each (services/model-downloads.ts). */
  downloadsDir: 'downloads',
  downloadDir: (name: string) => `downloads/${name}`,
} as const;

export class DataDir {
  /** The data directory, absolute and with symlinks resolved, so containment checks compare like with like. */
  readonly root: string;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.root = realpathSync(resolve(dataDir));
  }

  /** Absolute path of a stored relative path; throws PATH_INVALID / PATH_OUTSIDE_DATA_DIR. */
  resolve(stored: string): string {
    const segments = checkRelative(stored);
    const absolute = join(this.root, ...segments);
    this.assertInside(absolute, stored);
    return absolute;
  }

  /** The stored (relative, '/'-separated) form of an absolute path inside the data directory. */
  toStored(absolute: string): string {
    if (!isAbsolute(absolute)) {
      throw new StoreError('PATH_INVALID', `expected an absolute path inside ${this.root}, got '${absolute}'`);
    }
    const rel = relative(this.root, resolve(absolute));
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
      throw new StoreError('PATH_OUTSIDE_DATA_DIR',
        `'${absolute}' is not inside the data directory ${this.root}; the library stores only paths inside it`);
    }
    const stored = rel.split(sep).join('/');
    this.resolve(stored);
    return stored;
  }

  /**
   * Walks from the path up to the root: the deepest part that exists must resolve (realpath) inside the root, and
   * any dangling symlink on the way must not point outside either (a later write would follow it).
   */
  private assertInside(absolute: string, shownAs: string): void {
    let candidate = absolute;
    for (;;) {
      const real = tryRealpath(candidate);
      if (real !== null) {
        if (!this.contains(real)) {
          throw new StoreError('PATH_OUTSIDE_DATA_DIR',
            `'${shownAs}' leads outside the data directory ${this.root} (through a symlink to '${real}'); ` +
            'move the files into the data directory or import them by reference');
        }
        return;
      }
      const danglingTarget = tryReadlink(candidate);
      if (danglingTarget !== null && !this.contains(resolve(dirname(candidate), danglingTarget))) {
        throw new StoreError('PATH_OUTSIDE_DATA_DIR',
          `'${shownAs}' is a symlink to '${danglingTarget}', outside the data directory ${this.root}`);
      }
      const parent = dirname(candidate);
      if (parent === candidate) return;
      candidate = parent;
    }
  }

  private contains(real: string): boolean {
    return real === this.root || real.startsWith(this.root.endsWith(sep) ? this.root : this.root + sep);
  }
}

/** Splits a stored path into segments, refusing empty, absolute, '..', '.', NUL and backslash forms. */
function checkRelative(stored: string): string[] {
  if (typeof stored !== 'string' || stored.length === 0) {
    throw new StoreError('PATH_INVALID', `a stored path must be a non-empty relative path, got '${String(stored)}'`);
  }
  if (stored.includes('\0')) throw new StoreError('PATH_INVALID', `path '${stored.replace('\0', '\\0')}' contains NUL`);
  if (isAbsolute(stored) || win32.isAbsolute(stored)) {
    throw new StoreError('PATH_OUTSIDE_DATA_DIR',
      `'${stored}' is absolute; the library stores paths relative to the data directory`);
  }
  const segments = stored.split(/[/\\]/);
  for (const segment of segments) {
    if (segment === '..') {
      throw new StoreError('PATH_OUTSIDE_DATA_DIR', `'${stored}' contains '..'; stored paths may not climb out`);
    }
    if (segment === '' || segment === '.') {
      throw new StoreError('PATH_INVALID', `'${stored}' has an empty or '.' segment; write it as 'a/b/c'`);
    }
  }
  return segments;
}

function tryRealpath(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

function tryReadlink(path: string): string | null {
  try {
    return lstatSync(path).isSymbolicLink() ? readlinkSync(path) : null;
  } catch {
    return null;
  }
}
