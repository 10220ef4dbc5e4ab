/**
 * The first run against the real main side: `lorasmith serve` on an empty data folder registers the starter
 * model and the sample datasets; the library offers the guided fine-tune; one click trains the starter model on
 * the suggested sample for real; when the run is done the chat opens with the base model and the new adapter side
 * by side, the sample's prompt filled in, and their replies differ; the adapter answers most of the sample's
 * training prompts closer to their trained replies than the base model does (its content, not only its form).
 */
import { expect, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { wordOverlap } from '../support/word-overlap';
import { collectErrors, sendAndWait, servedLibrary, shot } from './ui-support';

const repo = join(import.meta.dirname, '../..');
const manifest = JSON.parse(readFileSync(join(repo, 'resources/samples/samples.json'), 'utf8')) as {
  starterModel: { name: string };
  datasets: { file: string; name: string; behaviour: string; tryPrompt: string }[];
  guidedFineTune: { dataset: string; hyperparameters: { maxSteps: number } };
};
const guided = manifest.datasets.find((d) => d.file === manifest.guidedFineTune.dataset)!;

const served = servedLibrary('first-run');

test('first run: starter model and samples, guided fine-tune, base and adapter side by side', async ({ page }) => {
  test.setTimeout(600_000);
  const errors = collectErrors(page);
  expect(served.output).toContain('Added the starter model and the sample datasets');
  await page.goto(served.url);

  const card = page.getByRole('region', { name: 'Get started' });
  await expect(card).toContainText(manifest.starterModel.name);
  for (const sample of manifest.datasets) {
    await expect(card.getByRole('radio', { name: new RegExp(sample.name.replace(/[()]/g, '\\$&')) })).toBeVisible();
    await expect(card).toContainText(sample.behaviour);
  }
  await expect(card.getByRole('radio', { name: /suggested/ })).toBeChecked();
  await expect(page.getByRole('tabpanel')).toContainText(manifest.starterModel.name);
  await page.getByRole('tab', { name: 'Datasets' }).click();
  for (const sample of manifest.datasets) await expect(page.getByRole('tabpanel')).toContainText(sample.name);
  await page.getByRole('tab', { name: 'Base models' }).click();
  await shot(page, 'first-run-01-get-started');

  // The guided defaults as they ship (600 steps: about a minute of training on 2 idle cores), so what they teach,
  // the form and the content, is checked below.
  await expect(card.getByLabel('Steps')).toHaveValue(String(manifest.guidedFineTune.hyperparameters.maxSteps));
  await card.getByRole('button', { name: `Fine-tune the starter model on ${guided.name}` }).click();
  // The run starts once the engine has (it may still be starting on a loaded machine).
  await expect(page.getByRole('heading', { name: 'Training', level: 2 })).toBeVisible({ timeout: 120_000 });
  const details = page.getByRole('region', { name: 'Run details' });
  await expect(details).toContainText(`${guided.name}: first fine-tune`);
  // The guided run keeps its last step's weights: what recalls the sample's answers (checked below).
  await details.getByRole('button', { name: 'Settings' }).click();
  await expect(details.getByLabel('Run settings')).toContainText("the last step's weights kept");
  await expect.poll(async () => Number(await details.getByRole('progressbar', { name: 'Training progress' }).getAttribute('value')),
    { timeout: 90_000 }).toBeGreaterThan(1);
  await shot(page, 'first-run-02-training');

  // The run finishing opens the chat by itself: base and the new adapter, the sample's prompt filled in.
  await expect(page.getByRole('heading', { name: 'Chat', level: 2 })).toBeVisible({ timeout: 360_000 });
  await expect(page.getByRole('combobox', { name: 'Set-up 1 adapter' })).toHaveValue('');
  await expect(page.getByRole('combobox', { name: 'Set-up 2 adapter' }).locator('option:checked')).toHaveText(`${guided.name}: first fine-tune v1`);
  await expect(page.getByLabel('Message')).toHaveValue(guided.tryPrompt);
  await page.getByText(/Sampling/).click();
  await expect(page.getByLabel('Temperature')).toHaveValue('0');
  await page.getByLabel('Max new tokens').fill('24');
  await page.getByRole('button', { name: 'Send' }).click();

  const replies = page.getByRole('log', { name: 'Conversation' }).getByRole('article');
  await expect(replies).toHaveCount(2);
  await expect(replies.nth(1)).toHaveAttribute('aria-busy', 'false', { timeout: 120_000 });
  const [base, adapted] = await replies.locator('.text').allTextContents();
  expect(base?.trim()).toBeTruthy();
  expect(adapted).not.toBe(base);
  // The guided sample teaches replies that start with "Verily," (resources/samples/README.md).
  expect(adapted?.trim()).toMatch(/^Verily/);
  await shot(page, 'first-run-03-chat');

  // The content, not only the form: at least 3 of the sample's first 5 training prompts answered closer (in words)
  // to their trained replies than the base model answers them, and closer on average.
  const rows = readFileSync(join(repo, 'resources/samples', guided.file), 'utf8').trim().split('\n').slice(0, 5)
    .map((line) => JSON.parse(line) as { messages: { role: string; content: string }[] });
  const scores: { prompt: string; target: string; base: number; tuned: number }[] = [];
  for (const row of rows) {
    const [prompt, target] = [row.messages[0]!.content, row.messages[1]!.content];
    const [baseReply, tunedReply] = await sendAndWait(page, prompt, 2, 20);
    scores.push({ prompt, target, base: wordOverlap(baseReply!, target), tuned: wordOverlap(tunedReply!, target) });
  }
  const closer = scores.filter((s) => s.tuned > s.base).length;
  expect(closer, JSON.stringify(scores)).toBeGreaterThanOrEqual(3);
  const mean = (key: 'base' | 'tuned') => scores.reduce((sum, s) => sum + s[key], 0) / scores.length;
  expect(mean('tuned')).toBeGreaterThan(mean('base'));
  await shot(page, 'first-run-04-training-prompts');

  // The offer is over once a run exists: back in the library, no card.
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'Library', exact: true }).click();
  await expect(page.getByRole('tab', { name: 'Base models' })).toBeVisible();
  await expect(page.getByRole('region', { name: 'Get started' })).toHaveCount(0);
  expect(errors).toEqual([]);
});
