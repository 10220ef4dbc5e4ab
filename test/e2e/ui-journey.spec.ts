/**
 * A person's journey through the built interface, against the in-page fake backend (ui-fake-backend.ts):
 * import a model and a dataset, run the wizard, watch the curve move, cancel one run and finish another,
 * chat with base vs adapter, compare side by side. Screenshots land in test-results/ui/.
 */
import { expect, test, type Page } from '@playwright/test';
import type { Server } from 'node:http';
import { installFakeBackend } from './ui-fake-backend';
import { collectErrors, serveRenderer, shot } from './ui-support';

let server: Server;
let url = '';

test.beforeAll(async () => {
  ({ server, url } = await serveRenderer());
});
test.afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function importModelAndDataset(page: Page) {
  await page.getByLabel('Import a Hugging Face model folder').fill('/models/does-not-exist');
  await page.getByRole('button', { name: 'Import model' }).click();
  await expect(page.getByRole('alert')).toContainText('no config.json in /models/does-not-exist');
  await page.getByLabel('Import a Hugging Face model folder').fill('/models/tiny-llama');
  await page.getByRole('button', { name: 'Import model' }).click();
  await expect(page.getByRole('region', { name: 'Model details' })).toContainText('LlamaForCausalLM');
  await expect(page.getByRole('region', { name: 'Model details' })).toContainText('gate_proj');
  await shot(page, '01-library-model');

  await page.getByRole('tab', { name: 'Datasets' }).click();
  await page.getByLabel('Import a dataset file').fill('/data/pirate.jsonl');
  await page.getByRole('button', { name: 'Import dataset' }).click();
  const details = page.getByRole('region', { name: 'Dataset details' });
  await expect(details).toContainText('messages');
  await expect(details.locator('.records mark.trained').first()).toContainText('Arr, treasure 1');
  await expect(details.getByRole('cell', { name: '57', exact: true })).toBeVisible();
  await expect(details.getByRole('img', { name: /Token lengths: 96 records/ })).toBeVisible();
  await shot(page, '02-library-dataset');
}

async function runWizard(page: Page, name: string, maxSteps: string) {
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'Fine-tune' }).click();
  // The library's only base model is chosen already.
  await expect(page.getByRole('radio', { name: /tiny-llama/ })).toBeChecked();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('radio', { name: /pirate/ }).check();
  await page.getByRole('button', { name: 'Next' }).click();
  // 4 layers of q (256→256) and v (256→64) at r = 8: 4 · 8 · (512 + 320) = 26 624 = 26.6 k
  await expect(page.getByText(/8 modules · 26\.6 k trainable parameters/)).toBeVisible();
  await page.getByRole('button', { name: 'All linear' }).click();
  await expect(page.getByText(/28 modules/)).toBeVisible();
  await page.getByRole('button', { name: 'q, v' }).click();
  await page.getByRole('checkbox', { name: 'model.layers.3.self_attn.q_proj' }).uncheck();
  await expect(page.getByText(/7 modules/)).toBeVisible();
  await shot(page, `03-wizard-modules-${name}`);
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Rank r').fill('0');
  await expect(page.getByText('rank must be a positive integer, got 0')).toBeVisible();
  await page.getByRole('button', { name: 'Next' }).click();
  await expect(page.getByRole('heading', { name: 'LoRA', level: 3 })).toBeVisible();
  await page.getByLabel('Rank r').fill('8');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Adapter name').fill(name);
  await page.getByLabel('Max steps (optional)').fill(maxSteps);
  await page.getByLabel('Evaluate every (steps)').fill('5');
  await page.getByLabel('Learning rate').fill('-1');
  await expect(page.getByText('learning rate must be a number > 0, got -1')).toBeVisible();
  await shot(page, `04-wizard-training-${name}`);
  await page.getByLabel('Learning rate').fill('3e-4');
  await page.getByRole('button', { name: 'Next' }).click();
  await expect(page.getByText('Peak memory')).toBeVisible();
  // The base precision: as stored (F16) by default, Q8_0 and Q4_0 offered with their measured cost and the memory they save.
  const precision = page.getByRole('group', { name: 'Base precision' });
  await expect(precision.getByRole('radio', { name: /^Stored \(F16\)/ })).toBeChecked();
  await expect(precision.getByRole('radio', { name: /^Q8_0/ })).not.toBeChecked();
  await expect(page.getByRole('status').filter({ hasText: 'Measured on' })).toHaveText('Measured on 8 validation examples (412 target tokens) against F16.');
  await expect(precision).toContainText(/Q8_0\s*\+0\.004 loss against F16, base 5\.3 MiB \(4\.7 MiB less\), peak/);
  await expect(precision).toContainText(/Q4_0\s*\+0\.039 loss against F16, base 2\.8 MiB \(7\.2 MiB less\), peak/);
  if (name === 'pirate') {
    await precision.getByRole('radio', { name: /^Q8_0/ }).check();
    await expect(precision.getByRole('radio', { name: /^Q8_0/ })).toBeChecked();
    await expect(page.locator('dl.estimates')).toContainText('291.4 MiB'); // the estimate at Q8_0: 300e6 + 5,570,560 bytes
  }
  await shot(page, `05-wizard-review-${name}`);
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByRole('heading', { name: 'Training', level: 2 })).toBeVisible();
}

