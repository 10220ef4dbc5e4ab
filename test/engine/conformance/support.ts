/** Small pieces the conformance files share: model folders, shapes, float64 helpers. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import type { LlamaShape } from '../models/random-models';

export const FIXTURES = join(import.meta.dirname, '../../fixtures');
export const ROOT = join(import.meta.dirname, '../../..');

/** A temporary folder for this test file's model folders, removed when the file is done. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `conformance-${prefix}-`));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The llama shapes the suite uses: grouped-query heads (4 query heads on 2 kv heads), small enough for lavapipe. */
export const LLAMA_GQA: LlamaShape = { hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, vocab: 40, tied: false };
export const QWEN2: LlamaShape = { modelType: 'qwen2', hidden: 32, layers: 2, heads: 4, kvHeads: 1, intermediate: 48, vocab: 40, tied: true, ropeTheta: 1e6 };
export const GPT2 = { embd: 16, layers: 2, heads: 2, vocab: 40, positions: 16 };

/** HF's default rotary inverse frequencies for head dim d. */
export function invFreq(d: number, theta: number): number[] {
  return Array.from({ length: d / 2 }, (_, i) => 1 / theta ** ((2 * i) / d));
}

/** Masked mean next-token cross entropy in float64, as the training loss (train/loss.ts) defines it. logits [T][V]. */
export function crossEntropy64(logits: readonly Float64Array[], labels: readonly number[], weights: readonly number[]): number {
  let sum = 0;
  let count = 0;
  logits.forEach((row, t) => {
    const w = weights[t] as number;
    if (w === 0) return;
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let z = 0;
    for (const v of row) z += Math.exp(v - max);
    sum += w * (Math.log(z) + max - (row[labels[t] as number] as number));
    count += w;
  });
  return sum / Math.max(count, 1);
}
