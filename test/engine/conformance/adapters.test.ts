/**
 * Adapters on one resident base, on every backend variant: an active adapter's logits against a float64 forward
 * pass of W0 + s·B·A; mixing (weight 0 is the base, a mix is the sum of its parts); merge gives the logits of the
 * unmerged adapter, unmerge restores W0; a merge that would put NaN into a weight changes nothing; and an adapter
 * made by PEFT 0.21 itself gives PEFT's own logits on the starter model.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
import { ResidentAdapters } from '../../../main/engine/adapters/resident';
import { resolveLoraConfig } from '../../../main/engine/lora/config';
import type { PeftModuleWeights } from '../../../main/engine/lora/inject';
import { loadModel } from '../../../main/engine/models/registry';
import type { CausalLM } from '../../../main/engine/models/types';
import { llamaReference, type Weights } from '../models/float64-reference';
import { buildLlama } from '../models/random-models';
import { logitsOf, maxAbsDiff } from '../../support/logits';
import { FIXTURES, LLAMA_GQA, ROOT, invFreq, scratchDir } from './support';
import { forEachVariant } from './variants';

const LOGIT_TOLERANCE = 2e-4;
const IDS = [[3, 7, 1, 12, 5, 9], [2, 2, 8, 15, 0, 4]];
const META = { baseModelNameOrPath: 'conformance', fanInFanOut: false };

const dir = scratchDir('adapters');
const built = buildLlama(join(dir, 'llama'), LLAMA_GQA, 41);

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

/** A trained-looking adapter (B non-zero) on the named module kinds, in PEFT's orientation. */
function randomAdapter(model: CausalLM, kinds: readonly string[], rank: number, alpha: number, seed: number, scale = 0.4) {
  const rand = lcg(seed);
  const modules = new Map<string, PeftModuleWeights>();
  for (const layer of model.linears.values()) {
    if (!kinds.includes(layer.spec.name)) continue;
    const { inFeatures, outFeatures } = layer.spec;
    modules.set(layer.spec.path, {
      rank,
      loraA: Float32Array.from({ length: rank * inFeatures }, () => rand() * scale),
      loraB: Float32Array.from({ length: outFeatures * rank }, () => rand() * scale),
    });
  }
  return { config: resolveLoraConfig({ targetModules: [...kinds], rank, alpha }), modules };
}

/** Float64 logits of each row with s·B·A added to the base weights. */
function referenceWith(adapters: readonly { modules: ReadonlyMap<string, PeftModuleWeights>; scaling: number }[]): number[] {
  const weights: Weights = new Map(built.weights);
  for (const { modules, scaling } of adapters) {
    for (const [path, m] of modules) {
      const base = weights.get(`${path}.weight`) as { shape: number[]; data: Float64Array };
      const [outF, inF] = base.shape as [number, number];
      const data = Float64Array.from(base.data);
      for (let o = 0; o < outF; o++) {
        for (let i = 0; i < inF; i++) {
          let d = 0;
          for (let k = 0; k < m.rank; k++) d += (m.loraB[o * m.rank + k] as number) * (m.loraA[k * inF + i] as number);
          data[o * inF + i] = (data[o * inF + i] as number) + scaling * d;
        }
      }
      weights.set(`${path}.weight`, { shape: base.shape, data });
    }
  }
  const headDim = LLAMA_GQA.hidden / LLAMA_GQA.heads;
  const config = { layers: LLAMA_GQA.layers, heads: LLAMA_GQA.heads, kvHeads: LLAMA_GQA.kvHeads, headDim, eps: 1e-5, invFreq: invFreq(headDim, 10000), qkvBias: false, tied: false };
  return IDS.flatMap((row) => llamaReference(weights, config, row).flatMap((r) => [...r]));
}

/** Every linear's W as float32 [in, out], whatever holds it (a tensor, the native store, GPU buffers). */
async function weightsOf(model: CausalLM): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const layer of model.linears.values()) {
    const w = tf.tidy(() => tf.clone(layer.weight.toTensor('in-out')));
    out.push(Float32Array.from((await w.data()) as Float32Array));
    w.dispose();
  }
  return out;
}

