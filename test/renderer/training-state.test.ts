import { describe, expect, it, vi } from 'vitest';
import { byNewest, emptyLive, foldProgress, isResumable, TrainingState, whyStopped } from '../../renderer/src/lib/state/training.svelte';
import type { TrainingProgress } from '../../preload/contract';
import { appError, fakeApi } from './fake-api';
import { ADAPTER, run } from './fixtures';
import { RootState } from '../../renderer/src/lib/state/root.svelte';

function progress(step: number, extra: Partial<TrainingProgress> = {}): TrainingProgress {
  return {
    runId: 'r1', step, totalSteps: 100, epoch: step / 50, loss: 3 - step / 100, lr: 2e-4, gradNorm: 1,
    tokensPerSecond: 500, etaSeconds: 100 - step, memoryBytes: 1e8, ...extra,
  };
}

describe('training progress', () => {
  it('folds events into curves; a validation event at the same step fills the row', () => {
    let live = emptyLive();
    live = foldProgress(live, progress(1));
    live = foldProgress(live, progress(2));
    live = foldProgress(live, progress(2, { valLoss: 2.5, sample: 'Arr, matey' }));
    expect(live.curves.steps).toEqual([1, 2]);
    expect(live.curves.loss).toEqual([2.99, 2.98]);
    expect(live.curves.valLoss).toEqual([null, 2.5]);
    expect(live.samples).toEqual([{ step: 2, text: 'Arr, matey' }]);
  });

  it('counts evaluations without improvement for the early-stopping indicator', () => {
    let live = emptyLive();
    for (const [step, valLoss] of [[10, 2.0], [20, 1.8], [30, 1.9], [40, 1.85], [50, 1.7]] as const) {
      live = foldProgress(live, progress(step, { valLoss }));
      if (step === 40) expect(live.evalsWithoutImprovement).toBe(2);
    }
    expect(live.evalsWithoutImprovement).toBe(0);
    expect(live.bestValLoss).toBe(1.7);
  });

  it('follows a run by events, cancels it, and tells listeners when it finishes', async () => {
    const api = fakeApi({
      'runs.list': () => [run({ status: 'cancelled' })],
      'train.cancel': () => ({ cancelled: true }),
    });
    const training = new TrainingState(api);
    const finished = vi.fn();
    training.onFinished(finished);
    training.track(run({ status: 'queued' }));
    expect(training.activeRuns.map((r) => r.id)).toEqual(['r1']);
    api.emit('train.progress', progress(5));
    expect(training.selectedRun?.status).toBe('running');
    expect(training.liveOf('r1').latest?.step).toBe(5);
    await training.cancel('r1');
    expect(api.callsOf('train.cancel')).toEqual([{ runId: 'r1' }]);
    expect(training.selectedRun?.status).toBe('cancelled');
    api.emit('train.finished', { run: run({ status: 'done', adapterVersionId: 'v1' }) });
    expect(finished).toHaveBeenCalledTimes(1);
    expect(training.runs[0]?.adapterVersionId).toBe('v1');
  });

  it('lists runs newest first, whatever order they arrive in, and keeps the order as they start, finish and resume', async () => {
    const older = run({ id: 'r_old', status: 'done', startedAt: '2026-11-28T09:00:00Z' });
    const newer = run({ id: 'r_new', status: 'cancelled', startedAt: '2026-11-28T10:00:00Z' });
    const queued = run({ id: 'r_queued', status: 'queued', startedAt: null });
    expect(byNewest([older, queued, newer]).map((r) => r.id)).toEqual(['r_queued', 'r_new', 'r_old']);
    expect(byNewest([newer, older, queued]).map((r) => r.id)).toEqual(['r_queued', 'r_new', 'r_old']);
    let listed = [older, newer];
    const training = new TrainingState(fakeApi({ 'runs.list': () => listed }));
    await training.refresh();
    expect(training.runs.map((r) => r.id)).toEqual(['r_new', 'r_old']);
    // Main answers in another order after a resume (the resumed run keeps its first start): the list does not flip.
    listed = [run({ ...newer, status: 'running' }), older];
    await training.refresh();
    expect(training.runs.map((r) => [r.id, r.status])).toEqual([['r_new', 'running'], ['r_old', 'done']]);
  });

  it('names a run by its adapter, from the runs main lists (not only the ones started in this session)', async () => {
    const api = fakeApi({ 'runs.list': () => [run({ id: 'r4', adapterId: 'a7', adapterName: 'shouting-bot' })] });
    const training = new TrainingState(api);
    expect(training.nameOf('r4')).toBeUndefined();
    await training.refresh();
    expect(training.nameOf('r4')).toBe('shouting-bot');
  });

  it('a stored run shows its recorded metrics', async () => {
    const api = fakeApi({ 'runs.metrics': () => [{ step: 2, loss: 2 }, { step: 1, loss: 3, valLoss: 3.1 }] });
    const training = new TrainingState(api);
    await training.select('r9');
    expect(training.liveOf('r9').curves).toMatchObject({ steps: [1, 2], loss: [3, 2], valLoss: [3.1, null] });
  });

  it('stopped early: done before its planned steps with a patience set', () => {
    const api = fakeApi();
    const training = new TrainingState(api);
    api.emit('train.progress', progress(60));
    expect(training.stoppedEarly(run({ status: 'done' }))).toBe(true);
    expect(training.stoppedEarly(run({ status: 'cancelled' }))).toBe(false);
  });
});

