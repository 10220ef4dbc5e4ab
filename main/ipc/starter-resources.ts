/**
 * First run: registers the starter model and the sample datasets that ship in resources/ into an empty
 * library, once. resources/samples/samples.json lists them, with the guided first fine-tune's defaults.
 *
 *   const result = registerStarterResources(library, join(app.getAppPath(), 'resources'));
 *   if (result.registered) ...offer result.guided (model id, dataset id, LoRA and training settings)
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StoreError, type Library } from '../store/index';
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
  readonly hyperparameters: { maxSteps: number; batchSize: number; learningRate: number; scheduler: string; seed: number };
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

function starterParameterCount(modelDir: string): number {
  const path = join(modelDir, 'training.json');
  if (!existsSync(path)) throw new StoreError('FILE_MISSING', `${path} is missing: rebuild it with npm run train:starter`);
  const parameters = (JSON.parse(readFileSync(path, 'utf8')) as { parameters?: unknown }).parameters;
  if (typeof parameters !== 'number') throw new StoreError('INVALID_INPUT', `${path}: "parameters" must be a number`);
  return parameters;
}

/** Registers the starter model and samples when the library has no models and no datasets and never had them. */
export function registerStarterResources(library: Library, resourcesDir: string): StarterRegistration {
  const none: StarterRegistration = { registered: false, modelId: null, datasetIds: {}, guided: null };
  if (library.settings.get(STARTER_REGISTERED_KEY) === true) return none;
  if (library.models.list().length > 0 || library.datasets.list().length > 0) return none;
  const manifest = readSamplesManifest(resourcesDir);
  const modelDir = join(resourcesDir, manifest.starterModel.dir);
  const model = library.models.import({
    sourcePath: modelDir,
    mode: 'copy',
    name: manifest.starterModel.name,
    architecture: manifest.starterModel.architecture,
    parameterCount: starterParameterCount(modelDir),
    source: { kind: 'starter', ref: manifest.starterModel.dir },
  });
  const datasetIds: Record<string, string> = {};
  for (const sample of manifest.datasets) {
    const dataset = library.datasets.import({
      sourcePath: join(resourcesDir, 'samples', sample.file), format: sample.format, name: sample.name,
    });
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
