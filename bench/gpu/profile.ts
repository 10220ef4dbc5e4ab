/**
 * Where a webgpu step's time goes, for the GPU check's `profile` command: the LoRA step and the KV-cache decode token
 * at a shape, each timed as wall time and as GPU kernel time (tf.time, where the adapter has timestamp queries), and
 * the decode token with and without its read-back. Kernel time far below wall time means the step waits on dispatch
 * and submission overhead, not on the GPU; a step time that grows less than its token count says the same.
 *
 *   gpu-check profile --backend webgpu --shape qwen2.5-0.5b [--batch B] [--seq T] [--flags NAME=VALUE,...]
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs-core';
import { tokenIds } from '../../main/engine/models/weights';
import { decodePrompt, prepareStep } from './step';

export interface ProfileReport {
  readonly shape: string;
  readonly batch: number;
  readonly seq: number;
  readonly flags: Readonly<Record<string, number | boolean>>;
  readonly stepWallMs: readonly number[];
  /** GPU time of one step's kernels; a string where the adapter cannot time them. */
  readonly stepKernelMs: number | string;
  /** One decode token: forward of one id with the cache, its logits read back each time. */
  readonly tokenWithReadMs: number;
  /** The same forwards, read back once at the end. */
  readonly tokenWithoutReadMs: number;
  readonly tokenKernelMs: number | string;
}

const kernelMs = (info: tf.TimingInfo): number | string => (typeof info.kernelMs === 'number' ? info.kernelMs : String(info.kernelMs.error));

/** NAME=VALUE pairs for tf.env(): numbers, true and false. */
export function parseFlags(text: string): Record<string, number | boolean> {
  const flags: Record<string, number | boolean> = {};
  for (const pair of text.split(',').filter((p) => p !== '')) {
    const [name, value] = pair.split('=');
    if (!name || value === undefined) throw new Error(`--flags takes NAME=VALUE pairs, got '${pair}'`);
    flags[name] = value === 'true' ? true : value === 'false' ? false : Number(value);
  }
  return flags;
}

export async function profileStep(shapeName: string, batchShape: { batch?: number; seq?: number }, flags: Record<string, number | boolean>): Promise<ProfileReport> {
  for (const [name, value] of Object.entries(flags)) tf.env().set(name, value);
  const prepared = prepareStep(shapeName, batchShape);
  try {
    await prepared.step(); // shaders compile
    const stepWallMs = [await prepared.step(), await prepared.step(), await prepared.step()];
    // tf.time runs the step's ops synchronously; its loss is read after, outside the timing.
    let read: Promise<unknown> = Promise.resolve();
    const stepTime = await tf.time(() => { read = prepared.step(); });
    await read;

    const model = prepared.model;
    const cache = model.createCache();
    try {
      tf.dispose(model.forward(tokenIds(decodePrompt(prepared.shape), [1, 16]), { cache }));
      const one = (): tf.Tensor => tf.tidy(() => model.forward(tokenIds([7], [1, 1]), { cache }));
      for (let i = 0; i < 4; i++) {
        const warm = one();
        await warm.data();
        warm.dispose();
      }
      const n = 16;
      let start = performance.now();
      for (let i = 0; i < n; i++) {
        const logits = one();
        await logits.data();
        logits.dispose();
      }
      const tokenWithReadMs = (performance.now() - start) / n;
      start = performance.now();
      let last: tf.Tensor | null = null;
      for (let i = 0; i < n; i++) {
        last?.dispose();
        last = one();
      }
      await last?.data();
      last?.dispose();
      const tokenWithoutReadMs = (performance.now() - start) / n;
      let token: tf.Tensor | null = null;
      const tokenTime = await tf.time(() => { token = one(); });
      await (token as tf.Tensor | null)?.data();
      (token as tf.Tensor | null)?.dispose();
      return {
        shape: shapeName, batch: prepared.shape.batch, seq: prepared.shape.seq, flags,
        stepWallMs, stepKernelMs: kernelMs(stepTime),
        tokenWithReadMs, tokenWithoutReadMs, tokenKernelMs: kernelMs(tokenTime),
      };
    } finally {
      cache.dispose();
    }
  } finally {
    prepared.dispose();
  }
}
