/**
 * 1024×1024×1024 float32 matmul GFLOP/s (128³ under LORASMITH_BENCH_QUICK=1) on each usable backend, plus the two slow shapes on wasm that the
 * models avoid (a transposed operand, a batched product) to show why frozen weights are kept pre-transposed.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../main/engine/backend/index';
import { sized } from './quick';

const N = sized(1024, 128);
const FLOP = 2 * N ** 3;

/** Runs of `f` for `seconds` (at least 2), each read back asynchronously (webgpu has no synchronous reads). */
async function gflops(label: string, f: () => tf.Tensor, seconds: number): Promise<{ label: string; gflops: number; runs: number }> {
  const once = async () => {
    const t = f();
    try {
      await t.data();
    } finally {
      t.dispose();
    }
  };
  await once(); // warm-up
  let runs = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000 || runs < 2) {
    await once();
    runs++;
  }
  const elapsed = (performance.now() - start) / 1000;
  return { label, gflops: (FLOP * runs) / elapsed / 1e9, runs };
}

export async function run(): Promise<string> {
  const info = await initBackend('cpu');
  const rows: { backend: string; kernels: string; label: string; gflops: number; runs: number }[] = [];
  for (const a of info.available) {
    if (!a.usable) continue;
    const active = await initBackend(a.name);
    const x = tf.randomUniform([N, N]);
    const y = tf.randomUniform([N, N]);
    const seconds = a.name === 'cpu' ? 4 : 3;
    const shapes: [string, () => tf.Tensor][] = [['A·B', () => tf.matMul(x, y)]];
    if (a.name === 'wasm') {
      shapes.push(['A·Bᵀ (transposed operand)', () => tf.matMul(x, y, false, true)]);
      shapes.push([`[4,${N / 4},${N}]·[4,${N},${N / 4}] batched`, () => tf.tidy(() => tf.matMul(tf.reshape(x, [4, N / 4, N]), tf.reshape(y, [4, N, N / 4])))]);
    }
    for (const [label, f] of shapes) {
      const r = await gflops(label, f, seconds);
      // The batched shape does a quarter of the N³ work per call.
      const scale = label.includes('batched') ? 0.25 : 1;
      rows.push({ backend: a.name, kernels: active.matmulKernels, label, gflops: r.gflops * scale, runs: r.runs });
    }
    tf.dispose([x, y]);
  }
  const skipped = info.available.filter((a) => !a.usable).map((a) => `${a.name} (${a.detail})`);
  return [
    `## Matmul: ${N}³ float32`,
    '',
    '| backend | kernels | product | GFLOP/s | runs |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.backend} | ${r.kernels} | ${r.label} | ${r.gflops.toFixed(1)} | ${r.runs} |`),
    '',
    'wasm runs single-threaded under Node (the threaded build needs Web Workers); the native kernels',
    '(bench/native.bench.ts) lift that limit. Not measured here: ' + (skipped.join('; ') || 'none') + '.',
    '',
  ].join('\n');
}
