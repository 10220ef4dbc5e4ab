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
 *   report DIR                               prints the results section (Markdown) from the JSON files in DIR
 */
import { readFileSync } from 'node:fs';
import { initBackend, parseBackendPreference } from '../../main/engine/backend/index';
import { runOpChecks } from '../../test/engine/backend/op-checks';
import { renderReport } from './report';
import { dispatchCounts } from './dispatches';
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
    case 'dispatches': {
      await initBackend('webgpu');
      const shape = option(args, 'shape', 'tiny');
      console.log(JSON.stringify({ shape, ...(await dispatchCounts(shape)) }));
      return 0;
    }
    case 'report':
      console.log(renderReport(args[0] ?? '.', (path) => readFileSync(path, 'utf8')));
      return 0;
    default:
      console.error('usage: gpu-check adapter | ops --backend B | step --backend B --shape S [--steps N] [--decode N] | dispatches --shape S | report DIR');
      return 2;
  }
}

process.exitCode = await main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(`gpu-check: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  return 1;
});
