/**
 * Training through the real server as a crash meets it: `kill -9` while a run trains (its checkpoints written) and
 * at the rename that commits its adapter as a version, then the next start; and the app's exports aimed at a
 * folder that holds the user's files. After each: the next start says what it found, the run resumes to a version,
 * and no temp, no row without its files and no files without a row are left; the user's folder is as it was.
 */
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { WebSocket } from 'ws';
import type { AdapterVersion, TrainingRun, TrainingSettings } from '../../preload/contract';
import { probe } from '../support/probes/record';
import { countingJsonl, gpt2Settings } from '../support/training-data';
import { call, filesUnder, nextEvent, openSocket, REPO, rowCounts, startServer, tempDir, type RunningServer } from '../support/probes/server';

const GPT2 = join(REPO, 'test/fixtures/gpt2-real-tokenizer-1layer');

const settings = (maxSteps: number): TrainingSettings => gpt2Settings(maxSteps, { checkpointEvery: 2 });

let temp: ReturnType<typeof tempDir>;
let dataFile: string;

beforeAll(() => {
  temp = tempDir('probe-training');
  dataFile = join(temp.dir, 'count.jsonl');
  writeFileSync(dataFile, countingJsonl(8));
});

afterAll(() => temp.remove());

async function ok<T>(ws: WebSocket, name: string, args: unknown = {}): Promise<T> {
  const reply = await call(ws, name, args);
  expect(reply.ok, `${name}: ${JSON.stringify(reply.error)}`).toBe(true);
  return reply.result as T;
}

/** A library with the model and the dataset imported; the ids to train with. */
async function prepared(ws: WebSocket): Promise<{ modelId: string; datasetId: string }> {
  const model = await ok<{ id: string }>(ws, 'models.import', { path: GPT2, mode: 'copy', name: 'tiny' });
  const dataset = await ok<{ id: string }>(ws, 'datasets.import', { path: dataFile });
  return { modelId: model.id, datasetId: dataset.id };
}

/** Rows and files agree: every version's folder holds its files, no temp is left, no version folder lacks a row. */
function consistent(dataDir: string): void {
  const files = filesUnder(dataDir, (rel) => /^library\.(sqlite|lock)/.test(rel));
  expect(files.filter((f) => f.includes('.tmp-') || f.includes('.committing'))).toEqual([]);
  const versionFolders = new Set(files.filter((f) => f.startsWith('adapters/')).map((f) => f.split('/').slice(0, 3).join('/')));
  expect(versionFolders.size).toBe(rowCounts(dataDir).adapter_versions);
}

async function resumed(server: RunningServer, runId: string): Promise<TrainingRun> {
  const ws = await openSocket(server);
  try {
    const finished = nextEvent(ws, 'train.finished', (p) => (p as { run: TrainingRun }).run.id === runId);
    await ok(ws, 'train.resume', { runId });
    const { run } = (await finished) as { run: TrainingRun };
    return run;
  } finally {
    ws.close();
  }
}

