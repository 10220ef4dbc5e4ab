/**
 * The model's hot ops on the active backend against float64 (fused-reference.ts): RMSNorm, rotary, SwiGLU, causal
 * attention with grouped-query heads and cached positions, the masked cross-entropy, and the frozen linear with its
 * LoRA pair where the backend has that kernel. Values against the float64 formulas, gradients against central
 * finite differences of them. Each check goes through the op the model calls, so it covers whichever kernels serve
 * it (fused where registered, composed from tfjs ops otherwise).
 *
 * Plain async functions, no test runner: the webgpu kernel tests assert on them, and the GPU check pack
 * (bench/gpu/check.ts) runs them on a real GPU and reports them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FROZEN_LINEAR_KERNEL, fusedFrozenLinear, hasFusedKernel, type FrozenWeightFormat, type FrozenWeightTensor } from '../../../main/engine/backend/fused-ops';
import { halfWords } from '../../../main/engine/backend/webgpu/half-words';
import { applyRotary, attention, causalMask, gatedActivation, rmsNorm } from '../../../main/engine/models/layers';
import { AdamW } from '../../../main/engine/train/optimizer';
import { lossOnLogits } from '../../support/loss-on-logits';
import {
  ATTENTION_SHAPES, attention64, decodeBf16, decodeF16, dot, finiteDifferences, linear64, linearGrads64, nll64, randomHalves,
  randomValues, rmsNorm64,
  rotary64, seededRandom, silu, valueAndGrads, worst, type AttentionShape, type LinearCase,
} from './fused-reference';

/** One comparison: `error` (relative, see `worst`) must stay under `tolerance`. */
export interface Outcome {
  readonly what: string;
  readonly error: number;
  readonly tolerance: number;
}

export interface OpCheck {
  readonly name: string;
  /** A kernel the check needs; where the active backend lacks it the check does not apply. */
  readonly needs?: string;
  run(): Promise<Outcome[]>;
}

const outcome = (what: string, error: number, tolerance: number): Outcome => ({ what, error, tolerance });

async function rotaryCheck(): Promise<Outcome[]> {
  const random = seededRandom(31);
  const out: Outcome[] = [];
  for (const [b, h, t, d] of [[1, 3, 5, 8], [1, 5, 1, 6], [2, 3, 9, 16]] as const) {
    const n = b * h * t * d;
    const [x, cos, sin, r] = [randomValues(random, n), randomValues(random, t * d), randomValues(random, t * d), randomValues(random, n)];
    const [c2, s2] = [tf.tensor2d(cos, [t, d]), tf.tensor2d(sin, [t, d])];
    const { value, grads } = await valueAndGrads((xs) => applyRotary(xs as tf.Tensor4D, c2, s2), [tf.tensor4d(x, [b, h, t, d])], tf.tensor4d(r, [b, h, t, d]));
    tf.dispose([c2, s2]);
    const [x64, cos64, sin64] = [Float64Array.from(x), Float64Array.from(cos), Float64Array.from(sin)];
    const shape = `[${b}, ${h}, ${t}, ${d}]`;
    out.push(outcome(`value ${shape}`, worst(value, rotary64(x64, cos64, sin64, t, d)), 1e-6));
    out.push(outcome(`dx ${shape}`, worst(grads[0] as Float32Array, finiteDifferences((v) => dot(rotary64(v, cos64, sin64, t, d), r), x64)), 1e-5));
  }
  return out;
}

