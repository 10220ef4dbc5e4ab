/**
 * Merging an adapter into the frozen weights for zero-overhead inference, and undoing it.
 * In the layer's pre-transposed layout the update is Wt' = Wt + w·s·At·Bt ([in, r]·[r, out] = [in, out]), which
 * is PEFT's W' = W + s·B·A for nn.Linear and its transpose for GPT-2 Conv1D alike: the checkpoint orientation only
 * matters when writing the weights back out.
 * Like PEFT's safe_merge, every merged weight is checked for NaN/Inf before any layer is changed. Unmerging
 * subtracts the same product, restoring W0 within float32 rounding without keeping a copy of it. A weight held in
 * the frozen store (BF16/Q8_0, outside the heap) keeps the merged adapter apart instead (LinearLayer.mergeAdapter).
 */
import * as tf from '@tensorflow/tfjs-core';
import { readFloats } from '../backend/read';
import type { LinearLayer } from '../lora/linear';
import { AdapterError } from './errors';

/**
 * Adds w·s·At·Bt of adapter `name` to the weight of every layer that has it. Two passes: the first computes and
 * checks each merged weight and throws MERGE_NOT_FINITE (naming the module) before anything changed; the second
 * commits. Returns the merged layers. The caller takes the adapter out of the active set.
 */
export async function mergeIntoLayers(layers: Iterable<LinearLayer>, name: string, weight = 1): Promise<LinearLayer[]> {
  const targets = [...layers].filter((layer) => layer.adapters.has(name));
  if (targets.length === 0) throw new AdapterError('ADAPTER_NOT_LOADED', `no layer holds an adapter named '${name}'`);
  if (!Number.isFinite(weight)) throw new AdapterError('INVALID_ARGUMENT', `merge weight must be a finite number, got ${weight}`);
  // One flag per layer (each merged weight freed as soon as its flag is made), all read back at once.
  const finite = await readFloats(tf.tidy(() => tf.cast(tf.stack(targets.map((layer) => layer.mergeFiniteFlag(name, weight))), 'float32')));
  for (const [i, layer] of targets.entries()) {
    if (finite[i] !== 1) {
      throw new AdapterError(
        'MERGE_NOT_FINITE',
        `merging adapter '${name}' would put NaN or Inf into ${layer.spec.path}; nothing was changed (check the adapter's weights and scale)`,
      );
    }
  }
  for (const layer of targets) layer.mergeAdapter(name, weight);
  return targets;
}

/** Subtracts what mergeIntoLayers added (same adapter, same weight). */
export function unmergeFromLayers(layers: Iterable<LinearLayer>, name: string, weight = 1): void {
  for (const layer of layers) {
    if (!layer.adapters.has(name)) continue;
    layer.unmergeAdapter(name, weight);
  }
}
