/** Starts the backend and loads a model folder with its tokenizer, in the shape training and evaluation use. */
import { initBackend, parseBackendPreference } from '../backend/index';
import type { NativeKernelOptions } from '../backend/native/index';
import type { TextTokenizer } from '../io/prompt';
import { loadTokenizer } from '../io/tokenizer';
import { loadModel } from '../models/registry';
import type { CausalLM } from '../models/types';
import { assertRunFitsBeforeLoading, type RunSettings } from './memory';

export async function loadForTraining(
  dir: string,
  options: { trainable: boolean; backend?: string; native?: NativeKernelOptions | false; run?: RunSettings },
): Promise<{ model: CausalLM; tokenizer: TextTokenizer; backend: string; backendFallback: string | null }> {
  // native sgemm kernels where the addon loads (the backend's own kernels otherwise)
  const backend = await initBackend(parseBackendPreference(options.backend ?? 'auto'), { native: options.native ?? {} });
  // a run that cannot fit in memory is refused before a weight is read (the estimate knows the backend's kernels now)
  if (options.run) assertRunFitsBeforeLoading(dir, options.run);
  const model = await loadModel(dir, { trainable: options.trainable });
  try {
    return { model, tokenizer: await loadTokenizer(dir), backend: backend.name, backendFallback: backend.fallback };
  } catch (error) {
    model.dispose();
    throw error;
  }
}
