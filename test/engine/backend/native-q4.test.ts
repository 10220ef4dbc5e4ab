/**
 * The frozen-weight store's Q4_0 against llama.cpp (the ggml that node-llama-cpp 3.21.1 ships, through
 * test/support/llama-cpp's ggml-tool) and float64 code that shares nothing with the addon:
 *   - blocks quantized from float32 values and from BF16 bits are byte for byte what ggml's reference quantizer
 *     (ggml_quantize_chunk, quantize_row_q4_0_ref) writes for the same values, edge cases included;
 *   - blocks ggml wrote, filled into a Q4_0 weight (a Q4_0 GGUF's tensors), stay byte for byte as they were, and
 *     read back as ggml's own dequantization of them;
 *   - on those blocks, x·Wᵀ by the GEMV and by the tiled sgemm, dx = dy·W and the row gather equal the blocks decoded
 *     in float64 (format-reference's q4Decode) and multiplied in float64: within 1e-5 of Σ|x||w| for the products
 *     (float32 accumulation over the summed terms), exactly for the gathered values; AVX2 and portable kernels,
 *     1 and 2 threads, on cpu and wasm.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeFrozenStore, type FrozenWeight, type StoreSource } from '../../../main/engine/backend/frozen';
import { hasWeightKernels } from '../../../main/engine/backend/native/addon';
import { NativeFrozenWeight, setFrozenGemvRows } from '../../../main/engine/backend/native/frozen-kernels';
import { registerNativeKernels, unregisterNativeKernels } from '../../../main/engine/backend/native/index';
import { runGgmlTool } from '../../support/llama-cpp';
import { bf16Value, q4Decode } from './format-reference';
import { addonLoad, nativeSkipReason, randomValues, seededRandom, useBackend } from './native-support';

const weightAddon = addonLoad.ok && hasWeightKernels(addonLoad.addon) ? addonLoad.addon : null;
const skip = nativeSkipReason('the Q4_0 frozen weights', weightAddon !== null);
const GGML_Q4_0 = 2;
/** [rows = out, cols = in], whole blocks as GGUF has them; the last splits across two threads. */
const SHAPES: readonly [number, number][] = [[1, 32], [7, 64], [33, 160], [130, 256]];

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'lorasmith-q4-'));
});
afterAll(() => {
  unregisterNativeKernels('cpu');
  unregisterNativeKernels('wasm');
  rmSync(work, { recursive: true, force: true });
});

/** Random values with the cases the quantizer must get right written into the first blocks of the first rows. */
function testValues(rows: number, cols: number, seed: number): Float32Array {
  const values = randomValues(seededRandom(seed), rows * cols);
  const block = (b: number, fill: (j: number) => number) => {
    if ((b + 1) * 32 > values.length) return;
    for (let j = 0; j < 32; j++) values[b * 32 + j] = fill(j);
  };
  block(0, () => 0); // d = 0: every code 8
  block(1, (j) => (j === 3 ? 0.75 : j === 9 ? -0.75 : 0.1 * Math.sin(j))); // a tie of magnitudes: the first one sets the sign
  block(2, (j) => (j === 0 ? -8 : -8 + j / 2)); // d = 1 exactly: values on the half steps between codes
  block(3, (j) => (j === 31 ? 6 : -6 + (j % 13))); // the largest value last and positive: the ones near −m clamp at 15
  block(4, (j) => 1e-6 * (j - 16)); // d below F16's normal range (a subnormal scale)
  block(5, (j) => (j % 2 ? 3e4 : -1e3)); // a wide range
  return values;
}

