import type { Api, MetricPoint, TrainingProgress, TrainingRun } from '../../../../preload/contract';
import { messageOf } from './errors';
import { mapOf, setOf, withEntry, withItems } from '../immutable';

/** Curves as columns, the shape uPlot draws: x = step; null where a step had no value. */
export interface Curves {
  readonly steps: readonly number[];
  readonly loss: readonly (number | null)[];
  readonly valLoss: readonly (number | null)[];
  readonly lr: readonly (number | null)[];
}

export interface LiveRun {
  readonly latest: TrainingProgress | null;
  readonly curves: Curves;
  readonly samples: readonly { step: number; text: string }[];
  readonly bestValLoss: number | null;
  /** Evaluations since validation loss last improved: early stopping triggers at the run's patience. */
  readonly evalsWithoutImprovement: number;
}

const EMPTY_CURVES: Curves = { steps: [], loss: [], valLoss: [], lr: [] };

export function emptyLive(): LiveRun {
  return { latest: null, curves: EMPTY_CURVES, samples: [], bestValLoss: null, evalsWithoutImprovement: 0 };
}

/** One progress event folded into a run's live record (pure, so it is tested directly). */
export function foldProgress(live: LiveRun, p: TrainingProgress): LiveRun {
  const c = live.curves;
  const last = c.steps.length - 1;
  // A validation event at the step a training event already reported fills in that row instead of adding one.
  const sameStep = last >= 0 && c.steps[last] === p.step;
  const row = (col: readonly (number | null)[], value: number | null): (number | null)[] =>
    sameStep ? [...col.slice(0, last), value ?? col[last] ?? null] : [...col, value];
  const curves: Curves = {
    steps: sameStep ? c.steps : [...c.steps, p.step],
    loss: row(c.loss, Number.isFinite(p.loss) ? p.loss : null),
    valLoss: row(c.valLoss, p.valLoss ?? null),
    lr: row(c.lr, p.lr),
  };
  let { bestValLoss, evalsWithoutImprovement } = live;
  if (p.valLoss !== undefined) {
    if (bestValLoss === null || p.valLoss < bestValLoss) {
      bestValLoss = p.valLoss;
      evalsWithoutImprovement = 0;
    } else {
      evalsWithoutImprovement += 1;
    }
  }
  const samples = p.sample !== undefined ? [...live.samples, { step: p.step, text: p.sample }] : live.samples;
  return { latest: p, curves, samples, bestValLoss, evalsWithoutImprovement };
}

/** Recorded points first, then the live ones past the last recorded step. */
export function withHistory(live: LiveRun, history: Curves): LiveRun {
  const last = history.steps.at(-1) ?? -Infinity;
  const keep = live.curves.steps.map((step, i) => (step > last ? i : -1)).filter((i) => i >= 0);
  const pick = <T>(col: readonly T[]) => keep.map((i) => col[i]!);
  return {
    ...live,
    curves: {
      steps: [...history.steps, ...pick(live.curves.steps)],
      loss: [...history.loss, ...pick(live.curves.loss)],
      valLoss: [...history.valLoss, ...pick(live.curves.valLoss)],
      lr: [...history.lr, ...pick(live.curves.lr)],
    },
  };
}

export function curvesFromMetrics(points: readonly MetricPoint[]): Curves {
  const sorted = [...points].sort((a, b) => a.step - b.step);
  return {
    steps: sorted.map((p) => p.step),
    loss: sorted.map((p) => p.loss ?? null),
    valLoss: sorted.map((p) => p.valLoss ?? null),
    lr: sorted.map((p) => p.lr ?? null),
  };
}

/** Newest first, whatever order the runs arrived in: the list never flips as runs start, finish or reload. */
export function byNewest(runs: readonly TrainingRun[]): TrainingRun[] {
  return [...runs].sort((a, b) => (b.startedAt ?? '\uffff').localeCompare(a.startedAt ?? '\uffff') || b.id.localeCompare(a.id));
}

/** A stopped run that can go on from its checkpoint (or from the start where it wrote none). */
export function isResumable(run: TrainingRun): boolean {
  return run.status === 'cancelled' || run.status === 'interrupted';
}

/**
 * Why a resumable run stopped, in a sentence: cancelled; the app closed while it trained (start-up found it
 * running); or its engine died under it (main's error, which starts with the error's code: out of memory, say).
 */
export function whyStopped(run: TrainingRun): string {
  if (run.status === 'cancelled') return 'This run was cancelled.';
  return run.error && /^\[[A-Z_]+\]/.test(run.error) ? `The engine stopped while this run trained: ${run.error}` : 'The app stopped while this run trained.';
}

/** Training runs, their live progress (events keep arriving while the user is elsewhere), cancel, resume, delete. */
export class TrainingState {
  #api: Api;
  #runs = $state.raw<readonly TrainingRun[]>([]);
  #live = $state.raw<ReadonlyMap<string, LiveRun>>(mapOf());
  #selectedRunId = $state<string | null>(null);
  /** Adapter names of runs started in this session (TrainingRun carries no name until it has a version). */
  #names = $state.raw<ReadonlyMap<string, string>>(mapOf());
  #error = $state<string | null>(null);
  #finishedListeners: ((run: TrainingRun) => void)[] = [];
  #historyLoaded: ReadonlySet<string> = setOf();

