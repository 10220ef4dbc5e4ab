/**
 * GPT-2 (GPT2LMHeadModel): learned positions, pre-LayerNorm blocks, fused q/k/v in c_attn, Conv1D weights
 * stored [in, out], gelu_new MLP, head tied to wte. Names follow the checkpoint keys.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorSource } from '../io/model-checkpoint';
import { ConfigFields, readGenerationEosIds, type RawConfig } from '../io/hf-config';
import { LinearLayer } from '../lora/linear';
import { forwardLogits, forwardStart, outputHead } from './forward';
import { DecoderCache } from './kv-cache';
import { activate, attention, causalMask, layerNorm, parseActivation, splitHeads, variablesOf, type Activation } from './layers';
import { linearWeight, ownTensor, readAllWeights } from './named-weights';
import type { CausalLM, DecoderBlock, ForwardOptions, KVCache, LinearSpec, ModelConfig, NamedWeight, OutputHead } from './types';
import { WeightLoader, collectVariables, countParameters, disposeWeights, type WeightLoadOptions } from './weights';
import { ModelIoError } from '../io/errors';

export interface Gpt2Config extends ModelConfig {
  readonly layerNormEps: number;
  readonly activation: Activation;
}

export function parseGpt2Config(raw: RawConfig, dir: string, source: string): Gpt2Config {
  const f = new ConfigFields(raw, source);
  f.unsupported('scale_attn_by_inverse_layer_idx', (v) => v === false, 'only false');
  f.unsupported('add_cross_attention', (v) => v === false, 'only decoder-only GPT-2');
  f.unsupported('scale_attn_weights', (v) => v === true, 'only true');
  f.unsupported('tie_word_embeddings', (v) => v === true, 'GPT2LMHeadModel always ties its head to wte');
  const hiddenSize = f.int(['n_embd', 'hidden_size']);
  const numHeads = f.int(['n_head', 'num_attention_heads']);
  if (hiddenSize % numHeads !== 0) {
    throw new ModelIoError('INVALID_CONFIG', `${source}: n_embd ${hiddenSize} is not divisible by n_head ${numHeads}`);
  }
  const eos = readGenerationEosIds(dir);
  return {
    modelType: 'gpt2',
    vocabSize: f.int('vocab_size'),
    hiddenSize,
    numLayers: f.int(['n_layer', 'num_hidden_layers']),
    numHeads,
    numKvHeads: numHeads,
    headDim: hiddenSize / numHeads,
    intermediateSize: f.int('n_inner', 4 * hiddenSize),
    maxPositions: f.int(['n_positions', 'max_position_embeddings']),
    tieWordEmbeddings: true,
    bosTokenId: f.tokenId('bos_token_id'),
    eosTokenIds: eos.length > 0 ? eos : f.tokenIds('eos_token_id'),
    padTokenId: f.tokenId('pad_token_id'),
    raw,
    layerNormEps: f.number('layer_norm_epsilon', 1e-5),
    activation: parseActivation(f.string('activation_function', 'gelu_new'), source, 'activation_function'),
  };
}

interface Norm {
  weight: tf.Tensor1D;
  bias: tf.Tensor1D;
}

/** What one forward pass hands each block besides its input. */
interface BlockState {
  readonly b: number;
  readonly t: number;
  readonly index: number;
  readonly cache: DecoderCache | null;
  readonly dropout: ((x: tf.Tensor2D, rate: number) => tf.Tensor2D) | undefined;
  /** [T, S] */
  readonly mask: tf.Tensor2D;
}

interface Block {
  ln_1: Norm;
  c_attn: LinearLayer;
  attn_c_proj: LinearLayer;
  ln_2: Norm;
  c_fc: LinearLayer;
  mlp_c_proj: LinearLayer;
}

function spec(path: string, layer: number | null, inFeatures: number, outFeatures: number, groups: LinearSpec['groups']): LinearSpec {
  const name = path.slice(path.lastIndexOf('.') + 1);
  return { path, name, layer, inFeatures, outFeatures, groups, fanInFanOut: true };
}

/** One block's Conv1D linears ('transformer.h.<i>.*'), in checkpoint order. */
function blockLinears(c: ModelConfig, layer: number): LinearSpec[] {
  const p = `transformer.h.${layer}`;
  const C = c.hiddenSize;
  return [
    spec(`${p}.attn.c_attn`, layer, C, 3 * C, ['attention']),
    spec(`${p}.attn.c_proj`, layer, C, C, ['attention']),
    spec(`${p}.mlp.c_fc`, layer, C, c.intermediateSize, ['mlp']),
    spec(`${p}.mlp.c_proj`, layer, c.intermediateSize, C, ['mlp']),
  ];
}

