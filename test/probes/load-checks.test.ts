/**
 * What loads must be what it claims: weights and adapters holding NaN or infinities, an untied model without its
 * head, a tokenizer with no vocabulary, a config naming a million layers, a 50 MB record in a dry run. Through
 * the real server (chat.load, where the app loads) and the real command line; each is refused naming the tensor,
 * file or setting, and nothing keeps answering as if it had loaded.
 */
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WebSocket } from 'ws';
import { readSafetensors, writeSafetensors, type WritableTensor } from '../../main/engine/io/safetensors';
import { spawnCli } from '../support/probes/cli';
import { probe } from '../support/probes/record';
import { call, openSocket, REPO, startServer, stillAnswers, tempDir, type RunningServer } from '../support/probes/server';

const GPT2 = join(REPO, 'test/fixtures/tiny-random-gpt2');
const LLAMA = join(REPO, 'test/fixtures/tiny-random-llama');
const STARTER = join(REPO, 'resources/starter');
const STARTER_LORA = join(REPO, 'test/fixtures/peft-0.21-starter-lora');

let temp: ReturnType<typeof tempDir>;
let server: RunningServer;
let ws: WebSocket;
let goodModelId = '';

/** A copy of `source` whose safetensors file `file` is rewritten by `edit` (as float32). */
function variant(source: string, name: string, file: string, edit: (tensors: Map<string, WritableTensor>) => void): string {
  const dir = join(temp.dir, name);
  cpSync(source, dir, { recursive: true });
  const tensors = new Map<string, WritableTensor>();
  for (const [key, t] of readSafetensors(join(source, file)).tensors) tensors.set(key, { dtype: 'F32', shape: t.shape, data: Float32Array.from(t.data) });
  edit(tensors);
  writeSafetensors(join(dir, file), tensors);
  return dir;
}

function poison(tensors: Map<string, WritableTensor>, name: string, index: number, value: number): void {
  const t = tensors.get(name);
  if (!t) throw new Error(`no tensor ${name}`);
  (t.data as Float32Array)[index] = value;
}

/** chat.load of a folder imported by reference fails with `code` and `message`; afterwards no model answers. */
async function loadRefused(dir: string, code: string, message: RegExp): Promise<void> {
  await call(ws, 'chat.load', { modelId: goodModelId }); // a model answering before
  const imported = await call(ws, 'models.import', { path: dir, mode: 'reference' });
  expect(imported.ok, JSON.stringify(imported.error)).toBe(true);
  const loaded = await call(ws, 'chat.load', { modelId: (imported.result as { id: string }).id });
  expect(loaded).toMatchObject({ ok: false, error: { code, message: expect.stringMatching(message) } });
  const reply = await call(ws, 'chat.generate', {
    requestId: `after-${code}-${Math.random()}`, mix: { adapters: [] }, messages: [{ role: 'user', content: 'hi' }],
    sampling: { maxNewTokens: 2, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 },
  });
  expect(reply).toMatchObject({ ok: false, error: { message: expect.stringContaining('no model is loaded') } });
  expect(await stillAnswers(server)).toBe(true);
}

beforeAll(async () => {
  temp = tempDir('probe-load');
  server = await startServer(join(temp.dir, 'data'));
  ws = await openSocket(server);
  const good = await call(ws, 'models.import', { path: GPT2, mode: 'reference', name: 'good' });
  goodModelId = (good.result as { id: string }).id;
});

afterAll(async () => {
  ws.close();
  expect(await server.stop()).toBe(0);
  temp.remove();
});

