/**
 * Causal attention with grouped-query heads on webgpu, the same contract as the native kernel: query head j reads
 * kv head j / (H / Hkv), the T new positions are the last T of S (a KV cache holds the first S − T), so query row t
 * sees keys 0..S − T + t. Forward: the masked softmax of q·kᵀ·scale per row (one workgroup per row, keys read in
 * blocks through workgroup memory; kept for the gradient), then probs·v written with heads side by side; backward:
 * ds = p ⊙ (dp − Σ dp ⊙ p) per row (values in blocks likewise), then dq, dk, dv, one thread per element.
 *
 * Shapes: q [B, H, T, D], k and v [B, Hkv, S, D] -> out [B, T, H·D], probs [B, H, T, S];
 * dout [B, T, H·D] -> dq [B, H, T, D], dk and dv [B, Hkv, S, D].
 */
import type * as tf from '@tensorflow/tfjs-core';
import { FUSED_KERNELS } from '../fused-ops';
import {
  FLAT_WORKGROUP, flatWorkgroups, reduceSnippet, release, runProgram, WORKGROUP_ROW, type KernelArgs, type Uniform,
} from './program';

const ROW_THREADS = 64;
const FIELDS = 'batch : i32, heads : i32, kvHeads : i32, queries : i32, keys : i32, dim : i32, scale : f32,';

interface Dims { b: number; h: number; hkv: number; t: number; s: number; d: number }

function dimsOf(q: tf.TensorInfo, k: tf.TensorInfo): Dims {
  const [b = 0, h = 0, t = 0, d = 0] = q.shape;
  const [, hkv = 0, s = 0] = k.shape;
  return { b, h, hkv, t, s, d };
}

const uniformsOf = ({ b, h, hkv, t, s, d }: Dims, scale: number): Uniform[] => [
  ...[b, h, hkv, t, s, d].map((v) => ({ type: 'int32' as const, data: [v] })),
  { type: 'float32', data: [scale] },
];

/** Index helpers shared by the programs: a query row (i, j, t) and the kv head it reads. */
const HELPERS = `
  fn rep() -> i32 { return uniforms.heads / uniforms.kvHeads; }
  fn start() -> i32 { return uniforms.keys - uniforms.queries; }
  // Row (i·H + j)·T + t of q and probs -> the first element of its kv head's keys.
  fn kvBase(row : i32) -> i32 {
    let head = row / uniforms.queries;
    let i = head / uniforms.heads;
    let j = head - i * uniforms.heads;
    return (i * uniforms.kvHeads + j / rep()) * uniforms.keys * uniforms.dim;
  }
  // Row (i·H + j)·T + t -> element (i, t, j, 0) of out / dout [B, T, H·D].
  fn outBase(row : i32) -> i32 {
    let head = row / uniforms.queries;
    let t = row - head * uniforms.queries;
    let i = head / uniforms.heads;
    let j = head - i * uniforms.heads;
    return ((i * uniforms.queries + t) * uniforms.heads + j) * uniforms.dim;
  }
  fn seen(row : i32) -> i32 { return start() + row % uniforms.queries + 1; }`;

/**
 * WGSL that runs `body` (with `c` and `dot` in scope, on one thread per key) for every key c < visible of this
 * workgroup's row, where dot = Σ_e vec[vecAt + e]·keys[keysAt + c·D + e]. Keys pass through workgroup memory a
 * block at a time, loaded with adjacent threads reading adjacent elements (a thread walking its own key row would
 * stride by D between threads), and each key's dot is split over ROW_THREADS / block threads. Specialised on D;
 * rows padded by one to keep the threads of a block on different memory banks.
 */
function keyDots(d: number, vec: string, vecAt: string, keys: string, keysAt: string, body: string): { decl: string; loop: string } {
  let block = 32;
  while (block > 1 && block * (d + 1) > 2048) block /= 2;
  const parts = ROW_THREADS / block;
  const stride = d + 1;
  return {
    decl: `
      var<workgroup> keyBlock : array<f32, ${block * stride}>;
      var<workgroup> partDots : array<f32, ${ROW_THREADS}>;`,
    loop: `
        for (var c0 = 0; c0 < visible; c0 += ${block}) {
          for (var i = lane; i < ${block * d}; i += ${ROW_THREADS}) {
            let kk = i / ${d};
            let e = i - kk * ${d};
            var value = 0.0;
            if (c0 + kk < visible) { value = ${keys}[${keysAt} + (c0 + kk) * ${d} + e]; }
            keyBlock[kk * ${stride} + e] = value;
          }
          workgroupBarrier();
          let kk = lane % ${block};
          var partDot = 0.0;
          for (var e = lane / ${block}; e < ${d}; e += ${parts}) { partDot += ${vec}[${vecAt} + e] * keyBlock[kk * ${stride} + e]; }
          partDots[lane] = partDot;
          workgroupBarrier();
          if (lane < ${block} && c0 + lane < visible) {
            let c = c0 + lane;
            var dot = 0.0;
            for (var p = 0; p < ${parts}; p++) { dot += partDots[p * ${block} + lane]; }
            ${body}
          }
          workgroupBarrier();
        }`,
  };
}

