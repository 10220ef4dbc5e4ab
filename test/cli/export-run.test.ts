/**
 * lorasmith export-run on the tiny llama fixture (a real Hugging Face folder with a real tokenizer and chat
 * template): the folder's contents, train.py compiled by python3, every JSON and YAML file parsed, the LoRA config
 * in PEFT's names, the labels decoding to exactly the answers the engine trains on, and the refusals.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportRunCommand } from '../../main/cli/export-run';
import { UsageError, type CliIo } from '../../main/cli/command';
import { hashFolder } from '../../main/common/hash';
import { loadTokenizer } from '../../main/engine/io/tokenizer';
import { loadAdapter } from '../../main/engine/lora/peft-io';
import { loadDataset } from '../../main/engine/train/datasets/dataset';
import { resolveTrainSettings } from '../../main/engine/train/settings';
import { tokenizeExamples } from '../../main/engine/train/tokenize';

const yaml = createRequire(import.meta.url)('js-yaml') as { load(text: string): unknown };
const MODEL = join(import.meta.dirname, '..', 'fixtures', 'tiny-random-llama');
const dir = mkdtempSync(join(tmpdir(), 'lorasmith-export-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const qa = join(dir, 'qa.jsonl');
const answers = Array.from({ length: 12 }, (_, i) => ` ${2 * i + 1}.`);
writeFileSync(qa, answers.map((a, i) => JSON.stringify({ prompt: `Q${i}: what is ${i} plus ${i + 1}?`, completion: a })).join('\n') + '\n');
const chat = join(dir, 'chat.jsonl');
const replies = ['Hello there!', 'Paris, of course.', 'Seven.'];
writeFileSync(chat, replies.map((r, i) => JSON.stringify({ messages: [{ role: 'user', content: `question ${i}` }, { role: 'assistant', content: r }] })).join('\n') + '\n');

async function cli(argv: string[]) {
  const out: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: () => undefined, signal: new AbortController().signal };
  const code = await exportRunCommand.run(argv, io);
  return { code, out };
}

const SETTINGS = ['--rank', '4', '--alpha', '12', '--dropout', '0', '--rslora', '--targets', 'attention', '--batch-size', '2', '--grad-accum', '3',
  '--max-steps', '5', '--learning-rate', '3e-3', '--scheduler', 'cosine', '--warmup-steps', '2', '--weight-decay', '0.01', '--max-grad-norm', '0.5',
  '--seed', '11', '--eval-every', '2', '--patience', '3', '--keep', 'last', '--max-seq-len', '64'];

const readJsonl = (path: string) => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { line: number; input_ids: number[]; labels: number[]; segments?: { text: string; train: boolean }[] });

describe('lorasmith export-run', () => {
  const bundle = join(dir, 'bundle');
  const exported = cli([MODEL, '--data', qa, '--out', bundle, '--hub-id', 'example/tiny-llama', '--json', ...SETTINGS]);

  it('writes the whole folder: data, run, LoRA config, initial adapter, train.py, accelerate configs, requirements, README', async () => {
    const { code, out } = await exported;
    expect(code).toBe(0);
    const result = JSON.parse(out[0] as string);
    expect(result).toMatchObject({ done: true, outDir: bundle, trainRows: 11, valRows: 1, totalSteps: 5 });
    expect(result.files).toEqual([
      'README.md', 'accelerate/ddp.yaml', 'accelerate/deepspeed_zero2.yaml', 'accelerate/deepspeed_zero3.yaml', 'accelerate/fsdp.yaml',
      'accelerate/single_gpu.yaml', 'data/train.jsonl', 'data/val.jsonl', 'deepspeed/zero2.json', 'deepspeed/zero3.json',
      'initial_adapter/adapter_config.json', 'initial_adapter/adapter_model.safetensors', 'lora_config.json', 'requirements.txt', 'run.json', 'train.py',
    ]);
    // nothing but the bundle in its parent: no staging folder left behind
    expect(readdirSync(dir).filter((n) => n.startsWith('.'))).toEqual([]);
    const run = JSON.parse(readFileSync(join(bundle, 'run.json'), 'utf8'));
    expect(run.base_model).toMatchObject({ hub_id: 'example/tiny-llama', path: MODEL, content_hash: hashFolder(MODEL), model_type: 'llama' });
    expect(run.dataset.files[0]).toMatchObject({ path: qa, format: 'prompt-completion', valid: 12 });
    expect(run.hyperparameters).toEqual({
      optimizer: 'adamw_torch', adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8, weight_decay: 0.01, learning_rate: 3e-3,
      lr_scheduler_type: 'cosine', warmup_steps: 2, per_device_train_batch_size: 2, gradient_accumulation_steps: 3, num_train_epochs: 3,
      max_steps: 5, steps_per_epoch: 2, total_steps: 5, max_grad_norm: 0.5, seed: 11, eval_steps: 2, early_stopping_patience: 3, keep_weights: 'last', max_length: 64,
    });
    expect(run.tokenization).toMatchObject({ bos_token_id: 1, eos_token_id: 2, max_length: 64, train_on_prompt: false, packing: false });
    const readme = readFileSync(join(bundle, 'README.md'), 'utf8');
    for (const config of ['single_gpu', 'ddp', 'deepspeed_zero2', 'deepspeed_zero3', 'fsdp']) {
      expect(readme).toContain(`accelerate launch --config_file accelerate/${config}.yaml`);
    }
    expect(readme).toContain('lorasmith import-run output');
    expect(readFileSync(join(bundle, 'requirements.txt'), 'utf8')).toMatch(/^transformers==\d+\.\d+\.\d+$/m);
  });

  it('gives the LoRA config in PEFT LoraConfig names, and an initial adapter PEFT loads (B zero, A the engine\'s init)', async () => {
    await exported;
    const lora = JSON.parse(readFileSync(join(bundle, 'lora_config.json'), 'utf8'));
    expect(lora).toEqual({
      task_type: 'CAUSAL_LM', target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], r: 4, lora_alpha: 12, lora_dropout: 0,
      use_rslora: true, bias: 'none', fan_in_fan_out: false, rank_pattern: {}, alpha_pattern: {},
    });
    const adapter = loadAdapter(join(bundle, 'initial_adapter'));
    expect(adapter.raw).toMatchObject({ ...lora, peft_type: 'LORA', base_model_name_or_path: 'example/tiny-llama' });
    expect(adapter.modules.size).toBe(8); // 2 layers × q, k, v, o
    for (const w of adapter.modules.values()) {
      expect(w.loraB.every((v) => v === 0)).toBe(true);
      expect(w.loraA.some((v) => v !== 0) && w.loraA.every((v) => Math.abs(v) <= 0.25)).toBe(true); // uniform(±1/sqrt(16))
    }
  });

  it('compiles train.py with python3', async () => {
    await exported;
    const compiled = spawnSync('python3', ['-m', 'py_compile', join(bundle, 'train.py')], { encoding: 'utf8' });
    if (compiled.error) throw new Error(`python3 is needed to check the exported train.py (apt install python3): ${compiled.error.message}`);
    expect(compiled.stderr).toBe('');
    expect(compiled.status).toBe(0);
  });

  it('writes accelerate configs that parse as YAML and DeepSpeed configs that parse as JSON, with the run\'s clipping', async () => {
    await exported;
    const load = (name: string) => yaml.load(readFileSync(join(bundle, 'accelerate', `${name}.yaml`), 'utf8')) as Record<string, unknown>;
    expect(load('single_gpu')).toMatchObject({ distributed_type: 'NO', num_processes: 1, mixed_precision: 'no', main_training_function: 'main' });
    expect(load('ddp')).toMatchObject({ distributed_type: 'MULTI_GPU', gpu_ids: 'all' });
    expect(load('deepspeed_zero2')).toMatchObject({ distributed_type: 'DEEPSPEED', deepspeed_config: { deepspeed_config_file: 'deepspeed/zero2.json', zero3_init_flag: false } });
    expect(load('deepspeed_zero3')).toMatchObject({ distributed_type: 'DEEPSPEED', deepspeed_config: { deepspeed_config_file: 'deepspeed/zero3.json', zero3_init_flag: true } });
    expect(load('fsdp')).toMatchObject({ distributed_type: 'FSDP', fsdp_config: { fsdp_use_orig_params: true, fsdp_state_dict_type: 'FULL_STATE_DICT' } });
    for (const stage of [2, 3]) {
      const ds = JSON.parse(readFileSync(join(bundle, 'deepspeed', `zero${stage}.json`), 'utf8'));
      expect(ds).toMatchObject({ zero_optimization: { stage }, gradient_accumulation_steps: 1, gradient_clipping: 0.5, train_micro_batch_size_per_gpu: 2 });
    }
  });

  it('labels exactly the tokens the engine trains on: each completion and EOS, nothing of the prompt', async () => {
    await exported;
    const tokenizer = await loadTokenizer(MODEL);
    const settings = resolveTrainSettings({ seed: 11, maxSeqLen: 64 });
    const data = loadDataset({ path: qa, valSplit: settings.valSplit, seed: 11 });
    for (const [file, examples] of [['train', data.train], ['val', data.val]] as const) {
      const rows = readJsonl(join(bundle, 'data', `${file}.jsonl`));
      const engine = tokenizeExamples(examples, tokenizer, { maxSeqLen: 64 }).examples;
      expect(rows.map((r) => r.input_ids)).toEqual(engine.map((e) => e.ids));
      rows.forEach((row, i) => {
        // the engine's weight on position t - 1 is train[t]; labels say the same as -100 / the token
        expect(row.labels.map((l, t) => (t > 0 && l !== -100 ? 1 : 0))).toEqual(engine[i]?.train.map((v, t) => (t > 0 ? v : 0)));
        // The ids are the whole text's (prompt and answer encoded once, as chat encodes them): the answer's own
        // encoding would open with a second '▁' (this tokenizer prepends one to every text it encodes).
        const answer = answers[row.line - 1] ?? '';
        const prompt = `Q${row.line - 1}: what is ${row.line - 1} plus ${row.line}?`;
        expect(row.input_ids).toEqual([1, ...tokenizer.encode(prompt + answer, { addSpecialTokens: false }), 2]);
        const labelled = row.input_ids.filter((_, t) => row.labels[t] !== -100);
        expect(labelled).toEqual([...tokenizer.encode(prompt + answer, { addSpecialTokens: false }).slice(tokenizer.encode(prompt, { addSpecialTokens: false }).length), 2]);
        expect(tokenizer.decode([...row.input_ids.slice(0, -labelled.length), ...labelled])).toBe(`<s> ${prompt}${answer}</s>`);
        expect(row.segments?.filter((s) => s.train).map((s) => s.text)).toEqual([answers[row.line - 1]]);
      });
    }
  });

  it('labels a chat\'s assistant turn (the template applied) and nothing of the user turn', async () => {
    const out = join(dir, 'chat-bundle');
    expect((await cli([MODEL, '--data', chat, '--out', out, '--val-split', '0'])).code).toBe(0);
    const tokenizer = await loadTokenizer(MODEL);
    const rows = readJsonl(join(out, 'data', 'train.jsonl'));
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      const labelled = tokenizer.decode(row.input_ids.filter((_, t) => row.labels[t] !== -100));
      expect(labelled.trim()).toBe(`${replies[row.line - 1]} </s>`);
      expect(row.segments?.find((s) => !s.train)?.text).toContain(`[INST] question ${row.line - 1} [/INST]`);
    }
  });

  it('refuses a non-empty --out and touches nothing in it', async () => {
    const out = join(dir, 'taken');
    mkdirSync(out);
    writeFileSync(join(out, 'notes.txt'), 'mine');
    await expect(cli([MODEL, '--data', qa, '--out', out])).rejects.toMatchObject({ code: 'OUTPUT_NOT_EMPTY' });
    expect(readdirSync(out)).toEqual(['notes.txt']);
    expect(readFileSync(join(out, 'notes.txt'), 'utf8')).toBe('mine');
    // an empty folder is fine
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect((await cli([MODEL, '--data', qa, '--out', empty])).code).toBe(0);
    expect(readdirSync(empty)).toContain('train.py');
  });

  it('refuses full fine-tuning, a target the model lacks and local-only options, writing nothing', async () => {
    const out = join(dir, 'refused');
    await expect(cli([MODEL, '--data', qa, '--out', out, '--full'])).rejects.toMatchObject({ code: 'UNSUPPORTED_RUN' });
    await expect(cli([MODEL, '--data', qa, '--out', out, '--targets', 'c_attn'])).rejects.toMatchObject({ code: 'NO_TARGET_MODULES' });
    await expect(cli([MODEL, '--data', qa, '--out', out, '--resume', 'x'])).rejects.toThrow(UsageError);
    await expect(cli([MODEL, '--data', qa])).rejects.toThrow(/--out DIR is required/);
    expect(readdirSync(dir).filter((n) => n.startsWith('refused') || n.startsWith('.'))).toEqual([]);
  });
});