async function swigluCheck(): Promise<Outcome[]> {
  const random = seededRandom(41);
  const out: Outcome[] = [];
  for (const n of [7, 1000]) {
    const gate = randomValues(random, n).map((v) => v * 12); // through sigmoid's flat tails too
    const [up, r] = [randomValues(random, n), randomValues(random, n)];
    const { value, grads } = await valueAndGrads((g, u) => gatedActivation(g as tf.Tensor, u as tf.Tensor, 'silu'), [tf.tensor1d(gate), tf.tensor1d(up)], tf.tensor1d(r));
    const h = 1e-5;
    out.push(outcome(`value [${n}]`, worst(value, Float64Array.from(gate, (g, i) => silu(g) * (up[i] as number))), 1e-6));
    // Elementwise: ∂/∂g of Σ silu(g)·u·r at each element by a difference of the float64 function there.
    out.push(outcome(`dgate [${n}]`, worst(grads[0] as Float32Array, Float64Array.from(gate, (g, i) => (silu(g + h) - silu(g - h)) / (2 * h) * (up[i] as number) * (r[i] as number))), 1e-5));
    out.push(outcome(`dup [${n}]`, worst(grads[1] as Float32Array, Float64Array.from(gate, (g, i) => silu(g) * (r[i] as number))), 1e-6));
  }
  return out;
}

async function rmsNormCheck(): Promise<Outcome[]> {
  const random = seededRandom(51);
  const out: Outcome[] = [];
  // Rows narrower and wider than a workgroup; the wide one's gradients are left to the value and the narrow ones.
  for (const [rows, cols] of [[3, 5], [9, 37], [4, 2500]] as const) {
    const [x, w, r] = [randomValues(random, rows * cols), randomValues(random, cols), randomValues(random, rows * cols)];
    const eps = 1e-5;
    const { value, grads } = await valueAndGrads((xs, ws) => rmsNorm(xs as tf.Tensor, ws as tf.Tensor1D, eps),
      [tf.tensor2d(x, [rows, cols]), tf.tensor1d(w)], tf.tensor2d(r, [rows, cols]));
    const [x64, w64] = [Float64Array.from(x), Float64Array.from(w)];
    out.push(outcome(`value [${rows}, ${cols}]`, worst(value, rmsNorm64(x64, w64, eps)), 1e-5));
    if (rows * cols > 1000) continue;
    out.push(outcome(`dx [${rows}, ${cols}]`, worst(grads[0] as Float32Array, finiteDifferences((v) => dot(rmsNorm64(v, w64, eps), r), x64)), 1e-4));
    out.push(outcome(`dweight [${rows}, ${cols}]`, worst(grads[1] as Float32Array, finiteDifferences((v) => dot(rmsNorm64(x64, v, eps), r), w64)), 1e-4));
  }
  return out;
}

/** Σ w·nll / max(Σ w, 1) in float64: the loss LoRA training minimises. */
function maskedLoss64(logits: Float64Array, labels: Int32Array, weights: Float32Array, vocab: number): number {
  const nll = nll64(logits, labels, vocab);
  let sum = 0;
  let count = 0;
  for (let i = 0; i < labels.length; i++) {
    sum += (weights[i] as number) * (nll[i] as number);
    count += weights[i] as number;
  }
  return sum / Math.max(count, 1);
}

async function crossEntropyCheck(): Promise<Outcome[]> {
  const random = seededRandom(61);
  const out: Outcome[] = [];
  for (const [b, t, vocab] of [[2, 2, 13], [2, 3, 1001]] as const) {
    const logits = randomValues(random, b * t * vocab).map((v) => v * 20); // wide logits: the max shift matters
    const labels = Int32Array.from({ length: b * t }, () => Math.floor(random() * vocab));
    const weights = Float32Array.from({ length: b * t }, (_, i) => (i % 3 === 1 ? 0 : 1)); // masked positions too
    // two rows per chunk, so the chunked loss's gathering and scattering of rows is checked too
    const { value, grads } = await valueAndGrads((xs) => lossOnLogits(xs as tf.Tensor2D, { labels, weights }, 2 * 4 * vocab),
      [tf.tensor2d(logits, [b * t, vocab])], tf.scalar(1));
    const l64 = Float64Array.from(logits);
    const shape = `[${b}, ${t}, ${vocab}]`;
    out.push(outcome(`loss ${shape}`, worst(value, [maskedLoss64(l64, labels, weights, vocab)]), 1e-5));
    if (b * t * vocab < 5000) {
      out.push(outcome(`dlogits ${shape}`, worst(grads[0] as Float32Array, finiteDifferences((v) => maskedLoss64(v, labels, weights, vocab), l64, 1e-4), 1e-2), 1e-4));
      continue;
    }
    // Too many entries for finite differences: w·(softmax − onehot)/Σw, written out in float64, row by row.
    const nll = nll64(l64, labels, vocab);
    const count = Math.max(weights.reduce((a, w) => a + w, 0), 1);
    const want = new Float64Array(b * t * vocab);
    for (let row = 0; row < b * t; row++) {
      const lse = (nll[row] as number) + (l64[row * vocab + (labels[row] as number)] as number);
      for (let v = 0; v < vocab; v++) {
        want[row * vocab + v] = ((weights[row] as number) / count) * (Math.exp((l64[row * vocab + v] as number) - lse) - (v === labels[row] ? 1 : 0));
      }
    }
    out.push(outcome(`dlogits ${shape}`, worst(grads[0] as Float32Array, want, 1e-3), 1e-4));
  }
  return out;
}

