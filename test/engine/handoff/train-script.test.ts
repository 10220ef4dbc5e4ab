/**
 * The exported train.py against the engine: its batch order, schedule and sharding (pure Python, run with python3),
 * the initial adapter against the engine's own injection, and, where PyTorch is installed (Debian's python3-torch;
 * the tests do not need it), its training loop on a plain-PyTorch llama against the engine's run of the same
 * settings on the tiny llama fixture in float32: per-step losses, gradient norms and validation losses, and the
 * versions and machine its run_info.json records.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashFolder } from '../../../main/common/hash';
import { exportRun, initialPeftWeights } from '../../../main/engine/handoff/export-run';
import { TRAIN_SCRIPT } from '../../../main/engine/handoff/train-script';
import { loadTokenizer } from '../../../main/engine/io/tokenizer';
import { resolveLoraConfig } from '../../../main/engine/lora/config';
import { injectAdapter, peftWeightsOf, removeAdapter } from '../../../main/engine/lora/inject';
import { inspectModel } from '../../../main/engine/models/inspect';
import { loadModel } from '../../../main/engine/models/registry';
import { epochBatches } from '../../../main/engine/train/batching';
import { hashSeed } from '../../../main/engine/train/rng';
import { runTraining } from '../../../main/engine/train/run';
import { learningRateAt, SCHEDULES } from '../../../main/engine/train/schedule';
import type { TrainSettingsInput } from '../../../main/engine/train/settings';
import { useCpu } from '../lora/setup';

const MODEL = join(import.meta.dirname, '..', '..', 'fixtures', 'tiny-random-llama');
const dir = mkdtempSync(join(tmpdir(), 'lorasmith-train-script-'));
beforeAll(useCpu);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'train.py'), TRAIN_SCRIPT);

/** Runs Python code with train.py importable as `script`; returns its printed JSON. */
function python(code: string, interpreter = 'python3'): unknown {
  const run = spawnSync(interpreter, ['-c', `import sys, json; sys.path.insert(0, ${JSON.stringify(dir)}); import train as script\n${code}`], { encoding: 'utf8' });
  if (run.error) throw new Error(`${interpreter} is needed to check the exported train.py (apt install python3): ${run.error.message}`);
  if (run.status !== 0) throw new Error(`python failed: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

describe('train.py against the engine', () => {
  it('mixes seeds and shuffles each epoch\'s batches exactly as the engine does', () => {
    const cases = [[0, 2, 0], [7, 3, 0], [7, 3, 1], [42, 4, 5], [123456789, 1, 2]] as const;
    const rows = 37;
    const py = python(`print(json.dumps({"batches": [script.epoch_batches(${rows}, b, s, e) for s, b, e in ${JSON.stringify(cases)}], "hash": script.hash_seed(42, 0xE90C, 3)}))`) as { batches: number[][][]; hash: number };
    expect(py.batches).toEqual(cases.map(([seed, batch, epoch]) => epochBatches(rows, batch, seed, epoch)));
    expect(py.hash).toBe(hashSeed(42, 0xe90c, 3));
  });

  it('gives the engine\'s learning rate at every step of each schedule', () => {
    const total = 20;
    for (const kind of SCHEDULES) {
      const h = { learning_rate: 3e-4, warmup_steps: 4, lr_scheduler_type: kind };
      const py = python(`print(json.dumps([script.lr_at(s, ${JSON.stringify(h)}, ${total}) for s in range(${total})]))`) as number[];
      const engine = Array.from({ length: total }, (_, s) => learningRateAt(s, { kind, lr: 3e-4, warmupSteps: 4, totalSteps: total }));
      py.forEach((lr, s) => expect(lr).toBeCloseTo(engine[s] as number, 15));
    }
  });

  it('shares a step\'s rows out once each, every process taking as many chunks', () => {
    const py = python(`print(json.dumps([[script.shard(list(range(n)), r, w, c) for r in range(w)] for n, w, c in [(7, 3, 2), (2, 4, 1), (12, 2, 4)]]))`) as number[][][][];
    for (const [i, n] of [7, 2, 12].entries()) {
      const perRank = py[i] as number[][][];
      expect(perRank.flat(2).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, k) => k));
      expect(new Set(perRank.map((chunks) => chunks.length)).size).toBe(1);
    }
  });

  it('starts from the weights the engine\'s own injection makes (the same seeded init, in PEFT\'s orientation)', async () => {
    const model = await loadModel(MODEL, { trainable: false });
    try {
      const config = resolveLoraConfig({ targetModules: 'all-linear', rank: 3, alpha: 6, rankPattern: { down_proj: 2 } });
      const adapter = injectAdapter(model, 'probe', config, { seed: 5 });
      const engine = await peftWeightsOf(adapter);
      removeAdapter(model, 'probe');
      const exported = initialPeftWeights(inspectModel(MODEL).linears, config, 5);
      expect([...exported.keys()]).toEqual([...engine.keys()]);
      for (const [path, w] of exported) {
        const e = engine.get(path);
        expect(w.rank).toBe(e?.rank);
        expect([...w.loraA]).toEqual([...(e?.loraA ?? [])]);
        expect([...w.loraB]).toEqual([...(e?.loraB ?? [])]);
      }
    } finally {
      model.dispose();
    }
  });

  // PyTorch is not needed by the tests: Debian's python3-torch where it is installed.
  const torchPython = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
  it.skipIf(!torchPython)('trains like the engine: per-step losses, gradient norms and validation losses of the tiny llama agree in float32 (needs python3-torch)', async () => {
    const data = join(dir, 'qa.jsonl');
    writeFileSync(data, Array.from({ length: 12 }, (_, i) => JSON.stringify({ prompt: `Q${i}: what is ${i} plus ${i + 1}?`, completion: ` ${2 * i + 1}.` })).join('\n') + '\n');
    const settings: TrainSettingsInput = {
      lora: { targetModules: 'all-linear', rank: 4, dropout: 0, useRslora: true }, maxSteps: 6, batchSize: 2, gradAccum: 2, learningRate: 2e-2,
      warmupSteps: 1, scheduler: 'cosine', evalEvery: 2, seed: 7, weightDecay: 0.01, maxGradNorm: 0.1, checkpointEvery: 0,
    };
    const bundle = join(dir, 'bundle');
    await exportRun({ modelDir: MODEL, base: { hubId: null, contentHash: hashFolder(MODEL) }, data: { path: data }, settings, outDir: bundle });
    const model = await loadModel(MODEL, { trainable: false });
    let engine;
    try {
      engine = await runTraining({ model, tokenizer: await loadTokenizer(MODEL), base: { nameOrPath: MODEL, contentHash: null }, data: { path: data }, settings, outDir: join(dir, 'engine-adapter') });
    } finally {
      model.dispose();
    }
    const run = spawnSync(torchPython as string, [join(import.meta.dirname, 'reference_llama.py'), bundle, MODEL], { encoding: 'utf8', timeout: 300_000 });
    expect(run.stderr.replace(/^Warning.*$/gm, '').trim()).toBe('');
    const lines = run.stdout.trim().split('\n');
    const py = JSON.parse(lines[lines.length - 1] as string) as { status: string; log_history: Record<string, number>[]; machine: Record<string, unknown> };
    const steps = py.log_history.filter((e) => 'loss' in e);
    const evals = py.log_history.filter((e) => 'eval_loss' in e);
    const history = engine.loop?.history ?? [];
    expect(steps).toHaveLength(6);
    expect(history).toHaveLength(6);
    steps.forEach((s, i) => {
      const e = history[i];
      expect(s.step).toBe(e?.step);
      expect(Math.abs((s.loss as number) - (e?.loss as number))).toBeLessThan(1e-4);
      expect(Math.abs((s.grad_norm as number) - (e?.gradNorm as number)) / (e?.gradNorm as number)).toBeLessThan(1e-3);
      expect(s.learning_rate).toBeCloseTo(e?.lr as number, 12);
    });
    // clipping at 0.1 is active, and the loss moves: the agreement is not of an untrained model
    expect(history.some((h) => h.gradNorm > 0.1)).toBe(true);
    expect(Math.abs((history[5]?.loss as number) - (history[0]?.loss as number))).toBeGreaterThan(1e-3);
    expect(evals.map((e) => e.step)).toEqual(engine.loop?.evals.map((e) => e.step));
    evals.forEach((e, i) => expect(Math.abs((e.eval_loss as number) - (engine.loop?.evals[i]?.valLoss as number))).toBeLessThan(1e-4));
    expect(py.status).toBe('completed');
    // The versions it ran with, as run_info.json records them: this interpreter's torch, one process on the CPU.
    const here = spawnSync(torchPython as string, ['-c', 'import json, platform, torch; print(json.dumps([torch.__version__, torch.version.cuda, platform.python_version()]))'], { encoding: 'utf8' });
    const [torchVersion, cuda, pythonVersion] = JSON.parse(here.stdout) as [string, string | null, string];
    expect(py.machine).toMatchObject({ torch: torchVersion, cuda, python: pythonVersion, hostname: hostname(), hosts: [hostname()], devices: [], processes: 1, distributed_type: 'NO' });
    for (const name of ['transformers', 'peft', 'accelerate', 'deepspeed']) expect(name in py.machine).toBe(true);
  }, 600_000);
});
