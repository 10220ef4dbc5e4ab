/**
 * A medium model (25M parameters: qwen2, tied head, q/k/v bias, BF16 safetensors) trained a few steps through the
 * CLI on the default backend: wasm, with its frozen weights kept BF16 in the native store outside the wasm heap.
 * The adapter is written, the loss is finite, and the store holds nothing once the command is done.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { activeFrozenStore } from '../../main/engine/backend/frozen';
import { hasWeightKernels } from '../../main/engine/backend/native/addon';
import { nativeKernelStatus } from '../../main/engine/backend/native/index';
import { addonLoad, nativeSkipReason } from '../engine/backend/native-support';
import { buildLlama } from '../engine/models/random-models';

const skip = nativeSkipReason('CLI training on the frozen-weight store', addonLoad.ok && hasWeightKernels(addonLoad.addon));
const dir = mkdtempSync(join(tmpdir(), 'lorasmith-cli-bf16-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('lorasmith train on a BF16 model', () => {
  it.skipIf(skip)('trains a 25M-parameter qwen2 from a BF16 file on the default backend, its base stored BF16', async () => {
    const modelDir = join(dir, 'model');
    const shape = { modelType: 'qwen2' as const, hidden: 384, layers: 6, heads: 6, kvHeads: 2, intermediate: 1536, vocab: 32000, tied: true, dtype: 'BF16' as const };
    buildLlama(modelDir, shape, 41);
    const fixture = join(import.meta.dirname, '../fixtures/tiny-random-llama');
    for (const file of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(fixture, file), join(modelDir, file));
    const data = join(dir, 'chat.jsonl');
    writeFileSync(data, Array.from({ length: 6 }, (_, i) => JSON.stringify({
      messages: [{ role: 'user', content: `question number ${i}` }, { role: 'assistant', content: `the answer is ${i * 7}` }],
    })).join('\n'));

    const { main } = await import('../../main/cli/index');
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: () => undefined, signal: new AbortController().signal };
    const adapter = join(dir, 'adapter');
    const code = await main(['train', modelDir, '--data', data, '--out', adapter, '--targets', 'all-linear', '--rank', '4', '--max-steps', '3',
      '--batch-size', '2', '--val-split', '0', '--max-seq-len', '32', '--learning-rate', '1e-3', '--json'], io);
    expect(code).toBe(0);
    const lines = out.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.event === 'estimate')).toMatchObject({ backend: 'wasm' });
    // The memory each step reports counts the base kept BF16 in the store: 2 bytes per frozen matrix value (the
    // embedding, which is the tied head, and per layer q/o 384², k/v 384×128, gate/up/down 384×1536), at least.
    const frozenBf16Bytes = 2 * (32000 * 384 + 6 * (2 * 384 * 384 + 2 * 384 * 128 + 3 * 384 * 1536));
    const progress = lines.filter((l) => l.event === 'progress');
    expect(progress.length).toBeGreaterThan(0);
    for (const p of progress) expect(p.memoryBytes as number).toBeGreaterThanOrEqual(frozenBf16Bytes);
    const last = lines[lines.length - 1] as Record<string, unknown>;
    expect(last).toMatchObject({ done: true, steps: 3, adapterDir: adapter });
    expect(Number.isFinite(last.trainLoss)).toBe(true);
    expect(existsSync(join(adapter, 'adapter_model.safetensors'))).toBe(true);
    // The default backend's kernels included the store, and the model it held is freed.
    expect(nativeKernelStatus('wasm').detail).toContain('frozen weights in the native frozen-weight store');
    expect(activeFrozenStore()?.liveBytes()).toBe(0);
  }, 240_000);
});
