/**
 * Activation recomputation (gradient checkpointing, Chen et al. 2016) per decoder block: the forward pass keeps
 * only each block's input x [N, C] (and the mask and rotary tables it reads), not the block's activations
 * (q, k, v, attention probabilities [B, H, T, T], the MLP's [N, F] products); the backward pass runs the block
 * again on the kept input, on a tape of its own, and backpropagates through it. One more forward per block per
 * step, for activation memory of one block instead of all of them.
 *
 * The block's Variables (LoRA A and B; every weight in full fine-tuning) are explicit inputs of the custom
 * gradient: tfjs returns gradients only for a custom op's inputs. LoRA dropout draws the same masks again
 * (replayLoraDropout), so the gradients are those of the plain pass.
 */
import * as tf from '@tensorflow/tfjs-core';
import { loraDropoutPosition, replayLoraDropout } from '../lora/linear';
import type { BlockRunner } from '../models/types';
import { isolatedGradients } from './tape';

export const recomputeBlocks: BlockRunner = (block, x, context, variables) => {
  const dropout = loraDropoutPosition();
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const input = args[0] as tf.Tensor2D;
    save([input, ...context]);
    return {
      value: block(input, context),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [kept, ...keptContext] = saved as [tf.Tensor2D, ...tf.Tensor[]];
        return replayLoraDropout(dropout, () => {
          const { value, grads } = isolatedGradients(() => block(kept, keptContext), [kept, ...variables], dy);
          value.dispose();
          return grads;
        });
      },
    };
  });
  return op(x, ...variables) as tf.Tensor2D;
};
