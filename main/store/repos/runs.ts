/**
 * Training runs and their life: queued -> running -> done | failed | cancelled, or interrupted when the app
 * stopped mid-run (the startup check), from which a run resumes at its last checkpoint.
 */
import { existsSync, mkdirSync } from 'node:fs';
import type { RunStatus, TrainingRun, TrainingSettings } from '../../../preload/contract/domain';
import { StoreError, notFound } from '../errors';
import { removeAtomic } from '../files';
import { newId, nowIso } from '../ids';
import { parseJson, stableJson } from '../json';
import { layout } from '../paths';
import type { RunRow } from '../types';
import type { StoreContext } from './context';

/** Which status may follow which; anything else is a bug in the caller. */
const NEXT: Record<RunStatus, readonly RunStatus[]> = {
  queued: ['running', 'cancelled'],
  running: ['done', 'failed', 'cancelled', 'interrupted'],
  interrupted: ['running', 'cancelled', 'failed'],
  done: [],
  failed: [],
  // A cancelled run keeps its checkpoints: resuming it is the same run going on.
  cancelled: ['running'],
};

/** A run as stored; the contract's TrainingRun adds the adapter's name and the checkpoint's step (main/ipc). */
export interface RunDetails extends Omit<TrainingRun, 'adapterName' | 'checkpointStep'> {
  readonly parentVersionId: string | null;
  readonly createdAt: string;
  readonly step: number;
  readonly totalSteps: number | null;
}

export interface RunCreate {
  readonly adapterId: string;
  readonly datasetId: string;
  readonly settings: TrainingSettings;
  readonly parentVersionId?: string | null;
  readonly totalSteps?: number | null;
}

export function toRun(row: RunRow): RunDetails {
  return {
    id: row.id,
    adapterVersionId: row.adapter_version_id,
    baseModelId: row.base_model_id,
    datasetId: row.dataset_id,
    status: row.status,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    error: row.error,
    lastCheckpoint: row.last_checkpoint,
    settings: parseJson<TrainingSettings>(row.settings_json),
    adapterId: row.adapter_id,
    parentVersionId: row.parent_version_id,
    createdAt: row.created_at,
    step: row.step,
    totalSteps: row.total_steps,
  };
}

export class RunsRepo {
  constructor(private readonly ctx: StoreContext) {}

  list(filter: { adapterId?: string; status?: RunStatus } = {}): RunDetails[] {
    const rows = this.ctx.db.prepare(`SELECT * FROM training_runs
      WHERE (@adapterId IS NULL OR adapter_id = @adapterId) AND (@status IS NULL OR status = @status)
      ORDER BY created_at, id`).all({ adapterId: filter.adapterId ?? null, status: filter.status ?? null }) as RunRow[];
    return rows.map(toRun);
  }

  find(id: string): RunDetails | null {
    const row = this.ctx.db.prepare('SELECT * FROM training_runs WHERE id = ?').get(id) as RunRow | undefined;
    return row ? toRun(row) : null;
  }

  get(id: string): RunDetails {
    const found = this.find(id);
    if (!found) throw notFound('training run', id);
    return found;
  }

  /** A queued run. The base model is the adapter's; a parent version must belong to the same base. */
  create(input: RunCreate): RunDetails {
    const adapter = this.ctx.db.prepare('SELECT base_model_id FROM adapters WHERE id = ?').get(input.adapterId) as
      { base_model_id: string } | undefined;
    if (!adapter) throw notFound('adapter', input.adapterId);
    if (!this.ctx.db.prepare('SELECT 1 FROM datasets WHERE id = ?').get(input.datasetId)) {
      throw notFound('dataset', input.datasetId);
    }
    if (input.parentVersionId) this.checkParent(input.parentVersionId, adapter.base_model_id);
    const row: RunRow = {
      id: newId('run'),
      adapter_id: input.adapterId,
      base_model_id: adapter.base_model_id,
      dataset_id: input.datasetId,
      parent_version_id: input.parentVersionId ?? null,
      adapter_version_id: null,
      settings_json: stableJson(input.settings),
      status: 'queued',
      created_at: nowIso(),
      started_at: null,
      finished_at: null,
      error: null,
      last_checkpoint: null,
      step: 0,
      total_steps: input.totalSteps ?? null,
    };
    this.ctx.db.prepare(`INSERT INTO training_runs (id, adapter_id, base_model_id, dataset_id, parent_version_id,
      adapter_version_id, settings_json, status, created_at, started_at, finished_at, error, last_checkpoint, step,
      total_steps) VALUES (@id, @adapter_id, @base_model_id, @dataset_id, @parent_version_id, @adapter_version_id,
      @settings_json, @status, @created_at, @started_at, @finished_at, @error, @last_checkpoint, @step,
      @total_steps)`).run(row);
    return toRun(row);
  }

