/**
 * Ops that run as one fused kernel where the active backend has one registered (the native addon's, on wasm and
 * cpu: backend/native/fused-kernels.ts), each with its gradient written out. Callers ask `hasFusedKernel` first
 * and otherwise compose the op from plain tfjs ops (models/layers.ts, train/loss.ts), so results do not depend on
 * whether the addon loaded, only their speed does.
 *
 * Shapes: N rows, V vocabulary, T positions, D head dim, C channels.
 */
import * as tf from '@tensorflow/tfjs-core';

export const FUSED_KERNELS = {
  rotary: 'LorasmithRotary',
  swiglu: 'LorasmithSwiGLU',
  swigluGrad: 'LorasmithSwiGLUGrad',
  rmsNorm: 'LorasmithRmsNorm',
  rmsNormGrad: 'LorasmithRmsNormGrad',
  crossEntropy: 'LorasmithCrossEntropy',
  crossEntropyGrad: 'LorasmithCrossEntropyGrad',
  attention: 'LorasmithAttention',
  attentionGrad: 'LorasmithAttentionGrad',
} as const;

/** True when the active backend has the fused kernel `name` (one of FUSED_KERNELS). */
export function hasFusedKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

const run = (name: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap = {}): tf.Tensor | tf.Tensor[] =>
  tf.engine().runKernel(name, inputs, attrs);

/**
 * Rotary embedding in the rotate-half layout: x [..., T, D] -> x·cos + [x2, x1]·signedSin, with cos and signedSin
 * [T, D] (the sign of rotate_half folded into the sin table). Its gradient is the same map with the sin table's
 * halves swapped (x[j] reaches its partner's output through the partner's sin); for [−s, s] tables that is −sin.
 */
export function fusedRotary(x: tf.Tensor, cos: tf.Tensor2D, signedSin: tf.Tensor2D): tf.Tensor {
  // The tables are saved, not captured: the backward pass runs after the forward's tidy has disposed them.
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, save] = args as [tf.Tensor, tf.GradSaveFunc];
    save([cos, signedSin]);
    return {
      value: run(FUSED_KERNELS.rotary, { x: input, cos, sin: signedSin }) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [c, s] = saved as [tf.Tensor, tf.Tensor];
        const half = (s.shape[1] ?? 0) / 2;
        const swapped = tf.concat([tf.slice(s, [0, half], [-1, half]), tf.slice(s, [0, 0], [-1, half])], 1);
        return run(FUSED_KERNELS.rotary, { x: dy, cos: c, sin: swapped }) as tf.Tensor;
      },
    };
  });
  return op(x);
}

/** SwiGLU's product silu(gate)·up, gate and up of one shape. */
export function fusedSwiGLU(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [g, u, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([g, u]);
    return {
      value: run(FUSED_KERNELS.swiglu, { gate: g, up: u }) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [gs, us] = saved as [tf.Tensor, tf.Tensor];
        return run(FUSED_KERNELS.swigluGrad, { gate: gs, up: us, dy }) as tf.Tensor[];
      },
    };
  });
  return op(gate, up);
}

/** LlamaRMSNorm: x [..., C] / sqrt(mean(x²) + eps) · weight [C]. */
export function fusedRmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, w, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([input, w]);
    return {
      value: run(FUSED_KERNELS.rmsNorm, { x: input, weight: w }, { eps }) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor, tf.Tensor];
        return run(FUSED_KERNELS.rmsNormGrad, { x: xs, weight: ws, dy }, { eps }) as tf.Tensor[];
      },
    };
  });
  return op(x, weight);
}

/**
 * Per-row softmax cross-entropy: logits [N, V], labels [N] int32 -> nll [N] = logsumexp(logits) − logits[label].
 * The gradient, dy·(softmax − onehot), uses the forward's logsumexp instead of keeping softmax's [N, V].
 */
export function fusedCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const [nll, lse] = run(FUSED_KERNELS.crossEntropy, { logits: x, labels }) as [tf.Tensor1D, tf.Tensor1D];
    save([x, lse, labels]);
    return {
      value: nll,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, lses, ls] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        return run(FUSED_KERNELS.crossEntropyGrad, { logits: xs, lse: lses, labels: ls, coef: dy }) as tf.Tensor;
      },
    };
  });
  return op(logits) as tf.Tensor1D;
}

/**
 * Causal scaled dot-product attention with grouped-query heads (query head j reads kv head j / (H / Hkv)):
 * q [B, H, T, D], k and v [B, Hkv, S, D], the T new positions being the last of S -> [B, T, H·D]. One kernel does
 * q·kᵀ, the mask, softmax and ·v per head, writing heads side by side (no transpose); the softmax [B, H, T, S] is
 * kept for the gradient.
 */
export function fusedAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, scale: number): tf.Tensor3D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [qs, ks, vs, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const [out, probs] = run(FUSED_KERNELS.attention, { q: qs, k: ks, v: vs }, { scale }) as [tf.Tensor, tf.Tensor];
    save([qs, ks, vs, probs]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [q0, k0, v0, p0] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        return run(FUSED_KERNELS.attentionGrad, { q: q0, k: k0, v: v0, probs: p0, dy }, { scale }) as tf.Tensor[];
      },
    };
  });
  return op(q, k, v) as tf.Tensor3D;
}

/** How a frozen weight is held on a backend that keeps it at its stored precision (see fusedFrozenLinear). */
export type FrozenWeightFormat = 'F32' | 'F16' | 'BF16';

/**
 * The frozen linear with its LoRA pair in one kernel, on backends that keep frozen weights on the device at their
 * stored precision (webgpu: backend/webgpu/linear.ts). Not in FUSED_KERNELS: the native addon serves its frozen
 * weights through its own matMul kernels.
 */
