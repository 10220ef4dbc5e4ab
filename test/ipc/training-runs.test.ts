/**
 * Training runs through the command handlers, on a real library and a real engine host (worker thread) loading a
 * two-layer Llama: a run cancelled mid-way and resumed records the same curve, step for step, and the same adapter
 * weights as the same run left uninterrupted (the reference); empty adapters and stopped runs delete; the chat
 * answers while a run trains (between its steps), with its own adapters, and leaves the run's curve untouched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Api, Events, MetricPoint, SamplingSettings, TrainingRun, TrainingSettings } from '../../preload/contract';
import { readSafetensors } from '../../main/engine/io/safetensors';
import type { Library } from '../../main/store/index';
import { handlersUnderTest, type HandlersUnderTest } from '../support/handlers';

const fixture = join(import.meta.dirname, '../fixtures/tiny-random-llama');
let main: HandlersUnderTest;
let dir = '';
let library: Library;
let api: Api;
let modelId = '';
let datasetId = '';
/** The uninterrupted run every other run is checked against (constant learning rate: its first steps do not depend on the length). */
let reference: TrainingRun;
let referenceCurve: readonly MetricPoint[] = [];

const SETTINGS: TrainingSettings = {
  lora: { targetModules: ['q_proj', 'v_proj', 'o_proj', 'down_proj'], rank: 4, alpha: 8, dropout: 0.1, useRslora: false },
  maxSteps: 12, learningRate: 3e-2, batchSize: 2, gradAccum: 1, maxSeqLen: 32, valSplit: 0.25, seed: 3,
  scheduler: 'constant', warmupSteps: 2, weightDecay: 0.01, maxGradNorm: 1, evalEvery: 3, checkpointEvery: 4, trainOnPrompt: false,
};

async function finishedRun(runId: string): Promise<TrainingRun> {
  return (await main.nextEvent('train.finished', ({ run }) => run.id === runId)).run;
}

async function train(adapterName: string, cancelAtStep?: number): Promise<TrainingRun> {
  let runId = '';
  const seen: Events['train.progress'][] = [];
  const off = api.on('train.progress', (p) => {
    seen.push(p);
    if (p.runId === runId && p.step === cancelAtStep) void api.invoke('train.cancel', { runId });
  });
  const run = await api.invoke('train.start', { modelId, datasetId, settings: SETTINGS, adapterName });
  runId = run.id;
  const done = await finishedRun(run.id);
  off();
  return done;
}

function adapterWeights(run: TrainingRun): Map<string, Float32Array> {
  const version = library.versions.get(run.adapterVersionId ?? '');
  const tensors = readSafetensors(join(version.path, 'adapter_model.safetensors')).tensors;
  return new Map([...tensors].map(([name, t]) => [name, t.data as Float32Array]));
}

beforeAll(async () => {
  main = handlersUnderTest();
  ({ dir, library, api } = main);
  const rows = Array.from({ length: 12 }, (_, i) => JSON.stringify({ prompt: `Count ${i}:`, completion: ` ${i + 1}` }));
  modelId = (await api.invoke('models.import', { path: fixture, mode: 'copy', name: 'tiny' })).id;
  datasetId = (await api.invoke('datasets.import', { path: main.writeFile('count.jsonl', rows.join('\n') + '\n') })).id;
}, 300_000);

afterAll(() => main.close());

