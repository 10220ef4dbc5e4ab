/**
 * The library's hot paths: appending a run's metric points (one transaction per batch, statements prepared once)
 * and reading a whole series back for a chart, plus the startup check over a library with many versions.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { openLibrary, type Library } from '../main/store/library';
import { settings, writeModelFolder, writePeftFolder } from '../test/store/support/fixtures';

function setup(root: string): { lib: Library; runId: string; adapterId: string } {
  const lib = openLibrary(join(root, 'data'));
  const model = lib.models.import({ sourcePath: writeModelFolder(join(root, 'm')), mode: 'copy',
    architecture: 'gpt2', parameterCount: 80 });
  writeFileSync(join(root, 'd.jsonl'), '{"text":"a"}\n');
  const ds = lib.datasets.import({ sourcePath: join(root, 'd.jsonl'), format: 'text' });
  const adapterId = lib.adapters.create({ name: 'bench', baseModelId: model.id }).id;
  const runId = lib.runs.create({ adapterId, datasetId: ds.id, settings: settings() }).id;
  lib.runs.start(runId);
  return { lib, runId, adapterId };
}

function time(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

export async function run(): Promise<string> {
  const root = mkdtempSync(join(tmpdir(), 'lorasmith-bench-store-'));
  const rows: string[] = [];
  try {
    const { lib, runId, adapterId } = setup(root);
    const point = (step: number) => ({ step, loss: 2 / (1 + step), lr: 1e-4, tokensPerSecond: 900, gradNorm: 0.7 });
    let step = 0;
    for (const batch of [1, 10, 100, 10_000]) {
      const batches = Math.max(1, Math.floor(20_000 / batch));
      const ms = time(() => {
        for (let b = 0; b < batches; b++) lib.metrics.append(runId, Array.from({ length: batch }, () => point(step++)));
      });
      rows.push(`| append, batches of ${batch} | ${batches * batch} | ${ms.toFixed(0)} ms | ` +
        `${((batches * batch) / (ms / 1000)).toFixed(0)} points/s |`);
    }
    let n = 0;
    const readMs = time(() => (n = lib.metrics.list(runId).length));
    rows.push(`| read whole series | ${n} | ${readMs.toFixed(0)} ms | ${(n / (readMs / 1000)).toFixed(0)} points/s |`);
    const chartMs = time(() => (n = lib.metrics.list(runId, { maxPoints: 1000 }).length));
    rows.push(`| read for a chart (maxPoints 1000) | ${n} | ${chartMs.toFixed(0)} ms | |`);
    for (let v = 0; v < 200; v++) {
      lib.versions.commit({ adapterId, filesFrom: writePeftFolder(join(root, `p${v}`), v), take: 'move',
        origin: 'imported' });
    }
    const checkMs = time(() => lib.startupCheck());
    rows.push(`| startup check, 200 versions | 200 | ${checkMs.toFixed(0)} ms | |`);
    lib.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return ['## Library (SQLite store)', '', '| operation | rows | time | rate |', '|---|---:|---:|---:|', ...rows, '']
    .join('\n');
}
