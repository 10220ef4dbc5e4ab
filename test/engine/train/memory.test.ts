/**
 * The memory estimate's activation terms against what tfjs really keeps: a decoder block run under the gradient
 * tape, counting the distinct buffers its tape nodes saved (not tf.memory's byte count, which counts a clone's
 * shared buffer once per tensor), on qwen2 (grouped-query heads, q/k/v bias) and GPT-2, with the fused native
 * kernels and without, LoRA on every linear with and without dropout. Then the refusal: numbers and what to change.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { TensorWeight } from '../../../main/engine/backend/frozen';
import { initBackend } from '../../../main/engine/backend/index';
import { unregisterNativeKernels } from '../../../main/engine/backend/native/index';
import { adapterVariables, injectAdapter } from '../../../main/engine/lora/inject';
import { loadModel } from '../../../main/engine/models/registry';
import { inspectModel, linearSpecsOf } from '../../../main/engine/models/inspect';
import type { BlockRunner, CausalLM } from '../../../main/engine/models/types';
import { TrainError } from '../../../main/engine/train/errors';
import { assertFits, baseHolding, blockActivationFloats, estimateMemory, loadedModelPlan, modelDirPlan, resolveRecompute } from '../../../main/engine/train/memory';
import { estimateTraining } from '../../../main/engine/train/estimate';
import { trainLoop } from '../../../main/engine/train/loop';
import { addonAvailable } from '../backend/native-support';
import { buildGpt2, buildLlama } from '../models/random-models';

const dir = mkdtempSync(join(tmpdir(), 'lorasmith-memory-'));
afterAll(() => {
  unregisterNativeKernels('wasm');
  rmSync(dir, { recursive: true, force: true });
});

const MODELS = {
  qwen2: () => buildLlama(join(dir, 'qwen2'), { modelType: 'qwen2', hidden: 48, layers: 2, heads: 3, kvHeads: 1, intermediate: 80, vocab: 50, tied: true }, 1).dir,
  gpt2: () => buildGpt2(join(dir, 'gpt2'), { embd: 48, layers: 2, heads: 3, vocab: 50, positions: 32 }, 2).dir,
} as const;
const [B, T] = [2, 9];

/** Floats in buffers that block 1's tape nodes saved and that did not exist before the block ran. */
function measuredBlockFloats(model: CausalLM, variables: ReadonlyMap<string, tf.Variable>): number {
  const dataId = (t: tf.Tensor) => (t as unknown as { dataId: object }).dataId;
  let floats = -1;
  let index = 0;
  const probe: BlockRunner = (block, x, context) => {
    const tape = tf.engine().state.activeTape;
    const start = tape.length;
    const known = new Set<object>([x, ...context].map(dataId));
    for (const layer of model.linears.values()) {
      const weight = layer.weight instanceof TensorWeight ? layer.weight.tensor : null; // a stored weight is no tensor
      for (const t of [weight, layer.bias, ...[...layer.adapters.values()].flatMap((a) => [a.At, a.Bt])]) if (t) known.add(dataId(t));
    }
    tf.tidy(() => {
      for (const t of model.namedWeights().values()) known.add(dataId(t));
    });
    const y = block(x, context);
    if (index++ === 1) {
      floats = 0;
      for (const node of tape.slice(start)) {
        for (const t of node.saved ?? []) {
          if (known.has(dataId(t))) continue;
          known.add(dataId(t));
          floats += t.size;
        }
      }
      if (!known.has(dataId(y))) floats += y.size; // the block's output, kept as the next block's input
    }
    return y;
  };
  const ids = tf.tensor2d(Array.from({ length: B * T }, (_, i) => (i * 7) % 50), [B, T], 'int32');
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.tidy(() => model.hiddenStates(ids, { training: true, runBlock: probe }))) as tf.Scalar, [...variables.values()]);
  tf.dispose([value, ids, ...Object.values(grads)]);
  return floats;
}

describe.each([['cpu', false], ['wasm', true]] as const)('activation floats of a block on %s (fused kernels: %s)', (backend, fused) => {
  const skip = fused && !addonAvailable;
  describe.each(Object.keys(MODELS) as (keyof typeof MODELS)[])('%s', (kind) => {
    it.skipIf(skip).each([0, 0.1])('LoRA r=4 on every linear, dropout %s: estimate within 6% of the saved buffers', async (dropout) => {
      await initBackend(backend, { native: fused ? { threads: 1 } : false });
      const model = await loadModel(MODELS[kind]());
      try {
        const variables = adapterVariables(injectAdapter(model, 'a', { targetModules: 'all-linear', rank: 4, alpha: 8, dropout }));
        const plan = loadedModelPlan(model, variables, { batchSize: B, seqLen: T, recompute: false });
        expect(plan.fusedKernels).toBe(fused);
        expect(plan.lora?.modules.length).toBe(kind === 'gpt2' ? 8 : 14);
        const measured = measuredBlockFloats(model, variables);
        const estimated = blockActivationFloats(plan, 1);
        expect(measured).toBeGreaterThan(0);
        expect(Math.abs(estimated - measured) / measured, `estimated ${estimated}, measured ${measured}`).toBeLessThan(0.06);
      } finally {
        model.dispose();
      }
    });
  });
});

