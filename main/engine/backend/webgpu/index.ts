/**
 * Fused WGSL kernels on the webgpu backend, behind the same kernel names as the native ones (../fused-ops.ts):
 * attention (grouped-query heads, KV cache offset), rotary, SwiGLU, RMSNorm and cross-entropy, each with its
 * gradient; and the frozen-weight store that keeps base weights on the GPU at their stored precision
 * (frozen-store.ts). Registering them makes `hasFusedKernel` true on webgpu and gives the loader a store, so model
 * code takes the fused path with no change; unregistering puts the composed tfjs path and float32 tensors back
 * (tests compare the two).
 *
 *   registerWebgpuKernels();   // after tfjs-backend-webgpu is imported; safe before or after setBackend('webgpu')
 */
import * as tf from '@tensorflow/tfjs-core';
import { ADAMW_KERNELS } from './adamw';
import { ATTENTION_KERNELS } from './attention';
import { CROSS_ENTROPY_KERNELS } from './cross-entropy';
import { registerFrozenStore, unregisterFrozenStore } from '../frozen';
import { ELEMENTWISE_KERNELS } from './elementwise';
import { GPU_WEIGHT_KERNEL_FUNCS, makeGpuFrozenStore } from './frozen-store';
import { LINEAR_KERNELS } from './linear';
import { RMS_NORM_KERNELS } from './rms-norm';

const BACKEND = 'webgpu';

const KERNELS: readonly ReadonlyMap<string, tf.KernelFunc>[] = [
  ATTENTION_KERNELS, CROSS_ENTROPY_KERNELS, ELEMENTWISE_KERNELS, RMS_NORM_KERNELS, LINEAR_KERNELS, GPU_WEIGHT_KERNEL_FUNCS, ADAMW_KERNELS,
];

/** One store for the process: weights made before a re-registration stay counted in its liveBytes. */
const store = makeGpuFrozenStore();

/** Kernel names this module registered on webgpu. */
const registered: string[] = [];

export interface WebgpuKernelStatus {
  readonly active: boolean;
  /** One line for logs and the UI. */
  readonly detail: string;
  readonly kernels: readonly string[];
}

/** Registers every fused kernel on webgpu (idempotent). */
export function registerWebgpuKernels(): WebgpuKernelStatus {
  unregisterWebgpuKernels();
  for (const kernels of KERNELS) {
    for (const [kernelName, kernelFunc] of kernels) {
      tf.registerKernel({ kernelName, backendName: BACKEND, kernelFunc });
      registered.push(kernelName);
    }
  }
  registerFrozenStore(BACKEND, store);
  return webgpuKernelStatus();
}

export function unregisterWebgpuKernels(): void {
  for (const kernelName of registered.splice(0)) tf.unregisterKernel(kernelName, BACKEND);
  unregisterFrozenStore(BACKEND);
}

export function webgpuKernelStatus(): WebgpuKernelStatus {
  return registered.length > 0
    ? {
      active: true,
      detail: 'fused WGSL kernels for attention, rotary, SwiGLU, RMSNorm, cross-entropy, the frozen linear with its LoRA pair and AdamW ' +
        'on webgpu; frozen weights in GPU buffers at their stored precision (F16/BF16 converted in the kernels)',
      kernels: [...registered],
    }
    : { active: false, detail: 'fused WGSL kernels not registered: webgpu composes these ops from tfjs kernels', kernels: [] };
}
