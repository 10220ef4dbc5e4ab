/**
 * Native kernels (main/engine/backend/native): matMul GFLOP/s and the LoRA training step time on the wasm backend,
 * with and without the addon, for 1 and 2 BLAS threads.
 *
 * The step is the Llama shape (hidden 384, 6 layers, 6 heads, MLP 1024, vocab 4096, batch 8, sequence 128,
 * LoRA r=8 on q and v), written here with plain tfjs ops as the llama family computes it (RMSNorm, RoPE, causal
 * attention, SwiGLU, tied head, cross-entropy, Adam on the LoRA weights only), so it measures the kernels and not
 * a particular model file. PyTorch's loop on the same shapes (bench/train_torch.py, the training benchmark's, on
 * Debian's python3-torch + OpenBLAS) runs in the same process's turn, for 1 and 2 threads, when torch is installed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { register } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import {
  nativeKernelStatus, registerNativeKernels, unregisterNativeKernels,
} from '../main/engine/backend/native/index';
import { sized } from './quick';

const SHAPE = sized({ hidden: 384, layers: 6, heads: 6, mlp: 1024, vocab: 4096, batch: 8, seq: 128, rank: 8 }, { hidden: 48, layers: 2, heads: 6, mlp: 128, vocab: 256, batch: 2, seq: 16, rank: 4 });

type Setting = { label: string; native: boolean; threads: number; fused: boolean };
const SETTINGS: Setting[] = [
  { label: 'wasm', native: false, threads: 1, fused: false },
  { label: 'wasm + native sgemm only, 2 threads', native: true, threads: 2, fused: false },
  { label: 'wasm + native, 1 thread', native: true, threads: 1, fused: true },
  { label: 'wasm + native, 2 threads', native: true, threads: 2, fused: true },
];

/** The settings compare kernels on float32 tensors: frozen weights stay tensors (bench/frozen.bench.ts times the store). */
function use(setting: Setting): void {
  if (setting.native) registerNativeKernels('wasm', { threads: setting.threads, fused: setting.fused, frozenStore: false });
  else unregisterNativeKernels('wasm');
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/** Median milliseconds of `run` over `repeats` timed calls after one warm-up call. */
function time(run: () => void, repeats: number): number {
  run();
  const samples: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    run();
    samples.push(performance.now() - start);
  }
  return median(samples);
}

/** As time(), for work that awaits. */
async function timeAsync(run: () => Promise<unknown>, repeats: number): Promise<number> {
  await run();
  const samples: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    await run();
    samples.push(performance.now() - start);
  }
  return median(samples);
}

/** GFLOP/s of op(a)·op(b) for the given shapes. */
function matMulRate(aShape: number[], bShape: number[], transposeB: boolean, flops: number, repeats: number): number {
  const a = tf.randomNormal(aShape, 0, 1, 'float32', 1);
  const b = tf.randomNormal(bShape, 0, 1, 'float32', 2);
  const ms = time(() => tf.tidy(() => void tf.matMul(a, b, false, transposeB).dataSync()), repeats);
  tf.dispose([a, b]);
  return flops / ms / 1e6;
}

/**
 * One LoRA training step of the engine's own Llama (loadModel on a random folder of SHAPE, injectAdapter r=8 on
 * q_proj and v_proj) through the engine's training loop (its chunked loss, clipping and AdamW) on a fixed batch:
 * what a user's training run does per step, so the fused kernels count where the model and loss use them.
 */
async function buildLoraStep(dir: string): Promise<{ step: () => Promise<number>; dispose: () => void }> {
  const { loadModel } = await import('../main/engine/models/registry');
  const { adapterVariables, injectAdapter } = await import('../main/engine/lora/inject');
  const { trainLoop } = await import('../main/engine/train/loop');
  const { batch: B, seq: T, vocab: V, rank } = SHAPE;
  const model = await loadModel(dir);
  const variables = adapterVariables(injectAdapter(model, 'bench', { targetModules: ['q_proj', 'v_proj'], rank, alpha: 2 * rank, dropout: 0 }));
  const random = (seed: number) => Array.from(tf.tidy(() => tf.randomUniform([T], 0, V, 'int32', seed).dataSync()));
  const rows = Array.from({ length: B }, (_, b) => {
    const ids = random(3 + b);
    return { line: b + 1, ids, train: ids.map(() => 1) };
  });
  const hyperparameters = { maxSteps: 1, batchSize: B, learningRate: 1e-4, seed: 1, checkpointEvery: 0 };
  return {
    step: async () => (await trainLoop({ model, variables, trainRows: rows, padId: 0, hyperparameters })).trainLoss ?? NaN,
    dispose: () => model.dispose(),
  };
}

