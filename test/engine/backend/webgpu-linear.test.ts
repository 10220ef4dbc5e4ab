/**
 * The frozen linear kernel on webgpu (lavapipe here and in CI): y = x·W + bias + scale·(x·At)·Bt with W float32 or
 * kept as F16 / BF16 words, against float64 written out here (the halves decoded by their definitions, not by the
 * engine), gradients of x, At and Bt against central finite differences; tiles crossed in every dimension, the
 * decode-sized rows, a LoRA input apart from x (dropout); and the same numbers as the composed tfjs ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FROZEN_LINEAR_KERNEL, fusedFrozenLinear, hasFusedKernel, type FrozenWeightFormat, type FrozenWeightTensor,
} from '../../../main/engine/backend/fused-ops';
import { halfWords } from '../../../main/engine/backend/webgpu/half-words';
import { registerWebgpuKernels, unregisterWebgpuKernels } from '../../../main/engine/backend/webgpu/index';
import { dot, finiteDifferences, valueAndGrads, worst } from './fused-reference';
import { randomValues, seededRandom } from './native-support';
import { startWebgpu, webgpuRequired } from './webgpu-support';

const unavailable = await startWebgpu();

/** IEEE binary16 by its definition: (−1)^s · 2^(e−15) · (1 + f/1024), subnormals 2^−14 · f/1024. */
function decodeF16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  return sign * (e === 0 ? 2 ** -14 * (f / 1024) : 2 ** (e - 15) * (1 + f / 1024));
}

/** bfloat16 by its definition: the upper 16 bits of a binary32, (−1)^s · 2^(e−127) · (1 + f/128). */
function decodeBf16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 7) & 0xff;
  const f = h & 0x7f;
  return sign * (e === 0 ? 2 ** -126 * (f / 128) : 2 ** (e - 127) * (1 + f / 128));
}

/** Random finite halves of magnitude about 2^-6..2^1 (exponents picked, so no NaN or Inf bit patterns). */
function randomHalves(random: () => number, n: number, format: 'F16' | 'BF16'): Uint16Array {
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const sign = random() < 0.5 ? 0x8000 : 0;
    const exponent = Math.floor(random() * 8) + (format === 'F16' ? 9 : 121);
    out[i] = format === 'F16'
      ? sign | (exponent << 10) | Math.floor(random() * 1024)
      : sign | (exponent << 7) | Math.floor(random() * 128);
  }
  return out;
}

interface Case { m: number; k: number; n: number; r: number; bias: boolean }

/** y = x·W + b + s·(lx·At)·Bt in float64; x, lx [M, K], W [K, N], At [K, R], Bt [R, N]. */
function linear64(x: Float64Array, lx: Float64Array, w: Float64Array, b: Float64Array | null, at: Float64Array, bt: Float64Array, s: number, { m, k, n, r }: Case): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const u = new Float64Array(r);
    for (let q = 0; q < r; q++) for (let p = 0; p < k; p++) u[q] = (u[q] as number) + (lx[i * k + p] as number) * (at[p * r + q] as number);
    for (let j = 0; j < n; j++) {
      let sum = b ? (b[j] as number) : 0;
      for (let p = 0; p < k; p++) sum += (x[i * k + p] as number) * (w[p * n + j] as number);
      let lora = 0;
      for (let q = 0; q < r; q++) lora += (u[q] as number) * (bt[q * n + j] as number);
      y[i * n + j] = sum + s * lora;
    }
  }
  return y;
}

/**
 * A random weight for op(W) [K, N]: the tensor as stored ([K, N] for 'in-out', [N, K] for 'out-in') and its values
 * in float64 as [K, N] for the reference.
 */
function weightFor(random: () => number, format: FrozenWeightFormat, layout: 'in-out' | 'out-in', k: number, n: number): { weight: FrozenWeightTensor; values: Float64Array } {
  const bits = format === 'F32' ? null : randomHalves(random, k * n, format);
  const floats = format === 'F32' ? randomValues(random, k * n) : null;
  const stored = bits ? Float64Array.from(bits, format === 'F16' ? decodeF16 : decodeBf16) : Float64Array.from(floats as Float32Array);
  const values = layout === 'in-out' ? stored : Float64Array.from({ length: k * n }, (_, i) => stored[(i % n) * k + Math.floor(i / n)] as number);
  const data = bits ? halfWords(bits) : tf.tensor2d(floats as Float32Array, layout === 'in-out' ? [k, n] : [n, k]);
  return { weight: { data, format, layout, inFeatures: k, outFeatures: n }, values };
}

