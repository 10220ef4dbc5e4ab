/**
 * The saved adapter means what PEFT means by it: merging it the way PEFT's LoraLayer.get_delta_weight does
 * (ΔW = lora_B · lora_A · scaling, transposed for fan_in_fan_out Conv1D weights stored [in, out]) into the
 * checkpoint, on disk, in float64, then loading that merged checkpoint, gives the logits of the model with the
 * adapter applied. This checks orientation and scaling against PEFT's formula, not against our own forward.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useCpu } from './setup';
import { loadModel } from '../../../main/engine/models/registry';
import { injectAdapter, peftWeightsOf } from '../../../main/engine/lora/inject';
import { loadAdapter, saveAdapter } from '../../../main/engine/lora/peft-io';
import { readSafetensors, writeSafetensors } from '../../../main/engine/io/safetensors';

const FIXTURE = join(import.meta.dirname, '../../fixtures/tiny-random-gpt2');
const dir = mkdtempSync(join(tmpdir(), 'lorasmith-peft-sem-'));
beforeAll(useCpu);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('PEFT semantics of a saved adapter (GPT-2, fan_in_fan_out)', () => {
  it('merging per PEFT on disk reproduces the adapted logits', async () => {
    const model = await loadModel(FIXTURE);
    const adapter = injectAdapter(model, 'default', { targetModules: ['c_attn', 'c_fc'], rank: 3, alpha: 12, dropout: 0, rankPattern: { c_fc: 2 } }, { seed: 5 });
    for (const { weights } of adapter.modules.values()) weights.Bt.assign(tf.randomNormal(weights.Bt.shape, 0, 0.3, 'float32', 8) as tf.Tensor2D);
    const ids = tf.tensor2d([[5, 17, 300, 42, 7]], [1, 5], 'int32');
    const adapted = model.forward(ids).arraySync();
    const out = join(dir, 'adapter');
    saveAdapter(out, adapter.config, await peftWeightsOf(adapter), { baseModelNameOrPath: 'tiny-random-gpt2', fanInFanOut: true });
    model.dispose();

    const peft = loadAdapter(out);
    expect(peft.raw.fan_in_fan_out).toBe(true);
    expect(peft.raw.rank_pattern).toEqual({ c_fc: 2 });
    const { tensors } = readSafetensors(join(FIXTURE, 'model.safetensors'));
    const merged = new Map([...tensors].map(([k, t]) => [k, { dtype: 'F32' as const, shape: t.shape, data: Float64Array.from(t.data) }]));
    for (const [path, w] of peft.modules) {
      const base = merged.get(`${path}.weight`);
      if (!base) throw new Error(`no base weight for ${path}`);
      const [inF, outF] = base.shape as [number, number]; // Conv1D stores [in, out]
      const r = w.rank;
      const scaling = (peft.raw.lora_alpha as number) / r; // PEFT: lora_alpha / r (alpha_pattern empty)
      for (let o = 0; o < outF; o++) {
        for (let i = 0; i < inF; i++) {
          let delta = 0; // (lora_B [out, r] · lora_A [r, in])[o, i]
          for (let k = 0; k < r; k++) delta += (w.loraB[o * r + k] as number) * (w.loraA[k * inF + i] as number);
          base.data[i * outF + o] = (base.data[i * outF + o] as number) + delta * scaling; // fan_in_fan_out: transpose(ΔW)
        }
      }
    }
    const mergedDir = join(dir, 'merged');
    rmSync(mergedDir, { recursive: true, force: true });
    mkdirSync(mergedDir);
    copyFileSync(join(FIXTURE, 'config.json'), join(mergedDir, 'config.json'));
    writeSafetensors(join(mergedDir, 'model.safetensors'), new Map([...merged].map(([k, t]) => [k, { ...t, data: Float32Array.from(t.data) }])));
    const mergedModel = await loadModel(mergedDir);
    const viaMerge = mergedModel.forward(ids).arraySync();
    const flatA = adapted.flat(2);
    const flatM = viaMerge.flat(2);
    const maxDiff = Math.max(...flatA.map((v, i) => Math.abs(v - (flatM[i] as number))));
    expect(maxDiff).toBeLessThan(1e-4);
    // and the adapter really changes the output (otherwise the check above would be empty)
    const base = await loadModel(FIXTURE);
    const plain = base.forward(ids).arraySync().flat(2);
    expect(Math.max(...plain.map((v, i) => Math.abs(v - (flatA[i] as number))))).toBeGreaterThan(1e-2);
    ids.dispose();
    mergedModel.dispose();
    base.dispose();
  });
});
