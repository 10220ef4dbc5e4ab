/**
 * The fused kernels' references, shared by the native and webgpu kernel tests: float64 definitions written out
 * from the formulas (no tfjs, no engine code), central finite differences, and a tolerance measure.
 */
import * as tf from '@tensorflow/tfjs-core';

/** mulberry32: small, seeded, good enough for test data. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomValues(random: () => number, size: number): Float32Array {
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = random() * 2 - 1;
  return values;
}

/** Largest |got − want| / (|want| + scale), so values near 0 are held to an absolute tolerance of `scale`·tol. */
export function worst(got: ArrayLike<number>, want: ArrayLike<number>, scale = 1): number {
  if (got.length !== want.length) return Infinity;
  let w = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs((got[i] ?? NaN) - (want[i] ?? NaN)) / (Math.abs(want[i] ?? 0) + scale);
    if (!(e <= w)) w = Number.isNaN(e) ? Infinity : e;
  }
  return w;
}

/** ∂f/∂x[i] for every i by central differences of a float64 function. */
export function finiteDifferences(f: (x: Float64Array) => number, x: Float64Array, h = 1e-5): Float64Array {
  const grad = new Float64Array(x.length);
  const probe = Float64Array.from(x);
  for (let i = 0; i < x.length; i++) {
    const keep = probe[i] as number;
    probe[i] = keep + h;
    const up = f(probe);
    probe[i] = keep - h;
    const down = f(probe);
    probe[i] = keep;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

export const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] ?? 0) * (b[i] ?? 0);
  return s;
};

// ---- float64 references: the definitions, written out ----

export function rotary64(x: Float64Array, cos: Float64Array, sin: Float64Array, t: number, d: number): Float64Array {
  const out = new Float64Array(x.length);
  const half = d / 2;
  for (let g = 0; g < x.length / (t * d); g++) {
    for (let p = 0; p < t; p++) {
      for (let i = 0; i < d; i++) {
        const at = (g * t + p) * d;
        const partner = i < half ? x[at + i + half] : x[at + i - half]; // [x2, x1]
        out[at + i] = (x[at + i] as number) * (cos[p * d + i] as number) + (partner as number) * (sin[p * d + i] as number);
      }
    }
  }
  return out;
}

export const silu = (g: number): number => g / (1 + Math.exp(-g));

export function rmsNorm64(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  const c = w.length;
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / c; r++) {
    let ss = 0;
    for (let j = 0; j < c; j++) ss += (x[r * c + j] as number) ** 2;
    const inv = 1 / Math.sqrt(ss / c + eps);
    for (let j = 0; j < c; j++) out[r * c + j] = (x[r * c + j] as number) * inv * (w[j] as number);
  }
  return out;
}

export function nll64(logits: Float64Array, labels: Int32Array, vocab: number): Float64Array {
  const out = new Float64Array(labels.length);
  for (let r = 0; r < labels.length; r++) {
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) max = Math.max(max, logits[r * vocab + v] as number);
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += Math.exp((logits[r * vocab + v] as number) - max);
    out[r] = max + Math.log(sum) - (logits[r * vocab + (labels[r] as number)] as number);
  }
  return out;
}

export interface AttentionShape { b: number; h: number; hkv: number; t: number; s: number; d: number }

/** Attention shapes every kernel is held to. */
export const ATTENTION_SHAPES: readonly AttentionShape[] = [
  { b: 2, h: 4, hkv: 2, t: 3, s: 5, d: 4 }, // grouped-query heads, 2 cached positions before the 3 new ones
  { b: 1, h: 2, hkv: 2, t: 4, s: 4, d: 6 }, // plain multi-head, no cache
  { b: 1, h: 3, hkv: 1, t: 1, s: 6, d: 2 }, // decoding one token against 5 cached ones
];

/** Causal attention in float64: query t (position s − t + t) over keys 0..that position; head j reads kv head j / rep. */
export function attention64(q: Float64Array, k: Float64Array, v: Float64Array, { b, h, hkv, t, s, d }: AttentionShape): Float64Array {
  const out = new Float64Array(b * t * h * d);
  const rep = h / hkv;
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < h; j++) {
      const kv = (i * hkv + Math.floor(j / rep)) * s * d;
      for (let r = 0; r < t; r++) {
        const qAt = ((i * h + j) * t + r) * d;
        const seen = s - t + r + 1;
        const scores = Array.from({ length: seen }, (_, c) => {
          let sum = 0;
          for (let e = 0; e < d; e++) sum += (q[qAt + e] as number) * (k[kv + c * d + e] as number);
          return sum / Math.sqrt(d);
        });
        const max = Math.max(...scores);
        const weights = scores.map((x) => Math.exp(x - max));
        const total = weights.reduce((a, w) => a + w, 0);
        for (let e = 0; e < d; e++) {
          let sum = 0;
          for (let c = 0; c < seen; c++) sum += ((weights[c] as number) / total) * (v[kv + c * d + e] as number);
          out[(i * t + r) * h * d + j * d + e] = sum;
        }
      }
    }
  }
  return out;
}

