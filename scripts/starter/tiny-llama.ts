/**
 * A minimal Llama forward pass for pretraining the starter model with every weight trainable.
 *
 * The weights use Hugging Face's LlamaForCausalLM names and layouts (nn.Linear weights [out, in], rotate-half
 * RoPE, RMSNorm, SiLU-gated MLP, grouped-query attention, tied embeddings), so the checkpoint it writes loads in
 * the engine's llama loader and in transformers unchanged. Embedding lookups are one-hot matmuls because the
 * wasm backend has no UnsortedSegmentSum kernel, which the gradient of tf.gather needs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../main/engine/train/rng';

export interface StarterConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly maxPositions: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
}

/** config.json in Hugging Face's LlamaConfig vocabulary. */
export function hfConfigJson(config: StarterConfig, special: { bos: number; eos: number[]; pad: number }): object {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.hiddenSize / config.numHeads,
    max_position_embeddings: config.maxPositions,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: true,
    bos_token_id: special.bos,
    eos_token_id: special.eos,
    pad_token_id: special.pad,
    torch_dtype: 'float16',
  };
}

/** Every weight's checkpoint name and shape, in checkpoint order. */
export function weightShapes(c: StarterConfig): [string, number[]][] {
  const headDim = c.hiddenSize / c.numHeads;
  const shapes: [string, number[]][] = [['model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]]];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    shapes.push(
      [`${p}.input_layernorm.weight`, [c.hiddenSize]],
      [`${p}.self_attn.q_proj.weight`, [c.numHeads * headDim, c.hiddenSize]],
      [`${p}.self_attn.k_proj.weight`, [c.numKvHeads * headDim, c.hiddenSize]],
      [`${p}.self_attn.v_proj.weight`, [c.numKvHeads * headDim, c.hiddenSize]],
      [`${p}.self_attn.o_proj.weight`, [c.hiddenSize, c.numHeads * headDim]],
      [`${p}.post_attention_layernorm.weight`, [c.hiddenSize]],
      [`${p}.mlp.gate_proj.weight`, [c.intermediateSize, c.hiddenSize]],
      [`${p}.mlp.up_proj.weight`, [c.intermediateSize, c.hiddenSize]],
      [`${p}.mlp.down_proj.weight`, [c.hiddenSize, c.intermediateSize]],
    );
  }
  shapes.push(['model.norm.weight', [c.hiddenSize]]);
  return shapes;
}

function gaussian(rng: Rng): number {
  // Box-Muller over the seeded generator, so initialisation does not depend on tfjs's random state.
  const u = Math.max(rng.next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/** GPT-2-style init: N(0, 0.02), residual output projections scaled by 1/sqrt(2 * layers), norms at 1. */
export function initWeights(c: StarterConfig, seed: number): Map<string, tf.Variable> {
  const rng = new Rng(seed);
  const weights = new Map<string, tf.Variable>();
  for (const [name, shape] of weightShapes(c)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(size);
    if (name.endsWith('norm.weight')) {
      values.fill(1);
    } else {
      const residual = name.endsWith('o_proj.weight') || name.endsWith('down_proj.weight');
      const std = residual ? 0.02 / Math.sqrt(2 * c.numLayers) : 0.02;
      for (let i = 0; i < size; i++) values[i] = gaussian(rng) * std;
    }
    weights.set(name, tf.variable(tf.tensor(values, shape), true, name));
  }
  return weights;
}

function weight(weights: Map<string, tf.Tensor>, name: string): tf.Tensor2D {
  const w = weights.get(name);
  if (!w) throw new Error(`missing weight ${name}`);
  return w as tf.Tensor2D;
}

function rmsNorm(x: tf.Tensor2D, w: tf.Tensor, eps: number): tf.Tensor2D {
  // x: [N, H]
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), w);
}

