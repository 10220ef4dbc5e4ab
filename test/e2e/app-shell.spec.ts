import { expect, test } from '@playwright/test';
import type { Server } from 'node:http';
import { serveRenderer } from './ui-support';

// The built renderer (npm test builds it before Playwright runs), served as plain files under the app's CSP.
let server: Server;
let baseUrl = '';

test.beforeAll(async () => {
  ({ server, url: baseUrl } = await serveRenderer());
});

test.afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('the app shell renders and its sections can be reached by keyboard', async ({ page }) => {
  // Page errors only: with no server behind the files, the page's WebSocket fails, as it should, on the console.
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
