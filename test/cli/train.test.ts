import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useCpu } from '../engine/lora/setup';
import { tinyModel } from '../engine/lora/tiny-model';
import { charTokenizer, CHARS } from '../engine/train/char-tokenizer';
import { makeTrainCommand, parseTargets, trainCommand } from '../../main/cli/train';
import type { ModelFolderLoader } from '../../main/cli/load-model';
import { makeEvalCommand } from '../../main/cli/eval';
import { UsageError, type CliIo } from '../../main/cli/command';
import { hasWeightKernels } from '../../main/engine/backend/native/addon';
import { addonLoad, nativeSkipReason } from '../engine/backend/native-support';

beforeAll(useCpu);
const dir = mkdtempSync(join(tmpdir(), 'lorasmith-cli-train-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const data = join(dir, 'd.jsonl');
// The loader below ignores the folder; the command hashes it for the training record.
const modelDir = join(dir, 'model');
mkdirSync(modelDir);
writeFileSync(data, Array.from({ length: 6 }, (_, i) => JSON.stringify({ prompt: `${'abcdef'[i]}:`, completion: 'xyzuvw'[i] })).join('\n') + '\nnot json\n');

const loader: ModelFolderLoader = async (_dir, options) => ({ model: tinyModel({ vocab: CHARS.length, hidden: 16, seed: 2, trainable: options.trainable }), tokenizer: charTokenizer(), backend: 'cpu' });

async function cli(command: ReturnType<typeof makeTrainCommand>, argv: string[], signal = new AbortController().signal) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t), signal };
  const code = await command.run(argv, io);
  return { code, out, err };
}

