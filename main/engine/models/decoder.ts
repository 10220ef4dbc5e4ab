/**
 * The decoder-only transformer of the llama, mistral, qwen2, qwen3, phi3, gemma2 and gemma3 checkpoints: one
 * block structure whose differences are config switches (decoder-config.ts). Per layer:
 *
 *   h = norm(x);  q, k, v = proj(h)  (qkv_proj split for phi3);  q, k = qkNorm? per head;  rotary(q, k)
 *   a = o_proj(attention(q, k, v))   (full causal or sliding window, per layer);  a = norm(a) with sandwich norms
 *   x = x + a;  m = norm(x);  f = down(act(gate(m)) · up(m))  (gate_up_proj split for phi3);  f = norm(f) sandwich
 *   x = x + f
 *
 * then a final norm and the head (tied to the embedding or not). Names follow the checkpoint keys; every linear is
 * a LinearLayer built through WeightLoader, so LoRA, merging and export see all families alike.
 * Shapes: B batch, T new positions, N = B·T rows, C hidden, H heads, Hkv kv heads, D head dim, F MLP width.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { FrozenWeight } from '../backend/frozen';
import type { TensorSource } from '../io/model-checkpoint';
import { ModelIoError } from '../io/errors';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../io/half';
import { LinearLayer } from '../lora/linear';
import { decoderLayerLinears, decoderLayerNorms, hasBias, headSpec, type DecoderConfig } from './decoder-config';
import { forwardLogits, forwardStart, outputHead } from './forward';
import { DecoderCache } from './kv-cache';
import { applyRotary, attention, attentionMask, gatedActivation, rmsNorm, rotaryTables, splitHeads, variablesOf } from './layers';
import type { Rotary } from './rope';
import { linearWeight, ownTensor, readAllWeights, tableWeight } from './named-weights';
import type { CausalLM, DecoderBlock, ForwardOptions, KVCache, NamedWeight, OutputHead } from './types';
import { WeightLoader, collectVariables, countParameters, disposeWeights, type WeightLoadOptions } from './weights';

interface Layer {
  readonly index: number;
  /** input_layernorm [C] */
  readonly attentionNorm: tf.Tensor1D;
  /** Gemma's post_attention_layernorm [C] on the attention output, or null. */
  readonly attentionOutputNorm: tf.Tensor1D | null;
  /** The pre-MLP norm [C]: post_attention_layernorm (llama), pre_feedforward_layernorm (gemma). */
  readonly mlpNorm: tf.Tensor1D;
  /** Gemma's post_feedforward_layernorm [C], or null. */
  readonly mlpOutputNorm: tf.Tensor1D | null;
  /** q_norm, k_norm [D] (qwen3, gemma3), or null. */
  readonly qNorm: tf.Tensor1D | null;
  readonly kNorm: tf.Tensor1D | null;
  /** By module name: q_proj, k_proj, v_proj or qkv_proj; o_proj; gate_proj, up_proj or gate_up_proj; down_proj. */
  readonly linears: ReadonlyMap<string, LinearLayer>;
}

/** What one block of a forward call reads besides its input. */
interface BlockState {
  readonly b: number;
  readonly t: number;
  readonly cache: DecoderCache | null;
  readonly dropout: ((x: tf.Tensor2D, rate: number) => tf.Tensor2D) | undefined;
  /** The layer's additive mask [T, S]: causal, or banded where its window is shorter than S. */
  readonly mask: tf.Tensor2D;
  /** cos and signed sin [T, D] of the layer's rotary embedding. */
  readonly cos: tf.Tensor2D;
  readonly sin: tf.Tensor2D;
}

/** Where a layer's tensors sit in the forward call's shared context list. */
interface ContextSlots {
  /** cos at this index, sin at the next */
  readonly rotary: number;
  readonly mask: number;
}

