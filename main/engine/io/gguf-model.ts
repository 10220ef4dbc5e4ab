/**
 * A GGUF model file seen as a Hugging Face checkpoint: its config.json (from the `<arch>.*` metadata) and its tensors
 * under Hugging Face names in Hugging Face layout, so the architectures load it exactly as they load a folder.
 * Quantized tensors are dequantized to float32 as they are read, one tensor at a time; llama-architecture q/k rows
 * get their rope permutation undone.
 */
import type { TensorSource } from './checkpoint';
import { ModelIoError } from './errors';
import { GgufFile, checkReadable } from './gguf';
import { ggufTensorName, hfConfigFromGguf, hfTensorName, permuteRows, permutedHeads, type ImportedConfig } from './gguf-arch';
import type { LoadedTensor } from './safetensors';

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
    const gguf = ggufTensorName(name);
    return gguf !== null && this.file.tensors.has(gguf);
  }

  read(name: string): LoadedTensor {
    const gguf = ggufTensorName(name);
    if (gguf === null || !this.file.tensors.has(gguf)) {
      throw new ModelIoError('TENSOR_NOT_FOUND', `${this.file.path}: the GGUF has no tensor for '${name}'${gguf ? ` ('${gguf}')` : ''}`);
    }
    const { shape, data } = this.file.readFloat(gguf);
    const heads = permutedHeads(this.imported.arch, name, this.heads);
    const rows = shape[0] as number;
    const values = heads === null ? data : permuteRows(data, rows, data.length / rows, heads, false);
    return { dtype: 'F32', shape, data: values };
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
      if (info.name !== 'rope_freqs.weight' && hfTensorName(info.name) === null) {
        throw new ModelIoError('UNSUPPORTED_MODEL', `${path}: tensor '${info.name}' has no counterpart in a ${imported.arch.name} model here; the file holds parts this version cannot run`);
      }
      checkReadable(path, info);
    }
    return { imported, source: new GgufTensorSource(file, imported), close: () => file.close() };
  } catch (error) {
    file.close();
    throw error;
  }
}

/** A parsed config with GGUF's rope frequency factors applied (each inverse frequency divided by its factor). */
export function withRopeFactors<C extends object>(config: C, factors: Float32Array | null, path: string): C {
  if (factors === null) return config;
  const invFreq = (config as { readonly invFreq?: unknown }).invFreq;
  if (!(invFreq instanceof Float64Array) || invFreq.length !== factors.length) {
    throw new ModelIoError('UNSUPPORTED_MODEL', `${path}: rope_freqs.weight does not fit this architecture's rotary embedding`);
  }
  return { ...config, invFreq: invFreq.map((f, i) => f / (factors[i] as number)) };
}
