/**
 * Real-size measurements by hand (too slow for `npm run bench` on a shared 2-core machine), on a model folder of a
 * real shape with random BF16 weights written here:
 *
 *   node --import ./bin/register-ts.js bench/realsize-model.ts write <dir> 0.5b|1.5b|<config.json>
 *   node --import ./bin/register-ts.js bench/realsize-model.ts step <dir> store|store-q8|tensor|plain
 *   node --import ./bin/register-ts.js bench/realsize-model.ts decode <dir> store|store-q8|tensor|plain
 *
 * A config.json (a published one: test/fixtures/model-configs/Qwen3-0.6B.json, gemma-3-270m.json,
 * Phi-3-mini-4k-instruct.json...) writes that model's own tensors, names and shapes as its architecture loads them.
 * store: native kernels with the frozen-weight store (BF16 as in the file; store-q8 quantizes to Q8_0); tensor:
 * native kernels on float32 tensors (frozenStore: false); plain: the wasm backend's own kernels (no addon). A
 * setting ending in "@cpu" runs on the cpu backend instead of wasm (no 4 GB heap for the activations).
 * step: a LoRA step (r=16, alpha=32 on every linear kind of the blocks, batch 2 × 256, the engine's loss and AdamW), median
 * of 3 after a warm-up (RECOMPUTE=1 recomputes each block's activations); decode: greedy tokens/s after a 16-token
 * prompt. Each prints one JSON line with the peak
 * resident memory of the process (run each setting in its own process).
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../main/engine/backend/index';
import { adapterVariables, injectAdapter } from '../main/engine/lora/inject';
import { loadModel, parseModelConfig, tensorShapesOf } from '../main/engine/models/registry';
import { frozenWeightBytes } from '../main/engine/models/weights';
import { batchLoss } from '../main/engine/train/loss';
import { AdamW } from '../main/engine/train/optimizer';
import { QWEN25_05B, QWEN25_15B, qwen2Config, qwen2Tensors, writeRandomFolder } from './random-model';

const SHAPES = { '0.5b': QWEN25_05B, '1.5b': QWEN25_15B } as const;

/** The tensors a published config's model holds, as its architecture loads them, and that config. */
function fromConfig(path: string, dir: string): { tensors: [string, number[]][]; config: Record<string, unknown> } {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  return { tensors: [...tensorShapesOf(parseModelConfig(raw, dir, path))], config: raw };
}

/** Writes the folder (config.json + a random BF16 model.safetensors, tensor by tensor: bench/random-model.ts). */
function write(dir: string, what: string): void {
  if (what === '0.5b' || what === '1.5b') writeRandomFolder(dir, qwen2Tensors(SHAPES[what]), qwen2Config(SHAPES[what]));
  else {
    const { tensors, config } = fromConfig(what, dir);
    writeRandomFolder(dir, tensors, config);
  }
}

async function load(dir: string, choice: string) {
  const [setting = 'store', backendName = 'wasm'] = choice.split('@');
  const native = setting === 'plain' ? { disabled: true } : { frozenStore: setting !== 'tensor' };
  const backend = await initBackend(backendName === 'cpu' ? 'cpu' : 'wasm', { native });
  const started = performance.now();
  const model = await loadModel(dir, setting === 'store-q8' ? { precision: 'q8_0' } : {});
  return { model, kernels: backend.matmulKernels, loadSeconds: (performance.now() - started) / 1000 };
}

const peakRssGiB = (): number => process.resourceUsage().maxRSS / 2 ** 20;

async function step(dir: string, setting: string): Promise<void> {
  const { model, kernels, loadSeconds } = await load(dir, setting);
  const vocab = model.config.vocabSize;
  const variables = adapterVariables(injectAdapter(model, 'bench', {
    targetModules: 'all-linear', rank: 16, alpha: 32, dropout: 0,
  }));
  const names = [...variables.keys()];
  const optimizer = new AdamW(variables, { weightDecay: 0 });
  const random = (seed: number): Int32Array => Int32Array.from({ length: 512 }, (_, i) => (i * 7919 + seed * 104729) % vocab);
  const batch = { batchSize: 2, seqLen: 256, inputs: random(3), labels: random(4), weights: new Float32Array(512).fill(1), tokens: 512 };
  const times: number[] = [];
  for (let i = 0; i < 4; i++) {
    const started = performance.now();
    const { value, grads } = tf.variableGrads(() => batchLoss(model, batch, { recompute: process.env.RECOMPUTE === '1' }), [...variables.values()]);
    value.dataSync();
    optimizer.apply(new Map(Object.values(grads).map((g, j) => [names[j] as string, g])), 1e-4);
    tf.dispose([value, ...Object.values(grads)]);
    if (i > 0) times.push((performance.now() - started) / 1000);
  }
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({
    what: 'lora-step', setting, kernels, loadSeconds, stepSeconds: times[1], steps: times, peakRssGiB: peakRssGiB(),
    frozen: frozenWeightBytes(model.linears), heapTensorsGiB: tf.memory().numBytes / 2 ** 30,
  }));
}

async function decode(dir: string, setting: string): Promise<void> {
  const { model, kernels, loadSeconds } = await load(dir, setting);
  const prompt = Array.from({ length: 16 }, (_, i) => (i * 7919) % model.config.vocabSize);
  const run = (tokens: number): number => {
    const cache = model.createCache();
    let next = prompt;
    const started = performance.now();
    for (let i = 0; i < tokens; i++) {
      const id = tf.tidy(() => {
        const logits = model.forward(tf.tensor2d([next], [1, next.length], 'int32'), { cache });
        return tf.argMax(tf.reshape(tf.slice(logits, [0, next.length - 1, 0], [1, 1, -1]), [-1])).dataSync()[0] ?? 0;
      });
      next = [id];
    }
    cache.dispose();
    return (performance.now() - started) / 1000;
  };
  run(4);
  const tokens = 32;
  const seconds = run(tokens + 1) - run(1); // the prompt's prefill taken out
  console.log(JSON.stringify({ what: 'decode', setting, kernels, loadSeconds, tokensPerSecond: tokens / seconds, peakRssGiB: peakRssGiB(), frozen: frozenWeightBytes(model.linears) }));
}

const [command, dir, arg] = process.argv.slice(2);
if (command === 'write' && dir && arg) write(dir, arg);
else if (command === 'step' && dir) await step(dir, arg ?? 'store');
else if (command === 'decode' && dir) await decode(dir, arg ?? 'store');
else {
  console.error('usage: realsize-model.ts write <dir> 0.5b|1.5b|<config.json> | step <dir> <setting> | decode <dir> <setting>');
  process.exit(2);
}
