/**
 * Masked next-token cross entropy, the loss LoRA training minimises, computed from the head's input so that the
 * logits [N, V] of a whole batch never exist at once: at a 151,936-token vocabulary, batch 2 × 256 they would be
 * 311 MB, their gradient as much again. The head runs on chunks of the weighted rows only (prompt, template and
 * padding rows have no loss and no gradient), each chunk's logits living only while that chunk is computed.
 *
 * Training differentiates each chunk as it goes (on a tape of its own: tape.ts), keeping the gradient for the
 * hidden states [N, C] and the head's Variables instead of the logits; the backward pass only scales them by the
 * upstream gradient. No logits are recomputed. Where the native fused cross-entropy kernel is registered it
 * serves each chunk (fused-ops.ts); otherwise plain tfjs ops with the gradient written out.
 *
 * Shapes: N rows (B·T, row-major), C channels, V vocabulary, n rows of one chunk.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FUSED_KERNELS, fusedCrossEntropy, hasFusedKernel } from '../backend/fused-ops';
import type { CausalLM } from '../models/types';
import { tokenIds } from '../models/weights';
import type { Batch } from './batching';
import { recomputeBlocks } from './recompute';
import { isolatedGradients } from './tape';

/** The largest logits block a chunk may hold, by default: 64 MiB (110 rows at V = 151,936). */
export const DEFAULT_LOSS_CHUNK_BYTES = 64 * 2 ** 20;

export interface LossTargets {
  /** [N] the next token at each row. */
  readonly labels: Int32Array;
  /** [N] 1 trains, 0 masks (prompt, template, padding, the last position). */
  readonly weights: Float32Array;
}

export interface LossOptions {
  /** Largest [n, V] float32 logits block in bytes; rows per chunk = max(1, floor(chunkBytes / (4·V))). */
  readonly chunkBytes?: number;
  /** LoRA dropout on the head's adapters. */
  readonly training?: boolean;
}

/** What the loss needs of a model: its head and vocabulary size. */
export type LossModel = Pick<CausalLM, 'head' | 'config'>;

/** Rows of logits one chunk computes at a time. */
export function lossChunkRows(vocabSize: number, chunkBytes = DEFAULT_LOSS_CHUNK_BYTES): number {
  return Math.max(1, Math.floor(chunkBytes / (4 * vocabSize)));
}

/** The rows that carry weight, cut into chunks of at most `size`. */
function weightedChunks(weights: Float32Array, size: number): Int32Array[] {
  const rows: number[] = [];
  weights.forEach((w, i) => {
    if (w !== 0) rows.push(i);
  });
  const chunks: Int32Array[] = [];
  for (let i = 0; i < rows.length; i += size) chunks.push(Int32Array.from(rows.slice(i, i + size)));
  return chunks;
}

/** Per-row −log softmax(logits)[label]: logits [n, V], labels [n] int32 -> [n]. */
function rowNll(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  if (hasFusedKernel(FUSED_KERNELS.crossEntropy)) return fusedCrossEntropy(logits, labels);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    const V = x.shape[1];
    const max = tf.max(x, -1) as tf.Tensor1D; // [n]
    const e = tf.exp(tf.sub(x, tileColumns(max, V))); // [n, V], entries in (0, 1]
    const sumE = tf.sum(e, -1) as tf.Tensor1D; // [n]
    const oneHot = tf.oneHot(labels, V); // [n, V]
    save([e, sumE, oneHot]);
    return {
      value: tf.sub(tf.add(tf.log(sumE), max), tf.sum(tf.mul(x, oneHot), -1)) as tf.Tensor1D,
      // d nll / d logits = softmax − onehot, written out: tfjs's chain through max and broadcasts costs several
      // times the forward pass
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [es, sums, hot] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor2D];
        return tf.sub(tf.mul(es, tileColumns(tf.div(dy, sums) as tf.Tensor1D, V)), tf.mul(hot, tileColumns(dy as tf.Tensor1D, V)));
      },
    };
  });
  return op(logits) as tf.Tensor1D;
}

/** [n] -> [n, V] by a K=1 matmul: same-shape elementwise ops then take tfjs's fast path (broadcasting ones are ~20× slower on cpu). */
function tileColumns(column: tf.Tensor1D, V: number): tf.Tensor2D {
  return tf.matMul(tf.reshape(column, [-1, 1]) as tf.Tensor2D, tf.ones([1, V]));
}

/**
 * The training loss: Σ_rows w·nll / max(Σw, 1), a scalar differentiable with respect to `hidden` [N, C] and the
 * head's Variables. Its forward pass computes the gradients chunk by chunk and keeps them ([N, C] plus the head's
 * Variables' sizes); its backward pass returns them times the upstream gradient.
 */
