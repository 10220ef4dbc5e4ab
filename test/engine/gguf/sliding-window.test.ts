/**
 * Sliding-window attention in our GGUF models, as llama.cpp (node-llama-cpp 3.21.1) runs each architecture: its
 * gemma3 attends within `gemma3.attention.sliding_window` on the local layers, so the window is written and
 * llama.cpp's greedy continuation well past it is our engine's; its llama (mistral's too), qwen2 and phi3 attend to
 * the whole context whatever the file says, so a window shorter than the context is refused, naming the setting,
 * and one the context never reaches (Qwen2.5's use_sliding_window=false) is left out and changes nothing.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportGgufModel } from '../../../main/engine/adapters/gguf-model-export';
import { generate } from '../../../main/engine/generate/generate';
import { GgufFile, type GgufValue } from '../../../main/engine/io/gguf';
import { kv, writeGguf } from '../../../main/engine/io/gguf-write';
import { encodePrompt } from '../../../main/engine/io/prompt';
import { loadTokenizer } from '../../../main/engine/io/tokenizer';
import type { DecoderConfig } from '../../../main/engine/models/decoder-config';
import { loadModel } from '../../../main/engine/models/registry';
import { llamaCppGreedy, llamaCppLogProbs } from '../../support/llama-cpp';
import { useCpu } from '../lora/setup';
import { buildLlama } from '../models/random-models';
import { buildTinyGemma3, buildTinyPhi3, buildTinyQwen2, maxDiff, ourLogProbs, writeQwenTokenizer } from './helpers';

/** Tokens generated after the prompt: several times the windows below. */
const NEW_TOKENS = 24;
/** Each test loads models in both engines and generates token by token: minutes on a loaded machine. */
const LLAMA_CPP_TIMEOUT = 120_000;

