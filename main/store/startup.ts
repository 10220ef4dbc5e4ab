/**
 * The startup check: after any crash, make rows and files agree again before the app shows anything.
 * - temp names left by interrupted writes are removed (they were never pointed at);
 * - rows whose files are gone or the wrong size are marked 'missing' (and back to 'ok' when they return);
 * - runs left 'running' become 'interrupted', resumable from their last checkpoint if that still exists;
 * - a version delete that stopped midway (its marker, files.ts deletionMarker, still beside the folder) is finished
 *   where its row is gone, and forgotten where the row is still there (nothing was deleted yet);
 * - a version commit that stopped midway (its marker, files.ts markCommit, still beside the folder) is finished: a
 *   folder moved in without its row gets the row the marker holds (the run that trained it then done), unless the
 *   transaction it belonged to never committed (its run or adapter has no row: an import, whose source is intact),
 *   then the folder goes; a marker without its folder, or beside a row, goes;
 * - version folders without a row and without either marker (none this version of the library writes) are
 *   reported, never deleted: they may hold trained weights;
 * - model, dataset, adapter and run folders without a row are removed and reported: an import that stopped before
 *   its row was written, or a delete that stopped after its row went (rows go first);
 * - unfinished hub downloads (downloads/) are removed: the process that would resume them is gone.
 */
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { listFiles } from '../common/hash';
import { COMMIT_MARKER, DELETION_MARKER, removeAtomic, sweepTemps } from './files';
import { parseJson } from './json';
import { nowIso } from './ids';
import { layout } from './paths';
import type { StoreContext } from './repos/context';
import { insertVersion, type PendingCommit } from './repos/versions';
import type { FileEntry, StartupReport } from './types';

export function startupCheck(ctx: StoreContext): StartupReport {
  const tempsRemoved = sweepTemps(ctx.dataDir.root);
  // Before the runs are checked: a run whose version a crash left unrecorded is done, not interrupted.
  const commits = finishCommits(ctx);
  const report = {
    tempsRemoved,
    modelsMissing: [] as string[], modelsFound: [] as string[],
    datasetsMissing: [] as string[], datasetsFound: [] as string[],
    versionsMissing: [] as string[], versionsFound: [] as string[],
    runsInterrupted: [] as string[], checkpointsLost: [] as string[],
    versionsRecorded: commits.recorded,
    orphanFolders: [] as string[],
    foldersRemoved: [...commits.removed],
    downloadsRemoved: [] as string[],
  };
  ctx.db.transaction(() => {
    checkModels(ctx, report.modelsMissing, report.modelsFound);
    checkDatasets(ctx, report.datasetsMissing, report.datasetsFound);
    checkVersions(ctx, report.versionsMissing, report.versionsFound);
    checkRuns(ctx, report.runsInterrupted, report.checkpointsLost);
  })();
  report.foldersRemoved.push(
    ...finishVersionDeletes(ctx),
    ...removeUnrecorded(ctx, 'models', 'mdl', 'SELECT path FROM base_models WHERE storage = \'copy\''),
    ...removeUnrecorded(ctx, 'datasets', 'ds', 'SELECT original_file AS path FROM datasets'),
    ...removeUnrecorded(ctx, 'adapters', 'ada', 'SELECT \'adapters/\' || id AS path FROM adapters'),
    ...removeUnrecorded(ctx, 'runs', 'run', 'SELECT \'runs/\' || id AS path FROM training_runs'),
  );
  report.orphanFolders.push(...findOrphanVersionFolders(ctx));
  report.downloadsRemoved.push(...removeDownloads(ctx));
  return report;
}

/**
 * Folders under models/, datasets/, adapters/ or runs/ named like the library's own ids (mdl_…, ds_…, ada_…, run_…)
 * that no row points at: an import copied them in and stopped before writing its row, or a delete removed the row
 * and stopped before the folder went. Anything else there is left alone.
 */
function removeUnrecorded(ctx: StoreContext, top: 'models' | 'datasets' | 'adapters' | 'runs', prefix: 'mdl' | 'ds' | 'ada' | 'run', query: string): string[] {
  const dir = join(ctx.dataDir.root, top);
  if (!existsSync(dir)) return [];
  const recorded = new Set((ctx.db.prepare(query).all() as { path: string }[]).map((r) => r.path.split('/')[1]));
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    if (!new RegExp(`^${prefix}_\\d{8}_[0-9a-z]{12}$`).test(name) || recorded.has(name)) continue;
    removeAtomic(join(dir, name));
    removed.push(`${top}/${name}`);
  }
  return removed;
}

