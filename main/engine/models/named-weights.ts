/**
 * A model's weights by checkpoint name, read one at a time: export writes a model of any size holding only the
 * weight it is writing (a stored BF16/Q8_0 weight becomes float32 only while it is written), where reading them all
 * first would make a float32 copy of the whole base.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { FrozenWeight } from '../backend/frozen';
import type { LinearLayer } from '../lora/linear';
import type { NamedWeight } from './types';

/** A tensor the model holds as it is in the checkpoint (norms, position tables, biases). */
export function ownTensor(t: tf.Tensor): NamedWeight {
  return { shape: t.shape, read: () => t };
}

/** An embedding table, [vocab, hidden] in the checkpoint, wherever it is held. */
export function tableWeight(table: FrozenWeight): NamedWeight {
  return { shape: [table.outFeatures, table.inFeatures], read: () => table.toTensor('out-in') };
}

/** A linear's weight in checkpoint layout ([in, out] for Conv1D, else [out, in]) with adapters merged apart added in. */
export function linearWeight(layer: LinearLayer): NamedWeight {
  const { inFeatures, outFeatures, fanInFanOut } = layer.spec;
  return { shape: fanInFanOut ? [inFeatures, outFeatures] : [outFeatures, inFeatures], read: () => layer.checkpointWeight() };
}

/** Every weight read at once (full fine-tuning's output, small models): call inside tf.tidy. */
export function readAllWeights(weights: ReadonlyMap<string, NamedWeight>): Map<string, tf.Tensor> {
  return new Map([...weights].map(([name, w]) => [name, w.read()]));
}
