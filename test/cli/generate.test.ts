import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '../../main/engine/backend/index';
import { addonAvailable } from '../engine/backend/native-support';

const fixtures = join(import.meta.dirname, '../fixtures');
afterAll(async () => {
  await initBackend('cpu');
});

interface GenerateJson {
  ids: number[];
  text: string | null;
  backend: string;
  kernels: string;
  backendFallback: string | null;
  selfTest: string;
  tokensPerSecond: number;
  stopReason: string;
}

describe('lorasmith generate', () => {
  for (const name of ['tiny-random-gpt2', 'tiny-random-llama']) {
    for (const backend of ['cpu', 'wasm']) {
      it(`reproduces the upstream greedy sequences of ${name} on ${backend}`, async () => {
        const dir = join(fixtures, name);
        const ref = JSON.parse(readFileSync(join(dir, 'reference_outputs.json'), 'utf8')) as {
          greedy: { input_ids: number[]; max_length: number; expected_sequence: number[] }[];
        };
        for (const g of ref.greedy) {
          const n = g.max_length - g.input_ids.length;
          const { code, out, err } = await runCli(['generate', dir, '--prompt-ids', g.input_ids.join(','), '--max-new-tokens', String(n), '--backend', backend, '--json']);
          expect(err).toBe('');
          expect(code).toBe(0);
          const result = JSON.parse(out) as GenerateJson;
          // Upstream ran without EOS stops; neither fixture's EOS appears in these sequences.
          expect([...g.input_ids, ...result.ids]).toEqual(g.expected_sequence);
          expect(result.backend).toBe(backend);
          expect(result).toMatchObject({ backendFallback: null, selfTest: expect.stringMatching(/^passed in \d+ ms$/) });
          // The CLI registers the native kernels where the addon loads (LORASMITH_NATIVE=0 would turn them off).
          if (addonAvailable) expect(result.kernels).toContain('fused attention');
          expect(result.tokensPerSecond).toBeGreaterThan(0);
          expect(typeof result.text).toBe('string');
        }
      });
    }
  }

  it('takes a text prompt and a chat prompt through the tokenizer', async () => {
    const plain = await runCli(['generate', join(fixtures, 'gpt2-real-tokenizer-1layer'), '--prompt', 'Hello world', '--max-new-tokens', '3', '--backend', 'cpu', '--json']);
    expect(plain.code).toBe(0);
    expect((JSON.parse(plain.out) as GenerateJson).ids).toHaveLength(3);
    const chat = await runCli(['generate', join(fixtures, 'tiny-random-llama'), '--prompt', 'Hi', '--chat', '--max-new-tokens', '4', '--temperature', '0.7', '--seed', '3', '--backend', 'cpu', '--json']);
    expect(chat.code).toBe(0);
    const again = await runCli(['generate', join(fixtures, 'tiny-random-llama'), '--prompt', 'Hi', '--chat', '--max-new-tokens', '4', '--temperature', '0.7', '--seed', '3', '--backend', 'cpu', '--json']);
    expect((JSON.parse(again.out) as GenerateJson).ids).toEqual((JSON.parse(chat.out) as GenerateJson).ids);
  });

  it('rejects bad usage and out-of-vocabulary ids with clear messages', async () => {
    const dir = join(fixtures, 'tiny-random-gpt2');
    const both = await runCli(['generate', dir, '--prompt', 'x', '--prompt-ids', '1']);
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/exactly one of --prompt TEXT or --prompt-ids/);
    const badBackend = await runCli(['generate', dir, '--prompt-ids', '1', '--backend', 'metal']);
    expect(badBackend.code).toBe(2);
    const oov = await runCli(['generate', dir, '--prompt-ids', '1,50000', '--backend', 'cpu']);
    expect(oov.code).toBe(1);
    expect(oov.err).toMatch(/\[TOKEN_OUT_OF_RANGE\] token id 50000/);
    const missing = await runCli(['generate', join(fixtures, 'no-such-model'), '--prompt', 'hi']);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/\[MODEL_NOT_FOUND\] .*no-such-model: no config\.json/);
  });
});
