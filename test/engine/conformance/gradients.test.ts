/**
 * Gradients on every backend variant against central finite differences of an independent float64 forward pass
 * (float64-reference.ts, no tfjs): the masked cross-entropy the trainer minimises, through a llama with
 * grouped-query heads and through gpt2, w.r.t. LoRA's A and B (PEFT orientation mapped to the layer's At/Bt) and,
 * for full fine-tuning, w.r.t. norms, embeddings (the gather's gradient), a linear weight and the head.
 * In float64 with h = 1e-5 the differences are exact to ~1e-9, so any error is the backend's.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
import { resolveLoraConfig } from '../../../main/engine/lora/config';
import { adapterVariables, attachAdapterWeights, type PeftModuleWeights } from '../../../main/engine/lora/inject';
import { loadModel } from '../../../main/engine/models/registry';
import type { CausalLM } from '../../../main/engine/models/types';
import { batchLoss } from '../../../main/engine/train/loss';
import { fullTrainableVariables } from '../../../main/engine/train/trainable';
import { gpt2Reference, llamaReference, type Weights } from '../models/float64-reference';
import { buildGpt2, buildLlama } from '../models/random-models';
import { GPT2, LLAMA_GQA, crossEntropy64, invFreq, scratchDir } from './support';
import { forEachVariant } from './variants';

/** |backend − finite difference| ≤ ABS + REL·(largest |gradient| sampled from that tensor): float32 backprop. */
const ABS = 5e-5;
const REL = 2e-3;
const H = 1e-5;

const IDS = [3, 17, 5, 29, 11, 2, 30, 8];
const INPUTS = IDS.slice(0, -1);
const LABELS = IDS.slice(1);
const MASK = INPUTS.map((_, t) => (t < 2 ? 0 : 1)); // the first two positions are "prompt": not trained

const dir = scratchDir('gradients');

interface Case {
  readonly label: string;
  build(): { dir: string; weights: Weights };
  /** Float64 logits [T][V] of INPUTS under `weights`. */
  reference(weights: Weights): Float64Array[];
  /** Linear modules (HF layout [out, in], or [in, out] where fanInFanOut) that carry the LoRA adapter. */
  readonly loraModules: readonly string[];
  readonly fanInFanOut: boolean;
  /**
   * Weights checked in full fine-tuning: the model's Variable name, the checkpoint's name, and whether the model
   * keeps it transposed (nn.Linear weights and a tied head live as [in, out]).
   */
  readonly full: readonly { readonly variable: string; readonly checkpoint: string; readonly transposed: boolean }[];
}

const CASES: readonly Case[] = [
  {
    label: 'llama, grouped-query heads',
    build: () => buildLlama(join(dir, 'llama'), LLAMA_GQA, 21),
    reference: (w) => llamaReference(w, {
      layers: LLAMA_GQA.layers, heads: LLAMA_GQA.heads, kvHeads: LLAMA_GQA.kvHeads, headDim: LLAMA_GQA.hidden / LLAMA_GQA.heads,
      eps: 1e-5, invFreq: invFreq(LLAMA_GQA.hidden / LLAMA_GQA.heads, 10000), qkvBias: false, tied: false,
    }, INPUTS),
    loraModules: ['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.k_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.mlp.down_proj'],
    fanInFanOut: false,
    full: [
      { variable: 'model.embed_tokens.weight', checkpoint: 'model.embed_tokens.weight', transposed: false },
      { variable: 'model.layers.0.input_layernorm.weight', checkpoint: 'model.layers.0.input_layernorm.weight', transposed: false },
      { variable: 'model.layers.1.self_attn.o_proj.weight', checkpoint: 'model.layers.1.self_attn.o_proj.weight', transposed: true },
      { variable: 'model.layers.0.mlp.gate_proj.weight', checkpoint: 'model.layers.0.mlp.gate_proj.weight', transposed: true },
      { variable: 'lm_head.weight', checkpoint: 'lm_head.weight', transposed: true },
    ],
  },
  {
    label: 'gpt2, tied head',
    build: () => buildGpt2(join(dir, 'gpt2'), GPT2, 22),
    reference: (w) => gpt2Reference(w, { layers: GPT2.layers, heads: GPT2.heads, eps: 1e-5 }, INPUTS),
    loraModules: ['transformer.h.0.attn.c_attn', 'transformer.h.1.mlp.c_proj'],
    fanInFanOut: true,
    full: [
      { variable: 'lm_head.weight', checkpoint: 'transformer.wte.weight', transposed: true }, // the tied head and embedding
      { variable: 'transformer.wpe.weight', checkpoint: 'transformer.wpe.weight', transposed: false },
      { variable: 'transformer.h.0.ln_1.bias', checkpoint: 'transformer.h.0.ln_1.bias', transposed: false },
      { variable: 'transformer.h.1.attn.c_attn.weight', checkpoint: 'transformer.h.1.attn.c_attn.weight', transposed: false },
    ],
  },
];

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

