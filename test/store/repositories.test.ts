import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openLibrary, type Library } from '../../main/store/library';
import type { ModelDetails } from '../../main/store/types';
import { peftBytes, settings, tempDir, writeModelFolder, writePeftFolder } from './support/fixtures';

/** The folder hash as documented in hash.ts, computed here independently from a hand-listed set of files. */
function expectedFolderHash(dir: string, names: string[]): string {
  const hash = createHash('sha256');
  for (const name of [...names].sort()) {
    const bytes = readFileSync(join(dir, name));
    hash.update(`${name}\0${bytes.length}\0`);
    hash.update(bytes);
  }
  return `sha256:${hash.digest('hex')}`;
}

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('library repositories', () => {
  let tmp: ReturnType<typeof tempDir>;
  let lib: Library;
  let model: ModelDetails;
  let work: string;
  beforeEach(() => {
    tmp = tempDir();
    work = join(tmp.path, 'work');
    lib = openLibrary(join(tmp.path, 'data'));
    model = lib.models.import({
      sourcePath: writeModelFolder(join(work, 'gpt2-tiny')), mode: 'copy', architecture: 'gpt2',
      parameterCount: 80, source: { kind: 'hub', ref: 'sshleifer/tiny-gpt2', revision: 'abc123' },
    });
  });
  afterEach(() => {
    lib.close();
    tmp.dispose();
  });

  function importDataset(name = 'faq.jsonl') {
    const file = join(work, name);
    writeFileSync(file, '{"instruction":"hi","output":"hello"}\n{"instruction":"bye","output":"ciao"}\n');
    const normalized = join(work, `${name}.normalized`);
    writeFileSync(normalized, '{"prompt":"hi","completion":"hello"}\n{"prompt":"bye","completion":"ciao"}\n');
    return lib.datasets.import({
      sourcePath: file, format: 'alpaca',
      normalized: { path: normalized, recordCount: 2, skippedCount: 0 },
    });
  }

  function trainVersion(adapterId: string, datasetId: string, seed: number, parentVersionId?: string) {
    const run = lib.runs.create({ adapterId, datasetId, settings: settings({ seed }), parentVersionId });
    lib.runs.start(run.id, 30);
    lib.metrics.append(run.id, [0, 10, 20, 30].map((step) => ({ step, loss: 3 - step / 20, lr: 1e-3 })));
    lib.metrics.append(run.id, [{ step: 30, valLoss: 1.9 }]);
    const out = writePeftFolder(join(work, `out-${seed}`), seed);
    const version = lib.versions.commit({
      adapterId, filesFrom: out, take: 'move', origin: 'trained', parentVersionId, datasetId,
      settings: settings({ seed }), metrics: { trainLoss: 1.5, valLoss: 1.9, steps: 30 }, runId: run.id,
    });
    lib.runs.finish(run.id, 'done');
    return { run: lib.runs.get(run.id), version };
  }

  it('models: a copy lands in models/<id>/ with the hash of its files; a reference stays where it is', () => {
    expect(model.path).toBe(join(lib.dataDir.root, 'models', model.id));
    expect(readdirSync(model.path).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
    expect(model.contentHash).toBe(
      expectedFolderHash(join(work, 'gpt2-tiny'), ['config.json', 'model.safetensors', 'tokenizer.json']));
    expect(model.source).toEqual({ kind: 'hub', ref: 'sshleifer/tiny-gpt2', revision: 'abc123' });
    expect(lib.models.list().map((m) => m.id)).toEqual([model.id]);
    expect(lib.models.get(model.id)).toEqual(model);

    const ref = lib.models.import({
      sourcePath: join(work, 'gpt2-tiny'), mode: 'reference', architecture: 'gpt2', parameterCount: 80,
      name: 'kept in place',
    });
    expect(ref.path).toBe(join(work, 'gpt2-tiny'));
    expect(ref.contentHash).toBe(model.contentHash);
    expect(ref.source.kind).toBe('folder');
    lib.models.delete(ref.id);
    expect(existsSync(join(work, 'gpt2-tiny', 'config.json'))).toBe(true);
    lib.models.delete(model.id);
    expect(existsSync(model.path)).toBe(false);
    expect(lib.models.list()).toEqual([]);
  });

  it("models: 'move' takes a staged download in without a second copy and stores it as a copy", () => {
    const staged = writeModelFolder(join(work, 'download-staging'));
    const moved = lib.models.import({ sourcePath: staged, mode: 'move', architecture: 'gpt2', parameterCount: 80,
      source: { kind: 'hub', ref: 'org/model', revision: 'main' } });
    expect(existsSync(staged)).toBe(false);
    expect(moved).toMatchObject({ storage: 'copy', contentHash: model.contentHash,
      path: join(lib.dataDir.root, 'models', moved.id) });
  });

  it('models: a folder without config.json is refused and leaves nothing behind', () => {
    mkdirSync(join(work, 'empty'), { recursive: true });
    expect(errorCode(() => lib.models.import({
      sourcePath: join(work, 'empty'), mode: 'copy', architecture: 'gpt2', parameterCount: 1,
    }))).toBe('INVALID_INPUT');
    expect(readdirSync(join(lib.dataDir.root, 'models'))).toEqual([model.id]);
  });

  it('models: a GGUF file is referenced where it lies, with its origin and the content hash its caller read; never deleted', () => {
    const file = join(work, 'blobs', 'sha256-abc');
    mkdirSync(join(work, 'blobs'), { recursive: true });
    writeFileSync(file, Buffer.from('GGUF and then some weights'));
    const digest = `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`;
    const gguf = { architecture: 'qwen2', parameterCount: 494, origin: 'ollama' as const, originName: 'qwen2.5:0.5b', quantization: 'Q4_K_M', contentHash: digest };
    expect(errorCode(() => lib.models.importGguf({ ...gguf, path: 'blobs/sha256-abc' }))).toBe('INVALID_INPUT');
    expect(errorCode(() => lib.models.importGguf({ ...gguf, path: join(work, 'missing.gguf') }))).toBe('FILE_MISSING');
    expect(errorCode(() => lib.models.importGguf({ ...gguf, path: work }))).toBe('FILE_MISSING');
    const added = lib.models.importGguf({ ...gguf, path: file });
    expect(added).toMatchObject({
      name: 'qwen2.5:0.5b', architecture: 'qwen2', path: file, storage: 'reference', files: [],
      contentHash: digest,
      gguf: { origin: 'ollama', name: 'qwen2.5:0.5b', quantization: 'Q4_K_M', fileBytes: 26 },
    });
    expect(lib.models.list().find((m) => m.id === added.id)).toEqual(added);
    expect(lib.models.resolvePath(added.id)).toBe(file);
    expect(errorCode(() => lib.models.importGguf({ ...gguf, path: file }))).toBe('ALREADY_EXISTS');
    lib.models.delete(added.id);
    expect(existsSync(file)).toBe(true);
    const again = lib.models.importGguf({ ...gguf, path: file, name: 'mine', contentHash: 'sha256:given' });
    expect([again.name, again.contentHash]).toEqual(['mine', 'sha256:given']);
  });

  it('datasets: the original is copied, the normalized file moved in, the hash is of the original bytes', () => {
    const ds = importDataset();
    const original = readFileSync(join(work, 'faq.jsonl'));
    expect(ds.hash).toBe(`sha256:${createHash('sha256').update(original).digest('hex')}`);
    expect(readFileSync(ds.originalFile)).toEqual(original);
    expect(ds.normalizedFile).toBe(join(lib.dataDir.root, 'datasets', ds.id, 'normalized.jsonl'));
    expect(existsSync(join(work, 'faq.jsonl.normalized'))).toBe(false);
    expect(ds).toMatchObject({ recordCount: 2, skippedCount: 0, format: 'alpaca', status: 'ok', name: 'faq' });

    const again = join(work, 'renorm.jsonl');
    writeFileSync(again, '{"prompt":"hi","completion":"hello"}\n');
    const updated = lib.datasets.attachNormalized(ds.id, {
      path: again, recordCount: 1, skippedCount: 1, format: 'prompt-completion',
      tokenStats: { total: 12, min: 12, max: 12, mean: 12, tokenizerHash: model.contentHash },
    });
    expect(readFileSync(updated.normalizedFile, 'utf8')).toBe('{"prompt":"hi","completion":"hello"}\n');
    expect(updated).toMatchObject({ recordCount: 1, skippedCount: 1, format: 'prompt-completion' });
    expect(updated.tokenStats).toEqual({ total: 12, min: 12, max: 12, mean: 12, tokenizerHash: model.contentHash });
    expect(errorCode(() => lib.datasets.import({ sourcePath: join(work, 'faq.jsonl'), format: 'csv' as 'text' })))
      .toBe('INVALID_INPUT');
  });

  it('versions: files first, then the row; numbers rise; lineage records base and dataset hashes', () => {
    const ds = importDataset();
    const adapter = lib.adapters.create({ name: 'support-bot', baseModelId: model.id });
    const first = trainVersion(adapter.id, ds.id, 1);
    expect(first.version.version).toBe(1);
    expect(first.version.path).toBe(join(lib.dataDir.root, 'adapters', adapter.id, 'v1'));
    expect(readFileSync(join(first.version.path, 'adapter_model.safetensors'))).toEqual(peftBytes(1));
    expect(first.version).toMatchObject({
      baseModelHash: model.contentHash, datasetHash: ds.hash, origin: 'trained', parentVersionId: null,
      metrics: { trainLoss: 1.5, valLoss: 1.9, steps: 30 }, settings: settings({ seed: 1 }),
    });
    expect(first.run).toMatchObject({ status: 'done', adapterVersionId: first.version.id, step: 30, totalSteps: 30 });

    const continued = trainVersion(adapter.id, ds.id, 2, first.version.id);
    expect(continued.version).toMatchObject({ version: 2, parentVersionId: first.version.id,
      parentLabel: 'support-bot v1' });
    const branch = trainVersion(adapter.id, ds.id, 3, first.version.id);
    const grandchild = trainVersion(adapter.id, ds.id, 4, continued.version.id);

    expect(lib.lineage.chain(grandchild.version.id).map((n) => n.version.version)).toEqual([1, 2, 4]);
    const tree = lib.lineage.tree(grandchild.version.id);
    expect(tree.version.id).toBe(first.version.id);
    expect(tree.children.map((c) => c.version.version)).toEqual([2, 3]);
    expect(tree.children[0]?.children.map((c) => c.version.version)).toEqual([4]);
    expect(tree.datasetName).toBe('faq');
    expect(branch.version.version).toBe(3);

    const curves = lib.lineage.curves(grandchild.version.id);
    expect(curves.map((c) => [c.label, c.stepOffset])).toEqual([
      ['support-bot v1', 0], ['support-bot v2', 30], ['support-bot v4', 60]]);
    expect(curves[0]?.points).toEqual([
      { step: 0, loss: 3, lr: 1e-3 }, { step: 10, loss: 2.5, lr: 1e-3 }, { step: 20, loss: 2, lr: 1e-3 },
      { step: 30, loss: 1.5, lr: 1e-3, valLoss: 1.9 }]);

    expect(lib.versions.continuePlan(continued.version.id)).toEqual({
      adapterId: adapter.id, adapterName: 'support-bot', baseModelId: model.id, datasetId: ds.id,
      parentVersionId: continued.version.id, settings: settings({ seed: 2 }),
    });
    expect(lib.versions.duplicatePlan(continued.version.id).parentVersionId).toBe(first.version.id);
    expect(lib.versions.sameRecipe(first.version.id)).toEqual([]);
  });

  it('versions: the same recipe is found; deleting removes files and runs, children keep their parent label', () => {
    const ds = importDataset();
    const adapter = lib.adapters.create({ name: 'bot', baseModelId: model.id });
    const a = lib.versions.commit({ adapterId: adapter.id, filesFrom: writePeftFolder(join(work, 'a'), 5),
      take: 'copy', origin: 'imported', datasetId: ds.id, settings: settings() });
    const b = lib.versions.commit({ adapterId: adapter.id, filesFrom: writePeftFolder(join(work, 'b'), 6),
      take: 'copy', origin: 'imported', datasetId: ds.id, settings: settings() });
    expect(existsSync(join(work, 'a', 'adapter_config.json'))).toBe(true);
    expect(lib.versions.sameRecipe(a.id).map((v) => v.id)).toEqual([b.id]);

    const child = trainVersion(adapter.id, ds.id, 7, a.id);
    const runDir = lib.runs.checkpointsDir(child.run.id);
    writeFileSync(join(runDir, 'step-30.bin'), 'ckpt');
    expect(errorCode(() => lib.datasets.delete(ds.id))).toBe('IN_USE');
    expect(errorCode(() => lib.models.delete(model.id))).toBe('IN_USE');

    lib.versions.delete(a.id);
    expect(existsSync(a.path)).toBe(false);
    expect(lib.versions.find(a.id)).toBeNull();
    expect(lib.versions.get(child.version.id)).toMatchObject({ parentVersionId: null, parentLabel: 'bot v1' });
    lib.versions.delete(child.version.id);
    expect(lib.runs.find(child.run.id)).toBeNull();
    expect(existsSync(join(lib.dataDir.root, 'runs', child.run.id))).toBe(false);
    expect(lib.metrics.list(child.run.id)).toEqual([]);

    const exported = lib.versions.exportTo(b.id, join(work, 'export', 'bot-v2'));
    expect(readFileSync(join(exported, 'adapter_model.safetensors'))).toEqual(peftBytes(6));
    expect(errorCode(() => lib.versions.exportTo(b.id, exported))).toBe('ALREADY_EXISTS');

    lib.adapters.delete(adapter.id);
    expect(existsSync(join(lib.dataDir.root, 'adapters', adapter.id))).toBe(false);
    lib.datasets.delete(ds.id);
    expect(existsSync(join(lib.dataDir.root, 'datasets', ds.id))).toBe(false);
  });

  it('versions: a folder without the PEFT files is refused; the next number skips an orphan folder', () => {
    const adapter = lib.adapters.create({ name: 'x', baseModelId: model.id });
    mkdirSync(join(work, 'half'), { recursive: true });
    writeFileSync(join(work, 'half', 'adapter_config.json'), '{}');
    expect(errorCode(() => lib.versions.commit({ adapterId: adapter.id, filesFrom: join(work, 'half'),
      take: 'copy', origin: 'imported' }))).toBe('INVALID_INPUT');
    mkdirSync(join(lib.dataDir.root, 'adapters', adapter.id, 'v1'), { recursive: true });
    const v = lib.versions.commit({ adapterId: adapter.id, filesFrom: writePeftFolder(join(work, 'p'), 1),
      take: 'move', origin: 'imported' });
    expect(v.version).toBe(2);
    expect(lib.startupCheck().orphanFolders).toEqual([`adapters/${adapter.id}/v1`]);
  });

  it('adapters: names are unique; runs follow their state machine', () => {
    const ds = importDataset();
    const adapter = lib.adapters.create({ name: 'bot', baseModelId: model.id });
    expect(errorCode(() => lib.adapters.create({ name: ' bot ', baseModelId: model.id }))).toBe('ALREADY_EXISTS');
    expect(errorCode(() => lib.adapters.create({ name: 'y', baseModelId: 'mdl_nope' }))).toBe('NOT_FOUND');
    const run = lib.runs.create({ adapterId: adapter.id, datasetId: ds.id, settings: settings() });
    expect(run).toMatchObject({ status: 'queued', baseModelId: model.id, startedAt: null, step: 0 });
    expect(errorCode(() => lib.runs.finish(run.id, 'failed'))).toBe('INVALID_STATE');
    lib.runs.start(run.id);
    expect(errorCode(() => lib.runs.finish(run.id, 'done'))).toBe('INVALID_STATE');
    expect(errorCode(() => lib.adapters.delete(adapter.id))).toBe('IN_USE');
    const failed = lib.runs.finish(run.id, 'failed', 'out of memory at step 3');
    expect(failed).toMatchObject({ status: 'failed', error: 'out of memory at step 3' });
    expect(failed.finishedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(errorCode(() => lib.runs.start(run.id))).toBe('INVALID_STATE');
    expect(lib.runs.list({ adapterId: adapter.id, status: 'failed' }).map((r) => r.id)).toEqual([run.id]);
  });

  it('metrics: batches merge per step, downsample keeps val points and the last, summary reads the series', () => {
    const ds = importDataset();
    const adapter = lib.adapters.create({ name: 'm', baseModelId: model.id });
    const run = lib.runs.create({ adapterId: adapter.id, datasetId: ds.id, settings: settings() });
    lib.runs.start(run.id);
    const points = Array.from({ length: 1000 }, (_, step) => ({ step, loss: 4 / (1 + step), lr: 1e-3,
      tokensPerSecond: 500, gradNorm: 0.5, epoch: step / 1000 }));
    lib.metrics.append(run.id, points);
    lib.metrics.append(run.id, [{ step: 333, valLoss: 0.25 }, { step: 999, valLoss: 0.5 }]);
    const all = lib.metrics.list(run.id);
    expect(all).toHaveLength(1000);
    expect(all[333]).toEqual({ ...points[333], valLoss: 0.25 });
    const light = lib.metrics.list(run.id, { maxPoints: 100 });
    expect(light.length).toBeLessThanOrEqual(102);
    expect(light.map((p) => p.step)).toEqual(expect.arrayContaining([0, 10, 333, 999]));
    expect(lib.metrics.list(run.id, { fromStep: 995 }).map((p) => p.step)).toEqual([995, 996, 997, 998, 999]);
    expect(lib.metrics.summary(run.id)).toEqual({ steps: 999, trainLoss: 4 / 1000, valLoss: 0.5, bestValLoss: 0.25 });
    expect(lib.runs.get(run.id).step).toBe(999);
    expect(errorCode(() => lib.metrics.append(run.id, [{ step: 1000, loss: Number.NaN }]))).toBe('INVALID_INPUT');
    expect(errorCode(() => lib.metrics.append('run_nope', [{ step: 1 }]))).toBe('NOT_FOUND');
  });

  it('comparisons and settings round-trip', () => {
    const saved = lib.comparisons.save({
      title: 'greeting', baseModelId: model.id,
      messages: [{ role: 'user', content: 'Say hi' }],
      sampling: { maxNewTokens: 16, temperature: 0.7, topK: 40, topP: 0.9, repetitionPenalty: 1.1, seed: 1 },
      outputs: [
        { label: 'base', mix: { adapters: [] }, text: 'Hi.', tokens: 2, tokensPerSecond: 30 },
        { label: 'bot v1', mix: { adapters: [{ versionId: 'ver_x', scale: 1 }] }, text: 'Hello!', tokens: 3,
          tokensPerSecond: null },
      ],
    });
    expect(lib.comparisons.list()).toEqual([saved]);
    expect(saved.outputs[1]?.mix.adapters[0]).toEqual({ versionId: 'ver_x', scale: 1 });
    lib.comparisons.delete(saved.id);
    expect(lib.comparisons.list()).toEqual([]);

    lib.settings.set('theme', 'dark');
    lib.settings.setMany({ backend: 'wasm', defaults: { rank: 8, lora: { alpha: 16 } } });
    expect(lib.settings.all()).toEqual({ backend: 'wasm', defaults: { lora: { alpha: 16 }, rank: 8 }, theme: 'dark' });
    expect(lib.settings.get('missing')).toBeUndefined();
    expect(lib.settings.delete('theme')).toBe(true);
  });
});
