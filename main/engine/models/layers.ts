/**
 * The building blocks the architectures share: norms, activations, rotary embeddings and causal attention
 * (full or sliding-window).
 * Shapes: B batch, T new positions, S positions attended (cache + new), H heads, Hkv key/value heads, D head dim.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FUSED_KERNELS, fusedAttention, fusedRmsNorm, fusedRotary, fusedSwiGLU, hasFusedKernel } from '../backend/fused-ops';
import { ModelIoError } from '../io/errors';
import { TensorWeight } from '../backend/frozen';
import type { LinearLayer } from '../lora/linear';

/** x [..., C] -> [..., C]; as torch.nn.LayerNorm (biased variance). */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor1D, bias: tf.Tensor1D, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), weight), bias);
  });
}

/** x [..., C] -> [..., C]; LlamaRMSNorm: x / sqrt(mean(x²) + eps) · weight. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  if (hasFusedKernel(FUSED_KERNELS.rmsNorm)) return fusedRmsNorm(x, weight, eps);
  return tf.tidy(() => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), weight));
}

export type Activation = 'gelu_new' | 'gelu' | 'relu' | 'silu';

export function parseActivation(name: string, source: string, key: string): Activation {
  const aliases: Record<string, Activation> = {
    gelu_new: 'gelu_new',
    gelu_pytorch_tanh: 'gelu_new',
    gelu_fast: 'gelu_new',
    gelu: 'gelu',
    relu: 'relu',
    silu: 'silu',
    swish: 'silu',
  };
  const act = aliases[name];
  if (!act) throw new ModelIoError('UNSUPPORTED_MODEL', `${source}: "${key}": activation '${name}' is not supported (${Object.keys(aliases).join(', ')})`);
  return act;
}

export function activate(x: tf.Tensor, act: Activation): tf.Tensor {
  return tf.tidy(() => {
    switch (act) {
      case 'gelu_new': {
        // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), GPT-2's tanh approximation
        const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
        return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
      }
      case 'gelu':
        return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
      case 'relu':
        return tf.relu(x);
      case 'silu':
        return tf.mul(x, tf.sigmoid(x));
    }
  });
}

/** The gated MLP's product act(gate)·up (SwiGLU for silu), gate and up [N, F]. */
export function gatedActivation(gate: tf.Tensor, up: tf.Tensor, act: Activation): tf.Tensor {
  if (act === 'silu' && hasFusedKernel(FUSED_KERNELS.swiglu)) return fusedSwiGLU(gate, up);
  return tf.tidy(() => tf.mul(activate(gate, act), up));
}

/**
 * cos and signed sin tables [T, D] for positions start..start+T-1 in the rotate-half layout (the D/2
 * frequencies twice), computed in float64 and rounded once. The sin table carries rotate_half's sign
 * (-sin on the first half) so applying it needs no negation. `scale` multiplies both (longrope's attention factor).
 */
export function rotaryTables(invFreq: Float64Array, start: number, length: number, scale = 1): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const half = invFreq.length;
  const dim = half * 2;
  const cos = new Float32Array(length * dim);
  const sin = new Float32Array(length * dim);
  for (let t = 0; t < length; t++) {
    for (let i = 0; i < half; i++) {
      const angle = (start + t) * (invFreq[i] as number);
      const c = Math.cos(angle) * scale;
      const s = Math.sin(angle) * scale;
      cos[t * dim + i] = c;
      cos[t * dim + half + i] = c;
      sin[t * dim + i] = -s;
      sin[t * dim + half + i] = s;
    }
  }
  return { cos: tf.tensor2d(cos, [length, dim]), sin: tf.tensor2d(sin, [length, dim]) };
}

/**
 * x [B, H, T, D] -> x·cos + rotate_half(x)·sin with rotate_half(x) = [-x2, x1] (Hugging Face's convention);
 * the sign lives in the signed sin table: [x2, x1]·[-sin, sin].
 */
export function applyRotary(x: tf.Tensor4D, cos: tf.Tensor2D, signedSin: tf.Tensor2D): tf.Tensor4D {
  if (hasFusedKernel(FUSED_KERNELS.rotary)) return fusedRotary(x, cos, signedSin) as tf.Tensor4D;
  return tf.tidy(() => {
    const half = (x.shape[3] as number) / 2;
    const [x1, x2] = tf.split(x, [half, half], 3);
    const swapped = tf.concat([x2 as tf.Tensor, x1 as tf.Tensor], 3);
    return tf.add(tf.mul(x, cos), tf.mul(swapped, signedSin)) as tf.Tensor4D;
  });
}

