/** How `lorasmith train` and `eval` load a model folder: a seam, so tests can hand them a small model instead. */
import type { BasePrecision } from '../engine/backend/frozen';
import { nativeOptionsFromEnv } from '../engine/backend/native/index';
import type { TextTokenizer } from '../engine/io/prompt';
import type { CausalLM } from '../engine/models/types';
import { loadForTraining } from '../engine/train/load';
import type { RunSettings } from '../engine/train/memory';

export type ModelFolderLoader = (
  modelDir: string,
  /** With `run`, a run that cannot fit in memory is refused before a weight is read. */
  options: {
    trainable: boolean; backend?: string; run?: RunSettings;
    /** How the frozen-weight store keeps the base (LORASMITH_BASE_PRECISION otherwise). */
    basePrecision?: BasePrecision;
  },
) => Promise<{
  model: CausalLM; tokenizer: TextTokenizer; backend: string;
  /** Why the backend is not the one asked for (a candidate failed to start or its self-test), or null. */
  backendFallback?: string | null;
}>;

/** The engine's loader on the chosen backend, with native kernels as LORASMITH_NATIVE says (on by default). */
export const loadModelFolder: ModelFolderLoader = (dir, { basePrecision, ...options }) =>
  loadForTraining(dir, { ...options, native: { ...nativeOptionsFromEnv(process.env), ...(basePrecision ? { basePrecision } : {}) } });