/** Entries to check: a spread of flat indices of a tensor of `size`. */
function sampleIndices(size: number, count = 6): number[] {
  return Array.from({ length: Math.min(count, size) }, (_, i) => Math.floor(((i + 0.37) * size) / Math.min(count, size)));
}

/** Backend gradients of the masked cross entropy w.r.t. `variables`, read back by name. */
async function backendGradients(model: CausalLM, variables: ReadonlyMap<string, tf.Variable>): Promise<Map<string, Float32Array>> {
  const list = [...variables.values()];
  const grads = tf.tidy(() => {
    // The training loss as the loop computes it: one row of INPUTS, next tokens LABELS, weights MASK.
    const batch = {
      batchSize: 1, seqLen: INPUTS.length, inputs: Int32Array.from(INPUTS), labels: Int32Array.from(LABELS),
      weights: Float32Array.from(MASK), tokens: INPUTS.length,
    };
    const { grads: g } = tf.variableGrads(() => batchLoss(model, batch), list);
    return g;
  });
  const out = new Map<string, Float32Array>();
  for (const [name, v] of variables) {
    const g = grads[v.name];
    if (!g) throw new Error(`no gradient for ${name}`);
    out.set(name, (await g.data()) as Float32Array);
  }
  tf.dispose(Object.values(grads));
  return out;
}

function expectClose(got: Float32Array, indices: readonly number[], fd: (i: number) => number, what: string): void {
  const want = indices.map(fd);
  const scale = Math.max(...want.map(Math.abs), ...indices.map((i) => Math.abs(got[i] as number)));
  expect(scale, `${what}: the sampled gradient must not be all zero`).toBeGreaterThan(1e-6);
  indices.forEach((i, n) => {
    expect(Math.abs((got[i] as number) - (want[n] as number)), `${what}[${i}]: ${got[i]} vs finite difference ${want[n]}`).toBeLessThan(ABS + REL * scale);
  });
}

