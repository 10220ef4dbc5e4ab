/**
 * Gradients on a tape of their own, for custom gradients that run part of the model again (activation
 * recomputation, recompute.ts) or differentiate inside their forward function (the chunked loss, loss.ts).
 *
 * tfjs-core keeps one tape per engine: a `tf.grads` nested in a backward function would replace the outer tape
 * and leave it null when done (the outer pass then fails disposing its saved tensors), and inside a custom op's
 * forward function recording is off (kernelDepth > 0). So the engine's tape state is set aside, `gradients` runs
 * from a clean state, and the state is put back. Written against tfjs-core 4.22's Engine (state.activeTape,
 * gradientDepth, kernelDepth: public fields); test/engine/train/recompute.test.ts fails if that changes.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface IsolatedGradients {
  /** f's output. */
  readonly value: tf.Tensor;
  /** d(Σ dy·f)/dx for each of xs, in order; zeros for an x that f does not read. */
  readonly grads: tf.Tensor[];
}

export function isolatedGradients(f: () => tf.Tensor, xs: readonly tf.Tensor[], dy?: tf.Tensor): IsolatedGradients {
  const state = tf.engine().state;
  const outer = { activeTape: state.activeTape, gradientDepth: state.gradientDepth, kernelDepth: state.kernelDepth };
  state.gradientDepth = 0;
  state.kernelDepth = 0;
  try {
    const { value, grads } = tf.engine().gradients(f, [...xs], dy, true);
    return { value, grads: xs.map((x, i) => grads[i] ?? tf.zerosLike(x)) };
  } finally {
    state.activeTape = outer.activeTape;
    state.gradientDepth = outer.gradientDepth;
    state.kernelDepth = outer.kernelDepth;
  }
}
