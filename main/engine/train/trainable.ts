/** The trainable set of full fine-tuning: every weight of a model loaded with trainable weights (Variables). */
import * as tf from '@tensorflow/tfjs-core';
import type { CausalLM } from '../models/types';
import { TrainError } from './errors';

/**
 * Every Variable among the linears' weights and biases and the model's other named weights, by checkpoint name.
 * Linears are read directly (their weightT [in, out] is the variable; namedWeights may hold a transposed copy).
 */
export function fullTrainableVariables(model: CausalLM): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  const seen = new Set<number>();
  const add = (name: string, t: tf.Tensor | null) => {
    if (t instanceof tf.Variable && !seen.has(t.id)) {
      seen.add(t.id);
      out.set(name, t);
    }
  };
  for (const [path, layer] of model.linears) {
    add(`${path}.weight`, layer.weightT);
    add(`${path}.bias`, layer.bias);
  }
  // namedWeights may build transposed copies: made and dropped inside tidy (Variables survive it untouched)
  tf.tidy(() => {
    for (const [name, t] of model.namedWeights()) add(name, t);
  });
  if (out.size === 0) {
    throw new TrainError('INVALID_TRAIN_CONFIG', 'full fine-tuning needs the model loaded with trainable weights (loadModel(dir, { trainable: true }))');
  }
  return out;
}
