/**
 * A short LoRA run on every backend variant against the same run in float64, written here from the published
 * definitions with nothing from the engine: the engine's training loop (trainLoop, as the one training run drives
 * it) on a llama with grouped-query heads, LoRA on q_proj, v_proj and down_proj, two micro-batches a step weighted
 * by their target tokens, clipping by global norm, AdamW with decoupled weight decay, the linear schedule. The
 * reference takes each step's gradient by central differences of the float64 forward pass (float64-reference.ts);
 * the losses, gradient norms and the trained A and B are compared.
 *
 * Every row trains in every step (4 rows, 2 micro-batches of 2), so a step's loss is the token-weighted mean over
 * all rows whatever the shuffle; dropout is 0, so nothing random is left. Every variant matching float64 also
 * matches the wasm run (the default backend) within twice the tolerance.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { resolveLoraConfig } from '../../../main/engine/lora/config';
import { adapterVariables, attachAdapterWeights, peftWeightsOf, removeAdapter, type PeftModuleWeights } from '../../../main/engine/lora/inject';
import { loadModel } from '../../../main/engine/models/registry';
import type { CausalLM } from '../../../main/engine/models/types';
import { trainLoop, type LoopResult } from '../../../main/engine/train/loop';
import type { TokenizedExample } from '../../../main/engine/train/tokenize';
import { llamaReference, type Weights } from '../models/float64-reference';
import { buildLlama, type LlamaShape } from '../models/random-models';
import { maxAbsDiff } from '../../support/logits';
import { crossEntropy64, invFreq, scratchDir } from './support';
import { forEachVariant } from './variants';

/**
 * Stated tolerances. At every step the loss (3.8 falling to 3.2) within 2e-5 of float64, the gradient norm within
 * 1e-5 relative, and after the run every A and B entry within 1e-5 (B moves from 0 to about 0.13). Float32 forward
 * and backward passes in another summation order, carried through AdamW, leave at most 5e-7 in the losses, 2.5e-7
 * relative in the norms and 6e-7 in the weights here on every variant (webgpu on lavapipe included), so these bounds
 * are 20-40 times what rounding gives, while a wrong gradient, accumulation weight, schedule or weight decay moves
 * them by 1e-4 or more.
 */
const LOSS_TOLERANCE = 2e-5;
const NORM_TOLERANCE = 1e-5;
const WEIGHT_TOLERANCE = 1e-5;
const STEPS = 4;
const H = 1e-5;

const SETTINGS = {
  maxSteps: STEPS, batchSize: 2, gradAccum: 2, learningRate: 5e-2, scheduler: 'linear', warmupSteps: 0,
  weightDecay: 0.01, maxGradNorm: 1, seed: 3, recompute: 'off',
} as const;
const TARGETS = ['q_proj', 'v_proj', 'down_proj'];
const RANK = 2;
const ALPHA = 4;

/** Prompt tokens (not trained), then an answer and EOS (2) that train; lengths differ, so the micro-batches' weights do. */
const ROWS: readonly TokenizedExample[] = [
  { line: 1, ids: [1, 5, 9, 13, 2], train: [0, 0, 1, 1, 1] },
  { line: 2, ids: [1, 7, 3, 21, 34, 2], train: [0, 0, 0, 1, 1, 1] },
  { line: 3, ids: [1, 11, 30, 8, 2], train: [0, 0, 1, 1, 1] },
  { line: 4, ids: [1, 4, 17, 26, 19, 12, 2], train: [0, 0, 0, 1, 1, 1, 1] },
];

/**
 * Grouped-query heads (2 query heads on 1 key/value head) at half the width of the other conformance files' llama:
 * the float64 reference takes two forward passes per trained weight per step, and this keeps it to a few seconds.
 */
const SHAPE: LlamaShape = { hidden: 16, layers: 2, heads: 2, kvHeads: 1, intermediate: 32, vocab: 40, tied: false };

