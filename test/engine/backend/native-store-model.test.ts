/**
 * A model whose frozen weights live in the native store: a qwen2 (q/k/v bias, tied head, grouped-query heads)
 * loaded from a BF16 safetensors file on wasm and cpu gives the float64 reference's logits with its weights kept
 * BF16 outside the heap (and close ones at Q8_0); a LoRA training step gives the same loss and gradients as the
 * float32-tensor path and leaks neither tensors nor store bytes; at base precision Q4_0 the same steps give the
 * loss and gradients of the float32-tensor path on the weights as Q4_0 rounds them (quantized and dequantized in
 * float64 code that shares nothing with the addon), and greedy decoding with the KV cache (one-row GEMV products)
 * picks the tokens the float64 model of those weights ranks first; merging an adapter into a stored weight keeps it apart, gives
 * the adapted logits, and unmerges to the base exactly.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { ResidentAdapters } from '../../../main/engine/adapters/resident';
import { activeFrozenStore, type BasePrecision } from '../../../main/engine/backend/frozen';
import { initBackend } from '../../../main/engine/backend/index';
import { unregisterNativeKernels } from '../../../main/engine/backend/native/index';
import { adapterVariables, injectAdapter } from '../../../main/engine/lora/inject';
import { generate } from '../../../main/engine/generate/generate';
import { loadModel } from '../../../main/engine/models/registry';
import type { CausalLM } from '../../../main/engine/models/types';
import { frozenWeightBytes } from '../../../main/engine/models/weights';
import { writeSafetensors, type WritableTensor } from '../../../main/engine/io/safetensors';
import { batchLoss } from '../../../main/engine/train/loss';
import { makeBatch } from '../../../main/engine/train/batching';
import { AdamW } from '../../../main/engine/train/optimizer';
import { llamaReference } from '../models/float64-reference';
import { q4Weights } from '../models/precision-reference';
import { buildLlama } from '../models/random-models';
import { addonLoad, nativeSkipReason } from './native-support';
import { hasWeightKernels } from '../../../main/engine/backend/native/addon';

const skip = nativeSkipReason('models on the frozen-weight store', addonLoad.ok && hasWeightKernels(addonLoad.addon));
const dir = mkdtempSync(join(tmpdir(), 'store-model-'));
afterAll(() => {
  unregisterNativeKernels('wasm');
  unregisterNativeKernels('cpu');
  rmSync(dir, { recursive: true, force: true });
});

const shape = { modelType: 'qwen2' as const, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, vocab: 40, tied: true, dtype: 'BF16' as const };
const prompt = [1, 5, 9, 2, 33, 17, 4];
const built = buildLlama(join(dir, 'qwen2-bf16'), shape, 31);

/** The same model with every matrix as Q4_0 rounds it (float64 code), written as F32: exact in float32. */
function writeQ4Dequantized(target: string): string {
  mkdirSync(target, { recursive: true });
  copyFileSync(join(built.dir, 'config.json'), join(target, 'config.json'));
  const tensors: Record<string, WritableTensor> = {};
  for (const [name, w] of q4Weights(built.weights)) tensors[name] = { dtype: 'F32', shape: w.shape, data: Float32Array.from(w.data) };
  writeSafetensors(join(target, 'model.safetensors'), tensors, { format: 'pt' });
  return target;
}
const q4Dir = writeQ4Dequantized(join(dir, 'qwen2-q4-dequantized'));

const logitsOf = (model: CausalLM): Float32Array =>
  tf.tidy(() => model.forward(tf.tensor2d([prompt], [1, prompt.length], 'int32')).dataSync() as Float32Array);
const worstAbs = (got: ArrayLike<number>, want: ArrayLike<number>): number => {
  let w = 0;
  for (let i = 0; i < want.length; i++) w = Math.max(w, Math.abs((got[i] ?? NaN) - (want[i] ?? NaN)) || (Number.isNaN(got[i]) ? Infinity : 0));
  return got.length === want.length ? w : Infinity;
};

