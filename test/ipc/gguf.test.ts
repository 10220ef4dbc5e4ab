/**
 * The whole GGUF loop through the command handlers, a real library and a real engine host (worker thread): a
 * model found in a (test) Ollama library is added where it lies, fine-tuned, chatted with, and exported back as a
 * GGUF LoRA whose Modelfile names it in Ollama; llama.cpp runs the Ollama blob with that adapter to our engine's
 * logits. Bad paths and unusable files are refused by name.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Api, TrainingSettings } from '../../preload/contract';
import { exportGgufModel } from '../../main/engine/adapters/gguf-model-export';
import { ResidentAdapters } from '../../main/engine/adapters/resident';
import { kv, writeGguf } from '../../main/engine/io/gguf-write';
import { loadModel } from '../../main/engine/models/registry';
import { handlersUnderTest, type HandlersUnderTest } from '../support/handlers';
import { STARTER, confidentDisagreements, maxDiff, ourLogProbs } from '../engine/gguf/helpers';
import { useCpu } from '../engine/lora/setup';
import { llamaCppLogProbs } from '../support/llama-cpp';

const TOKENS = [1, 872, 198, 40, 1000, 2, 198, 1, 64, 1103];
let dir = '';
let ollama = '';
let blob = '';
let digest = '';
let main: HandlersUnderTest;
let api: Api;

const settings: TrainingSettings = {
  lora: { targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], rank: 4, alpha: 8, dropout: 0, useRslora: false },
  maxSteps: 2, learningRate: 5e-2, batchSize: 2, gradAccum: 1, maxSeqLen: 48, valSplit: 0, seed: 1,
  scheduler: 'constant', warmupSteps: 0, weightDecay: 0, maxGradNorm: 1, evalEvery: 0, checkpointEvery: 0, trainOnPrompt: false,
};

beforeAll(async () => {
  await useCpu();
  dir = mkdtempSync(join(tmpdir(), 'lorasmith-ipc-gguf-'));
  // An Ollama library holding the starter model as an F16 GGUF blob, named starter:latest.
  ollama = join(dir, 'ollama');
  mkdirSync(join(ollama, 'blobs'), { recursive: true });
  const model = await loadModel(STARTER);
  const staged = join(dir, 'starter.gguf');
  await exportGgufModel(model, STARTER, staged, { type: 'F16', name: 'starter' }).finally(() => model.dispose());
  digest = createHash('sha256').update(readFileSync(staged)).digest('hex');
  blob = join(ollama, 'blobs', `sha256-${digest}`);
  renameSync(staged, blob);
  const manifest = join(ollama, 'manifests/registry.ollama.ai/library/starter/latest');
  mkdirSync(join(manifest, '..'), { recursive: true });
  writeFileSync(manifest, JSON.stringify({ schemaVersion: 2, layers: [{ mediaType: 'application/vnd.ollama.image.model', digest: `sha256:${digest}` }] }));
  // An LM Studio folder holding a model of an architecture this engine does not run.
  const lmstudio = join(dir, 'lmstudio');
  mkdirSync(join(lmstudio, 'tii/falcon'), { recursive: true });
  await writeGguf(join(lmstudio, 'tii/falcon/falcon-7b-Q8_0.gguf'), [kv.string('general.architecture', 'falcon')], [
    { name: 'token_embd.weight', shape: [4, 32], type: 'Q8_0', data: () => new Float32Array(128) },
  ]);

  main = handlersUnderTest({ dir, context: { ggufFolders: { ollama: [ollama], lmstudio: [lmstudio] } } });
  ({ api } = main);
  const rows = Array.from({ length: 8 }, (_, i) => JSON.stringify({ messages: [{ role: 'user', content: `Say ${i}` }, { role: 'assistant', content: `Arr ${i}!` }] }));
  writeFileSync(join(dir, 'pirate.jsonl'), rows.join('\n') + '\n');
});

afterAll(async () => {
  await main.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('GGUF through the app: find, add, fine-tune, export back', () => {
  it('finds the Ollama model by name and says why the other cannot be used', async () => {
    const { found, searched } = await api.invoke('models.findGguf', {});
    expect(searched).toEqual([ollama, join(dir, 'lmstudio')]);
    expect(found.map((f) => [f.origin, f.name, f.architecture, f.quantization, f.problem === null])).toEqual([
      ['ollama', 'starter:latest', 'llama', 'F16', true],
      ['lmstudio', 'tii/falcon/falcon-7b-Q8_0.gguf', 'falcon', 'Q8_0', false],
    ]);
    expect(found[1]?.problem).toMatch(/architecture 'falcon' is not supported/);
    expect(found[0]).toMatchObject({ path: blob, bytes: statSync(blob).size, hasChatTemplate: true, modelId: null });
  });

  it('refuses paths the search did not find, unusable files, and a second import', async () => {
    await expect(api.invoke('models.importGguf', { path: join(dir, 'elsewhere.gguf') })).rejects.toMatchObject({ code: 'PATH_NOT_GRANTED' });
    await expect(api.invoke('models.importGguf', { path: join(dir, 'lmstudio/tii/falcon/falcon-7b-Q8_0.gguf') }))
      .rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining("architecture 'falcon'") });
    await expect(api.invoke('models.findGguf', { folder: 'relative/path' })).rejects.toMatchObject({ code: 'PATH_INVALID' });
  });

  it('adds it where it lies, trains on it, chats, and exports a GGUF LoRA that llama.cpp runs on the Ollama blob', async () => {
    const model = await api.invoke('models.importGguf', { path: blob });
    expect(model).toMatchObject({
      name: 'starter:latest', architecture: 'llama', path: blob, contentHash: `sha256:${digest}`, status: 'ok',
      gguf: { origin: 'ollama', name: 'starter:latest', quantization: 'F16', fileBytes: statSync(blob).size },
    });
    await expect(api.invoke('models.importGguf', { path: blob })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect((await api.invoke('models.findGguf', {})).found[0]?.modelId).toBe(model.id);
    expect((await api.invoke('models.modules', { id: model.id })).filter((m) => m.name === 'q_proj')).toHaveLength(4);

    const dataset = await api.invoke('datasets.import', { path: join(dir, 'pirate.jsonl') });
    const finished = main.nextEvent('train.finished');
    await api.invoke('train.start', { modelId: model.id, datasetId: dataset.id, settings, adapterName: 'pirate' });
    expect((await finished).run).toMatchObject({ status: 'done', error: null });
    const adapter = (await api.invoke('adapters.list', {})).find((a) => a.name === 'pirate');
    const [version] = await api.invoke('adapters.versions', { adapterId: adapter?.id ?? '' });
    if (!version) throw new Error('no version committed');

    await api.invoke('chat.load', { modelId: model.id });
    const reply = await api.invoke('chat.generate', {
      requestId: 'g1', mix: { adapters: [{ versionId: version.id, scale: 1 }] }, messages: [{ role: 'user', content: 'Say 3' }],
      sampling: { maxNewTokens: 3, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 },
    });
    expect(reply.tokens).toBeGreaterThan(0);

    const out = join(dir, 'export-adapter');
    const exported = await api.invoke('adapters.exportGguf', { versionId: version.id, destination: out, kind: 'adapter' });
    expect(exported.files).toEqual(['adapter.gguf', 'Modelfile']);
    expect(readdirSync(out).sort()).toEqual(['Modelfile', 'adapter.gguf']);
    expect(exported.modelfile).toContain('FROM starter:latest\nADAPTER ./adapter.gguf\n');
    expect(exported.commands[0]).toBe(`ollama create pirate-v1 -f ${out}/Modelfile && ollama run pirate-v1`);
    // llama.cpp on the very blob Ollama holds, with our adapter, computes what our engine computes.
    const engine = await loadModel(blob);
    try {
      const resident = new ResidentAdapters(engine);
      resident.loadFromDir('v1', version.path);
      resident.use('v1');
      const ours = await ourLogProbs(engine, TOKENS);
      const theirs = (await llamaCppLogProbs(blob, TOKENS, [{ path: join(out, 'adapter.gguf') }])).logProbs;
      // F16 weights: llama.cpp rounds activations to F16 in its products.
      expect(maxDiff(ours, theirs)).toBeLessThan(0.01);
      expect(confidentDisagreements(ours, theirs, 0.1)).toEqual([]);
    } finally {
      engine.dispose();
    }

    const merged = join(dir, 'export-merged');
    const m = await api.invoke('adapters.exportGguf', { versionId: version.id, destination: merged, kind: 'merged', type: 'Q8_0' });
    expect(m.files).toEqual(['model.gguf', 'Modelfile']);
    expect(m.modelfile).toContain('FROM ./model.gguf\n');
    expect(m.modelfile).toContain('TEMPLATE """{{ range .Messages }}<|im_start|>');
    await expect(api.invoke('adapters.exportGguf', { versionId: version.id, destination: merged, kind: 'merged' }))
      .rejects.toMatchObject({ message: expect.stringContaining('already exists') });

    // The file is the app's: the model cannot be deleted while its adapter exists, and no delete ever touches it.
    await expect(api.invoke('models.delete', { id: model.id })).rejects.toMatchObject({ code: 'IN_USE' });
    expect(existsSync(blob)).toBe(true);
  });

  it('a GGUF file in a folder the user picks (no digest to go by) is hashed in the file worker, not on the main thread', async () => {
    const chosen = join(dir, 'downloads');
    mkdirSync(join(chosen, 'starter'), { recursive: true });
    const file = join(chosen, 'starter', 'starter-f16.gguf');
    copyFileSync(blob, file);
    const { found } = await api.invoke('models.findGguf', { folder: chosen });
    expect(found.find((f) => f.path === file)).toMatchObject({ origin: 'folder', name: 'starter/starter-f16.gguf', problem: null, modelId: null });
    const jobs = vi.spyOn(main.files, 'run');
    try {
      const model = await api.invoke('models.importGguf', { path: file });
      expect(jobs.mock.calls.map(([job]) => job)).toEqual([{ kind: 'hashFile', path: file }]);
      expect(model).toMatchObject({ path: file, contentHash: `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`, gguf: { origin: 'file' } });
    } finally {
      jobs.mockRestore();
    }
  });
});