/** cos and sin tables [T, headDim] for positions 0..T-1 (HF's rotate-half layout: frequencies repeated twice). */
export function ropeTables(seqLen: number, headDim: number, theta: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const half = headDim / 2;
  const cos = new Float32Array(seqLen * headDim);
  const sin = new Float32Array(seqLen * headDim);
  for (let t = 0; t < seqLen; t++) {
    for (let i = 0; i < half; i++) {
      const angle = t * Math.pow(theta, (-2 * i) / headDim);
      for (const j of [i, i + half]) {
        cos[t * headDim + j] = Math.cos(angle);
        sin[t * headDim + j] = Math.sin(angle);
      }
    }
  }
  return { cos: tf.tensor2d(cos, [seqLen, headDim]), sin: tf.tensor2d(sin, [seqLen, headDim]) };
}

function applyRope(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  // x: [B, heads, T, D]; rotate_half(x) = concat(-x2, x1)
  const half = x.shape[3] / 2;
  const x1 = tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, half]);
  const x2 = tf.slice(x, [0, 0, 0, half], [-1, -1, -1, half]);
  const rotated = tf.concat([tf.neg(x2), x1], 3);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
}

function heads(x: tf.Tensor2D, batch: number, seqLen: number, count: number, headDim: number): tf.Tensor4D {
  // [B*T, count*D] -> [B, count, T, D]
  return tf.transpose(tf.reshape(x, [batch, seqLen, count, headDim]), [0, 2, 1, 3]);
}

function repeatKv(x: tf.Tensor4D, times: number): tf.Tensor4D {
  if (times === 1) return x;
  // [B, kv, T, D] -> [B, kv*times, T, D], head h reads kv head floor(h / times) as HF's repeat_kv does.
  const [b, kv, t, d] = x.shape;
  const expanded = tf.expandDims(x, 2);
  return tf.reshape(tf.concat(new Array<tf.Tensor>(times).fill(expanded), 2), [b, kv * times, t, d]);
}

export interface ForwardContext {
  readonly cos: tf.Tensor2D;
  readonly sin: tf.Tensor2D;
  /** Additive causal mask [T, T]: 0 on and below the diagonal, -1e9 above. */
  readonly mask: tf.Tensor2D;
}

export function forwardContext(c: StarterConfig, seqLen: number): ForwardContext {
  const { cos, sin } = ropeTables(seqLen, c.hiddenSize / c.numHeads, c.ropeTheta);
  const mask = tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([seqLen, seqLen]), -1, 0)), -1e9));
  return { cos, sin, mask: mask as tf.Tensor2D };
}

function attention(x: tf.Tensor2D, w: Map<string, tf.Tensor>, p: string, c: StarterConfig, ctx: ForwardContext,
  batch: number, seqLen: number): tf.Tensor2D {
  const headDim = c.hiddenSize / c.numHeads;
  const q = applyRope(heads(tf.matMul(x, weight(w, `${p}.q_proj.weight`), false, true), batch, seqLen, c.numHeads,
    headDim), ctx.cos, ctx.sin);
  const k = applyRope(heads(tf.matMul(x, weight(w, `${p}.k_proj.weight`), false, true), batch, seqLen, c.numKvHeads,
    headDim), ctx.cos, ctx.sin);
  const v = heads(tf.matMul(x, weight(w, `${p}.v_proj.weight`), false, true), batch, seqLen, c.numKvHeads, headDim);
  const rep = c.numHeads / c.numKvHeads;
  const scores = tf.add(tf.mul(tf.matMul(q, repeatKv(k, rep), false, true), 1 / Math.sqrt(headDim)), ctx.mask);
  const out = tf.matMul(tf.softmax(scores), repeatKv(v, rep)); // [B, H, T, D]
  const merged = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [batch * seqLen, c.numHeads * headDim]);
  return tf.matMul(merged, weight(w, `${p}.o_proj.weight`), false, true);
}

