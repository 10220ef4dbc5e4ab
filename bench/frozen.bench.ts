/**
 * The frozen-weight kernels at the real models' linear shapes (Qwen2.5-0.5B: hidden 896, MLP 4864, vocab 151936;
 * Qwen2.5-1.5B: hidden 1536, MLP 8960): microseconds per product x [N, in]·Wᵀ for N rows, on wasm,
 *   - XNNPACK on a float32 tensor [in, out] (the path without the addon),
 *   - the native store's GEMV and tiled-sgemm kernels on BF16, Q8_0 and Q4_0 weights,
 * and which kernel the routing rule (FROZEN_GEMV_ROWS) picks. Decode is N = 1; prefill and training are N ≥ 64.
 * `LORASMITH_BENCH_QUICK=1` runs small shapes only (to check the benchmark itself).
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../main/engine/backend/index';
import { activeFrozenStore, type FrozenWeight, type StoredFormat } from '../main/engine/backend/frozen';
import { loadAddon, hasWeightKernels } from '../main/engine/backend/native/addon';
import { FROZEN_GEMV_ROWS, setFrozenGemvRows } from '../main/engine/backend/native/frozen-kernels';
import { QUICK } from './quick';


interface Shape { readonly model: string; readonly name: string; readonly out: number; readonly in: number }

const SHAPES: readonly Shape[] = QUICK
  ? [{ model: 'small', name: 'mlp', out: 256, in: 96 }]
  : [
    { model: '0.5B', name: 'q_proj / o_proj', out: 896, in: 896 },
    { model: '0.5B', name: 'gate / up', out: 4864, in: 896 },
    { model: '0.5B', name: 'down', out: 896, in: 4864 },
    { model: '0.5B', name: 'tied head', out: 151936, in: 896 },
    { model: '1.5B', name: 'gate / up', out: 8960, in: 1536 },
    { model: '1.5B', name: 'down', out: 1536, in: 8960 },
  ];
const ROWS = QUICK ? [1, 4, 16] : [1, 2, 4, 8, 16, 64, 512];

function random(n: number): Float32Array {
  const out = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 0.1;
  }
  return out;
}

/** Median microseconds of `fn` over enough calls to fill ~0.4 s (at least 3). */
function time(fn: () => tf.Tensor): number {
  tf.tidy(() => void fn().dataSync());
  const samples: number[] = [];
  const budget = performance.now() + (QUICK ? 50 : 400);
  while (samples.length < 3 || (performance.now() < budget && samples.length < 200)) {
    const start = performance.now();
    tf.tidy(() => void fn().dataSync());
    samples.push((performance.now() - start) * 1000);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] as number;
}

export async function run(): Promise<string> {
  const load = loadAddon();
  if (!load.ok || !hasWeightKernels(load.addon)) {
    return `## Frozen-weight kernels\n\nNot measured: ${load.ok ? 'the addon predates the frozen-weight store' : load.reason}.\n`;
  }
  await initBackend('wasm', { native: {} });
  const store = activeFrozenStore();
  if (!store) return '## Frozen-weight kernels\n\nNot measured: no frozen store on wasm.\n';
  const addon = load.addon;
  const lines: string[] = [];
  for (const shape of SHAPES) {
    const values = random(shape.out * shape.in);
    const weights = new Map<StoredFormat, FrozenWeight>();
    for (const format of ['BF16', 'Q8_0', 'Q4_0'] as const) {
      weights.set(format, store.create({ rows: shape.out, cols: shape.in, dtype: 'F32', data: values }, format));
    }
    // The plain path's [in, out] float32 tensor; the vocabulary-sized head would not be made twice in the heap.
    const tensorT = tf.tidy(() => tf.transpose(tf.tensor2d(values, [shape.out, shape.in])));
    for (const n of ROWS) {
      const x = tf.tensor2d(random(n * shape.in), [n, shape.in]);
      const xnnpack = time(() => tf.matMul(x, tensorT));
      const cells: string[] = [];
      for (const w of weights.values()) {
        // Each kernel in turn, by moving the routing threshold above or below N.
        const timed = (gemv: boolean): number => {
          const previous = setFrozenGemvRows(gemv ? Infinity : 0);
          try {
            return time(() => w.matmul(x));
          } finally {
            setFrozenGemvRows(previous);
          }
        };
        cells.push(`${timed(true).toFixed(0)} / ${timed(false).toFixed(0)}`);
      }
      const routed = n <= FROZEN_GEMV_ROWS ? 'GEMV' : 'tiled';
      lines.push(`| ${shape.model} | ${shape.name} [${shape.out}, ${shape.in}] | ${n} | ${xnnpack.toFixed(0)} | ${cells.join(' | ')} | ${routed} |`);
      x.dispose();
    }
    tensorT.dispose();
    for (const w of weights.values()) w.dispose();
  }
  return [
    '## Frozen-weight kernels: x [N, in]·Wᵀ at the real shapes (µs per product, median)',
    '',
    `wasm; native store kernels: ${addon.weightKernels()}, ${addon.getThreads()} threads. GEMV / tiled: the two native kernels on the same weight;`,
    `"routed" is what FROZEN_GEMV_ROWS = ${FROZEN_GEMV_ROWS} picks.`,
    '',
    '| model | weight [out, in] | N | XNNPACK F32 | BF16 GEMV / tiled | Q8_0 GEMV / tiled | Q4_0 GEMV / tiled | routed |',
    '|---|---|---|---|---|---|---|---|',
    ...lines,
    '',
  ].join('\n');
}
