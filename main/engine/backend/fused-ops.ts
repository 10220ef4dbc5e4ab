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
