/**
 * GGUF models on the frozen-weight store (the native addon on cpu): F16 files stay F16 outside the heap with the
 * folder model's logits; Q8_0 files are kept as Q8_0 (requantizing their values gives the same blocks, so the
 * logits are those of the float32 path); K-quant files are kept as Q8_0 too, close to their float32 values.
 * Exporting a model whose weights live in the store writes the same file as from tensors.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportGgufModel } from '../../../main/engine/adapters/gguf-model-export';
import { activeFrozenStore } from '../../../main/engine/backend/frozen';
import { initBackend } from '../../../main/engine/backend/index';
import { hasWeightKernels } from '../../../main/engine/backend/native/addon';
import { unregisterNativeKernels } from '../../../main/engine/backend/native/index';
import { loadModel } from '../../../main/engine/models/registry';
import type { CausalLM } from '../../../main/engine/models/types';
import { frozenWeightBytes } from '../../../main/engine/models/weights';
import { logitsOf, maxAbsDiff } from '../../support/logits';
import { runGgmlTool } from '../../support/llama-cpp';
import { addonLoad, nativeSkipReason } from '../backend/native-support';
import { useCpu } from '../lora/setup';
import { STARTER } from './helpers';

const skip = nativeSkipReason('GGUF models on the frozen-weight store', addonLoad.ok && hasWeightKernels(addonLoad.addon));
const TOKENS = [[1, 872, 198, 40, 1000, 2, 198, 1, 64, 1103]];
let work: string;
/** Files written from the folder model on the plain tensor path, and their logits there. */
const plain = new Map<string, Float32Array>();

async function withModel<T>(path: string, fn: (model: CausalLM) => Promise<T>): Promise<T> {
  const model = await loadModel(path);
  try {
    return await fn(model);
  } finally {
    model.dispose();
  }
}

beforeAll(async () => {
  await useCpu();
  work = mkdtempSync(join(tmpdir(), 'lorasmith-gguf-store-'));
  await withModel(STARTER, async (model) => {
    await exportGgufModel(model, STARTER, join(work, 'f16.gguf'), { type: 'F16' });
    await exportGgufModel(model, STARTER, join(work, 'q8_0.gguf'), { type: 'Q8_0' });
    await exportGgufModel(model, STARTER, join(work, 'f32.gguf'), { type: 'F32' });
  });
  runGgmlTool(['model-quantize', join(work, 'f32.gguf'), join(work, 'q4_k_m.gguf'), '15']);
  for (const name of ['f16', 'q8_0', 'q4_k_m']) plain.set(name, await withModel(join(work, `${name}.gguf`), (m) => logitsOf(m, TOKENS)));
  plain.set('folder', await withModel(STARTER, (m) => logitsOf(m, TOKENS)));
});
afterAll(() => {
  unregisterNativeKernels('cpu');
  rmSync(work, { recursive: true, force: true });
});

describe('GGUF weights in the frozen-weight store', () => {
  it.skipIf(skip)('F16 stays F16, Q8_0 and K-quants become Q8_0 blocks, each with the logits it should have', async () => {
    await initBackend('cpu', { native: { threads: 1 } });
    expect(activeFrozenStore()).not.toBeNull();
    const formats = async (name: string) => withModel(join(work, `${name}.gguf`), async (model) => ({
      formats: new Set([...model.linears.values()].map((l) => l.weight.format)),
      stored: frozenWeightBytes(model.linears).stored,
      logits: await logitsOf(model, TOKENS),
    }));
    const f16 = await formats('f16');
    expect([...f16.formats]).toEqual(['F16']);
    // The starter's checkpoint is F16: the same weights, a different product kernel.
    expect(maxAbsDiff(f16.logits, plain.get('folder') as Float32Array)).toBeLessThan(1e-3);
    const q8 = await formats('q8_0');
    expect([...q8.formats]).toEqual(['Q8_0']);
    expect(q8.stored).toBeLessThan(f16.stored * 0.6);
    expect(maxAbsDiff(q8.logits, plain.get('q8_0') as Float32Array)).toBeLessThan(1e-3);
    const q4 = await formats('q4_k_m');
    expect([...q4.formats]).toEqual(['Q8_0']);
    expect(maxAbsDiff(q4.logits, plain.get('q4_k_m') as Float32Array)).toBeLessThan(0.05);
  });

  it.skipIf(skip)('a model held in the store exports the same GGUF as one held in tensors', async () => {
    await initBackend('cpu', { native: { threads: 1 } });
    await withModel(STARTER, (model) => exportGgufModel(model, STARTER, join(work, 'from-store.gguf'), { type: 'F16' }));
    expect(readFileSync(join(work, 'from-store.gguf')).equals(readFileSync(join(work, 'f16.gguf')))).toBe(true);
  });
});