describe('lorasmith train', () => {
  it('--json prints progress lines and a last line with done, steps, trainLoss, valLoss, tokens/s, adapterDir', async () => {
    const out = join(dir, 'adapter');
    const r = await cli(makeTrainCommand(loader), [modelDir, '--data', data, '--out', out, '--targets', 'q_proj,v_proj', '--rank', '4', '--max-steps', '5', '--learning-rate', '1e-2', '--batch-size', '2', '--val-split', '0.34', '--seed', '1', '--json']);
    expect(r.code).toBe(0);
    const lines = r.out.map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.event === 'progress' && l.kind === 'step').map((l) => l.step)).toEqual([1, 2, 3, 4, 5]);
    const dataset = lines.find((l) => l.event === 'dataset');
    expect(dataset).toMatchObject({ valid: 6, skipped: 1, issues: [{ line: 7 }] });
    expect(lines.find((l) => l.event === 'estimate').trainableParameters).toBe(2 * 4 * 32);
    const last = lines[lines.length - 1];
    expect(last).toMatchObject({ done: true, steps: 5, adapterDir: out });
    for (const key of ['trainLoss', 'valLoss', 'trainTokensPerSecond']) expect(Number.isFinite(last[key])).toBe(true);
    expect(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'))).toMatchObject({ r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], peft_type: 'LORA' });
  });

  it('--dry-run prints estimates and writes nothing', async () => {
    const out = join(dir, 'dry');
    const r = await cli(makeTrainCommand(loader), [modelDir, '--data', data, '--out', out, '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.out.join('\n')).toMatch(/trainable parameters\s+[\d,]+/);
    expect(r.out.join('\n')).toMatch(/time per epoch/);
    expect(r.out.join('\n')).toMatch(/peak memory\s+\d+ MiB of \d+ MiB available \(base weights \d+, activations \d+/);
    expect(r.out.join('\n')).toMatch(/recompute\s+off/);
    expect(r.out.join('\n')).toMatch(/base weights\s+(float32 tensors|BF16 in the frozen-weight store|F16 in the frozen-weight store|F32 in the frozen-weight store), \d+\.\d\d GiB \(.*BF16 \d+\.\d\d GiB, Q8_0 \d+\.\d\d GiB, Q4_0 \d+\.\d\d GiB\)/);
    expect(existsSync(out)).toBe(false);
  });

  it('--recompute trains with activation recomputation and says so', async () => {
    const r = await cli(makeTrainCommand(loader), [modelDir, '--data', data, '--out', join(dir, 'recomputed'), '--max-steps', '2', '--recompute', '--json']);
    expect(r.code).toBe(0);
    expect(r.out.map((l) => JSON.parse(l)).find((l) => l.event === 'estimate')).toMatchObject({ recompute: true });
  });

  it('--keep last is the run\'s setting, recorded with it; --keep takes only best or last', async () => {
    const out = join(dir, 'kept-last');
    expect((await cli(makeTrainCommand(loader), [modelDir, '--data', data, '--out', out, '--max-steps', '2', '--keep', 'last', '--json'])).code).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'training_record.json'), 'utf8')).settings).toMatchObject({ keepWeights: 'last' });
    await expect(cli(makeTrainCommand(loader), [modelDir, '--data', data, '--out', 'x', '--keep', 'first'])).rejects.toThrow("--keep must be one of best, last, got 'first'");
  });

  it('refuses a run that cannot fit in memory before loading the model, with the numbers and what to change', async () => {
    const model = join(import.meta.dirname, '..', 'fixtures', 'tiny-random-llama');
    const run = cli(trainCommand, [model, '--data', data, '--out', join(dir, 'huge'), '--batch-size', '4096', '--max-seq-len', '65536', '--dry-run']);
    await expect(run).rejects.toMatchObject({ code: 'NOT_ENOUGH_MEMORY' });
    await expect(run).rejects.toThrow(/this run needs about [\d.]+ GiB of memory \(base weights .*\) and [\d.]+ GiB is available\..* To fit: .*--batch-size/);
    expect(existsSync(join(dir, 'huge'))).toBe(false);
  });

  it('Ctrl-C stops between steps, says how to resume, writes no adapter', async () => {
    const controller = new AbortController();
    const out = join(dir, 'stopped');
    const command = makeTrainCommand(loader);
    const io: CliIo = {
      out: (t) => { lines.push(t); if (t.includes('"step":2') && t.includes('"kind":"checkpoint"')) controller.abort(); },
      err: () => undefined,
      signal: controller.signal,
    };
    const lines: string[] = [];
    const code = await command.run([modelDir, '--data', data, '--out', out, '--max-steps', '20', '--checkpoint-every', '2', '--json'], io);
    expect(code).toBe(130);
    expect(JSON.parse(lines[lines.length - 1] as string)).toMatchObject({ cancelled: true, steps: 2, checkpoint: `${out}.checkpoints/checkpoint-2` });
    expect(existsSync(out)).toBe(false);
  });

  it('bad options are usage errors naming the option', async () => {
    await expect(cli(makeTrainCommand(loader), [modelDir, '--data', data, '--out', 'x', '--rank', 'two'])).rejects.toThrow("--rank must be an integer, got 'two'");
    await expect(cli(makeTrainCommand(loader), [modelDir, '--data', data, '--out', 'x', '--epochs', '1', '--max-steps', '2'])).rejects.toThrow(UsageError);
    await expect(cli(makeTrainCommand(loader), [modelDir, '--out', 'x'])).rejects.toThrow('--data FILE is required');
    await expect(cli(makeTrainCommand(loader), [modelDir, '--data', data, '--out', 'x', '--bogus'])).rejects.toThrow('unknown option --bogus');
    await expect(cli(makeTrainCommand(loader), [modelDir, '--data', data, '--out', 'x', '--rank', '0', '--dry-run'])).rejects.toThrow('rank must be a positive integer, got 0');
    expect(parseTargets('attention')).toBe('attention');
    expect(parseTargets('re:.*q_proj')).toBe('.*q_proj');
    expect(parseTargets('q_proj, v_proj')).toEqual(['q_proj', 'v_proj']);
  });
});