export function headCrossEntropy(model: LossModel, hidden: tf.Tensor2D, targets: LossTargets, options: LossOptions = {}): tf.Scalar {
  const { head } = model;
  const [N, C] = hidden.shape;
  const variables = head.variables();
  const count = Math.max(1, targets.weights.reduce((s, w) => s + w, 0));
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const h = args[0] as tf.Tensor2D;
    let loss: tf.Tensor = tf.scalar(0);
    let dVariables: tf.Tensor[] = variables.map((v) => tf.zerosLike(v));
    const dRows: tf.Tensor[] = []; // [n, C] per chunk, in weighted-row order
    const chunks = weightedChunks(targets.weights, lossChunkRows(model.config.vocabSize, options.chunkBytes));
    for (const rows of chunks) {
      const index = tf.tensor1d(rows, 'int32');
      const labels = tf.tensor1d(rows.map((r) => targets.labels[r] as number), 'int32');
      const coef = tf.tensor1d(Float32Array.from(rows, (r) => (targets.weights[r] as number) / count));
      const hc = tf.gather(h, index); // [n, C]
      const { value, grads } = isolatedGradients(
        () => tf.sum(tf.mul(rowNll(head.logits(hc, options.training), labels), coef)),
        [hc, ...variables],
      );
      const [dh, ...dv] = grads as [tf.Tensor, ...tf.Tensor[]];
      dRows.push(dh);
      const nextLoss = tf.add(loss, value);
      const nextDv = dVariables.map((d, i) => tf.add(d, dv[i] as tf.Tensor));
      tf.dispose([loss, value, index, labels, coef, hc, ...dVariables, ...dv]);
      loss = nextLoss;
      dVariables = nextDv;
    }
    const dHidden = scatterRows(dRows, chunks, N, C);
    tf.dispose(dRows);
    save([dHidden, ...dVariables]);
    return {
      value: loss as tf.Scalar,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => saved.map((g) => tf.mul(g, dy)),
    };
  });
  return op(hidden, ...variables) as tf.Scalar;
}

/** [N, C] with each chunk's rows where they came from and zeros elsewhere, by one gather (no scatter kernel needed). */
function scatterRows(dRows: readonly tf.Tensor[], chunks: readonly Int32Array[], N: number, C: number): tf.Tensor2D {
  return tf.tidy(() => {
    const M = chunks.reduce((s, c) => s + c.length, 0);
    const source = new Int32Array(N).fill(M); // row M of `stacked` is the zero row
    let k = 0;
    for (const chunk of chunks) for (const r of chunk) source[r] = k++;
    const stacked = tf.concat([...dRows, tf.zeros([1, C])], 0); // [M + 1, C]
    return tf.gather(stacked, tf.tensor1d(source, 'int32')) as tf.Tensor2D;
  });
}

/** Σ_rows w·nll (a scalar tensor) and Σ w, forward only and chunked as training: for validation loss over many batches. */
export function headNllSum(model: LossModel, hidden: tf.Tensor2D, targets: LossTargets, options: LossOptions = {}): { sum: tf.Scalar; count: number } {
  const { head } = model;
  const count = targets.weights.reduce((s, w) => s + w, 0);
  const sum = tf.tidy(() => {
    let total: tf.Tensor = tf.scalar(0);
    for (const rows of weightedChunks(targets.weights, lossChunkRows(model.config.vocabSize, options.chunkBytes))) {
      total = tf.tidy(() => {
        const hc = tf.gather(hidden, tf.tensor1d(rows, 'int32'));
        const labels = tf.tensor1d(rows.map((r) => targets.labels[r] as number), 'int32');
        const w = tf.tensor1d(Float32Array.from(rows, (r) => targets.weights[r] as number));
        return tf.add(total, tf.sum(tf.mul(rowNll(head.logits(hc), labels), w)));
      });
    }
    return total as tf.Scalar;
  });
  return { sum, count };
}

function batchIds(batch: Batch): tf.Tensor2D {
  return tokenIds(batch.inputs, [batch.batchSize, batch.seqLen]);
}

export interface BatchLossOptions extends Omit<LossOptions, 'training'> {
  /** Recompute each decoder block's activations in the backward pass instead of keeping them (recompute.ts). */
  readonly recompute?: boolean;
}

/** One batch's training loss through `model` (training mode: LoRA dropout on). */
export function batchLoss(model: CausalLM, batch: Batch, options: BatchLossOptions = {}): tf.Scalar {
  return tf.tidy(() => {
    const hidden = model.hiddenStates(batchIds(batch), { training: true, ...(options.recompute ? { runBlock: recomputeBlocks } : {}) });
    return headCrossEntropy(model, hidden, batch, { ...options, training: true });
  });
}

/** One batch's Σ w·nll and Σ w through `model`, for validation. */
export function batchNllSum(model: CausalLM, batch: Batch, options: Omit<LossOptions, 'training'> = {}): { sum: tf.Scalar; count: number } {
  const hidden = tf.tidy(() => model.hiddenStates(batchIds(batch)));
  try {
    return headNllSum(model, hidden, batch, options);
  } finally {
    hidden.dispose();
  }
}
