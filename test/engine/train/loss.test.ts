import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { useCpu } from '../lora/setup';
import { maskedCrossEntropy, maskedNllSum } from '../../../main/engine/train/loss';

beforeAll(useCpu);

describe('maskedCrossEntropy', () => {
  it('value and gradient match a float64 computation (softmax - onehot, weighted, over Σw)', () => {
    const [B, T, V] = [2, 3, 5];
    const x = Array.from({ length: B * T * V }, (_, i) => Math.sin(i * 0.7) * 3);
    const labels = [1, 4, 0, 2, 2, 3];
    const w = [1, 0, 1, 1, 1, 0];
    let loss = 0;
    const grad = new Array<number>(x.length).fill(0);
    const count = w.reduce((a, b) => a + b, 0);
    for (let n = 0; n < B * T; n++) {
      const row = x.slice(n * V, n * V + V);
      const m = Math.max(...row);
      const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
      loss += ((w[n] as number) * (Math.log(z) + m - (row[labels[n] as number] as number))) / count;
      for (let v = 0; v < V; v++) grad[n * V + v] = ((w[n] as number) / count) * (Math.exp((row[v] as number) - m) / z - (v === labels[n] ? 1 : 0));
    }
    const logits = tf.tensor3d(x, [B, T, V]);
    const lt = tf.tensor2d(labels, [B, T], 'int32');
    const wt = tf.tensor2d(w, [B, T]);
    const { value, grads } = tf.variableGrads(() => maskedCrossEntropy(v as unknown as tf.Tensor3D, lt, wt), [v]);
    expect(value.dataSync()[0]).toBeCloseTo(loss, 5);
    Array.from(grads[v.name]?.dataSync() ?? []).forEach((g, i) => expect(g).toBeCloseTo(grad[i] as number, 6));
    const { sum, count: c } = maskedNllSum(logits, lt, wt);
    expect((sum.dataSync()[0] as number) / (c.dataSync()[0] as number)).toBeCloseTo(loss, 5);
    tf.dispose([logits, lt, wt, value, sum, c, ...Object.values(grads)]);
  });
  const v = tf.variable(tf.zeros([2, 3, 5]));
  beforeAll(() => v.assign(tf.tensor3d(Array.from({ length: 30 }, (_, i) => Math.sin(i * 0.7) * 3), [2, 3, 5])));
});
