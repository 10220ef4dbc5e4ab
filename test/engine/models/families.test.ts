/**
 * Qwen3, Phi-3, Gemma 2, Gemma 3 and the sliding-window llama relatives (mistral, qwen2) against the float64
 * reference written from the upstream modeling code: the whole prompt at once, one position at a time through
 * the cache (past the sliding window, where the cache drops old positions), and in chunks, on the plain kernels,
 * on the native ones (fused attention, RMSNorm, rotary, SwiGLU) where the addon loads, and on webgpu with its
 * WGSL kernels where an adapter is found (lavapipe in CI).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../../main/engine/backend/index';
import { unregisterNativeKernels } from '../../../main/engine/backend/native/index';
import { DecoderCache } from '../../../main/engine/models/kv-cache';
import { linearSpecsOf, loadModel, tensorShapesOf } from '../../../main/engine/models/registry';
import type { CausalLM } from '../../../main/engine/models/types';
import { maxAbsDiff } from '../../support/logits';
import { addonAvailable } from '../backend/native-support';
import { startWebgpu, webgpuRequired } from '../backend/webgpu-support';
import { gemmaReference, llamaReference, phi3Reference, qwen3Reference } from './float64-reference';
import { buildGemma, buildLlama, buildPhi3, buildQwen3, roundToBf16, type BuiltModel } from './random-models';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'families-'));
});
afterAll(() => {
  unregisterNativeKernels('cpu');
  rmSync(dir, { recursive: true, force: true });
});

const prompt = [3, 17, 5, 29, 11, 2, 30, 8, 21];
const TOLERANCE = 2e-4;

const freqs = (d: number, theta: number, factor = 1): number[] => Array.from({ length: d / 2 }, (_, i) => 1 / theta ** ((2 * i) / d) / factor);

interface Case {
  label: string;
  build: (dir: string) => BuiltModel;
  reference: (built: BuiltModel, ids: number[]) => Float64Array[];
  /** The sliding window of the model's windowed layers, to check the cache stops growing past it. */
  window?: number;
}

