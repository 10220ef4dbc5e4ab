/**
 * The linear layer every model is built from: a frozen weight plus any number of LoRA adapters, as PEFT's
 * LoraLayer keeps them (per-adapter dictionaries on each layer, so many adapters share one frozen base).
 *
 *   y = x·Wᵀ + b + Σ_active  weight_i · scaling_i · dropout(x)·At_i·Bt_i
 *
 * W is a FrozenWeight (../backend/frozen.ts): a tfjs tensor kept pre-transposed [in, out] (every product a plain
 * 2-D matmul, 10× faster than a transposed one on wasm), or a stored weight outside the tensors' heap read by
 * converting kernels. Adapters are pre-transposed too:
 *   x [N, in], At [in, r] (= PEFT's lora_A.weight [r, in] transposed), Bt [r, out] (= lora_B.weight^T).
 */
import * as tf from '@tensorflow/tfjs-core';
import { TensorWeight, type FrozenWeight } from '../backend/frozen';
import type { LinearSpec } from '../models/types';
import { hashSeed } from '../train/rng';
import { LoraError } from './errors';

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
   * Adapters merged into a weight that cannot change in place (a stored BF16/Q8_0 one: adding ΔW would round it,
   * and unmerging would not give W0 back). They apply with the base on every call, never with dropout.
   */
  private mergedSet: readonly ActiveAdapter[] = [];
  weight: FrozenWeight;

  /**
   * @param weight a FrozenWeight, or a tensor [in, out] (a plain tensor, or a Variable in full fine-tuning)
   * @param bias [out] or null
   */
  constructor(
    readonly spec: LinearSpec,
    weight: FrozenWeight | tf.Tensor2D,
    public bias: tf.Tensor1D | null,
  ) {
    this.weight = weight instanceof tf.Tensor ? new TensorWeight(weight, 'in-out') : weight;
    if (this.weight.inFeatures !== spec.inFeatures || this.weight.outFeatures !== spec.outFeatures) {
      throw new Error(
        `${spec.path}: weight is [out=${this.weight.outFeatures}, in=${this.weight.inFeatures}], expected [out=${spec.outFeatures}, in=${spec.inFeatures}]`,
      );
    }
  }

  /**
   * The weight as the tensor [in, out] it is on the plain path (and in full fine-tuning, where it is the Variable
   * that trains). A stored weight is no tensor: read it with `weight` (toTensor) instead.
   */
  get weightT(): tf.Tensor2D {
    const w = this.weight;
    if (w instanceof TensorWeight && w.layout === 'in-out') return w.tensor;
    throw new LoraError('WEIGHT_NOT_A_TENSOR', `${this.spec.path}: the weight is held as ${w.format} outside the tensors' memory; read it through layer.weight`);
  }

  get active(): readonly ActiveAdapter[] {
    return this.activeSet;
  }

  /** Adapters merged into this layer without changing its stored weight (see mergedSet). */
  get mergedApart(): readonly ActiveAdapter[] {
    return this.mergedSet;
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
      const whole = this.applyInOneKernel(x, dropout);
      if (whole) return whole;
      let y = this.weight.matmul(x);
      if (this.bias) y = tf.add(y, this.bias);
      for (const { name, weight } of this.mergedSet) y = this.addAdapter(y, x, name, weight);
      for (const { name, weight } of this.activeSet) y = this.addAdapter(y, x, name, weight, dropout);
      return y as tf.Tensor2D;
    });
  }

  /**
   * The layer as one kernel where the weight's holder has one (FrozenWeight.linear: webgpu's GPU-held weights):
   * product, bias and the one adapter that applies. Null where it has none, or more than one adapter applies.
   */
  private applyInOneKernel(x: tf.Tensor2D, dropout?: (x: tf.Tensor2D, rate: number) => tf.Tensor2D): tf.Tensor2D | null {
    if (!this.weight.linear || this.mergedSet.length > 0) return null;
    const applying = this.activeSet.filter((a) => a.weight !== 0 && this.adapters.has(a.name));
    if (applying.length > 1) return null;
    const only = applying[0];
    const adapter = only ? this.adapters.get(only.name) : undefined;
    if (!only || !adapter) return this.weight.linear(x, this.bias, null);
    const input = dropout && adapter.dropout > 0 ? dropout(x, adapter.dropout) : x;
    return this.weight.linear(x, this.bias, { At: adapter.At, Bt: adapter.Bt, scale: adapter.scaling * only.weight }, input);
  }

  /** y + w·s·dropout(x)·At·Bt [N, out]; y itself for a missing or zero-weight adapter. */
  private addAdapter(
    y: tf.Tensor2D, x: tf.Tensor2D, name: string, weight: number, dropout?: (x: tf.Tensor2D, rate: number) => tf.Tensor2D,
  ): tf.Tensor2D {
    const adapter = this.adapters.get(name);
    if (!adapter || weight === 0) return y;
    const input = dropout && adapter.dropout > 0 ? dropout(x, adapter.dropout) : x;
    // [N, in]·[in, r] -> [N, r]; ·[r, out] -> [N, out]
    const delta = tf.matMul(tf.matMul(input, adapter.At), adapter.Bt);
    return tf.add(y, tf.mul(delta, adapter.scaling * weight));
  }

  /**
   * w·s·At·Bt of one adapter, [in, out] (or its transpose [out, in] with layout 'out-in'). The scale goes on the
   * small factor, so the product is the only tensor of the weight's size made.
   */
  adapterDelta(name: string, weight: number, layout: 'in-out' | 'out-in' = 'in-out'): tf.Tensor2D {
    const adapter = this.adapters.get(name);
    if (!adapter) throw new LoraError('ADAPTER_NOT_FOUND', `${this.spec.path} has no adapter '${name}'`);
    return tf.tidy(() => {
      const scaledA = tf.mul(adapter.At, adapter.scaling * weight) as tf.Tensor2D; // [in, r]
      // [in, r]·[r, out], or [out, r]·[r, in]: the transposes are of the rank-r factors only
      return layout === 'in-out' ? tf.matMul(scaledA, adapter.Bt) : tf.matMul(tf.transpose(adapter.Bt), tf.transpose(scaledA));
    });
  }

  /**
   * A bool scalar, true when merging adapter `name` with `weight` keeps every weight finite (PEFT's safe_merge
   * check). A tensor, not a boolean: the caller reads many layers' flags in one asynchronous read.
   */
  mergeFiniteFlag(name: string, weight: number): tf.Scalar {
    return tf.tidy(() => {
      const delta = this.adapterDelta(name, weight);
      return tf.all(tf.isFinite(this.weight instanceof TensorWeight ? tf.add(this.weight.toTensor('in-out'), delta) : delta));
    });
  }

  /**
   * W' = W + w·s·B·A. A tensor weight changes in place (zero overhead afterwards); a stored one keeps the
   * adapter apart, applied with the base (exact to unmerge, and the base stays at its stored precision).
   */
  mergeAdapter(name: string, weight: number): void {
    if (this.weight instanceof TensorWeight) {
      const delta = this.adapterDelta(name, weight);
      this.replaceTensor(tf.tidy(() => tf.add(this.weightT, delta) as tf.Tensor2D));
      delta.dispose();
    } else {
      this.adapterDelta(name, weight).dispose(); // throws for a missing adapter, as the tensor path does
      this.mergedSet = [...this.mergedSet, { name, weight }];
    }
  }

  /** Undoes mergeAdapter with the same name and weight. */
  unmergeAdapter(name: string, weight: number): void {
    const apart = this.mergedSet.findIndex((m) => m.name === name && m.weight === weight);
    if (apart >= 0) {
      this.mergedSet = this.mergedSet.filter((_, i) => i !== apart);
      return;
    }
    const delta = this.adapterDelta(name, weight);
    this.replaceTensor(tf.tidy(() => tf.sub(this.weightT, delta) as tf.Tensor2D));
    delta.dispose();
  }

  private replaceTensor(next: tf.Tensor2D): void {
    const previous = this.weight;
    this.weight = new TensorWeight(next, 'in-out');
    previous.dispose();
  }

  /**
   * The weight in the checkpoint's layout ([in, out] for GPT-2's Conv1D, else nn.Linear's [out, in]) with the
   * adapters merged apart added in. May be the layer's own tensor: call inside tf.tidy.
   */
  checkpointWeight(): tf.Tensor2D {
    const layout = this.spec.fanInFanOut ? 'in-out' : 'out-in';
    const own = this.weight instanceof TensorWeight ? this.weight.tensor : null;
    return tf.tidy(() => {
      let w = this.weight.toTensor(layout);
      for (const { name, weight } of this.mergedSet) {
        // Each partial sum freed once the next exists: W, one ΔW and their sum at most, whatever the adapters.
        const delta = this.adapterDelta(name, weight, layout);
        const sum = tf.add(w, delta) as tf.Tensor2D;
        delta.dispose();
        if (w !== own) w.dispose();
        w = sum;
      }
      return w;
    });
  }

  dispose(): void {
    this.weight.dispose();
    this.bias?.dispose();
    for (const adapter of this.adapters.values()) {
      adapter.At.dispose();
      adapter.Bt.dispose();
    }
    this.adapters.clear();
    this.mergedSet = [];
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
 * Runs `f` with the dropout stream where it stood when `position` was taken (loraDropoutPosition), then puts it
 * back: activation recomputation runs a block again in the backward pass and must draw the same masks.
 */
export function replayLoraDropout<T>(position: LoraDropoutPosition, f: () => T): T {
  const now = { seed: dropoutSeed, calls: dropoutCalls };
  dropoutSeed = position.seed;
  dropoutCalls = position.calls;
  try {
    return f();
  } finally {
    dropoutSeed = now.seed;
    dropoutCalls = now.calls;
  }
}

export interface LoraDropoutPosition {
  readonly seed: number;
  readonly calls: number;
}

export function loraDropoutPosition(): LoraDropoutPosition {
  return { seed: dropoutSeed, calls: dropoutCalls };
}

/**
 * The dropout models pass to `apply` in training mode (inverted dropout: kept inputs scale by 1/(1-rate)).
 * Each call draws a fresh mask from the seeded stream.
 */
export function loraDropout(x: tf.Tensor2D, rate: number): tf.Tensor2D {
  const seed = hashSeed(dropoutSeed, dropoutCalls++);
  return tf.dropout(x, rate, undefined, seed) as tf.Tensor2D;
}
