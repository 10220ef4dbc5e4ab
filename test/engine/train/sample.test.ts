/**
 * Sample generations at each evaluation: the loop's sampleAtEval hook runs with the weights as trained so far,
 * and its text rides on the 'eval' event. The greedy continuation (the generation loop's, here on a model without a
 * KV cache) is checked against a naive argmax decode written here (full recompute) with the adapter in place.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { useCpu } from '../lora/setup';
import { tinyModel } from '../lora/tiny-model';
import { adapterVariables, injectAdapter } from '../../../main/engine/lora/inject';
import { trainLoop, type TrainProgress } from '../../../main/engine/train/loop';
import { greedySample, samplePromptOf } from '../../../main/engine/train/sample';
import type { TokenizedExample } from '../../../main/engine/train/tokenize';
import type { CausalLM } from '../../../main/engine/models/types';
import type { TextTokenizer } from '../../../main/engine/io/prompt';

beforeAll(useCpu);
afterAll(() => undefined);

/** prompt [2, p] -> answer (3p + 5) mod 16 then EOS (1); only answer and EOS train. */
const rows: TokenizedExample[] = Array.from({ length: 8 }, (_, i) => ({ line: i + 1, ids: [2, i + 2, (3 * (i + 2) + 5) % 16, 1], train: [0, 0, 1, 1] }));
const decode = (ids: readonly number[]) => ids.map((id) => String.fromCharCode(97 + id)).join('');
/** Letters for ids; no chat template, no BOS; EOS is id 1. */
const tokenizer: TextTokenizer = {
  encode: (text) => [...text].map((c) => c.charCodeAt(0) - 97),
  decode,
  chatTemplate: null,
  applyChatTemplate: () => { throw new Error('no template'); },
  bosTokenId: null,
  addBosToken: false,
  eosTokenIds: [1],
};

/** Reference greedy decode: argmax of the last position after a full forward of the whole sequence each time. */
function naiveGreedy(model: CausalLM, prompt: readonly number[], n: number, eos: number): number[] {
  const seq = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const next = tf.tidy(() => {
      const logits = model.forward(tf.tensor2d([seq], [1, seq.length], 'int32')); // [1, T, V]
      return (tf.argMax(logits, -1).arraySync() as number[][])[0]?.[seq.length - 1] ?? -1;
    });
    if (next === eos) break;
    seq.push(next);
    out.push(next);
  }
  return out;
}

describe('samplePromptOf', () => {
  it('takes the ids before the first trained token, or the first tokens of a text row', () => {
    expect(samplePromptOf({ line: 1, ids: [5, 6, 7, 8], train: [0, 0, 1, 1] })).toEqual([5, 6]);
    expect(samplePromptOf({ line: 1, ids: Array.from({ length: 20 }, (_, i) => i), train: Array(20).fill(1) as number[] })).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(samplePromptOf({ line: 1, ids: [4, 5, 6], train: [1, 1, 1] })).toEqual([4]);
    expect(samplePromptOf({ line: 1, ids: [4], train: [1] })).toBeNull();
  });
});

describe('trainLoop sampleAtEval', () => {
  it('puts a greedy continuation with the adapter being trained on every eval event, and on no step event', async () => {
    const model = tinyModel({ hidden: 16, seed: 3 });
    const adapter = injectAdapter(model, 'train', { targetModules: 'all-linear', rank: 4, alpha: 8, dropout: 0 }, { seed: 1 });
    const prompt = samplePromptOf(rows[0] as TokenizedExample) as number[];
    const events: TrainProgress[] = [];
    const calledAt: number[] = [];
    await trainLoop({
      model, variables: adapterVariables(adapter), trainRows: rows, valRows: rows.slice(0, 2), padId: 0,
      hyperparameters: { maxSteps: 60, batchSize: 4, learningRate: 3e-2, evalEvery: 20, seed: 7, keepWeights: 'last' },
      onProgress: (e) => events.push(e),
      sampleAtEval: async (step) => {
        calledAt.push(step);
        return greedySample(model, prompt, { maxNewTokens: 5, tokenizer, eosTokenIds: [1] });
      },
    });
    expect(calledAt).toEqual([20, 40, 60]);
    const evals = events.filter((e) => e.kind === 'eval');
    expect(evals.map((e) => e.step)).toEqual([20, 40, 60]);
    expect(evals.every((e) => typeof e.sample === 'string')).toBe(true);
    expect(events.filter((e) => e.kind === 'step').some((e) => e.sample !== undefined)).toBe(false);

    // keepWeights 'last' leaves the weights of the last step, the ones the last sample was made with.
    const reference = decode(naiveGreedy(model, prompt, 5, 1));
    const tensors = tf.memory().numTensors;
    expect(await greedySample(model, prompt, { maxNewTokens: 5, tokenizer, eosTokenIds: [1] })).toBe(reference);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(evals.at(-1)?.sample).toBe(reference);
    // The adapter matters: the trained model answers the mapping, which the base alone does not.
    expect(reference.startsWith(decode([(3 * 2 + 5) % 16]))).toBe(true);
    for (const layer of model.linears.values()) layer.setActive([]);
    expect(decode(naiveGreedy(model, prompt, 5, 1))).not.toBe(reference);
    model.dispose();
  });

  it('keeps training when the sample fails', async () => {
    const model = tinyModel({ hidden: 16, seed: 3 });
    const adapter = injectAdapter(model, 'train', { targetModules: 'all-linear', rank: 2, alpha: 4, dropout: 0 }, { seed: 1 });
    const events: TrainProgress[] = [];
    const result = await trainLoop({
      model, variables: adapterVariables(adapter), trainRows: rows, valRows: rows.slice(0, 2), padId: 0,
      hyperparameters: { maxSteps: 4, batchSize: 4, learningRate: 1e-2, evalEvery: 2, seed: 7 },
      onProgress: (e) => events.push(e),
      sampleAtEval: () => { throw new Error('no sample today'); },
    });
    expect(result.status).toBe('completed');
    expect(events.filter((e) => e.kind === 'eval').map((e) => e.sample)).toEqual([undefined, undefined]);
    model.dispose();
  });
});