/** The tied head: wte [V, C] is its nn.Linear-shaped [out, in] weight (not a Conv1D). */
function headSpec(c: ModelConfig): LinearSpec {
  return { ...spec('lm_head', null, c.hiddenSize, c.vocabSize, []), fanInFanOut: false };
}

/** Every linear the model lists, in its order: the blocks' Conv1D modules, then the tied head. */
export function gpt2LinearSpecs(c: ModelConfig): LinearSpec[] {
  const out: LinearSpec[] = [];
  for (let i = 0; i < c.numLayers; i++) out.push(...blockLinears(c, i));
  out.push(headSpec(c));
  return out;
}

/** Every tensor of a GPT2LMHeadModel checkpoint ('transformer.' names), name -> shape. */
export function gpt2TensorShapes(c: ModelConfig): Map<string, number[]> {
  const C = c.hiddenSize;
  const shapes = new Map<string, number[]>([
    ['transformer.wte.weight', [c.vocabSize, C]],
    ['transformer.wpe.weight', [c.maxPositions, C]],
  ]);
  for (let i = 0; i < c.numLayers; i++) {
    for (const norm of ['ln_1', 'ln_2']) {
      shapes.set(`transformer.h.${i}.${norm}.weight`, [C]);
      shapes.set(`transformer.h.${i}.${norm}.bias`, [C]);
    }
    for (const l of blockLinears(c, i)) {
      shapes.set(`${l.path}.weight`, [l.inFeatures, l.outFeatures]);
      shapes.set(`${l.path}.bias`, [l.outFeatures]);
    }
  }
  shapes.set('transformer.ln_f.weight', [C]);
  shapes.set('transformer.ln_f.bias', [C]);
  return shapes;
}

export class Gpt2Model implements CausalLM {
  readonly linears = new Map<string, LinearLayer>();
  private readonly blocks: Block[] = [];
  private readonly wpe: tf.Tensor2D;
  private readonly ln_f: Norm;
  /** The tied head: wte as its weight [V, C]. The embedding looks up its rows; logits are one product. */
  private readonly lm_head: LinearLayer;
  /** hidden [N, C] -> logits [N, V] through the tied head. */
  readonly head: OutputHead;
  /** Checkpoint name -> tensor for the non-linear weights, in checkpoint layout. */
  private readonly others = new Map<string, tf.Tensor>();

  constructor(
    readonly config: Gpt2Config,
    checkpoint: TensorSource,
    load: boolean | WeightLoadOptions,
  ) {
    const loader = new WeightLoader(checkpoint, load);
    try {
      const c = config;
      // Some checkpoints (openai-community/gpt2) drop the 'transformer.' prefix; PEFT paths keep it.
      const prefix = checkpoint.has('transformer.wte.weight') ? 'transformer.' : '';
      const key = (name: string) => prefix + name;
      this.lm_head = loader.linear(headSpec(c), loader.resolve([key('wte.weight')]), null);
      this.wpe = loader.matrix(key('wpe.weight'), c.maxPositions, c.hiddenSize);
      this.others.set('transformer.wpe.weight', this.wpe);
      const norm = (name: string): Norm => {
        const n = { weight: loader.vector(key(`${name}.weight`), c.hiddenSize), bias: loader.vector(key(`${name}.bias`), c.hiddenSize) };
        this.others.set(`transformer.${name}.weight`, n.weight);
        this.others.set(`transformer.${name}.bias`, n.bias);
        return n;
      };
      for (let i = 0; i < c.numLayers; i++) {
        const h = `h.${i}`;
        const [c_attn, attn_c_proj, c_fc, mlp_c_proj] = blockLinears(c, i).map((s) => {
          const name = s.path.slice('transformer.'.length);
          const l = loader.linear(s, key(`${name}.weight`), key(`${name}.bias`));
          this.linears.set(s.path, l);
          return l;
        }) as [LinearLayer, LinearLayer, LinearLayer, LinearLayer];
        this.blocks.push({ ln_1: norm(`${h}.ln_1`), c_attn, attn_c_proj, ln_2: norm(`${h}.ln_2`), c_fc, mlp_c_proj });
      }
      this.ln_f = norm('ln_f');
      this.linears.set('lm_head', this.lm_head);
      this.head = outputHead(this.lm_head, null);
    } catch (error) {
      loader.disposeAll();
      throw error;
    }
  }