/**
 * Additive mask [T, S]: T new queries against S keys that end at the last new query. Query i sees key s when the
 * key is not in its future and, under a sliding window W, fewer than W positions back (Hugging Face's
 * `kv_idx > q_idx − sliding_window`).
 */
export function attentionMask(queries: number, keys: number, window: number | null = null): tf.Tensor2D {
  const data = new Float32Array(queries * keys);
  for (let i = 0; i < queries; i++) {
    for (let s = 0; s < keys; s++) {
      const back = i + keys - queries - s; // how far key s lies behind query i
      if (back < 0 || (window !== null && back >= window)) data[i * keys + s] = -1e9;
    }
  }
  return tf.tensor2d(data, [queries, keys]);
}

/** Additive mask [T, S = start + T]: query t (absolute position start + t) sees keys 0..start+t. */
export function causalMask(start: number, length: number): tf.Tensor2D {
  return attentionMask(length, start + length);
}

export interface AttentionOptions {
  /** Multiplies q·kᵀ: 1/√D by default, or Gemma's query_pre_attn_scalar^−½. */
  readonly scale?: number;
  /** Sliding window W (each query sees itself and W − 1 keys back); the mask must then be attentionMask's band. */
  readonly window?: number | null;
  /** Gemma 2's soft cap on the scores: cap·tanh(scores / cap). */
  readonly softcap?: number | null;
}

/**
 * Scaled dot-product attention with grouped-query heads. Query head h uses kv head h / rep (HF's repeat_kv
 * order), so the queries are regrouped per kv head instead of copying keys and values rep times.
 * q [B, H, T, D], k and v [B, Hkv, S, D] (the T new positions last of S), mask [T, S] -> [B, T, H·D]. The fused
 * kernel, where the backend has it, applies the plain causal rule itself: it serves whenever no key lies outside
 * the window (S ≤ W) and no soft cap applies; otherwise the composed ops below add the mask.
 */
export function attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor2D, options: AttentionOptions = {}): tf.Tensor3D {
  const [b, h, t, d] = q.shape;
  const [, hkv, s] = k.shape;
  const scale = options.scale ?? 1 / Math.sqrt(d);
  const softcap = options.softcap ?? null;
  const windowed = options.window != null && s > options.window;
  if (!windowed && softcap === null && hasFusedKernel(FUSED_KERNELS.attention)) return fusedAttention(q, k, v, scale);
  return tf.tidy(() => {
    const rep = h / hkv;
    const grouped = rep === 1 ? q : tf.reshape(q, [b, hkv, rep * t, d]); // [B, Hkv, rep·T, D]
    let scores = tf.mul(tf.matMul(grouped, k, false, true), scale); // [B, Hkv, rep·T, S]
    if (softcap !== null) scores = tf.mul(tf.tanh(tf.div(scores, softcap)), softcap);
    scores = rep === 1 ? tf.add(scores, mask) : tf.reshape(tf.add(tf.reshape(scores, [b, hkv, rep, t, s]), mask), [b, hkv, rep * t, s]);
    const context = tf.reshape(tf.matMul(tf.softmax(scores, -1), v), [b, h, t, d]); // [B, H, T, D]
    // With one new position (decoding), [B, H, 1, D] -> [B, 1, H·D] is a reshape, not a transpose.
    return (t === 1 ? tf.reshape(context, [b, t, h * d]) : tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [b, t, h * d])) as tf.Tensor3D;
  });
}

/** [B, T, H·D] -> [B, H, T, D] */
export function splitHeads(x: tf.Tensor, b: number, t: number, heads: number, headDim: number): tf.Tensor4D {
  if (t === 1) return tf.reshape(x, [b, heads, 1, headDim]) as tf.Tensor4D;
  return tf.transpose(tf.reshape(x, [b, t, heads, headDim]), [0, 2, 1, 3]) as tf.Tensor4D;
}

/**
 * The Variables among `tensors` and the linears' weights, biases and LoRA A/B: what may train in a block or head
 * (LoRA: the adapters; full fine-tuning: every weight), for a BlockRunner or OutputHead.
 */
export function variablesOf(linears: readonly LinearLayer[], tensors: readonly tf.Tensor[]): tf.Variable[] {
  const found: tf.Tensor[] = [...tensors];
  for (const layer of linears) {
    if (layer.weight instanceof TensorWeight) found.push(layer.weight.tensor); // a stored weight never trains
    if (layer.bias) found.push(layer.bias);
    for (const adapter of layer.adapters.values()) found.push(adapter.At, adapter.Bt);
  }
  return found.filter((t): t is tf.Variable => t instanceof tf.Variable);
}
