/** Starts the backend and loads a model folder with its tokenizer, in the shape training and evaluation use. */
import { initBackend, parseBackendPreference } from '../backend/index';
import type { NativeKernelOptions } from '../backend/native/index';
import { loadTokenizer, type ModelTokenizer } from '../io/tokenizer';
import { loadModel } from '../models/registry';
import type { CausalLM } from '../models/types';
import type { TrainingTokenizer } from './tokenize';

export function trainingTokenizerOf(tokenizer: ModelTokenizer): TrainingTokenizer {
  return {
    encode: (text, options) => tokenizer.encode(text, options),
    // Without a template, tokenize.ts falls back to a plain role-tagged layout.
    applyChatTemplate: tokenizer.chatTemplate === null ? undefined : (messages, options) => tokenizer.applyChatTemplate(messages, options),
    bosTokenId: tokenizer.bosTokenId,
    eosTokenId: tokenizer.eosTokenIds[0] ?? null,
  };
}

export async function loadForTraining(
  dir: string,
  options: { trainable: boolean; backend?: string; native?: NativeKernelOptions | false },
): Promise<{ model: CausalLM; tokenizer: TrainingTokenizer; backend: string }> {
  // native sgemm kernels where the addon loads (the backend's own kernels otherwise)
  const backend = await initBackend(parseBackendPreference(options.backend ?? 'auto'), { native: options.native ?? {} });
  const model = await loadModel(dir, { trainable: options.trainable });
  try {
    const tokenizer = trainingTokenizerOf(await loadTokenizer(dir));
    return { model, tokenizer, backend: backend.name };
  } catch (error) {
    model.dispose();
    throw error;
  }
}
