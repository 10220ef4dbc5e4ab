/**
 * Frozen weights kept on the GPU at their stored precision: the webgpu backend's FrozenStore (../frozen.ts). A
 * BF16 or F16 checkpoint's weights stay 2 bytes a value in GPU buffers (two per 32-bit word, half-words.ts) and the
 * WGSL kernels convert them as they read (linear.ts); F32 ones stay float32. W is kept as the checkpoint holds it,
 * nn.Linear's [out, in], so loading copies the file's bytes once and transposes nothing.
 *
 *   matmul / linear   the frozen linear kernel (x·Wᵀ, plus bias and one LoRA pair when LinearLayer asks)
 *   rows              the embedding lookup: W's rows for token ids, converted
 *   toTensor          W as float32 (export, merge checks): converted on the GPU
 */
import * as tf from '@tensorflow/tfjs-core';
import type { FrozenStore, FrozenWeight, StoreSource, StoredFormat } from '../frozen';
import { fusedFrozenLinear, type FrozenWeightFormat, type FrozenWeightTensor, type LoraPair } from '../fused-ops';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../io/half';
import { halfWords } from './half-words';
import { weightRead } from './linear';
import { FLAT_WORKGROUP, flatWorkgroups, runProgram, type KernelArgs } from './program';

export const GPU_WEIGHT_KERNELS = {
  rows: 'LorasmithGpuWeightRows',
  unpack: 'LorasmithGpuWeightUnpack',
} as const;

export class GpuWeightError extends Error {
  override readonly name = 'GpuWeightError';
  constructor(readonly code: 'GPU_WEIGHT_UNSUPPORTED_FORMAT', message: string) {
    super(message);
  }
}

interface WeightAttrs { format: FrozenWeightFormat; rows: number; cols: number }

