/**
 * The same recipe trained through the app and through the command line, for train.bench.ts: the app's path is the
 * real one (a library, the command handlers, the engine host in its worker thread, the dataset's normalized file),
 * the CLI's is `lorasmith train` in a process of its own. Both run the engine's one training run, so their
 * tokens/s (the loop's own count, from each training record) should agree, and so should their weights.
 * Recipe: the app's guided first fine-tune (resources/samples/samples.json: the starter model, all-linear r8,
 * batch 4, its steps on verily-chat), on the default backend.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrainingSettings } from '../preload/contract';
import { HostClient } from '../main/host/client';
import { workerHost } from '../main/host/worker-host';
import { guidedSettings } from '../main/services/first-run';
import { createHandlers, type AppHandlers } from '../main/ipc/handlers';
import { memoryPair } from '../main/ipc/memory';
import { typedPaths } from '../main/ipc/paths';
import { readSamplesManifest } from '../main/services/starter-resources';
import { FileWork } from '../main/services/file-work/client';
import { openLibrary } from '../main/store/index';

const root = join(import.meta.dirname, '..');
const resourcesDir = join(root, 'resources');

interface Side { readonly tokensPerSecond: number; readonly seconds: number; readonly wallSeconds: number; readonly weights: Buffer; readonly backend: string }

/** The record's own speed (the loop's tokens over its seconds) and the weights written. */
function readRun(adapterDir: string, wallSeconds: number): Side {
  const record = JSON.parse(readFileSync(join(adapterDir, 'training_record.json'), 'utf8')) as { performance: { tokensPerSecond: number; seconds: number; backend: string } };
  return { ...record.performance, wallSeconds, weights: readFileSync(join(adapterDir, 'adapter_model.safetensors')) };
}

async function throughTheApp(work: string, settings: TrainingSettings, dataFile: string): Promise<Side> {
  const library = openLibrary(join(work, 'data'));
  const host = new HostClient(workerHost());
  const files = new FileWork();
  let app: AppHandlers | null = null;
  const pair = memoryPair(() => (app as AppHandlers).handlers);
  app = createHandlers({ library, host, files, paths: typedPaths(), mode: 'browser', version: 'bench', emit: pair.emit });
  try {
    const model = await pair.api.invoke('models.import', { path: join(resourcesDir, 'starter'), mode: 'copy' });
    const dataset = await pair.api.invoke('datasets.import', { path: dataFile });
    await pair.api.invoke('chat.load', { modelId: model.id }); // the base resident, as after the first run's chat
    const started = performance.now();
    const finished = new Promise<void>((resolve) => pair.api.on('train.finished', () => resolve()));
    await pair.api.invoke('train.start', { modelId: model.id, datasetId: dataset.id, settings, adapterName: 'bench' });
    await finished;
    const wall = (performance.now() - started) / 1000;
    const [adapter] = await pair.api.invoke('adapters.list', {});
    const [version] = await pair.api.invoke('adapters.versions', { adapterId: adapter?.id ?? '' });
    if (!version) throw new Error('the app run committed no version');
    return readRun(version.path, wall);
  } finally {
    await host.shutdown();
    await files.close();
    library.close();
  }
}

function throughTheCli(work: string, settings: TrainingSettings, dataFile: string): Side {
  const out = join(work, 'cli-adapter');
  const flags = [
    '--targets', settings.lora.targetModules.join(','), '--rank', String(settings.lora.rank), '--alpha', String(settings.lora.alpha),
    '--dropout', String(settings.lora.dropout), '--learning-rate', String(settings.learningRate), '--scheduler', settings.scheduler,
    '--max-steps', String(settings.maxSteps), '--batch-size', String(settings.batchSize), '--grad-accum', String(settings.gradAccum),
    '--max-seq-len', String(settings.maxSeqLen), '--val-split', String(settings.valSplit), '--seed', String(settings.seed),
    '--warmup-steps', String(settings.warmupSteps), '--weight-decay', String(settings.weightDecay), '--max-grad-norm', String(settings.maxGradNorm),
    '--eval-every', String(settings.evalEvery), '--checkpoint-every', String(settings.checkpointEvery), '--keep', settings.keepWeights ?? 'best',
  ];
  const started = performance.now();
  const run = spawnSync(process.execPath, [join(root, 'bin/lorasmith.js'), 'train', join(resourcesDir, 'starter'), '--data', dataFile, '--out', out, ...flags, '--json'], {
    encoding: 'utf8', timeout: 1_800_000,
  });
  if (run.status !== 0) throw new Error(`lorasmith train failed: ${run.stderr}`);
  return readRun(out, (performance.now() - started) / 1000);
}

/** Markdown lines: one row per path, the ratio, and whether the weights are the same bytes. */
export async function appVersusCli(steps = Number(process.env.BENCH_APP_CLI_STEPS ?? 0) || undefined): Promise<string[]> {
  const manifest = readSamplesManifest(resourcesDir);
  const guided = guidedSettings(manifest.guidedFineTune);
  const settings: TrainingSettings = { ...guided, maxSteps: steps ?? guided.maxSteps };
  const dataFile = join(resourcesDir, 'samples', manifest.guidedFineTune.dataset);
  const work = mkdtempSync(join(tmpdir(), 'lorasmith-bench-app-cli-'));
  try {
    const app = await throughTheApp(work, settings, dataFile);
    const cli = throughTheCli(work, settings, dataFile);
    const ratio = app.tokensPerSecond / cli.tokensPerSecond;
    return [
      `### The app and the CLI on the same run`, '',
      `The guided first fine-tune (starter model, ${manifest.guidedFineTune.lora.targetModules} r${settings.lora.rank}, batch ${settings.batchSize}, ` +
        `${settings.maxSteps} steps, ${settings.maxSeqLen} tokens, evaluation every ${settings.evalEvery} steps with a sample), through the app's ` +
        'handlers and engine host and through `lorasmith train` in its own process. Tokens/s is the training loop\'s own count ' +
        '(training_record.json); wall time includes loading, the estimate and writing the adapter.', '',
      '| path | backend | tokens/s | loop s | wall s |', '|---|---|---:|---:|---:|',
      `| app (handlers + host worker) | ${app.backend} | ${app.tokensPerSecond.toFixed(0)} | ${app.seconds.toFixed(1)} | ${app.wallSeconds.toFixed(1)} |`,
      `| CLI (lorasmith train) | ${cli.backend} | ${cli.tokensPerSecond.toFixed(0)} | ${cli.seconds.toFixed(1)} | ${cli.wallSeconds.toFixed(1)} |`, '',
      `- App throughput is ${(100 * ratio).toFixed(0)}% of the CLI's (target: within 10%: ${Math.abs(1 - ratio) <= 0.1 ? 'met' : 'not met'}).`,
      `- Adapter weights ${app.weights.equals(cli.weights) ? 'byte-identical' : 'DIFFERENT'} (${app.weights.length} bytes).`,
      '',
    ];
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
