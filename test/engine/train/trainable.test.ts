import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useCpu } from '../lora/setup';
import { buildLlama } from '../models/random-models';
import { loadModel } from '../../../main/engine/models/registry';
import { fullTrainableVariables } from '../../../main/engine/train/trainable';

const dir = mkdtempSync(join(tmpdir(), 'lorasmith-trainable-'));
beforeAll(useCpu);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fullTrainableVariables', () => {
  it("is the model's own Variables, each once, allocating nothing (tied head included)", async () => {
    buildLlama(dir, { hidden: 8, layers: 2, heads: 2, kvHeads: 1, intermediate: 12, vocab: 16, tied: true }, 4);
    const model = await loadModel(dir, { trainable: true });
    const before = tf.memory().numTensors;
    const variables = fullTrainableVariables(model);
    expect(tf.memory().numTensors).toBe(before);
    // per layer: 2 norms + 7 linears; then the final norm and the tied head (the embedding's only copy)
    expect(variables.size).toBe(2 * 9 + 2);
    expect(variables.has('lm_head.weight')).toBe(true);
    expect(variables.has('model.embed_tokens.weight')).toBe(false);
    expect([...variables.values()].every((v) => v instanceof tf.Variable)).toBe(true);
    expect(new Set([...variables.values()].map((v) => v.id)).size).toBe(variables.size);
    // every parameter is trained once
    expect([...variables.values()].reduce((n, v) => n + v.size, 0)).toBe(model.parameterCount());
    expect(variables.get('model.layers.0.self_attn.k_proj.weight')?.shape).toEqual([8, 4]); // weightT [in, out]
    model.dispose();
  });

  it('refuses a model loaded without trainable weights', async () => {
    const model = await loadModel(dir);
    expect(() => fullTrainableVariables(model)).toThrow(/trainable: true/);
    model.dispose();
  });
});
