/**
 * The wizard's "Export for PEFT + accelerate" and the Adapters view's "Import a run" through the in-memory IPC pair,
 * on a real library and a real engine host (worker thread) with the tiny llama fixture: the host writes the export
 * from the same job a local run gets; a version trained here stands in for PEFT's adapter, its result files written
 * by the exported train.py (test/support/run-result.ts); the import shows up as a version trained on the GPU box.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Api, TrainingSettings } from '../../preload/contract';
import { handlersUnderTest, type HandlersUnderTest } from '../support/handlers';
import { countingJsonl } from '../support/training-data';
import { writeRunResult } from '../support/run-result';

const MODEL = join(import.meta.dirname, '../fixtures/tiny-random-llama');
let main: HandlersUnderTest;
let dir = '';
let api: Api;

const settings: TrainingSettings = {
  lora: { targetModules: ['q_proj', 'v_proj'], rank: 2, alpha: 4, dropout: 0, useRslora: false },
  maxSteps: 2, learningRate: 1e-3, batchSize: 2, gradAccum: 1, maxSeqLen: 32, valSplit: 0, seed: 1,
  scheduler: 'constant', warmupSteps: 0, weightDecay: 0, maxGradNorm: 1, evalEvery: 0, checkpointEvery: 0, trainOnPrompt: false,
};

beforeAll(() => {
  main = handlersUnderTest();
  ({ dir, api } = main);
  main.writeFile('count.jsonl', countingJsonl(6));
});

afterAll(() => main.close());

describe('runs handed to PEFT and back, from the app', () => {
  it('exports the wizard\'s run in the host, imports the trained result as a version trained elsewhere', async () => {
    const model = await api.invoke('models.import', { path: MODEL, mode: 'reference' });
    const dataset = await api.invoke('datasets.import', { path: join(dir, 'count.jsonl') });
    const bundle = join(dir, 'bundle');
    const exported = await api.invoke('runs.exportForPeft', { modelId: model.id, datasetId: dataset.id, settings, destination: bundle });
    expect(exported).toEqual({ path: bundle, trainRows: 6, valRows: 0, totalSteps: 2 });
    const run = JSON.parse(readFileSync(join(bundle, 'run.json'), 'utf8'));
    expect(run).toMatchObject({ library: { modelId: model.id, datasetId: dataset.id }, base_model: { content_hash: model.contentHash }, dataset: { files: [{ content_hash: dataset.hash }] } });
    expect(existsSync(join(bundle, 'train.py'))).toBe(true);
    // a second export into the now non-empty folder is refused, the first left as it was
    await expect(api.invoke('runs.exportForPeft', { modelId: model.id, datasetId: dataset.id, settings, destination: bundle })).rejects.toMatchObject({ code: 'OUTPUT_NOT_EMPTY' });

    // a version trained here stands in for the adapter PEFT would have written
    const local = await api.invoke('train.start', { modelId: model.id, datasetId: dataset.id, settings, adapterName: 'local' });
    await main.nextEvent('train.finished', (p) => p.run.id === local.id);
    const [localVersion] = await api.invoke('adapters.versions', { adapterId: local.adapterId });
    writeRunResult(bundle, join(bundle, 'output'), localVersion?.path as string, [{ step: 1, loss: 2.5, lr: 1e-3, gradNorm: 0.9 }, { step: 2, loss: 2.25, lr: 1e-3, gradNorm: 0.8 }], []);

    const imported = await api.invoke('runs.importResult', { path: bundle, adapterName: 'remote' });
    expect(imported.adapterName).toBe('remote');
    expect(imported.trainedOn).toMatch(/^gpu-box: 2 × NVIDIA H100 80GB HBM3/);
    const [version] = await api.invoke('adapters.versions', { adapterId: imported.version.adapterId });
    expect(version).toMatchObject({ version: 1, datasetId: dataset.id, trainedOn: imported.trainedOn, metrics: { steps: 2, trainLoss: 2.25 } });
    const runs = (await api.invoke('runs.list', {})).filter((r) => r.adapterVersionId === version?.id);
    expect(runs).toHaveLength(1);
    expect((await api.invoke('runs.metrics', { runId: runs[0]?.id as string })).map((p) => p.loss)).toEqual([2.5, 2.25]);
  }, 300_000);

  it('refuses a relative path, a folder that is not a run result, and bad arguments, writing nothing', async () => {
    const before = (await api.invoke('adapters.list', {})).length;
    await expect(api.invoke('runs.importResult', { path: 'relative/output' })).rejects.toMatchObject({ code: 'PATH_INVALID' });
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    await expect(api.invoke('runs.importResult', { path: empty })).rejects.toMatchObject({ code: 'INVALID_RUN_RESULT' });
    await expect(api.invoke('runs.importResult', { path: empty, extra: 1 } as never)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect((await api.invoke('adapters.list', {})).length).toBe(before);
  });
});
