/**
 * The Adapters view's tools through the in-memory IPC pair, on a real library, file worker and engine host (worker
 * thread) with the starter model: a PEFT-made adapter checked and imported (and one made for GPT-2 refused with its
 * one-line verdict), chatted with, analysed (its singular values against a float64 power iteration written here,
 * on the file's own bytes) and reduced to a new version whose spectrum is the old one's leading values.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Api, ModuleSpectrum } from '../../preload/contract';
import type { Library } from '../../main/store/index';
import { handlersUnderTest, type HandlersUnderTest } from '../support/handlers';

const ROOT = join(import.meta.dirname, '../..');
const STARTER = join(ROOT, 'resources/starter');
const STARTER_LORA = join(ROOT, 'test/fixtures/peft-0.21-starter-lora');
const GPT2_LORA = join(ROOT, 'test/fixtures/peft-gpt2-lora-c_attn-c_proj');

let main: HandlersUnderTest;
let library: Library;
let api: Api;
let modelId = '';

/** The F32 tensors of a safetensors file, read here from its header and bytes. */
function readF32(path: string): Map<string, { shape: number[]; data: Float64Array }> {
  const bytes = readFileSync(path);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const tensors = new Map<string, { shape: number[]; data: Float64Array }>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [from, to] = entry.data_offsets;
    const start = 8 + headerLength + from;
    const data = new Float64Array((to - from) / 4);
    for (let i = 0; i < data.length; i++) data[i] = bytes.readFloatLE(start + 4 * i);
    tensors.set(name, { shape: entry.shape, data });
  }
  return tensors;
}

/** The k largest singular values of ΔW = scale·B·A (B [out, r], A [r, in]) by power iteration on ΔWᵀΔW with deflation. */
function singularValues(a: Float64Array, b: Float64Array, out: number, rank: number, inF: number, scale: number, k: number): number[] {
  const w = new Float64Array(out * inF);
  for (let o = 0; o < out; o++) for (let r = 0; r < rank; r++) {
    const bv = scale * (b[o * rank + r] as number);
    for (let i = 0; i < inF; i++) w[o * inF + i] = (w[o * inF + i] as number) + bv * (a[r * inF + i] as number);
  }
  const gram = new Float64Array(inF * inF); // ΔWᵀΔW [in, in]
  for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) {
    const wi = w[o * inF + i] as number;
    if (wi === 0) continue;
    for (let j = 0; j < inF; j++) gram[i * inF + j] = (gram[i * inF + j] as number) + wi * (w[o * inF + j] as number);
  }
  const values: number[] = [];
  for (let n = 0; n < k; n++) {
    let v = Float64Array.from({ length: inF }, (_, i) => Math.sin(i + 1 + n));
    let lambda = 0;
    for (let iter = 0; iter < 3000; iter++) {
      const next = new Float64Array(inF);
      for (let i = 0; i < inF; i++) {
        let s = 0;
        for (let j = 0; j < inF; j++) s += (gram[i * inF + j] as number) * (v[j] as number);
        next[i] = s;
      }
      const norm = Math.hypot(...next);
      lambda = norm;
      v = next.map((x) => x / norm);
    }
    values.push(Math.sqrt(lambda));
    for (let i = 0; i < inF; i++) for (let j = 0; j < inF; j++) gram[i * inF + j] = (gram[i * inF + j] as number) - lambda * (v[i] as number) * (v[j] as number);
  }
  return values;
}

beforeAll(async () => {
  main = handlersUnderTest();
  ({ library, api } = main);
  modelId = (await api.invoke('models.import', { path: STARTER, mode: 'reference' })).id;
});

afterAll(() => main.close());

