/**
 * The frozen-weight abstraction without the addon: a tensor-held weight's product, rows and layouts against
 * plain arithmetic, the formats each precision picks, the bytes a real model's base takes in each
 * representation (Qwen2.5-0.5B's shapes, counted by hand below), and a base loaded at q8_0 or q4_0 where no store
 * serves the backend (float32 tensors with the file's values, the precision changing nothing).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeFrozenStore, baseWeightBytes, storedFormatFor, TensorWeight } from '../../../main/engine/backend/frozen';
import { linearSpecsOf } from '../../../main/engine/models/inspect';
import { loadModel } from '../../../main/engine/models/registry';
import type { ModelConfig } from '../../../main/engine/models/types';
import { frozenBaseBytes } from '../../../main/engine/models/weights';
import { buildLlama } from '../models/random-models';
import { useBackend } from './native-support';

beforeAll(() => useBackend('cpu'));
const dir = mkdtempSync(join(tmpdir(), 'frozen-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('TensorWeight', () => {
  it('multiplies, gathers rows and gives both layouts from [in, out] and from [out, in]', () => {
    const w = [[1, 2, 3], [4, 5, 6]]; // W [out = 2, in = 3]
    const x = [[1, 0, -1], [2, 1, 0]];
    const want = [[-2, -2], [4, 13]]; // x·Wᵀ
    for (const layout of ['out-in', 'in-out'] as const) {
      const tensor = layout === 'out-in' ? tf.tensor2d(w) : tf.tensor2d([[1, 4], [2, 5], [3, 6]]);
      const weight = new TensorWeight(tensor, layout);
      expect([weight.outFeatures, weight.inFeatures, weight.bytes, weight.format]).toEqual([2, 3, 24, 'tensor']);
      expect(tf.tidy(() => weight.matmul(tf.tensor2d(x)).arraySync())).toEqual(want);
      expect(tf.tidy(() => weight.rows(tf.tensor1d([1, 0, 1], 'int32')).arraySync())).toEqual([w[1], w[0], w[1]]);
      expect(tf.tidy(() => weight.toTensor('out-in').arraySync())).toEqual(w);
      expect(weight.toTensor(layout)).toBe(tensor); // its own tensor, no copy
      weight.dispose();
      expect(tensor.isDisposed).toBe(true);
    }
  });
});

describe('precisions and sizes', () => {
  it('keeps the file precision unless asked for BF16 (F32 files only), Q8_0 or Q4_0', () => {
    expect(storedFormatFor('BF16', 'stored')).toBe('BF16');
    expect(storedFormatFor('F32', 'stored')).toBe('F32');
    expect(storedFormatFor('F32', 'bf16')).toBe('BF16');
    expect(storedFormatFor('F16', 'bf16')).toBe('F16');
    expect(storedFormatFor('F16', 'q8_0')).toBe('Q8_0');
    expect(storedFormatFor('BF16', 'q4_0')).toBe('Q4_0');
    // 33 values a row: two blocks, the second holding one value (Q4_0 stores it whole, 18 bytes).
    expect(baseWeightBytes([{ rows: 3, cols: 33, dtype: 'F32' }])).toEqual({ tensor: 396, stored: 396, bf16: 198, q8_0: 99 + 3 * 2 * 2, q4_0: 3 * 2 * 18 });
  });

  it("counts Qwen2.5-0.5B's base: 1.98 GB of float32 tensors, 0.99 GB BF16, 0.52 GB Q8_0, 0.28 GB Q4_0", () => {
    const config = {
      modelType: 'qwen2', vocabSize: 151936, hiddenSize: 896, numLayers: 24, numHeads: 14, numKvHeads: 2, headDim: 64,
      intermediateSize: 4864, tieWordEmbeddings: true,
    } as ModelConfig;
    // Per layer: q and o 896², k and v 128·896, gate, up and down 4864·896; plus the tied table 151936·896.
    const values = 24 * (2 * 896 * 896 + 2 * 128 * 896 + 3 * 4864 * 896) + 151936 * 896;
    expect(values).toBe(493_961_216);
    // Q8_0 scales: one F16 per 32 values of each row (896 = 28 blocks, 4864 = 152).
    const scales = 24 * (2 * 896 * 28 + 2 * 128 * 28 + 2 * 4864 * 28 + 896 * 152) + 151936 * 28;
    // Q4_0: 18 bytes per block of 32 (every row here is whole blocks, so 0.5625 bytes a value).
    expect(scales * 32).toBe(values);
    expect(frozenBaseBytes(config, linearSpecsOf(config), 'BF16')).toEqual({
      tensor: values * 4, stored: values * 2, bf16: values * 2, q8_0: values + scales * 2, q4_0: scales * 18,
    });
    expect((scales * 18) / 1e9).toBeCloseTo(0.278, 3);
  });
});

describe('without a frozen store', () => {
  it('loads the base at q8_0 or q4_0 as float32 tensors holding the file\'s values, as at stored', async () => {
    const shape = { modelType: 'qwen2' as const, hidden: 32, layers: 1, heads: 4, kvHeads: 2, intermediate: 48, vocab: 40, tied: true, dtype: 'BF16' as const };
    const built = buildLlama(join(dir, 'qwen2-bf16'), shape, 3);
    expect(activeFrozenStore()).toBeNull();
    const want = Array.from(built.weights.get('model.layers.0.mlp.down_proj.weight')?.data ?? []);
    for (const precision of ['q8_0', 'q4_0'] as const) {
      const model = await loadModel(built.dir, { precision });
      try {
        const weight = model.linears.get('model.layers.0.mlp.down_proj')?.weight;
        expect(weight?.format).toBe('tensor');
        expect(Array.from(tf.tidy(() => weight?.toTensor('out-in').dataSync() ?? new Float32Array()))).toEqual(want);
      } finally {
        model.dispose();
      }
    }
  });
});
