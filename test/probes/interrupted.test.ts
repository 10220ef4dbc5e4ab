/**
 * `kill -9` of the real server in the middle of a hub download, of each delete and of the imports that add an adapter
 * (a PEFT folder, a run trained elsewhere), then the next start: it says what it cleaned up, and the library holds no
 * row without its files, no folder without its row and no temp; what the user did not ask to remove is untouched.
 * (Model and dataset imports and training meet the same in files.test.ts and training.test.ts.)
 */
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WebSocket } from 'ws';
import type { Adapter, AdapterVersion, BaseModel, Dataset, TrainingRun, TrainingSettings } from '../../preload/contract';
import { startFakeHub, type FakeHub } from '../support/fake-hub';
import { countingJsonl, gpt2Settings } from '../support/training-data';
import { writeRunResult } from '../support/run-result';
import { probe } from '../support/probes/record';
import { call, filesUnder, nextEvent, openSocket, REPO, rowCounts, startServer, tempDir } from '../support/probes/server';

const GPT2 = join(REPO, 'test/fixtures/tiny-random-gpt2');
const TINY = join(REPO, 'test/fixtures/gpt2-real-tokenizer-1layer');
const STARTER = join(REPO, 'resources/starter');
const STARTER_LORA = join(REPO, 'test/fixtures/peft-0.21-starter-lora');
const HUB_REPO = 'fake-org/tiny-gpt2';
const COMMIT = 'c'.repeat(40);
const HUB_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json'];

let temp: ReturnType<typeof tempDir>;
let hub: FakeHub;

beforeAll(async () => {
  temp = tempDir('probe-interrupted');
  hub = await startFakeHub({ fixture: GPT2, files: HUB_FILES, repo: HUB_REPO, commit: COMMIT });
});

afterAll(async () => {
  await hub.close();
  temp.remove();
});

async function ok<T>(ws: WebSocket, name: string, args: unknown = {}): Promise<T> {
  const reply = await call(ws, name, args);
  expect(reply.ok, `${name}: ${JSON.stringify(reply.error)}`).toBe(true);
  return reply.result as T;
}

/** No temp anywhere, and every version, model and dataset row has its folder and every such folder its row. */
function consistent(dataDir: string): void {
  const files = filesUnder(dataDir, (rel) => /^library\.(sqlite|lock)/.test(rel));
  expect(files.filter((f) => f.includes('.tmp-') || f.includes('.deleting') || f.includes('.committing'))).toEqual([]);
  const rows = rowCounts(dataDir);
  const folders = (prefix: string, depth: number) => new Set(files.filter((f) => f.startsWith(prefix)).map((f) => f.split('/').slice(0, depth).join('/'))).size;
  expect(folders('adapters/', 3)).toBe(rows.adapter_versions);
  expect(folders('models/', 2)).toBe(rows.base_models);
  expect(folders('datasets/', 2)).toBe(rows.datasets);
}

describe('kill -9 during a hub download, and the next start', () => {
  probe('kill9-hub-download', async () => {
    const dataDir = join(temp.dir, 'downloading');
    const env = { HF_ENDPOINT: hub.url };
    const staging = join(dataDir, 'downloads', `fake-org--tiny-gpt2@${COMMIT}`);
    const models = join(dataDir, 'models');

    // 1. Killed while the weights stream in: half of them are in their .part file.
    const held = hub.holdWeights();
    const first = await startServer(dataDir, { env });
    await ok(await openSocket(first), 'models.download', { repoId: HUB_REPO });
    await held.halfSent;
    const part = join(staging, 'model.safetensors.part');
    for (let i = 0; i < 2000 && !(existsSync(part) && statSync(part).size > 0); i++) await new Promise((r) => setTimeout(r, 5));
    expect(statSync(part).size).toBeGreaterThan(0);
    first.child.kill('SIGKILL');
    expect(await first.exited).toBeNull();
    held.release();

    // 2. The next start removes the unfinished download; then killed at the rename moving the finished one into models/.
    const second = await startServer(dataDir, { env, crashOnRename: `${models}/mdl_` });
    expect(second.output()).toContain(`Removed 1 unfinished download(s): downloads/fake-org--tiny-gpt2@${COMMIT}`);
    expect(existsSync(staging)).toBe(false);
    void ok(await openSocket(second), 'models.download', { repoId: HUB_REPO }).catch(() => null);
    expect(await second.exited).toBeNull();
    expect(readdirSync(staging).sort()).toEqual([...HUB_FILES].sort()); // complete, never moved in

    // 3. The next start removes it too; nothing was recorded; the download then completes.
    const third = await startServer(dataDir, { env });
    try {
      expect(third.output()).toContain(`Removed 1 unfinished download(s): downloads/fake-org--tiny-gpt2@${COMMIT}`);
      expect(existsSync(models) ? readdirSync(models) : []).toEqual([]);
      consistent(dataDir);
      const ws = await openSocket(third);
      expect(await ok(ws, 'models.list')).toEqual([]);
      const finished = nextEvent(ws, 'download.finished');
      await ok(ws, 'models.download', { repoId: HUB_REPO });
      expect(await finished).toMatchObject({ status: 'done', model: { name: HUB_REPO, source: { kind: 'hub', revision: COMMIT } } });
      expect(await ok<BaseModel[]>(ws, 'models.list')).toHaveLength(1);
      ws.close();
      expect(readdirSync(join(dataDir, 'downloads'))).toEqual([]);
      consistent(dataDir);
    } finally {
      await third.stop();
    }
  }, 300_000);
});

