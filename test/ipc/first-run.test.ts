/**
 * The first run, main side: opening an empty library registers the starter model and the samples with their
 * records normalized; `app.firstRun` offers the guided fine-tune (settings that train.start accepts) until a run
 * exists, and lists the samples still in the library.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstRunInfo, openStarterResources } from '../../main/services/first-run';
import { SCHEMAS } from '../../main/ipc/schemas';
import { readSamplesManifest } from '../../main/services/starter-resources';
import { FileWork } from '../../main/services/file-work/client';
import { openLibrary, type Library } from '../../main/store/index';

const resourcesDir = join(import.meta.dirname, '../../resources');
const manifest = readSamplesManifest(resourcesDir);

/** Records counted straight from the files: JSONL lines, or blank-line separated passages of raw text. */
function recordsIn(file: string): number {
  const text = readFileSync(join(resourcesDir, 'samples', file), 'utf8');
  if (file.endsWith('.jsonl')) return text.split('\n').filter((l) => l.trim() !== '').length;
  return text.split(/\n\s*\n/).filter((p) => p.trim() !== '').length;
}

describe('first run: registering and offering the starter resources', () => {
  let dir: string;
  let library: Library;
  const files = new FileWork();
  afterAll(() => files.close());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lorasmith-first-run-ipc-'));
    library = openLibrary(join(dir, 'data'));
  });
  afterEach(() => {
    library.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers the samples with their record counts and a normalized file of that many lines', async () => {
    const result = await openStarterResources(library, files, resourcesDir);
    expect(result?.registered).toBe(true);
    expect(Object.keys(result?.datasetIds ?? {}).sort()).toEqual(manifest.datasets.map((d) => d.file).sort());
    for (const sample of manifest.datasets) {
      const dataset = library.datasets.list().find((d) => d.id === result?.datasetIds[sample.file]);
      expect(dataset?.recordCount, sample.file).toBe(recordsIn(sample.file));
      expect(dataset?.skippedCount, sample.file).toBe(0);
      // A header line with the normalisation's report, then one record per line.
      const normalized = readFileSync(dataset?.normalizedFile as string, 'utf8').trim().split('\n');
      expect(normalized.length, sample.file).toBe((dataset?.recordCount ?? 0) + 1);
      expect(JSON.parse(normalized[0] as string)).toMatchObject({ report: { format: sample.format, valid: dataset?.recordCount, contentHash: dataset?.hash } });
    }
    // Opening the library again registers nothing more.
    expect((await openStarterResources(library, files, resourcesDir))?.registered).toBe(false);
    expect(library.models.list()).toHaveLength(1);
  });

  it('offers the guided fine-tune with settings train.start accepts, until a run exists', async () => {
    await openStarterResources(library, files, resourcesDir);
    const info = firstRunInfo(library, resourcesDir);
    const [model] = library.models.list();
    expect(info.guided?.modelId).toBe(model?.id);
    expect(info.guided?.modelName).toBe(manifest.starterModel.name);
    const guidedSample = info.samples.find((s) => s.datasetId === info.guided?.datasetId);
    expect(guidedSample?.name).toBe(manifest.datasets.find((d) => d.file === manifest.guidedFineTune.dataset)?.name);
    expect(info.samples.map((s) => s.tryPrompt)).toEqual(manifest.datasets.map((d) => d.tryPrompt));

    const g = manifest.guidedFineTune;
    const settings = info.guided?.settings;
    expect(settings?.lora).toEqual({ targetModules: [g.lora.targetModules], rank: g.lora.rank, alpha: g.lora.alpha, dropout: g.lora.dropout, useRslora: false });
    expect([settings?.maxSteps, settings?.batchSize, settings?.learningRate, settings?.seed, settings?.maxSeqLen, settings?.keepWeights])
      .toEqual([g.hyperparameters.maxSteps, g.hyperparameters.batchSize, g.hyperparameters.learningRate, g.hyperparameters.seed, g.maxSeqLen, g.hyperparameters.keepWeights]);
    const args = { modelId: info.guided?.modelId, datasetId: info.guided?.datasetId, settings, adapterName: 'first' };
    expect(SCHEMAS['train.start'].safeParse(args).success).toBe(true);
    expect(SCHEMAS['app.firstRun'].safeParse({ extra: 1 }).success).toBe(false);

    const adapter = library.adapters.create({ name: 'first', baseModelId: model?.id as string });
    library.runs.create({ adapterId: adapter.id, datasetId: info.guided?.datasetId as string, settings: settings! });
    const after = firstRunInfo(library, resourcesDir);
    expect(after.guided).toBeNull();
    expect(after.samples).toHaveLength(manifest.datasets.length);
  });

  it('lists only the samples still in the library; no guided offer without the starter model or resources', async () => {
    const result = await openStarterResources(library, files, resourcesDir);
    const guidedId = result?.datasetIds[manifest.guidedFineTune.dataset] as string;
    library.datasets.delete(guidedId);
    const info = firstRunInfo(library, resourcesDir);
    expect(info.guided).toBeNull();
    expect(info.samples.map((s) => s.datasetId)).not.toContain(guidedId);
    expect(info.samples).toHaveLength(manifest.datasets.length - 1);

    library.models.delete(result?.modelId as string);
    expect(firstRunInfo(library, resourcesDir).guided).toBeNull();
    expect(firstRunInfo(library, undefined)).toEqual({ guided: null, samples: [] });
    expect(await openStarterResources(library, files, join(dir, 'no-resources'))).toBeNull();
  });
});