describe('the frozen linear kernel on webgpu', () => {
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

  it.skipIf(unavailable !== null)('is registered under its name', () => {
    expect(hasFusedKernel(FROZEN_LINEAR_KERNEL)).toBe(true);
  });

  describe.each([
    ['F32', 'in-out'], ['F16', 'in-out'], ['BF16', 'in-out'], ['F16', 'out-in'], ['BF16', 'out-in'],
  ] as const)('with %s weights stored %s', (format, layout) => {
    it.skipIf(unavailable !== null)('values, and the gradients of x, At and Bt by finite differences', async () => {
      const random = seededRandom(format.length * 7 + layout.length);
      const cases: Case[] = [
        { m: 5, k: 7, n: 9, r: 3, bias: true }, // one tile, odd everywhere (an odd weight count ends mid-word)
        { m: 3, k: 20, n: 70, r: 2, bias: false }, // decode-sized rows: the matrix-vector kernels
        { m: 66, k: 18, n: 67, r: 1, bias: true }, // past a tile in m and n, k past one 16-deep step
      ];
      for (const c of cases) {
        const { m, k, n, r } = c;
        const w = weightFor(random, format, layout, k, n);
        const weight = w.weight;
        const b = c.bias ? randomValues(random, n) : null;
        const bias = b ? tf.tensor1d(b) : null;
        const [x, at, bt, rr] = [randomValues(random, m * k), randomValues(random, k * r), randomValues(random, r * n), randomValues(random, m * n)];
        const scale = 1.5;
        const { value, grads } = await valueAndGrads(
          (xs, as, bs) => fusedFrozenLinear(xs as tf.Tensor2D, weight, bias, { At: as as tf.Tensor2D, Bt: bs as tf.Tensor2D, scale }),
          [tf.tensor2d(x, [m, k]), tf.tensor2d(at, [k, r]), tf.tensor2d(bt, [r, n])], tf.tensor2d(rr, [m, n]));
        const [x64, at64, bt64, b64] = [Float64Array.from(x), Float64Array.from(at), Float64Array.from(bt), b ? Float64Array.from(b) : null];
        const f = (xv: Float64Array, av: Float64Array, bv: Float64Array): number => dot(linear64(xv, xv, w.values, b64, av, bv, scale, c), rr);
        expect(worst(value, linear64(x64, x64, w.values, b64, at64, bt64, scale, c), 1), `value ${JSON.stringify(c)}`).toBeLessThan(1e-5);
        if (m * k <= 200) expect(worst(grads[0] as Float32Array, finiteDifferences((v) => f(v, at64, bt64), x64), 1)).toBeLessThan(1e-4);
        expect(worst(grads[1] as Float32Array, finiteDifferences((v) => f(x64, v, bt64), at64), 1)).toBeLessThan(1e-4);
        if (r * n <= 200) expect(worst(grads[2] as Float32Array, finiteDifferences((v) => f(x64, at64, v), bt64), 1)).toBeLessThan(1e-4);
        tf.dispose([weight.data, ...(bias ? [bias] : [])]);
      }
    });
  });

  it.skipIf(unavailable !== null)('without an adapter, and with the LoRA input apart from x (dropout): values and every gradient', async () => {
    const random = seededRandom(17);
    const c: Case = { m: 6, k: 10, n: 12, r: 2, bias: false };
    const { m, k, n, r } = c;
    const w = weightFor(random, 'F16', 'out-in', k, n);
    const weight = w.weight;
    const [x, lx, at, bt, rr] = [randomValues(random, m * k), randomValues(random, m * k), randomValues(random, k * r), randomValues(random, r * n), randomValues(random, m * n)];
    const [x64, lx64, at64, bt64] = [x, lx, at, bt].map((v) => Float64Array.from(v)) as [Float64Array, Float64Array, Float64Array, Float64Array];
    const zeros = new Float64Array(r * n);

    const plain = await valueAndGrads((xs) => fusedFrozenLinear(xs as tf.Tensor2D, weight, null, null), [tf.tensor2d(x, [m, k])], tf.tensor2d(rr, [m, n]));
    expect(worst(plain.value, linear64(x64, x64, w.values, null, at64, zeros, 0, c))).toBeLessThan(1e-5);
    expect(worst(plain.grads[0] as Float32Array, finiteDifferences((v) => dot(linear64(v, v, w.values, null, at64, zeros, 0, c), rr), x64))).toBeLessThan(1e-4);

    const apart = await valueAndGrads(
      (xs, as, bs, ls) => fusedFrozenLinear(xs as tf.Tensor2D, weight, null, { At: as as tf.Tensor2D, Bt: bs as tf.Tensor2D, scale: 2 }, ls as tf.Tensor2D),
      [tf.tensor2d(x, [m, k]), tf.tensor2d(at, [k, r]), tf.tensor2d(bt, [r, n]), tf.tensor2d(lx, [m, k])], tf.tensor2d(rr, [m, n]));
    const f = (xv: Float64Array, lv: Float64Array, av: Float64Array, bv: Float64Array): number => dot(linear64(xv, lv, w.values, null, av, bv, 2, c), rr);
    expect(worst(apart.value, linear64(x64, lx64, w.values, null, at64, bt64, 2, c))).toBeLessThan(1e-5);
    expect(worst(apart.grads[0] as Float32Array, finiteDifferences((v) => f(v, lx64, at64, bt64), x64))).toBeLessThan(1e-4);
    expect(worst(apart.grads[1] as Float32Array, finiteDifferences((v) => f(x64, lx64, v, bt64), at64))).toBeLessThan(1e-4);
    expect(worst(apart.grads[2] as Float32Array, finiteDifferences((v) => f(x64, lx64, at64, v), bt64))).toBeLessThan(1e-4);
    expect(worst(apart.grads[3] as Float32Array, finiteDifferences((v) => f(x64, v, at64, bt64), lx64))).toBeLessThan(1e-4);
    weight.data.dispose();
  });

  it.skipIf(unavailable !== null)('gives the composed tfjs ops\' values and gradients on a float32 weight', async () => {
    const random = seededRandom(23);
    const [m, k, n, r] = [40, 48, 80, 4];
    const wv = randomValues(random, k * n);
    const weightTensor = tf.tensor2d(wv, [k, n]);
    const bias = tf.tensor1d(randomValues(random, n));
    const weight: FrozenWeightTensor = { data: weightTensor, format: 'F32', layout: 'in-out', inFeatures: k, outFeatures: n };
    const given = [randomValues(random, m * k), randomValues(random, k * r), randomValues(random, r * n)];
    const rr = randomValues(random, m * n);
    const inputs = (): tf.Tensor[] => [tf.tensor2d(given[0] as Float32Array, [m, k]), tf.tensor2d(given[1] as Float32Array, [k, r]), tf.tensor2d(given[2] as Float32Array, [r, n])];
    const fused = await valueAndGrads((xs, as, bs) => fusedFrozenLinear(xs as tf.Tensor2D, weight, bias, { At: as as tf.Tensor2D, Bt: bs as tf.Tensor2D, scale: 0.5 }),
      inputs(), tf.tensor2d(rr, [m, n]));
    const composed = await valueAndGrads((xs, as, bs) => tf.add(tf.add(tf.matMul(xs as tf.Tensor2D, weightTensor), bias), tf.mul(tf.matMul(tf.matMul(xs as tf.Tensor2D, as as tf.Tensor2D), bs as tf.Tensor2D), 0.5)),
      inputs(), tf.tensor2d(rr, [m, n]));
    expect(worst(fused.value, composed.value, 1)).toBeLessThan(1e-5);
    fused.grads.forEach((g, i) => expect(worst(g, composed.grads[i] as Float32Array, 1), `gradient ${i}`).toBeLessThan(1e-5));
    tf.dispose([weightTensor, bias]);
  });
});
