/**
 * Users' files thrown at the real server process: a dataset with a 50 MB line, a 200 MB dataset while other
 * requests come in, binary files under text names, invalid UTF-8, a file from /proc, model folders whose symlinks
 * lead outside, and `kill -9` in the middle of imports. After each: the server answers, the error names the
 * problem, and the library holds exactly what it should (nothing half-written, nothing left behind).
 */
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { WebSocket } from 'ws';
import { probe } from '../support/probes/record';
import {
  call, libraryState, openSocket, REPO, startServer, stillAnswers, tempDir, type Reply, type RunningServer,
} from '../support/probes/server';

const GPT2 = join(REPO, 'test/fixtures/tiny-random-gpt2');

let temp: ReturnType<typeof tempDir>;
let server: RunningServer;
let ws: WebSocket;

beforeAll(async () => {
  temp = tempDir('probe-files');
  server = await startServer(join(temp.dir, 'data'));
  ws = await openSocket(server);
});

afterAll(async () => {
  ws.close();
  const code = await server.stop();
  temp.remove();
  expect(code).toBe(0);
});

function file(name: string, content: string | Buffer): string {
  const path = join(temp.dir, name);
  writeFileSync(path, content);
  return path;
}

/** A refused input: the error has this code and names the problem, and the library is as it was. */
async function refused(name: string, args: unknown, code: string, message: RegExp): Promise<void> {
  const before = libraryState(server.dataDir);
  const reply = await call(ws, name, args);
  expect(reply).toMatchObject({ ok: false, error: { code, message: expect.stringMatching(message) } });
  expect(await stillAnswers(server)).toBe(true);
  expect(libraryState(server.dataDir)).toEqual(before);
}

const noTemps = (dir: string) => !readdirSync(dir, { recursive: true }).some((n) => String(n).includes('.tmp-'));

