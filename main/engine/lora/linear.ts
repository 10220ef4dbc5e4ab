/**
 * The linear layer every model is built from: a frozen weight plus any number of LoRA adapters, as PEFT's
 * LoraLayer keeps them (per-adapter dictionaries on each layer, so many adapters share one frozen base).
 *
 *   y = x·Wt + b + Σ_active  weight_i · scaling_i · dropout(x)·At_i·Bt_i
 *
 * Shapes are kept pre-transposed so every product is a plain 2-D matmul (10× faster than a transposed one on wasm):
 *   x [N, in], Wt [in, out], At [in, r] (= PEFT's lora_A.weight [r, in] transposed), Bt [r, out] (= lora_B.weight^T).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LinearSpec } from '../models/types';
import { hashSeed } from '../train/rng';

export interface LoraAdapterWeights {
  /** [in, r] */
  readonly At: tf.Variable<tf.Rank.R2>;
  /** [r, out]; zero at initialisation so a fresh adapter leaves outputs unchanged. */
  readonly Bt: tf.Variable<tf.Rank.R2>;
  readonly rank: number;
  /** alpha / r, or alpha / sqrt(r) with rsLoRA. */
  readonly scaling: number;
  readonly dropout: number;
}

export interface ActiveAdapter {
  readonly name: string;
  /** Mix weight w_i multiplying this adapter's scaling (1 for a plain single adapter). */
  readonly weight: number;
}

export class LinearLayer {
  readonly adapters = new Map<string, LoraAdapterWeights>();
  private activeSet: readonly ActiveAdapter[] = [];

  /**
   * @param weightT [in, out], frozen (a plain tensor, or a Variable in full fine-tuning)
   * @param bias [out] or null
   */
  constructor(
    readonly spec: LinearSpec,
    public weightT: tf.Tensor2D,
    public bias: tf.Tensor1D | null,
  ) {
    if (weightT.shape[0] !== spec.inFeatures || weightT.shape[1] !== spec.outFeatures) {
      throw new Error(
        `${spec.path}: weight is [${weightT.shape.join(', ')}], expected [in=${spec.inFeatures}, out=${spec.outFeatures}]`,
      );
    }
  }

  get active(): readonly ActiveAdapter[] {
    return this.activeSet;
  }

  /** Choose which adapters apply, and with what weight. Names not loaded on this layer are skipped. */
  setActive(active: readonly ActiveAdapter[]): void {
    this.activeSet = active.filter((a) => this.adapters.has(a.name));
  }

  /**
   * x [N, in] -> [N, out]. `dropout`, when given (training), is applied to the LoRA input only, as in PEFT.
   */
  apply(x: tf.Tensor2D, dropout?: (x: tf.Tensor2D, rate: number) => tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      let y = tf.matMul(x, this.weightT);
      if (this.bias) y = tf.add(y, this.bias);
      for (const { name, weight } of this.activeSet) {
        const adapter = this.adapters.get(name);
        if (!adapter || weight === 0) continue;
        const input = dropout && adapter.dropout > 0 ? dropout(x, adapter.dropout) : x;
        // [N, in]·[in, r] -> [N, r]; ·[r, out] -> [N, out]
        const delta = tf.matMul(tf.matMul(input, adapter.At), adapter.Bt);
        y = tf.add(y, tf.mul(delta, adapter.scaling * weight));
      }
      return y as tf.Tensor2D;
    });
  }

  dispose(): void {
    this.weightT.dispose();
    this.bias?.dispose();
    for (const adapter of this.adapters.values()) {
      adapter.At.dispose();
      adapter.Bt.dispose();
    }
    this.adapters.clear();
  }
}

let dropoutSeed = 0;
let dropoutCalls = 0;

/**
 * Restart the LoRA dropout stream: the trainer calls this before each micro-batch with a seed derived from
 * (run seed, step, micro-batch), so masks are reproducible and a resumed run draws the same ones.
 */
export function seedLoraDropout(seed: number): void {
  dropoutSeed = seed >>> 0;
  dropoutCalls = 0;
}

/**
 * The dropout models pass to `apply` in training mode (inverted dropout: kept inputs scale by 1/(1-rate)).
 * Each call draws a fresh mask from the seeded stream.
 */
export function loraDropout(x: tf.Tensor2D, rate: number): tf.Tensor2D {
  const seed = hashSeed(dropoutSeed, dropoutCalls++);
  return tf.dropout(x, rate, undefined, seed) as tf.Tensor2D;
}