/** probs [B·H·T, S]: masked softmax of scale·q·kᵀ, one workgroup per row, the row kept in the output between passes. */
function probsProgram(backend: unknown, q: tf.TensorInfo, k: tf.TensorInfo, dims: Dims, u: Uniform[]): tf.TensorInfo {
  const rows = dims.b * dims.h * dims.t;
  const scores = keyDots(dims.d, 'q', 'qAt', 'k', 'kAt', `
            let score = dot * uniforms.scale;
            result[outAt + c] = score;
            top = max(top, score);`);
  return runProgram(backend, {
    key: `attention_probs_d${dims.d}`,
    inputs: ['q', 'k'],
    outputShape: [dims.b, dims.h, dims.t, dims.s],
    workgroupSize: [ROW_THREADS, 1, 1],
    workgroups: rows,
    uniformFields: FIELDS,
    code: `
      ${HELPERS}
      ${reduceSnippet('rowMax', 'max', ROW_THREADS)}
      ${reduceSnippet('rowSum', 'sum', ROW_THREADS)}
      ${WORKGROUP_ROW}
      ${scores.decl}
      fn main(index : i32) {
        let row = workgroupRow();
        if (row >= uniforms.batch * uniforms.heads * uniforms.queries) { return; }
        let lane = i32(localIndex);
        let qAt = row * uniforms.dim;
        let kAt = kvBase(row);
        let outAt = row * uniforms.keys;
        let visible = seen(row);
        var top = -3.402823e+38;
        ${scores.loop}
        top = rowMax(top, lane);
        var partial = 0.0;
        for (var c = lane; c < visible; c += ${ROW_THREADS}) {
          let w = exp(result[outAt + c] - top);
          result[outAt + c] = w;
          partial += w;
        }
        let inv = 1.0 / rowSum(partial, lane);
        for (var c = lane; c < uniforms.keys; c += ${ROW_THREADS}) {
          result[outAt + c] = select(0.0, result[outAt + c] * inv, c < visible);
        }
      }`,
  }, [q, k], 'float32', u);
}

/** out [B, T, H·D]: probs·v per head, heads side by side. One thread per output element. */
function outputProgram(backend: unknown, probs: tf.TensorInfo, v: tf.TensorInfo, dims: Dims, u: Uniform[]): tf.TensorInfo {
  const count = dims.b * dims.t * dims.h * dims.d;
  return runProgram(backend, {
    key: 'attention_out',
    inputs: ['probs', 'v'],
    outputShape: [dims.b, dims.t, dims.h * dims.d],
    workgroupSize: FLAT_WORKGROUP,
    workgroups: flatWorkgroups(count),
    uniformFields: FIELDS,
    code: `
      ${HELPERS}
      fn main(index : i32) {
        let d = uniforms.dim;
        if (index >= uniforms.batch * uniforms.queries * uniforms.heads * d) { return; }
        // index = ((i·T + t)·H + j)·D + e
        let e = index % d;
        let j = (index / d) % uniforms.heads;
        let it = index / (d * uniforms.heads);
        let i = it / uniforms.queries;
        let t = it - i * uniforms.queries;
        let row = (i * uniforms.heads + j) * uniforms.queries + t;
        let pAt = row * uniforms.keys;
        let vAt = kvBase(row) + e;
        var sum = 0.0;
        for (var c = 0; c < seen(row); c++) { sum += probs[pAt + c] * v[vAt + c * d]; }
        setOutputAtIndex(index, sum);
      }`,
  }, [probs, v], 'float32', u);
}

