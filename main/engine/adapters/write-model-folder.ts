/**
 * Writes a model, with whatever adapters are merged into it, as a Hugging Face folder in its base's layout: the
 * base checkpoint's tensor names and orientation (model.weights() gives checkpoint layout), each tensor in the
 * base's dtype or a chosen one, sharded as model-0000i-of-0000n.safetensors with model.safetensors.index.json above
 * a size, and every config / tokenizer file of the base copied. Written into a temporary sibling folder and renamed,
 * so a failed or cancelled export leaves nothing behind.
 *
 * One weight at a time: the plan needs only shapes; each weight is read when its turn to be written comes (a stored
 * BF16/Q8_0 weight converted to float32 and its merged adapters' ΔW added for that weight alone), written at the
 * output dtype and let go. The export holds about one weight in float32 beyond the model, never the whole base.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fsyncTree, publishDir, sweepTemps, tempSibling } from '../../common/atomic';
import { openCheckpoint, INDEX_FILE, SINGLE_FILE, type CheckpointReader } from '../io/model-checkpoint';
import { isGgufFile } from '../io/gguf';
import { readPicked } from '../backend/read';
import { writeSafetensorsLazy, type LazyWritableTensor, type WritableDtype } from '../io/safetensors';
import type { CausalLM, NamedWeight } from '../models/types';
import { AdapterError } from './errors';

export interface ExportMergedOptions {
  /** Storage type of the float weights; default: each tensor's dtype in the base checkpoint. */
  readonly dtype?: 'F32' | 'F16' | 'BF16';
  /** Shard above this many bytes (transformers' default max_shard_size is 5 GB). */
  readonly maxShardBytes?: number;
  readonly signal?: AbortSignal;
  /** After each tensor written: `current` of `total` tensors. */
  readonly onProgress?: (progress: { step: 'write'; current: number; total: number }) => void;
}

/** Weight files of any format: never copied (the merged weights replace them). */
const WEIGHT_FILE = /\.(safetensors|bin|pt|pth|h5|msgpack|ckpt|gguf|onnx|ot)$/;
const BYTES: Record<WritableDtype, number> = { F32: 4, F16: 2, BF16: 2, I32: 4 };
const TORCH_DTYPE: Record<string, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

interface PlannedTensor {
  /** Name in the model (model.weights()) */
  readonly source: string;
  /** Name written: the base checkpoint's spelling */
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: WritableDtype;
}

/** The base checkpoint's name for a model weight (some GPT-2 checkpoints drop 'transformer.'). */
function checkpointName(base: CheckpointReader, name: string): string {
  if (base.has(name)) return name;
  const short = name.replace(/^transformer\./, '');
  return base.has(short) ? short : name;
}

function outputDtype(base: CheckpointReader, name: string, chosen: ExportMergedOptions['dtype']): WritableDtype {
  if (chosen) return chosen;
  if (!base.has(name)) return 'F32';
  const stored = base.entry(name).dtype;
  return stored === 'F16' || stored === 'BF16' ? stored : 'F32';
}

function plan(weights: ReadonlyMap<string, NamedWeight>, base: CheckpointReader, chosen: ExportMergedOptions['dtype']): PlannedTensor[] {
  return [...weights].map(([source, weight]) => {
    const name = checkpointName(base, source);
    return { source, name, shape: weight.shape, dtype: outputDtype(base, name, chosen) };
  });
}

