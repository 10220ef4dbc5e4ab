/**
 * `lorasmith merge <model-dir> --adapter DIR[=SCALE]... --out DIR`: adds each adapter's scale·(alpha/r)·B·A into
 * the base weights and writes a Hugging Face folder in the base's own layout (names, orientation, dtype, shards,
 * config and tokenizer files), loadable here and by transformers.
 */
import { resolve } from 'node:path';
import { UsageError, type CliCommand, type CliIo } from './command';
import { exportWithAdaptersMerged } from '../engine/adapters/export-with-adapters';
import { initBackend, parseBackendPreference } from '../engine/backend/index';
import { nativeOptionsFromEnv } from '../engine/backend/native/index';
import { parseAdapterSpec, type AdapterSpec } from '../engine/adapters/generation';
import { ResidentAdapters } from '../engine/adapters/resident';
import { loadModel } from '../engine/models/registry';
import type { CausalLM } from '../engine/models/types';
import { listOption, parseOptions, positional, stringOption } from './options';

export const MERGE_USAGE = `lorasmith merge <model-dir> --adapter DIR[=SCALE] [--adapter DIR2[=SCALE2]]... --out DIR
  [--dtype f32|f16|bf16] [--max-shard-size SIZE] [--backend auto|tensorflow|webgpu|wasm|cpu]

  Each adapter is checked against the base, then merged with its scale (default 1). The output keeps the base's
  tensor names, orientation and dtype (or --dtype), sharded above --max-shard-size (default 5GB; e.g. 500MB).`;

export type BaseLoader = (modelDir: string, backend: string) => Promise<CausalLM>;

/** Starts the chosen backend (native kernels where they load) and loads a model folder or GGUF file. */
export async function defaultLoader(modelDir: string, backend: string): Promise<CausalLM> {
  let preference;
  try {
    preference = parseBackendPreference(backend);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  await initBackend(preference, { native: nativeOptionsFromEnv(process.env) });
  return loadModel(modelDir);
}

/** '5GB', '500MB', '2e9' -> bytes */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?(?:e\d+)?)\s*(B|KB|MB|GB|TB)?$/i.exec(text.trim());
  const units: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };
  if (!match) throw new UsageError(`--max-shard-size must be a size like 5GB or 500MB, got '${text}'`);
  const bytes = Number(match[1]) * (units[(match[2] ?? 'B').toUpperCase()] as number);
  if (!(bytes > 0)) throw new UsageError(`--max-shard-size must be positive, got '${text}'`);
  return bytes;
}

export function parseAdapterSpecs(values: readonly string[]): AdapterSpec[] {
  return values.map((v) => {
    try {
      return parseAdapterSpec(v);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  });
}

function parseDtype(text: string | undefined): 'F32' | 'F16' | 'BF16' | undefined {
  if (text === undefined) return undefined;
  const dtype = ({ f32: 'F32', float32: 'F32', f16: 'F16', float16: 'F16', bf16: 'BF16', bfloat16: 'BF16' } as const)[text.toLowerCase() as 'f32'];
  if (!dtype) throw new UsageError(`--dtype must be f32, f16 or bf16, got '${text}'`);
  return dtype;
}

export function makeMergeCommand(load: BaseLoader = defaultLoader): CliCommand {
  return {
    name: 'merge',
    summary: 'merge adapters into a base model and write it as a Hugging Face folder',
    usage: MERGE_USAGE,
    async run(argv: readonly string[], io: CliIo): Promise<number> {
      const args = parseOptions(argv, { adapter: 'list', out: 'string', dtype: 'string', 'max-shard-size': 'string', backend: 'string' });
      const adapterArgs = listOption(args, 'adapter');
      const modelDir = positional(args, 'merge', '<model-dir>', MERGE_USAGE);
      if (adapterArgs.length === 0) throw new UsageError('at least one --adapter DIR[=SCALE] is required');
      const out = stringOption(args, 'out');
      if (!out) throw new UsageError('--out DIR is required');
      const specs = parseAdapterSpecs(adapterArgs);
      const dtype = parseDtype(stringOption(args, 'dtype'));
      const sizeText = stringOption(args, 'max-shard-size');
      const maxShardBytes = sizeText === undefined ? undefined : parseSize(sizeText);
      const model = await load(resolve(modelDir), stringOption(args, 'backend') ?? 'auto');
      try {
        const result = await exportWithAdaptersMerged(new ResidentAdapters(model), resolve(modelDir), specs.map((s) => ({ ...s, dir: resolve(s.dir) })), resolve(out), {
          ...(dtype ? { dtype } : {}),
          ...(maxShardBytes ? { maxShardBytes } : {}),
          signal: io.signal,
        });
        specs.forEach((spec, i) => io.out(`merged ${spec.dir} (scale ${spec.scale}, ${result.modules[i]} modules)`));
        io.out(`wrote ${result.outDir} (${result.files.join(', ')})`);
        return 0;
      } finally {
        model.dispose();
      }
    },
  };
}
