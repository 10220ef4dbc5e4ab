/**
 * The real-size LoRA step and greedy decoding on one backend, for the GPU check: Qwen2.5-0.5B's shape (hidden 896,
 * 24 layers, 14 query / 2 key-value heads, MLP 4864, vocabulary 151936, tied embedding, q/k/v biases) with random
 * weights rounded to BF16 (as the checkpoint stores them), LoRA r=16, alpha 32 on all seven linear kinds, batch
 * 2 × 256; the engine's own model, loss and AdamW, each step ending in a read of its loss (so GPU work is counted).
 * `tiny` is the same architecture small enough for tests on a CPU.
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs-core';
import type { TensorSource } from '../../main/engine/io/model-checkpoint';
import type { LoadedTensor } from '../../main/engine/io/safetensors';
import { generate } from '../../main/engine/generate/generate';
import { adapterVariables, injectAdapter } from '../../main/engine/lora/inject';
import { buildModel } from '../../main/engine/models/registry';
import type { CausalLM } from '../../main/engine/models/types';
import { makeBatch } from '../../main/engine/train/batching';
import { batchLoss } from '../../main/engine/train/loss';
import { AdamW } from '../../main/engine/train/optimizer';

export interface StepShape {
  readonly hidden: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly mlp: number;
  readonly vocab: number;
  readonly batch: number;
  readonly seq: number;
  readonly rank: number;
  readonly alpha: number;
}

export const SHAPES: Readonly<Record<string, StepShape>> = {
  'qwen2.5-0.5b': { hidden: 896, layers: 24, heads: 14, kvHeads: 2, mlp: 4864, vocab: 151936, batch: 2, seq: 256, rank: 16, alpha: 32 },
  tiny: { hidden: 64, layers: 2, heads: 4, kvHeads: 2, mlp: 128, vocab: 512, batch: 2, seq: 16, rank: 4, alpha: 8 },
};

export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

export interface StepReport {
  readonly backend: string;
  readonly shape: string;
  readonly dims: StepShape;
  readonly parameters: number;
  readonly loraParameters: number;
  readonly loadSeconds: number;
  /** The first step: shader compilation and first uploads included. */
  readonly firstStepMs: number;
  readonly stepMs: readonly number[];
  readonly medianStepMs: number;
  readonly trainTokensPerSecond: number;
  readonly losses: readonly number[];
  readonly decode: { readonly promptTokens: number; readonly newTokens: number; readonly tokensPerSecond: number; readonly decodeTokensPerSecond: number };
}

function qwenConfig(s: StepShape): Record<string, unknown> {
  return {
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: s.hidden, intermediate_size: s.mlp,
    num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, hidden_act: 'silu',
    max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true,
    vocab_size: s.vocab, bos_token_id: 151643, eos_token_id: 151643, use_sliding_window: false,
  };
}

/** Every tensor the architecture reads, with its shape, in the checkpoint's names. */
function qwenTensors(s: StepShape): Map<string, number[]> {
  const kv = s.kvHeads * (s.hidden / s.heads);
  const shapes = new Map<string, number[]>([['model.embed_tokens.weight', [s.vocab, s.hidden]], ['model.norm.weight', [s.hidden]]]);
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    for (const [name, shape] of Object.entries({
      'input_layernorm.weight': [s.hidden], 'post_attention_layernorm.weight': [s.hidden],
      'self_attn.q_proj.weight': [s.hidden, s.hidden], 'self_attn.q_proj.bias': [s.hidden],
      'self_attn.k_proj.weight': [kv, s.hidden], 'self_attn.k_proj.bias': [kv],
      'self_attn.v_proj.weight': [kv, s.hidden], 'self_attn.v_proj.bias': [kv],
      'self_attn.o_proj.weight': [s.hidden, s.hidden],
      'mlp.gate_proj.weight': [s.mlp, s.hidden], 'mlp.up_proj.weight': [s.mlp, s.hidden], 'mlp.down_proj.weight': [s.hidden, s.mlp],
    })) shapes.set(`${p}.${name}`, shape);
  }
  return shapes;
}

/**
 * Random weights made as they are read (so only one tensor's values are ever held here): uniform with the std of
 * transformers' initializer (0.02), rounded to BF16 as the checkpoint would store them; norms are ones.
 */
