/**
 * The training loop, for LoRA (the trainable set is an adapter's A and B) or full fine-tuning (every weight):
 * AdamW with a warmup schedule, gradient accumulation, clipping by global norm, validation with perplexity,
 * early stopping that keeps the best weights, atomic checkpoints, exact resume and cancellation between steps.
 * Deterministic for a seed on a given backend: batch order and dropout masks derive from (seed, position).
 */
import * as tf from '@tensorflow/tfjs-core';
import { activeFrozenStore } from '../backend/frozen';
import { readScalar } from '../backend/read';
import type { CausalLM } from '../models/types';
import { seedLoraDropout } from '../lora/linear';
import type { F32Tensor, FolderFile } from '../lora/peft-io';
import { epochBatches, makeBatch, type Batch } from './batching';
import { listCheckpoints, restoreCheckpoint, variableTensors, writeCheckpoint, type EvalRecord, type StepRecord, type TrainerState } from './training-checkpoint';
import { TrainError } from './errors';
import { assertGradientsRegistered } from './gradients';
import { resolveHyperparameters, type TrainHyperparameters } from './hyperparameters';
import { batchLoss, batchNllSum } from './loss';
import { assertFits, availableMemoryBytes, loadedModelPlan, outOfMemoryError, resolveRecompute } from './memory';
import { AdamW, clipByGlobalNorm } from './optimizer';
import { hashSeed } from './rng';
import { learningRateAt } from './schedule';
import type { TokenizedExample } from './tokenize';

export interface TrainProgress {
  readonly kind: 'step' | 'eval' | 'checkpoint';
  readonly step: number;
  readonly totalSteps: number;
  /** Fractional epoch: 1.5 is halfway through the second pass. */
  readonly epoch: number;
  readonly loss: number;
  readonly valLoss: number | null;
  readonly valPerplexity: number | null;
  readonly lr: number;
  readonly gradNorm: number;
  readonly tokensPerSecond: number;
  readonly etaSeconds: number;
  /** Bytes the model and training hold now: tensors (the backend's own count) and the frozen-weight store's. */
  readonly memoryBytes: number;
  readonly checkpoint?: string;
  /** On 'eval' events when `sampleAtEval` is given: what the model generates now (see sample.ts). */
  readonly sample?: string;
}

export interface LoopOptions {
  readonly model: CausalLM;
  /** What trains, by a stable name: an adapter's variables, or every weight for full fine-tuning. */
  readonly variables: ReadonlyMap<string, tf.Variable>;
  readonly trainRows: readonly TokenizedExample[];
  readonly valRows?: readonly TokenizedExample[];
  readonly padId: number;
  readonly hyperparameters?: Partial<TrainHyperparameters>;
  readonly checkpointDir?: string;
  /** A checkpoint-<step> folder to continue from. */
  readonly resumeFrom?: string;
  /** Files to add to each checkpoint (a PEFT adapter of the current weights), made on demand. */
  readonly checkpointFiles?: () => Promise<Map<string, FolderFile>>;
  readonly signal?: AbortSignal;
  readonly onProgress?: (event: TrainProgress) => void;
  /**
   * Called at each evaluation, after the validation loss, with the current weights in place: its text goes out
   * as `sample` on that 'eval' event (a greedy continuation of a fixed prompt, say). A failure is not fatal.
   */
  readonly sampleAtEval?: (step: number) => Promise<string> | string;
  /**
   * Awaited after every step, between two steps: the app's host serves chat here while a run trains. Whatever it
   * does must leave the trainable weights and the layers' active adapters as it found them.
   */
  readonly betweenSteps?: () => Promise<void>;
}

export interface LoopResult {
  readonly status: 'completed' | 'early-stopped' | 'cancelled';
  readonly steps: number;
  readonly totalSteps: number;
  readonly hyperparameters: TrainHyperparameters;
  /** Mean loss of the last step, and over the last epoch's worth of steps (at most 50). */
  readonly trainLoss: number | null;
  readonly recentTrainLoss: number | null;
  readonly valLoss: number | null;
  readonly bestValLoss: number | null;
  readonly bestStep: number | null;
  readonly history: readonly StepRecord[];
  readonly evals: readonly EvalRecord[];
  readonly tokensPerSecond: number;
  readonly seconds: number;
  readonly lastCheckpoint: string | null;
}

