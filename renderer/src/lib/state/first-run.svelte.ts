import type { Api, FirstRun, FirstRunSample, TrainingRun, TrainingSettings } from '../../../../preload/contract';
import { messageOf } from './errors';

const MAX_STEPS = 100_000;

/**
 * The first run: the samples registered with the starter model, and the guided first fine-tune (one click, the
 * settings from samples.json; only the number of steps is editable). It remembers the run it started, so that
 * the app can open the chat comparison with the sample's prompt when that run finishes.
 */
export class FirstRunState {
  #api: Api;
  #info = $state.raw<FirstRun | null>(null);
  #datasetId = $state<string | null>(null);
  #dismissed = $state(false);
  #starting = $state(false);
  #error = $state<string | null>(null);
  /** The guided run in progress, with the sample it trains on. */
  #pending = $state.raw<{ runId: string; sample: FirstRunSample } | null>(null);
  /** Bound to the card's steps field, as typed. */
  steps = $state('');

  constructor(api: Api) {
    this.#api = api;
  }

  get guided(): FirstRun['guided'] { return this.#info?.guided ?? null; }
  get samples(): readonly FirstRunSample[] { return this.#info?.samples ?? []; }
  get datasetId(): string | null { return this.#datasetId; }
  get starting(): boolean { return this.#starting; }
  get error(): string | null { return this.#error; }
  get pendingRunId(): string | null { return this.#pending?.runId ?? null; }

  /** The card shows while a guided fine-tune is on offer, none has been started, and the user did not wave it off. */
  readonly offered = $derived(this.#info?.guided != null && this.#pending === null && !this.#dismissed);
  readonly sample = $derived(this.samples.find((s) => s.datasetId === this.#datasetId) ?? null);
  readonly stepsError = $derived.by(() => {
    const n = Number(this.steps.trim());
    return this.steps.trim() !== '' && Number.isInteger(n) && n >= 1 && n <= MAX_STEPS
      ? null : `steps must be a whole number from 1 to ${MAX_STEPS}, got '${this.steps}'`;
  });

  /** What the app offers; a library without the starter resources (or an older main) simply offers nothing. */
  async load(): Promise<void> {
    try {
      const info = await this.#api.invoke('app.firstRun', {});
      this.#info = info;
      this.#datasetId = info.guided?.datasetId ?? info.samples[0]?.datasetId ?? null;
      this.steps = info.guided ? String(info.guided.settings.maxSteps ?? '') : '';
      this.#error = null;
    } catch (error) {
      this.#info = null;
      this.#error = messageOf(error);
    }
  }

  choose(datasetId: string): void {
    if (this.samples.some((s) => s.datasetId === datasetId)) this.#datasetId = datasetId;
  }

  dismiss(): void {
    this.#dismissed = true;
  }

  /** The guided settings with the steps from the field. */
  settings(): TrainingSettings | null {
    const guided = this.guided;
    if (!guided || this.stepsError) return null;
    return { ...guided.settings, maxSteps: Number(this.steps.trim()) };
  }

  adapterName(): string {
    return `${this.sample?.name ?? 'Sample'}: first fine-tune`;
  }

  /** Starts the guided run through train.start; the caller follows it like any other run. */
  async start(): Promise<TrainingRun | null> {
    const guided = this.guided;
    const sample = this.sample;
    const settings = this.settings();
    if (!guided || !sample || !settings || this.#starting) {
      this.#error = this.stepsError ?? (sample ? null : 'Choose a sample dataset.');
      return null;
    }
    this.#starting = true;
    this.#error = null;
    try {
      const run = await this.#api.invoke('train.start', {
        modelId: guided.modelId, datasetId: sample.datasetId, settings, adapterName: this.adapterName(),
      });
      this.#pending = { runId: run.id, sample };
      return run;
    } catch (error) {
      this.#error = messageOf(error);
      return null;
    } finally {
      this.#starting = false;
    }
  }

  /**
   * A run finished: if it is the guided one, the offer ends and its sample is returned (to fill in the chat),
   * else null. A failed or cancelled guided run offers the fine-tune again.
   */
  finished(run: TrainingRun): FirstRunSample | null {
    if (run.id !== this.#pending?.runId) return null;
    const { sample } = this.#pending;
    this.#pending = null;
    if (run.status === 'done') this.#info = this.#info ? { ...this.#info, guided: null } : null;
    return sample;
  }
}