  /** Where the engine writes this run's checkpoints (created on demand): runs/<id>/checkpoints. */
  checkpointsDir(id: string): string {
    this.get(id);
    const dir = this.ctx.dataDir.resolve(layout.checkpointsDir(id));
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /**
   * Where the engine writes this run's finished adapter before it is committed as a version: runs/<id>/output.
   * Emptied first: what an earlier attempt left there (killed before its commit) is the run's own, never a version.
   */
  outputDir(id: string): string {
    this.get(id);
    const dir = this.ctx.dataDir.resolve(layout.runOutputDir(id));
    removeAtomic(dir);
    return dir;
  }

  start(id: string, totalSteps?: number): RunDetails {
    this.transition(id, 'running');
    this.ctx.db.prepare(`UPDATE training_runs SET started_at = COALESCE(started_at, ?), finished_at = NULL,
      error = NULL, total_steps = COALESCE(?, total_steps) WHERE id = ?`).run(nowIso(), totalSteps ?? null, id);
    return this.get(id);
  }

  /**
   * Continues a cancelled or interrupted run from `fromStep` (its last checkpoint's step, 0 without one): running
   * again, and its metrics past that step dropped, so the steps trained again are recorded once.
   */
  resume(id: string, fromStep: number): RunDetails {
    const run = this.get(id);
    if (run.status !== 'cancelled' && run.status !== 'interrupted') {
      throw new StoreError('INVALID_STATE', `run ${id} is ${run.status}; only a cancelled or interrupted run resumes`);
    }
    this.ctx.db.transaction(() => {
      this.transition(id, 'running');
      this.ctx.db.prepare('DELETE FROM run_metrics WHERE run_id = ? AND step > ?').run(id, fromStep);
      this.ctx.db.prepare('UPDATE training_runs SET step = ?, finished_at = NULL, error = NULL WHERE id = ?')
        .run(fromStep, id);
    })();
    return this.get(id);
  }

  /** Records a checkpoint the engine has finished writing (an absolute path inside runs/<id>/checkpoints). */
  recordCheckpoint(id: string, checkpointPath: string, step: number): RunDetails {
    const stored = this.ctx.dataDir.toStored(checkpointPath);
    if (!stored.startsWith(`${layout.checkpointsDir(id)}/`)) {
      throw new StoreError('INVALID_INPUT', `checkpoint '${checkpointPath}' is not inside ${layout.checkpointsDir(id)}`);
    }
    if (!existsSync(checkpointPath)) {
      throw new StoreError('FILE_MISSING', `checkpoint '${checkpointPath}' does not exist; write it before recording it`);
    }
    const run = this.get(id);
    if (run.status !== 'running') {
      throw new StoreError('INVALID_STATE', `run ${id} is ${run.status}; only a running run records checkpoints`);
    }
    this.ctx.db.prepare('UPDATE training_runs SET last_checkpoint = ?, step = MAX(step, ?) WHERE id = ?')
      .run(stored, step, id);
    return this.get(id);
  }

  /** Checked absolute path of the last checkpoint, or null when the run has none (it starts from scratch). */
  resolveCheckpoint(id: string): string | null {
    const run = this.get(id);
    return run.lastCheckpoint === null ? null : this.ctx.dataDir.resolve(run.lastCheckpoint);
  }

  /** Ends a running run; 'interrupted' (its engine went away) keeps it resumable. */
  finish(id: string, outcome: 'done' | 'failed' | 'cancelled' | 'interrupted', error?: string): RunDetails {
    if (outcome === 'done' && !this.get(id).adapterVersionId) {
      throw new StoreError('INVALID_STATE', `run ${id} has no adapter version; commit the version before finishing`);
    }
    this.transition(id, outcome);
    this.ctx.db.prepare('UPDATE training_runs SET finished_at = ?, error = ? WHERE id = ?')
      .run(nowIso(), error ?? null, id);
    return this.get(id);
  }

  /** Deletes a run that is not running: row (metrics cascade), then runs/<id>/. */
  delete(id: string): void {
    const run = this.get(id);
    if (run.status === 'running') throw new StoreError('IN_USE', `run ${id} is running; cancel it first`);
    this.ctx.db.prepare('DELETE FROM training_runs WHERE id = ?').run(id);
    removeAtomic(this.ctx.dataDir.resolve(layout.runDir(id)));
  }

  private transition(id: string, to: RunStatus): void {
    const run = this.get(id);
    if (!NEXT[run.status].includes(to)) {
      throw new StoreError('INVALID_STATE', `run ${id} is ${run.status} and cannot become ${to}`);
    }
    this.ctx.db.prepare('UPDATE training_runs SET status = ? WHERE id = ?').run(to, id);
  }

  private checkParent(parentVersionId: string, baseModelId: string): void {
    const parent = this.ctx.db.prepare(`SELECT a.base_model_id FROM adapter_versions v
      JOIN adapters a ON a.id = v.adapter_id WHERE v.id = ?`).get(parentVersionId) as
      { base_model_id: string } | undefined;
    if (!parent) throw notFound('parent adapter version', parentVersionId);
    if (parent.base_model_id !== baseModelId) {
      throw new StoreError('INVALID_INPUT',
        `version ${parentVersionId} was trained on another base model (${parent.base_model_id}); ` +
        'continue it with an adapter on that base');
    }
  }
}
