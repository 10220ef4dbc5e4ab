/**
 * A Hugging Face model folder's weights as one name -> tensor source: model.safetensors, or the shards that
 * model.safetensors.index.json lists ({"weight_map": {tensor name: shard file}}). Shards open lazily and each
 * tensor is read on its own, so loading holds one tensor's bytes beyond what the model keeps.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ModelIoError } from './errors';
import { SafetensorsFile, type LoadedTensor, type RawTensor, type SafetensorsDtype, type TensorEntry } from './safetensors';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** Where a model's tensors come from: a checkpoint on disk, or (benchmarks, tests) tensors made in memory. */
export interface TensorSource {
  /** Names the source in errors. */
  readonly dir: string;
  has(name: string): boolean;
  read(name: string): LoadedTensor;
  /** The bytes as stored, when the source is a file (loaders keep BF16/F16 weights at that precision). */
  readRaw?(name: string): RawTensor;
  /**
   * GGUF's Q4_0 blocks of a 2-D tensor as the file holds them (rows in Hugging Face order, [rows, cols / 32] blocks
   * of 18 bytes), or null where it holds another type: the frozen store keeps them as they are at base precision q4_0.
   */
  readQ4Blocks?(name: string): { shape: number[]; bytes: Uint8Array } | null;
  /** The stored dtype without reading the data (sources that cannot tell read the tensor instead). */
  dtypeOf?(name: string): SafetensorsDtype;
}

export class CheckpointReader implements TensorSource {
  private readonly open = new Map<string, SafetensorsFile>();
  /** Tensor name -> shard file name. */
  private readonly shardOf = new Map<string, string>();

  constructor(readonly dir: string) {
    const indexPath = join(dir, INDEX_FILE);
    if (existsSync(indexPath)) this.readIndex(indexPath);
    else if (existsSync(join(dir, SINGLE_FILE))) {
      const file = this.shard(SINGLE_FILE);
      for (const name of file.tensors.keys()) this.shardOf.set(name, SINGLE_FILE);
    } else {
      throw new ModelIoError(
        'MODEL_NOT_FOUND',
        `${dir}: no ${SINGLE_FILE} or ${INDEX_FILE} (only safetensors checkpoints load; convert .bin files first)`,
      );
    }
  }

  private readIndex(indexPath: string): void {
    let index: unknown;
    try {
      index = JSON.parse(readFileSync(indexPath, 'utf8'));
    } catch (error) {
      throw new ModelIoError('INVALID_SAFETENSORS', `${indexPath}: not JSON (${(error as Error).message})`);
    }
    const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
    if (typeof weightMap !== 'object' || weightMap === null) {
      throw new ModelIoError('INVALID_SAFETENSORS', `${indexPath}: no "weight_map" object`);
    }
    for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
      if (typeof shard !== 'string' || shard !== basename(shard)) {
        throw new ModelIoError('INVALID_SAFETENSORS', `${indexPath}: weight_map["${name}"] = ${JSON.stringify(shard)} is not a file name`);
      }
      this.shardOf.set(name, shard);
    }
    // Open every shard now: a missing shard or a tensor the index promises but the shard lacks fails at load.
    for (const shard of new Set(this.shardOf.values())) this.shard(shard);
    for (const [name, shard] of this.shardOf) {
      if (!this.shard(shard).has(name)) {
        throw new ModelIoError('TENSOR_NOT_FOUND', `${join(this.dir, shard)}: the index lists '${name}' here but the shard lacks it`);
      }
    }
  }

  private shard(file: string): SafetensorsFile {
    let open = this.open.get(file);
    if (!open) {
      open = new SafetensorsFile(join(this.dir, file));
      this.open.set(file, open);
    }
    return open;
  }

  names(): string[] {
    return [...this.shardOf.keys()];
  }

  has(name: string): boolean {
    return this.shardOf.has(name);
  }

  entry(name: string): TensorEntry {
    return this.shard(this.shardFor(name)).tensors.get(name) as TensorEntry;
  }

  read(name: string): LoadedTensor {
    return this.shard(this.shardFor(name)).read(name);
  }

  readRaw(name: string): RawTensor {
    return this.shard(this.shardFor(name)).readRaw(name);
  }

  dtypeOf(name: string): SafetensorsDtype {
    return this.entry(name).dtype;
  }

  private shardFor(name: string): string {
    const shard = this.shardOf.get(name);
    if (shard === undefined) throw new ModelIoError('TENSOR_NOT_FOUND', `${this.dir}: the checkpoint has no tensor '${name}'`);
    return shard;
  }

  close(): void {
    for (const file of this.open.values()) file.close();
    this.open.clear();
  }
}

export function openCheckpoint(dir: string): CheckpointReader {
  return new CheckpointReader(dir);
}