const cases: Case[] = [
  {
    label: 'qwen3: q_norm / k_norm per head, head_dim 12 apart from hidden/heads, tied head',
    build: (d) => buildQwen3(d, { hidden: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 12, intermediate: 40, vocab: 40, tied: true }),
    reference: (b, ids) => qwen3Reference(b.weights, { layers: 2, heads: 4, kvHeads: 2, headDim: 12, eps: 1e-6, invFreq: freqs(12, 1e6), tied: true }, ids),
  },
  {
    label: 'qwen3 with an untied head and use_sliding_window from layer 1 on (window 3)',
    build: (d) => buildQwen3(d, {
      hidden: 32, layers: 2, heads: 4, kvHeads: 1, headDim: 8, intermediate: 40, vocab: 40, tied: false,
      extra: { use_sliding_window: true, sliding_window: 3, max_window_layers: 1 },
    }),
    reference: (b, ids) => qwen3Reference(b.weights, { layers: 2, heads: 4, kvHeads: 1, headDim: 8, eps: 1e-6, invFreq: freqs(8, 1e6), tied: false, windows: [null, 3] }, ids),
    window: 3,
  },
  {
    label: 'mistral with sliding_window 4 on every layer',
    build: (d) => buildLlama(d, { modelType: 'mistral', hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, vocab: 40, tied: false, extra: { sliding_window: 4 } }),
    reference: (b, ids) => llamaReference(b.weights, { layers: 2, heads: 4, kvHeads: 2, headDim: 8, eps: 1e-5, invFreq: freqs(8, 10000), qkvBias: false, tied: false, windows: [4, 4] }, ids),
    window: 4,
  },
  {
    label: 'qwen2 with use_sliding_window (layers from max_window_layers 1 on, window 3) and q/k/v biases',
    build: (d) => buildLlama(d, {
      modelType: 'qwen2', hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, vocab: 40, tied: true,
      extra: { use_sliding_window: true, sliding_window: 3, max_window_layers: 1 },
    }),
    reference: (b, ids) => llamaReference(b.weights, { layers: 2, heads: 4, kvHeads: 2, headDim: 8, eps: 1e-5, invFreq: freqs(8, 10000), qkvBias: true, tied: true, windows: [null, 3] }, ids),
    window: 3,
  },
  {
    label: 'llama with attention_bias (q, k, v, o) and mlp_bias, head_dim 12 apart from hidden/heads',
    build: (d) => buildLlama(d, { hidden: 32, layers: 2, heads: 2, kvHeads: 1, intermediate: 40, vocab: 40, tied: false, attentionBias: true, mlpBias: true, extra: { head_dim: 12 } }),
    reference: (b, ids) => llamaReference(b.weights, { layers: 2, heads: 2, kvHeads: 1, headDim: 12, eps: 1e-5, invFreq: freqs(12, 10000), qkvBias: true, oBias: true, mlpBias: true, tied: false }, ids),
  },
  {
    label: 'phi3: fused qkv_proj and gate_up_proj, grouped kv heads, sliding_window 5',
    build: (d) => buildPhi3(d, { hidden: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 8, intermediate: 24, vocab: 40, tied: false, extra: { sliding_window: 5 } }),
    reference: (b, ids) => phi3Reference(b.weights, { layers: 2, heads: 4, kvHeads: 2, headDim: 8, eps: 1e-5, invFreq: freqs(8, 10000), window: 5 }, ids),
    window: 5,
  },
  {
    label: 'gemma3_text: every 3rd layer global, local window 3 with rope_local_base_freq, linear rope scaling on the global layers',
    build: (d) => buildGemma(d, 3, {
      hidden: 32, layers: 3, heads: 2, kvHeads: 1, headDim: 16, intermediate: 48, vocab: 40, tied: true,
      extra: { sliding_window: 3, sliding_window_pattern: 3, rope_local_base_freq: 10000, rope_scaling: { rope_type: 'linear', factor: 8 }, query_pre_attn_scalar: 24 },
    }),
    reference: (b, ids) => gemmaReference(b.weights, {
      version: 3, layers: 3, heads: 2, kvHeads: 1, headDim: 16, eps: 1e-6, normalizer: Math.fround(Math.sqrt(32)), queryPreAttnScalar: 24,
      layerWindows: [3, 3, null], layerInvFreq: [freqs(16, 10000), freqs(16, 10000), freqs(16, 1e6, 8)], attnSoftcap: null, finalSoftcap: null,
    }, ids),
    window: 3,
  },
  {
    label: 'gemma3_text with layer_types and transformers 5 rope_parameters per layer type',
    build: (d) => buildGemma(d, 3, {
      hidden: 32, layers: 2, heads: 2, kvHeads: 2, headDim: 8, intermediate: 48, vocab: 40, tied: true,
      extra: {
        sliding_window: 4, layer_types: ['full_attention', 'sliding_attention'], query_pre_attn_scalar: 8,
        rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 50000 }, sliding_attention: { rope_type: 'default', rope_theta: 500 } },
      },
    }),
    reference: (b, ids) => gemmaReference(b.weights, {
      version: 3, layers: 2, heads: 2, kvHeads: 2, headDim: 8, eps: 1e-6, normalizer: Math.fround(Math.sqrt(32)), queryPreAttnScalar: 8,
      layerWindows: [null, 4], layerInvFreq: [freqs(8, 50000), freqs(8, 500)], attnSoftcap: null, finalSoftcap: null,
    }, ids),
    window: 4,
  },
  {
    label: 'gemma3_text with a BF16 embedding: √hidden rounded to bfloat16 as upstream multiplies it',
    build: (d) => buildGemma(d, 3, {
      hidden: 40, layers: 1, heads: 2, kvHeads: 1, headDim: 8, intermediate: 24, vocab: 40, tied: true, extra: { sliding_window: 512, query_pre_attn_scalar: 8 },
    }, 7, ['model.embed_tokens.weight']),
    // √40 = 6.3246 is 6.3125 in bfloat16: the difference moves logits by far more than the tolerance.
    reference: (b, ids) => gemmaReference(b.weights, {
      version: 3, layers: 1, heads: 2, kvHeads: 1, headDim: 8, eps: 1e-6, normalizer: roundToBf16(Math.sqrt(40)), queryPreAttnScalar: 8,
      layerWindows: [512], layerInvFreq: [freqs(8, 10000)], attnSoftcap: null, finalSoftcap: null,
    }, ids),
  },
  {
    label: 'gemma2: alternating local (window 3) and global layers, attention and final logit soft-capping',
    build: (d) => buildGemma(d, 2, {
      hidden: 32, layers: 2, heads: 2, kvHeads: 1, headDim: 16, intermediate: 48, vocab: 40, tied: true,
      extra: { sliding_window: 3, query_pre_attn_scalar: 16, attn_logit_softcapping: 1.5, final_logit_softcapping: 2 },
    }),
    reference: (b, ids) => gemmaReference(b.weights, {
      version: 2, layers: 2, heads: 2, kvHeads: 1, headDim: 16, eps: 1e-6, normalizer: Math.fround(Math.sqrt(32)), queryPreAttnScalar: 16,
      layerWindows: [3, null], layerInvFreq: [freqs(16, 10000), freqs(16, 10000)], attnSoftcap: 1.5, finalSoftcap: 2,
    }, ids),
    window: 3,
  },
];