describe('weights, heads and vocabularies are checked when they load', () => {
  probe('nan-weights', async () => {
    const nan = variant(GPT2, 'nan-model', 'model.safetensors', (t) => poison(t, 'transformer.h.2.mlp.c_fc.weight', 17, Number.NaN));
    await loadRefused(nan, 'NON_FINITE', /tensor 'transformer\.h\.2\.mlp\.c_fc\.weight' holds NaN at index 17/);
    const inf = variant(GPT2, 'inf-model', 'model.safetensors', (t) => poison(t, 'transformer.wte.weight', 5, Number.POSITIVE_INFINITY));
    await loadRefused(inf, 'NON_FINITE', /tensor 'transformer\.wte\.weight' holds Infinity at index 5/);
  }, 120_000);

  probe('nan-adapter', async () => {
    const adapter = variant(STARTER_LORA, 'nan-adapter', 'adapter_model.safetensors', (t) => {
      const name = [...t.keys()].find((k) => k.endsWith('lora_B.weight')) as string;
      poison(t, name, 3, Number.NaN);
    });
    const check = await spawnCli(['adapter', 'check', adapter, STARTER]);
    expect(check.code).toBe(1);
    expect(check.out).toMatch(/✗ .*holds NaN at index 3/);
    const clean = await spawnCli(['adapter', 'check', STARTER_LORA, STARTER]);
    expect(clean.code, clean.out).toBe(0);
  }, 120_000);

  probe('untied-no-head', async () => {
    const headless = variant(LLAMA, 'headless-llama', 'model.safetensors', (t) => t.delete('lm_head.weight'));
    expect(JSON.parse(readFileSync(join(headless, 'config.json'), 'utf8')).tie_word_embeddings).toBe(false);
    await loadRefused(headless, 'TENSOR_NOT_FOUND', /tie_word_embeddings false .* no 'lm_head\.weight'/);
  }, 120_000);

  probe('empty-vocabulary', async () => {
    const dir = join(temp.dir, 'empty-vocab');
    cpSync(GPT2, dir, { recursive: true });
    const tokenizer = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: object; merges: unknown[] }; added_tokens: unknown[] };
    tokenizer.model.vocab = {};
    tokenizer.model.merges = [];
    tokenizer.added_tokens = [];
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
    await loadRefused(dir, 'INVALID_TOKENIZER', /vocabulary is empty/);
  }, 120_000);
});

describe('the command line on configs and records that would exhaust memory', () => {
  probe('inspect-million-layers', async () => {
    const dir = join(temp.dir, 'million-layers');
    cpSync(GPT2, dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, n_layer: 1_000_000 }));
    const run = await spawnCli(['inspect', dir]);
    expect(run.signal).toBeNull();
    expect(run.code).toBe(1);
    expect(run.err).toMatch(/\[INVALID_CONFIG\] .*1000000 layers .* the checkpoint holds 5/);
    // The server refuses to import it for the same reason.
    await expect(call(ws, 'models.import', { path: dir, mode: 'reference' })).resolves.toMatchObject({ ok: false, error: { code: 'INVALID_CONFIG' } });
  }, 120_000);

  probe('dry-run-50mb-line', async () => {
    const huge = JSON.stringify({ prompt: 'p', completion: 'y'.repeat(50 << 20) });
    const mixed = join(temp.dir, 'mixed.jsonl');
    writeFileSync(mixed, [JSON.stringify({ prompt: 'a', completion: ' b' }), huge, JSON.stringify({ prompt: 'c', completion: ' d' })].join('\n') + '\n');
    const ok = await spawnCli(['train', STARTER, '--data', mixed, '--dry-run', '--json', '--targets', 'q_proj']);
    expect(ok.signal).toBeNull();
    expect(ok.code, ok.err).toBe(0);
    const dataset = ok.out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.event === 'dataset');
    expect(dataset).toMatchObject({ valid: 2, skipped: 1, issues: [{ line: 2, message: expect.stringContaining('records longer than 1 Mi characters are skipped') }] });
    const only = join(temp.dir, 'only-huge.jsonl');
    writeFileSync(only, huge + '\n');
    const refused = await spawnCli(['train', STARTER, '--data', only, '--dry-run', '--targets', 'q_proj']);
    expect(refused.signal).toBeNull();
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/\[EMPTY_DATASET\] .*no valid records \(line 1: the record is 50\.0 Mi characters/);
  }, 180_000);
});
