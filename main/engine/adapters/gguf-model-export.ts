/**
 * Writes a loaded model (with whatever adapters are merged into it) as a GGUF model file llama.cpp, Ollama and
 * LM Studio run: `<arch>.*` hyperparameters as llama.cpp's converter writes them, tensors under GGUF names in
 * ggml's order (q/k rows permuted for the llama architecture), 2-D weights as F16, BF16 or Q8_0 and norms as F32
 * (as llama.cpp keeps them), and the tokenizer with its chat template in tokenizer.ggml.* metadata.
 */
import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GgufFile, isGgufFile } from '../io/gguf';
import { architectureForModelType, ggufTensorName, isNormWeight, permuteRows, permutedHeads, type GgufArchitecture } from '../io/gguf-arch';
import type { WritableGgmlType } from '../io/gguf-quants';
import { ggufTokenizerMetadata } from '../io/gguf-tokenizer';
import { FILE_TYPE } from '../io/gguf-types';
import { kv, writeGguf, type GgufTensorSpec, type GgufWriteEntry } from '../io/gguf-write';
import { loadTokenizer } from '../io/tokenizer';
import type { CausalLM, ModelConfig, NamedWeight } from '../models/types';
import { AdapterError } from './errors';

export type GgufModelType = WritableGgmlType;

export interface ExportGgufModelOptions {
  /** Storage of the 2-D weights (norms stay F32). Q8_0 falls back to F16 for rows that are not whole blocks. */
  readonly type: GgufModelType;
  /** general.name */
  readonly name?: string;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: { step: 'write'; current: number; total: number }) => void;
}

/** The fields decoder configs add to ModelConfig that GGUF records (models/decoder-config's DecoderConfig). */
interface LlamaLike extends ModelConfig {
  readonly rmsNormEps?: number;
  readonly invFreq?: Float64Array;
  /** Per layer, the sliding window or null. */
  readonly layers?: readonly { readonly type: string; readonly window: number | null }[];
  readonly attentionScale?: number;
}

/**
 * Gemma 3 as llama.cpp runs it: scores scaled by head_dim^-1/2, every 6th layer global, local layers at rope base
 * 10000 and unscaled. A model that differs is refused rather than written to run differently there.
 */
function gemma3Hyperparameters(arch: GgufArchitecture, config: LlamaLike): GgufWriteEntry[] {
  const refuse = (what: string): never => {
    throw new AdapterError('EXPORT_FAILED', `this Gemma 3 model cannot be written as GGUF: ${what}, which llama.cpp's gemma3 does not read`);
  };
  const layers = config.layers ?? [];
  if (layers.some((l, i) => (l.type === 'full_attention') !== ((i + 1) % 6 === 0))) refuse('its global layers are not every 6th');
  if (config.attentionScale !== undefined && Math.abs(config.attentionScale * Math.sqrt(config.headDim) - 1) > 1e-9) refuse('query_pre_attn_scalar differs from head_dim');
  const local = config.raw.rope_local_base_freq ?? 10000;
  if (local !== 10000) refuse(`rope_local_base_freq is ${String(local)} (not 10000)`);
  const window = layers.find((l) => l.window !== null)?.window ?? null;
  // The local rope base written out too, for readers that take it from the file rather than assume it.
  return [kv.f32(`${arch.name}.rope.freq_base_swa`, 10000), ...(window === null ? [] : [kv.u32(`${arch.name}.attention.sliding_window`, window)])];
}

/**
 * llama.cpp's llama (mistral's too), qwen2 and qwen3 read no sliding window, and its phi3 reads
 * `phi3.attention.sliding_window` but attends to the whole context (its window is switched off there): in all of them
 * every layer sees every earlier position. A window shorter than the model's context would take effect there, so
 * such a model is refused, naming the setting; one the context never reaches (Qwen2.5's use_sliding_window=false,
 * Phi-3.5's 262144 over 131072 positions) changes nothing and is left out of the file.
 */
function refuseUnreadWindow(arch: GgufArchitecture, config: LlamaLike): void {
  const layers = config.layers ?? [];
  const windowed = layers.flatMap((l, i) => (l.window !== null && l.window < config.maxPositions ? [{ layer: i, window: l.window }] : []));
  const first = windowed[0];
  if (!first) return;
  const raw = config.raw;
  const where = windowed.length === layers.length
    ? 'on every layer'
    : `on ${windowed.length} of its ${layers.length} layers (from layer ${first.layer}${raw.max_window_layers !== undefined ? `, max_window_layers ${String(raw.max_window_layers)}` : ''})`;
  const setting = raw.use_sliding_window === true ? `use_sliding_window with sliding_window ${first.window}` : `sliding_window ${first.window}`;
  throw new AdapterError(
    'EXPORT_FAILED',
    `this ${config.modelType} model cannot be written as GGUF: its config sets ${setting} ${where}, shorter than its context of ` +
      `${config.maxPositions} positions (max_position_embeddings), and llama.cpp's ${arch.name} attends to the whole context, so past ` +
      `${first.window} tokens it would answer differently; export it as a merged Hugging Face model or a PEFT adapter instead`,
  );
}

