/**
 * Our GGUF models and GGUF LoRA adapters in llama.cpp itself (node-llama-cpp 3.21.1, CPU, float32 KV cache):
 * the log-probabilities it computes over the whole vocabulary at every position of a prompt equal our engine's to
 * float32 rounding, for a llama model (the starter: tied head, GPT-2 tokenizer), a Qwen2 model (grouped-query
 * attention, q/k/v biases, Qwen2's tokenizer), a Qwen3 model (per-head q/k norms, head_dim of its own), a Phi-3
 * model (fused projections) and the upstream tiny Llama (SentencePiece tokenizer, untied head,
 * whose greedy sequences from transformers must come out of llama.cpp too).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeGgufBase, exportGgufAdapter } from '../../../main/engine/adapters/gguf-adapter-export';
import { exportGgufModel } from '../../../main/engine/adapters/gguf-model-export';
import { ResidentAdapters } from '../../../main/engine/adapters/resident';
import { GgufFile } from '../../../main/engine/io/gguf';
import { encodePrompt } from '../../../main/engine/io/prompt';
import { loadTokenizer } from '../../../main/engine/io/tokenizer';
import { loadModel } from '../../../main/engine/models/registry';
import type { CausalLM } from '../../../main/engine/models/types';
import { useCpu } from '../lora/setup';
import { maxAbsDiff, logitsOf } from '../../support/logits';
import { llamaCppGreedy, llamaCppLogProbs } from '../../support/llama-cpp';
import { gemmaReference } from '../models/float64-reference';
import { buildGemma } from '../models/random-models';
import { STARTER, TINY_GEMMA3_REFERENCE, buildTinyGemma3, ggmlGelu, logSoftmax, buildTinyPhi3, buildTinyQwen2, buildTinyQwen3, maxDiff, ourLogProbs, randomAdapter } from './helpers';

const TINY_LLAMA = join(import.meta.dirname, '../../fixtures/tiny-random-llama');
/** float32 rounding of the two engines' different summation orders, over a whole vocabulary. */
const FLOAT32_LOGPROB = 5e-5;

