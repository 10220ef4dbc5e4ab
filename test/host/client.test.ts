/**
 * The real engine host in a worker thread: load a tiny model, train a few steps, stream progress, cancel
 * cooperatively, kill it mid-run (pending requests reject with HOST_DIED) and see the next request served by a
 * fresh host.
 */
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostClient, type HostState } from '../../main/host/client';
import { workerHost } from '../../main/host/worker-host';
import type { HostEvent, TrainJob, TrainProgress } from '../../main/host/protocol';
import { tinyModel } from '../engine/lora/tiny-model';
import { CHARS } from '../engine/train/char-tokenizer';

const loaderUrl = new URL('./tiny-loader.ts', import.meta.url).href;
let dir = '';
let modelDir = '';
let datasetFile = '';

function job(runId: string, maxSteps: number, settings: TrainJob['settings'] = {}): TrainJob {
  return {
    modelDir, baseModelHash: null, dataset: { normalized: null, original: datasetFile, format: 'prompt-completion' },
    outputDir: join(dir, 'adapters', runId),
    checkpointDir: join(dir, 'runs', runId, 'checkpoints'),
    settings: {
      lora: { targetModules: ['q_proj', 'v_proj'], rank: 2, alpha: 4, dropout: 0, useRslora: false },
      maxSeqLen: 32, valSplit: 0, trainOnPrompt: false, maxSteps, batchSize: 2, learningRate: 1e-2, seed: 3, ...settings,
    },
  };
}

