/**
 * WAL: readers on other connections (a worker thread, a read-only library) read while a run writes metrics.
 * Each batch is one transaction, so a reader sees whole batches only, never a torn one, and never SQLITE_BUSY.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openLibrary, type Library } from '../../main/store/library';
import { settings, tempDir, writeModelFolder } from './support/fixtures';

const BATCH = 50;
const BATCHES = 120;

// Plain JS so the worker needs no TypeScript loader; it reads with its own read-only connection.
const READER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { readonly: true });
db.pragma('busy_timeout = 5000');
const count = db.prepare('SELECT COUNT(*) AS n, COALESCE(MAX(step), -1) AS last FROM run_metrics WHERE run_id = ?');
const seen = [];
const stop = new Int32Array(workerData.stop);
let errors = 0;
let reads = 0;
parentPort.postMessage({ ready: true });
while (Atomics.load(stop, 0) === 0) {
  try {
    const r = count.get(workerData.runId);
    reads++;
    const prev = seen[seen.length - 1];
    if (!prev || prev[0] !== r.n || prev[1] !== r.last) seen.push([r.n, r.last]);
  } catch (e) { errors++; }
}
db.close();
parentPort.postMessage({ seen, errors, reads });
`;

describe('concurrent readers while a run writes metrics', () => {
  let tmp: ReturnType<typeof tempDir>;
  let lib: Library;
  let runId: string;
  beforeEach(() => {
    tmp = tempDir();
    lib = openLibrary(join(tmp.path, 'data'));
    const model = lib.models.import({ sourcePath: writeModelFolder(join(tmp.path, 'm')), mode: 'copy',
      architecture: 'gpt2', parameterCount: 80 });
    writeFileSync(join(tmp.path, 'd.jsonl'), '{"text":"a"}\n');
    const ds = lib.datasets.import({ sourcePath: join(tmp.path, 'd.jsonl'), format: 'text' });
    const adapter = lib.adapters.create({ name: 'a', baseModelId: model.id });
    runId = lib.runs.create({ adapterId: adapter.id, datasetId: ds.id, settings: settings() }).id;
    lib.runs.start(runId);
  });
  afterEach(() => {
    lib.close();
    tmp.dispose();
  });

  it('a worker thread sees only whole batches, in order, with no errors', async () => {
    const stop = new SharedArrayBuffer(4);
    const worker = new Worker(READER, { eval: true, workerData: {
      driver: createRequire(import.meta.url).resolve('better-sqlite3'), file: join(lib.dataDir.root, 'library.sqlite'), runId, stop,
    } });
    type Report = { seen: [number, number][]; errors: number; reads: number };
    let ready: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (ready = resolve));
    const result = new Promise<Report>((resolve, reject) => {
      worker.on('message', (m: Report | { ready: true }) => ('ready' in m ? ready() : resolve(m)));
      worker.once('error', reject);
    });
    await started;
    const reader = openLibrary(join(tmp.path, 'data'), { readonly: true });
    const inProcessCounts: number[] = [];
    for (let b = 0; b < BATCHES; b++) {
      lib.metrics.append(runId, Array.from({ length: BATCH }, (_, i) => ({ step: b * BATCH + i, loss: 1 / (1 + i) })));
      if (b % 10 === 9) {
        inProcessCounts.push(reader.metrics.list(runId, { fromStep: b * BATCH - 5 }).length);
        // Yield now and then so the reader thread gets turns on a busy two-core machine.
        await new Promise((r) => setTimeout(r, 1));
      }
    }
    Atomics.store(new Int32Array(stop), 0, 1);
    const { seen, errors, reads } = await result;
    reader.close();

    expect(errors).toBe(0);
    expect(reads).toBeGreaterThan(0);
    for (const [n, last] of seen) {
      expect(n % BATCH).toBe(0);
      expect(last).toBe(n - 1);
    }
    const counts = seen.map(([n]) => n);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(new Set(counts).size).toBeGreaterThan(1);
    // The read-only library in this thread sees each batch as soon as its transaction commits.
    expect(inProcessCounts).toEqual(Array.from({ length: BATCHES / 10 }, () => BATCH + 5));
    expect(() => reader.metrics.append(runId, [{ step: 1 }])).toThrow();
  });
});
