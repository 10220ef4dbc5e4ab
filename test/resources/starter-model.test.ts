import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../main/engine/backend/index';
import { loadModel } from '../../main/engine/models/registry';
import { loadTokenizer, type ModelTokenizer } from '../../main/engine/io/tokenizer';
import { readSafetensors } from '../../main/engine/io/safetensors';
import { generate } from '../../main/engine/generate/generate';
import type { CausalLM } from '../../main/engine/models/types';
import { llamaReference, type Weights } from '../engine/models/float64-reference';

const starterDir = join(import.meta.dirname, '../../resources/starter');
/** Every word of the starter corpus (KJV), lower-cased: test/resources/kjv-words.txt. */
const WORDS = new Set(readFileSync(join(import.meta.dirname, 'kjv-words.txt'), 'utf8').split('\n').filter(Boolean));

let model: CausalLM;
let tokenizer: ModelTokenizer;
beforeAll(async () => {
  await initBackend('cpu');
  model = await loadModel(starterDir);
  tokenizer = await loadTokenizer(starterDir);
});
afterAll(() => model?.dispose());

/** The share of generated words (letters only) that are words of the corpus. */
function englishShare(text: string): { share: number; words: number } {
  const words = text.match(/[A-Za-z]+/g) ?? [];
  const known = words.filter((w) => WORDS.has(w.toLowerCase())).length;
  return { share: words.length === 0 ? 0 : known / words.length, words: words.length };
}

describe('starter model (resources/starter)', () => {
  it('loads as a small Llama with the layout its config describes', () => {
    const c = model.config;
    expect(c.modelType).toBe('llama');
    expect([c.vocabSize, c.hiddenSize, c.numLayers, c.numHeads, c.numKvHeads, c.intermediateSize]).toEqual([4096, 256, 4, 4, 4, 704]);
    expect(c.tieWordEmbeddings).toBe(true);
    expect(c.eosTokenIds).toEqual(expect.arrayContaining([0, 2]));
    // embeddings + per layer (q, k, v, o: H*H each; gate, up, down: 3*H*I; two norms) + final norm
    const h = 256;
    const perLayer = 4 * h * h + 3 * h * 704 + 2 * h;
    expect(model.parameterCount()).toBe(4096 * h + 4 * perLayer + h);
  });

  it("the engine's forward pass agrees with an independent float64 Llama on the stored weights", () => {
    const { tensors } = readSafetensors(join(starterDir, 'model.safetensors'));
    const raw = JSON.parse(readFileSync(join(starterDir, 'config.json'), 'utf8')) as Record<string, number>;
    const weights: Weights = new Map([...tensors].map(([name, t]) => [name, { shape: t.shape, data: Float64Array.from(t.data) }]));
    const headDim = (raw.hidden_size as number) / (raw.num_attention_heads as number);
    const invFreq = Array.from({ length: headDim / 2 }, (_, i) => (raw.rope_theta as number) ** ((-2 * i) / headDim));
    const ids = tokenizer.encode('And the LORD spake unto Moses, saying,', { addSpecialTokens: false });
    const expected = llamaReference(weights, {
      layers: raw.num_hidden_layers as number, heads: raw.num_attention_heads as number,
      kvHeads: raw.num_key_value_heads as number, headDim, eps: raw.rms_norm_eps as number, invFreq, qkvBias: false, tied: true,
    }, ids);
    const actual = tf.tidy(() => model.forward(tf.tensor2d([ids], [1, ids.length], 'int32')).arraySync()[0] as number[][]);
    let maxDiff = 0;
    actual.forEach((row, t) => row.forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(v - (expected[t]?.[j] ?? NaN))))));
    expect(maxDiff).toBeLessThan(1e-3);
  });

  it('greedily continues prompts in recognisable English', async () => {
    const prompts = ['And the LORD said unto', 'In the beginning', 'Blessed are they that', 'And the king'];
    let known = 0;
    let total = 0;
    const distinct = new Set<string>();
    for (const prompt of prompts) {
      const ids = tokenizer.encode(prompt, { addSpecialTokens: false });
      const result = await generate(model, [0, ...ids], { maxNewTokens: 40, tokenizer, repetitionPenalty: 1.1 });
      const text = result.text ?? '';
      const { share, words } = englishShare(text);
      expect(words, `"${prompt}" -> "${text}"`).toBeGreaterThan(15);
      // Not a degenerate loop such as "the the the": no word three times in a row.
      expect(text, `"${prompt}" -> "${text}"`).not.toMatch(/\b(\w+)(\W+\1\b){2}/i);
      known += share * words;
      total += words;
      for (const w of text.toLowerCase().match(/[a-z]+/g) ?? []) if (WORDS.has(w)) distinct.add(w);
    }
    expect(known / total).toBeGreaterThan(0.9);
    expect(distinct.size).toBeGreaterThanOrEqual(20);
  });

  it('does not leak tensors across generations', async () => {
    const ids = tokenizer.encode('And God said', { addSpecialTokens: false });
    await generate(model, ids, { maxNewTokens: 4 });
    const before = tf.memory().numTensors;
    await generate(model, ids, { maxNewTokens: 4 });
    expect(tf.memory().numTensors).toBe(before);
  });
});
