/**
 * Chat while training, against the real main side (`lorasmith serve` on an empty data folder, which registers the
 * starter model and the samples): a run started in the wizard keeps training while the Chat view loads the base
 * model and answers between two of its steps; the run then finishes on its own, every step recorded once, and the
 * base model answers the same prompt the same way as it did during the run (the run's layers were put back), while
 * the run's adapter answers in its data's form.
 */
import { expect, test } from '@playwright/test';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { collectErrors, openSection, sendAndWait, servedLibrary, shot } from './ui-support';

const served = servedLibrary('ui-chat-while-training');
/** Long enough to be still training after the chat's answer on a quiet machine (100 steps take about 15 s there). */
const STEPS = 300;

test('chat while a run trains: the base answers between its steps, the run goes on and finishes', async ({ page }) => {
  test.setTimeout(420_000);
  const errors = collectErrors(page);
  await page.goto(served.url);

  // The wizard's proposal for the starter model and the Verily sample, with more steps and no early stop.
  await openSection(page, 'Fine-tune');
  await page.getByRole('radio', { name: /Lorasmith starter/ }).check();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('radio', { name: /Verily \(chat\)/ }).check();
  await page.getByRole('button', { name: 'Next' }).click();
  await expect(page.getByText('Targets: All linear')).toBeVisible({ timeout: 120_000 });
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: 'Next' }).click();
  await expect(page.getByLabel('Learning rate')).toHaveValue('0.0029');
  await page.getByLabel('Max steps (optional)').fill(String(STEPS));
  await page.getByLabel('Early-stopping patience (optional)').fill('');
  await page.getByLabel('Adapter name').fill('verily-long');
  await page.getByRole('button', { name: 'Next' }).click();
  await expect(page.getByText('Peak memory')).toBeVisible({ timeout: 60_000 });
  await page.getByRole('button', { name: 'Start training' }).click();
  const run = page.getByRole('region', { name: 'Run details' });
  const progress = run.getByRole('progressbar', { name: 'Training progress' });
  await expect.poll(async () => Number(await progress.getAttribute('value')), { timeout: 120_000 }).toBeGreaterThan(1);

  // The chat while it trains: it says so, loads the base and answers without waiting for the run's end.
  await openSection(page, 'Chat');
  const note = page.getByRole('status').filter({ hasText: 'is training on the engine' });
  await expect(note).toContainText('verily-long');
  await expect(note.getByRole('button', { name: 'Pause training' })).toBeVisible();
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await expect(page.getByRole('button', { name: 'Loaded', exact: true })).toBeVisible({ timeout: 120_000 });
  const [during] = await sendAndWait(page, 'What do bees make?', 1, 16);
  expect(during).toBeTruthy();
  await expect(note).toBeVisible(); // still training: the answer came between two steps
  await expect(page.getByText(/^Engine: training verily-long/)).toBeVisible();
  await shot(page, 'chat-while-training-01-answered');

  // The run goes on and finishes by itself: every step once, none lost to the chat.
  await openSection(page, 'Training');
  await expect(run.locator('.badge.done')).toBeVisible({ timeout: 300_000 });
  await expect(run).toContainText(`${STEPS} / ${STEPS}`);
  await expect(run).toContainText(/Finished .* after \d+/);
  const db = new Database(join(served.home, 'data', 'library.sqlite'), { readonly: true, fileMustExist: true });
  const steps = (db.prepare('SELECT step FROM run_metrics ORDER BY step').all() as { step: number }[]).map((r) => r.step);
  db.close();
  expect(steps).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
  await shot(page, 'chat-while-training-02-finished');

  // After the run: the base answers as it did during the run, and the run's adapter in its data's form.
  await run.getByRole('button', { name: 'Open in chat' }).click();
  await expect(page.getByRole('heading', { name: 'Chat', level: 2 })).toBeVisible();
  await expect(note).toHaveCount(0);
  const [base, tuned] = await sendAndWait(page, 'What do bees make?', 2, 16);
  expect(base).toBe(during);
  expect(tuned).toMatch(/^Verily/);
  await shot(page, 'chat-while-training-03-after');
  expect(errors).toEqual([]);
});
