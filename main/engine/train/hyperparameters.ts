/**
 * Training hyperparameters, their defaults (HF Trainer's where it has one) and validation. The names are the
 * contract's (preload/contract TrainingSettings), so the app's settings reach the loop as they are.
 */
import { TrainError } from './errors';
import { SCHEDULES, type ScheduleKind } from './schedule';

export type RecomputeSetting = 'auto' | 'on' | 'off';
export const RECOMPUTE_SETTINGS: readonly RecomputeSetting[] = ['auto', 'on', 'off'];

/** Which weights a run ends with: those of its lowest validation loss, or its last step's. */
export type KeepWeights = 'best' | 'last';
export const KEEP_WEIGHTS: readonly KeepWeights[] = ['best', 'last'];

export interface TrainHyperparameters {
  /** Passes over the training rows (ignored when maxSteps is set). */
  readonly epochs: number;
  /** Stop after this many optimizer steps; null trains for `epochs`. */
  readonly maxSteps: number | null;
  readonly batchSize: number;
  /** Micro-batches per optimizer step. */
  readonly gradAccum: number;
  /** Peak learning rate (the schedule scales it per step). */
  readonly learningRate: number;
  readonly scheduler: ScheduleKind;
  readonly warmupSteps: number;
  readonly weightDecay: number;
  /** Clip gradients to this global L2 norm; 0 disables. */
  readonly maxGradNorm: number;
  readonly seed: number;
  /** Validation every N steps (and at the end); 0 only at the end. */
  readonly evalEvery: number;
  /** Stop after this many evaluations without a better validation loss; 0 never stops early. */
  readonly earlyStoppingPatience: number;
  /**
   * 'best' puts the weights of the lowest validation loss back at the end (where the run has validation): what
   * generalizes to new prompts. 'last' keeps the last step's: what has learned the training rows themselves (a
   * small set of facts to be recalled), which validation on other rows cannot rate.
   */
  readonly keepWeights: KeepWeights;
  /** Checkpoint every N steps (where the run has a checkpoint folder); 0 never. */
  readonly checkpointEvery: number;
  readonly keepCheckpoints: number;
  /**
   * Activation recomputation (train/recompute.ts): less memory for one more forward pass per block. 'auto' turns it
   * on only when the run would not fit in memory without it (train/memory.ts).
   */
  readonly recompute: RecomputeSetting;
}

export const DEFAULT_HYPERPARAMETERS: TrainHyperparameters = {
  epochs: 3,
  maxSteps: null,
  batchSize: 4,
  gradAccum: 1,
  learningRate: 2e-4,
  scheduler: 'linear',
  warmupSteps: 0,
  weightDecay: 0,
  maxGradNorm: 1,
  seed: 42,
  evalEvery: 0,
  earlyStoppingPatience: 0,
  keepWeights: 'best',
  checkpointEvery: 100,
  keepCheckpoints: 2,
  recompute: 'auto',
};

function invalid(message: string): never {
  throw new TrainError('INVALID_TRAIN_CONFIG', message);
}

function positiveInt(name: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) invalid(`${name} must be a positive integer, got ${String(value)}`);
}

function nonNegativeInt(name: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) invalid(`${name} must be a non-negative integer, got ${String(value)}`);
}

export function resolveHyperparameters(partial: Partial<TrainHyperparameters> = {}): TrainHyperparameters {
  const h: TrainHyperparameters = { ...DEFAULT_HYPERPARAMETERS, ...partial };
  positiveInt('epochs', h.epochs);
  if (h.maxSteps !== null) positiveInt('maxSteps', h.maxSteps);
  positiveInt('batchSize', h.batchSize);
  positiveInt('gradAccum', h.gradAccum);
  if (typeof h.learningRate !== 'number' || !(h.learningRate > 0) || !Number.isFinite(h.learningRate)) invalid(`learningRate must be a positive number, got ${String(h.learningRate)}`);
  if (!SCHEDULES.includes(h.scheduler)) invalid(`scheduler must be one of ${SCHEDULES.join(', ')}, got ${JSON.stringify(h.scheduler)}`);
  nonNegativeInt('warmupSteps', h.warmupSteps);
  if (!(h.weightDecay >= 0)) invalid(`weightDecay must be >= 0, got ${String(h.weightDecay)}`);
  if (!(h.maxGradNorm >= 0)) invalid(`maxGradNorm must be >= 0, got ${String(h.maxGradNorm)}`);
  if (!Number.isInteger(h.seed)) invalid(`seed must be an integer, got ${String(h.seed)}`);
  nonNegativeInt('evalEvery', h.evalEvery);
  nonNegativeInt('earlyStoppingPatience', h.earlyStoppingPatience);
  if (!KEEP_WEIGHTS.includes(h.keepWeights)) invalid(`keepWeights must be one of ${KEEP_WEIGHTS.join(', ')}, got ${JSON.stringify(h.keepWeights)}`);
  nonNegativeInt('checkpointEvery', h.checkpointEvery);
  positiveInt('keepCheckpoints', h.keepCheckpoints);
  if (!RECOMPUTE_SETTINGS.includes(h.recompute)) invalid(`recompute must be one of ${RECOMPUTE_SETTINGS.join(', ')}, got ${JSON.stringify(h.recompute)}`);
  return h;
}