describe('datasets: read by content, streamed, off the main thread', () => {
  probe('preview-50mb-line', async () => {
    const rows = ['{"prompt":"a","completion":" 1"}', JSON.stringify({ prompt: 'b', completion: 'x'.repeat(50 << 20) }), '{"prompt":"c","completion":" 3"}'];
    const path = file('with-a-huge-line.jsonl', rows.join('\n') + '\n');
    const imported = await call(ws, 'datasets.import', { path });
    expect(imported).toMatchObject({ ok: true, result: { recordCount: 2, skippedCount: 1 } });
    const dataset = imported.result as { id: string };
    const model = await call(ws, 'models.import', { path: GPT2, mode: 'reference' });
    expect(model.ok).toBe(true);
    const preview = await call(ws, 'datasets.preview', { id: dataset.id, modelId: (model.result as { id: string }).id, limit: 10 });
    expect(preview).toMatchObject({ ok: true, result: { issues: [{ line: 2, message: expect.stringMatching(/records longer than 1 Mi characters are skipped/) }] } });
    expect((preview.result as { records: unknown[] }).records).toHaveLength(2);
    expect(await stillAnswers(server)).toBe(true);
  }, 180_000);

  probe('import-200mb-not-blocking', async () => {
    const path = join(temp.dir, 'big.jsonl');
    const fd = openSync(path, 'w');
    const row = (i: number) => JSON.stringify({ prompt: `Question ${i}: ${'lorem ipsum dolor sit amet '.repeat(8)}`, completion: ` Answer ${i}.` }) + '\n';
    const block = Array.from({ length: 1000 }, (_, i) => row(i)).join('');
    let records = 0;
    while (records * (block.length / 1000) < 200 << 20) {
      writeSync(fd, block);
      records += 1000;
    }
    closeSync(fd);
    // Ping while the import runs: replies must keep coming, each soon. A liveness bound, generous for a busy
    // machine, not a timing (bench/import.bench.ts measures the main thread's delay).
    const ping = await openSocket(server);
    let done = false;
    let answeredDuring = 0;
    let slowestMs = 0;
    const pinging = (async () => {
      while (!done) {
        const sent = performance.now();
        const reply = await call(ping, 'settings.get');
        if (done) break;
        slowestMs = Math.max(slowestMs, performance.now() - sent);
        if (reply.ok) answeredDuring++;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const imported = await call(ws, 'datasets.import', { path });
    done = true;
    await pinging;
    ping.close();
    expect(imported).toMatchObject({ ok: true, result: { recordCount: records, skippedCount: 0, format: 'prompt-completion' } });
    expect(answeredDuring).toBeGreaterThan(5);
    console.log();
    expect(slowestMs, 'the slowest answer while the import ran, in ms').toBeLessThan(2000);
    const stored = imported.result as { originalFile: string; normalizedFile: string };
    expect(statSync(stored.originalFile).size).toBe(statSync(path).size);
    expect(noTemps(server.dataDir)).toBe(true);
  }, 300_000);

  // Each refusal names the user's own file, not the copy the import read it from.
  const literally = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const named = (path: string, rest: string) => new RegExp(`^${literally(path)}: ${rest}`);

  probe('binary-dataset', async () => {
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00]), Buffer.alloc(64, 0)]);
    const program = file('program.jsonl', elf);
    await refused('datasets.import', { path: program }, 'INVALID_DATASET', named(program, 'line 1 holds a NUL byte .*binary file, not text'));
    const weights = file('weights.bin', Buffer.from(new Float32Array([1.5, -2, 3e8, 0.25]).buffer));
    await refused('datasets.import', { path: weights }, 'INVALID_DATASET', named(weights, 'line 1 (holds a NUL byte|is not valid UTF-8)'));
  });

  probe('invalid-utf8-line', async () => {
    const bytes = Buffer.concat([Buffer.from('{"text":"one"}\n{"text":"two"}\n{"text":"na'), Buffer.from([0xef, 0xbf]), Buffer.from('ve"}\n')]);
    const latin1 = file('latin1.jsonl', bytes);
    await refused('datasets.import', { path: latin1 }, 'INVALID_DATASET', named(latin1, 'line 3 is not valid UTF-8'));
  });

  probe('import-from-proc', async () => {
    const reply = await call(ws, 'datasets.import', { path: '/proc/self/status' });
    expect(reply.ok, JSON.stringify(reply.error)).toBe(true);
    const dataset = reply.result as { originalFile: string; normalizedFile: string; recordCount: number };
    // What is stored is what was read, once: the original is not empty, and its records are the ones normalised.
    const original = readFileSync(dataset.originalFile, 'utf8');
    expect(original.length).toBeGreaterThan(0);
    expect(original).toContain('Name:');
    expect(dataset.recordCount).toBe(original.split(/\n\s*\n/).filter((p) => p.trim() !== '').length);
    const header = JSON.parse(readFileSync(dataset.normalizedFile, 'utf8').split('\n')[0] as string) as { report: { valid: number; path: string } };
    expect(header.report).toMatchObject({ valid: dataset.recordCount, path: '/proc/self/status' });
  });
});

describe('model folders', () => {
  probe('symlink-outside', async () => {
    const outside = join(temp.dir, 'home');
    mkdirSync(join(outside, '.ssh'), { recursive: true });
    writeFileSync(join(outside, '.ssh', 'id_ed25519'), 'PRIVATE KEY');
    const withDir = join(temp.dir, 'model-linking-a-folder');
    cpSync(GPT2, withDir, { recursive: true });
    symlinkSync(outside, join(withDir, 'extras'));
    await refused('models.import', { path: withDir, mode: 'copy' }, 'SYMLINK_OUTSIDE', /'extras' .* is a symlink to the folder/);
    const withFile = join(temp.dir, 'model-linking-a-file');
    cpSync(GPT2, withFile, { recursive: true });
    symlinkSync(join(outside, '.ssh', 'id_ed25519'), join(withFile, 'notes.txt'));
    await refused('models.import', { path: withFile, mode: 'copy' }, 'SYMLINK_OUTSIDE', /'notes.txt' .* leading outside the model folder/);
    await refused('models.import', { path: withFile, mode: 'reference' }, 'SYMLINK_OUTSIDE', /leading outside the model folder/);
    // A Hugging Face cache snapshot links its files into the repository's blobs/: that is how the hub stores them.
    const repo = join(temp.dir, 'hub', 'models--tiny--gpt2');
    const snapshot = join(repo, 'snapshots', '0123abcd');
    mkdirSync(join(repo, 'blobs'), { recursive: true });
    mkdirSync(snapshot, { recursive: true });
    for (const name of readdirSync(GPT2)) {
      cpSync(join(GPT2, name), join(repo, 'blobs', `blob-${name}`));
      symlinkSync(join('..', '..', 'blobs', `blob-${name}`), join(snapshot, name));
    }
    const imported = await call(ws, 'models.import', { path: snapshot, mode: 'copy' });
    expect(imported, JSON.stringify(imported.error)).toMatchObject({ ok: true, result: { architecture: 'gpt2' } });
    const copied = (imported.result as { path: string }).path;
    expect(readFileSync(join(copied, 'config.json'))).toEqual(readFileSync(join(GPT2, 'config.json')));
  });
});