/** A random Llama folder of SHAPE (config.json + model.safetensors) for the engine's own loader. */
async function writeRandomLlama(dir: string): Promise<void> {
  const { writeSafetensors } = await import('../main/engine/io/safetensors');
  const { hidden: H, layers: L, heads: NH, mlp: F, vocab: V } = SHAPE;
  const shapes: Record<string, number[]> = { 'model.embed_tokens.weight': [V, H], 'model.norm.weight': [H] };
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    Object.assign(shapes, {
      [`${p}.input_layernorm.weight`]: [H], [`${p}.post_attention_layernorm.weight`]: [H],
      [`${p}.self_attn.q_proj.weight`]: [H, H], [`${p}.self_attn.k_proj.weight`]: [H, H],
      [`${p}.self_attn.v_proj.weight`]: [H, H], [`${p}.self_attn.o_proj.weight`]: [H, H],
      [`${p}.mlp.gate_proj.weight`]: [F, H], [`${p}.mlp.up_proj.weight`]: [F, H], [`${p}.mlp.down_proj.weight`]: [H, F],
    });
  }
  const tensors = Object.fromEntries(Object.entries(shapes).map(([name, shape], i) => {
    const values = tf.tidy(() => (name.includes('norm') ? tf.ones(shape) : tf.randomNormal(shape, 0, 0.02, 'float32', 100 + i)).dataSync());
    return [name, { dtype: 'F32' as const, shape, data: values as Float32Array }];
  }));
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: H, intermediate_size: F,
    num_hidden_layers: L, num_attention_heads: NH, num_key_value_heads: NH, hidden_act: 'silu',
    max_position_embeddings: 512, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true, vocab_size: V,
    bos_token_id: 1, eos_token_id: 2,
  }));
}

/** Greedy decoding tokens/s of the engine's own Llama (KV cache, batch 1) after a 16-token prompt, per setting. */
async function generationRates(llamaDir: string): Promise<Map<string, number>> {
  const rates = new Map<string, number>();
  const { loadModel } = await import('../main/engine/models/registry');
  const model = await loadModel(llamaDir);
  try {
    const prompt = Array.from({ length: 16 }, (_, i) => (i * 37) % SHAPE.vocab);
    const decode = (tokens: number): void => {
      const cache = model.createCache();
      let step = prompt;
      for (let i = 0; i < tokens; i++) {
        const next = tf.tidy(() => {
          const logits = model.forward(tf.tensor2d([step], [1, step.length], 'int32'), { cache });
          return tf.argMax(tf.reshape(tf.slice(logits, [0, step.length - 1, 0], [1, 1, -1]), [-1])).dataSync()[0] ?? 0;
        });
        step = [next];
      }
      cache.dispose();
    };
    const tokens = 32;
    for (const setting of SETTINGS) {
      use(setting);
      const ms = time(() => decode(tokens), 2);
      rates.set(setting.label, (tokens * 1000) / ms);
    }
  } finally {
    model.dispose();
  }
  return rates;
}

const PYTHON = '/usr/bin/python3';

/** PyTorch's median LoRA step in ms on the same shapes, or why there is none. */
function torchStepMs(threads: number): number | string {
  if (!existsSync(PYTHON) || spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status !== 0) {
    return 'python3-torch not installed (bench/train.bench.ts installs it)';
  }
  const shapeArgs = Object.entries(SHAPE).flatMap(([key, value]) => [`--${key}`, String(value)]);
  const result = spawnSync(PYTHON, [join(import.meta.dirname, 'train_torch.py'), '--mode', 'lora', '--threads',
    String(threads), '--steps', '5', ...shapeArgs], {
    encoding: 'utf8', timeout: 600_000,
    env: { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) },
  });
  if (result.status !== 0) return `train_torch.py failed: ${(result.stderr || String(result.error)).trim().split('\n').pop()}`;
  const report = JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}') as { stepSeconds?: number };
  return typeof report.stepSeconds === 'number' ? report.stepSeconds * 1000 : 'train_torch.py printed no stepSeconds';
}

/**
 * Milliseconds per kernel name over one step, largest first (tf.profile; wasm/cpu time on the CPU clock). Only
 * registered kernels count: tf.profile also lists custom-gradient scopes, whose time is their kernels' again.
 */
async function profileStep(step: () => Promise<number>): Promise<[string, number][]> {
  const info = await tf.profile(async () => {
    await step();
  });
  const byKernel = new Map<string, number>();
  for (const kernel of info.kernels) {
    if (!tf.getKernel(kernel.name, tf.getBackend())) continue;
    const ms = typeof kernel.kernelTimeMs === 'number' ? kernel.kernelTimeMs : 0;
    byKernel.set(kernel.name, (byKernel.get(kernel.name) ?? 0) + ms);
  }
  return [...byKernel].sort((a, b) => b[1] - a[1]);
}