function firstProgress(): { onEvent: (e: HostEvent) => void; seen: Promise<TrainProgress> } {
  let resolve!: (p: TrainProgress) => void;
  const seen = new Promise<TrainProgress>((r) => (resolve = r));
  return { onEvent: (e) => e.kind === 'progress' && resolve(e.progress), seen };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lorasmith-host-'));
  modelDir = join(dir, 'models', 'tiny');
  mkdirSync(modelDir, { recursive: true });
  writeFileSync(join(modelDir, 'tiny.json'), JSON.stringify({ seed: 5, layers: 1, hidden: 16 }));
  datasetFile = join(dir, 'data.jsonl');
  const rows = Array.from({ length: 8 }, (_, i) => JSON.stringify({ prompt: `add ${i} and 1:`, completion: ` ${i + 1}.` }));
  writeFileSync(datasetFile, rows.join('\n') + '\n');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('engine host in a worker thread', () => {
  it('loads a base, trains a few steps with streamed progress, writes a PEFT adapter, and chats with it', async () => {
    const states: HostState[] = [];
    const client = new HostClient(workerHost({ loaderUrl }), { onState: (s) => states.push(s) });
    try {
      const loaded = await client.call({ type: 'loadBase', modelDir });
      expect(loaded.parameterCount).toBe(tinyModel({ vocab: CHARS.length, hidden: 16, layers: 1, seed: 5 }).parameterCount());

      const progress: TrainProgress[] = [];
      const outcome = await client.call({ type: 'train', job: job('r1', 3) }, (e) => e.kind === 'progress' && progress.push(e.progress));
      expect(outcome.status).toBe('completed');
      expect(outcome.steps).toBe(3);
      expect(progress.filter((p) => p.kind === 'step').map((p) => p.step)).toEqual([1, 2, 3]);
      expect(progress.every((p) => Number.isFinite(p.loss) && p.loss > 0)).toBe(true);
      const config = JSON.parse(readFileSync(join(dir, 'adapters', 'r1', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      expect(config).toMatchObject({ peft_type: 'LORA', r: 2, lora_alpha: 4 });
      expect(existsSync(join(dir, 'adapters', 'r1', 'adapter_model.safetensors'))).toBe(true);

      // The adapter comes and goes on the resident base.
      await client.call({ type: 'loadAdapter', name: 'v1', dir: join(dir, 'adapters', 'r1') });
      await client.call({ type: 'setActive', adapters: [{ name: 'v1', scale: 1 }] });
      const status = await client.call({ type: 'status' });
      expect(status).toMatchObject({ baseModelDir: modelDir, adapters: ['v1'], active: [{ name: 'v1', scale: 1 }] });

      const streamed: string[] = [];
      const sampling = { maxNewTokens: 6, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 1 };
      const reply = await client.call(
        { type: 'generate', modelDir, adapters: [{ name: 'v1', dir: join(dir, 'adapters', 'r1'), scale: 1 }], messages: [{ role: 'user', content: 'add 2 and 1:' }], sampling },
        (e) => e.kind === 'token' && streamed.push(e.text),
      );
      expect(streamed.join('')).toBe(reply.text);
      expect(reply.tokens).toBe(streamed.length);

      expect(await client.call({ type: 'unloadAdapter', name: 'v1' })).toEqual({ name: 'v1', unloaded: true });
      await expect(client.call({ type: 'setActive', adapters: [{ name: 'v1', scale: 1 }] })).rejects.toMatchObject({ code: 'ADAPTER_NOT_LOADED' });
    } finally {
      await client.shutdown();
    }
    expect(states[0]).toBe('starting');
    expect(states.at(-1)).toBe('stopped');
  });

  it('reports its backend at once, and sends a greedy sample with each evaluation', async () => {
    const client = new HostClient(workerHost({ loaderUrl }));
    try {
      const backend = await client.call({ type: 'backend' });
      expect(backend).toMatchObject({ name: 'cpu', matmulKernels: expect.stringContaining('cpu') });
      expect(backend.available.find((b) => b.name === 'cpu')).toMatchObject({ usable: true });
      const progress: TrainProgress[] = [];
      const evalJob = job('r-sample', 4, { valSplit: 0.25, evalEvery: 2 });
      await client.call({ type: 'train', job: evalJob }, (e) => e.kind === 'progress' && progress.push(e.progress));
      const evals = progress.filter((p) => p.kind === 'eval');
      expect(evals.map((p) => p.step)).toEqual([2, 4]);
      // The char tokenizer decodes every id to one character: a sample is at most SAMPLE_TOKENS characters.
      for (const p of evals) expect(p.sample).toMatch(/^[\s\S]{0,24}$/);
      expect(progress.filter((p) => p.kind === 'step').every((p) => p.sample === undefined)).toBe(true);
    } finally {
      await client.shutdown();
    }
  });

  it('cancels a training run cooperatively between steps', async () => {
    const client = new HostClient(workerHost({ loaderUrl }));
    try {
      const { onEvent, seen } = firstProgress();
      const handle = client.request({ type: 'train', job: job('r2', 100_000) }, onEvent);
      await seen;
      expect(await client.cancel(handle.seq)).toBe(true);
      const outcome = await handle.result;
      expect(outcome.status).toBe('cancelled');
      expect(outcome.steps).toBeLessThan(100_000);
      expect(outcome.adapterDir).toBeNull();
      expect(client.running).toBe(true); // cooperative: the host lives on
    } finally {
      await client.shutdown();
    }
  });

  it('rejects pending requests with HOST_DIED when the host dies, and the next request starts a fresh host', async () => {
    const client = new HostClient(workerHost({ loaderUrl }));
    try {
      const { onEvent, seen } = firstProgress();
      const training = client.request({ type: 'train', job: job('r3', 100_000) }, onEvent);
      const queued = client.request({ type: 'status' });
      await seen;
      await queued.result;
      const queuedLoad = client.request({ type: 'loadAdapter', name: 'x', dir: join(dir, 'nowhere') });
      client.kill('simulated crash');
      await expect(training.result).rejects.toMatchObject({ code: 'HOST_DIED', message: expect.stringContaining('simulated crash') });
      await expect(queuedLoad.result).rejects.toMatchObject({ code: 'HOST_DIED' });
      expect(client.running).toBe(false);

      const fresh = await client.call({ type: 'status' });
      expect(fresh.baseModelDir).toBeNull(); // a new process: nothing resident
      expect(client.running).toBe(true);
    } finally {
      await client.shutdown();
    }
  });

  it('kills the host when a cancelled request does not stop within the grace period', async () => {
    const hung = join(dir, 'models', 'hung');
    mkdirSync(hung, { recursive: true });
    writeFileSync(join(hung, 'tiny.json'), JSON.stringify({ hangMs: 60_000 }));
    const client = new HostClient(workerHost({ loaderUrl }), { cancelGraceMs: 500 });
    try {
      await client.call({ type: 'status' });
      const handle = client.request({ type: 'loadBase', modelDir: hung });
      const other = client.request({ type: 'unloadAdapter', name: 'x' }); // queued behind the stuck request
      await new Promise((r) => setTimeout(r, 300));
      await client.cancel(handle.seq);
      await expect(handle.result).rejects.toMatchObject({ code: 'CANCELLED', message: expect.stringContaining('did not stop within 500 ms') });
      await expect(other.result).rejects.toMatchObject({ code: 'HOST_DIED' });
      expect((await client.call({ type: 'status' })).baseModelDir).toBeNull();
    } finally {
      await client.shutdown();
    }
  });

  it('reports engine errors as {name, code, message} without losing the host', async () => {
    const client = new HostClient(workerHost({ loaderUrl }));
    try {
      await expect(client.call({ type: 'setActive', adapters: [] })).rejects.toMatchObject({ name: 'HostError', code: 'NO_BASE_MODEL' });
      await client.call({ type: 'loadBase', modelDir });
      await expect(client.call({ type: 'loadAdapter', name: 'bad', dir: join(dir, 'missing') })).rejects.toMatchObject({ code: expect.any(String) });
      expect((await client.call({ type: 'status' })).baseModelDir).toBe(modelDir);
    } finally {
      await client.shutdown();
    }
  });
});