const dir = scratchDir('training');
const model = buildLlama(join(dir, 'llama'), SHAPE, 31);
const HEAD_DIM = SHAPE.hidden / SHAPE.heads;
const REF_CONFIG = {
  layers: SHAPE.layers, heads: SHAPE.heads, kvHeads: SHAPE.kvHeads, headDim: HEAD_DIM, eps: 1e-5,
  invFreq: invFreq(HEAD_DIM, 10000), qkvBias: false, tied: false,
};

/** One adapted module in PEFT's orientation: A [r, in] (kaiming-uniform-sized), B [out, r] (zero, as PEFT starts). */
interface Module64 {
  readonly path: string;
  readonly inF: number;
  readonly outF: number;
  readonly a: Float64Array;
  readonly b: Float64Array;
}

function initialModules(): Module64[] {
  let s = 77;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
  const out: Module64[] = [];
  for (let l = 0; l < SHAPE.layers; l++) {
    for (const kind of TARGETS) {
      const path = `model.layers.${l}.${kind === 'down_proj' ? 'mlp' : 'self_attn'}.${kind}`;
      const [outF, inF] = model.weights.get(`${path}.weight`)?.shape as [number, number];
      const bound = 1 / Math.sqrt(inF);
      out.push({ path, inF, outF, a: Float64Array.from({ length: RANK * inF }, () => 2 * bound * rand()), b: new Float64Array(outF * RANK) });
    }
  }
  return out;
}

/** Token-weighted mean cross-entropy over ROWS with W + (alpha/r)·B·A in each adapted module, in float64. */
function loss64(modules: readonly Module64[]): number {
  const weights: Weights = new Map(model.weights);
  for (const m of modules) {
    const base = model.weights.get(`${m.path}.weight`) as { shape: number[]; data: Float64Array };
    const data = Float64Array.from(base.data);
    for (let o = 0; o < m.outF; o++) {
      for (let i = 0; i < m.inF; i++) {
        let d = 0;
        for (let k = 0; k < RANK; k++) d += (m.b[o * RANK + k] as number) * (m.a[k * m.inF + i] as number);
        data[o * m.inF + i] = (data[o * m.inF + i] as number) + (ALPHA / RANK) * d;
      }
    }
    weights.set(`${m.path}.weight`, { shape: base.shape, data });
  }
  let sum = 0;
  let count = 0;
  for (const row of ROWS) {
    const inputs = row.ids.slice(0, -1);
    const targets = row.train.slice(1);
    const n = targets.reduce((a, b) => a + b, 0);
    sum += n * crossEntropy64(llamaReference(weights, REF_CONFIG, inputs), row.ids.slice(1), targets);
    count += n;
  }
  return sum / count;
}

interface Step64 {
  readonly loss: number;
  readonly gradNorm: number;
}

/**
 * The run in float64: per step the loss and its central-difference gradient w.r.t. every A and B entry, the global
 * norm clipped to maxGradNorm as torch's clip_grad_norm_ (factor max/(norm + 1e-6)), then torch.optim.AdamW
 * (β 0.9/0.999, ε 1e-8, decoupled decay) at transformers' linear schedule lr·(1 − step/steps). Also the loss after
 * the last update.
 */
