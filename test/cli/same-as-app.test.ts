/**
 * The app and the command line make the same adapter and say the same things: one dataset trained with the same
 * settings and seed through the app's handlers (a real library and a real engine host in a worker thread) and
 * through `lorasmith train` gives byte-identical adapter weights and the same training record (apart from time,
 * speed and paths); the app's chat and `lorasmith generate --chat` then sample the same tokens from the same
 * prompt, adapter and seed. tiny-random-llama's tokenizer asks for BOS and its chat template writes it, so the
 * prompt encoding's BOS rule is on the path; LoRA dropout and validation samples are too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Api, TrainingSettings } from '../../preload/contract';
import { runCli } from '../support/cli';
import { nextEvent } from '../support/events';
import { handlersUnderTest, type HandlersUnderTest } from '../support/handlers';

const fixture = join(import.meta.dirname, '../fixtures/tiny-random-llama');
const dir = mkdtempSync(join(tmpdir(), 'lorasmith-same-'));
const dataFile = join(dir, 'plus-one.jsonl');
let main: HandlersUnderTest;
let api: Api;
const backendBefore = process.env.LORASMITH_BACKEND;

const settings: TrainingSettings = {
  lora: { targetModules: ['q_proj', 'v_proj'], rank: 2, alpha: 4, dropout: 0.1, useRslora: false },
  maxSteps: 6, learningRate: 2e-2, batchSize: 2, gradAccum: 2, maxSeqLen: 48, valSplit: 0.25, seed: 7,
  scheduler: 'cosine', warmupSteps: 2, weightDecay: 0.01, maxGradNorm: 1, evalEvery: 3, checkpointEvery: 3, trainOnPrompt: false,
};
/** The same settings as `lorasmith train` options. */
const trainFlags = [
  '--targets', 'q_proj,v_proj', '--rank', '2', '--alpha', '4', '--dropout', '0.1', '--max-steps', '6', '--learning-rate', '2e-2',
  '--batch-size', '2', '--grad-accum', '2', '--max-seq-len', '48', '--val-split', '0.25', '--seed', '7', '--scheduler', 'cosine',
  '--warmup-steps', '2', '--weight-decay', '0.01', '--max-grad-norm', '1', '--eval-every', '3', '--checkpoint-every', '3',
];

beforeAll(async () => {
  // One backend for both sides: the app's from its setting (the host starts on it), the CLI's from --backend.
  process.env.LORASMITH_BACKEND = 'cpu';
  const rows = Array.from({ length: 12 }, (_, i) => JSON.stringify({
    messages: [{ role: 'user', content: `What is ${i} plus one?` }, { role: 'assistant', content: `It is ${i + 1}.` }],
  }));
  writeFileSync(dataFile, rows.join('\n') + '\n');
  main = handlersUnderTest({ dir });
  ({ api } = main);
  await api.invoke('settings.set', { backend: 'cpu' });
});

afterAll(async () => {
  await main.close();
  if (backendBefore === undefined) delete process.env.LORASMITH_BACKEND;
  else process.env.LORASMITH_BACKEND = backendBefore;
  rmSync(dir, { recursive: true, force: true });
});

/** The record without what depends on the moment, the machine or where files are. */
function comparable(record: Record<string, unknown>): Record<string, unknown> {
  const { createdAt: _createdAt, performance: _performance, baseModel, data, result, ...rest } = record as {
    createdAt: string; performance: unknown; baseModel: Record<string, unknown>; data: { files: Record<string, unknown>[] } & Record<string, unknown>;
    result: Record<string, unknown>;
  };
  return {
    ...rest,
    baseModel: { ...baseModel, nameOrPath: '' },
    data: { ...data, files: data.files.map((f) => ({ ...f, path: '' })) },
    result: { ...result, resumedFrom: null },
  };
}

