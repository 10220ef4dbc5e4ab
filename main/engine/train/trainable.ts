/** The trainable set of full fine-tuning: every weight of a model loaded with trainable weights (Variables). */
import * as tf from '@tensorflow/tfjs-core';
import type { CausalLM } from '../models/types';
import { TrainError } from './errors';

/**
 * Every Variable of the model, by checkpoint name, in the model's own layout (linears' weightT [in, out]).
 * Models say which tensors are theirs with trainableVariables(), which allocates nothing; for models without it
 * (hand-made test models), the linears are read directly and namedWeights() is scanned inside tf.tidy, so the
 * transposed copies it may build are dropped (Variables survive tidy untouched).
 */
export function fullTrainableVariables(model: CausalLM): Map<string, tf.Variable> {
  const out = model.trainableVariables ? dedupe(model.trainableVariables()) : scanVariables(model);
  if (out.size === 0) {
    throw new TrainError('INVALID_TRAIN_CONFIG', 'full fine-tuning needs the model loaded with trainable weights (loadModel(dir, { trainable: true }))');
  }
  return out;
}

/** The first name of each Variable: a weight shared under two names (tied embeddings) trains once. */
function dedupe(variables: ReadonlyMap<string, tf.Variable>): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  const seen = new Set<number>();
  for (const [name, v] of variables) {
    if (seen.has(v.id)) continue;
    seen.add(v.id);
    out.set(name, v);
  }
  return out;
}

function scanVariables(model: CausalLM): Map<string, tf.Variable> {
  const found = new Map<string, tf.Variable>();
  const add = (name: string, t: tf.Tensor | null) => {
    if (t instanceof tf.Variable) found.set(name, t);
  };
  for (const [path, layer] of model.linears) {
    add(`${path}.weight`, layer.weightT);
    add(`${path}.bias`, layer.bias);
  }
  tf.tidy(() => {
    for (const [name, t] of model.namedWeights()) if (!found.has(name)) add(name, t);
  });
  return dedupe(found);
}
