import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { useCpu } from '../lora/setup';
import { AdamW, clipByGlobalNorm } from '../../../main/engine/train/optimizer';
import { learningRateAt } from '../../../main/engine/train/schedule';

beforeAll(useCpu);

describe('AdamW', () => {
  it('matches a float64 transcription of torch.optim.AdamW over three steps', () => {
    const p0 = [0.5, -1.2, 2.0];
    const grads = [[0.1, -0.3, 0.2], [0.05, 0.4, -0.1], [-0.2, 0.1, 0.3]];
    const [lr, b1, b2, eps, wd] = [0.01, 0.9, 0.999, 1e-8, 0.1];
    const p = p0.slice(), m = [0, 0, 0], v = [0, 0, 0];
    grads.forEach((g, s) => {
      const t = s + 1;
      for (let i = 0; i < 3; i++) {
        p[i] = (p[i] as number) * (1 - lr * wd);
        m[i] = b1 * (m[i] as number) + (1 - b1) * (g[i] as number);
        v[i] = b2 * (v[i] as number) + (1 - b2) * (g[i] as number) ** 2;
        const mh = (m[i] as number) / (1 - b1 ** t), vh = (v[i] as number) / (1 - b2 ** t);
        p[i] = (p[i] as number) - (lr * mh) / (Math.sqrt(vh) + eps);
      }
    });
    const variable = tf.variable(tf.tensor1d(p0));
    const opt = new AdamW(new Map([['w', variable]]), { weightDecay: wd });
    for (const g of grads) {
      const gt = tf.tensor1d(g);
      opt.apply(new Map([['w', gt]]), lr);
      gt.dispose();
    }
    Array.from(variable.dataSync()).forEach((x, i) => expect(x).toBeCloseTo(p[i] as number, 6));
    opt.dispose();
    variable.dispose();
  });
});

describe('AdamW memory', () => {
  it('frees everything it allocated when disposed', () => {
    const w = tf.variable(tf.ones([3, 4]));
    const before = tf.memory().numTensors;
    const optimizer = new AdamW(new Map([['w', w]]));
    optimizer.apply(new Map([['w', tf.onesLike(w)]]), 0.1);
    optimizer.dispose();
    expect(tf.memory().numTensors).toBe(before + 1); // + the gradient the test made
    w.dispose();
  });
});

describe('clipByGlobalNorm', () => {
  it('scales all gradients together to the max norm, leaves small ones alone', async () => {
    const grads = new Map([['a', tf.tensor1d([3, 0])], ['b', tf.tensor1d([0, 4])]]);
    const { norm, clipped } = await clipByGlobalNorm(grads, 1);
    expect(norm).toBeCloseTo(5, 5);
    expect(Array.from(clipped.get('a')?.dataSync() ?? [])[0]).toBeCloseTo(0.6, 5);
    expect(Array.from(clipped.get('b')?.dataSync() ?? [])[1]).toBeCloseTo(0.8, 5);
    const small = new Map([['a', tf.tensor1d([0.3])]]);
    expect((await clipByGlobalNorm(small, 1)).clipped.get('a')).toBe(small.get('a'));
  });
});

describe('schedules', () => {
  const o = { lr: 1, warmupSteps: 10, totalSteps: 110 };
  it('warm up linearly, then constant / linear / cosine as transformers defines them', () => {
    expect(learningRateAt(0, { ...o, kind: 'cosine' })).toBe(0);
    expect(learningRateAt(5, { ...o, kind: 'linear' })).toBe(0.5);
    expect(learningRateAt(60, { ...o, kind: 'constant' })).toBe(1);
    expect(learningRateAt(60, { ...o, kind: 'linear' })).toBeCloseTo(0.5, 12);
    expect(learningRateAt(60, { ...o, kind: 'cosine' })).toBeCloseTo(0.5, 12);
    expect(learningRateAt(35, { ...o, kind: 'cosine' })).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI / 4)), 12);
    expect(learningRateAt(110, { ...o, kind: 'linear' })).toBe(0);
  });
});