/** rope_freqs factors (base inverse frequency / the model's), or null when the model uses the plain frequencies. */
function ropeFactors(config: LlamaLike): Float32Array | null {
  const inv = config.invFreq;
  if (!inv) return null;
  const theta = typeof config.raw.rope_theta === 'number' ? config.raw.rope_theta : 10000;
  const d = inv.length * 2;
  const factors = Float32Array.from(inv, (f, i) => 1 / theta ** ((2 * i) / d) / f);
  return factors.every((f) => Math.abs(f - 1) < 1e-6) ? null : factors;
}

function hyperparameters(arch: GgufArchitecture, config: LlamaLike, factors: Float32Array | null): GgufWriteEntry[] {
  const a = (k: string) => `${arch.name}.${k}`;
  const theta = typeof config.raw.rope_theta === 'number' ? config.raw.rope_theta : 10000;
  const out = [
    kv.u32(a('vocab_size'), config.vocabSize),
    kv.u32(a('context_length'), config.maxPositions),
    kv.u32(a('embedding_length'), config.hiddenSize),
    kv.u32(a('block_count'), config.numLayers),
    kv.u32(a('feed_forward_length'), config.intermediateSize),
    kv.u32(a('attention.head_count'), config.numHeads),
    kv.u32(a('attention.head_count_kv'), config.numKvHeads),
    kv.f32(a('rope.freq_base'), theta),
    kv.f32(a('attention.layer_norm_rms_epsilon'), config.rmsNormEps ?? 1e-6),
    kv.u32(a('rope.dimension_count'), config.headDim),
  ];
  if (arch.name === 'gemma3') out.push(...gemma3Hyperparameters(arch, config));
  else refuseUnreadWindow(arch, config);
  if (config.headDim * config.numHeads !== config.hiddenSize) {
    out.push(kv.u32(a('attention.key_length'), config.headDim), kv.u32(a('attention.value_length'), config.headDim));
  }
  if (factors && factors.every((f) => Math.abs(f - (factors[0] as number)) < 1e-6)) {
    out.push(kv.string(a('rope.scaling.type'), 'linear'), kv.f32(a('rope.scaling.factor'), factors[0] as number));
  }
  return out;
}

/**
 * The tokenizer metadata of the base a model was loaded from: a GGUF base's own tokenizer.* entries as they are,
 * or a Hugging Face folder's tokenizer.json converted.
 */
export async function tokenizerMetadataOf(base: string, config: ModelConfig): Promise<GgufWriteEntry[]> {
  if (isGgufFile(base)) {
    const file = new GgufFile(base);
    try {
      return [...file.metadata].filter(([key]) => key.startsWith('tokenizer.')).map(([key, e]) => ({ key, ...e }));
    } finally {
      file.close();
    }
  }
  const jsonPath = join(base, 'tokenizer.json');
  if (!existsSync(jsonPath)) throw new AdapterError('EXPORT_FAILED', `${base} has no tokenizer.json; a GGUF model needs its tokenizer`);
  const configPath = join(base, 'tokenizer_config.json');
  const tokenizer = await loadTokenizer(base);
  return ggufTokenizerMetadata(
    {
      tokenizerJson: JSON.parse(readFileSync(jsonPath, 'utf8')) as Record<string, unknown>,
      tokenizerConfig: existsSync(configPath) ? (JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>) : {},
      chatTemplate: tokenizer.chatTemplate,
      vocabSize: config.vocabSize,
      bosTokenId: config.bosTokenId,
      eosTokenIds: config.eosTokenIds,
      padTokenId: config.padTokenId,
    },
    base,
  );
}

/**
 * The model's norms and untied embedding, each read only when written, and whether the head is tied to the
 * embedding (no 'lm_head.weight' among the model's weights). The linear weights are not among them.
 */
