/**
 * Softmax cross-entropy per row on webgpu: logsumexp in one pass over the vocabulary (an online max and sum per
 * thread, combined across the workgroup), nll from it, and the gradient coef·(softmax − onehot) from the saved
 * logsumexp in one elementwise pass. Serves whole batches and the row chunks of a chunked loss alike.
 * Shapes: logits [N, V], labels [N] int32, coef [N] -> nll [N], lse [N], dlogits [N, V].
 *
 * A GPU kernel cannot throw: a label outside [0, V) makes that row's nll NaN (so the loss turns NaN), where the
 * native kernel refuses it with an error.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { FUSED_KERNELS } from '../fused-ops';
import { FLAT_WORKGROUP, flatWorkgroups, reduceSnippet, runProgram, WORKGROUP_ROW, type KernelArgs } from './program';

const THREADS = 256;
const DIMS = 'rows : i32, vocab : i32,';
const dims = (rows: number, vocab: number) => [{ type: 'int32', data: [rows] }, { type: 'int32', data: [vocab] }] as const;

function logSumExp(backend: unknown, logits: tf.TensorInfo, rows: number, vocab: number): tf.TensorInfo {
  return runProgram(backend, {
    key: 'cross_entropy_lse',
    inputs: ['logits'],
    outputShape: [rows],
    workgroupSize: [THREADS, 1, 1],
    workgroups: rows,
    uniformFields: DIMS,
    code: `
      ${reduceSnippet('rowMax', 'max', THREADS)}
      ${reduceSnippet('rowSum', 'sum', THREADS)}
      ${WORKGROUP_ROW}
      fn main(index : i32) {
        let row = workgroupRow();
        if (row >= uniforms.rows) { return; }
        let lane = i32(localIndex);
        let base = row * uniforms.vocab;
        // Online: m is this thread's running max, s its sum of exp(value − m).
        var m = -3.402823e+38;
        var s = 0.0;
        for (var v = lane; v < uniforms.vocab; v += ${THREADS}) {
          let value = logits[base + v];
          if (value > m) {
            s = s * exp(m - value) + 1.0;
            m = value;
          } else {
            s += exp(value - m);
          }
        }
        let top = rowMax(m, lane);
        let total = rowSum(s * exp(m - top), lane);
        if (lane == 0) { setOutputAtIndex(row, top + log(total)); }
      }`,
  }, [logits], 'float32', dims(rows, vocab));
}

/** [nll, lse] */
function crossEntropy({ inputs, backend }: KernelArgs): tf.TensorInfo[] {
  const { logits, labels } = inputs as Record<'logits' | 'labels', tf.TensorInfo>;
  const [rows = 0, vocab = 0] = logits.shape;
  const lse = logSumExp(backend, logits, rows, vocab);
  const nll = runProgram(backend, {
    key: 'cross_entropy_nll',
    inputs: ['logits', 'labels', 'lse'],
    outputShape: [rows],
    workgroupSize: FLAT_WORKGROUP,
    workgroups: flatWorkgroups(rows),
    uniformFields: DIMS,
    code: `
      fn main(index : i32) {
        if (index >= uniforms.rows) { return; }
        let label = labels[index];
        if (label < 0 || label >= uniforms.vocab) {
          setOutputAtIndex(index, uniforms.NAN);
          return;
        }
        setOutputAtIndex(index, lse[index] - logits[index * uniforms.vocab + label]);
      }`,
  }, [logits, labels, lse], 'float32', dims(rows, vocab));
  return [nll, lse];
}

function crossEntropyGrad({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { logits, lse, labels, coef } = inputs as Record<'logits' | 'lse' | 'labels' | 'coef', tf.TensorInfo>;
  const [rows = 0, vocab = 0] = logits.shape;
  return runProgram(backend, {
    key: 'cross_entropy_grad',
    inputs: ['logits', 'lse', 'labels', 'coef'],
    outputShape: logits.shape,
    workgroupSize: FLAT_WORKGROUP,
    workgroups: flatWorkgroups(rows * vocab),
    uniformFields: DIMS,
    code: `
      fn main(index : i32) {
        if (index >= uniforms.rows * uniforms.vocab) { return; }
        let row = index / uniforms.vocab;
        let v = index - row * uniforms.vocab;
        let hot = select(0.0, 1.0, v == labels[row]);
        setOutputAtIndex(index, coef[row] * (exp(logits[index] - lse[row]) - hot));
      }`,
  }, [logits, lse, labels, coef], 'float32', dims(rows, vocab));
}

export const CROSS_ENTROPY_KERNELS: ReadonlyMap<string, tf.KernelFunc> = new Map<string, tf.KernelFunc>([
  [FUSED_KERNELS.crossEntropy, crossEntropy as unknown as tf.KernelFunc],
  [FUSED_KERNELS.crossEntropyGrad, crossEntropyGrad as tf.KernelFunc],
]);
