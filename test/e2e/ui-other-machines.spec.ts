/**
 * Training on other machines, as the README's steps have a user do it from the app in browser mode.
 *
 * The remote engine: two `lorasmith serve` processes on two loopback ports stand for this machine and the GPU machine
 * at the end of an SSH tunnel (the tunnel only forwards a port). In the first one's page, Settings → Remote engine
 * takes the second's address and token; the app then names the machine it drives (in Settings and beside the
 * engine's state in the sidebar), a run designed in the wizard is estimated and trains there with its curve streamed
 * here, and its version comes back into this library as trained on that machine through that address; "Use this
 * machine" switches back.
 *
 * The hand-off to transformers + PEFT + accelerate: the wizard's review exports the same run as a folder (written on
 * this machine while the remote engine is in use), whose train.py compiles; its output, as train.py's own
 * write_result leaves it around an adapter the engine trained with the same settings (transformers and PEFT cannot
 * run here: test/support/run-result.ts), comes back through the Adapters view's "Import a run" as a version that
 * names the machine it trained on.
 */
import { expect, test, type Page } from '@playwright/test';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { writeRunResult, type LoggedEval, type LoggedStep } from '../support/run-result';
import { collectErrors, openSection, servedLibrary, shot, wizardToReview } from './ui-support';

const model = join(import.meta.dirname, '../fixtures/tiny-random-llama');
let datasetPath = '';

const here = servedLibrary('ui-elsewhere-here', (home) => {
  const lines = Array.from({ length: 16 }, (_, i) => JSON.stringify({
    messages: [{ role: 'user', content: `What comes after ${i}?` }, { role: 'assistant', content: `Aye, ${i + 1} comes after ${i}.` }],
  }));
  datasetPath = join(home, 'counting.jsonl');
  writeFileSync(datasetPath, lines.join('\n') + '\n');
});
const there = servedLibrary('ui-elsewhere-there');