describe('running out of memory mid-run', () => {
  it('fails the run with NOT_ENOUGH_MEMORY naming the step and what to change, leaks nothing, and the model still works', async () => {
    await initBackend('cpu', { native: false });
    const model = await loadModel(MODELS.qwen2());
    try {
      const variables = adapterVariables(injectAdapter(model, 'a', { targetModules: 'all-linear', rank: 4, alpha: 8, dropout: 0 }));
      const rows = Array.from({ length: 4 }, (_, i) => ({ line: i + 1, ids: [1, 2 + i, 3, 4, 5], train: [0, 1, 1, 1, 1] }));
      let calls = 0;
      const failing: CausalLM = Object.assign(Object.create(model) as CausalLM, {
        hiddenStates: (ids: tf.Tensor2D, options?: Parameters<CausalLM['hiddenStates']>[1]) => {
          if (++calls === 2) throw new RangeError('Array buffer allocation failed');
          return model.hiddenStates(ids, options);
        },
      });
      const before = tf.memory().numTensors;
      const run = trainLoop({ model: failing, variables, trainRows: rows, padId: 0, hyperparameters: { maxSteps: 3, batchSize: 2 } });
      await expect(run).rejects.toMatchObject({ code: 'NOT_ENOUGH_MEMORY' });
      await expect(run).rejects.toThrow(/ran out of memory at step 2 \(Array buffer allocation failed\); turn on activation recomputation, or lower the batch size/);
      expect(tf.memory().numTensors).toBe(before);
      const again = await trainLoop({ model, variables, trainRows: rows, padId: 0, hyperparameters: { maxSteps: 1, batchSize: 2 } });
      expect(again.status).toBe('completed');
    } finally {
      model.dispose();
    }
  });
});

