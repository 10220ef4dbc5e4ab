/**
 * Downloading a model from the Hugging Face hub in the Library, against the real main side (`lorasmith serve`)
 * pointed by HF_ENDPOINT at a fake hub on 127.0.0.1 serving test/fixtures/tiny-random-gpt2: the progress bar
 * shows, cancel stops it, a second start resumes (an HTTP Range request) and the model joins the library.
 */
import { expect, test } from '@playwright/test';
import { readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { collectErrors, servedLibrary, shot } from './ui-support';

const repo = join(import.meta.dirname, '../..');
const fixture = join(repo, 'test/fixtures/tiny-random-gpt2');
const REPO = 'fake-org/tiny-gpt2';
const COMMIT = 'b'.repeat(40);
const FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json'];

let hub: Server;
const ranges: (string | undefined)[] = [];
let release: () => void = () => undefined;
const released = new Promise<void>((resolve) => (release = resolve));

function fakeHub(req: IncomingMessage, res: ServerResponse): void {
  const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
  if (path === `/api/models/${REPO}/revision/main`) {
    const siblings = FILES.map((f) => ({ rfilename: f, size: statSync(join(fixture, f)).size }));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: REPO, sha: COMMIT, siblings }));
    return;
  }
  const name = path.slice(`/${REPO}/resolve/${COMMIT}/`.length);
  if (!path.startsWith(`/${REPO}/resolve/${COMMIT}/`) || !FILES.includes(name)) return void res.writeHead(404).end();
  const bytes = readFileSync(join(fixture, name));
  const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
  if (name === 'model.safetensors') ranges.push(req.headers.range);
  const body = bytes.subarray(start);
  res.writeHead(start > 0 ? 206 : 200, { 'content-length': String(body.length) });
  res.on('error', () => undefined);
  if (name === 'model.safetensors' && start === 0) {
    // Half now, the rest only once the test has cancelled: the download is visibly under way.
    const half = Math.floor(body.length / 2);
    res.write(body.subarray(0, half));
    void released.then(() => res.end(body.subarray(half)));
    return;
  }
  res.end(body);
}

const served = servedLibrary('hub-ui', async () => {
  hub = createServer(fakeHub);
  await new Promise<void>((resolve) => hub.listen(0, '127.0.0.1', resolve));
  return { ...process.env, HF_ENDPOINT: `http://127.0.0.1:${(hub.address() as AddressInfo).port}` };
});

test.afterAll(async () => {
  release();
  hub?.closeAllConnections();
  await new Promise((resolve) => hub?.close(resolve));
});

test('download from the hub: progress, cancel, resume, and the model in the library', async ({ page }) => {
  test.setTimeout(120_000);
  const errors = collectErrors(page);
  await page.goto(served.url);
  const form = page.getByRole('form', { name: 'Download from the Hugging Face hub' });
  await form.getByLabel('Repo id').fill('not a repo');
  await form.getByRole('button', { name: 'Download model' }).click();
  await expect(form.getByRole('alert')).toContainText('owner/name');

  await form.getByLabel('Repo id').fill(REPO);
  await form.getByRole('button', { name: 'Download model' }).click();
  const bar = form.getByRole('progressbar', { name: 'Download progress' });
  await expect(bar).toBeVisible({ timeout: 30_000 });
  await expect.poll(async () => Number(await bar.getAttribute('value')), { timeout: 30_000 }).toBeGreaterThan(0);
  await shot(page, 'hub-01-downloading');
  await form.getByRole('button', { name: 'Cancel download' }).click();
  await expect(form.getByRole('status')).toContainText('Download cancelled', { timeout: 30_000 });
  release();

  await form.getByRole('button', { name: 'Download model' }).click();
  await expect(form.getByRole('status')).toContainText('added to the library', { timeout: 60_000 });
  const details = page.getByRole('region', { name: 'Model details' });
  await expect(details.getByRole('heading', { name: REPO })).toBeVisible();
  await expect(details).toContainText(`hub: ${REPO}`);
  await shot(page, 'hub-02-downloaded');
  expect(ranges[0]).toBeUndefined();
  expect(ranges.at(-1)).toMatch(/^bytes=\d+-$/);
  expect(errors).toEqual([]);
});
