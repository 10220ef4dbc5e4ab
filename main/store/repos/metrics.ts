/**
 * Step series of a run. The training loop reports every step; `append` takes a batch in one transaction through
 * statements prepared once, so thousands of points cost one fsync. A step reported twice (the val loss arrives
 * after the train loss) merges: a value given replaces, a value absent keeps what was there.
 */
import type Database from 'better-sqlite3';
import { StoreError, notFound } from '../errors';
import { compact, optional } from '../json';
import type { MetricRow, RunMetricPoint } from '../types';
import type { StoreContext } from './context';

type MetricParams = Omit<MetricRow, 'run_id'> & { run_id: string };

/** Absent values are left out (not undefined). Written out by hand: this runs once per point of every chart. */
export function toPoint(row: MetricRow): RunMetricPoint {
  const point: { -readonly [K in keyof RunMetricPoint]: RunMetricPoint[K] } = { step: row.step };
  if (row.loss !== null) point.loss = row.loss;
  if (row.val_loss !== null) point.valLoss = row.val_loss;
  if (row.lr !== null) point.lr = row.lr;
  if (row.tokens_per_second !== null) point.tokensPerSecond = row.tokens_per_second;
  if (row.grad_norm !== null) point.gradNorm = row.grad_norm;
  if (row.epoch !== null) point.epoch = row.epoch;
  return point;
}

export interface MetricsSummary {
  readonly steps: number;
  readonly trainLoss?: number;
  readonly valLoss?: number;
  readonly bestValLoss?: number;
}

export class MetricsRepo {
  private readonly upsert: Database.Statement<MetricParams>;
  private readonly advance: Database.Statement<[number, string]>;
  private readonly listAll: Database.Statement<[string, number]>;
  private readonly runExists: Database.Statement<[string]>;
  private readonly appendBatch: (runId: string, points: readonly RunMetricPoint[]) => void;

  constructor(private readonly ctx: StoreContext) {
    this.upsert = ctx.db.prepare(`INSERT INTO run_metrics (run_id, step, loss, val_loss, lr, tokens_per_second,
      grad_norm, epoch) VALUES (@run_id, @step, @loss, @val_loss, @lr, @tokens_per_second, @grad_norm, @epoch)
      ON CONFLICT (run_id, step) DO UPDATE SET
        loss = COALESCE(excluded.loss, loss), val_loss = COALESCE(excluded.val_loss, val_loss),
        lr = COALESCE(excluded.lr, lr), tokens_per_second = COALESCE(excluded.tokens_per_second, tokens_per_second),
        grad_norm = COALESCE(excluded.grad_norm, grad_norm), epoch = COALESCE(excluded.epoch, epoch)`);
    this.advance = ctx.db.prepare('UPDATE training_runs SET step = MAX(step, ?) WHERE id = ?');
    this.runExists = ctx.db.prepare('SELECT 1 FROM training_runs WHERE id = ?');
    this.listAll = ctx.db.prepare(`SELECT run_id, step, loss, val_loss, lr, tokens_per_second, grad_norm, epoch
      FROM run_metrics WHERE run_id = ? AND step >= ? ORDER BY step`);
    this.appendBatch = ctx.db.transaction((runId: string, points: readonly RunMetricPoint[]) => {
      let last = 0;
      for (const p of points) {
        this.upsert.run(toParams(runId, p));
        last = Math.max(last, p.step);
      }
      this.advance.run(last, runId);
    });
  }

  /** Appends (or merges) points of one run atomically: readers see all of the batch or none of it. */
  append(runId: string, points: readonly RunMetricPoint[]): void {
    if (points.length === 0) return;
    for (const p of points) checkPoint(p);
    if (!this.runExists.get(runId)) throw notFound('training run', runId);
    this.appendBatch(runId, points);
  }

  /**
   * The series in step order. With `maxPoints`, every k-th point is kept (and the last, and every point with a
   * val loss, which are sparse), so a chart of a 100k-step run stays light.
   */
  list(runId: string, options: { fromStep?: number; maxPoints?: number } = {}): RunMetricPoint[] {
    const fromStep = options.fromStep ?? 0;
    const { n } = this.ctx.db.prepare('SELECT COUNT(*) AS n FROM run_metrics WHERE run_id = ? AND step >= ?')
      .get(runId, fromStep) as { n: number };
    const every = options.maxPoints && n > options.maxPoints ? Math.ceil(n / options.maxPoints) : 1;
    if (every === 1) {
      return (this.listAll.all(runId, fromStep) as MetricRow[]).map(toPoint);
    }
    const rows = this.ctx.db.prepare(`SELECT run_id, step, loss, val_loss, lr, tokens_per_second, grad_norm, epoch
      FROM (SELECT *, ROW_NUMBER() OVER (ORDER BY step) - 1 AS rn FROM run_metrics WHERE run_id = ? AND step >= ?)
      WHERE rn % ? = 0 OR rn = ? - 1 OR val_loss IS NOT NULL ORDER BY step`).all(runId, fromStep, every, n) as MetricRow[];
    return rows.map(toPoint);
  }

  /** Last train loss, last and best val loss, and the last step: what a version records as its metrics. */
  summary(runId: string): MetricsSummary {
    const row = this.ctx.db.prepare(`SELECT
        (SELECT MAX(step) FROM run_metrics WHERE run_id = @id) AS steps,
        (SELECT loss FROM run_metrics WHERE run_id = @id AND loss IS NOT NULL ORDER BY step DESC LIMIT 1) AS loss,
        (SELECT val_loss FROM run_metrics WHERE run_id = @id AND val_loss IS NOT NULL ORDER BY step DESC LIMIT 1)
          AS val_loss,
        (SELECT MIN(val_loss) FROM run_metrics WHERE run_id = @id) AS best_val`).get({ id: runId }) as
      { steps: number | null; loss: number | null; val_loss: number | null; best_val: number | null };
    return compact({
      steps: row.steps ?? 0,
      trainLoss: optional(row.loss),
      valLoss: optional(row.val_loss),
      bestValLoss: optional(row.best_val),
    });
  }
}

function toParams(runId: string, p: RunMetricPoint): MetricParams {
  return {
    run_id: runId,
    step: p.step,
    loss: p.loss ?? null,
    val_loss: p.valLoss ?? null,
    lr: p.lr ?? null,
    tokens_per_second: p.tokensPerSecond ?? null,
    grad_norm: p.gradNorm ?? null,
    epoch: p.epoch ?? null,
  };
}

function checkPoint(p: RunMetricPoint): void {
  if (!Number.isSafeInteger(p.step) || p.step < 0) {
    throw new StoreError('INVALID_INPUT', `metric step must be a non-negative integer, got ${p.step}`);
  }
  // NaN would be stored as NULL by SQLite and silently vanish from the curve; a diverged loss is Infinity-free too.
  for (const [field, value] of Object.entries(p)) {
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw new StoreError('INVALID_INPUT', `metric ${field} at step ${p.step} must be finite, got ${value}`);
    }
  }
}
