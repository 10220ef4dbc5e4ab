/**
 * Probes on the real command handlers (the ones `lorasmith serve` and the app register), a real library and a real
 * engine host in a worker thread: a full disk while a run records its progress, a failed chat.load, and two chat
 * replies with different adapter mixes at once.
 */
import { afterAll, beforeAll, describe, expect } from 'vitest';
import Database from 'better-sqlite3';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Api } from '../../preload/contract';
import type { Library } from '../../main/store/index';
import { handlersUnderTest, type HandlersUnderTest } from '../support/handlers';
import { countingJsonl, gpt2Settings } from '../support/training-data';
import { probe } from '../support/probes/record';
import { REPO } from '../support/probes/server';

const tinyGpt2 = join(REPO, 'test/fixtures/gpt2-real-tokenizer-1layer');
const starter = join(REPO, 'resources/starter');
const starterLora = join(REPO, 'test/fixtures/peft-0.21-starter-lora');

let main: HandlersUnderTest;
let dir = '';
let library: Library;
let api: Api;

const settings = gpt2Settings;

beforeAll(() => {
  main = handlersUnderTest();
  ({ dir, library, api } = main);
  main.writeFile('count.jsonl', countingJsonl(8));
});

afterAll(() => main.close());

/**
 * From now on the library's disk is full: writing metrics fails exactly as better-sqlite3 fails then (a
 * SqliteError with code SQLITE_FULL). Returns the undo.
 */
function diskFull(library: Library): () => void {
  const metrics = library.metrics as { append: Library['metrics']['append'] };
  const append = metrics.append;
  metrics.append = () => {
    throw new Database.SqliteError('database or disk is full', 'SQLITE_FULL');
  };
  return () => void (metrics.append = append);
}

describe('the handlers keep answering and say what happened', () => {
  probe('store-full-progress', async () => {
    const model = await api.invoke('models.import', { path: tinyGpt2, mode: 'copy', name: 'tiny' });
    const dataset = await api.invoke('datasets.import', { path: join(dir, 'count.jsonl') });
    const versionsBefore = library.db.prepare('SELECT COUNT(*) AS n FROM adapter_versions').get() as { n: number };
    const finished = main.nextEvent('train.finished');
    // The disk is full once the run has started: the first step's metrics cannot be written.
    const undo = diskFull(library);
    const run = await api.invoke('train.start', { modelId: model.id, datasetId: dataset.id, settings: settings(50), adapterName: 'full-disk' });
    const done = (await finished).run;
    undo();
    expect(done).toMatchObject({ id: run.id, status: 'failed', error: expect.stringContaining('SQLITE_FULL') });
    expect(done.error).toContain('could not record step');
    expect(library.db.prepare('SELECT COUNT(*) AS n FROM adapter_versions').get()).toEqual(versionsBefore);
    expect((await api.invoke('runs.list', {})).find((r) => r.id === run.id)?.status).toBe('failed');
  }, 120_000);

  probe('train-start-validates-first', async () => {
    const model = await api.invoke('models.import', { path: tinyGpt2, mode: 'copy', name: 'for-validation' });
    const dataset = await api.invoke('datasets.import', { path: join(dir, 'count.jsonl') });
    const rows = () => ({
      adapters: library.db.prepare('SELECT COUNT(*) AS n FROM adapters').get(),
      runs: library.db.prepare('SELECT COUNT(*) AS n FROM training_runs').get(),
    });
    const before = rows();
    const bad = { ...settings(2), lora: { ...settings(2).lora, targetModules: ['q_proj', 'no_such_module'] } };
    await expect(api.invoke('train.start', { modelId: model.id, datasetId: dataset.id, settings: bad, adapterName: 'never-made' }))
      .rejects.toMatchObject({ code: 'NO_TARGET_MODULES', message: expect.stringMatching(/'q_proj', 'no_such_module' match no linear module of this model; available: .*c_attn/) });
    await expect(api.invoke('train.start', { modelId: model.id, datasetId: 'ds_20260101_abcdefghjkmn', settings: settings(2), adapterName: 'never-made' }))
      .rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('ds_20260101_abcdefghjkmn') });
    await expect(api.invoke('train.start', { modelId: 'mdl_20260101_abcdefghjkmn', datasetId: dataset.id, settings: settings(2), adapterName: 'never-made' }))
      .rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(rows()).toEqual(before);
    expect((await api.invoke('adapters.list', {})).some((a) => a.name === 'never-made')).toBe(false);
  }, 120_000);

  probe('chat-load-failed', async () => {
    const good = await api.invoke('models.import', { path: tinyGpt2, mode: 'copy', name: 'good' });
    await api.invoke('chat.load', { modelId: good.id });
    // A model whose weights file is damaged after import: the next load must fail, and nothing must answer for it.
    const broken = await api.invoke('models.import', { path: tinyGpt2, mode: 'copy', name: 'broken' });
    writeFileSync(join(library.models.resolvePath(broken.id), 'model.safetensors'), 'not safetensors');
    const failure = await api.invoke('chat.load', { modelId: broken.id }).catch((e: unknown) => e as { code: string; message: string });
    expect(failure).toMatchObject({ code: expect.any(String), message: expect.stringMatching(/safetensors/i) });
    await expect(api.invoke('chat.generate', {
      requestId: 'after-failed-load', mix: { adapters: [] }, messages: [{ role: 'user', content: 'hi' }],
      sampling: { maxNewTokens: 2, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 },
    })).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining('no model is loaded') });
  }, 120_000);

  probe('chat-concurrent-mixes', async () => {
    mkdirSync(join(dir, 'starter-lora'));
    const model = await api.invoke('models.import', { path: starter, mode: 'reference', name: 'starter' });
    const adapter = library.adapters.create({ name: 'peft-made', baseModelId: model.id });
    const version = library.versions.commit({ adapterId: adapter.id, filesFrom: starterLora, take: 'copy', origin: 'imported' });
    await api.invoke('chat.load', { modelId: model.id });
    const ask = (requestId: string, scale: number | null) => api.invoke('chat.generate', {
      requestId, mix: { adapters: scale === null ? [] : [{ versionId: version.id, scale }] },
      messages: [{ role: 'user', content: 'Tell me about the sea.' }],
      sampling: { maxNewTokens: 8, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 },
    });
    const alone = { base: await ask('base-alone', null), adapted: await ask('adapted-alone', 1) };
    expect(alone.adapted.text).not.toBe(alone.base.text); // the mixes differ in what they say
    // Both at once, in both orders: each reply is what its own mix says alone.
    const [base1, adapted1] = await Promise.all([ask('base-1', null), ask('adapted-1', 1)]);
    const [adapted2, base2] = await Promise.all([ask('adapted-2', 1), ask('base-2', null)]);
    expect([base1.text, base2.text]).toEqual([alone.base.text, alone.base.text]);
    expect([adapted1.text, adapted2.text]).toEqual([alone.adapted.text, alone.adapted.text]);
  }, 180_000);
});
