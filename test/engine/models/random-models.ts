/** Tiny random Hugging Face model folders written to disk for tests (config.json + model.safetensors). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, type WritableTensor } from '../../../main/engine/io/safetensors';
import type { Weights } from './float64-reference';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

export interface BuiltModel {
  dir: string;
  /** The exact float32 values written, as float64, for the reference. */
  weights: Weights;
}

/** float32 -> bfloat16 -> float32, round to nearest even (as torch's .to(torch.bfloat16)). */
export function roundToBf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const bits = u[0] as number;
  u[0] = ((bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000) >>> 0;
  return f[0] as number;
}

interface WriteOptions {
  /** Norm weights are 1 + noise (Llama's w) or noise around 0 (Gemma's offsets from one). */
  normCentre?: 0 | 1;
  /** Storage type of every tensor (default F32); BF16 values are rounded before the reference sees them. */
  dtype?: 'F32' | 'BF16';
  /** Tensors stored as BF16 whatever `dtype` says. */
  bf16?: readonly string[];
}

function write(dir: string, config: object, shapes: Record<string, number[]>, seed: number, scale = 0.5, options: WriteOptions = {}): BuiltModel {
  mkdirSync(dir, { recursive: true });
  const rand = lcg(seed);
  const tensors: Record<string, WritableTensor> = {};
  const weights: Weights = new Map();
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = /norm|ln_/.test(name) && name.endsWith('weight');
    for (let i = 0; i < n; i++) data[i] = isNorm ? (options.normCentre ?? 1) + rand() * 0.2 : rand() * scale;
    const bf16 = options.dtype === 'BF16' || (options.bf16?.includes(name) ?? false);
    if (bf16) for (let i = 0; i < n; i++) data[i] = roundToBf16(data[i] as number);
    tensors[name] = { dtype: bf16 ? 'BF16' : 'F32', shape, data };
    weights.set(name, { shape, data: Float64Array.from(data) });
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  return { dir, weights };
}

export interface LlamaShape {
  modelType?: 'llama' | 'qwen2' | 'mistral';
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  vocab: number;
  tied: boolean;
  ropeScaling?: Record<string, unknown> | null;
  ropeTheta?: number;
  /** Storage type of every tensor (default F32); BF16 values are rounded before the reference sees them. */
  dtype?: 'F32' | 'BF16';
  /** config.json fields added as given (sliding_window, use_sliding_window, max_window_layers ...). */
  extra?: Record<string, unknown>;
  /** Llama's attention_bias (q, k, v and o) and mlp_bias, written to config.json with their tensors. */
  attentionBias?: boolean;
  mlpBias?: boolean;
}

export function buildLlama(dir: string, s: LlamaShape, seed = 1): BuiltModel {
  const d = (s.extra?.head_dim as number | undefined) ?? s.hidden / s.heads;
  const qkvBias = s.modelType === 'qwen2';
  const shapes: Record<string, number[]> = { 'model.embed_tokens.weight': [s.vocab, s.hidden], 'model.norm.weight': [s.hidden] };
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    Object.assign(shapes, {
      [`${p}.input_layernorm.weight`]: [s.hidden],
      [`${p}.post_attention_layernorm.weight`]: [s.hidden],
      [`${p}.self_attn.q_proj.weight`]: [s.heads * d, s.hidden],
      [`${p}.self_attn.k_proj.weight`]: [s.kvHeads * d, s.hidden],
      [`${p}.self_attn.v_proj.weight`]: [s.kvHeads * d, s.hidden],
      [`${p}.self_attn.o_proj.weight`]: [s.hidden, s.heads * d],
      [`${p}.mlp.gate_proj.weight`]: [s.intermediate, s.hidden],
      [`${p}.mlp.up_proj.weight`]: [s.intermediate, s.hidden],
      [`${p}.mlp.down_proj.weight`]: [s.hidden, s.intermediate],
    });
    if (qkvBias || s.attentionBias) {
      Object.assign(shapes, {
        [`${p}.self_attn.q_proj.bias`]: [s.heads * d],
        [`${p}.self_attn.k_proj.bias`]: [s.kvHeads * d],
        [`${p}.self_attn.v_proj.bias`]: [s.kvHeads * d],
      });
    }
    if (s.attentionBias) shapes[`${p}.self_attn.o_proj.bias`] = [s.hidden];
    if (s.mlpBias) {
      Object.assign(shapes, {
        [`${p}.mlp.gate_proj.bias`]: [s.intermediate],
        [`${p}.mlp.up_proj.bias`]: [s.intermediate],
        [`${p}.mlp.down_proj.bias`]: [s.hidden],
      });
    }
  }
  if (!s.tied) shapes['lm_head.weight'] = [s.vocab, s.hidden];
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: s.modelType ?? 'llama',
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    hidden_act: 'silu',
    max_position_embeddings: 128,
    rms_norm_eps: 1e-5,
    rope_theta: s.ropeTheta ?? 10000,
    rope_scaling: s.ropeScaling ?? null,
    tie_word_embeddings: s.tied,
    vocab_size: s.vocab,
    bos_token_id: 1,
    eos_token_id: 2,
    ...(s.attentionBias ? { attention_bias: true } : {}),
    ...(s.mlpBias ? { mlp_bias: true } : {}),
    ...s.extra,
  };
  return write(dir, config, shapes, seed, 0.5, { dtype: s.dtype });
}

