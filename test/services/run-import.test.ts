/**
 * A run exported from the library, trained elsewhere, imported back: the tiny llama fixture and a dataset in a real
 * library, the export made from the library's stored dataset, the adapter trained by the engine with the export's
 * settings standing in for PEFT's, and trainer_state.json / run_info.json / run.json written by the exported
 * train.py's own write_result (python3, no torch; test/support/run-result.ts). Then the version, its run, curves, lineage and machine; and the
 * refusals (unknown base, unknown dataset, an adapter that does not fit, a folder that is not a result), each writing nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportRun } from '../../main/engine/handoff/export-run';
import { loadTokenizer } from '../../main/engine/io/tokenizer';
import { loadModel } from '../../main/engine/models/registry';
import { normalizeDataset, storedDatasetFile, writeNormalizedDataset } from '../../main/engine/train/datasets/normalize';
import { runTraining } from '../../main/engine/train/run';
import type { TrainSettingsInput } from '../../main/engine/train/settings';
import { importRunResult } from '../../main/services/run-import';
import { importRunCommand } from '../../main/cli/import-run';
import type { CliIo } from '../../main/cli/command';
import { openLibrary, type Library } from '../../main/store/index';
import { FileWork } from '../../main/services/file-work/client';
import { useCpu } from '../engine/lora/setup';
import { writeRunResult } from '../support/run-result';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
const MODEL = join(FIXTURES, 'tiny-random-llama');
const dir = mkdtempSync(join(tmpdir(), 'lorasmith-run-import-'));
let library: Library;
let files: FileWork;
let bundle: string;
let modelId: string;
let datasetId: string;
const settings: TrainSettingsInput = { lora: { targetModules: 'attention', rank: 4, dropout: 0 }, maxSteps: 3, batchSize: 2, evalEvery: 2, seed: 3, checkpointEvery: 0 };
let history: { step: number; loss: number; lr: number; gradNorm: number }[] = [];
let evals: { step: number; valLoss: number }[] = [];

const counts = () => ({
  versions: (library.db.prepare('SELECT COUNT(*) AS n FROM adapter_versions').get() as { n: number }).n,
  runs: (library.db.prepare('SELECT COUNT(*) AS n FROM training_runs').get() as { n: number }).n,
  adapters: library.adapters.list().length,
});

beforeAll(async () => {
  await useCpu();
  library = openLibrary(join(dir, 'library'));
  files = new FileWork();
  modelId = library.models.import({ sourcePath: MODEL, mode: 'reference', architecture: 'llama', parameterCount: 1032272, source: { kind: 'folder', ref: MODEL } }).id;
  const data = join(dir, 'qa.jsonl');
  writeFileSync(data, Array.from({ length: 12 }, (_, i) => JSON.stringify({ prompt: `Q${i}: what is ${i} plus ${i + 1}?`, completion: ` ${2 * i + 1}.` })).join('\n') + '\n');
  const normalized = normalizeDataset(data);
  const temp = join(dir, 'normalized.jsonl');
  writeNormalizedDataset(temp, normalized);
  datasetId = library.datasets.import({ sourcePath: data, format: normalized.report.format, name: 'sums', normalized: { path: temp, recordCount: 12, skippedCount: 0 } }).id;

  const stored = storedDatasetFile(library.datasets.resolveFiles(datasetId));
  bundle = join(dir, 'bundle');
  const modelDir = library.models.resolvePath(modelId);
  await exportRun({ modelDir, base: { hubId: null, contentHash: library.models.get(modelId).contentHash }, data: { path: stored }, settings, outDir: bundle, library: { modelId, datasetId } });
  const model = await loadModel(modelDir, { trainable: false });
  try {
    const trained = await runTraining({ model, tokenizer: await loadTokenizer(modelDir), base: { nameOrPath: modelDir, contentHash: null }, data: { path: stored }, settings, outDir: join(dir, 'trained') });
    history = [...(trained.loop?.history ?? [])];
    evals = [...(trained.loop?.evals ?? [])];
  } finally {
    model.dispose();
  }
  writeRunResult(bundle, join(bundle, 'output'), join(dir, 'trained'), history, evals);
}, 300_000);
afterAll(async () => {
  await files?.close();
  library?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('importing a run trained elsewhere', () => {
  it('adds a version on the library\'s base and dataset with the settings, the curves and the machine it ran on', async () => {
    const done = await importRunResult(library, files, bundle, { adapterName: 'sums-remote' });
    expect(done.adapterName).toBe('sums-remote');
    expect(done.trainedOn).toBe('gpu-box: 2 × NVIDIA H100 80GB HBM3, 2 processes (MULTI_GPU); torch 2.11.0+cu128, CUDA 12.8, transformers 5.17.0, PEFT 0.21.0, accelerate 1.15.0');
    expect(done.warnings).toEqual([]); // the versions requirements.txt pins (torch's +cu128 build is the release 2.11.0)
    const v = done.version;
    expect(v).toMatchObject({ origin: 'trained', version: 1, datasetId, baseModelHash: library.models.get(modelId).contentHash, datasetHash: library.datasets.get(datasetId).hash, trainedOn: done.trainedOn });
    expect(v.metrics).toEqual({ steps: 3, trainLoss: history[2]?.loss, valLoss: evals.at(-1)?.valLoss });
    expect(v.settings).toMatchObject({ maxSteps: 3, batchSize: 2, seed: 3, lora: { targetModules: ['attention'], rank: 4, alpha: 8, dropout: 0, useRslora: false } });
    for (const file of ['adapter_config.json', 'adapter_model.safetensors', 'trainer_state.json', 'run_info.json', 'run.json', 'machine.json']) {
      expect(existsSync(join(v.path, file))).toBe(true);
    }
    expect(done.run).toMatchObject({ status: 'done', adapterVersionId: v.id, datasetId, baseModelId: modelId, step: 3, totalSteps: 3 });
    const points = library.metrics.list(done.run.id);
    expect(points.map((p) => p.step)).toEqual([1, 2, 3]);
    points.forEach((p, i) => expect(p).toMatchObject({ loss: history[i]?.loss, lr: history[i]?.lr, gradNorm: history[i]?.gradNorm }));
    expect(points.filter((p) => p.valLoss !== undefined).map((p) => [p.step, p.valLoss])).toEqual(evals.map((e) => [e.step, e.valLoss]));
    expect(library.lineage.curves(v.id)).toHaveLength(1);
    // a second import of another result is the next version of the same adapter
    expect((await importRunResult(library, files, join(bundle, 'output'), { adapterName: 'sums-remote' })).version.version).toBe(2);
  });

  it('lorasmith import-run does the same from the command line', async () => {
    const out: string[] = [];
    const io: CliIo = { out: (t) => out.push(t), err: () => undefined, signal: new AbortController().signal };
    expect(await importRunCommand.run([bundle, '--data-dir', join(dir, 'library'), '--adapter-name', 'sums-cli', '--json'], io)).toBe(0);
    expect(JSON.parse(out[0] as string)).toMatchObject({ done: true, adapterName: 'sums-cli', version: 1, steps: 3, trainedOn: expect.stringMatching(/^gpu-box: 2 × NVIDIA H100/) });
    expect(library.versions.list((library.adapters.findByName('sums-cli') as { id: string }).id)).toHaveLength(1);
    await expect(importRunCommand.run([], io)).rejects.toThrow(/needs exactly one <result-dir>/);

    // A run on another transformers than the export pins: imported, the versions in its line, a warning on stderr.
    const newer = join(dir, 'newer-transformers');
    cpSync(join(bundle, 'output'), newer, { recursive: true });
    const info = JSON.parse(readFileSync(join(newer, 'run_info.json'), 'utf8'));
    info.machine.transformers = '5.18.0';
    writeFileSync(join(newer, 'run_info.json'), JSON.stringify(info));
    const text: string[] = [];
    const err: string[] = [];
    const code = await importRunCommand.run([newer, '--data-dir', join(dir, 'library'), '--adapter-name', 'sums-newer'], { out: (t) => text.push(t), err: (t) => err.push(t), signal: new AbortController().signal });
    expect(code).toBe(0);
    expect(text[1]).toBe('trained on gpu-box: 2 × NVIDIA H100 80GB HBM3, 2 processes (MULTI_GPU); torch 2.11.0+cu128, CUDA 12.8, transformers 5.18.0 (tested 5.17.0), PEFT 0.21.0, accelerate 1.15.0');
    expect(err).toEqual([expect.stringMatching(/^warning: this run trained with transformers 5\.18\.0 \(tested 5\.17\.0\), not the versions its export pins in requirements\.txt; it was imported/)]);
    expect(library.versions.list((library.adapters.findByName('sums-newer') as { id: string }).id)).toHaveLength(1);
  });

  it('refuses a run whose base is not in the library, naming it, and writes nothing', async () => {
    const before = counts();
    const other = join(dir, 'other-base');
    cpSync(join(bundle, 'output'), other, { recursive: true });
    const run = JSON.parse(readFileSync(join(other, 'run.json'), 'utf8'));
    run.base_model.content_hash = 'sha256:' + '0'.repeat(64);
    writeFileSync(join(other, 'run.json'), JSON.stringify(run));
    await expect(importRunResult(library, files, other)).rejects.toThrow(/base model this run trained .* is not in the library; import that model folder first/);
    expect(counts()).toEqual(before);
  });

  it('refuses a run whose dataset is not in the library, naming it, and writes nothing', async () => {
    const before = counts();
    const other = join(dir, 'other-data');
    cpSync(join(bundle, 'output'), other, { recursive: true });
    const run = JSON.parse(readFileSync(join(other, 'run.json'), 'utf8'));
    const unknown = 'sha256:' + '1'.repeat(64);
    run.dataset.files[0].content_hash = unknown;
    writeFileSync(join(other, 'run.json'), JSON.stringify(run));
    await expect(importRunResult(library, files, other, { adapterName: 'never' })).rejects.toMatchObject({
      code: 'ADAPTER_MISMATCH', message: expect.stringContaining(`the dataset this run trained on (${unknown}) is not in the library; import the same data file first`),
    });
    expect(counts()).toEqual(before);
    expect(library.adapters.findByName('never')).toBeNull();
  });

  it('refuses an adapter that does not fit the base (preflight) before writing anything', async () => {
    const before = counts();
    const wrong = join(dir, 'wrong-adapter');
    cpSync(join(bundle, 'output'), wrong, { recursive: true });
    rmSync(join(wrong, 'adapter'), { recursive: true });
    cpSync(join(FIXTURES, 'peft-gpt2-lora-c_attn-c_proj'), join(wrong, 'adapter'), { recursive: true });
    await expect(importRunResult(library, files, wrong, { adapterName: 'never' })).rejects.toMatchObject({ code: 'ADAPTER_MISMATCH', message: expect.stringMatching(/does not fit/) });
    expect(counts()).toEqual(before);
    expect(library.adapters.findByName('never')).toBeNull();
  });

  it('refuses a folder that is not a run result, naming the missing file', async () => {
    const before = counts();
    await expect(importRunResult(library, files, join(dir, 'trained'))).rejects.toMatchObject({ code: 'INVALID_RUN_RESULT', message: expect.stringMatching(/run_info\.json is missing/) });
    const half = join(dir, 'half');
    cpSync(join(bundle, 'output'), half, { recursive: true });
    rmSync(join(half, 'adapter', 'adapter_model.safetensors'));
    await expect(importRunResult(library, files, half)).rejects.toThrow(/adapter\/adapter_model\.safetensors is missing/);
    expect(counts()).toEqual(before);
  });
});
