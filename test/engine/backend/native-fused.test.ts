/**
 * The addon's fused kernels (rotary, SwiGLU, RMSNorm, cross-entropy, gather) against float64: values against the
 * formulas written out in float64 here, gradients against central finite differences of those float64 functions,
 * on wasm and cpu, for odd sizes, sizes that split across threads, and 1 and 2 threads. Bad labels and short
 * arrays are refused with a stable code.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FUSED_KERNELS, fusedAttention, fusedCrossEntropy, fusedRmsNorm, fusedRotary, fusedSwiGLU, hasFusedKernel,
} from '../../../main/engine/backend/fused-ops';
import { NativeKernelError, registerNativeKernels, unregisterNativeKernels } from '../../../main/engine/backend/native/index';
import { hasFusedKernels, type NativeAddon, type NativeFusedKernels } from '../../../main/engine/backend/native/addon';
import { addonAvailable, addonLoad, randomValues, seededRandom, useBackend } from './native-support';
import {
  ATTENTION_SHAPES, attention64, dot, finiteDifferences, nll64, rmsNorm64, rotary64, silu, valueAndGrads, worst,
} from './fused-reference';

const BACKENDS = ['wasm', 'cpu'] as const;

describe.each(BACKENDS)('fused kernels on %s', (backendName) => {
  afterAll(() => unregisterNativeKernels(backendName));

  it.skipIf(!addonAvailable)('are registered with the native kernels and removed with them', async () => {
    await useBackend(backendName);
    registerNativeKernels(backendName, { threads: 2 });
    for (const name of Object.values(FUSED_KERNELS)) expect(hasFusedKernel(name)).toBe(true);
    unregisterNativeKernels(backendName);
    for (const name of Object.values(FUSED_KERNELS)) expect(hasFusedKernel(name)).toBe(false);
  });

  describe.each([1, 2])('with %i thread(s)', (threads) => {
    const setUp = async (): Promise<void> => {
      await useBackend(backendName);
      registerNativeKernels(backendName, { threads });
    };

    it.skipIf(!addonAvailable)('rotary: values and gradient (decode t=1, odd group counts, a split across threads)', async () => {
      await setUp();
      const random = seededRandom(31 + threads);
      for (const [groups, t, d] of [[3, 5, 8], [5, 1, 6], [48, 40, 64]] as const) {
        const x = randomValues(random, groups * t * d);
        const cos = randomValues(random, t * d);
        const sin = randomValues(random, t * d);
        const r = randomValues(random, groups * t * d);
        const [c2, s2] = [tf.tensor2d(cos, [t, d]), tf.tensor2d(sin, [t, d])];
        const { value, grads } = await valueAndGrads((xs) => fusedRotary(xs as tf.Tensor, c2, s2), [tf.tensor3d(x, [groups, t, d])], tf.tensor3d(r, [groups, t, d]));
        const x64 = Float64Array.from(x);
        const [cos64, sin64] = [Float64Array.from(cos), Float64Array.from(sin)];
        expect(worst(value, rotary64(x64, cos64, sin64, t, d))).toBeLessThan(1e-6);
        if (x.length < 2000) {
          // Σ rotary(x)·r is linear in x: its finite differences are exact up to float64 rounding.
          const want = finiteDifferences((v) => dot(rotary64(v, cos64, sin64, t, d), r), x64);
          expect(worst(grads[0] as Float32Array, want)).toBeLessThan(1e-5);
        } else {
          // Too many entries for differences: the adjoint by hand. x[j] enters y[j] through cos[j] and its partner's
          // y through the partner's sin.
          const want = new Float64Array(x.length);
          for (let j = 0; j < x.length; j++) {
            const i = j % d;
            const p = Math.floor(j / d) % t;
            const partner = i < d / 2 ? j + d / 2 : j - d / 2;
            want[j] = (r[j] as number) * (cos[p * d + i] as number) + (r[partner] as number) * (sin[p * d + (partner % d)] as number);
          }
          expect(worst(grads[0] as Float32Array, want)).toBeLessThan(1e-5);
        }
        tf.dispose([c2, s2]);
      }
    });

    it.skipIf(!addonAvailable)('SwiGLU: values and both gradients, odd and thread-splitting sizes', async () => {
      await setUp();
      const random = seededRandom(41 + threads);
      for (const n of [7, 70_001]) {
        const gate = randomValues(random, n).map((v) => v * 12); // through sigmoid's flat tails too
        const up = randomValues(random, n);
        const r = randomValues(random, n);
        const { value, grads } = await valueAndGrads((g, u) => fusedSwiGLU(g as tf.Tensor, u as tf.Tensor), [tf.tensor1d(gate), tf.tensor1d(up)], tf.tensor1d(r));
        expect(worst(value, Float64Array.from(gate, (g, i) => silu(g) * (up[i] as number)))).toBeLessThan(1e-6);
        // Elementwise: ∂/∂g of Σ silu(g)·u·r at each element by a difference of the float64 function there.
        const h = 1e-5;
        const dGate = Float64Array.from(gate, (g, i) => (silu(g + h) - silu(g - h)) / (2 * h) * (up[i] as number) * (r[i] as number));
        const dUp = Float64Array.from(gate, (g, i) => silu(g) * (r[i] as number));
        expect(worst(grads[0] as Float32Array, dGate)).toBeLessThan(1e-5);
        expect(worst(grads[1] as Float32Array, dUp)).toBeLessThan(1e-6);
      }
    });

    it.skipIf(!addonAvailable)('RMSNorm: values and the gradients of x and weight', async () => {
      await setUp();
      const random = seededRandom(51 + threads);
      for (const [rows, cols] of [[3, 5], [9, 37]] as const) {
        const x = randomValues(random, rows * cols);
        const w = randomValues(random, cols);
        const r = randomValues(random, rows * cols);
        const eps = 1e-5;
        const { value, grads } = await valueAndGrads((xs, ws) => fusedRmsNorm(xs as tf.Tensor, ws as tf.Tensor1D, eps),
          [tf.tensor2d(x, [rows, cols]), tf.tensor1d(w)], tf.tensor2d(r, [rows, cols]));
        const [x64, w64] = [Float64Array.from(x), Float64Array.from(w)];
        expect(worst(value, rmsNorm64(x64, w64, eps))).toBeLessThan(1e-5);
        expect(worst(grads[0] as Float32Array, finiteDifferences((v) => dot(rmsNorm64(v, w64, eps), r), x64))).toBeLessThan(1e-4);
        expect(worst(grads[1] as Float32Array, finiteDifferences((v) => dot(rmsNorm64(x64, v, eps), r), w64))).toBeLessThan(1e-4);
      }
    });

    it.skipIf(!addonAvailable)('cross-entropy: per-row nll and its gradient, vocabularies off the vector width', async () => {
      await setUp();
      const random = seededRandom(61 + threads);
      for (const [rows, vocab] of [[4, 13], [70, 1001]] as const) {
        const logits = randomValues(random, rows * vocab).map((v) => v * 20); // wide logits: the max shift matters
        const labels = Int32Array.from({ length: rows }, () => Math.floor(random() * vocab));
        const r = randomValues(random, rows);
        const labelTensor = tf.tensor1d(labels, 'int32');
        const { value, grads } = await valueAndGrads((xs) => fusedCrossEntropy(xs as tf.Tensor2D, labelTensor),
          [tf.tensor2d(logits, [rows, vocab])], tf.tensor1d(r));
        const l64 = Float64Array.from(logits);
        expect(worst(value, nll64(l64, labels, vocab))).toBeLessThan(1e-5);
        if (rows * vocab < 5000) {
          expect(worst(grads[0] as Float32Array, finiteDifferences((v) => dot(nll64(v, labels, vocab), r), l64, 1e-4), 1e-2)).toBeLessThan(1e-4);
        } else {
          // Too many entries for finite differences: softmax − onehot, written out in float64, row by row.
          const want = new Float64Array(rows * vocab);
          const nll = nll64(l64, labels, vocab);
          for (let row = 0; row < rows; row++) {
            const lse = (nll[row] as number) + (l64[row * vocab + (labels[row] as number)] as number);
            for (let v = 0; v < vocab; v++) want[row * vocab + v] = (r[row] as number) * (Math.exp((l64[row * vocab + v] as number) - lse) - (v === labels[row] ? 1 : 0));
          }
          expect(worst(grads[0] as Float32Array, want, 1e-3)).toBeLessThan(1e-4);
        }
        labelTensor.dispose();
      }
    });
  });

  it.skipIf(!addonAvailable)('attention: values and the gradients of q, k and v (grouped heads, cached positions)', async () => {
    await useBackend(backendName);
    registerNativeKernels(backendName, { threads: 2 });
    const random = seededRandom(81);
    for (const shape of ATTENTION_SHAPES) {
      const { b, h, hkv, t, s, d } = shape;
      const q = randomValues(random, b * h * t * d).map((x) => 2 * x);
      const k = randomValues(random, b * hkv * s * d).map((x) => 2 * x);
      const v = randomValues(random, b * hkv * s * d);
      const r = randomValues(random, b * t * h * d);
      const { value, grads } = await valueAndGrads(
        (qs, ks, vs) => fusedAttention(qs as tf.Tensor4D, ks as tf.Tensor4D, vs as tf.Tensor4D, 1 / Math.sqrt(d)),
        [tf.tensor4d(q, [b, h, t, d]), tf.tensor4d(k, [b, hkv, s, d]), tf.tensor4d(v, [b, hkv, s, d])], tf.tensor3d(r, [b, t, h * d]));
      const [q64, k64, v64] = [Float64Array.from(q), Float64Array.from(k), Float64Array.from(v)];
      expect(worst(value, attention64(q64, k64, v64, shape), 0.1)).toBeLessThan(1e-5);
      expect(worst(grads[0] as Float32Array, finiteDifferences((x) => dot(attention64(x, k64, v64, shape), r), q64), 0.1)).toBeLessThan(1e-4);
      expect(worst(grads[1] as Float32Array, finiteDifferences((x) => dot(attention64(q64, x, v64, shape), r), k64), 0.1)).toBeLessThan(1e-4);
      expect(worst(grads[2] as Float32Array, finiteDifferences((x) => dot(attention64(q64, k64, x, shape), r), v64), 0.1)).toBeLessThan(1e-4);
    }
  });

  it.skipIf(!addonAvailable)('gather: every axis equals the backend kernel; an out-of-range index is the backend\'s to judge', async () => {
    await useBackend(backendName);
    const random = seededRandom(71);
    const x = tf.tensor3d(randomValues(random, 4 * 6 * 5), [4, 6, 5]);
    const indices = tf.tensor1d([4, 0, 3, 3, 1], 'int32');
    const plain = [0, 1, 2].map((axis) => tf.gather(x, axis === 0 ? tf.tensor1d([3, 0, 2], 'int32') : indices, axis).arraySync());
    registerNativeKernels(backendName, { threads: 2 });
    const native = [0, 1, 2].map((axis) => tf.gather(x, axis === 0 ? tf.tensor1d([3, 0, 2], 'int32') : indices, axis).arraySync());
    expect(native).toEqual(plain);
    const outside = tf.tensor1d([0, 9], 'int32');
    const ownOutcome = (() => { unregisterNativeKernels(backendName); try { return tf.gather(x, outside, 1).arraySync(); } catch (e) { return String(e); } })();
    registerNativeKernels(backendName, { threads: 2 });
    const nativeOutcome = (() => { try { return tf.gather(x, outside, 1).arraySync(); } catch (e) { return String(e); } })();
    expect(nativeOutcome).toEqual(ownOutcome);
    tf.dispose([x, indices, outside]);
  });

  it.skipIf(!addonAvailable)('refuse a label outside the vocabulary with a stable code naming it', async () => {
    await useBackend(backendName);
    registerNativeKernels(backendName, { threads: 2 });
    const logits = tf.zeros([3, 4]) as tf.Tensor2D;
    const labels = tf.tensor1d([0, 7, 1], 'int32');
    expect(() => fusedCrossEntropy(logits, labels)).toThrow(NativeKernelError);
    expect(() => fusedCrossEntropy(logits, labels)).toThrow(/label 7 at position 1 is outside \[0, 4\)/);
    tf.dispose([logits, labels]);
  });
});

describe('the addon\'s fused entry points', () => {
  it.skipIf(!addonAvailable)('check every array against the sizes before touching memory', () => {
    if (!addonLoad.ok) return;
    const addon = addonLoad.addon as NativeAddon;
    expect(hasFusedKernels(addon)).toBe(true);
    const fused = addon as NativeAddon & NativeFusedKernels;
    const f = (n: number): Float32Array => new Float32Array(n);
    expect(() => fused.rotary(f(24), f(8), f(8), f(23), 3, 1, 8)).toThrow(/argument 4 holds 23 elements, the sizes need 24/);
    expect(() => fused.rotary(f(24), f(8), f(8), f(24), 3, 1, 7)).toThrow(/head dim 7 is odd/);
    expect(() => fused.swiglu(f(4), f(3), f(4), 4)).toThrow(/argument 2 holds 3/);
    expect(() => fused.crossEntropy(f(8), new Int32Array(2), f(2), f(1), 2, 4)).toThrow(/argument 4 holds 1/);
    expect(() => fused.gather(f(8), new Float32Array(2) as unknown as Int32Array, f(2), 1, 8, 1, 2)).toThrow(/argument 2 must be an Int32Array/);
    expect(() => fused.attention(f(24), f(24), f(24), f(24), f(36), 1, 3, 2, 2, 3, 4, 0.5)).toThrow(/3 query heads do not group over 2 kv heads/);
    expect(() => fused.attention(f(16), f(8), f(8), f(16), f(8), 1, 1, 1, 4, 2, 4, 0.5)).toThrow(/4 new positions but only 2 keys/);
    expect(() => fused.attention(f(16), f(16), f(16), f(16), f(15), 1, 1, 1, 4, 4, 4, 0.5)).toThrow(/argument 5 holds 15 elements, the sizes need 16/);
    expect(fused.crossEntropy(f(8), Int32Array.from([1, -1]), f(2), f(2), 2, 4)).toBe(1);
    expect(fused.gather(f(8), Int32Array.from([2, 8]), f(2), 1, 8, 1, 2)).toBe(1);
  });
});
