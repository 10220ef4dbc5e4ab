/**
 * Training throughput and memory: LoRA (r=8 on q and v) against full fine-tuning of the same model in this engine,
 * and against a PyTorch LoRA loop (bench/train_torch.py, Debian's python3-torch on OpenBLAS, 2 threads) on the same
 * Llama shape, batch and sequence length. The engine side runs the real path: loadModel on a random HF folder,
 * injectAdapter / fullTrainableVariables, trainLoop (AdamW, clipping), on the default backend (wasm + native sgemm
 * where the addon loads). Each engine run is a child process of its own, so its peak resident memory is its own.
 * Last, the app's path against the CLI's on one recipe (bench/app-vs-cli.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../main/engine/backend/index';
import { writeSafetensors } from '../main/engine/io/safetensors';
import { loadModel } from '../main/engine/models/registry';
import { adapterVariables, injectAdapter } from '../main/engine/lora/inject';
import { trainLoop } from '../main/engine/train/loop';
import { fullTrainableVariables } from '../main/engine/train/trainable';
import { Rng } from '../main/engine/train/rng';
import type { TokenizedExample } from '../main/engine/train/tokenize';
import { appVersusCli } from './app-vs-cli';
import { sized } from './quick';

const SHAPE = sized({ hidden: 384, layers: 6, heads: 6, mlp: 1024, vocab: 4096, batch: 8, seq: 128, rank: 8 }, { hidden: 48, layers: 2, heads: 6, mlp: 128, vocab: 256, batch: 2, seq: 16, rank: 4 });
const STEPS = sized(3, 1); // timed optimizer steps, after one untimed warm-up step
const PYTHON = '/usr/bin/python3';

/** A random Llama folder of SHAPE (tied embeddings, std 0.02), as transformers would initialise it. */
function randomLlamaFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lorasmith-bench-llama-'));
  const { hidden: h, mlp, vocab, layers } = SHAPE;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: h, intermediate_size: mlp, num_hidden_layers: layers,
    num_attention_heads: SHAPE.heads, num_key_value_heads: SHAPE.heads, vocab_size: vocab, max_position_embeddings: 512,
    rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu',
  }));
  const rng = new Rng(1);
  const normal = (n: number) => Float32Array.from({ length: n }, () => 0.02 * Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next()));
  const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
  const add = (name: string, shape: number[], data?: Float32Array) => tensors.set(name, { dtype: 'F32', shape, data: data ?? normal(shape.reduce((a, b) => a * b, 1)) });
  add('model.embed_tokens.weight', [vocab, h]);
  add('model.norm.weight', [h], new Float32Array(h).fill(1));
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    for (const m of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) add(`${p}.self_attn.${m}.weight`, [h, h]);
    add(`${p}.mlp.gate_proj.weight`, [mlp, h]);
    add(`${p}.mlp.up_proj.weight`, [mlp, h]);
    add(`${p}.mlp.down_proj.weight`, [h, mlp]);
    add(`${p}.input_layernorm.weight`, [h], new Float32Array(h).fill(1));
    add(`${p}.post_attention_layernorm.weight`, [h], new Float32Array(h).fill(1));
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return dir;
}

function syntheticRows(count: number): TokenizedExample[] {
  const rng = new Rng(7);
  // seq + 1 tokens: the model sees seq, every next token trains
  return Array.from({ length: count }, (_, i) => {
    const ids = Array.from({ length: SHAPE.seq }, () => Math.floor(rng.next() * SHAPE.vocab));
    return { line: i + 1, ids, train: ids.map(() => 1) };
  });
}

interface EngineResult { stepSeconds: number; tokensPerSecond: number; peakBytes: number; trainable: number; parameters: number; kernels: string; backend: string; matmulKernels: string }

