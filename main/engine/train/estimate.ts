/**
 * What a run will cost, before it starts: trainable parameters, adapter size on disk, peak memory (computed from
 * the shapes: memory.ts, so a model too large is refused before a step runs) and time per epoch, timed on a few
 * micro-steps of real batches (weights left unchanged) once the memory is known to suffice.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CausalLM } from '../models/types';
import { epochBatches, makeBatch } from './batching';
import { resolveHyperparameters, type TrainHyperparameters } from './hyperparameters';
import { assertGradientsRegistered } from './gradients';
import { batchLoss } from './loss';
import { stepsPerEpoch, totalStepsFor } from './loop';
import { assertFits, availableMemoryBytes, baseHolding, estimateMemory, loadedModelPlan, resolveRecompute, type BaseHolding, type MemoryEstimate } from './memory';
import type { TokenizedExample } from './tokenize';

export interface TrainingEstimate {
  readonly trainableParameters: number;
  /** adapter_model.safetensors (F32) plus its header and adapter_config.json, roughly. */
  readonly adapterBytes: number;
  /** Peak resident memory of the training process (memory.ts): base weights, activations, optimizer, runtime. */
  readonly peakMemoryBytes: number;
  readonly memory: MemoryEstimate['parts'];
  /** How the base's linear weights are held, and what BF16, Q8_0 or Q4_0 in the frozen store would take instead. */
  readonly base: BaseHolding;
  /** Memory available when the estimate was made. */
  readonly availableMemoryBytes: number;
  /** Whether the run recomputes activations (asked for, or chosen because the run would not fit otherwise). */
  readonly recompute: boolean;
  readonly secondsPerStep: number;
  readonly stepsPerEpoch: number;
  readonly secondsPerEpoch: number;
  readonly totalSteps: number;
  readonly totalSeconds: number;
  readonly tokensPerEpoch: number;
  readonly calibrationSteps: number;
}

export interface EstimateOptions {
  readonly model: CausalLM;
  readonly variables: ReadonlyMap<string, tf.Variable>;
  readonly rows: readonly TokenizedExample[];
  readonly padId: number;
  readonly hyperparameters?: Partial<TrainHyperparameters>;
  /** Timed micro-steps after one untimed warm-up (default 2; 0 times nothing). */
  readonly calibrationSteps?: number;
  /** Bytes free for this run beyond the loaded model (default: what the system reports available now). */
  readonly availableMemoryBytes?: number;
}

/** Throws TrainError('NOT_ENOUGH_MEMORY') with the numbers when the run cannot fit, before timing anything. */
export async function estimateTraining(options: EstimateOptions): Promise<TrainingEstimate> {
  assertGradientsRegistered();
  const h = resolveHyperparameters(options.hyperparameters);
  const varList = [...options.variables.values()];
  const trainableParameters = varList.reduce((s, v) => s + v.size, 0);
  const seqLen = options.rows.reduce((m, r) => Math.max(m, r.ids.length), 1);
  const available = options.availableMemoryBytes ?? availableMemoryBytes();
  const plan = loadedModelPlan(options.model, options.variables, { batchSize: h.batchSize, seqLen, recompute: false });
  const recompute = resolveRecompute(h.recompute, plan, available);
  const memory = estimateMemory({ ...plan, recompute });
  assertFits({ ...plan, recompute }, available, { resident: true });

  const calibrationSteps = options.calibrationSteps ?? 2;
  const order = epochBatches(options.rows.length, h.batchSize, h.seed, 0);
  const batches = calibrationSteps > 0 ? order.slice(0, calibrationSteps + 1).map((idx) => makeBatch(idx.map((i) => options.rows[i] as TokenizedExample), options.padId)) : [];
  let seconds = 0;
  for (const [i, batch] of batches.entries()) {
    const started = performance.now();
    // Read back so the time includes the device's work (reads are async: webgpu has no synchronous path).
    const results = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => batchLoss(options.model, batch, { recompute }), varList);
      return [value, ...Object.values(grads)];
    });
    try {
      await Promise.all(results.map((t) => t.data()));
    } finally {
      tf.dispose(results);
    }
    if (i > 0) seconds += (performance.now() - started) / 1000; // the first is a warm-up
  }
  const timed = Math.max(0, batches.length - 1);
  const secondsPerMicro = timed > 0 ? seconds / timed : 0;
  const perEpoch = stepsPerEpoch(options.rows.length, h);
  const totalSteps = totalStepsFor(options.rows.length, h);
  const microPerEpoch = Math.ceil(options.rows.length / h.batchSize);
  return {
    trainableParameters,
    adapterBytes: 4 * trainableParameters + 200 * varList.length + 1200,
    peakMemoryBytes: memory.peakBytes,
    memory: memory.parts,
    base: baseHolding(options.model),
    availableMemoryBytes: available,
    recompute,
    secondsPerStep: secondsPerMicro * h.gradAccum,
    stepsPerEpoch: perEpoch,
    secondsPerEpoch: secondsPerMicro * microPerEpoch,
    totalSteps,
    totalSeconds: (secondsPerMicro * microPerEpoch * totalSteps) / Math.max(1, perEpoch),
    tokensPerEpoch: options.rows.reduce((s, r) => s + r.ids.length, 0),
    calibrationSteps: timed,
  };
}