describe('a stopped run', () => {
  it('resumes when cancelled or interrupted, and says why it stopped: cancelled, the app closed, or its engine died', () => {
    expect([run({ status: 'cancelled' }), run({ status: 'interrupted' })].every(isResumable)).toBe(true);
    expect([run({ status: 'failed' }), run({ status: 'done' }), run({ status: 'running' })].some(isResumable)).toBe(false);
    expect(whyStopped(run({ status: 'cancelled' }))).toBe('This run was cancelled.');
    // What start-up writes for a run it found running: the app itself stopped.
    expect(whyStopped(run({ status: 'interrupted', error: 'the app stopped while this run was training; resume it to continue from its last checkpoint' })))
      .toBe('The app stopped while this run trained.');
    // What the training handler writes when the engine host dies under the run: its code and reason.
    const died = '[HOST_DIED] the engine host stopped while running train (request 7): out of memory. The next request starts a fresh host.';
    expect(whyStopped(run({ status: 'interrupted', error: died }))).toBe(`The engine stopped while this run trained: ${died}`);
  });

  it('deletes: the run leaves the list and the selection; a refusal is said and the run stays', async () => {
    let refuse = false;
    const api = fakeApi({
      'runs.list': () => [run({ id: 'r1', status: 'cancelled' }), run({ id: 'r2', status: 'done', adapterVersionId: 'v1', startedAt: '2026-11-28T09:00:00Z' })],
      'runs.delete': () => {
        if (refuse) throw appError('IN_USE', 'run r2 is training; cancel it first');
        return { deleted: true };
      },
    });
    const training = new TrainingState(api);
    await training.refresh();
    await training.select('r1');
    await training.deleteRun('r1');
    expect(api.callsOf('runs.delete')).toEqual([{ runId: 'r1' }]);
    expect(training.runs.map((r) => r.id)).toEqual(['r2']);
    expect(training.selectedRunId).toBeNull();
    refuse = true;
    await training.deleteRun('r2');
    expect(training.runs.map((r) => r.id)).toEqual(['r2']);
    expect(training.error).toContain('cancel it first');
  });
});

describe('deleting from one view, seen in the other', () => {
  it('a run deleted in the Training view leaves its adapter\'s unfinished runs; an adapter deleted leaves the run list', async () => {
    let runs = [run({ id: 'r5', status: 'cancelled', checkpointStep: 40 }), run({ id: 'r6', adapterId: 'a2', status: 'cancelled' })];
    let adapters = [ADAPTER, { ...ADAPTER, id: 'a2', name: 'other' }];
    const api = fakeApi({
      'runs.list': () => runs,
      'adapters.list': () => adapters,
      'adapters.versions': () => [],
      'runs.delete': ({ runId }) => {
        runs = runs.filter((r) => r.id !== runId);
        return { deleted: true };
      },
      'adapters.delete': ({ adapterId }) => {
        adapters = adapters.filter((a) => a.id !== adapterId);
        runs = runs.filter((r) => r.adapterId !== adapterId);
        return { deleted: true };
      },
    });
    const root = new RootState(api);
    await Promise.all([root.training.refresh(), root.adapters.refresh()]);
    await root.adapters.selectAdapter('a1');
    expect(root.adapters.stoppedRuns.map((r) => r.id)).toEqual(['r5']);
    await root.deleteRun('r5');
    expect(root.adapters.stoppedRuns).toEqual([]); // no Resume left for a run that is gone
    await root.deleteAdapter('a2');
    expect(root.training.runs).toEqual([]);
    expect(root.adapters.adapters.map((a) => a.id)).toEqual(['a1']);
  });
});

describe('a run followed after a reload', () => {
  it('joins the recorded history with the events that arrived before it loaded', async () => {
    const api = fakeApi({ 'runs.metrics': () => [{ step: 1, loss: 3 }, { step: 2, loss: 2.9 }, { step: 3, loss: 2.8 }] });
    const training = new TrainingState(api);
    api.emit('train.progress', progress(3));
    api.emit('train.progress', progress(4));
    await training.select('r1');
    expect(training.liveOf('r1').curves.steps).toEqual([1, 2, 3, 4]);
    expect(training.liveOf('r1').curves.loss).toEqual([3, 2.9, 2.8, 2.96]);
    expect(training.liveOf('r1').latest?.step).toBe(4);
    await training.select('r1');
    expect(api.callsOf('runs.metrics')).toHaveLength(1);
  });
});
