/**
 * LoRA on every linear kind of each new family (qwen3, gemma3, gemma2, phi3 with its fused qkv_proj and
 * gate_up_proj, windowed mistral): a few steps lower the loss and move every adapted module; the adapter is written
 * in PEFT's layout (keys `base_model.model.<module path>.lora_A.weight`, target_modules as PEFT names them),
 * passes the preflight against the base folder and loads back to the same logits; merged logits equal the unmerged
 * ones; and the merged model exported in the base's layout reloads to the same logits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useCpu } from '../lora/setup';
import { describeBaseDir } from '../../../main/engine/adapters/describe-base';
import { exportMergedModel } from '../../../main/engine/adapters/write-model-folder';
import { mergeIntoLayers } from '../../../main/engine/adapters/merge-weights';
import { importPeftAdapter } from '../../../main/engine/adapters/peft';
import { activateOnly, adapterVariables, attachAdapterWeights, injectAdapter, peftWeightsOf } from '../../../main/engine/lora/inject';
import { saveAdapter } from '../../../main/engine/lora/peft-io';
import { readSafetensors } from '../../../main/engine/io/safetensors';
import { loadModel } from '../../../main/engine/models/registry';
import { evaluateRows, trainLoop } from '../../../main/engine/train/loop';
import type { TokenizedExample } from '../../../main/engine/train/tokenize';
import { logitsOf, maxAbsDiff } from '../../support/logits';
import { buildGemma, buildLlama, buildPhi3, buildQwen3, type BuiltModel } from './random-models';

let dir: string;
beforeAll(async () => {
  await useCpu();
  dir = mkdtempSync(join(tmpdir(), 'families-lora-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const VOCAB = 24;
const families: { name: string; build: (d: string) => BuiltModel; kinds: string[] }[] = [
  {
    name: 'qwen3',
    build: (d) => buildQwen3(d, { hidden: 16, layers: 2, heads: 4, kvHeads: 2, headDim: 6, intermediate: 24, vocab: VOCAB, tied: true }, 31),
    kinds: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  },
  {
    name: 'gemma3_text',
    build: (d) => buildGemma(d, 3, {
      hidden: 16, layers: 2, heads: 2, kvHeads: 1, headDim: 8, intermediate: 24, vocab: VOCAB, tied: true,
      extra: { sliding_window: 3, sliding_window_pattern: 2, query_pre_attn_scalar: 8, rope_local_base_freq: 10000 },
    }, 32),
    kinds: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  },
  {
    name: 'gemma2',
    build: (d) => buildGemma(d, 2, {
      hidden: 16, layers: 2, heads: 2, kvHeads: 1, headDim: 8, intermediate: 24, vocab: VOCAB, tied: true,
      extra: { sliding_window: 3, query_pre_attn_scalar: 8, attn_logit_softcapping: 5, final_logit_softcapping: 10 },
    }, 33),
    kinds: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  },
  {
    name: 'phi3',
    build: (d) => buildPhi3(d, { hidden: 16, layers: 2, heads: 4, kvHeads: 2, headDim: 4, intermediate: 24, vocab: VOCAB, tied: false, extra: { sliding_window: 3 } }, 34),
    kinds: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'],
  },
  {
    name: 'mistral with a sliding window',
    build: (d) => buildLlama(d, { modelType: 'mistral', hidden: 16, layers: 2, heads: 4, kvHeads: 2, intermediate: 24, vocab: VOCAB, tied: false, extra: { sliding_window: 3 } }, 35),
    kinds: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  },
];

/** Prompt token p -> answer (5p + 3) mod V, with positions far enough apart that windows matter. */
const rows: TokenizedExample[] = Array.from({ length: 8 }, (_, i) => ({
  line: i + 1,
  ids: [1, i + 4, (i * 7) % 20 + 3, (i * 3) % 17 + 2, (5 * (i + 4) + 3) % VOCAB, 2],
  train: [0, 0, 0, 0, 1, 1],
}));
const probe = [[1, 5, 9, 3, 7, 11]];

