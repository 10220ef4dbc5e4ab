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
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../main/engine/backend/index';
import { adapterVariables, injectAdapter } from '../main/engine/lora/inject';
import { loadModel, parseModelConfig, tensorShapesOf } from '../main/engine/models/registry';
import { frozenWeightBytes } from '../main/engine/models/weights';
import { batchLoss } from '../main/engine/train/loss';
import { AdamW } from '../main/engine/train/optimizer';

const SHAPES = {
  '0.5b': { hidden: 896, layers: 24, heads: 14, kvHeads: 2, mlp: 4864, vocab: 151936 },
  '1.5b': { hidden: 1536, layers: 28, heads: 12, kvHeads: 2, mlp: 8960, vocab: 151936 },
} as const;

/** The tensors of a Qwen2.5 shape, and its config.json. */
function qwen25(size: keyof typeof SHAPES): { tensors: [string, number[]][]; config: Record<string, unknown> } {
  const s = SHAPES[size];
  const kv = s.kvHeads * (s.hidden / s.heads);
  const tensors: [string, number[]][] = [['model.embed_tokens.weight', [s.vocab, s.hidden]], ['model.norm.weight', [s.hidden]]];
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    tensors.push(
      [`${p}.input_layernorm.weight`, [s.hidden]], [`${p}.post_attention_layernorm.weight`, [s.hidden]],
      [`${p}.self_attn.q_proj.weight`, [s.hidden, s.hidden]], [`${p}.self_attn.q_proj.bias`, [s.hidden]],
      [`${p}.self_attn.k_proj.weight`, [kv, s.hidden]], [`${p}.self_attn.k_proj.bias`, [kv]],
      [`${p}.self_attn.v_proj.weight`, [kv, s.hidden]], [`${p}.self_attn.v_proj.bias`, [kv]],
      [`${p}.self_attn.o_proj.weight`, [s.hidden, s.hidden]],
      [`${p}.mlp.gate_proj.weight`, [s.mlp, s.hidden]], [`${p}.mlp.up_proj.weight`, [s.mlp, s.hidden]],
      [`${p}.mlp.down_proj.weight`, [s.hidden, s.mlp]],
    );
  }
  const config = {
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: s.hidden, intermediate_size: s.mlp,
    num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, hidden_act: 'silu',
    max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true, vocab_size: s.vocab,
    use_sliding_window: false, bos_token_id: 151643, eos_token_id: 151643, torch_dtype: 'bfloat16',
  };
  return { tensors, config };
}

/** The tensors a published config's model holds, as its architecture loads them. */
function fromConfig(path: string, dir: string): { tensors: [string, number[]][]; config: Record<string, unknown> } {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  return { tensors: [...tensorShapesOf(parseModelConfig(raw, dir, path))], config: { ...raw, torch_dtype: 'bfloat16' } };
}

/** Writes the folder tensor by tensor (a 1.5B model never sits in memory): config.json + model.safetensors. */
function write(dir: string, what: string): void {
  const { tensors, config } = what === '0.5b' || what === '1.5b' ? qwen25(what) : fromConfig(what, dir);
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, shape] of tensors) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  mkdirSync(dir, { recursive: true });
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeSync(fd, length);
  writeSync(fd, Buffer.from(json));
  let state = 12345;
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (const [name, shape] of tensors) {
    const n = shape.reduce((a, b) => a * b, 1);
    const bits = new Uint16Array(n);
    const norm = name.includes('norm');
    const scale = name.includes('embed') ? 0.05 : 1 / Math.sqrt(shape[shape.length - 1] ?? 1);
    for (let i = 0; i < n; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      f32[0] = norm ? 1 : (state / 2 ** 32 - 0.5) * 2 * scale;
      bits[i] = (u32[0] as number) >>> 16;
    }
    writeSync(fd, new Uint8Array(bits.buffer));
  }
  closeSync(fd);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
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
