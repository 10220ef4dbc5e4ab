import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { useCpu } from './setup';
import { tinyModel } from './tiny-model';
import { adapterVariables, injectAdapter, removeAdapter } from '../../../main/engine/lora/inject';
import { LinearLayer, seedLoraDropout } from '../../../main/engine/lora/linear';
import { headCrossEntropy } from '../../../main/engine/train/loss';
import type { CausalLM } from '../../../main/engine/models/types';

beforeAll(useCpu);
let model: CausalLM | null = null;
afterEach(() => {
  model?.dispose();
  model = null;
});

const ids = () => tf.tensor2d([[2, 5, 7, 3], [4, 4, 9, 1]], [2, 4], 'int32');

describe('injectAdapter', () => {
  it('a fresh adapter leaves the outputs unchanged (B starts at zero)', () => {
    model = tinyModel();
    const x = ids();
    const before = model.forward(x).arraySync();
    injectAdapter(model, 'a', { targetModules: 'all-linear', rank: 4, alpha: 8, dropout: 0 }, { seed: 3 });
    expect(model.forward(x).arraySync()).toEqual(before);
    x.dispose();
  });

  it('initialises lora_A uniform(±1/sqrt(in)) from the seed, lora_B zero', () => {
    model = tinyModel({ hidden: 16 });
    const a = injectAdapter(model, 'a', { targetModules: ['up_proj'], rank: 8 }, { seed: 7 });
    const up = a.modules.get('h.0.mlp.up_proj');
    const At = Float32Array.from(up?.weights.At.dataSync() ?? []);
    const bound = 1 / Math.sqrt(16);
    expect(Math.max(...At.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...At.map(Math.abs))).toBeGreaterThan(bound * 0.9);
    const mean = At.reduce((s, v) => s + v, 0) / At.length;
    const variance = At.reduce((s, v) => s + (v - mean) ** 2, 0) / At.length;
    expect(variance).toBeCloseTo(bound ** 2 / 3, 2); // uniform(-b, b) has variance b²/3
    expect([...(up?.weights.Bt.dataSync() ?? [1])].every((v) => v === 0)).toBe(true);
    const again = tinyModel({ hidden: 16 });
    const b = injectAdapter(again, 'a', { targetModules: ['up_proj'], rank: 8 }, { seed: 7 });
    expect(b.modules.get('h.0.mlp.up_proj')?.weights.At.dataSync()).toEqual(At);
    again.dispose();
  });

  it('creates only A and B as variables and copies no frozen weight', () => {
    model = tinyModel({ hidden: 8, layers: 2 });
    const tensorsBefore = tf.memory().numTensors;
    const bytesBefore = tf.memory().numBytes;
    const varsBefore = Object.keys(tf.engine().registeredVariables).length;
    const adapter = injectAdapter(model, 'a', { targetModules: ['q_proj', 'v_proj'], rank: 2 });
    const vars = adapterVariables(adapter);
    expect([...vars.keys()].sort()).toEqual(
      ['h.0.attn.q_proj', 'h.0.attn.v_proj', 'h.1.attn.q_proj', 'h.1.attn.v_proj'].flatMap((p) => [`${p}.lora_A`, `${p}.lora_B`]).sort(),
    );
    expect(Object.keys(tf.engine().registeredVariables).length - varsBefore).toBe(8);
    expect(tf.memory().numTensors - tensorsBefore).toBe(8);
    expect(tf.memory().numBytes - bytesBefore).toBe(4 * 4 * (8 * 2 + 2 * 8)); // 4 modules × (At + Bt) float32
    removeAdapter(model, 'a');
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it('refuses unknown targets naming what exists, and duplicate adapter names', () => {
    model = tinyModel();
    expect(() => injectAdapter(model as CausalLM, 'a', { targetModules: ['q_porj'] })).toThrow(/'q_porj' match no linear module.*available: q_proj/);
    injectAdapter(model, 'a', { targetModules: ['q_proj'] });
    expect(() => injectAdapter(model as CausalLM, 'a', { targetModules: ['q_proj'] })).toThrow("already has an adapter named 'a'");
  });

  it('dropout applies to the LoRA input in training only, reproducibly for a seed', () => {
    model = tinyModel();
    const adapter = injectAdapter(model, 'a', { targetModules: 'all-linear', rank: 2, dropout: 0.5 });
    for (const { weights } of adapter.modules.values()) weights.Bt.assign(tf.onesLike(weights.Bt));
    const x = ids();
    const evalA = model.forward(x).arraySync();
    expect(model.forward(x).arraySync()).toEqual(evalA);
    seedLoraDropout(11);
    const trainA = model.forward(x, { training: true }).arraySync();
    seedLoraDropout(11);
    expect(model.forward(x, { training: true }).arraySync()).toEqual(trainA);
    expect(trainA).not.toEqual(evalA);
    // with the adapter inactive, training mode is exactly the base model: dropout never touches the base path
    for (const layer of model.linears.values()) layer.setActive([]);
    expect(model.forward(x, { training: true }).arraySync()).toEqual(model.forward(x).arraySync());
    x.dispose();
  });
});

describe('gradients of lora_A and lora_B', () => {
  it('match a float64 analytic gradient on one layer', () => {
    // y = x·Wt + s·x·At·Bt, loss = Σ y ⊙ G  =>  dAt = s·xᵀ·G·Btᵀ, dBt = s·(x·At)ᵀ·G
    const [N, I, O, R, s] = [3, 4, 5, 2, 1.5];
    const rnd = (n: number, k: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 1.7 + k));
    const x = rnd(N * I, 1), W = rnd(I * O, 2), A = rnd(I * R, 3), B = rnd(R * O, 4), G = rnd(N * O, 5);
    const layer = new LinearLayer({ path: 'p', name: 'p', layer: 0, inFeatures: I, outFeatures: O, groups: [], fanInFanOut: false }, tf.tensor2d(W, [I, O]), null);
    const At = tf.variable(tf.tensor2d(A, [I, R]));
    const Bt = tf.variable(tf.tensor2d(B, [R, O]));
    layer.adapters.set('a', { At, Bt, rank: R, scaling: s, dropout: 0 });
    layer.setActive([{ name: 'a', weight: 1 }]);
    const xt = tf.tensor2d(x, [N, I]);
    const Gt = tf.tensor2d(G, [N, O]);
    const { grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(xt), Gt)) as tf.Scalar, [At, Bt]);
    const at = (m: number[], cols: number, r: number, c: number) => m[r * cols + c] as number;
    const dA: number[] = [];
    for (let i = 0; i < I; i++) for (let r = 0; r < R; r++) {
      let sum = 0;
      for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) sum += at(x, I, n, i) * at(G, O, n, o) * at(B, O, r, o);
      dA.push(s * sum);
    }
    const dB: number[] = [];
    for (let r = 0; r < R; r++) for (let o = 0; o < O; o++) {
      let sum = 0;
      for (let n = 0; n < N; n++) {
        let xa = 0;
        for (let i = 0; i < I; i++) xa += at(x, I, n, i) * at(A, R, i, r);
        sum += xa * at(G, O, n, o);
      }
      dB.push(s * sum);
    }
    const gotA = grads[At.name]?.dataSync() ?? [];
    const gotB = grads[Bt.name]?.dataSync() ?? [];
    dA.forEach((v, i) => expect(gotA[i]).toBeCloseTo(v, 4));
    dB.forEach((v, i) => expect(gotB[i]).toBeCloseTo(v, 4));
    tf.dispose([xt, Gt, ...Object.values(grads)]);
    layer.dispose();
  });

  it('match central finite differences of the cross-entropy through the whole model', () => {
    model = tinyModel({ hidden: 8, layers: 2, seed: 5 });
    const adapter = injectAdapter(model, 'a', { targetModules: 'all-linear', rank: 2, alpha: 4, dropout: 0 }, { seed: 2 });
    // move B off zero so both A and B receive non-trivial gradients
    for (const { weights } of adapter.modules.values()) {
      weights.Bt.assign(tf.randomUniform(weights.Bt.shape, -0.3, 0.3, 'float32', 9) as tf.Tensor2D);
    }
    const x = ids();
    const targets = { labels: Int32Array.from([5, 7, 3, 0, 4, 9, 1, 0]), weights: Float32Array.from([1, 1, 1, 0, 0, 1, 1, 0]) };
    const m = model;
    const loss = () => headCrossEntropy(m, m.hiddenStates(x), targets);
    const vars = adapterVariables(adapter);
    const { grads } = tf.variableGrads(loss, [...vars.values()]);
    const eps = 1e-2;
    let checked = 0;
    for (const [name, v] of vars) {
      const analytic = grads[v.name]?.dataSync() ?? new Float32Array();
      const values = v.dataSync().slice();
      for (const i of [0, Math.floor(values.length / 2), values.length - 1]) {
        const probe = (delta: number) => {
          const moved = values.slice();
          moved[i] = (moved[i] as number) + delta;
          v.assign(tf.tensor(moved, v.shape));
          return tf.tidy(() => loss().dataSync()[0] as number);
        };
        const numeric = (probe(eps) - probe(-eps)) / (2 * eps);
        v.assign(tf.tensor(values, v.shape));
        expect(Math.abs((analytic[i] as number) - numeric), `${name}[${i}]`).toBeLessThan(2e-3 + 2e-2 * Math.abs(numeric));
        checked++;
      }
    }
    expect(checked).toBe(6 * 2 * 2 * 3);
    tf.dispose([x, ...Object.values(grads)]);
  });
});
