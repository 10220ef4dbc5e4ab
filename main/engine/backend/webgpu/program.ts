/**
 * How the fused WGSL kernels run on tfjs-backend-webgpu: each is a WebGPUProgram (tfjs writes the bindings, the
 * shape uniforms and the output setters around our `main`) recorded with `backend.runWebGPUProgram`, so it lands
 * in the backend's own command stream between its other dispatches and its buffers are the backend's tensors.
 * A program has one output; kernels with several outputs run one program per output.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

export type KernelArgs = Parameters<tf.KernelFunc>[0];

/** A uniform the program declares in `uniforms` (`name : i32,`), in declaration order. */
export interface Uniform {
  readonly type: 'int32' | 'float32' | 'uint32';
  readonly data: readonly number[];
}

export interface ProgramSpec {
  /** Names the shader in the pipeline cache: include every choice that changes the WGSL text. */
  readonly key: string;
  /** Bound in order as `var<storage, read> name : array<f32|i32>`. */
  readonly inputs: readonly string[];
  readonly outputShape: readonly number[];
  readonly workgroupSize: readonly [number, number, number];
  /**
   * Workgroups to dispatch; tfjs folds counts over the per-dimension limit (65535) into y. `main(index)` receives
   * the global invocation index; kernels with a workgroup per row take the row from WORKGROUP_ROW instead.
   */
  readonly workgroups: number;
  /** WGSL struct fields after tfjs's own, e.g. `rows : i32, scale : f32,`. */
  readonly uniformFields?: string;
  /** The WGSL body: helpers, workgroup variables, and `fn main(index : i32)`. */
  readonly code: string;
}

function toProgram(spec: ProgramSpec): WebGPUProgram {
  return {
    variableNames: [...spec.inputs],
    outputShape: [...spec.outputShape],
    shaderKey: `lorasmith_${spec.key}`,
    dispatchLayout: { x: spec.outputShape.map((_, i) => i) },
    dispatch: [Math.max(1, spec.workgroups), 1, 1],
    workgroupSize: [...spec.workgroupSize],
    ...(spec.uniformFields ? { uniforms: spec.uniformFields } : {}),
    getUserCode: () => spec.code,
  };
}

/** Records `spec` on the backend and returns its output (owned by the caller). */
export function runProgram(
  backend: unknown, spec: ProgramSpec, inputs: readonly tf.TensorInfo[], dtype: 'float32' | 'int32' = 'float32',
  uniforms: readonly Uniform[] = [],
): tf.TensorInfo {
  const gpu = backend as WebGPUBackend;
  return gpu.runWebGPUProgram(toProgram(spec), [...inputs], dtype, uniforms.map((u) => ({ type: u.type, data: [...u.data] })));
}

export const sizeOf = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);

/**
 * `workgroupRow()`: the row of a kernel with one workgroup per row, as tfjs folds large dispatches into y. It goes
 * through workgroupUniformLoad so WGSL's uniformity analysis knows every thread of the workgroup holds the same
 * row (tfjs keeps the builtins in private variables, which the analysis treats as varying): a row past the end may
 * then return before the barriers.
 */
export const WORKGROUP_ROW = `
    var<workgroup> rowOfWorkgroup : i32;
    fn workgroupRow() -> i32 {
      if (localIndex == 0u) { rowOfWorkgroup = i32(workgroupId.y * numWorkgroups.x + workgroupId.x); }
      return workgroupUniformLoad(&rowOfWorkgroup);
    }`;

/** Threads per workgroup for elementwise kernels (flat dispatch, one thread per output element). */
export const FLAT_WORKGROUP = [64, 1, 1] as const;
export const flatWorkgroups = (elements: number): number => Math.ceil(elements / FLAT_WORKGROUP[0]);

/** Frees an intermediate output of a multi-program kernel. */
export function release(backend: unknown, info: tf.TensorInfo): void {
  (backend as WebGPUBackend).disposeData(info.dataId);
}

/**
 * The workgroup-wide sum or max of `value` over a workgroup of `size` threads (a power of two), through the
 * `scratch` array of that size; every thread gets the result. Both barriers are in uniform control flow.
 */
export function reduceSnippet(name: string, op: 'sum' | 'max', size: number): string {
  const combine = op === 'sum' ? 'a + b' : 'max(a, b)';
  return `
    var<workgroup> ${name}Scratch : array<f32, ${size}>;
    fn ${name}(value : f32, lane : i32) -> f32 {
      ${name}Scratch[lane] = value;
      workgroupBarrier();
      for (var stride = ${size / 2}; stride > 0; stride = stride / 2) {
        if (lane < stride) {
          let a = ${name}Scratch[lane];
          let b = ${name}Scratch[lane + stride];
          ${name}Scratch[lane] = ${combine};
        }
        workgroupBarrier();
      }
      let result = ${name}Scratch[0];
      workgroupBarrier();
      return result;
    }`;
}