let work: string;
beforeAll(async () => {
  await useCpu();
  work = mkdtempSync(join(tmpdir(), 'lorasmith-llama-cpp-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Base and adapter, each checked in llama.cpp against our engine; returns the adapter's own effect size. */
async function checkBaseAndAdapter(model: CausalLM, baseDir: string, name: string, tokens: readonly number[], tolerance = FLOAT32_LOGPROB): Promise<void> {
  const gguf = join(work, `${name}.gguf`);
  await exportGgufModel(model, baseDir, gguf, { type: 'F32', name });
  const base = await ourLogProbs(model, tokens);
  const llamaBase = await llamaCppLogProbs(gguf, tokens);
  expect(maxDiff(base, llamaBase.logProbs)).toBeLessThan(tolerance);

  // Our GGUF read back by our own engine is the same model, bit for bit.
  const reloaded = await loadModel(gguf);
  try {
    expect(maxAbsDiff(await logitsOf(reloaded, [tokens]), await logitsOf(model, [tokens]))).toBe(0);
  } finally {
    reloaded.dispose();
  }

  const adapter = randomAdapter(model);
  const resident = new ResidentAdapters(model);
  resident.add('lora', adapter.config, adapter.meta, adapter.modules);
  resident.use('lora');
  try {
    const adapted = await ourLogProbs(model, tokens);
    const file = join(work, `${name}-lora.gguf`);
    const written = await exportGgufAdapter(adapter, describeGgufBase(gguf), file, { name: `${name}-lora` });
    expect(written.modules).toBe(adapter.modules.size);
    expect(written.folded).toBeGreaterThan(0); // o_proj's rank and alpha differ: its scale lives in lora_b
    const llamaAdapted = await llamaCppLogProbs(gguf, tokens, [{ path: file }]);
    expect(maxDiff(adapted, llamaAdapted.logProbs)).toBeLessThan(tolerance);
    // ...and the adapter changes the output far beyond that tolerance, so the comparison means something.
    expect(maxDiff(adapted, base)).toBeGreaterThan(0.5);
    // The same adapter exported against the Hugging Face folder is the same file.
    const fromFolder = join(work, `${name}-lora-folder.gguf`);
    await exportGgufAdapter(adapter, describeGgufBase(baseDir), fromFolder, { name: `${name}-lora` });
    expect(readFileSync(fromFolder).equals(readFileSync(file))).toBe(true);
  } finally {
    resident.clear();
  }
}

describe('llama.cpp runs our GGUF base and adapter as our engine does', () => {
  it('llama: the starter model (tied head, GPT-2 byte-level tokenizer, ChatML template)', async () => {
    const model = await loadModel(STARTER);
    try {
      const tokenizer = await loadTokenizer(STARTER);
      const tokens = encodePrompt(tokenizer, [{ role: 'user', content: 'Name three colours.' }]);
      await checkBaseAndAdapter(model, STARTER, 'starter', tokens);
      const meta = new GgufFile(join(work, 'starter.gguf'));
      try {
        expect(meta.string('tokenizer.chat_template')).toBe(tokenizer.chatTemplate);
        expect(meta.string('tokenizer.ggml.pre')).toBe('gpt-2');
      } finally {
        meta.close();
      }
    } finally {
      model.dispose();
    }
  });

  it('qwen2: grouped-query attention, q/k/v biases, no rope permutation, Qwen2 tokenizer', async () => {
    const dir = join(work, 'qwen2');
    buildTinyQwen2(dir);
    const model = await loadModel(dir);
    try {
      const tokenizer = await loadTokenizer(dir);
      const tokens = encodePrompt(tokenizer, [{ role: 'user', content: 'What time is it in 2025?' }]);
      await checkBaseAndAdapter(model, dir, 'qwen2', tokens);
      const meta = new GgufFile(join(work, 'qwen2.gguf'));
      try {
        expect([meta.string('general.architecture'), meta.string('tokenizer.ggml.pre')]).toEqual(['qwen2', 'qwen2']);
      } finally {
        meta.close();
      }
    } finally {
      model.dispose();
    }
  });

  it('qwen3: per-head q/k norms, head_dim apart from hidden / heads (key_length), Qwen tokenizer', async () => {
    const dir = join(work, 'qwen3');
    buildTinyQwen3(dir);
    const model = await loadModel(dir);
    try {
      const tokenizer = await loadTokenizer(dir);
      const tokens = encodePrompt(tokenizer, [{ role: 'user', content: 'What time is it in 2025?' }]);
      await checkBaseAndAdapter(model, dir, 'qwen3', tokens);
      const meta = new GgufFile(join(work, 'qwen3.gguf'));
      try {
        expect([meta.string('general.architecture'), meta.number('qwen3.attention.key_length')]).toEqual(['qwen3', 24]);
        expect(meta.tensors.has('blk.1.attn_k_norm.weight')).toBe(true);
      } finally {
        meta.close();
      }
    } finally {
      model.dispose();
    }
  });

  it('phi3: fused qkv_proj and gate_up_proj as attn_qkv and ffn_up, untied head, SentencePiece tokenizer', async () => {
    const dir = join(work, 'phi3');
    buildTinyPhi3(dir);
    const model = await loadModel(dir);
    try {
      const tokenizer = await loadTokenizer(dir);
      const tokens = encodePrompt(tokenizer, 'The capital of France is Paris, and the capital of Italy is');
      await checkBaseAndAdapter(model, dir, 'phi3', tokens);
      const meta = new GgufFile(join(work, 'phi3.gguf'));
      try {
        // Its window lies past its context: llama.cpp's phi3, which attends to the whole context, needs none.
        expect([meta.string('general.architecture'), meta.has('phi3.attention.sliding_window')]).toEqual(['phi3', false]);
        expect([...meta.tensors.keys()].filter((n) => n.startsWith('blk.0.'))).toEqual(expect.arrayContaining(['blk.0.attn_qkv.weight', 'blk.0.ffn_up.weight']));
      } finally {
        meta.close();
      }
    } finally {
      model.dispose();
    }
  });

  it('gemma3: (1 + w) norms kept as llama.cpp keeps them, local windows shorter than the prompt, scaled embedding, Gemma tokenizer', async () => {
    const dir = join(work, 'gemma3');
    const built = buildTinyGemma3(dir);
    const model = await loadModel(dir);
    try {
      const tokenizer = await loadTokenizer(dir);
      const tokens = encodePrompt(tokenizer, [{ role: 'user', content: 'What time is it in Paris in the spring?' }]);
      expect(tokens.length).toBeGreaterThan(8); // past the window of 4
      // ggml computes GELU through a float16 table (GGML_GELU_FP16): y = f16(gelu(f16(x))), a relative 2^-11 per
      // activation, so llama.cpp's Gemma lies within 1e-2 of the exact model (ours), and with the float64 reference
      // given that same GELU it agrees as closely as the other architectures do (below).
      await checkBaseAndAdapter(model, dir, 'gemma3', tokens, 1e-2);
      const reference = logSoftmax(gemmaReference(built.weights, { ...TINY_GEMMA3_REFERENCE, gelu: ggmlGelu }, [...tokens]));
      const llama = (await llamaCppLogProbs(join(work, 'gemma3.gguf'), tokens)).logProbs;
      // Most positions agree to float32 rounding; where an activation sits at a float16 rounding boundary, float32
      // and float64 inputs round to neighbouring float16 values (one step, 2^-11): a few positions differ by more.
      const close = reference.filter((row, t) => maxDiff([row], [llama[t] as Float64Array]) < FLOAT32_LOGPROB).length;
      expect(close / reference.length).toBeGreaterThan(0.75);
      expect(maxDiff(reference, llama)).toBeLessThan(1e-3);
      const meta = new GgufFile(join(work, 'gemma3.gguf'));
      try {
        expect([meta.string('general.architecture'), meta.number('gemma3.attention.sliding_window')]).toEqual(['gemma3', 4]);
        expect(meta.tensors.has('blk.0.post_ffw_norm.weight')).toBe(true);
      } finally {
        meta.close();
      }
    } finally {
      model.dispose();
    }
  });

  it('refuses, naming why, the Gemma models llama.cpp would run differently, and writes nothing', async () => {
    const cases = [
      { version: 3 as const, extra: { sliding_window: 4, sliding_window_pattern: 2, query_pre_attn_scalar: 16 }, error: /global layers are not every 6th/ },
      { version: 3 as const, extra: { sliding_window: 4, sliding_window_pattern: 6, query_pre_attn_scalar: 8 }, error: /query_pre_attn_scalar differs from head_dim/ },
      { version: 2 as const, extra: { sliding_window: 4, query_pre_attn_scalar: 16 }, error: /model_type 'gemma2' cannot be written as GGUF yet \(supported: .*\); export it as a PEFT adapter or a merged Hugging Face model instead/ },
    ];
    for (const [i, c] of cases.entries()) {
      const dir = join(work, `gemma-refused-${i}`);
      buildGemma(dir, c.version, { hidden: 32, layers: 2, heads: 2, kvHeads: 1, headDim: 16, intermediate: 64, vocab: 64, tied: true, extra: c.extra }, 20 + i);
      const model = await loadModel(dir);
      try {
        const out = join(work, `gemma-refused-${i}.gguf`);
        await expect(exportGgufModel(model, dir, out, { type: 'F32' })).rejects.toThrow(c.error);
        expect(existsSync(out)).toBe(false);
      } finally {
        model.dispose();
      }
    }
  });

  it('tiny Llama (SentencePiece, untied head) as F16: llama.cpp reproduces transformers\' greedy sequences', async () => {
    const model = await loadModel(TINY_LLAMA);
    const gguf = join(work, 'tiny-llama-f16.gguf');
    try {
      await exportGgufModel(model, TINY_LLAMA, gguf, { type: 'F16', name: 'tiny-llama' });
    } finally {
      model.dispose();
    }
    const ref = JSON.parse(readFileSync(join(TINY_LLAMA, 'reference_outputs.json'), 'utf8')) as {
      greedy: { input_ids: number[]; max_length: number; expected_sequence: number[] }[];
    };
    for (const g of ref.greedy) expect(await llamaCppGreedy(gguf, g.input_ids, g.max_length)).toEqual(g.expected_sequence);
    // The checkpoint is F16, so F16 is lossless: reading our file back gives the folder's logits exactly.
    const [fromFolder, fromGguf] = [await loadModel(TINY_LLAMA), await loadModel(gguf)];
    try {
      const ids = ref.greedy[0]?.input_ids ?? [];
      expect(maxAbsDiff(await logitsOf(fromGguf, [ids]), await logitsOf(fromFolder, [ids]))).toBe(0);
    } finally {
      fromFolder.dispose();
      fromGguf.dispose();
    }
  });
});
