/**
 * The first run, main side: opening a library registers the starter resources (once, on an empty library) and
 * gives the samples their normalized records; `app.firstRun` then tells the UI which samples are there and, while
 * no training has run yet, the guided first fine-tune with its settings from resources/samples/samples.json.
 *
 *   resourcesDir: <repo>/resources in development, process.resourcesPath in a packaged app (electron-builder
 *   copies resources/starter and resources/samples there as starter/ and samples/).
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { FirstRun, FirstRunSample, TrainingSettings } from '../../preload/contract';
import type { Library } from '../store/index';
import type { FileWork } from './file-work/client';
import { readSamplesManifest, registerStarterResources, type GuidedFineTune, type StarterRegistration } from './starter-resources';

/** True where the resources folder ships the samples manifest (a packaged app, or the repository). */
export function hasStarterResources(resourcesDir: string): boolean {
  return existsSync(join(resourcesDir, 'samples', 'samples.json'));
}

/**
 * Registers the starter model and samples into an empty library (once; see registerStarterResources), with
 * their normalized records. Returns null where the app ships no resources.
 */
export async function openStarterResources(library: Library, files: FileWork, resourcesDir: string): Promise<StarterRegistration | null> {
  if (!hasStarterResources(resourcesDir)) return null;
  return registerStarterResources(library, files, resourcesDir);
}

/** samples.json's short settings, completed into the contract's TrainingSettings. */
export function guidedSettings(g: GuidedFineTune): TrainingSettings {
  const h = g.hyperparameters;
  const scheduler = h.scheduler === 'linear' || h.scheduler === 'cosine' ? h.scheduler : 'constant';
  return {
    lora: { targetModules: g.lora.targetModules.split(',').map((t) => t.trim()).filter(Boolean), rank: g.lora.rank, alpha: g.lora.alpha, dropout: g.lora.dropout, useRslora: false },
    maxSteps: h.maxSteps,
    learningRate: h.learningRate,
    batchSize: h.batchSize,
    gradAccum: 1,
    maxSeqLen: g.maxSeqLen,
    valSplit: 0.1,
    seed: h.seed,
    scheduler,
    warmupSteps: 0,
    weightDecay: 0,
    maxGradNorm: 1,
    // A validation point every quarter of the run draws the curve without slowing a short run down.
    evalEvery: Math.max(1, Math.round(h.maxSteps / 4)),
    checkpointEvery: Math.max(1, Math.round(h.maxSteps / 2)),
    trainOnPrompt: false,
    ...(h.keepWeights !== undefined ? { keepWeights: h.keepWeights } : {}),
  };
}

const NONE: FirstRun = { guided: null, samples: [] };

/** What `app.firstRun` answers: the samples still in the library, and the guided fine-tune while nothing has trained. */
export function firstRunInfo(library: Library, resourcesDir: string | undefined): FirstRun {
  if (!resourcesDir || !hasStarterResources(resourcesDir)) return NONE;
  const manifest = readSamplesManifest(resourcesDir);
  const byFile = new Map(library.datasets.list().filter((d) => d.status === 'ok').map((d) => [basename(d.originalFile), d]));
  const samples: FirstRunSample[] = manifest.datasets.flatMap((s) => {
    const dataset = byFile.get(s.file);
    return dataset ? [{ datasetId: dataset.id, name: dataset.name, format: s.format, behaviour: s.behaviour, tryPrompt: s.tryPrompt }] : [];
  });
  const starter = library.models.list().find((m) => m.source.kind === 'starter' && m.status === 'ok');
  const guidedDataset = byFile.get(manifest.guidedFineTune.dataset);
  const untrained = library.runs.list().length === 0;
  const guided = starter && guidedDataset && untrained
    ? { modelId: starter.id, modelName: starter.name, datasetId: guidedDataset.id, settings: guidedSettings(manifest.guidedFineTune) }
    : null;
  return { guided, samples };
}
