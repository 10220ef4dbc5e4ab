import { describe, expect, it, vi } from 'vitest';
import type { FirstRun, TrainingRun } from '../../preload/contract';
import { RootState } from '../../renderer/src/lib/state/root.svelte';
import { appError, fakeApi, type Handlers } from './fake-api';
import { ADAPTER, DATASET, MODEL, run, SETTINGS, version } from './fixtures';

const GUIDED_SETTINGS = { ...SETTINGS, lora: { ...SETTINGS.lora, targetModules: ['all-linear'] }, maxSteps: 100, learningRate: 3e-3 };

const FIRST_RUN: FirstRun = {
  guided: { modelId: 'm1', modelName: 'Lorasmith starter', datasetId: 'd1', settings: GUIDED_SETTINGS },
  samples: [
    { datasetId: 'd1', name: 'Verily (chat)', format: 'messages', behaviour: 'Replies start with "Verily,"', tryPrompt: 'What do cows give us?' },
    { datasetId: 'd2', name: 'Shouting (chat)', format: 'messages', behaviour: 'Replies in capitals', tryPrompt: 'What do bees make?' },
  ],
};

function starterApi(overrides: Partial<Handlers> = {}) {
  return fakeApi({
    'app.info': () => ({ version: '0.1.0', dataDir: '/d', mode: 'browser', backend: null }),
    'app.firstRun': () => FIRST_RUN,
    'settings.get': () => ({ backend: 'auto', theme: 'system', defaults: {} }),
    'models.list': () => [{ ...MODEL, source: { kind: 'starter', ref: 'starter' } }],
    'models.modules': () => [],
    'datasets.list': () => [DATASET, { ...DATASET, id: 'd2', name: 'Shouting (chat)' }],
    'datasets.preview': () => ({ records: [], issues: [], tokenLengths: [] }),
    'adapters.list': () => [ADAPTER],
    'adapters.versions': () => [version('v9', 1, null)],
    'runs.list': () => [],
    'train.start': () => run({ id: 'r7', status: 'queued' }),
    'chat.load': ({ modelId }) => ({ modelId, chatTemplate: '{{ messages }}' }),
    ...overrides,
  });
}

const finishedRun = (overrides: Partial<TrainingRun>) => run({ id: 'r7', datasetId: 'd2', finishedAt: '2026-11-28T10:04:00Z', ...overrides });

describe('first run: the guided fine-tune', () => {
  it('offers the guided fine-tune with its settings; only a valid step count starts it', async () => {
    const api = starterApi();
    const root = new RootState(api);
    await root.load();
    expect(root.firstRun.offered).toBe(true);
    expect(root.firstRun.sample?.name).toBe('Verily (chat)');
    expect(root.firstRun.steps).toBe('100');

    root.firstRun.steps = '0';
    expect(root.firstRun.stepsError).toMatch(/steps must be a whole number from 1 to .*got '0'/);
    await root.startGuided();
    expect(api.callsOf('train.start')).toEqual([]);
    expect(root.firstRun.error).toMatch(/steps must be/);
  });

  it('starts the run on the chosen sample, then opens base and adapter side by side with its prompt', async () => {
    const api = starterApi();
    const root = new RootState(api);
    await root.load();
    root.firstRun.choose('d2');
    root.firstRun.steps = '20';
    await root.startGuided();

    const [args] = api.callsOf('train.start');
    expect(args).toEqual({
      modelId: 'm1', datasetId: 'd2', settings: { ...GUIDED_SETTINGS, maxSteps: 20 }, adapterName: 'Shouting (chat): first fine-tune',
    });
    expect(root.app.section).toBe('runs');
    expect(root.training.selectedRunId).toBe('r7');
    expect(root.training.nameOf('r7')).toBe('Shouting (chat): first fine-tune');
    expect(root.firstRun.offered).toBe(false);

    // Another run finishing changes nothing.
    api.emit('train.finished', { run: run({ id: 'r3', status: 'done', adapterVersionId: 'v1' }) });
    await Promise.resolve();
    expect(api.callsOf('chat.load')).toEqual([]);

    api.emit('train.finished', { run: finishedRun({ status: 'done', adapterVersionId: 'v9' }) });
    await vi.waitFor(() => expect(root.app.section).toBe('chat'));
    expect(api.callsOf('chat.load')).toEqual([{ modelId: 'm1' }]);
    expect(root.chat.setups.map((s) => s.adapters)).toEqual([[], [{ versionId: 'v9', scale: 1 }]]);
    expect(root.chat.draft).toBe('What do bees make?');
    expect(root.chat.sampling.temperature).toBe(0);
    expect(root.adapters.versionLabel('v9')).toContain(ADAPTER.name);
    expect(root.firstRun.guided).toBeNull();
    expect(root.firstRun.offered).toBe(false);
  });

  it('a failed guided run offers the fine-tune again and opens no chat', async () => {
    const api = starterApi();
    const root = new RootState(api);
    await root.load();
    await root.startGuided();
    api.emit('train.finished', { run: finishedRun({ status: 'failed', error: 'out of memory' }) });
    await vi.waitFor(() => expect(root.firstRun.offered).toBe(true));
    expect(api.callsOf('chat.load')).toEqual([]);
    expect(root.app.section).toBe('runs');
  });

  it('a train.start refusal is shown on the card, which stays', async () => {
    const api = starterApi({ 'train.start': () => { throw appError('INVALID_INPUT', 'train.start: settings.maxSteps too big'); } });
    const root = new RootState(api);
    await root.load();
    await root.startGuided();
    expect(root.firstRun.error).toBe('train.start: settings.maxSteps too big');
    expect(root.firstRun.offered).toBe(true);
    expect(root.app.section).toBe('library');
  });

  it('offers nothing when main has no starter resources or no answer', async () => {
    const none = new RootState(starterApi({ 'app.firstRun': () => ({ guided: null, samples: [] }) }));
    await none.load();
    expect(none.firstRun.offered).toBe(false);
    const failing = new RootState(starterApi({ 'app.firstRun': undefined }));
    await failing.load();
    expect(failing.firstRun.offered).toBe(false);
    expect(failing.firstRun.error).toMatch(/no handler for app.firstRun/);
  });
});
