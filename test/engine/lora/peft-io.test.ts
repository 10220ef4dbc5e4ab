import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useCpu } from './setup';
import { tinyModel } from './tiny-model';
import { loadAdapter, peftConfigJson, saveAdapter } from '../../../main/engine/lora/peft-io';
import { resolveLoraConfig } from '../../../main/engine/lora/config';
import { attachAdapterWeights, injectAdapter, peftWeightsOf } from '../../../main/engine/lora/inject';

const FIXTURE = join(import.meta.dirname, '../../fixtures/peft-gpt2-lora-c_attn-c_proj');
const dir = mkdtempSync(join(tmpdir(), 'lorasmith-peft-'));
beforeAll(useCpu);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function kind(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/** Reads one float straight from a safetensors file by its header: an independent look at the bytes. */
function rawFloat(file: string, key: string, index: number): { value: number; dtype: string; shape: number[] } {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const info = header[key];
  return { value: bytes.readFloatLE(8 + n + info.data_offsets[0] + 4 * index), dtype: info.dtype, shape: info.shape };
}

describe('adapter_config.json', () => {
  it('has exactly the keys of a real PEFT file, with the same value types', () => {
    const real = JSON.parse(readFileSync(join(FIXTURE, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    const ours = peftConfigJson(resolveLoraConfig({ targetModules: ['c_attn', 'c_proj'], rank: 8, alpha: 32, dropout: 0.05 }), { baseModelNameOrPath: 'gpt2', fanInFanOut: true });
    expect(Object.keys(ours).sort()).toEqual(Object.keys(real).sort());
    for (const key of Object.keys(real)) {
      // real files write loftq_config {} and null patterns alike; compare kinds
      expect(`${key}: ${kind(ours[key])}`).toBe(`${key}: ${kind(real[key])}`);
    }
    expect(ours).toEqual(real); // same settings => the same file
  });
});

describe('loadAdapter', () => {
  it('reads the real PEFT adapter: config, 36 modules, PEFT orientation, values as stored', () => {
    const adapter = loadAdapter(FIXTURE);
    expect(adapter.config).toMatchObject({ rank: 8, alpha: 32, dropout: 0.05, targetModules: ['c_attn', 'c_proj'], useRslora: false });
    expect(adapter.meta).toEqual({ baseModelNameOrPath: 'gpt2', fanInFanOut: true });
    expect(adapter.modules.size).toBe(36);
    const cAttn = adapter.modules.get('transformer.h.0.attn.c_attn');
    expect(cAttn?.rank).toBe(8);
    expect(cAttn?.loraA.length).toBe(8 * 768);
    expect(cAttn?.loraB.length).toBe(2304 * 8);
    const file = join(FIXTURE, 'adapter_model.safetensors');
    const probe = rawFloat(file, 'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight', 777);
    expect(probe.shape).toEqual([2304, 8]);
    expect(cAttn?.loraB[777]).toBe(probe.value);
    expect(adapter.modules.get('transformer.h.11.mlp.c_proj')?.loraA.length).toBe(8 * 3072);
  });

  it('names what is wrong with a broken folder', () => {
    const broken = join(dir, 'broken');
    saveAdapter(broken, resolveLoraConfig({ targetModules: ['q_proj'] }), new Map([['m.q_proj', { loraA: new Float32Array(8), loraB: new Float32Array(8), rank: 2 }]]), { baseModelNameOrPath: 'x', fanInFanOut: false });
    writeFileSync(join(broken, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 0, target_modules: ['q'] }));
    expect(() => loadAdapter(broken)).toThrow(/adapter_config.json: rank must be a positive integer, got 0/);
    writeFileSync(join(broken, 'adapter_config.json'), JSON.stringify({ peft_type: 'IA3', r: 2, target_modules: ['q'] }));
    expect(() => loadAdapter(broken)).toThrow('peft_type is "IA3"; only LORA adapters are supported');
  });
});

describe('saveAdapter', () => {
  it('round-trips the real adapter bit for bit, F32 with PEFT keys and shapes', () => {
    const adapter = loadAdapter(FIXTURE);
    const out = join(dir, 'copy');
    saveAdapter(out, adapter.config, adapter.modules, adapter.meta);
    const again = loadAdapter(out);
    expect([...again.modules.keys()]).toEqual(expect.arrayContaining([...adapter.modules.keys()]));
    for (const [path, w] of adapter.modules) {
      expect(again.modules.get(path)?.loraA).toEqual(w.loraA);
      expect(again.modules.get(path)?.loraB).toEqual(w.loraB);
    }
    const probe = rawFloat(join(out, 'adapter_model.safetensors'), 'base_model.model.transformer.h.3.mlp.c_proj.lora_A.weight', 5);
    expect(probe).toMatchObject({ dtype: 'F32', shape: [8, 3072], value: adapter.modules.get('transformer.h.3.mlp.c_proj')?.loraA[5] });
  });

  it('replaces atomically; a failed write leaves the previous adapter and no temp folder', () => {
    const out = join(dir, 'atomic');
    const config = resolveLoraConfig({ targetModules: ['q_proj'], rank: 1 });
    const modules = new Map([['m.q_proj', { loraA: new Float32Array([1, 2]), loraB: new Float32Array([3, 4]), rank: 1 }]]);
    saveAdapter(out, config, modules, { baseModelNameOrPath: 'b', fanInFanOut: false });
    const before = readFileSync(join(out, 'adapter_model.safetensors'));
    expect(() => saveAdapter(out, config, modules, { baseModelNameOrPath: 'b', fanInFanOut: false, extraFiles: new Map([['no/such/dir.json', '{}']]) })).toThrow();
    expect(readFileSync(join(out, 'adapter_model.safetensors'))).toEqual(before);
    expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('a trained adapter saved and attached to a fresh copy of the model gives the same outputs', async () => {
    const model = tinyModel({ seed: 4 });
    const adapter = injectAdapter(model, 'a', { targetModules: ['q_proj', 'up_proj'], rank: 3, alpha: 6 }, { seed: 1 });
    for (const { weights } of adapter.modules.values()) weights.Bt.assign(tf.randomNormal(weights.Bt.shape, 0, 0.5, 'float32', 3) as tf.Tensor2D);
    const ids = tf.tensor2d([[1, 2, 3, 4, 5]], [1, 5], 'int32');
    const trained = model.forward(ids).arraySync();
    const out = join(dir, 'trained');
    saveAdapter(out, adapter.config, await peftWeightsOf(adapter), { baseModelNameOrPath: 'tiny', fanInFanOut: false });
    const fresh = tinyModel({ seed: 4 });
    const loaded = loadAdapter(out);
    attachAdapterWeights(fresh, 'b', loaded.config, loaded.modules);
    expect(fresh.forward(ids).arraySync()).toEqual(trained);
    expect(existsSync(join(out, 'adapter_config.json'))).toBe(true);
    ids.dispose();
    model.dispose();
    fresh.dispose();
  });
});
