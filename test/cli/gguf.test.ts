/**
 * `lorasmith gguf`: a PEFT adapter out as a GGUF LoRA with its Modelfile (run in llama.cpp to our engine's logits),
 * adapters merged into one GGUF model, inspection, the models Ollama and LM Studio hold found by name, and refusals
 * that leave nothing behind.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportGgufModel } from '../../main/engine/adapters/gguf-model-export';
import { exportPeftAdapter } from '../../main/engine/adapters/peft';
import { kv, writeGguf } from '../../main/engine/io/gguf-write';
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
    expect((await runCli(['gguf', 'export'])).err).toMatch(/gguf needs a subcommand: adapter, merged, inspect or find \(got 'export'\)/);
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

describe('lorasmith gguf find', () => {
  it("lists the models Ollama and LM Studio hold in their default folders, and a chosen folder's, each with its path or why it cannot be used", async () => {
    const home = join(work, 'home');
    const starter = join(work, 'find-starter.gguf');
    const model = await loadModel(STARTER);
    await exportGgufModel(model, STARTER, starter, { type: 'F16', name: 'starter' }).finally(() => model.dispose());
    // Ollama's library ($OLLAMA_MODELS): the starter as a blob named by its sha256, under a manifest naming it.
    const ollama = join(work, 'ollama-models');
    const digest = createHash('sha256').update(readFileSync(starter)).digest('hex');
    const blob = join(ollama, 'blobs', `sha256-${digest}`);
    mkdirSync(join(ollama, 'blobs'), { recursive: true });
    copyFileSync(starter, blob);
    mkdirSync(join(ollama, 'manifests/registry.ollama.ai/library/starter'), { recursive: true });
    writeFileSync(join(ollama, 'manifests/registry.ollama.ai/library/starter/latest'), JSON.stringify({ layers: [{ mediaType: 'application/vnd.ollama.image.model', digest: `sha256:${digest}` }] }));
    // LM Studio's default folder (~/.lmstudio/models/<publisher>/<repo>/), and a folder the user names.
    const lmstudio = join(home, '.lmstudio/models/lorasmith/starter-GGUF/starter-F16.gguf');
    mkdirSync(join(lmstudio, '..'), { recursive: true });
    copyFileSync(starter, lmstudio);
    const chosen = join(work, 'my-ggufs');
    mkdirSync(chosen);
    await writeGguf(join(chosen, 'falcon-Q8_0.gguf'), [kv.string('general.architecture', 'falcon')], [
      { name: 'token_embd.weight', shape: [4, 32], type: 'Q8_0', data: () => new Float32Array(128) },
    ]);

    const saved = { HOME: process.env.HOME, OLLAMA_MODELS: process.env.OLLAMA_MODELS };
    process.env.HOME = home;
    process.env.OLLAMA_MODELS = ollama;
    try {
      const { code, out } = await runCli(['gguf', 'find', '--folder', chosen]);
      expect(code).toBe(0);
      expect(out).toContain(`searched ${ollama}, ${join(home, '.lmstudio/models')}, ${chosen}: 3 GGUF model(s)`);
      expect(out).toMatch(new RegExp(`ollama +starter:latest \\(llama, F16, [\\d,]+ parameters, [\\d.]+ MB\\)\n +${blob}\n`));
      expect(out).toMatch(new RegExp(`lmstudio lorasmith/starter-GGUF/starter-F16.gguf \\(llama, F16, .*\\)\n +${lmstudio}\n`));
      expect(out).toMatch(new RegExp(`folder +falcon-Q8_0.gguf \\(falcon, .*\\)\n +${join(chosen, 'falcon-Q8_0.gguf')}\n +cannot be used here: .*architecture 'falcon' is not supported`));
      const json = JSON.parse((await runCli(['gguf', 'find', '--folder', chosen, '--json'])).out) as { found: { origin: string; name: string; path: string; digest: string | null; problem: string | null; architecture: string | null }[] };
      expect(json.found.map((f) => [f.origin, f.name, f.path, f.architecture, f.problem === null])).toEqual([
        ['ollama', 'starter:latest', blob, 'llama', true],
        ['lmstudio', 'lorasmith/starter-GGUF/starter-F16.gguf', lmstudio, 'llama', true],
        ['folder', 'falcon-Q8_0.gguf', join(chosen, 'falcon-Q8_0.gguf'), 'falcon', false],
      ]);
      expect(json.found[0]?.digest).toBe(`sha256:${digest}`);
      expect((await runCli(['gguf', 'find', chosen])).err).toMatch(/gguf find takes no <path> \(got '.*my-ggufs'\); give a folder with --folder DIR/);
    } finally {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
    // What it found is a <model> wherever one goes, read where it lies.
    const generated = await runCli(['generate', blob, '--prompt', 'In the beginning', '--max-new-tokens', '3', '--backend', 'cpu', '--json']);
    expect([generated.code, generated.err]).toEqual([0, '']);
  });
});
