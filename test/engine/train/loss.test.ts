/**
 * The chunked cross-entropy against float64 arithmetic that knows nothing of tfjs: loss, the gradient for the
 * hidden states and for LoRA A and B on the head, with several chunks and masked rows; validation sums; and the
 * same numbers on wasm with the native fused cross-entropy kernel where the addon is built.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { LinearLayer } from '../../../main/engine/lora/linear';
import { variablesOf } from '../../../main/engine/models/layers';
import type { ModelConfig } from '../../../main/engine/models/types';
import { headCrossEntropy, headNllSum, lossChunkRows, type LossModel } from '../../../main/engine/train/loss';
import { addonAvailable, seededRandom, useBackend } from '../backend/native-support';
import { FUSED_KERNELS, hasFusedKernel } from '../../../main/engine/backend/fused-ops';
import { registerNativeKernels, unregisterNativeKernels } from '../../../main/engine/backend/native/index';

const [N, C, V, R] = [7, 5, 11, 3];
const SCALING = 1.5;
const random = seededRandom(9);
const values = (n: number, scale: number) => Array.from({ length: n }, () => (random() * 2 - 1) * scale);
const hiddenValues = values(N * C, 2);
const weightValues = values(C * V, 1); // Wt [C, V]
const aValues = values(C * R, 0.7); // At [C, r]
const bValues = values(R * V, 0.7); // Bt [r, V]
const labels = Int32Array.from([3, 10, 0, 7, 7, 2, 9]);
const weights = Float32Array.from([1, 0, 1, 1, 0, 1, 1]);

/** Row-major [rows, inner]·[inner, cols] in float64. */
function matmul(a: readonly number[], b: readonly number[], rows: number, inner: number, cols: number): number[] {
  const out = new Array<number>(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) for (let k = 0; k < inner; k++) for (let j = 0; j < cols; j++) out[i * cols + j] = (out[i * cols + j] as number) + (a[i * inner + k] as number) * (b[k * cols + j] as number);
  return out;
}
function transpose(a: readonly number[], rows: number, cols: number): number[] {
  const out = new Array<number>(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j] as number;
  return out;
}

/** loss, dHidden [N, C], dAt [C, r], dBt [r, V] for logits = h·(Wt + s·At·Bt). */
function reference() {
  const effective = matmul(aValues, bValues, C, R, V).map((x, i) => (weightValues[i] as number) + SCALING * x);
  const logits = matmul(hiddenValues, effective, N, C, V);
  const count = weights.reduce((s, w) => s + w, 0);
  let loss = 0;
  const dLogits = new Array<number>(N * V).fill(0);
  for (let n = 0; n < N; n++) {
    const row = logits.slice(n * V, n * V + V);
    const m = Math.max(...row);
    const z = row.reduce((s, x) => s + Math.exp(x - m), 0);
    const w = weights[n] as number;
    loss += (w * (Math.log(z) + m - (row[labels[n] as number] as number))) / count;
    for (let v = 0; v < V; v++) dLogits[n * V + v] = (w / count) * (Math.exp((row[v] as number) - m) / z - (v === labels[n] ? 1 : 0));
  }
  const dHidden = matmul(dLogits, transpose(effective, C, V), N, V, C);
  const dBtInner = matmul(dLogits, transpose(bValues, R, V), N, V, R); // dlogits·Btᵀ [N, r]
  const dAt = matmul(transpose(hiddenValues, N, C), dBtInner, C, N, R).map((x) => SCALING * x);
  const dBt = matmul(transpose(matmul(hiddenValues, aValues, N, C, R), N, R), dLogits, R, N, V).map((x) => SCALING * x);
  return { loss, dHidden, dAt, dBt, count };
}

