/**
 * LlamaRMSNorm on webgpu: y = x·inv·w with inv = 1/sqrt(mean(x²) + eps) per row, one workgroup per row; its
 * gradient in three dispatches (inv per row; dx per row; dw per column over the rows) where tfjs runs about fifteen.
 * Shapes: x and dy [rows, C] (any leading dims), w [C].
 */
import type * as tf from '@tensorflow/tfjs-core';
import { FUSED_KERNELS } from '../fused-ops';
import {
  FLAT_WORKGROUP, flatWorkgroups, reduceSnippet, release, runProgram, sizeOf, WORKGROUP_ROW, type KernelArgs,
} from './program';

const ROW_UNIFORMS = 'rows : i32, cols : i32, eps : f32,';

function rowThreads(cols: number): number {
  return cols >= 2048 ? 256 : 64;
}

/** Σ x² of this workgroup's row, every thread holding it; `lane` and `row` in scope. */
const sumOfSquares = (threads: number): string => `
      var partial = 0.0;
      for (var c = lane; c < uniforms.cols; c += ${threads}) {
        let v = x[row * uniforms.cols + c];
        partial += v * v;
      }
      let inv = inverseSqrt(rowSum(partial, lane) / f32(uniforms.cols) + uniforms.eps);`;

function dims(x: tf.TensorInfo, weight: tf.TensorInfo): { rows: number; cols: number } {
  const cols = weight.shape[0] ?? 0;
  return { rows: cols === 0 ? 0 : sizeOf(x.shape) / cols, cols };
}

function rmsNorm({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, weight } = inputs as Record<'x' | 'weight', tf.TensorInfo>;
  const { eps } = attrs as { eps: number };
  const { rows, cols } = dims(x, weight);
  const threads = rowThreads(cols);
  return runProgram(backend, {
    key: `rms_norm_${threads}`,
    inputs: ['x', 'weight'],
    outputShape: x.shape,
    workgroupSize: [threads, 1, 1],
    workgroups: rows,
    uniformFields: ROW_UNIFORMS,
    code: `
      ${reduceSnippet('rowSum', 'sum', threads)}${WORKGROUP_ROW}
      fn main(index : i32) {
        let row = workgroupRow();
        if (row >= uniforms.rows) { return; }
        let lane = i32(localIndex);
        ${sumOfSquares(threads)}
        for (var c = lane; c < uniforms.cols; c += ${threads}) {
          let at = row * uniforms.cols + c;
          setOutputAtIndex(at, x[at] * inv * weight[c]);
        }
      }`,
  }, [x, weight], 'float32', uniforms(rows, cols, eps));
}

const uniforms = (rows: number, cols: number, eps: number) => [
  { type: 'int32', data: [rows] }, { type: 'int32', data: [cols] }, { type: 'float32', data: [eps] },
] as const;

/**
 * dx_j = inv·w_j·dy_j − x_j·inv³·(Σ_k w_k·dy_k·x_k)/C per row; dw_j = Σ_rows dy_j·x_j·inv.
 */
function rmsNormGrad({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { x, weight, dy } = inputs as Record<'x' | 'weight' | 'dy', tf.TensorInfo>;
  const { eps } = attrs as { eps: number };
  const { rows, cols } = dims(x, weight);
  const threads = rowThreads(cols);
  const u = uniforms(rows, cols, eps);
  const reduce = reduceSnippet('rowSum', 'sum', threads) + WORKGROUP_ROW;
  // inv [rows]
  const inv = runProgram(backend, {
    key: `rms_norm_inv_${threads}`,
    inputs: ['x'],
    outputShape: [rows],
    workgroupSize: [threads, 1, 1],
    workgroups: rows,
    uniformFields: ROW_UNIFORMS,
    code: `
      ${reduce}
      fn main(index : i32) {
        let row = workgroupRow();
        if (row >= uniforms.rows) { return; }
        let lane = i32(localIndex);
        ${sumOfSquares(threads)}
        if (lane == 0) { setOutputAtIndex(row, inv); }
      }`,
  }, [x], 'float32', u);
  const dx = runProgram(backend, {
    key: `rms_norm_dx_${threads}`,
    inputs: ['x', 'weight', 'dy', 'inv'],
    outputShape: x.shape,
    workgroupSize: [threads, 1, 1],
    workgroups: rows,
    uniformFields: ROW_UNIFORMS,
    code: `
      ${reduce}
      fn main(index : i32) {
        let row = workgroupRow();
        if (row >= uniforms.rows) { return; }
        let lane = i32(localIndex);
        let base = row * uniforms.cols;
        var partial = 0.0;
        for (var c = lane; c < uniforms.cols; c += ${threads}) {
          partial += weight[c] * dy[base + c] * x[base + c];
        }
        let r = inv[row];
        let coef = rowSum(partial, lane) * r * r * r / f32(uniforms.cols);
        for (var c = lane; c < uniforms.cols; c += ${threads}) {
          setOutputAtIndex(base + c, r * weight[c] * dy[base + c] - x[base + c] * coef);
        }
      }`,
  }, [x, weight, dy, inv], 'float32', u);
  // dw: one thread per column, adjacent threads reading adjacent columns of each row.
  const dw = runProgram(backend, {
    key: 'rms_norm_dw',
    inputs: ['x', 'dy', 'inv'],
    outputShape: [cols],
    workgroupSize: FLAT_WORKGROUP,
    workgroups: flatWorkgroups(cols),
    uniformFields: ROW_UNIFORMS,
    code: `
      fn main(index : i32) {
        if (index >= uniforms.cols) { return; }
        var sum = 0.0;
        for (var r = 0; r < uniforms.rows; r++) {
          let at = r * uniforms.cols + index;
          sum += dy[at] * x[at] * inv[r];
        }
        setOutputAtIndex(index, sum);
      }`,
  }, [x, dy, inv], 'float32', u);
  release(backend, inv);
  return [dx, dw];
}

export const RMS_NORM_KERNELS: ReadonlyMap<string, tf.KernelFunc> = new Map<string, tf.KernelFunc>([
  [FUSED_KERNELS.rmsNorm, rmsNorm as tf.KernelFunc],
  [FUSED_KERNELS.rmsNormGrad, rmsNormGrad as unknown as tf.KernelFunc],
]);