function mlp(x: tf.Tensor2D, w: Map<string, tf.Tensor>, p: string): tf.Tensor2D {
  const gate = tf.matMul(x, weight(w, `${p}.gate_proj.weight`), false, true);
  const up = tf.matMul(x, weight(w, `${p}.up_proj.weight`), false, true);
  const act = tf.mul(tf.mul(gate, tf.sigmoid(gate)), up);
  return tf.matMul(act, weight(w, `${p}.down_proj.weight`), false, true);
}

/** ids [B, T] -> logits [B*T, V]. */
export function forward(w: Map<string, tf.Tensor>, c: StarterConfig, ctx: ForwardContext, ids: tf.Tensor2D): tf.Tensor2D {
  const [batch, seqLen] = ids.shape;
  const embed = weight(w, 'model.embed_tokens.weight');
  // The wasm OneHot kernel ignores a float dtype, so build it as int32 and cast.
  let x: tf.Tensor2D = tf.matMul(tf.cast(tf.oneHot(tf.reshape(ids, [-1]), c.vocabSize), 'float32'), embed); // [B*T, H]
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    const h = rmsNorm(x, weight(w, `${p}.input_layernorm.weight`), c.rmsNormEps);
    x = tf.add(x, attention(h, w, `${p}.self_attn`, c, ctx, batch, seqLen));
    const h2 = rmsNorm(x, weight(w, `${p}.post_attention_layernorm.weight`), c.rmsNormEps);
    x = tf.add(x, mlp(h2, w, `${p}.mlp`));
  }
  const normed = rmsNorm(x, weight(w, 'model.norm.weight'), c.rmsNormEps);
  return tf.matMul(normed, embed, false, true);
}

/**
 * Mean next-token cross-entropy; targets [B, T] int32 with -1 where a position does not count. Computed in plain
 * loops over the logits' values (log-sum-exp per row; gradient softmax - onehot), which is several times faster
 * than the backends' generic element-wise kernels on [B*T, V] and needs no gather/segment-sum kernels.
 */
export function lossOf(logits: tf.Tensor2D, targets: tf.Tensor2D, vocabSize: number): tf.Scalar {
  const labels = targets.dataSync();
  const crossEntropy = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = inputs[0] as tf.Tensor;
    (inputs[1] as tf.GradSaveFunc)([x]);
    const values = x.dataSync() as Float32Array;
    const rows = values.length / vocabSize;
    let total = 0;
    let counted = 0;
    for (let r = 0; r < rows; r++) {
      const label = labels[r] as number;
      if (label < 0) continue;
      total += logSumExp(values, r * vocabSize, vocabSize) - (values[r * vocabSize + label] as number);
      counted++;
    }
    const count = Math.max(counted, 1);
    return {
      value: tf.scalar(total / count) as tf.Scalar,
      gradFunc: (dy: tf.Scalar, saved: tf.Tensor[]) => {
        const logitValues = (saved[0] as tf.Tensor).dataSync() as Float32Array;
        const grad = new Float32Array(logitValues.length);
        const scale = (dy.dataSync()[0] as number) / count;
        for (let r = 0; r < rows; r++) {
          const label = labels[r] as number;
          if (label < 0) continue;
          const offset = r * vocabSize;
          const lse = logSumExp(logitValues, offset, vocabSize);
          for (let v = 0; v < vocabSize; v++) grad[offset + v] = Math.exp((logitValues[offset + v] as number) - lse) * scale;
          grad[offset + label] = (grad[offset + label] as number) - scale;
        }
        return tf.tensor(grad, saved[0]?.shape);
      },
    };
  });
  return crossEntropy(logits) as tf.Scalar;
}

function logSumExp(values: Float32Array, offset: number, length: number): number {
  let max = -Infinity;
  for (let i = 0; i < length; i++) max = Math.max(max, values[offset + i] as number);
  let sum = 0;
  for (let i = 0; i < length; i++) sum += Math.exp((values[offset + i] as number) - max);
  return max + Math.log(sum);
}
