/**
 * The native frozen-weight store (native/src/weights.c) as a FrozenStore, and the tfjs kernels that read it on
 * wasm and cpu: x and the output are tensors in the backend's own memory, W stays in the addon's.
 *
 *   LorasmithFrozenMatMul   x [N, in] -> x·Wᵀ [N, out]    (GEMV for a few rows, tiled sgemm otherwise)
 *   LorasmithFrozenMatMulT  dy [N, out] -> dy·W [N, in]   (the product's gradient for x; W gets none)
 *   LorasmithFrozenGather   ids [n] int32 -> rows of W [n, in]
 *
 * Kernels name their weight by a number in their attrs (tfjs attrs are plain values); the handles live here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Q4_0_BLOCK_BYTES, type BasePrecision, type FrozenStore, type FrozenWeight, type StoreSource, type StoredFormat } from '../frozen';
import { NATIVE_FORMATS, type NativeAddon, type NativeWeightHandle, type NativeWeightKernels } from './addon';
import { NativeKernelError } from './errors';
import type { TensorMemory } from './memory';

export const FROZEN_KERNELS = {
  matmul: 'LorasmithFrozenMatMul',
  matmulT: 'LorasmithFrozenMatMulT',
  gather: 'LorasmithFrozenGather',
} as const;

/**
 * Rows of x up to which the product runs as the converting GEMV (one pass over W carries 4 rows) rather than tiled
 * sgemm. Decoding multiplies one row per weight: memory-bound, so reading W once at 2 bytes a value (BF16) or
 * ~1 (Q8_0), ~0.56 (Q4_0) is what counts. bench/frozen.bench.ts measures both kernels for 1..16 rows at the 0.5B shapes.
 */
export const FROZEN_GEMV_ROWS = 4;
let gemvRows = FROZEN_GEMV_ROWS;

/** Moves the routing threshold (benchmarks and tests time or check each kernel); returns the previous one. */
export function setFrozenGemvRows(rows: number): number {
  const previous = gemvRows;
  gemvRows = rows;
  return previous;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];
type WeightAddon = NativeAddon & NativeWeightKernels;

/** Live weights by the number kernels name them with: the addon's handle and W's [rows, cols]. */
const handles = new Map<number, { handle: NativeWeightHandle; rows: number; cols: number }>();
let nextId = 1;

function weightOf(attrs: unknown, kernel: string): { handle: NativeWeightHandle; rows: number; cols: number } {
  const id = (attrs as { weight?: unknown }).weight;
  const entry = typeof id === 'number' ? handles.get(id) : undefined;
  if (!entry) throw new NativeKernelError('NATIVE_BAD_ARGUMENT', `${kernel}: weight ${String(id)} is not in the store (disposed?)`);
  return entry;
}

// The product's gradient, for tfjs's tape: dx = dy·W, and nothing for W (it is no input).
if (!tf.getGradient(FROZEN_KERNELS.matmul)) {
  tf.registerGradient({
    kernelName: FROZEN_KERNELS.matmul,
    gradFunc: (dy: tf.Tensor | tf.Tensor[], _saved: tf.Tensor[], attrs: tf.NamedAttrMap) => ({
      x: () => tf.engine().runKernel(FROZEN_KERNELS.matmulT, { x: dy as tf.Tensor }, attrs) as tf.Tensor,
    }),
  });
}

function views(memory: TensorMemory, backend: unknown, kernel: string, input: tf.TensorInfo, outShape: number[]) {
  // Output first: on wasm an allocation can grow the heap and detach views taken before it.
  const out = memory.allocate(backend, outShape);
  const view = input.dtype === 'int32' ? memory.int32View(backend, input) : memory.view(backend, input);
  if (!view) {
    memory.release(backend, out.info);
    throw new NativeKernelError('NATIVE_BAD_ARGUMENT', `${kernel}: the input must be a ${input.dtype === 'int32' ? 'int32' : 'float32'} tensor of this backend`);
  }
  return { out, view };
}

export function makeFrozenKernels(addon: WeightAddon, memory: TensorMemory): Map<string, tf.KernelFunc> {
  const kernels = new Map<string, tf.KernelFunc>();
  const product = (kernel: string, transpose: boolean) => ({ inputs, backend, attrs }: KernelArgs) => {
    const x = inputs.x as tf.TensorInfo;
    const { handle: weight, rows, cols } = weightOf(attrs, kernel);
    const [n = 0, features = 0] = x.shape;
    const expected = transpose ? rows : cols;
    if (x.shape.length !== 2 || features !== expected) {
      throw new NativeKernelError('NATIVE_BAD_ARGUMENT', `${kernel}: input is [${x.shape.join(', ')}], the weight needs [N, ${expected}]`);
    }
    const { out, view } = views(memory, backend, kernel, x, [n, transpose ? cols : rows]);
    if (transpose) addon.weightMatmulT(weight, view as Float32Array, out.view, n);
    else addon.weightMatmul(weight, view as Float32Array, out.view, n, n <= gemvRows);
    return out.info;
  };
  kernels.set(FROZEN_KERNELS.matmul, product(FROZEN_KERNELS.matmul, false));
  kernels.set(FROZEN_KERNELS.matmulT, product(FROZEN_KERNELS.matmulT, true));
  kernels.set(FROZEN_KERNELS.gather, ({ inputs, backend, attrs }: KernelArgs) => {
    const ids = inputs.ids as tf.TensorInfo;
    const { handle: weight, rows, cols } = weightOf(attrs, FROZEN_KERNELS.gather);
    const n = ids.shape.reduce((p, d) => p * d, 1);
    const { out, view } = views(memory, backend, FROZEN_KERNELS.gather, ids, [n, cols]);
    const bad = addon.weightGather(weight, view as Int32Array, out.view, n);
    if (bad >= 0) {
      memory.release(backend, out.info);
      throw new NativeKernelError('NATIVE_OUT_OF_BOUNDS', `${FROZEN_KERNELS.gather}: id ${(view as Int32Array)[bad]} at position ${bad} is outside [0, ${rows})`);
    }
    return out.info;
  });
  return kernels;
}