export function stepsPerEpoch(rows: number, h: Pick<TrainHyperparameters, 'batchSize' | 'gradAccum'>): number {
  return Math.ceil(Math.ceil(rows / h.batchSize) / h.gradAccum);
}

export function totalStepsFor(rows: number, h: TrainHyperparameters): number {
  return h.maxSteps ?? stepsPerEpoch(rows, h) * h.epochs;
}

/** Validation loss (token-weighted mean nll over all rows) and perplexity = exp(loss). */
export async function evaluateRows(model: CausalLM, rows: readonly TokenizedExample[], padId: number, batchSize: number): Promise<{ loss: number; perplexity: number; tokens: number }> {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < rows.length; i += batchSize) {
    const batch = makeBatch(rows.slice(i, i + batchSize), padId);
    const r = batchNllSum(model, batch);
    sum += await readScalar(r.sum);
    count += r.count;
  }
  const loss = count > 0 ? sum / count : Number.NaN;
  return { loss, perplexity: Math.exp(loss), tokens: count };
}

function targetCount(batch: Batch): number {
  let n = 0;
  for (const w of batch.weights) n += w;
  return n;
}

async function snapshot(variables: ReadonlyMap<string, tf.Variable>): Promise<Map<string, F32Tensor>> {
  const copy = new Map<string, F32Tensor>();
  for (const [name, t] of await variableTensors(variables)) copy.set(name, { data: t.data.slice(), shape: t.shape });
  return copy;
}

function restoreSnapshot(variables: ReadonlyMap<string, tf.Variable>, saved: ReadonlyMap<string, F32Tensor>): void {
  for (const [name, v] of variables) {
    const s = saved.get(name);
    if (s) tf.tidy(() => v.assign(tf.tensor(s.data, v.shape)));
  }
}