forEachVariant('gradients', () => {
  for (const c of CASES) {
    it(`${c.label}: LoRA A and B gradients match float64 finite differences`, async () => {
      const built = c.build();
      const rank = 2;
      const config = resolveLoraConfig({ targetModules: c.loraModules.map((p) => p.split('.').pop() as string), rank, alpha: 4, dropout: 0 });
      const s = config.alpha / rank;
      const rand = lcg(7);
      const modules = new Map<string, PeftModuleWeights>();
      for (const path of c.loraModules) {
        const shape = built.weights.get(`${path}.weight`)?.shape as [number, number];
        const [inF, outF] = c.fanInFanOut ? shape : [shape[1], shape[0]];
        modules.set(path, {
          rank,
          loraA: Float32Array.from({ length: rank * inF }, () => rand() * 0.6),
          loraB: Float32Array.from({ length: outF * rank }, () => rand() * 0.6),
        });
      }
      /** The float64 weights with s·B·A added to each adapted module (transposed for Conv1D). */
      const merged = (A: ReadonlyMap<string, Float64Array>, B: ReadonlyMap<string, Float64Array>): Weights => {
        const w: Weights = new Map(built.weights);
        for (const path of c.loraModules) {
          const base = built.weights.get(`${path}.weight`) as { shape: number[]; data: Float64Array };
          const [inF, outF] = c.fanInFanOut ? base.shape as [number, number] : [base.shape[1] as number, base.shape[0] as number];
          const a = A.get(path) as Float64Array;
          const b = B.get(path) as Float64Array;
          const data = Float64Array.from(base.data);
          for (let o = 0; o < outF; o++) {
            for (let i = 0; i < inF; i++) {
              let d = 0;
              for (let k = 0; k < rank; k++) d += (b[o * rank + k] as number) * (a[k * inF + i] as number);
              data[c.fanInFanOut ? i * outF + o : o * inF + i] = (data[c.fanInFanOut ? i * outF + o : o * inF + i] as number) + s * d;
            }
          }
          w.set(`${path}.weight`, { shape: base.shape, data });
        }
        return w;
      };
      const A = new Map([...modules].map(([p, m]) => [p, Float64Array.from(m.loraA)]));
      const B = new Map([...modules].map(([p, m]) => [p, Float64Array.from(m.loraB)]));
      const loss64 = () => crossEntropy64(c.reference(merged(A, B)), LABELS, MASK);
      const central = (values: Float64Array, j: number): number => {
        const keep = values[j] as number;
        values[j] = keep + H;
        const up = loss64();
        values[j] = keep - H;
        const down = loss64();
        values[j] = keep;
        return (up - down) / (2 * H);
      };

      const model = await loadModel(built.dir);
      try {
        const adapter = attachAdapterWeights(model, 'check', config, modules, { activate: true });
        const grads = await backendGradients(model, adapterVariables(adapter));
        for (const path of c.loraModules) {
          const inF = (modules.get(path) as PeftModuleWeights).loraA.length / rank;
          const outF = (modules.get(path) as PeftModuleWeights).loraB.length / rank;
          // At [in, r]: At[i][k] is A[k][i];  Bt [r, out]: Bt[k][o] is B[o][k].
          expectClose(grads.get(`${path}.lora_A`) as Float32Array, sampleIndices(inF * rank),
            (j) => central(A.get(path) as Float64Array, (j % rank) * inF + Math.floor(j / rank)), `${path}.lora_A`);
          expectClose(grads.get(`${path}.lora_B`) as Float32Array, sampleIndices(rank * outF),
            (j) => central(B.get(path) as Float64Array, (j % outF) * rank + Math.floor(j / outF)), `${path}.lora_B`);
        }
      } finally {
        model.dispose();
      }
    });

    it(`${c.label}: full fine-tuning gradients (norms, embeddings, linears, head) match float64 finite differences`, async () => {
      const built = c.build();
      const weights: Weights = new Map([...built.weights].map(([k, v]) => [k, { shape: v.shape, data: Float64Array.from(v.data) }]));
      const loss64 = () => crossEntropy64(c.reference(weights), LABELS, MASK);
      const model = await loadModel(built.dir, { trainable: true });
      try {
        const all = fullTrainableVariables(model);
        const variables = new Map(c.full.map(({ variable }) => [variable, all.get(variable) as tf.Variable]));
        for (const [name, v] of variables) expect(v, `${name} is trainable`).toBeInstanceOf(tf.Variable);
        const grads = await backendGradients(model, variables);
        for (const { variable, checkpoint, transposed } of c.full) {
          const hf = weights.get(checkpoint) as { shape: number[]; data: Float64Array };
          const v = variables.get(variable) as tf.Variable;
          const [rows = 1, cols = 1] = hf.shape;
          // index j of the model's [cols, rows] copy is HF's [rows, cols] entry (j % rows, j / rows)
          const toHf = (j: number): number => (transposed ? (j % rows) * cols + Math.floor(j / rows) : j);
          // A lookup table's gradient lives on the prompt's rows only: check those, and a spread.
          const lookup = checkpoint.endsWith('embed_tokens.weight') || checkpoint.endsWith('wpe.weight');
          const picks = lookup ? [...[0, 1, 2].map((t) => (checkpoint.endsWith('wpe.weight') ? t : (INPUTS[t] as number)) * cols + t), ...sampleIndices(v.size, 3)] : sampleIndices(v.size);
          expectClose(grads.get(variable) as Float32Array, picks, (j) => {
            const k = toHf(j);
            const keep = hf.data[k] as number;
            hf.data[k] = keep + H;
            const up = loss64();
            hf.data[k] = keep - H;
            const down = loss64();
            hf.data[k] = keep;
            return (up - down) / (2 * H);
          }, variable);
        }
      } finally {
        model.dispose();
      }
    });
  }
});
