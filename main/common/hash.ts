/**
 * Content hashes of files and folders: sha256, streamed so multi-gigabyte weights never sit in memory whole.
 * The one recipe for lineage: the library records a base model's and a dataset's hash with these, and a training
 * record written by the engine (app or CLI) carries the same values, so the two can be matched.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const CHUNK = 4 << 20;

function feedFile(hash: Hash, path: string): void {
  const fd = openSync(path, 'r');
  const buffer = Buffer.allocUnsafe(CHUNK);
  try {
    for (;;) {
      const n = readSync(fd, buffer, 0, CHUNK, null);
      if (n === 0) break;
      hash.update(buffer.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
}

/** 'sha256:<hex>' of one file's bytes. */
export function hashFile(path: string): string {
  const hash = createHash('sha256');
  feedFile(hash, path);
  return `sha256:${hash.digest('hex')}`;
}

/** Files under `dir` (following symlinks), as sorted '/'-separated relative paths with their sizes. */
export function listFiles(dir: string): { path: string; bytes: number }[] {
  const found: { path: string; bytes: number }[] = [];
  const walk = (current: string): void => {
    for (const name of readdirSync(current)) {
      const full = join(current, name);
      const stat = statSync(full);
      if (stat.isDirectory()) walk(full);
      else if (stat.isFile()) found.push({ path: relative(dir, full).split(sep).join('/'), bytes: stat.size });
    }
  };
  walk(dir);
  return found.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** What hashFolder feeds before a file's bytes: its relative path, a NUL, its size, a NUL (for hashes made as bytes arrive). */
export function folderEntryHeader(file: { readonly path: string; readonly bytes: number }): string {
  return `${file.path}\0${file.bytes}\0`;
}

/**
 * 'sha256:<hex>' of a folder: each file's folderEntryHeader, then its bytes, in path order.
 * Renaming, adding or changing any file changes the hash; where the folder lives does not.
 */
export function hashFolder(dir: string): string {
  const hash = createHash('sha256');
  for (const file of listFiles(dir)) {
    hash.update(folderEntryHeader(file));
    feedFile(hash, join(dir, file.path));
  }
  return `sha256:${hash.digest('hex')}`;
}

/** 'sha256:<hex>' of a model: a Hugging Face folder by hashFolder, a single-file model (GGUF) by hashFile (Ollama's blob digest). */
export function hashModel(path: string): string {
  return statSync(path).isFile() ? hashFile(path) : hashFolder(path);
}
