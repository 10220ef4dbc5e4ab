/**
 * The native matMul kernels against a float64 reference and against the backends' own kernels (native disabled),
 * on both cpu and wasm: random shapes with odd sizes, transposes, batch broadcasting, gradients, fusion, fallbacks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { FUSED_KERNELS, hasFusedKernel } from '../../../main/engine/backend/fused-ops';
import { activeFrozenStore } from '../../../main/engine/backend/frozen';
import { FROZEN_KERNELS } from '../../../main/engine/backend/native/frozen-kernels';
import {
  nativeKernelStatus, NativeKernelError, registerNativeKernels, unregisterNativeKernels,
} from '../../../main/engine/backend/native/index';
import {
  addonAvailable, addonLoad, addonRequired, randomValues, referenceMatMul, seededRandom, useBackend,
  worstRelativeError,
} from './native-support';

const BACKENDS = ['cpu', 'wasm'] as const;
const ODD_SIZES = [1, 7, 33, 129];
const TOLERANCE = 2e-5;

interface Case {
  aShape: number[];
  bShape: number[];
  transposeA: boolean;
  transposeB: boolean;
}

/** Random cases: m, n, k from odd sizes or random up to 70, with each batch layout the models use. */
function randomCases(seed: number, count: number): Case[] {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const dim = (): number => (random() < 0.5 ? pick(ODD_SIZES) : 1 + Math.floor(random() * 70));
  const layouts: ((b: number) => [number[], number[]])[] = [
    () => [[], []], // plain 2-D
    (b) => [[b], [b]], // attention: equal batches
    (b) => [[b], []], // activations [B, T, H] times weights [H, O]
    (b) => [[], [b]],
    (b) => [[1], [b]], // batch of 1 broadcast
    (b) => [[2, b], [1, b]], // heads broadcast over a leading dim
    () => [[2, 1], [1, 3]], // general broadcasting
  ];
  return Array.from({ length: count }, (_, i) => {
    const m = dim();
    const n = dim();
    // Keep the reference loop small when all three are large.
    const k = m * n > 2000 ? pick([1, 7, 33]) : dim();
    const transposeA = random() < 0.5;
    const transposeB = random() < 0.5;
    const [aBatch, bBatch] = (layouts[i % layouts.length] ?? layouts[0]!)(1 + Math.floor(random() * 3));
    return {
      aShape: [...aBatch, ...(transposeA ? [k, m] : [m, k])],
      bShape: [...bBatch, ...(transposeB ? [n, k] : [k, n])],
      transposeA, transposeB,
    };
  });
}

function productOf(c: Case, a: Float32Array, b: Float32Array): { shape: number[]; values: Float32Array } {
  return tf.tidy(() => {
    const out = tf.matMul(tf.tensor(a, c.aShape), tf.tensor(b, c.bShape), c.transposeA, c.transposeB);
    return { shape: out.shape, values: out.dataSync() as Float32Array };
  });
}

/** tfjs's own kernels pick the batch with `i % batch`, which differs from broadcasting for [2, 1] × [1, 3]. */
const tfjsAgreesWithBroadcasting = (c: Case): boolean =>
  !(c.aShape.length === 4 && c.aShape[1] === 1 && c.bShape[0] === 1);

describe('native addon availability', () => {
  it('loads where the BLAS development package is installed (CI)', () => {
    const hint = 'OpenBLAS headers are installed, so `npm install` should have built the addon: run `npm run build:native`';
    if (addonRequired) expect(addonLoad, hint).toMatchObject({ ok: true });
    expect(typeof addonAvailable).toBe('boolean');
  });
});

