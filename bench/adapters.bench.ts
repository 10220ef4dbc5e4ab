/**
 * Adapters on one base, on a SmolLM-135M-shaped llama (random bf16 weights, 30 layers, hidden 576): how long a
 * switch between adapters takes against reloading the base, and greedy decoding latency for the base alone, with
 * an adapter kept apart (unmerged), and with the same adapter merged (the paper: merging adds no latency).
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportPeftAdapter } from '../main/engine/adapters/peft';
import { ResidentAdapters } from '../main/engine/adapters/resident';
import { initBackend } from '../main/engine/backend/index';
import { writeSafetensors, type WritableTensor } from '../main/engine/io/safetensors';
import { resolveLoraConfig } from '../main/engine/lora/config';
import type { PeftModuleWeights } from '../main/engine/lora/inject';
import { loadModel } from '../main/engine/models/registry';
import type { CausalLM } from '../main/engine/models/types';
import { Rng } from '../main/engine/train/rng';
import { sized } from './quick';

const SHAPE = sized({ hidden: 576, inter: 1536, layers: 30, heads: 9, kvHeads: 3, vocab: 49152 }, { hidden: 72, inter: 192, layers: 2, heads: 9, kvHeads: 3, vocab: 512 });
const PROMPT = 16;
const NEW_TOKENS = 12;
const ROUNDS = sized(3, 1);
const RANK = 16;

function random(rng: Rng, n: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.uniform(-scale, scale);
  return out;
}

/** The SmolLM-135M module list: path -> [out, in]. */
function linearShapes(): Map<string, [number, number]> {
  const { hidden: d, inter, layers, kvHeads } = SHAPE;
  const kv = kvHeads * (d / SHAPE.heads);
  const shapes = new Map<string, [number, number]>();
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    shapes.set(`${p}.self_attn.q_proj`, [d, d]);
    shapes.set(`${p}.self_attn.k_proj`, [kv, d]);
    shapes.set(`${p}.self_attn.v_proj`, [kv, d]);
    shapes.set(`${p}.self_attn.o_proj`, [d, d]);
    shapes.set(`${p}.mlp.gate_proj`, [inter, d]);
    shapes.set(`${p}.mlp.up_proj`, [inter, d]);
    shapes.set(`${p}.mlp.down_proj`, [d, inter]);
  }
  return shapes;
}

function writeBase(dir: string): void {
  const rng = new Rng(1);
  const { hidden: d, vocab } = SHAPE;
  const tensors = new Map<string, WritableTensor>();
  const ones = new Float32Array(d).fill(1);
  tensors.set('model.embed_tokens.weight', { dtype: 'BF16', shape: [vocab, d], data: random(rng, vocab * d, 0.05) });
  tensors.set('model.norm.weight', { dtype: 'BF16', shape: [d], data: ones });
  for (let i = 0; i < SHAPE.layers; i++) {
    tensors.set(`model.layers.${i}.input_layernorm.weight`, { dtype: 'BF16', shape: [d], data: ones });
    tensors.set(`model.layers.${i}.post_attention_layernorm.weight`, { dtype: 'BF16', shape: [d], data: ones });
  }
  for (const [path, [out, inF]] of linearShapes()) {
    tensors.set(`${path}.weight`, { dtype: 'BF16', shape: [out, inF], data: random(rng, out * inF, 1 / Math.sqrt(inF)) });
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: d, intermediate_size: SHAPE.inter,
    num_attention_heads: SHAPE.heads, num_hidden_layers: SHAPE.layers, num_key_value_heads: SHAPE.kvHeads,
    vocab_size: vocab, max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true,
    hidden_act: 'silu', bos_token_id: 0, eos_token_id: 0, torch_dtype: 'bfloat16',
  }));
}

function writeAdapter(dir: string, seed: number): void {
  const rng = new Rng(seed);
  const modules = new Map<string, PeftModuleWeights>();
  for (const [path, [out, inF]] of linearShapes()) {
    modules.set(path, { rank: RANK, loraA: random(rng, RANK * inF, 1 / Math.sqrt(inF)), loraB: random(rng, out * RANK, 0.01) });
  }
  const config = resolveLoraConfig({ targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], rank: RANK, alpha: 2 * RANK });
  exportPeftAdapter(dir, { config, meta: { baseModelNameOrPath: 'smollm-135m-shaped', fanInFanOut: false }, modules });
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

interface Decoded {
  readonly prefillMs: number;
  /** ms of each new token */
  readonly stepMs: number[];
  readonly tokens: number[];
}
interface Summary {
  readonly prefillMs: number;
  readonly perTokenMs: number;
}

function summarize(runs: readonly Decoded[]): Summary {
  return { prefillMs: median(runs.map((r) => r.prefillMs)), perTokenMs: median(runs.flatMap((r) => r.stepMs)) };
}

/** Greedy decoding with the KV cache: prefill ms and the ms of each new token. */
async function decode(model: CausalLM): Promise<Decoded> {
  const cache = model.createCache();
  const prompt = Array.from({ length: PROMPT }, (_, i) => (i * 7919) % SHAPE.vocab);
  const tokens: number[] = [];
  const times: number[] = [];
  let input = tf.tensor2d([prompt], [1, PROMPT], 'int32');
  let prefillMs = 0;
  for (let step = 0; step <= NEW_TOKENS; step++) {
    const start = performance.now();
    const logits = model.forward(input, { cache });
    const next = tf.tidy(() => tf.argMax(tf.squeeze(tf.slice(logits, [0, logits.shape[1] - 1, 0], [1, 1, -1])), 0));
    const id = (await next.data())[0] as number;
    const ms = performance.now() - start;
    if (step === 0) prefillMs = ms;
    else times.push(ms);
    tokens.push(id);
    logits.dispose();
    next.dispose();
    input.dispose();
    input = tf.tensor2d([[id]], [1, 1], 'int32');
  }
  input.dispose();
  cache.dispose();
  return { prefillMs, stepMs: times, tokens };
}

