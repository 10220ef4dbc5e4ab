/**
 * Merged export of a model whose base lives in the frozen-weight store (BF16 outside the heap): every tensor
 * written is W0 + s·B·A against float64 arithmetic on the file's values and the adapter's, and the export reads
 * the model one weight at a time: the tensors it makes alive at once never exceed a few of the largest weight's
 * float32 size, where reading them all first would hold a float32 copy of the whole base. A read that fails midway
 * leaves no folder and no temp, and frees what it made.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { ResidentAdapters } from '../../../main/engine/adapters/resident';
import { exportMergedModel } from '../../../main/engine/adapters/write-model-folder';
import { activeFrozenStore } from '../../../main/engine/backend/frozen';
import { initBackend } from '../../../main/engine/backend/index';
import { hasWeightKernels } from '../../../main/engine/backend/native/addon';
import { unregisterNativeKernels } from '../../../main/engine/backend/native/index';
import { readSafetensors } from '../../../main/engine/io/safetensors';
import { adapterVariables, injectAdapter } from '../../../main/engine/lora/inject';
import { loadModel } from '../../../main/engine/models/registry';
import type { CausalLM, NamedWeight } from '../../../main/engine/models/types';
import { addonLoad, nativeSkipReason } from '../backend/native-support';
import { buildLlama, type LlamaShape } from '../models/random-models';

const skip = nativeSkipReason('merged export from the frozen-weight store', addonLoad.ok && hasWeightKernels(addonLoad.addon));
const dir = mkdtempSync(join(tmpdir(), 'store-export-'));
afterAll(() => {
  unregisterNativeKernels('wasm');
  unregisterNativeKernels('cpu');
  rmSync(dir, { recursive: true, force: true });
});

const shape: LlamaShape = { modelType: 'qwen2', hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, vocab: 40, tied: true, dtype: 'BF16' };
const built = buildLlama(join(dir, 'qwen2-bf16'), shape, 17);
/** Deeper, so the whole base is many times its largest weight: holding it all would show in the peak. */
const deepShape: LlamaShape = { modelType: 'qwen2', hidden: 32, layers: 12, heads: 4, kvHeads: 2, intermediate: 128, vocab: 64, tied: true, dtype: 'BF16' };
const deep = buildLlama(join(dir, 'qwen2-deep-bf16'), deepShape, 23);

/** ΔW [out, in] = s·(At·Bt)ᵀ in float64, from the adapter's own factors (At [in, r], Bt [r, out]). */
function deltaOf(model: CausalLM, path: string, name: string): Float64Array {
  const layer = model.linears.get(path);
  const adapter = layer?.adapters.get(name);
  if (!layer || !adapter) throw new Error(`no adapter ${name} on ${path}`);
  const { inFeatures: n, outFeatures: m } = layer.spec;
  const At = adapter.At.dataSync();
  const Bt = adapter.Bt.dataSync();
  const r = adapter.At.shape[1] as number;
  const out = new Float64Array(m * n);
  for (let o = 0; o < m; o++) {
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let k = 0; k < r; k++) sum += (At[i * r + k] as number) * (Bt[k * m + o] as number);
      out[o * n + i] = adapter.scaling * sum;
    }
  }
  return out;
}

/** A trained-looking adapter (B ≠ 0) on `targets`, merged: apart from the stored weights, added in when read. */
async function mergeAdapter(model: CausalLM, targets: string[], seed: number): Promise<void> {
  const resident = new ResidentAdapters(model);
  const injected = injectAdapter(model, 'tuned', { targetModules: targets, rank: 2, alpha: 4, dropout: 0 });
  for (const [name, v] of adapterVariables(injected)) if (name.endsWith('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', seed++));
  resident.adopt(injected, { baseModelNameOrPath: 'test', fanInFanOut: false });
  await resident.merge('tuned');
}

/**
 * The most tensor bytes alive at any moment while `run` runs, beyond those alive when it starts: every tensor any
 * backend makes goes through the engine's byte count, watched here at each change.
 */
async function peakTensorBytes(run: () => Promise<unknown>): Promise<number> {
  const state = tf.engine().state as unknown as { numBytes: number };
  let value = state.numBytes;
  const start = value;
  let peak = value;
  Object.defineProperty(state, 'numBytes', {
    configurable: true, enumerable: true,
    get: () => value,
    set: (next: number) => {
      value = next;
      peak = Math.max(peak, next);
    },
  });
  try {
    await run();
  } finally {
    delete (state as { numBytes?: number }).numBytes;
    state.numBytes = value;
  }
  return peak - start;
}

const float32Bytes = (weights: typeof built.weights) => [...weights.values()].map((w) => w.data.length * 4);

