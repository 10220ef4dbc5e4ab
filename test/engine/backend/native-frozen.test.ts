/**
 * The native frozen-weight store (native/src/weights.c) against float64 code written here: each format's
 * dequantization (F32, BF16, F16, Q8_0, Q4_0 — encoders in format-reference.ts, independent of the addon and the engine),
 * the product x·Wᵀ by both kernels (GEMV and tiled sgemm), its gradient dx = dy·W against central finite
 * differences, and the row gather; on wasm and cpu, 1 and 2 threads, AVX2 and portable kernels, odd sizes.
 *
 * Tolerances: dequantized values must equal the float64 re-implementation exactly (every step is exact or
 * correctly rounded); against the original values BF16 is within 2^-8 relative, F16 within 2^-11 relative
 * (+2^-25 absolute for subnormals), Q8_0 within d/2 + 127·|d − f16(d)| per 32-value block, Q4_0 within |d|/2 (|d|
 * where the code is clamped at 15) + 8·|d − f16(d)|. Products are within
 * 1e-5 of Σ|x||w| (float32 accumulation over `in` terms).
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { activeFrozenStore, type FrozenWeight, type StoredFormat, type StoreSource } from '../../../main/engine/backend/frozen';
import { hasWeightKernels } from '../../../main/engine/backend/native/addon';
import { setFrozenGemvRows } from '../../../main/engine/backend/native/frozen-kernels';
import { registerNativeKernels, unregisterNativeKernels } from '../../../main/engine/backend/native/index';
import { bf16Value, halfValue, q4Row, q8Row } from './format-reference';
import { addonLoad, nativeSkipReason, randomValues, seededRandom, useBackend } from './native-support';

const BACKENDS = ['wasm', 'cpu'] as const;
const FORMATS: readonly StoredFormat[] = ['F32', 'BF16', 'F16', 'Q8_0', 'Q4_0'];
/** [rows = out, cols = in]: single values, odd sizes, partial Q8_0 / Q4_0 blocks, and one that splits across threads. */
const SHAPES: readonly [number, number][] = [[1, 1], [7, 33], [33, 7], [129, 100], [600, 520]];
const ROWS = [1, 3, 4, 5, 17];

const weightAddon = addonLoad.ok && hasWeightKernels(addonLoad.addon) ? addonLoad.addon : null;
const skip = nativeSkipReason('the frozen-weight store', weightAddon !== null);

// ---- float64 references of the formats (format-reference.ts) ----

/** W as each format holds it, and how far from the original each value may be. */
function reference(values: Float32Array, rows: number, cols: number, format: StoredFormat): { w: Float64Array; bound: Float64Array } {
  const w = new Float64Array(values.length);
  const bound = new Float64Array(values.length);
  for (let r = 0; r < rows; r++) {
    if (format === 'Q8_0' || format === 'Q4_0') {
      const q = (format === 'Q8_0' ? q8Row : q4Row)(values.subarray(r * cols, (r + 1) * cols));
      w.set(q.values, r * cols);
      bound.set(q.bound, r * cols);
      continue;
    }
    for (let c = r * cols; c < (r + 1) * cols; c++) {
      const v = values[c] as number;
      w[c] = format === 'BF16' ? bf16Value(v) : format === 'F16' ? halfValue(v) : v;
      bound[c] = format === 'BF16' ? Math.abs(v) * 2 ** -8 : format === 'F16' ? Math.abs(v) * 2 ** -11 + 2 ** -25 : 0;
    }
  }
  return { w, bound };
}

/** x [n, cols]·Wᵀ in float64, and Σ|x||w| per output. */
function product64(x: Float32Array, w: Float64Array, n: number, rows: number, cols: number): { y: Float64Array; scale: Float64Array } {
  const y = new Float64Array(n * rows);
  const scale = new Float64Array(n * rows);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      let abs = 0;
      for (let c = 0; c < cols; c++) {
        const t = (x[i * cols + c] as number) * (w[r * cols + c] as number);
        sum += t;
        abs += Math.abs(t);
      }
      y[i * rows + r] = sum;
      scale[i * rows + r] = abs;
    }
  }
  return { y, scale };
}

function worstScaled(got: ArrayLike<number>, want: Float64Array, scale: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs((got[i] ?? NaN) - (want[i] as number)) / ((scale[i] as number) + 1e-6);
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
  }
  return got.length === want.length ? worst : Infinity;
}