function ids2d(ids: readonly number[]): tf.Tensor2D {
  return tf.tensor2d([...ids], [1, ids.length], 'int32');
}

/** Logits of `ids`, read asynchronously (webgpu has no synchronous read in Node). */
async function logits(model: CausalLM, ids: readonly number[], cache?: ReturnType<CausalLM['createCache']>): Promise<Float32Array> {
  const input = ids2d(ids);
  const out = model.forward(input, { cache });
  const values = (await out.data()) as Float32Array;
  tf.dispose([input, out]);
  return values;
}

/** The worst difference of the whole forward, the cached one-by-one forward and a chunked one (4 + rest). */
async function worstDifference(model: CausalLM, expected: Float64Array[], window: number | undefined): Promise<number> {
  let worst = maxAbsDiff(await logits(model, prompt), expected.flatMap((r) => [...r]));
  const cache = model.createCache();
  for (let t = 0; t < prompt.length; t++) {
    worst = Math.max(worst, maxAbsDiff(await logits(model, [prompt[t] as number], cache), expected[t] as Float64Array));
    if (window !== undefined && t >= window) {
      // A windowed layer keeps only W − 1 positions between steps.
      const held = Array.from({ length: model.config.numLayers }, (_, l) => (cache as DecoderCache).heldPositions(l));
      expect(Math.min(...held)).toBe(window - 1);
    }
  }
  expect(cache.length).toBe(prompt.length);
  cache.dispose();
  const chunked = model.createCache();
  await logits(model, prompt.slice(0, 4), chunked);
  worst = Math.max(worst, maxAbsDiff(await logits(model, prompt.slice(4), chunked), expected.slice(4).flatMap((r) => [...r])));
  chunked.dispose();
  return worst;
}

const webgpuMissing = webgpuRequired ? null : await startWebgpu();

