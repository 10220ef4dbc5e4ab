import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackendError, forgetSelfTests, initBackend, parseBackendPreference } from '../../../main/engine/backend/index';
import { loadModel } from '../../../main/engine/models/registry';
import { buildGpt2, buildLlama } from '../models/random-models';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'backend-'));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await initBackend('cpu');
});

/** Logits and the gradient of a loss w.r.t. one linear weight and the embedding, on the active backend. */
async function run(modelDir: string, ids: number[], linearPath: string): Promise<{ logits: Float32Array; gradLinear: Float32Array; gradHead: Float32Array }> {
  const model = await loadModel(modelDir, { trainable: true });
  try {
    return tf.tidy(() => {
      const input = tf.tensor2d(ids, [1, ids.length], 'int32');
      const logits = model.forward(input).dataSync() as Float32Array;
      const linear = model.linears.get(linearPath)?.weightT as tf.Variable;
      const head = model.linears.get('lm_head')?.weightT as tf.Variable;
      const { grads } = tf.variableGrads(() => {
        const out = model.forward(input);
        const logp = tf.logSoftmax(out);
        return tf.neg(tf.mean(tf.max(logp, -1))) as tf.Scalar;
      }, [linear, head]);
      return {
        logits,
        gradLinear: grads[linear.name]?.dataSync() as Float32Array,
        gradHead: grads[head.name]?.dataSync() as Float32Array,
      };
    });
  } finally {
    model.dispose();
  }
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs((a[i] as number) - (b[i] as number)));
    den = Math.max(den, Math.abs(b[i] as number));
  }
  return num / den;
}

describe('backends', () => {
  it('reports every backend, with tensorflow and webgpu unusable here and wasm usable', async () => {
    const info = await initBackend('auto');
    expect(info.available.map((a) => a.name)).toEqual(['tensorflow', 'webgpu', 'wasm', 'cpu']);
    const wasm = info.available.find((a) => a.name === 'wasm');
    expect(wasm?.usable).toBe(true);
    expect(wasm?.detail).toMatch(/SIMD/);
    // On a machine without libtensorflow or a hardware GPU, auto falls through to wasm; a software adapter
    // (lavapipe, where Mesa's Vulkan driver is installed) is usable but never chosen by auto.
    const webgpu = info.available.find((a) => a.name === 'webgpu');
    const hardware = info.available.filter((a) => a.usable && !(a.name === 'webgpu' && /software adapter/.test(a.detail))).map((a) => a.name);
    expect(info.name).toBe(hardware[0]);
    if (webgpu?.usable && /llvmpipe|SwiftShader/i.test(webgpu.detail)) expect(webgpu.detail).toMatch(/software adapter/);
    expect(tf.getBackend()).toBe(info.name);
    expect(info.matmulKernels.length).toBeGreaterThan(0);
    expect(info.requested).toBe('auto');
    expect(info.selfTest).toMatch(/^passed in \d+ ms$/);
    expect(info.fallback).toBeNull();
  });

  describe('a backend that computes wrong numbers', () => {
    // wasm's matmul made wrong by one part in a thousand: the self-test must notice and the next backend serve.
    let original: tf.KernelConfig | undefined;
    beforeAll(async () => {
      await initBackend('wasm', { native: { disabled: true } });
      original = tf.getKernel(tf.BatchMatMul, 'wasm');
      if (!original) throw new Error('wasm has no BatchMatMul kernel');
      const own = original.kernelFunc;
      tf.unregisterKernel(tf.BatchMatMul, 'wasm');
      tf.registerKernel({
        ...original,
        kernelFunc: (args) => {
          const out = own(args) as tf.TensorInfo;
          const values = (args.backend as unknown as { typedArrayFromHeap(t: tf.TensorInfo): Float32Array }).typedArrayFromHeap(out);
          for (let i = 0; i < values.length; i++) values[i] = (values[i] as number) * 1.001;
          return out;
        },
      });
      forgetSelfTests();
    });
    afterAll(async () => {
      tf.unregisterKernel(tf.BatchMatMul, 'wasm');
      if (original) tf.registerKernel(original);
      forgetSelfTests();
      await initBackend('cpu');
    });

    it("is passed over by 'auto', which says why in one line", async () => {
      const info = await initBackend('auto', { native: { disabled: true } });
      expect(info.name).toBe('cpu');
      expect(info.fallback).toMatch(/^wasm failed its self-test: .+ is off by [0-9.e+-]+ \(relative to float64.*\); using cpu$/);
      expect(info.fallback).not.toMatch(/\n/);
      expect(info.available.find((a) => a.name === 'wasm')).toMatchObject({ usable: false, detail: expect.stringMatching(/self-test/) });
      expect(tf.getBackend()).toBe('cpu');
    });

    it('is an error when named, unless falling back is allowed', async () => {
      await expect(initBackend('wasm', { native: { disabled: true } })).rejects.toThrow(/backend 'wasm' is not usable here: wasm failed its self-test: .+ is off by/);
      const info = await initBackend('wasm', { native: { disabled: true }, fallback: true });
      expect(info).toMatchObject({ name: 'cpu', requested: 'wasm' });
      expect(info.fallback).toMatch(/^wasm failed its self-test: .*; using cpu$/);
    });
  });

  it('rejects an unknown backend name and an unusable named backend with the reason', async () => {
    expect(() => parseBackendPreference('metal')).toThrow(/one of auto, tensorflow, webgpu, wasm, cpu; got 'metal'/);
    const info = await initBackend('cpu');
    const tensorflow = info.available.find((a) => a.name === 'tensorflow');
    if (!tensorflow?.usable) {
      await expect(initBackend('tensorflow')).rejects.toBeInstanceOf(BackendError);
      await expect(initBackend('tensorflow')).rejects.toThrow(/backend 'tensorflow' is not usable here: tensorflow: /);
    }
  });

  const models = [
    { label: 'llama (GQA, untied)', build: () => buildLlama(join(dir, 'llama'), { hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, vocab: 50, tied: false }), linear: 'model.layers.1.self_attn.q_proj' },
    { label: 'gpt2 (tied)', build: () => buildGpt2(join(dir, 'gpt2'), { embd: 32, layers: 2, heads: 4, vocab: 50, positions: 32 }), linear: 'transformer.h.0.attn.c_attn' },
  ];
  for (const m of models) {
    it(`${m.label}: logits and gradients agree between wasm and cpu`, async () => {
      const built = m.build();
      const ids = [1, 7, 3, 9, 22, 41, 5, 5];
      await initBackend('cpu');
      const cpu = await run(built.dir, ids, m.linear);
      await initBackend('wasm');
      const before = tf.memory().numTensors;
      const wasm = await run(built.dir, ids, m.linear);
      expect(tf.memory().numTensors).toBe(before);
      expect(relErr(wasm.logits, cpu.logits)).toBeLessThan(1e-5);
      expect(relErr(wasm.gradLinear, cpu.gradLinear)).toBeLessThan(1e-4);
      // The tied/untied head's gradient includes the embedding lookup's (gather -> UnsortedSegmentSum on wasm).
      expect(relErr(wasm.gradHead, cpu.gradHead)).toBeLessThan(1e-4);
    });
  }
});
