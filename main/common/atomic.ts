/**
 * Crash-safe writing, shared by every writer (the engine's adapter, safetensors and merged-model writers, the
 * store, imports): a file or folder is written under a temp sibling name and renamed into place, so it appears
 * whole or not at all. Every temp name follows one scheme, `.<final name>.tmp-<pid>-<8 hex>`: hidden, and naming
 * the process that writes it, so a sweep removes exactly what a dead writer left and never a live writer's work.
 */
import { closeSync, existsSync, fsyncSync, lstatSync, openSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

export const TEMP_NAME = /^\..+\.tmp-(\d+)-[0-9a-f]{8}$/;

/** A fresh temp name beside `finalPath`, in the one scheme. */
export function tempSibling(finalPath: string): string {
  return join(dirname(finalPath), `.${basename(finalPath)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

export function isTempName(name: string): boolean {
  return TEMP_NAME.test(name);
}

/** True while the process that named this temp runs (this process's own temps are its work in progress). */
export function tempWriterAlive(name: string): boolean {
  const pid = Number(TEMP_NAME.exec(name)?.[1]);
  if (!Number.isSafeInteger(pid)) return false;
  if (pid === process.pid) return true;
  return processAlive(pid);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else, so it is alive.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface SweepOptions {
  /** Also look inside subfolders (not following symlinks). A data directory is swept whole; an export folder only at its top. */
  readonly recursive: boolean;
  /**
   * At start-up nothing of this process is being written yet: temps bearing its pid were left by an earlier
   * process that had the same pid (containers reuse low pids), and go too.
   */
  readonly atStartup?: boolean;
}

/** Removes the temps under `root` whose writer is gone; returns the paths removed. */
export function sweepTemps(root: string, options: SweepOptions): string[] {
  const removed: string[] = [];
  const walk = (dir: string): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (isTempName(entry.name)) {
        const ownLeftover = options.atStartup === true && TEMP_NAME.exec(entry.name)?.[1] === String(process.pid);
        if (ownLeftover || !tempWriterAlive(entry.name)) {
          rmSync(path, { recursive: true, force: true });
          removed.push(path);
        }
      } else if (options.recursive && entry.isDirectory()) {
        walk(path);
      }
    }
  };
  walk(root);
  return removed;
}

/** Why a destination cannot be written: it holds something (a user's files are never written over). */
export class OutputNotEmptyError extends Error {
  override readonly name = 'OutputNotEmptyError';
  readonly code = 'OUTPUT_NOT_EMPTY';
  constructor(readonly path: string, entries: number) {
    super(`'${path}' is not empty (${entries} ${entries === 1 ? 'entry' : 'entries'}); choose a new or empty folder: nothing is written over existing files`);
  }
}

/** Entries in `dir`, or null where it does not exist; a file where a folder should be counts as one entry. */
function entriesOf(dir: string): number | null {
  try {
    const stat = lstatSync(dir);
    return stat.isDirectory() ? readdirSync(dir).length : 1;
  } catch {
    return null;
  }
}

/** Throws OUTPUT_NOT_EMPTY unless `dir` is absent or an empty folder. */
export function assertEmptyOutput(dir: string): void {
  const entries = entriesOf(dir);
  if (entries !== null && entries > 0) throw new OutputNotEmptyError(dir, entries);
}

/**
 * Renames a complete staged folder `staged` to `destination`. An empty folder there is replaced; anything else
 * there is refused (OUTPUT_NOT_EMPTY) and the staged folder removed, unless `replace` (a writer's own folder, such
 * as a checkpoint written again) says the old one goes.
 */
export function publishDir(staged: string, destination: string, options: { replace?: boolean } = {}): void {
  const entries = entriesOf(destination);
  if (entries !== null && entries > 0 && !options.replace) {
    rmSync(staged, { recursive: true, force: true });
    throw new OutputNotEmptyError(destination, entries);
  }
  if (entries !== null) {
    // Moved aside under a temp name first: a crash here leaves a sweepable temp, never half a folder.
    const old = tempSibling(destination);
    renameSync(destination, old);
    renameSync(staged, destination);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(staged, destination);
  }
  fsyncDir(dirname(destination));
}

/** Flushes a file or a folder tree to disk before it is renamed into place. */
export function fsyncTree(path: string): void {
  const stat = lstatSync(path);
  if (stat.isDirectory()) {
    for (const name of readdirSync(path)) fsyncTree(join(path, name));
    fsyncDir(path);
  } else if (stat.isFile()) {
    const fd = openSync(path, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/** Makes a rename durable. Windows cannot open folders for fsync; there the rename is already ordered. */
export function fsyncDir(dir: string): void {
  if (!existsSync(dir)) return;
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // best effort (see above)
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
