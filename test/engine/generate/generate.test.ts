import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '../../../main/engine/backend/index';
import { unregisterNativeKernels } from '../../../main/engine/backend/native/index';
import { addonAvailable } from '../backend/native-support';
import { loadModel } from '../../../main/engine/models/registry';
import { loadTokenizer, type ModelTokenizer } from '../../../main/engine/io/tokenizer';
import { generate, type TokenEvent } from '../../../main/engine/generate/generate';
import { Sampler, applyRepetitionPenalty, candidates } from '../../../main/engine/generate/sampling';
import type { CausalLM } from '../../../main/engine/models/types';

const fixtures = join(import.meta.dirname, '../../fixtures');
let gpt2: CausalLM;
let tokenizer: ModelTokenizer;
beforeAll(async () => {
  await initBackend('cpu');
  gpt2 = await loadModel(join(fixtures, 'tiny-random-gpt2'));
  tokenizer = await loadTokenizer(join(fixtures, 'tiny-random-gpt2'));
});
afterAll(() => gpt2.dispose());

describe('generate', () => {
  // Plain cpu, and the native kernels (sgemm, fused attention with the KV cache, rotary, RMSNorm, SwiGLU) on cpu and wasm.
  const settings = [['cpu', false], ['cpu', true], ['wasm', true]] as const;
  for (const name of ['tiny-random-gpt2', 'tiny-random-llama']) {
    for (const [backend, native] of settings) {
      it.skipIf(native && !addonAvailable)(`greedy reproduces the upstream sequences of ${name} on ${backend}${native ? ' + native' : ''}`, async () => {
        const dir = join(fixtures, name);
        const info = await initBackend(backend, { native: native ? { threads: 2 } : false });
        if (native) expect(info.matmulKernels).toContain('fused attention');
        const model = await loadModel(dir);
        const ref = JSON.parse(readFileSync(join(dir, 'reference_outputs.json'), 'utf8')) as {
          greedy: { input_ids: number[]; max_length: number; expected_sequence: number[] }[];
        };
        try {
          for (const g of ref.greedy) {
            const result = await generate(model, g.input_ids, { maxNewTokens: g.max_length - g.input_ids.length, eosTokenIds: [] });
            expect([...g.input_ids, ...result.ids]).toEqual(g.expected_sequence);
            expect(result.stopReason).toBe('max-tokens');
            expect(result.tokensPerSecond).toBeGreaterThan(0);
          }
        } finally {
          model.dispose();
          unregisterNativeKernels(backend);
          await initBackend('cpu');
        }
      });
    }
  }

  it('keeps the tensor count flat from call to call', async () => {
    await generate(gpt2, [1, 2, 3], { maxNewTokens: 4, temperature: 0.8, topK: 50, topP: 0.9, seed: 1 });
    const before = tf.memory().numTensors;
    await generate(gpt2, [1, 2, 3, 4, 5], { maxNewTokens: 9, temperature: 0.8, topK: 50, topP: 0.9, seed: 2 });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('samples reproducibly from a seed, and differently from another seed', async () => {
    const opts = { maxNewTokens: 12, temperature: 1.5, seed: 42, eosTokenIds: [] };
    const a = await generate(gpt2, [5, 6, 7], opts);
    const b = await generate(gpt2, [5, 6, 7], opts);
    const c = await generate(gpt2, [5, 6, 7], { ...opts, seed: 43 });
    expect(a.ids).toEqual(b.ids);
    expect(a.ids).not.toEqual(c.ids);
  });

  it('stops on an EOS id, keeping it', async () => {
    const greedy = await generate(gpt2, [0, 0, 195, 731], { maxNewTokens: 6, eosTokenIds: [] });
    expect(greedy.ids).toEqual([731, 114, 114, 114, 114, 114]);
    const stopped = await generate(gpt2, [0, 0, 195, 731], { maxNewTokens: 6, eosTokenIds: [114] });
    expect(stopped.ids).toEqual([731, 114]);
    expect(stopped.stopReason).toBe('eos');
  });

  it('stops on a stop string and cuts the text before it; streams the same text', async () => {
    const events: TokenEvent[] = [];
    const full = await generate(gpt2, [0, 0, 195, 731], { maxNewTokens: 6, eosTokenIds: [], tokenizer }, (e) => events.push(e));
    expect(full.text).toBe(tokenizer.decode([731, 114, 114, 114, 114, 114]));
    expect(events.map((e) => e.id)).toEqual(full.ids);
    expect(events.map((e) => e.text).join('')).toBe(full.text);
    const stop = tokenizer.decode([114]);
    const cut = await generate(gpt2, [0, 0, 195, 731], { maxNewTokens: 6, eosTokenIds: [], tokenizer, stopStrings: [stop] });
    expect(cut.ids).toEqual([731, 114]);
    expect(cut.stopReason).toBe('stop-string');
    expect(cut.text).toBe(tokenizer.decode([731]));
  });

  it('stops when the signal aborts', async () => {
    const controller = new AbortController();
    const result = await generate(gpt2, [1, 2], { maxNewTokens: 20 }, (e) => {
      if (e.index === 1) controller.abort();
    }, controller.signal);
    expect(result.ids).toHaveLength(2);
    expect(result.stopReason).toBe('aborted');
  });

  it('rejects prompt ids outside the vocabulary', async () => {
    await expect(generate(gpt2, [1, 50000])).rejects.toThrow(/token id 50000 .* vocabulary of 1000/);
  });
});

describe('sampling', () => {
  const logits = Float32Array.from([1, 3, 2, -1, 0.5]);
  const softmax = (xs: number[], t: number) => {
    const e = xs.map((x) => Math.exp(x / t));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / z);
  };

  it('applies the repetition penalty as transformers does', () => {
    const l = Float32Array.from([2, -2, 4]);
    applyRepetitionPenalty(l, [0, 1, 1], 2);
    expect([...l]).toEqual([1, -4, 4]);
  });

  it('top-k and top-p keep the tokens worked out by hand', () => {
    expect(candidates(logits, 1, 2, 1).ids).toEqual([1, 2]);
    const p = softmax([...logits], 1); // [0.0851, 0.6289, 0.2313, 0.0115, 0.0516]... sorted: 1, 2, 0, 4, 3
    expect(candidates(logits, 1, 0, 0.6).ids).toEqual([1]);
    expect(candidates(logits, 1, 0, 0).ids).toEqual([1]); // top-p 0: the most likely token alone
    expect(candidates(logits, 1, 0, 0.7).ids).toEqual([1, 2]);
    const three = candidates(logits, 1, 0, 0.9);
    expect(three.ids).toEqual([1, 2, 0]);
    const z = (p[1] as number) + (p[2] as number) + (p[0] as number);
    expect(three.probs[2]).toBeCloseTo((p[0] as number) / z, 6);
  });

  it('draws tokens with the softmax(logits / T) frequencies', () => {
    const sampler = new Sampler({ temperature: 2, seed: 7 });
    const counts = new Array<number>(5).fill(0);
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const id = sampler.next(Float32Array.from(logits), []);
      counts[id] = (counts[id] as number) + 1;
    }
    const expected = softmax([...logits], 2);
    counts.forEach((c, i) => expect(Math.abs(c / n - (expected[i] as number))).toBeLessThan(0.015));
  });

  it('rejects bad options', () => {
    expect(() => new Sampler({ topP: 1.5 })).toThrow(/top-p must be in \[0, 1\], got 1.5/);
    expect(() => new Sampler({ topP: -0.1 })).toThrow(/top-p must be in \[0, 1\], got -0.1/);
    expect(() => new Sampler({ temperature: -1 })).toThrow(/temperature must be >= 0/);
  });
});
