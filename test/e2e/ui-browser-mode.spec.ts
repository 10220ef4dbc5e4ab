/**
 * The journey against the real main-side code: `lorasmith serve` (browser mode) serves the built renderer and
 * the real handlers over its WebSocket; a real tiny Llama checkpoint is imported, really trained and chatted with.
 * Skipped, saying why, where this checkout has no `serve` command yet.
 */
import { expect, test, type Page } from '@playwright/test';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { collectErrors, openSection, servedLibrary, shot, wizardToReview } from './ui-support';

const repo = join(import.meta.dirname, '../..');
const model = join(repo, 'test/fixtures/tiny-random-llama');
let datasetPath = '';


/** A small chat dataset with one unmistakable habit: every answer starts "Arr!". */
function writeDataset(dir: string): string {
  const questions = ['Where is the ship?', 'What is for dinner?', 'Who is the captain?', 'How is the weather?', 'Where are we going?',
    'What time is it?', 'Can you help me?', 'What is your name?', 'Is the sea calm?', 'Where is the map?'];
  const lines = questions.flatMap((q, i) => [0, 1].map((k) => JSON.stringify({
    messages: [{ role: 'user', content: q }, { role: 'assistant', content: `Arr! ${k ? 'Aye' : 'Yo ho'}, matey, number ${i}.` }],
  })));
  const path = join(dir, 'pirate.jsonl');
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

const served = servedLibrary('ui', (home) => {
  datasetPath = writeDataset(home);
});

/**
 * Runs the wizard on the imported model and dataset. No early stopping: a run lasts exactly `maxSteps` steps,
 * so one long enough by steps is still training when the test acts on it, on a fast machine or a loaded one.
 */
async function wizard(page: Page, name: string, maxSteps: string, evalEvery: string) {
  await wizardToReview(page, {
    model: /tiny-random-llama/, dataset: /pirate/, allLinear: true, rank: '8',
    fields: {
      'Adapter name': name, 'Max steps (optional)': maxSteps, 'Learning rate': '0.01', 'Batch size': '2', 'Max sequence length': '48',
      'Validation split': '0.2', 'Evaluate every (steps)': evalEvery, 'Early-stopping patience (optional)': '', 'Warm-up steps': '0',
    },
  });
  await expect(page.getByText('Peak memory')).toBeVisible({ timeout: 30_000 });
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByRole('heading', { name: 'Training', level: 2 })).toBeVisible();
}

