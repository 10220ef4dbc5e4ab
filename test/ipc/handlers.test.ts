/**
 * The command handlers through the in-memory IPC pair, on a real library and a real engine host (worker thread)
 * loading a one-layer GPT-2 with the real tokenizer: import, train a few steps, see the version committed, chat with it;
 * kill the host mid-run and see the run marked interrupted with the reason, the next command served and the run resumed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Api, Events } from '../../preload/contract';
import { readSafetensors } from '../../main/engine/io/safetensors';
import type { HostClient } from '../../main/host/client';
import { handlersUnderTest, type HandlersUnderTest } from '../support/handlers';
import { countingJsonl, gpt2Settings } from '../support/training-data';

const fixture = join(import.meta.dirname, '../fixtures/gpt2-real-tokenizer-1layer');
let main: HandlersUnderTest;
let dir = '';
let host: HostClient;
let api: Api;

const settings = gpt2Settings;

beforeAll(() => {
  main = handlersUnderTest();
  ({ dir, host, api } = main);
  main.writeFile('count.jsonl', countingJsonl(6));
});

afterAll(() => main.close());

describe('command handlers over the in-memory pair', () => {
  it('validates every argument before acting, with INVALID_INPUT naming the field', async () => {
    await expect(api.invoke('models.import', { path: 42 as unknown as string, mode: 'copy' })).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining('path') });
    await expect(api.invoke('train.cancel', { runId: '../../etc' })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(api.invoke('models.list', { extra: 1 } as never)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(api.invoke('no.such' as 'models.list', {})).rejects.toMatchObject({ code: 'UNKNOWN_COMMAND' });
    expect(await api.invoke('models.list', {})).toEqual([]);
  });

  it('refuses relative or wrong-kind typed paths in browser mode', async () => {
    await expect(api.invoke('models.import', { path: 'models/x', mode: 'copy' })).rejects.toMatchObject({ code: 'PATH_INVALID' });
    await expect(api.invoke('datasets.import', { path: fixture })).rejects.toMatchObject({ code: 'PATH_INVALID', message: expect.stringContaining('not a file') });
    expect(await api.invoke('dialog.openPath', { purpose: 'model-folder' })).toEqual({ path: null, dialog: false });
  });

  it('imports, trains a few steps, commits the version, and chats with it', async () => {
    const model = await api.invoke('models.import', { path: fixture, mode: 'copy', name: 'tiny' });
    expect(model).toMatchObject({ name: 'tiny', architecture: 'gpt2', status: 'ok' });
    expect(model.parameterCount).toBeGreaterThan(0);
    const dataset = await api.invoke('datasets.import', { path: join(dir, 'count.jsonl') });
    expect(dataset).toMatchObject({ format: 'prompt-completion', recordCount: 6 });

    const modules = await api.invoke('models.modules', { id: model.id });
    expect(modules.filter((m) => m.name === 'c_attn')).toHaveLength(1); // one per layer of the fixture

    // c_attn of the fixture is [in=2, out=6]: a rank-2 adapter trains r·(in + out) = 16 parameters.
    const estimate = await api.invoke('train.estimate', { modelId: model.id, datasetId: dataset.id, settings: settings(2) });
    expect(estimate).toMatchObject({ trainableParams: 16, totalParams: model.parameterCount });

    const progress: number[] = [];
    const off = api.on('train.progress', (p) => progress.push(p.step));
    const finished = main.nextEvent('train.finished');
    const run = await api.invoke('train.start', { modelId: model.id, datasetId: dataset.id, settings: settings(2), adapterName: 'counter' });
    expect(run.status).toBe('running');
    const done = (await finished).run;
    off();
    expect(done).toMatchObject({ id: run.id, status: 'done', error: null });
    // Runs carry their adapter's name, joined from the library.
    const adapterId = (await api.invoke('adapters.list', {})).find((a) => a.name === 'counter')?.id;
    expect(adapterId).toEqual(expect.any(String));
    expect(run).toMatchObject({ adapterId, adapterName: 'counter' });
    expect(done).toMatchObject({ adapterId, adapterName: 'counter' });
    expect((await api.invoke('runs.list', {})).find((r) => r.id === run.id)).toMatchObject({ adapterId, adapterName: 'counter' });
    expect(progress).toEqual(expect.arrayContaining([1, 2]));
    expect((await api.invoke('runs.metrics', { runId: run.id })).map((m) => m.step)).toEqual([1, 2]);

    const [adapter] = await api.invoke('adapters.list', {});
    const versions = await api.invoke('adapters.versions', { adapterId: adapter?.id ?? '' });
    expect(versions).toHaveLength(1);
    expect(versions[0]).toMatchObject({ version: 1, status: 'ok', metrics: { steps: 2 } });

    await api.invoke('chat.load', { modelId: model.id });
    const tokens: string[] = [];
    const offTokens = api.on('chat.token', (t) => t.requestId === 'q1' && tokens.push(t.text));
    const reply = await api.invoke('chat.generate', {
      requestId: 'q1', mix: { adapters: [{ versionId: versions[0]?.id ?? '', scale: 1 }] },
      messages: [{ role: 'user', content: 'Count 3:' }],
      sampling: { maxNewTokens: 4, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 },
    });
    offTokens();
    expect(tokens.join('')).toBe(reply.text);
    expect(reply.tokens).toBe(tokens.length);

    // Export merged: c_attn (Conv1D, stored [in, out]) must equal W0 + (alpha/r)·(B·A)^T, computed here in float64.
    const destination = join(dir, 'merged');
    expect(await api.invoke('adapters.exportMerged', { versionId: versions[0]?.id ?? '', destination })).toEqual({ path: destination });
    const key = 'transformer.h.0.attn.c_attn.weight';
    const base = readSafetensors(join(fixture, 'model.safetensors')).tensors.get(key);
    const merged = readSafetensors(join(destination, 'model.safetensors')).tensors;
    const lora = readSafetensors(join(versions[0]?.path ?? '', 'adapter_model.safetensors')).tensors;
    const A = lora.get('base_model.model.transformer.h.0.attn.c_attn.lora_A.weight'); // [r, in]
    const B = lora.get('base_model.model.transformer.h.0.attn.c_attn.lora_B.weight'); // [out, r]
    if (!base || !A || !B) throw new Error('missing tensors');
    const [r, inF] = A.shape as [number, number];
    const outF = B.shape[0] as number;
    expect(Math.max(...Array.from(B.data, Math.abs))).toBeGreaterThan(0); // training moved B off zero
    const got = merged.get(key)?.data ?? new Float32Array();
    for (let i = 0; i < inF; i++) {
      for (let o = 0; o < outF; o++) {
        let delta = 0;
        for (let k = 0; k < r; k++) delta += (B.data[o * r + k] ?? 0) * (A.data[k * inF + i] ?? 0);
        expect(got[i * outF + o]).toBeCloseTo((base.data[i * outF + o] ?? 0) + (4 / 2) * delta, 5);
      }
    }
    expect(merged.get('transformer.h.0.mlp.c_fc.weight')?.data).toEqual(readSafetensors(join(fixture, 'model.safetensors')).tensors.get('transformer.h.0.mlp.c_fc.weight')?.data);
    expect(existsSync(join(destination, 'config.json')) && existsSync(join(destination, 'tokenizer.json'))).toBe(true);
  });

  it('sends a sample generation with each evaluation, and on no plain step', async () => {
    const model = (await api.invoke('models.list', {}))[0];
    const dataset = (await api.invoke('datasets.list', {}))[0];
    const events: Events['train.progress'][] = [];
    const off = api.on('train.progress', (p) => events.push(p));
    const finished = main.nextEvent('train.finished');
    await api.invoke('train.start', {
      modelId: model?.id ?? '', datasetId: dataset?.id ?? '', adapterName: 'sampler',
      settings: { ...settings(2), valSplit: 0.34, evalEvery: 1 },
    });
    expect((await finished).run).toMatchObject({ status: 'done', adapterName: 'sampler' });
    off();
    const evals = events.filter((e) => e.valLoss !== undefined);
    expect(evals.map((e) => e.step)).toEqual([1, 2]);
    expect(evals.every((e) => typeof e.sample === 'string')).toBe(true);
    expect(events.filter((e) => e.valLoss === undefined).every((e) => e.sample === undefined)).toBe(true);
  });

  it('keeps a saved comparison with each answer under its set-up and prompt, lists it newest first, deletes it', async () => {
    const model = (await api.invoke('models.list', {}))[0];
    const sampling = { maxNewTokens: 4, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };
    const content = {
      title: '“Count 3:”: Base model vs counter v1 ×1.00', baseModelId: model?.id ?? '', sampling,
      messages: [{ role: 'user' as const, content: 'Count 3:' }, { role: 'user' as const, content: 'Count 4:' }],
      outputs: [
        { turn: 0, label: 'Base model', mix: { adapters: [] }, text: ' 7', tokens: 1, tokensPerSecond: 12.5 },
        { turn: 0, label: 'counter v1 ×1.00', mix: { adapters: [{ versionId: 'ver_1', scale: 1 }] }, text: ' 4', tokens: 1, tokensPerSecond: null },
        { turn: 1, label: 'Base model', mix: { adapters: [] }, text: ' 9', tokens: 1, tokensPerSecond: 11 },
      ],
    };
    const first = await api.invoke('comparisons.save', content);
    const second = await api.invoke('comparisons.save', { ...content, title: 'again' });
    expect(first).toMatchObject({ ...content, id: expect.any(String), createdAt: expect.any(String) });
    expect((await api.invoke('comparisons.list', {})).map((c) => c.id)).toEqual([second.id, first.id]);
    // An answer to a prompt the conversation does not have, an unknown model, a bad field: refused, nothing kept.
    await expect(api.invoke('comparisons.save', { ...content, outputs: [{ ...content.outputs[0]!, turn: 2 }] }))
      .rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining('prompt 2') });
    await expect(api.invoke('comparisons.save', { ...content, baseModelId: 'mdl_nope' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(api.invoke('comparisons.save', { ...content, outputs: [] })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect(await api.invoke('comparisons.list', {})).toHaveLength(2);
    expect(await api.invoke('comparisons.delete', { id: first.id })).toEqual({ deleted: true });
    await expect(api.invoke('comparisons.delete', { id: first.id })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await api.invoke('comparisons.list', {})).map((c) => c.id)).toEqual([second.id]);
  });

  it('app.info reports the backend the engine host initialised', async () => {
    const info = await api.invoke('app.info', {});
    const status = await host.call({ type: 'status' });
    expect(info.backend?.name).toBe(status.backend);
    expect(info.backend?.available.find((b) => b.name === status.backend)).toMatchObject({ usable: true });
    expect(info.backend?.available.map((b) => b.name).sort()).toEqual(['cpu', 'tensorflow', 'wasm', 'webgpu']);
    expect(info.backend?.matmulKernels).toMatch(/\w/);
  });

  it('marks a run interrupted with HOST_DIED when the host dies mid-run, serves the next command, and resumes the run', async () => {
    const [model] = await api.invoke('models.list', {});
    const [dataset] = await api.invoke('datasets.list', {});
    const firstStep = main.nextEvent('train.progress');
    const finished = main.nextEvent('train.finished');
    const run = await api.invoke('train.start', { modelId: model?.id ?? '', datasetId: dataset?.id ?? '', settings: settings(100_000), adapterName: 'counter' });
    const first = await Promise.race([firstStep, finished]);
    expect(first).toHaveProperty('step'); // training got going before the crash
    host.kill('simulated out-of-memory');
    const interrupted = (await finished).run;
    expect(interrupted).toMatchObject({ id: run.id, status: 'interrupted' });
    expect(interrupted.error).toContain('HOST_DIED');
    expect(interrupted.error).toContain('simulated out-of-memory');
    const loaded = await api.invoke('chat.load', { modelId: model?.id ?? '' }); // a fresh host
    expect(loaded.modelId).toBe(model?.id);
    expect((await api.invoke('runs.list', {})).find((r) => r.id === run.id)?.status).toBe('interrupted');
    // The engine's death is no fault of the run: it resumes on the fresh host like a cancelled one.
    const resumedStep = main.nextEvent('train.progress');
    const stopped = main.nextEvent('train.finished');
    expect(await api.invoke('train.resume', { runId: run.id })).toMatchObject({ id: run.id, status: 'running' });
    expect(await resumedStep).toHaveProperty('runId', run.id);
    await api.invoke('train.cancel', { runId: run.id });
    expect((await stopped).run).toMatchObject({ id: run.id, status: 'cancelled' });
  });
});
