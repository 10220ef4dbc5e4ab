/**
 * The base precision through the app's handlers, on a real library and engine host: train.measurePrecision on the
 * starter model (an F16 checkpoint) and a sample dataset reports each loss as a float64 forward pass scores the same
 * validation rows (the file's weights decoded from their bits, and those weights as GGUF's Q8_0 and Q4_0 round them,
 * in code that shares nothing with the engine), the bytes each format takes and its progress; the estimate holds the
 * base at the precision asked, and a run started with basePrecision q4_0 has its base held at Q4_0 (the estimate's
 * bytes) and records that with its adapter.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PrecisionProgress, TrainingSettings } from '../../preload/contract';
import { hasWeightKernels } from '../../main/engine/backend/native/addon';
import { loadTokenizer } from '../../main/engine/io/tokenizer';
import { loadDataset } from '../../main/engine/train/datasets/dataset';
import { storedDatasetFile } from '../../main/engine/train/datasets/normalize';
import { tokenizeExamples } from '../../main/engine/train/tokenize';
import { addonLoad, nativeSkipReason } from '../engine/backend/native-support';
import { q4Weights, q8Weights, readSafetensorsF64, targetLoss } from '../engine/models/precision-reference';
import { handlersUnderTest, type HandlersUnderTest } from '../support/handlers';

const ROOT = join(import.meta.dirname, '../..');
const STARTER = join(ROOT, 'resources/starter');
const SAMPLE = join(ROOT, 'resources/samples/verily-chat.jsonl');
const skip = nativeSkipReason('the base precision through the handlers', addonLoad.ok && hasWeightKernels(addonLoad.addon));

// The starter's config.json: llama, hidden 256, 4 layers of 4 heads (head_dim 64), rope_theta 10000, tied head.
const refConfig = {
  layers: 4, heads: 4, kvHeads: 4, headDim: 64, eps: 1e-5, qkvBias: false, tied: true,
  invFreq: Array.from({ length: 32 }, (_, i) => 1 / 10000 ** ((2 * i) / 64)),
};

const settings: TrainingSettings = {
  lora: { targetModules: ['q_proj', 'v_proj'], rank: 2, alpha: 4, dropout: 0, useRslora: false },
  maxSteps: 2, learningRate: 1e-3, batchSize: 1, gradAccum: 1, maxSeqLen: 40, valSplit: 0.1, seed: 42,
  scheduler: 'constant', warmupSteps: 0, weightDecay: 0, maxGradNorm: 1, evalEvery: 0, checkpointEvery: 0, trainOnPrompt: false,
};

let h: HandlersUnderTest;
beforeAll(() => {
  h = handlersUnderTest();
});
afterAll(() => h.close());

describe('the base precision through the handlers', () => {
  it.skipIf(skip)('measures Q8_0 and Q4_0 against F16 as the float64 model scores the rows, and a run keeps the base at the chosen precision', { timeout: 600_000 }, async () => {
    const model = await h.api.invoke('models.import', { path: STARTER, mode: 'reference' });
    const dataset = await h.api.invoke('datasets.import', { path: SAMPLE });
    const ids = { modelId: model.id, datasetId: dataset.id };
    const progress: PrecisionProgress[] = [];
    const off = h.api.on('train.precisionProgress', (p) => progress.push(p));
    const cost = await h.api.invoke('train.measurePrecision', { requestId: 'measure-1', ...ids, settings });
    off();

    // The rows the run validates on (the split and the tokens are the dataset's; the numbers are not the engine's).
    const file = storedDatasetFile(h.library.datasets.resolveFiles(dataset.id));
    const val = loadDataset({ path: file, format: dataset.format, valSplit: settings.valSplit, seed: settings.seed }).val;
    const rows = tokenizeExamples(val, await loadTokenizer(STARTER), { maxSeqLen: settings.maxSeqLen }).examples.slice(0, 4 * settings.batchSize);
    expect([cost.rows, cost.examples]).toEqual(['validation', rows.length]);
    const weights = readSafetensorsF64(join(STARTER, 'model.safetensors'));
    const f16 = targetLoss(weights, refConfig, rows);
    const q8 = targetLoss(q8Weights(weights), refConfig, rows);
    expect(Math.abs(q8 - f16)).toBeGreaterThan(5e-4); // the rounding shows (about 1e-3 here), far above the tolerance below
    expect(cost.reference).toMatchObject({ precision: 'bf16', format: 'F16' });
    expect(cost.others.map((m) => [m.precision, m.format])).toEqual([['q8_0', 'Q8_0'], ['q4_0', 'Q4_0']]);
    const [at8, at4] = cost.others;
    const q4 = targetLoss(q4Weights(weights), refConfig, rows);
    expect(Math.abs(q4 - f16)).toBeGreaterThan(5e-4);
    // float32 forward passes (native kernels converting F16 and Q8_0 on the fly) against float64: within 1e-6 here.
    expect(Math.abs(cost.reference.loss - f16)).toBeLessThan(1e-5);
    expect(Math.abs((at8?.loss ?? NaN) - q8)).toBeLessThan(1e-5);
    expect(Math.abs((at8?.lossDelta ?? NaN) - (q8 - f16))).toBeLessThan(2e-5);
    expect(Math.abs((at4?.loss ?? NaN) - q4)).toBeLessThan(1e-5);
    expect(Math.abs((at4?.lossDelta ?? NaN) - (q4 - f16))).toBeLessThan(2e-5);

    // Bytes: every matrix once (the tied head is the table), 2 per value at F16, 1 and an F16 scale per 32 at Q8_0,
    // 18 per 32-value block at Q4_0.
    const matrices = [...weights.values()].filter((w) => w.shape.length === 2).map((w) => w.shape as [number, number]);
    const f16Bytes = matrices.reduce((s, [r, c]) => s + r * c * 2, 0);
    const q8Bytes = matrices.reduce((s, [r, c]) => s + r * c + r * Math.ceil(c / 32) * 2, 0);
    const q4Bytes = matrices.reduce((s, [r, c]) => s + r * Math.ceil(c / 32) * 18, 0);
    expect([cost.reference.baseBytes, at8?.baseBytes, at8?.bytesSaved]).toEqual([f16Bytes, q8Bytes, f16Bytes - q8Bytes]);
    expect([at4?.baseBytes, at4?.bytesSaved]).toEqual([q4Bytes, f16Bytes - q4Bytes]);

    // Progress: each copy loading, then each of its batches scored, the reference first.
    expect(progress.every((p) => p.requestId === 'measure-1')).toBe(true);
    expect(progress.map((p) => `${p.precision} ${p.stage} ${p.batch}/${p.batches} ${p.copy}/${p.copies}`)).toEqual([
      'bf16 loading 0/4 1/3', 'bf16 scoring 1/4 1/3', 'bf16 scoring 2/4 1/3', 'bf16 scoring 3/4 1/3', 'bf16 scoring 4/4 1/3',
      'q8_0 loading 0/4 2/3', 'q8_0 scoring 1/4 2/3', 'q8_0 scoring 2/4 2/3', 'q8_0 scoring 3/4 2/3', 'q8_0 scoring 4/4 2/3',
      'q4_0 loading 0/4 3/3', 'q4_0 scoring 1/4 3/3', 'q4_0 scoring 2/4 3/3', 'q4_0 scoring 3/4 3/3', 'q4_0 scoring 4/4 3/3',
    ]);

    // The choice changes how the store holds the base: the estimate's bytes at each precision.
    const stored = await h.api.invoke('train.estimate', { ...ids, settings });
    const sizes = { bf16Bytes: f16Bytes, q8_0Bytes: q8Bytes, q4_0Bytes: q4Bytes, stored: 'F16' };
    expect(stored.base).toEqual({ held: 'F16', bytes: f16Bytes, ...sizes });
    const small = await h.api.invoke('train.estimate', { ...ids, settings: { ...settings, basePrecision: 'q8_0' } });
    expect(small.base).toEqual({ held: 'Q8_0', bytes: q8Bytes, ...sizes });
    const smallest = await h.api.invoke('train.estimate', { ...ids, settings: { ...settings, basePrecision: 'q4_0' } });
    expect(smallest.base).toEqual({ held: 'Q4_0', bytes: q4Bytes, ...sizes });

    // A run at Q4_0 trains on the base so held, and its version and training record say so.
    const run = await h.api.invoke('train.start', { ...ids, settings: { ...settings, basePrecision: 'q4_0' }, adapterName: 'verily-q4' });
    const finished = (await h.nextEvent('train.finished', (e) => e.run.id === run.id)).run;
    expect([finished.status, finished.error]).toEqual(['done', null]);
    const [version] = await h.api.invoke('adapters.versions', { adapterId: run.adapterId });
    expect(version?.settings?.basePrecision).toBe('q4_0');
    const record = JSON.parse(readFileSync(join(h.library.versions.resolvePath(version!.id), 'training_record.json'), 'utf8')) as {
      settings: { basePrecision: string }; performance: { estimate: { base: { held: string; bytes: number } } };
    };
    expect(record.settings.basePrecision).toBe('q4_0');
    expect(record.performance.estimate.base).toMatchObject({ held: 'Q4_0', bytes: q4Bytes });
  });

  it.skipIf(skip)('stops between batches when asked, and the engine goes on serving', { timeout: 300_000 }, async () => {
    const [model] = await h.api.invoke('models.list', {});
    const [dataset] = await h.api.invoke('datasets.list', {});
    const ids = { modelId: model!.id, datasetId: dataset!.id };
    const stopped = new Promise<void>((resolve) => {
      const off = h.api.on('train.precisionProgress', (p) => {
        if (p.requestId !== 'measure-3' || p.stage !== 'scoring') return;
        off();
        void h.api.invoke('train.stopMeasure', { requestId: 'measure-3' }).then(() => resolve());
      });
    });
    const measuring = h.api.invoke('train.measurePrecision', { requestId: 'measure-3', ...ids, settings });
    await expect(measuring).rejects.toMatchObject({ code: 'CANCELLED' });
    await stopped;
    expect(await h.api.invoke('train.stopMeasure', { requestId: 'measure-3' })).toEqual({ stopped: false });
    expect((await h.api.invoke('train.estimate', { ...ids, settings })).base?.held).toBe('F16');
  });

  it.skipIf(skip)('says why when there is nothing to measure', { timeout: 300_000 }, async () => {
    const [model] = await h.api.invoke('models.list', {});
    const [dataset] = await h.api.invoke('datasets.list', {});
    // Rows cut to 2 tokens keep no answer token of the chat template: no validation row has a target to score.
    await expect(h.api.invoke('train.measurePrecision', { requestId: 'measure-2', modelId: model!.id, datasetId: dataset!.id, settings: { ...settings, maxSeqLen: 2 } }))
      .rejects.toMatchObject({ code: 'EMPTY_DATASET', message: expect.stringMatching(/no example has a target token to score/) });
  });
});