export async function run(): Promise<string> {
  // The engine's sources import tfjs-core's extensionless ESM gradient files: under plain tsx Node needs this hook
  // (`npm run bench` registers it already through bin/register-ts.js; a second registration is harmless).
  register('../main/engine/backend/tfjs-esm-resolve.mjs', import.meta.url);
  const { initBackend } = await import('../main/engine/backend/index');
  await initBackend('wasm', { native: false });
  // Frozen weights stay tensors here (as use() keeps them): a model loaded now must run under every setting.
  const probe = registerNativeKernels('wasm', { frozenStore: false });
  const lines = ['## Native kernels (OpenBLAS sgemm through N-API) on the wasm backend', '', probe.detail, ''];
  if (!probe.active) return [...lines, 'Native addon unavailable: nothing to compare.', ''].join('\n');

  lines.push('| Setting | 1024³ matMul GFLOP/s | attention q·kᵀ [48,128,64] GFLOP/s | LoRA step ms | steps/s | generation tokens/s |');
  lines.push('|---|---:|---:|---:|---:|---:|');
  const dir = mkdtempSync(join(tmpdir(), 'native-bench-'));
  const llamaDir = join(dir, 'llama');
  await writeRandomLlama(llamaDir);
  const generation = await generationRates(llamaDir);
  const lora = await buildLoraStep(llamaDir);
  const results = new Map<string, number>();
  try {
    for (const setting of SETTINGS) {
      use(setting);
      const big = matMulRate([1024, 1024], [1024, 1024], false, 2 * 1024 ** 3, setting.native ? 10 : 2);
      const attention = matMulRate([48, 128, 64], [48, 128, 64], true, 2 * 48 * 128 * 128 * 64, setting.native ? 20 : 3);
      const stepMs = await timeAsync(lora.step, setting.native ? 7 : 1);
      results.set(setting.label, stepMs);
      const tokensPerSecond = generation.get(setting.label) ?? NaN;
      lines.push(`| ${setting.label} | ${big.toFixed(1)} | ${attention.toFixed(1)} | ${stepMs.toFixed(0)} | ` +
        `${(1000 / stepMs).toFixed(2)} | ${tokensPerSecond.toFixed(1)} |`);
    }
    const torch = [1, 2].map((threads) => ({ threads, ms: torchStepMs(threads) }));
    for (const { threads, ms } of torch) {
      if (typeof ms === 'number') {
        lines.push(`| PyTorch LoRA (same shapes), ${threads} thread${threads === 1 ? '' : 's'} | | | ${ms.toFixed(0)} | ${(1000 / ms).toFixed(2)} | |`);
      }
    }
    const plain = results.get('wasm') ?? NaN;
    const ours = [...results].filter(([label]) => label.startsWith('wasm + native,'));
    const [bestLabel, best] = ours.reduce((a, b) => (b[1] < a[1] ? b : a));
    lines.push('', `Step speed-up with the addon: ${(plain / best).toFixed(1)}× (${SHAPE.layers} layers, hidden ${SHAPE.hidden}, ` +
      `batch ${SHAPE.batch}×${SHAPE.seq}, r=${SHAPE.rank} on q,v; the engine's Llama through its training loop: loss, clipping, AdamW). ` +
      'Generation: the same model (random weights, tied head), greedy with the KV cache, batch 1, 32 tokens after a ' +
      '16-token prompt. PyTorch: bench/train_torch.py on the same shapes (Debian\'s python3-torch, OpenBLAS).');
    const torchTimes = torch.filter((t): t is { threads: number; ms: number } => typeof t.ms === 'number');
    if (torchTimes.length > 0) {
      const torchBest = torchTimes.reduce((a, b) => (b.ms < a.ms ? b : a));
      lines.push('', `Best against best: ${bestLabel} ${best.toFixed(0)} ms per LoRA step against PyTorch's ${torchBest.ms.toFixed(0)} ms ` +
        `(${torchBest.threads} thread${torchBest.threads === 1 ? '' : 's'}): ${(torchBest.ms / best).toFixed(2)}× PyTorch's speed; the target is ≥ 1×.`);
    } else lines.push('', `PyTorch: skipped (${String(torch[0]?.ms)}).`);

    use({ label: 'profile', native: true, threads: 2, fused: true });
    const profile = await profileStep(lora.step);
    const total = profile.reduce((sum, [, ms]) => sum + ms, 0);
    lines.push('', `Where one step's kernel time goes with the addon (${nativeKernelStatus('wasm').detail}):`, '',
      '| Kernel | ms | share |', '|---|---:|---:|');
    for (const [name, ms] of profile.slice(0, 12)) lines.push(`| ${name} | ${ms.toFixed(0)} | ${(100 * ms / total).toFixed(0)}% |`);
  } finally {
    lora.dispose();
    unregisterNativeKernels('wasm');
    rmSync(dir, { recursive: true, force: true });
  }
  return [...lines, ''].join('\n');
}
