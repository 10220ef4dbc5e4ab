/**
 * A remote engine in one process: a server side (a browser server with the engine endpoint in front of its own
 * engine host, on its own data folder) and an app (real library, handlers through the in-memory pair, a host
 * client whose spawner reaches the remote when Settings name it). A run started in the app trains on the remote
 * and comes back as a version with the machine it trained on and the bytes a local run with the same seed writes;
 * content is sent once; refusals (token, version, address, hostile frames) write nothing; a remote gone mid-run
 * leaves the run interrupted with the reason and no version or temp file behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import type { Api, Events, TrainingRun, TrainingSettings } from '../../preload/contract';
import { hashFile } from '../../main/common/hash';
import { hasWeightKernels } from '../../main/engine/backend/native/addon';
import { MEASURED_PRECISIONS, REFERENCE_PRECISION } from '../../main/engine/train/precision-cost';
import { REMOTE_PROTOCOL } from '../../main/host/remote/protocol';
import { HostClient } from '../../main/host/client';
import { withRemoteEngine } from '../../main/host/remote/remote-host';
import { workerHost } from '../../main/host/worker-host';
import { startBrowserServer, type BrowserServer } from '../../main/ipc/browser-server';
import { remoteEngineEndpoint } from '../../main/ipc/remote-engine/endpoint';
import type { Handlers } from '../../main/ipc/types';
import { recordedModelHash } from '../../main/services/remote-engine';
import type { Library } from '../../main/store/index';
import { addonLoad, nativeSkipReason } from '../engine/backend/native-support';
import { handlersUnderTest, type HandlersUnderTest } from '../support/handlers';
import { filesUnder } from '../support/probes/server';
import { countingJsonl } from '../support/training-data';

const VERSION = '0.0.0-remote-test';
const MODEL = join(import.meta.dirname, '../fixtures/gpt2-real-tokenizer-1layer');
/** The base precision applies to a base in the frozen-weight store: the starter (F16) with a sample dataset, as the app measures it. */
const STARTER = join(import.meta.dirname, '../../resources/starter');
const SAMPLE = join(import.meta.dirname, '../../resources/samples/verily-chat.jsonl');
const noStore = nativeSkipReason('the base precision on a remote engine', addonLoad.ok && hasWeightKernels(addonLoad.addon));
const SETTINGS: TrainingSettings = {
  lora: { targetModules: ['c_attn'], rank: 2, alpha: 4, dropout: 0.1, useRslora: false },
  maxSteps: 6, learningRate: 1e-2, batchSize: 2, gradAccum: 1, maxSeqLen: 32, valSplit: 0.25, seed: 5,
  scheduler: 'cosine', warmupSteps: 1, weightDecay: 0.01, maxGradNorm: 1, evalEvery: 3, checkpointEvery: 2, trainOnPrompt: false,
};

const MEASURE: TrainingSettings = {
  lora: { targetModules: ['q_proj', 'v_proj'], rank: 2, alpha: 4, dropout: 0, useRslora: false },
  maxSteps: 2, learningRate: 1e-3, batchSize: 1, gradAccum: 1, maxSeqLen: 40, valSplit: 0.1, seed: 42,
  scheduler: 'constant', warmupSteps: 0, weightDecay: 0, maxGradNorm: 1, evalEvery: 0, checkpointEvery: 0, trainOnPrompt: false,
};

let dir = '';
let remoteData = '';
let remoteHost: HostClient;
let server: BrowserServer;
/** The remote's engine endpoint: one for the whole suite, as one `lorasmith serve` process has (its server restarts in the last test). */
let endpoint: ((ws: WebSocket) => void) | undefined;
/** The type of every frame the remote received, in order, and of every engine request among them. */
const frames: string[] = [];
const engineRequests: string[] = [];
/** The app: its engine host reaches the remote when Settings name it, as `lorasmith serve` and the app compose it. */
let main: HandlersUnderTest;
let library: Library;
let api: Api;
let modelId = '';
let datasetId = '';

