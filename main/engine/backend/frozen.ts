/**
 * Frozen weights: the base model's linear weights (and its embedding table) that LoRA never changes. A model sees
 * each as a FrozenWeight, W [out, in] in nn.Linear's orientation, whatever holds it:
 *
 *   TensorWeight  a tfjs tensor (any backend; the path without the native addon, and full fine-tuning, where
 *                 the tensor is a trainable Variable), kept pre-transposed [in, out] for linears so every product
 *                 is a plain 2-D matMul, or [out, in] for an untied embedding table
 *   a stored one  from the FrozenStore the active backend registered (the native addon on wasm and cpu:
 *                 memory outside the tensors' heap, at the file's precision (BF16/F16/F32), 8-bit Q8_0 or 4-bit
 *                 Q4_0 blocks; webgpu: GPU buffers at BF16/F16/F32, webgpu/frozen-store.ts), read by kernels
 *                 that convert on the fly;
 *                 its product's gradient is dx only
 *
 * Shapes: N rows of activations, `in` and `out` the linear's features.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LoraPair } from './fused-ops';

/** How a stored weight is kept: the file's own precision, or one asked for. */
export type StoredFormat = 'F32' | 'BF16' | 'F16' | 'Q8_0' | 'Q4_0';
/**
 * What the loader asks of a store: the file's dtype as it is, 16 bits (F32 files become BF16), or GGUF's 8-bit
 * (Q8_0) or 4-bit (Q4_0) blocks of 32 values with an F16 scale.
 */
export type BasePrecision = 'stored' | 'bf16' | 'q8_0' | 'q4_0';
export const BASE_PRECISIONS: readonly BasePrecision[] = ['stored', 'bf16', 'q8_0', 'q4_0'];

export function isBasePrecision(value: string): value is BasePrecision {
  return (BASE_PRECISIONS as readonly string[]).includes(value);
}

export interface FrozenWeight {
  readonly outFeatures: number;
  readonly inFeatures: number;
  /** 'tensor' (a float32 tfjs tensor) or the stored format. */
  readonly format: 'tensor' | StoredFormat;
  /** Bytes it holds (for a tensor, 4 per value on its backend). */
  readonly bytes: number;
  /** x [N, in] -> x·Wᵀ [N, out]. */
  matmul(x: tf.Tensor2D): tf.Tensor2D;
  /**
   * The whole linear in one kernel where the holder has one (webgpu's GPU-held weights): x·Wᵀ + bias +
   * scale·(loraX·At)·Bt, the gradient flowing to x, At, Bt and loraX (fused-ops' fusedFrozenLinear).
   */
  linear?(x: tf.Tensor2D, bias: tf.Tensor1D | null, lora: LoraPair | null, loraX?: tf.Tensor2D): tf.Tensor2D;
  /** Rows of W for ids [n] -> [n, in]: the embedding lookup, a tied head's table included. */
  rows(ids: tf.Tensor1D): tf.Tensor2D;
  /**
   * W as float32 in `layout` ('out-in' is nn.Linear's [out, in], 'in-out' its transpose). May be the weight's own
   * tensor when it already has that layout: call inside tf.tidy and never dispose the result by hand.
   */
  toTensor(layout: 'out-in' | 'in-out'): tf.Tensor2D;
  dispose(): void;
}

/** A float32 tfjs tensor as a FrozenWeight: `tensor` is [in, out] (layout 'in-out') or [out, in] ('out-in'). */
export class TensorWeight implements FrozenWeight {
  readonly format = 'tensor';
  readonly outFeatures: number;
  readonly inFeatures: number;

  constructor(
    readonly tensor: tf.Tensor2D,
    readonly layout: 'in-out' | 'out-in',
  ) {
    const [first = 0, second = 0] = tensor.shape;
    this.inFeatures = layout === 'in-out' ? first : second;
    this.outFeatures = layout === 'in-out' ? second : first;
  }

  get bytes(): number {
    return this.tensor.size * 4;
  }

  matmul(x: tf.Tensor2D): tf.Tensor2D {
    return this.layout === 'in-out' ? tf.matMul(x, this.tensor) : tf.matMul(x, this.tensor, false, true);
  }

  rows(ids: tf.Tensor1D): tf.Tensor2D {
    // In [in, out] the rows of W are columns (the tied head): gather them, then put them upright.
    return this.layout === 'out-in' ? tf.gather(this.tensor, ids) : tf.tidy(() => tf.transpose(tf.gather(this.tensor, ids, 1)));
  }