/** Runs the loop; resolves with the outcome (cancellation is an outcome, not an error). */
export async function trainLoop(options: LoopOptions): Promise<LoopResult> {
  assertGradientsRegistered();
  const h = resolveHyperparameters(options.hyperparameters);
  const { model, variables, trainRows, padId } = options;
  const valRows = options.valRows ?? [];
  if (trainRows.length === 0) throw new TrainError('EMPTY_DATASET', 'no training rows: the dataset has no usable records');
  if (variables.size === 0) throw new TrainError('INVALID_TRAIN_CONFIG', 'nothing to train: the trainable set is empty');
  const totalSteps = totalStepsFor(trainRows.length, h);
  const varList = [...variables.values()];
  const nameOf = new Map(varList.map((v, i) => [v.name, [...variables.keys()][i] as string]));
  const optimizer = new AdamW(variables, { weightDecay: h.weightDecay });
  const seqLen = trainRows.reduce((m, r) => Math.max(m, r.ids.length), 1);
  const plan = loadedModelPlan(model, variables, { batchSize: h.batchSize, seqLen, recompute: false });
  const available = availableMemoryBytes();
  const recompute = resolveRecompute(h.recompute, plan, available);
  assertFits({ ...plan, recompute }, available, { resident: true });

  let state: TrainerState = {
    version: 1, step: 0, epoch: 0, batchInEpoch: 0, seed: h.seed, optimizerStep: 0, tokensSeen: 0,
    history: [], evals: [], bestValLoss: null, bestStep: null, evalsWithoutImprovement: 0, variableNames: [...variables.keys()],
  };
  let best: Map<string, F32Tensor> | null = null;
  if (options.resumeFrom) {
    const restored = restoreCheckpoint(options.resumeFrom, variables, optimizer);
    if (restored.state.seed !== h.seed) {
      throw new TrainError('INVALID_CHECKPOINT', `${options.resumeFrom} was trained with seed ${restored.state.seed}, this run has seed ${h.seed}: resume with the same seed`);
    }
    state = restored.state;
    best = restored.best;
  }

  const started = performance.now();
  const startStep = state.step;
  let tokensThisRun = 0;
  let lastCheckpoint: string | null = options.resumeFrom ?? null;
  let status: LoopResult['status'] = 'completed';
  let order = epochBatches(trainRows.length, h.batchSize, h.seed, state.epoch);
  const history = [...state.history];
  const evals = [...state.evals];

  const progress = (kind: TrainProgress['kind'], record: Partial<TrainProgress> & { loss: number; lr: number; gradNorm: number }) => {
    const seconds = (performance.now() - started) / 1000;
    const done = state.step - startStep;
    options.onProgress?.({
      kind, step: state.step, totalSteps,
      epoch: state.epoch + state.batchInEpoch / Math.max(1, order.length),
      valLoss: null, valPerplexity: null,
      tokensPerSecond: seconds > 0 ? tokensThisRun / seconds : 0,
      etaSeconds: done > 0 ? (seconds / done) * (totalSteps - state.step) : 0,
      // The tensors' bytes and the frozen weights kept outside them (the native or GPU store), where a store holds them.
      memoryBytes: tf.memory().numBytes + (activeFrozenStore()?.liveBytes() ?? 0),
      ...record,
    });
  };

  const sampleNow = async (): Promise<string | undefined> => {
    if (!options.sampleAtEval) return undefined;
    try {
      return await options.sampleAtEval(state.step);
    } catch {
      return undefined; // a sample is a courtesy: a failed one must not end the run
    }
  };

  const runEval = async (): Promise<boolean> => {
    const { loss, perplexity } = await evaluateRows(model, valRows, padId, h.batchSize);
    const sample = await sampleNow();
    evals.push({ step: state.step, valLoss: loss, valPerplexity: perplexity, ...(sample !== undefined ? { sample } : {}) });
    let stop = false;
    if (state.bestValLoss === null || loss < state.bestValLoss) {
      state = { ...state, bestValLoss: loss, bestStep: state.step, evalsWithoutImprovement: 0 };
      // Kept only where the run ends with it: a copy of every trainable weight per improvement.
      if (h.keepWeights === 'best') best = await snapshot(variables);
    } else {
      state = { ...state, evalsWithoutImprovement: state.evalsWithoutImprovement + 1 };
      stop = h.earlyStoppingPatience > 0 && state.evalsWithoutImprovement >= h.earlyStoppingPatience;
    }
    const last = history[history.length - 1];
    progress('eval', {
      loss: last?.loss ?? Number.NaN, lr: last?.lr ?? 0, gradNorm: last?.gradNorm ?? 0, valLoss: loss, valPerplexity: perplexity,
      ...(sample !== undefined ? { sample } : {}),
    });
    return stop;
  };

  while (state.step < totalSteps) {
    if (options.signal?.aborted) {
      status = 'cancelled';
      // Cancelled between steps: a checkpoint here lets a resume go on from this very step, not the last cadence one.
      const checkpointed = lastCheckpoint !== null && lastCheckpoint.endsWith(`checkpoint-${state.step}`);
      if (options.checkpointDir && h.checkpointEvery > 0 && state.step > 0 && !checkpointed) {
        lastCheckpoint = await writeCheckpoint(options.checkpointDir, {
          state: { ...state, history, evals }, variables, optimizer, best, extraFiles: await options.checkpointFiles?.(),
        }, h.keepCheckpoints);
        const last = history[history.length - 1];
        progress('checkpoint', { loss: last?.loss ?? Number.NaN, lr: last?.lr ?? 0, gradNorm: last?.gradNorm ?? 0, checkpoint: lastCheckpoint });
      }
      break;
    }
    // The micro-batches of this step: up to gradAccum from the current epoch's order.
    if (state.batchInEpoch >= order.length) {
      state = { ...state, epoch: state.epoch + 1, batchInEpoch: 0 };
      order = epochBatches(trainRows.length, h.batchSize, h.seed, state.epoch);
    }
    const micro = order.slice(state.batchInEpoch, state.batchInEpoch + h.gradAccum).map((idx) => makeBatch(idx.map((i) => trainRows[i] as TokenizedExample), padId));
    const targets = micro.reduce((s, b) => s + targetCount(b), 0);
    let accumulated: Map<string, tf.Tensor> | null = null;
    let loss = 0;
    let tokens = 0;
    for (const [m, batch] of micro.entries()) {
      seedLoraDropout(hashSeed(h.seed, state.step, m));
      const share = targetCount(batch) / Math.max(1, targets);
      let result: ReturnType<typeof tf.variableGrads>;
      try {
        result = tf.variableGrads(() => tf.tidy(() => tf.mul(batchLoss(model, batch, { recompute }), share) as tf.Scalar), varList);
      } catch (error) {
        if (accumulated) tf.dispose([...(accumulated as Map<string, tf.Tensor>).values()]);
        optimizer.dispose();
        throw outOfMemoryError(error, state.step + 1) ?? error;
      }
      const { value, grads } = result;
      tokens += batch.tokens;
      const named = new Map(Object.entries(grads).map(([k, g]) => [nameOf.get(k) as string, g]));
      if (accumulated === null) accumulated = named;
      else {
        const acc: Map<string, tf.Tensor> = accumulated;
        for (const [k, g] of named) {
          const sum = tf.add(acc.get(k) as tf.Tensor, g);
          tf.dispose([acc.get(k) as tf.Tensor, g]);
          acc.set(k, sum);
        }
      }
      // Read after the gradients are queued: the device works on them while the loss comes back.
      loss += await readScalar(value);
    }
    if (!Number.isFinite(loss)) {
      if (accumulated) tf.dispose([...(accumulated as Map<string, tf.Tensor>).values()]);
      throw new TrainError('NON_FINITE_LOSS', `the loss became ${loss} at step ${state.step + 1}; lower the learning rate (now ${h.learningRate}) or check the data`);
    }
    const { norm, clipped } = await clipByGlobalNorm(accumulated as unknown as Map<string, tf.Tensor>, h.maxGradNorm);
    const lr = learningRateAt(state.step, { kind: h.scheduler, lr: h.learningRate, warmupSteps: h.warmupSteps, totalSteps });
    optimizer.apply(clipped, lr);
    tf.dispose([...clipped.values()]);
    tokensThisRun += tokens;
    history.push({ step: state.step + 1, loss, lr, gradNorm: norm, tokens });
    state = {
      ...state,
      step: state.step + 1,
      batchInEpoch: state.batchInEpoch + micro.length,
      optimizerStep: optimizer.stepCount,
      tokensSeen: state.tokensSeen + tokens,
    };
    progress('step', { loss, lr, gradNorm: norm });

    let stop = false;
    const finalStep = state.step >= totalSteps;
    if (valRows.length > 0 && ((h.evalEvery > 0 && state.step % h.evalEvery === 0) || finalStep)) stop = await runEval();
    if (options.checkpointDir && h.checkpointEvery > 0 && state.step % h.checkpointEvery === 0) {
      lastCheckpoint = await writeCheckpoint(options.checkpointDir, {
        state: { ...state, history, evals }, variables, optimizer, best, extraFiles: await options.checkpointFiles?.(),
      }, h.keepCheckpoints);
      progress('checkpoint', { loss, lr, gradNorm: norm, checkpoint: lastCheckpoint });
    }
    if (!finalStep) await options.betweenSteps?.();
    if (stop) {
      status = 'early-stopped';
      break;
    }
  }

  // 'best' with validation: the snapshot of the lowest validation loss goes back in (best is null without validation).
  if (status !== 'cancelled' && h.keepWeights === 'best' && best) restoreSnapshot(variables, best);
  optimizer.dispose();
  const seconds = (performance.now() - started) / 1000;
  const recent = history.slice(-Math.min(50, Math.max(1, stepsPerEpoch(trainRows.length, h))));
  const lastEval = evals[evals.length - 1];
  return {
    status,
    steps: state.step,
    totalSteps,
    hyperparameters: h,
    trainLoss: history[history.length - 1]?.loss ?? null,
    recentTrainLoss: recent.length > 0 ? recent.reduce((s, r) => s + r.loss, 0) / recent.length : null,
    valLoss: lastEval?.valLoss ?? null,
    bestValLoss: state.bestValLoss,
    bestStep: state.bestStep,
    history,
    evals,
    tokensPerSecond: seconds > 0 ? tokensThisRun / seconds : 0,
    seconds,
    lastCheckpoint: lastCheckpoint ?? (options.checkpointDir ? latestCheckpoint(options.checkpointDir) : null),
  };
}

export function latestCheckpoint(dir: string): string | null {
  const steps = listCheckpoints(dir);
  const last = steps[steps.length - 1];
  return last === undefined ? null : `${dir}/checkpoint-${last}`;
}