async function attentionCheck(): Promise<Outcome[]> {
  const random = seededRandom(81);
  const out: Outcome[] = [];
  const shapes: AttentionShape[] = [
    ...ATTENTION_SHAPES,
    { b: 1, h: 2, hkv: 1, t: 70, s: 70, d: 2 }, // rows longer than a workgroup
    { b: 1, h: 2, hkv: 1, t: 3, s: 40, d: 64 }, // a real head dim: keys in blocks of 16, each dot split over 4 threads
  ];
  for (const shape of shapes) {
    const { b, h, hkv, t, s, d } = shape;
    const q = randomValues(random, b * h * t * d).map((x) => 2 * x);
    const k = randomValues(random, b * hkv * s * d).map((x) => 2 * x);
    const v = randomValues(random, b * hkv * s * d);
    const r = randomValues(random, b * t * h * d);
    const mask = causalMask(s - t, t);
    const { value, grads } = await valueAndGrads((qs, ks, vs) => attention(qs as tf.Tensor4D, ks as tf.Tensor4D, vs as tf.Tensor4D, mask),
      [tf.tensor4d(q, [b, h, t, d]), tf.tensor4d(k, [b, hkv, s, d]), tf.tensor4d(v, [b, hkv, s, d])], tf.tensor3d(r, [b, t, h * d]));
    mask.dispose();
    const [q64, k64, v64] = [Float64Array.from(q), Float64Array.from(k), Float64Array.from(v)];
    const name = `B${b} H${h}/${hkv} T${t} S${s} D${d}`;
    out.push(outcome(`value ${name}`, worst(value, attention64(q64, k64, v64, shape), 0.1), 1e-5));
    out.push(outcome(`dq ${name}`, worst(grads[0] as Float32Array, finiteDifferences((x) => dot(attention64(x, k64, v64, shape), r), q64), 0.1), 1e-4));
    out.push(outcome(`dk ${name}`, worst(grads[1] as Float32Array, finiteDifferences((x) => dot(attention64(q64, x, v64, shape), r), k64), 0.1), 1e-4));
    out.push(outcome(`dv ${name}`, worst(grads[2] as Float32Array, finiteDifferences((x) => dot(attention64(q64, k64, x, shape), r), v64), 0.1), 1e-4));
  }
  return out;
}

/**
 * A random weight for op(W) [K, N]: the tensor as stored ([K, N] for 'in-out', [N, K] for 'out-in'; halves as
 * words) and its values in float64 as [K, N], the halves decoded by their definitions.
 */
export function randomFrozenWeight(
  random: () => number, format: FrozenWeightFormat, layout: 'in-out' | 'out-in', k: number, n: number,
): { weight: FrozenWeightTensor; values: Float64Array } {
  const bits = format === 'F32' ? null : randomHalves(random, k * n, format);
  const floats = format === 'F32' ? randomValues(random, k * n) : null;
  const stored = bits ? Float64Array.from(bits, format === 'F16' ? decodeF16 : decodeBf16) : Float64Array.from(floats as Float32Array);
  const values = layout === 'in-out' ? stored : Float64Array.from({ length: k * n }, (_, i) => stored[(i % n) * k + Math.floor(i / n)] as number);
  const data = bits ? halfWords(bits) : tf.tensor2d(floats as Float32Array, layout === 'in-out' ? [k, n] : [n, k]);
  return { weight: { data, format, layout, inFeatures: k, outFeatures: n }, values };
}