function nonLinearWeights(model: CausalLM): { tied: boolean; others: [string, NamedWeight][] } {
  const all = model.weights();
  const tied = !all.has('lm_head.weight');
  const linear = new Set<string>(tied ? ['model.embed_tokens.weight'] : []);
  for (const path of model.linears.keys()) linear.add(`${path}.weight`).add(`${path}.bias`);
  return { tied, others: [...all].filter(([name]) => !linear.has(name)) };
}

/** Reads a tensor's values, then frees it (a clone or a fresh tensor made for the export). */
async function readAndDispose(t: tf.Tensor): Promise<Float32Array> {
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

/** Tensor order as llama.cpp's converter writes it: embedding, rope factors, blocks in order, final norm, head. */
function orderKey(name: string): string {
  if (name.startsWith('token_embd')) return '0';
  if (name.startsWith('rope_freqs')) return '1';
  const m = /^blk\.(\d+)\./.exec(name);
  if (m) return `2${(m[1] as string).padStart(6, '0')}${name}`;
  return name.startsWith('output_norm') ? '3' : '4';
}

/**
 * Exports `model`'s current weights (base plus merged adapters; active unmerged adapters are not included) to
 * `outPath` as a GGUF model. `base` is where the model was loaded from (a folder or a GGUF file): its tokenizer goes
 * into the file. Returns the bytes written.
 */
export async function exportGgufModel(model: CausalLM, base: string, outPath: string, options: ExportGgufModelOptions): Promise<number> {
  const config = model.config as LlamaLike;
  const arch = architectureForModelType(config.modelType);
  const factors = ropeFactors(config);
  if (factors && !arch.permuteQK && !factors.every((f) => Math.abs(f - (factors[0] as number)) < 1e-6)) {
    throw new AdapterError('EXPORT_FAILED', `a ${arch.name} model with per-frequency rope scaling cannot be written as GGUF`);
  }
  const metadata: GgufWriteEntry[] = [
    kv.string('general.architecture', arch.name),
    kv.string('general.type', 'model'),
    kv.string('general.name', options.name ?? 'model'),
    kv.u32('general.file_type', FILE_TYPE[options.type]),
    kv.u32('general.quantization_version', 2),
    ...hyperparameters(arch, config, factors),
    ...(await tokenizerMetadataOf(base, config)),
  ];
  const tensors: GgufTensorSpec[] = [];
  const add = (hfName: string, shape: readonly number[], read: () => Promise<Float32Array>) => {
    const name = ggufTensorName(hfName, arch);
    if (name === null) throw new AdapterError('EXPORT_FAILED', `weight '${hfName}' has no place in a ${arch.name} GGUF`);
    const heads = permutedHeads(arch, hfName, config);
    const cols = shape.length === 2 ? (shape[1] as number) : 1;
    const type: WritableGgmlType = shape.length === 1 ? 'F32' : options.type === 'Q8_0' && cols % 32 !== 0 ? 'F16' : options.type;
    const data = heads === null ? read : async () => permuteRows(await read(), shape[0] as number, cols, heads, true);
    tensors.push({ name, shape, type, data });
  };
  const { tied, others } = nonLinearWeights(model);
  // Each linear weight in [out, in] (adapters merged apart from a stored weight included), one at a time.
  for (const [path, layer] of model.linears) {
    const { inFeatures, outFeatures } = layer.spec;
    const hfName = path === 'lm_head' && tied ? 'model.embed_tokens.weight' : `${path}.weight`;
    add(hfName, [outFeatures, inFeatures], () => readAndDispose(tf.tidy(() => tf.clone(layer.checkpointWeight()))));
    if (layer.bias) {
      const bias = layer.bias;
      add(`${path}.bias`, [outFeatures], async () => (await bias.data()) as Float32Array);
    }
  }
  // Gemma files keep RMSNorm weights as 1 + w.
  const stored = (name: string, data: Float32Array): Float32Array => (arch.normPlusOne && isNormWeight(name) ? data.map((v) => v + 1) : data);
  // A clone holds what is read (an own tensor's data stays the model's; a table outside the tensors' memory is read out now).
  for (const [name, weight] of others) add(name, weight.shape, async () => stored(name, await readAndDispose(tf.tidy(() => tf.clone(weight.read())))));
  if (factors && arch.permuteQK && !metadata.some((e) => e.key.endsWith('rope.scaling.type'))) {
    tensors.push({ name: 'rope_freqs.weight', shape: [factors.length], type: 'F32', data: () => factors });
  }
  tensors.sort((x, y) => orderKey(x.name).localeCompare(orderKey(y.name), 'en', { numeric: true }));
  return writeGguf(outPath, metadata, tensors, {
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
}
