/**
 * The webgpu backend for kernel tests: Dawn on whatever adapter it finds (Mesa's lavapipe here and in CI).
 * Where lavapipe is installed (CI's .ci/run installs it) webgpu must come up: a missing adapter there is a
 * failure, not a skip. Elsewhere the webgpu comparisons skip and say why.
 */
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../main/engine/backend/index';

export const webgpuRequired = process.platform === 'linux' &&
  (Boolean(process.env.CI) || ['/usr/share/vulkan/icd.d/lvp_icd.json', '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json'].some(existsSync));

/** Activates webgpu; null when it is active, else why it is not. */
export async function startWebgpu(): Promise<string | null> {
  try {
    await initBackend('webgpu');
    await tf.ready();
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