/** The tfjs gradient of Σ op(x)·r with respect to each input, and the op's value, read without sync reads (webgpu). */
export async function valueAndGrads(op: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], r: tf.Tensor): Promise<{ value: Float32Array; grads: Float32Array[] }> {
  const [value, ...grads] = tf.tidy(() => [op(...inputs), ...tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(op(...xs), r)))(inputs)]);
  try {
    return {
      value: (await (value as tf.Tensor).data()) as Float32Array,
      grads: await Promise.all(grads.map(async (g) => (await g.data()) as Float32Array)),
    };
  } finally {
    tf.dispose([value as tf.Tensor, ...grads, ...inputs, r]);
  }
}

/** IEEE binary16 by its definition: (−1)^s · 2^(e−15) · (1 + f/1024), subnormals 2^−14 · f/1024. */
export function decodeF16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  return sign * (e === 0 ? 2 ** -14 * (f / 1024) : 2 ** (e - 15) * (1 + f / 1024));
}

/** bfloat16 by its definition: the upper 16 bits of a binary32, (−1)^s · 2^(e−127) · (1 + f/128). */
export function decodeBf16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 7) & 0xff;
  const f = h & 0x7f;
  return sign * (e === 0 ? 2 ** -126 * (f / 128) : 2 ** (e - 127) * (1 + f / 128));
}

/** Random finite halves of magnitude about 2^-6..2^1 (exponents picked, so no NaN or Inf bit patterns). */
export function randomHalves(random: () => number, n: number, format: 'F16' | 'BF16'): Uint16Array {
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const sign = random() < 0.5 ? 0x8000 : 0;
    const exponent = Math.floor(random() * 8) + (format === 'F16' ? 9 : 121);
    out[i] = format === 'F16'
      ? sign | (exponent << 10) | Math.floor(random() * 1024)
      : sign | (exponent << 7) | Math.floor(random() * 128);
  }
  return out;
}

export interface LinearCase { m: number; k: number; n: number; r: number; bias: boolean }

/** y = x·W + b + s·(lx·At)·Bt in float64; x, lx [M, K], W [K, N], At [K, R], Bt [R, N]. */
export function linear64(x: Float64Array, lx: Float64Array, w: Float64Array, b: Float64Array | null, at: Float64Array, bt: Float64Array, s: number, { m, k, n, r }: LinearCase): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const u = new Float64Array(r);
    for (let q = 0; q < r; q++) for (let p = 0; p < k; p++) u[q] = (u[q] as number) + (lx[i * k + p] as number) * (at[p * r + q] as number);
    for (let j = 0; j < n; j++) {
      let sum = b ? (b[j] as number) : 0;
      for (let p = 0; p < k; p++) sum += (x[i * k + p] as number) * (w[p * n + j] as number);
      let lora = 0;
      for (let q = 0; q < r; q++) lora += (u[q] as number) * (bt[q * n + j] as number);
      y[i * n + j] = sum + s * lora;
    }
  }
  return y;
}

/**
 * The gradients of Σ linear64(x, x, W, b, At, Bt, s)·r in float64, by the chain rule written out (for sizes where
 * finite differences would take too long): with u = x·At and g = s·r·Btᵀ,
 * dx = r·Wᵀ + g·Atᵀ, dAt = xᵀ·g, dBt = s·uᵀ·r.
 */
export function linearGrads64(x: Float64Array, w: Float64Array, at: Float64Array, bt: Float64Array, s: number, r: ArrayLike<number>, { m, k, n, r: rank }: LinearCase): { dx: Float64Array; dAt: Float64Array; dBt: Float64Array } {
  const dx = new Float64Array(m * k);
  const dAt = new Float64Array(k * rank);
  const dBt = new Float64Array(rank * n);
  for (let i = 0; i < m; i++) {
    const u = new Float64Array(rank);
    const g = new Float64Array(rank);
    for (let q = 0; q < rank; q++) {
      for (let p = 0; p < k; p++) u[q] = (u[q] as number) + (x[i * k + p] as number) * (at[p * rank + q] as number);
      for (let j = 0; j < n; j++) g[q] = (g[q] as number) + s * (r[i * n + j] as number) * (bt[q * n + j] as number);
    }
    for (let p = 0; p < k; p++) {
      let sum = 0;
      for (let j = 0; j < n; j++) sum += (r[i * n + j] as number) * (w[p * n + j] as number);
      for (let q = 0; q < rank; q++) {
        sum += (g[q] as number) * (at[p * rank + q] as number);
        dAt[p * rank + q] = (dAt[p * rank + q] as number) + (x[i * k + p] as number) * (g[q] as number);
      }
      dx[i * k + p] = sum;
    }
    for (let q = 0; q < rank; q++) {
      for (let j = 0; j < n; j++) dBt[q * n + j] = (dBt[q * n + j] as number) + s * (u[q] as number) * (r[i * n + j] as number);
    }
  }
  return { dx, dAt, dBt };
}