describe.each(['wasm', 'cpu'] as const)('merged export from the frozen-weight store (%s)', (backendName) => {
  it.skipIf(skip)('writes W0 + s·B·A for every weight, reading one weight at a time', async () => {
    await initBackend(backendName, { native: { threads: 1 } });
    const model = await loadModel(built.dir);
    try {
      expect(activeFrozenStore()).not.toBeNull();
      await mergeAdapter(model, ['q_proj', 'v_proj', 'down_proj'], 3);

      // Watch what the export reads: the bytes of tensors alive beyond the model's own, at each read.
      const before = { tensors: tf.memory().numTensors, bytes: tf.memory().numBytes, store: activeFrozenStore()?.liveBytes() };
      let reads = 0;
      let peakExtra = 0;
      const own = model.weights.bind(model);
      model.weights = () => new Map([...own()].map(([name, w]): [string, NamedWeight] => [name, {
        shape: w.shape,
        read: () => {
          const t = w.read();
          reads++;
          peakExtra = Math.max(peakExtra, tf.memory().numBytes - before.bytes);
          return t;
        },
      }]));
      const out = join(dir, `merged-${backendName}`);
      await exportMergedModel(model, built.dir, out, { dtype: 'F32' });
      expect(tf.memory().numTensors).toBe(before.tensors);
      expect(activeFrozenStore()?.liveBytes()).toBe(before.store);
      expect(reads).toBe(built.weights.size); // each weight read once, when written

      const largest = Math.max(...float32Bytes(built.weights));
      const whole = float32Bytes(built.weights).reduce((s, b) => s + b, 0);
      expect(whole).toBeGreaterThan(4 * largest); // so the bound below tells one-at-a-time from all-at-once
      expect(peakExtra).toBeLessThanOrEqual(2 * largest);

      const written = readSafetensors(join(out, 'model.safetensors')).tensors;
      expect([...written.keys()].sort()).toEqual([...built.weights.keys()].sort());
      let adapted = 0;
      for (const [name, base] of built.weights) {
        const path = name.replace(/\.weight$/, '');
        const delta = model.linears.get(path)?.adapters.has('tuned') ? deltaOf(model, path, 'tuned') : null;
        if (delta) adapted++;
        const got = written.get(name)?.data as Float32Array;
        expect(got.length, name).toBe(base.data.length);
        let worst = 0;
        for (let i = 0; i < got.length; i++) {
          const want = (base.data[i] as number) + (delta?.[i] ?? 0);
          worst = Math.max(worst, Math.abs((got[i] as number) - want) / Math.max(1, Math.abs(want)));
        }
        expect(worst, name).toBeLessThan(1e-6); // float32 rounding of one sum
      }
      expect(adapted).toBe(3 * (shape.layers));
    } finally {
      model.dispose();
    }
  });

  it.skipIf(skip)('holds about one weight in float32 at any moment, never the base: every tensor counted, the store unchanged', async () => {
    await initBackend(backendName, { native: { threads: 1 } });
    const model = await loadModel(deep.dir);
    try {
      const store = activeFrozenStore();
      expect(store).not.toBeNull();
      // every linear kind adapted: each matrix written is read from the store with a ΔW added
      await mergeAdapter(model, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], 7);
      const storeBytes = store?.liveBytes();
      const tensors = tf.memory().numTensors;
      let progress = 0;
      const peak = await peakTensorBytes(() => exportMergedModel(model, deep.dir, join(dir, `deep-${backendName}`), {
        onProgress: (p) => {
          expect(p.total).toBe(deep.weights.size);
          progress = p.current;
        },
      }));
      expect(progress).toBe(deep.weights.size);
      const largest = Math.max(...float32Bytes(deep.weights));
      const whole = float32Bytes(deep.weights).reduce((s, b) => s + b, 0);
      // W, ΔW and W + ΔW of the largest weight at most, with the rank-2 factors' small tensors; the whole base in
      // float32 would be more than ten times that.
      const bound = 3 * largest + largest / 4;
      expect(peak).toBeLessThanOrEqual(bound);
      expect(peak).toBeGreaterThanOrEqual(largest); // it did read them as float32, one at a time
      expect(whole).toBeGreaterThan(10 * bound);
      expect(tf.memory().numTensors).toBe(tensors);
      expect(store?.liveBytes()).toBe(storeBytes); // read from the store, never copied into it
      // written at the base's dtype (BF16) from W0 + ΔW
      const written = readSafetensors(join(dir, `deep-${backendName}`, 'model.safetensors'));
      expect(written.tensors.get('model.layers.11.mlp.down_proj.weight')?.dtype).toBe('BF16');
    } finally {
      model.dispose();
    }
  });

  it.skipIf(skip)('a read that fails midway leaves no folder and no temp, and frees what it made', async () => {
    await initBackend(backendName, { native: { threads: 1 } });
    const model = await loadModel(built.dir);
    try {
      await mergeAdapter(model, ['q_proj'], 11);
      const before = { tensors: tf.memory().numTensors, store: activeFrozenStore()?.liveBytes() };
      const own = model.weights.bind(model);
      let reads = 0;
      model.weights = () => new Map([...own()].map(([name, w]): [string, NamedWeight] => [name, {
        shape: w.shape,
        read: () => {
          if (++reads === 5) throw new Error('the disk went away');
          return w.read();
        },
      }]));
      const parent = mkdtempSync(join(dir, 'failing-'));
      const out = join(parent, 'merged');
      await expect(exportMergedModel(model, built.dir, out)).rejects.toThrow(/the disk went away/);
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(parent)).toEqual([]);
      expect(tf.memory().numTensors).toBe(before.tensors);
      expect(activeFrozenStore()?.liveBytes()).toBe(before.store);
    } finally {
      model.dispose();
    }
  });
});
