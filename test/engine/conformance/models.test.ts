/**
 * The models on every backend variant, each loaded once per variant and serving all of its checks:
 *   - the upstream greedy sequences of tiny-random-gpt2 and tiny-random-llama (reference_outputs.json, made by
 *     transformers) through the engine's own generation loop;
 *   - logits against an independent float64 forward pass (float64-reference.ts: plain loops, nothing from the
 *     engine), over the whole prompt and one position at a time through the KV cache, for those two checkpoints
 *     (gpt2: Conv1D weights, learned positions, a tied head; llama: F16 weights) and for two built models (llama
 *     with grouped-query heads and an untied head; qwen2 with q/k/v bias, a tied head and rope_theta 1e6).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../../../main/engine/generate/generate';
import { loadModel } from '../../../main/engine/models/registry';
import type { CausalLM } from '../../../main/engine/models/types';
import { tokenIds } from '../../../main/engine/models/weights';
import { gpt2Reference, llamaReference, type Weights } from '../models/float64-reference';
import { buildLlama, type LlamaShape } from '../models/random-models';
import { logitsOf, maxAbsDiff } from '../../support/logits';
import { FIXTURES, LLAMA_GQA, QWEN2, checkpointWeights, invFreq, scratchDir } from './support';
import { forEachVariant } from './variants';

/**
 * Logits within 5e-5 (absolute) of float64. The built models' logits reach 2.5, the checkpoints' 0.4; float32
 * rounding through their 2-5 layers leaves at most 1.4e-6 here on every variant (webgpu on lavapipe included), so
 * 5e-5 is over 30 times that, while a wrong mask, rotary position, cache offset or head moves logits by 1e-2 or more.
 */
const LOGIT_TOLERANCE = 5e-5;
/**
 * On lavapipe (a CPU underneath) decoding tiny-random-llama costs about 0.6 s of CPU a token: its 32000-row head
 * goes through the frozen linear's matrix-vector kernel one workgroup a row. Room for that on a loaded machine.
 */
const SLOW_TEST_MS = 240_000;
const PROMPT = [3, 17, 5, 29, 11, 2, 30];

interface Greedy {
  readonly input_ids: number[];
  readonly max_length: number;
  readonly expected_sequence: number[];
}

interface ModelCase {
  readonly label: string;
  readonly dir: string;
  /** Float64 logits [T][V] of PROMPT, computed once for every variant. */
  readonly expected: Float64Array[];
  /** reference_outputs.json's greedy sequences, where the folder is an upstream fixture. */
  readonly greedy: readonly Greedy[];
}

const dir = scratchDir('models');

function fixture(name: string, reference: (weights: Weights) => Float64Array[]): ModelCase {
  const modelDir = join(FIXTURES, name);
  const ref = JSON.parse(readFileSync(join(modelDir, 'reference_outputs.json'), 'utf8')) as { greedy: Greedy[] };
  return { label: name, dir: modelDir, expected: reference(checkpointWeights(modelDir)), greedy: ref.greedy };
}

function built(label: string, shape: LlamaShape, seed: number): ModelCase {
  const model = buildLlama(join(dir, `${shape.modelType ?? 'llama'}-${seed}`), shape, seed);
  const headDim = shape.hidden / shape.heads;
  const expected = llamaReference(model.weights, {
    layers: shape.layers, heads: shape.heads, kvHeads: shape.kvHeads, headDim, eps: 1e-5,
    invFreq: invFreq(headDim, shape.ropeTheta ?? 10000), qkvBias: shape.modelType === 'qwen2', tied: shape.tied,
  }, PROMPT);
  return { label, dir: model.dir, expected, greedy: [] };
}

// The configurations below are the fixtures' config.json values (n_layer 5, n_head 4; 2 layers of one 16-wide head).
const CASES: readonly ModelCase[] = [
  fixture('tiny-random-gpt2', (w) => gpt2Reference(w, { layers: 5, heads: 4, eps: 1e-5 }, PROMPT)),
  fixture('tiny-random-llama', (w) => llamaReference(w, {
    layers: 2, heads: 1, kvHeads: 1, headDim: 16, eps: 1e-6, invFreq: invFreq(16, 10000), qkvBias: false, tied: false,
  }, PROMPT)),
  built('llama with grouped-query heads and an untied head', LLAMA_GQA, 10),
  built('qwen2 with q/k/v bias, a tied head and rope_theta 1e6', QWEN2, 11),
];

forEachVariant('models', () => {
  for (const c of CASES) {
    describe(c.label, () => {
      let model: CausalLM;
      beforeAll(async () => {
        model = await loadModel(c.dir);
      }, SLOW_TEST_MS);
      afterAll(() => model.dispose());

      if (c.greedy.length > 0) {
        it('reproduces every upstream greedy sequence through the generation loop', { timeout: SLOW_TEST_MS }, async () => {
          for (const g of c.greedy) {
            const result = await generate(model, g.input_ids, { maxNewTokens: g.max_length - g.input_ids.length, temperature: 0, eosTokenIds: [] });
            expect([...g.input_ids, ...result.ids]).toEqual(g.expected_sequence);
          }
        });
      }

      it('logits match float64, over the whole prompt and one position at a time through the KV cache', { timeout: SLOW_TEST_MS }, async () => {
        expect(maxAbsDiff(await logitsOf(model, [PROMPT]), c.expected.flatMap((r) => [...r]))).toBeLessThan(LOGIT_TOLERANCE);
        const cache = model.createCache();
        try {
          for (const [t, id] of PROMPT.entries()) {
            const out = tf.tidy(() => model.forward(tokenIds([id], [1, 1]), { cache }));
            const step = (await out.data()) as Float32Array;
            out.dispose();
            expect(maxAbsDiff(step, c.expected[t] as Float64Array), `position ${t}`).toBeLessThan(LOGIT_TOLERANCE);
          }
        } finally {
          cache.dispose();
        }
      });
    });
  }
});
