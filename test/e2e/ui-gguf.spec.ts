/**
 * "Pick the model you already run in Ollama, fine-tune it, run the result in Ollama", against the real main side
 * (`lorasmith serve`) with OLLAMA_MODELS pointing at a test Ollama library whose one model, starter:latest, is a
 * GGUF made by `lorasmith gguf merged`: the Library finds it, adds it where it lies, the wizard trains on it, and
 * the Adapters panel writes adapter.gguf with a Modelfile that names starter:latest, and the commands to run it.
 */
import { expect, test } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { collectErrors, openSection, servedLibrary, shot, wizardToReview } from './ui-support';

const repo = join(import.meta.dirname, '../..');
let datasetPath = '';

/** An Ollama library (blobs + manifests) holding the starter model with the PEFT fixture merged in, as F16 GGUF. */
function ollamaLibrary(home: string, dir: string): string {
  const made = join(home, 'made');
  execFileSync(process.execPath, [join(repo, 'bin/lorasmith.js'), 'gguf', 'merged', join(repo, 'resources/starter'),
    '--adapter', join(repo, 'test/fixtures/peft-0.21-starter-lora'), '--out', made, '--type', 'f16', '--name', 'starter'], { cwd: repo });
  const digest = createHash('sha256').update(readFileSync(join(made, 'model.gguf'))).digest('hex');
  mkdirSync(join(dir, 'blobs'), { recursive: true });
  renameSync(join(made, 'model.gguf'), join(dir, 'blobs', `sha256-${digest}`));
  const manifest = join(dir, 'manifests/registry.ollama.ai/library/starter/latest');
  mkdirSync(join(manifest, '..'), { recursive: true });
  writeFileSync(manifest, JSON.stringify({ schemaVersion: 2, layers: [{ mediaType: 'application/vnd.ollama.image.model', digest: `sha256:${digest}`, size: 1 }] }));
  return dir;
}

const served = servedLibrary('gguf-ui', (home) => {
  const ollama = ollamaLibrary(home, join(home, 'ollama'));
  const lines = ['Where is the ship?', 'Who is the captain?', 'Is the sea calm?', 'Where is the map?'].map((q, i) =>
    JSON.stringify({ messages: [{ role: 'user', content: q }, { role: 'assistant', content: `Arr! Aye, matey, number ${i}.` }] }));
  datasetPath = join(home, 'pirate.jsonl');
  writeFileSync(datasetPath, lines.join('\n') + '\n');
  // HOME too: LM Studio's default folders are looked for under it.
  return { ...process.env, OLLAMA_MODELS: ollama, HOME: home };
});

test('an Ollama model: found, added in place, fine-tuned, exported back as a GGUF LoRA with its Modelfile', async ({ page }) => {
  test.setTimeout(480_000);
  const errors = collectErrors(page);
  await page.goto(served.url);
  await page.getByRole('button', { name: 'Look in Ollama and LM Studio' }).click();
  const found = page.getByRole('list', { name: 'GGUF models found' });
  await expect(found).toContainText('starter:latest', { timeout: 30_000 });
  await expect(found).toContainText('Ollama · llama · F16');
  await shot(page, 'gguf-01-found');
  await found.getByRole('button', { name: 'Add starter:latest to the library' }).click();
  const details = page.getByRole('region', { name: 'Model details' });
  await expect(details.getByRole('heading', { name: 'starter:latest' })).toBeVisible({ timeout: 30_000 });
  await expect(details).toContainText('Ollama: starter:latest');
  await expect(details).toContainText('GGUF, F16');
  await expect(details).toContainText('q_proj', { timeout: 60_000 });
  await expect(found.getByRole('button', { name: 'In the library' })).toBeVisible();
  await shot(page, 'gguf-02-added');

  await page.getByRole('tab', { name: 'Datasets' }).click();
  await page.getByLabel('Import a dataset file').fill(datasetPath);
  await page.getByRole('button', { name: 'Import dataset' }).click();
  await expect(page.getByRole('region', { name: 'Dataset details' })).toContainText('messages', { timeout: 30_000 });

  await wizardToReview(page, {
    model: /starter:latest/, dataset: /pirate/,
    fields: { 'Adapter name': 'pirate', 'Max steps (optional)': '2', 'Batch size': '2', 'Max sequence length': '48', 'Validation split': '0', 'Warm-up steps': '0' },
  });
  await expect(page.getByText('Peak memory')).toBeVisible({ timeout: 60_000 });
  await page.getByRole('button', { name: 'Start training' }).click();
  const run = page.getByRole('region', { name: 'Run details' });
  await expect(run.locator('.badge.done')).toBeVisible({ timeout: 180_000 });

  await openSection(page, 'Library');
  await page.getByRole('tab', { name: 'Adapters' }).click();
  await page.getByRole('button', { name: /^pirate/ }).click();
  const destination = join(served.home, 'for-ollama');
  await page.getByLabel('Export to folder').fill(destination);
  await page.getByRole('button', { name: 'Export GGUF + Modelfile' }).click();
  const status = page.getByRole('region', { name: 'Adapter details' }).getByRole('status').filter({ hasText: 'Wrote' });
  await expect(status).toContainText('adapter.gguf, Modelfile', { timeout: 60_000 });
  await expect(page.getByLabel('Commands that run the export')).toContainText(`ollama create pirate-v1 -f ${destination}/Modelfile && ollama run pirate-v1`);
  await shot(page, 'gguf-03-exported');
  expect(existsSync(join(destination, 'adapter.gguf'))).toBe(true);
  expect(readFileSync(join(destination, 'Modelfile'), 'utf8')).toContain('FROM starter:latest\nADAPTER ./adapter.gguf\n');
  expect(errors).toEqual([]);
});
