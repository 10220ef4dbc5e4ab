/**
 * `lorasmith gguf`: a PEFT adapter out as a GGUF LoRA with its Modelfile (run in llama.cpp to our engine's logits),
 * adapters merged into one GGUF model, inspection, and refusals that leave nothing behind.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportGgufModel } from '../../main/engine/adapters/gguf-model-export';
import { exportPeftAdapter } from '../../main/engine/adapters/peft';
import { ResidentAdapters } from '../../main/engine/adapters/resident';
import { loadModel } from '../../main/engine/models/registry';
import { useCpu } from '../engine/lora/setup';
import { STARTER, maxDiff, ourLogProbs, randomAdapter } from '../engine/gguf/helpers';
import { runCli } from '../support/cli';
import { llamaCppLogProbs } from '../support/llama-cpp';
import { logitsOf, maxAbsDiff } from '../support/logits';

const TOKENS = [1, 872, 198, 40, 1000, 2, 198, 1, 64, 1103];
let work: string;
let adapterDir: string;
let adapted: Float64Array[];

beforeAll(async () => {
  await useCpu();
  work = mkdtempSync(join(tmpdir(), 'lorasmith-cli-gguf-'));
  const model = await loadModel(STARTER);
  try {
    const adapter = randomAdapter(model, 5);
    adapterDir = join(work, 'peft');
    exportPeftAdapter(adapterDir, adapter);
    const resident = new ResidentAdapters(model);
    resident.loadFromDir('peft', adapterDir);
    resident.use('peft');
    adapted = await ourLogProbs(model, TOKENS);
  } finally {
    model.dispose();
  }
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('lorasmith gguf adapter', () => {
  it('on a Hugging Face folder: adapter.gguf, base.gguf and a Modelfile that llama.cpp runs as our engine does', async () => {
    const out = join(work, 'out-folder-base');
    const { code, out: stdout } = await runCli(['gguf', 'adapter', adapterDir, '--base', STARTER, '--out', out, '--name', 'Starter Tuned', '--type', 'f32', '--backend', 'cpu']);
    expect(code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['Modelfile', 'adapter.gguf', 'base.gguf']);
    const modelfile = readFileSync(join(out, 'Modelfile'), 'utf8');
    expect(modelfile).toContain('FROM ./base.gguf\nADAPTER ./adapter.gguf\n');
    expect(modelfile).toContain('TEMPLATE """{{ range .Messages }}<|im_start|>');
    expect(modelfile).toContain('PARAMETER stop "<|im_end|>"');
    expect(stdout).toContain(`ollama create starter-tuned -f ${out}/Modelfile && ollama run starter-tuned`);
    expect(stdout).toContain(`llama-cli -m ${out}/base.gguf --lora ${out}/adapter.gguf -cnv`);
    const llama = await llamaCppLogProbs(join(out, 'base.gguf'), TOKENS, [{ path: join(out, 'adapter.gguf') }]);
    expect(maxDiff(adapted, llama.logProbs)).toBeLessThan(5e-5);
  });

  it('on a GGUF base: the Modelfile names the base file, or its Ollama name', async () => {
    const baseGguf = join(work, 'starter.gguf');
    const model = await loadModel(STARTER);
    await exportGgufModel(model, STARTER, baseGguf, { type: 'F16' }).finally(() => model.dispose());
    const out = join(work, 'out-gguf-base');
    expect((await runCli(['gguf', 'adapter', adapterDir, '--base', baseGguf, '--out', out, '--backend', 'cpu'])).code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['Modelfile', 'adapter.gguf']);
    expect(readFileSync(join(out, 'Modelfile'), 'utf8')).toContain(`FROM ${baseGguf}\nADAPTER ./adapter.gguf\n`);
    const named = join(work, 'out-ollama-name');
    expect((await runCli(['gguf', 'adapter', adapterDir, '--base', baseGguf, '--out', named, '--ollama-base', 'starter:latest', '--backend', 'cpu'])).code).toBe(0);
    const fromOllama = readFileSync(join(named, 'Modelfile'), 'utf8');
    expect(fromOllama).toContain('FROM starter:latest\n');
    expect(fromOllama).toContain('# No TEMPLATE: the chat template and stop words are those of starter:latest in Ollama.');
    expect(fromOllama).not.toContain('PARAMETER stop');
  });

  it('refuses an adapter made for another base before writing anything', async () => {
    const out = join(work, 'out-wrong');
    const { code, err } = await runCli(['gguf', 'adapter', adapterDir, '--base', join(import.meta.dirname, '../fixtures/tiny-random-llama'), '--out', out, '--backend', 'cpu']);
    expect(code).toBe(1);
    expect(err).toMatch(/\[INCOMPATIBLE_ADAPTER\] the adapter does not fit the base/);
    expect(err).toMatch(/model.layers.0.self_attn.q_proj: the adapter is \[out 256, in 256\] but the base's 'blk.0.attn_q.weight' is \[16, 16\]/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(work).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('refuses an --out that exists and bad options', async () => {
    const { code, err } = await runCli(['gguf', 'adapter', adapterDir, '--base', STARTER, '--out', work, '--backend', 'cpu']);
    expect(code).toBe(1);
    expect(err).toMatch(/already exists/);
    expect((await runCli(['gguf', 'adapter', adapterDir, '--base', STARTER, '--out', join(work, 'x'), '--type', 'q4_k'])).err).toMatch(/--type must be f16, bf16, q8_0 or f32, got 'q4_k'/);
    expect((await runCli(['gguf', 'adapter', adapterDir, '--out', join(work, 'x')])).err).toMatch(/--base <model> is required/);
    expect((await runCli(['gguf', 'export'])).err).toMatch(/gguf needs a subcommand: adapter, merged or inspect \(got 'export'\)/);
  });
});

describe('lorasmith gguf merged and inspect', () => {
  it('merges the adapter into one GGUF model with the adapted logits', async () => {
    const out = join(work, 'merged');
    const { code } = await runCli(['gguf', 'merged', STARTER, '--adapter', adapterDir, '--out', out, '--type', 'f32', '--backend', 'cpu']);
    expect(code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['Modelfile', 'model.gguf']);
    expect(readFileSync(join(out, 'Modelfile'), 'utf8')).toContain('FROM ./model.gguf\n');
    const merged = await loadModel(join(out, 'model.gguf'));
    try {
      expect(maxDiff(await ourLogProbs(merged, TOKENS), adapted)).toBeLessThan(1e-4);
    } finally {
      merged.dispose();
    }
  });

  it('inspect names architecture, quantization, tokenizer and template', async () => {
    const { code, out } = await runCli(['gguf', 'inspect', join(work, 'starter.gguf')]);
    expect(code).toBe(0);
    expect(out).toMatch(/model GGUF v3, llama 'model'/);
    expect(out).toMatch(/F16/);
    expect(out).toMatch(/tokenizer: gpt2 \(gpt-2\), 4096 tokens/);
    expect(out).toMatch(/chat template: yes/);
    const json = JSON.parse((await runCli(['gguf', 'inspect', join(work, 'merged/model.gguf'), '--json'])).out) as { architecture: string; unreadable: string[] };
    expect([json.architecture, json.unreadable]).toEqual(['llama', []]);
  });
});

describe('bit-exact base export', () => {
  it('the base written by `gguf adapter` loads to the folder model exactly (f32)', async () => {
    const [a, b] = [await loadModel(STARTER), await loadModel(join(work, 'out-folder-base/base.gguf'))];
    try {
      expect(maxAbsDiff(await logitsOf(a, [TOKENS]), await logitsOf(b, [TOKENS]))).toBe(0);
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});

describe('a GGUF file wherever a model folder goes', () => {
  it('inspect, train, generate, adapter check and analyze take a GGUF model', async () => {
    const base = join(work, 'starter-everywhere.gguf');
    const model = await loadModel(STARTER);
    await exportGgufModel(model, STARTER, base, { type: 'F16' }).finally(() => model.dispose());
    const inspected = JSON.parse((await runCli(['inspect', base, '--json'])).out) as { config: { modelType: string; numLayers: number }; dtypes: Record<string, number>; hasChatTemplate: boolean };
    expect([inspected.config.modelType, inspected.config.numLayers, inspected.hasChatTemplate]).toEqual(['llama', 4, true]);
    expect(inspected.dtypes.F16).toBeGreaterThan(0);

    const data = join(work, 'data.jsonl');
    writeFileSync(data, ['a', 'b', 'c', 'd'].map((x) => JSON.stringify({ prompt: `Say ${x}:`, completion: ` ${x}!` })).join('\n') + '\n');
    const trained = join(work, 'trained-on-gguf');
    const train = await runCli(['train', base, '--data', data, '--out', trained, '--max-steps', '2', '--batch-size', '2', '--max-seq-len', '24', '--val-split', '0', '--rank', '2', '--backend', 'cpu', '--json']);
    expect([train.code, train.err]).toEqual([0, '']);
    expect(existsSync(join(trained, 'adapter_model.safetensors'))).toBe(true);

    const generate = await runCli(['generate', base, '--prompt', 'Say a:', '--max-new-tokens', '3', '--adapter', trained, '--backend', 'cpu', '--json']);
    expect([generate.code, generate.err]).toEqual([0, '']);
    expect((JSON.parse(generate.out) as { ids: number[] }).ids.length).toBeGreaterThan(0);

    const check = await runCli(['adapter', 'check', trained, base]);
    expect([check.code, check.out]).toEqual([0, expect.stringMatching(/against a llama base: OK/)]);
    const analysis = JSON.parse((await runCli(['adapter', 'analyze', adapterDir, '--model', base, '--json'])).out) as { modules: { relativeToBase: number | null }[] };
    expect(analysis.modules.every((m) => m.relativeToBase !== null && m.relativeToBase > 0)).toBe(true);
    // Hugging Face safetensors out of a GGUF base is not offered: it says where the GGUF export is.
    const merge = await runCli(['merge', base, '--adapter', trained, '--out', join(work, 'hf-from-gguf'), '--backend', 'cpu']);
    expect([merge.code, merge.err]).toEqual([1, expect.stringMatching(/is a GGUF model, not a Hugging Face folder: export the merged model as GGUF instead/)]);
  });
});
