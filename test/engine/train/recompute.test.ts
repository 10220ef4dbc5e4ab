/**
 * Activation recomputation gives the plain pass's gradients: LoRA A and B (with dropout, whose masks must be drawn
 * again identically) and, in full fine-tuning, every weight including the embedding, whose gradient is the
 * blocks' dx gathered by token. On GPT-2, qwen2 (grouped-query heads, q/k/v bias), gemma2 and gemma3 (windows,
 * sandwich norms, soft caps) and phi3 (fused projections) tiny models, on cpu, and on wasm with the native fused
 * kernels where the addon is built. No tensor outlives a step.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../main/engine/backend/index';
import { unregisterNativeKernels } from '../../../main/engine/backend/native/index';
import { adapterVariables, injectAdapter } from '../../../main/engine/lora/inject';
import { seedLoraDropout } from '../../../main/engine/lora/linear';
import { loadModel } from '../../../main/engine/models/registry';
import type { CausalLM } from '../../../main/engine/models/types';
import { makeBatch } from '../../../main/engine/train/batching';
import { batchLoss } from '../../../main/engine/train/loss';
import { fullTrainableVariables } from '../../../main/engine/train/trainable';
import { addonAvailable } from '../backend/native-support';
import { buildGemma, buildGpt2, buildLlama, buildPhi3 } from '../models/random-models';

const dir = mkdtempSync(join(tmpdir(), 'lorasmith-recompute-'));
afterAll(() => {
  unregisterNativeKernels('wasm');
  rmSync(dir, { recursive: true, force: true });
});

const MODELS = {
  gpt2: () => buildGpt2(join(dir, 'gpt2'), { embd: 16, layers: 3, heads: 2, vocab: 30, positions: 32 }, 4).dir,
  qwen2: () => buildLlama(join(dir, 'qwen2'), { modelType: 'qwen2', hidden: 16, layers: 3, heads: 4, kvHeads: 2, intermediate: 24, vocab: 30, tied: true }, 5).dir,
  // Local layers with a window shorter than the batch, (1 + w) sandwich norms, q/k norms, soft caps on scores and logits.
  gemma2: () => buildGemma(join(dir, 'gemma2'), 2, {
    hidden: 16, layers: 2, heads: 2, kvHeads: 1, headDim: 8, intermediate: 24, vocab: 30, tied: true,
    extra: { sliding_window: 3, query_pre_attn_scalar: 8, attn_logit_softcapping: 5, final_logit_softcapping: 10 },
  }, 6).dir,
  gemma3_text: () => buildGemma(join(dir, 'gemma3'), 3, {
    hidden: 16, layers: 2, heads: 2, kvHeads: 1, headDim: 8, intermediate: 24, vocab: 30, tied: true,
    extra: { sliding_window: 3, sliding_window_pattern: 2, query_pre_attn_scalar: 8, rope_local_base_freq: 10000 },
  }, 7).dir,
  // Fused qkv_proj and gate_up_proj.
  phi3: () => buildPhi3(join(dir, 'phi3'), { hidden: 16, layers: 2, heads: 4, kvHeads: 2, headDim: 4, intermediate: 24, vocab: 30, tied: false }, 8).dir,
} as const;

const batch = makeBatch([
  { line: 1, ids: [1, 5, 9, 2, 17, 4, 22, 3], train: [0, 0, 0, 1, 1, 1, 1, 1] },
  { line: 2, ids: [1, 8, 13, 21, 6], train: [0, 0, 1, 1, 1] },
], 0);

/** cpu with its plain kernels; wasm with the native fused kernels (the product's default where the addon builds). */
async function start(backend: 'cpu' | 'wasm'): Promise<void> {
  const info = await initBackend(backend, { native: backend === 'wasm' ? { threads: 1 } : false });
  if (backend === 'wasm') expect(info.matmulKernels).toMatch(/native/);
}

/** Loss and gradients by name for one micro-step, plain or recomputed, with a fixed dropout seed. */
function step(model: CausalLM, variables: Map<string, tf.Variable>, recompute: boolean): { loss: number; grads: Map<string, Float32Array> } {
  seedLoraDropout(1234);
  const names = [...variables.keys()];
  const before = tf.memory().numTensors;
  const { value, grads } = tf.variableGrads(() => batchLoss(model, batch, { recompute }), [...variables.values()]);
  const out = new Map(names.map((name, i) => [name, grads[[...variables.values()][i]?.name as string]?.dataSync() as Float32Array]));
  const loss = value.dataSync()[0] as number;
  tf.dispose([value, ...Object.values(grads)]);
  expect(tf.memory().numTensors).toBe(before);
  return { loss, grads: out };
}

function expectSameGradients(plain: ReturnType<typeof step>, recomputed: ReturnType<typeof step>): void {
  expect(recomputed.loss).toBeCloseTo(plain.loss, 6);
  expect([...recomputed.grads.keys()]).toEqual([...plain.grads.keys()]);
  let nonZero = 0;
  for (const [name, want] of plain.grads) {
    const got = recomputed.grads.get(name) as Float32Array;
    expect(got?.length, name).toBe(want.length);
    const scale = want.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    if (scale > 0) nonZero++;
    const diff = want.reduce((m, x, i) => Math.max(m, Math.abs(x - (got[i] as number))), 0);
    expect(diff, name).toBeLessThanOrEqual(1e-6 * (scale + 1e-6));
  }
  expect(nonZero).toBeGreaterThan(plain.grads.size / 2);
}

describe.each(['cpu', 'wasm'] as const)('activation recomputation on %s', (backend) => {
  const skip = backend === 'wasm' && !addonAvailable;
  describe.each(Object.keys(MODELS) as (keyof typeof MODELS)[])('%s', (kind) => {
    it.skipIf(skip)('LoRA on every linear with dropout: A and B gradients equal the plain pass', async () => {
      await start(backend);
      const model = await loadModel(MODELS[kind]());
      try {
        const variables = adapterVariables(injectAdapter(model, 'a', { targetModules: 'all-linear', rank: 2, alpha: 4, dropout: 0.2 }, { seed: 3 }));
        // B starts at zero, which would leave A's gradient zero: give it values so both are checked.
        let seed = 5;
        for (const [name, v] of variables) if (name.endsWith('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', seed++));
        expectSameGradients(step(model, variables, false), step(model, variables, true));
      } finally {
        model.dispose();
      }
    });

    it.skipIf(skip)('full fine-tuning: every weight (norms, biases, the embedding\'s dx) equals the plain pass', async () => {
      await start(backend);
      const model = await loadModel(MODELS[kind](), { trainable: true });
      try {
        const variables = fullTrainableVariables(model);
        expectSameGradients(step(model, variables, false), step(model, variables, true));
      } finally {
        model.dispose();
      }
    });
  });
});
