/**
 * What every architecture (gpt2, llama family) offers the rest of the engine. LoRA, training, generation and
 * the adapter tools see models only through these types.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { LinearLayer } from '../lora/linear';

/** The normalized config of a causal LM, read from config.json by the architecture's loader. */
export interface ModelConfig {
  readonly modelType: string;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly intermediateSize: number;
  readonly maxPositions: number;
  readonly tieWordEmbeddings: boolean;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | null;
  /** config.json as read, for writing a merged model back out unchanged. */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** Describes one linear module that LoRA can target. */
export interface LinearSpec {
  /** Module path as in the checkpoint, without '.weight': 'model.layers.0.self_attn.q_proj', 'transformer.h.0.attn.c_attn'. */
  readonly path: string;
  /** Last path segment, as PEFT's target_modules suffixes match it: 'q_proj', 'c_attn'. */
  readonly name: string;
  readonly layer: number | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly groups: readonly ('attention' | 'mlp')[];
  /**
   * True where the checkpoint stores the weight as [in, out] (GPT-2 Conv1D), false for nn.Linear's [out, in].
   * PEFT's adapter_config fan_in_fan_out follows this.
   */
  readonly fanInFanOut: boolean;
}

/** Key/value cache for incremental decoding: per layer, keys and values of the positions seen so far. */
export interface KVCache {
  /** Number of positions already in the cache. */
  readonly length: number;
  dispose(): void;
}

export interface ForwardOptions {
  /** Continue from (and extend) this cache; the ids are then the new positions only. */
  readonly cache?: KVCache;
  /** Training mode: LoRA dropout is applied. */
  readonly training?: boolean;
  /** Runs each decoder block instead of calling it directly (training with activation recomputation: train/recompute.ts). */
  readonly runBlock?: BlockRunner;
}

/**
 * One decoder block as a function of its input x [N, C] -> [N, C] and the per-forward tensors it reads
 * (`context`: the causal mask, rotary tables), which it must take from its argument and not from the enclosing
 * scope, so that a runner can call it again after the forward pass has freed them.
 */
export type DecoderBlock = (x: tf.Tensor2D, context: readonly tf.Tensor[]) => tf.Tensor2D;

/**
 * Runs `block` on x with `context`; `variables` are every Variable the block reads (norm weights, linear weights
 * and biases in full fine-tuning, LoRA A and B), so a runner with a custom gradient can return their gradients.
 */
export type BlockRunner = (block: DecoderBlock, x: tf.Tensor2D, context: readonly tf.Tensor[], variables: readonly tf.Variable[]) => tf.Tensor2D;

/** The output head, separate from the blocks so the loss can run it on a few rows at a time (train/loss.ts). */
export interface OutputHead {
  /** hidden [N, C] (the final norm's output) -> logits [N, V]; `training` applies LoRA dropout. */
  logits(hidden: tf.Tensor2D, training?: boolean): tf.Tensor2D;
  /** Every Variable the head reads (its weight in full fine-tuning, LoRA A and B on lm_head). */
  variables(): tf.Variable[];
}

/** A weight under its checkpoint name: its shape in checkpoint layout, and its values when read. */
export interface NamedWeight {
  readonly shape: readonly number[];
  /** The values in checkpoint layout; may be a fresh tensor (a transpose, a stored weight converted): call inside tf.tidy. */
  read(): tf.Tensor;
}

export interface CausalLM {
  readonly config: ModelConfig;
  /** Every LoRA-targetable linear module, keyed by its path, in checkpoint order. */
  readonly linears: ReadonlyMap<string, LinearLayer>;
  /** ids: [B, T] int32 -> logits [B, T, V] float32. With a cache, positions continue from cache.length. */
  forward(ids: tf.Tensor2D, options?: ForwardOptions): tf.Tensor3D;
  /** ids [B, T] -> the head's input [B·T, C]; forward(ids) is head.logits of it, reshaped to [B, T, V]. */
  hiddenStates(ids: tf.Tensor2D, options?: ForwardOptions): tf.Tensor2D;
  readonly head: OutputHead;
  createCache(): KVCache;
  /**
   * Every weight under its checkpoint name, in the checkpoint's own layout (for export and full training).
   * Tensors whose layout differs from the model's (nn.Linear weights, a tied head) are fresh transposes:
   * call this inside tf.tidy, or dispose the entries that are not the model's own.
   */
  namedWeights(): Map<string, tf.Tensor>;
  /**
   * The same weights, each read only when asked (models/named-weights.ts): its shape in checkpoint layout costs
   * nothing, read() makes at most that one weight's float32 copy. Export reads a model this way.
   */
  weights(): Map<string, NamedWeight>;
  /**
   * The model's own Variables (loaded with trainable: true; empty otherwise), keyed by checkpoint name, in the
   * model's layout: linears as weightT [in, out] under '<path>.weight', the tied head under 'lm_head.weight'.
   * Allocates nothing. Optional so hand-made test models need not implement it.
   */
  trainableVariables?(): Map<string, tf.Variable>;
  parameterCount(): number;
  dispose(): void;
}