export interface DecoderShape {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  tied: boolean;
  /** config.json fields added as given. */
  extra?: Record<string, unknown>;
}

/** One layer's attention and MLP weights in the nn.Linear layout [out, in] of the checkpoints. */
function projections(p: string, s: DecoderShape, fused: boolean): Record<string, number[]> {
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  if (fused) {
    return {
      [`${p}.self_attn.qkv_proj.weight`]: [q + 2 * kv, s.hidden],
      [`${p}.self_attn.o_proj.weight`]: [s.hidden, q],
      [`${p}.mlp.gate_up_proj.weight`]: [2 * s.intermediate, s.hidden],
      [`${p}.mlp.down_proj.weight`]: [s.hidden, s.intermediate],
    };
  }
  return {
    [`${p}.self_attn.q_proj.weight`]: [q, s.hidden],
    [`${p}.self_attn.k_proj.weight`]: [kv, s.hidden],
    [`${p}.self_attn.v_proj.weight`]: [kv, s.hidden],
    [`${p}.self_attn.o_proj.weight`]: [s.hidden, q],
    [`${p}.mlp.gate_proj.weight`]: [s.intermediate, s.hidden],
    [`${p}.mlp.up_proj.weight`]: [s.intermediate, s.hidden],
    [`${p}.mlp.down_proj.weight`]: [s.hidden, s.intermediate],
  };
}

function commonConfig(s: DecoderShape): Record<string, unknown> {
  return {
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.headDim,
    max_position_embeddings: 128,
    tie_word_embeddings: s.tied,
    vocab_size: s.vocab,
    bos_token_id: 1,
    eos_token_id: 2,
  };
}

/** A Qwen3ForCausalLM folder: q_norm / k_norm per layer, head_dim apart from hidden/heads. */
export function buildQwen3(dir: string, s: DecoderShape, seed = 3): BuiltModel {
  const shapes: Record<string, number[]> = { 'model.embed_tokens.weight': [s.vocab, s.hidden], 'model.norm.weight': [s.hidden] };
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    Object.assign(shapes, projections(p, s, false), {
      [`${p}.input_layernorm.weight`]: [s.hidden],
      [`${p}.post_attention_layernorm.weight`]: [s.hidden],
      [`${p}.self_attn.q_norm.weight`]: [s.headDim],
      [`${p}.self_attn.k_norm.weight`]: [s.headDim],
    });
  }
  if (!s.tied) shapes['lm_head.weight'] = [s.vocab, s.hidden];
  const config = {
    architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', hidden_act: 'silu', rms_norm_eps: 1e-6, rope_theta: 1000000,
    rope_scaling: null, attention_bias: false, use_sliding_window: false, sliding_window: null, max_window_layers: s.layers,
    ...commonConfig(s), ...s.extra,
  };
  return write(dir, config, shapes, seed);
}

