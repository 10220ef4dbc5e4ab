/** Small but real inputs for the store's tests: HF-style model folders, PEFT folders, settings. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrainingSettings } from '../../../preload/contract/domain';

export function tempDir(prefix = 'lorasmith-store-'): { path: string; dispose: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, dispose: () => rmSync(path, { recursive: true, force: true }) };
}

/** A safetensors file: u64 LE header length, JSON header, then the raw tensor bytes (float32 here). */
export function safetensors(tensors: Record<string, { shape: number[]; values: number[] }>): Buffer {
  const header: Record<string, unknown> = {};
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const data = Buffer.from(new Float32Array(t.values).buffer);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + data.length] };
    chunks.push(data);
    offset += data.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, ...chunks]);
}

/** Deterministic pseudo-random floats (an LCG) so a file's content can be regenerated to check it. */
export function floats(seed: number, n: number): number[] {
  let x = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out.push(x / 2 ** 32 - 0.5);
  }
  return out;
}

export function writeModelFolder(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', n_embd: 4, n_layer: 1 }));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ version: '1.0', model: { type: 'BPE' } }));
  writeFileSync(join(dir, 'model.safetensors'), safetensors({
    'h.0.attn.c_attn.weight': { shape: [4, 12], values: floats(1, 48) },
    'wte.weight': { shape: [8, 4], values: floats(2, 32) },
  }));
  return dir;
}

/** A PEFT folder whose weights are a pure function of `seed` and `rank`. */
export function peftBytes(seed: number, rank = 2): Buffer {
  return safetensors({
    'base_model.model.h.0.attn.c_attn.lora_A.weight': { shape: [rank, 4], values: floats(seed, rank * 4) },
    'base_model.model.h.0.attn.c_attn.lora_B.weight': { shape: [12, rank], values: floats(seed + 1, 12 * rank) },
  });
}

export function writePeftFolder(dir: string, seed: number, rank = 2): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({
    peft_type: 'LORA', r: rank, lora_alpha: 2 * rank, target_modules: ['c_attn'], fan_in_fan_out: true,
  }));
  writeFileSync(join(dir, 'adapter_model.safetensors'), peftBytes(seed, rank));
  return dir;
}

export function settings(overrides: Partial<TrainingSettings> = {}): TrainingSettings {
  return {
    lora: { targetModules: ['c_attn'], rank: 2, alpha: 4, dropout: 0, useRslora: false },
    epochs: 1, learningRate: 1e-3, batchSize: 2, gradAccum: 1, maxSeqLen: 64, valSplit: 0.1, seed: 7,
    scheduler: 'cosine', warmupSteps: 2, weightDecay: 0, maxGradNorm: 1, evalEvery: 10, checkpointEvery: 10,
    trainOnPrompt: false,
    ...overrides,
  };
}