/** √hidden as upstream multiplies it in: a tensor of the embedding's dtype (bf16 rounds √640 to 25.25). */
function embeddingScale(hidden: number, dtype: string): number {
  const scale = Math.sqrt(hidden);
  if (dtype === 'BF16') return bf16ToF32(f32ToBf16([scale]))[0] as number;
  if (dtype === 'F16') return f16ToF32(f32ToF16([scale]))[0] as number;
  return Math.fround(scale);
}

export class DecoderModel implements CausalLM {
  readonly linears = new Map<string, LinearLayer>();
  private readonly layers: Layer[] = [];
  /** [V, C], or null when tied: then the head's weight is the embedding too. */
  private readonly embed_tokens: FrozenWeight | null;
  private readonly norm: tf.Tensor1D;
  private readonly lm_head: LinearLayer;
  /** hidden [N, C] -> logits [N, V], soft-capped where the config says (Gemma 2). */
  readonly head: OutputHead;
  /** Multiplies the embeddings (Gemma), or null. */
  private readonly embedScale: number | null;
  private readonly others = new Map<string, tf.Tensor>();
  /** The untied embedding table, by checkpoint name. */
  private readonly tables = new Map<string, FrozenWeight>();

  constructor(
    readonly config: DecoderConfig,
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
      const vector = (name: string | null, size: number): tf.Tensor1D | null => {
        if (name === null) return null;
        const v = loader.vector(name, size);
        this.others.set(name, v);
        return v;
      };
      for (let i = 0; i < c.numLayers; i++) {
        const names = decoderLayerNorms(c, i);
        const linears = new Map<string, LinearLayer>();
        for (const spec of decoderLayerLinears(c, i)) {
          const layer = loader.linear(spec, `${spec.path}.weight`, hasBias(c, spec) ? `${spec.path}.bias` : null);
          this.linears.set(spec.path, layer);
          linears.set(spec.name, layer);
        }
        this.layers.push({
          index: i,
          attentionNorm: vector(names.attention, c.hiddenSize) as tf.Tensor1D,
          attentionOutputNorm: vector(names.attentionOutput, c.hiddenSize),
          mlpNorm: vector(names.mlp, c.hiddenSize) as tf.Tensor1D,
          mlpOutputNorm: vector(names.mlpOutput, c.hiddenSize),
          qNorm: vector(names.q, c.headDim),
          kNorm: vector(names.k, c.headDim),
          linears,
        });
      }
      this.norm = vector('model.norm.weight', c.hiddenSize) as tf.Tensor1D;
      const embedName = 'model.embed_tokens.weight';
      // A source that cannot tell its dtype (a GGUF file) is taken as float32, as llama.cpp multiplies by sqrtf(C).
      this.embedScale = c.scaleEmbedding ? embeddingScale(c.hiddenSize, checkpoint.dtypeOf?.(embedName) ?? 'F32') : null;
      if (c.tieWordEmbeddings) {
        // Tied: one table, the head's weight; the embedding gathers its rows.
        this.embed_tokens = null;
        this.lm_head = loader.linear(headSpec(c), embedName, null);
      } else {
        this.embed_tokens = loader.embedding(embedName, c.vocabSize, c.hiddenSize);
        this.tables.set(embedName, this.embed_tokens);
        this.lm_head = loader.linear(headSpec(c), 'lm_head.weight', null);
      }
      this.linears.set('lm_head', this.lm_head);
      this.head = outputHead(this.lm_head, c.finalSoftcap);
    } catch (error) {
      loader.disposeAll();
      throw error;
    }
  }

  /** ids [N] -> [N, C] */
  private embed(flat: tf.Tensor1D): tf.Tensor2D {
    const rows = (this.embed_tokens ?? this.lm_head.weight).rows(flat);
    return this.embedScale === null ? rows : (tf.mul(rows, this.embedScale) as tf.Tensor2D);
  }

  /** RMSNorm over the last axis; Gemma's weights are offsets from one. */
  private rms(x: tf.Tensor, weight: tf.Tensor1D): tf.Tensor {
    const c = this.config;
    return rmsNorm(x, c.normPlusOne ? (tf.add(weight, 1) as tf.Tensor1D) : weight, c.rmsNormEps);
  }

  private linear(layer: Layer, name: string): LinearLayer {
    return layer.linears.get(name) as LinearLayer;
  }

  /** h [N, C] -> q [B, H, T, D], k and v [B, Hkv, T, D], before the rotary embedding. */
  private project(layer: Layer, h: tf.Tensor2D, ctx: BlockState): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D] {
    const c = this.config;
    const qWidth = c.numHeads * c.headDim;
    const kvWidth = c.numKvHeads * c.headDim;
    const [q, k, v] = c.fusedProjections
      ? (tf.split(this.linear(layer, 'qkv_proj').apply(h, ctx.dropout), [qWidth, kvWidth, kvWidth], 1) as tf.Tensor2D[])
      : ['q_proj', 'k_proj', 'v_proj'].map((name) => this.linear(layer, name).apply(h, ctx.dropout));
    return [
      splitHeads(q as tf.Tensor2D, ctx.b, ctx.t, c.numHeads, c.headDim),
      splitHeads(k as tf.Tensor2D, ctx.b, ctx.t, c.numKvHeads, c.headDim),
      splitHeads(v as tf.Tensor2D, ctx.b, ctx.t, c.numKvHeads, c.headDim),
    ];
  }

  /** One transformer block: x [N, C] -> [N, C]. */
  private block(layer: Layer, x: tf.Tensor2D, ctx: BlockState): tf.Tensor2D {
    return tf.tidy(() => this.blockOps(layer, x, ctx));
  }

  private blockOps(layer: Layer, x: tf.Tensor2D, ctx: BlockState): tf.Tensor2D {
    const c = this.config;
    const spec = c.layers[layer.index] as DecoderConfig['layers'][number];
    const h = this.rms(x, layer.attentionNorm) as tf.Tensor2D;
    const [rawQ, rawK, v] = this.project(layer, h, ctx);
    const { cos, sin } = ctx;
    // Qwen3 and Gemma 3 norm each head's queries and keys over D before rotating them.
    const q = applyRotary(layer.qNorm ? (this.rms(rawQ, layer.qNorm) as tf.Tensor4D) : rawQ, cos, sin);
    const k = applyRotary(layer.kNorm ? (this.rms(rawK, layer.kNorm) as tf.Tensor4D) : rawK, cos, sin);
    const entry = ctx.cache ? ctx.cache.append(layer.index, k, v) : { keys: k, values: v };
    const context = attention(q, entry.keys, entry.values, ctx.mask, { scale: c.attentionScale, window: spec.window, softcap: c.attentionSoftcap }); // [B, T, H·D]
    let a = this.linear(layer, 'o_proj').apply(tf.reshape(context, [ctx.b * ctx.t, c.numHeads * c.headDim]), ctx.dropout);
    if (layer.attentionOutputNorm) a = this.rms(a, layer.attentionOutputNorm) as tf.Tensor2D;
    const mid = tf.add(x, a) as tf.Tensor2D;
    const m = this.rms(mid, layer.mlpNorm) as tf.Tensor2D;
    const [gate, up] = c.fusedProjections
      ? (tf.split(this.linear(layer, 'gate_up_proj').apply(m, ctx.dropout), 2, 1) as tf.Tensor2D[])
      : [this.linear(layer, 'gate_proj').apply(m, ctx.dropout), this.linear(layer, 'up_proj').apply(m, ctx.dropout)];
    let f = this.linear(layer, 'down_proj').apply(gatedActivation(gate as tf.Tensor2D, up as tf.Tensor2D, c.activation) as tf.Tensor2D, ctx.dropout);
    if (layer.mlpOutputNorm) f = this.rms(f, layer.mlpOutputNorm) as tf.Tensor2D;
    return tf.add(mid, f) as tf.Tensor2D;
  }

  private blockVariables(layer: Layer): tf.Variable[] {
    const norms = [layer.attentionNorm, layer.attentionOutputNorm, layer.mlpNorm, layer.mlpOutputNorm, layer.qNorm, layer.kNorm];
    return variablesOf([...layer.linears.values()], norms.filter((n): n is tf.Tensor1D => n !== null));
  }

  forward(ids: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor3D {
    return forwardLogits(this, ids, options);
  }

  hiddenStates(ids: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor2D {
    const c = this.config;
    const { b, t, cache, start, dropout } = forwardStart(ids, c.vocabSize, options);
    const hidden = tf.tidy(() => {
      // The per-call tensors the blocks read, each built once: rotary tables per distinct rotary embedding (longrope
      // picks its frequencies by the sequence length so far, as transformers' frequency update does) and masks per
      // distinct (keys, window). A block takes them from its context argument, so a BlockRunner can call it again.
      const context: tf.Tensor[] = [];
      const rotaryAt = new Map<Rotary, number>();
      const maskAt = new Map<string, number>();
      const slots = this.layers.map((layer): ContextSlots => {
        const spec = c.layers[layer.index] as DecoderConfig['layers'][number];
        let rotary = rotaryAt.get(spec.rotary);
        if (rotary === undefined) {
          rotary = context.length;
          const { cos, sin } = rotaryTables(spec.rotary.invFreq(start + t), start, t, spec.rotary.attentionFactor); // [T, D]
          context.push(cos, sin);
          rotaryAt.set(spec.rotary, rotary);
        }
        const keys = (cache?.heldPositions(layer.index) ?? 0) + t;
        const window = spec.window !== null && keys > spec.window ? spec.window : null;
        const id = `${keys}:${window ?? ''}`;
        let mask = maskAt.get(id);
        if (mask === undefined) {
          mask = context.length;
          context.push(attentionMask(t, keys, window)); // [T, S]
          maskAt.set(id, mask);
        }
        return { rotary, mask };
      });
      let x = this.embed(tf.reshape(ids, [b * t])); // [N, C]
      for (const layer of this.layers) {
        const slot = slots[layer.index] as ContextSlots;
        const block: DecoderBlock = (input, ctx) =>
          this.block(layer, input, {
            b, t, cache, dropout,
            mask: ctx[slot.mask] as tf.Tensor2D,
            cos: ctx[slot.rotary] as tf.Tensor2D,
            sin: ctx[slot.rotary + 1] as tf.Tensor2D,
          });
        x = options.runBlock ? options.runBlock(block, x, context, this.blockVariables(layer)) : block(x, context);
      }
      return this.rms(x, this.norm) as tf.Tensor2D;
    });
    cache?.advance(t);
    return hidden;
  }

  createCache(): KVCache {
    return new DecoderCache(this.config.numLayers, this.config.layers.map((l) => l.window));
  }

  /**
   * Every weight under its checkpoint name in checkpoint layout ([out, in] for linears). Norms are the model's
   * own tensors; linear weights and an untied embedding table are fresh: call this inside tf.tidy.
   */
  namedWeights(): Map<string, tf.Tensor> {
    return readAllWeights(this.weights());
  }

  weights(): Map<string, NamedWeight> {
    const out = new Map<string, NamedWeight>([...this.others].map(([name, t]) => [name, ownTensor(t)]));
    for (const [name, table] of this.tables) out.set(name, tableWeight(table));
    for (const [path, layer] of this.linears) {
      const name = layer === this.lm_head && !this.embed_tokens ? 'model.embed_tokens.weight' : `${path}.weight`;
      out.set(name, linearWeight(layer));
      if (layer.bias) out.set(`${path}.bias`, ownTensor(layer.bias));
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
