import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli';
import { exportPeftAdapter } from '../../main/engine/adapters/peft';
import { loadAdaptersForGeneration, parseAdapterSpec } from '../../main/engine/adapters/generation';
import { resolveLoraConfig } from '../../main/engine/lora/config';
import type { PeftModuleWeights } from '../../main/engine/lora/inject';
import { loadModel } from '../../main/engine/models/registry';
import type { CausalLM } from '../../main/engine/models/types';
import { Rng } from '../../main/engine/train/rng';
import { useCpu } from '../engine/lora/setup';
import { logitsOf, maxAbsDiff } from '../support/logits';

const FIXTURES = join(import.meta.dirname, '../fixtures');
const GPT2 = join(FIXTURES, 'tiny-random-gpt2');
const PEFT_124M = join(FIXTURES, 'peft-gpt2-lora-c_attn-c_proj');
const IDS = [[5, 99, 310, 7, 42, 999, 1, 64]];
const logits = (model: CausalLM): Promise<Float32Array> => logitsOf(model, IDS);

let work: string;
let adapterDir: string;

beforeAll(async () => {
  await useCpu();
  work = mkdtempSync(join(tmpdir(), 'lorasmith-cli-adapters-'));
  // A PEFT adapter for the tiny GPT-2 (n_embd 32): c_attn and c_fc, rank 4, trained-looking (B ≠ 0).
  const rng = new Rng(3);
  const modules = new Map<string, PeftModuleWeights>();
  for (let layer = 0; layer < 5; layer++) {
    for (const [name, inF, outF] of [['attn.c_attn', 32, 96], ['mlp.c_fc', 32, 128]] as const) {
      modules.set(`transformer.h.${layer}.${name}`, {
        rank: 4,
        loraA: Float32Array.from({ length: 4 * inF }, () => rng.uniform(-0.3, 0.3)),
        loraB: Float32Array.from({ length: outF * 4 }, () => rng.uniform(-0.3, 0.3)),
      });
    }
  }
  adapterDir = join(work, 'tiny-adapter');
  exportPeftAdapter(adapterDir, {
    config: resolveLoraConfig({ targetModules: ['c_attn', 'c_fc'], rank: 4, alpha: 8 }),
    meta: { baseModelNameOrPath: 'tiny-random-gpt2', fanInFanOut: true },
    modules,
  });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('lorasmith adapter check', () => {
  it('says OK for an adapter that fits', async () => {
    const { code, out } = await runCli(['adapter', 'check', adapterDir, GPT2]);
    expect(code).toBe(0);
    expect(out.split('\n')[0]).toBe('made for tiny-random-gpt2 with hidden 32; fits this gpt2 base: 10 modules (c_attn, c_fc) at rank 4');
    expect(out).toContain('against a gpt2 base: OK');
    expect(out).toContain('10 module(s) fit, rank 4');
  });

  it('reports a mismatching base module by module, exit 1', async () => {
    const { code, out } = await runCli(['adapter', 'check', PEFT_124M, GPT2, '--json']);
    expect(code).toBe(1);
    const report = JSON.parse(out) as { ok: boolean; verdict: string; problems: { kind: string; module?: string; message: string }[] };
    expect(report.ok).toBe(false);
    expect(report.problems.filter((p) => p.kind === 'shape')).toHaveLength(15); // layers 0-4 × 3 modules
    expect(report.problems.filter((p) => p.kind === 'missing-module')).toHaveLength(21); // layers 5-11
    expect(report.verdict).toBe('made for gpt2 with hidden 768; this base has hidden 32: it cannot be used with this base');
  });

  it('prints the verdict first, then one line per module kind instead of one per module', async () => {
    const { code, out } = await runCli(['adapter', 'check', PEFT_124M, GPT2]);
    expect(code).toBe(1);
    const lines = out.trim().split('\n');
    expect(lines[0]).toBe('made for gpt2 with hidden 768; this base has hidden 32: it cannot be used with this base');
    expect(lines[1]).toBe(`${PEFT_124M} against a gpt2 base: 36 problem(s)`);
    expect(lines.slice(2)).toEqual([
      '  ✗ attn.c_attn (layers 0–4): lora_A is [8, 768] and lora_B [2304, 8]; this base needs lora_A [8, 32] and lora_B [96, 8]',
      '  ✗ attn.c_proj (layers 0–4): lora_A is [8, 768] and lora_B [768, 8]; this base needs lora_A [8, 32] and lora_B [32, 8]',
      '  ✗ mlp.c_proj (layers 0–4): lora_A is [8, 3072] and lora_B [768, 8]; this base needs lora_A [8, 128] and lora_B [32, 8]',
      '  ✗ attn.c_attn, attn.c_proj, mlp.c_proj (layers 5–11): is not a linear module of this base model',
    ]);
  });
});

describe('lorasmith merge', () => {
  it('writes a merged folder whose logits equal the unmerged mix of the same adapters', async () => {
    const out = join(work, 'merged');
    const { code, out: text, err } = await runCli(['merge', GPT2, '--adapter', `${adapterDir}=0.5`, `--adapter=${adapterDir}=1.5`, '--out', out, '--backend', 'cpu']);
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(text).toContain('merged');
    expect(existsSync(join(out, 'model.safetensors'))).toBe(true);

    const base = await loadModel(GPT2);
    const baseLogits = await logits(base);
    const resident = loadAdaptersForGeneration(base, [parseAdapterSpec(`${adapterDir}=0.5`), parseAdapterSpec(`${adapterDir}=1.5`)]);
    expect(resident.names).toEqual(['tiny-adapter', 'tiny-adapter#2']);
    const mixed = await logits(base);
    expect(maxAbsDiff(mixed, baseLogits)).toBeGreaterThan(1e-2);
    const merged = await loadModel(out);
    expect(maxAbsDiff(await logits(merged), mixed)).toBeLessThan(1e-4);
    resident.clear();
    expect(maxAbsDiff(await logits(base), baseLogits)).toBe(0);
    merged.dispose();
    base.dispose();
  });

  it('generate --adapter DIR=SCALE gives the same greedy tokens as generating from the merged folder', async () => {
    const out = join(work, 'merged-for-generate');
    expect((await runCli(['merge', GPT2, '--adapter', `${adapterDir}=2`, '--out', out, '--backend', 'cpu'])).code).toBe(0);
    const common = ['--prompt-ids', '5,99,310', '--max-new-tokens', '8', '--backend', 'cpu', '--json'];
    const withAdapter = JSON.parse((await runCli(['generate', GPT2, '--adapter', `${adapterDir}=2`, ...common])).out) as { ids: number[]; adapters: unknown };
    const merged = JSON.parse((await runCli(['generate', out, ...common])).out) as { ids: number[] };
    const base = JSON.parse((await runCli(['generate', GPT2, ...common])).out) as { ids: number[] };
    expect(withAdapter.ids).toEqual(merged.ids);
    expect(withAdapter.ids).not.toEqual(base.ids);
    expect(withAdapter.adapters).toEqual([{ name: 'tiny-adapter', weight: 2 }]);
  });

  it('refuses an adapter that does not fit the base, with the preflight report, writing nothing', async () => {
    const out = join(work, 'never');
    const { code, err } = await runCli(['merge', GPT2, '--adapter', PEFT_124M, '--out', out, '--backend', 'cpu']);
    expect(code).toBe(1);
    expect(err).toContain('[INCOMPATIBLE_ADAPTER] made for gpt2 with hidden 768; this base has hidden 32: it cannot be used with this base');
    expect(err).toContain('attn.c_attn (layers 0–4): lora_A is [8, 768]');
    expect(existsSync(out)).toBe(false);
  });

  it('explains usage errors', async () => {
    expect((await runCli(['merge', GPT2, '--adapter', adapterDir])).err).toContain('--out DIR is required');
    expect((await runCli(['merge', GPT2, '--out', 'x'])).err).toContain('at least one --adapter');
    expect((await runCli(['merge', GPT2, '--adapter', `${adapterDir}=-x`, '--out', 'x'])).err).toContain("adapter scale must be a number, got '-x'");
  });
});

describe('lorasmith adapter analyze / reduce', () => {
  it('analyzes against the base weights', async () => {
    const { code, out } = await runCli(['adapter', 'analyze', adapterDir, '--model', GPT2, '--json']);
    expect(code).toBe(0);
    const analysis = JSON.parse(out) as { modules: { path: string; rank: number; numericalRank: number; relativeToBase: number | null }[] };
    expect(analysis.modules).toHaveLength(10);
    expect(analysis.modules.every((m) => m.numericalRank === 4 && m.relativeToBase !== null && m.relativeToBase > 0)).toBe(true);
    const table = await runCli(['adapter', 'analyze', PEFT_124M]);
    expect(table.out).toContain('transformer.h.11.mlp.c_proj');
  });

  it('reduces the rank and writes a PEFT adapter that fits the same base', async () => {
    const out = join(work, 'reduced');
    const { code, out: text } = await runCli(['adapter', 'reduce', adapterDir, '--rank', '2', '--out', out]);
    expect(code).toBe(0);
    expect(text).toMatch(/relative error .* overall 0\.\d{4}/);
    expect(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'))).toMatchObject({ r: 2, lora_alpha: 2 });
    expect((await runCli(['adapter', 'check', out, GPT2])).code).toBe(0);
    expect((await runCli(['adapter', 'reduce', adapterDir, '--rank', '0', '--out', out])).err).toContain('--rank must be a positive integer, got 0');
    expect((await runCli(['adapter', 'frob'])).err).toContain("adapter needs a subcommand: check, analyze or reduce (got 'frob')");
  });
});