let work: string;
beforeAll(async () => {
  await useCpu();
  work = mkdtempSync(join(tmpdir(), 'lorasmith-gguf-window-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Our engine's greedy continuation of `prompt` (no EOS stop, as llama.cpp's below has none), prompt included. */
async function ourGreedy(dir: string, prompt: readonly number[]): Promise<number[]> {
  const model = await loadModel(dir);
  try {
    const { ids } = await generate(model, prompt, { maxNewTokens: NEW_TOKENS, eosTokenIds: [] });
    return [...prompt, ...ids];
  } finally {
    model.dispose();
  }
}

/** A copy of the folder `from` with config.json fields changed. */
function withConfig(from: string, to: string, fields: Record<string, unknown>): string {
  cpSync(from, to, { recursive: true });
  const config = JSON.parse(readFileSync(join(to, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(to, 'config.json'), JSON.stringify({ ...config, ...fields }));
  return to;
}

async function exportF32(dir: string, name: string): Promise<string> {
  const model = await loadModel(dir);
  try {
    const out = join(work, `${name}.gguf`);
    await exportGgufModel(model, dir, out, { type: 'F32', name });
    return out;
  } finally {
    model.dispose();
  }
}

/** The file's metadata, key by key. */
function metadataOf(path: string): Map<string, GgufValue> {
  const file = new GgufFile(path);
  try {
    return new Map([...file.metadata].map(([key, e]) => [key, e.value]));
  } finally {
    file.close();
  }
}

const windowKeys = (path: string): string[] => [...metadataOf(path).keys()].filter((k) => k.includes('sliding_window'));

async function chatPrompt(dir: string): Promise<number[]> {
  return encodePrompt(await loadTokenizer(dir), [{ role: 'user', content: 'What time is it in Paris in the spring?' }]);
}

describe('sliding windows in GGUF, as llama.cpp runs each architecture', () => {
  it('gemma3: the window is written, and llama.cpp continues far past it with our engine\'s greedy tokens', async () => {
    const dir = join(work, 'gemma3');
    buildTinyGemma3(dir); // local layers attend within 4 positions, the sixth layer to all
    const gguf = await exportF32(dir, 'gemma3');
    expect(metadataOf(gguf).get('gemma3.attention.sliding_window')).toBe(4);
    const prompt = await chatPrompt(dir);
    const ours = await ourGreedy(dir, prompt);
    expect(await llamaCppGreedy(gguf, prompt, ours.length)).toEqual(ours);
    // The window shapes those tokens: the same weights attending to everything continue otherwise.
    const full = withConfig(dir, join(work, 'gemma3-full'), { sliding_window: 128 });
    expect(await ourGreedy(full, prompt)).not.toEqual(ours);
  }, LLAMA_CPP_TIMEOUT);

  it('qwen2 with use_sliding_window false (as Qwen2.5 ships): written without a window, and llama.cpp generates our tokens', async () => {
    const dir = join(work, 'qwen2-off');
    buildTinyQwen2(dir, { use_sliding_window: false, sliding_window: 4, max_window_layers: 1 });
    const gguf = await exportF32(dir, 'qwen2-off');
    expect(windowKeys(gguf)).toEqual([]);
    const prompt = await chatPrompt(dir);
    const ours = await ourGreedy(dir, prompt);
    expect(await llamaCppGreedy(gguf, prompt, ours.length)).toEqual(ours);
    // Switched on, that window would change the tokens: such a model is refused, naming the setting, and nothing is written.
    const on = withConfig(dir, join(work, 'qwen2-on'), { use_sliding_window: true });
    expect(await ourGreedy(on, prompt)).not.toEqual(ours);
    const model = await loadModel(on);
    try {
      const out = join(work, 'qwen2-on.gguf');
      await expect(exportGgufModel(model, on, out, { type: 'F32' })).rejects.toThrow(
        /qwen2 model cannot be written as GGUF: its config sets use_sliding_window with sliding_window 4 on 1 of its 2 layers \(from layer 1, max_window_layers 1\), shorter than its context of 128 positions/,
      );
      expect(existsSync(out)).toBe(false);
    } finally {
      model.dispose();
    }
  }, LLAMA_CPP_TIMEOUT);

  const tinyMistral = (dir: string, window: number | null) => {
    buildLlama(dir, { modelType: 'mistral', hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 4096, tied: false, extra: { sliding_window: window } }, 15);
    writeQwenTokenizer(dir);
  };

  it('refuses a window llama.cpp would not apply (mistral, phi3), naming it, and writes nothing', async () => {
    const cases = [
      { name: 'mistral', build: (dir: string) => tinyMistral(dir, 4), error: /mistral model cannot be written as GGUF: its config sets sliding_window 4 on every layer, shorter than its context of 128 positions \(max_position_embeddings\), and llama.cpp's llama attends to the whole context/ },
      { name: 'phi3', build: (dir: string) => buildTinyPhi3(dir, 8), error: /phi3 model cannot be written as GGUF: its config sets sliding_window 8 on every layer.*llama.cpp's phi3 attends to the whole context/ },
    ];
    for (const c of cases) {
      const dir = join(work, `${c.name}-refused`);
      c.build(dir);
      const model = await loadModel(dir);
      try {
        const out = join(work, `${c.name}-refused.gguf`);
        await expect(exportGgufModel(model, dir, out, { type: 'F32' })).rejects.toThrow(c.error);
        expect(existsSync(out)).toBe(false);
      } finally {
        model.dispose();
      }
    }
  }, LLAMA_CPP_TIMEOUT);

  it('mistral with a window its context never reaches, or none: written as llama without one, llama.cpp generating our tokens', async () => {
    for (const window of [128, null]) {
      const dir = join(work, `mistral-${window}`);
      tinyMistral(dir, window);
      const gguf = await exportF32(dir, `mistral-${window}`);
      expect(windowKeys(gguf)).toEqual([]);
      expect(metadataOf(gguf).get('general.architecture')).toBe('llama');
      const prompt = await chatPrompt(dir);
      expect(await llamaCppGreedy(gguf, prompt, prompt.length + NEW_TOKENS)).toEqual(await ourGreedy(dir, prompt));
    }
  }, LLAMA_CPP_TIMEOUT);

  it('a phi3 GGUF\'s sliding_window (as the converter writes Phi-3-mini-4k\'s) is imported as llama.cpp reads it: switched off', async () => {
    const dir = join(work, 'phi3-import');
    buildTinyPhi3(dir);
    const exported = await exportF32(dir, 'phi3-import');
    // The same file with the key llama.cpp's converter writes, at a window the prompt passes.
    const converted = join(work, 'phi3-converted.gguf');
    const file = new GgufFile(exported);
    try {
      const metadata = [...file.metadata].map(([key, e]) => ({ key, ...e }));
      const tensors = [...file.tensors.values()].map((t) => ({ name: t.name, shape: t.shape, type: 'F32' as const, data: () => file.readFloat(t.name).data }));
      await writeGguf(converted, [...metadata, kv.u32('phi3.attention.sliding_window', 4)], tensors);
    } finally {
      file.close();
    }
    const tokenizer = await loadTokenizer(dir);
    const tokens = encodePrompt(tokenizer, 'The capital of France is Paris, and the capital of Italy is');
    expect(tokens.length).toBeGreaterThan(4);
    const model = await loadModel(converted);
    try {
      expect((model.config as DecoderConfig).layers.map((l) => l.window)).toEqual([null, null]);
      expect(maxDiff(await ourLogProbs(model, tokens), (await llamaCppLogProbs(converted, tokens)).logProbs)).toBeLessThan(5e-5);
    } finally {
      model.dispose();
    }
  }, LLAMA_CPP_TIMEOUT);
});
