/**
 * AdamW (Loshchilov & Hutter) as torch.optim.AdamW computes it, with its state kept by variable name so a
 * checkpoint can save and restore it exactly:
 *   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
 *   p ← p − lr · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + ε)
 */
import * as tf from '@tensorflow/tfjs-core';
import { readScalar } from '../backend/read';
import { ADAMW_KERNEL, fusedAdamW, hasFusedKernel } from '../backend/fused-ops';

export interface AdamWOptions {
  readonly beta1?: number;
  readonly beta2?: number;
  readonly epsilon?: number;
  readonly weightDecay?: number;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  /** Optimizer steps taken (t in the bias corrections). */
  stepCount = 0;
  private readonly moments = new Map<string, { m: tf.Variable; v: tf.Variable }>();

  constructor(
    private readonly variables: ReadonlyMap<string, tf.Variable>,
    options: AdamWOptions = {},
  ) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    for (const [name, variable] of variables) {
      // tidy: a Variable keeps its own reference to the zeros' data, so the zeros tensors themselves must go.
      this.moments.set(name, tf.tidy(() => ({
        m: tf.variable(tf.zerosLike(variable), false),
        v: tf.variable(tf.zerosLike(variable), false),
      })));
    }
  }

  /** One update with gradients by variable name (missing ones count as zero). */
  apply(grads: ReadonlyMap<string, tf.Tensor>, lr: number): void {
    this.stepCount++;
    const t = this.stepCount;
    const c1 = 1 - this.beta1 ** t;
    const c2 = 1 - this.beta2 ** t;
    for (const [name, p] of this.variables) {
      const g = grads.get(name);
      const state = this.moments.get(name);
      if (!g || !state) continue;
      if (hasFusedKernel(ADAMW_KERNEL)) {
        const step = { lr, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon, weightDecay: this.weightDecay, correction1: c1, correction2: c2 };
        const updated = fusedAdamW(p, g, state.m, state.v, step);
        [state.m, state.v, p].forEach((target, i) => target.assign(updated[i] as tf.Tensor));
        tf.dispose(updated);
        continue;
      }
      tf.tidy(() => {
        const m = tf.add(tf.mul(state.m, this.beta1), tf.mul(g, 1 - this.beta1));
        const v = tf.add(tf.mul(state.v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        state.m.assign(m);
        state.v.assign(v);
        const decayed = this.weightDecay > 0 ? tf.mul(p, 1 - lr * this.weightDecay) : p;
        const update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), this.epsilon));
        p.assign(tf.sub(decayed, tf.mul(update, lr)));
      });
    }
  }

  /** m and v of every variable, as '<name>.exp_avg' / '<name>.exp_avg_sq' (torch's state names). */
  async stateTensors(): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
    const out = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const [name, { m, v }] of this.moments) {
      out.set(`${name}.exp_avg`, { data: (await m.data()) as Float32Array, shape: m.shape.slice() });
      out.set(`${name}.exp_avg_sq`, { data: (await v.data()) as Float32Array, shape: v.shape.slice() });
    }
    return out;
  }

  /** Restores what stateTensors saved; throws naming the first missing or mis-shaped entry. */
  loadState(stepCount: number, tensors: ReadonlyMap<string, { data: Float32Array; shape: readonly number[] }>): void {
    for (const [name, { m, v }] of this.moments) {
      for (const [suffix, target] of [['exp_avg', m], ['exp_avg_sq', v]] as const) {
        const saved = tensors.get(`${name}.${suffix}`);
        if (!saved || saved.data.length !== target.size) {
          throw new Error(`optimizer state '${name}.${suffix}' is ${saved ? `of size ${saved.data.length}` : 'missing'}, expected ${target.size}`);
        }
        tf.tidy(() => target.assign(tf.tensor(saved.data, target.shape)));
      }
    }
    this.stepCount = stepCount;
  }

  dispose(): void {
    for (const { m, v } of this.moments.values()) {
      m.dispose();
      v.dispose();
    }
    this.moments.clear();
  }
}

/** Global L2 norm of all gradients, and the gradients scaled so it is at most maxNorm (torch's clip_grad_norm_). */
export async function clipByGlobalNorm(grads: Map<string, tf.Tensor>, maxNorm: number): Promise<{ norm: number; clipped: Map<string, tf.Tensor> }> {
  const norm = await readScalar(tf.tidy(() => tf.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))))));
  if (!(maxNorm > 0) || norm <= maxNorm) return { norm, clipped: grads };
  const factor = maxNorm / (norm + 1e-6);
  const clipped = new Map([...grads].map(([k, g]) => [k, tf.mul(g, factor)] as [string, tf.Tensor]));
  for (const g of grads.values()) g.dispose();
  return { norm, clipped };
}
