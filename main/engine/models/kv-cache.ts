/**
 * The key/value cache of a decoder: per layer, keys and values [B, Hkv, S, D] of the S positions seen so far.
 * Each forward step concatenates the new positions and disposes the old tensors, so the live tensor count stays
 * at two per layer however long generation runs. A sliding-window layer (window W) keeps only its last W − 1
 * positions between steps: the next query sees itself and the W − 1 keys before it, never an older one, so the
 * cache of such a layer stops growing once generation passes the window.
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

  /** @param windows per layer, the sliding window or null for full attention (default: full everywhere) */
  constructor(
    numLayers: number,
    private readonly windows: readonly (number | null)[] = [],
  ) {
    this.layers = new Array<LayerEntry | null>(numLayers).fill(null);
  }

  get length(): number {
    return this.positions;
  }

  /** Positions the cache holds for `layer` (fewer than `length` once a sliding window has dropped old ones). */
  heldPositions(layer: number): number {
    return this.layers[layer]?.keys.shape[2] ?? 0;
  }

  /**
   * k, v [B, Hkv, T, D] of the new positions -> keys and values [B, Hkv, S, D] this step attends to: the held
   * positions followed by the new ones. Call once per layer per step (inside the forward's tidy), then `advance(T)`.
   */
  append(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): LayerEntry {
    const old = this.layers[layer] ?? null;
    if (old && old.keys.shape[0] !== k.shape[0]) {
      throw new Error(`cache batch is ${old.keys.shape[0]}, the new positions have batch ${k.shape[0]}`);
    }
    const keys = old ? (tf.concat([old.keys, k], 2) as tf.Tensor4D) : k;
    const values = old ? (tf.concat([old.values, v], 2) as tf.Tensor4D) : v;
    const window = this.windows[layer] ?? null;
    const held = keys.shape[2];
    const keep = window === null ? held : Math.min(held, window - 1);
    // The cache owns what it holds (kept outside any tidy); what this step attends to belongs to the caller's tidy.
    const hold = (t: tf.Tensor4D): tf.Tensor4D =>
      tf.keep(keep === held ? t.clone() : (tf.slice(t, [0, 0, held - keep, 0], [-1, -1, keep, -1]) as tf.Tensor4D));
    this.layers[layer] = { keys: hold(keys), values: hold(values) };
    old?.keys.dispose();
    old?.values.dispose();
    return { keys, values };
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