forEachVariant('adapters', () => {
  it('an active adapter, a mix, merge and unmerge: float64 logits and the invariants between them', async () => {
    const model = await loadModel(built.dir);
    try {
      const resident = new ResidentAdapters(model);
      const a = randomAdapter(model, ['q_proj', 'v_proj', 'down_proj'], 4, 8, 1);
      const b = randomAdapter(model, ['k_proj', 'o_proj', 'up_proj'], 2, 2, 2);
      resident.add('a', a.config, META, a.modules);
      resident.add('b', b.config, META, b.modules);
      const w0 = await weightsOf(model);
      const base = await logitsOf(model, IDS);
      expect(maxAbsDiff(base, referenceWith([]))).toBeLessThan(LOGIT_TOLERANCE);

      resident.use('a');
      const onlyA = await logitsOf(model, IDS);
      expect(maxAbsDiff(onlyA, referenceWith([{ modules: a.modules, scaling: 8 / 4 }]))).toBeLessThan(LOGIT_TOLERANCE);
      expect(maxAbsDiff(onlyA, base)).toBeGreaterThan(1e-2); // the adapter does something

      resident.use([{ name: 'a', weight: 0 }]);
      expect(maxAbsDiff(await logitsOf(model, IDS), base)).toBeLessThan(1e-5);
      resident.use([{ name: 'a', weight: 0.5 }, { name: 'b', weight: 1.5 }]);
      const mix = await logitsOf(model, IDS);
      expect(maxAbsDiff(mix, referenceWith([{ modules: a.modules, scaling: 0.5 * 2 }, { modules: b.modules, scaling: 1.5 * 1 }]))).toBeLessThan(LOGIT_TOLERANCE);

      // Merged into the base, the same mix gives the same logits with no adapter active.
      resident.use(null);
      await resident.merge('a', 0.5);
      await resident.merge('b', 1.5);
      expect(maxAbsDiff(await logitsOf(model, IDS), mix)).toBeLessThan(LOGIT_TOLERANCE);
      resident.unmerge('b');
      resident.unmerge('a');
      const restored = await weightsOf(model);
      restored.forEach((w, i) => expect(maxAbsDiff(w, w0[i] as Float32Array)).toBeLessThan(1e-5));
      expect(maxAbsDiff(await logitsOf(model, IDS), base)).toBeLessThan(1e-4);
      resident.clear();
    } finally {
      model.dispose();
    }
  });

  it('a merge that would put Inf into a weight is refused and changes nothing', async () => {
    const model = await loadModel(built.dir);
    try {
      const resident = new ResidentAdapters(model);
      const huge = randomAdapter(model, ['down_proj'], 2, 2, 3, 1e30);
      resident.add('huge', huge.config, META, huge.modules);
      const w0 = await weightsOf(model);
      const tensors = tf.memory().numTensors;
      await expect(resident.merge('huge')).rejects.toThrow(/NaN or Inf into model\.layers\.\d\.mlp\.down_proj; nothing was changed/);
      expect(resident.merged.size).toBe(0);
      expect(tf.memory().numTensors).toBe(tensors);
      (await weightsOf(model)).forEach((w, i) => expect(maxAbsDiff(w, w0[i] as Float32Array)).toBe(0));
      resident.clear();
    } finally {
      model.dispose();
    }
  });

  it("a PEFT-made adapter (PEFT 0.21, all seven linear kinds) gives PEFT's logits on the starter model", async () => {
    const fixture = join(FIXTURES, 'peft-0.21-starter-lora');
    const expected = JSON.parse(readFileSync(join(fixture, 'peft_logits.json'), 'utf8')) as { ids: number[][]; lastPositionLogits: number[][] };
    const model = await loadModel(join(ROOT, 'resources/starter'));
    try {
      const resident = new ResidentAdapters(model);
      resident.loadFromDir('peft-made', fixture);
      resident.use('peft-made');
      const t = expected.ids[0]?.length ?? 0;
      const all = await logitsOf(model, expected.ids);
      const vocab = all.length / (expected.ids.length * t);
      const last = expected.ids.flatMap((_, r) => [...all.subarray((r * t + t - 1) * vocab, (r * t + t) * vocab)]);
      expect(maxAbsDiff(last, expected.lastPositionLogits.flat())).toBeLessThan(1e-4);
      resident.clear();
    } finally {
      model.dispose();
    }
  });
});
