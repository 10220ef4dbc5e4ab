import { expect, test } from '@playwright/test';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectErrors, servedLibrary } from './ui-support';

// The real `lorasmith serve` (built renderer, real handlers, real library) driven through Debian's Chromium.
const served = servedLibrary('e2e');

test('the served UI loads with the token and talks to the real handlers over the WebSocket', async ({ page }) => {
  const errors = collectErrors(page);
  const replies: string[] = [];
  page.on('websocket', (ws) => ws.on('framereceived', (frame) => replies.push(String(frame.payload))));
  await page.goto(served.url);
  await expect(page.getByRole('heading', { level: 1, name: 'Lorasmith' })).toBeVisible();
  await expect.poll(() => replies.some((r) => r.includes('"ok":true'))).toBe(true);
  expect(replies.some((r) => r.includes('"code":"UNAUTHORIZED"'))).toBe(false);
  expect(errors).toEqual([]);
});

test('the address without its token is refused', async ({ page }) => {
  const origin = new URL(served.url).origin;
  const response = await page.goto(`${origin}/`);
  expect(response?.status()).toBe(403);
  const wrong = await page.goto(`${origin}/t/not-the-token/`);
  expect(wrong?.status()).toBe(403);
});

test('the token reaches no other service on 127.0.0.1: no cookie, no Referer', async ({ page }) => {
  // Another local service on another port, as a user might run beside Lorasmith.
  const seen: string[] = [];
  const other = createServer((req, res) => {
    seen.push(`${req.url} ${JSON.stringify(req.headers)}`);
    res.writeHead(200, { 'content-type': 'text/html' }).end('<title>other</title>');
  });
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  const port = (other.address() as AddressInfo).port;
  try {
    await page.goto(served.url);
    await expect(page.getByRole('heading', { level: 1, name: 'Lorasmith' })).toBeVisible();
    expect(await page.context().cookies()).toEqual([]);
    await page.evaluate((href) => { (globalThis as unknown as { location: { href: string } }).location.href = href; }, `http://127.0.0.1:${port}/`);
    await expect(page).toHaveTitle('other');
    await page.goto(`http://localhost:${port}/`);
    expect(seen.length).toBeGreaterThanOrEqual(2);
    const token = /\/t\/([^/]+)\//.exec(served.url)?.[1] ?? '';
    expect(token.length).toBeGreaterThan(20);
    expect(seen.filter((request) => request.includes(token) || request.includes(new URL(served.url).origin))).toEqual([]);
    expect(seen.filter((request) => /cookie/i.test(request))).toEqual([]);
  } finally {
    other.close();
  }
});
