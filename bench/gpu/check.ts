/**
 * The GPU check's commands: bundled into the pack (pack.ts) and run by run.sh on a machine with a GPU, or here from
 * the sources (node --import ./bin/register-ts.js bench/gpu/check.ts <command> ...). Each prints one JSON object.
 *
 *   adapter                                  what Dawn finds: the adapter's vendor, architecture, features, limits
 *   ops --backend B                          the op checks against float64 (test/engine/backend/op-checks.ts) on B;
 *                                            exit status 1 when one fails
 *   step --backend B --shape S [--steps N] [--decode N]
 *                                            the LoRA training step and greedy decoding (step.ts) on B
 *   dispatches --shape S                     compute dispatches per step and per token on webgpu, fused and
 *                                            composed (dispatches.ts)
 *   greedy --backend B --models DIR[,DIR]    the upstream greedy sequences in each DIR/reference_outputs.json (the
 *                                            conformance suite's), generated on B; exit status 1 when one differs
 *   logits --backend B --model DIR [--adapter DIR] --ids 1,2,3[;4,5,6]
 *                                            the model's float32 logits at each row's last position, with the PEFT
 *                                            adapter active where one is given (the hand-off check compares them
 *                                            with transformers + PEFT's: handoff_check.py)
 *   report DIR                               prints the results section (Markdown) from the JSON files in DIR
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ResidentAdapters } from '../../main/engine/adapters/resident';
import { initBackend, parseBackendPreference } from '../../main/engine/backend/index';
import { generate } from '../../main/engine/generate/generate';
import { loadModel } from '../../main/engine/models/registry';
import { runOpChecks } from '../../test/engine/backend/op-checks';
import { logitsOf } from '../../test/support/logits';
import { renderReport } from './report';
import { dispatchCounts } from './dispatches';
import { parseFlags, profileStep } from './profile';
import { runStep, SHAPES } from './step';

interface DawnAdapter {
  readonly info?: Record<string, unknown>;
  readonly features: Iterable<string>;
  readonly limits: Record<string, number>;
}

function option(args: readonly string[], name: string, fallback?: string): string {
  const at = args.indexOf(`--${name}`);
  const value = at >= 0 ? args[at + 1] : fallback;
  if (value === undefined) throw new Error(`--${name} is required`);
  return value;
}

function count(args: readonly string[], name: string, fallback: number): number {
  const value = Number(option(args, name, String(fallback)));
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a non-negative integer`);
  return value;
}

const LIMITS = [
  'maxStorageBufferBindingSize', 'maxBufferSize', 'maxStorageBuffersPerShaderStage', 'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupsPerDimension',
];

async function adapter(): Promise<unknown> {
  const dawn = (await import(/* @vite-ignore */ 'webgpu' as string)) as { create(options: string[]): { requestAdapter(): Promise<DawnAdapter | null> } };
  const found = await dawn.create([]).requestAdapter();
  if (!found) return { adapter: null };
  const info = found.info ?? {};
  return {
    adapter: Object.fromEntries(['vendor', 'architecture', 'device', 'description', 'isFallbackAdapter'].map((k) => [k, info[k]])),
    features: [...found.features].sort(),
    limits: Object.fromEntries(LIMITS.map((k) => [k, found.limits[k]])),
  };
}

/** Rows of token ids: '1,2,3;4,5,6', every row as long. */
function idRows(text: string): number[][] {
  const rows = text.split(';').map((row) => row.split(',').map(Number));
  if (rows.some((row) => row.length === 0 || row.length !== rows[0]?.length || row.some((id) => !Number.isSafeInteger(id) || id < 0))) {
    throw new Error(`--ids must be rows of non-negative integers of one length, separated by ';', got '${text}'`);
  }
  return rows;
}

/** The logits at each row's last position, [rows][vocabulary], with the adapter active where one is given. */
async function lastLogits(modelDir: string, adapterDir: string | undefined, rows: readonly number[][]): Promise<number[][]> {
  const model = await loadModel(modelDir);
  try {
    const adapters = new ResidentAdapters(model);
    if (adapterDir !== undefined) {
      adapters.loadFromDir('checked', adapterDir);
      adapters.use('checked');
    }
    const all = await logitsOf(model, rows);
    const t = rows[0]?.length ?? 0;
    const vocab = all.length / (rows.length * t);
    return rows.map((_, r) => Array.from(all.subarray((r * t + t - 1) * vocab, (r * t + t) * vocab)));
  } finally {
    model.dispose();
  }
}

