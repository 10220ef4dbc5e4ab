/**
 * The kernels the models lean on, on every backend variant, against float64 references that know nothing of tfjs:
 * matrix products in every transpose layout (large inner dimensions included: the backward pass of a vocabulary
 * projection), their gradients, a many-input AddN (a global gradient norm), gather and its gradient, read-back.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
import { randomValues, referenceMatMul, seededRandom, worstRelativeError } from '../backend/native-support';
import { forEachVariant } from './variants';

/** float32 accumulation over K terms: relative to Σ|a||b|, a few units of 2⁻²⁴·√K at most. */
const PRODUCT_TOLERANCE = 2e-5;

async function read(t: tf.Tensor): Promise<Float32Array> {
  const data = (await t.data()) as Float32Array;
  t.dispose();
  return data;
}

forEachVariant('kernels', () => {
  const layouts = [
    { m: 16, k: 5000, n: 16, label: 'large K, small output (split-K territory)' },
    { m: 6, k: 32000, n: 16, label: 'vocabulary-sized K, tiny output' },
    { m: 33, k: 70, n: 129, label: 'odd sizes' },
    { m: 64, k: 16, n: 300, label: 'wide output' },
  ];
  for (const { m, k, n, label } of layouts) {
    for (const [transposeA, transposeB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      it(`matMul ${m}×${k}×${n} (${label}), transposeA=${transposeA} transposeB=${transposeB}, matches float64`, async () => {
        const random = seededRandom(m * 7 + k * 13 + n + (transposeA ? 1 : 0) + (transposeB ? 2 : 0));
        const aShape = transposeA ? [k, m] : [m, k];
        const bShape = transposeB ? [n, k] : [k, n];
        const a = randomValues(random, m * k);
        const b = randomValues(random, k * n);
        const got = await read(tf.tidy(() => tf.matMul(tf.tensor2d(a, aShape as [number, number]), tf.tensor2d(b, bShape as [number, number]), transposeA, transposeB)));
        const want = referenceMatMul(a, aShape, b, bShape, transposeA, transposeB);
        expect(worstRelativeError(got, want.values, want.magnitude)).toBeLessThan(PRODUCT_TOLERANCE);
      });
    }
  }

  it('batched matMul with broadcast heads (attention layout) matches float64', async () => {
    const random = seededRandom(5);
    const aShape = [2, 4, 8, 16];
    const bShape = [2, 4, 8, 16];
    const a = randomValues(random, 2 * 4 * 8 * 16);
    const b = randomValues(random, 2 * 4 * 8 * 16);
    const got = await read(tf.tidy(() => tf.matMul(tf.tensor4d(a, aShape as [number, number, number, number]), tf.tensor4d(b, bShape as [number, number, number, number]), false, true)));
    const want = referenceMatMul(a, aShape, b, bShape, false, true);
    expect(worstRelativeError(got, want.values, want.magnitude)).toBeLessThan(PRODUCT_TOLERANCE);
  });

  it('the gradient of x·W w.r.t. x and W is dY·Wᵀ and xᵀ·dY in float64, with a vocabulary-sized W', async () => {
    const [N, C, V] = [16, 16, 8000];
    const random = seededRandom(11);
    const x = randomValues(random, N * C);
    const w = randomValues(random, C * V);
    const dy = randomValues(random, N * V);
    const [gx, gw] = await (async () => {
      const grads = tf.tidy(() => {
        const r = tf.tensor2d(dy, [N, V]);
        const f = (xs: tf.Tensor, ws: tf.Tensor) => tf.sum(tf.mul(tf.matMul(xs as tf.Tensor2D, ws as tf.Tensor2D), r));
        return tf.grads(f)([tf.tensor2d(x, [N, C]), tf.tensor2d(w, [C, V])]);
      });
      return [await read(grads[0] as tf.Tensor), await read(grads[1] as tf.Tensor)];
    })();
    const wantX = referenceMatMul(dy, [N, V], w, [C, V], false, true);
    const wantW = referenceMatMul(x, [N, C], dy, [N, V], true, false);
    expect(worstRelativeError(gx, wantX.values, wantX.magnitude)).toBeLessThan(PRODUCT_TOLERANCE);
    expect(worstRelativeError(gw, wantW.values, wantW.magnitude)).toBeLessThan(PRODUCT_TOLERANCE);
  });

  it('addN over 29 tensors (more than a shader may bind) sums them all', async () => {
    const random = seededRandom(3);
    const parts = Array.from({ length: 29 }, () => randomValues(random, 5));
    const got = await read(tf.tidy(() => tf.addN(parts.map((p) => tf.tensor1d(p)))));
    const want = new Float64Array(5);
    for (const p of parts) for (let i = 0; i < 5; i++) want[i] = (want[i] as number) + (p[i] as number);
    for (let i = 0; i < 5; i++) expect(got[i]).toBeCloseTo(want[i] as number, 5);
  });

  it('a global gradient norm over many tensors (sqrt of addN of sums of squares) is right', async () => {
    const random = seededRandom(4);
    const parts = Array.from({ length: 30 }, (_, i) => randomValues(random, 3 + i));
    const norm = await read(tf.tidy(() => tf.sqrt(tf.addN(parts.map((p) => tf.sum(tf.square(tf.tensor1d(p))))))));
    let want = 0;
    for (const p of parts) for (const v of p) want += v * v;
    expect(norm[0]).toBeCloseTo(Math.sqrt(want), 4);
  });

  it('gather rows and its gradient (a scatter-add of the rows, repeated ids summed) match a JS loop', async () => {
    const [V, C] = [50, 8];
    const random = seededRandom(9);
    const table = randomValues(random, V * C);
    const ids = [3, 49, 0, 3, 17, 3];
    const dy = randomValues(random, ids.length * C);
    const rows = await read(tf.tidy(() => tf.gather(tf.tensor2d(table, [V, C]), tf.tensor1d(ids, 'int32'))));
    const grad = await read(tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, tf.tensor1d(ids, 'int32')), tf.tensor2d(dy, [ids.length, C]))))(tf.tensor2d(table, [V, C]))));
    const wantGrad = new Float64Array(V * C);
    ids.forEach((id, r) => {
      for (let c = 0; c < C; c++) {
        expect(rows[r * C + c]).toBe(table[id * C + c]);
        wantGrad[id * C + c] = (wantGrad[id * C + c] as number) + (dy[r * C + c] as number);
      }
    });
    for (let i = 0; i < V * C; i++) expect(grad[i]).toBeCloseTo(wantGrad[i] as number, 5);
  });

  it('reads back float32 and int32 values exactly, and leaves no tensor behind', async () => {
    const before = tf.memory().numTensors;
    const floats = Float32Array.from([1.5, -2.25, 3e-8, 65504, -0]);
    const ints = Int32Array.from([0, -1, 2147483647, 31999]);
    expect(Array.from(await read(tf.tensor1d(floats)))).toEqual(Array.from(floats));
    const i = tf.tensor1d(ints, 'int32');
    expect(Array.from(await i.data())).toEqual(Array.from(ints));
    i.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
