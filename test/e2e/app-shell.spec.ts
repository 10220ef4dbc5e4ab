import { expect, test } from '@playwright/test';
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';

// The built renderer (npm test builds it before Playwright runs), served as plain files.
const root = join(import.meta.dirname, '../../out/renderer');
const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
let server: Server;
let baseUrl = '';

test.beforeAll(async () => {
  server = createServer(async (req, res) => {
    const path = normalize(join(root, (req.url ?? '/').split('?')[0] === '/' ? 'index.html' : (req.url ?? '')));
    if (!path.startsWith(root)) return void res.writeHead(403).end();
    try {
      const body = await readFile(path);
      res.writeHead(200, { 'content-type': types[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no server address');
  baseUrl = `http://127.0.0.1:${address.port}/`;
});

test.afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('the app shell renders and its sections can be reached by keyboard', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(baseUrl);
  await expect(page.getByRole('navigation', { name: 'Sections' })).toBeVisible();
  await expect(page.getByRole('heading', { level: 1, name: 'Lorasmith' })).toBeVisible();
  const chat = page.getByRole('button', { name: 'Chat' });
  await chat.focus();
  await page.keyboard.press('Enter');
  await expect(chat).toHaveAttribute('aria-current', 'page');
  await expect(page.getByRole('heading', { level: 2, name: 'Chat' })).toBeVisible();
  expect(errors).toEqual([]);
});
