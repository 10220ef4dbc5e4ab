/**
 * The backend chosen in Settings reaches the engine host: settings.set persists it and restarts the host, whose
 * report (app.info) then names it; a backend that cannot serve falls back with its reason; and on webgpu (lavapipe
 * here; required in CI) the app's own handlers train and chat through the host, greedy replies matching cpu's.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Api, BackendInfo, Events, Settings } from '../../preload/contract';
import { detectBackends } from '../../main/engine/backend/index';
import type { HostClient } from '../../main/host/client';
import { handlersUnderTest, type HandlersUnderTest } from '../support/handlers';
import { countingJsonl } from '../support/training-data';

const fixture = join(import.meta.dirname, '../fixtures/gpt2-real-tokenizer-1layer');
const webgpu = (await detectBackends()).find((b) => b.name === 'webgpu')?.probe;
const webgpuRequired = process.env.LORASMITH_REQUIRE_WEBGPU === '1';

let dir = '';
let main: HandlersUnderTest;
let host: HostClient;
let api: Api;

/** The app on the test's folder (kept between an app's stop and its next start). */
function open(): void {
  main = handlersUnderTest({ dir });
  ({ host, api } = main);
}

function close(): Promise<void> {
  return main.close();
}

/** app.info's backend once the (re)started host has reported it. */
async function backendReport(): Promise<BackendInfo> {
  for (let i = 0; i < 480; i++) {
    const info = await api.invoke('app.info', {});
    if (info.backend) return info.backend;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('the engine host did not report its backend within 120 s');
}

async function choose(backend: Settings['backend']): Promise<BackendInfo> {
  expect((await api.invoke('settings.set', { backend })).backend).toBe(backend);
  const report = await backendReport();
  expect(report.requested).toBe(backend);
  return report;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lorasmith-backend-setting-'));
  open();
});

afterAll(async () => {
  await close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the backend setting', () => {
  it('reaches the engine host, restarts it, and persists', async () => {
    const first = await backendReport();
    expect(first).toMatchObject({ requested: 'auto', fallback: null, selfTest: expect.stringMatching(/^passed in \d+ ms$/) });
    const generation = host.generation;
    const cpu = await choose('cpu');
    expect(cpu).toMatchObject({ name: 'cpu', fallback: null });
    expect(host.generation).toBeGreaterThan(generation); // a new host, started on the new setting
    expect((await host.call({ type: 'status' })).backend).toBe('cpu');

    await close();
    open(); // the app started again on the same library
    expect((await api.invoke('settings.get', {})).backend).toBe('cpu');
    expect(await backendReport()).toMatchObject({ name: 'cpu', requested: 'cpu' });
  }, 300_000);

  it('falls back, saying why in one line, when the chosen backend cannot serve', async (context) => {
    const tensorflow = (await detectBackends()).find((b) => b.name === 'tensorflow')?.probe;
    if (tensorflow?.usable) context.skip(); // libtensorflow installed here: it serves
    const report = await choose('tensorflow');
    expect(report.name).not.toBe('tensorflow');
    expect(report.fallback).toMatch(new RegExp(`^tensorflow: .*; using ${report.name}$`));
    expect(report.fallback).not.toContain('\n');
    await choose('auto');
  }, 300_000);

  const onWebgpu = webgpu?.usable || webgpuRequired ? it : it.skip;
  onWebgpu(`on webgpu the app trains and chats through the host${webgpu?.usable ? '' : ` (webgpu: ${webgpu?.detail ?? 'not probed'})`}`, async () => {
    expect(webgpu?.usable, `webgpu is required here: ${webgpu?.detail}`).toBe(true);
    writeFileSync(join(dir, 'count.jsonl'), countingJsonl(6));
    const model = await api.invoke('models.import', { path: fixture, mode: 'copy', name: 'tiny' });
    const dataset = await api.invoke('datasets.import', { path: join(dir, 'count.jsonl') });
    const greedy = { maxNewTokens: 6, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };
    const ask = async (requestId: string) => {
      await api.invoke('chat.load', { modelId: model.id });
      return api.invoke('chat.generate', { requestId, mix: { adapters: [] }, messages: [{ role: 'user', content: 'Count 3:' }], sampling: greedy });
    };
    await choose('cpu');
    const onCpu = await ask('cpu');

    const report = await choose('webgpu');
    expect(report).toMatchObject({ name: 'webgpu', fallback: null });
    const finished = new Promise<Events['train.finished']>((resolve) => {
      const off = api.on('train.finished', (e) => (off(), resolve(e)));
    });
    await api.invoke('train.start', {
      modelId: model.id, datasetId: dataset.id, adapterName: 'on-webgpu',
      settings: {
        lora: { targetModules: ['c_attn'], rank: 2, alpha: 4, dropout: 0, useRslora: false },
        maxSteps: 2, learningRate: 1e-3, batchSize: 2, gradAccum: 1, maxSeqLen: 32, valSplit: 0, seed: 1,
        scheduler: 'constant', warmupSteps: 0, weightDecay: 0, maxGradNorm: 1, evalEvery: 0, checkpointEvery: 0, trainOnPrompt: false,
      },
    });
    expect((await finished).run).toMatchObject({ status: 'done', error: null });
    const onWebgpuReply = await ask('webgpu');
    expect(onWebgpuReply.tokens).toBeGreaterThan(0);
    expect(onWebgpuReply.text).toBe(onCpu.text); // greedy: the same reply on both backends
    expect((await host.call({ type: 'status' })).backend).toBe('webgpu');
  }, 300_000);
});
