/**
 * The base precision's measured cost against an independent float64 evaluation: a qwen2 stored as BF16 is scored
 * on a dataset's validation rows with its frozen weights kept BF16, then Q8_0, then Q4_0 in the store; each loss
 * must be the float64 forward pass's (llamaReference, with the weights as the file holds them and as GGUF's Q8_0 and
 * Q4_0 round them,
 * quantized here in float64 code that shares nothing with the addon) to float32 rounding, and so must their
 * difference; each copy's bytes are what the formats take.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { activeFrozenStore } from '../../../main/engine/backend/frozen';
import { initBackend } from '../../../main/engine/backend/index';
import { hasWeightKernels } from '../../../main/engine/backend/native/addon';
import { unregisterNativeKernels } from '../../../main/engine/backend/native/index';
import { loadDataset } from '../../../main/engine/train/datasets/dataset';
import { describePrecisionCost, measurePrecisionCost } from '../../../main/engine/train/precision-cost';
import { tokenizeExamples } from '../../../main/engine/train/tokenize';
import { addonLoad, nativeSkipReason } from '../backend/native-support';
import { q4Weights, q8Weights, targetLoss } from '../models/precision-reference';
import { buildLlama, type LlamaShape } from '../models/random-models';
import { charTokenizer } from './char-tokenizer';

const skip = nativeSkipReason('the base precision\'s measured cost', addonLoad.ok && hasWeightKernels(addonLoad.addon));
const dir = mkdtempSync(join(tmpdir(), 'precision-cost-'));
afterAll(() => {
  unregisterNativeKernels('wasm');
  unregisterNativeKernels('cpu');
  rmSync(dir, { recursive: true, force: true });
});

const shape: LlamaShape = { modelType: 'qwen2', hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64, vocab: 64, tied: true, dtype: 'BF16' };
const built = buildLlama(join(dir, 'qwen2-bf16'), shape, 41);
const headDim = shape.hidden / shape.heads;
const refConfig = {
  layers: shape.layers, heads: shape.heads, kvHeads: shape.kvHeads, headDim, eps: 1e-5,
  invFreq: Array.from({ length: headDim / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / headDim)), qkvBias: true, tied: true,
};
const data = join(dir, 'data.jsonl');
const records = Array.from({ length: 12 }, (_, i) => ({ prompt: `question ${i}: what is ${i} plus ${i + 3}?`, completion: ` it is ${2 * i + 3}.` }));
writeFileSync(data, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
const settings = { valSplit: 0.25, seed: 7, batchSize: 2, maxSeqLen: 48 };

describe.each(['wasm', 'cpu'] as const)('the base precision\'s measured cost (%s)', (backendName) => {
  it.skipIf(skip)('Q8_0 and Q4_0 against BF16 on the validation rows, as the float64 model scores them', async () => {
    await initBackend(backendName, { native: { threads: 1 } });
    const store = activeFrozenStore();
    const live = store?.liveBytes();
    const tokenizer = charTokenizer();
    const cost = await measurePrecisionCost({ modelDir: built.dir, tokenizer, data: { path: data }, settings, batches: 1 });
    expect(store?.liveBytes()).toBe(live); // each copy freed once scored

    // The rows a run with these settings validates on (the split is the dataset's, the numbers are not).
    const val = loadDataset({ path: data, valSplit: settings.valSplit, seed: settings.seed }).val;
    const rows = tokenizeExamples(val, tokenizer, { maxSeqLen: settings.maxSeqLen }).examples.slice(0, settings.batchSize);
    expect(cost.rows).toBe('validation');
    expect(cost.examples).toBe(rows.length);
    const bf16 = targetLoss(built.weights, refConfig, rows);
    const q8 = targetLoss(q8Weights(built.weights), refConfig, rows);
    expect(Math.abs(q8 - bf16)).toBeGreaterThan(2e-4); // the quantization shows, well above the tolerance of the check below

    const q4 = targetLoss(q4Weights(built.weights), refConfig, rows);
    expect(Math.abs(q4 - bf16)).toBeGreaterThan(2e-4);

    const [q8Cost, q4Cost] = cost.others;
    expect(cost.reference.format).toBe('BF16');
    expect(cost.others.map((m) => [m.precision, m.format])).toEqual([['q8_0', 'Q8_0'], ['q4_0', 'Q4_0']]);
    expect(Math.abs(cost.reference.loss - bf16)).toBeLessThan(2e-5 * Math.max(1, bf16)); // float32 rounding of the forward pass
    expect(Math.abs((q8Cost?.loss ?? NaN) - q8)).toBeLessThan(2e-5 * Math.max(1, q8));
    expect(Math.abs((q8Cost?.lossDelta ?? NaN) - (q8 - bf16))).toBeLessThan(4e-5 * Math.max(1, bf16));
    expect(Math.abs((q4Cost?.loss ?? NaN) - q4)).toBeLessThan(2e-5 * Math.max(1, q4));
    expect(Math.abs((q4Cost?.lossDelta ?? NaN) - (q4 - bf16))).toBeLessThan(4e-5 * Math.max(1, bf16));

    // Bytes: every matrix once (the tied head is the table), 2 per value at BF16, 1 + an F16 scale per 32 at Q8_0,
    // 18 per 32-value block at Q4_0.
    const matrices = [...built.weights.values()].filter((w) => w.shape.length === 2).map((w) => w.shape as [number, number]);
    const bf16Bytes = matrices.reduce((s, [r, c]) => s + r * c * 2, 0);
    const q8Bytes = matrices.reduce((s, [r, c]) => s + r * c + r * Math.ceil(c / 32) * 2, 0);
    expect(cost.reference.baseBytes).toBe(bf16Bytes);
    expect(q8Cost?.baseBytes).toBe(q8Bytes);
    expect(q8Cost?.bytesSaved).toBe(bf16Bytes - q8Bytes);
    const q4Bytes = matrices.reduce((s, [r, c]) => s + r * Math.ceil(c / 32) * 18, 0);
    expect([q4Cost?.baseBytes, q4Cost?.bytesSaved]).toEqual([q4Bytes, bf16Bytes - q4Bytes]);
    const [, line, q4Line] = describePrecisionCost(cost);
    expect(q4Line).toBe(`Q4_0: ${(q4Cost?.lossDelta ?? 0) >= 0 ? '+' : '−'}${Math.abs(q4Cost?.lossDelta ?? 0).toFixed(3)} loss, ${((bf16Bytes - q4Bytes) / 1e6).toFixed(1)} MB less`);
    expect(line).toBe(`Q8_0: ${(q8Cost?.lossDelta ?? 0) >= 0 ? '+' : '−'}${Math.abs(q8Cost?.lossDelta ?? 0).toFixed(3)} loss, ${((bf16Bytes - q8Bytes) / 1e6).toFixed(1)} MB less`);
  });
});