function lossModel(): { model: LossModel; hidden: tf.Variable<tf.Rank.R2>; at: tf.Variable; bt: tf.Variable; dispose: () => void } {
  const spec = { path: 'lm_head', name: 'lm_head', layer: null, inFeatures: C, outFeatures: V, groups: [], fanInFanOut: false };
  const layer = new LinearLayer(spec, tf.tensor2d(weightValues, [C, V]), null);
  const at = tf.variable(tf.tensor2d(aValues, [C, R]));
  const bt = tf.variable(tf.tensor2d(bValues, [R, V]));
  layer.adapters.set('a', { At: at as tf.Variable<tf.Rank.R2>, Bt: bt as tf.Variable<tf.Rank.R2>, rank: R, scaling: SCALING, dropout: 0 });
  layer.setActive([{ name: 'a', weight: 1 }]);
  const hidden = tf.variable(tf.tensor2d(hiddenValues, [N, C]));
  const config = { vocabSize: V } as ModelConfig;
  const model: LossModel = { config, head: { logits: (h) => layer.apply(h), variables: () => variablesOf([layer], []) } };
  return { model, hidden, at, bt, dispose: () => { layer.dispose(); hidden.dispose(); } };
}

function worst(got: ArrayLike<number>, want: readonly number[]): number {
  expect(got.length).toBe(want.length);
  return want.reduce((m, x, i) => Math.max(m, Math.abs((got[i] as number) - x) / (1e-3 + Math.abs(x))), 0);
}

function checkAgainstReference(chunkBytes: number): void {
  const ref = reference();
  const { model, hidden, at, bt, dispose } = lossModel();
  try {
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => headCrossEntropy(model, hidden, { labels, weights }, { chunkBytes }), [hidden, at, bt]);
    expect(value.dataSync()[0]).toBeCloseTo(ref.loss, 5);
    expect(worst(grads[hidden.name]?.dataSync() ?? [], ref.dHidden)).toBeLessThan(1e-4);
    expect(worst(grads[at.name]?.dataSync() ?? [], ref.dAt)).toBeLessThan(1e-4);
    expect(worst(grads[bt.name]?.dataSync() ?? [], ref.dBt)).toBeLessThan(1e-4);
    // masked rows get no gradient at all
    const dh = grads[hidden.name]?.dataSync() ?? [];
    for (const row of [1, 4]) for (let c = 0; c < C; c++) expect(dh[row * C + c]).toBe(0);
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);

    const { sum, count } = headNllSum(model, hidden, { labels, weights }, { chunkBytes });
    expect(count).toBe(ref.count);
    expect((sum.dataSync()[0] as number) / count).toBeCloseTo(ref.loss, 5);
    sum.dispose();
  } finally {
    dispose();
  }
}

afterAll(() => {
  unregisterNativeKernels('wasm');
});

describe('headCrossEntropy', () => {
  it('cuts the logits into chunks of at most chunkBytes', () => {
    expect(lossChunkRows(151936)).toBe(110);
    expect(lossChunkRows(11, 3 * 4 * 11)).toBe(3);
    expect(lossChunkRows(1_000_000, 16)).toBe(1);
  });

  it('matches float64 (loss, dHidden, LoRA dA and dB on the head) in one chunk and in chunks of 2 and 1 rows', async () => {
    await useBackend('cpu');
    for (const rows of [N, 2, 1]) checkAgainstReference(rows * 4 * V);
  });

  it('gives no loss and zero gradients when every row is masked', async () => {
    await useBackend('cpu');
    const { model, hidden, at, bt, dispose } = lossModel();
    const { value, grads } = tf.variableGrads(() => headCrossEntropy(model, hidden, { labels, weights: new Float32Array(N) }), [hidden, at, bt]);
    expect(value.dataSync()[0]).toBe(0);
    for (const g of Object.values(grads)) expect(Math.max(...Array.from(g.dataSync(), Math.abs))).toBe(0);
    tf.dispose([value, ...Object.values(grads)]);
    dispose();
  });

  it.skipIf(!addonAvailable)('matches float64 on wasm with the native fused cross-entropy kernel', async () => {
    await useBackend('wasm');
    expect(registerNativeKernels('wasm', { threads: 1 }).active).toBe(true);
    expect(hasFusedKernel(FUSED_KERNELS.crossEntropy)).toBe(true);
    checkAgainstReference(2 * 4 * V);
    unregisterNativeKernels('wasm');
  });
});
