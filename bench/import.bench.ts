/**
 * Importing a large dataset while the main thread serves: a JSONL of LORASMITH_BENCH_IMPORT_MB megabytes (1024 by
 * default) imported through the app's own path (services/datasets: the file worker copies, normalises and hashes
 * it; the store moves it in), with the main thread's event-loop delay sampled throughout (perf_hooks) and the
 * process's resident memory read every 50 ms. The main thread must stay free (the goal: no stall over 100 ms).
 */
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { importDataset } from '../main/services/datasets';
import { FileWork } from '../main/services/file-work/client';
import { openLibrary } from '../main/store/index';
import { sized } from './quick';

const MB = 1 << 20;

function writeDataset(path: string, megabytes: number): number {
  const row = (i: number) => JSON.stringify({ prompt: `Question ${i}: ${'the quick brown fox jumps over the lazy dog '.repeat(6)}`, completion: ` Answer ${i}.` }) + '\n';
  const block = Array.from({ length: 1000 }, (_, i) => row(i)).join('');
  const fd = openSync(path, 'w');
  let records = 0;
  try {
    for (let written = 0; written < megabytes * MB; written += Buffer.byteLength(block)) {
      writeSync(fd, block);
      records += 1000;
    }
  } finally {
    closeSync(fd);
  }
  return records;
}

export async function run(): Promise<string> {
  const megabytes = Number(process.env.LORASMITH_BENCH_IMPORT_MB ?? sized(1024, 8));
  const dir = mkdtempSync(join(tmpdir(), 'lorasmith-bench-import-'));
  const library = openLibrary(join(dir, 'data'));
  const files = new FileWork();
  try {
    const source = join(dir, 'big.jsonl');
    const records = writeDataset(source, megabytes);
    const bytes = statSync(source).size;
    const delay = monitorEventLoopDelay({ resolution: 10 });
    let peakRss = process.memoryUsage().rss;
    const baseRss = peakRss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
    delay.enable();
    const started = performance.now();
    const dataset = await importDataset(library, files, { path: source });
    const seconds = (performance.now() - started) / 1000;
    delay.disable();
    clearInterval(sampler);
    if (dataset.recordCount !== records) throw new Error(`imported ${dataset.recordCount} records, wrote ${records}`);
    const ms = (ns: number) => (ns / 1e6).toFixed(1);
    return [
      '## Dataset import: the main thread while a large file is read',
      '',
      `A ${(bytes / MB).toFixed(0)} MB JSONL (${records.toLocaleString('en')} records) imported through services/datasets (file worker, streamed).`,
      '',
      '| import time | main-thread delay p50 | p99 | max | main-process RSS growth |',
      '| --- | --- | --- | --- | --- |',
      `| ${seconds.toFixed(1)} s | ${ms(delay.percentile(50))} ms | ${ms(delay.percentile(99))} ms | ${ms(delay.max)} ms | ${((peakRss - baseRss) / MB).toFixed(0)} MB |`,
      '',
    ].join('\n');
  } finally {
    await files.close();
    library.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