/** x·W + bias + scale·(x·At)·Bt for each stored format and layout, tiles crossed in every dimension. */
async function frozenLinearCheck(format: FrozenWeightFormat, layout: 'in-out' | 'out-in'): Promise<Outcome[]> {
  const random = seededRandom(format.length * 7 + layout.length);
  const out: Outcome[] = [];
  const cases: LinearCase[] = [
    { m: 5, k: 7, n: 9, r: 3, bias: true }, // one tile, odd everywhere (an odd weight count ends mid-word)
    { m: 3, k: 20, n: 70, r: 2, bias: false }, // decode-sized rows: the matrix-vector kernels
    { m: 66, k: 18, n: 67, r: 1, bias: true }, // past a tile in m and n, k past one 16-deep step
    { m: 8, k: 4100, n: 20, r: 2, bias: true }, // a long k over one tile: the product split along k, then summed
    { m: 8, k: 12, n: 3000, r: 2, bias: false }, // a vocabulary-like n: its gradient dy·Wᵀ is the split one
  ];
  for (const c of cases) {
    const { m, k, n, r } = c;
    const { weight, values } = randomFrozenWeight(random, format, layout, k, n);
    const b = c.bias ? randomValues(random, n) : null;
    const bias = b ? tf.tensor1d(b) : null;
    const [x, at, bt, rr] = [randomValues(random, m * k), randomValues(random, k * r), randomValues(random, r * n), randomValues(random, m * n)];
    const scale = 1.5;
    const { value, grads } = await valueAndGrads(
      (xs, as, bs) => fusedFrozenLinear(xs as tf.Tensor2D, weight, bias, { At: as as tf.Tensor2D, Bt: bs as tf.Tensor2D, scale }),
      [tf.tensor2d(x, [m, k]), tf.tensor2d(at, [k, r]), tf.tensor2d(bt, [r, n])], tf.tensor2d(rr, [m, n]));
    tf.dispose([weight.data, ...(bias ? [bias] : [])]);
    const [x64, at64, bt64, b64] = [Float64Array.from(x), Float64Array.from(at), Float64Array.from(bt), b ? Float64Array.from(b) : null];
    const f = (xv: Float64Array, av: Float64Array, bv: Float64Array): number => dot(linear64(xv, xv, values, b64, av, bv, scale, c), rr);
    const name = `M${m} K${k} N${n} r${r}${c.bias ? ' bias' : ''}`;
    // float32 sums of thousands of terms (up to 4 in magnitude) drift further from float64 than short ones.
    const sumTolerance = Math.max(k, n) > 1000 ? 1e-4 : 1e-5;
    out.push(outcome(`value ${name}`, worst(value, linear64(x64, x64, values, b64, at64, bt64, scale, c)), sumTolerance));
    if (m * k * n > 20_000) {
      // Too large for finite differences: the chain rule written out in float64.
      const want = linearGrads64(x64, values, at64, bt64, scale, rr, c);
      out.push(outcome(`dx ${name}`, worst(grads[0] as Float32Array, want.dx), sumTolerance));
      out.push(outcome(`dAt ${name}`, worst(grads[1] as Float32Array, want.dAt), sumTolerance));
      out.push(outcome(`dBt ${name}`, worst(grads[2] as Float32Array, want.dBt), sumTolerance));
      continue;
    }
    if (m * k <= 200) out.push(outcome(`dx ${name}`, worst(grads[0] as Float32Array, finiteDifferences((v) => f(v, at64, bt64), x64)), 1e-4));
    out.push(outcome(`dAt ${name}`, worst(grads[1] as Float32Array, finiteDifferences((v) => f(x64, v, bt64), at64)), 1e-4));
    if (r * n <= 200) out.push(outcome(`dBt ${name}`, worst(grads[2] as Float32Array, finiteDifferences((v) => f(x64, at64, v), bt64)), 1e-4));
  }
  return out;
}