test('real main side: import, train, cancel, resume, finish, chat base vs adapter, compare, chat while training', async ({ page }) => {
  test.setTimeout(480_000);
  const errors = collectErrors(page);
  await page.goto(served.url);
  await page.getByLabel('Import a Hugging Face model folder').fill(model);
  await page.getByRole('button', { name: 'Import model' }).click();
  await expect(page.getByRole('region', { name: 'Model details' })).toContainText('q_proj', { timeout: 30_000 });
  await shot(page, 'real-01-model');
  await page.getByRole('tab', { name: 'Datasets' }).click();
  await page.getByLabel('Import a dataset file').fill(datasetPath);
  await page.getByRole('button', { name: 'Import dataset' }).click();
  await expect(page.getByRole('region', { name: 'Dataset details' }).locator('.records mark.trained').first()).toContainText('Arr!', { timeout: 30_000 });
  await shot(page, 'real-02-dataset');

  // Cancel mid-run, resume from the checkpoint the cancel wrote, finish: one run, one curve, every step once.
  // 1500 steps without early stopping: still training when the cancel is confirmed, however fast the machine (400 took 16 s on a quiet one, while the page redrew every step).
  await wizard(page, 'pirate', '1500', '100');
  const details = page.getByRole('region', { name: 'Run details' });
  const progress = details.getByRole('progressbar', { name: 'Training progress' });
  await expect.poll(async () => Number(await progress.getAttribute('value')), { timeout: 90_000 }).toBeGreaterThan(2);
  await details.getByRole('button', { name: 'Cancel run' }).click();
  await shot(page, 'real-03-training-live');
  await expect(page.getByRole('dialog').getByRole('button', { name: 'Keep training' })).toBeVisible();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel run' }).click();
  await expect(details.locator('.badge.cancelled')).toBeVisible({ timeout: 60_000 });
  const resume = details.getByRole('button', { name: /^Resume from step \d+$/ });
  await expect(resume).toBeVisible();
  const from = Number(/\d+/.exec(await resume.textContent() ?? '')?.[0]);
  expect(from).toBeGreaterThan(2);
  expect(from).toBeLessThan(1500);
  await shot(page, 'real-04-cancelled');
  // The same run resumes from its adapter in the library (an adapter with no version yet).
  await openSection(page, 'Library');
  await page.getByRole('tab', { name: 'Adapters' }).click();
  await page.getByRole('button', { name: /^pirate/ }).click();
  const adapterDetails = page.getByRole('region', { name: 'Adapter details' });
  await expect(adapterDetails).toContainText('No version yet');
  await adapterDetails.getByRole('list', { name: 'Unfinished runs' }).getByRole('button', { name: `Resume from step ${from}` }).click();
  await expect(page.getByRole('heading', { name: 'Training', level: 2 })).toBeVisible();
  await expect(details.locator('.badge.done')).toBeVisible({ timeout: 300_000 });
  await expect(details.getByRole('button', { name: 'Open in chat' })).toBeVisible();
  await expect(details).toContainText(/Finished .* after \d+/);
  // The run's recorded curve: every step from 1 to 1500 exactly once, the resumed ones after the cancelled ones.
  const db = new Database(join(served.home, 'data', 'library.sqlite'), { readonly: true, fileMustExist: true });
  const steps = (db.prepare('SELECT m.step FROM run_metrics m JOIN training_runs r ON r.id = m.run_id ORDER BY m.step').all() as { step: number }[]).map((r) => r.step);
  db.close();
  expect(steps).toEqual(Array.from({ length: 1500 }, (_, i) => i + 1));
  // Each evaluation after the resume (every 100 steps) came with a greedy sample made with the adapter being trained.
  await expect(details.locator('ol.samples li').first()).toBeVisible();
  // What the finished run trained with, and its version in the library, where the exports are.
  await details.getByRole('button', { name: 'Settings' }).click();
  await expect(details.getByLabel('Run settings')).toContainText('0.01 (');
  await expect(details.getByRole('button', { name: 'Train again with these settings' })).toBeVisible();
  await details.getByRole('button', { name: 'Export…' }).click();
  await expect(page.getByRole('tab', { name: 'Adapters' })).toHaveAttribute('aria-selected', 'true');
  await expect(adapterDetails.getByRole('treeitem', { selected: true })).toContainText('v1');
  await expect(adapterDetails.getByLabel('Export to folder')).toBeVisible();
  await openSection(page, 'Training');
  await page.reload();
  await openSection(page, 'Training');
  await expect(page.getByRole('list', { name: 'Runs' })).toContainText('pirate v1');
  await shot(page, 'real-05-training-done');

  await openSection(page, 'Chat');
  // The library also holds the starter model, registered on the first run: choose the imported one.
  await page.getByRole('combobox', { name: 'Base model', exact: true }).selectOption({ label: 'tiny-random-llama' });
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await page.getByText(/Sampling/).click();
  await page.getByLabel('Temperature').fill('0');
  await page.getByLabel('Max new tokens').fill('12');
  await page.getByRole('button', { name: 'Add set-up to compare' }).click();
  await page.getByRole('combobox', { name: 'Set-up 2 adapter' }).selectOption({ label: 'pirate v1' });
  await page.getByLabel('Message').fill('Where is the ship?');
  await page.getByLabel('Message').press('Enter');
  const replies = page.getByRole('log', { name: 'Conversation' }).getByRole('article');
  await expect(replies.nth(1)).toHaveAttribute('aria-busy', 'false', { timeout: 120_000 });
  const [base, adapted] = await replies.locator('.text').allTextContents();
  expect(base).toBeTruthy();
  expect(adapted).not.toBe(base);
  await shot(page, 'real-06-chat-compare');
  // The answers keep the label of the set-up that produced them when the set-up changes afterwards.
  await page.getByRole('combobox', { name: 'Set-up 2 adapter' }).selectOption({ label: 'Base model (no adapter)' });
  await expect(replies.nth(1).locator('header')).toHaveText('pirate v1 ×1.00');

  // Chat while a run trains: the answer comes between two training steps, and the chat says so and offers a pause.
  await wizard(page, 'long-run', '5000', '50');
  await expect(details.locator('.badge.running')).toBeVisible({ timeout: 60_000 });
  await openSection(page, 'Chat');
  const note = page.getByRole('status').filter({ hasText: 'is training on the engine' });
  await expect(note).toContainText('long-run');
  await page.getByLabel('Message').fill('Who is the captain?');
  await page.getByLabel('Message').press('Enter');
  await expect(replies.nth(3)).toHaveAttribute('aria-busy', 'false', { timeout: 120_000 });
  expect(await replies.nth(3).locator('.text').textContent()).toBeTruthy();
  await expect(note).toBeVisible(); // still training: the answer did not wait for the run's end
  await shot(page, 'real-07-chat-while-training');
  await note.getByRole('button', { name: 'Pause training' }).click();
  await expect(note).toBeHidden({ timeout: 60_000 });
  await openSection(page, 'Training');
  await expect(details.getByRole('button', { name: /^Resume from step \d+$/ })).toBeVisible();
  // Not wanted after all: the paused run goes with its checkpoints, then its adapter, which has no version.
  const runs = page.getByRole('list', { name: 'Runs' });
  await expect(runs.getByRole('listitem')).toHaveCount(2);
  await details.getByRole('button', { name: 'Delete run' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete', exact: true }).click();
  await expect(runs.getByRole('listitem')).toHaveCount(1);
  await expect(runs).toContainText('pirate v1');
  await openSection(page, 'Library');
  await page.getByRole('tab', { name: 'Adapters' }).click();
  await page.getByRole('button', { name: /^long-run/ }).click();
  await expect(adapterDetails).toContainText('Delete the adapter if it is not wanted.');
  await adapterDetails.getByRole('button', { name: 'Delete adapter' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete', exact: true }).click();
  await expect(page.getByRole('button', { name: /^long-run/ })).toHaveCount(0);
  const library = new Database(join(served.home, 'data', 'library.sqlite'), { readonly: true, fileMustExist: true });
  const left = library.prepare('SELECT a.name, COUNT(r.id) AS runs FROM adapters a LEFT JOIN training_runs r ON r.adapter_id = a.id GROUP BY a.id').all();
  library.close();
  expect(left).toEqual([{ name: 'pirate', runs: 1 }]);
  expect(readdirSync(join(served.home, 'data', 'runs')).filter((f) => !f.startsWith('.'))).toHaveLength(1);

  // Settings shows what the engine host detected (app.info asks it once it has started).
  await openSection(page, 'Settings');
  const inUse = page.getByText(/^In use:/);
  await expect(inUse).toContainText(/tensorflow|webgpu|wasm|cpu/, { timeout: 30_000 });
  await expect(inUse).toContainText('kernels: ');
  expect(errors).toEqual([]);

  // The server goes away: the page says so at once instead of a stale "ready".
  served.stop();
  await expect(page.getByRole('alert').filter({ hasText: 'Disconnected from the engine' })).toContainText('lorasmith serve', { timeout: 30_000 });
});
