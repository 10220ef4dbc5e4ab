/**
 * The data-dir lock: one app or server per library. The lock itself is SQLite's own exclusive lock on a small
 * database beside the library (library.lock), held by a connection in locking_mode=EXCLUSIVE for as long as the
 * holder runs. The operating system drops it when the holder's process ends in any way (kill -9 included), so a
 * dead holder never blocks the next start: its lock is simply gone and the next holder takes over. Who holds it
 * (pid, command, since when) is written beside it in library.lock.json for the refusal message.
 */
import Database from 'better-sqlite3';
import { readFileSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { StoreError } from './errors';
import { writeFileAtomic } from './files';

export const LOCK_FILE = 'library.lock';
export const HOLDER_FILE = 'library.lock.json';

export interface LockHolder {
  readonly pid: number;
  /** What holds it, as a person would recognise it: 'lorasmith serve', 'the Lorasmith app'. */
  readonly command: string;
  /** ISO time the holder took the lock. */
  readonly since: string;
  readonly host: string;
}

export interface DataDirLock {
  readonly holder: LockHolder;
  /** What the previous holder's note said, when it died holding the lock (taken over). */
  readonly tookOverFrom: LockHolder | null;
  release(): void;
}

function readHolder(root: string): LockHolder | null {
  try {
    const value = JSON.parse(readFileSync(join(root, HOLDER_FILE), 'utf8')) as Partial<LockHolder>;
    return typeof value.pid === 'number' && typeof value.command === 'string' && typeof value.since === 'string'
      ? { pid: value.pid, command: value.command, since: value.since, host: typeof value.host === 'string' ? value.host : '' }
      : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // someone else's process, but alive
  }
}

function describe(holder: LockHolder | null): string {
  // A note left by a holder that died is not the holder: the new one has the lock and is writing its own note.
  const current = holder && (holder.host !== hostname() || alive(holder.pid)) ? holder : null;
  if (!current) return 'another Lorasmith app or server (starting up)';
  holder = current;
  return `${holder.command} (pid ${holder.pid}${holder.host && holder.host !== hostname() ? ` on ${holder.host}` : ''}, since ${holder.since})`;
}

/**
 * Takes the lock of the data directory `root` for `command`, or throws LIBRARY_IN_USE naming the holder.
 * `nativeBinding`: better-sqlite3 built for the running ABI (the Electron app's), as for openLibrary.
 */
export function lockDataDir(root: string, command: string, nativeBinding?: string): DataDirLock {
  // timeout 0: a held lock is answered at once, not waited for.
  const db = new Database(join(root, LOCK_FILE), { timeout: 0, ...(nativeBinding ? { nativeBinding } : {}) });
  try {
    db.pragma('journal_mode = MEMORY'); // it holds no data worth a journal file: no library.lock-journal beside it
    db.pragma('locking_mode = EXCLUSIVE');
    // The first write takes the exclusive lock; in EXCLUSIVE mode it is kept until the connection closes.
    db.exec('BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS lock (held INTEGER); COMMIT');
  } catch (error) {
    db.close();
    if ((error as { code?: string }).code === 'SQLITE_BUSY') {
      throw new StoreError('LIBRARY_IN_USE',
        `the library in ${root} is in use by ${describe(readHolder(root))}; stop that first, or open another data folder (--data-dir)`);
    }
    throw error;
  }
  const previous = readHolder(root);
  const holder: LockHolder = { pid: process.pid, command, since: new Date().toISOString(), host: hostname() };
  try {
    writeFileAtomic(join(root, HOLDER_FILE), JSON.stringify(holder, null, 2) + '\n');
  } catch (error) {
    db.close();
    throw error;
  }
  let released = false;
  return {
    holder,
    tookOverFrom: previous,
    release() {
      if (released) return;
      released = true;
      // The note first, then the lock: a next holder never finds this holder's note under its own lock.
      if (readHolder(root)?.pid === process.pid) rmSync(join(root, HOLDER_FILE), { force: true });
      db.close();
    },
  };
}