async function engineRun(dir: string, mode: 'lora' | 'full'): Promise<EngineResult> {
  const backend = await initBackend('auto', { native: {} });
  const model = await loadModel(dir, { trainable: mode === 'full' });
  const variables = mode === 'lora'
    ? adapterVariables(injectAdapter(model, 'bench', { targetModules: ['q_proj', 'v_proj'], rank: SHAPE.rank, alpha: 2 * SHAPE.rank, dropout: 0 }))
    : fullTrainableVariables(model);
  const rows = syntheticRows(SHAPE.batch * (STEPS + 1));
  const stamps: number[] = [];
  await trainLoop({
    model, variables, trainRows: rows, padId: 0, hyperparameters: { maxSteps: STEPS + 1, batchSize: SHAPE.batch, learningRate: 1e-4, seed: 1 },
    onProgress: (e) => { if (e.kind === 'step') stamps.push(performance.now()); },
  });
  const gaps = stamps.slice(1).map((t, i) => (t - (stamps[i] as number)) / 1000).sort((a, b) => a - b);
  const stepSeconds = gaps[Math.floor(gaps.length / 2)] ?? Number.NaN;
  let kernels = '';
  if (mode === 'lora') {
    const varList = [...variables.values()];
    const batch = rows.slice(0, SHAPE.batch);
    const ids = tf.tensor2d(batch.map((r) => [...r.ids]), [SHAPE.batch, SHAPE.seq], 'int32');
    const profile = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(() => tf.mean(model.forward(ids, { training: true })) as tf.Scalar, varList);
      tf.dispose([value, ...Object.values(grads)]);
    });
    const byName = new Map<string, number>();
    // Registered kernels only: tf.profile also lists custom-gradient scopes, whose time is their kernels' again.
    for (const k of profile.kernels) {
      if (tf.getKernel(k.name, tf.getBackend())) byName.set(k.name, (byName.get(k.name) ?? 0) + (k.kernelTimeMs as number));
    }
    const total = [...byName.values()].reduce((a, b) => a + b, 0);
    kernels = [...byName].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([n, ms]) => `${n} ${((100 * ms) / total).toFixed(0)}%`).join(', ');
    ids.dispose();
  }
  const trainable = [...variables.values()].reduce((n, v) => n + v.size, 0);
  const result = {
    stepSeconds, tokensPerSecond: (SHAPE.batch * SHAPE.seq) / stepSeconds, peakBytes: process.resourceUsage().maxRSS * 1024, trainable,
    parameters: model.parameterCount(), kernels, backend: backend.name, matmulKernels: backend.matmulKernels,
  };
  model.dispose();
  return result;
}

interface TorchResult { stepSeconds: number; tokensPerSecond: number; peakRssBytes: number; trainableParameters: number; parameters: number; torch: string; blas: string }

function ensureTorch(): string | null {
  const probe = () => spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  if (existsSync(PYTHON) && probe()) return null;
  const install = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'python3-torch'], { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (install.status === 0 && probe()) return null;
  return `python3-torch is not installed and apt-get could not install it (${(install.stderr || String(install.error)).trim().split('\n').pop()})`;
}