describe('the app and lorasmith make the same adapter', () => {
  let versionDir = '';

  it('trains byte-identical weights and the same record through the handlers and through lorasmith train', async () => {
    const model = await api.invoke('models.import', { path: fixture, mode: 'copy', name: 'tiny llama' });
    const dataset = await api.invoke('datasets.import', { path: dataFile });
    expect(dataset).toMatchObject({ format: 'messages', recordCount: 12 });
    const samples: string[] = [];
    const offProgress = api.on('train.progress', (p) => p.sample !== undefined && samples.push(p.sample));
    const finished = nextEvent(api, 'train.finished');
    await api.invoke('train.start', { modelId: model.id, datasetId: dataset.id, settings, adapterName: 'plus-one' });
    expect((await finished).run).toMatchObject({ status: 'done', error: null });
    offProgress();
    const adapter = (await api.invoke('adapters.list', {})).find((a) => a.name === 'plus-one');
    const [version] = await api.invoke('adapters.versions', { adapterId: adapter?.id ?? '' });
    versionDir = version?.path ?? '';

    const out = join(dir, 'cli-adapter');
    const cli = await runCli(['train', fixture, '--data', dataFile, '--out', out, ...trainFlags, '--backend', 'cpu', '--json']);
    expect(cli.err).toBe('');
    expect(cli.code).toBe(0);

    const appWeights = readFileSync(join(versionDir, 'adapter_model.safetensors'));
    const cliWeights = readFileSync(join(out, 'adapter_model.safetensors'));
    expect(appWeights.length).toBeGreaterThan(1000);
    expect(appWeights.equals(cliWeights)).toBe(true);

    const appRecord = JSON.parse(readFileSync(join(versionDir, 'training_record.json'), 'utf8')) as Record<string, unknown>;
    const cliRecord = JSON.parse(readFileSync(join(out, 'training_record.json'), 'utf8')) as Record<string, unknown>;
    expect(comparable(appRecord)).toEqual(comparable(cliRecord));
    // Lineage: the hashes in the record are the library's own hashes of the same model and dataset.
    expect(appRecord).toMatchObject({ format: 'lorasmith-training-record/2', baseModel: { contentHash: model.contentHash } });
    expect(cliRecord).toMatchObject({ baseModel: { contentHash: model.contentHash }, data: { files: [{ contentHash: dataset.hash, format: 'messages' }], bosTokenId: 1 } });
    // The samples the app showed at each evaluation are the ones the CLI recorded.
    const evals = (cliRecord as { evals: { step: number; sample?: string }[] }).evals;
    expect(evals.map((e) => e.step)).toEqual([3, 6]);
    expect(samples).toEqual(evals.map((e) => e.sample));

    const config = (path: string) => ({ ...JSON.parse(readFileSync(join(path, 'adapter_config.json'), 'utf8')), base_model_name_or_path: '' });
    expect(config(versionDir)).toEqual(config(out));
  });

  it("the app's chat and lorasmith generate --chat sample the same tokens from the same prompt, adapter and seed", async () => {
    expect(versionDir).not.toBe('');
    const [model] = await api.invoke('models.list', {});
    const [version] = await api.invoke('adapters.versions', { adapterId: (await api.invoke('adapters.list', {}))[0]?.id ?? '' });
    await api.invoke('chat.load', { modelId: model?.id ?? '' });
    const sampling = { maxNewTokens: 12, temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.1, seed: 11 };
    const system = 'Answer with a number.';
    const question = 'What is 3 plus one?';
    const tokenIds: number[] = [];
    const off = api.on('chat.token', (t) => t.requestId === 'same' && tokenIds.push(t.tokenId));
    const reply = await api.invoke('chat.generate', {
      requestId: 'same', mix: { adapters: [{ versionId: version?.id ?? '', scale: 1 }] },
      messages: [{ role: 'system', content: system }, { role: 'user', content: question }], sampling,
    });
    off();

    const cli = await runCli([
      'generate', fixture, '--chat', '--system', system, '--prompt', question, '--adapter', versionDir,
      '--max-new-tokens', '12', '--temperature', '0.9', '--top-k', '50', '--top-p', '0.95', '--repetition-penalty', '1.1', '--seed', '11',
      '--backend', 'cpu', '--json',
    ]);
    expect(cli.code).toBe(0);
    const generated = JSON.parse(cli.out) as { ids: number[]; text: string; promptIds: number[] };
    expect(tokenIds.length).toBeGreaterThan(0);
    expect(tokenIds).toEqual(generated.ids);
    expect(reply.text).toBe(generated.text);
    // One BOS, from the Llama-2 template, not a second from the tokenizer's add_bos_token.
    expect(generated.promptIds.filter((id) => id === 1)).toHaveLength(1);
  });
});
