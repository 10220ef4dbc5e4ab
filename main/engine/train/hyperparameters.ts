/** Training hyperparameters, their defaults (HF Trainer's where it has one) and validation. */
import { TrainError } from './errors';
import { SCHEDULES, type ScheduleKind } from './schedule';

export interface TrainHyperparameters {
  /** Passes over the training rows (ignored when maxSteps is set). */
  readonly epochs: number;
  /** Stop after this many optimizer steps; null trains for `epochs`. */
  readonly maxSteps: number | null;
  readonly batchSize: number;
  /** Micro-batches per optimizer step. */
  readonly gradAccum: number;
  readonly lr: number;
  readonly schedule: ScheduleKind;
  readonly warmupSteps: number;
  readonly weightDecay: number;
  /** Clip gradients to this global L2 norm; 0 disables. */
  readonly maxGradNorm: number;
  readonly seed: number;
  /** Validation every N steps (and at the end); 0 only at the end. */
  readonly evalEvery: number;
  /** Stop after this many evaluations without a better validation loss; 0 never stops early. */
  readonly earlyStoppingPatience: number;
  /** Checkpoint every N steps; 0 never. */
  readonly checkpointEvery: number;
  readonly keepCheckpoints: number;
  /**
   * Activation recomputation (train/recompute.ts): less memory for one more forward pass per block. 'auto' turns it
   * on only when the run would not fit in memory without it (train/memory.ts).
   */
  readonly recompute: boolean | 'auto';
}

export const DEFAULT_HYPERPARAMETERS: TrainHyperparameters = {
  epochs: 3,
  maxSteps: null,
  batchSize: 4,
  gradAccum: 1,
  lr: 2e-4,
  schedule: 'linear',
  warmupSteps: 0,
  weightDecay: 0,
  maxGradNorm: 1,
  seed: 42,
  evalEvery: 0,
  earlyStoppingPatience: 0,
  checkpointEvery: 0,
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
  if (typeof h.lr !== 'number' || !(h.lr > 0) || !Number.isFinite(h.lr)) invalid(`lr must be a positive number, got ${String(h.lr)}`);
  if (!SCHEDULES.includes(h.schedule)) invalid(`schedule must be one of ${SCHEDULES.join(', ')}, got ${JSON.stringify(h.schedule)}`);
  nonNegativeInt('warmupSteps', h.warmupSteps);
  if (!(h.weightDecay >= 0)) invalid(`weightDecay must be >= 0, got ${String(h.weightDecay)}`);
  if (!(h.maxGradNorm >= 0)) invalid(`maxGradNorm must be >= 0, got ${String(h.maxGradNorm)}`);
  if (!Number.isInteger(h.seed)) invalid(`seed must be an integer, got ${String(h.seed)}`);
  nonNegativeInt('evalEvery', h.evalEvery);
  nonNegativeInt('earlyStoppingPatience', h.earlyStoppingPatience);
  nonNegativeInt('checkpointEvery', h.checkpointEvery);
  positiveInt('keepCheckpoints', h.keepCheckpoints);
  if (h.recompute !== true && h.recompute !== false && h.recompute !== 'auto') invalid(`recompute must be true, false or 'auto', got ${JSON.stringify(h.recompute)}`);
  return h;
}
