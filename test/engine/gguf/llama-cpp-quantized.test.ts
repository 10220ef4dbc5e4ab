/**
 * Quantized GGUF both ways against llama.cpp:
 *   - files llama.cpp's own quantizer (llama_model_quantize, what llama-quantize and Ollama run) made from our F32
 *     export load in our engine, whose predictions equal llama.cpp's on the same weights dequantized by ggml
 *     itself, to float32 rounding (llama.cpp running the quantized file directly also rounds its activations to
 *     8 bits, so there the two agree only to a few hundredths);
 *   - our Q8_0 export is byte for byte what llama.cpp's quantizer writes, and our F16 / BF16 / Q8_0 files run in
 *     llama.cpp with our predictions.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportGgufModel } from '../../../main/engine/adapters/gguf-model-export';
import { GgufFile } from '../../../main/engine/io/gguf';
import { writeGguf, type GgufTensorSpec } from '../../../main/engine/io/gguf-write';
import { encodePrompt } from '../../../main/engine/io/prompt';
import { loadTokenizer } from '../../../main/engine/io/tokenizer';
import { loadModel } from '../../../main/engine/models/registry';
import type { CausalLM } from '../../../main/engine/models/types';
import { useCpu } from '../lora/setup';
import { llamaCppLogProbs, runGgmlTool } from '../../support/llama-cpp';
import { STARTER, confidentDisagreements, maxDiff, ourLogProbs } from './helpers';

const PROMPT = [{ role: 'user', content: 'Tell me about the sea and the sky.' }];
let work: string;
let f32: string;
let tokens: number[];
/** The F32 model's log-probabilities. */
let reference: Float64Array[];
beforeAll(async () => {
  await useCpu();
  work = mkdtempSync(join(tmpdir(), 'lorasmith-quantized-'));
  f32 = join(work, 'starter-f32.gguf');
  await withModel(STARTER, (model) => exportGgufModel(model, STARTER, f32, { type: 'F32', name: 'starter' }));
  tokens = encodePrompt(await loadTokenizer(STARTER), PROMPT);
  reference = await withModel(STARTER, (model) => ourLogProbs(model, tokens));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function withModel<T>(path: string, fn: (model: CausalLM) => Promise<T>): Promise<T> {
  const model = await loadModel(path);
  try {
    return await fn(model);
  } finally {
    model.dispose();
  }
}

/** The same model as F32, every tensor dequantized by ggml's own to_float (not by our code). */
async function dequantizedByGgml(path: string, out: string): Promise<string> {
  const file = new GgufFile(path);
  try {
    const tensors: GgufTensorSpec[] = [...file.tensors.values()].map((info) => ({
      name: info.name,
      shape: info.shape,
      type: 'F32',
      data: () => {
        const raw = join(work, 'tensor.raw');
        writeFileSync(raw, file.readRaw(info.name));
        runGgmlTool(['dequant', String(info.type.id), raw, join(work, 'tensor.f32'), String(info.count)]);
        const b = readFileSync(join(work, 'tensor.f32'));
        return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      },
    }));
    const metadata = [...file.metadata].filter(([key]) => key !== 'general.file_type').map(([key, e]) => ({ key, ...e }));
    await writeGguf(out, metadata, tensors);
    return out;
  } finally {
    file.close();
  }
}

describe("GGUF in: files llama.cpp's quantizer wrote", () => {
  const cases = [
    { name: 'Q8_0', ftype: 7, types: ['Q8_0'] },
    { name: 'Q4_0', ftype: 2, types: ['Q4_0'] },
    { name: 'Q4_K_M', ftype: 15, types: ['Q4_K', 'Q6_K'] },
    { name: 'Q6_K', ftype: 18, types: ['Q6_K'] },
  ];
  for (const c of cases) {
    it(`${c.name}: our engine computes what llama.cpp computes from the same weights`, async () => {
      const path = join(work, `starter-${c.name}.gguf`);
      runGgmlTool(['model-quantize', f32, path, String(c.ftype)]);
      const file = new GgufFile(path);
      const types = new Set([...file.tensors.values()].map((t) => t.type.name));
      file.close();
      for (const t of c.types) expect(types.has(t), `${c.name} holds ${t}`).toBe(true);
      expect(encodePrompt(await loadTokenizer(path), PROMPT)).toEqual(tokens);
      const ours = await withModel(path, (model) => ourLogProbs(model, tokens));
      const exact = (await llamaCppLogProbs(await dequantizedByGgml(path, join(work, `starter-${c.name}-f32.gguf`)), tokens)).logProbs;
      expect(maxDiff(ours, exact)).toBeLessThan(5e-5);
      const direct = (await llamaCppLogProbs(path, tokens)).logProbs;
      expect(maxDiff(ours, direct)).toBeLessThan(0.25);
      expect(confidentDisagreements(ours, direct, 0.3)).toEqual([]);
      // Quantization itself moved the model, which is what makes the comparisons above meaningful.
      expect(maxDiff(ours, reference)).toBeGreaterThan(1e-3);
    });
  }
});

describe('GGUF out: our F16, BF16 and Q8_0 files', () => {
  it('Q8_0 is byte for byte what llama.cpp quantizes from the same F32 weights', async () => {
    const ours = join(work, 'ours-q8_0.gguf');
    await withModel(STARTER, (model) => exportGgufModel(model, STARTER, ours, { type: 'Q8_0', name: 'starter' }));
    const theirsPath = join(work, 'theirs-q8_0.gguf');
    runGgmlTool(['model-quantize', f32, theirsPath, '7']);
    const [a, b] = [new GgufFile(ours), new GgufFile(theirsPath)];
    try {
      expect([...a.tensors.keys()].sort()).toEqual([...b.tensors.keys()].sort());
      for (const [name, info] of a.tensors) {
        expect(info.type.name, name).toBe(b.tensor(name).type.name);
        expect(Buffer.from(a.readRaw(name)).equals(Buffer.from(b.readRaw(name))), name).toBe(true);
      }
    } finally {
      a.close();
      b.close();
    }
  });

  // llama.cpp rounds activations to the weights' type inside its products: F16 keeps 11 bits, BF16 8, Q8_0 8 per block.
  const tolerance = { F16: 0.01, BF16: 0.05, Q8_0: 0.15 } as const;
  for (const type of ['F16', 'BF16', 'Q8_0'] as const) {
    it(`${type}: llama.cpp runs it with our engine's predictions`, async () => {
      const path = join(work, `ours-${type}.gguf`);
      await withModel(STARTER, (model) => exportGgufModel(model, STARTER, path, { type, name: 'starter' }));
      const ours = await withModel(path, (model) => ourLogProbs(model, tokens));
      const theirs = (await llamaCppLogProbs(path, tokens)).logProbs;
      expect(maxDiff(ours, theirs)).toBeLessThan(tolerance[type]);
      expect(confidentDisagreements(ours, theirs, 0.3)).toEqual([]);
    });
  }
});