const settings = gpt2Settings(2, { checkpointEvery: 1 });

describe('kill -9 in the middle of a delete, and the next start', () => {
  probe('kill9-delete', async () => {
    const dataDir = join(temp.dir, 'deleting');
    const dataFile = join(temp.dir, 'count.jsonl');
    writeFileSync(dataFile, countingJsonl(8));

    // A library with a model, a dataset and one adapter with two versions, each with the run that made it.
    const setup = await startServer(dataDir);
    const ws = await openSocket(setup);
    const model = await ok<BaseModel>(ws, 'models.import', { path: TINY, mode: 'copy', name: 'tiny' });
    const dataset = await ok<Dataset>(ws, 'datasets.import', { path: dataFile });
    const runs: TrainingRun[] = [];
    for (let i = 0; i < 2; i++) {
      const finished = nextEvent(ws, 'train.finished');
      await ok(ws, 'train.start', { modelId: model.id, datasetId: dataset.id, settings, adapterName: 'counting' });
      runs.push(((await finished) as { run: TrainingRun }).run);
    }
    const [run1, run2] = runs as [TrainingRun, TrainingRun];
    const versions = await ok<AdapterVersion[]>(ws, 'adapters.versions', { adapterId: run1.adapterId });
    const v1 = versions.find((v) => v.id === run1.adapterVersionId) as AdapterVersion;
    ws.close();
    expect(await setup.stop()).toBe(0);
    const adapterDir = `adapters/${run1.adapterId}`;

    /**
     * A server killed at the rename that removes `folder` while it runs `command`, after its start has checked what
     * the previous kill left (`cleaned`). Rows go before folders: the kill leaves the folder without its row.
     */
    async function killedDeleting(command: string, args: unknown, folder: string, cleaned: readonly string[]): Promise<void> {
      expect(existsSync(join(dataDir, folder)), folder).toBe(true);
      // The rename whose source is this very folder (the crash preload matches `from\nto`): not one of what its
      // start-up removes inside it.
      const server = await startServer(dataDir, { crashOnRename: `${join(dataDir, folder)}\n` });
      if (cleaned.length > 0) expect(server.output()).toContain(`folder(s) no record points at (an import or a delete that stopped midway): ${cleaned.join(', ')}`);
      for (const gone of cleaned) expect(existsSync(join(dataDir, gone)), gone).toBe(false);
      consistent(dataDir);
      void call(await openSocket(server), command, args).catch(() => null);
      expect(await server.exited).toBeNull();
      expect(existsSync(join(dataDir, folder)), folder).toBe(true);
    }

    await killedDeleting('runs.delete', { runId: run2.id }, `runs/${run2.id}`, []);
    // The version goes with the run that made it.
    await killedDeleting('adapters.deleteVersion', { versionId: v1.id }, `${adapterDir}/v${v1.version}`, [`runs/${run2.id}`]);
    await killedDeleting('adapters.delete', { adapterId: run1.adapterId }, adapterDir, [`${adapterDir}/v${v1.version}`, `runs/${run1.id}`]);
    await killedDeleting('datasets.delete', { id: dataset.id }, `datasets/${dataset.id}`, [adapterDir]);
    await killedDeleting('models.delete', { id: model.id }, `models/${model.id}`, [`datasets/${dataset.id}`]);

    const last = await startServer(dataDir);
    try {
      expect(last.output()).toContain(`folder(s) no record points at (an import or a delete that stopped midway): models/${model.id}`);
      consistent(dataDir);
      const counts = rowCounts(dataDir);
      expect([counts.base_models, counts.datasets, counts.adapters, counts.adapter_versions, counts.training_runs]).toEqual([0, 0, 0, 0, 0]);
      expect(filesUnder(dataDir, (rel) => /^library\.(sqlite|lock)/.test(rel))).toEqual([]);
    } finally {
      await last.stop();
    }
  }, 600_000);
});