describe('kill -9 in the middle of an import, and the next start', () => {
  probe('kill9-model-import', async () => {
    const dataDir = join(temp.dir, 'crashing');
    const model = join(temp.dir, 'big-model');
    cpSync(GPT2, model, { recursive: true });
    // A large file to copy, so that the kill lands while the copy is under way.
    const fd = openSync(join(model, 'extra-weights.bin'), 'w');
    const chunk = Buffer.alloc(1 << 20, 7);
    for (let i = 0; i < 256; i++) writeSync(fd, chunk);
    closeSync(fd);

    // 1. Killed while the file worker copies (a temp folder in models/).
    const first = await startServer(dataDir);
    const socket = await openSocket(first);
    const models = join(dataDir, 'models');
    const pending = call(socket, 'models.import', { path: model, mode: 'copy' }).catch(() => null);
    for (let i = 0; i < 2000 && !(existsSync(models) && readdirSync(models).some((n) => n.includes('.tmp-'))); i++) await new Promise((r) => setTimeout(r, 5));
    expect(readdirSync(models).some((n) => n.includes('.tmp-'))).toBe(true);
    first.child.kill('SIGKILL');
    await first.exited;
    await pending;

    // 2. Killed at the very rename that moves the complete copy into models/ (the row is never written).
    const second = await startServer(dataDir, { crashOnRename: `${models}/mdl_` });
    expect(second.output()).toMatch(/Removed 1 unfinished write\(s\)/);
    const socket2 = await openSocket(second);
    void call(socket2, 'models.import', { path: model, mode: 'copy' }).catch(() => null);
    expect(await second.exited).toBeNull(); // killed
    expect(readdirSync(models).some((n) => n.includes('.tmp-'))).toBe(true);
    // A complete folder without a row, as a crash between the rename and the insert leaves it.
    cpSync(model, join(models, 'mdl_20260101_abcdefghjkmn'), { recursive: true });

    const third = await startServer(dataDir);
    try {
      expect(third.output()).toMatch(/Removed 1 unfinished write\(s\)/);
      expect(third.output()).toContain('Removed 1 folder(s) no record points at (an import or a delete that stopped midway): models/mdl_20260101_abcdefghjkmn');
      expect(readdirSync(models)).toEqual([]);
      const socket3 = await openSocket(third);
      expect(await call(socket3, 'models.list')).toMatchObject({ ok: true, result: [] });
      // And the same import now completes.
      const done: Reply = await call(socket3, 'models.import', { path: model, mode: 'copy' });
      expect(done.ok, JSON.stringify(done.error)).toBe(true);
      socket3.close();
      expect(noTemps(dataDir)).toBe(true);
    } finally {
      await third.stop();
    }
  }, 300_000);

  probe('kill9-dataset-import', async () => {
    const dataDir = join(temp.dir, 'crashing-datasets');
    const path = file('small.jsonl', '{"prompt":"a","completion":" b"}\n');
    const first = await startServer(dataDir, { crashOnRename: `${join(dataDir, 'datasets')}/` });
    const socket = await openSocket(first);
    void call(socket, 'datasets.import', { path }).catch(() => null);
    expect(await first.exited).toBeNull();
    expect(noTemps(join(dataDir, 'datasets'))).toBe(false);
    const next = await startServer(dataDir);
    try {
      expect(next.output()).toMatch(/Removed \d unfinished write\(s\)/);
      expect(readdirSync(join(dataDir, 'datasets'))).toEqual([]);
      const socket2 = await openSocket(next);
      expect(await call(socket2, 'datasets.list')).toMatchObject({ ok: true, result: [] });
      socket2.close();
    } finally {
      await next.stop();
    }
  }, 180_000);
});
