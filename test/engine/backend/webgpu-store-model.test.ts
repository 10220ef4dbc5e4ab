/**
 * Models whose frozen weights the webgpu store keeps in GPU buffers at their stored precision (lavapipe here and
 * in CI): a qwen2 (q/k/v bias, tied head, grouped-query heads) from a BF16 file keeps 2 bytes a value and gives
 * the float64 reference's logits; a float32 llama (untied head) does too; a LoRA training step gives the cpu
 * backend's float32 loss and gradients through the one-kernel linears. Reads are asynchronous throughout, as
 * webgpu requires.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { activeFrozenStore } from '../../../main/engine/backend/frozen';
import { initBackend } from '../../../main/engine/backend/index';
import { adapterVariables, injectAdapter } from '../../../main/engine/lora/inject';
import { loadModel } from '../../../main/engine/models/registry';
import type { CausalLM } from '../../../main/engine/models/types';
import { frozenWeightBytes } from '../../../main/engine/models/weights';
import { makeBatch } from '../../../main/engine/train/batching';
import { batchLoss } from '../../../main/engine/train/loss';
import { llamaReference } from '../models/float64-reference';
import { buildLlama } from '../models/random-models';
import { startWebgpu, webgpuRequired } from './webgpu-support';

const unavailable = await startWebgpu();
const dir = mkdtempSync(join(tmpdir(), 'webgpu-store-'));
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await initBackend('cpu');
});

const prompt = [1, 5, 9, 2, 33, 17, 4];
const qwen = { modelType: 'qwen2' as const, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, vocab: 40, tied: true, dtype: 'BF16' as const };
const llama = { hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, vocab: 40, tied: false };
const invFreq = Array.from({ length: 4 }, (_, i) => 1 / 10000 ** ((2 * i) / 8));

/** Logits for `ids`, read asynchronously; a fresh ids tensor each call (the model checks ids where they are still on the CPU). */
async function logitsOf(model: CausalLM, ids: readonly number[] = prompt): Promise<Float32Array> {
  const logits = tf.tidy(() => model.forward(tf.tensor2d([[...ids]], [1, ids.length], 'int32')));
  const values = (await logits.data()) as Float32Array;
  logits.dispose();
  return values;
}

const worstAbs = (got: ArrayLike<number>, want: ArrayLike<number>): number => {
  let w = 0;
  for (let i = 0; i < want.length; i++) w = Math.max(w, Math.abs((got[i] ?? NaN) - (want[i] ?? NaN)) || (Number.isNaN(got[i]) ? Infinity : 0));
  return got.length === want.length ? w : Infinity;
};

describe('models on the webgpu frozen-weight store', () => {
  it('webgpu comes up where lavapipe is installed', () => {
    if (webgpuRequired) expect(unavailable).toBeNull();
    else if (unavailable) console.warn(`webgpu store tests skipped: ${unavailable}`);
  });

  it.skipIf(unavailable !== null)('keeps a BF16 qwen2 at 2 bytes a value on the GPU and gives the float64 logits, freeing it all on dispose', async () => {
    const built = buildLlama(join(dir, 'qwen2-bf16'), qwen, 31);
    const expected = llamaReference(built.weights, { layers: 2, heads: 4, kvHeads: 2, headDim: 8, eps: 1e-5, invFreq, qkvBias: true, tied: true }, prompt)
      .flatMap((row) => [...row]);
    await startWebgpu();
    const store = activeFrozenStore();
    expect(store?.detail).toMatch(/GPU buffers/);
    const live = store?.liveBytes() ?? 0;
    const tensorsBefore = tf.memory().numTensors;
    const model = await loadModel(built.dir);
    // 7 linears × 2 layers + the tied table, each an even count of 2-byte values in 4-byte words.
    const values = 2 * (32 * 32 * 2 + 16 * 32 * 2 + 48 * 32 * 3) + 40 * 32;
    expect(frozenWeightBytes(model.linears)).toEqual({ tensor: 0, stored: values * 2 });
    expect((store?.liveBytes() ?? 0) - live).toBe(values * 2);
    expect(worstAbs(await logitsOf(model), expected)).toBeLessThan(2e-4);
    model.dispose();
    expect(store?.liveBytes()).toBe(live);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it.skipIf(unavailable !== null)('keeps a float32 llama (untied head) in float32 GPU buffers and gives the float64 logits', async () => {
    const built = buildLlama(join(dir, 'llama-f32'), llama, 32);
    const expected = llamaReference(built.weights, { layers: 2, heads: 4, kvHeads: 2, headDim: 8, eps: 1e-5, invFreq, qkvBias: false, tied: false }, prompt)
      .flatMap((row) => [...row]);
    await startWebgpu();
    const model = await loadModel(built.dir);
    try {
      expect(frozenWeightBytes(model.linears).tensor).toBe(0);
      expect(worstAbs(await logitsOf(model), expected)).toBeLessThan(2e-4);
    } finally {
      model.dispose();
    }
  });

  it.skipIf(unavailable !== null)('trains LoRA to the cpu backend\'s float32 loss and gradients', async () => {
    const built = buildLlama(join(dir, 'qwen2-train'), qwen, 33);
    const stepOn = async (backend: 'cpu' | 'webgpu'): Promise<{ loss: number; grads: Map<string, Float32Array> }> => {
      if (backend === 'webgpu') await startWebgpu();
      else await initBackend('cpu');
      const model = await loadModel(built.dir);
      try {
        const variables = adapterVariables(injectAdapter(model, 'a', {
          targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], rank: 2, alpha: 4, dropout: 0,
        }));
        let seed = 9;
        for (const [name, v] of variables) if (name.endsWith('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', seed++));
        const names = [...variables.keys()];
        // Two rows, the second with its first and last positions masked (prompt and padding).
        const batch = makeBatch([
          { line: 1, ids: prompt.slice(0, 7), train: [1, 1, 1, 1, 1, 1, 1] },
          { line: 2, ids: prompt.slice(1, 7), train: [0, 1, 1, 1, 1, 0] },
        ], 0);
        const { value, grads } = tf.variableGrads(() => batchLoss(model, batch), [...variables.values()]);
        const read = await Promise.all(Object.values(grads).map(async (g, i) => [names[i] as string, (await g.data()) as Float32Array] as const));
        const loss = (await value.data())[0] as number;
        tf.dispose([value, ...Object.values(grads)]);
        return { loss, grads: new Map(read) };
      } finally {
        model.dispose();
      }
    };
    const gpu = await stepOn('webgpu');
    const cpu = await stepOn('cpu');
    expect(Math.abs(gpu.loss - cpu.loss)).toBeLessThan(1e-5 * Math.abs(cpu.loss));
    expect(gpu.grads.size).toBe(28);
    for (const [name, want] of cpu.grads) {
      const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(scale, name).toBeGreaterThan(0);
      expect(worstAbs(gpu.grads.get(name) as Float32Array, want), name).toBeLessThan(1e-4 * scale);
    }
  });
});
