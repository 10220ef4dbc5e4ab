/**
 * The fused WGSL kernels on webgpu (lavapipe here and in CI) against float64: values against the formulas written
 * out in float64 (fused-reference.ts), gradients against central finite differences of those functions; and the
 * same numbers as the composed tfjs path on webgpu (the kernels unregistered), so the model gives the same results
 * with and without them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FUSED_KERNELS, fusedAttention, fusedCrossEntropy, fusedRmsNorm, fusedRotary, fusedSwiGLU, hasFusedKernel,
} from '../../../main/engine/backend/fused-ops';
import { registerWebgpuKernels, unregisterWebgpuKernels } from '../../../main/engine/backend/webgpu/index';
import { attention, causalMask, applyRotary, gatedActivation, rmsNorm } from '../../../main/engine/models/layers';
import { maskedCrossEntropy } from '../../../main/engine/train/loss';
import {
  attention64, dot, finiteDifferences, nll64, rmsNorm64, rotary64, silu, valueAndGrads, worst, type AttentionShape,
} from './fused-reference';
import { randomValues, seededRandom } from './native-support';
import { startWebgpu, webgpuRequired } from './webgpu-support';

const unavailable = await startWebgpu();

describe('fused WGSL kernels on webgpu', () => {
  beforeAll(async () => {
    if (unavailable) return;
    await startWebgpu();
    registerWebgpuKernels();
  });
  afterAll(() => unregisterWebgpuKernels());

  it('webgpu comes up where lavapipe is installed', () => {
    if (webgpuRequired) expect(unavailable).toBeNull();
    else if (unavailable) console.warn(`webgpu kernel tests skipped: ${unavailable}`);
  });

  it.skipIf(unavailable !== null)('are registered on webgpu and removed again', () => {
    for (const name of Object.values(FUSED_KERNELS)) expect(hasFusedKernel(name)).toBe(true);
    unregisterWebgpuKernels();
    for (const name of Object.values(FUSED_KERNELS)) expect(hasFusedKernel(name)).toBe(false);
    registerWebgpuKernels();
  });

  it.skipIf(unavailable !== null)('rotary: values and gradient, decode t=1 and odd group counts', async () => {
    const random = seededRandom(31);
    for (const [groups, t, d] of [[3, 5, 8], [5, 1, 6], [7, 9, 16]] as const) {
      const x = randomValues(random, groups * t * d);
      const cos = randomValues(random, t * d);
      const sin = randomValues(random, t * d);
      const r = randomValues(random, groups * t * d);
      const [c2, s2] = [tf.tensor2d(cos, [t, d]), tf.tensor2d(sin, [t, d])];
      const { value, grads } = await valueAndGrads((xs) => fusedRotary(xs as tf.Tensor, c2, s2), [tf.tensor3d(x, [groups, t, d])], tf.tensor3d(r, [groups, t, d]));
      const x64 = Float64Array.from(x);
      const [cos64, sin64] = [Float64Array.from(cos), Float64Array.from(sin)];
      expect(worst(value, rotary64(x64, cos64, sin64, t, d))).toBeLessThan(1e-6);
      const want = finiteDifferences((v) => dot(rotary64(v, cos64, sin64, t, d), r), x64);
      expect(worst(grads[0] as Float32Array, want)).toBeLessThan(1e-5);
      tf.dispose([c2, s2]);
    }
  });

  it.skipIf(unavailable !== null)('SwiGLU: values and both gradients, through sigmoid\'s flat tails', async () => {
    const random = seededRandom(41);
    for (const n of [7, 1000]) {
      const gate = randomValues(random, n).map((v) => v * 12);
      const up = randomValues(random, n);
      const r = randomValues(random, n);
      const { value, grads } = await valueAndGrads((g, u) => fusedSwiGLU(g as tf.Tensor, u as tf.Tensor), [tf.tensor1d(gate), tf.tensor1d(up)], tf.tensor1d(r));
      expect(worst(value, Float64Array.from(gate, (g, i) => silu(g) * (up[i] as number)))).toBeLessThan(1e-6);
      const h = 1e-5;
      const dGate = Float64Array.from(gate, (g, i) => (silu(g + h) - silu(g - h)) / (2 * h) * (up[i] as number) * (r[i] as number));
      const dUp = Float64Array.from(gate, (g, i) => silu(g) * (r[i] as number));
      expect(worst(grads[0] as Float32Array, dGate)).toBeLessThan(1e-5);
      expect(worst(grads[1] as Float32Array, dUp)).toBeLessThan(1e-6);
    }
  });

  it.skipIf(unavailable !== null)('RMSNorm: values and the gradients of x and weight, rows narrower and wider than a workgroup', async () => {
    const random = seededRandom(51);
    for (const [rows, cols] of [[3, 5], [9, 37], [4, 2500]] as const) {
      const x = randomValues(random, rows * cols);
      const w = randomValues(random, cols);
      const r = randomValues(random, rows * cols);
      const eps = 1e-5;
      const { value, grads } = await valueAndGrads((xs, ws) => fusedRmsNorm(xs as tf.Tensor, ws as tf.Tensor1D, eps),
        [tf.tensor2d(x, [rows, cols]), tf.tensor1d(w)], tf.tensor2d(r, [rows, cols]));
      const [x64, w64] = [Float64Array.from(x), Float64Array.from(w)];
      expect(worst(value, rmsNorm64(x64, w64, eps))).toBeLessThan(1e-5);
      if (rows * cols > 1000) continue; // the value check covers the wide row's reduction
      expect(worst(grads[0] as Float32Array, finiteDifferences((v) => dot(rmsNorm64(v, w64, eps), r), x64))).toBeLessThan(1e-4);
      expect(worst(grads[1] as Float32Array, finiteDifferences((v) => dot(rmsNorm64(x64, v, eps), r), w64))).toBeLessThan(1e-4);
    }
  });

  it.skipIf(unavailable !== null)('cross-entropy: per-row nll and its gradient, vocabularies off the workgroup width', async () => {
    const random = seededRandom(61);
    for (const [rows, vocab] of [[4, 13], [6, 1001]] as const) {
      const logits = randomValues(random, rows * vocab).map((v) => v * 20);
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

  it.skipIf(unavailable !== null)('cross-entropy: a label outside the vocabulary makes that row NaN, the others stay exact', async () => {
    const logits = tf.tensor2d([[1, 2, 3, 4], [0, 0, 0, 0], [4, 3, 2, 1]]);
    const labels = tf.tensor1d([3, 7, -1], 'int32');
    const nll = fusedCrossEntropy(logits, labels);
    const got = await nll.data();
    expect(got[0]).toBeCloseTo(Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(4)) - 4, 5);
    expect(Number.isNaN(got[1])).toBe(true);
    expect(Number.isNaN(got[2])).toBe(true);
    tf.dispose([logits, labels, nll]);
  });

  it.skipIf(unavailable !== null)('attention: values and the gradients of q, k and v (grouped heads, cached positions)', async () => {
    const random = seededRandom(81);
    const shapes: AttentionShape[] = [
      { b: 2, h: 4, hkv: 2, t: 3, s: 5, d: 4 }, // grouped-query heads, 2 cached positions before the 3 new ones
      { b: 1, h: 2, hkv: 2, t: 4, s: 4, d: 6 }, // plain multi-head, no cache
      { b: 1, h: 3, hkv: 1, t: 1, s: 6, d: 2 }, // decoding one token against 5 cached ones
      { b: 1, h: 2, hkv: 1, t: 70, s: 70, d: 2 }, // rows longer than a workgroup
    ];
    for (const shape of shapes) {
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

  it.skipIf(unavailable !== null)('the model\'s ops give the composed tfjs path\'s values and gradients', async () => {
    const random = seededRandom(91);
    const tensor = (shape: number[], scale = 1): tf.Tensor => tf.tensor(randomValues(random, shape.reduce((a, b) => a * b, 1)).map((v) => v * scale), shape);
    const [b, h, hkv, t, start, d, vocab] = [2, 4, 2, 5, 3, 8, 37];
    const s = start + t;
    const cos = tensor([t, d]) as tf.Tensor2D;
    const sin = tensor([t, d]) as tf.Tensor2D;
    const mask = causalMask(start, t);
    const labels = tf.tensor2d(Int32Array.from({ length: b * t }, () => Math.floor(random() * vocab)), [b, t], 'int32');
    const weights = tf.tensor2d(Float32Array.from({ length: b * t }, (_, i) => (i % 3 === 0 ? 0 : 1)), [b, t]);
    const cases: { name: string; op: (...xs: tf.Tensor[]) => tf.Tensor; inputs: () => tf.Tensor[]; outShape: number[] }[] = [
      { name: 'rmsNorm', op: (x, w) => rmsNorm(x as tf.Tensor, w as tf.Tensor1D, 1e-6), inputs: () => [tensor([b * t, 24]), tensor([24])], outShape: [b * t, 24] },
      { name: 'applyRotary', op: (x) => applyRotary(x as tf.Tensor4D, cos, sin), inputs: () => [tensor([b, h, t, d])], outShape: [b, h, t, d] },
      { name: 'gatedActivation', op: (g, u) => gatedActivation(g as tf.Tensor, u as tf.Tensor, 'silu'), inputs: () => [tensor([b * t, 40], 4), tensor([b * t, 40])], outShape: [b * t, 40] },
      {
        name: 'attention', op: (q, k, v) => attention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, mask),
        inputs: () => [tensor([b, h, t, d], 2), tensor([b, hkv, s, d], 2), tensor([b, hkv, s, d])], outShape: [b, t, h * d],
      },
      {
        name: 'maskedCrossEntropy', op: (logits) => maskedCrossEntropy(logits as tf.Tensor3D, labels, weights),
        inputs: () => [tensor([b, t, vocab], 6)], outShape: [],
      },
    ];
    for (const { name, op, inputs, outShape } of cases) {
      const given = inputs();
      const r = tensor(outShape);
      const keep = (xs: tf.Tensor[]): tf.Tensor[] => xs.map((x) => tf.clone(x));
      registerWebgpuKernels();
      const fused = await valueAndGrads(op, keep(given), tf.clone(r));
      unregisterWebgpuKernels();
      expect(hasFusedKernel(FUSED_KERNELS.rmsNorm)).toBe(false);
      const composed = await valueAndGrads(op, keep(given), tf.clone(r));
      registerWebgpuKernels();
      expect(worst(fused.value, composed.value, 0.1), `${name} value`).toBeLessThan(1e-5);
      fused.grads.forEach((g, i) => expect(worst(g, composed.grads[i] as Float32Array, 0.1), `${name} gradient ${i}`).toBeLessThan(1e-5));
      tf.dispose([...given, r]);
    }
    tf.dispose([cos, sin, mask, labels, weights]);
  });
});
