/**
 * Fused WGSL kernels on the webgpu backend, behind the same kernel names as the native ones (../fused-ops.ts):
 * attention (grouped-query heads, KV cache offset), rotary, SwiGLU, RMSNorm and cross-entropy, each with its
 * gradient. Registering them makes `hasFusedKernel` true on webgpu, so model code takes the fused path with no
 * change; unregistering puts the composed tfjs path back (tests compare the two).
 *
 *   registerWebgpuKernels();   // after tfjs-backend-webgpu is imported; safe before or after setBackend('webgpu')
 */
import * as tf from '@tensorflow/tfjs-core';
import { ATTENTION_KERNELS } from './attention';
import { CROSS_ENTROPY_KERNELS } from './cross-entropy';
import { ELEMENTWISE_KERNELS } from './elementwise';
import { LINEAR_KERNELS } from './linear';
import { RMS_NORM_KERNELS } from './rms-norm';

const BACKEND = 'webgpu';

const KERNELS: readonly ReadonlyMap<string, tf.KernelFunc>[] = [
  ATTENTION_KERNELS, CROSS_ENTROPY_KERNELS, ELEMENTWISE_KERNELS, RMS_NORM_KERNELS, LINEAR_KERNELS,
];

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
  return webgpuKernelStatus();
}

export function unregisterWebgpuKernels(): void {
  for (const kernelName of registered.splice(0)) tf.unregisterKernel(kernelName, BACKEND);
}

export function webgpuKernelStatus(): WebgpuKernelStatus {
  return registered.length > 0
    ? { active: true, detail: 'fused WGSL kernels for attention, rotary, SwiGLU, RMSNorm, cross-entropy and the frozen linear with its LoRA pair on webgpu', kernels: [...registered] }
    : { active: false, detail: 'fused WGSL kernels not registered: webgpu composes these ops from tfjs kernels', kernels: [] };
}
