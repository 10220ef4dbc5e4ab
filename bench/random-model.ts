/**
 * Random-weight Hugging Face folders of real model shapes for the benchmarks: config.json as the hub ships it and
 * one model.safetensors written tensor by tensor (a 1.5B-parameter BF16 file never sits in memory whole), weights
 * uniform with std 0.02 (transformers' initializer_range), norms at 1, biases at 0. Folders are cached by shape
 * under the system temp folder and reused; nothing here is committed.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensors, type WritableTensor } from '../main/engine/io/safetensors';

export interface Qwen2Shape {
  readonly name: string;
  readonly hidden: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly intermediate: number;
  readonly vocab: number;
}

/** Qwen/Qwen2.5-0.5B's config.json shape (tied head, q/k/v bias). */
export const QWEN25_05B: Qwen2Shape = { name: 'qwen2.5-0.5b', hidden: 896, layers: 24, heads: 14, kvHeads: 2, intermediate: 4864, vocab: 151936 };
/** Qwen/Qwen2.5-1.5B's. */
export const QWEN25_15B: Qwen2Shape = { name: 'qwen2.5-1.5b', hidden: 1536, layers: 28, heads: 12, kvHeads: 2, intermediate: 8960, vocab: 151936 };

export function qwen2Config(s: Qwen2Shape): Record<string, unknown> {
  return {
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_act: 'silu', hidden_size: s.hidden,
    intermediate_size: s.intermediate, num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kvHeads,
    max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true, use_sliding_window: false,
    sliding_window: 32768, vocab_size: s.vocab, bos_token_id: 151643, eos_token_id: 151643, torch_dtype: 'bfloat16', initializer_range: 0.02,
  };
}

/** Tensor name -> shape, in the checkpoint's layout ([out, in] for linears). */
export function qwen2Tensors(s: Qwen2Shape): Map<string, number[]> {
  const d = s.hidden / s.heads;
  const shapes = new Map<string, number[]>([['model.embed_tokens.weight', [s.vocab, s.hidden]], ['model.norm.weight', [s.hidden]]]);
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    shapes.set(`${p}.input_layernorm.weight`, [s.hidden]);
    shapes.set(`${p}.post_attention_layernorm.weight`, [s.hidden]);
    shapes.set(`${p}.self_attn.q_proj.weight`, [s.heads * d, s.hidden]);
    shapes.set(`${p}.self_attn.q_proj.bias`, [s.heads * d]);
    shapes.set(`${p}.self_attn.k_proj.weight`, [s.kvHeads * d, s.hidden]);
    shapes.set(`${p}.self_attn.k_proj.bias`, [s.kvHeads * d]);
    shapes.set(`${p}.self_attn.v_proj.weight`, [s.kvHeads * d, s.hidden]);
    shapes.set(`${p}.self_attn.v_proj.bias`, [s.kvHeads * d]);
    shapes.set(`${p}.self_attn.o_proj.weight`, [s.hidden, s.heads * d]);
    shapes.set(`${p}.mlp.gate_proj.weight`, [s.intermediate, s.hidden]);
    shapes.set(`${p}.mlp.up_proj.weight`, [s.intermediate, s.hidden]);
    shapes.set(`${p}.mlp.down_proj.weight`, [s.hidden, s.intermediate]);
  }
  return shapes;
}

export function parameterCount(s: Qwen2Shape): number {
  let n = 0;
  for (const shape of qwen2Tensors(s).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/** Uniform values in [-a, a] (std a/√3 = 0.02) from a xorshift stream; norms 1, biases 0. */
function randomValues(name: string, count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  if (name.includes('norm')) return out.fill(1);
  if (name.endsWith('.bias')) return out;
  const a = 0.02 * Math.sqrt(3);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = ((x >>> 0) / 4294967296 * 2 - 1) * a;
  }
  return out;
}

/**
 * Writes `dir`: config.json and a BF16 model.safetensors of random values for `tensors` (name -> shape), each
 * tensor's values made only when the writer reaches it, so a 1.5B-parameter file never sits in memory whole.
 */
export function writeRandomFolder(dir: string, tensors: Iterable<readonly [string, readonly number[]]>, config: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  const entries = new Map<string, WritableTensor>([...tensors].map(([name, shape], i) => [name, {
    dtype: 'BF16', shape, data: () => randomValues(name, shape.reduce((a, b) => a * b, 1), 0x9e3779b9 ^ (i + 1)),
  }]));
  writeSafetensors(join(dir, 'model.safetensors'), entries, { format: 'pt' });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, torch_dtype: 'bfloat16' }, null, 2));
}

/** Writes the folder (config.json, model.safetensors in BF16) unless a complete one is cached; returns its path. */
export function randomQwen2Folder(s: Qwen2Shape, root = join(tmpdir(), 'lorasmith-bench-models')): string {
  const dir = join(root, `${s.name}-h${s.hidden}-l${s.layers}-f${s.intermediate}-v${s.vocab}-bf16`);
  if (existsSync(join(dir, 'model.safetensors')) && existsSync(join(dir, 'config.json'))) return dir;
  rmSync(dir, { recursive: true, force: true });
  writeRandomFolder(dir, qwen2Tensors(s), qwen2Config(s));
  return dir;
}
