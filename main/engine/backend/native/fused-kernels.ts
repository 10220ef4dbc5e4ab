/**
 * tfjs kernels for the addon's fused elementwise work (native/src/fused.c), registered on wasm and cpu beside the
 * matMul ones. Each takes float32 (and int32 label/index) tensors and writes fresh outputs; the ops that call them,
 * with their gradients and their plain-tfjs fallbacks, are in ../fused-ops.ts. GatherV2 replaces the backend's own
 * for float32 gathers along one axis (wasm's copies one float at a time when the axis is not the first) and hands
 * everything else to the original.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FUSED_KERNELS } from '../fused-ops';
import type { NativeAddon, NativeFusedKernels } from './addon';
import { NativeKernelError } from './errors';
import type { TensorMemory } from './memory';

type KernelArgs = Parameters<tf.KernelFunc>[0];
type Fused = NativeAddon & NativeFusedKernels;

const sizeOf = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);

/**
 * Allocates the outputs, then takes every view (on wasm an allocation can grow the heap and detach views taken
 * before it). Throws when an input is not memory this backend's views can reach (these kernels have no fallback:
 * the ops only call them on float32/int32 tensors of the backend that registered them).
 */
function prepare(
  memory: TensorMemory, backend: unknown, name: string,
  floats: readonly tf.TensorInfo[], ints: readonly tf.TensorInfo[], outShapes: readonly number[][],
): { outs: tf.TensorInfo[]; f: Float32Array[]; i: Int32Array[]; o: Float32Array[] } {
  const outs = outShapes.map((shape) => memory.allocate(backend, shape).info);
  const f = floats.map((info) => memory.view(backend, info));
  const i = ints.map((info) => memory.int32View(backend, info));
  const o = outs.map((info) => memory.view(backend, info));
  if (f.some((v) => v === null) || i.some((v) => v === null) || o.some((v) => v === null)) {
    for (const out of outs) memory.release(backend, out);
    throw new NativeKernelError('NATIVE_BAD_ARGUMENT', `${name}: inputs must be float32 (labels and indices int32) tensors of this backend`);
  }
  return { outs, f: f as Float32Array[], i: i as Int32Array[], o: o as Float32Array[] };
}

function outOfRange(name: string, what: string, position: number, limit: number): never {
  throw new NativeKernelError('NATIVE_OUT_OF_BOUNDS', `${name}: ${what} at position ${position} is outside [0, ${limit})`);
}