/**
 * Version commits a stop interrupted, by the marker each writes before moving its folder in (versions.commit): see
 * the list at the top. Returns the versions recorded ('adapters/<id>/v<n>') and the folders removed.
 */
function finishCommits(ctx: StoreContext): { recorded: string[]; removed: string[] } {
  const recorded: string[] = [];
  const removed: string[] = [];
  const adaptersDir = join(ctx.dataDir.root, 'adapters');
  if (!existsSync(adaptersDir)) return { recorded, removed };
  const exists = (table: string, id: string | null): boolean =>
    id === null || ctx.db.prepare(`SELECT 1 FROM ${table} WHERE id = ?`).get(id) !== undefined;
  for (const adapterId of readdirSync(adaptersDir)) {
    const dir = join(adaptersDir, adapterId);
    if (!statSync(dir).isDirectory()) continue;
    // An adapter without its row is removed whole below (removeUnrecorded), its markers with it.
    if (!exists('adapters', adapterId)) continue;
    for (const name of readdirSync(dir)) {
      const version = COMMIT_MARKER.exec(name)?.[1];
      if (version === undefined || !/^v\d+$/.test(version)) continue;
      const marker = join(dir, name);
      const stored = `adapters/${adapterId}/${version}`;
      const folder = join(dir, version);
      const pending = readPending(marker);
      const hasRow = ctx.db.prepare('SELECT 1 FROM adapter_versions WHERE path = ?').get(stored) !== undefined;
      if (existsSync(folder) && !hasRow && pending !== null && pending.row.path === stored) {
        if (exists('training_runs', pending.runId)) {
          // A parent deleted since keeps its label only, as versions continued from a deleted one do.
          const parent = exists('adapter_versions', pending.row.parent_version_id) ? pending.row.parent_version_id : null;
          try {
            ctx.db.transaction(() => {
              insertVersion(ctx, { ...pending, row: { ...pending.row, parent_version_id: parent } }, listFiles(folder));
              if (pending.runId !== null) {
                ctx.db.prepare(`UPDATE training_runs SET status = 'done', finished_at = ?, error = NULL
                  WHERE id = ? AND status IN ('running', 'interrupted')`).run(nowIso(), pending.runId);
              }
            })();
            recorded.push(stored);
          } catch {
            // Not recordable after all (a damaged marker): the folder stays and is reported without a row.
          }
        } else {
          removeAtomic(folder);
          removed.push(stored);
        }
      }
      rmSync(marker, { force: true });
    }
  }
  return { recorded, removed };
}

/** A commit marker's record, or null where it cannot be read (then the folder, if any, is reported as an orphan). */
function readPending(marker: string): PendingCommit | null {
  try {
    const pending = JSON.parse(readFileSync(marker, 'utf8')) as PendingCommit;
    return typeof pending?.row?.id === 'string' && typeof pending.row.path === 'string' ? pending : null;
  } catch {
    return null;
  }
}

/**
 * Version deletes a stop interrupted, by the marker each leaves beside the folder until it is done: without its row
 * the folder goes (the delete had committed); with its row the marker goes (nothing was deleted yet).
 */
function finishVersionDeletes(ctx: StoreContext): string[] {
  const adaptersDir = join(ctx.dataDir.root, 'adapters');
  if (!existsSync(adaptersDir)) return [];
  const known = new Set((ctx.db.prepare('SELECT path FROM adapter_versions').all() as { path: string }[]).map((r) => r.path));
  const removed: string[] = [];
  for (const adapterId of readdirSync(adaptersDir)) {
    const dir = join(adaptersDir, adapterId);
    if (!statSync(dir).isDirectory()) continue;
    for (const name of readdirSync(dir)) {
      const version = DELETION_MARKER.exec(name)?.[1];
      if (version === undefined || !/^v\d+$/.test(version)) continue;
      const stored = `adapters/${adapterId}/${version}`;
      if (!known.has(stored)) {
        removeAtomic(join(dir, version));
        removed.push(stored);
      }
      rmSync(join(dir, name), { force: true });
    }
  }
  return removed;
}

/** Hub downloads' staging folders (services/model-downloads.ts): resumable only by the process that started them. */
function removeDownloads(ctx: StoreContext): string[] {
  const dir = ctx.dataDir.resolve(layout.downloadsDir);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).map((name) => {
    rmSync(join(dir, name), { recursive: true, force: true });
    return `${layout.downloadsDir}/${name}`;
  });
}

type Status = 'ok' | 'missing';

function setStatus(ctx: StoreContext, table: string, id: string, was: Status, intact: boolean,
  missing: string[], found: string[]): void {
  const now: Status = intact ? 'ok' : 'missing';
  if (now === was) return;
  ctx.db.prepare(`UPDATE ${table} SET status = ? WHERE id = ?`).run(now, id);
  (intact ? found : missing).push(id);
}

