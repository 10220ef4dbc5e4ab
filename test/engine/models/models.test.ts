import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../main/engine/backend/index';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, readModelConfig } from '../../../main/engine/models/registry';
import type { CausalLM } from '../../../main/engine/models/types';
import { tokenIds } from '../../../main/engine/models/weights';
import { ModelIoError } from '../../../main/engine/io/errors';
import { readSafetensors, writeSafetensors } from '../../../main/engine/io/safetensors';
import { buildGpt2, buildLlama, type LlamaShape } from './random-models';
import { gpt2Reference, llamaReference } from './float64-reference';
import { maxAbsDiff } from '../../support/logits';

const fixtures = join(import.meta.dirname, '../../fixtures');
let dir: string;
beforeAll(async () => {
  await initBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'models-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ids2d(ids: readonly number[]): tf.Tensor2D {
  return tokenIds(ids, [1, ids.length]);
}

/** Greedy decoding with the cache, one token per step after the prompt. */
function greedy(model: CausalLM, prompt: readonly number[], maxLength: number): number[] {
  const out = [...prompt];
  const cache = model.createCache();
  let step: readonly number[] = prompt;
  while (out.length < maxLength) {
    const next = tf.tidy(() => {
      const logits = model.forward(ids2d(step), { cache });
      return tf.argMax(tf.reshape(tf.slice(logits, [0, step.length - 1, 0], [1, 1, -1]), [-1])).dataSync()[0] as number;
    });
    out.push(next);
    step = [next];
  }
  cache.dispose();
  return out;
}


function expectCode(error: unknown, code: string, message: RegExp): void {
  expect(error).toBeInstanceOf(ModelIoError);
  expect((error as ModelIoError).code).toBe(code);
  expect((error as Error).message).toMatch(message);
}

describe('upstream greedy sequences', () => {
  for (const name of ['tiny-random-gpt2', 'tiny-random-llama']) {
    it(`${name} reproduces every reference_outputs.json greedy sequence exactly`, async () => {
      const modelDir = join(fixtures, name);
      const ref = JSON.parse(readFileSync(join(modelDir, 'reference_outputs.json'), 'utf8')) as {
        greedy: { input_ids: number[]; max_length: number; expected_sequence: number[] }[];
      };
      const model = await loadModel(modelDir);
      try {
        for (const g of ref.greedy) expect(greedy(model, g.input_ids, g.max_length)).toEqual(g.expected_sequence);
      } finally {
        model.dispose();
      }
    });
  }
});

/** HF's llama3 inverse frequencies, written out here from _compute_llama3_parameters. */
function llama3InvFreq(d: number, theta: number, s: { factor: number; low: number; high: number; old: number }): number[] {
  return Array.from({ length: d / 2 }, (_, i) => {
    const f = 1 / theta ** ((2 * i) / d);
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < s.old / s.high) return f;
    if (wavelen > s.old / s.low) return f / s.factor;
    const smooth = (s.old / wavelen - s.low) / (s.high - s.low);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

describe('logits against a float64 reference', () => {
  const prompt = [3, 17, 5, 29, 11, 2, 30];
  const cases: { label: string; shape: LlamaShape; invFreq: number[] }[] = [
    {
      label: 'llama with grouped-query attention and an untied head',
      shape: { hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, vocab: 40, tied: false },
      invFreq: Array.from({ length: 4 }, (_, i) => 1 / 10000 ** ((2 * i) / 8)),
    },
    {
      label: 'qwen2 with q/k/v bias, tied head, rope_theta 1e6',
      shape: { modelType: 'qwen2', hidden: 32, layers: 2, heads: 4, kvHeads: 1, intermediate: 48, vocab: 40, tied: true, ropeTheta: 1e6 },
      invFreq: Array.from({ length: 4 }, (_, i) => 1 / 1e6 ** ((2 * i) / 8)),
    },
    {
      label: 'llama with llama3 rope_scaling',
      shape: {
        hidden: 64, layers: 1, heads: 2, kvHeads: 2, intermediate: 32, vocab: 40, tied: true, ropeTheta: 500000,
        ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
      },
      invFreq: llama3InvFreq(32, 500000, { factor: 8, low: 1, high: 4, old: 64 }),
    },
  ];
  cases.forEach(({ label, shape, invFreq }, n) => {
    it(label, async () => {
      const built = buildLlama(join(dir, `llama-${n}`), shape, 10 + n);
      const expected = llamaReference(
        built.weights,
        { layers: shape.layers, heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.hidden / shape.heads, eps: 1e-5, invFreq, qkvBias: shape.modelType === 'qwen2', tied: shape.tied },
        prompt,
      );
      const model = await loadModel(built.dir);
      try {
        const logits = model.forward(ids2d(prompt));
        expect(logits.shape).toEqual([1, prompt.length, shape.vocab]);
        expect(maxAbsDiff(logits.dataSync(), expected.flatMap((r) => [...r]))).toBeLessThan(2e-4);
        logits.dispose();
        // The same logits one position at a time through the cache.
        const cache = model.createCache();
        for (let t = 0; t < prompt.length; t++) {
          const step = model.forward(ids2d([prompt[t] as number]), { cache });
          expect(maxAbsDiff(step.dataSync(), expected[t] as Float64Array)).toBeLessThan(2e-4);
          step.dispose();
        }
        expect(cache.length).toBe(prompt.length);
        cache.dispose();
      } finally {
        model.dispose();
      }
    });
  });

  it('gpt2 (Conv1D weights, learned positions, tied head)', async () => {
    const built = buildGpt2(join(dir, 'gpt2'), { embd: 16, layers: 2, heads: 2, vocab: 40, positions: 16 });
    const expected = gpt2Reference(built.weights, { layers: 2, heads: 2, eps: 1e-5 }, prompt);
    const model = await loadModel(built.dir);
    try {
      const logits = model.forward(ids2d(prompt));
      expect(maxAbsDiff(logits.dataSync(), expected.flatMap((r) => [...r]))).toBeLessThan(2e-4);
      logits.dispose();
    } finally {
      model.dispose();
    }
  });
});

describe('model structure and memory', () => {
  it('lists every linear with its sizes and groups, and counts parameters like the checkpoint', async () => {
    const built = buildLlama(join(dir, 'struct'), { hidden: 16, layers: 2, heads: 2, kvHeads: 1, intermediate: 24, vocab: 30, tied: false });
    const model = await loadModel(built.dir);
    try {
      const q = model.linears.get('model.layers.1.self_attn.k_proj');
      expect(q?.spec).toMatchObject({ name: 'k_proj', layer: 1, inFeatures: 16, outFeatures: 8, groups: ['attention'], fanInFanOut: false });
      expect(model.linears.get('model.layers.0.mlp.down_proj')?.spec).toMatchObject({ inFeatures: 24, outFeatures: 16, groups: ['mlp'] });
      expect(model.linears.size).toBe(2 * 7 + 1);
      const total = [...built.weights.values()].reduce((s, t) => s + t.data.length, 0);
      expect(model.parameterCount()).toBe(total);
      tf.tidy(() => {
        const named = model.namedWeights();
        expect([...named.keys()].sort()).toEqual([...built.weights.keys()].sort());
        const w = named.get('model.layers.0.self_attn.q_proj.weight') as tf.Tensor;
        expect(maxAbsDiff(w.dataSync(), built.weights.get('model.layers.0.self_attn.q_proj.weight')?.data ?? [])).toBe(0);
      });
    } finally {
      model.dispose();
    }
  });

  it('does not grow the tensor count from call to call, and frees everything on dispose', async () => {
    const before = tf.memory().numTensors;
    const model = await loadModel(join(fixtures, 'tiny-random-gpt2'));
    greedy(model, [1, 2, 3], 6);
    const afterOne = tf.memory().numTensors;
    greedy(model, [1, 2, 3], 12);
    expect(tf.memory().numTensors).toBe(afterOne);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('makes every weight a Variable with trainable: true', async () => {
    const model = await loadModel(join(fixtures, 'tiny-random-gpt2'), { trainable: true });
    try {
      for (const layer of model.linears.values()) expect(layer.weightT).toBeInstanceOf(tf.Variable);
      const variables = model.trainableVariables?.() ?? new Map();
      // 5 blocks · 12 tensors + wpe + ln_f (2) + the tied head/embedding
      expect(variables.size).toBe(5 * 12 + 4);
      expect(variables.get('lm_head.weight')?.shape).toEqual([32, 1000]);
      expect([...variables.values()].reduce((s, v) => s + v.size, 0)).toBe(model.parameterCount());
      const grads = tf.tidy(() => {
        const layer = model.linears.get('transformer.h.0.attn.c_attn');
        const { grads: g } = tf.variableGrads(() => tf.sum(model.forward(ids2d([1, 2, 3]))) as tf.Scalar, [layer?.weightT as tf.Variable]);
        return Object.values(g).map((t) => tf.keep(t));
      });
      expect(grads[0]?.shape).toEqual([32, 96]);
      tf.dispose(grads);
    } finally {
      model.dispose();
    }
  });
});

describe('errors', () => {
  it('rejects token ids outside the vocabulary', async () => {
    const model = await loadModel(join(fixtures, 'tiny-random-gpt2'));
    try {
      // The GPT-2 tokenizer gives ids up to 50256 but this model embeds only 1000.
      let error: unknown;
      try {
        model.forward(ids2d([5, 1000]));
      } catch (e) {
        error = e;
      }
      expectCode(error, 'TOKEN_OUT_OF_RANGE', /token id 1000 \(position 1\).*vocabulary of 1000/);
    } finally {
      model.dispose();
    }
  });

  it('rejects negative, fractional and misshapen token ids where they are made', () => {
    const attempt = (values: number[], shape: [number, number]) => {
      try {
        tokenIds(values, shape);
      } catch (e) {
        return e;
      }
      return null;
    };
    expectCode(attempt([3, -1], [1, 2]), 'TOKEN_OUT_OF_RANGE', /token id -1 \(position 1\) is not a non-negative integer/);
    expectCode(attempt([2.5], [1, 1]), 'TOKEN_OUT_OF_RANGE', /token id 2\.5 \(position 0\)/);
    expectCode(attempt([1, 2, 3], [2, 2]), 'TOKEN_OUT_OF_RANGE', /3 token ids do not fill a \[2, 2\] batch/);
  });

  it('names an unknown model_type and an unsupported field', async () => {
    const built = buildLlama(join(dir, 'bad'), { hidden: 16, layers: 1, heads: 2, kvHeads: 2, intermediate: 8, vocab: 10, tied: true });
    const config = JSON.parse(readFileSync(join(built.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(built.dir, 'config.json'), JSON.stringify({ ...config, model_type: 'mamba' }));
    await loadModel(built.dir).then(
      () => expect.unreachable(),
      (e: unknown) => expectCode(e, 'UNSUPPORTED_MODEL', /model_type 'mamba' is not supported \(supported: gpt2, llama, mistral, qwen2, qwen3, phi3, gemma2, gemma3_text\)/),
    );
    writeFileSync(join(built.dir, 'config.json'), JSON.stringify({ ...config, rope_scaling: { type: 'yarn', factor: 4 } }));
    expect(() => readModelConfig(built.dir)).toThrow(/rope scaling type "yarn" is not supported/);
    writeFileSync(join(built.dir, 'config.json'), JSON.stringify({ ...config, hidden_act: 'mish' }));
    expect(() => readModelConfig(built.dir)).toThrow(/"hidden_act": activation 'mish' is not supported/);
  });

  it('names a tensor the checkpoint lacks', async () => {
    const built = buildLlama(join(dir, 'missing'), { hidden: 16, layers: 1, heads: 2, kvHeads: 2, intermediate: 8, vocab: 10, tied: true });
    const file = join(built.dir, 'model.safetensors');
    const { tensors } = readSafetensors(file);
    tensors.delete('model.layers.0.self_attn.v_proj.weight');
    writeSafetensors(file, new Map([...tensors].map(([name, t]) => [name, { dtype: 'F32' as const, shape: t.shape, data: t.data }])));
    await loadModel(built.dir).then(
      () => expect.unreachable(),
      (e: unknown) => expectCode(e, 'TENSOR_NOT_FOUND', /the checkpoint has no tensor 'model\.layers\.0\.self_attn\.v_proj\.weight'/),
    );
  });

  it('names a tensor whose shape disagrees with config.json, and disposes what it built', async () => {
    const built = buildLlama(join(dir, 'shape'), { hidden: 16, layers: 1, heads: 2, kvHeads: 2, intermediate: 8, vocab: 10, tied: true });
    const config = JSON.parse(readFileSync(join(built.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(built.dir, 'config.json'), JSON.stringify({ ...config, intermediate_size: 9 }));
    const before = tf.memory().numTensors;
    await loadModel(built.dir).then(
      () => expect.unreachable(),
      (e: unknown) => expectCode(e, 'INVALID_SAFETENSORS', /'model\.layers\.0\.mlp\.gate_proj\.weight' is \[8, 16\], config\.json implies \[9, 16\]/),
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});