/**
 * Three AdamW steps (weight decay on, a learning rate that changes) through train/optimizer.ts, against the update
 * written out in float64: p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − lr·(m/(1−β1^t)) / (sqrt(v/(1−β2^t)) + ε).
 */
async function adamWCheck(): Promise<Outcome[]> {
  const random = seededRandom(71);
  const n = 5 * 37;
  const p0 = randomValues(random, n);
  const grads = [0, 1, 2].map(() => randomValues(random, n).map((x) => x * 3));
  const lrs = [1e-2, 5e-3, 2e-2];
  const [beta1, beta2, epsilon, weightDecay] = [0.9, 0.999, 1e-8, 0.1];
  const variable = tf.variable(tf.tensor2d(p0, [5, 37]), true, 'adamw-check');
  const optimizer = new AdamW(new Map([['w', variable]]), { beta1, beta2, epsilon, weightDecay });
  const p = Float64Array.from(p0);
  const m = new Float64Array(n);
  const v = new Float64Array(n);
  for (let t = 1; t <= 3; t++) {
    const g = grads[t - 1] as Float32Array;
    const lr = lrs[t - 1] as number;
    const gt = tf.tensor2d(g, [5, 37]);
    optimizer.apply(new Map([['w', gt]]), lr);
    gt.dispose();
    for (let i = 0; i < n; i++) {
      const gi = g[i] as number;
      m[i] = beta1 * (m[i] as number) + (1 - beta1) * gi;
      v[i] = beta2 * (v[i] as number) + (1 - beta2) * gi * gi;
      p[i] = (p[i] as number) * (1 - lr * weightDecay) - lr * ((m[i] as number) / (1 - beta1 ** t)) / (Math.sqrt((v[i] as number) / (1 - beta2 ** t)) + epsilon);
    }
  }
  const state = await optimizer.stateTensors();
  const got = (await variable.data()) as Float32Array;
  optimizer.dispose();
  variable.dispose();
  return [
    outcome('p after 3 steps', worst(got, p), 1e-6),
    outcome('m after 3 steps', worst(state.get('w.exp_avg')?.data ?? new Float32Array(), m), 1e-6),
    outcome('v after 3 steps', worst(state.get('w.exp_avg_sq')?.data ?? new Float32Array(), v, 1e-3), 1e-5),
  ];
}

export const OP_CHECKS: readonly OpCheck[] = [
  { name: 'rotary', run: rotaryCheck },
  { name: 'SwiGLU', run: swigluCheck },
  { name: 'RMSNorm', run: rmsNormCheck },
  { name: 'masked cross-entropy', run: crossEntropyCheck },
  { name: 'causal attention (grouped-query heads, cached positions)', run: attentionCheck },
  { name: 'AdamW update', run: adamWCheck },
  ...(['F32', 'F16', 'BF16'] as const).flatMap((format) => (['in-out', 'out-in'] as const).map((layout) => ({
    name: `frozen linear with a LoRA pair, ${format} weights stored ${layout}`,
    needs: FROZEN_LINEAR_KERNEL,
    run: () => frozenLinearCheck(format, layout),
  }))),
];

export interface CheckReport {
  readonly name: string;
  /** Null where the backend lacks the kernel the check needs. */
  readonly outcomes: readonly Outcome[] | null;
  readonly passed: boolean;
}

/** Runs every check on the active backend. */
export async function runOpChecks(): Promise<CheckReport[]> {
  const reports: CheckReport[] = [];
  for (const check of OP_CHECKS) {
    if (check.needs && !hasFusedKernel(check.needs)) {
      reports.push({ name: check.name, outcomes: null, passed: true });
      continue;
    }
    const outcomes = await check.run();
    reports.push({ name: check.name, outcomes, passed: outcomes.every((o) => o.error < o.tolerance) });
  }
  return reports;
}
