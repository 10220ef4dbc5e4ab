import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../main/engine/backend/index';
import { loadModel } from '../../main/engine/models/registry';
import { inspectModel } from '../../main/engine/models/inspect';
import { buildLlama } from '../engine/models/random-models';

const fixtures = join(import.meta.dirname, '../fixtures');
let dir: string;
beforeAll(async () => {
  await initBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'inspect-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('lorasmith inspect', () => {
  it('--json describes tiny-random-gpt2: sizes, parameters, linears and target groups', async () => {
    const { code, out } = await runCli(['inspect', join(fixtures, 'tiny-random-gpt2'), '--json']);
    expect(code).toBe(0);
    const s = JSON.parse(out) as ReturnType<typeof inspectModel>;
    expect(s.config).toMatchObject({ modelType: 'gpt2', numLayers: 5, hiddenSize: 32, numHeads: 4, vocabSize: 1000 });
    // wte 1000·32 + wpe 512·32 + 5 blocks · (2·2·32 + 32·96+96 + 32·32+32 + 32·128+128 + 128·32+32) + ln_f 2·32
    expect(s.parameterCount).toBe(32000 + 16384 + 5 * (128 + 3168 + 1056 + 4224 + 4128) + 64);
    expect(s.dtypes).toEqual({ F32: 5 * 12 + 4 });
    expect(s.linears).toHaveLength(5 * 4 + 1);
    expect(s.linears[0]).toMatchObject({ path: 'transformer.h.0.attn.c_attn', inFeatures: 32, outFeatures: 96, fanInFanOut: true });
    const groups = Object.fromEntries(s.targetGroups.map((g) => [g.group, g]));
    expect(groups.attention?.moduleNames).toEqual(['c_attn', 'c_proj']);
    expect(groups.attention?.modules).toBe(10);
    expect(groups.mlp?.moduleNames).toEqual(['c_fc', 'c_proj']);
    expect(groups['all-linear']?.modules).toBe(20);
    expect(s.hasTokenizer).toBe(true);
  });

  it('prints a readable summary of tiny-random-llama', async () => {
    const { code, out } = await runCli(['inspect', join(fixtures, 'tiny-random-llama')]);
    expect(code).toBe(0);
    expect(out).toMatch(/architecture\s+llama \(LlamaForCausalLM\)/);
    expect(out).toMatch(/model\.layers\.1\.mlp\.down_proj\s+64 -> 16/);
    expect(out).toMatch(/attention\s+q_proj, k_proj, v_proj, o_proj \(8 modules/);
    expect(out).toMatch(/stored as F16×21/);
  });

  it('lists the linears exactly as the loaded model does (GQA, untied)', async () => {
    const built = buildLlama(join(dir, 'gqa'), { hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 40, vocab: 30, tied: false });
    const model = await loadModel(built.dir);
    try {
      expect(inspectModel(built.dir).linears).toEqual([...model.linears.values()].map((l) => l.spec));
      expect(inspectModel(built.dir).parameterCount).toBe(model.parameterCount());
    } finally {
      model.dispose();
    }
  });

  it('fails clearly on a folder that is not a model', async () => {
    const { code, err } = await runCli(['inspect', dir]);
    expect(code).toBe(1);
    expect(err).toMatch(/\[MODEL_NOT_FOUND\] .*no config\.json/);
    expect((await runCli(['inspect'])).code).toBe(2);
  });
});
