/** Masked next-token cross entropy: the loss LoRA training minimises. */
import * as tf from '@tensorflow/tfjs-core';
import { FUSED_KERNELS, fusedCrossEntropy, hasFusedKernel } from '../backend/fused-ops';

/** [N] -> [N, V] by a K=1 matmul: same-shape elementwise ops then take tfjs's fast path (broadcasting ones are ~20× slower on cpu). */
function tileColumns(column: tf.Tensor1D, V: number): tf.Tensor2D {
  return tf.matMul(tf.reshape(column, [-1, 1]) as tf.Tensor2D, tf.ones([1, V]));
}

/**
 * mean over weighted positions of -log softmax(logits)[label].
 * logits [B, T, V]; labels [B, T] int32 (the next token at each position); weights [B, T] float32 (1 trains,
 * 0 masks prompt, template and padding). The gradient is written out, (softmax - onehot)·w/Σw, because tfjs's
 * own chain through logsumexp (max, equal, broadcasts over [B, T, V]) costs several times the forward pass.
 */
export function maskedCrossEntropy(logits: tf.Tensor3D, labels: tf.Tensor2D, weights: tf.Tensor2D): tf.Scalar {
  const [B, T, V] = logits.shape;
  if (hasFusedKernel(FUSED_KERNELS.crossEntropy)) {
    return tf.tidy(() => {
      const w = tf.reshape(weights, [B * T]);
      const nll = fusedCrossEntropy(tf.reshape(logits, [B * T, V]), tf.reshape(tf.cast(labels, 'int32'), [B * T]));
      return tf.div(tf.sum(tf.mul(nll, w)), tf.maximum(tf.sum(w), 1)) as tf.Scalar;
    });
  }
  const loss = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x3, w2, save] = inputs as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const x = tf.reshape(x3, [B * T, V]);
    const w = tf.reshape(w2, [B * T]) as tf.Tensor1D;
    const oneHot = tf.oneHot(tf.reshape(tf.cast(labels, 'int32'), [B * T]) as tf.Tensor1D, V); // [N, V]
    const max = tf.max(x, -1) as tf.Tensor1D; // [N]
    const e = tf.exp(tf.sub(x, tileColumns(max, V))); // [N, V], entries in (0, 1]
    const sumE = tf.sum(e, -1) as tf.Tensor1D; // [N]
    const nll = tf.sub(tf.add(tf.log(sumE), max), tf.sum(tf.mul(x, oneHot), -1)); // [N]
    const count = tf.maximum(tf.sum(w), 1);
    save([e, sumE, oneHot, w, count]);
    return {
      value: tf.div(tf.sum(tf.mul(nll, w)), count) as tf.Scalar,
      gradFunc: (dy: tf.Scalar, saved: tf.Tensor[]) => {
        const [es, sums, hot, ws, n] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor2D, tf.Tensor1D, tf.Scalar];
        const c = tf.div(tf.mul(ws, dy), n) as tf.Tensor1D; // [N]: dloss/dnll
        const g = tf.sub(tf.mul(es, tileColumns(tf.div(c, sums) as tf.Tensor1D, V)), tf.mul(hot, tileColumns(c, V)));
        return [tf.reshape(g, [B, T, V]), tf.zerosLike(w2)];
      },
    };
  });
  return loss(logits, weights) as tf.Scalar;
}

/** Sum of nll over weighted positions and their count, for exact validation loss over several batches. */
export function maskedNllSum(logits: tf.Tensor3D, labels: tf.Tensor2D, weights: tf.Tensor2D): { sum: tf.Scalar; count: tf.Scalar } {
  return tf.tidy(() => {
    const [B, T, V] = logits.shape;
    const x = tf.reshape(logits, [B * T, V]);
    const w = tf.reshape(weights, [B * T]);
    if (hasFusedKernel(FUSED_KERNELS.crossEntropy)) {
      const nll = fusedCrossEntropy(x as tf.Tensor2D, tf.reshape(tf.cast(labels, 'int32'), [B * T]) as tf.Tensor1D);
      return { sum: tf.sum(tf.mul(nll, w)) as tf.Scalar, count: tf.sum(w) as tf.Scalar };
    }
    const max = tf.max(x, -1) as tf.Tensor1D;
    const sumE = tf.sum(tf.exp(tf.sub(x, tileColumns(max, V))), -1);
    const picked = tf.sum(tf.mul(x, tf.oneHot(tf.reshape(tf.cast(labels, 'int32'), [B * T]) as tf.Tensor1D, V)), -1);
    const nll = tf.sub(tf.add(tf.log(sumE), max), picked);
    return { sum: tf.sum(tf.mul(nll, w)) as tf.Scalar, count: tf.sum(w) as tf.Scalar };
  });
}