describe.each(families)('LoRA on $name', ({ name, build, kinds }) => {
  it('trains every linear kind, writes and reads PEFT layout, merges and exports without changing the logits', async () => {
    const root = join(dir, name.replace(/\W+/g, '-'));
    const built = build(join(root, 'base'));
    const model = await loadModel(built.dir);
    try {
      // Every linear of the blocks, under the names PEFT gives them.
      const blockNames = [...new Set([...model.linears.values()].filter((l) => l.spec.layer !== null).map((l) => l.spec.name))];
      expect(blockNames).toEqual(kinds);
      const adapter = injectAdapter(model, 'a', { targetModules: 'all-linear', rank: 4, alpha: 8, dropout: 0 }, { seed: 7 });
      expect(new Set([...adapter.modules.values()].map((m) => m.spec.name))).toEqual(new Set(kinds));

      const before = (await evaluateRows(model, rows, 0, 8)).loss;
      const result = await trainLoop({ model, variables: adapterVariables(adapter), trainRows: rows, padId: 0, hyperparameters: { maxSteps: 15, batchSize: 4, learningRate: 2e-2, seed: 5 } });
      const after = (await evaluateRows(model, rows, 0, 8)).loss;
      expect(result.status).toBe('completed');
      expect(after, `loss ${before} -> ${after}`).toBeLessThan(before * 0.8);
      const trained = await peftWeightsOf(adapter);
      for (const [path, w] of trained) expect(w.loraB.some((v) => v !== 0), `${path} moved`).toBe(true);

      // PEFT layout: keys and target_modules.
      const adapterDir = join(root, 'adapter');
      saveAdapter(adapterDir, adapter.config, trained, { baseModelNameOrPath: built.dir, fanInFanOut: false });
      const written = readSafetensors(join(adapterDir, 'adapter_model.safetensors')).tensors;
      for (const kind of kinds) {
        const path = [...trained.keys()].find((p) => p.endsWith(`.${kind}`) && p.includes('.layers.1.')) as string;
        expect(path).toMatch(/^model\.layers\.1\.(self_attn|mlp)\./);
        const A = written.get(`base_model.model.${path}.lora_A.weight`);
        const B = written.get(`base_model.model.${path}.lora_B.weight`);
        const spec = model.linears.get(path)?.spec;
        expect(A?.shape, path).toEqual([4, spec?.inFeatures]);
        expect(B?.shape, path).toEqual([spec?.outFeatures, 4]);
      }
      expect(JSON.parse(readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8')).target_modules).toBe('all-linear');

      const trainedLogits = await logitsOf(model, probe);
      const imported = importPeftAdapter(adapterDir, describeBaseDir(built.dir));
      expect(imported.report.problems).toEqual([]);
      const fresh = await loadModel(built.dir);
      try {
        attachAdapterWeights(fresh, 'b', imported.config, imported.modules);
        expect(maxAbsDiff(await logitsOf(fresh, probe), trainedLogits)).toBeLessThan(1e-5);
      } finally {
        fresh.dispose();
      }

      // Merge: the same logits without the adapter path; then the merged weights exported and reloaded.
      await mergeIntoLayers(model.linears.values(), 'a');
      activateOnly(model, null);
      expect(maxAbsDiff(await logitsOf(model, probe), trainedLogits)).toBeLessThan(1e-4);
      const mergedDir = join(root, 'merged');
      await exportMergedModel(model, built.dir, mergedDir, { dtype: 'F32' });
      const reloaded = await loadModel(mergedDir);
      try {
        expect(maxAbsDiff(await logitsOf(reloaded, probe), trainedLogits)).toBeLessThan(1e-4);
      } finally {
        reloaded.dispose();
      }
    } finally {
      model.dispose();
    }
  });
});