describe.each(BACKENDS)('native kernels on %s', (backendName) => {
  afterAll(() => unregisterNativeKernels(backendName));

  it('says which kernels it uses, and restores the backend kernels when disabled', async () => {
    await useBackend(backendName);
    const own = tf.getKernel(tf.BatchMatMul, backendName)?.kernelFunc;
    const ownGather = tf.getKernel(tf.GatherV2, backendName)?.kernelFunc;
    const status = registerNativeKernels(backendName, { disabled: true });
    expect(status.active).toBe(false);
    expect(status.detail).toContain(`BatchMatMul, _FusedMatMul use the ${backendName} backend's own kernels`);
    expect(tf.getKernel(tf.BatchMatMul, backendName)?.kernelFunc).toBe(own);
    if (!addonAvailable) return;
    const active = registerNativeKernels(backendName, { threads: 2 });
    expect(tf.getKernel(tf.GatherV2, backendName)?.kernelFunc).not.toBe(ownGather);
    expect(active).toMatchObject({ active: true, threads: 2 });
    expect(active.kernels).toEqual(['BatchMatMul', '_FusedMatMul', 'GatherV2', ...Object.values(FUSED_KERNELS), ...Object.values(FROZEN_KERNELS)]);
    expect(active.detail).toMatch(new RegExp(`native sgemm \\(.+, 2 threads\\) for BatchMatMul, _FusedMatMul, GatherV2 and fused attention, rotary, SwiGLU, RMSNorm, cross-entropy on ${backendName}; frozen weights in the native frozen-weight store \\(file precision, (avx2|portable) kernels\\)$`));
    expect(activeFrozenStore()).not.toBeNull();
    expect(tf.getKernel(tf.BatchMatMul, backendName)?.kernelFunc).not.toBe(own);
    expect(hasFusedKernel(FUSED_KERNELS.rotary)).toBe(true);
    expect(nativeKernelStatus(backendName)).toBe(active);
    unregisterNativeKernels(backendName);
    expect(tf.getKernel(tf.BatchMatMul, backendName)?.kernelFunc).toBe(own);
    expect(tf.getKernel(tf.GatherV2, backendName)?.kernelFunc).toBe(ownGather);
    for (const name of Object.values(FUSED_KERNELS)) expect(tf.getKernel(name, backendName)).toBeUndefined();
    expect(hasFusedKernel(FUSED_KERNELS.rotary)).toBe(false);
  });

  it('rejects a bad thread count with a stable code', async () => {
    if (!addonAvailable) return;
    await useBackend(backendName);
    expect(() => registerNativeKernels(backendName, { threads: 0 })).toThrow(NativeKernelError);
    expect(() => registerNativeKernels(backendName, { threads: 1.5 })).toThrow(/integer from 1 to 1024, got 1.5/);
  });

  it.skipIf(!addonAvailable)('matches float64 and the backend kernels on random shapes, transposes and broadcasts', async () => {
    await useBackend(backendName);
    const random = seededRandom(backendName === 'cpu' ? 11 : 12);
    for (const c of randomCases(backendName === 'cpu' ? 1 : 2, 28)) {
      const a = randomValues(random, c.aShape.reduce((p, d) => p * d, 1));
      const b = randomValues(random, c.bShape.reduce((p, d) => p * d, 1));
      const want = referenceMatMul(a, c.aShape, b, c.bShape, c.transposeA, c.transposeB);
      registerNativeKernels(backendName, { threads: 2 });
      const native = productOf(c, a, b);
      registerNativeKernels(backendName, { disabled: true });
      const plain = productOf(c, a, b);
      const label = JSON.stringify(c);
      expect(native.shape, label).toEqual(want.shape);
      expect(worstRelativeError(native.values, want.values, want.magnitude), label).toBeLessThan(TOLERANCE);
      if (tfjsAgreesWithBroadcasting(c)) {
        expect(worstRelativeError(plain.values, want.values, want.magnitude), label).toBeLessThan(TOLERANCE);
      }
    }
  });

  it.skipIf(!addonAvailable)('gives the same gradients through tf.grad as float64 calculus', async () => {
    await useBackend(backendName);
    registerNativeKernels(backendName, { threads: 1 });
    const random = seededRandom(5);
    // Attention scores: s = q·kᵀ per batch, q [2, 33, 7], k [2, 129, 7]; loss = Σ w ⊙ s, w [2, 33, 129].
    // Calculus: dq = w·k, dk = wᵀ·q (both per batch).
    const q = randomValues(random, 2 * 33 * 7);
    const k = randomValues(random, 2 * 129 * 7);
    const w = randomValues(random, 2 * 33 * 129);
    const [dq, dk] = tf.tidy(() => {
      const loss = (qt: tf.Tensor, kt: tf.Tensor): tf.Tensor =>
        tf.sum(tf.mul(tf.matMul(qt, kt, false, true), tf.tensor(w, [2, 33, 129])));
      return tf.grads(loss)([tf.tensor(q, [2, 33, 7]), tf.tensor(k, [2, 129, 7])]).map((g) => g.dataSync() as Float32Array);
    });
    const wantDq = referenceMatMul(w, [2, 33, 129], k, [2, 129, 7], false, false);
    expect(worstRelativeError(dq ?? new Float32Array(), wantDq.values, wantDq.magnitude)).toBeLessThan(TOLERANCE);
    const wantDk = referenceMatMul(w, [2, 33, 129], q, [2, 33, 7], true, false);
    expect(worstRelativeError(dk ?? new Float32Array(), wantDk.values, wantDk.magnitude)).toBeLessThan(TOLERANCE);

    // A linear layer on flattened tokens: y = x·W, x [33, 7], W [7, 129]: dx = w·Wᵀ, dW = xᵀ·w.
    const x = q.subarray(0, 33 * 7);
    const weight = k.subarray(0, 7 * 129);
    const w2 = w.subarray(0, 33 * 129);
    const [dx, dW] = tf.tidy(() => {
      const loss = (xt: tf.Tensor, wt: tf.Tensor): tf.Tensor => tf.sum(tf.mul(tf.matMul(xt, wt), tf.tensor(w2, [33, 129])));
      return tf.grads(loss)([tf.tensor(x, [33, 7]), tf.tensor(weight, [7, 129])]).map((g) => g.dataSync() as Float32Array);
    });
    const wantDx = referenceMatMul(w2, [33, 129], weight, [7, 129], false, true);
    expect(worstRelativeError(dx ?? new Float32Array(), wantDx.values, wantDx.magnitude)).toBeLessThan(TOLERANCE);
    const wantDW = referenceMatMul(x, [33, 7], w2, [33, 129], true, false);
    expect(worstRelativeError(dW ?? new Float32Array(), wantDW.values, wantDW.magnitude)).toBeLessThan(TOLERANCE);
  });

  it.skipIf(!addonAvailable)('fuses bias and activation as tf.fused.matMul defines them', async () => {
    await useBackend(backendName);
    registerNativeKernels(backendName);
    const random = seededRandom(9);
    const a = randomValues(random, 7 * 33);
    const b = randomValues(random, 33 * 9);
    const bias = randomValues(random, 9);
    const want = referenceMatMul(a, [7, 33], b, [33, 9], false, false);
    const prelu = randomValues(random, 9);
    const activations: Record<string, (z: number, column: number) => number> = {
      linear: (z) => z,
      relu: (z) => Math.max(0, z),
      relu6: (z) => Math.min(6, Math.max(0, z)),
      elu: (z) => (z >= 0 ? z : Math.exp(z) - 1),
      sigmoid: (z) => 1 / (1 + Math.exp(-z)),
      leakyrelu: (z) => (z >= 0 ? z : 0.1 * z),
      prelu: (z, column) => (z >= 0 ? z : (prelu[column] ?? NaN) * z),
    };
    for (const [activation, apply] of Object.entries(activations)) {
      const got = tf.tidy(() => tf.fused.matMul({
        a: tf.tensor(a, [7, 33]), b: tf.tensor(b, [33, 9]), bias: tf.tensor(bias),
        activation: activation as tf.fused.Activation, leakyreluAlpha: 0.1, preluActivationWeights: tf.tensor(prelu),
      }).dataSync());
      const expected = Float64Array.from(want.values, (v, i) => apply(v + (bias[i % 9] ?? NaN), i % 9));
      expect(worstRelativeError(got, expected, want.magnitude), activation).toBeLessThan(TOLERANCE);
    }
  });

  it.skipIf(!addonAvailable)('leaves int32 products to the backend and leaks no tensors or heap blocks', async () => {
    await useBackend(backendName);
    registerNativeKernels(backendName);
    if (backendName === 'cpu') {
      // The wasm backend has no int32 matMul at all; on cpu the original kernel must still serve it.
      const ints = tf.tidy(() => tf.matMul(tf.tensor2d([[1, 2], [3, 4]], undefined, 'int32'),
        tf.tensor2d([[5], [6]], undefined, 'int32')).arraySync());
      expect(ints).toEqual([[17], [39]]);
    }
    const run = (): void => tf.tidy(() => {
      const a = tf.ones([3, 8, 5]);
      const fused = tf.fused.matMul({ a: tf.ones([8, 5]), b: tf.ones([5, 4]), bias: tf.ones([4]), activation: 'relu' });
      tf.matMul(a, tf.ones([2, 5]), false, true).dataSync();
      fused.dataSync();
    });
    run();
    const tensors = tf.memory().numTensors;
    const dataIds = tf.engine().backend.numDataIds();
    for (let i = 0; i < 3; i++) run();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.engine().backend.numDataIds()).toBe(dataIds);
  });
});