describe('resume and delete through the handlers', () => {
  it('a cancelled run resumes from where it stopped and ends with the uninterrupted curve and weights', { timeout: 600_000 }, async () => {
    reference = await train('reference');
    expect(reference.status).toBe('done');
    referenceCurve = await api.invoke('runs.metrics', { runId: reference.id });
    expect(referenceCurve.map((m) => m.step)).toEqual([...Array(12).keys()].map((i) => i + 1));

    const cancelled = await train('resumed', 6);
    expect(cancelled.status).toBe('cancelled');
    // The cancel lands between steps, at 6 or a step later; the run is checkpointed exactly there.
    const stoppedAt = (await api.invoke('runs.metrics', { runId: cancelled.id })).at(-1)?.step ?? 0;
    expect(stoppedAt).toBeGreaterThanOrEqual(6);
    expect(cancelled.checkpointStep).toBe(stoppedAt);
    expect((await api.invoke('adapters.versions', { adapterId: cancelled.adapterId }))).toEqual([]);

    const finished = finishedRun(cancelled.id);
    const progress: number[] = [];
    const off = api.on('train.progress', (p) => p.runId === cancelled.id && progress.push(p.step));
    const resumed = await api.invoke('train.resume', { runId: cancelled.id });
    expect(resumed).toMatchObject({ id: cancelled.id, status: 'running', error: null });
    const done = await finished;
    off();
    expect(done).toMatchObject({ id: cancelled.id, status: 'done' });
    expect(Math.min(...progress)).toBe(stoppedAt + 1); // no step trained twice

    const curve = await api.invoke('runs.metrics', { runId: cancelled.id });
    expect(curve.map((m) => m.step)).toEqual(referenceCurve.map((m) => m.step));
    expect(curve.map((m) => m.loss)).toEqual(referenceCurve.map((m) => m.loss));
    expect(curve.map((m) => m.valLoss)).toEqual(referenceCurve.map((m) => m.valLoss));
    expect(adapterWeights(done)).toEqual(adapterWeights(reference));

    // A finished run does not resume; the refusal names its state.
    await expect(api.invoke('train.resume', { runId: done.id })).rejects.toMatchObject({ code: 'INVALID_STATE', message: expect.stringContaining('done') });
  });

  it('deletes a stopped run with its checkpoints, and an adapter left without versions', { timeout: 300_000 }, async () => {
    const cancelled = await train('to-delete', 2);
    expect(cancelled.status).toBe('cancelled');
    const runDir = join(dir, 'data', 'runs', cancelled.id);
    expect(existsSync(runDir)).toBe(true);
    expect(await api.invoke('runs.delete', { runId: cancelled.id })).toEqual({ deleted: true });
    expect(existsSync(runDir)).toBe(false);
    expect((await api.invoke('runs.list', {})).some((r) => r.id === cancelled.id)).toBe(false);

    expect(await api.invoke('adapters.delete', { adapterId: cancelled.adapterId })).toEqual({ deleted: true });
    expect((await api.invoke('adapters.list', {})).some((a) => a.name === 'to-delete')).toBe(false);
    await expect(api.invoke('adapters.delete', { adapterId: cancelled.adapterId })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('chat answers between training steps with its own adapters, and the run trains as it would alone', { timeout: 600_000 }, async () => {
    const greedy: SamplingSettings = { maxNewTokens: 6, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };
    const messages = [{ role: 'user' as const, content: 'Count 4:' }];
    const versionId = reference.adapterVersionId ?? '';
    await api.invoke('chat.load', { modelId });
    const ask = (requestId: string, adapters: { versionId: string; scale: number }[]) =>
      api.invoke('chat.generate', { requestId, mix: { adapters }, messages, sampling: greedy });
    const alone = { base: await ask('alone-base', []), adapted: await ask('alone-adapted', [{ versionId, scale: 1 }]) };
    expect(alone.adapted.text).not.toBe(alone.base.text); // the trained adapter answers otherwise than the base

    let runId = '';
    let lastStep = 0;
    const off = api.on('train.progress', (p) => { if (p.runId === runId) lastStep = p.step; });
    const run = await api.invoke('train.start', { modelId, datasetId, settings: { ...SETTINGS, maxSteps: 100_000 }, adapterName: 'chatty' });
    runId = run.id;
    const finished = finishedRun(run.id);
    await expect.poll(() => lastStep, { timeout: 300_000 }).toBeGreaterThanOrEqual(2);
    const during = { base: await ask('during-base', []), adapted: await ask('during-adapted', [{ versionId, scale: 1 }]) };
    const answeredAt = lastStep;
    expect((await api.invoke('runs.list', {})).find((r) => r.id === run.id)?.status).toBe('running'); // answered mid-run
    // The same answers as without a run: the chat saw its own set, not the adapter in training.
    expect(during.base.text).toBe(alone.base.text);
    expect(during.adapted.text).toBe(alone.adapted.text);
    await expect.poll(() => lastStep, { timeout: 300_000 }).toBeGreaterThanOrEqual(Math.max(12, answeredAt + 2));
    await api.invoke('train.cancel', { runId: run.id });
    expect((await finished).status).toBe('cancelled');
    off();
    // The answers came between steps and changed nothing: the curve's first 12 steps are the reference's.
    const curve = (await api.invoke('runs.metrics', { runId: run.id })).slice(0, 12);
    expect(curve.map((m) => m.loss)).toEqual(referenceCurve.map((m) => m.loss));
    expect(curve.map((m) => m.valLoss)).toEqual(referenceCurve.map((m) => m.valLoss));
    // After the run, the chat's set is what the layers carry.
    expect((await ask('after-adapted', [{ versionId, scale: 1 }])).text).toBe(alone.adapted.text);
  });
});
