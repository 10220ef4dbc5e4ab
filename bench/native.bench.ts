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

const SHAPE = { hidden: 384, layers: 6, heads: 6, mlp: 1024, vocab: 4096, batch: 8, seq: 128, rank: 8 };

type Setting = { label: string; native: boolean; threads: number };
const SETTINGS: Setting[] = [
  { label: 'wasm', native: false, threads: 1 },
  { label: 'wasm + native, 1 thread', native: true, threads: 1 },
  { label: 'wasm + native, 2 threads', native: true, threads: 2 },
];

function use(setting: Setting): void {
  if (setting.native) registerNativeKernels('wasm', { threads: setting.threads });
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

/** GFLOP/s of op(a)·op(b) for the given shapes. */
function matMulRate(aShape: number[], bShape: number[], transposeB: boolean, flops: number, repeats: number): number {
  const a = tf.randomNormal(aShape, 0, 1, 'float32', 1);
  const b = tf.randomNormal(bShape, 0, 1, 'float32', 2);
  const ms = time(() => tf.tidy(() => void tf.matMul(a, b, false, transposeB).dataSync()), repeats);
  tf.dispose([a, b]);
  return flops / ms / 1e6;
}

interface LoraLayerWeights {
  norm1: tf.Tensor1D; norm2: tf.Tensor1D;
  wq: tf.Tensor2D; wk: tf.Tensor2D; wv: tf.Tensor2D; wo: tf.Tensor2D;
  wGate: tf.Tensor2D; wUp: tf.Tensor2D; wDown: tf.Tensor2D;
  // LoRA on q and v, pre-transposed as LinearLayer keeps them: At [in, r], Bt [r, out].
  qAt: tf.Variable; qBt: tf.Variable; vAt: tf.Variable; vBt: tf.Variable;
}

/** A seeded Llama-shaped model and one LoRA training step on a fixed batch. */
function buildLoraStep(): { step: () => number; dispose: () => void } {
  const { hidden: H, layers: L, heads: NH, mlp: F, vocab: V, batch: B, seq: T, rank: R } = SHAPE;
  const HD = H / NH;
  let seed = 10;
  const normal = (shape: number[]): tf.Tensor => tf.randomNormal(shape, 0, 0.02, 'float32', seed++);
  const keep: tf.Tensor[] = [];
  const kept = <X extends tf.Tensor>(x: X): X => (keep.push(x), x);
  const embedding = kept(normal([V, H]) as tf.Tensor2D);
  const embeddingT = kept(tf.transpose(embedding)); // tied head, pre-transposed: [H, V]
  const layers: LoraLayerWeights[] = Array.from({ length: L }, () => ({
    norm1: kept(tf.ones([H])), norm2: kept(tf.ones([H])),
    wq: kept(normal([H, H]) as tf.Tensor2D), wk: kept(normal([H, H]) as tf.Tensor2D),
    wv: kept(normal([H, H]) as tf.Tensor2D), wo: kept(normal([H, H]) as tf.Tensor2D),
    wGate: kept(normal([H, F]) as tf.Tensor2D), wUp: kept(normal([H, F]) as tf.Tensor2D),
    wDown: kept(normal([F, H]) as tf.Tensor2D),
    qAt: kept(tf.variable(normal([H, R]))), qBt: kept(tf.variable(normal([R, H]))),
    vAt: kept(tf.variable(normal([H, R]))), vBt: kept(tf.variable(normal([R, H]))),
  }));
  const finalNorm = kept(tf.ones([H]));
  // Causal mask [T, T]: 0 on and below the diagonal, -1e9 above.
  const mask = kept(tf.tidy(() => tf.mul(tf.sub(tf.linalg.bandPart(tf.ones([T, T]), -1, 0), 1), 1e9)));
  const [cos, sin] = tf.tidy(() => {
    const angles = tf.mul(tf.expandDims(tf.range(0, T), 1),
      tf.expandDims(tf.pow(10000, tf.mul(tf.range(0, HD / 2), -2 / HD)), 0)); // [T, HD/2]
    return [tf.concat([tf.cos(angles), tf.cos(angles)], 1), tf.concat([tf.sin(angles), tf.sin(angles)], 1)];
  });
  kept(cos as tf.Tensor);
  kept(sin as tf.Tensor);
  const ids = kept(tf.randomUniform([B * T], 0, V, 'int32', 3));
  const targets = kept(tf.oneHot(tf.randomUniform([B * T], 0, V, 'int32', 4), V));

  const rmsNorm = (x: tf.Tensor, weight: tf.Tensor): tf.Tensor2D =>
    tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-6))), weight) as tf.Tensor2D;
  const withLora = (x: tf.Tensor2D, w: tf.Tensor2D, At: tf.Variable, Bt: tf.Variable): tf.Tensor =>
    tf.add(tf.matMul(x, w), tf.mul(tf.matMul(tf.matMul(x, At as tf.Tensor2D), Bt as tf.Tensor2D), 2)); // alpha/r = 2
  const toHeads = (x: tf.Tensor): tf.Tensor => tf.transpose(tf.reshape(x, [B, T, NH, HD]), [0, 2, 1, 3]); // [B, NH, T, HD]
  const rope = (x: tf.Tensor): tf.Tensor => {
    const [x1, x2] = tf.split(x, 2, -1) as [tf.Tensor, tf.Tensor];
    return tf.add(tf.mul(x, cos as tf.Tensor), tf.mul(tf.concat([tf.neg(x2), x1], -1), sin as tf.Tensor));
  };
  const loss = (): tf.Scalar => {
    let x = tf.gather(embedding, ids) as tf.Tensor2D; // [B*T, H]
    for (const layer of layers) {
      const h = rmsNorm(x, layer.norm1);
      const q = rope(toHeads(withLora(h, layer.wq, layer.qAt, layer.qBt)));
      const k = rope(toHeads(tf.matMul(h, layer.wk)));
      const v = toHeads(withLora(h, layer.wv, layer.vAt, layer.vBt));
      const p = tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(HD)), mask)); // [B, NH, T, T]
      const attention = tf.reshape(tf.transpose(tf.matMul(p, v), [0, 2, 1, 3]), [B * T, H]) as tf.Tensor2D;
      x = tf.add(x, tf.matMul(attention, layer.wo));
      const h2 = rmsNorm(x, layer.norm2);
      const gate = tf.matMul(h2, layer.wGate);
      x = tf.add(x, tf.matMul(tf.mul(tf.mul(gate, tf.sigmoid(gate)), tf.matMul(h2, layer.wUp)), layer.wDown));
    }
    const logits = tf.matMul(rmsNorm(x, finalNorm), embeddingT); // [B*T, V]
    return tf.losses.softmaxCrossEntropy(targets, logits) as tf.Scalar;
  };
  const variables = layers.flatMap((l) => [l.qAt, l.qBt, l.vAt, l.vBt]);
  const optimizer = tf.train.adam(1e-4);
  return {
    step: () => tf.tidy(() => {
      const { value, grads } = tf.variableGrads(loss, variables);
      optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
      return value.dataSync()[0] ?? NaN;
    }),
    dispose: () => {
      optimizer.dispose();
      tf.dispose(keep);
    },
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
async function generationRates(): Promise<Map<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'native-bench-'));
  const rates = new Map<string, number>();
  try {
    await writeRandomLlama(join(dir, 'llama'));
    const { loadModel } = await import('../main/engine/models/registry');
    const model = await loadModel(join(dir, 'llama'));
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
    model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
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

/** Milliseconds per kernel name over one step, largest first (tf.profile; wasm/cpu time on the CPU clock). */
async function profileStep(step: () => number): Promise<[string, number][]> {
  const info = await tf.profile(() => void step());
  const byKernel = new Map<string, number>();
  for (const kernel of info.kernels) {
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
  const probe = registerNativeKernels('wasm');
  const lines = ['## Native kernels (OpenBLAS sgemm through N-API) on the wasm backend', '', probe.detail, ''];
  if (!probe.active) return [...lines, 'Native addon unavailable: nothing to compare.', ''].join('\n');

  lines.push('| Setting | 1024³ matMul GFLOP/s | attention q·kᵀ [48,128,64] GFLOP/s | LoRA step ms | steps/s | generation tokens/s |');
  lines.push('|---|---:|---:|---:|---:|---:|');
  const generation = await generationRates();
  const lora = buildLoraStep();
  const results = new Map<string, number>();
  for (const setting of SETTINGS) {
    use(setting);
    const big = matMulRate([1024, 1024], [1024, 1024], false, 2 * 1024 ** 3, setting.native ? 10 : 2);
    const attention = matMulRate([48, 128, 64], [48, 128, 64], true, 2 * 48 * 128 * 128 * 64, setting.native ? 20 : 3);
    const stepMs = time(() => void lora.step(), setting.native ? 5 : 1);
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
  const torchProblem = torch.find((t) => typeof t.ms === 'string')?.ms;
  const plain = results.get('wasm') ?? NaN;
  const best = Math.min(results.get('wasm + native, 1 thread') ?? NaN, results.get('wasm + native, 2 threads') ?? NaN);
  lines.push('', `Step speed-up with the addon: ${(plain / best).toFixed(1)}× (${SHAPE.layers} layers, hidden ${SHAPE.hidden}, ` +
    `batch ${SHAPE.batch}×${SHAPE.seq}, r=${SHAPE.rank} on q,v). PyTorch on the same shapes: bench/train.bench.ts. ` +
    'Generation: the engine\'s Llama of the same shape (random weights, tied head), greedy with the KV cache, batch 1, ' +
    '32 tokens after a 16-token prompt.');
  const torchTwo = torch.find((t) => t.threads === 2)?.ms;
  const nativeTwo = results.get('wasm + native, 2 threads') ?? NaN;
  if (typeof torchTwo === 'number') {
    lines.push('', `LoRA step on 2 threads: wasm + native ${nativeTwo.toFixed(0)} ms against PyTorch ${torchTwo.toFixed(0)} ms ` +
      `(${(torchTwo / nativeTwo).toFixed(2)}× PyTorch's speed; the target is ≥ 1×).`);
  } else if (torchProblem) lines.push('', `PyTorch: skipped (${torchProblem}).`);

  use({ label: 'profile', native: true, threads: 2 });
  const profile = await profileStep(lora.step);
  const total = profile.reduce((sum, [, ms]) => sum + ms, 0);
  lines.push('', `Where one step's kernel time goes with the addon (${nativeKernelStatus('wasm').detail}):`, '',
    '| Kernel | ms | share |', '|---|---:|---:|');
  for (const [name, ms] of profile.slice(0, 10)) lines.push(`| ${name} | ${ms.toFixed(0)} | ${(100 * ms / total).toFixed(0)}% |`);
  lora.dispose();
  unregisterNativeKernels('wasm');
  return [...lines, ''].join('\n');
}
