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

/** x rounded to bfloat16 (nearest even), as the file will hold it. */
function toBf16(x: number): number {
  const bits = new Uint32Array(new Float32Array([x]).buffer)[0] as number;
  return new Float32Array(new Uint32Array([(((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16) >>> 0]).buffer)[0] as number;
}

function write(dir: string, config: object, shapes: Record<string, number[]>, seed: number, scale = 0.5, dtype: 'F32' | 'BF16' = 'F32'): BuiltModel {
  mkdirSync(dir, { recursive: true });
  const rand = lcg(seed);
  const tensors: Record<string, WritableTensor> = {};
  const weights: Weights = new Map();
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = /norm|ln_/.test(name) && name.endsWith('weight');
    for (let i = 0; i < n; i++) data[i] = isNorm ? 1 + rand() * 0.2 : rand() * scale;
    if (dtype === 'BF16') data.forEach((v, i) => (data[i] = toBf16(v)));
    tensors[name] = { dtype, shape, data };
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
}

export function buildLlama(dir: string, s: LlamaShape, seed = 1): BuiltModel {
  const d = s.hidden / s.heads;
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
    if (qkvBias) {
      Object.assign(shapes, {
        [`${p}.self_attn.q_proj.bias`]: [s.heads * d],
        [`${p}.self_attn.k_proj.bias`]: [s.kvHeads * d],
        [`${p}.self_attn.v_proj.bias`]: [s.kvHeads * d],
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
  };
  return write(dir, config, shapes, seed, 0.5, s.dtype);
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