export function makeFusedKernels(addon: Fused, memory: TensorMemory): Map<string, tf.KernelFunc> {
  const kernels = new Map<string, tf.KernelFunc>();

  // x [..., T, D], cos and sin [T, D]
  kernels.set(FUSED_KERNELS.rotary, ({ inputs, backend }: KernelArgs) => {
    const { x, cos, sin } = inputs as Record<'x' | 'cos' | 'sin', tf.TensorInfo>;
    const [t = 0, d = 0] = cos.shape;
    const { outs, f, o } = prepare(memory, backend, FUSED_KERNELS.rotary, [x, cos, sin], [], [x.shape]);
    addon.rotary(f[0] as Float32Array, f[1] as Float32Array, f[2] as Float32Array, o[0] as Float32Array,
      sizeOf(x.shape) / Math.max(1, t * d), t, d);
    return outs[0] as tf.TensorInfo;
  });

  kernels.set(FUSED_KERNELS.swiglu, ({ inputs, backend }: KernelArgs) => {
    const { gate, up } = inputs as Record<'gate' | 'up', tf.TensorInfo>;
    const { outs, f, o } = prepare(memory, backend, FUSED_KERNELS.swiglu, [gate, up], [], [gate.shape]);
    addon.swiglu(f[0] as Float32Array, f[1] as Float32Array, o[0] as Float32Array, sizeOf(gate.shape));
    return outs[0] as tf.TensorInfo;
  });

  kernels.set(FUSED_KERNELS.swigluGrad, ({ inputs, backend }: KernelArgs) => {
    const { gate, up, dy } = inputs as Record<'gate' | 'up' | 'dy', tf.TensorInfo>;
    const { outs, f, o } = prepare(memory, backend, FUSED_KERNELS.swigluGrad, [gate, up, dy], [], [gate.shape, up.shape]);
    addon.swigluGrad(f[0] as Float32Array, f[1] as Float32Array, f[2] as Float32Array, o[0] as Float32Array,
      o[1] as Float32Array, sizeOf(gate.shape));
    return outs;
  });

  // x [..., C], weight [C]
  kernels.set(FUSED_KERNELS.rmsNorm, ({ inputs, backend, attrs }: KernelArgs) => {
    const { x, weight } = inputs as Record<'x' | 'weight', tf.TensorInfo>;
    const { eps } = attrs as { eps: number };
    const cols = weight.shape[0] ?? 0;
    const { outs, f, o } = prepare(memory, backend, FUSED_KERNELS.rmsNorm, [x, weight], [], [x.shape]);
    addon.rmsNorm(f[0] as Float32Array, f[1] as Float32Array, eps, o[0] as Float32Array, sizeOf(x.shape) / Math.max(1, cols), cols);
    return outs[0] as tf.TensorInfo;
  });

  kernels.set(FUSED_KERNELS.rmsNormGrad, ({ inputs, backend, attrs }: KernelArgs) => {
    const { x, weight, dy } = inputs as Record<'x' | 'weight' | 'dy', tf.TensorInfo>;
    const { eps } = attrs as { eps: number };
    const cols = weight.shape[0] ?? 0;
    const { outs, f, o } = prepare(memory, backend, FUSED_KERNELS.rmsNormGrad, [x, weight, dy], [], [x.shape, weight.shape]);
    addon.rmsNormGrad(f[0] as Float32Array, f[1] as Float32Array, f[2] as Float32Array, eps, o[0] as Float32Array,
      o[1] as Float32Array, sizeOf(x.shape) / Math.max(1, cols), cols);
    return outs;
  });

  // logits [N, V], labels [N] int32 -> nll [N], lse [N]
  kernels.set(FUSED_KERNELS.crossEntropy, ({ inputs, backend }: KernelArgs) => {
    const { logits, labels } = inputs as Record<'logits' | 'labels', tf.TensorInfo>;
    const [rows = 0, vocab = 0] = logits.shape;
    const { outs, f, i, o } = prepare(memory, backend, FUSED_KERNELS.crossEntropy, [logits], [labels], [[rows], [rows]]);
    const bad = addon.crossEntropy(f[0] as Float32Array, i[0] as Int32Array, o[0] as Float32Array, o[1] as Float32Array, rows, vocab);
    if (bad >= 0) {
      for (const out of outs) memory.release(backend, out);
      outOfRange(FUSED_KERNELS.crossEntropy, `label ${i[0]?.[bad]}`, bad, vocab);
    }
    return outs;
  });

  // logits [N, V], lse [N], labels [N] int32, coef [N] -> dlogits [N, V]
  kernels.set(FUSED_KERNELS.crossEntropyGrad, ({ inputs, backend }: KernelArgs) => {
    const { logits, lse, labels, coef } = inputs as Record<'logits' | 'lse' | 'labels' | 'coef', tf.TensorInfo>;
    const [rows = 0, vocab = 0] = logits.shape;
    const { outs, f, i, o } = prepare(memory, backend, FUSED_KERNELS.crossEntropyGrad, [logits, lse, coef], [labels], [logits.shape]);
    const bad = addon.crossEntropyGrad(f[0] as Float32Array, f[1] as Float32Array, i[0] as Int32Array, f[2] as Float32Array,
      o[0] as Float32Array, rows, vocab);
    if (bad >= 0) {
      for (const out of outs) memory.release(backend, out);
      outOfRange(FUSED_KERNELS.crossEntropyGrad, `label ${i[0]?.[bad]}`, bad, vocab);
    }
    return outs[0] as tf.TensorInfo;
  });

  // q [B, H, T, D], k and v [B, Hkv, S, D] -> out [B, T, H·D], probs [B, H, T, S]
  kernels.set(FUSED_KERNELS.attention, ({ inputs, backend, attrs }: KernelArgs) => {
    const { q, k, v } = inputs as Record<'q' | 'k' | 'v', tf.TensorInfo>;
    const { scale } = attrs as { scale: number };
    const [b = 0, h = 0, t = 0, d = 0] = q.shape;
    const [, hkv = 0, s = 0] = k.shape;
    const { outs, f, o } = prepare(memory, backend, FUSED_KERNELS.attention, [q, k, v], [], [[b, t, h * d], [b, h, t, s]]);
    addon.attention(f[0] as Float32Array, f[1] as Float32Array, f[2] as Float32Array, o[0] as Float32Array, o[1] as Float32Array,
      b, h, hkv, t, s, d, scale);
    return outs;
  });

  kernels.set(FUSED_KERNELS.attentionGrad, ({ inputs, backend, attrs }: KernelArgs) => {
    const { q, k, v, probs, dy } = inputs as Record<'q' | 'k' | 'v' | 'probs' | 'dy', tf.TensorInfo>;
    const { scale } = attrs as { scale: number };
    const [b = 0, h = 0, t = 0, d = 0] = q.shape;
    const [, hkv = 0, s = 0] = k.shape;
    const { outs, f, o } = prepare(memory, backend, FUSED_KERNELS.attentionGrad, [q, k, v, probs, dy], [], [q.shape, k.shape, v.shape]);
    addon.attentionGrad(f[0] as Float32Array, f[1] as Float32Array, f[2] as Float32Array, f[3] as Float32Array, f[4] as Float32Array,
      o[0] as Float32Array, o[1] as Float32Array, o[2] as Float32Array, b, h, hkv, t, s, d, scale);
    return outs;
  });
  return kernels;
}

/**
 * GatherV2 for float32 params and int32 indices without batch dims: x [outer, axis, inner], indices [...n] ->
 * [outer, ...n, inner]. Other cases, and out-of-range indices (whose handling is the backend's), go to `original`.
 */
export function makeGather(addon: Fused, memory: TensorMemory, original: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { x, indices } = args.inputs as Record<'x' | 'indices', tf.TensorInfo>;
    const { axis, batchDims } = args.attrs as unknown as tf.GatherV2Attrs;
    if (x.dtype !== 'float32' || indices.dtype !== 'int32' || (batchDims ?? 0) !== 0) return original(args);
    const rank = x.shape.length;
    const ax = axis < 0 ? axis + rank : axis;
    if (ax < 0 || ax >= rank) return original(args);
    const outer = sizeOf(x.shape.slice(0, ax));
    const axisSize = x.shape[ax] ?? 0;
    const inner = sizeOf(x.shape.slice(ax + 1));
    const n = sizeOf(indices.shape);
    const outShape = [...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)];
    const out = memory.allocate(args.backend, outShape).info;
    const xs = memory.view(args.backend, x);
    const ids = memory.int32View(args.backend, indices);
    const os = memory.view(args.backend, out);
    if (!xs || !ids || !os || addon.gather(xs, ids, os, outer, axisSize, inner, n) >= 0) {
      memory.release(args.backend, out);
      return original(args);
    }
    return out;
  };
}
