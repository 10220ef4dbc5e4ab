/**
 * A GGUF model file seen as a Hugging Face checkpoint: its config.json (from the `<arch>.*` metadata) and its tensors
 * under Hugging Face names in Hugging Face layout, so the architectures load it exactly as they load a folder.
 * Quantized tensors are dequantized to float32 as they are read, one tensor at a time; llama-architecture q/k rows
 * get their rope permutation undone.
 */
import type { TensorSource } from './model-checkpoint';
import { ModelIoError } from './errors';
import { GgufFile, checkReadable } from './gguf';
import { ggufTensorName, hfConfigFromGguf, hfTensorName, isNormWeight, permuteRows, permutedHeads, type ImportedConfig } from './gguf-arch';
import type { LoadedTensor, RawTensor } from './safetensors';

export class GgufTensorSource implements TensorSource {
  readonly dir: string;
  private readonly heads: { numHeads: number; numKvHeads: number };

  constructor(
    readonly file: GgufFile,
    readonly imported: ImportedConfig,
  ) {
    this.dir = file.path;
    this.heads = { numHeads: imported.raw.num_attention_heads as number, numKvHeads: imported.raw.num_key_value_heads as number };
  }

  has(name: string): boolean {
    const gguf = ggufTensorName(name, this.imported.arch);
    return gguf !== null && this.file.tensors.has(gguf);
  }

  private ggufName(name: string): string {
    const gguf = ggufTensorName(name, this.imported.arch);
    if (gguf === null || !this.file.tensors.has(gguf)) {
      throw new ModelIoError('TENSOR_NOT_FOUND', `${this.file.path}: the GGUF has no tensor for '${name}'${gguf ? ` ('${gguf}')` : ''}`);
    }
    return gguf;
  }

  /** Rows in Hugging Face's order (llama q/k rows un-permuted): float32 values, 16-bit words or a row's block bytes. */
  private hfOrder<T extends Float32Array | Uint16Array | Uint8Array>(name: string, shape: readonly number[], data: T): T {
    const heads = permutedHeads(this.imported.arch, name, this.heads);
    const rows = shape[0] as number;
    return heads === null ? data : permuteRows(data, rows, data.length / rows, heads, false);
  }

  read(name: string): LoadedTensor {
    const { shape, data } = this.file.readFloat(this.ggufName(name));
    // Gemma's norms are kept as 1 + w; (1 + w) − 1 is exact in float32 for |w| < 1/2, so the model's 1 + w is the file's.
    if (this.imported.arch.normPlusOne && isNormWeight(name)) return { dtype: 'F32', shape, data: data.map((v) => v - 1) };
    return { dtype: 'F32', shape, data: this.hfOrder(name, shape, data) };
  }

  /**
   * For the frozen-weight store: F16 / BF16 tensors as their own bits (kept at that precision), every other type
   * as float32 values (quantized blocks dequantized here, once).
   */
  readRaw(name: string): RawTensor {
    const gguf = this.ggufName(name);
    const info = this.file.tensor(gguf);
    const shape = [...info.shape];
    const shifted = this.imported.arch.normPlusOne === true && isNormWeight(name);
    if ((info.type.name === 'F16' || info.type.name === 'BF16') && !shifted) {
      const bits = this.hfOrder(name, shape, new Uint16Array(this.file.readRaw(gguf).buffer, 0, info.count));
      return { dtype: info.type.name, shape, bytes: new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength) };
    }
    const { data } = this.read(name);
    return { dtype: 'F32', shape, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  }

  /** A Q4_0 tensor's blocks as they are, rows in Hugging Face's order; null for any other type. */
  readQ4Blocks(name: string): { shape: number[]; bytes: Uint8Array } | null {
    const gguf = this.ggufName(name);
    const info = this.file.tensor(gguf);
    if (info.type.name !== 'Q4_0' || info.shape.length !== 2) return null;
    const shape = [...info.shape];
    return { shape, bytes: this.hfOrder(name, shape, this.file.readRaw(gguf)) };
  }

  /**
   * How the frozen store should keep this file's weights when the caller does not say: a file whose matrices are
   * all Q4_0 as Q4_0 (its blocks kept as they are); other block-quantized files (Q8_0, K-quants, Q4_0 with a Q6_K
   * output as llama.cpp writes it...) as Q8_0 (Q8_0 itself exactly: requantizing its values gives back the same
   * blocks; nothing is rounded to 4 bits unless asked), F16 / BF16 / F32 files at their own precision.
   */
  defaultPrecision(): 'q4_0' | 'q8_0' | 'stored' {
    let quantized = 0;
    let q4 = 0;
    let total = 0;
    for (const t of this.file.tensors.values()) {
      if (t.shape.length !== 2) continue;
      total += t.count;
      if (t.type.blockSize > 1) quantized += t.count;
      if (t.type.name === 'Q4_0') q4 += t.count;
    }
    return total > 0 && q4 === total ? 'q4_0' : quantized * 2 > total ? 'q8_0' : 'stored';
  }

  close(): void {
    this.file.close();
  }
}

/** An opened GGUF model: the config.json it stands for and its tensors. Close it once the model is built. */
export interface GgufCheckpoint {
  readonly imported: ImportedConfig;
  readonly source: GgufTensorSource;
  close(): void;
}

/**
 * Opens `path` as a model: the architecture is supported, every tensor has a Hugging Face name (nothing the
 * engine would silently ignore) and a type it can read. Throws naming the first thing that does not fit.
 */
export function openGgufModel(path: string): GgufCheckpoint {
  const file = new GgufFile(path);
  try {
    const type = file.string('general.type', 'model');
    if (type !== 'model') {
      throw new ModelIoError('UNSUPPORTED_MODEL', `${path}: general.type is '${type}'; this file is not a base model (a LoRA adapter GGUF goes beside its base, not in its place)`);
    }
    const imported = hfConfigFromGguf(file);
    for (const info of file.tensors.values()) {
      if (info.name !== 'rope_freqs.weight' && hfTensorName(info.name, imported.arch) === null) {
        throw new ModelIoError('UNSUPPORTED_MODEL', `${path}: tensor '${info.name}' has no counterpart in a ${imported.arch.name} model here; the file holds parts this version cannot run`);
      }
      checkReadable(path, info);
    }
    const source = new GgufTensorSource(file, imported);
    return { imported, source, close: () => source.close() };
  } catch (error) {
    file.close();
    throw error;
  }
}
