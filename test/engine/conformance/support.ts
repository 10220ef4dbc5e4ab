/** Small pieces the conformance files share: model folders, shapes, float64 helpers. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { decodeF16 } from '../backend/fused-reference';
import type { Weights } from '../models/float64-reference';
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

/**
 * A checkpoint's tensors as float64, read from model.safetensors by the format's layout (an 8-byte little-endian
 * header length, the JSON header, then each tensor's bytes): F32 as stored, F16 decoded by its definition.
 */
export function checkpointWeights(dir: string): Weights {
  const bytes = readFileSync(join(dir, 'model.safetensors'));
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const start = 8 + headerLength;
  const out: Weights = new Map();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [from, to] = t.data_offsets;
    const raw = bytes.subarray(start + from, start + to);
    let data: Float64Array;
    if (t.dtype === 'F32') data = Float64Array.from({ length: raw.length / 4 }, (_, i) => raw.readFloatLE(4 * i));
    else if (t.dtype === 'F16') data = Float64Array.from({ length: raw.length / 2 }, (_, i) => decodeF16(raw.readUInt16LE(2 * i)));
    else throw new Error(`${dir}: ${name} is ${t.dtype}; the conformance reference reads F32 and F16`);
    out.set(name, { shape: t.shape, data });
  }
  return out;
}