describe('lorasmith train without a learning rate, steps, rank or targets', () => {
  it('takes them from the wizard\'s proposal for this model and dataset, and says so', async () => {
    // The proposal's rule (README, engine/train/proposal.ts) for a model under 4M parameters and 6 records (none held
    // out below 10): learning rate 3e-3 (its ceiling), 3 passes of ceil(6 / 4) = 2 steps raised to the minimum 100,
    // rank 8 (alpha 16), every linear layer.
    const proposed = await cli(makeTrainCommand(loader), [modelDir, '--data', data, '--dry-run', '--json']);
    const explicit = await cli(makeTrainCommand(loader), [modelDir, '--data', data, '--dry-run', '--json',
      '--learning-rate', '3e-3', '--max-steps', '100', '--rank', '8', '--alpha', '16', '--targets', 'all-linear']);
    const [p, e] = [proposed, explicit].map((r) => r.out.map((l) => JSON.parse(l) as Record<string, unknown>));
    const event = (lines: Record<string, unknown>[] | undefined, name: string) => lines?.find((l) => l.event === name) as Record<string, unknown>;
    expect(event(p, 'advice')).toMatchObject({ filled: ['learningRate', 'maxSteps', 'rank', 'targetModules'], proposal: { learningRate: 3e-3, maxSteps: 100, rank: 8, targets: 'all-linear' } });
    expect(event(e, 'advice').filled).toEqual([]);
    for (const key of ['trainableParameters', 'totalSteps', 'adapterBytes']) expect(event(p, 'estimate')[key]).toBe(event(e, 'estimate')[key]);
    expect(event(p, 'estimate').totalSteps).toBe(100);
    expect((event(p, 'advice').effect as { strength: number }).strength).toBeCloseTo(1, 12);
    const text = await cli(makeTrainCommand(loader), [modelDir, '--data', data, '--dry-run', '--max-steps', '4']);
    expect(text.out.join('\n')).toContain('not given, so from the proposal: learning rate 0.003, rank 8, all-linear targets');

    // A run records what it took; full fine-tuning keeps the engine's own defaults (the proposal is for LoRA).
    const out = join(dir, 'proposed');
    expect((await cli(makeTrainCommand(loader), [modelDir, '--data', data, '--out', out, '--max-steps', '2', '--json'])).code).toBe(0);
    const record = JSON.parse(readFileSync(join(out, 'training_record.json'), 'utf8'));
    expect(record.settings).toMatchObject({ learningRate: 3e-3, maxSteps: 2, basePrecision: 'stored', keepWeights: 'best', lora: { rank: 8, alpha: 16, targetModules: 'all-linear' } });
    const full = await cli(makeTrainCommand(loader), [modelDir, '--data', data, '--full', '--dry-run', '--json']);
    expect(event(full.out.map((l) => JSON.parse(l)), 'advice').filled).toEqual([]);
  });
});

describe('lorasmith eval', () => {
  it('reports loss, perplexity and tokens, and an adapter changes them', async () => {
    const out = join(dir, 'adapter-eval');
    await cli(makeTrainCommand(loader), [modelDir, '--data', data, '--out', out, '--targets', 'all-linear', '--max-steps', '30', '--learning-rate', '3e-2', '--val-split', '0', '--json']);
    const base = JSON.parse((await cli(makeEvalCommand(loader), [modelDir, '--data', data, '--json'])).out[0] as string);
    const tuned = JSON.parse((await cli(makeEvalCommand(loader), [modelDir, '--data', data, '--adapter', out, '--json'])).out[0] as string);
    expect(base).toMatchObject({ done: true, examples: 6, tokens: 12, skipped: 1 });
    expect(base.perplexity).toBeCloseTo(Math.exp(base.loss), 6);
    expect(tuned.loss).toBeLessThan(base.loss / 2);
  });
});