describe.each(['wasm', 'cpu'] as const)('a qwen2 on the frozen-weight store (%s)', (backendName) => {
  const refConfig = {
    layers: shape.layers, heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.hidden / shape.heads, eps: 1e-5,
    invFreq: Array.from({ length: 4 }, (_, i) => 1 / 10000 ** ((2 * i) / 8)), qkvBias: true, tied: true,
  };

  it.skipIf(skip)('keeps the BF16 file BF16 outside the heap and gives the float64 logits; Q8_0 stays close; Q4_0 gives its own weights\' float64 logits', async () => {
    const expected = llamaReference(built.weights, refConfig, prompt).flatMap((row) => [...row]);
    await initBackend(backendName, { native: { threads: 2 } });
    const store = activeFrozenStore();
    expect(store).not.toBeNull();
    const live = store?.liveBytes() ?? 0;
    const tensorsBefore = tf.memory().numTensors;
    const model = await loadModel(built.dir);
    const bytes = frozenWeightBytes(model.linears);
    // 7 linears × 2 layers + the tied table, at 2 bytes a value, none of it a tensor.
    const values = shape.layers * (32 * 32 * 2 + 16 * 32 * 2 + 48 * 32 * 3) + shape.vocab * shape.hidden;
    expect(bytes).toEqual({ tensor: 0, stored: values * 2 });
    expect((store?.liveBytes() ?? 0) - live).toBe(values * 2);
    const bf16 = logitsOf(model);
    model.dispose();
    expect(store?.liveBytes()).toBe(live);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(worstAbs(bf16, expected)).toBeLessThan(2e-4);

    const q8 = await loadModel(built.dir, { precision: 'q8_0' });
    // One int8 a value plus an F16 scale per 32-value block of each row (down_proj's 48-wide rows end in a short one).
    const scales = shape.layers * (32 * 1 * 2 + 16 * 1 * 2 + 48 * 1 * 2 + 32 * 2) + shape.vocab * 1;
    expect(frozenWeightBytes(q8.linears).stored).toBe(values + scales * 2);
    const q8Logits = logitsOf(q8);
    q8.dispose();
    const spread = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(worstAbs(q8Logits, expected)).toBeLessThan(0.05 * spread);
    expect(worstAbs(q8Logits, expected)).toBeGreaterThan(0); // it did quantize

    const q4 = await loadModel(built.dir, { precision: 'q4_0' });
    // 18 bytes per 32-value block of each row: one block for rows of 32 values, two for down_proj's rows of 48.
    const blocks = shape.layers * (32 + 16 + 16 + 32 + 48 + 48 + 32 * 2) + shape.vocab;
    expect(frozenWeightBytes(q4.linears).stored).toBe(blocks * 18);
    const q4Logits = logitsOf(q4);
    q4.dispose();
    // The float64 model on the weights as Q4_0 rounds them (format-reference's q4Row): the kernels add float32 rounding only.
    const q4Expected = llamaReference(q4Weights(built.weights), refConfig, prompt).flatMap((row) => [...row]);
    expect(worstAbs(q4Logits, q4Expected)).toBeLessThan(1e-5); // 9e-7 measured
    expect(worstAbs(q4Logits, expected)).toBeGreaterThan(1e-2); // 4 bits move the logits far more than that tolerance
  });

  const batch = makeBatch([
    { line: 1, ids: prompt, train: prompt.map(() => 1) },
    { line: 2, ids: prompt.slice(1), train: [0, 0, 1, 1, 1, 1] },
  ], 0);
  /** Four LoRA steps on every linear kind of the model in `modelDir`, its frozen weights in the store or tensors. */
  const stepsWith = async (modelDir: string, frozenStore: boolean, precision?: BasePrecision) => {
    await initBackend(backendName, { native: { threads: 2, frozenStore } });
    const model = await loadModel(modelDir, precision ? { precision } : {});
    try {
      expect(frozenWeightBytes(model.linears).tensor === 0).toBe(frozenStore);
      const variables = adapterVariables(injectAdapter(model, 'a', {
        targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], rank: 2, alpha: 4, dropout: 0,
      }));
      let seed = 9;
      for (const [name, v] of variables) if (name.endsWith('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', seed++));
      const optimizer = new AdamW(variables);
      const names = [...variables.keys()];
      const losses: number[] = [];
      const counts: { tensors: number; store: number }[] = [];
      let firstGrads = new Map<string, Float32Array>();
      for (let step = 0; step < 4; step++) {
        const { value, grads } = tf.variableGrads(() => batchLoss(model, batch), [...variables.values()]);
        const named = new Map(Object.values(grads).map((g, i) => [names[i] as string, g]));
        if (step === 0) firstGrads = new Map([...named].map(([n, g]) => [n, g.dataSync() as Float32Array]));
        optimizer.apply(named, 1e-2);
        losses.push(value.dataSync()[0] as number);
        tf.dispose([value, ...Object.values(grads)]);
        counts.push({ tensors: tf.memory().numTensors, store: activeFrozenStore()?.liveBytes() ?? 0 });
      }
      return { losses, firstGrads, counts };
    } finally {
      model.dispose();
    }
  };

  /**
   * `stored`'s steps leak nothing (the same counts after the first step, when AdamW's moments are made) and give
   * `want`'s losses and first gradients: float32 products over the same weight values summed in other orders, within
   * 1e-4 relative.
   */
  const expectSameSteps = (stored: Awaited<ReturnType<typeof stepsWith>>, want: Awaited<ReturnType<typeof stepsWith>>) => {
    expect(new Set(stored.counts.slice(1).map((c) => `${c.tensors}/${c.store}`)).size).toBe(1);
    for (const [i, loss] of want.losses.entries()) expect(Math.abs((stored.losses[i] as number) - loss)).toBeLessThan(1e-4 * Math.abs(loss));
    for (const [name, grad] of want.firstGrads) {
      const scale = grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(scale).toBeGreaterThan(0);
      expect(worstAbs(stored.firstGrads.get(name) as Float32Array, grad)).toBeLessThan(1e-4 * scale);
    }
  };

  it.skipIf(skip)('trains LoRA to the float32-tensor path\'s loss and gradients, leaking no tensors and no store bytes', async () => {
    const stored = await stepsWith(built.dir, true);
    const plain = await stepsWith(built.dir, false);
    expect(stored.losses[3]).toBeLessThan(stored.losses[0] as number);
    expectSameSteps(stored, plain);
  });

  it.skipIf(skip)('at base precision Q4_0 trains LoRA to the loss and gradients of the float32 path on the weights as Q4_0 rounds them', async () => {
    const stored = await stepsWith(built.dir, true, 'q4_0');
    const reference = await stepsWith(q4Dir, false);
    const original = await stepsWith(built.dir, false);
    expectSameSteps(stored, reference);
    // The 4-bit rounding shows in the loss, far above that tolerance: the comparison above is not with the BF16 model's.
    expect(Math.abs((stored.losses[0] as number) - (original.losses[0] as number))).toBeGreaterThan(1e-3 * Math.abs(original.losses[0] as number));
  });

  it.skipIf(skip)('decodes greedily at Q4_0 with the KV cache, each token one the float64 model of its rounded weights ranks first', async () => {
    await initBackend(backendName, { native: { threads: 2 } });
    const model = await loadModel(built.dir, { precision: 'q4_0' });
    try {
      const { ids } = await generate(model, prompt, { maxNewTokens: 8, eosTokenIds: [] });
      expect(ids).toHaveLength(8);
      const weights = q4Weights(built.weights);
      const sequence = [...prompt];
      for (const id of ids) {
        const last = llamaReference(weights, refConfig, sequence).at(-1) as Float64Array;
        // The engine's pick is the float64 model's first choice, up to float32 rounding of a near tie (1e-5).
        expect(Math.max(...last) - (last[id] as number)).toBeLessThan(1e-5);
        sequence.push(id);
      }
      expect(new Set(ids).size).toBeGreaterThan(1); // not one token repeated: the comparison ranks several positions
    } finally {
      model.dispose();
    }
  });

  it.skipIf(skip)('merges an adapter into stored weights apart from them: adapted logits, then the base again', async () => {
    await initBackend(backendName, { native: { threads: 1 } });
    const model = await loadModel(built.dir);
    try {
      const resident = new ResidentAdapters(model);
      const injected = injectAdapter(model, 'tuned', { targetModules: ['q_proj', 'down_proj'], rank: 2, alpha: 4, dropout: 0 });
      for (const [name, v] of adapterVariables(injected)) if (name.endsWith('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', 4));
      resident.adopt(injected, { baseModelNameOrPath: 'test', fanInFanOut: false });
      resident.use(null);
      const base = logitsOf(model);
      resident.use('tuned');
      const adapted = logitsOf(model);
      expect(worstAbs(adapted, base)).toBeGreaterThan(1e-3);
      await resident.merge('tuned');
      expect(resident.active).toEqual([]);
      expect(worstAbs(logitsOf(model), adapted)).toBeLessThan(1e-5);
      // The merged weight, as export reads it, is W0 + s·B·A in [out, in].
      const layer = model.linears.get('model.layers.1.mlp.down_proj');
      const merged = tf.tidy(() => tf.sub(layer?.checkpointWeight() as tf.Tensor2D, layer?.weight.toTensor('out-in') as tf.Tensor2D).dataSync());
      const delta = tf.tidy(() => tf.transpose(layer?.adapterDelta('tuned', 1) as tf.Tensor2D).dataSync());
      expect(worstAbs(merged, delta)).toBeLessThan(1e-6);
      resident.unmerge('tuned');
      resident.use(null);
      expect(Array.from(logitsOf(model))).toEqual(Array.from(base));
    } finally {
      model.dispose();
    }
  });
});
