import * as tf from '@tensorflow/tfjs-core';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportMergedModel } from '../../../main/engine/adapters/write-model-folder';
import { ResidentAdapters } from '../../../main/engine/adapters/resident';
import { exportWithAdaptersMerged } from '../../../main/engine/adapters/export-with-adapters';
import { residentWeights } from '../../../main/engine/adapters/compose';
import { exportPeftAdapter } from '../../../main/engine/adapters/peft';
import { openCheckpoint } from '../../../main/engine/io/model-checkpoint';
import { resolveLoraConfig } from '../../../main/engine/lora/config';
import type { PeftModuleWeights } from '../../../main/engine/lora/inject';
import { loadModel } from '../../../main/engine/models/registry';
import type { CausalLM } from '../../../main/engine/models/types';
import { Rng } from '../../../main/engine/train/rng';
import { useCpu } from '../lora/setup';
import { logitsOf as logits, maxAbsDiff } from '../../support/logits';

const FIXTURES = join(import.meta.dirname, '../../fixtures');
const GPT2 = join(FIXTURES, 'tiny-random-gpt2');
const LLAMA = join(FIXTURES, 'tiny-random-llama');

let work: string;
beforeAll(async () => {
  await useCpu();
  work = mkdtempSync(join(tmpdir(), 'lorasmith-merged-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A trained-looking adapter (B ≠ 0) on the named modules, in PEFT's orientation. */
function addRandomAdapter(resident: ResidentAdapters<CausalLM>, name: string, targets: string[], rank: number, seed: number, size = 0.3): void {
  const rng = new Rng(seed);
  const modules = new Map<string, PeftModuleWeights>();
  for (const layer of resident.model.linears.values()) {
    if (!targets.includes(layer.spec.name) || layer.spec.path === 'lm_head') continue;
    const { inFeatures, outFeatures } = layer.spec;
    modules.set(layer.spec.path, {
      rank,
      loraA: Float32Array.from({ length: rank * inFeatures }, () => rng.uniform(-size, size)),
      loraB: Float32Array.from({ length: outFeatures * rank }, () => rng.uniform(-size, size)),
    });
  }
  const config = resolveLoraConfig({ targetModules: targets, rank, alpha: 2 * rank });
  resident.add(name, config, { baseModelNameOrPath: 'test', fanInFanOut: false }, modules);
}



describe('merge, unmerge and merged export on real architectures', () => {
  it('gpt2 (Conv1D): unmerged == merged == exported-and-reloaded (sharded); unmerge == base', async () => {
    const ids = [[5, 99, 310, 7, 42, 999, 1, 64]];
    const model = await loadModel(GPT2);
    const resident = new ResidentAdapters(model);
    addRandomAdapter(resident, 'a', ['c_attn', 'c_proj', 'c_fc'], 4, 1);
    const base = await logits(model, ids);
    resident.use('a');
    const unmerged = await logits(model, ids);
    expect(maxAbsDiff(unmerged, base)).toBeGreaterThan(1e-2);
    await resident.merge('a');
    const merged = await logits(model, ids);
    expect(maxAbsDiff(merged, unmerged)).toBeLessThan(1e-4);

    const out = join(work, 'gpt2-merged');
    const tensorsBefore = tf.memory().numTensors;
    const files = await exportMergedModel(model, GPT2, out, { maxShardBytes: 150_000 });
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(files.length).toBeGreaterThan(2);
    expect(files).toContain('model.safetensors.index.json');
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    const baseNames = openCheckpoint(GPT2).names().sort();
    expect(Object.keys(index.weight_map).sort()).toEqual(baseNames);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json']) {
      expect(readFileSync(join(out, f)).equals(readFileSync(join(GPT2, f)))).toBe(true);
    }
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
    // Conv1D orientation kept: [in, out] as in the base
    expect(openCheckpoint(out).entry('transformer.h.0.mlp.c_fc.weight').shape).toEqual(openCheckpoint(GPT2).entry('transformer.h.0.mlp.c_fc.weight').shape);

    const reloaded = await loadModel(out);
    expect(maxAbsDiff(await logits(reloaded, ids), merged)).toBeLessThan(1e-5);
    reloaded.dispose();

    resident.unmerge('a');
    resident.use(null);
    expect(maxAbsDiff(await logits(model, ids), base)).toBeLessThan(1e-5);
    await expect(exportMergedModel(model, GPT2, out)).rejects.toThrow(/already exists/);
    model.dispose();
  });

  it('llama (fp16 base, nn.Linear): keeps names and F16 by default; an F32 export reloads to the merged logits', async () => {
    const ids = [[1, 450, 4996, 17354, 1701, 11, 3]];
    const model = await loadModel(LLAMA);
    const resident = new ResidentAdapters(model);
    addRandomAdapter(resident, 'a', ['q_proj', 'v_proj', 'down_proj'], 2, 2, 0.5);
    resident.use('a');
    const unmerged = await logits(model, ids);
    await resident.merge('a');
    const merged = await logits(model, ids);
    expect(maxAbsDiff(merged, unmerged)).toBeLessThan(1e-4);

    const half = join(work, 'llama-f16');
    expect(await exportMergedModel(model, LLAMA, half)).toEqual(['model.safetensors']);
    const written = openCheckpoint(half);
    const base = openCheckpoint(LLAMA);
    expect(written.names().sort()).toEqual(base.names().sort());
    for (const name of base.names()) {
      expect(written.entry(name).dtype).toBe('F16');
      expect(written.entry(name).shape).toEqual(base.entry(name).shape); // [out, in] as in the base
    }
    const full = join(work, 'llama-f32');
    await exportMergedModel(model, LLAMA, full, { dtype: 'F32' });
    expect(JSON.parse(readFileSync(join(full, 'config.json'), 'utf8')).torch_dtype).toBe('float32');
    const reloaded = await loadModel(full);
    expect(maxAbsDiff(await logits(reloaded, ids), merged)).toBeLessThan(1e-5);
    reloaded.dispose();
    expect(readdirSync(work).filter((f) => f.includes('.tmp-'))).toEqual([]);
    model.dispose();
  });

  it('exports with adapter folders merged while chat keeps its active adapter, and puts everything back', async () => {
    const ids = [[5, 99, 310, 7, 42, 999, 1, 64]];
    const model = await loadModel(GPT2);
    const resident = new ResidentAdapters(model);
    addRandomAdapter(resident, 'chat', ['c_attn'], 2, 11);
    addRandomAdapter(resident, 'b', ['c_fc', 'c_proj'], 4, 12);
    const folder = join(work, 'b-adapter');
    exportPeftAdapter(folder, await residentWeights(resident, 'b'));
    resident.use('b');
    const withB = await logits(model, ids);
    resident.use('chat');
    const chatting = await logits(model, ids);
    const out = join(work, 'gpt2-with-b');
    const result = await exportWithAdaptersMerged(resident, GPT2, [{ dir: folder, scale: 1 }], out);
    expect(result.modules).toEqual([15]);
    expect(resident.active).toEqual([{ name: 'chat', weight: 1 }]);
    expect(resident.names).toEqual(['chat', 'b']);
    expect(resident.merged.size).toBe(0);
    expect(maxAbsDiff(await logits(model, ids), chatting)).toBeLessThan(1e-5);
    const reloaded = await loadModel(out);
    expect(maxAbsDiff(await logits(reloaded, ids), withB)).toBeLessThan(1e-4); // b merged, the chat adapter not
    reloaded.dispose();
    model.dispose();
  });
});
