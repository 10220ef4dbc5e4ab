/**
 * The normalized config of the decoder-only families that share one block structure (llama, mistral, qwen2,
 * qwen3, phi3, gemma2, gemma3): what each family's config parser produces and the decoder model runs. The
 * parsers take a plain config.json object, so other readers (GGUF metadata mapped to these keys) reuse them.
 *
 * From it also follow, without loading anything: every linear module LoRA can target and every tensor the
 * checkpoint must hold (names and shapes), for `lorasmith inspect` and parameter counts from a config alone.
 */
import { ModelIoError } from '../io/errors';
import { ConfigFields, readGenerationEosIds } from '../io/hf-config';
import type { Activation } from './layers';
import { scaledRotary, type LayerType, type Rotary } from './rope';
import type { LinearSpec, ModelConfig } from './types';

export interface DecoderLayerSpec {
  readonly type: LayerType;
  /** Sliding window W (a query sees itself and W − 1 keys back), or null for full causal attention. */
  readonly window: number | null;
  /** The rotary embedding of this layer's type. */
  readonly rotary: Rotary;
}

export interface DecoderConfig extends ModelConfig {
  readonly rmsNormEps: number;
  /** Gemma's RMSNorm scales by (1 + w): the stored norm weights are offsets from one. */
  readonly normPlusOne: boolean;
  readonly activation: Activation;
  /** Biases on q, k, v (qwen2; attention_bias) and on o_proj (attention_bias, not qwen2). */
  readonly qkvBias: boolean;
  readonly outputBias: boolean;
  readonly mlpBias: boolean;
  /** Per-head RMSNorm of queries and keys over D before the rotary embedding (qwen3, gemma3): q_norm, k_norm [D]. */
  readonly qkNorm: boolean;
  /** Gemma 2/3: the attention and MLP outputs are normed too before the residual add (four norms per layer). */
  readonly sandwichNorms: boolean;
  /** Phi-3: q, k, v in one `qkv_proj` [(H + 2·Hkv)·D, C] and gate, up in one `gate_up_proj` [2·F, C]. */
  readonly fusedProjections: boolean;
  /** Gemma: embeddings are multiplied by √hidden, rounded to the embedding's stored dtype as upstream does. */
  readonly scaleEmbedding: boolean;
  /** Multiplies q·kᵀ: 1/√D, or query_pre_attn_scalar^−½ (Gemma). */
  readonly attentionScale: number;
  /** Gemma 2: scores and final logits soft-capped at cap·tanh(x / cap); null where not. */
  readonly attentionSoftcap: number | null;
  readonly finalSoftcap: number | null;
  readonly layers: readonly DecoderLayerSpec[];
  /** The full-attention layers' rotary inverse frequencies [D/2] within the original context (GGUF's rope_freqs). */
  readonly invFreq: Float64Array;
}

