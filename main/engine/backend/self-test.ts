/**
 * A short check a backend must pass before it serves: a matrix product with a long inner dimension and a
 * transposed operand (where broken GPU kernels have been seen), a gradient through a matmul and tanh, a sum of
 * more inputs than a shader may bind, a softmax over a vocabulary-sized row, and the asynchronous read-back of
 * float32 and int32 values; each compared with float64 results computed here in plain JS. Milliseconds on
 * wasm and cpu; on a GPU, mostly shader compilation.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface SelfTestResult {
  readonly ok: boolean;
  /** 'passed in 12 ms', or the first check that failed and by how much: one line. */
  readonly detail: string;
}

/** Deterministic values in [-1, 1) (an LCG: the checks must not depend on tfjs's own random ops). */
function values(seed: number, size: number): Float32Array {
  const out = new Float32Array(size);
  let state = seed >>> 0;
  for (let i = 0; i < size; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 2 ** 31 - 1;
  }
  return out;
}

/** Largest |got − want| relative to `scale` (the size of the terms summed, so float32 rounding stays small). */
function worst(got: ArrayLike<number>, want: ArrayLike<number>, scale: ArrayLike<number> | number): number {
  if (got.length !== want.length) return Infinity;
  let w = 0;
  for (let i = 0; i < want.length; i++) {
    const s = typeof scale === 'number' ? scale : (scale[i] as number);
    const e = Math.abs((got[i] as number) - (want[i] as number)) / (s + 1e-6);
    if (!(e <= w)) w = Number.isNaN(e) ? Infinity : e;
  }
  return w;
}

const TOLERANCE = 1e-4;

interface Check {
  readonly name: string;
  /** Runs on the active backend; returns the worst relative error against float64. */
  run(): Promise<number>;
}

async function read(t: tf.Tensor): Promise<Float32Array | Int32Array> {
  try {
    return (await t.data()) as Float32Array | Int32Array;
  } finally {
    t.dispose();
  }
}

const CHECKS: readonly Check[] = [
  {
    // [8, 2048]·[24, 2048]ᵀ: few output tiles and a long K, transposed B (the backward pass of a vocabulary projection).
    name: 'matMul [8, 2048]·[24, 2048]ᵀ',
    async run() {
      const [m, k, n] = [8, 2048, 24];
      const a = values(1, m * k);
      const b = values(2, n * k);
      const got = await read(tf.tidy(() => tf.matMul(tf.tensor2d(a, [m, k]), tf.tensor2d(b, [n, k]), false, true)));
      const want = new Float64Array(m * n);
      const scale = new Float64Array(m * n);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          let mag = 0;
          for (let p = 0; p < k; p++) {
            const prod = (a[i * k + p] as number) * (b[j * k + p] as number);
            s += prod;
            mag += Math.abs(prod);
          }
          want[i * n + j] = s;
          scale[i * n + j] = mag;
        }
      }
      return worst(got, want, scale);
    },
  },
  {
    // d/dW and d/dx of Σ tanh(x·W)⊙r: the chain rule through a matmul, as training needs it.
    name: 'gradient of Σ tanh(x·W)⊙r',
    async run() {
      const [n, c, o] = [4, 16, 8];
      const x = values(3, n * c);
      const w = values(4, c * o);
      const r = values(5, n * o);
      const [gx, gw] = tf.tidy(() => {
        const rt = tf.tensor2d(r, [n, o]);
        return tf.grads((xs: tf.Tensor, ws: tf.Tensor) => tf.sum(tf.mul(tf.tanh(tf.matMul(xs as tf.Tensor2D, ws as tf.Tensor2D)), rt)))([tf.tensor2d(x, [n, c]), tf.tensor2d(w, [c, o])]);
      });
      const gotX = await read(gx as tf.Tensor);
      const gotW = await read(gw as tf.Tensor);
      const d = new Float64Array(n * o); // (1 − tanh²(x·W))⊙r
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < o; j++) {
          let s = 0;
          for (let p = 0; p < c; p++) s += (x[i * c + p] as number) * (w[p * o + j] as number);
          d[i * o + j] = (1 - Math.tanh(s) ** 2) * (r[i * o + j] as number);
        }
      }
      const wantX = new Float64Array(n * c);
      const wantW = new Float64Array(c * o);
      for (let i = 0; i < n; i++) {
        for (let p = 0; p < c; p++) {
          for (let j = 0; j < o; j++) {
            wantX[i * c + p] = (wantX[i * c + p] as number) + (d[i * o + j] as number) * (w[p * o + j] as number);
            wantW[p * o + j] = (wantW[p * o + j] as number) + (x[i * c + p] as number) * (d[i * o + j] as number);
          }
        }
      }
      return Math.max(worst(gotX, wantX, 1), worst(gotW, wantW, 1));
    },
  },
  {
    name: 'addN of 12 tensors',
    async run() {
      const parts = Array.from({ length: 12 }, (_, i) => values(10 + i, 5));
      const got = await read(tf.tidy(() => tf.addN(parts.map((p) => tf.tensor1d(p)))));
      const want = new Float64Array(5);
      for (const p of parts) for (let i = 0; i < 5; i++) want[i] = (want[i] as number) + (p[i] as number);
      return worst(got, want, 1);
    },
  },
  {
    name: 'softmax over 4096',
    async run() {
      const x = values(30, 2 * 4096).map((v) => v * 8);
      const got = await read(tf.tidy(() => tf.softmax(tf.tensor2d(x, [2, 4096]))));
      const want = new Float64Array(x.length);
      for (let row = 0; row < 2; row++) {
        let max = -Infinity;
        for (let i = 0; i < 4096; i++) max = Math.max(max, x[row * 4096 + i] as number);
        let sum = 0;
        for (let i = 0; i < 4096; i++) sum += Math.exp((x[row * 4096 + i] as number) - max);
        for (let i = 0; i < 4096; i++) want[row * 4096 + i] = Math.exp((x[row * 4096 + i] as number) - max) / sum;
      }
      return worst(got, want, 1 / 4096);
    },
  },
  {
    name: 'int32 gather and read-back',
    async run() {
      const table = Int32Array.from({ length: 40 }, (_, i) => i * 1000 - 7);
      const ids = [39, 0, 17, 17];
      const got = await read(tf.tidy(() => tf.gather(tf.tensor1d(table, 'int32'), tf.tensor1d(ids, 'int32'))));
      return worst(got, ids.map((i) => table[i] as number), 1);
    },
  },
];

/** Runs every check on the active backend; the first failure (or a time-out) ends it. Leaves no tensor behind. */
export async function selfTest(timeoutMs = 60_000): Promise<SelfTestResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<SelfTestResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: `the self-test did not finish within ${Math.round(timeoutMs / 1000)} s` }), timeoutMs);
  });
  const checks = (async (): Promise<SelfTestResult> => {
    for (const check of CHECKS) {
      let error: number;
      try {
        error = await check.run();
      } catch (e) {
        return { ok: false, detail: `${check.name} threw: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]?.slice(0, 160)}` };
      }
      if (!(error <= TOLERANCE)) {
        return { ok: false, detail: `${check.name} is off by ${error.toExponential(1)} (relative to float64; at most ${TOLERANCE} passes)` };
      }
    }
    return { ok: true, detail: `passed in ${Math.round(performance.now() - started)} ms` };
  })();
  try {
    return await Promise.race([checks, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
