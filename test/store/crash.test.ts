/**
 * The library after a crash: a child process writes files and rows and is SIGKILLed (at a random moment, and
 * exactly between a temp write and its rename). After the startup check no row points at a missing or partial
 * file, no temp name is left, and the run is interrupted at a checkpoint that exists.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTempName } from '../../main/store/files';
import { openLibrary, type Library } from '../../main/store/library';
import { BIG_RANK, checkpointBytes } from './support/crash-data';
import { peftBytes, settings, tempDir, writeModelFolder } from './support/fixtures';

const CHILD = fileURLToPath(new URL('./support/crash-child.ts', import.meta.url));

/** Spawns the child; kills it with SIGKILL once `killWhen` matches its output, after `delayMs`. */
function runChild(args: string[], killWhen: RegExp | null, delayMs: number): Promise<{ signal: string | null; out: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let armed = false;
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (killWhen && !armed && killWhen.test(out)) {
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === null && code !== 0) reject(new Error(`child exited ${code}: ${err}`));
      else resolvePromise({ signal, out });
    });
  });
}

/** Compared as digests: vitest's deep equality walks half a megabyte byte by byte. */
function sha(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function allNames(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' });
}

function assertConsistent(lib: Library, runId: string): void {
  for (const adapter of lib.adapters.list()) {
    for (const version of lib.versions.list(adapter.id)) {
      expect(version.status).toBe('ok');
      const step = version.metrics.steps ?? -1;
      expect(sha(readFileSync(join(version.path, 'adapter_model.safetensors')))).toBe(sha(peftBytes(step, BIG_RANK)));
      expect(JSON.parse(readFileSync(join(version.path, 'adapter_config.json'), 'utf8'))).toMatchObject({ step });
    }
  }
  const run = lib.runs.get(runId);
  expect(run.status).toBe('interrupted');
  const checkpoint = lib.runs.resolveCheckpoint(runId);
  expect(checkpoint).not.toBeNull();
  const step = Number(/step-(\d+)\.bin$/.exec(checkpoint ?? '')?.[1]);
  expect(sha(readFileSync(checkpoint ?? ''))).toBe(sha(checkpointBytes(step)));
  expect(allNames(lib.dataDir.root).filter((name) => isTempName(name.split('/').pop() ?? ''))).toEqual([]);
}

describe('startup check after a crash', () => {
  let tmp: ReturnType<typeof tempDir>;
  let dataDir: string;
  let runId: string;
  let adapterId: string;
  beforeEach(() => {
    tmp = tempDir();
    dataDir = join(tmp.path, 'data');
    const lib = openLibrary(dataDir);
    const model = lib.models.import({ sourcePath: writeModelFolder(join(tmp.path, 'm')), mode: 'copy',
      architecture: 'gpt2', parameterCount: 80 });
    const ds = join(tmp.path, 'd.jsonl');
    const dataset = lib.datasets.import({ sourcePath: writeText(ds, '{"text":"a"}\n'), format: 'text' });
    adapterId = lib.adapters.create({ name: 'crashy', baseModelId: model.id }).id;
    runId = lib.runs.create({ adapterId, datasetId: dataset.id, settings: settings() }).id;
    lib.close();
  });
  afterEach(() => tmp.dispose());

  it('killed mid-write between a temp write and its rename: the old checkpoint stands, the temp goes', async () => {
    const { signal, out } = await runChild([dataDir, runId, adapterId, 'kill-before-rename'], null, 0);
    expect(signal).toBe('SIGKILL');
    expect(out).toBe('checkpoint 1\n');
    const dir = join(dataDir, 'runs', runId, 'checkpoints');
    expect(readdirSync(dir).filter(isTempName)).toHaveLength(1);
    expect(readdirSync(dir)).not.toContain('step-2.bin');

    const lib = openLibrary(dataDir);
    const report = lib.startupCheck();
    expect(report.runsInterrupted).toEqual([runId]);
    expect(report.tempsRemoved).toHaveLength(1);
    expect(lib.runs.get(runId)).toMatchObject({ step: 1, lastCheckpoint: `runs/${runId}/checkpoints/step-1.bin` });
    assertConsistent(lib, runId);
    lib.close();
  });

  it('killed between a version\'s move into place and its row: the next start records it from its marker, the run done', async () => {
    const { signal, out } = await runChild([dataDir, runId, adapterId, 'kill-before-insert'], null, 0);
    expect(signal).toBe('SIGKILL');
    expect(out).toBe('checkpoint 1\n');
    const dir = join(dataDir, 'adapters', adapterId);
    expect(readdirSync(dir).sort()).toEqual(['.v1.committing', 'v1']);

    const lib = openLibrary(dataDir);
    const report = lib.startupCheck();
    expect(report.versionsRecorded).toEqual([`adapters/${adapterId}/v1`]);
    expect(report.orphanFolders).toEqual([]);
    expect(report.runsInterrupted).toEqual([]);
    const [version] = lib.versions.list(adapterId);
    expect(version).toMatchObject({ version: 1, status: 'ok', origin: 'trained', metrics: { steps: 1 } });
    expect(sha(readFileSync(join(version?.path ?? '', 'adapter_model.safetensors')))).toBe(sha(peftBytes(1, BIG_RANK)));
    expect(lib.runs.get(runId)).toMatchObject({ status: 'done', adapterVersionId: version?.id });
    expect(readdirSync(dir)).toEqual(['v1']);
    expect(lib.startupCheck().versionsRecorded).toEqual([]);
    lib.close();
  });

  it('killed at random moments while committing versions: rows and files still agree, and the run resumes', async () => {
    let committed = 0;
    let rounds = 0;
    for (const delayMs of [0, 7, 23]) {
      rounds++;
      const { signal, out } = await runChild([dataDir, runId, adapterId, 'loop'], /committed \d+\n(.|\n)*committed \d+\n/, delayMs);
      expect(signal).toBe('SIGKILL');
      committed += (out.match(/committed/g) ?? []).length;
      const lib = openLibrary(dataDir);
      const report = lib.startupCheck();
      expect(report.runsInterrupted).toEqual([runId]);
      expect(report.versionsMissing).toEqual([]);
      assertConsistent(lib, runId);
      // Every commit the child announced has its row; a kill mid-commit adds at most one (recorded from its marker);
      // no folder is left without its row.
      const versions = lib.versions.list(adapterId).length;
      expect(versions).toBeGreaterThanOrEqual(committed);
      expect(versions).toBeLessThanOrEqual(committed + rounds);
      expect(report.orphanFolders).toEqual([]);
      lib.close();
    }
  });
});

function writeText(path: string, text: string): string {
  writeFileSync(path, text);
  return path;
}
