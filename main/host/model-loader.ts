/**
 * How the host turns a model folder into a resident CausalLM and its tokenizer. The host is written against
 * this seam so the same serve() runs the real architectures in the app and a tiny model in tests.
 */
import type { BasePrecision } from '../engine/backend/frozen';
import type { CausalLM } from '../engine/models/types';
import type { TextTokenizer } from '../engine/io/prompt';
import type { HostBackendInfo } from './protocol';

export interface LoadedBase {
  readonly model: CausalLM;
  readonly tokenizer: TextTokenizer;
}

export interface HostModelLoader {
  /** `precision`: how the frozen-weight store keeps the base (the store's own default where absent). */
  load(modelDir: string, options?: { readonly precision?: BasePrecision }): Promise<LoadedBase>;
  /** The tfjs backend in use, for status reports. */
  backendName(): string;
  /** Initialises the backend if no load has yet, and reports it (the engine's initBackend result). */
  backend(): Promise<HostBackendInfo>;
}

/** A module the worker can import by URL: `export const loader: HostModelLoader`. */
export interface HostModelLoaderModule {
  readonly loader: HostModelLoader;
}
