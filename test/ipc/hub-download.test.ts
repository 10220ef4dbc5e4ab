/**
 * models.download against a fake Hugging Face hub on 127.0.0.1 (node:http) serving test/fixtures/tiny-random-gpt2:
 * only the files a model needs are fetched, byte for byte; a cancelled download resumes with an HTTP Range
 * request from the bytes its .part file holds; the model lands in the library as source kind 'hub' at the
 * commit the hub resolved. Nothing here reaches the internet.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Api, Events } from '../../preload/contract';
import { HostClient } from '../../main/host/client';
import { workerHost } from '../../main/host/worker-host';
import { FileWork } from '../../main/services/file-work/client';
import { createHandlers, type AppHandlers } from '../../main/ipc/handlers';
import { isNeededFile } from '../../main/services/hub-download';
import { memoryPair } from '../../main/ipc/memory';
import { typedPaths } from '../../main/ipc/paths';
import { openLibrary, type Library } from '../../main/store/index';

const fixture = join(import.meta.dirname, '../fixtures/tiny-random-gpt2');
const REPO = 'fake-org/tiny-gpt2';
const COMMIT = 'a'.repeat(40);
const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json'];
/** Listed by the hub but not needed (or not loadable): never requested. */
const EXTRA_FILES = ['README.md', 'pytorch_model.bin', 'onnx/model.safetensors', '.gitattributes', 'reference_outputs.json'];

interface Served {
  readonly url: string;
  readonly range: string | undefined;
  readonly status: number;
}

let dir = '';
let server: Server;
let hubUrl = '';
let library: Library;
let host: HostClient;
let files: FileWork;
let app: AppHandlers;
let api: Api;
const served: Served[] = [];
/** When set, model.safetensors arrives with one byte flipped. */
let corrupt = false;
/** When set, model.safetensors is sent in two halves and the second waits until this resolves. */
let stall: { release: Promise<void>; sentHalf: () => void } | null = null;

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

function sendFile(req: IncomingMessage, res: ServerResponse, name: string): void {
  const bytes = readFileSync(join(fixture, name));
  const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = match ? Number(match[1]) : 0;
  const status = match ? 206 : 200;
  served.push({ url: req.url ?? '', range: req.headers.range, status });
  const body = Buffer.from(bytes.subarray(start));
  if (corrupt && name === 'model.safetensors') body[body.length - 1] = (body[body.length - 1] ?? 0) ^ 0xff;
  res.writeHead(status, {
    'content-length': String(body.length),
    ...(match ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}),
  });
  const current = stall;
  if (name === 'model.safetensors' && current && !match) {
    const half = Math.floor(body.length / 2);
    res.write(body.subarray(0, half), () => current.sentHalf());
    void current.release.then(() => res.end(body.subarray(half)));
    return;
  }
  res.end(body);
}

function hub(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  if (url.pathname === `/api/models/${REPO}/revision/main`) {
    served.push({ url: req.url ?? '', range: undefined, status: 200 });
    const siblings = [...MODEL_FILES, ...EXTRA_FILES].map((name) => ({
      rfilename: name, ...(existsSync(join(fixture, name)) ? { size: statSync(join(fixture, name)).size } : { size: 10 }),
      ...(name === 'model.safetensors' ? { lfs: { sha256: sha256(readFileSync(join(fixture, name))), size: statSync(join(fixture, name)).size } } : {}),
    }));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: REPO, sha: COMMIT, siblings }));
    return;
  }
  const file = url.pathname.startsWith(`/${REPO}/resolve/${COMMIT}/`) ? decodeURIComponent(url.pathname.slice(`/${REPO}/resolve/${COMMIT}/`.length)) : null;
  if (file && MODEL_FILES.includes(file)) return sendFile(req, res, file);
  served.push({ url: req.url ?? '', range: undefined, status: 404 });
  res.writeHead(404).end('not found');
}

