/**
 * LoRA training on the real architectures (the gpt2 and llama loaders, real tiny checkpoints): a fresh
 * adapter leaves logits unchanged, training changes the greedy output to what the data teaches, and the saved
 * adapter has PEFT's layout (GPT-2's fused c_attn is one module, fan_in_fan_out true) and reloads exactly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useCpu } from '../lora/setup';
import { loadModel } from '../../../main/engine/models/registry';
import { attachAdapterWeights, injectAdapter, adapterVariables, peftWeightsOf } from '../../../main/engine/lora/inject';
import { loadAdapter, saveAdapter } from '../../../main/engine/lora/peft-io';
import { trainLoop } from '../../../main/engine/train/loop';
import type { TokenizedExample } from '../../../main/engine/train/tokenize';
import type { CausalLM } from '../../../main/engine/models/types';

const FIXTURES = join(import.meta.dirname, '../../fixtures');
const dir = mkdtempSync(join(tmpdir(), 'lorasmith-real-'));
beforeAll(useCpu);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cases = [
  { name: 'tiny-random-gpt2', targets: ['c_attn'], lr: 5e-2, steps: 30, expectFanIn: true, module: 'transformer.h.0.attn.c_attn', aShape: [4, 32], bShape: [96, 4] },
  { name: 'tiny-random-llama', targets: ['q_proj', 'v_proj'], lr: 0.1, steps: 15, expectFanIn: false, module: 'model.layers.0.self_attn.q_proj', aShape: [4, 16], bShape: [16, 4] },
];

// Every prompt [p, q] -> one answer token, the only target. These tiny random checkpoints have output embeddings
// so small that their logits span well under one nat: the loss cannot approach zero, but the greedy answer can
// change. The answer is the token whose output row is longest, which a hidden state can always make win.
const PROMPTS = [[11, 12], [21, 22], [31, 32], [41, 42]];
const rowsFor = (answer: number): TokenizedExample[] => PROMPTS.map((p, i) => ({ line: i + 1, ids: [...p, answer], train: [0, 0, 1] }));
const prompts = () => tf.tensor2d(PROMPTS, [PROMPTS.length, 2], 'int32');
function longestOutputRow(model: CausalLM): number {
  const head = model.namedWeights().get('lm_head.weight') ?? model.namedWeights().get('transformer.wte.weight');
  return tf.tidy(() => tf.argMax(tf.sum(tf.square(head as tf.Tensor2D), 1)).dataSync()[0] as number);
}
const greedyLast = (logits: tf.Tensor3D) => tf.tidy(() => (tf.argMax(logits, -1).arraySync() as number[][]).map((r) => r[r.length - 1]));

describe.each(cases)('$name', (c) => {
  it('trains a LoRA adapter that changes the greedy output and reloads in PEFT layout', async () => {
    const model = await loadModel(join(FIXTURES, c.name));
    const answer = longestOutputRow(model);
    const rows = rowsFor(answer);
    const ids = prompts();
    const base = model.forward(ids);
    const baseGreedy = greedyLast(base);
    const adapter = injectAdapter(model, 'default', { targetModules: c.targets, rank: 4, alpha: 8, dropout: 0 }, { seed: 1 });
    const fresh = model.forward(ids);
    expect(fresh.arraySync()).toEqual(base.arraySync());
    expect(baseGreedy).not.toEqual([answer, answer, answer, answer]);

    const result = await trainLoop({ model, variables: adapterVariables(adapter), trainRows: rows, padId: 0, hyperparameters: { maxSteps: c.steps, batchSize: 4, learningRate: c.lr, scheduler: 'constant', seed: 1 } });
    const losses = result.history.map((h) => h.loss);
    expect(losses[losses.length - 1]).toBeLessThan((losses[0] as number) - 0.1);
    const trained = model.forward(ids);
    expect(greedyLast(trained)).toEqual([answer, answer, answer, answer]);

    const out = join(dir, c.name);
    saveAdapter(out, adapter.config, await peftWeightsOf(adapter), { baseModelNameOrPath: c.name, fanInFanOut: [...model.linears.values()].some((l) => l.spec.fanInFanOut) });
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ fan_in_fan_out: c.expectFanIn, target_modules: c.targets, r: 4, lora_alpha: 8 });
    const loaded = loadAdapter(out);
    const w = loaded.modules.get(c.module);
    expect([w?.rank, (w?.loraA.length ?? 0) / 4]).toEqual([c.aShape[0], c.aShape[1]]);
    expect((w?.loraB.length ?? 0) / 4).toBe(c.bShape[0]);

    const again = await loadModel(join(FIXTURES, c.name));
    attachAdapterWeights(again, 'default', loaded.config, loaded.modules);
    const reloaded = again.forward(ids);
    expect(reloaded.arraySync()).toEqual(trained.arraySync());
    tf.dispose([ids, base, fresh, trained, reloaded]);
    model.dispose();
    again.dispose();
  });
});