  forward(ids: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor3D {
    return forwardLogits(this, ids, options);
  }

  hiddenStates(ids: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor2D {
    const c = this.config;
    const { b, t, cache, start, dropout } = forwardStart(ids, c.vocabSize, options);
    if (start + t > c.maxPositions) {
      throw new ModelIoError('TOKEN_OUT_OF_RANGE', `sequence of ${start + t} positions exceeds this model's ${c.maxPositions} (n_positions)`);
    }
    const hidden = tf.tidy(() => {
      const flat = tf.reshape(ids, [b * t]);
      const tokens = this.lm_head.weight.rows(flat as tf.Tensor1D); // [B·T, C]
      const positions = tf.gather(this.wpe, tf.tile(tf.range(start, start + t, 1, 'int32'), [b])); // [B·T, C]
      let x = tf.add(tokens, positions) as tf.Tensor2D; // [B·T, C]
      const context = [causalMask(start, t)];
      this.blocks.forEach((blk, index) => {
        const block: DecoderBlock = (input, [mask]) => this.block(blk, input, { b, t, index, cache, dropout, mask: mask as tf.Tensor2D });
        x = options.runBlock ? options.runBlock(block, x, context, this.blockVariables(blk)) : block(x, context);
      });
      return layerNorm(x, this.ln_f.weight, this.ln_f.bias, c.layerNormEps) as tf.Tensor2D;
    });
    cache?.advance(t);
    return hidden;
  }

  /** One transformer block: x [B·T, C] -> [B·T, C]. */
  private block(block: Block, x: tf.Tensor2D, s: BlockState): tf.Tensor2D {
    return tf.tidy(() => {
      const c = this.config;
      const { b, t, dropout } = s;
      const h = layerNorm(x, block.ln_1.weight, block.ln_1.bias, c.layerNormEps) as tf.Tensor2D;
      const qkv = block.c_attn.apply(h, dropout); // [B·T, 3C]
      const [q, k, v] = tf.split(qkv, 3, 1).map((part) => splitHeads(part, b, t, c.numHeads, c.headDim));
      const entry = s.cache ? s.cache.append(s.index, k as tf.Tensor4D, v as tf.Tensor4D) : { keys: k as tf.Tensor4D, values: v as tf.Tensor4D };
      const context = attention(q as tf.Tensor4D, entry.keys, entry.values, s.mask); // [B, T, C]
      const y = tf.add(x, block.attn_c_proj.apply(tf.reshape(context, [b * t, c.hiddenSize]), dropout)) as tf.Tensor2D;
      const m = layerNorm(y, block.ln_2.weight, block.ln_2.bias, c.layerNormEps) as tf.Tensor2D;
      return tf.add(y, block.mlp_c_proj.apply(activate(block.c_fc.apply(m, dropout), c.activation) as tf.Tensor2D, dropout)) as tf.Tensor2D;
    });
  }

  private blockVariables(block: Block): tf.Variable[] {
    const { ln_1, ln_2, ...linears } = block;
    return variablesOf(Object.values(linears), [ln_1.weight, ln_1.bias, ln_2.weight, ln_2.bias]);
  }

  createCache(): KVCache {
    return new DecoderCache(this.config.numLayers);
  }

  /**
   * Every weight under its checkpoint name ('transformer.*'), in checkpoint layout. All are the model's own
   * tensors except 'transformer.wte.weight', a fresh transpose of the tied head: call this inside tf.tidy.
   */
  namedWeights(): Map<string, tf.Tensor> {
    return readAllWeights(this.weights());
  }

  weights(): Map<string, NamedWeight> {
    const out = new Map<string, NamedWeight>();
    out.set('transformer.wte.weight', linearWeight(this.lm_head));
    for (const [name, t] of this.others) out.set(name, ownTensor(t));
    for (const [path, layer] of this.linears) {
      if (layer === this.lm_head) continue;
      out.set(`${path}.weight`, linearWeight(layer));
      if (layer.bias) out.set(`${path}.bias`, ownTensor(layer.bias));
    }
    return out;
  }

  trainableVariables(): Map<string, tf.Variable> {
    return collectVariables(this.linears, this.others);
  }

  parameterCount(): number {
    return countParameters(this.linears, this.others);
  }

  dispose(): void {
    disposeWeights(this.linears, this.others);
  }
}
