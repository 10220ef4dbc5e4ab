/**
 * Two real `lorasmith serve` processes on free loopback ports, each on its own temp data folder with the starter
 * model and samples: B's Settings name A as its remote engine (what an SSH tunnel's local end looks like: a port
 * on 127.0.0.1 and A's token). A short run on the starter model started in B trains on A and comes back into B's
 * library naming A's machine and version, with the same adapter bytes as the same run trained on A's own engine.
 * Then A is killed (SIGKILL) in the middle of a run started in B: B's run is interrupted with the reason, no
 * version and no temp file is left, and B goes on answering.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { WebSocket } from 'ws';
import type { AdapterVersion, BaseModel, Dataset, TrainingRun, TrainingSettings } from '../../preload/contract';
import {
  REPO, call, filesUnder, nextEvent, openSocket, startServer, stillAnswers, tempDir, type RunningServer,
} from '../support/probes/server';

const RESOURCES = join(REPO, 'resources');
const SETTINGS: TrainingSettings = {
  lora: { targetModules: ['q_proj', 'v_proj'], rank: 4, alpha: 8, dropout: 0.05, useRslora: false },
  maxSteps: 4, learningRate: 5e-3, batchSize: 2, gradAccum: 1, maxSeqLen: 64, valSplit: 0, seed: 11,
  scheduler: 'linear', warmupSteps: 1, weightDecay: 0, maxGradNorm: 1, evalEvery: 0, checkpointEvery: 2, trainOnPrompt: false,
};

let temp: ReturnType<typeof tempDir>;
let remote: RunningServer;
let local: RunningServer;
let remoteWs: WebSocket;
let localWs: WebSocket;

async function ok<T>(ws: WebSocket, name: string, args: unknown = {}): Promise<T> {
  const reply = await call(ws, name, args);
  if (!reply.ok) throw new Error(`${name}: [${reply.error?.code}] ${reply.error?.message}`);
  return reply.result as T;
}

/** Starts a run on the starter model and a sample dataset; resolves with the run as it finished. */
async function train(ws: WebSocket, adapterName: string, settings: TrainingSettings, onStarted?: (run: TrainingRun) => void): Promise<TrainingRun> {
  const model = (await ok<BaseModel[]>(ws, 'models.list'))[0] as BaseModel;
  const dataset = (await ok<Dataset[]>(ws, 'datasets.list')).find((d) => d.name === 'Verily (chat)') as Dataset;
  const done = nextEvent(ws, 'train.finished', (p) => (p as { run: TrainingRun }).run.adapterName === adapterName);
  const started = await ok<TrainingRun>(ws, 'train.start', { modelId: model.id, datasetId: dataset.id, settings, adapterName });
  onStarted?.(started);
  return ((await done) as { run: TrainingRun }).run;
}

async function versionOf(ws: WebSocket, run: TrainingRun): Promise<AdapterVersion> {
  const versions = await ok<AdapterVersion[]>(ws, 'adapters.versions', { adapterId: run.adapterId });
  return versions.find((v) => v.id === run.adapterVersionId) as AdapterVersion;
}

beforeAll(async () => {
  temp = tempDir('remote-engine-serve');
  [remote, local] = await Promise.all([
    startServer(join(temp.dir, 'remote'), { resourcesDir: RESOURCES }),
    startServer(join(temp.dir, 'local'), { resourcesDir: RESOURCES }),
  ]);
  [remoteWs, localWs] = await Promise.all([openSocket(remote), openSocket(local)]);
}, 240_000);

afterAll(async () => {
  localWs?.close();
  remoteWs?.close();
  await Promise.all([local?.stop(), remote?.stop()]);
  temp?.remove();
});

describe('lorasmith serve as the remote engine of another', () => {
  it('trains a run started in one server on the other, and brings it back with its lineage and the same bytes', async () => {
    await ok(localWs, 'settings.set', { remoteEngine: { address: `127.0.0.1:${remote.port}`, token: remote.token } });
    const info = await ok<{ remoteEngine: { address: string; machine: string | null; problem: string | null } }>(localWs, 'app.info');
    expect(info.remoteEngine).toMatchObject({ address: `127.0.0.1:${remote.port}`, problem: null, machine: expect.stringContaining(hostname()) });

    const run = await train(localWs, 'trained-remotely', SETTINGS);
    expect(run).toMatchObject({ status: 'done', error: null });
    const version = await versionOf(localWs, run);
    expect(version.trainedOn).toMatch(new RegExp(`through the remote engine at 127\\.0\\.0\\.1:${remote.port}, Lorasmith \\d+\\.\\d+\\.\\d+`));
    expect(version.path.startsWith(local.dataDir)).toBe(true);
    // The remote's library holds the starter model already: only the dataset file was sent.
    expect(readdirSync(join(remote.dataDir, 'remote', 'content'))).toEqual([expect.stringMatching(/^[0-9a-f]{64}\.file$/)]);

    const same = await train(remoteWs, 'trained-there', SETTINGS);
    expect(same.status).toBe('done');
    const sameVersion = await versionOf(remoteWs, same);
    expect(sameVersion.trainedOn ?? null).toBeNull();
    const bytes = (v: AdapterVersion) => readFileSync(join(v.path, 'adapter_model.safetensors'));
    expect(bytes(version).length).toBeGreaterThan(0);
    expect(bytes(version).equals(bytes(sameVersion))).toBe(true);
  }, 300_000);

  it('marks the run interrupted when the remote engine is killed mid-run, and leaves nothing half-written', async () => {
    let killed = false;
    const progress = new Promise<void>((resolve) => {
      localWs.on('message', (data) => {
        const m = JSON.parse(String(data)) as { event?: string; payload?: { step?: number } };
        if (m.event === 'train.progress' && (m.payload?.step ?? 0) >= 2 && !killed) {
          killed = true;
          remote.child.kill('SIGKILL');
          resolve();
        }
      });
    });
    const run = await train(localWs, 'lost-midway', { ...SETTINGS, maxSteps: 5000, checkpointEvery: 0 });
    await progress;
    await remote.exited;
    expect(run.status).toBe('interrupted');
    expect(run.error).toMatch(/^\[REMOTE_ENGINE_LOST\] the remote engine at 127\.0\.0\.1:\d+ went away during train/);
    expect(run.adapterVersionId).toBeNull();
    expect(await ok<AdapterVersion[]>(localWs, 'adapters.versions', { adapterId: run.adapterId })).toEqual([]);
    expect(filesUnder(local.dataDir).filter((f) => f.includes('.tmp-') || f.startsWith(`runs/${run.id}/output`))).toEqual([]);
    expect(await stillAnswers(local)).toBe(true);
  }, 300_000);
});
