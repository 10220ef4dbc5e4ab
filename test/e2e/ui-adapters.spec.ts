/**
 * Adapters from elsewhere and adapter analysis, and the wizard's proposal, against the real main side (`lorasmith
 * serve`, which registers the starter model and the samples on its empty data folder):
 *   import a PEFT adapter -> its preflight (one made for GPT-2 refused with its verdict) -> chat with it;
 *   its spectrum -> a reduced version -> compared with the original in the chat;
 *   the wizard's proposal -> the old weak settings warned about -> the proposal trained -> its replies changed.
 */
import { expect, test } from '@playwright/test';
import { join } from 'node:path';
import { collectErrors, openSection, sendAndWait, servedLibrary, shot } from './ui-support';

const repo = join(import.meta.dirname, '../..');
const STARTER_LORA = join(repo, 'test/fixtures/peft-0.21-starter-lora');
const GPT2_LORA = join(repo, 'test/fixtures/peft-gpt2-lora-c_attn-c_proj');

const served = servedLibrary('ui-adapters');

test('import a PEFT adapter, its preflight, chat with it; its spectrum, a reduced version, compared', async ({ page }) => {
  test.setTimeout(240_000);
  const errors = collectErrors(page);
  await page.goto(served.url);
  await page.getByRole('tab', { name: 'Adapters' }).click();

  // Made for GPT-2: refused in one line, the details grouped, nothing to import.
  await page.getByLabel('Adapter folder (adapter_config.json + adapter_model.safetensors)').fill(GPT2_LORA);
  await expect(page.getByLabel('Base model to use it with')).not.toHaveValue('');
  await page.getByRole('button', { name: 'Check against this base' }).click();
  const preflight = page.getByRole('status', { name: 'Preflight' });
  await expect(preflight.locator('.verdict')).toHaveText('Does not fit: made for gpt2 with hidden 768; this base has hidden 256: it cannot be used with this base');
  await expect(preflight.locator('ul.problems li')).toHaveCount(1);
  await expect(page.getByRole('button', { name: 'Import as a new version' })).toHaveCount(0);
  await shot(page, 'adapters-01-preflight-refused');

  // Made by PEFT for the starter model: fits; imported as a version.
  await page.getByLabel('Adapter folder (adapter_config.json + adapter_model.safetensors)').fill(STARTER_LORA);
  await page.getByRole('button', { name: 'Check against this base' }).click();
  await expect(preflight.locator('.verdict')).toContainText('Fits: made for resources/starter with hidden 256; fits this llama base: 28 modules');
  await page.getByLabel('Adapter name', { exact: true }).fill('peft-made');
  await page.getByRole('button', { name: 'Import as a new version' }).click();
  await expect(page.getByText('Imported as peft-made v1.')).toBeVisible();
  const details = page.getByRole('region', { name: 'Adapter details' });
  await expect(details).toContainText('imported from');
  await shot(page, 'adapters-02-imported');

  // Its spectrum, then rank 2 as a new version: the plot shows two cells a module, v1 stays.
  await details.getByRole('button', { name: 'Show the spectrum' }).click();
  // The analysis runs on the engine, which may still be starting on a loaded machine.
  await expect(details.getByRole('img', { name: 'Singular values of peft-made v1, one row per module' })).toBeVisible({ timeout: 120_000 });
  await expect(details.locator('svg g.module')).toHaveCount(28);
  await expect(details.locator('svg g.module').first().locator('rect')).toHaveCount(4);
  await expect(details).toContainText('28 modules at rank 4');
  await shot(page, 'adapters-03-spectrum');
  await details.getByLabel('Reduce to rank').fill('2');
  await details.getByRole('button', { name: 'Make a reduced version' }).click();
  await expect(details.getByRole('status').filter({ hasText: 'Made v2 at rank 2' })).toBeVisible({ timeout: 60_000 });
  await expect(details.getByRole('img', { name: 'Singular values of peft-made v2, one row per module' })).toBeVisible();
  await expect(details.locator('svg g.module').first().locator('rect')).toHaveCount(2);
  await expect(details.getByRole('tree')).toContainText('v1');
  await expect(details).toContainText('rank 4 → 2 by truncated SVD of peft-made v1');
  await shot(page, 'adapters-04-reduced');

  // Compared in the chat: the base, v1 and v2 each answer.
  await details.getByRole('button', { name: 'Compare with peft-made v1 in the chat' }).click();
  await expect(page.getByRole('heading', { name: 'Chat', level: 2 })).toBeVisible();
  const [base, original, reduced] = await sendAndWait(page, 'What do cows give us?', 3);
  expect(base).toBeTruthy();
  expect(original).not.toBe(base);
  expect(reduced).toBeTruthy();
  await expect(page.getByRole('log', { name: 'Conversation' }).getByRole('article').locator('header'))
    .toHaveText(['Base model', 'peft-made v1 ×1.00', 'peft-made v2 ×1.00']);
  await shot(page, 'adapters-05-compare');

  // And v1 alone, from its version: "Chat with it".
  await openSection(page, 'Library');
  await page.getByRole('tab', { name: 'Adapters' }).click();
  await page.getByRole('button', { name: /^peft-made/ }).click();
  await details.getByRole('button', { name: /^v1/ }).click();
  await details.getByRole('button', { name: 'Chat with it' }).click();
  const [alone, withV1] = await sendAndWait(page, 'What do cows give us?', 2);
  expect(alone).toBe(base);
  expect(withV1).toBe(original);
  expect(errors).toEqual([]);
});