function timeLoop(iterations: number, fn: (i: number) => void): number {
  const start = performance.now();
  for (let i = 0; i < iterations; i++) fn(i);
  return ((performance.now() - start) / iterations) * 1000; // µs
}

export async function run(): Promise<string> {
  const backend = await initBackend('wasm');
  const dir = mkdtempSync(join(tmpdir(), 'lorasmith-bench-adapters-'));
  try {
    const baseDir = join(dir, 'base');
    mkdirSync(baseDir);
    writeBase(baseDir);
    writeAdapter(join(dir, 'a'), 2);
    writeAdapter(join(dir, 'b'), 3);

    let start = performance.now();
    const model = await loadModel(baseDir);
    const loadMs = performance.now() - start;
    const params = model.parameterCount();
    const resident = new ResidentAdapters(model);
    start = performance.now();
    resident.loadFromDir('a', join(dir, 'a'));
    const adapterLoadMs = performance.now() - start;
    resident.loadFromDir('b', join(dir, 'b'));

    const switchUs = timeLoop(2000, (i) => resident.use(i % 2 ? 'a' : 'b'));
    const mixUs = timeLoop(2000, (i) => resident.use(i % 2 ? [{ name: 'a', weight: 0.5 }, { name: 'b', weight: 0.5 }] : null));

    resident.use(null);
    await decode(model); // warm-up: kernels compiled, buffers allocated
    // Interleaved rounds, so a neighbour's load on the shared cores hits every variant alike.
    const runs = { base: [] as Decoded[], unmerged: [] as Decoded[], mixed: [] as Decoded[], merged: [] as Decoded[] };
    const mergeTimes: number[] = [];
    const unmergeTimes: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      resident.use(null);
      runs.base.push(await decode(model));
      resident.use('a');
      runs.unmerged.push(await decode(model));
      resident.use([{ name: 'a', weight: 0.5 }, { name: 'b', weight: 0.5 }]);
      runs.mixed.push(await decode(model));
      resident.use(null);
      start = performance.now();
      await resident.merge('a');
      mergeTimes.push(performance.now() - start);
      runs.merged.push(await decode(model));
      start = performance.now();
      resident.unmerge('a');
      unmergeTimes.push(performance.now() - start);
    }
    const [base, unmerged, mixed, merged] = [runs.base, runs.unmerged, runs.mixed, runs.merged].map(summarize) as [Summary, Summary, Summary, Summary];
    const mergeMs = median(mergeTimes);
    const unmergeMs = median(unmergeTimes);
    const sameTokens = runs.merged.every((m, r) => m.tokens.every((t, i) => t === runs.unmerged[r]?.tokens[i]));
    resident.clear();
    model.dispose();

    const row = (name: string, r: Summary) =>
      `| ${name} | ${r.prefillMs.toFixed(0)} | ${r.perTokenMs.toFixed(1)} | ${(1000 / r.perTokenMs).toFixed(1)} |`;
    return [
      '## Adapters: switching, merging, generation latency',
      '',
      `SmolLM-135M-shaped llama (${(params / 1e6).toFixed(0)}M parameters, random bf16 weights), adapters rank ${RANK} on all ` +
        `7 linear kinds of 30 layers; backend ${backend.name} (${backend.matmulKernels}).`,
      '',
      '| operation | time |',
      '|---|---|',
      `| reload the base (loadModel) | ${loadMs.toFixed(0)} ms |`,
      `| load one adapter from its PEFT folder (preflight + upload) | ${adapterLoadMs.toFixed(0)} ms |`,
      `| switch adapter a ↔ b (set the active set on ${resident.model.linears.size} layers) | ${switchUs.toFixed(1)} µs |`,
      `| switch base ↔ 50/50 mix of a and b | ${mixUs.toFixed(1)} µs |`,
      `| merge adapter a into the base (NaN/Inf checked) | ${mergeMs.toFixed(0)} ms |`,
      `| unmerge adapter a | ${unmergeMs.toFixed(0)} ms |`,
      '',
      `Greedy decoding, ${PROMPT}-token prompt, ${NEW_TOKENS} new tokens with the KV cache; ${ROUNDS} interleaved rounds, medians.` +
        ` Merged and unmerged produced ${sameTokens ? 'the same' : 'DIFFERENT'} tokens.`,
      '',
      '| model | prefill ms | ms / token | tokens / s |',
      '|---|---|---|---|',
      row('base', base),
      row('base + adapter a, unmerged', unmerged),
      row('base + mix of a and b, unmerged', mixed),
      row('base with a merged', merged),
      '',
      'Prefill right after a merge or unmerge includes the wasm backend packing the new weight tensors for XNNPACK on ' +
        'their first use; per-token times are what merging changes (the paper: nothing). The cores are shared: compare ' +
        'rows of one run, not runs.',
      '',
    ].join('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
