/**
 * The training loss (train/loss.ts) on logits given directly: a head that passes its input through, so checks
 * of the cross-entropy kernels can hand it logits [N, V] and compare with a float64 reference.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../../main/engine/models/types';
import { headCrossEntropy, type LossTargets } from '../../main/engine/train/loss';

/** Σ w·nll / max(Σw, 1) over logits [N, V], with its gradient for the logits; `chunkBytes` as the loss's option. */
export function lossOnLogits(logits: tf.Tensor2D, targets: LossTargets, chunkBytes?: number): tf.Scalar {
  const model = { config: { vocabSize: logits.shape[1] } as ModelConfig, head: { logits: (hidden: tf.Tensor2D) => hidden, variables: () => [] } };
  return headCrossEntropy(model, logits, targets, chunkBytes === undefined ? {} : { chunkBytes });
}