function nextEvent<E extends keyof Events>(name: E, where: (p: Events[E]) => boolean = () => true): Promise<Events[E]> {
  return new Promise((resolve) => {
    const off = api.on(name, (payload) => {
      if (where(payload)) {
        off();
        resolve(payload);
      }
    });
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lorasmith-hub-'));
  server = createServer(hub);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hubUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  library = openLibrary(join(dir, 'data'));
  host = new HostClient(workerHost()); // never started: downloads do not touch the engine host
  files = new FileWork();
  const pair = memoryPair(() => app.handlers);
  app = createHandlers({ library, host, files, paths: typedPaths(), mode: 'browser', version: '0.0.0-test', hubUrl, emit: pair.emit });
  api = pair.api;
});

afterAll(async () => {
  await host.shutdown();
  await files.close();
  library.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

describe('models.download from a (fake) Hugging Face hub', () => {
  it('keeps only the top-level files loading a model reads', () => {
    expect(MODEL_FILES.every(isNeededFile)).toBe(true);
    expect(['generation_config.json', 'model-00001-of-00002.safetensors', 'model.safetensors.index.json', 'merges.txt', 'tokenizer.model'].every(isNeededFile)).toBe(true);
    expect(EXTRA_FILES.filter(isNeededFile)).toEqual([]);
  });

  it('validates the repo id and revision before asking the hub', async () => {
    for (const repoId of ['../etc/passwd', 'a/b/c', 'owner/..', '', 'https://huggingface.co/x']) {
      await expect(api.invoke('models.download', { repoId })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    }
    await expect(api.invoke('models.download', { repoId: REPO, revision: '../main' })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect(served).toHaveLength(0);
    await expect(api.invoke('models.download', { repoId: 'fake-org/missing' })).rejects.toMatchObject({ code: 'HUB_NOT_FOUND', message: expect.stringContaining('fake-org/missing') });
  });

  it('refuses weights whose sha256 differs from the hub\'s, keeping nothing of them', async () => {
    corrupt = true;
    try {
      const finished = nextEvent('download.finished');
      const started = await api.invoke('models.download', { repoId: REPO });
      const outcome = await finished;
      expect(outcome).toMatchObject({ id: started.id, status: 'failed', model: null, error: expect.stringContaining('HUB_CHECKSUM') });
      const staging = join(library.dataDir.root, 'downloads', `fake-org--tiny-gpt2@${COMMIT}`);
      expect(existsSync(join(staging, 'model.safetensors')) || existsSync(join(staging, 'model.safetensors.part'))).toBe(false);
      expect(await api.invoke('models.list', {})).toEqual([]);
    } finally {
      corrupt = false;
    }
  });

  it('cancels mid-file, resumes with a Range request, and registers the model at the resolved commit', async () => {
    served.length = 0;
    let sentHalf!: () => void;
    const halfSent = new Promise<void>((resolve) => (sentHalf = resolve));
    let release!: () => void;
    stall = { release: new Promise<void>((resolve) => (release = resolve)), sentHalf };

    const cancelled = nextEvent('download.finished');
    const first = await api.invoke('models.download', { repoId: REPO });
    const expectedTotal = MODEL_FILES.reduce((sum, f) => sum + statSync(join(fixture, f)).size, 0);
    expect(first).toMatchObject({ repoId: REPO, revision: COMMIT, totalBytes: expectedTotal });
    expect([...first.files].sort()).toEqual([...MODEL_FILES].sort());
    await halfSent;
    const partOf = join(library.dataDir.root, 'downloads', `fake-org--tiny-gpt2@${COMMIT}`, 'model.safetensors.part');
    // Wait until the first half is on disk, then cancel.
    while (!existsSync(partOf) || statSync(partOf).size === 0) await new Promise((r) => setTimeout(r, 10));
    expect(await api.invoke('models.cancelDownload', { id: first.id })).toEqual({ cancelled: true });
    expect(await cancelled).toMatchObject({ id: first.id, status: 'cancelled', model: null });
    release();
    stall = null;
    const partial = statSync(partOf).size;
    const full = statSync(join(fixture, 'model.safetensors')).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(full);
    expect(await api.invoke('models.cancelDownload', { id: first.id })).toEqual({ cancelled: false });

    const progress: Events['download.progress'][] = [];
    const off = api.on('download.progress', (p) => progress.push(p));
    const finished = nextEvent('download.finished');
    const second = await api.invoke('models.download', { repoId: REPO });
    const done = await finished;
    off();
    expect(done).toMatchObject({ id: second.id, status: 'done', error: null });
    const weightRequests = served.filter((s) => s.url.endsWith('/model.safetensors'));
    expect(weightRequests.at(-1)).toMatchObject({ range: `bytes=${partial}-`, status: 206 });
    // Files completed by an earlier attempt (config.json, in the checksum test above) are kept, not fetched again;
    // the weights were fetched twice here: from 0 until the cancel, then from the part's end.
    expect(served.filter((s) => s.url.endsWith('/config.json'))).toHaveLength(0);
    expect(weightRequests.map((s) => s.range)).toEqual([undefined, `bytes=${partial}-`]);
    expect(served.some((s) => EXTRA_FILES.some((f) => s.url.endsWith(`/${f}`)))).toBe(false);

    expect(progress.length).toBeGreaterThan(0);
    for (let i = 1; i < progress.length; i++) expect(progress[i]?.receivedBytes).toBeGreaterThanOrEqual(progress[i - 1]?.receivedBytes ?? 0);
    expect(progress.at(-1)).toMatchObject({ id: second.id, receivedBytes: expectedTotal, totalBytes: expectedTotal });

    const model = done.model;
    expect(model).toMatchObject({ name: REPO, architecture: 'gpt2', source: { kind: 'hub', ref: REPO, revision: COMMIT }, status: 'ok' });
    expect(await api.invoke('models.list', {})).toEqual([model]);
    for (const f of MODEL_FILES) expect(sha256(readFileSync(join(model?.path ?? '', f)))).toBe(sha256(readFileSync(join(fixture, f))));
    expect(readdirSync(model?.path ?? '').sort()).toEqual([...MODEL_FILES].sort());
    expect(existsSync(join(library.dataDir.root, 'downloads', `fake-org--tiny-gpt2@${COMMIT}`))).toBe(false);
  });
});
