/**
 * The library versions of a run handed to transformers + PEFT: the export pins them (requirements.txt, run.json's
 * tested_versions), train.py records those it ran with (run_info.json), the import keeps them in the version's
 * lineage and warns where they differ. Through the app's handlers (a real library, the engine host in a worker
 * thread) on the starter model; the results are written by hand, as a GPU machine's train.py leaves them: the
 * adapter is the real PEFT 0.21 adapter of the starter (test/fixtures/peft-0.21-starter-lora), with a log history
 * and the machine's record. PyTorch, transformers and PEFT do not run here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Api, TrainingSettings } from '../../preload/contract';
import { handlersUnderTest, type HandlersUnderTest } from '../support/handlers';

const ROOT = join(import.meta.dirname, '..', '..');
const STARTER = join(ROOT, 'resources', 'starter');
const STARTER_LORA = join(ROOT, 'test', 'fixtures', 'peft-0.21-starter-lora');
/** The fixture's LoRA: PEFT's get_peft_model on the starter with r 4, alpha 8, every linear kind. */
const SETTINGS: TrainingSettings = {
  lora: { targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], rank: 4, alpha: 8, dropout: 0, useRslora: false },
  maxSteps: 3, learningRate: 1e-3, batchSize: 2, gradAccum: 1, maxSeqLen: 64, valSplit: 0, seed: 4,
  scheduler: 'constant', warmupSteps: 0, weightDecay: 0, maxGradNorm: 1, evalEvery: 2, checkpointEvery: 0, trainOnPrompt: false,
};
/** trainer_state.json's log_history as transformers' Trainer (and train.py) write it. */
const LOG_HISTORY = [
  { epoch: 0.25, grad_norm: 1.5, learning_rate: 1e-3, loss: 3.25, step: 1 },
  { epoch: 0.5, grad_norm: 1.25, learning_rate: 1e-3, loss: 3.0, step: 2 },
  { epoch: 0.5, eval_loss: 3.125, eval_perplexity: Math.exp(3.125), step: 2 },
  { epoch: 0.75, grad_norm: 1.0, learning_rate: 1e-3, loss: 2.75, step: 3 },
];
/** Two machines of two A100s each under DeepSpeed, on another torch, transformers and DeepSpeed than the export's; no PEFT version in run_info.json (the adapter names it). */
const CLUSTER = {
  hostname: 'node-a', hosts: ['node-a', 'node-b'], platform: 'Linux', python: '3.11.9', torch: '2.10.0+cu126', cuda: '12.6', cudnn: 90100,
  transformers: '5.18.0', accelerate: '1.15.0', deepspeed: '0.18.2',
  devices: ['NVIDIA A100-SXM4-80GB', 'NVIDIA A100-SXM4-80GB', 'NVIDIA A100-SXM4-80GB', 'NVIDIA A100-SXM4-80GB'], processes: 4,
  distributed_type: 'DEEPSPEED', mixed_precision: 'no',
};
/** One GPU with exactly the tested versions (torch's +cu128 build of 2.11.0; DeepSpeed installed, not used). */
const ONE_GPU = {
  hostname: 'gpu-box', hosts: ['gpu-box'], platform: 'Linux', python: '3.12.3', torch: '2.11.0+cu128', cuda: '12.8', cudnn: 91002,
  transformers: '5.17.0', peft: '0.21.0', accelerate: '1.15.0', deepspeed: '0.17.0', devices: ['NVIDIA H200'], processes: 1,
  distributed_type: 'NO', mixed_precision: 'no',
};

let main: HandlersUnderTest;
let api: Api;
let bundle = '';
let modelId = '';
let datasetId = '';

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

/** A result folder as train.py leaves it: the PEFT adapter, the log history, the machine's record, the run.json it trained. */
function handWritten(name: string, machine: object, editRun: (run: Record<string, unknown>) => void = () => undefined): string {
  const out = join(main.dir, name);
  mkdirSync(join(out, 'adapter'), { recursive: true });
  for (const file of ['adapter_config.json', 'adapter_model.safetensors']) cpSync(join(STARTER_LORA, file), join(out, 'adapter', file));
  const run = readJson(join(bundle, 'run.json'));
  editRun(run);
  writeFileSync(join(out, 'run.json'), JSON.stringify(run, null, 2));
  writeFileSync(join(out, 'trainer_state.json'), JSON.stringify({ global_step: 3, max_steps: 3, best_metric: 3.125, best_global_step: 2, log_history: LOG_HISTORY }, null, 2));
  writeFileSync(join(out, 'run_info.json'), JSON.stringify({
    format: 'lorasmith-run-result/1', status: 'completed', steps: 3, base: STARTER, dtype: 'float32', seconds: 41.5, tokens_per_second: 1250, machine,
    finished_at: '2026-12-04T03:00:00Z',
  }, null, 2));
  return out;
}

beforeAll(async () => {
  main = handlersUnderTest();
  api = main.api;
  modelId = (await api.invoke('models.import', { path: STARTER, mode: 'reference' })).id;
  datasetId = (await api.invoke('datasets.import', { path: join(ROOT, 'resources', 'samples', 'verily-chat.jsonl') })).id;
  bundle = join(main.dir, 'bundle');
  await api.invoke('runs.exportForPeft', { modelId, datasetId, settings: SETTINGS, destination: bundle });
}, 120_000);

afterAll(() => main.close());