async function startRemote(): Promise<BrowserServer> {
  const rendererDir = join(dir, 'renderer');
  mkdirSync(rendererDir, { recursive: true });
  writeFileSync(join(rendererDir, 'index.html'), '<!doctype html><title>remote</title>');
  endpoint ??= remoteEngineEndpoint({ dataDir: remoteData, host: remoteHost, version: VERSION });
  const engineSocket = endpoint;
  return startBrowserServer({
    handlers: () => ({}) as Handlers, rendererDir,
    engineSocket: (ws) => {
      ws.on('message', (data) => {
        try {
          const frame = JSON.parse(String(data)) as { type?: unknown; request?: { type?: unknown } };
          frames.push(String(frame.type));
          if (frame.type === 'engine') engineRequests.push(String(frame.request?.type));
        } catch {
          frames.push('(not JSON)');
        }
      });
      engineSocket(ws);
    },
  });
}

function finished(runId: string): Promise<TrainingRun> {
  return new Promise((resolve) => {
    const off = api.on('train.finished', ({ run }) => {
      if (run.id === runId) {
        off();
        resolve(run);
      }
    });
  });
}

async function train(adapterName: string, onProgress?: (p: Events['train.progress']) => void): Promise<TrainingRun> {
  const off = onProgress ? api.on('train.progress', onProgress) : () => undefined;
  try {
    const run = await api.invoke('train.start', { modelId, datasetId, settings: SETTINGS, adapterName });
    return await finished(run.id);
  } finally {
    off();
  }
}

const adapterBytes = (run: TrainingRun) => readFileSync(join(library.versions.get(run.adapterVersionId ?? '').path, 'adapter_model.safetensors'));
const useRemote = (token = server.token, address = `127.0.0.1:${server.port}`) => api.invoke('settings.set', { remoteEngine: { address, token } });

beforeAll(async () => {
  // A base model's hash comes from the library's record, as `lorasmith serve` composes the host.
  main = handlersUnderTest({
    context: { version: VERSION },
    spawner: (opened) => withRemoteEngine(workerHost(), VERSION, (path) => recordedModelHash(opened, path)),
  });
  ({ dir, library, api } = main);
  remoteData = join(dir, 'remote-data');
  mkdirSync(remoteData);
  remoteHost = new HostClient(workerHost());
  server = await startRemote();

  modelId = (await api.invoke('models.import', { path: MODEL, mode: 'copy', name: 'tiny' })).id;
  datasetId = (await api.invoke('datasets.import', { path: main.writeFile('count.jsonl', countingJsonl(12)) })).id;
}, 120_000);

afterAll(async () => {
  await main.app.cancelTraining();
  await remoteHost.shutdown();
  await server.close();
  await main.close();
}, 120_000);