function checkModels(ctx: StoreContext, missing: string[], found: string[]): void {
  const rows = ctx.db.prepare('SELECT id, storage, path, files_json, status FROM base_models').all() as
    { id: string; storage: 'copy' | 'reference'; path: string; files_json: string; status: Status }[];
  for (const row of rows) {
    const folder = row.storage === 'copy' ? safeResolve(ctx, row.path) : row.path;
    // A referenced folder is the user's to update; only its presence is checked, not the sizes.
    const intact = folder !== null && filesIntact(folder, parseJson<FileEntry[]>(row.files_json), row.storage === 'copy');
    setStatus(ctx, 'base_models', row.id, row.status, intact, missing, found);
  }
}

function checkDatasets(ctx: StoreContext, missing: string[], found: string[]): void {
  const rows = ctx.db.prepare(`SELECT id, original_file, original_bytes, normalized_file, normalized_bytes, status
    FROM datasets`).all() as { id: string; original_file: string; original_bytes: number; normalized_file: string | null;
    normalized_bytes: number | null; status: Status }[];
  for (const row of rows) {
    const files: [string, number][] = [[row.original_file, row.original_bytes]];
    if (row.normalized_file !== null) files.push([row.normalized_file, row.normalized_bytes ?? -1]);
    const intact = files.every(([stored, bytes]) => {
      const path = safeResolve(ctx, stored);
      return path !== null && sizeIs(path, bytes);
    });
    setStatus(ctx, 'datasets', row.id, row.status, intact, missing, found);
  }
}

function checkVersions(ctx: StoreContext, missing: string[], found: string[]): void {
  const rows = ctx.db.prepare('SELECT id, path, files_json, status FROM adapter_versions').all() as
    { id: string; path: string; files_json: string; status: Status }[];
  for (const row of rows) {
    const folder = safeResolve(ctx, row.path);
    const intact = folder !== null && filesIntact(folder, parseJson<FileEntry[]>(row.files_json), true);
    setStatus(ctx, 'adapter_versions', row.id, row.status, intact, missing, found);
  }
}

function checkRuns(ctx: StoreContext, interrupted: string[], lost: string[]): void {
  const rows = ctx.db.prepare(`SELECT id, status, last_checkpoint FROM training_runs
    WHERE status IN ('running', 'interrupted')`).all() as
    { id: string; status: 'running' | 'interrupted'; last_checkpoint: string | null }[];
  for (const row of rows) {
    if (row.status === 'running') {
      ctx.db.prepare(`UPDATE training_runs SET status = 'interrupted',
        error = 'the app stopped while this run was training; resume it to continue from its last checkpoint'
        WHERE id = ?`).run(row.id);
      interrupted.push(row.id);
    }
    if (row.last_checkpoint !== null) {
      const path = safeResolve(ctx, row.last_checkpoint);
      if (path === null || !existsSync(path)) {
        ctx.db.prepare('UPDATE training_runs SET last_checkpoint = NULL, step = 0 WHERE id = ?').run(row.id);
        lost.push(row.id);
      }
    }
  }
}

function findOrphanVersionFolders(ctx: StoreContext): string[] {
  const adaptersDir = join(ctx.dataDir.root, 'adapters');
  if (!existsSync(adaptersDir)) return [];
  const known = new Set((ctx.db.prepare('SELECT path FROM adapter_versions').all() as { path: string }[])
    .map((r) => r.path));
  const orphans: string[] = [];
  for (const adapterId of readdirSync(adaptersDir)) {
    const dir = join(adaptersDir, adapterId);
    if (!statSync(dir).isDirectory()) continue;
    for (const name of readdirSync(dir)) {
      const stored = `adapters/${adapterId}/${name}`;
      if (/^v\d+$/.test(name) && !known.has(stored)) orphans.push(stored);
    }
  }
  return orphans;
}

function filesIntact(folder: string, files: readonly FileEntry[], checkSizes: boolean): boolean {
  if (!existsSync(folder)) return false;
  return files.every((f) => (checkSizes ? sizeIs(join(folder, f.path), f.bytes) : existsSync(join(folder, f.path))));
}

function sizeIs(path: string, bytes: number): boolean {
  try {
    const stat = statSync(path);
    return stat.isFile() && stat.size === bytes;
  } catch {
    return false;
  }
}

/** A stored path that now leads outside (someone swapped in a symlink) counts as missing, not as an error. */
function safeResolve(ctx: StoreContext, stored: string): string | null {
  try {
    return ctx.dataDir.resolve(stored);
  } catch {
    return null;
  }
}
