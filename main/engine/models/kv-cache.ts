/**
 * The key/value cache of a decoder: per layer, keys and values [B, Hkv, S, D] of the S positions seen so far.
 * Each forward step concatenates the new positions and disposes the old tensors, so the live tensor count stays
 * at two per layer however long generation runs.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KVCache } from './types';

interface LayerEntry {
  keys: tf.Tensor4D;
  values: tf.Tensor4D;
}

export class DecoderCache implements KVCache {
  private layers: (LayerEntry | null)[];
  private positions = 0;

  constructor(numLayers: number) {
    this.layers = new Array<LayerEntry | null>(numLayers).fill(null);
  }

  get length(): number {
    return this.positions;
  }

  /**
   * k, v [B, Hkv, T, D] of the new positions -> the full [B, Hkv, S, D] (kept outside any tidy: the cache owns them).
   * Call once per layer per step, then `advance(T)`.
   */
  append(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): LayerEntry {
    const old = this.layers[layer] ?? null;
    if (old && old.keys.shape[0] !== k.shape[0]) {
      throw new Error(`cache batch is ${old.keys.shape[0]}, the new positions have batch ${k.shape[0]}`);
    }
    const entry = {
      keys: tf.keep(old ? (tf.concat([old.keys, k], 2) as tf.Tensor4D) : k.clone()),
      values: tf.keep(old ? (tf.concat([old.values, v], 2) as tf.Tensor4D) : v.clone()),
    };
    old?.keys.dispose();
    old?.values.dispose();
    this.layers[layer] = entry;
    return entry;
  }

  advance(count: number): void {
    this.positions += count;
  }

  dispose(): void {
    for (const entry of this.layers) {
      entry?.keys.dispose();
      entry?.values.dispose();
    }
    this.layers = this.layers.map(() => null);
    this.positions = 0;
  }
}

/** The cache a forward call was given, checked to be one this model made. */
export function asDecoderCache(cache: KVCache | undefined): DecoderCache | null {
  if (cache === undefined) return null;
  if (!(cache instanceof DecoderCache)) throw new Error('this cache was not made by model.createCache()');
  return cache;
}
