/**
 * Where each backend keeps a tensor's floats, as Float32Array views the addon can write through without copies.
 *
 * wasm: every tensor lives in the module's heap at `dataIdMap.get(dataId).memoryOffset`. Allocating may grow the
 *   WebAssembly.Memory, which detaches every earlier view, so the output is allocated before any view is taken.
 * cpu: every tensor's values are a typed array in `data.get(dataId).values`; outputs are fresh Float32Arrays.
 */
import type * as tf from '@tensorflow/tfjs-core';

export interface TensorMemory {
  /** Allocates a float32 output of `shape`; returns it and a view on its floats. */
  allocate(backend: unknown, shape: number[]): { info: tf.TensorInfo; view: Float32Array };
  /** A view on a float32 tensor's floats, or null when they are not plain float32 memory of this backend. */
  view(backend: unknown, info: tf.TensorInfo): Float32Array | null;
  /** A view on an int32 tensor's values (token ids, labels), or null as for `view`. */
  int32View(backend: unknown, info: tf.TensorInfo): Int32Array | null;
  /** Frees an output allocated by `allocate` that will not be returned. */
  release(backend: unknown, info: tf.TensorInfo): void;
}

/** The parts of @tensorflow/tfjs-backend-wasm's BackendWasm used here (its dist types, narrowed). */
interface WasmBackendLike {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  disposeData(dataId: object): boolean;
}

/** The parts of @tensorflow/tfjs-backend-cpu's MathBackendCPU used here. */
interface CpuBackendLike {
  data: { get(dataId: object): { values?: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): tf.TensorInfo;
  disposeData(dataId: object): boolean;
}

const sizeOf = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);

function wasmView(backend: WasmBackendLike, info: tf.TensorInfo): Float32Array | null {
  if (info.dtype !== 'float32') return null;
  const data = backend.dataIdMap.get(info.dataId);
  if (!data) return null;
  return new Float32Array(backend.wasm.HEAPU8.buffer, data.memoryOffset, sizeOf(info.shape));
}

function wasmInt32View(backend: WasmBackendLike, info: tf.TensorInfo): Int32Array | null {
  if (info.dtype !== 'int32') return null;
  const data = backend.dataIdMap.get(info.dataId);
  if (!data) return null;
  return new Int32Array(backend.wasm.HEAPU8.buffer, data.memoryOffset, sizeOf(info.shape));
}

export const wasmMemory: TensorMemory = {
  allocate(backend, shape) {
    const wasm = backend as WasmBackendLike;
    const info = wasm.makeOutput(shape, 'float32');
    const view = wasmView(wasm, info);
    if (!view) throw new Error('wasm backend returned an output without heap memory');
    return { info, view };
  },
  view: (backend, info) => wasmView(backend as WasmBackendLike, info),
  int32View: (backend, info) => wasmInt32View(backend as WasmBackendLike, info),
  release: (backend, info) => void (backend as WasmBackendLike).disposeData(info.dataId),
};

export const cpuMemory: TensorMemory = {
  allocate(backend, shape) {
    const view = new Float32Array(sizeOf(shape));
    return { info: (backend as CpuBackendLike).makeTensorInfo(shape, 'float32', view), view };
  },
  view(backend, info) {
    if (info.dtype !== 'float32') return null;
    const values = (backend as CpuBackendLike).data.get(info.dataId)?.values;
    return values instanceof Float32Array && values.length === sizeOf(info.shape) ? values : null;
  },
  int32View(backend, info) {
    if (info.dtype !== 'int32') return null;
    const values = (backend as CpuBackendLike).data.get(info.dataId)?.values;
    return values instanceof Int32Array && values.length === sizeOf(info.shape) ? values : null;
  },
  release: (backend, info) => void (backend as CpuBackendLike).disposeData(info.dataId),
};
