import { beforeEach, describe, expect, it, vi } from 'vitest';
import { describeChoice, precisionApplies, precisionChoices } from '../../renderer/src/lib/precision';
import { ModelsState } from '../../renderer/src/lib/state/models.svelte';
import { WizardState } from '../../renderer/src/lib/state/wizard.svelte';
import type { TrainingEstimate, TrainingProposal } from '../../preload/contract';
import { appError, deferred, fakeApi, type FakeApi } from './fake-api';
import { ADAPTER, DATASET, MODEL, llamaModules, run, version } from './fixtures';

const ESTIMATE: TrainingEstimate = {
  trainableParams: 3584, totalParams: 4_718_592, adapterBytes: 14_336, peakMemoryBytes: 200e6, availableMemoryBytes: 8e9, recompute: false, secondsPerEpoch: 60, stepsPerEpoch: 27,
};

const PROPOSAL: TrainingProposal = {
  learningRate: 0.0029, maxSteps: 100, targets: 'all-linear', rank: 8, alpha: 16, rule: 'the rule',
  effect: { trainRecords: 54, steps: 100, passes: 7.4, strength: 1, summary: 'about 7.4 passes over 54 training records (100 steps of 4)', warnings: [] },
};

describe('WizardState', () => {
  let api: FakeApi;
  let models: ModelsState;
  let wizard: WizardState;

  beforeEach(async () => {
    api = fakeApi({
      'models.list': () => [MODEL],
      'models.modules': () => llamaModules(),
      'train.estimate': () => ESTIMATE,
      'train.start': () => run({ status: 'queued' }),
    });
    models = new ModelsState(api);
    await models.refresh();
    wizard = new WizardState(api, models);
    wizard.reset({});
  });

  it('will not leave a step that is incomplete, and says why', () => {
    wizard.next();
    expect(wizard.step).toBe(0);
    expect(wizard.showErrorsFor(0)).toBe(true);
    expect(wizard.stepErrors[0]).toEqual(['Choose a base model.']);
  });

  it('choosing a model loads its modules, selects the paper’s q,v, and counts r·(in+out)', async () => {
    await wizard.chooseModel('m1');
    expect(api.callsOf('models.modules')).toEqual([{ id: 'm1' }]);
    expect(wizard.selected.size).toBe(4);
    expect(wizard.trainableParams).toBe(3584);
    wizard.form.rank = '16';
    expect(wizard.trainableParams).toBe(7168);
    wizard.applyPreset('mlp');
    // 2 layers × 16 · ((64+172) + (64+172) + (172+64))
    expect(wizard.trainableParams).toBe(2 * 16 * 708);
    wizard.setColumn('gate_proj', false);
    wizard.toggleModule('model.layers.0.self_attn.q_proj');
    expect(wizard.targetModules).toEqual(['model.layers.0.self_attn.q_proj', 'up_proj', 'down_proj']);
  });

  it('shows a field error and blocks the LoRA step on rank 0', async () => {
    await wizard.chooseModel('m1');
    wizard.chooseDataset('d1');
    wizard.goTo(3);
    expect(wizard.stepId).toBe('lora');
    wizard.form.rank = '0';
    expect(wizard.fieldError('rank')).toBe('rank must be a positive integer, got 0');
    wizard.next();
    expect(wizard.stepId).toBe('lora');
    wizard.form.rank = '4';
    wizard.next();
    expect(wizard.stepId).toBe('training');
  });

  it('runs the whole way: estimate on review, then train.start with the chosen settings', async () => {
    await wizard.chooseModel('m1');
    wizard.chooseDataset('d1');
    wizard.next();
    wizard.next();
    wizard.next();
    wizard.next();
    expect(wizard.stepId).toBe('training');
    wizard.next();
    expect(wizard.stepId).toBe('training');
    expect(wizard.stepErrors[4]).toContain('adapter name is required');
    wizard.adapterName = 'pirate';
    wizard.form.learningRate = '5e-4';
    wizard.next();
    expect(wizard.stepId).toBe('review');
    await Promise.resolve();
    await Promise.resolve();
    expect(api.callsOf('train.estimate')).toHaveLength(1);
    expect(wizard.estimate).toEqual(ESTIMATE);
    const started = await wizard.start();
    expect(started?.id).toBe('r1');
    const [args] = api.callsOf('train.start');
    expect(args).toMatchObject({ modelId: 'm1', datasetId: 'd1', adapterName: 'pirate' });
    expect(args?.parentVersionId).toBeUndefined();
    expect(args?.settings.learningRate).toBe(5e-4);
    expect(args?.settings.lora).toEqual({ targetModules: ['q_proj', 'v_proj'], rank: 8, alpha: 16, dropout: 0.05, useRslora: false });
  });

  it('shows the server’s message when the start is refused', async () => {
    api = fakeApi({
      'models.list': () => [MODEL], 'models.modules': () => llamaModules(),
      'train.start': () => { throw appError('INVALID_INPUT', 'maxSeqLen 4096 exceeds the model context of 512'); },
    });
    models = new ModelsState(api);
    await models.refresh();
    wizard = new WizardState(api, models);
    await wizard.chooseModel('m1');
    wizard.chooseDataset('d1');
    wizard.adapterName = 'x';
    expect(await wizard.start()).toBeNull();
    expect(wizard.error).toBe('maxSeqLen 4096 exceeds the model context of 512');
  });

  it('continue prefills from a version: same adapter, its parent, its modules and settings', async () => {
    const v1 = version('v1', 1, null, {
      settings: { ...run().settings, learningRate: 1e-3, lora: { targetModules: ['model.layers.1.self_attn.q_proj'], rank: 4, alpha: 8, dropout: 0, useRslora: true } },
    });
    await wizard.prefill(ADAPTER, v1, 'continue');
    expect(wizard.adapterName).toBe('pirate-voice');
    expect(wizard.parentVersionId).toBe('v1');
    expect(wizard.datasetId).toBe(DATASET.id);
    expect([...wizard.selected]).toEqual(['model.layers.1.self_attn.q_proj']);
    expect(wizard.form.rank).toBe('4');
    expect(wizard.form.useRslora).toBe(true);
    expect(wizard.stepId).toBe('modules');
    await wizard.prefill(ADAPTER, v1, 'duplicate');
    expect(wizard.adapterName).toBe('pirate-voice copy');
    expect(wizard.parentVersionId).toBeNull();
  });

  it('fills in the proposal for a new model and dataset once, never over a field typed meanwhile', async () => {
    const answer = deferred<TrainingProposal>();
    api = fakeApi({ 'models.list': () => [MODEL], 'models.modules': () => llamaModules(), 'train.propose': () => answer.promise });
    models = new ModelsState(api);
    await models.refresh();
    wizard = new WizardState(api, models);
    wizard.reset({});
    await wizard.chooseModel('m1');
    const chosen = wizard.chooseDataset('d1');
    wizard.form.rank = '4'; // typed while the proposal is on its way
    answer.resolve(PROPOSAL);
    await chosen;
    expect(wizard.proposal?.learningRate).toBe(0.0029);
    expect(wizard.form.learningRate).toBe(String(2e-4)); // the form's own default, untouched
    expect(wizard.form.rank).toBe('4');
    wizard.applyProposal();
    expect([wizard.form.learningRate, wizard.form.maxSteps, wizard.form.epochs, wizard.form.rank, wizard.form.alpha]).toEqual(['0.0029', '100', '', '8', '16']);
    expect(api.callsOf('train.propose')[0]).toEqual({ modelId: 'm1', datasetId: 'd1' });
  });

  it('the proposal\'s targets are chosen once the modules come, when the proposal came first (the engine starting)', async () => {
    const modules = deferred<ReturnType<typeof llamaModules>>();
    api = fakeApi({ 'models.list': () => [MODEL], 'models.modules': () => modules.promise, 'train.propose': () => PROPOSAL });
    models = new ModelsState(api);
    await models.refresh();
    wizard = new WizardState(api, models);
    wizard.reset({});
    const chosen = wizard.chooseModel('m1');
    await wizard.chooseDataset('d1');
    expect(wizard.form.learningRate).toBe('0.0029');
    expect(wizard.selected.size).toBe(0); // no modules yet
    modules.resolve(llamaModules());
    await chosen;
    expect(wizard.activePreset).toBe('all-linear');
  });

  it('a model chosen twice (preselected, then clicked) whose modules answer out of order keeps the proposal\'s targets', async () => {
    // The engine starting on a loaded machine: both module requests wait; the proposal comes first, then the second
    // request's answer, then the first's.
    const answers = [deferred<ReturnType<typeof llamaModules>>(), deferred<ReturnType<typeof llamaModules>>()];
    let asked = 0;
    api = fakeApi({ 'models.list': () => [MODEL], 'models.modules': () => (answers[asked++] ?? answers[1]!).promise, 'train.propose': () => PROPOSAL });
    models = new ModelsState(api);
    await models.refresh();
    wizard = new WizardState(api, models);
    wizard.reset({});
    const preselected = wizard.chooseModel('m1');
    const clicked = wizard.chooseModel('m1');
    await wizard.chooseDataset('d1');
    answers[1]!.resolve(llamaModules());
    await clicked;
    expect(wizard.activePreset).toBe('all-linear');
    answers[0]!.resolve(llamaModules());
    await preselected;
    expect(wizard.activePreset).toBe('all-linear');
  });

  it('fills the proposal in when nothing was typed; continuing keeps the version\'s rank and targets locked', async () => {
    api = fakeApi({ 'models.list': () => [MODEL], 'models.modules': () => llamaModules(), 'train.propose': () => PROPOSAL });
    models = new ModelsState(api);
    await models.refresh();
    wizard = new WizardState(api, models);
    wizard.reset({});
    await wizard.chooseModel('m1');
    await wizard.chooseDataset('d1');
    expect([wizard.form.learningRate, wizard.form.maxSteps, wizard.form.epochs]).toEqual(['0.0029', '100', '']);
    expect(wizard.activePreset).toBe('all-linear');
    wizard.setColumn('q_proj', false);
    expect(wizard.activePreset).toBeNull();

    const v1 = version('v1', 1, null, {
      settings: { ...run().settings, learningRate: 1e-3, lora: { targetModules: ['q_proj', 'v_proj'], rank: 4, alpha: 8, dropout: 0, useRslora: false } },
    });
    await wizard.prefill(ADAPTER, v1, 'continue');
    expect(wizard.locked).toBe(true);
    expect(wizard.form.learningRate).toBe('0.001'); // the version's recipe stays; the proposal is only shown
    wizard.applyPreset('all-linear');
    wizard.toggleModule('model.layers.0.mlp.up_proj');
    expect(wizard.activePreset).toBe('qv');
    wizard.applyProposal();
    expect([wizard.form.learningRate, wizard.form.rank, wizard.form.alpha]).toEqual(['0.0029', '4', '8']);
    expect(wizard.activePreset).toBe('qv');
  });
});