function ggmlQuantize(values: Float32Array, rows: number, cols: number): Uint8Array {
  const input = join(work, 'values.f32');
  const output = join(work, 'blocks.q4_0');
  writeFileSync(input, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  runGgmlTool(['quant', String(GGML_Q4_0), input, output, String(rows), String(cols)]);
  return new Uint8Array(readFileSync(output));
}

function ggmlDequantize(blocks: Uint8Array, values: number): Float32Array {
  const input = join(work, 'blocks.q4_0');
  const output = join(work, 'values.f32');
  writeFileSync(input, blocks);
  runGgmlTool(['dequant', String(GGML_Q4_0), input, output, String(values)]);
  const bytes = readFileSync(output);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

function storeOf(): NonNullable<ReturnType<typeof activeFrozenStore>> {
  const store = activeFrozenStore();
  if (!store) throw new Error('no frozen store on the active backend');
  return store;
}

function storedBytes(w: FrozenWeight): Uint8Array {
  if (!(w instanceof NativeFrozenWeight)) throw new Error('not a native stored weight');
  return w.readStored(0, w.outFeatures);
}

/** The first 18-byte block where two block arrays differ, in words, or null. */
function firstDifference(ours: Uint8Array, theirs: Uint8Array, cols: number): string | null {
  if (ours.length !== theirs.length) return `${ours.length} bytes against ${theirs.length}`;
  const perRow = cols / 32;
  for (let b = 0; b * 18 < ours.length; b++) {
    const a = Buffer.from(ours.subarray(b * 18, b * 18 + 18));
    const t = Buffer.from(theirs.subarray(b * 18, b * 18 + 18));
    if (!a.equals(t)) return `row ${Math.floor(b / perRow)} block ${b % perRow}: ${a.toString('hex')} against ggml's ${t.toString('hex')}`;
  }
  return null;
}

/** W [rows, cols] from Q4_0 blocks, decoded in float64 row by row. */
function decoded(blocks: Uint8Array, rows: number, cols: number): Float64Array {
  const w = new Float64Array(rows * cols);
  const rowBytes = (cols / 32) * 18;
  for (let r = 0; r < rows; r++) w.set(q4Decode(blocks.subarray(r * rowBytes, (r + 1) * rowBytes), cols), r * cols);
  return w;
}

/** a [n, k] times b: [k, m] (b[t·m + j]) or, with `bRows`, bᵀ where b is [m, k]; float64, with Σ|a||b| per output. */
function product64(a: Float32Array, b: Float64Array, n: number, k: number, m: number, bRows: boolean): { y: Float64Array; scale: Float64Array } {
  const y = new Float64Array(n * m);
  const scale = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let sum = 0;
      let abs = 0;
      for (let t = 0; t < k; t++) {
        const p = (a[i * k + t] as number) * (b[bRows ? j * k + t : t * m + j] as number);
        sum += p;
        abs += Math.abs(p);
      }
      y[i * m + j] = sum;
      scale[i * m + j] = abs;
    }
  }
  return { y, scale };
}

function worstScaled(got: ArrayLike<number>, want: { y: Float64Array; scale: Float64Array }): number {
  let worst = got.length === want.y.length ? 0 : Infinity;
  for (let i = 0; i < want.y.length; i++) {
    const e = Math.abs((got[i] ?? NaN) - (want.y[i] as number)) / ((want.scale[i] as number) + 1e-6);
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
  }
  return worst;
}

describe('Q4_0 blocks against llama.cpp', () => {
  it.skipIf(skip)('quantizes float32 values and BF16 bits to the blocks ggml writes, byte for byte', { timeout: 180_000 }, async () => {
    await useBackend('cpu');
    registerNativeKernels('cpu', { threads: 2 });
    for (const [i, [rows, cols]] of SHAPES.entries()) {
      const values = testValues(rows, cols, 20 + i);
      const theirs = ggmlQuantize(values, rows, cols);
      expect(theirs.length).toBe(rows * (cols / 32) * 18);
      const fromF32 = storeOf().create({ rows, cols, dtype: 'F32', data: values }, 'Q4_0');
      expect(firstDifference(storedBytes(fromF32), theirs, cols), `from F32 [${rows}, ${cols}]`).toBeNull();
      expect(fromF32.bytes).toBe(theirs.length);
      fromF32.dispose();

      // A BF16 checkpoint: quantized from its bits, as ggml quantizes the same values widened to float32.
      const bits = Uint16Array.from(values, (v) => {
        const u = new Uint32Array(Float32Array.of(bf16Value(v)).buffer)[0] as number;
        return u >>> 16;
      });
      const widened = Float32Array.from(values, (v) => bf16Value(v));
      const fromBf16 = storeOf().create({ rows, cols, dtype: 'BF16', data: bits }, 'Q4_0');
      expect(firstDifference(storedBytes(fromBf16), ggmlQuantize(widened, rows, cols), cols), `from BF16 [${rows}, ${cols}]`).toBeNull();
      fromBf16.dispose();
    }
  });

  it.skipIf(skip)('keeps blocks ggml wrote as they are, and reads them as ggml dequantizes them', { timeout: 180_000 }, async () => {
    await useBackend('cpu');
    registerNativeKernels('cpu', { threads: 1 });
    const [rows, cols] = [33, 160];
    const theirs = ggmlQuantize(testValues(rows, cols, 5), rows, cols);
    const source: StoreSource = { rows, cols, dtype: 'Q4_0', data: theirs };
    const w = storeOf().create(source, 'Q4_0');
    expect(firstDifference(storedBytes(w), theirs, cols)).toBeNull();
    const values = tf.tidy(() => w.toTensor('out-in').dataSync());
    expect(Array.from(values)).toEqual(Array.from(ggmlDequantize(theirs, rows * cols)));
    expect(Array.from(values)).toEqual(Array.from(decoded(theirs, rows, cols), (v) => Math.fround(v)));
    w.dispose();
    // Blocks go into a Q4_0 weight only, and must be whole.
    expect(() => storeOf().create(source, 'Q8_0')).toThrow(expect.objectContaining({ code: 'NATIVE_BAD_ARGUMENT' }));
    expect(() => storeOf().create({ ...source, data: theirs.subarray(1) }, 'Q4_0')).toThrow(expect.objectContaining({ code: 'NATIVE_BAD_ARGUMENT' }));
  });
});

