/**
 * The Llama family (LlamaForCausalLM and its relatives mistral, qwen2; SmolLM and TinyLlama are llama):
 * RMSNorm, rotary embeddings (rotate-half, rope_theta, llama3/linear rope_scaling), grouped-query attention,
 * SwiGLU MLP, tied or untied head. qwen2 adds q/k/v biases. Names follow the checkpoint keys.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorSource } from '../io/model-checkpoint';
import { ModelIoError } from '../io/errors';
import { ConfigFields, readGenerationEosIds, type RawConfig } from '../io/hf-config';
import { loraDropout, LinearLayer } from '../lora/linear';
import { DecoderCache, asDecoderCache } from './kv-cache';
import { applyRotary, attention, causalMask, gatedActivation, parseActivation, rmsNorm, rotaryTables, splitHeads, variablesOf, type Activation } from './layers';
import type { CausalLM, DecoderBlock, ForwardOptions, KVCache, LinearSpec, ModelConfig, OutputHead } from './types';
import type { FrozenWeight } from '../backend/frozen';
import { WeightLoader, checkTokenIds, collectVariables, countParameters, disposeWeights, type WeightLoadOptions } from './weights';

export const LLAMA_FAMILY = ['llama', 'mistral', 'qwen2'] as const;

export interface LlamaConfig extends ModelConfig {
  readonly rmsNormEps: number;
  readonly activation: Activation;
  /** Rotary inverse frequencies [D/2], after rope_scaling. */
  readonly invFreq: Float64Array;
  readonly attentionBias: boolean;
  readonly mlpBias: boolean;
  /** Mistral's sliding window; sequences longer than it are refused rather than attended wrongly. */
  readonly slidingWindow: number | null;
}