describe.each([
  ['plain cpu kernels', 'plain'],
  ['native kernels', 'native'],
  ['webgpu (its fused kernels)', 'webgpu'],
] as const)('logits against the float64 reference on %s', (_label, kernels) => {
  const unavailable = (kernels === 'native' && !addonAvailable) || (kernels === 'webgpu' && webgpuMissing !== null);
  beforeAll(async () => {
    if (unavailable) return;
    if (kernels === 'webgpu') expect(await startWebgpu()).toBeNull();
    else await initBackend('cpu', { native: kernels === 'native' ? { threads: 1 } : false });
  });

  cases.forEach((c, n) => {
    it.skipIf(unavailable)(c.label, async () => {
      const built = c.build(join(dir, `${kernels}-${n}`));
      const expected = c.reference(built, prompt);
      const before = tf.memory().numTensors;
      const model = await loadModel(built.dir);
      try {
        expect(model.parameterCount()).toBe([...built.weights.values()].reduce((s, t) => s + t.data.length, 0));
        // What inspect reports without loading: the same linears, and exactly the checkpoint's tensors.
        expect(linearSpecsOf(model.config)).toEqual([...model.linears.values()].map((l) => l.spec));
        expect(new Map([...tensorShapesOf(model.config)].sort())).toEqual(new Map([...built.weights].map(([k, t]) => [k, t.shape] as const).sort()));
        const worst = await worstDifference(model, expected, c.window);
        expect(worst, `max |logit − float64| = ${worst.toExponential(2)}`).toBeLessThan(TOLERANCE);
      } finally {
        model.dispose();
      }
      expect(tf.memory().numTensors).toBe(before);
    });
  });
});

describe('phi3 with longrope (Phi-3.5-mini, Phi-3-128k)', () => {
  // original context 5 of 40: short factors while a forward ends within 5 positions, long ones past it
  const short = [1, 1.5, 2, 4];
  const long = [2, 3, 5, 9];
  const base = freqs(8, 10000);
  const shortFreq = base.map((f, i) => f / (short[i] as number));
  const longFreq = base.map((f, i) => f / (long[i] as number));
  // transformers: √(1 + ln(max_position_embeddings / original) / ln(original))
  const attentionFactor = Math.sqrt(1 + Math.log(40 / 5) / Math.log(5));
  const reference = (b: BuiltModel, freqsAt: (pos: number) => number[]) =>
    phi3Reference(b.weights, { layers: 2, heads: 4, kvHeads: 2, headDim: 8, eps: 1e-5, invFreq: [], window: null, freqsAt, ropeScale: attentionFactor }, prompt);

  beforeAll(async () => {
    await initBackend('cpu', { native: false });
  });

  it('rotates with the short or long factors as transformers picks them for each forward call, cos and sin scaled', async () => {
    const built = buildPhi3(join(dir, 'longrope'), {
      hidden: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 8, intermediate: 24, vocab: 40, tied: false,
      extra: { max_position_embeddings: 40, original_max_position_embeddings: 5, rope_scaling: { type: 'longrope', short_factor: short, long_factor: long } },
    });
    const model = await loadModel(built.dir);
    try {
      // The whole prompt (9 > 5 positions): long factors everywhere.
      const whole = reference(built, () => longFreq);
      expect(maxAbsDiff(await logits(model, prompt), whole.flatMap((r) => [...r]))).toBeLessThan(TOLERANCE);
      // One position at a time: positions 0..4 were rotated with short factors when they were computed.
      const stepwise = reference(built, (pos) => (pos + 1 > 5 ? longFreq : shortFreq));
      const cache = model.createCache();
      let worst = 0;
      for (let t = 0; t < prompt.length; t++) worst = Math.max(worst, maxAbsDiff(await logits(model, [prompt[t] as number], cache), stepwise[t] as Float64Array));
      cache.dispose();
      expect(worst).toBeLessThan(TOLERANCE);
      // The long and short frequencies differ enough that picking the wrong ones shows.
      expect(maxAbsDiff(whole.flatMap((r) => [...r]), stepwise.flatMap((r) => [...r]))).toBeGreaterThan(100 * TOLERANCE);
    } finally {
      model.dispose();
    }
  });
});
