/**
 * Crash-safe file operations of the library. A file or folder appears under its final name whole or not at all:
 * it is written (or copied) under a temp sibling name (main/common/atomic.ts: the one scheme every writer uses),
 * flushed, then renamed. Deletions rename first too, so a crash mid-delete leaves only a temp name, which the
 * start-up sweep clears.
 */
import {
  closeSync, cpSync, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, renameSync, rmSync, unlinkSync, writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fsyncDir, fsyncTree, isTempName, sweepTemps as sweep, tempSibling, TEMP_NAME } from '../common/atomic';
import { StoreError } from './errors';

export { isTempName, tempSibling, TEMP_NAME };

/** Test seams: a crash test kills the process at exactly these points. */
export interface AtomicHooks {
  readonly beforeRename?: (tempPath: string) => void;
}

/** Writes `data` to `path` atomically: temp file, fsync, rename, fsync of the folder. */
export function writeFileAtomic(path: string, data: string | Uint8Array, hooks?: AtomicHooks): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = tempSibling(path);
  const fd = openSync(temp, 'wx');
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let offset = 0;
    while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw error;
  }
  closeSync(fd);
  hooks?.beforeRename?.(temp);
  renameSync(temp, path);
  fsyncDir(dirname(path));
}

/**
 * Copies a folder to `destination` (which must not exist) atomically: copy to a temp sibling, flush, rename.
 * Symlinks are followed, so a Hugging Face cache snapshot (links into blobs/) becomes real files.
 */
export function copyDirAtomic(source: string, destination: string, hooks?: AtomicHooks): void {
  stageDir(destination, (staging) => {
    // stageDir made the folder; cpSync fills it, following symlinks so a hub cache snapshot becomes real files.
    cpSync(source, staging, { recursive: true, dereference: true, errorOnExist: true, force: false });
  }, hooks);
}

/**
 * Builds a folder under a temp sibling of `destination` (which must not exist) with `fill`, flushes it and renames
 * it into place: the folder appears complete or not at all.
 */
export function stageDir(destination: string, fill: (staging: string) => void, hooks?: AtomicHooks): void {
  refuseExisting(destination);
  mkdirSync(dirname(destination), { recursive: true });
  const temp = tempSibling(destination);
  mkdirSync(temp);
  try {
    fill(temp);
    fsyncTree(temp);
  } catch (error) {
    rmSync(temp, { recursive: true, force: true });
    throw error;
  }
  hooks?.beforeRename?.(temp);
  renameSync(temp, destination);
  fsyncDir(dirname(destination));
}

/** Replaces the file `destination` (existing or not) with `source`, moved in; readers see old or new, never half. */
export function replaceFileWith(source: string, destination: string): void {
  const temp = tempSibling(destination);
  moveAtomic(source, temp);
  renameSync(temp, destination);
  fsyncDir(dirname(destination));
}

/** Moves a file or folder to `destination` (which must not exist): a rename, or copy + rename across devices. */
export function moveAtomic(source: string, destination: string, hooks?: AtomicHooks): void {
  refuseExisting(destination);
  mkdirSync(dirname(destination), { recursive: true });
  try {
    hooks?.beforeRename?.(source);
    renameSync(source, destination);
    fsyncDir(dirname(destination));
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
  }
  if (lstatSync(source).isDirectory()) {
    copyDirAtomic(source, destination);
    rmSync(source, { recursive: true, force: true });
  } else {
    const temp = tempSibling(destination);
    cpSync(source, temp);
    fsyncTree(temp);
    renameSync(temp, destination);
    fsyncDir(dirname(destination));
    unlinkSync(source);
  }
}

/** Removes a file or folder: renamed to a temp name first, so it never lies half-deleted under its real name. */
export function removeAtomic(path: string): void {
  if (!existsSync(path) && !isDanglingLink(path)) return;
  const temp = tempSibling(path);
  renameSync(path, temp);
  fsyncDir(dirname(path));
  rmSync(temp, { recursive: true, force: true });
}

/** `.<name>.deleting` beside a folder whose delete is under way (versions.delete); group 1 is the folder's name. */
export const DELETION_MARKER = /^\.(.+)\.deleting$/;

/**
 * Marks `folder` as being deleted, before its row goes, so a start-up after a crash can tell a half-done delete
 * (finished then) from a folder whose row was never written (kept then). Returns the marker's path.
 */
export function markDeletion(folder: string): string {
  const marker = join(dirname(folder), `.${basename(folder)}.deleting`);
  writeFileAtomic(marker, '');
  return marker;
}

/** `.<name>.committing` beside a version folder while its commit is under way (versions.commit); group 1 is the name. */
export const COMMIT_MARKER = /^\.(.+)\.committing$/;

/**
 * Writes the marker of a commit into `folder`, before the folder is moved in: what it holds (the row to insert) lets a
 * start-up after a crash between the move and the insert record the version instead of finding a folder without a
 * row. Returns the marker's path.
 */
export function markCommit(folder: string, record: unknown): string {
  const marker = join(dirname(folder), `.${basename(folder)}.committing`);
  writeFileAtomic(marker, JSON.stringify(record));
  return marker;
}

/**
 * Deletes every temp name under `root` (not following symlinks) left by a process that is gone; returns the paths
 * removed. Temps of a live process (a CLI run writing into the data directory) are its work in progress.
 */
export function sweepTemps(root: string): string[] {
  return sweep(root, { recursive: true, atStartup: true });
}

function refuseExisting(destination: string): void {
  if (existsSync(destination) || isDanglingLink(destination)) {
    throw new StoreError('ALREADY_EXISTS', `'${destination}' already exists; refusing to overwrite it`);
  }
}

function isDanglingLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
