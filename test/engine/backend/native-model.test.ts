/**
 * The engine end to end on native kernels: initBackend's hook registers them, a Llama model (grouped-query attention,
 * untied head) loaded from disk gives the float64 reference's logits, and the same forward with the addon disabled
 * gives the same numbers, on wasm and cpu.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../main/engine/backend/index';
import { unregisterNativeKernels } from '../../../main/engine/backend/native/index';
import { adapterVariables, injectAdapter } from '../../../main/engine/lora/inject';
import { loadModel } from '../../../main/engine/models/registry';
import { batchLoss } from '../../../main/engine/train/loss';
import { makeBatch } from '../../../main/engine/train/batching';
import { llamaReference } from '../models/float64-reference';
import { buildLlama } from '../models/random-models';
import { addonAvailable } from './native-support';

const dir = mkdtempSync(join(tmpdir(), 'native-model-'));
afterAll(() => {
  unregisterNativeKernels('wasm');
  unregisterNativeKernels('cpu');
  rmSync(dir, { recursive: true, force: true });
});

const shape = { hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, vocab: 40, tied: false };
const prompt = [1, 5, 9, 2, 33, 17, 4];

describe.each(['wasm', 'cpu'] as const)('a Llama forward on %s', (backendName) => {
  it.skipIf(!addonAvailable)('matches float64 with native kernels, and the plain kernels agree', async () => {
    const built = buildLlama(join(dir, backendName), shape, 21);
    const expected = llamaReference(built.weights, {
      layers: shape.layers, heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.hidden / shape.heads, eps: 1e-5,
      invFreq: Array.from({ length: 4 }, (_, i) => 1 / 10000 ** ((2 * i) / 8)), qkvBias: false, tied: false,
    }, prompt).flatMap((row) => [...row]);

    const logitsWith = async (native: boolean): Promise<{ values: Float32Array; kernels: string }> => {
      const info = await initBackend(backendName, { native: native ? { threads: 2 } : { disabled: true } });
      const model = await loadModel(built.dir);
      try {
        const values = tf.tidy(() => model.forward(tf.tensor2d([prompt], [1, prompt.length], 'int32')).dataSync() as Float32Array);
        return { values, kernels: info.matmulKernels };
      } finally {
        model.dispose();
      }
    };
    const native = await logitsWith(true);
    expect(native.kernels).toMatch(new RegExp(`^native sgemm .* on ${backendName}; frozen weights in the native frozen-weight store`));
    const plain = await logitsWith(false);
    expect(plain.kernels).not.toMatch(/native/);

    const worst = (got: Float32Array): number => expected.reduce((m, want, i) => Math.max(m, Math.abs((got[i] ?? NaN) - want)), 0);
    expect(native.values.length).toBe(expected.length);
    expect(worst(native.values)).toBeLessThan(2e-4);
    expect(worst(plain.values)).toBeLessThan(2e-4);
  });

  it.skipIf(!addonAvailable)('trains to the same loss and LoRA gradients with the fused kernels as without', async () => {
    const built = buildLlama(join(dir, `${backendName}-grads`), shape, 22);
    const batch = makeBatch([
      { line: 1, ids: prompt, train: prompt.map(() => 1) },
      { line: 2, ids: prompt.slice(1), train: [0, 0, 1, 1, 1, 1] },
    ], 0);
    const gradientsWith = async (native: boolean): Promise<{ loss: number; grads: Map<string, Float32Array>; kernels: string }> => {
      const info = await initBackend(backendName, { native: native ? { threads: 2 } : { disabled: true } });
      const model = await loadModel(built.dir);
      try {
        const variables = adapterVariables(injectAdapter(model, 'a', { targetModules: ['q_proj', 'v_proj', 'gate_proj'], rank: 2, alpha: 4, dropout: 0 }));
        let seed = 5;
        // B starts at zero, which would leave A's gradient zero: give it values so both are checked.
        for (const [name, v] of variables) if (name.endsWith('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', seed++));
        const names = [...variables.keys()];
        const { value, grads } = tf.variableGrads(() => batchLoss(model, batch), [...variables.values()]);
        const out = new Map(Object.values(grads).map((g, i) => [names[i] as string, g.dataSync() as Float32Array]));
        const loss = value.dataSync()[0] as number;
        tf.dispose([value, ...Object.values(grads)]);
        return { loss, grads: out, kernels: info.matmulKernels };
      } finally {
        model.dispose();
      }
    };
    const fused = await gradientsWith(true);
    expect(fused.kernels).toContain('fused attention, rotary, SwiGLU, RMSNorm, cross-entropy');
    const plain = await gradientsWith(false);
    expect(Math.abs(fused.loss - plain.loss)).toBeLessThan(1e-5 * Math.abs(plain.loss));
    expect([...fused.grads.keys()]).toEqual([...plain.grads.keys()]);
    for (const [name, want] of plain.grads) {
      const got = fused.grads.get(name) as Float32Array;
      const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(scale).toBeGreaterThan(0);
      expect(got.reduce((m, v, i) => Math.max(m, Math.abs(v - (want[i] as number))), 0)).toBeLessThan(1e-4 * scale);
    }
  });
});