/** HF's _compute_llama3_parameters: long wavelengths slowed by `factor`, short ones kept, a smooth ramp between. */
function llama3Scaling(invFreq: Float64Array, scaling: Record<string, unknown>, f: ConfigFields): Float64Array {
  const num = (key: string): number => {
    const v = scaling[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new ModelIoError('INVALID_CONFIG', `${f.source}: rope_scaling.${key} must be a positive number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const factor = num('factor');
  const low = num('low_freq_factor');
  const high = num('high_freq_factor');
  const oldContext = num('original_max_position_embeddings');
  const lowWavelen = oldContext / low;
  const highWavelen = oldContext / high;
  return invFreq.map((freq) => {
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) return freq;
    if (wavelen > lowWavelen) return freq / factor;
    const smooth = (oldContext / wavelen - low) / (high - low);
    return (1 - smooth) * (freq / factor) + smooth * freq;
  });
}

function rotaryInvFreq(f: ConfigFields, headDim: number): Float64Array {
  const theta = f.number('rope_theta', 10000);
  const partial = f.number('partial_rotary_factor', 1);
  if (partial !== 1) throw new ModelIoError('UNSUPPORTED_MODEL', `${f.source}: "partial_rotary_factor": ${partial} is not supported (only 1)`);
  const invFreq = new Float64Array(headDim / 2).map((_, i) => 1 / theta ** ((2 * i) / headDim));
  if (!f.has('rope_scaling')) return invFreq;
  const scaling = f.raw.rope_scaling as Record<string, unknown>;
  const type = scaling.rope_type ?? scaling.type;
  if (type === 'default') return invFreq;
  if (type === 'llama3') return llama3Scaling(invFreq, scaling, f);
  if (type === 'linear') {
    const factor = scaling.factor;
    if (typeof factor !== 'number' || factor <= 0) throw new ModelIoError('INVALID_CONFIG', `${f.source}: rope_scaling.factor must be a positive number`);
    return invFreq.map((x) => x / factor);
  }
  throw new ModelIoError('UNSUPPORTED_MODEL', `${f.source}: "rope_scaling" type ${JSON.stringify(type)} is not supported (default, linear, llama3)`);
}

export function parseLlamaConfig(raw: RawConfig, dir: string, source: string): LlamaConfig {
  const f = new ConfigFields(raw, source);
  const modelType = f.string('model_type', 'llama');
  f.unsupported('use_sliding_window', (v) => v === false, 'sliding-window attention (qwen2 use_sliding_window) is not supported');
  f.unsupported('pretraining_tp', (v) => v === 1, 'only 1');
  const hiddenSize = f.int('hidden_size');
  const numHeads = f.int('num_attention_heads');
  const numKvHeads = f.int('num_key_value_heads', numHeads);
  const headDim = f.int('head_dim', hiddenSize / numHeads);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new ModelIoError('INVALID_CONFIG', `${source}: head dim ${headDim} (hidden_size / num_attention_heads) must be an even integer`);
  }
  if (numHeads % numKvHeads !== 0) {
    throw new ModelIoError('INVALID_CONFIG', `${source}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  const eos = readGenerationEosIds(dir);
  const qkvBias = modelType === 'qwen2';
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
    raw,
    rmsNormEps: f.number('rms_norm_eps', 1e-6),
    activation: parseActivation(f.string('hidden_act', 'silu'), source, 'hidden_act'),
    invFreq: rotaryInvFreq(f, headDim),
    attentionBias: qkvBias || f.bool('attention_bias', false),
    mlpBias: f.bool('mlp_bias', false),
    slidingWindow: f.has('sliding_window') && modelType === 'mistral' ? f.int('sliding_window') : null,
  };
}

/** What one forward pass hands each decoder layer besides its input. */
interface BlockState {
  readonly b: number;
  readonly t: number;
  readonly index: number;
  readonly cache: DecoderCache | null;
  readonly dropout: ((x: tf.Tensor2D, rate: number) => tf.Tensor2D) | undefined;
  /** [T, S] */
  readonly mask: tf.Tensor2D;
  /** [T, D] */
  readonly cos: tf.Tensor2D;
  readonly sin: tf.Tensor2D;
}

interface Layer {
  input_layernorm: tf.Tensor1D;
  q_proj: LinearLayer;
  k_proj: LinearLayer;
  v_proj: LinearLayer;
  o_proj: LinearLayer;
  post_attention_layernorm: tf.Tensor1D;
  gate_proj: LinearLayer;
  up_proj: LinearLayer;
  down_proj: LinearLayer;
}

function spec(path: string, layer: number | null, inFeatures: number, outFeatures: number, groups: LinearSpec['groups']): LinearSpec {
  return { path, name: path.slice(path.lastIndexOf('.') + 1), layer, inFeatures, outFeatures, groups, fanInFanOut: false };
}

export class LlamaModel implements CausalLM {
  readonly linears = new Map<string, LinearLayer>();
  private readonly layers: Layer[] = [];
  /** [V, C], or null when tied: then the head's weight is the embedding too. */
  private readonly embed_tokens: FrozenWeight | null;
  private readonly norm: tf.Tensor1D;
  private readonly lm_head: LinearLayer;
  private readonly others = new Map<string, tf.Tensor>();
  /** The untied embedding table, by checkpoint name. */
  private readonly tables = new Map<string, FrozenWeight>();

  constructor(
    readonly config: LlamaConfig,
    checkpoint: TensorSource,
    load: boolean | WeightLoadOptions,
  ) {
    const loader = new WeightLoader(checkpoint, load);
    // An untied head that is missing is not the embedding (transformers would start it random): said before loading.
    if (!config.tieWordEmbeddings && !checkpoint.has('lm_head.weight')) {
      throw new ModelIoError('TENSOR_NOT_FOUND', `${checkpoint.dir}: config.json has tie_word_embeddings false (or unset), but the checkpoint has no 'lm_head.weight'; add the head's weights, or set tie_word_embeddings to true if the model shares them with its embedding`);
    }
    try {
      const c = config;
      const qOut = c.numHeads * c.headDim;
      const kvOut = c.numKvHeads * c.headDim;
      const linear = (path: string, layer: number | null, inF: number, outF: number, groups: LinearSpec['groups'], bias: boolean) => {
        const l = loader.linear(spec(path, layer, inF, outF, groups), `${path}.weight`, bias ? `${path}.bias` : null);
        this.linears.set(path, l);
        return l;
      };
      const vector = (name: string, size: number) => {
        const v = loader.vector(name, size);
        this.others.set(name, v);
        return v;
      };
      for (let i = 0; i < c.numLayers; i++) {
        const p = `model.layers.${i}`;
        const attn = (name: string, out: number, inF: number, bias: boolean) =>
          linear(`${p}.self_attn.${name}`, i, inF, out, ['attention'], bias);
        const mlp = (name: string, inF: number, out: number) => linear(`${p}.mlp.${name}`, i, inF, out, ['mlp'], c.mlpBias);
        this.layers.push({
          input_layernorm: vector(`${p}.input_layernorm.weight`, c.hiddenSize),
          q_proj: attn('q_proj', qOut, c.hiddenSize, c.attentionBias),
          k_proj: attn('k_proj', kvOut, c.hiddenSize, c.attentionBias),
          v_proj: attn('v_proj', kvOut, c.hiddenSize, c.attentionBias),
          o_proj: attn('o_proj', c.hiddenSize, qOut, c.attentionBias && c.modelType !== 'qwen2'),
          post_attention_layernorm: vector(`${p}.post_attention_layernorm.weight`, c.hiddenSize),
          gate_proj: mlp('gate_proj', c.hiddenSize, c.intermediateSize),
          up_proj: mlp('up_proj', c.hiddenSize, c.intermediateSize),
          down_proj: mlp('down_proj', c.intermediateSize, c.hiddenSize),
        });
      }
      this.norm = vector('model.norm.weight', c.hiddenSize);
      const headSpec = spec('lm_head', null, c.hiddenSize, c.vocabSize, []);
      if (c.tieWordEmbeddings) {
        // Tied: one table, the head's weight; the embedding gathers its rows.
        this.embed_tokens = null;
        this.lm_head = loader.linear(headSpec, 'model.embed_tokens.weight', null);
      } else {
        this.embed_tokens = loader.embedding('model.embed_tokens.weight', c.vocabSize, c.hiddenSize);
        this.tables.set('model.embed_tokens.weight', this.embed_tokens);
        this.lm_head = loader.linear(headSpec, 'lm_head.weight', null);
      }
      this.linears.set('lm_head', this.lm_head);
    } catch (error) {
      loader.disposeAll();
      throw error;
    }
  }

  /** ids [N] -> [N, C] */
  private embed(flat: tf.Tensor1D): tf.Tensor2D {
    return (this.embed_tokens ?? this.lm_head.weight).rows(flat);
  }

  readonly head: OutputHead = {
    logits: (hidden, training) => this.lm_head.apply(hidden, training ? loraDropout : undefined),
    variables: () => variablesOf([this.lm_head], []),
  };

  forward(ids: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor3D {
    const [b, t] = ids.shape;
    return tf.tidy(() => tf.reshape(this.head.logits(this.hiddenStates(ids, options), options.training), [b, t, this.config.vocabSize]) as tf.Tensor3D);
  }

  hiddenStates(ids: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor2D {
    const c = this.config;
    checkTokenIds(ids, c.vocabSize);
    const cache = asDecoderCache(options.cache);
    const start = cache?.length ?? 0;
    const [b, t] = ids.shape;
    if (c.slidingWindow !== null && start + t > c.slidingWindow) {
      throw new ModelIoError('TOKEN_OUT_OF_RANGE', `sequence of ${start + t} positions exceeds the sliding window of ${c.slidingWindow}, which is not supported`);
    }
    const dropout = options.training ? loraDropout : undefined;
    const hidden = tf.tidy(() => {
      let x = this.embed(tf.reshape(ids, [b * t])); // [B·T, C]
      const { cos, sin } = rotaryTables(c.invFreq, start, t); // [T, D]
      const context = [causalMask(start, t), cos, sin];
      this.layers.forEach((layer, index) => {
        const block: DecoderBlock = (input, [mask, cosT, sinT]) =>
          this.block(layer, input, { b, t, index, cache, dropout, mask: mask as tf.Tensor2D, cos: cosT as tf.Tensor2D, sin: sinT as tf.Tensor2D });
        x = options.runBlock ? options.runBlock(block, x, context, this.blockVariables(layer)) : block(x, context);
      });
      return rmsNorm(x, this.norm, c.rmsNormEps) as tf.Tensor2D;
    });
    cache?.advance(t);
    return hidden;
  }

  /** One decoder layer: x [B·T, C] -> [B·T, C]. */
  private block(layer: Layer, x: tf.Tensor2D, s: BlockState): tf.Tensor2D {
    return tf.tidy(() => {
      const c = this.config;
      const { b, t, dropout } = s;
      const h = rmsNorm(x, layer.input_layernorm, c.rmsNormEps) as tf.Tensor2D;
      const q = applyRotary(splitHeads(layer.q_proj.apply(h, dropout), b, t, c.numHeads, c.headDim), s.cos, s.sin);
      const k = applyRotary(splitHeads(layer.k_proj.apply(h, dropout), b, t, c.numKvHeads, c.headDim), s.cos, s.sin);
      const v = splitHeads(layer.v_proj.apply(h, dropout), b, t, c.numKvHeads, c.headDim);
      const entry = s.cache ? s.cache.append(s.index, k, v) : { keys: k, values: v };
      const context = attention(q, entry.keys, entry.values, s.mask); // [B, T, H·D]
      const y = tf.add(x, layer.o_proj.apply(tf.reshape(context, [b * t, c.numHeads * c.headDim]), dropout)) as tf.Tensor2D;
      const m = rmsNorm(y, layer.post_attention_layernorm, c.rmsNormEps) as tf.Tensor2D;
      // SwiGLU: down(act(gate(m)) · up(m))
      const gated = gatedActivation(layer.gate_proj.apply(m, dropout), layer.up_proj.apply(m, dropout), c.activation) as tf.Tensor2D;
      return tf.add(y, layer.down_proj.apply(gated, dropout)) as tf.Tensor2D;
    });
  }

  private blockVariables(layer: Layer): tf.Variable[] {
    const { input_layernorm, post_attention_layernorm, ...linears } = layer;
    return variablesOf(Object.values(linears), [input_layernorm, post_attention_layernorm]);
  }

  createCache(): KVCache {
    return new DecoderCache(this.config.numLayers);
  }

  /**
   * Every weight under its checkpoint name in checkpoint layout ([out, in] for linears). Norms and an untied
   * embedding tensor are the model's own tensors; linear weights are fresh: call this inside tf.tidy.
   */
  namedWeights(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>(this.others);
    for (const [name, table] of this.tables) out.set(name, table.toTensor('out-in'));
    for (const [path, layer] of this.linears) {
      const name = layer === this.lm_head && !this.embed_tokens ? 'model.embed_tokens.weight' : `${path}.weight`;
      out.set(name, layer.checkpointWeight());
      if (layer.bias) out.set(`${path}.bias`, layer.bias);
    }
    return out;
  }

  trainableVariables(): Map<string, tf.Variable> {
    return collectVariables(this.linears, this.others, this.tables);
  }

  parameterCount(): number {
    return countParameters(this.linears, this.others, this.tables);
  }

  dispose(): void {
    disposeWeights(this.linears, this.others, this.tables);
  }
}