describe('lorasmith train / eval through main() on a real checkpoint', () => {
  it('trains tiny-random-llama from a chat dataset and evaluates with the adapter', async () => {
    const { main } = await import('../../main/cli/index');
    const fixture = join(import.meta.dirname, '../fixtures/tiny-random-llama');
    const chat = join(dir, 'chat.jsonl');
    writeFileSync(chat, Array.from({ length: 4 }, (_, i) => JSON.stringify({ messages: [{ role: 'user', content: `hi ${i}` }, { role: 'assistant', content: 'hello there' }] })).join('\n'));
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: () => undefined, signal: new AbortController().signal };
    const adapter = join(dir, 'llama-adapter');
    const code = await main(['train', fixture, '--data', chat, '--out', adapter, '--targets', 'q_proj,v_proj', '--rank', '2', '--max-steps', '2', '--batch-size', '2', '--val-split', '0', '--backend', 'cpu', '--max-seq-len', '64', '--json'], io);
    expect(code).toBe(0);
    const lines = out.map((l) => JSON.parse(l));
    expect(lines.find((l) => l.event === 'dataset')).toMatchObject({ format: 'messages', valid: 4 });
    expect(lines.find((l) => l.event === 'estimate')).toMatchObject({ backend: 'cpu', backendFallback: null });
    expect(lines[lines.length - 1]).toMatchObject({ done: true, steps: 2, adapterDir: adapter });
    const record = JSON.parse(readFileSync(join(adapter, 'training_record.json'), 'utf8'));
    expect(record.baseModel.contentHash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(record.performance).toMatchObject({ backend: 'cpu', backendFallback: null }); // the backend asked for served
    out.length = 0;
    expect(await main(['eval', fixture, '--adapter', adapter, '--data', chat, '--backend', 'cpu', '--json'], io)).toBe(0);
    expect(JSON.parse(out[0] as string)).toMatchObject({ done: true, examples: 4 });
  });

  it.skipIf(nativeSkipReason('--base-precision and --measure-precision', addonLoad.ok && hasWeightKernels(addonLoad.addon)))(
    '--base-precision keeps the base at Q8_0 or Q4_0; --measure-precision prints their loss against 16 bits and the memory saved', async () => {
      const model = join(import.meta.dirname, '..', 'fixtures', 'tiny-random-llama'); // F16
      const r = await cli(trainCommand, [model, '--data', data, '--backend', 'cpu', '--base-precision', 'Q8_0', '--measure-precision', '--dry-run', '--json']);
      expect(r.code).toBe(0);
      const lines = r.out.map((l) => JSON.parse(l));
      expect(lines.find((l) => l.event === 'estimate').base).toMatchObject({ held: 'Q8_0' });
      expect(lines.find((l) => l.event === 'advice').proposal.rank).toBe(8);
      const measured = lines.find((l) => l.event === 'precision');
      expect(measured).toMatchObject({ rows: 'training', reference: { format: 'F16', lossDelta: 0 }, others: [{ precision: 'q8_0', format: 'Q8_0' }, { precision: 'q4_0', format: 'Q4_0' }] });
      const [q8, q4] = measured.others;
      expect(q8.lossDelta).toBeCloseTo(q8.loss - measured.reference.loss, 12);
      expect(q8.bytesSaved).toBe(measured.reference.baseBytes - q8.baseBytes);
      expect(q8.bytesSaved).toBeGreaterThan(0.4 * measured.reference.baseBytes); // 8 bits and a scale per 32 against 16 bits
      expect(q4.lossDelta).toBeCloseTo(q4.loss - measured.reference.loss, 12);
      expect(q4.bytesSaved).toBeGreaterThan(q8.bytesSaved); // 18 bytes per 32 values (a short block counts whole)
      const text = await cli(trainCommand, [model, '--data', data, '--backend', 'cpu', '--measure-precision', '--dry-run']);
      expect(text.out.join('\n')).toMatch(/base precision, measured:\n {2}F16: loss \d+\.\d{4} on \d+ training examples \(\d+ target tokens\), [\d.]+ MB\n {2}Q8_0: [+−]\d\.\d{3} loss, [\d.]+ MB less\n {2}Q4_0: [+−]\d\.\d{3} loss, [\d.]+ MB less/);
      await expect(cli(trainCommand, [model, '--data', data, '--base-precision', 'q4', '--dry-run'])).rejects.toThrow("--base-precision must be one of stored, bf16, q8_0, q4_0, got 'q4'");
      // The run's settings carry it (the app's basePrecision): its record says how the base was asked for and held.
      const out = join(dir, 'q8-adapter');
      expect((await cli(trainCommand, [model, '--data', data, '--out', out, '--backend', 'cpu', '--base-precision', 'q8_0', '--max-steps', '1'])).code).toBe(0);
      const record = JSON.parse(readFileSync(join(out, 'training_record.json'), 'utf8'));
      expect([record.settings.basePrecision, record.performance.estimate.base.held]).toEqual(['q8_0', 'Q8_0']);
      // At 4 bits: a few steps train on the base held as Q4_0 blocks, and the record says so.
      const out4 = join(dir, 'q4-adapter');
      const q4Run = await cli(trainCommand, [model, '--data', data, '--out', out4, '--backend', 'cpu', '--base-precision', 'q4_0', '--max-steps', '3', '--json']);
      expect(q4Run.code).toBe(0);
      const q4Lines = q4Run.out.map((l) => JSON.parse(l));
      expect(q4Lines.find((l) => l.event === 'estimate').base).toMatchObject({ held: 'Q4_0' });
      expect(q4Lines.filter((l) => l.event === 'progress' && l.kind === 'step').map((l) => Number.isFinite(l.loss))).toEqual([true, true, true]);
      const q4Record = JSON.parse(readFileSync(join(out4, 'training_record.json'), 'utf8'));
      expect([q4Record.settings.basePrecision, q4Record.performance.estimate.base.held]).toEqual(['q4_0', 'Q4_0']);
      expect(existsSync(join(out4, 'adapter_model.safetensors'))).toBe(true);
    });
});
