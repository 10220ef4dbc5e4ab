/**
 * GGUF models on the frozen-weight store (the native addon on cpu): F16 files stay F16 outside the heap with the
 * folder model's logits; Q8_0 files are kept as Q8_0 (requantizing their values gives the same blocks, so the
 * logits are those of the float32 path); K-quant files are kept as Q8_0 too, close to their float32 values; a Q4_0
 * file llama.cpp quantized with every tensor Q4_0 (llama-quantize --pure) is kept as Q4_0, its blocks byte for byte
 * as the file holds them (rows in Hugging Face order: their values are the float32 path's exactly), so its logits are
 * the float32 path's; llama.cpp's usual Q4_0 file (its tied output at Q6_K) is kept as Q8_0 unless Q4_0 is asked for,
 * and then keeps its Q4_0 blocks as they are. Exporting a model whose weights live in the store writes the same file
 * as from tensors.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { exportGgufModel } from '../../../main/engine/adapters/gguf-model-export';
import { activeFrozenStore } from '../../../main/engine/backend/frozen';
import { initBackend } from '../../../main/engine/backend/index';
import { hasWeightKernels } from '../../../main/engine/backend/native/addon';
import { NativeFrozenWeight } from '../../../main/engine/backend/native/frozen-kernels';
import { unregisterNativeKernels } from '../../../main/engine/backend/native/index';
import { GgufFile } from '../../../main/engine/io/gguf';
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
/** The Q4_0 files' linear weights [out, in] as the plain tensor path reads them (ggml's blocks dequantized). */
const q4Plain = new Map<string, Map<string, Float32Array>>();
/** The starter's linears (4 layers) and their GGUF names. */
const LINEARS = [0, 1, 2, 3].flatMap((l) => ([
  ['self_attn.q_proj', 'attn_q'], ['self_attn.k_proj', 'attn_k'], ['self_attn.v_proj', 'attn_v'], ['self_attn.o_proj', 'attn_output'],
  ['mlp.gate_proj', 'ffn_gate'], ['mlp.up_proj', 'ffn_up'], ['mlp.down_proj', 'ffn_down'],
] as const).map(([hf, gguf]) => ({ path: `model.layers.${l}.${hf}`, gguf: `blk.${l}.${gguf}.weight`, permuted: gguf === 'attn_q' || gguf === 'attn_k' })));

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
  runGgmlTool(['model-quantize', join(work, 'f32.gguf'), join(work, 'q4_0.gguf'), '2', 'pure']);
  runGgmlTool(['model-quantize', join(work, 'f32.gguf'), join(work, 'q4_0-mixed.gguf'), '2']);
  for (const name of ['f16', 'q8_0', 'q4_k_m', 'q4_0', 'q4_0-mixed']) plain.set(name, await withModel(join(work, `${name}.gguf`), (m) => logitsOf(m, TOKENS)));
  for (const name of ['q4_0', 'q4_0-mixed']) {
    q4Plain.set(name, await withModel(join(work, `${name}.gguf`), async (m) =>
      new Map(LINEARS.map(({ path }) => [path, tf.tidy(() => m.linears.get(path)?.weight.toTensor('out-in').dataSync() as Float32Array)]))));
  }
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

  /** Loads `name`.gguf at `precision` (the file's default when absent): every linear's Q4_0 blocks as the file holds them. */
  async function checkKept(name: string, precision?: 'q4_0'): Promise<{ formats: Set<string>; logits: Float32Array }> {
    const path = join(work, `${name}.gguf`);
    const file = new GgufFile(path);
    try {
      const model = await loadModel(path, precision ? { precision } : {});
      try {
        for (const { path: linear, gguf, permuted } of LINEARS) {
          expect(file.tensor(gguf).type.name, gguf).toBe('Q4_0');
          const weight = model.linears.get(linear)?.weight;
          if (!(weight instanceof NativeFrozenWeight)) throw new Error(`${linear} is not in the native store`);
          // q and k rows are in llama.cpp's rope order in the file, in Hugging Face's here: the same blocks, moved.
          if (!permuted) expect(Buffer.from(weight.readStored(0, weight.outFeatures)).equals(Buffer.from(file.readRaw(gguf))), linear).toBe(true);
          expect(weight.bytes).toBe(file.tensor(gguf).bytes);
          const values = tf.tidy(() => weight.toTensor('out-in').dataSync());
          expect(maxAbsDiff(values, q4Plain.get(name)?.get(linear) as Float32Array), linear).toBe(0);
        }
        return { formats: new Set([...model.linears.values()].map((l) => l.weight.format)), logits: await logitsOf(model, TOKENS) };
      } finally {
        model.dispose();
      }
    } finally {
      file.close();
    }
  }

  it.skipIf(skip)('a Q4_0 file stays Q4_0, its blocks as the file holds them', async () => {
    await initBackend('cpu', { native: { threads: 1 } });
    const pure = await checkKept('q4_0');
    expect(pure.formats).toEqual(new Set(['Q4_0'])); // the tied table too: every block kept
    // The same weight values, other product kernels: float32 rounding apart.
    expect(maxAbsDiff(pure.logits, plain.get('q4_0') as Float32Array)).toBeLessThan(1e-3);

    // llama.cpp's usual Q4_0 file keeps the tied output at Q6_K: held at Q8_0 unless 4 bits are asked for.
    const mixed = await withModel(join(work, 'q4_0-mixed.gguf'), async (model) => ({
      formats: new Set([...model.linears.values()].map((l) => l.weight.format)), logits: await logitsOf(model, TOKENS),
    }));
    expect(mixed.formats).toEqual(new Set(['Q8_0']));
    expect(maxAbsDiff(mixed.logits, plain.get('q4_0-mixed') as Float32Array)).toBeLessThan(0.05);
    const asked = await checkKept('q4_0-mixed', 'q4_0');
    expect(asked.formats).toEqual(new Set(['Q4_0']));
  });

  it.skipIf(skip)('a model held in the store exports the same GGUF as one held in tensors', async () => {
    await initBackend('cpu', { native: { threads: 1 } });
    await withModel(STARTER, (model) => exportGgufModel(model, STARTER, join(work, 'from-store.gguf'), { type: 'F16' }));
    expect(readFileSync(join(work, 'from-store.gguf')).equals(readFileSync(join(work, 'f16.gguf')))).toBe(true);
  });
});
