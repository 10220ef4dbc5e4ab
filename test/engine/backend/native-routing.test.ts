/**
 * Which products the native kernel takes on wasm: decode-shaped ones (a few rows) stay with XNNPACK, the rest go to
 * sgemm. Counted through the kernel function with the real addon, its sgemm wrapped to count calls.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { makeBatchMatMul, WASM_DECODE_ROWS } from '../../../main/engine/backend/native/kernels';
import { wasmMemory } from '../../../main/engine/backend/native/memory';
import type { NativeAddon } from '../../../main/engine/backend/native/addon';
import { addonAvailable, addonLoad, addonRequired, useBackend } from './native-support';

describe.runIf(addonAvailable || addonRequired)('native kernel routing on wasm', () => {
  it('leaves products of at most WASM_DECODE_ROWS rows to XNNPACK and sends larger ones to sgemm', async () => {
    if (!addonLoad.ok) throw new Error(`the native addon should have been built here: ${addonLoad.reason}`);
    await useBackend('wasm');
    const real = addonLoad.addon;
    let sgemmCalls = 0;
    const counting: NativeAddon = {
      ...real,
      sgemm: (...args: Parameters<NativeAddon['sgemm']>) => {
        sgemmCalls++;
        return real.sgemm(...args);
      },
    };
    const original = tf.getKernel(tf.BatchMatMul, 'wasm');
    if (!original) throw new Error('wasm has no BatchMatMul kernel');
    const kernel = makeBatchMatMul(counting, wasmMemory, 'wasm', original.kernelFunc);
    const backend = tf.backend();
    const run = (rows: number, transposeB: boolean): void => {
      const a = tf.randomNormal([2, rows, 8], 0, 1, 'float32', 1);
      const b = tf.randomNormal([2, transposeB ? 5 : 8, transposeB ? 8 : 5], 0, 1, 'float32', 2);
      const out = kernel({ inputs: { a, b }, backend, attrs: { transposeA: false, transposeB } }) as tf.TensorInfo;
      const values = Array.from(backend.readSync(out.dataId) as Float32Array);
      const expected = Array.from(tf.matMul(a, b, false, transposeB).dataSync());
      backend.disposeData(out.dataId);
      tf.dispose([a, b]);
      expect(Math.max(...values.map((v, i) => Math.abs(v - (expected[i] ?? NaN))))).toBeLessThan(1e-4);
    };
    run(1, true);
    run(WASM_DECODE_ROWS, false);
    expect(sgemmCalls).toBe(0);
    run(WASM_DECODE_ROWS + 1, true);
    expect(sgemmCalls).toBeGreaterThan(0);
  });
});