describe('the refusal', () => {
  it('names what the run needs, what is available and what would fit, before loading', async () => {
    await initBackend('cpu', { native: false });
    const summary = inspectModel(MODELS.qwen2());
    const lora = { targetModules: 'all-linear', rank: 8, dropout: 0 } as const;
    const plan = modelDirPlan(summary, lora, { batchSize: 64, seqLen: 512, recompute: false });
    const need = estimateMemory(plan).peakBytes;
    const withRecompute = estimateMemory({ ...plan, recompute: true }).peakBytes;
    expect(withRecompute).toBeLessThan(need);
    expect(() => assertFits(plan, need)).not.toThrow();

    const error = (() => {
      try {
        assertFits(plan, (need + withRecompute) / 2);
      } catch (e) {
        return e as TrainError;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(TrainError);
    expect(error?.code).toBe('NOT_ENOUGH_MEMORY');
    expect(error?.message).toMatch(/needs about \d+\.\d\d GiB .* and \d+\.\d\d GiB is available/);
    expect(error?.message).toContain('--recompute');

    // nothing fits in a few megabytes: the message says the smallest run and to pick a smaller model
    expect(() => assertFits(plan, 2 ** 20)).toThrow(/No batch or sequence length fits: the base model alone takes .* use a smaller model/);
    // a smaller batch is offered when recomputation alone is not enough
    const small = estimateMemory({ ...plan, batchSize: 8, recompute: true }).peakBytes;
    expect(() => assertFits(plan, small)).toThrow(/--batch-size \d+/);
  });

  it('on wasm without the frozen store, refuses a base whose float32 tensors outgrow the 4 GB heap, and says to use cpu', async () => {
    // Qwen2.5-1.5B's shape: 1.5 billion float32 parameters are 6 GB of tensors.
    const config = {
      modelType: 'qwen2', vocabSize: 151936, hiddenSize: 1536, numLayers: 28, numHeads: 12, numKvHeads: 2, headDim: 128,
      intermediateSize: 8960, maxPositions: 32768, tieWordEmbeddings: true, bosTokenId: null, eosTokenIds: [151643], padTokenId: null,
    };
    const linears = linearSpecsOf({ ...config, raw: {} });
    const summary = { config, linears, parameterCount: 1_543_714_304, dtypes: { BF16: 338 } };
    const lora = { targetModules: 'all-linear', rank: 16, dropout: 0 } as const;
    unregisterNativeKernels('wasm'); // the float32-tensor path: no frozen store
    await initBackend('wasm', { native: false });
    const onWasm = modelDirPlan(summary, lora, { batchSize: 1, seqLen: 64, recompute: true });
    expect(onWasm.baseHeld).toBe('tensors');
    expect(() => assertFits(onWasm, 2 ** 40)).toThrow(/more than the wasm backend's single 4\.00 GiB heap can hold\. To fit: the cpu backend, which has no heap limit \(--backend cpu/);
    await initBackend('cpu', { native: false });
    expect(() => assertFits(modelDirPlan(summary, lora, { batchSize: 1, seqLen: 64, recompute: true }), 2 ** 40)).not.toThrow();
  });

  /** Qwen2.5-1.5B's shape as inspectModel reports a BF16 folder of it. */
  const qwen15 = () => {
    const config = {
      modelType: 'qwen2', vocabSize: 151936, hiddenSize: 1536, numLayers: 28, numHeads: 12, numKvHeads: 2, headDim: 128,
      intermediateSize: 8960, maxPositions: 32768, tieWordEmbeddings: true, bosTokenId: null, eosTokenIds: [151643], padTokenId: null,
    };
    return { config, linears: linearSpecsOf({ ...config, raw: {} }), parameterCount: 1_543_714_304, dtypes: { BF16: 338 } };
  };
  // By hand: per layer q and o 1536², k and v 256 × 1536, gate, up and down 8960 × 1536; the tied table 151936 × 1536.
  const matrixValues = 28 * (2 * 1536 * 1536 + 2 * 256 * 1536 + 3 * 8960 * 1536) + 151936 * 1536;
  const otherBytes = (1_543_714_304 - matrixValues) * 4; // norms and q/k/v biases stay float32
  const bf16Bytes = matrixValues * 2 + otherBytes;
  const q8Bytes = matrixValues + (matrixValues / 32) * 2 + otherBytes; // every row a whole number of 32-value blocks
  const q4Bytes = (matrixValues / 32) * 18 + otherBytes; // 18 bytes per block
  const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  const refusal = (f: () => void): string => {
    try {
      f();
    } catch (e) {
      expect((e as TrainError).code).toBe('NOT_ENOUGH_MEMORY');
      return (e as Error).message;
    }
    throw new Error('no refusal');
  };

  it('without the frozen store, says which base sizes fit as float32 tensors and what the store would hold this one in', async () => {
    const lora = { targetModules: 'all-linear', rank: 16, dropout: 0 } as const;
    unregisterNativeKernels('wasm');
    await initBackend('wasm', { native: false });
    const plan = modelDirPlan(qwen15(), lora, { batchSize: 1, seqLen: 64, recompute: true });
    expect(plan.baseHeld).toBe('tensors');
    const message = refusal(() => assertFits(plan, 2 ** 40));
    expect(message).toContain('the frozen-weight store is not in use');
    expect(message).toContain('`npm run build:native`');
    expect(message).toContain(`With the store this base would take ${gib(bf16Bytes)} at its file precision, ${gib(q8Bytes)} at Q8_0 or ${gib(q4Bytes)} at Q4_0, and this run would fit.`);
    // "a base of about N at most fits": a base of 0.98 N float32 parameters does, one of 1.05 N does not.
    const [, amount = '', unit = ''] = /a base of about ([\d.]+)([MB]) parameters at most fits/.exec(message) ?? [];
    const n = Number(amount) * (unit === 'B' ? 1e9 : 1e6);
    expect(n).toBeGreaterThan(1e8);
    expect(() => assertFits({ ...plan, baseWeightBytes: 0.98 * n * 4 }, 2 ** 40)).not.toThrow();
    expect(() => assertFits({ ...plan, baseWeightBytes: 1.05 * n * 4 }, 2 ** 40)).toThrow();
    await initBackend('cpu', { native: false });
  });

  it.skipIf(!addonAvailable)('with the frozen store, offers the base at Q8_0 with what it takes when that fits, at Q4_0 when only that fits', async () => {
    const lora = { targetModules: 'all-linear', rank: 16, dropout: 0 } as const;
    await initBackend('wasm', { native: {} });
    const plan = modelDirPlan(qwen15(), lora, { batchSize: 1, seqLen: 64, recompute: true });
    expect(plan.baseHeld).toBe('store');
    expect(plan.baseWeightBytes).toBe(bf16Bytes);
    const atBf16 = estimateMemory(plan).peakBytes;
    const atQ8 = estimateMemory({ ...plan, baseWeightBytes: q8Bytes }).peakBytes;
    expect(atQ8).toBeLessThan(atBf16);
    const message = refusal(() => assertFits(plan, (atBf16 + atQ8) / 2));
    expect(message).toContain(`keep the base at 8 bits (LORASMITH_BASE_PRECISION=q8_0: ${gib(q8Bytes)} instead of ${gib(bf16Bytes)}`);
    expect(message).not.toContain('frozen-weight store is not in use');
    expect(message).not.toContain('q4_0'); // 8 bits fit: 4 bits not offered
    // Between the peaks at Q8_0 and Q4_0: 4 bits offered, 8 bits not.
    const atQ4 = estimateMemory({ ...plan, baseWeightBytes: q4Bytes }).peakBytes;
    expect(atQ4).toBeLessThan(atQ8);
    const tighter = refusal(() => assertFits(plan, (atQ8 + atQ4) / 2));
    expect(tighter).toContain(`keep the base at 4 bits (LORASMITH_BASE_PRECISION=q4_0: ${gib(q4Bytes)} instead of ${gib(bf16Bytes)}`);
    expect(tighter).not.toContain('LORASMITH_BASE_PRECISION=q8_0');
    // already at Q8_0: not offered again; at Q4_0, nothing smaller to offer
    const q8Plan = modelDirPlan(qwen15(), lora, { batchSize: 1, seqLen: 64, recompute: true }, 'q8_0');
    expect(q8Plan.baseWeightBytes).toBe(q8Bytes);
    expect(refusal(() => assertFits(q8Plan, (atQ8 + atQ4) / 2))).not.toContain('LORASMITH_BASE_PRECISION=q8_0');
    const q4Plan = modelDirPlan(qwen15(), lora, { batchSize: 1, seqLen: 64, recompute: true }, 'q4_0');
    expect(q4Plan.baseWeightBytes).toBe(q4Bytes);
    expect(refusal(() => assertFits(q4Plan, atQ4 / 2))).not.toContain('LORASMITH_BASE_PRECISION');
    unregisterNativeKernels('wasm');
    await initBackend('cpu', { native: false });
  });

  it('says how the base is held and what BF16, Q8_0 and Q4_0 would take, counted by hand', async () => {
    await initBackend('cpu', { native: false });
    const model = await loadModel(MODELS.qwen2());
    try {
      // per layer q and o 48 × 48, k and v 16 × 48, gate and up 80 × 48, down 48 × 80; the tied head 50 × 48
      const rows48 = 2 * (48 + 16 + 16 + 48 + 80 + 80) + 50; // rows of 48 values: 2 blocks of 32, one short
      const rows80 = 2 * 48; // down_proj's rows of 80 values: 3 blocks
      const values = rows48 * 48 + rows80 * 80;
      expect(baseHolding(model)).toEqual({
        held: 'tensor', bytes: 4 * values, bf16Bytes: 2 * values, q8_0Bytes: rows48 * (48 + 2 * 2) + rows80 * (80 + 3 * 2),
        q4_0Bytes: rows48 * 2 * 18 + rows80 * 3 * 18,
      });
    } finally {
      model.dispose();
    }
  });

  it("'auto' recomputes only when the run would not fit without it", () => {
    const summary = inspectModel(MODELS.gpt2());
    const plan = modelDirPlan(summary, null, { batchSize: 4, seqLen: 32, recompute: false });
    const e = estimateMemory(plan);
    const extra = e.peakBytes - e.parts.runtime - e.parts.baseWeights - e.parts.loading;
    expect(resolveRecompute('auto', plan, extra + 1)).toBe(false);
    expect(resolveRecompute('auto', plan, extra - 1)).toBe(true);
    expect(resolveRecompute('off', plan, 1)).toBe(false);
    expect(resolveRecompute('on', plan, 2 ** 40)).toBe(true);
  });

  it('estimateTraining refuses a run that does not fit, without running a step', async () => {
    await initBackend('cpu', { native: false });
    const model = await loadModel(MODELS.qwen2());
    try {
      const variables = adapterVariables(injectAdapter(model, 'a', { targetModules: 'all-linear', rank: 4, alpha: 8, dropout: 0 }));
      const rows = Array.from({ length: 8 }, (_, i) => ({ line: i + 1, ids: [1, 2 + i, 3, 4, 5], train: [0, 1, 1, 1, 1] }));
      const before = tf.memory().numTensors;
      await expect(estimateTraining({ model, variables, rows, padId: 0, availableMemoryBytes: 1024 })).rejects.toMatchObject({ code: 'NOT_ENOUGH_MEMORY' });
      expect(tf.memory().numTensors).toBe(before);
      const fits = await estimateTraining({ model, variables, rows, padId: 0, calibrationSteps: 1, availableMemoryBytes: 2 ** 34 });
      expect(fits.recompute).toBe(false);
      expect(fits.peakMemoryBytes).toBeGreaterThan(fits.memory.runtime);
      expect(fits.calibrationSteps).toBe(1);
    } finally {
      model.dispose();
    }
  });
});