function torchRun(mode: 'lora' | 'full'): TorchResult {
  const args = ['--mode', mode, '--threads', '2', '--steps', String(STEPS), ...Object.entries(SHAPE).flatMap(([k, v]) => [`--${k}`, String(v)])];
  const run = spawnSync(PYTHON, [join(import.meta.dirname, 'train_torch.py'), ...args], {
    encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '2', OMP_NUM_THREADS: '2' }, timeout: 300_000,
  });
  if (run.status !== 0) throw new Error(`train_torch.py failed: ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop() as string) as TorchResult;
}

const MiB = (b: number) => (b / 2 ** 20).toFixed(0);

/** An engine run in a child process of its own (this file run with `engine <dir> <mode>`). */
function engineChild(dir: string, mode: 'lora' | 'full'): EngineResult {
  const run = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), 'engine', dir, mode], { encoding: 'utf8', timeout: 1_200_000 });
  if (run.status !== 0) throw new Error(`engine ${mode} run failed: ${(run.stderr || String(run.error)).trim().split('\n').slice(-3).join(' ')}`);
  return JSON.parse(run.stdout.trim().split('\n').pop() as string) as EngineResult;
}

export async function run(): Promise<string> {
  const dir = randomLlamaFolder();
  const lines = ['## Training: LoRA vs full fine-tuning vs PyTorch', ''];
  try {
    const lora = engineChild(dir, 'lora');
    const full = engineChild(dir, 'full');
    lines.push(
      `Llama shape: hidden ${SHAPE.hidden}, ${SHAPE.layers} layers, ${SHAPE.heads} heads, MLP ${SHAPE.mlp}, vocab ${SHAPE.vocab} (tied), batch ${SHAPE.batch} × sequence ${SHAPE.seq}; LoRA r=${SHAPE.rank} on q_proj and v_proj. Median of ${STEPS} optimizer steps after a warm-up step.`,
      `Engine: backend ${lora.backend}, ${lora.matmulKernels}. Memory is each run's peak resident set (its own child process), the engine's and PyTorch's alike.`,
      '',
    );
    const torchProblem = ensureTorch();
    const torchLora = torchProblem ? null : torchRun('lora');
    const torchFull = torchProblem ? null : torchRun('full');
    lines.push('| run | parameters trained | step (s) | tokens/s | peak memory (MiB) |', '|---|---:|---:|---:|---:|');
    lines.push(`| lorasmith LoRA | ${lora.trainable.toLocaleString('en-US')} of ${lora.parameters.toLocaleString('en-US')} | ${lora.stepSeconds.toFixed(2)} | ${lora.tokensPerSecond.toFixed(0)} | ${MiB(lora.peakBytes)} (RSS) |`);
    lines.push(`| lorasmith full | ${full.trainable.toLocaleString('en-US')} | ${full.stepSeconds.toFixed(2)} | ${full.tokensPerSecond.toFixed(0)} | ${MiB(full.peakBytes)} (RSS) |`);
    if (torchLora && torchFull) {
      lines.push(`| PyTorch ${torchLora.torch} LoRA | ${torchLora.trainableParameters.toLocaleString('en-US')} | ${torchLora.stepSeconds.toFixed(2)} | ${torchLora.tokensPerSecond.toFixed(0)} | ${MiB(torchLora.peakRssBytes)} (RSS) |`);
      lines.push(`| PyTorch ${torchFull.torch} full | ${torchFull.trainableParameters.toLocaleString('en-US')} | ${torchFull.stepSeconds.toFixed(2)} | ${torchFull.tokensPerSecond.toFixed(0)} | ${MiB(torchFull.peakRssBytes)} (RSS) |`);
    }
    lines.push('', 'Ratios:', '');
    lines.push(`- LoRA vs full in this engine: ${(full.peakBytes / lora.peakBytes).toFixed(2)}× less memory, ${(lora.tokensPerSecond / full.tokensPerSecond).toFixed(2)}× the tokens/s (the paper: about 3× less memory, 25% faster, at GPT-3 scale where weights and optimizer state dominate).`);
    if (torchLora) {
      const ratio = lora.stepSeconds / torchLora.stepSeconds;
      lines.push(`- LoRA step vs PyTorch LoRA step: ${ratio.toFixed(2)}× PyTorch's time (target: within 4×: ${ratio <= 4 ? 'met' : 'not met'}). PyTorch BLAS: ${torchLora.blas}.`);
    } else lines.push(`- PyTorch: skipped (${torchProblem}).`);
    lines.push(`- Where a LoRA step's kernel time goes (forward + backward, tf.profile): ${lora.kernels}.`);
    lines.push('', ...(await appVersusCli()));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return lines.join('\n') + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.argv[2] === 'engine') {
  console.log(JSON.stringify(await engineRun(process.argv[3] as string, process.argv[4] as 'lora' | 'full')));
}
