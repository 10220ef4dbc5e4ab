/**
 * A run trained elsewhere (an exported run's train.py output) comes back into the library as a new adapter version,
 * as a local run would: the base and the dataset found in the library by the content hashes the export recorded,
 * the adapter checked against that base (preflight) before anything is written, then a finished training run with
 * the curves of the trainer's log history, and the version with its settings and the machine it ran on. One home
 * for the CLI's `lorasmith import-run` and the app's Adapters view.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrainingSettings } from '../../preload/contract';
import { describeBaseDir } from '../engine/adapters/describe-base';
import { formatPreflight, preflightAdapter } from '../engine/adapters/preflight';
import { HandoffError } from '../engine/handoff/errors';
import { describeMachine, readRunResult, type RunResult } from '../engine/handoff/run-result';
import type { TrainSettings } from '../engine/train/settings';
import type { Library } from '../store/index';
import type { RunDetails } from '../store/repos/runs';
import { MACHINE_FILE } from '../store/repos/versions';
import type { VersionDetails } from '../store/types';

export interface RunImportOptions {
  /** The adapter to add the version to (created on the run's base when new); default '<dataset>-<base>'. */
  readonly adapterName?: string;
}

export interface RunImport {
  readonly version: VersionDetails;
  readonly run: RunDetails;
  readonly adapterName: string;
  readonly trainedOn: string;
  readonly steps: number;
}

/** The engine's settings in the contract's words (what a version records and the wizard can start again from). */
export function contractSettings(s: TrainSettings): TrainingSettings {
  const lora = s.lora;
  if (lora === null) throw new HandoffError('INVALID_RUN_RESULT', 'run.json describes full fine-tuning; only LoRA runs come back as adapter versions');
  return {
    lora: { targetModules: typeof lora.targetModules === 'string' ? [lora.targetModules] : [...lora.targetModules], rank: lora.rank, alpha: lora.alpha, dropout: lora.dropout, useRslora: lora.useRslora },
    ...(s.maxSteps !== null ? { maxSteps: s.maxSteps } : { epochs: s.epochs }),
    learningRate: s.learningRate, batchSize: s.batchSize, gradAccum: s.gradAccum, maxSeqLen: s.maxSeqLen,
    valSplit: s.valSplit === 'auto' ? 0.1 : s.valSplit, seed: s.seed, scheduler: s.scheduler, warmupSteps: s.warmupSteps,
    weightDecay: s.weightDecay, maxGradNorm: s.maxGradNorm, evalEvery: s.evalEvery, checkpointEvery: s.checkpointEvery,
    earlyStoppingPatience: s.earlyStoppingPatience, trainOnPrompt: s.trainOnPrompt, recompute: s.recompute,
  };
}

function findLibraryEntries(library: Library, result: RunResult) {
  const model = library.models.list().find((m) => m.contentHash === result.baseContentHash);
  if (!model) {
    throw new HandoffError('ADAPTER_MISMATCH', `the base model this run trained (${result.baseNameOrPath}, ${result.baseContentHash}) is not in the library; import that model folder first, then import the run again`);
  }
  const datasetHash = result.datasetHashes[0] as string;
  const datasets = library.datasets.list().filter((d) => d.hash === datasetHash);
  const dataset = datasets.find((d) => d.id === result.library?.datasetId) ?? datasets[0];
  if (!dataset) {
    throw new HandoffError('ADAPTER_MISMATCH', `the dataset this run trained on (${datasetHash}) is not in the library; import the same data file first, then import the run again`);
  }
  const parentId = result.library?.parentVersionId;
  const parent = parentId ? library.versions.find(parentId) : null;
  return { model, dataset, parent: parent && parent.baseModelHash === model.contentHash ? parent : null };
}

/** Checks everything, then writes the run, its curves and the version; throws naming the problem, writing nothing. */
export function importRunResult(library: Library, dir: string, options: RunImportOptions = {}): RunImport {
  const result = readRunResult(dir);
  const settings = contractSettings(result.settings);
  const { model, dataset, parent } = findLibraryEntries(library, result);
  const preflight = preflightAdapter(result.adapterDir, describeBaseDir(library.models.resolvePath(model.id)));
  if (!preflight.ok) throw new HandoffError('ADAPTER_MISMATCH', `the run's adapter does not fit ${model.name}:\n${formatPreflight(preflight)}`);
  const adapterName = options.adapterName?.trim() || `${dataset.name}-${model.name}`;
  const existing = library.adapters.findByName(adapterName);
  if (existing && existing.baseModelId !== model.id) {
    throw new HandoffError('ADAPTER_MISMATCH', `adapter '${adapterName}' belongs to another base model; choose another name`);
  }
  const trainedOn = describeMachine(result.machine);

  // The version folder: the PEFT files, what the trainer wrote, and the machine (read back as trainedOn).
  const staging = mkdtempSync(join(tmpdir(), 'lorasmith-run-import-'));
  try {
    cpSync(result.adapterDir, staging, { recursive: true });
    for (const name of ['trainer_state.json', 'run_info.json', 'run.json']) cpSync(join(result.dir, name), join(staging, name));
    writeFileSync(join(staging, MACHINE_FILE), JSON.stringify({ description: trainedOn, ...result.machine }, null, 2) + '\n');

    const adapter = existing ?? library.adapters.create({ name: adapterName, baseModelId: model.id });
    const created = library.runs.create({ adapterId: adapter.id, datasetId: dataset.id, settings, parentVersionId: parent?.id ?? null, totalSteps: result.steps });
    try {
      library.runs.start(created.id, result.steps);
      library.metrics.append(created.id, result.points);
      const version = library.versions.commit({
        adapterId: adapter.id, filesFrom: staging, take: 'copy', origin: 'trained', parentVersionId: parent?.id ?? null,
        datasetId: dataset.id, settings, runId: created.id,
        metrics: { steps: result.steps, ...(result.trainLoss !== null ? { trainLoss: result.trainLoss } : {}), ...(result.valLoss !== null ? { valLoss: result.valLoss } : {}) },
      });
      const run = library.runs.finish(created.id, 'done');
      return { version: library.versions.get(version.id), run, adapterName, trainedOn, steps: result.steps };
    } catch (error) {
      library.runs.delete(created.id);
      if (!existing && library.versions.list(adapter.id).length === 0) library.adapters.delete(adapter.id);
      throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