describe('a crash while training loses nothing and leaves nothing', () => {
  probe('kill9-training', async () => {
    const dataDir = join(temp.dir, 'killed-while-training');
    const first = await startServer(dataDir);
    const ws = await openSocket(first);
    const { modelId, datasetId } = await prepared(ws);
    // Killed once two checkpoints are written and the run goes on.
    const stepFive = nextEvent(ws, 'train.progress', (p) => (p as { step: number }).step >= 5);
    const run = await ok<TrainingRun>(ws, 'train.start', { modelId, datasetId, settings: settings(60), adapterName: 'counting' });
    await stepFive;
    first.child.kill('SIGKILL');
    expect(await first.exited).toBeNull();

    const second = await startServer(dataDir);
    try {
      expect(second.output()).toMatch(/Marked 1 interrupted training run\(s\)/);
      const ws2 = await openSocket(second);
      const [stored] = await ok<TrainingRun[]>(ws2, 'runs.list');
      expect(stored).toMatchObject({ id: run.id, status: 'interrupted' });
      expect(stored?.checkpointStep).toBeGreaterThanOrEqual(4);
      ws2.close();
      consistent(dataDir);
      // Resumed from its checkpoint, it ends as a version with its files.
      const done = await resumed(second, run.id);
      expect(done).toMatchObject({ status: 'done' });
      expect(done.adapterVersionId).toEqual(expect.any(String));
      consistent(dataDir);
    } finally {
      await second.stop();
    }
  }, 600_000);

  probe('kill9-version-commit', async () => {
    const dataDir = join(temp.dir, 'killed-at-commit');
    // Killed at the rename that moves the finished adapter into adapters/ (its commit marker written, no row yet).
    const first = await startServer(dataDir, { crashOnRename: `output\n${join(dataDir, 'adapters')}` });
    const ws = await openSocket(first);
    const { modelId, datasetId } = await prepared(ws);
    const run = await ok<TrainingRun>(ws, 'train.start', { modelId, datasetId, settings: settings(4), adapterName: 'counting' });
    expect(await first.exited).toBeNull();
    expect(existsSync(join(dataDir, 'runs', run.id, 'output', 'adapter_model.safetensors'))).toBe(true);

    const second = await startServer(dataDir);
    try {
      expect(second.output()).toMatch(/Marked 1 interrupted training run\(s\)/);
      expect(second.output()).not.toMatch(/with no record/);
      // The attempt's finished but uncommitted output is the run's own: resuming replaces it and commits a version.
      const done = await resumed(second, run.id);
      expect(done).toMatchObject({ status: 'done' });
      const ws2 = await openSocket(second);
      const [adapter] = await ok<{ id: string }[]>(ws2, 'adapters.list');
      const versions = await ok<AdapterVersion[]>(ws2, 'adapters.versions', { adapterId: adapter?.id });
      expect(versions).toHaveLength(1);
      expect(existsSync(join(versions[0]?.path ?? '', 'adapter_model.safetensors'))).toBe(true);
      ws2.close();
      expect(existsSync(join(dataDir, 'runs', run.id, 'output'))).toBe(false);
      consistent(dataDir);
    } finally {
      await second.stop();
    }
  }, 600_000);

  probe('kill9-version-recorded', async () => {
    const dataDir = join(temp.dir, 'killed-after-move');
    // Killed just after the finished adapter was moved into adapters/<id>/v1, before its row was written.
    const first = await startServer(dataDir, { crashOnRename: `output\n${join(dataDir, 'adapters')}`, crashAfterRename: true });
    const ws = await openSocket(first);
    const { modelId, datasetId } = await prepared(ws);
    const run = await ok<TrainingRun>(ws, 'train.start', { modelId, datasetId, settings: settings(4), adapterName: 'counting' });
    expect(await first.exited).toBeNull();
    const adapterDir = join(dataDir, 'adapters', readdirSync(join(dataDir, 'adapters'))[0] ?? '');
    expect(readdirSync(adapterDir).sort()).toEqual(['.v1.committing', 'v1']);
    expect(rowCounts(dataDir).adapter_versions).toBe(0);

    const second = await startServer(dataDir);
    try {
      // The next start records the version from its marker: the run is done, not interrupted, and nothing is orphaned.
      expect(second.output()).toMatch(/Recorded 1 adapter version\(s\) whose saving a stop interrupted: adapters\/ada_\w+\/v1/);
      expect(second.output()).not.toMatch(/interrupted training run|with no record/);
      const ws2 = await openSocket(second);
      const runs = await ok<TrainingRun[]>(ws2, 'runs.list');
      expect(runs.find((r) => r.id === run.id)).toMatchObject({ status: 'done', step: 4 });
      const versions = await ok<AdapterVersion[]>(ws2, 'adapters.versions', { adapterId: basename(adapterDir) });
      expect(versions).toHaveLength(1);
      expect(versions[0]).toMatchObject({ version: 1, status: 'ok', metrics: { steps: 4 } });
      expect(runs.find((r) => r.id === run.id)?.adapterVersionId).toBe(versions[0]?.id);
      expect(readdirSync(adapterDir)).toEqual(['v1']);
      ws2.close();
      consistent(dataDir);
    } finally {
      await second.stop();
    }
  }, 600_000);
});

describe("the app's exports never write over the user's files", () => {
  probe('export-not-empty', async () => {
    const dataDir = join(temp.dir, 'exports');
    const server = await startServer(dataDir);
    try {
      const ws = await openSocket(server);
      const { modelId, datasetId } = await prepared(ws);
      const finished = nextEvent(ws, 'train.finished');
      await ok(ws, 'train.start', { modelId, datasetId, settings: settings(2), adapterName: 'counting' });
      const { run } = (await finished) as { run: TrainingRun };
      expect(run.status).toBe('done');
      const versionId = run.adapterVersionId;

      const mine = join(temp.dir, 'my-folder');
      mkdirSync(mine);
      writeFileSync(join(mine, 'notes.md'), 'mine\n');
      const before = filesUnder(mine, () => false);
      for (const name of ['adapters.exportPeft', 'adapters.exportMerged']) {
        const reply = await call(ws, name, { versionId, destination: mine });
        expect(reply, name).toMatchObject({ ok: false, error: { message: expect.stringContaining(mine) } });
        expect(['ALREADY_EXISTS', 'OUTPUT_NOT_EMPTY', 'EXPORT_FAILED']).toContain(reply.error?.code);
        expect(filesUnder(mine, () => false)).toEqual(before);
        expect(readFileSync(join(mine, 'notes.md'), 'utf8')).toBe('mine\n');
      }
      expect(readdirSync(temp.dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
      // A new folder beside it is written whole.
      const fresh = join(temp.dir, 'counting-peft');
      await ok(ws, 'adapters.exportPeft', { versionId, destination: fresh });
      expect(readdirSync(fresh)).toEqual(expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors']));
      ws.close();
    } finally {
      await server.stop();
    }
  }, 600_000);
});
