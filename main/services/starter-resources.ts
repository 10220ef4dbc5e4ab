/**
 * First run: registers the starter model and the sample datasets that ship in resources/ into an empty
 * library, once. resources/samples/samples.json lists them, with the guided first fine-tune's defaults.
 *
 *   const result = await registerStarterResources(library, files, join(app.getAppPath(), 'resources'));
 *   if (result.registered) ...offer result.guided (model id, dataset id, LoRA and training settings)
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StoreError, type Library } from '../store/index';
import { importDataset } from './datasets';
import type { FileWork } from './file-work/client';
import { importModel } from './models';
import type { DatasetFormat } from '../../preload/contract/domain';

/** Settings key set once the resources were offered, so that deleting them later does not bring them back. */
export const STARTER_REGISTERED_KEY = 'firstRun.starterRegistered';

export interface SampleEntry {
  readonly file: string;
  readonly name: string;
  readonly format: DatasetFormat;
  readonly behaviour: string;
  readonly tryPrompt: string;
  readonly guided: boolean;
}

export interface GuidedFineTune {
  readonly dataset: string;
  readonly lora: { targetModules: string; rank: number; alpha: number; dropout: number };
  readonly hyperparameters: { maxSteps: number; batchSize: number; learningRate: number; scheduler: string; seed: number; keepWeights?: 'best' | 'last' };
  readonly maxSeqLen: number;
}

export interface SamplesManifest {
  readonly starterModel: { dir: string; name: string; architecture: string };
  readonly datasets: readonly SampleEntry[];
  readonly guidedFineTune: GuidedFineTune;
}

export interface StarterRegistration {
  /** False when the library was not empty or the resources were registered before. */
  readonly registered: boolean;
  readonly modelId: string | null;
  /** Dataset ids by sample file name. */
  readonly datasetIds: Readonly<Record<string, string>>;
  /** The guided first fine-tune: model and dataset ids plus the settings from samples.json. */
  readonly guided: (GuidedFineTune & { modelId: string; datasetId: string }) | null;
}

export function readSamplesManifest(resourcesDir: string): SamplesManifest {
  const path = join(resourcesDir, 'samples', 'samples.json');
  if (!existsSync(path)) throw new StoreError('FILE_MISSING', `${path} is missing: the app's resources folder is incomplete`);
  return JSON.parse(readFileSync(path, 'utf8')) as SamplesManifest;
}

/**
 * Registers the starter model and samples when the library has no models and no datasets and never had them,
 * through the same imports a user's files go through (the file worker copies, reads and normalises them).
 */
export async function registerStarterResources(library: Library, files: FileWork, resourcesDir: string): Promise<StarterRegistration> {
  const none: StarterRegistration = { registered: false, modelId: null, datasetIds: {}, guided: null };
  if (library.settings.get(STARTER_REGISTERED_KEY) === true) return none;
  if (library.models.list().length > 0 || library.datasets.list().length > 0) return none;
  const manifest = readSamplesManifest(resourcesDir);
  const model = await importModel(library, files, {
    path: join(resourcesDir, manifest.starterModel.dir), mode: 'copy', name: manifest.starterModel.name,
    source: { kind: 'starter', ref: manifest.starterModel.dir },
  });
  const datasetIds: Record<string, string> = {};
  for (const sample of manifest.datasets) {
    const dataset = await importDataset(library, files, { path: join(resourcesDir, 'samples', sample.file), format: sample.format, name: sample.name });
    datasetIds[sample.file] = dataset.id;
  }
  library.settings.set(STARTER_REGISTERED_KEY, true);
  const guidedId = datasetIds[manifest.guidedFineTune.dataset];
  return {
    registered: true,
    modelId: model.id,
    datasetIds,
    guided: guidedId ? { ...manifest.guidedFineTune, modelId: model.id, datasetId: guidedId } : null,
  };
}
