/**
 * The fused WGSL kernels on webgpu (lavapipe here and in CI): every op check (op-checks.ts: values against float64
 * formulas, gradients against finite differences) with the kernels registered; what only a GPU kernel does (a bad
 * label turns its row NaN; the LoRA input apart from x); and the same numbers as the composed tfjs path on webgpu
 * (the kernels unregistered), so the model gives the same results with and without them. On cpu the same checks
 * run through the composed ops, which holds the checks themselves to the reference backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADAMW_KERNEL, FROZEN_LINEAR_KERNEL, FUSED_KERNELS, fusedCrossEntropy, fusedFrozenLinear, hasFusedKernel, type FrozenWeightTensor,
} from '../../../main/engine/backend/fused-ops';
import { initBackend } from '../../../main/engine/backend/index';
import { registerWebgpuKernels, unregisterWebgpuKernels } from '../../../main/engine/backend/webgpu/index';
import { applyRotary, attention, causalMask, gatedActivation, rmsNorm } from '../../../main/engine/models/layers';
import { lossOnLogits } from '../../support/loss-on-logits';
import { dot, finiteDifferences, linear64, randomValues, seededRandom, valueAndGrads, worst, type LinearCase } from './fused-reference';
import { OP_CHECKS, randomFrozenWeight } from './op-checks';
import { startWebgpu, webgpuRequired } from './webgpu-support';

const unavailable = await startWebgpu();
const onWebgpu = unavailable === null;

function expectWithin(outcomes: readonly { what: string; error: number; tolerance: number }[]): void {
  expect(outcomes.length).toBeGreaterThan(0);
  for (const o of outcomes) expect(o.error, o.what).toBeLessThan(o.tolerance);
}

describe('fused WGSL kernels on webgpu', () => {
  beforeAll(async () => {
    if (!onWebgpu) return;
    await startWebgpu();
    registerWebgpuKernels();
  });
  afterAll(() => unregisterWebgpuKernels());

  it('webgpu comes up where lavapipe is installed', () => {
    if (webgpuRequired) expect(unavailable).toBeNull();
    else if (unavailable) console.warn(`webgpu kernel tests skipped: ${unavailable}`);
  });

  it.skipIf(!onWebgpu)('are registered on webgpu and removed again', () => {
    const names = [...Object.values(FUSED_KERNELS), FROZEN_LINEAR_KERNEL, ADAMW_KERNEL];
    for (const name of names) expect(hasFusedKernel(name)).toBe(true);
    unregisterWebgpuKernels();
    for (const name of names) expect(hasFusedKernel(name)).toBe(false);
    registerWebgpuKernels();
  });

  it.skipIf(!onWebgpu).each(OP_CHECKS.map((c) => [c.name, c] as const))('%s: values and gradients against float64', async (_, check) => {
    expectWithin(await check.run());
  });

  it.skipIf(!onWebgpu)('cross-entropy: a label outside the vocabulary makes that row NaN, the others stay exact', async () => {
    const logits = tf.tensor2d([[1, 2, 3, 4], [0, 0, 0, 0], [4, 3, 2, 1]]);
    const labels = tf.tensor1d([3, 7, -1], 'int32');
    const nll = fusedCrossEntropy(logits, labels);
    const got = await nll.data();
    expect(got[0]).toBeCloseTo(Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(4)) - 4, 5);
    expect(Number.isNaN(got[1])).toBe(true);
    expect(Number.isNaN(got[2])).toBe(true);
    tf.dispose([logits, labels, nll]);
  });

  it.skipIf(!onWebgpu)('frozen linear without an adapter, and with the LoRA input apart from x (dropout): values and every gradient', async () => {
    const random = seededRandom(17);
    const c: LinearCase = { m: 6, k: 10, n: 12, r: 2, bias: false };
    const { m, k, n, r } = c;
    const { weight, values } = randomFrozenWeight(random, 'F16', 'out-in', k, n);
    const [x, lx, at, bt, rr] = [randomValues(random, m * k), randomValues(random, m * k), randomValues(random, k * r), randomValues(random, r * n), randomValues(random, m * n)];
    const [x64, lx64, at64, bt64] = [x, lx, at, bt].map((v) => Float64Array.from(v)) as [Float64Array, Float64Array, Float64Array, Float64Array];
    const zeros = new Float64Array(r * n);

    const plain = await valueAndGrads((xs) => fusedFrozenLinear(xs as tf.Tensor2D, weight, null, null), [tf.tensor2d(x, [m, k])], tf.tensor2d(rr, [m, n]));
    expect(worst(plain.value, linear64(x64, x64, values, null, at64, zeros, 0, c))).toBeLessThan(1e-5);
    expect(worst(plain.grads[0] as Float32Array, finiteDifferences((v) => dot(linear64(v, v, values, null, at64, zeros, 0, c), rr), x64))).toBeLessThan(1e-4);

    const apart = await valueAndGrads(
      (xs, as, bs, ls) => fusedFrozenLinear(xs as tf.Tensor2D, weight, null, { At: as as tf.Tensor2D, Bt: bs as tf.Tensor2D, scale: 2 }, ls as tf.Tensor2D),
      [tf.tensor2d(x, [m, k]), tf.tensor2d(at, [k, r]), tf.tensor2d(bt, [r, n]), tf.tensor2d(lx, [m, k])], tf.tensor2d(rr, [m, n]));
    const f = (xv: Float64Array, lv: Float64Array, av: Float64Array, bv: Float64Array): number => dot(linear64(xv, lv, values, null, av, bv, 2, c), rr);
    expect(worst(apart.value, linear64(x64, lx64, values, null, at64, bt64, 2, c))).toBeLessThan(1e-5);
    expect(worst(apart.grads[0] as Float32Array, finiteDifferences((v) => f(v, lx64, at64, bt64), x64))).toBeLessThan(1e-4);
    expect(worst(apart.grads[1] as Float32Array, finiteDifferences((v) => f(x64, lx64, v, bt64), at64))).toBeLessThan(1e-4);
    expect(worst(apart.grads[2] as Float32Array, finiteDifferences((v) => f(x64, lx64, at64, v), bt64))).toBeLessThan(1e-4);
    expect(worst(apart.grads[3] as Float32Array, finiteDifferences((v) => f(x64, v, at64, bt64), lx64))).toBeLessThan(1e-4);
    weight.data.dispose();
  });

  it.skipIf(!onWebgpu)('the model\'s ops give the composed tfjs path\'s values and gradients', async () => {
    const random = seededRandom(91);
    const tensor = (shape: number[], scale = 1): tf.Tensor => tf.tensor(randomValues(random, shape.reduce((a, b) => a * b, 1)).map((v) => v * scale), shape);
    const [b, h, hkv, t, start, d, vocab] = [2, 4, 2, 5, 3, 8, 37];
    const s = start + t;
    const cos = tensor([t, d]) as tf.Tensor2D;
    const sin = tensor([t, d]) as tf.Tensor2D;
    const mask = causalMask(start, t);
    const targets = {
      labels: Int32Array.from({ length: b * t }, () => Math.floor(random() * vocab)),
      weights: Float32Array.from({ length: b * t }, (_, i) => (i % 3 === 0 ? 0 : 1)),
    };
    const wv = tensor([48, 80]) as tf.Tensor2D;
    const bias = tensor([80]) as tf.Tensor1D;
    const frozen: FrozenWeightTensor = { data: wv, format: 'F32', layout: 'in-out', inFeatures: 48, outFeatures: 80 };
    const cases: { name: string; fused: (...xs: tf.Tensor[]) => tf.Tensor; composed?: (...xs: tf.Tensor[]) => tf.Tensor; inputs: () => tf.Tensor[]; outShape: number[] }[] = [
      { name: 'rmsNorm', fused: (x, w) => rmsNorm(x as tf.Tensor, w as tf.Tensor1D, 1e-6), inputs: () => [tensor([b * t, 24]), tensor([24])], outShape: [b * t, 24] },
      { name: 'applyRotary', fused: (x) => applyRotary(x as tf.Tensor4D, cos, sin), inputs: () => [tensor([b, h, t, d])], outShape: [b, h, t, d] },
      { name: 'gatedActivation', fused: (g, u) => gatedActivation(g as tf.Tensor, u as tf.Tensor, 'silu'), inputs: () => [tensor([b * t, 40], 4), tensor([b * t, 40])], outShape: [b * t, 40] },
      {
        name: 'attention', fused: (q, k, v) => attention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, mask),
        inputs: () => [tensor([b, h, t, d], 2), tensor([b, hkv, s, d], 2), tensor([b, hkv, s, d])], outShape: [b, t, h * d],
      },
      { name: 'cross-entropy', fused: (logits) => lossOnLogits(logits as tf.Tensor2D, targets, 4 * 4 * vocab), inputs: () => [tensor([b * t, vocab], 6)], outShape: [] },
      {
        name: 'frozen linear',
        fused: (x, at, bt) => fusedFrozenLinear(x as tf.Tensor2D, frozen, bias, { At: at as tf.Tensor2D, Bt: bt as tf.Tensor2D, scale: 0.5 }),
        composed: (x, at, bt) => tf.add(tf.add(tf.matMul(x as tf.Tensor2D, wv), bias), tf.mul(tf.matMul(tf.matMul(x as tf.Tensor2D, at as tf.Tensor2D), bt as tf.Tensor2D), 0.5)),
        inputs: () => [tensor([40, 48]), tensor([48, 4]), tensor([4, 80])], outShape: [40, 80],
      },
    ];
    for (const { name, fused, composed, inputs, outShape } of cases) {
      const given = inputs();
      const r = tensor(outShape);
      const keep = (xs: tf.Tensor[]): tf.Tensor[] => xs.map((x) => tf.clone(x));
      registerWebgpuKernels();
      const withKernels = await valueAndGrads(fused, keep(given), tf.clone(r));
      unregisterWebgpuKernels();
      expect(hasFusedKernel(FUSED_KERNELS.rmsNorm)).toBe(false);
      const withoutKernels = await valueAndGrads(composed ?? fused, keep(given), tf.clone(r));
      registerWebgpuKernels();
      expect(worst(withKernels.value, withoutKernels.value, 0.1), `${name} value`).toBeLessThan(1e-5);
      withKernels.grads.forEach((g, i) => expect(worst(g, withoutKernels.grads[i] as Float32Array, 0.1), `${name} gradient ${i}`).toBeLessThan(1e-5));
      tf.dispose([...given, r]);
    }
    tf.dispose([cos, sin, mask, wv, bias]);
  });
});

describe('the op checks on cpu (the composed ops)', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it.each(OP_CHECKS.filter((c) => !c.needs).map((c) => [c.name, c] as const))('%s', async (_, check) => {
    expectWithin(await check.run());
  });
});