/** Rows [row0, row0 + count) of a stored weight as float32, through its tensor (what export and merge read). */
async function readRows(w: FrozenWeight, row0: number, count: number): Promise<Float32Array> {
  const t = tf.tidy(() => tf.slice(w.toTensor('out-in'), [row0, 0], [count, w.inFeatures]));
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

function storeOf(): NonNullable<ReturnType<typeof activeFrozenStore>> {
  const store = activeFrozenStore();
  if (!store) throw new Error('no frozen store on the active backend');
  return store;
}

function bf16Bits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    const b = bits[i] as number;
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

describe.each(BACKENDS)('frozen-weight store on %s', (backendName) => {
  afterAll(() => unregisterNativeKernels(backendName));

  it.skipIf(skip)('holds each format exactly as the float64 encoders say, and within their stated error of the original', async () => {
    await useBackend(backendName);
    registerNativeKernels(backendName, { threads: 2 });
    const random = seededRandom(11);
    for (const [rows, cols] of SHAPES) {
      const values = randomValues(random, rows * cols);
      values[0] = 3e-6; // a subnormal in F16
      for (const format of FORMATS) {
        const w = storeOf().create({ rows, cols, dtype: 'F32', data: values }, format);
        const got = await readRows(w, 0, rows);
        const { w: want, bound } = reference(values, rows, cols, format);
        // One expect per weight: a few hundred thousand values each.
        let mismatch = -1;
        for (let i = 0; i < want.length && mismatch < 0; i++) {
          const g = got[i] as number;
          if (g !== Math.fround(want[i] as number) || !(Math.abs(g - (values[i] as number)) <= (bound[i] as number))) mismatch = i;
        }
        expect(mismatch, `${format} [${rows}, ${cols}] value ${mismatch}: ${got[mismatch]} against ${want[mismatch]} from ${values[mismatch]}`).toBe(-1);
        const blocks = rows * Math.ceil(cols / 32);
        expect(w.bytes).toBe(format === 'Q8_0' ? rows * cols + blocks * 2 : format === 'Q4_0' ? blocks * 18 : rows * cols * (format === 'F32' ? 4 : 2));
        w.dispose();
      }
    }
  });

  it.skipIf(skip)('keeps a BF16 file as it is and quantizes it to Q8_0 from its bits', async () => {
    await useBackend(backendName);
    registerNativeKernels(backendName, { threads: 1 });
    const values = randomValues(seededRandom(5), 9 * 70);
    const bits = bf16Bits(values);
    const upcast = Float32Array.from(values, (v) => bf16Value(v));
    const source: StoreSource = { rows: 9, cols: 70, dtype: 'BF16', data: bits };
    const kept = storeOf().create(source, 'BF16');
    expect(Array.from(await readRows(kept, 0, 9))).toEqual(Array.from(upcast));
    const q8 = storeOf().create(source, 'Q8_0');
    expect(Array.from(await readRows(q8, 2, 3))).toEqual(Array.from(reference(upcast, 9, 70, 'Q8_0').w.subarray(140, 350), (v) => Math.fround(v)));
    kept.dispose();
    q8.dispose();
  });

  for (const threads of [1, 2]) {
    for (const portable of [false, true]) {
      it.skipIf(skip)(`x·Wᵀ by GEMV and tiled sgemm matches float64 (${threads} thread${threads > 1 ? 's' : ''}, ${portable ? 'portable' : 'AVX2 where present'})`, async () => {
        await useBackend(backendName);
        registerNativeKernels(backendName, { threads });
        const before = weightAddon?.weightForcePortable(portable);
        const random = seededRandom(100 + threads);
        try {
          for (const [rows, cols] of SHAPES) {
            const values = randomValues(random, rows * cols);
            for (const format of FORMATS) {
              const w = storeOf().create({ rows, cols, dtype: 'F32', data: values }, format);
              const { w: wantW } = reference(values, rows, cols, format);
              for (const n of ROWS) {
                const xs = randomValues(random, n * cols);
                const want = product64(xs, wantW, n, rows, cols);
                for (const gemvRows of [Infinity, 0]) {
                  const previous = setFrozenGemvRows(gemvRows);
                  const got = tf.tidy(() => w.matmul(tf.tensor2d(xs, [n, cols])).dataSync());
                  setFrozenGemvRows(previous);
                  const error = worstScaled(got, want.y, want.scale);
                  if (!(error < 1e-5)) throw new Error(`${format} [${rows}, ${cols}] n=${n} ${gemvRows ? 'GEMV' : 'tiled'}: error ${error}`);
                }
              }
              w.dispose();
            }
          }
        } finally {
          weightAddon?.weightForcePortable(before ?? false);
        }
      });
    }
  }

  it.skipIf(skip)('gives x a gradient dy·W that matches finite differences, and W none', async () => {
    await useBackend(backendName);
    registerNativeKernels(backendName, { threads: 2 });
    const random = seededRandom(7);
    const [n, rows, cols] = [3, 37, 45];
    const values = randomValues(random, rows * cols);
    const coef = randomValues(random, n * rows);
    for (const format of FORMATS) {
      const w = storeOf().create({ rows, cols, dtype: 'F32', data: values }, format);
      const { w: wantW } = reference(values, rows, cols, format);
      // loss(x) = Σ coef ⊙ (x·Wᵀ)², non-linear in x so the finite differences test more than the adjoint.
      const loss64 = (x: Float64Array): number => {
        let total = 0;
        for (let i = 0; i < n; i++) {
          for (let r = 0; r < rows; r++) {
            let y = 0;
            for (let c = 0; c < cols; c++) y += (x[i * cols + c] as number) * (wantW[r * cols + c] as number);
            total += (coef[i * rows + r] as number) * y * y;
          }
        }
        return total;
      };
      const x0 = randomValues(random, n * cols);
      const dx = tf.tidy(() => {
        const c = tf.tensor2d(coef, [n, rows]);
        return tf.grad((x: tf.Tensor) => tf.sum(tf.mul(c, tf.square(w.matmul(x as tf.Tensor2D)))))(tf.tensor2d(x0, [n, cols])).dataSync();
      });
      const probe = Float64Array.from(x0);
      for (let i = 0; i < probe.length; i++) {
        const keep = probe[i] as number;
        probe[i] = keep + 1e-5;
        const up = loss64(probe);
        probe[i] = keep - 1e-5;
        const down = loss64(probe);
        probe[i] = keep;
        const fd = (up - down) / 2e-5;
        expect(Math.abs((dx[i] as number) - fd)).toBeLessThan(1e-3 * (Math.abs(fd) + 1));
      }
      w.dispose();
    }
  });

  it.skipIf(skip)('gathers rows for the embedding, refuses ids out of range, and frees what it holds', async () => {
    await useBackend(backendName);
    registerNativeKernels(backendName, { threads: 2 });
    const [rows, cols] = [50, 33];
    const values = randomValues(seededRandom(3), rows * cols);
    const store = storeOf();
    const live = store.liveBytes();
    const weights: FrozenWeight[] = FORMATS.map((format) => store.create({ rows, cols, dtype: 'F32', data: values }, format));
    expect(store.liveBytes() - live).toBe(weights.reduce((s, w) => s + w.bytes, 0));
    const ids = [49, 0, 7, 7, 23];
    for (const [i, w] of weights.entries()) {
      const { w: want } = reference(values, rows, cols, FORMATS[i] as StoredFormat);
      const got = tf.tidy(() => w.rows(tf.tensor1d(ids, 'int32')).dataSync());
      const wantRows = ids.flatMap((id) => Array.from(want.subarray(id * cols, (id + 1) * cols), (v) => Math.fround(v)));
      expect(Array.from(got)).toEqual(wantRows);
      const bad = tf.tensor1d([3, 50], 'int32');
      expect(() => w.rows(bad)).toThrow(expect.objectContaining({ code: 'NATIVE_OUT_OF_BOUNDS' }));
      bad.dispose();
    }
    const tensors = tf.memory().numTensors;
    for (const w of weights) w.dispose();
    expect(store.liveBytes()).toBe(live);
    expect(tf.memory().numTensors).toBe(tensors);
    const x = tf.zeros([1, cols]) as tf.Tensor2D;
    expect(() => weights[0]?.matmul(x)).toThrow(expect.objectContaining({ code: 'NATIVE_BAD_ARGUMENT' }));
    x.dispose();
  });

  it.skipIf(skip)('refuses a short source and a wrong input width with stable codes', async () => {
    await useBackend(backendName);
    registerNativeKernels(backendName, { threads: 1 });
    const store = storeOf();
    expect(() => store.create({ rows: 4, cols: 4, dtype: 'F32', data: new Float32Array(15) }, 'BF16')).toThrow(expect.objectContaining({ code: 'NATIVE_BAD_ARGUMENT' }));
    expect(() => weightAddon?.weightFill(weightAddon.weightCreate(1, 4, 4), 0, 4, new Uint16Array(15), 1)).toThrow(expect.objectContaining({ code: 'NATIVE_OUT_OF_BOUNDS' }));
    const w = store.create({ rows: 4, cols: 4, dtype: 'F32', data: new Float32Array(16) }, 'F16');
    const x = tf.zeros([2, 5]) as tf.Tensor2D;
    expect(() => w.matmul(x)).toThrow(expect.objectContaining({ code: 'NATIVE_BAD_ARGUMENT' }));
    x.dispose();
    w.dispose();
  });
});