export const FROZEN_LINEAR_KERNEL = 'LorasmithFrozenLinear';

export interface FrozenWeightTensor {
  /**
   * The stored matrix, row-major: float32 [rows, cols] for F32; for F16 / BF16 int32 words [ceil(rows·cols / 2)],
   * each holding two consecutive values, the first in the low half.
   */
  readonly data: tf.Tensor;
  readonly format: FrozenWeightFormat;
  /** 'in-out': stored [in, out] (LinearLayer's pre-transposed weights); 'out-in': nn.Linear's [out, in] (checkpoints). */
  readonly layout: 'in-out' | 'out-in';
  readonly inFeatures: number;
  readonly outFeatures: number;
}

/** A LoRA pair in LinearLayer's layout: At [in, r], Bt [r, out]; `scale` is scaling · mix weight. */
export interface LoraPair {
  readonly At: tf.Tensor2D;
  readonly Bt: tf.Tensor2D;
  readonly scale: number;
}

/** Attributes of FROZEN_LINEAR_KERNEL: the product is x·W or x·Wᵀ of the stored [rows, cols] matrix W. */
export interface FrozenLinearAttrs {
  readonly format: FrozenWeightFormat;
  readonly rows: number;
  readonly cols: number;
  readonly transposeWeight: boolean;
  /** Read the LoRA factor loraB [N, R] transposed (the gradient's dU·Atᵀ with At stored [in, r]). */
  readonly transposeLoraB: boolean;
  readonly scale: number;
}

/**
 * y = x·W + bias + scale·(loraX·At)·Bt, x [N, in] -> [N, out], W and bias frozen (no gradient), the gradient flowing
 * to x, At, Bt (and loraX, the LoRA input after dropout, when given apart from x). u = loraX·At is a plain matMul;
 * the kernel adds its ·Bt, the bias and the scale to the frozen product. The gradient reuses the kernel with W and
 * At read the other way: dx = dy·Wᵀ + dU·Atᵀ with dU = scale·dy·Btᵀ.
 */
export function fusedFrozenLinear(
  x: tf.Tensor2D, weight: FrozenWeightTensor, bias: tf.Tensor1D | null, lora: LoraPair | null, loraX?: tf.Tensor2D,
): tf.Tensor2D {
  const [rows, cols] = weight.layout === 'in-out' ? [weight.inFeatures, weight.outFeatures] : [weight.outFeatures, weight.inFeatures];
  const attrs = (forward: boolean, transposeLoraB: boolean, scale: number): tf.NamedAttrMap => ({
    format: weight.format, rows, cols,
    transposeWeight: forward === (weight.layout === 'out-in'), transposeLoraB, scale,
  } satisfies FrozenLinearAttrs);
  const separateLoraInput = lora !== null && loraX !== undefined && loraX !== x;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [xs, at, bt, lx] = args.slice(0, -1) as [tf.Tensor2D, tf.Tensor2D?, tf.Tensor2D?, tf.Tensor2D?];
    const u = lora ? tf.matMul(separateLoraInput ? (lx as tf.Tensor2D) : xs, at as tf.Tensor2D) : null; // [N, r]
    const inputs: tf.NamedTensorMap = { x: xs, weight: weight.data, ...(bias ? { bias } : {}), ...(u ? { loraU: u, loraB: bt as tf.Tensor } : {}) };
    const value = run(FROZEN_LINEAR_KERNEL, inputs, attrs(true, false, lora?.scale ?? 0)) as tf.Tensor2D;
    save(lora ? [weight.data, at as tf.Tensor, bt as tf.Tensor, u as tf.Tensor, separateLoraInput ? (lx as tf.Tensor) : xs] : [weight.data]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const w = saved[0] as tf.Tensor;
        if (!lora) return [run(FROZEN_LINEAR_KERNEL, { x: dy, weight: w }, attrs(false, false, 0)) as tf.Tensor];
        const [, a0, b0, u0, in0] = saved as [tf.Tensor, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        const dU = tf.mul(tf.matMul(dy as tf.Tensor2D, b0, false, true), lora.scale) as tf.Tensor2D; // [N, r]
        const dAt = tf.matMul(in0, dU, true, false); // [in, r]
        const dBt = tf.mul(tf.matMul(u0, dy as tf.Tensor2D, true, false), lora.scale); // [r, out]
        if (!separateLoraInput) {
          return [run(FROZEN_LINEAR_KERNEL, { x: dy, weight: w, loraU: dU, loraB: a0 }, attrs(false, true, 1)) as tf.Tensor, dAt, dBt];
        }
        const dx = run(FROZEN_LINEAR_KERNEL, { x: dy, weight: w }, attrs(false, false, 0)) as tf.Tensor;
        return [dx, dAt, dBt, tf.matMul(dU, a0, false, true)];
      },
    };
  });
  const inputs = lora ? [x, lora.At, lora.Bt, ...(separateLoraInput ? [loraX as tf.Tensor2D] : [])] : [x];
  return op(...inputs) as tf.Tensor2D;
}

/** One AdamW update in one kernel, on backends that have it (webgpu: a dispatch per output, where tfjs runs ~14). */
export const ADAMW_KERNEL = 'LorasmithAdamW';

export interface AdamWStep {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  /** Bias corrections 1 − β1^t and 1 − β2^t. */
  readonly correction1: number;
  readonly correction2: number;
}

/**
 * AdamW as train/optimizer.ts defines it, for one variable: p, g, m, v of one shape -> [m', v', p'] (fresh tensors;
 * the caller assigns them). No gradient: an update, not an op of the model.
 */
export function fusedAdamW(p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, step: AdamWStep): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return run(ADAMW_KERNEL, { p, g, m, v }, { ...step }) as [tf.Tensor, tf.Tensor, tf.Tensor];
}
