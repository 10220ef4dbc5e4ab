/**
 * Compute dispatches per LoRA step and per decoded token on webgpu, with the fused WGSL kernels and the GPU-held
 * frozen weights, and without them (tfjs's composed ops on float32 tensors). Each dispatch is a kernel launch and
 * a trip of its operands through GPU memory; the count does not depend on the GPU's speed, so it is measured on
 * any adapter, lavapipe included. Small ops stay on the GPU while counting (tfjs would otherwise run some on the CPU).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { registerWebgpuKernels, unregisterWebgpuKernels } from '../../main/engine/backend/webgpu/index';
import { decodePrompt, prepareStep } from './step';

export interface DispatchCounts {
  /** Dispatches of one LoRA step (forward, backward, AdamW, the loss read), after a first one. */
  readonly step: number;
  /** Dispatches of one decoded token's forward pass (KV cache, batch 1). */
  readonly token: number;
}

/** Dispatches `run` records on the active webgpu backend. */
async function counted(run: () => Promise<void>): Promise<number> {
  const backend = tf.backend() as unknown as WebGPUBackend;
  const original = backend.runWebGPUProgram;
  let count = 0;
  backend.runWebGPUProgram = function (...args: Parameters<WebGPUBackend['runWebGPUProgram']>) {
    count++;
    return original.apply(this, args);
  };
  try {
    await run();
  } finally {
    backend.runWebGPUProgram = original;
  }
  return count;
}

async function countsFor(shapeName: string): Promise<DispatchCounts> {
  const prepared = prepareStep(shapeName);
  try {
    await prepared.step();
    const step = await counted(async () => void (await prepared.step()));
    const cache = prepared.model.createCache();
    const prompt = decodePrompt(prepared.shape);
    tf.tidy(() => void prepared.model.forward(tf.tensor2d([prompt], [1, prompt.length], 'int32'), { cache }));
    const token = await counted(async () => {
      const logits = tf.tidy(() => prepared.model.forward(tf.tensor2d([[prompt[0] ?? 0]], [1, 1], 'int32'), { cache }));
      await logits.data();
      logits.dispose();
    });
    cache.dispose();
    return { step, token };
  } finally {
    prepared.dispose();
  }
}

/** Counts on `shapeName` with and without the fused kernels; leaves them registered. Needs the webgpu backend active. */
export async function dispatchCounts(shapeName: string): Promise<{ composed: DispatchCounts; fused: DispatchCounts }> {
  if (tf.getBackend() !== 'webgpu') throw new Error(`dispatch counts need the webgpu backend, not ${tf.getBackend()}`);
  const forward = tf.env().getBool('WEBGPU_CPU_FORWARD');
  tf.env().set('WEBGPU_CPU_FORWARD', false);
  try {
    unregisterWebgpuKernels();
    const composed = await countsFor(shapeName);
    registerWebgpuKernels();
    const fused = await countsFor(shapeName);
    return { composed, fused };
  } finally {
    registerWebgpuKernels();
    tf.env().set('WEBGPU_CPU_FORWARD', forward);
  }
}