/** [out, probs] */
function attention({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { q, k, v } = inputs as Record<'q' | 'k' | 'v', tf.TensorInfo>;
  const dims = dimsOf(q, k);
  const u = uniformsOf(dims, (attrs as { scale: number }).scale);
  const probs = probsProgram(backend, q, k, dims, u);
  return [outputProgram(backend, probs, v, dims, u), probs];
}

/** ds [B·H·T, S] = p ⊙ (dp − Σ_c dp ⊙ p) with dp = dout·vᵀ, one workgroup per row. */
function scoreGradProgram(backend: unknown, probs: tf.TensorInfo, v: tf.TensorInfo, dout: tf.TensorInfo, dims: Dims, u: Uniform[]): tf.TensorInfo {
  const dps = keyDots(dims.d, 'dout', 'dAt', 'v', 'vAt', `
            result[at + c] = dot;
            partial += dot * probs[at + c];`);
  return runProgram(backend, {
    key: `attention_dscores_d${dims.d}`,
    inputs: ['probs', 'v', 'dout'],
    outputShape: [dims.b, dims.h, dims.t, dims.s],
    workgroupSize: [ROW_THREADS, 1, 1],
    workgroups: dims.b * dims.h * dims.t,
    uniformFields: FIELDS,
    code: `
      ${HELPERS}
      ${reduceSnippet('rowSum', 'sum', ROW_THREADS)}
      ${WORKGROUP_ROW}
      ${dps.decl}
      fn main(index : i32) {
        let row = workgroupRow();
        if (row >= uniforms.batch * uniforms.heads * uniforms.queries) { return; }
        let lane = i32(localIndex);
        let at = row * uniforms.keys;
        let vAt = kvBase(row);
        let dAt = outBase(row);
        let visible = seen(row);
        // dp = dout·vᵀ per key, kept in the output; partial: this thread's share of Σ dp ⊙ p.
        var partial = 0.0;
        ${dps.loop}
        let total = rowSum(partial, lane);
        for (var c = lane; c < uniforms.keys; c += ${ROW_THREADS}) {
          result[at + c] = select(0.0, probs[at + c] * (result[at + c] - total), c < visible);
        }
      }`,
  }, [probs, v, dout], 'float32', u);
}

/** dq [B, H, T, D] = scale·ds·k, one thread per element. */
function queryGradProgram(backend: unknown, ds: tf.TensorInfo, k: tf.TensorInfo, dims: Dims, u: Uniform[]): tf.TensorInfo {
  const count = dims.b * dims.h * dims.t * dims.d;
  return runProgram(backend, {
    key: 'attention_dq',
    inputs: ['ds', 'k'],
    outputShape: [dims.b, dims.h, dims.t, dims.d],
    workgroupSize: FLAT_WORKGROUP,
    workgroups: flatWorkgroups(count),
    uniformFields: FIELDS,
    code: `
      ${HELPERS}
      fn main(index : i32) {
        let d = uniforms.dim;
        if (index >= uniforms.batch * uniforms.heads * uniforms.queries * d) { return; }
        let row = index / d;
        let e = index - row * d;
        let sAt = row * uniforms.keys;
        let kAt = kvBase(row) + e;
        var sum = 0.0;
        for (var c = 0; c < seen(row); c++) { sum += ds[sAt + c] * k[kAt + c * d]; }
        setOutputAtIndex(index, sum * uniforms.scale);
      }`,
  }, [ds, k], 'float32', u);
}

/**
 * dk = scale·Σ_group dsᵀ·q (weights = ds, other = q) or dv = Σ_group pᵀ·dout (weights = probs, other = dout), one
 * thread per (i, g, c, e) of [B, Hkv, S, D], summing over the group's query heads and the rows that see key c.
 */
function keyValueGradProgram(
  backend: unknown, which: 'dk' | 'dv', weights: tf.TensorInfo, other: tf.TensorInfo, dims: Dims, u: Uniform[],
): tf.TensorInfo {
  const count = dims.b * dims.hkv * dims.s * dims.d;
  // q [B, H, T, D] rows are contiguous per (i, j, t); dout [B, T, H·D] interleaves heads.
  const otherAt = which === 'dk' ? '((i * uniforms.heads + j) * uniforms.queries + t) * d + e' : '((i * uniforms.queries + t) * uniforms.heads + j) * d + e';
  return runProgram(backend, {
    key: `attention_${which}`,
    inputs: ['weights', 'other'],
    outputShape: [dims.b, dims.hkv, dims.s, dims.d],
    workgroupSize: FLAT_WORKGROUP,
    workgroups: flatWorkgroups(count),
    uniformFields: FIELDS,
    code: `
      ${HELPERS}
      fn main(index : i32) {
        let d = uniforms.dim;
        if (index >= uniforms.batch * uniforms.kvHeads * uniforms.keys * d) { return; }
        // index = ((i·Hkv + g)·S + c)·D + e
        let e = index % d;
        let c = (index / d) % uniforms.keys;
        let ig = index / (d * uniforms.keys);
        let i = ig / uniforms.kvHeads;
        let g = ig - i * uniforms.kvHeads;
        let first = max(0, c - start());
        var sum = 0.0;
        for (var r = 0; r < rep(); r++) {
          let j = g * rep() + r;
          for (var t = first; t < uniforms.queries; t++) {
            let w = weights[((i * uniforms.heads + j) * uniforms.queries + t) * uniforms.keys + c];
            sum += w * other[${otherAt}];
          }
        }
        setOutputAtIndex(index, ${which === 'dk' ? 'sum * uniforms.scale' : 'sum'});
      }`,
  }, [weights, other], 'float32', u);
}

/** [dq, dk, dv] */
function attentionGrad({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { q, k, v, probs, dy } = inputs as Record<'q' | 'k' | 'v' | 'probs' | 'dy', tf.TensorInfo>;
  const dims = dimsOf(q, k);
  const u = uniformsOf(dims, (attrs as { scale: number }).scale);
  const ds = scoreGradProgram(backend, probs, v, dy, dims, u);
  const grads = [
    queryGradProgram(backend, ds, k, dims, u),
    keyValueGradProgram(backend, 'dk', ds, q, dims, u),
    keyValueGradProgram(backend, 'dv', probs, dy, dims, u),
  ];
  release(backend, ds);
  return grads;
}

export const ATTENTION_KERNELS: ReadonlyMap<string, tf.KernelFunc> = new Map<string, tf.KernelFunc>([
  [FUSED_KERNELS.attention, attention as unknown as tf.KernelFunc],
  [FUSED_KERNELS.attentionGrad, attentionGrad as unknown as tf.KernelFunc],
]);