/** ids [n] int32 -> W's rows [n, cols] as float32; an id outside [0, rows) gives a row of NaN. */
function gatherRows({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { weight, ids } = inputs as Record<'weight' | 'ids', tf.TensorInfo>;
  const { format, rows, cols } = attrs as unknown as WeightAttrs;
  const n = ids.shape.reduce((p, d) => p * d, 1);
  return runProgram(backend, {
    key: `gpu_weight_rows_${format}`,
    inputs: ['weight', 'ids'],
    outputShape: [n, cols],
    workgroupSize: FLAT_WORKGROUP,
    workgroups: flatWorkgroups(n * cols),
    uniformFields: 'count : i32, rows : i32, cols : i32,',
    code: `
      ${weightRead(format)}
      fn main(index : i32) {
        if (index >= uniforms.count) { return; }
        let at = index / uniforms.cols;
        let id = ids[at];
        if (id < 0 || id >= uniforms.rows) {
          setOutputAtIndex(index, uniforms.NAN);
          return;
        }
        setOutputAtIndex(index, weightAtFlat(id * uniforms.cols + (index - at * uniforms.cols)));
      }`,
  }, [weight, ids], 'float32', [{ type: 'int32', data: [n * cols] }, { type: 'int32', data: [rows] }, { type: 'int32', data: [cols] }]);
}

/** W [rows, cols] as float32. */
function unpack({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { weight } = inputs as Record<'weight', tf.TensorInfo>;
  const { format, rows, cols } = attrs as unknown as WeightAttrs;
  return runProgram(backend, {
    key: `gpu_weight_unpack_${format}`,
    inputs: ['weight'],
    outputShape: [rows, cols],
    workgroupSize: FLAT_WORKGROUP,
    workgroups: flatWorkgroups(rows * cols),
    uniformFields: 'count : i32,',
    code: `
      ${weightRead(format)}
      fn main(index : i32) {
        if (index < uniforms.count) { setOutputAtIndex(index, weightAtFlat(index)); }
      }`,
  }, [weight], 'float32', [{ type: 'int32', data: [rows * cols] }]);
}

export const GPU_WEIGHT_KERNEL_FUNCS: ReadonlyMap<string, tf.KernelFunc> = new Map<string, tf.KernelFunc>([
  [GPU_WEIGHT_KERNELS.rows, gatherRows as tf.KernelFunc],
  [GPU_WEIGHT_KERNELS.unpack, unpack as tf.KernelFunc],
]);

/** A weight W [out, in] in a GPU buffer: float32 values, or F16/BF16 words. Its products' gradients flow to x only. */
class GpuWeight implements FrozenWeight {
  readonly outFeatures: number;
  readonly inFeatures: number;
  private readonly held: FrozenWeightTensor;

  constructor(
    private readonly data: tf.Tensor,
    readonly format: FrozenWeightFormat,
    rows: number,
    cols: number,
    private readonly onDispose: (weight: GpuWeight) => void,
  ) {
    this.outFeatures = rows;
    this.inFeatures = cols;
    this.held = { data, format, layout: 'out-in', inFeatures: cols, outFeatures: rows };
  }

  get bytes(): number {
    return this.data.size * 4;
  }

  private get attrs(): tf.NamedAttrMap {
    return { format: this.format, rows: this.outFeatures, cols: this.inFeatures };
  }

  matmul(x: tf.Tensor2D): tf.Tensor2D {
    return fusedFrozenLinear(x, this.held, null, null);
  }

  linear(x: tf.Tensor2D, bias: tf.Tensor1D | null, lora: LoraPair | null, loraX?: tf.Tensor2D): tf.Tensor2D {
    return fusedFrozenLinear(x, this.held, bias, lora, loraX);
  }

  rows(ids: tf.Tensor1D): tf.Tensor2D {
    return tf.engine().runKernel(GPU_WEIGHT_KERNELS.rows, { weight: this.data, ids }, this.attrs) as tf.Tensor2D;
  }

  toTensor(layout: 'out-in' | 'in-out'): tf.Tensor2D {
    const w = tf.engine().runKernel(GPU_WEIGHT_KERNELS.unpack, { weight: this.data }, this.attrs) as tf.Tensor2D;
    if (layout === 'out-in') return w;
    const t = tf.transpose(w);
    w.dispose();
    return t;
  }

  dispose(): void {
    if (this.data.isDisposed) return;
    this.data.dispose();
    this.onDispose(this);
  }
}

/** The bits of `source` in `format` (F16/BF16 files as they are; float32 rounded to nearest even). */
function halves(source: StoreSource, format: 'F16' | 'BF16'): Uint16Array {
  if (source.dtype === format) return source.data as Uint16Array;
  if (source.dtype !== 'F32') {
    throw new GpuWeightError('GPU_WEIGHT_UNSUPPORTED_FORMAT', `a ${source.dtype} weight cannot be kept as ${format} on the GPU without a float32 step`);
  }
  return format === 'F16' ? f32ToF16(source.data) : f32ToBf16(source.data);
}

/** Float32 values of `source` (F16/BF16 widened exactly). */
function floats(source: StoreSource): Float32Array {
  if (source.dtype === 'F32') return source.data as Float32Array;
  return source.dtype === 'BF16' ? bf16ToF32(source.data as Uint16Array) : f16ToF32(source.data as Uint16Array);
}

export function makeGpuFrozenStore(): FrozenStore {
  const live = new Set<GpuWeight>();
  return {
    detail: 'frozen weights in GPU buffers at their stored precision (F16/BF16 converted inside the WGSL kernels)',
    // The file's precision unless a load asks for bf16 (Q8_0 and Q4_0 are the native store's alone).
    precision: 'stored',
    create(source: StoreSource, format: StoredFormat): FrozenWeight {
      if (format === 'Q8_0' || format === 'Q4_0') {
        throw new GpuWeightError('GPU_WEIGHT_UNSUPPORTED_FORMAT',
          `webgpu keeps frozen weights at F32, F16 or BF16; ${format} is served by the native store on wasm and cpu (choose base precision stored or bf16)`);
      }
      const data = format === 'F32' ? tf.tensor2d(floats(source), [source.rows, source.cols]) : halfWords(halves(source, format));
      const weight = new GpuWeight(data, format, source.rows, source.cols, (w) => live.delete(w));
      live.add(weight);
      return weight;
    },
    liveBytes: () => [...live].reduce((sum, w) => sum + w.bytes, 0),
  };
}
