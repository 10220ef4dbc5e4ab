/**
 * What tfjs-core's Node build leaves out and training needs: the gradient registrations, the chained ops
 * (tensor.add(...) style, used inside some gradients), kernels the wasm backend lacks, and a zero-copy Identity;
 * and for webgpu, kernels made to respect the device's limits.
 *
 * Running the TypeScript sources under plain Node (tsx: the CLI) needs the resolve hook in tfjs-esm-resolve.mjs,
 * because the gradient files are published only as ESM with extensionless imports; bundles and vitest need nothing.
 */
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';

interface WasmLikeBackend {
  incRef(dataId: object): void;
  readSync(dataId: object): tf.backend_util.BackendValues;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): tf.backend_util.TypedArray;
}

/**
 * UnsortedSegmentSum (the gradient of gather, so of every embedding lookup) for backends without it.
 * x [N, ...inner], segmentIds [N] int32 -> [numSegments, ...inner]; ids outside 0..numSegments-1 are dropped, as in TF.
 */
function unsortedSegmentSumWasm({ inputs, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const wasm = backend as WasmLikeBackend;
  const x = inputs.x as tf.TensorInfo;
  const ids = inputs.segmentIds as tf.TensorInfo;
  const numSegments = (attrs as { numSegments: number }).numSegments;
  const data = wasm.readSync(x.dataId) as Float32Array | Int32Array;
  const segments = wasm.readSync(ids.dataId) as Int32Array;
  const rows = ids.shape.reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(ids.shape.length).reduce((a, b) => a * b, 1);
  const out = wasm.makeOutput([numSegments, ...x.shape.slice(ids.shape.length)], x.dtype);
  const result = wasm.typedArrayFromHeap(out);
  result.fill(0);
  for (let r = 0; r < rows; r++) {
    const s = segments[r] as number;
    if (s < 0 || s >= numSegments) continue;
    const from = r * inner;
    const to = s * inner;
    for (let i = 0; i < inner; i++) result[to + i] = (result[to + i] as number) + (data[from + i] as number);
  }
  return out;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

/**
 * Identity (tensor.clone()) that shares the input's memory, as the cpu backend's does: tensors are immutable, so a
 * clone needs no copy. wasm's own Identity copies, and tfjs clones every tensor it saves for the backward pass, so
 * that copy cost 7% of a LoRA step and held a second copy of every saved activation.
 */
function sharedIdentityWasm({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const x = inputs.x as tf.TensorInfo;
  (backend as unknown as WasmLikeBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Cast to the dtype a tensor already has shares it (the gradients of mul and square cast every result). */
function castSharingSameDtype(original: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const x = args.inputs.x as tf.TensorInfo;
    const { dtype } = args.attrs as unknown as tf.CastAttrs;
    if (dtype === x.dtype && dtype !== 'string') return sharedIdentityWasm(args);
    return original(args);
  };
}

function replaceKernelOf(backendName: string, kernelName: string, make: (original: tf.KernelFunc) => tf.KernelFunc): void {
  const config = tf.getKernel(kernelName, backendName);
  if (!config) return;
  tf.unregisterKernel(kernelName, backendName);
  tf.registerKernel({ ...config, kernelFunc: make(config.kernelFunc) });
}

let wasmExtrasRegistered = false;

export function registerWasmExtras(): void {
  if (wasmExtrasRegistered) return;
  wasmExtrasRegistered = true;
  const present = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
  if (!present.has(tf.UnsortedSegmentSum)) {
    tf.registerKernel({ kernelName: tf.UnsortedSegmentSum, backendName: 'wasm', kernelFunc: unsortedSegmentSumWasm as unknown as tf.KernelFunc });
  }
  replaceKernelOf('wasm', tf.Identity, () => sharedIdentityWasm as unknown as tf.KernelFunc);
  replaceKernelOf('wasm', tf.Cast, castSharingSameDtype);
}

// At import, so code that selects wasm with tf.setBackend directly gets the kernels too.
registerWasmExtras();

interface WebgpuLikeBackend {
  readonly device: { readonly limits: { readonly maxStorageBuffersPerShaderStage: number } };
  readonly thresholdToIncreaseWorkgroups?: number;
  disposeData(dataId: object): void;
}

/**
 * AddN within the device's storage-buffer limit. tfjs-webgpu binds every input in one shader, and a device may
 * allow as few as 8 storage buffers per stage (the WebGPU default, which tfjs requests): with more inputs the
 * pipeline is invalid and the result silently stale (a global gradient norm over 29 tensors read back as the
 * loss). Sums groups of at most limit − 1 inputs (one binding is the output), then sums the partial sums.
 */
function addNWithinLimits(original: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const backend = args.backend as unknown as WebgpuLikeBackend;
    const perShader = Math.max(2, backend.device.limits.maxStorageBuffersPerShaderStage - 1);
    let tensors = (args.inputs as unknown as tf.TensorInfo[]).slice();
    const made: tf.TensorInfo[] = [];
    while (tensors.length > perShader) {
      const next: tf.TensorInfo[] = [];
      for (let i = 0; i < tensors.length; i += perShader) {
        const group = tensors.slice(i, i + perShader);
        if (group.length === 1) next.push(group[0] as tf.TensorInfo);
        else {
          const partial = original({ ...args, inputs: group as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo;
          made.push(partial);
          next.push(partial);
        }
      }
      tensors = next;
    }
    const out = original({ ...args, inputs: tensors as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo;
    for (const t of made) backend.disposeData(t.dataId);
    return out;
  };
}

/** tfjs-webgpu's MatMulProgramType.MatMulSmallOutputSizeProgram. */
const SMALL_OUTPUT_PROGRAM = 2;

/**
 * BatchMatMul / _FusedMatMul without tfjs-webgpu's split-K program when B is transposed: that combination returns
 * wrong products ([16, 5000]·[16, 5000]ᵀ off by 275 where the plain product is off by 5e-5, tfjs 4.22), and it is
 * exactly the backward pass of x·W for a large vocabulary (dX = dY·Wᵀ). Where tfjs would pick split-K (few output
 * tiles, batch 1, K ≥ 2000: its own rule, repeated here) the small-output program runs instead.
 */
function matMulWithoutTransposedSplitK(original: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const env = tf.env();
    const forced = env.getNumber('WEBGPU_MATMUL_PROGRAM_TYPE');
    if (!transposeB || forced >= 0) return original(args);
    const outerA = transposeA ? (a.shape[a.shape.length - 1] as number) : (a.shape[a.shape.length - 2] as number);
    const outerB = b.shape[b.shape.length - 2] as number;
    const inner = b.shape[b.shape.length - 1] as number;
    const batch = Math.max(tf.util.sizeFromShape(a.shape.slice(0, -2)), tf.util.sizeFromShape(b.shape.slice(0, -2)));
    const flagThreshold = env.getNumber('WEBGPU_THRESHOLD_TO_INCREASE_WORKGROUPS_FOR_MATMUL');
    const threshold = flagThreshold > 0 ? flagThreshold : ((args.backend as unknown as WebgpuLikeBackend).thresholdToIncreaseWorkgroups ?? Infinity);
    const tiles = batch * Math.ceil(outerA / 32) * Math.ceil(outerB / 32);
    const fewTiles = tiles <= threshold || (outerA <= 8 && tiles <= threshold * 2);
    const splitK = fewTiles && batch * outerA * outerB > 128 && batch === 1 && inner >= 2000;
    if (!splitK) return original(args);
    env.set('WEBGPU_MATMUL_PROGRAM_TYPE', SMALL_OUTPUT_PROGRAM);
    try {
      return original(args);
    } finally {
      env.set('WEBGPU_MATMUL_PROGRAM_TYPE', forced);
    }
  };
}

let webgpuExtrasRegistered = false;

/** Call after @tensorflow/tfjs-backend-webgpu is imported (it registers its kernels at import). */
export function registerWebgpuExtras(): void {
  if (webgpuExtrasRegistered) return;
  webgpuExtrasRegistered = true;
  replaceKernelOf('webgpu', tf.AddN, addNWithinLimits);
  replaceKernelOf('webgpu', tf.BatchMatMul, matMulWithoutTransposedSplitK);
  replaceKernelOf('webgpu', tf._FusedMatMul, matMulWithoutTransposedSplitK);
}
