/**
 * A run trained elsewhere (an exported run's train.py output) comes back into the library as a new adapter version,
 * as a local run would: the base and the dataset found in the library by the content hashes the export recorded,
 * the adapter checked against that base (preflight) before anything is written, then a finished training run with
 * the curves of the trainer's log history, and the version with its settings and the machine it ran on (with the
 * library versions it ran with, beside those its export pinned: a difference is a warning of the import, not a
 * refusal). Reading the result and the preflight run in the file worker. One home for `lorasmith import-run` and the
 * Adapters view.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempSibling } from '../common/atomic';
import type { Library } from '../store/index';
import type { RunDetails } from '../store/repos/runs';
import { MACHINE_FILE } from '../store/repos/versions';
import type { VersionDetails } from '../store/types';
import { ServiceError } from './errors';
import type { FileWork } from './file-work/client';
import type { RunResultSummary } from './file-work/protocol';

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
  /** What the import warns of (the run's library versions differing from those its export pinned); empty if none. */
  readonly warnings: readonly string[];
}

function findLibraryEntries(library: Library, result: RunResultSummary) {
  const model = library.models.list().find((m) => m.contentHash === result.baseContentHash);
  if (!model) {
    throw new ServiceError('ADAPTER_MISMATCH', `the base model this run trained (${result.baseNameOrPath}, ${result.baseContentHash}) is not in the library; import that model folder first, then import the run again`);
  }
  const datasetHash = result.datasetHashes[0] as string;
  const datasets = library.datasets.list().filter((d) => d.hash === datasetHash);
  const dataset = datasets.find((d) => d.id === result.library?.datasetId) ?? datasets[0];
  if (!dataset) {
    throw new ServiceError('ADAPTER_MISMATCH', `the dataset this run trained on (${datasetHash}) is not in the library; import the same data file first, then import the run again`);
  }
  const parentId = result.library?.parentVersionId;
  const parent = parentId ? library.versions.find(parentId) : null;
  return { model, dataset, parent: parent && parent.baseModelHash === model.contentHash ? parent : null };
}

/** Checks everything, then writes the run, its curves and the version; throws naming the problem, writing nothing. */
export async function importRunResult(library: Library, files: FileWork, dir: string, options: RunImportOptions = {}): Promise<RunImport> {
  const result = await files.run({ kind: 'readRunResult', dir });
  const { settings, trainedOn } = result;
  const { model, dataset, parent } = findLibraryEntries(library, result);
  const preflight = await files.run({ kind: 'preflightAdapter', adapterDir: result.adapterDir, modelDir: library.models.resolvePath(model.id) });
  if (!preflight.ok) throw new ServiceError('ADAPTER_MISMATCH', `the run's adapter does not fit ${model.name}:\n${preflight.report}`);
  const adapterName = options.adapterName?.trim() || `${dataset.name}-${model.name}`;
  const existing = library.adapters.findByName(adapterName);
  if (existing && existing.baseModelId !== model.id) {
    throw new ServiceError('ADAPTER_MISMATCH', `adapter '${adapterName}' belongs to another base model; choose another name`);
  }

  // The version folder: the PEFT files, what the trainer wrote (copied in the file worker), and the machine (read
  // back as trainedOn). Staged under a temp name in the data directory, so that a stop midway leaves what the
  // start-up sweep removes, and moved into place by the commit.
  const staging = tempSibling(library.dataDir.resolve('run-import'));
  mkdirSync(staging);
  try {
    const records = ['trainer_state.json', 'run_info.json', 'run.json'].map((name) => ({ from: join(result.dir, name), to: join(staging, name) }));
    await files.run({ kind: 'copyIn', copies: [{ from: result.adapterDir, to: staging }, ...records] });
    const versions = { testedVersions: result.testedVersions, versionDifferences: result.versionDifferences };
    writeFileSync(join(staging, MACHINE_FILE), JSON.stringify({ description: trainedOn, ...result.machine, ...versions }, null, 2) + '\n');

    // The adapter (when new), the run, its curves and the version in one transaction: a stop at any point leaves all
    // of them or none (never a run without its version, nor an adapter without the version it was made for).
    const { version, run } = library.transaction(() => {
      const adapter = existing ?? library.adapters.create({ name: adapterName, baseModelId: model.id });
      const created = library.runs.create({ adapterId: adapter.id, datasetId: dataset.id, settings, parentVersionId: parent?.id ?? null, totalSteps: result.steps });
      library.runs.start(created.id, result.steps);
      library.metrics.append(created.id, result.points);
      const committed = library.versions.commit({
        adapterId: adapter.id, filesFrom: staging, take: 'move', origin: 'trained', parentVersionId: parent?.id ?? null,
        datasetId: dataset.id, settings, runId: created.id,
        metrics: { steps: result.steps, ...(result.trainLoss !== null ? { trainLoss: result.trainLoss } : {}), ...(result.valLoss !== null ? { valLoss: result.valLoss } : {}) },
      });
      return { version: committed, run: library.runs.finish(created.id, 'done') };
    });
    const warnings = result.versionWarning ? [result.versionWarning] : [];
    return { version: library.versions.get(version.id), run, adapterName, trainedOn, steps: result.steps, warnings };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
