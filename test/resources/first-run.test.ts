import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileWork } from '../../main/services/file-work/client';
import { openLibrary, type Library } from '../../main/store/index';
import { readSamplesManifest, registerStarterResources, STARTER_REGISTERED_KEY } from '../../main/services/starter-resources';
import { loadDataset } from '../../main/engine/train/datasets/dataset';

const resourcesDir = join(import.meta.dirname, '../../resources');

describe('first run: starter model and samples', () => {
  let dir: string;
  let library: Library;
  const files = new FileWork();
  afterAll(() => files.close());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lorasmith-first-run-'));
    library = openLibrary(join(dir, 'data'));
  });
  afterEach(() => {
    library.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('every sample in samples.json exists, parses in the engine with its declared format and has records', () => {
    const manifest = readSamplesManifest(resourcesDir);
    for (const sample of manifest.datasets) {
      const loaded = loadDataset({ path: join(resourcesDir, 'samples', sample.file), format: sample.format, valSplit: 0 });
      expect(loaded.train.length, sample.file).toBeGreaterThanOrEqual(50);
      expect(loaded.files.flatMap((r) => r.issues), sample.file).toEqual([]);
    }
  });

  it('registers the starter model and every sample into an empty library, once', async () => {
    const result = await registerStarterResources(library, files, resourcesDir);
    expect(result.registered).toBe(true);
    const [model] = library.models.list();
    expect(model?.source).toEqual({ kind: 'starter', ref: 'starter' });
    expect(model?.architecture).toBe('llama');
    const training = JSON.parse(readFileSync(join(resourcesDir, 'starter', 'training.json'), 'utf8')) as { parameters: number };
    expect(model?.parameterCount).toBe(training.parameters);
    expect(existsSync(join(library.models.resolvePath(model?.id as string), 'model.safetensors'))).toBe(true);
    expect(library.datasets.list().map((d) => d.format).sort()).toEqual(['messages', 'messages', 'prompt-completion', 'text']);
    expect(result.guided?.modelId).toBe(model?.id);
    expect(result.guided?.datasetId).toBe(result.datasetIds['verily-chat.jsonl']);
    expect(library.settings.get(STARTER_REGISTERED_KEY)).toBe(true);

    // Deleting them later does not bring them back.
    library.models.delete(model?.id as string);
    expect((await registerStarterResources(library, files, resourcesDir)).registered).toBe(false);
    expect(library.models.list()).toHaveLength(0);
  });
});