function referenceRun(): { steps: Step64[]; finalLoss: number; modules: Module64[] } {
  const modules = initialModules();
  const params = modules.flatMap((m) => [m.a, m.b]);
  const moments = params.map((p) => ({ m: new Float64Array(p.length), v: new Float64Array(p.length) }));
  const steps: Step64[] = [];
  for (let step = 0; step < STEPS; step++) {
    const loss = loss64(modules);
    const grads = params.map((p) => Float64Array.from(p, (keep, j) => {
      p[j] = keep + H;
      const up = loss64(modules);
      p[j] = keep - H;
      const down = loss64(modules);
      p[j] = keep;
      return (up - down) / (2 * H);
    }));
    const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((t, x) => t + x * x, 0), 0));
    const clip = norm > SETTINGS.maxGradNorm ? SETTINGS.maxGradNorm / (norm + 1e-6) : 1;
    const lr = SETTINGS.learningRate * Math.max(0, 1 - step / STEPS);
    const t = step + 1;
    params.forEach((p, n) => {
      const g = grads[n] as Float64Array;
      const { m, v } = moments[n] as { m: Float64Array; v: Float64Array };
      for (let j = 0; j < p.length; j++) {
        const gj = (g[j] as number) * clip;
        m[j] = 0.9 * (m[j] as number) + 0.1 * gj;
        v[j] = 0.999 * (v[j] as number) + 0.001 * gj * gj;
        const update = ((m[j] as number) / (1 - 0.9 ** t)) / (Math.sqrt((v[j] as number) / (1 - 0.999 ** t)) + 1e-8);
        p[j] = (p[j] as number) * (1 - lr * SETTINGS.weightDecay) - lr * update;
      }
    });
    steps.push({ loss, gradNorm: norm });
  }
  return { steps, finalLoss: loss64(modules), modules };
}

const reference = referenceRun();
const startModules = initialModules();

forEachVariant('LoRA training', () => {
  let lm: CausalLM;
  beforeAll(async () => {
    lm = await loadModel(model.dir);
  });
  afterAll(() => lm.dispose());

  it(`a ${STEPS}-step LoRA run has float64's per-step losses (±${LOSS_TOLERANCE}), gradient norms (±${NORM_TOLERANCE} relative) and trained weights (±${WEIGHT_TOLERANCE})`, async () => {
    const config = resolveLoraConfig({ targetModules: TARGETS, rank: RANK, alpha: ALPHA, dropout: 0 });
    const weights = new Map<string, PeftModuleWeights>(startModules.map((m) => [m.path, { rank: RANK, loraA: Float32Array.from(m.a), loraB: Float32Array.from(m.b) }]));
    const adapter = attachAdapterWeights(lm, 'run', config, weights, { activate: true });
    let result: LoopResult;
    let trained: Map<string, PeftModuleWeights>;
    try {
      // The rows again as validation: the loop's final evaluation is the loss after the last update.
      result = await trainLoop({ model: lm, variables: adapterVariables(adapter), trainRows: ROWS, valRows: ROWS, padId: 0, hyperparameters: { ...SETTINGS, keepWeights: 'last' } });
      trained = await peftWeightsOf(adapter);
    } finally {
      removeAdapter(lm, adapter.name);
    }
    // The run learns: a check that matched a run going nowhere would say little.
    expect(reference.finalLoss).toBeLessThan((reference.steps[0]?.loss ?? 0) - 0.1);
    expect(result.history).toHaveLength(STEPS);
    result.history.forEach((step, i) => {
      const want = reference.steps[i] as Step64;
      expect(Math.abs(step.loss - want.loss), `step ${i + 1} loss ${step.loss} vs float64 ${want.loss}`).toBeLessThan(LOSS_TOLERANCE);
      expect(Math.abs(step.gradNorm - want.gradNorm) / want.gradNorm, `step ${i + 1} gradient norm ${step.gradNorm} vs float64 ${want.gradNorm}`).toBeLessThan(NORM_TOLERANCE);
    });
    const final = result.evals[result.evals.length - 1]?.valLoss ?? Number.NaN;
    expect(Math.abs(final - reference.finalLoss), `loss after the last update ${final} vs float64 ${reference.finalLoss}`).toBeLessThan(LOSS_TOLERANCE);
    for (const m of reference.modules) {
      const got = trained.get(m.path) as PeftModuleWeights;
      expect(maxAbsDiff(got.loraA, m.a), `${m.path} lora_A after the run`).toBeLessThan(WEIGHT_TOLERANCE);
      expect(maxAbsDiff(got.loraB, m.b), `${m.path} lora_B after the run`).toBeLessThan(WEIGHT_TOLERANCE);
    }
  });
});
