/**
 * models.download against a fake Hugging Face hub on 127.0.0.1 (node:http) serving test/fixtures/tiny-random-gpt2:
 * only the files a model needs are fetched, byte for byte; a cancelled download resumes with an HTTP Range
 * request from the bytes its .part file holds; the model lands in the library as source kind 'hub' at the
 * commit the hub resolved. Nothing here reaches the internet.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Api, Events } from '../../preload/contract';
import { isNeededFile, listHubModel } from '../../main/services/hub-download';
import type { Library } from '../../main/store/index';
import { startFakeHub, type FakeHub } from '../support/fake-hub';
import { handlersUnderTest, type HandlersUnderTest } from '../support/handlers';

const fixture = join(import.meta.dirname, '../fixtures/tiny-random-gpt2');
const REPO = 'fake-org/tiny-gpt2';
const COMMIT = 'a'.repeat(40);
const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json'];
/** Listed by the hub but not needed (or not loadable): never requested. */
const EXTRA_FILES = ['README.md', 'pytorch_model.bin', 'onnx/model.safetensors', '.gitattributes', 'reference_outputs.json'];

let hub: FakeHub;
let main: HandlersUnderTest;
let library: Library;
let api: Api;

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

beforeAll(async () => {
  hub = await startFakeHub({ fixture, files: MODEL_FILES, extraFiles: EXTRA_FILES, repo: REPO, commit: COMMIT });
  // The engine host is never started: downloads do not touch it.
  main = handlersUnderTest({ context: { hubUrl: hub.url } });
  ({ library, api } = main);
});

afterAll(async () => {
  await main.close();
  await hub.close();
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
    expect(hub.served).toHaveLength(0);
    await expect(api.invoke('models.download', { repoId: 'fake-org/missing' })).rejects.toMatchObject({ code: 'HUB_NOT_FOUND', message: expect.stringContaining('fake-org/missing') });
  });

  it('a hub it cannot reach is named, with the network\'s reason and the HF_ENDPOINT mirror, not "fetch failed"', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const nowhere = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const error = await listHubModel(nowhere, REPO, 'main').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'HUB_UNREACHABLE', message: expect.stringContaining(`cannot reach the Hugging Face hub at ${nowhere} (ECONNREFUSED)`) });
    expect((error as Error).message).toContain('HF_ENDPOINT');
    expect((error as Error).message).not.toContain('fetch failed');
  });

  it('refuses weights whose sha256 differs from the hub\'s, keeping nothing of them', async () => {
    hub.corrupt = true;
    try {
      const finished = main.nextEvent('download.finished');
      const started = await api.invoke('models.download', { repoId: REPO });
      const outcome = await finished;
      expect(outcome).toMatchObject({ id: started.id, status: 'failed', model: null, error: expect.stringContaining('HUB_CHECKSUM') });
      const staging = join(library.dataDir.root, 'downloads', `fake-org--tiny-gpt2@${COMMIT}`);
      expect(existsSync(join(staging, 'model.safetensors')) || existsSync(join(staging, 'model.safetensors.part'))).toBe(false);
      expect(await api.invoke('models.list', {})).toEqual([]);
    } finally {
      hub.corrupt = false;
    }
  });

  it('cancels mid-file, resumes with a Range request, and registers the model at the resolved commit', async () => {
    hub.served.length = 0;
    const { halfSent, release } = hub.holdWeights();

    const cancelled = main.nextEvent('download.finished');
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
    const partial = statSync(partOf).size;
    const full = statSync(join(fixture, 'model.safetensors')).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(full);
    expect(await api.invoke('models.cancelDownload', { id: first.id })).toEqual({ cancelled: false });

    const progress: Events['download.progress'][] = [];
    const off = api.on('download.progress', (p) => progress.push(p));
    const finished = main.nextEvent('download.finished');
    const second = await api.invoke('models.download', { repoId: REPO });
    const done = await finished;
    off();
    expect(done).toMatchObject({ id: second.id, status: 'done', error: null });
    const weightRequests = hub.served.filter((s) => s.url.endsWith('/model.safetensors'));
    expect(weightRequests.at(-1)).toMatchObject({ range: `bytes=${partial}-`, status: 206 });
    // Files completed by an earlier attempt (config.json, in the checksum test above) are kept, not fetched again;
    // the weights were fetched twice here: from 0 until the cancel, then from the part's end.
    expect(hub.served.filter((s) => s.url.endsWith('/config.json'))).toHaveLength(0);
    expect(weightRequests.map((s) => s.range)).toEqual([undefined, `bytes=${partial}-`]);
    expect(hub.served.some((s) => EXTRA_FILES.some((f) => s.url.endsWith(`/${f}`)))).toBe(false);

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
