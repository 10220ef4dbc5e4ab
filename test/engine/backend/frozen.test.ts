/**
 * The frozen-weight abstraction without the addon: a tensor-held weight's product, rows and layouts against
 * plain arithmetic, the formats each precision picks, and the bytes a real model's base takes in each
 * representation (Qwen2.5-0.5B's shapes, counted by hand below).
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { baseWeightBytes, storedFormatFor, TensorWeight } from '../../../main/engine/backend/frozen';
import { linearSpecsOf } from '../../../main/engine/models/inspect';
import type { ModelConfig } from '../../../main/engine/models/types';
import { frozenBaseBytes } from '../../../main/engine/models/weights';
import { useBackend } from './native-support';

beforeAll(() => useBackend('cpu'));

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
  it('keeps the file precision unless asked for BF16 (F32 files only) or Q8_0', () => {
    expect(storedFormatFor('BF16', 'stored')).toBe('BF16');
    expect(storedFormatFor('F32', 'stored')).toBe('F32');
    expect(storedFormatFor('F32', 'bf16')).toBe('BF16');
    expect(storedFormatFor('F16', 'bf16')).toBe('F16');
    expect(storedFormatFor('F16', 'q8_0')).toBe('Q8_0');
    expect(baseWeightBytes([{ rows: 3, cols: 33, dtype: 'F32' }])).toEqual({ tensor: 396, stored: 396, bf16: 198, q8_0: 99 + 3 * 2 * 2 });
  });

  it("counts Qwen2.5-0.5B's base: 1.98 GB of float32 tensors, 0.99 GB BF16, 0.52 GB Q8_0", () => {
    const config = {
      modelType: 'qwen2', vocabSize: 151936, hiddenSize: 896, numLayers: 24, numHeads: 14, numKvHeads: 2, headDim: 64,
      intermediateSize: 4864, tieWordEmbeddings: true,
    } as ModelConfig;
    // Per layer: q and o 896², k and v 128·896, gate, up and down 4864·896; plus the tied table 151936·896.
    const values = 24 * (2 * 896 * 896 + 2 * 128 * 896 + 3 * 4864 * 896) + 151936 * 896;
    expect(values).toBe(493_961_216);
    // Q8_0 scales: one F16 per 32 values of each row (896 = 28 blocks, 4864 = 152).
    const scales = 24 * (2 * 896 * 28 + 2 * 128 * 28 + 2 * 4864 * 28 + 896 * 152) + 151936 * 28;
    expect(frozenBaseBytes(config, linearSpecsOf(config), 'BF16')).toEqual({
      tensor: values * 4, stored: values * 2, bf16: values * 2, q8_0: values + scales * 2,
    });
  });
});