function shardsOf(tensors: readonly PlannedTensor[], maxBytes: number): PlannedTensor[][] {
  const shards: PlannedTensor[][] = [];
  let current: PlannedTensor[] = [];
  let size = 0;
  for (const t of [...tensors].sort((a, b) => a.name.localeCompare(b.name))) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
    if (current.length > 0 && size + bytes > maxBytes) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += bytes;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

/**
 * One weight's values in checkpoint layout, read now: the tensors its read makes (a stored weight's float32 copy, a
 * transpose, merged adapters' ΔW) live only until its values are out of them.
 */
async function readWeight(weights: ReadonlyMap<string, NamedWeight>, source: string): Promise<Float32Array> {
  const weight = weights.get(source);
  if (!weight) throw new AdapterError('EXPORT_FAILED', `the model no longer has weight '${source}'`);
  const [values] = await readPicked(() => [weight.read()]);
  return (values as { data: Float32Array }).data;
}

function copyOtherFiles(baseDir: string, outDir: string, chosen: ExportMergedOptions['dtype']): void {
  for (const file of readdirSync(baseDir)) {
    const from = join(baseDir, file);
    if (file === INDEX_FILE || WEIGHT_FILE.test(file) || !statSync(from).isFile()) continue;
    if (file === 'config.json' && chosen) {
      // The config's dtype field describes the stored weights: keep it true to what was written.
      const config = JSON.parse(readFileSync(from, 'utf8')) as Record<string, unknown>;
      const field = 'dtype' in config ? 'dtype' : 'torch_dtype';
      config[field] = TORCH_DTYPE[chosen];
      writeFileSync(join(outDir, file), JSON.stringify(config, null, 2) + '\n');
    } else {
      copyFileSync(from, join(outDir, file));
    }
  }
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AdapterError('EXPORT_FAILED', 'export cancelled; nothing was written');
}

/**
 * Exports `model` (base weights with any merged adapters; active unmerged adapters are not included) read from
 * `baseDir`, to `outDir`, which must not exist yet. Returns the files written.
 */
export async function exportMergedModel(model: CausalLM, baseDir: string, outDir: string, options: ExportMergedOptions = {}): Promise<string[]> {
  if (existsSync(outDir)) {
    throw new AdapterError('EXPORT_FAILED', `${outDir} already exists; choose a new folder for the merged model or remove it first`);
  }
  if (isGgufFile(baseDir)) {
    throw new AdapterError('EXPORT_FAILED', `${baseDir} is a GGUF model, not a Hugging Face folder: export the merged model as GGUF instead (lorasmith gguf merged, or Export GGUF in the app)`);
  }
  const maxShardBytes = options.maxShardBytes ?? 5e9;
  if (!(maxShardBytes > 0)) throw new AdapterError('INVALID_ARGUMENT', `maxShardBytes must be positive, got ${maxShardBytes}`);
  // Temps a crashed export left in this folder (the one naming scheme says whose they were) go first.
  sweepTemps(dirname(outDir), { recursive: false });
  const base = openCheckpoint(baseDir);
  const temp = tempSibling(outDir);
  mkdirSync(temp, { recursive: true });
  try {
    const weights = model.weights();
    const planned = plan(weights, base, options.dtype);
    const shards = shardsOf(planned, maxShardBytes);
    const names = shards.length === 1 ? [SINGLE_FILE] : shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    let written = 0;
    for (const [i, shard] of shards.entries()) {
      const file = names[i] as string;
      const tensors = new Map(shard.map((t): [string, LazyWritableTensor] => [t.name, {
        dtype: t.dtype, shape: t.shape,
        data: () => {
          checkAborted(options.signal);
          return readWeight(weights, t.source);
        },
      }]));
      await writeSafetensorsLazy(join(temp, file), tensors, {
        metadata: { format: 'pt' },
        onWritten: () => options.onProgress?.({ step: 'write', current: ++written, total: planned.length }),
      });
      for (const t of shard) {
        weightMap[t.name] = file;
        totalSize += t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
      }
    }
    if (shards.length > 1) {
      writeFileSync(join(temp, INDEX_FILE), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n');
    }
    copyOtherFiles(baseDir, temp, options.dtype);
    checkAborted(options.signal);
    fsyncTree(temp);
    publishDir(temp, outDir);
    return [...names, ...(shards.length > 1 ? [INDEX_FILE] : [])];
  } catch (error) {
    rmSync(temp, { recursive: true, force: true });
    throw error;
  } finally {
    base.close();
  }
}