test('the wizard proposes settings that learn, warns about weak ones, and its run changes the replies', async ({ page }) => {
  test.setTimeout(480_000);
  const errors = collectErrors(page);
  await page.goto(served.url);
  await openSection(page, 'Fine-tune');
  await page.getByRole('radio', { name: /Lorasmith starter/ }).check();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('radio', { name: /Verily \(chat\)/ }).check();
  // The dataset's first records, as the starter model sees them, inside the wizard.
  const preview = page.getByRole('region', { name: 'Preview: Verily (chat)' });
  await expect(preview.locator('.records mark.trained').first()).toContainText('Verily,');
  await expect(preview).toContainText('60 records');
  await page.getByRole('button', { name: 'Next' }).click();
  // The module table comes from the engine (which may still be starting): the proposal's targets are chosen then.
  await expect(page.getByText('Targets: All linear')).toBeVisible({ timeout: 120_000 });
  await page.getByRole('button', { name: 'Next' }).click();
  await expect(page.getByLabel('Rank r')).toHaveValue('8');
  await page.getByRole('button', { name: 'Next' }).click();

  const proposal = page.getByRole('region', { name: 'Proposed for this model and dataset' });
  await expect(proposal).toContainText('Learning rate 0.0029, 100 steps, all linear targets, rank 8 (alpha 16)');
  await expect(proposal).toContainText('How: Learning rate 3e-3 × √(4M ÷ model parameters)');
  await expect(page.getByLabel('Learning rate')).toHaveValue('0.0029');
  await expect(page.getByLabel('Max steps (optional)')).toHaveValue('100');
  await expect(proposal).toContainText('These settings: about 7.4 passes over 54 training records (100 steps of 4)');

  // The old defaults: 2e-4 for 3 epochs (42 steps) are warned about; the proposal is one click away.
  await page.getByLabel('Learning rate').fill('0.0002');
  await page.getByLabel('Max steps (optional)').fill('');
  await page.getByLabel('Epochs').fill('3');
  await expect(proposal.getByRole('alert')).toContainText('Too weak to move the loss');
  await expect(proposal).toContainText('42 steps');
  await shot(page, 'wizard-01-weak-warned');
  await proposal.getByRole('button', { name: 'Use the proposal' }).click();
  await expect(page.getByLabel('Learning rate')).toHaveValue('0.0029');
  await expect(proposal.getByRole('alert')).toHaveCount(0);
  await page.getByLabel('Adapter name').fill('verily-proposed');
  await page.getByRole('button', { name: 'Next' }).click();
  await expect(page.getByText('Peak memory')).toBeVisible({ timeout: 60_000 });
  await page.getByRole('button', { name: 'Start training' }).click();
  const run = page.getByRole('region', { name: 'Run details' });
  // 100 steps: about 15 s on two idle cores, minutes where other work takes them.
  await expect(run.locator('.badge.done')).toBeVisible({ timeout: 360_000 });
  await shot(page, 'wizard-02-trained');

  // The visible effect: the trained adapter answers a training prompt in the data's form, the base does not.
  await run.getByRole('button', { name: 'Open in chat' }).click();
  const [base, tuned] = await sendAndWait(page, 'What do bees make?', 2, 20);
  expect(base).not.toMatch(/Verily/);
  expect(tuned).toMatch(/^Verily/);
  await shot(page, 'wizard-03-effect');
  expect(errors).toEqual([]);
});
