import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useCpu } from '../lora/setup';
import { tinyModel } from '../lora/tiny-model';
import { adapterVariables, injectAdapter } from '../../../main/engine/lora/inject';
import { evaluateRows, trainLoop, type TrainProgress } from '../../../main/engine/train/loop';
import { fullTrainableVariables } from '../../../main/engine/train/trainable';
import type { TokenizedExample } from '../../../main/engine/train/tokenize';
import type { CausalLM } from '../../../main/engine/models/types';

beforeAll(useCpu);
const dir = mkdtempSync(join(tmpdir(), 'lorasmith-loop-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fixed mapping: prompt token p -> answer (3p + 5) mod 16, then EOS (1); only the answer and EOS train. */
const mapping: TokenizedExample[] = Array.from({ length: 8 }, (_, i) => ({ line: i + 1, ids: [2, i + 2, (3 * (i + 2) + 5) % 16, 1], train: [0, 0, 1, 1] }));

function loraSetup(seed = 1, dropout = 0.1): { model: CausalLM; variables: Map<string, tf.Variable> } {
  const model = tinyModel({ hidden: 16, seed: 3 });
  const adapter = injectAdapter(model, 'train', { targetModules: 'all-linear', rank: 4, alpha: 8, dropout }, { seed });
  return { model, variables: adapterVariables(adapter) };
}

describe('trainLoop', () => {
  it('LoRA learns a fixed mapping to near-zero loss, and greedy answers become right', async () => {
    const { model, variables } = loraSetup();
    const before = (await evaluateRows(model, mapping, 0, 8)).loss;
    const result = await trainLoop({ model, variables, trainRows: mapping, padId: 0, hyperparameters: { maxSteps: 150, batchSize: 4, learningRate: 2e-2, scheduler: 'cosine', warmupSteps: 5, seed: 7 } });
    const after = (await evaluateRows(model, mapping, 0, 8)).loss;
    expect(before).toBeGreaterThan(1);
    expect(after).toBeLessThan(0.05);
    expect(result.status).toBe('completed');
    expect(result.steps).toBe(150);
    const ids = tf.tensor2d(mapping.map((r) => r.ids.slice(0, 2)), [8, 2], 'int32');
    const predicted = tf.tidy(() => tf.argMax(model.forward(ids), -1).arraySync() as number[][]);
    expect(predicted.map((row) => row[1])).toEqual(mapping.map((r) => r.ids[2]));
    ids.dispose();
    model.dispose();
  });

  it('full fine-tuning trains every weight through the same loop', async () => {
    const model = tinyModel({ hidden: 16, seed: 3, trainable: true });
    const variables = fullTrainableVariables(model);
    expect(variables.size).toBe(2 + 6 * 2 + 1); // wte, wpe, 6 linears with bias, lm_head
    const before = (await evaluateRows(model, mapping, 0, 8)).loss;
    await trainLoop({ model, variables, trainRows: mapping, padId: 0, hyperparameters: { maxSteps: 40, batchSize: 8, learningRate: 1e-2, seed: 1, weightDecay: 0.01 } });
    expect((await evaluateRows(model, mapping, 0, 8)).loss).toBeLessThan(before / 4);
    model.dispose();
  });

  it('is deterministic for a seed, and resuming from a checkpoint reproduces the uninterrupted losses exactly', async () => {
    const hyperparameters = { maxSteps: 12, batchSize: 3, gradAccum: 2, learningRate: 1e-2, warmupSteps: 2, evalEvery: 3, checkpointEvery: 4, seed: 5, keepCheckpoints: 5 };
    const run = async (checkpointDir: string, resumeFrom?: string, signalAfter?: number) => {
      const { model, variables } = loraSetup();
      const controller = new AbortController();
      const result = await trainLoop({
        model, variables, trainRows: mapping, valRows: mapping.slice(0, 3), padId: 0, hyperparameters, checkpointDir, resumeFrom, signal: controller.signal,
        onProgress: (e) => { if (e.kind === 'step' && e.step === signalAfter) controller.abort(); },
      });
      const weights = [...variables.values()].map((v) => Array.from(v.dataSync()));
      model.dispose();
      return { result, weights };
    };
    const full = await run(join(dir, 'full'));
    const again = await run(join(dir, 'again'));
    expect(again.result.history.map((h) => h.loss)).toEqual(full.result.history.map((h) => h.loss));

    // Cancelled after step 6: the cadence wrote step 4, the cancel writes step 6 (where it stopped).
    const partial = await run(join(dir, 'part'), undefined, 6);
    expect(partial.result.status).toBe('cancelled');
    expect(partial.result.steps).toBe(6);
    expect(partial.result.lastCheckpoint).toBe(join(dir, 'part', 'checkpoint-6'));
    expect(readdirSync(join(dir, 'part')).sort()).toEqual(['checkpoint-4', 'checkpoint-6']);
    for (const from of ['checkpoint-4', 'checkpoint-6']) {
      const resumed = await run(join(dir, `resumed-${from}`), join(dir, 'part', from));
      expect(resumed.result.status).toBe('completed');
      expect(resumed.result.history.map((h) => h.loss)).toEqual(full.result.history.map((h) => h.loss));
      expect(resumed.result.evals).toEqual(full.result.evals);
      expect(resumed.weights).toEqual(full.weights);
    }
  });

  it('reports progress with every field, and stops early keeping the best weights', async () => {
    const { model, variables } = loraSetup();
    const events: TrainProgress[] = [];
    // validation asks for other answers than training teaches, so it gets worse as training succeeds
    const conflicting = mapping.map((r) => ({ ...r, ids: [2, r.ids[1] as number, ((r.ids[2] as number) + 7) % 16, 1] }));
    const result = await trainLoop({
      model, variables, trainRows: mapping, valRows: conflicting, padId: 0,
      hyperparameters: { maxSteps: 60, batchSize: 8, learningRate: 3e-2, scheduler: 'constant', evalEvery: 2, earlyStoppingPatience: 2, seed: 2 },
      onProgress: (e) => events.push(e),
    });
    const step = events.find((e) => e.kind === 'step' && e.step === 2);
    expect(step).toMatchObject({ step: 2, totalSteps: 60, lr: 3e-2 });
    for (const key of ['epoch', 'loss', 'gradNorm', 'tokensPerSecond', 'etaSeconds', 'memoryBytes'] as const) expect(Number.isFinite(step?.[key])).toBe(true);
    expect(events.some((e) => e.kind === 'eval' && e.valPerplexity !== null && Math.abs(e.valPerplexity - Math.exp(e.valLoss ?? 0)) < 1e-9)).toBe(true);
    expect(result.status).toBe('early-stopped');
    expect(result.steps).toBeLessThan(60);
    expect((await evaluateRows(model, conflicting, 0, 8)).loss).toBeCloseTo(result.bestValLoss ?? Number.NaN, 4);
    model.dispose();
  });

  it("keepWeights 'last' ends with the last step's weights where validation peaked earlier; 'best' with the best", async () => {
    const conflicting = mapping.map((r) => ({ ...r, ids: [2, r.ids[1] as number, ((r.ids[2] as number) + 7) % 16, 1] }));
    const ends: Record<string, { valLoss: number; trainLoss: number; result: Awaited<ReturnType<typeof trainLoop>> }> = {};
    for (const keepWeights of ['best', 'last'] as const) {
      const { model, variables } = loraSetup(1, 0);
      const result = await trainLoop({
        model, variables, trainRows: mapping, valRows: conflicting, padId: 0,
        hyperparameters: { maxSteps: 40, batchSize: 8, learningRate: 3e-2, scheduler: 'constant', evalEvery: 4, seed: 2, keepWeights },
      });
      ends[keepWeights] = { valLoss: (await evaluateRows(model, conflicting, 0, 8)).loss, trainLoss: (await evaluateRows(model, mapping, 0, 8)).loss, result };
      model.dispose();
    }
    const { best, last } = ends as Record<'best' | 'last', (typeof ends)[string]>;
    // The same run either way (the setting only chooses what it ends with): the same curve and the same best step.
    expect(last.result.history.map((h) => h.loss)).toEqual(best.result.history.map((h) => h.loss));
    expect(last.result.bestStep).toBe(best.result.bestStep);
    expect(best.result.bestStep).toBeLessThan(40);
    expect(best.valLoss).toBeCloseTo(best.result.bestValLoss ?? Number.NaN, 4);
    expect(last.valLoss).toBeCloseTo(last.result.evals.at(-1)?.valLoss ?? Number.NaN, 4);
    // The last step's weights have learned the training rows further than the best-validation ones.
    expect(last.trainLoss).toBeLessThan(best.trainLoss);
  });

  it('gradient accumulation of 2×4 equals one batch of 8 (token-weighted mean loss)', async () => {
    const runs: { losses: number[]; norms: number[] }[] = [];
    for (const [batchSize, gradAccum] of [[8, 1], [4, 2], [8, 1]]) {
      const { model, variables } = loraSetup(1, 0); // no dropout: the two splits must see the same function
      const r = await trainLoop({ model, variables, trainRows: mapping, padId: 0, hyperparameters: { maxSteps: 4, batchSize, gradAccum, learningRate: 1e-2, seed: 4 } });
      runs.push({ losses: r.history.map((h) => h.loss), norms: r.history.map((h) => h.gradNorm) });
      model.dispose();
    }
    const [one, accum] = runs as [{ losses: number[]; norms: number[] }, { losses: number[]; norms: number[] }];
    one.losses.forEach((l, i) => expect(accum.losses[i]).toBeCloseTo(l, 5));
    one.norms.forEach((n, i) => expect(accum.norms[i]).toBeCloseTo(n, 4));
    expect(one.losses[3]).toBeLessThan(one.losses[0] as number);
  });

  it('does not grow the tensor count per step', async () => {
    const { model, variables } = loraSetup();
    const counts: number[] = [];
    await trainLoop({
      model, variables, trainRows: mapping, valRows: mapping.slice(0, 2), padId: 0,
      hyperparameters: { maxSteps: 8, batchSize: 2, gradAccum: 2, evalEvery: 2, seed: 1 },
      onProgress: (e) => { if (e.kind === 'step') counts.push(tf.memory().numTensors); },
    });
    expect(new Set(counts.slice(1)).size).toBe(1);
    model.dispose();
  });

  it('refuses bad settings with a message naming the value', async () => {
    const { model, variables } = loraSetup();
    await expect(trainLoop({ model, variables, trainRows: mapping, padId: 0, hyperparameters: { batchSize: 0 } })).rejects.toThrow('batchSize must be a positive integer, got 0');
    await expect(trainLoop({ model, variables, trainRows: mapping, padId: 0, resumeFrom: join(dir, 'nope') })).rejects.toThrow(/cannot read trainer_state.json/);
    expect(existsSync(join(dir, 'nope'))).toBe(false);
    model.dispose();
  });
});
