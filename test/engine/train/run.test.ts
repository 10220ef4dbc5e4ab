import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import { useCpu } from '../lora/setup';
import { tinyModel } from '../lora/tiny-model';
import { charTokenizer, CHARS } from './char-tokenizer';
import { runTraining, type TrainRunOptions } from '../../../main/engine/train/run';
import { loadAdapter } from '../../../main/engine/lora/peft-io';
import { injectAdapter } from '../../../main/engine/lora/inject';

beforeAll(useCpu);
const dir = mkdtempSync(join(tmpdir(), 'lorasmith-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const data = join(dir, 'pairs.jsonl');
writeFileSync(data, ['{"prompt":"a:","completion":"x"}', '{"prompt":"b:","completion":"y"}', '{"prompt":"c:","completion":"z"}', '{"prompt":"d:","completion":7}', '{"prompt":"e:","completion":"w"}'].join('\n'));

const SETTINGS = {
  valSplit: 0.25, lora: { targetModules: ['q_proj', 'v_proj'], rank: 4, alpha: 8, dropout: 0 }, maxSteps: 6, batchSize: 2, learningRate: 1e-2, seed: 3, maxSeqLen: 16,
};

function options(overrides: Partial<TrainRunOptions>): TrainRunOptions {
  return {
    model: tinyModel({ vocab: CHARS.length, hidden: 16, seed: 2 }),
    tokenizer: charTokenizer(),
    base: { nameOrPath: 'tiny-test', contentHash: 'sha256:abc' },
    data: { path: data },
    settings: SETTINGS,
    outDir: join(dir, 'out'),
    ...overrides,
  };
}

describe('runTraining', () => {
  it('writes a PEFT adapter and a training record with settings, hashes, seed and metrics', async () => {
    const opts = options({});
    const result = await runTraining(opts);
    expect(result.status).toBe('completed');
    expect(readdirSync(join(dir, 'out')).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'training_record.json']);
    const adapter = loadAdapter(join(dir, 'out'));
    expect(adapter.config).toMatchObject({ rank: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] });
    expect([...adapter.modules.keys()].sort()).toEqual(['h.0.attn.q_proj', 'h.0.attn.v_proj']);
    const record = JSON.parse(readFileSync(join(dir, 'out', 'training_record.json'), 'utf8'));
    expect(record).toMatchObject({
      format: 'lorasmith-training-record/2', mode: 'lora', baseModel: { nameOrPath: 'tiny-test', contentHash: 'sha256:abc' },
      settings: { seed: 3, maxSteps: 6, batchSize: 2, learningRate: 1e-2, valSplit: 0.25, lora: { rank: 4, alpha: 8 } }, parentAdapter: null,
    });
    expect(record.data.files[0]).toMatchObject({ records: 5, valid: 4, skipped: 1, issues: [{ line: 4, message: "'completion' must be a string, got number" }] });
    expect(record.data.files[0].contentHash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(record.result.steps).toBe(6);
    expect(record.history).toHaveLength(6);
    expect(record.evals.length).toBeGreaterThan(0);
    expect(record.evals.every((e: { sample?: unknown }) => typeof e.sample === 'string')).toBe(true); // a sample at each evaluation
    expect(record.performance.estimate.trainableParameters).toBe(2 * 4 * (16 + 16));
    expect(record.performance.backendFallback).toBeNull();
    // the adapter was trained: B is no longer zero; and the model is left without it
    expect(Math.max(...Array.from(adapter.modules.get('h.0.attn.q_proj')?.loraB ?? []).map(Math.abs))).toBeGreaterThan(0);
    expect([...opts.model.linears.values()].every((l) => l.adapters.size === 0)).toBe(true);
    opts.model.dispose();
  });

  it('estimates before training: exact trainable parameters, sizes, memory and time', async () => {
    const opts = options({ dryRun: true, outDir: join(dir, 'dry') });
    const tensorsBefore = tf.memory().numTensors;
    const result = await runTraining(opts);
    expect(result.status).toBe('dry-run');
    expect(existsSync(join(dir, 'dry'))).toBe(false);
    expect(result.estimate.trainableParameters).toBe(2 * 4 * (16 + 16)); // q and v: r·(in + out)
    expect(result.estimate.adapterBytes).toBeGreaterThan(4 * 256);
    expect(result.estimate.peakMemoryBytes).toBeGreaterThan(tf.memory().numBytes);
    expect(result.estimate.secondsPerEpoch).toBeGreaterThan(0);
    expect(result.estimate.stepsPerEpoch).toBe(2); // 3 training records, batch 2
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    opts.model.dispose();
  });

  it('a cancelled run writes no adapter and a valid checkpoint where it stopped', async () => {
    const controller = new AbortController();
    const opts = options({
      outDir: join(dir, 'cancelled'), checkpointDir: join(dir, 'ckpt'), signal: controller.signal,
      settings: { ...SETTINGS, checkpointEvery: 2 },
      onProgress: (e) => { if (e.kind === 'step' && e.step === 3) controller.abort(); },
    });
    const result = await runTraining(opts);
    expect(result.status).toBe('cancelled');
    expect(existsSync(join(dir, 'cancelled'))).toBe(false);
    // checkpoint-2 by the cadence, checkpoint-3 where the cancel stopped it
    expect(readdirSync(join(dir, 'ckpt')).sort()).toEqual(['checkpoint-2', 'checkpoint-3']);
    expect(loadAdapter(join(dir, 'ckpt', 'checkpoint-3')).modules.size).toBe(2);
    const resumed = await runTraining({ ...opts, signal: undefined, onProgress: undefined, resumeFrom: join(dir, 'ckpt', 'checkpoint-3') });
    expect(resumed.status).toBe('completed');
    expect(resumed.loop?.steps).toBe(6);
    opts.model.dispose();
  });

  it('full fine-tuning writes the trained weights', async () => {
    const opts = options({ model: tinyModel({ vocab: CHARS.length, hidden: 8, seed: 2, trainable: true }), settings: { ...SETTINGS, lora: null }, outDir: join(dir, 'full') });
    const result = await runTraining(opts);
    expect(result.status).toBe('completed');
    expect(readdirSync(join(dir, 'full')).sort()).toEqual(['model.safetensors', 'training_record.json']);
    opts.model.dispose();
  });

  it('continues from a parent adapter: its weights and LoRA settings, its hash in the record', async () => {
    const parentDir = join(dir, 'out'); // the first test's adapter
    const parent = loadAdapter(parentDir);
    // A learning rate too small to move anything: the result is the parent's weights, whatever the new settings say.
    const opts = options({ parentAdapterDir: parentDir, outDir: join(dir, 'child'), settings: { ...SETTINGS, learningRate: 1e-12, lora: { rank: 2, dropout: 0 } } });
    const result = await runTraining(opts);
    expect(result.settings.lora).toMatchObject({ rank: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] });
    const child = loadAdapter(join(dir, 'child'));
    for (const [path, weights] of parent.modules) {
      const trained = child.modules.get(path);
      Array.from(weights.loraB).forEach((v, i) => expect(trained?.loraB[i]).toBeCloseTo(v, 6));
    }
    const record = JSON.parse(readFileSync(join(dir, 'child', 'training_record.json'), 'utf8'));
    const hash = createHash('sha256').update(readFileSync(join(parentDir, 'adapter_model.safetensors'))).digest('hex');
    expect(record.parentAdapter).toEqual({ path: parentDir, contentHash: `sha256:${hash}` });
    opts.model.dispose();
  });

  it('leaves the adapters the model had active as they were', async () => {
    const opts = options({ outDir: join(dir, 'beside') });
    injectAdapter(opts.model, 'chat', { targetModules: ['q_proj'], rank: 2, alpha: 2, dropout: 0 }, { activate: true });
    const before = [...opts.model.linears.values()].map((l) => l.active);
    await runTraining(opts);
    expect([...opts.model.linears.values()].map((l) => l.active)).toEqual(before);
    expect([...opts.model.linears.values()].every((l) => !l.adapters.has('training'))).toBe(true);
    opts.model.dispose();
  });
});