/** A Phi3ForCausalLM folder: fused qkv_proj and gate_up_proj, untied head. */
export function buildPhi3(dir: string, s: DecoderShape, seed = 4): BuiltModel {
  const shapes: Record<string, number[]> = {
    'model.embed_tokens.weight': [s.vocab, s.hidden], 'model.norm.weight': [s.hidden], 'lm_head.weight': [s.vocab, s.hidden],
  };
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    Object.assign(shapes, projections(p, s, true), { [`${p}.input_layernorm.weight`]: [s.hidden], [`${p}.post_attention_layernorm.weight`]: [s.hidden] });
  }
  const config = {
    architectures: ['Phi3ForCausalLM'], model_type: 'phi3', hidden_act: 'silu', rms_norm_eps: 1e-5, rope_theta: 10000,
    rope_scaling: null, original_max_position_embeddings: 128, ...commonConfig(s), tie_word_embeddings: false, ...s.extra,
  };
  return write(dir, config, shapes, seed);
}

/**
 * A Gemma2ForCausalLM or Gemma3ForCausalLM (gemma3_text) folder: four norms per layer stored as offsets from
 * one, q_norm / k_norm for Gemma 3, tied head. `bf16` names tensors stored as BF16.
 */
export function buildGemma(dir: string, version: 2 | 3, s: DecoderShape, seed = 5, bf16: readonly string[] = []): BuiltModel {
  const shapes: Record<string, number[]> = { 'model.embed_tokens.weight': [s.vocab, s.hidden], 'model.norm.weight': [s.hidden] };
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    Object.assign(shapes, projections(p, s, false));
    for (const norm of ['input_layernorm', 'post_attention_layernorm', 'pre_feedforward_layernorm', 'post_feedforward_layernorm']) {
      shapes[`${p}.${norm}.weight`] = [s.hidden];
    }
    if (version === 3) Object.assign(shapes, { [`${p}.self_attn.q_norm.weight`]: [s.headDim], [`${p}.self_attn.k_norm.weight`]: [s.headDim] });
  }
  const config = {
    architectures: [version === 3 ? 'Gemma3ForCausalLM' : 'Gemma2ForCausalLM'],
    model_type: version === 3 ? 'gemma3_text' : 'gemma2',
    hidden_activation: 'gelu_pytorch_tanh',
    rms_norm_eps: 1e-6,
    rope_theta: version === 3 ? 1000000 : 10000,
    attention_bias: false,
    ...commonConfig(s),
    ...s.extra,
  };
  return write(dir, config, shapes, seed, 0.5, { normCentre: 0, bf16 });
}

export function buildGpt2(dir: string, s: { embd: number; layers: number; heads: number; vocab: number; positions: number }, seed = 2): BuiltModel {
  const shapes: Record<string, number[]> = {
    'transformer.wte.weight': [s.vocab, s.embd],
    'transformer.wpe.weight': [s.positions, s.embd],
    'transformer.ln_f.weight': [s.embd],
    'transformer.ln_f.bias': [s.embd],
  };
  for (let l = 0; l < s.layers; l++) {
    const p = `transformer.h.${l}`;
    Object.assign(shapes, {
      [`${p}.ln_1.weight`]: [s.embd],
      [`${p}.ln_1.bias`]: [s.embd],
      [`${p}.ln_2.weight`]: [s.embd],
      [`${p}.ln_2.bias`]: [s.embd],
      [`${p}.attn.c_attn.weight`]: [s.embd, 3 * s.embd],
      [`${p}.attn.c_attn.bias`]: [3 * s.embd],
      [`${p}.attn.c_proj.weight`]: [s.embd, s.embd],
      [`${p}.attn.c_proj.bias`]: [s.embd],
      [`${p}.mlp.c_fc.weight`]: [s.embd, 4 * s.embd],
      [`${p}.mlp.c_fc.bias`]: [4 * s.embd],
      [`${p}.mlp.c_proj.weight`]: [4 * s.embd, s.embd],
      [`${p}.mlp.c_proj.bias`]: [s.embd],
    });
  }
  const config = {
    model_type: 'gpt2',
    activation_function: 'gelu_new',
    n_embd: s.embd,
    n_head: s.heads,
    n_layer: s.layers,
    n_positions: s.positions,
    vocab_size: s.vocab,
    layer_norm_epsilon: 1e-5,
    bos_token_id: 0,
    eos_token_id: 0,
  };
  return write(dir, config, shapes, seed);
}