  toTensor(layout: 'out-in' | 'in-out'): tf.Tensor2D {
    return layout === this.layout ? this.tensor : tf.transpose(this.tensor);
  }

  dispose(): void {
    this.tensor.dispose();
  }
}

/** A checkpoint's own dtypes the store reads: float values, 16-bit words, or GGUF's Q4_0 blocks. */
export type SourceDtype = 'F32' | 'BF16' | 'F16' | 'Q4_0';

/** A weight's values as they come from the checkpoint, W [rows = out, cols = in] row-major. */
export interface StoreSource {
  readonly rows: number;
  readonly cols: number;
  /**
   * The file's dtype: the raw little-endian bits as Uint16Array for BF16/F16, float32 values, or for Q4_0 the
   * blocks' bytes ([rows, cols / 32] blocks of 18 bytes, GGUF's block_q4_0; only into a Q4_0 weight).
   */
  readonly dtype: SourceDtype;
  readonly data: Float32Array | Uint16Array | Uint8Array;
}

/** Where frozen weights live outside the tensors' memory, for one backend. */
export interface FrozenStore {
  /** One line for logs: what holds the weights and which kernels read them. */
  readonly detail: string;
  /** The precision loads get when they ask for none (the host's or CLI's setting). */
  readonly precision: BasePrecision;
  /** Copies `source` into the store in `format` (converting, or quantizing to Q8_0 / Q4_0). */
  create(source: StoreSource, format: StoredFormat): FrozenWeight;
  /** Bytes every weight of this store not yet disposed holds. */
  liveBytes(): number;
}

const stores = new Map<string, FrozenStore>();

/** Called by a backend's kernel registration (native/index.ts) when its store serves `backendName`. */
export function registerFrozenStore(backendName: string, store: FrozenStore): void {
  stores.set(backendName, store);
}

export function unregisterFrozenStore(backendName: string): void {
  stores.delete(backendName);
}

/** The store serving the active backend, or null: then frozen weights are tfjs tensors. */
export function activeFrozenStore(): FrozenStore | null {
  return stores.get(tf.getBackend()) ?? null;
}

/** The format a weight stored as `fileDtype` gets under `precision`. */
export function storedFormatFor(fileDtype: 'F32' | 'BF16' | 'F16', precision: BasePrecision): StoredFormat {
  if (precision === 'q8_0') return 'Q8_0';
  if (precision === 'q4_0') return 'Q4_0';
  if (precision === 'bf16' && fileDtype === 'F32') return 'BF16';
  return fileDtype;
}

/** Bytes of one Q4_0 block: its F16 scale and 32 4-bit codes. */
export const Q4_0_BLOCK_BYTES = 18;

/**
 * Bytes one [rows, cols] weight takes in each representation: Q8_0 keeps an F16 scale per 32-value block beside
 * its int8 values, Q4_0 18 bytes per block (a row's short last block counts whole).
 */
export function frozenMatrixBytes(rows: number, cols: number, format: 'tensor' | StoredFormat): number {
  switch (format) {
    case 'tensor':
    case 'F32':
      return rows * cols * 4;
    case 'BF16':
    case 'F16':
      return rows * cols * 2;
    case 'Q8_0':
      return rows * cols + rows * Math.ceil(cols / 32) * 2;
    case 'Q4_0':
      return rows * Math.ceil(cols / 32) * Q4_0_BLOCK_BYTES;
  }
}

/**
 * Bytes a model's frozen matrices take, per representation: `tensor` is the float32 tfjs path (the wasm heap, or
 * the cpu backend's arrays); the others are the store's (outside the heap). `matrices` lists each linear weight and
 * the embedding table once (a tied head shares the table), with its file dtype.
 */
export function baseWeightBytes(
  matrices: Iterable<{ rows: number; cols: number; dtype: 'F32' | 'BF16' | 'F16' }>,
): Record<'tensor' | BasePrecision, number> {
  const total = { tensor: 0, stored: 0, bf16: 0, q8_0: 0, q4_0: 0 };
  for (const { rows, cols, dtype } of matrices) {
    total.tensor += frozenMatrixBytes(rows, cols, 'tensor');
    for (const precision of BASE_PRECISIONS) total[precision] += frozenMatrixBytes(rows, cols, storedFormatFor(dtype, precision));
  }
  return total;
}