describe('kill -9 in the middle of an adapter import, and the next start', () => {
  const llamaSettings: TrainingSettings = {
    lora: { targetModules: ['q_proj', 'v_proj'], rank: 4, alpha: 8, dropout: 0, useRslora: false },
    maxSteps: 2, learningRate: 1e-3, batchSize: 2, gradAccum: 1, maxSeqLen: 32, valSplit: 0, seed: 1,
    scheduler: 'constant', warmupSteps: 0, weightDecay: 0, maxGradNorm: 1, evalEvery: 0, checkpointEvery: 0, trainOnPrompt: false,
  };

  probe('kill9-adapter-import', async () => {
    const dataDir = join(temp.dir, 'importing-adapters');
    const adapters = join(dataDir, 'adapters');
    const dataFile = join(temp.dir, 'count-llama.jsonl');
    writeFileSync(dataFile, countingJsonl(6));

    // The starter model and a dataset; an exported run whose result (PEFT's adapter for the starter) came back.
    const setup = await startServer(dataDir);
    const ws = await openSocket(setup);
    const model = await ok<BaseModel>(ws, 'models.import', { path: STARTER, mode: 'copy', name: 'starter' });
    const dataset = await ok<Dataset>(ws, 'datasets.import', { path: dataFile });
    const bundle = join(temp.dir, 'exported-run');
    await ok(ws, 'runs.exportForPeft', { modelId: model.id, datasetId: dataset.id, settings: llamaSettings, destination: bundle });
    writeRunResult(bundle, join(bundle, 'output'), STARTER_LORA, [{ step: 1, loss: 2.5, lr: 1e-3, gradNorm: 0.9 }, { step: 2, loss: 2.25, lr: 1e-3, gradNorm: 0.8 }], []);
    ws.close();
    expect(await setup.stop()).toBe(0);
    const before = rowCounts(dataDir);

    /**
     * A server killed at the rename that moves `command`'s staged files (`.<staging>.tmp-…` in the data folder) into
     * its new adapter's first version: the adapter's row (and the run's) are written by then.
     */
    async function killedImporting(staging: string, command: string, args: unknown): Promise<void> {
      const server = await startServer(dataDir, { crashOnRename: `${join(dataDir, `.${staging}.tmp-`)}` });
      void call(await openSocket(server), command, args).catch(() => null);
      expect(await server.exited).toBeNull();
      expect(readdirSync(dataDir).filter((n) => n.startsWith(`.${staging}.tmp-`))).toHaveLength(1); // staged, never moved in
    }

    await killedImporting('peft-import', 'adapters.importPeft', { path: STARTER_LORA, modelId: model.id, name: 'peft-made' });
    await killedImporting('run-import', 'runs.importResult', { path: bundle, adapterName: 'trained-elsewhere' });

    const next = await startServer(dataDir);
    try {
      expect(next.output()).toMatch(/Removed \d+ unfinished write\(s\)/);
      // Neither import left a row: no adapter without the version it was made for, no run without its version.
      expect(rowCounts(dataDir)).toEqual(before);
      consistent(dataDir);
      expect(existsSync(adapters) ? readdirSync(adapters) : []).toEqual([]);
      const socket = await openSocket(next);
      expect(await ok<Adapter[]>(socket, 'adapters.list')).toEqual([]);
      expect(await ok<TrainingRun[]>(socket, 'runs.list')).toEqual([]);
      // Both imports then complete.
      const peft = await ok<{ version: AdapterVersion }>(socket, 'adapters.importPeft', { path: STARTER_LORA, modelId: model.id, name: 'peft-made' });
      const run = await ok<{ version: AdapterVersion }>(socket, 'runs.importResult', { path: bundle, adapterName: 'trained-elsewhere' });
      expect([peft.version.version, run.version.version]).toEqual([1, 1]);
      expect((await ok<Adapter[]>(socket, 'adapters.list')).map((a) => a.name).sort()).toEqual(['peft-made', 'trained-elsewhere']);
      expect(await ok<TrainingRun[]>(socket, 'runs.list')).toMatchObject([{ status: 'done', adapterVersionId: run.version.id }]);
      socket.close();
      consistent(dataDir);
    } finally {
      await next.stop();
    }
  }, 300_000);
});
