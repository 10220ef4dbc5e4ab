/** AdamW with bias correction and global-norm gradient clipping, over a map of named variables. */
import * as tf from '@tensorflow/tfjs-core';

export interface AdamWOptions {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  readonly clipNorm: number;
}

export class AdamW {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private step = 0;

  constructor(private readonly params: Map<string, tf.Variable>, private readonly options: AdamWOptions) {
    for (const [name, p] of params) {
      this.m.set(name, tf.variable(tf.zerosLike(p), false));
      this.v.set(name, tf.variable(tf.zerosLike(p), false));
    }
  }

  /** Applies one update; returns the gradient norm before clipping. Decay skips 1-D weights (norms). */
  apply(grads: tf.NamedTensorMap, learningRate: number): number {
    this.step++;
    const { beta1, beta2, epsilon, weightDecay, clipNorm } = this.options;
    const norm = tf.tidy(() => tf.sqrt(tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g))))).dataSync()[0] as number);
    const scale = norm > clipNorm ? clipNorm / norm : 1;
    const c1 = 1 - Math.pow(beta1, this.step);
    const c2 = 1 - Math.pow(beta2, this.step);
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        const g0 = grads[name];
        if (!g0) continue;
        const g = tf.mul(g0, scale);
        const m = this.m.get(name) as tf.Variable;
        const v = this.v.get(name) as tf.Variable;
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        const update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), epsilon));
        const decay = p.rank > 1 ? weightDecay : 0;
        p.assign(tf.sub(tf.mul(p, 1 - learningRate * decay), tf.mul(update, learningRate)));
      }
    });
    return norm;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}
