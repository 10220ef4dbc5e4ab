/**
 * Adapter versions: PEFT files in adapters/<adapter>/v<n>/ and the record of what they were trained from.
 * Committing writes a marker (the row to come), moves the files into place, writes the row, then drops the marker;
 * deleting marks the folder, removes the row, then the files. A start-up after a crash finishes either (startup.ts).
 */
import { existsSync, readFileSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { sweepTemps } from '../../common/atomic';
import type { AdapterVersion, TrainingSettings } from '../../../preload/contract/domain';
import { StoreError, notFound } from '../errors';
import { copyDirAtomic, markCommit, markDeletion, moveAtomic, removeAtomic } from '../files';
import { listFiles } from '../../common/hash';
import { newId, nowIso } from '../ids';
import { compact, optional, parseJson, stableJson } from '../json';
import { layout } from '../paths';
import type { FileEntry, RunPlan, VersionDetails, VersionRow } from '../types';
import type { StoreContext } from './context';

/** The PEFT layout a version folder must hold. */
export const PEFT_FILES = ['adapter_config.json', 'adapter_model.safetensors'] as const;

export interface VersionCommit {
  readonly adapterId: string;
  /** A folder with adapter_config.json and adapter_model.safetensors (plus anything else to keep with them). */
  readonly filesFrom: string;
  /** 'move' (the engine's output folder) or 'copy' (a PEFT folder the user imports and keeps). */
  readonly take: 'move' | 'copy';
  readonly origin: 'trained' | 'imported';
  readonly parentVersionId?: string | null;
  readonly datasetId?: string | null;
  readonly settings?: TrainingSettings | null;
  readonly metrics?: AdapterVersion['metrics'];
  /** The run that produced it: linked in the same transaction as the insert. */
  readonly runId?: string | null;
}

/** A version trained on another machine keeps machine.json ({ description, ... }) beside its PEFT files. */
export const MACHINE_FILE = 'machine.json';
/** An imported version (a PEFT folder, a rank reduction) keeps how it came to be as note.json ({ description }). */
export const NOTE_FILE = 'note.json';

function description(folder: string, files: readonly FileEntry[], name: string): string | null {
  if (!files.some((f) => f.path === name)) return null;
  try {
    const { description } = JSON.parse(readFileSync(join(folder, name), 'utf8')) as { description?: unknown };
    return typeof description === 'string' ? description : null;
  } catch {
    return null; // a damaged or missing file: the version is still usable, only its description is unknown
  }
}

export function toVersion(row: VersionRow, ctx: StoreContext): VersionDetails {
  const files = parseJson<FileEntry[]>(row.files_json);
  return {
    id: row.id,
    adapterId: row.adapter_id,
    version: row.version,
    parentVersionId: row.parent_version_id,
    datasetId: row.dataset_id,
    settings: row.settings_json === null ? null : parseJson<TrainingSettings>(row.settings_json),
    metrics: compact({
      trainLoss: optional(row.train_loss), valLoss: optional(row.val_loss), steps: optional(row.steps),
    }),
    path: join(ctx.dataDir.root, row.path),
    status: row.status,
    createdAt: row.created_at,
    origin: row.origin,
    baseModelHash: row.base_model_hash,
    datasetHash: row.dataset_hash,
    parentLabel: row.parent_label,
    files,
    trainedOn: description(join(ctx.dataDir.root, row.path), files, MACHINE_FILE),
    note: description(join(ctx.dataDir.root, row.path), files, NOTE_FILE),
  };
}

/** What a commit's marker holds: the row it inserts (its files listed from the folder then) and the run it links. */
export interface PendingCommit {
  readonly row: Omit<VersionRow, 'files_json'>;
  readonly runId: string | null;
}

/** Inserts a version's row and links the run that produced it, in one transaction. */
export function insertVersion(ctx: StoreContext, pending: PendingCommit, files: readonly FileEntry[]): VersionRow {
  const row: VersionRow = { ...pending.row, files_json: stableJson(files) };
  ctx.db.transaction(() => {
    ctx.db.prepare(`INSERT INTO adapter_versions VALUES (@id, @adapter_id, @version, @origin,
      @parent_version_id, @parent_label, @dataset_id, @base_model_hash, @dataset_hash, @settings_json,
      @train_loss, @val_loss, @steps, @path, @files_json, @status, @created_at)`).run(row);
    if (pending.runId) {
      const linked = ctx.db.prepare('UPDATE training_runs SET adapter_version_id = ? WHERE id = ?').run(row.id, pending.runId);
      if (linked.changes === 0) throw notFound('training run', pending.runId);
    }
  })();
  return row;
}

export class VersionsRepo {
  constructor(private readonly ctx: StoreContext) {}

  list(adapterId: string): VersionDetails[] {
    const rows = this.ctx.db.prepare('SELECT * FROM adapter_versions WHERE adapter_id = ? ORDER BY version')
      .all(adapterId) as VersionRow[];
    return rows.map((r) => toVersion(r, this.ctx));
  }

  find(id: string): VersionDetails | null {
    const row = this.ctx.db.prepare('SELECT * FROM adapter_versions WHERE id = ?').get(id) as VersionRow | undefined;
    return row ? toVersion(row, this.ctx) : null;
  }

  get(id: string): VersionDetails {
    const found = this.find(id);
    if (!found) throw notFound('adapter version', id);
    return found;
  }

  /** The version's folder, checked to lie inside the data directory. */
  resolvePath(id: string): string {
    const row = this.ctx.db.prepare('SELECT path FROM adapter_versions WHERE id = ?').get(id) as
      { path: string } | undefined;
    if (!row) throw notFound('adapter version', id);
    return this.ctx.dataDir.resolve(row.path);
  }

  commit(input: VersionCommit): VersionDetails {
    checkPeftFolder(input.filesFrom);
    const adapter = this.ctx.db.prepare(`SELECT a.name, m.content_hash FROM adapters a
      JOIN base_models m ON m.id = a.base_model_id WHERE a.id = ?`).get(input.adapterId) as
      { name: string; content_hash: string } | undefined;
    if (!adapter) throw notFound('adapter', input.adapterId);
    const parentLabel = input.parentVersionId ? this.label(input.parentVersionId) : null;
    const datasetHash = input.datasetId ? this.datasetHash(input.datasetId) : null;
    const version = this.nextNumber(input.adapterId);
    const stored = layout.versionDir(input.adapterId, version);
    const folder = this.ctx.dataDir.resolve(stored);
    const pending: PendingCommit = {
      row: {
        id: newId('ver'),
        adapter_id: input.adapterId,
        version,
        origin: input.origin,
        parent_version_id: input.parentVersionId ?? null,
        parent_label: parentLabel,
        dataset_id: input.datasetId ?? null,
        base_model_hash: adapter.content_hash,
        dataset_hash: datasetHash,
        settings_json: input.settings ? stableJson(input.settings) : null,
        train_loss: input.metrics?.trainLoss ?? null,
        val_loss: input.metrics?.valLoss ?? null,
        steps: input.metrics?.steps ?? null,
        path: stored,
        status: 'ok',
        created_at: nowIso(),
      },
      runId: input.runId ?? null,
    };
    // The marker first: a stop between the move and the insert leaves what the start-up records (startup.ts).
    const marker = markCommit(folder, pending);
    const undo = (): void => {
      removeAtomic(folder);
      rmSync(marker, { force: true });
      removeIfEmpty(dirname(folder)); // an adapter created for this version, its row rolled back with it
    };
    try {
      if (input.take === 'move') moveAtomic(input.filesFrom, folder);
      else copyDirAtomic(input.filesFrom, folder);
      const row = insertVersion(this.ctx, pending, listFiles(folder));
      // Inside Library.transaction the row is final only when it commits: the marker stays until then, and a
      // rollback takes the folder too (commits inside a transaction take copies their caller can redo: imports).
      this.ctx.whenSettled((committed) => (committed ? rmSync(marker, { force: true }) : undo()));
      return toVersion(row, this.ctx);
    } catch (error) {
      undo();
      throw error;
    }
  }

  /**
   * Deletes the version's row and the runs that produced it (their metrics cascade) in one transaction, then
   * its folder and their checkpoints. Versions continued from it keep their parent_label.
   */
  delete(id: string): void {
    const version = this.get(id);
    const runs = this.ctx.db.prepare('SELECT id, status FROM training_runs WHERE adapter_version_id = ?')
      .all(id) as { id: string; status: string }[];
    const training = this.ctx.db.prepare(`SELECT id FROM training_runs WHERE parent_version_id = ?
      AND status IN ('queued', 'running')`).get(id) as { id: string } | undefined;
    if (training) {
      throw new StoreError('IN_USE', `run ${training.id} is continuing from version ${id}; cancel it first`);
    }
    const stored = (this.ctx.db.prepare('SELECT path FROM adapter_versions WHERE id = ?').get(id) as
      { path: string }).path;
    const folder = this.ctx.dataDir.resolve(stored);
    // A folder without a row is otherwise a commit that stopped before its insert, kept at start-up: the marker
    // says this one is a delete, to be finished.
    const marker = markDeletion(folder);
    try {
      this.ctx.db.transaction(() => {
        for (const run of runs) this.ctx.db.prepare('DELETE FROM training_runs WHERE id = ?').run(run.id);
        this.ctx.db.prepare('DELETE FROM adapter_versions WHERE id = ?').run(version.id);
      })();
    } catch (error) {
      rmSync(marker, { force: true });
      throw error;
    }
    removeAtomic(folder);
    rmSync(marker, { force: true });
    for (const run of runs) removeAtomic(this.ctx.dataDir.resolve(layout.runDir(run.id)));
  }

  /** Copies the PEFT folder to `destination` (which must not exist), whole or not at all. */
  exportTo(id: string, destination: string): string {
    if (!isAbsolute(destination)) {
      throw new StoreError('INVALID_INPUT', `export destination must be an absolute path, got '${destination}'`);
    }
    sweepTemps(dirname(destination), { recursive: false }); // what a crashed export left in that folder
    copyDirAtomic(this.resolvePath(id), destination);
    return destination;
  }

  /** A new run that continues training from this version (the new version's parent is this one). */
  continuePlan(id: string): RunPlan {
    const v = this.get(id);
    return { ...this.planBase(v), parentVersionId: v.id, settings: v.settings };
  }

  /** A new run from the same starting point (this version's parent, or scratch) to redo with other settings. */
  duplicatePlan(id: string): RunPlan {
    const v = this.get(id);
    return { ...this.planBase(v), parentVersionId: v.parentVersionId, settings: v.settings };
  }

  /** Other versions trained from the same base, dataset and settings: "you have trained this already". */
  sameRecipe(id: string): VersionDetails[] {
    const rows = this.ctx.db.prepare(`SELECT o.* FROM adapter_versions v JOIN adapter_versions o
      ON o.base_model_hash = v.base_model_hash AND o.dataset_hash IS v.dataset_hash
      AND o.settings_json = v.settings_json AND o.parent_version_id IS v.parent_version_id AND o.id <> v.id
      WHERE v.id = ? ORDER BY o.created_at`).all(id) as VersionRow[];
    return rows.map((r) => toVersion(r, this.ctx));
  }

  private planBase(v: VersionDetails): Omit<RunPlan, 'parentVersionId' | 'settings'> {
    const adapter = this.ctx.db.prepare('SELECT name, base_model_id FROM adapters WHERE id = ?').get(v.adapterId) as
      { name: string; base_model_id: string };
    return { adapterId: v.adapterId, adapterName: adapter.name, baseModelId: adapter.base_model_id,
      datasetId: v.datasetId };
  }

  /** max(row versions, folder names) + 1, so a folder left by a crash before its insert is never overwritten. */
  private nextNumber(adapterId: string): number {
    const { max } = this.ctx.db.prepare('SELECT COALESCE(MAX(version), 0) AS max FROM adapter_versions WHERE adapter_id = ?')
      .get(adapterId) as { max: number };
    let highest = max;
    const dir = this.ctx.dataDir.resolve(layout.adapterDir(adapterId));
    if (existsSync(dir)) {
      for (const name of readdirSync(dir)) {
        const match = /^v(\d+)$/.exec(name);
        if (match) highest = Math.max(highest, Number(match[1]));
      }
    }
    return highest + 1;
  }

  private label(versionId: string): string {
    const row = this.ctx.db.prepare(`SELECT a.name, v.version FROM adapter_versions v
      JOIN adapters a ON a.id = v.adapter_id WHERE v.id = ?`).get(versionId) as
      { name: string; version: number } | undefined;
    if (!row) throw notFound('parent adapter version', versionId);
    return `${row.name} v${row.version}`;
  }

  private datasetHash(datasetId: string): string {
    const row = this.ctx.db.prepare('SELECT hash FROM datasets WHERE id = ?').get(datasetId) as
      { hash: string } | undefined;
    if (!row) throw notFound('dataset', datasetId);
    return row.hash;
  }
}

function checkPeftFolder(folder: string): void {
  if (!isAbsolute(folder) || !existsSync(folder) || !statSync(folder).isDirectory()) {
    throw new StoreError('FILE_MISSING', `adapter folder '${folder}' does not exist or is not a folder`);
  }
  for (const name of PEFT_FILES) {
    if (!existsSync(join(folder, name))) {
      throw new StoreError('INVALID_INPUT', `adapter folder '${folder}' has no ${name}; a PEFT adapter needs ${
        PEFT_FILES.join(' and ')}`);
    }
  }
}

/** Removes `dir` if it holds nothing (an adapter's folder holds only its versions, made on demand). */
function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // not empty, or gone already: nothing to do
  }
}
