import * as tf from '@tensorflow/tfjs-core';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportPeftAdapter, importPeftAdapter } from '../../../main/engine/adapters/peft';
import { preflightAdapter } from '../../../main/engine/adapters/preflight';
import { ResidentAdapters, type AdapterModel } from '../../../main/engine/adapters/resident';
import { LinearLayer } from '../../../main/engine/lora/linear';
import { writeSafetensors } from '../../../main/engine/io/safetensors';
import type { ModelConfig } from '../../../main/engine/models/types';
import { Rng } from '../../../main/engine/train/rng';
import { useCpu } from '../lora/setup';
import { gpt2LinearSpecs, type Gpt2Shape } from './gpt2-specs';

const FIXTURE = join(import.meta.dirname, '../../fixtures/peft-gpt2-lora-c_attn-c_proj');
const BASE_CONFIG = JSON.parse(readFileSync(join(FIXTURE, 'base_model_config.json'), 'utf8')) as Gpt2Shape;
const GPT2 = { modelType: 'gpt2', linears: gpt2LinearSpecs(BASE_CONFIG) };

/** Bit-for-bit equality of two float arrays (fast, unlike a deep toEqual over 100k elements). */
function sameBits(a: Float32Array | undefined, b: Float32Array | undefined): boolean {
  return !!a && !!b && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

let work: string;
beforeAll(async () => {
  await useCpu();
  work = mkdtempSync(join(tmpdir(), 'lorasmith-peft-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A copy of the fixture with adapter_config.json edited and, optionally, other tensors. */
function variant(name: string, edit: Record<string, unknown>, tensors?: Map<string, { data: Float32Array; shape: number[] }>): string {
  const dir = join(work, name);
  cpSync(FIXTURE, dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...config, ...edit }));
  if (tensors) {
    const typed = new Map([...tensors].map(([k, t]) => [k, { dtype: 'F32' as const, ...t }]));
    writeSafetensors(join(dir, 'adapter_model.safetensors'), typed, { format: 'pt' });
  }
  return dir;
}

describe('preflight of the real PEFT GPT-2 adapter', () => {
  it('fits a base of its base_model_config.json shape: 36 modules, rank 8, scaling 32/8', () => {
    const report = preflightAdapter(FIXTURE, GPT2);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.warnings).toEqual([]);
    expect(report.modules).toHaveLength(36);
    expect(report.modules.every((m) => m.rank === 8 && m.scaling === 4)).toBe(true);
    const mlp = report.modules.find((m) => m.path === 'transformer.h.3.mlp.c_proj');
    expect(mlp).toMatchObject({ inFeatures: 3072, outFeatures: 768 });
  });

  it('reports a base of another width shape by shape, without throwing', () => {
    const report = preflightAdapter(FIXTURE, { modelType: 'gpt2', linears: gpt2LinearSpecs({ n_embd: 64, n_layer: 12 }) });
    expect(report.ok).toBe(false);
    expect(report.problems).toHaveLength(36);
    expect(report.problems[0]).toEqual({
      kind: 'shape',
      module: 'transformer.h.0.attn.c_attn',
      message: 'lora_A is [8, 768] and lora_B [2304, 8]; this base needs lora_A [8, 64] and lora_B [192, 8]',
    });
  });

  it('reports missing modules on a shallower base and on another architecture', () => {
    const shallow = preflightAdapter(FIXTURE, { modelType: 'gpt2', linears: gpt2LinearSpecs({ n_embd: 768, n_layer: 6 }) });
    expect(shallow.problems.filter((p) => p.kind === 'missing-module')).toHaveLength(18);
    expect(shallow.modules).toHaveLength(18);
    const llama = preflightAdapter(FIXTURE, {
      modelType: 'llama',
      linears: [{ path: 'model.layers.0.self_attn.q_proj', name: 'q_proj', layer: 0, inFeatures: 768, outFeatures: 768, groups: ['attention'], fanInFanOut: false }],
    });
    expect(llama.problems).toHaveLength(36);
    expect(llama.problems[0]?.message).toBe('is not a linear module of this base model');
  });

  it('honours rank_pattern, alpha_pattern and layers_to_transform', () => {
    const patterned = variant('patterned', { r: 4, rank_pattern: { c_attn: 8, c_proj: 8 }, alpha_pattern: { c_attn: 16 }, use_rslora: true });
    const report = preflightAdapter(patterned, GPT2);
    expect(report.ok).toBe(true);
    expect(report.modules.find((m) => m.path.endsWith('c_attn'))?.scaling).toBeCloseTo(16 / Math.sqrt(8), 12);
    expect(report.modules.find((m) => m.path.endsWith('c_proj'))?.scaling).toBeCloseTo(32 / Math.sqrt(8), 12);
    const wrongRank = preflightAdapter(variant('wrong-rank', { r: 4 }), GPT2);
    expect(wrongRank.problems[0]?.message).toBe('holds rank 8 but r / rank_pattern in adapter_config.json say 4');
    const layers = preflightAdapter(variant('layers', { layers_to_transform: [0, 1] }), GPT2);
    expect(layers.problems.filter((p) => p.kind === 'config')).toHaveLength(30);
    expect(layers.problems[0]?.message).toMatch(/outside layers_to_transform \[0, 1\]/);
  });

  it('refuses DoRA, task heads, extra full weights, embeddings and legacy .bin, naming each', () => {
    const source = importPeftAdapter(FIXTURE);
    const tensors = new Map<string, { data: Float32Array; shape: number[] }>();
    const [path, w] = [...source.modules][0] as [string, { loraA: Float32Array; loraB: Float32Array }];
    tensors.set(`base_model.model.${path}.lora_A.weight`, { data: w.loraA, shape: [8, 768] });
    tensors.set(`base_model.model.${path}.lora_B.weight`, { data: w.loraB, shape: [2304, 8] });
    tensors.set('base_model.model.score.weight', { data: new Float32Array(6 * 768), shape: [6, 768] });
    tensors.set('base_model.model.transformer.wte.lora_embedding_A', { data: new Float32Array(8 * 10), shape: [8, 10] });
    const dir = variant('seqcls', { task_type: 'SEQ_CLS', modules_to_save: ['score'], use_dora: true }, tensors);
    const messages = preflightAdapter(dir, GPT2).problems.map((p) => p.message).join('\n');
    expect(messages).toContain("task_type is 'SEQ_CLS'");
    expect(messages).toContain('DoRA (use_dora)');
    expect(messages).toContain('modules_to_save ["score"]');
    expect(messages).toContain("'base_model.model.score.weight' [6, 768] is an extra full weight");
    expect(messages).toContain('adapts an embedding');
    expect(() => importPeftAdapter(dir, GPT2)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_ADAPTER' }));

    const legacy = join(work, 'legacy');
    cpSync(FIXTURE, legacy, { recursive: true });
    rmSync(join(legacy, 'adapter_model.safetensors'));
    writeFileSync(join(legacy, 'adapter_model.bin'), 'pickle');
    expect(preflightAdapter(legacy, GPT2).problems[0]?.message).toMatch(/legacy adapter_model\.bin .* safe_serialization=True/);
    expect(preflightAdapter(join(work, 'nowhere'), GPT2).problems[0]?.message).toMatch(/adapter_config\.json is missing/);
  });
});

describe('PEFT import, merge and export of the real adapter', () => {
  it('exports byte for byte what PEFT wrote, and re-imports bit-exactly', () => {
    const adapter = importPeftAdapter(FIXTURE, GPT2);
    const out = join(work, 'exported');
    exportPeftAdapter(out, adapter);
    expect(readFileSync(join(out, 'adapter_model.safetensors')).equals(readFileSync(join(FIXTURE, 'adapter_model.safetensors')))).toBe(true);
    const original = JSON.parse(readFileSync(join(FIXTURE, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    const written = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(written).sort()).toEqual(Object.keys(original).sort());
    for (const key of ['r', 'lora_alpha', 'target_modules', 'fan_in_fan_out', 'task_type', 'peft_type', 'use_rslora']) {
      expect(written[key]).toEqual(original[key]);
    }
    const again = importPeftAdapter(out, GPT2);
    for (const [path, w] of adapter.modules) {
      expect(sameBits(again.modules.get(path)?.loraA, w.loraA)).toBe(true);
      expect(sameBits(again.modules.get(path)?.loraB, w.loraB)).toBe(true);
    }
  });

  it('merges into a random base like a float64 reference W0 + (alpha/r)·(B·A)ᵀ (Conv1D layout)', async () => {
    const paths = ['transformer.h.0.attn.c_attn', 'transformer.h.11.attn.c_proj', 'transformer.h.5.mlp.c_proj'];
    const rng = new Rng(42);
    const linears = new Map<string, LinearLayer>();
    const w0 = new Map<string, Float32Array>();
    for (const spec of GPT2.linears.filter((s) => paths.includes(s.path))) {
      const values = Float32Array.from({ length: spec.inFeatures * spec.outFeatures }, () => rng.uniform(-0.1, 0.1));
      w0.set(spec.path, values);
      linears.set(spec.path, new LinearLayer(spec, tf.tensor2d(values, [spec.inFeatures, spec.outFeatures]), null));
    }
    const model: AdapterModel = { config: { modelType: 'gpt2' } as ModelConfig, linears };
    const adapter = importPeftAdapter(FIXTURE, GPT2);
    const resident = new ResidentAdapters(model);
    resident.add('tigrinya', adapter.config, adapter.meta, new Map(paths.map((p) => [p, adapter.modules.get(p) as never])));
    await resident.merge('tigrinya');
    for (const path of paths) {
      const layer = linears.get(path) as LinearLayer;
      const { inFeatures: n, outFeatures: m } = layer.spec;
      const { loraA, loraB } = adapter.modules.get(path) as { loraA: Float32Array; loraB: Float32Array };
      const merged = (await layer.weightT.data()) as Float32Array;
      const base = w0.get(path) as Float32Array;
      let worst = 0;
      let deltaMax = 0;
      for (let i = 0; i < n; i++) {
        for (let o = 0; o < m; o++) {
          let sum = 0; // float64: Σ_k A[k, i]·B[o, k]
          for (let k = 0; k < 8; k++) sum += (loraA[k * n + i] as number) * (loraB[o * 8 + k] as number);
          const expected = (base[i * m + o] as number) + 4 * sum;
          deltaMax = Math.max(deltaMax, Math.abs(4 * sum));
          worst = Math.max(worst, Math.abs((merged[i * m + o] as number) - expected));
        }
      }
      expect(deltaMax).toBeGreaterThan(1e-3); // the adapter is trained: the merge changes the weight
      expect(worst).toBeLessThan(2e-7);
    }
    resident.unmerge('tigrinya');
    const restored = (await (linears.get(paths[0] as string) as LinearLayer).weightT.data()) as Float32Array;
    let worst = 0;
    const base = w0.get(paths[0] as string) as Float32Array;
    for (let i = 0; i < base.length; i++) worst = Math.max(worst, Math.abs((restored[i] as number) - (base[i] as number)));
    expect(worst).toBeLessThan(1e-7);
    resident.clear();
    for (const l of linears.values()) l.dispose();
  });
});