describe('a PEFT adapter from elsewhere, in the Adapters view', () => {
  it('refuses an adapter made for GPT-2 with one verdict line and a few grouped details, writing nothing', async () => {
    const preflight = await api.invoke('adapters.checkPeft', { path: GPT2_LORA, modelId });
    expect(preflight.ok).toBe(false);
    expect(preflight.verdict).toBe('made for gpt2 with hidden 768; this base has hidden 256: it cannot be used with this base');
    expect(preflight.madeFor).toEqual({ nameOrPath: 'gpt2', hiddenSize: 768, layers: 12 });
    // 36 modules that are not the starter's, said in a handful of lines: one per module kind
    expect(preflight.problems.length).toBeLessThanOrEqual(3);
    expect(preflight.problems.join('\n')).toContain('attn.c_attn, attn.c_proj, mlp.c_proj (layers 0–11): is not a linear module of this base model');
    await expect(api.invoke('adapters.importPeft', { path: GPT2_LORA, modelId, name: 'tigrinya' })).rejects.toMatchObject({
      code: 'ADAPTER_MISMATCH', message: expect.stringContaining('made for gpt2 with hidden 768'),
    });
    expect(await api.invoke('adapters.list', {})).toEqual([]);
    await expect(api.invoke('adapters.checkPeft', { path: 'relative/adapter', modelId })).rejects.toMatchObject({ code: 'PATH_INVALID' });
  });

  it('imports the PEFT-made starter adapter as a version, chats with it, analyses and reduces it', async () => {
    const preflight = await api.invoke('adapters.checkPeft', { path: STARTER_LORA, modelId });
    expect(preflight.ok).toBe(true);
    expect(preflight.verdict).toBe('made for resources/starter with hidden 256; fits this llama base: 28 modules (down_proj, gate_proj, up_proj, k_proj, o_proj, q_proj, v_proj) at rank 4');
    expect(preflight.fits).toContain('mlp.down_proj (layers 0–3): rank 4, scale 2, 704 → 256');

    const jobs = vi.spyOn(main.files, 'run');
    const { version, adapterName } = await api.invoke('adapters.importPeft', { path: STARTER_LORA, modelId, name: 'peft-made' });
    // The check and the copy of the user's files both run in the file worker, off the main thread.
    expect(jobs.mock.calls.map(([job]) => job.kind)).toEqual(['preflightAdapter', 'copyIn']);
    jobs.mockRestore();
    expect(adapterName).toBe('peft-made');
    expect(version).toMatchObject({ version: 1, origin: 'imported', status: 'ok', note: expect.stringContaining(`imported from ${STARTER_LORA}`) });
    // Only the PEFT files (and the note) are kept: the fixture's peft_logits.json stays where it was.
    expect(readdirSync(version.path).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'note.json']);

    await api.invoke('chat.load', { modelId });
    const sampling = { maxNewTokens: 8, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 1 };
    const messages = [{ role: 'user' as const, content: 'What do cows give us?' }];
    const base = await api.invoke('chat.generate', { requestId: 'base', mix: { adapters: [] }, messages, sampling });
    const tuned = await api.invoke('chat.generate', { requestId: 'tuned', mix: { adapters: [{ versionId: version.id, scale: 1 }] }, messages, sampling });
    expect(tuned.tokens).toBeGreaterThan(0);
    expect(tuned.text).not.toBe(base.text); // B ≠ 0 in this adapter: it changes the greedy reply

    const spectrum = await api.invoke('adapters.analyze', { versionId: version.id });
    expect(spectrum.modules).toHaveLength(28);
    const tensors = readF32(join(STARTER_LORA, 'adapter_model.safetensors'));
    const byPath = new Map(spectrum.modules.map((m) => [m.path, m]));
    for (const path of ['model.layers.0.self_attn.q_proj', 'model.layers.3.mlp.down_proj']) {
      const m = byPath.get(path) as ModuleSpectrum;
      const a = tensors.get(`base_model.model.${path}.lora_A.weight`)!;
      const b = tensors.get(`base_model.model.${path}.lora_B.weight`)!;
      const reference = singularValues(a.data, b.data, b.shape[0]!, 4, a.shape[1]!, 8 / 4, 4);
      expect(m.singularValues).toHaveLength(4);
      for (let i = 0; i < 4; i++) expect(Math.abs((m.singularValues[i] as number) - (reference[i] as number)) / (reference[0] as number)).toBeLessThan(1e-5);
      expect(m.effectiveRank).toBeGreaterThanOrEqual(1);
      expect(m.effectiveRank).toBeLessThanOrEqual(4);
      expect(m.relativeToBase).toBeGreaterThan(0);
    }

    const sourceBytes = readFileSync(join(version.path, 'adapter_model.safetensors'));
    const reduced = await api.invoke('adapters.reduce', { versionId: version.id, rank: 2 });
    expect(reduced.version).toMatchObject({ version: 2, parentVersionId: version.id, origin: 'imported', note: expect.stringContaining('rank 4 → 2 by truncated SVD of peft-made v1') });
    // Eckart–Young: the error of the best rank-2 approximation is what the dropped singular values hold.
    const dropped = spectrum.modules.reduce((s, m) => s + (m.singularValues[2] as number) ** 2 + (m.singularValues[3] as number) ** 2, 0);
    const total = spectrum.modules.reduce((s, m) => s + m.singularValues.reduce((t, x) => t + x * x, 0), 0);
    expect(reduced.report.overallRelativeError).toBeCloseTo(Math.sqrt(dropped / total), 6);
    const after = await api.invoke('adapters.analyze', { versionId: reduced.version.id });
    for (const m of after.modules) {
      const before = byPath.get(m.path) as ModuleSpectrum;
      expect(m.rank).toBe(2);
      for (let i = 0; i < 2; i++) expect(Math.abs((m.singularValues[i] as number) - (before.singularValues[i] as number)) / (before.singularValues[0] as number)).toBeLessThan(1e-5);
    }
    // The source version is untouched, and the reduced one chats.
    expect(readFileSync(join(version.path, 'adapter_model.safetensors')).equals(sourceBytes)).toBe(true);
    const small = await api.invoke('chat.generate', { requestId: 'small', mix: { adapters: [{ versionId: reduced.version.id, scale: 1 }] }, messages, sampling });
    expect(small.tokens).toBeGreaterThan(0);
    expect(readdirSync(join(library.dataDir.root, 'runs')).filter((n) => n.includes('reduce'))).toEqual([]);

    await expect(api.invoke('adapters.reduce', { versionId: version.id, rank: 0 })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(api.invoke('adapters.reduce', { versionId: version.id, rank: 4 })).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining('has rank 4 already') });
    expect(await api.invoke('adapters.versions', { adapterId: version.adapterId })).toHaveLength(2);
    await expect(api.invoke('adapters.analyze', { versionId: 'ver_missing' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  }, 120_000);
});

describe('the wizard\'s proposal', () => {
  it('proposes from the model and dataset sizes and warns about the old weak defaults (2e-4, 42 steps)', async () => {
    const dataset = await api.invoke('datasets.import', { path: join(ROOT, 'resources/samples/verily-chat.jsonl') });
    const proposal = await api.invoke('train.propose', { modelId, datasetId: dataset.id });
    expect(proposal).toMatchObject({ learningRate: 0.0029, maxSteps: 100, targets: 'all-linear', rank: 8, alpha: 16 });
    expect(proposal.rule).toMatch(/^Learning rate 3e-3 × √\(4M ÷ model parameters\)/);
    expect(proposal.effect.warnings).toEqual([]);
    expect(proposal.effect.summary).toMatch(/^about 7\.4 passes over 54 training records \(100 steps of 4\)/);

    const weak = await api.invoke('train.propose', {
      modelId, datasetId: dataset.id,
      settings: {
        lora: { targetModules: ['q_proj', 'v_proj'], rank: 8, alpha: 16, dropout: 0.05, useRslora: false }, epochs: 3, learningRate: 2e-4,
        batchSize: 4, gradAccum: 1, maxSeqLen: 256, valSplit: 0.1, seed: 42, scheduler: 'cosine', warmupSteps: 10, weightDecay: 0,
        maxGradNorm: 1, evalEvery: 20, checkpointEvery: 100, earlyStoppingPatience: 3, trainOnPrompt: false, recompute: 'auto',
      },
    });
    expect(weak.effect.steps).toBe(42);
    expect(weak.effect.warnings[0]).toMatch(/^Too weak to move the loss: learning rate × steps × scale is 35× below the proposal \(0\.0002 × 42 steps against 0\.0029 × 100\)/);
  });
});
