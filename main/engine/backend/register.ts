/**
 * What tfjs-core's Node build leaves out and training needs: the gradient registrations, the chained ops
 * (tensor.add(...) style, used inside some gradients), kernels the wasm backend lacks, and a zero-copy Identity.
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

function replaceKernel(kernelName: string, make: (original: tf.KernelFunc) => tf.KernelFunc): void {
  const config = tf.getKernel(kernelName, 'wasm');
  if (!config) return;
  tf.unregisterKernel(kernelName, 'wasm');
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
  replaceKernel(tf.Identity, () => sharedIdentityWasm as unknown as tf.KernelFunc);
  replaceKernel(tf.Cast, castSharingSameDtype);
}

// At import, so code that selects wasm with tf.setBackend directly gets the kernels too.
registerWasmExtras();