describe('the base precision on the review step', () => {
  const base = { held: 'F16', bytes: 8_000_000, bf16Bytes: 8_000_000, q8_0Bytes: 4_250_000, q4_0Bytes: 2_250_000, stored: 'F16' };
  const COST = {
    reference: { precision: 'bf16' as const, format: 'F16', loss: 2.5, baseBytes: 8_000_000, lossDelta: 0, bytesSaved: 0 },
    others: [
      { precision: 'q8_0' as const, format: 'Q8_0', loss: 2.503, baseBytes: 4_250_000, lossDelta: 0.003, bytesSaved: 3_750_000 },
      { precision: 'q4_0' as const, format: 'Q4_0', loss: 2.53, baseBytes: 2_250_000, lossDelta: 0.03, bytesSaved: 5_750_000 },
    ],
    rows: 'validation' as const, examples: 8, tokens: 300,
  };

  async function atReview(api: FakeApi): Promise<WizardState> {
    const models = new ModelsState(api);
    await models.refresh();
    const wizard = new WizardState(api, models);
    wizard.reset({});
    await wizard.chooseModel('m1');
    await wizard.chooseDataset('d1');
    wizard.adapterName = 'pirate';
    wizard.goTo(5);
    expect(wizard.stepId).toBe('review');
    return wizard;
  }

  it('measures what each precision costs once the estimate shows the store holds the base, and sends the choice', async () => {
    const measured = deferred<typeof COST>();
    const api = fakeApi({
      'models.list': () => [MODEL], 'models.modules': () => llamaModules(),
      'train.estimate': ({ settings }) => ({ ...ESTIMATE, base: settings.basePrecision === 'q8_0' ? { ...base, held: 'Q8_0', bytes: 4_250_000 } : base }),
      'train.measurePrecision': () => measured.promise,
      'train.start': () => run({ status: 'queued' }),
    });
    const wizard = await atReview(api);
    await vi.waitFor(() => expect(api.callsOf('train.measurePrecision')).toHaveLength(1));
    const [asked] = api.callsOf('train.measurePrecision');
    expect(asked).toMatchObject({ modelId: 'm1', datasetId: 'd1', settings: { basePrecision: 'stored' } });
    expect(wizard.measuring).toBe(true);
    api.emit('train.precisionProgress', { requestId: 'someone-else', precision: 'q8_0', stage: 'loading', copy: 2, copies: 2, batch: 0, batches: 4 });
    expect(wizard.precisionProgress).toBeNull();
    api.emit('train.precisionProgress', { requestId: asked!.requestId, precision: 'q8_0', stage: 'scoring', copy: 2, copies: 2, batch: 3, batches: 4 });
    expect(wizard.precisionProgress).toMatchObject({ stage: 'scoring', batch: 3 });
    measured.resolve(COST);
    await vi.waitFor(() => expect(wizard.precisionCost).toEqual(COST));
    expect(wizard.measuring).toBe(false);

    // The choices as the review step shows them: the memory each takes and its measured cost.
    const choices = precisionChoices(wizard.estimate as Parameters<typeof precisionChoices>[0], wizard.precisionCost);
    expect(choices.map((c) => [c.value, c.label, c.baseBytes, c.peakBytes, c.cost])).toEqual([
      ['stored', 'Stored (F16)', 8_000_000, 200e6, 'loss 2.5000, the reference'],
      ['q8_0', 'Q8_0', 4_250_000, 200e6 - 3_750_000, '+0.003 loss against F16'],
      ['q4_0', 'Q4_0', 2_250_000, 200e6 - 5_750_000, '+0.030 loss against F16'],
    ]);
    expect(describeChoice(choices[1]!, choices[0])).toBe('+0.003 loss against F16, base 4.1 MiB (3.6 MiB less), peak 187.2 MiB');

    wizard.choosePrecision('q8_0');
    await vi.waitFor(() => expect(wizard.estimate?.base?.held).toBe('Q8_0'));
    expect(api.callsOf('train.estimate').at(-1)?.settings.basePrecision).toBe('q8_0');
    expect(api.callsOf('train.measurePrecision')).toHaveLength(1); // the same rows: measured once
    await wizard.start();
    expect(api.callsOf('train.start')[0]?.settings.basePrecision).toBe('q8_0');
  });

  it('a start stops the measuring in flight (the run would wait behind it) without calling it a failure', async () => {
    const measured = deferred<typeof COST>();
    const api = fakeApi({
      'models.list': () => [MODEL], 'models.modules': () => llamaModules(),
      'train.estimate': () => ({ ...ESTIMATE, base }),
      'train.measurePrecision': () => measured.promise,
      'train.stopMeasure': () => {
        measured.reject(appError('CANCELLED', 'measuring the base precision was cancelled'));
        return { stopped: true };
      },
      'train.start': () => run({ status: 'queued' }),
    });
    const wizard = await atReview(api);
    await vi.waitFor(() => expect(wizard.measuring).toBe(true));
    expect(await wizard.start()).not.toBeNull();
    const [asked] = api.callsOf('train.measurePrecision');
    expect(api.callsOf('train.stopMeasure')).toEqual([{ requestId: asked!.requestId }]);
    const names = api.calls.map((c) => c.name);
    expect(names.indexOf('train.stopMeasure')).toBeLessThan(names.indexOf('train.start'));
    await vi.waitFor(() => expect(wizard.measuring).toBe(false));
    expect(wizard.measureError).toBeNull();
  });

  it('says why measuring failed beside the choice, and the wizard still starts', async () => {
    const api = fakeApi({
      'models.list': () => [MODEL], 'models.modules': () => llamaModules(),
      'train.estimate': () => ({ ...ESTIMATE, base }),
      'train.measurePrecision': () => { throw appError('INVALID_TRAIN_CONFIG', 'no example has a target token to score'); },
      'train.start': () => run({ status: 'queued' }),
    });
    const wizard = await atReview(api);
    await vi.waitFor(() => expect(wizard.measureError).toBe('Measuring the base precision failed: no example has a target token to score'));
    expect(wizard.error).toBeNull();
    expect(await wizard.start()).not.toBeNull();
  });

  it('measures nothing where the backend holds the base as float32 tensors', async () => {
    const api = fakeApi({ 'models.list': () => [MODEL], 'models.modules': () => llamaModules(), 'train.estimate': () => ({ ...ESTIMATE, base: { ...base, held: 'tensor' } }) });
    const wizard = await atReview(api);
    await vi.waitFor(() => expect(wizard.estimate).not.toBeNull());
    expect(api.callsOf('train.measurePrecision')).toHaveLength(0);
    expect(precisionApplies(wizard.estimate)).toBe(false);
  });
});