describe.each(['cpu', 'wasm'] as const)('the kernels on Q4_0 blocks (%s)', (backendName) => {
  for (const threads of [1, 2]) {
    it.skipIf(skip)(`x·Wᵀ, dy·W and the row gather equal the float64 products of the decoded blocks (${threads} thread${threads > 1 ? 's' : ''})`, { timeout: 180_000 }, async () => {
      await useBackend(backendName);
      registerNativeKernels(backendName, { threads });
      const random = seededRandom(70 + threads);
      for (const [rows, cols] of SHAPES) {
        const blocks = ggmlQuantize(testValues(rows, cols, rows + cols), rows, cols);
        const wantW = decoded(blocks, rows, cols);
        const w = storeOf().create({ rows, cols, dtype: 'Q4_0', data: blocks }, 'Q4_0');
        for (const portable of [false, true]) {
          const before = weightAddon?.weightForcePortable(portable) ?? false;
          try {
            for (const n of [1, 3, 5, 17]) {
              const x = randomValues(random, n * cols);
              const forward = product64(x, wantW, n, cols, rows, true);
              for (const gemvRows of [Infinity, 0]) {
                const previous = setFrozenGemvRows(gemvRows);
                const got = tf.tidy(() => w.matmul(tf.tensor2d(x, [n, cols])).dataSync());
                setFrozenGemvRows(previous);
                const error = worstScaled(got, forward);
                if (!(error < 1e-5)) throw new Error(`[${rows}, ${cols}] n=${n} ${gemvRows ? 'GEMV' : 'tiled'} ${portable ? 'portable' : 'AVX2'}: error ${error}`);
              }
              // The product's gradient for x: with loss Σ dy ⊙ (x·Wᵀ), dx = dy·W.
              const dy = randomValues(random, n * rows);
              const dx = tf.tidy(() => {
                const coef = tf.tensor2d(dy, [n, rows]);
                return tf.grad((input: tf.Tensor) => tf.sum(tf.mul(coef, w.matmul(input as tf.Tensor2D))))(tf.tensor2d(x, [n, cols])).dataSync();
              });
              const error = worstScaled(dx, product64(dy, wantW, n, rows, cols, false));
              if (!(error < 1e-5)) throw new Error(`[${rows}, ${cols}] n=${n} dy·W ${portable ? 'portable' : 'AVX2'}: error ${error}`);
            }
          } finally {
            weightAddon?.weightForcePortable(before);
          }
        }
        const ids = [rows - 1, 0, Math.floor(rows / 2), 0];
        const gathered = tf.tidy(() => w.rows(tf.tensor1d(ids, 'int32')).dataSync());
        expect(Array.from(gathered)).toEqual(ids.flatMap((id) => Array.from(wantW.subarray(id * cols, (id + 1) * cols), (v) => Math.fround(v))));
        w.dispose();
      }
    });
  }
});