/** The ModelConfig fields every decoder family reads the same way. */
export function baseDecoderFields(f: ConfigFields, dir: string, modelType: string): ModelConfig & { readonly rmsNormEps: number } {
  const source = f.source;
  const hiddenSize = f.int('hidden_size');
  const numHeads = f.int('num_attention_heads');
  const numKvHeads = f.int('num_key_value_heads', numHeads);
  const headDim = f.int('head_dim', Math.floor(hiddenSize / numHeads));
  if (!f.has('head_dim') && hiddenSize % numHeads !== 0) {
    throw new ModelIoError('INVALID_CONFIG', `${source}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}; give "head_dim"`);
  }
  if (headDim % 2 !== 0) throw new ModelIoError('INVALID_CONFIG', `${source}: head dim ${headDim} must be even for rotary embeddings`);
  if (numHeads % numKvHeads !== 0) {
    throw new ModelIoError('INVALID_CONFIG', `${source}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  f.unsupported('partial_rotary_factor', (v) => v === 1, 'only 1: the whole head is rotated');
  f.unsupported('pretraining_tp', (v) => v === 1, 'only 1');
  const eos = readGenerationEosIds(dir);
  return {
    modelType,
    vocabSize: f.int('vocab_size'),
    hiddenSize,
    numLayers: f.int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: f.int('intermediate_size'),
    maxPositions: f.int('max_position_embeddings', 2048),
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    bosTokenId: f.tokenId('bos_token_id'),
    eosTokenIds: eos.length > 0 ? eos : f.tokenIds('eos_token_id'),
    padTokenId: f.tokenId('pad_token_id'),
    raw: f.raw,
    rmsNormEps: f.number('rms_norm_eps', 1e-6),
  };
}

/** `layer_types` when the config lists them (transformers ≥ 4.53 writes it), else the family's own rule. */
export function layerTypesOf(f: ConfigFields, numLayers: number, fallback: (layer: number) => LayerType): LayerType[] {
  const listed = f.raw.layer_types;
  if (listed === undefined || listed === null) return Array.from({ length: numLayers }, (_, i) => fallback(i));
  if (!Array.isArray(listed) || listed.length !== numLayers || !listed.every((t) => t === 'full_attention' || t === 'sliding_attention')) {
    throw new ModelIoError(
      'INVALID_CONFIG',
      `${f.source}: "layer_types" must list ${numLayers} entries of "full_attention" or "sliding_attention", got ${JSON.stringify(listed)}`,
    );
  }
  return listed as LayerType[];
}

/** The sliding window size: a positive integer, or null where the config gives none. */
export function slidingWindowOf(f: ConfigFields): number | null {
  return f.has('sliding_window') ? f.int('sliding_window') : null;
}

function spec(path: string, layer: number | null, inFeatures: number, outFeatures: number, groups: LinearSpec['groups']): LinearSpec {
  return { path, name: path.slice(path.lastIndexOf('.') + 1), layer, inFeatures, outFeatures, groups, fanInFanOut: false };
}

/** Module paths of one layer's linears, in checkpoint order, with their [in, out] sizes. */
export function decoderLayerLinears(c: DecoderConfig, layer: number): LinearSpec[] {
  const a = `model.layers.${layer}.self_attn`;
  const m = `model.layers.${layer}.mlp`;
  const C = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const F = c.intermediateSize;
  const attention = c.fusedProjections
    ? [spec(`${a}.qkv_proj`, layer, C, q + 2 * kv, ['attention'])]
    : [spec(`${a}.q_proj`, layer, C, q, ['attention']), spec(`${a}.k_proj`, layer, C, kv, ['attention']), spec(`${a}.v_proj`, layer, C, kv, ['attention'])];
  const mlp = c.fusedProjections
    ? [spec(`${m}.gate_up_proj`, layer, C, 2 * F, ['mlp'])]
    : [spec(`${m}.gate_proj`, layer, C, F, ['mlp']), spec(`${m}.up_proj`, layer, C, F, ['mlp'])];
  return [...attention, spec(`${a}.o_proj`, layer, q, C, ['attention']), ...mlp, spec(`${m}.down_proj`, layer, F, C, ['mlp'])];
}

export function headSpec(c: DecoderConfig): LinearSpec {
  return spec('lm_head', null, c.hiddenSize, c.vocabSize, []);
}

/** Every LoRA-targetable linear, in the order the loaded model lists them. */
export function decoderLinearSpecs(c: DecoderConfig): LinearSpec[] {
  const out: LinearSpec[] = [];
  for (let i = 0; i < c.numLayers; i++) out.push(...decoderLayerLinears(c, i));
  out.push(headSpec(c));
  return out;
}

/** Checkpoint names of one layer's norm weights, by role, with their sizes. */
export function decoderLayerNorms(c: DecoderConfig, layer: number): { attention: string; attentionOutput: string | null; mlp: string; mlpOutput: string | null; q: string | null; k: string | null } {
  const p = `model.layers.${layer}`;
  return {
    attention: `${p}.input_layernorm.weight`,
    // Llama calls the pre-MLP norm post_attention_layernorm; Gemma 2/3 use that name for the attention output's norm.
    attentionOutput: c.sandwichNorms ? `${p}.post_attention_layernorm.weight` : null,
    mlp: c.sandwichNorms ? `${p}.pre_feedforward_layernorm.weight` : `${p}.post_attention_layernorm.weight`,
    mlpOutput: c.sandwichNorms ? `${p}.post_feedforward_layernorm.weight` : null,
    q: c.qkNorm ? `${p}.self_attn.q_norm.weight` : null,
    k: c.qkNorm ? `${p}.self_attn.k_norm.weight` : null,
  };
}

/** Every tensor a checkpoint of this config holds (a tied head has no lm_head.weight), name -> shape. */
export function decoderTensorShapes(c: DecoderConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>([['model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]]]);
  for (let i = 0; i < c.numLayers; i++) {
    const norms = decoderLayerNorms(c, i);
    for (const name of [norms.attention, norms.attentionOutput, norms.mlp, norms.mlpOutput]) if (name) shapes.set(name, [c.hiddenSize]);
    for (const name of [norms.q, norms.k]) if (name) shapes.set(name, [c.headDim]);
    for (const l of decoderLayerLinears(c, i)) {
      shapes.set(`${l.path}.weight`, [l.outFeatures, l.inFeatures]);
      if (hasBias(c, l)) shapes.set(`${l.path}.bias`, [l.outFeatures]);
    }
  }
  shapes.set('model.norm.weight', [c.hiddenSize]);
  if (!c.tieWordEmbeddings) shapes.set('lm_head.weight', [c.vocabSize, c.hiddenSize]);
  return shapes;
}

/** Whether a layer's linear carries a bias under this config. */
export function hasBias(c: DecoderConfig, l: LinearSpec): boolean {
  if (l.layer === null) return false;
  if (l.groups.includes('mlp')) return c.mlpBias;
  return l.name === 'o_proj' ? c.outputBias : c.qkvBias;
}

/**
 * The config with each rotary frequency divided by its factor [D/2] (a GGUF's rope_freqs tensor: llama 3's
 * long-context scaling baked into the file), on every layer.
 */
export function withRopeFactors(c: DecoderConfig, factors: Float32Array, source: string): DecoderConfig {
  if (factors.length !== c.invFreq.length) {
    throw new ModelIoError('UNSUPPORTED_MODEL', `${source}: ${factors.length} rope frequency factors do not fit head dim ${c.headDim}`);
  }
  const scaled = new Map<Rotary, Rotary>();
  const layers = c.layers.map((l) => {
    if (!scaled.has(l.rotary)) scaled.set(l.rotary, scaledRotary(l.rotary, factors));
    return { ...l, rotary: scaled.get(l.rotary) as Rotary };
  });
  return { ...c, layers, invFreq: c.invFreq.map((f, i) => f / (factors[i] as number)) };
}
