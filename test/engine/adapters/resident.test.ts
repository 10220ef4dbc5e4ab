import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ResidentAdapters } from '../../../main/engine/adapters/resident';
import { concatenateAdapters, residentWeights } from '../../../main/engine/adapters/compose';
import { resolveLoraConfig } from '../../../main/engine/lora/config';
import { adapterVariables, injectAdapter } from '../../../main/engine/lora/inject';
import { exportPeftAdapter } from '../../../main/engine/adapters/peft';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeftModuleWeights } from '../../../main/engine/lora/inject';
import type { CausalLM } from '../../../main/engine/models/types';
import { Rng } from '../../../main/engine/train/rng';
import { useCpu } from '../lora/setup';
import { tinyModel } from '../lora/tiny-model';
import { logitsOf, maxAbsDiff } from '../../support/logits';

const META = { baseModelNameOrPath: 'tiny', fanInFanOut: false };

/** A trained-looking adapter: random A and B (B non-zero), in PEFT's orientation. */
function randomAdapter(model: CausalLM, targets: string[], rank: number, alpha: number, seed: number) {
  const rng = new Rng(seed);
  const modules = new Map<string, PeftModuleWeights>();
  for (const layer of model.linears.values()) {
    if (!targets.includes(layer.spec.name)) continue;
    const { inFeatures, outFeatures } = layer.spec;
    modules.set(layer.spec.path, {
      rank,
      loraA: Float32Array.from({ length: rank * inFeatures }, () => rng.uniform(-0.5, 0.5)),
      loraB: Float32Array.from({ length: outFeatures * rank }, () => rng.uniform(-0.5, 0.5)),
    });
  }
  return { config: resolveLoraConfig({ targetModules: targets, rank, alpha }), meta: META, modules };
}

const IDS = [[3, 7, 1, 12, 5, 9], [2, 2, 8, 15, 0, 4]];
const logits = (model: CausalLM): Promise<Float32Array> => logitsOf(model, IDS);



