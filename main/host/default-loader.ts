/** The model loader of the app's host: Hugging Face folders through the engine's architecture registry. */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, parseBackendPreference, type BackendInfo } from '../engine/backend/index';
import { nativeOptionsFromEnv } from '../engine/backend/native/index';
import { loadTokenizer } from '../engine/io/tokenizer';
import { loadModel } from '../engine/models/registry';
import type { HostModelLoader } from './model-loader';

let backendReady: Promise<BackendInfo> | null = null;

function ensureBackend(): Promise<BackendInfo> {
  // The host's own environment (set by whoever spawned it) may pin a backend; the engine never reads env.
  // Native sgemm kernels by default where the addon loads; LORASMITH_NATIVE=0 turns them off.
  // A backend that cannot start or fails its self-test falls back to what 'auto' chooses: the report says why.
  backendReady ??= initBackend(parseBackendPreference(process.env.LORASMITH_BACKEND ?? 'auto'), {
    native: nativeOptionsFromEnv(process.env),
    fallback: true,
  });
  return backendReady;
}

export const loader: HostModelLoader = {
  async load(modelDir, options = {}) {
    await ensureBackend();
    const tokenizer = await loadTokenizer(modelDir);
    const model = await loadModel(modelDir, options.precision ? { precision: options.precision } : {});
    return { model, tokenizer };
  },
  backendName: () => tf.getBackend() ?? 'none',
  backend: ensureBackend,
};
