/**
 * Messages where they belong, against the real main side (`lorasmith serve` on an empty data folder, which
 * registers the starter model and the samples): an error stands beside the field it is about, names the cause,
 * and goes once the field is edited or the next attempt succeeds; a failed import leaves no other item's details
 * beside it; an empty file says it is empty; a dataset with skipped lines says so instead of "ok"; the token
 * histogram's two labels do not overlap on a narrow range; an export error stands beside the export field and
 * replaces an earlier "Exported to".
 */
import { expect, test, type Locator } from '@playwright/test';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { collectErrors, servedLibrary, shot } from './ui-support';

const repo = join(import.meta.dirname, '../..');
const STARTER_LORA = join(repo, 'test/fixtures/peft-0.21-starter-lora');

const served = servedLibrary('ui-messages', (home) => {
  writeFileSync(join(home, 'empty.jsonl'), '');
  // Six records of one length (a narrow histogram) and a line that is not a record.
  const rows = Array.from({ length: 6 }, (_, i) => JSON.stringify({ prompt: `Question ${i}?`, completion: ` Answer ${i}.` }));
  writeFileSync(join(home, 'one-bad.jsonl'), [...rows.slice(0, 3), '{"prompt": "unclosed', ...rows.slice(3)].join('\n') + '\n');
  mkdirSync(join(home, 'not-empty'));
  writeFileSync(join(home, 'not-empty', 'keep.txt'), 'a file of the user\'s');
});

/** Whether two boxes overlap on the page. */
async function overlap(a: Locator, b: Locator): Promise<boolean> {
  const [p, q] = [await a.boundingBox(), await b.boundingBox()];
  if (!p || !q) throw new Error('a label is not on the page');
  return p.x < q.x + q.width && q.x < p.x + p.width && p.y < q.y + q.height && q.y < p.y + p.height;
}

test('errors beside their fields, named and cleared; skipped lines said; histogram labels apart; export messages', async ({ page }) => {
  test.setTimeout(240_000);
  const errors = collectErrors(page);
  await page.goto(served.url);

  // A model folder that is not there: said beside the path, the starter's details no longer beside it.
  const models = page.getByRole('region', { name: 'Model details' });
  await page.getByRole('button', { name: /^Lorasmith starter/ }).click();
  await expect(models).toContainText('q_proj', { timeout: 60_000 });
  const modelPath = page.getByLabel('Import a Hugging Face model folder');
  const missing = join(served.home, 'no-such-model');
  await modelPath.fill(missing);
  await page.getByRole('button', { name: 'Import model' }).click();
  const modelError = page.locator('#model-path-error');
  await expect(modelError).toHaveAttribute('role', 'alert');
  await expect(modelError).toContainText(missing);
  await expect(modelPath).toHaveAttribute('aria-invalid', 'true');
  await expect(models).not.toContainText('q_proj');
  await shot(page, 'messages-01-model-path');
  // Editing the path makes the error stale: it goes.
  await modelPath.press('End');
  await modelPath.press('Backspace');
  await expect(modelError).toHaveCount(0);

  // An empty dataset file says it is empty, beside its path.
  await page.getByRole('tab', { name: 'Datasets' }).click();
  const datasetPath = page.getByLabel('Import a dataset file');
  await datasetPath.fill(join(served.home, 'empty.jsonl'));
  await page.getByRole('button', { name: 'Import dataset' }).click();
  const datasetError = page.locator('#dataset-path-error');
  await expect(datasetError).toContainText('empty.jsonl is empty: it holds no records');
  await shot(page, 'messages-02-empty-dataset');

  // A file with a line that is not a record: imported, and the badge says a line was skipped, not "ok".
  await datasetPath.fill(join(served.home, 'one-bad.jsonl'));
  await page.getByRole('button', { name: 'Import dataset' }).click();
  await expect(datasetError).toHaveCount(0);
  const dataset = page.getByRole('region', { name: 'Dataset details' });
  await expect(dataset.getByRole('heading', { name: /^one-bad/ })).toBeVisible({ timeout: 30_000 });
  await expect(dataset.locator('.badge.skipped')).toHaveText('1 line skipped');
  await expect(dataset.locator('.badge.ok')).toHaveCount(0);
  await expect(dataset).toContainText('6 (1 skipped: see the errors below)');
  await expect(dataset.locator('table.issues')).toContainText('4');
  // Six records of one length: the histogram's first and last labels stand apart.
  const histogram = dataset.getByRole('img', { name: /^Token lengths: 6 records/ });
  await expect(histogram).toBeVisible({ timeout: 60_000 });
  expect(await overlap(histogram.locator('text.tick').first(), histogram.locator('text.tick.end'))).toBe(false);
  await shot(page, 'messages-03-skipped-line');

  // An adapter version to export: the PEFT-made starter adapter, imported after its preflight.
  await page.getByRole('tab', { name: 'Adapters' }).click();
  await page.getByLabel('Adapter folder (adapter_config.json + adapter_model.safetensors)').fill(STARTER_LORA);
  await page.getByRole('button', { name: 'Check against this base' }).click();
  await expect(page.getByRole('status', { name: 'Preflight' }).locator('.verdict')).toContainText('Fits', { timeout: 120_000 });
  await page.getByLabel('Adapter name', { exact: true }).fill('exported');
  await page.getByRole('button', { name: 'Import as a new version' }).click();
  const details = page.getByRole('region', { name: 'Adapter details' });
  await expect(details.getByRole('treeitem')).toHaveCount(1);

  // No destination: said beside the export field. A merged model exported: said there too, files where it says.
  const destination = details.getByLabel('Export to folder');
  await details.getByRole('button', { name: 'Export merged model' }).click();
  const exportError = details.locator('.export [role="alert"]');
  await expect(exportError).toContainText('Enter a destination folder');
  await expect(destination).toHaveAttribute('aria-invalid', 'true');
  const merged = join(served.home, 'merged');
  await destination.fill(merged);
  await details.getByRole('button', { name: 'Export merged model' }).click();
  const exported = details.locator('.export [role="status"]').filter({ hasText: 'Exported to' });
  await expect(exported).toContainText(merged, { timeout: 120_000 });
  await expect(exportError).toHaveCount(0);
  expect(existsSync(join(merged, 'config.json')) && existsSync(join(merged, 'model.safetensors'))).toBe(true);
  // A folder that holds the user's files is refused beside the field, and the earlier "Exported to" goes.
  await destination.fill(join(served.home, 'not-empty'));
  await details.getByRole('button', { name: 'Export PEFT adapter' }).click();
  await expect(exportError).toContainText('not-empty');
  await expect(exported).toHaveCount(0);
  expect(existsSync(join(served.home, 'not-empty', 'adapter_config.json'))).toBe(false);
  await shot(page, 'messages-04-export');
  expect(errors).toEqual([]);
});