describe('adapters resident on one base', () => {
  let model: CausalLM;
  beforeAll(useCpu);
  afterEach(() => model?.dispose());

  it('switches none / one / mix without touching the base weights; mix weight 0 == base, 1 == single', async () => {
    model = tinyModel({ layers: 2, seed: 5 });
    const resident = new ResidentAdapters(model);
    const baseTensors = [...model.linears.values()].map((l) => l.weightT);
    const a = randomAdapter(model, ['q_proj', 'v_proj', 'down_proj'], 4, 8, 1);
    const b = randomAdapter(model, ['q_proj', 'o_proj'], 2, 2, 2);
    const tensorsBeforeLoad = tf.memory().numTensors;
    resident.add('a', a.config, a.meta, a.modules);
    resident.add('b', b.config, b.meta, b.modules);

    const base = await logits(model);
    resident.use('a');
    const onlyA = await logits(model);
    resident.use('b');
    const onlyB = await logits(model);
    expect(maxAbsDiff(onlyA, base)).toBeGreaterThan(1e-2); // the adapter does something
    resident.use([{ name: 'a', weight: 0 }]);
    expect(maxAbsDiff(await logits(model), base)).toBeLessThan(1e-6);
    resident.use([{ name: 'a', weight: 1 }]);
    expect(maxAbsDiff(await logits(model), onlyA)).toBe(0);
    resident.use([{ name: 'a', weight: 1 }, { name: 'b', weight: 0 }]);
    expect(maxAbsDiff(await logits(model), onlyA)).toBeLessThan(1e-6);
    resident.use(null);
    expect(maxAbsDiff(await logits(model), base)).toBe(0);
    expect(maxAbsDiff(onlyB, base)).toBeGreaterThan(1e-2);
    // the base tensors are the very same objects: nothing was copied or reloaded
    expect([...model.linears.values()].map((l) => l.weightT)).toEqual(baseTensors);
    resident.unload('a');
    resident.unload('b');
    expect(resident.names).toEqual([]);
    expect(tf.memory().numTensors).toBe(tensorsBeforeLoad); // unloading frees every At/Bt
  });

  it('a mix equals its rank-concatenated adapter (PEFT add_weighted_adapter cat)', async () => {
    model = tinyModel({ layers: 2, seed: 6 });
    const resident = new ResidentAdapters(model);
    const a = randomAdapter(model, ['q_proj', 'up_proj'], 4, 8, 3);
    const b = randomAdapter(model, ['q_proj', 'k_proj'], 3, 6, 4);
    b.config = resolveLoraConfig({ targetModules: ['q_proj', 'k_proj'], rank: 3, alpha: 6, useRslora: true });
    resident.add('a', a.config, a.meta, a.modules);
    resident.add('b', b.config, b.meta, b.modules);
    resident.use([{ name: 'a', weight: 0.7 }, { name: 'b', weight: -1.5 }]);
    const mixed = await logits(model);
    const cat = concatenateAdapters([{ adapter: a, weight: 0.7 }, { adapter: await residentWeights(resident, 'b'), weight: -1.5 }]);
    expect(cat.modules.get('h.0.attn.q_proj')?.rank).toBe(7);
    expect(cat.modules.get('h.0.attn.k_proj')?.rank).toBe(3);
    expect(cat.config.rank).toBe(7); // q_proj and up_proj (4 of 6 modules) have rank 7; k_proj gets a pattern
    resident.add('cat', cat.config, cat.meta, cat.modules);
    resident.use('cat');
    expect(maxAbsDiff(await logits(model), mixed)).toBeLessThan(1e-5);
  });

  it('merge gives the unmerged logits, unmerge restores the base, and the bookkeeping refuses misuse', async () => {
    model = tinyModel({ layers: 2, seed: 7 });
    const resident = new ResidentAdapters(model);
    const a = randomAdapter(model, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'], 4, 8, 5);
    resident.add('a', a.config, a.meta, a.modules);
    const base = await logits(model);
    resident.use('a');
    const unmerged = await logits(model);
    const tensorsBefore = tf.memory().numTensors;
    await resident.merge('a');
    expect(tf.memory().numTensors).toBe(tensorsBefore); // each weight replaced, the old one freed
    expect(resident.active).toEqual([]); // not applied twice
    const merged = await logits(model);
    expect(maxAbsDiff(merged, unmerged)).toBeLessThan(1e-4);
    expect(() => resident.use('a')).toThrow(/already merged/);
    expect(() => resident.unload('a')).toThrow(/unmerge it before unloading/);
    resident.unmerge('a');
    expect(maxAbsDiff(await logits(model), base)).toBeLessThan(1e-5);
    expect(() => resident.unmerge('a')).toThrow(/not merged/);
    expect(() => resident.use('nope')).toThrow(/no adapter named 'nope'/);
    expect(() => resident.add('a', a.config, a.meta, a.modules)).toThrow(/already loaded/);
    resident.unload('a');
    expect(model.linears.get('h.0.attn.q_proj')?.adapters.size).toBe(0);
  });

  it('refuses a merge that would produce NaN or Inf, leaving every weight as it was', async () => {
    model = tinyModel({ layers: 1, seed: 8 });
    const resident = new ResidentAdapters(model);
    const a = randomAdapter(model, ['q_proj', 'down_proj'], 2, 4, 9);
    const bad = a.modules.get('h.0.mlp.down_proj') as PeftModuleWeights;
    bad.loraB[3] = Number.POSITIVE_INFINITY;
    resident.add('a', a.config, a.meta, a.modules);
    const before = await Promise.all([...model.linears.values()].map((l) => l.weightT.data()));
    await expect(resident.merge('a')).rejects.toThrow(/NaN or Inf into h\.0\.mlp\.down_proj; nothing was changed/);
    const after = await Promise.all([...model.linears.values()].map((l) => l.weightT.data()));
    expect(after).toEqual(before);
    expect(resident.merged.size).toBe(0);
  });

  it('switching does not grow the tensor count', async () => {
    model = tinyModel({ layers: 1, seed: 9 });
    const resident = new ResidentAdapters(model);
    const a = randomAdapter(model, ['q_proj'], 2, 4, 10);
    resident.add('a', a.config, a.meta, a.modules);
    await logits(model);
    const count = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      resident.use(i % 2 ? 'a' : null);
      await logits(model);
    }
    expect(tf.memory().numTensors).toBe(count);
  });

  it('a trained adapter differs from the base, exports to PEFT and loads on a fresh base to the same logits', async () => {
    model = tinyModel({ layers: 1, seed: 10 });
    const resident = new ResidentAdapters(model);
    const base = await logits(model);
    const trained = injectAdapter(model, 'trained', { targetModules: ['q_proj', 'v_proj', 'down_proj'], rank: 4, alpha: 8, dropout: 0 }, { seed: 1 });
    resident.adopt(trained, META);
    resident.use('trained');
    expect(maxAbsDiff(await logits(model), base)).toBe(0); // PEFT init: B = 0
    // A few steps of plain gradient descent on next-token cross-entropy, through the adapter only.
    const ids = tf.tensor2d(IDS, [2, 6], 'int32');
    const targets = tf.oneHot(tf.reshape(tf.slice(ids, [0, 1], [2, 5]), [-1]), 16);
    const variables = [...adapterVariables(trained).values()];
    for (let step = 0; step < 5; step++) {
      const { grads } = tf.variableGrads(() => {
        const out = tf.slice(model.forward(ids), [0, 0, 0], [2, 5, 16]);
        return tf.losses.softmaxCrossEntropy(targets, tf.reshape(out, [10, 16])) as tf.Scalar;
      }, variables);
      for (const v of variables) v.assign(tf.sub(v, tf.mul(grads[v.name] as tf.Tensor, 0.5)));
      tf.dispose(grads);
    }
    ids.dispose();
    targets.dispose();
    const after = await logits(model);
    expect(maxAbsDiff(after, base)).toBeGreaterThan(1e-3);

    const dir = mkdtempSync(join(tmpdir(), 'lorasmith-trained-'));
    try {
      exportPeftAdapter(join(dir, 'trained'), await residentWeights(resident, 'trained'));
      const fresh = tinyModel({ layers: 1, seed: 10 });
      const other = new ResidentAdapters(fresh);
      other.loadFromDir('trained', join(dir, 'trained'));
      other.use('trained');
      expect(maxAbsDiff(await logits(fresh), after)).toBeLessThan(1e-6);
      fresh.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