test('import, fine-tune, cancel one run, finish another, then chat base vs adapter side by side', async ({ page }) => {
  const errors = collectErrors(page);
  await page.addInitScript(installFakeBackend, { stepMs: 120, tokenMs: 40 });
  await page.goto(url);
  await importModelAndDataset(page);

  // A run to cancel: watch its curve move, then cancel it.
  await runWizard(page, 'first-try', '200');
  const details = page.getByRole('region', { name: 'Run details' });
  await expect(details.locator('.u-over')).toBeVisible();
  const progress = details.getByRole('progressbar', { name: 'Training progress' });
  await expect.poll(async () => Number(await progress.getAttribute('value'))).toBeGreaterThan(5);
  const first = Number(await progress.getAttribute('value'));
  await expect.poll(async () => Number(await progress.getAttribute('value'))).toBeGreaterThan(first);
  await shot(page, '06-training-live');
  await details.getByRole('button', { name: 'Cancel run' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel run' }).click();
  await expect(details.locator('.badge.cancelled')).toBeVisible();

  // Browse elsewhere while the second run trains, then come back to it finished.
  await runWizard(page, 'pirate', '30');
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'Library' }).click();
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'Training' }).click();
  await expect(details.locator('.badge.done')).toBeVisible({ timeout: 20_000 });
  await expect(details.getByText(/step 30/).first()).toBeVisible();
  await expect(details.locator('.samples pre').first()).toContainText('Arr');
  await shot(page, '07-training-done');

  // The finished run is an adapter version in the library, with its settings and curve.
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'Library' }).click();
  await page.getByRole('tab', { name: 'Adapters' }).click();
  await page.getByRole('button', { name: /^pirate/ }).click();
  await expect(page.getByRole('treeitem')).toHaveCount(1);
  await expect(page.getByRole('region', { name: 'Adapter details' })).toContainText('r = 8, alpha = 16');
  await shot(page, '08-library-adapter');
  await page.getByLabel('Export to folder').fill('/exports/pirate');
  await page.getByRole('button', { name: 'Export PEFT adapter' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Exported to' })).toContainText('/exports/pirate/adapter_model.safetensors');
  await page.getByRole('button', { name: 'Continue training' }).click();
  await expect(page.getByText('Continuing pirate v1: training starts from its weights.')).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Target modules', level: 3 })).toBeVisible();
  await expect(page.getByRole('checkbox', { name: 'model.layers.3.self_attn.q_proj' })).not.toBeChecked();
  await expect(page.getByRole('checkbox', { name: 'model.layers.3.self_attn.v_proj' })).toBeChecked();

  // Chat: base alone, then the adapter, then both side by side with the same seed.
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'Chat' }).click();
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await expect(page.getByText('Chat template in use')).toBeVisible();
  const prompt = page.getByLabel('Message');
  await prompt.fill('Where is the treasure?');
  await prompt.press('Enter');
  const log = page.getByRole('log', { name: 'Conversation' });
  await expect(log.getByRole('article').first()).toContainText('somewhere on the island');
  await page.getByRole('combobox', { name: 'Set-up 1 adapter' }).selectOption({ label: 'pirate v1' });
  await prompt.fill('Where is the treasure?');
  await prompt.press('Enter');
  await expect(log.getByRole('article').nth(1)).toContainText('Arr, matey!');
  await page.getByRole('button', { name: 'Clear' }).click();

  await page.getByRole('button', { name: 'Add set-up to compare' }).click();
  await page.getByRole('combobox', { name: 'Set-up 1 adapter' }).selectOption({ label: 'Base model (no adapter)' });
  await page.getByRole('combobox', { name: 'Set-up 2 adapter' }).selectOption({ label: 'pirate v1' });
  await page.getByRole('button', { name: 'Add set-up to compare' }).click();
  await page.getByRole('combobox', { name: 'Set-up 3 adapter' }).selectOption({ label: 'pirate v1' });
  await page.getByLabel(/pirate v1 × 1\.00/).nth(1).fill('0.5');
  await prompt.fill('Where is the treasure?');
  await prompt.press('Enter');
  // Mid-stream: the columns keep their size while text arrives.
  const column = log.getByRole('article').first();
  await expect(column).toHaveAttribute('aria-busy', 'true');
  const before = await column.boundingBox();
  await page.waitForTimeout(200);
  const during = await column.boundingBox();
  expect(during?.width).toBe(before?.width);
  await shot(page, '09-chat-streaming');
  await expect(log.getByRole('article').nth(2)).toContainText('might be under the old palm', { timeout: 15_000 });
  await expect(log.getByRole('article').nth(2)).toHaveAttribute('aria-busy', 'false');
  const replies = await log.getByRole('article').allTextContents();
  expect(replies[0]).toContain('somewhere on the island');
  expect(replies[1]).toContain('Arr, matey!');
  await shot(page, '10-chat-compare');

  // Saved in the library, said so; reopened from the list, it downloads as Markdown.
  await page.getByRole('button', { name: 'Save comparison' }).click();
  await expect(page.getByRole('status').filter({ hasText: /^Saved “/ })).toContainText('(3 answers)');
  await page.getByText(/^Saved comparisons \(1\)/).click();
  await page.getByRole('list', { name: 'Saved comparisons' }).getByRole('button', { name: /^Open / }).click();
  const saved = page.getByRole('dialog', { name: 'Saved comparison' });
  await expect(saved.getByRole('article')).toHaveCount(3);
  const download = page.waitForEvent('download');
  await saved.getByRole('button', { name: 'Download as Markdown' }).click();
  expect((await download).suggestedFilename()).toMatch(/^comparison-.*\.md$/);
  await saved.getByRole('button', { name: 'Close' }).click();

  // Stop mid-answer.
  await prompt.fill('Tell me more');
  await prompt.press('Enter');
  await page.getByRole('button', { name: 'Stop' }).click();
  await expect(log.getByText('stopped').first()).toBeVisible();
  expect(errors).toEqual([]);
});