describe('the library versions of a run trained with transformers + PEFT', () => {
  it('pins them in requirements.txt and records the same in run.json', () => {
    const pinned = Object.fromEntries(
      readFileSync(join(bundle, 'requirements.txt'), 'utf8').split('\n').map((l) => /^#? ?([a-z]+)==(\S+)$/.exec(l)).filter((m) => m !== null).map((m) => [m[1], m[2]]),
    );
    expect(Object.keys(pinned).sort()).toEqual(['accelerate', 'deepspeed', 'peft', 'torch', 'transformers']);
    expect(readJson(join(bundle, 'run.json')).tested_versions).toEqual(pinned);
    expect(readFileSync(join(bundle, 'README.md'), 'utf8')).toContain('warns where they differ');
  });

  it('imports a run on other versions with a warning naming each, and keeps them in the lineage where the machine is shown', async () => {
    const imported = await api.invoke('runs.importResult', { path: handWritten('cluster', CLUSTER), adapterName: 'on-the-cluster' });
    const machine = '2 machines (node-a, node-b): 4 × NVIDIA A100-SXM4-80GB, 4 processes (DEEPSPEED); torch 2.10.0+cu126 (tested 2.11.0), CUDA 12.6, '
      + 'transformers 5.18.0 (tested 5.17.0), PEFT 0.21.0, accelerate 1.15.0, DeepSpeed 0.18.2 (tested 0.19.8)';
    expect(imported.trainedOn).toBe(machine);
    expect(imported.warnings).toEqual([
      'this run trained with torch 2.10.0+cu126 (tested 2.11.0), transformers 5.18.0 (tested 5.17.0), DeepSpeed 0.18.2 (tested 0.19.8), '
      + 'not the versions its export pins in requirements.txt; it was imported, but its training may differ from a run on the tested versions: '
      + 'check its curves, or train again after pip install -r requirements.txt',
    ]);
    const [version] = await api.invoke('adapters.versions', { adapterId: imported.version.adapterId });
    expect(version).toMatchObject({ origin: 'trained', trainedOn: machine, datasetId, metrics: { steps: 3, trainLoss: 2.75, valLoss: 3.125 } });
    // The real PEFT adapter came in byte for byte; the curves are the log history's.
    const path = version?.path as string;
    expect(readFileSync(join(path, 'adapter_model.safetensors')).equals(readFileSync(join(STARTER_LORA, 'adapter_model.safetensors')))).toBe(true);
    const run = (await api.invoke('runs.list', {})).find((r) => r.adapterVersionId === version?.id);
    const points = await api.invoke('runs.metrics', { runId: run?.id as string });
    expect(points.filter((p) => p.loss !== undefined).map((p) => [p.step, p.loss, p.lr])).toEqual([[1, 3.25, 1e-3], [2, 3.0, 1e-3], [3, 2.75, 1e-3]]);
    expect(points.filter((p) => p.valLoss !== undefined).map((p) => [p.step, p.valLoss])).toEqual([[2, 3.125]]);
    // machine.json: what it ran on and with, beside what the export pinned; the PEFT version from the adapter PEFT saved.
    expect(readJson(join(path, 'machine.json'))).toEqual({
      description: machine, hostname: 'node-a', hosts: ['node-a', 'node-b'], devices: CLUSTER.devices, processes: 4, distributedType: 'DEEPSPEED',
      versions: { python: '3.11.9', torch: '2.10.0+cu126', cuda: '12.6', transformers: '5.18.0', peft: '0.21.0', accelerate: '1.15.0', deepspeed: '0.18.2' },
      testedVersions: readJson(join(bundle, 'run.json')).tested_versions,
      versionDifferences: [
        { library: 'torch', ran: '2.10.0+cu126', tested: '2.11.0' },
        { library: 'transformers', ran: '5.18.0', tested: '5.17.0' },
        { library: 'deepspeed', ran: '0.18.2', tested: '0.19.8' },
      ],
    });
  }, 120_000);

  it('imports a run on the tested versions without a warning', async () => {
    const imported = await api.invoke('runs.importResult', { path: handWritten('one-gpu', ONE_GPU), adapterName: 'on-one-gpu' });
    expect(imported.warnings).toEqual([]);
    expect(imported.trainedOn).toBe('gpu-box: NVIDIA H200; torch 2.11.0+cu128, CUDA 12.8, transformers 5.17.0, PEFT 0.21.0, accelerate 1.15.0');
    expect((await api.invoke('adapters.versions', { adapterId: imported.version.adapterId }))[0]?.trainedOn).toBe(imported.trainedOn);
  }, 120_000);

  it('compares an export made before the versions were recorded with the pins of now, and says what a result does not record', async () => {
    const { accelerate: _unrecorded, ...withoutAccelerate } = ONE_GPU;
    const older = handWritten('older-export', withoutAccelerate, (run) => delete run.tested_versions);
    const imported = await api.invoke('runs.importResult', { path: older, adapterName: 'older' });
    expect(imported.trainedOn).toBe('gpu-box: NVIDIA H200; torch 2.11.0+cu128, CUDA 12.8, transformers 5.17.0, PEFT 0.21.0, accelerate (not recorded; tested 1.15.0)');
    expect(imported.warnings).toEqual([expect.stringMatching(/^this run trained with accelerate \(not recorded; tested 1\.15\.0\), not the versions/)]);
  }, 120_000);
});