describe('a remote engine', () => {
  it('trains a run started here and brings the adapter back with the machine it trained on', async () => {
    await useRemote();
    const info = await api.invoke('app.info', {});
    expect(info.remoteEngine).toEqual({ address: `127.0.0.1:${server.port}`, machine: expect.stringContaining(`${hostname()} (`), problem: null });
    expect(info.remoteEngine?.machine).toContain(`Lorasmith ${VERSION}`);

    const steps: number[] = [];
    const run = await train('remote', (p) => steps.push(p.step));
    expect(run).toMatchObject({ status: 'done', error: null });
    expect(new Set(steps)).toEqual(new Set([1, 2, 3, 4, 5, 6])); // the curve streamed back
    expect((await api.invoke('runs.metrics', { runId: run.id })).filter((m) => m.loss !== undefined).map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
    const [version] = await api.invoke('adapters.versions', { adapterId: run.adapterId });
    expect(version?.trainedOn).toContain(`${hostname()} (`);
    expect(version?.trainedOn).toContain(`through the remote engine at 127.0.0.1:${server.port}, Lorasmith ${VERSION}`);
    const machine = JSON.parse(readFileSync(join(version?.path ?? '', 'machine.json'), 'utf8'));
    expect(machine).toMatchObject({ hostname: hostname(), engine: { name: 'lorasmith', version: VERSION }, address: `127.0.0.1:${server.port}` });
    // Its checkpoints were copied here as they were written (the last one kept), as a local run keeps them.
    expect(run.checkpointStep).toBe(6);
    expect(readdirSync(library.runs.checkpointsDir(run.id))).toEqual(['checkpoint-6']);
    expect(existsSync(join(library.runs.checkpointsDir(run.id), 'checkpoint-6', 'trainer_state.json'))).toBe(true);

    // The remote holds the model folder and the dataset file by content hash, and no run folder once read back.
    const held = readdirSync(join(remoteData, 'remote', 'content')).sort();
    const datasetFile = library.datasets.resolveFiles(datasetId).normalized ?? '';
    expect(held).toEqual([library.models.get(modelId).contentHash?.slice(7), `${hashFile(datasetFile).slice(7)}.file`].sort());
    await expect.poll(() => readdirSync(join(remoteData, 'remote', 'runs'))).toEqual([]);
    expect(frames.filter((f) => f === 'upload')).toHaveLength(2);

    // Again: nothing is sent twice.
    frames.length = 0;
    const again = await train('remote-again');
    expect(again.status).toBe('done');
    expect(frames).not.toContain('upload');
    expect(frames).toContain('has');
    expect(adapterBytes(again).equals(adapterBytes(run))).toBe(true);

    // The same run on this machine's engine writes the same adapter bytes.
    await api.invoke('settings.set', { remoteEngine: null });
    expect((await api.invoke('app.info', {})).remoteEngine).toBeNull();
    const local = await train('local');
    expect(local.status).toBe('done');
    const [localVersion] = await api.invoke('adapters.versions', { adapterId: local.adapterId });
    expect(localVersion?.trainedOn ?? null).toBeNull();
    expect(adapterBytes(local).equals(adapterBytes(run))).toBe(true);
  }, 240_000);

  // The wizard's base precision: measured where the run would train (the base loaded twice there, not here).
  it.skipIf(noStore)('measures the base precision on the remote engine, with its progress, as this machine measures it, and stops it there', async () => {
    await useRemote();
    const ids = {
      modelId: (await api.invoke('models.import', { path: STARTER, mode: 'reference', name: 'starter' })).id,
      datasetId: (await api.invoke('datasets.import', { path: SAMPLE })).id,
    };
    const measure = async (requestId: string) => {
      const progress: string[] = [];
      const off = api.on('train.precisionProgress', (p) => p.requestId === requestId && progress.push(`${p.precision} ${p.stage} ${p.batch}/${p.batches}`));
      try {
        return { cost: await api.invoke('train.measurePrecision', { requestId, ...ids, settings: MEASURE }), progress };
      } finally {
        off();
      }
    };
    engineRequests.length = 0;
    const there = await measure('remote-1');
    expect(engineRequests).toContain('measurePrecision');
    const measured = [there.cost.reference, ...there.cost.others];
    expect(measured.map((m) => m.precision)).toEqual([REFERENCE_PRECISION, ...MEASURED_PRECISIONS]);
    expect(there.progress).toEqual(measured.flatMap((m) => [`${m.precision} loading 0/4`, ...[1, 2, 3, 4].map((b) => `${m.precision} scoring ${b}/4`)]));
    expect(there.cost.reference).toMatchObject({ precision: 'bf16', format: 'F16' });
    await expect.poll(() => readdirSync(join(remoteData, 'remote', 'runs'))).toEqual([]);

    // Stopped from here, it stops there between batches, and the remote engine goes on serving.
    const stopped = new Promise<void>((resolve) => {
      const off = api.on('train.precisionProgress', (p) => {
        if (p.requestId !== 'remote-2' || p.stage !== 'scoring') return;
        off();
        void api.invoke('train.stopMeasure', { requestId: 'remote-2' }).then(() => resolve());
      });
    });
    await expect(api.invoke('train.measurePrecision', { requestId: 'remote-2', ...ids, settings: MEASURE })).rejects.toMatchObject({ code: 'CANCELLED' });
    await stopped;
    expect((await api.invoke('train.estimate', { ...ids, settings: MEASURE })).base?.held).toBe('F16');
    expect(engineRequests.filter((r) => r === 'cancel')).toHaveLength(1);

    // This machine's engine measures the same: the same rows, formats and bytes, and losses within float32 noise.
    await api.invoke('settings.set', { remoteEngine: null });
    const here = await measure('local-1');
    expect(here.progress).toEqual(there.progress);
    const { reference: _reference, others: _others, ...rows } = there.cost;
    expect(rows).toEqual({ rows: here.cost.rows, examples: here.cost.examples, tokens: here.cost.tokens });
    const local = [here.cost.reference, ...here.cost.others];
    expect(local).toHaveLength(measured.length);
    measured.forEach((a, i) => {
      const b = local[i];
      expect({ ...a, loss: 0, lossDelta: 0 }).toEqual({ ...b, loss: 0, lossDelta: 0 });
      expect(Math.abs(a.loss - (b?.loss ?? NaN))).toBeLessThan(1e-5);
    });
  }, 480_000);

  it('refuses a wrong token, another version and an address that is not a tunnel, writing nothing', async () => {
    const before = { runs: library.runs.list().length, adapters: library.adapters.list().length };
    await useRemote('wrong-token-0123456789');
    await expect(api.invoke('train.start', { modelId, datasetId, settings: SETTINGS, adapterName: 'refused' }))
      .rejects.toMatchObject({ code: 'REMOTE_ENGINE_REFUSED', message: expect.stringContaining('refused the token') });
    expect((await api.invoke('app.info', {})).remoteEngine?.problem).toContain('refused the token');

    await expect(useRemote(server.token, '192.168.1.20:8765')).rejects.toMatchObject({ code: 'REMOTE_ADDRESS_INVALID', message: expect.stringContaining('ssh -N -L') });
    await expect(useRemote('')).rejects.toMatchObject({ code: 'REMOTE_ADDRESS_INVALID', message: expect.stringContaining('token') });
    expect((await api.invoke('settings.get', {})).remoteEngine?.token).toBe('wrong-token-0123456789'); // the refused ones were not kept

    const other = new HostClient(withRemoteEngine(workerHost(), '9.9.9'));
    await other.setRemote({ address: `127.0.0.1:${server.port}`, token: server.token });
    await expect(other.call({ type: 'machine' })).rejects.toMatchObject({
      code: 'REMOTE_VERSION_MISMATCH', message: expect.stringMatching(new RegExp(`Lorasmith ${VERSION}.*9\\.9\\.9.*install the same version`)),
    });
    await other.shutdown();

    const closedPort = server.port;
    await useRemote(server.token, `http://127.0.0.1:${closedPort + 1 === 65536 ? 1 : closedPort + 1}/t/${server.token}/`);
    await expect(api.invoke('train.start', { modelId, datasetId, settings: SETTINGS, adapterName: 'refused' }))
      .rejects.toMatchObject({ code: 'REMOTE_ENGINE_UNREACHABLE' });
    expect({ runs: library.runs.list().length, adapters: library.adapters.list().length }).toEqual(before);
  }, 240_000);

  it('checks every frame: hello first and of the same version, content by its hash, names inside their folder', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/t/${server.token}/engine`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const answers = new Map<number, { type: string; error?: { code: string; message: string }; result?: unknown }>();
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { seq: number; type: string };
      answers.set(m.seq, m);
    });
    let seq = 100;
    const send = async (message: object) => {
      const at = ++seq;
      ws.send(JSON.stringify({ ...message, seq: at }));
      await expect.poll(() => answers.get(at)).toBeDefined();
      return answers.get(at) as { type: string; error?: { code: string; message: string }; result?: unknown };
    };
    expect((await send({ type: 'has', refs: [] })).error?.message).toContain('say hello first');
    ws.send('not json');
    await expect.poll(() => answers.get(-1)?.error?.message).toContain('must be JSON');
    expect((await send({ type: 'hello', product: 'lorasmith', version: VERSION, protocol: REMOTE_PROTOCOL })).type).toBe('result');

    const content = join(remoteData, 'remote', 'content');
    const heldBefore = readdirSync(content).sort();
    const bad = await send({ type: 'upload', ref: { hash: `sha256:${'0'.repeat(64)}`, kind: 'folder' }, files: [{ path: '../escape', bytes: 1 }] });
    expect(bad.error).toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining('leaves its folder') });
    const unsorted = await send({ type: 'upload', ref: { hash: `sha256:${'0'.repeat(64)}`, kind: 'folder' }, files: [{ path: 'b', bytes: 1 }, { path: 'a', bytes: 1 }] });
    expect(unsorted.error?.message).toContain('sorted');
    const upload = await send({ type: 'upload', ref: { hash: `sha256:${'1'.repeat(64)}`, kind: 'file' }, files: [{ path: 'data.jsonl', bytes: 4 }] });
    const id = (upload.result as { upload: string }).upload;
    expect((await send({ type: 'chunk', upload: id, data: Buffer.from('abcd').toString('base64') })).result).toEqual({ received: 4 });
    expect((await send({ type: 'commit', upload: id })).error?.message).toContain('hashes to sha256:');
    expect((await send({ type: 'engine', request: { type: 'loadBase', model: { hash: `sha256:${'2'.repeat(64)}`, kind: 'folder' } } })).error?.code).toBe('CONTENT_MISSING');
    expect((await send({ type: 'read', run: '0123456789abcdef', path: 'adapter_model.safetensors', offset: 0, length: 10 })).error?.code).toBe('NOT_FOUND');
    expect((await send({ type: 'engine', request: { type: 'train', job: { model: 'x' } } })).error?.code).toBe('INVALID_INPUT');
    // Nothing kept, no temp left, and the socket still answers.
    expect(readdirSync(content).sort()).toEqual(heldBefore);
    expect(filesUnder(join(remoteData, 'remote')).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect((await send({ type: 'has', refs: [] })).result).toEqual({ missing: [] });
    ws.close();

    // A page (any Origin) never gets the engine socket.
    const page = new WebSocket(`ws://127.0.0.1:${server.port}/t/${server.token}/engine`, { headers: { origin: `http://127.0.0.1:${server.port}` } });
    const status = await new Promise<number>((resolve) => page.once('unexpected-response', (_q, r) => resolve(r.statusCode ?? 0)).once('open', () => resolve(101)));
    expect(status).toBe(403);
  }, 240_000);

  it('marks a run interrupted, with the reason, when the remote goes away mid-run, and resumes it from its last checkpoint', async () => {
    await useRemote();
    const adaptersBefore = library.adapters.list().length;
    let stopping: Promise<void> | null = null;
    const longer = { ...SETTINGS, maxSteps: 40, evalEvery: 0, checkpointEvery: 2 };
    const run = await api.invoke('train.start', { modelId, datasetId, settings: longer, adapterName: 'lost' });
    const off = api.on('train.progress', (p) => {
      if (p.runId === run.id && p.step >= 5) stopping ??= server.close();
    });
    const done = await finished(run.id);
    off();
    await stopping;
    expect(done.status).toBe('interrupted');
    expect(done.error).toMatch(/^\[REMOTE_ENGINE_LOST\] the remote engine at 127\.0\.0\.1:\d+ went away during train/);
    expect(done.adapterVersionId).toBeNull();
    expect(await api.invoke('adapters.versions', { adapterId: done.adapterId })).toEqual([]);
    expect(library.adapters.list().length).toBe(adaptersBefore + 1); // the adapter the run was for, without a version
    expect(filesUnder(join(dir, 'data')).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(existsSync(join(dir, 'data', 'runs', run.id, 'output'))).toBe(false); // no half-read adapter
    expect(done.checkpointStep).toBeGreaterThanOrEqual(2);

    // The engine is back (on another port): the run goes on from its checkpoint, sent to it by content.
    server = await startRemote();
    await useRemote();
    const steps: number[] = [];
    const offResume = api.on('train.progress', (p) => p.runId === run.id && steps.push(p.step));
    const resumedDone = finished(run.id);
    expect(await api.invoke('train.resume', { runId: run.id })).toMatchObject({ status: 'running' });
    const resumed = await resumedDone;
    offResume();
    expect(resumed).toMatchObject({ status: 'done', error: null });
    expect(Math.min(...steps)).toBe((done.checkpointStep ?? 0) + 1);
    expect((await api.invoke('adapters.versions', { adapterId: run.adapterId }))[0]?.trainedOn).toContain(`127.0.0.1:${server.port}`);
  }, 240_000);
});