  constructor(api: Api) {
    this.#api = api;
    api.on('train.progress', (p) => this.#onProgress(p));
    api.on('train.finished', ({ run }) => this.#onFinished(run));
  }

  get runs(): readonly TrainingRun[] { return this.#runs; }
  get selectedRunId(): string | null { return this.#selectedRunId; }
  get error(): string | null { return this.#error; }

  readonly selectedRun = $derived(this.#runs.find((r) => r.id === this.#selectedRunId) ?? null);
  readonly activeRuns = $derived(this.#runs.filter((r) => r.status === 'running' || r.status === 'queued'));

  liveOf(runId: string): LiveRun {
    return this.#live.get(runId) ?? emptyLive();
  }

  /** Did the run stop on early stopping? Done before its planned steps, with a patience set. */
  stoppedEarly(run: TrainingRun): boolean {
    const latest = this.liveOf(run.id).latest;
    return run.status === 'done' && run.settings.earlyStoppingPatience !== undefined && latest !== null
      && latest.step < latest.totalSteps;
  }

  onFinished(listener: (run: TrainingRun) => void): void {
    this.#finishedListeners.push(listener);
  }

  async refresh(): Promise<void> {
    try {
      this.#runs = byNewest(await this.#api.invoke('runs.list', {}));
      this.#error = null;
    } catch (error) {
      this.#error = messageOf(error);
    }
  }

  /**
   * Selecting a run loads its recorded metrics once (after a reload, a running run's history is in the store
   * while its new steps arrive as events); events that came meanwhile are kept after the recorded points.
   */
  async select(runId: string | null): Promise<void> {
    this.#selectedRunId = runId;
    if (!runId || this.#historyLoaded.has(runId)) return;
    try {
      const metrics = await this.#api.invoke('runs.metrics', { runId });
      this.#historyLoaded = withItems(this.#historyLoaded, [runId], true);
      this.#setLive(runId, withHistory(this.liveOf(runId), curvesFromMetrics(metrics)));
    } catch (error) {
      this.#error = messageOf(error);
    }
  }

  /** The name of the adapter a run trains: as the wizard started it in this session, else as main lists it. */
  nameOf(runId: string): string | undefined {
    return this.#names.get(runId) ?? (this.#runs.find((r) => r.id === runId)?.adapterName || undefined);
  }

  /** A run the wizard just started: shown at once, before its first event. */
  track(run: TrainingRun, adapterName?: string): void {
    if (adapterName) this.#names = withEntry(this.#names, run.id, adapterName);
    this.#runs = byNewest([run, ...this.#runs.filter((r) => r.id !== run.id)]);
    this.#setLive(run.id, emptyLive());
    this.#historyLoaded = withItems(this.#historyLoaded, [run.id], true);
    this.#selectedRunId = run.id;
  }

  async cancel(runId: string): Promise<void> {
    try {
      await this.#api.invoke('train.cancel', { runId });
      await this.refresh();
    } catch (error) {
      this.#error = messageOf(error);
    }
  }

  /**
   * Continues a cancelled or interrupted run: main cuts its recorded curve back to the checkpoint, so the live
   * record restarts from that history and the resumed steps follow on the same curve.
   */
  async resume(runId: string): Promise<boolean> {
    this.#error = null;
    try {
      const run = await this.#api.invoke('train.resume', { runId });
      const metrics = await this.#api.invoke('runs.metrics', { runId });
      this.#runs = byNewest(this.#runs.map((r) => (r.id === runId ? run : r)));
      this.#setLive(runId, withHistory(emptyLive(), curvesFromMetrics(metrics)));
      this.#historyLoaded = withItems(this.#historyLoaded, [runId], true);
      this.#selectedRunId = runId;
      return true;
    } catch (error) {
      this.#error = messageOf(error);
      return false;
    }
  }

  async deleteRun(runId: string): Promise<void> {
    this.#error = null;
    try {
      await this.#api.invoke('runs.delete', { runId });
      if (this.#selectedRunId === runId) this.#selectedRunId = null;
      this.#runs = this.#runs.filter((r) => r.id !== runId);
    } catch (error) {
      this.#error = messageOf(error);
    }
  }

  #setLive(runId: string, live: LiveRun): void {
    this.#live = withEntry(this.#live, runId, live);
  }

  #onProgress(p: TrainingProgress): void {
    this.#setLive(p.runId, foldProgress(this.liveOf(p.runId), p));
    const run = this.#runs.find((r) => r.id === p.runId);
    if (run && run.status !== 'running') this.#runs = this.#runs.map((r) => (r.id === p.runId ? { ...r, status: 'running' } : r));
    if (!run) void this.refresh();
  }

  #onFinished(run: TrainingRun): void {
    this.#runs = byNewest(this.#runs.some((r) => r.id === run.id)
      ? this.#runs.map((r) => (r.id === run.id ? run : r))
      : [run, ...this.#runs]);
    for (const listener of this.#finishedListeners) listener(run);
  }
}
