/**
 * Generation speed of a 135M-parameter Llama (SmolLM-135M's shape: hidden 576, 30 layers, 9 heads / 3 kv heads,
 * MLP 1536, vocab 49152, tied head) with random weights: time to first token (the prompt pass) and decode
 * tokens/s, on wasm and cpu (and webgpu / tensorflow where usable).
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../main/engine/backend/index';
import type { TensorSource } from '../main/engine/io/model-checkpoint';
import type { LoadedTensor } from '../main/engine/io/safetensors';
import { buildModel } from '../main/engine/models/registry';
import { linearSpecsOf } from '../main/engine/models/inspect';
import { generate } from '../main/engine/generate/generate';
import { Rng } from '../main/engine/train/rng';
import { sized } from './quick';

const CONFIG = {
  model_type: 'llama',
  hidden_size: sized(576, 72),
  intermediate_size: sized(1536, 192),
  num_hidden_layers: sized(30, 2),
  num_attention_heads: 9,
  num_key_value_heads: 3,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  vocab_size: sized(49152, 512),
  bos_token_id: 1,
  eos_token_id: 2,
};

/** Every tensor the llama loader asks for, made up on request: N(0, 0.02²)-ish uniform weights, norms at 1. */
class RandomWeights implements TensorSource {
  readonly dir = 'random-135m';
  private readonly rng = new Rng(1);
  has(name: string): boolean {
    return name !== 'lm_head.weight';
  }
  read(name: string): LoadedTensor {
    const c = CONFIG;
    const linear = linearSpecsOf({
      modelType: 'llama', vocabSize: c.vocab_size, hiddenSize: c.hidden_size, numLayers: c.num_hidden_layers,
      numHeads: c.num_attention_heads, numKvHeads: c.num_key_value_heads, headDim: c.hidden_size / c.num_attention_heads,
      intermediateSize: c.intermediate_size, maxPositions: 2048, tieWordEmbeddings: true, bosTokenId: 1, eosTokenIds: [2], padTokenId: null, raw: {},
    }).find((s) => `${s.path}.weight` === name);
    const shape = name.endsWith('norm.weight') ? [c.hidden_size] : name === 'model.embed_tokens.weight' ? [c.vocab_size, c.hidden_size] : linear ? [linear.outFeatures, linear.inFeatures] : null;
    if (!shape) throw new Error(`random weights: unexpected tensor ${name}`);
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith('norm.weight')) data.fill(1);
    else for (let i = 0; i < data.length; i++) data[i] = (this.rng.next() - 0.5) * 0.07;
    return { dtype: 'F32', shape, data };
  }
}

interface Row {
  backend: string;
  params: number;
  prompt: number;
  generated: number;
  ttftMs: number;
  decodeTps: number;
  overallTps: number;
}

/** One generation run; `native` adds the addon's kernels on wasm and cpu (sgemm, gather, fused elementwise). */
async function measure(backend: BackendName, prompt: number, newTokens: number, native = false): Promise<Row> {
  const started = await initBackend(backend, { native: native ? {} : false });
  const label = native && started.matmulKernels.startsWith('native') ? `${backend} + native` : backend;
  const model = buildModel(CONFIG, new RandomWeights());
  try {
    const ids = Array.from({ length: prompt }, (_, i) => 100 + i * 7);
    await generate(model, ids.slice(0, 4), { maxNewTokens: 2, eosTokenIds: [] }); // warm-up: kernels, wasm memory growth
    const r = await generate(model, ids, { maxNewTokens: newTokens, eosTokenIds: [] });
    return { backend: label, params: model.parameterCount(), prompt, generated: r.ids.length, ttftMs: r.timeToFirstTokenMs, decodeTps: r.decodeTokensPerSecond, overallTps: r.tokensPerSecond };
  } finally {
    model.dispose();
    tf.disposeVariables();
  }
}

export async function run(): Promise<string> {
  const info = await initBackend('cpu');
  const rows: Row[] = [];
  for (const a of info.available) {
    if (!a.usable) continue;
    // The cpu backend is ~40× slower: a shorter run tells the same story.
    rows.push(await (a.name === 'cpu' ? measure('cpu', 16, 4) : measure(a.name, 32, 16)));
    if (a.name === 'wasm' || a.name === 'cpu') {
      const row = await (a.name === 'cpu' ? measure('cpu', 16, 4, true) : measure(a.name, 32, 16, true));
      if (row.backend.endsWith('native')) rows.push(row);
    }
  }
  await initBackend('cpu', { native: false });
  const skipped = info.available.filter((a) => !a.usable).map((a) => `${a.name} (${a.detail})`);
  return [
    '## Generation: 135M-parameter Llama (SmolLM-135M shape, random weights), greedy, batch 1',
    '',
    '| backend | parameters | prompt tokens | new tokens | time to first token | decode tokens/s | overall tokens/s |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.backend} | ${(r.params / 1e6).toFixed(1)}M | ${r.prompt} | ${r.generated} | ${r.ttftMs.toFixed(0)} ms | ${r.decodeTps.toFixed(2)} | ${r.overallTps.toFixed(2)} |`),
    '',
    `Not measured here: ${skipped.join('; ') || 'none'}.`,
    '',
  ].join('\n');
}