const run = (name: string, inputs: tf.NamedTensorMap, id: number): tf.Tensor => tf.engine().runKernel(name, inputs, { weight: id }) as tf.Tensor;

/** A weight in the addon's memory. Its product's gradient flows to x only. */
export class NativeFrozenWeight implements FrozenWeight {
  readonly outFeatures: number;
  readonly inFeatures: number;
  readonly bytes: number;

  constructor(
    private readonly addon: WeightAddon,
    private readonly handle: NativeWeightHandle,
    private readonly id: number,
    readonly format: StoredFormat,
  ) {
    const info = addon.weightInfo(handle);
    this.outFeatures = info.rows;
    this.inFeatures = info.cols;
    this.bytes = info.bytes;
  }

  matmul(x: tf.Tensor2D): tf.Tensor2D {
    return run(FROZEN_KERNELS.matmul, { x }, this.id) as tf.Tensor2D;
  }

  rows(ids: tf.Tensor1D): tf.Tensor2D {
    return run(FROZEN_KERNELS.gather, { ids }, this.id) as tf.Tensor2D;
  }

  /** Rows [row0, row0 + count) of W [out, in] as float32, converted from the native memory (no tensor read). */
  readRows(row0: number, count: number): Float32Array {
    const out = new Float32Array(count * this.inFeatures);
    this.addon.weightDequantize(this.handle, row0, count, out);
    return out;
  }

  /** Rows [row0, row0 + count) as the store holds them, in GGUF's layout of the format (Q4_0: 18-byte blocks). */
  readStored(row0: number, count: number): Uint8Array {
    const out = new Uint8Array(count * storedRowBytes(this.format, this.inFeatures));
    this.addon.weightRead(this.handle, row0, count, out);
    return out;
  }

  toTensor(layout: 'out-in' | 'in-out'): tf.Tensor2D {
    const w = tf.tensor2d(this.readRows(0, this.outFeatures), [this.outFeatures, this.inFeatures]);
    if (layout === 'out-in') return w;
    const t = tf.transpose(w);
    w.dispose();
    return t;
  }

  dispose(): void {
    if (!handles.delete(this.id)) return;
    this.addon.weightFree(this.handle);
  }
}

/** Rows converted per weightFill call when the source is float32 from memory (keeps one call's copy small). */
const FILL_ROWS = 4096;

/** Bytes a row of `cols` values takes in GGUF's layout of `format` (Q8_0 blocks: an F16 scale and 32 int8). */
function storedRowBytes(format: StoredFormat, cols: number): number {
  const blocks = Math.ceil(cols / 32);
  switch (format) {
    case 'F32': return cols * 4;
    case 'BF16': case 'F16': return cols * 2;
    case 'Q8_0': return blocks * 34;
    case 'Q4_0': return blocks * Q4_0_BLOCK_BYTES;
  }
}

export function makeNativeFrozenStore(addon: WeightAddon, precision: BasePrecision): FrozenStore {
  return {
    detail: `native frozen-weight store (${precision === 'stored' ? 'file precision' : precision.toUpperCase()}, ${addon.weightKernels()} kernels)`,
    precision,
    create(source: StoreSource, format: StoredFormat): FrozenWeight {
      const { rows, cols } = source;
      // A row's elements in source.data: its values, or its Q4_0 blocks' bytes.
      const rowLength = source.dtype === 'Q4_0' ? storedRowBytes('Q4_0', cols) : cols;
      if (source.data.length !== rows * rowLength) {
        const what = source.dtype === 'Q4_0' ? 'bytes of Q4_0 blocks' : 'values';
        throw new NativeKernelError('NATIVE_BAD_ARGUMENT', `frozen weight: ${source.data.length} ${what} for a [${rows}, ${cols}] weight (${rows * rowLength} expected)`);
      }
      if (source.dtype === 'Q4_0' && format !== 'Q4_0') {
        throw new NativeKernelError('NATIVE_BAD_ARGUMENT', `frozen weight: Q4_0 blocks are kept as Q4_0, not converted to ${format}`);
      }
      const handle = addon.weightCreate(NATIVE_FORMATS.indexOf(format), rows, cols);
      const sourceFormat = NATIVE_FORMATS.indexOf(source.dtype);
      for (let row0 = 0; row0 < rows; row0 += FILL_ROWS) {
        const count = Math.min(FILL_ROWS, rows - row0);
        addon.weightFill(handle, row0, count, source.data.subarray(row0 * rowLength, (row0 + count) * rowLength), sourceFormat);
      }
      const id = nextId++;
      handles.set(id, { handle, rows, cols });
      return new NativeFrozenWeight(addon, handle, id, format);
    },
    liveBytes: () => addon.weightLiveBytes(),
  };
}
