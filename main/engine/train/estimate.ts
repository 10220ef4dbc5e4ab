/**
 * What a run will cost, before it starts: trainable parameters, adapter size on disk, peak tensor memory and
 * time per epoch, measured by timing a few forward + backward passes on real batches (weights left unchanged).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CausalLM } from '../models/types';
import { epochBatches, makeBatch } from './batching';
import { resolveHyperparameters, type TrainHyperparameters } from './hyperparameters';
import { assertGradientsRegistered } from './gradients';
import { batchLoss } from './loss';
import { stepsPerEpoch, totalStepsFor } from './loop';
import type { TokenizedExample } from './tokenize';

export interface TrainingEstimate {
  readonly trainableParameters: number;
  /** adapter_model.safetensors (F32) plus its header and adapter_config.json, roughly. */
  readonly adapterBytes: number;
  /** Peak bytes held by tensors during a training micro-step (weights, activations, gradients) plus AdamW's two moments. */
  readonly peakMemoryBytes: number;
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
  /** Timed micro-steps after one untimed warm-up (default 2). */
  readonly calibrationSteps?: number;
}

export async function estimateTraining(options: EstimateOptions): Promise<TrainingEstimate> {
  assertGradientsRegistered();
  const h = resolveHyperparameters(options.hyperparameters);
  const varList = [...options.variables.values()];
  const trainableParameters = varList.reduce((s, v) => s + v.size, 0);
  const calibrationSteps = options.calibrationSteps ?? 2;
  const order = epochBatches(options.rows.length, h.batchSize, h.seed, 0);
  const batches = order.slice(0, calibrationSteps + 1).map((idx) => makeBatch(idx.map((i) => options.rows[i] as TokenizedExample), options.padId));
  let peak = 0;
  let seconds = 0;
  for (const [i, batch] of batches.entries()) {
    const run = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => batchLoss(options.model, batch), varList);
        value.dataSync();
        for (const g of Object.values(grads)) g.dataSync();
      });
    if (i === 0) {
      // the warm-up pass measures memory; profiling slows it, so it is not timed
      peak = (await tf.profile(run)).peakBytes;
      continue;
    }
    const started = performance.now();
    run();
    seconds += (performance.now() - started) / 1000;
  }
  const timed = Math.max(1, batches.length - 1);
  const secondsPerMicro = batches.length > 1 ? seconds / timed : 0;
  const perEpoch = stepsPerEpoch(options.rows.length, h);
  const totalSteps = totalStepsFor(options.rows.length, h);
  const microPerEpoch = Math.ceil(options.rows.length / h.batchSize);
  const adamBytes = 2 * 4 * trainableParameters;
  return {
    trainableParameters,
    adapterBytes: 4 * trainableParameters + 200 * varList.length + 1200,
    peakMemoryBytes: Math.max(peak, tf.memory().numBytes) + adamBytes,
    secondsPerStep: secondsPerMicro * h.gradAccum,
    stepsPerEpoch: perEpoch,
    secondsPerEpoch: secondsPerMicro * microPerEpoch,
    totalSteps,
    totalSeconds: (secondsPerMicro * microPerEpoch * totalSteps) / Math.max(1, perEpoch),
    tokensPerEpoch: options.rows.reduce((s, r) => s + r.ids.length, 0),
    calibrationSteps: timed,
  };
}