test('settings: backend detected, theme switches, defaults validated; keyboard reaches every section', async ({ page }) => {
  const errors = collectErrors(page);
  await page.addInitScript(installFakeBackend, { stepMs: 100, tokenMs: 30 });
  await page.goto(url);
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'Settings' }).click();
  await expect(page.getByText('SIMD, 2 threads')).toBeVisible();
  await page.getByRole('radio', { name: 'dark' }).check();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
  await page.getByLabel('Rank r').fill('abc');
  await expect(page.getByText('rank must be a number, got "abc"')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Save defaults' })).toBeDisabled();
  await page.getByLabel('Rank r').fill('16');
  await page.getByRole('button', { name: 'Save defaults' }).click();
  await expect(page.getByText('Saved.')).toBeVisible();
  // The current section stays readable in the dark theme: dark text on the light accent.
  const current = page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'Settings' });
  await expect(current).toHaveCSS('color', 'rgb(16, 16, 26)');
  await shot(page, '11-settings-dark');
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'Fine-tune' }).click();
  await shot(page, '12-wizard-dark-empty');

  // From the first section button, Tab walks the sections and Enter opens one.
  const nav = page.getByRole('navigation', { name: 'Sections' });
  await nav.getByRole('button', { name: 'Library' }).focus();
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  await expect(nav.getByRole('button', { name: 'Chat' })).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { level: 2, name: 'Chat' })).toBeVisible();
  expect(errors).toEqual([]);
});