interface GreedyCase {
  readonly input_ids: readonly number[];
  readonly max_length: number;
  readonly expected_sequence: readonly number[];
}

/** Each upstream greedy case of the model folder, generated without EOS stops (upstream ran without them). */
async function greedy(modelDir: string): Promise<{ model: string; cases: { expected: readonly number[]; got: number[]; passed: boolean }[] }> {
  const ref = JSON.parse(readFileSync(join(modelDir, 'reference_outputs.json'), 'utf8')) as { greedy: readonly GreedyCase[] };
  const model = await loadModel(modelDir);
  try {
    const cases = [];
    for (const g of ref.greedy) {
      const result = await generate(model, g.input_ids, { maxNewTokens: g.max_length - g.input_ids.length, temperature: 0, eosTokenIds: [] });
      const got = [...g.input_ids, ...result.ids];
      cases.push({ expected: g.expected_sequence, got, passed: got.length === g.expected_sequence.length && got.every((id, i) => id === g.expected_sequence[i]) });
    }
    return { model: basename(modelDir), cases };
  } finally {
    model.dispose();
  }
}

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'adapter':
      console.log(JSON.stringify(await adapter()));
      return 0;
    case 'ops': {
      const info = await initBackend(parseBackendPreference(option(args, 'backend')));
      const reports = await runOpChecks();
      console.log(JSON.stringify({ backend: info.name, kernels: info.matmulKernels, checks: reports }));
      return reports.every((r) => r.passed) ? 0 : 1;
    }
    case 'step': {
      const info = await initBackend(parseBackendPreference(option(args, 'backend')));
      const shape = option(args, 'shape', 'qwen2.5-0.5b');
      if (!SHAPES[shape]) throw new Error(`--shape must be one of ${Object.keys(SHAPES).join(', ')}`);
      const report = await runStep(shape, count(args, 'steps', 5), count(args, 'decode', 32));
      console.log(JSON.stringify({ ...report, kernels: info.matmulKernels }));
      return 0;
    }
    case 'profile': {
      const info = await initBackend(parseBackendPreference(option(args, 'backend')));
      const batchShape = {
        ...(args.includes('--batch') ? { batch: count(args, 'batch', 2) } : {}),
        ...(args.includes('--seq') ? { seq: count(args, 'seq', 256) } : {}),
      };
      const report = await profileStep(option(args, 'shape', 'qwen2.5-0.5b'), batchShape, parseFlags(option(args, 'flags', '')));
      console.log(JSON.stringify({ backend: info.name, ...report }));
      return 0;
    }
    case 'dispatches': {
      await initBackend('webgpu');
      const shape = option(args, 'shape', 'tiny');
      console.log(JSON.stringify({ shape, ...(await dispatchCounts(shape)) }));
      return 0;
    }
    case 'greedy': {
      const info = await initBackend(parseBackendPreference(option(args, 'backend')));
      const models = [];
      for (const dir of option(args, 'models').split(',')) models.push(await greedy(dir));
      console.log(JSON.stringify({ backend: info.name, models }));
      return models.every((m) => m.cases.every((c) => c.passed)) ? 0 : 1;
    }
    case 'logits': {
      const info = await initBackend(parseBackendPreference(option(args, 'backend')));
      const at = args.indexOf('--adapter');
      const rows = idRows(option(args, 'ids'));
      console.log(JSON.stringify({ backend: info.name, ids: rows, lastPositionLogits: await lastLogits(option(args, 'model'), at >= 0 ? args[at + 1] : undefined, rows) }));
      return 0;
    }
    case 'report':
      console.log(renderReport(args[0] ?? '.', (path) => readFileSync(path, 'utf8')));
      return 0;
    default:
      console.error('usage: gpu-check adapter | ops --backend B | step --backend B --shape S [--steps N] [--decode N] | dispatches --shape S | ' +
        'greedy --backend B --models DIR,DIR | profile --backend B --shape S [--batch B] [--seq T] [--flags N=V,...] | logits --backend B --model DIR [--adapter DIR] --ids 1,2;3,4 | report DIR');
      return 2;
  }
}

process.exitCode = await main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(`gpu-check: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  return 1;
});
