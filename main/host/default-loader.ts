/** The model loader of the app's host: Hugging Face folders through the engine's architecture registry. */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, parseBackendPreference } from '../engine/backend/index';
import { loadTokenizer } from '../engine/io/tokenizer';
import { loadModel } from '../engine/models/registry';
import type { ModelLoader } from './model-loader';

let backendReady: Promise<unknown> | null = null;

export const loader: ModelLoader = {
  async load(modelDir: string) {
    // The host's own environment (set by whoever spawned it) may pin a backend; the engine never reads env.
    backendReady ??= initBackend(parseBackendPreference(process.env.LORASMITH_BACKEND ?? 'auto'));
    await backendReady;
    const tokenizer = await loadTokenizer(modelDir);
    const model = await loadModel(modelDir);
    return { model, tokenizer, chatTemplate: tokenizer.chatTemplate };
  },
  backendName: () => tf.getBackend() ?? 'none',
};