export function randomQwenSource(s: StepShape, seed = 1): TensorSource {
  const shapes = qwenTensors(s);
  let state = seed >>> 0;
  const bf16 = new Uint32Array(1);
  const f32 = new Float32Array(bf16.buffer);
  return {
    dir: `random ${s.layers}-layer qwen2`,
    has: (name) => shapes.has(name),
    read: (name): LoadedTensor => {
      const shape = shapes.get(name);
      if (!shape) throw new Error(`random qwen2: no tensor '${name}'`);
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      if (name.endsWith('norm.weight')) data.fill(1);
      else {
        const half = 0.02 * Math.sqrt(3);
        for (let i = 0; i < data.length; i++) {
          state = (Math.imul(state, 1664525) + 1013904223) >>> 0; // LCG: fast, and plenty for benchmark weights
          f32[0] = ((state / 4294967296) * 2 - 1) * half;
          bf16[0] = ((bf16[0] as number) + 0x8000) & 0xffff0000; // to BF16, rounding half up
          data[i] = f32[0] as number;
        }
      }
      return { dtype: 'BF16', shape: [...shape], data };
    },
  };
}

const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

export interface PreparedStep {
  readonly shape: StepShape;
  readonly model: CausalLM;
  readonly loraParameters: number;
  readonly loadSeconds: number;
  /** One LoRA step on the fixed batch, ending in a read of its loss; milliseconds. */
  step(): Promise<number>;
  readonly losses: readonly number[];
  dispose(): void;
}

/** The model (random BF16 weights) with its adapter, optimizer and a fixed batch, on the active backend. */
export function prepareStep(shapeName: string, batchShape: Partial<Pick<StepShape, 'batch' | 'seq'>> = {}): PreparedStep {
  const named = SHAPES[shapeName];
  if (!named) throw new Error(`unknown shape '${shapeName}' (${Object.keys(SHAPES).join(', ')})`);
  const s: StepShape = { ...named, ...batchShape };
  const loadStart = performance.now();
  const model = buildModel(qwenConfig(s), randomQwenSource(s));
  const loadSeconds = (performance.now() - loadStart) / 1000;
  const variables = adapterVariables(injectAdapter(model, 'bench', { targetModules: [...LORA_TARGETS], rank: s.rank, alpha: s.alpha, dropout: 0 }));
  const names = [...variables.keys()];
  const optimizer = new AdamW(variables, { weightDecay: 0 });
  // every next token a target: the loss covers all B × T positions but each row's last
  const batch = makeBatch(Array.from({ length: s.batch }, (_, r) => {
    const ids = Array.from({ length: s.seq }, (_, t) => (r * 7919 + t * 104729) % s.vocab);
    return { line: r + 1, ids, train: ids.map(() => 1) };
  }), 0);
  const losses: number[] = [];
  return {
    shape: s,
    model,
    loraParameters: [...variables.values()].reduce((n, v) => n + v.size, 0),
    loadSeconds,
    losses,
    step: async () => {
      const start = performance.now();
      const { value, grads } = tf.variableGrads(() => batchLoss(model, batch), [...variables.values()]);
      optimizer.apply(new Map(Object.values(grads).map((g, i) => [names[i] as string, g])), 1e-4);
      losses.push((await value.data())[0] ?? NaN);
      tf.dispose([value, ...Object.values(grads)]);
      return performance.now() - start;
    },
    dispose: () => {
      optimizer.dispose();
      model.dispose();
    },
  };
}

/** A 16-token prompt for decoding benchmarks. */
export const decodePrompt = (s: StepShape): number[] => Array.from({ length: 16 }, (_, i) => (i * 7919) % s.vocab);

/** Builds the model on the active backend, runs `steps` timed LoRA steps after a first one, then greedy decoding. */
export async function runStep(shapeName: string, steps: number, decodeTokens: number): Promise<StepReport> {
  const prepared = prepareStep(shapeName);
  try {
    const firstStepMs = await prepared.step();
    const stepMs: number[] = [];
    for (let i = 0; i < steps; i++) stepMs.push(await prepared.step());
    const prompt = decodePrompt(prepared.shape);
    // Warm-up decode (the cache's shapes compile their shaders once), then the measured one.
    await generate(prepared.model, prompt, { maxNewTokens: 2, eosTokenIds: [] });
    const decoded = await generate(prepared.model, prompt, { maxNewTokens: decodeTokens, eosTokenIds: [] });
    const s = prepared.shape;
    return {
      backend: tf.getBackend(),
      shape: shapeName,
      dims: s,
      parameters: prepared.model.parameterCount(),
      loraParameters: prepared.loraParameters,
      loadSeconds: prepared.loadSeconds,
      firstStepMs,
      stepMs,
      medianStepMs: median(stepMs),
      trainTokensPerSecond: (s.batch * s.seq * 1000) / median(stepMs),
      losses: prepared.losses,
      decode: {
        promptTokens: prompt.length, newTokens: decoded.ids.length,
        tokensPerSecond: decoded.tokensPerSecond, decodeTokensPerSecond: decoded.decodeTokensPerSecond,
      },
    };
  } finally {
    prepared.dispose();
  }
}
