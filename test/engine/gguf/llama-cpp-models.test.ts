/**
 * Our GGUF models and GGUF LoRA adapters in llama.cpp itself (node-llama-cpp 3.21.1, CPU, float32 KV cache):
 * the log-probabilities it computes over the whole vocabulary at every position of a prompt equal our engine's to
 * float32 rounding, for a llama model (the starter: tied head, GPT-2 tokenizer), a Qwen2 model (grouped-query
 * attention, q/k/v biases, Qwen2's tokenizer), a Qwen3 model (per-head q/k norms, head_dim of its own), a Phi-3
 * model (fused projections) and the upstream tiny Llama (SentencePiece tokenizer, untied head,
 * whose greedy sequences from transformers must come out of llama.cpp too).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
import { STARTER, buildTinyPhi3, buildTinyQwen2, buildTinyQwen3, maxDiff, ourLogProbs, randomAdapter } from './helpers';

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
async function checkBaseAndAdapter(model: CausalLM, baseDir: string, name: string, tokens: readonly number[]): Promise<void> {
  const gguf = join(work, `${name}.gguf`);
  await exportGgufModel(model, baseDir, gguf, { type: 'F32', name });
  const base = await ourLogProbs(model, tokens);
  const llamaBase = await llamaCppLogProbs(gguf, tokens);
  expect(maxDiff(base, llamaBase.logProbs)).toBeLessThan(FLOAT32_LOGPROB);

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
    expect(maxDiff(adapted, llamaAdapted.logProbs)).toBeLessThan(FLOAT32_LOGPROB);
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
        expect([meta.string('general.architecture'), meta.number('phi3.attention.sliding_window')]).toEqual(['phi3', 64]);
        expect([...meta.tensors.keys()].filter((n) => n.startsWith('blk.0.'))).toEqual(expect.arrayContaining(['blk.0.attn_qkv.weight', 'blk.0.ffn_up.weight']));
      } finally {
        meta.close();
      }
    } finally {
      model.dispose();
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