async function wizard(page: Page, name: string, exportTo: string): Promise<void> {
  await wizardToReview(page, {
    model: /tiny-random-llama/, dataset: /counting/, allLinear: true, rank: '4',
    fields: {
      'Adapter name': name, 'Max steps (optional)': '12', 'Learning rate': '0.01', 'Batch size': '2', 'Max sequence length': '32',
      'Validation split': '0.25', 'Evaluate every (steps)': '4', 'Early-stopping patience (optional)': '', 'Warm-up steps': '0',
    },
  });
  // The estimate comes from the remote engine, where the run will train.
  await expect(page.getByText('Peak memory')).toBeVisible({ timeout: 150_000 });
  // The same run for transformers + PEFT + accelerate, exported into a folder on this machine.
  await page.getByLabel('Export folder (new or empty)').fill(exportTo);
  await page.getByRole('button', { name: 'Export for PEFT + accelerate' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Exported to ${exportTo}` })).toContainText(/\d+ training rows, \d+ validation rows, 12 steps/, { timeout: 150_000 });
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByRole('heading', { name: 'Training', level: 2 })).toBeVisible();
}

test('a wizard run trained on a remote engine (named in Settings and the sidebar), exported for PEFT and its result imported back', async ({ page }) => {
  test.setTimeout(600_000);
  const errors = collectErrors(page);
  const remote = new URL(there.url);
  const address = `127.0.0.1:${remote.port}`;
  const token = /^\/t\/([^/]+)\//.exec(remote.pathname)?.[1] ?? '';
  expect(token).not.toBe('');

  await page.goto(here.url);
  await page.getByLabel('Import a Hugging Face model folder').fill(model);
  await page.getByRole('button', { name: 'Import model' }).click();
  await expect(page.getByRole('region', { name: 'Model details' })).toContainText('q_proj', { timeout: 150_000 });
  await page.getByRole('tab', { name: 'Datasets' }).click();
  await page.getByLabel('Import a dataset file').fill(datasetPath);
  await page.getByRole('button', { name: 'Import dataset' }).click();
  await expect(page.getByRole('region', { name: 'Dataset details' })).toContainText('Aye', { timeout: 60_000 });

  await openSection(page, 'Settings');
  const panel = page.getByRole('region', { name: 'Remote engine' });
  const sidebar = page.getByRole('navigation', { name: 'Sections' });
  await expect(panel).toContainText('Training and chat run on this machine.');
  await expect(sidebar).not.toContainText('remote engine');
  await panel.getByLabel('Address').fill(address);
  await panel.getByLabel('Token').fill(token);
  await panel.getByRole('button', { name: 'Use remote engine' }).click();
  // The machine at the other end, as its hello names it, with the address it is reached through.
  await expect(panel).toContainText(`Training and chat run on ${hostname()} (`, { timeout: 90_000 });
  await expect(panel).toContainText(`(through ${address})`);
  await expect(sidebar).toContainText(`remote engine on ${hostname()} (`);
  await shot(page, 'elsewhere-01-remote-settings');

  const exported = join(here.home, 'export');
  await wizard(page, 'remote-run', exported);
  for (const file of ['train.py', 'run.json', 'lora_config.json', 'data/train.jsonl', 'accelerate/single_gpu.yaml', 'initial_adapter/adapter_model.safetensors', 'README.md']) {
    expect(existsSync(join(exported, file)), file).toBe(true);
  }
  const compiled = spawnSync('python3', ['-m', 'py_compile', join(exported, 'train.py')], { encoding: 'utf8' });
  expect(compiled.status, compiled.stderr).toBe(0);
  const details = page.getByRole('region', { name: 'Run details' });
  await expect(details.locator('.badge.done')).toBeVisible({ timeout: 180_000 });
  await expect(details).toContainText(/Finished .* after \d+/);
  await shot(page, 'elsewhere-02-trained-remotely');
  // What the run needed went there by content (the model folder and the dataset file), kept under remote/.
  expect(readdirSync(join(there.home, 'data', 'remote', 'content')).length).toBeGreaterThanOrEqual(2);

  await openSection(page, 'Library');
  await page.getByRole('tab', { name: 'Adapters' }).click();
  await page.getByRole('button', { name: /^remote-run/ }).click();
  const adapterDetails = page.getByRole('region', { name: 'Adapter details' });
  await expect(adapterDetails.getByRole('treeitem')).toHaveCount(1);
  await expect(adapterDetails).toContainText(`through the remote engine at ${address}`);
  await expect(adapterDetails).toContainText(`${hostname()} (`);
  await expect(adapterDetails).toContainText('12 steps');

  // The exported run's output comes back through "Import a run": a version naming the machine it trained on.
  const adapterRoot = join(here.home, 'data', 'adapters');
  const [trainedId] = readdirSync(adapterRoot);
  const trained = join(adapterRoot, trainedId ?? '', 'v1');
  const record = JSON.parse(readFileSync(join(trained, 'training_record.json'), 'utf8')) as { history: LoggedStep[]; evals: LoggedEval[] };
  writeRunResult(exported, join(exported, 'output'), trained, record.history, record.evals);
  await page.getByLabel('Import a run trained with PEFT (the output folder of an exported run)').fill(join(exported, 'output'));
  await page.getByLabel('Adapter name (optional)').fill('remote-run-peft');
  await page.getByRole('button', { name: 'Import a run' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Imported as remote-run-peft v1' })).toContainText('trained on gpu-box: 2 × NVIDIA H100', { timeout: 60_000 });
  await page.getByRole('button', { name: /^remote-run-peft/ }).click();
  await expect(adapterDetails).toContainText('Trained on');
  await expect(adapterDetails).toContainText('gpu-box: 2 × NVIDIA H100');
  await expect(adapterDetails).toContainText('12 steps');
  await shot(page, 'elsewhere-03-run-imported');

  await openSection(page, 'Settings');
  await panel.getByRole('button', { name: 'Use this machine' }).click();
  await expect(panel).toContainText('Training and chat run on this machine.', { timeout: 30_000 });
  await expect(sidebar).not.toContainText('remote engine');
  expect(errors).toEqual([]);
});
