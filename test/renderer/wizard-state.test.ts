import { beforeEach, describe, expect, it } from 'vitest';
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
