/**
 * Loads a Hugging Face model folder, or a GGUF model file, as a CausalLM, choosing the architecture by config.json's
 * model_type (for GGUF: the config its metadata stands for, io/gguf-arch).
 */
import { join } from 'node:path';
import { openCheckpoint, type TensorSource } from '../io/model-checkpoint';
import { ModelIoError } from '../io/errors';
import { isGgufFile } from '../io/gguf';
import { openGgufModel, withRopeFactors } from '../io/gguf-model';
import { readConfigJson, type RawConfig } from '../io/hf-config';
import { Gpt2Model, parseGpt2Config } from './gpt2';
import { LLAMA_FAMILY, LlamaModel, parseLlamaConfig } from './llama';
import type { CausalLM, ModelConfig } from './types';
import type { WeightLoadOptions } from './weights';

/**
 * trainable: every weight a tf.Variable (full fine-tuning); otherwise frozen. precision: how frozen weights are
 * kept where the backend has a frozen store ('stored', 'bf16', 'q8_0').
 */
export type LoadModelOptions = WeightLoadOptions;

interface Architecture {
  parse(raw: RawConfig, dir: string, source: string): ModelConfig;
  build(config: ModelConfig, checkpoint: TensorSource, load: WeightLoadOptions): CausalLM;
}

const gpt2: Architecture = {
  parse: parseGpt2Config,
  build: (config, checkpoint, load) => new Gpt2Model(config as ReturnType<typeof parseGpt2Config>, checkpoint, load),
};
const llama: Architecture = {
  parse: parseLlamaConfig,
  build: (config, checkpoint, load) => new LlamaModel(config as ReturnType<typeof parseLlamaConfig>, checkpoint, load),
};

const ARCHITECTURES: Readonly<Record<string, Architecture>> = {
  gpt2,
  ...Object.fromEntries(LLAMA_FAMILY.map((type) => [type, llama])),
};

export const SUPPORTED_MODEL_TYPES: readonly string[] = Object.keys(ARCHITECTURES);

function architectureOf(raw: RawConfig, source: string): Architecture {
  const type = raw.model_type;
  if (typeof type !== 'string') throw new ModelIoError('INVALID_CONFIG', `${source}: no "model_type"`);
  const arch = ARCHITECTURES[type];
  if (!arch) {
    throw new ModelIoError('UNSUPPORTED_MODEL', `${source}: model_type '${type}' is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  }
  return arch;
}

/** config.json alone, normalized: for inspecting a folder (or a GGUF file) without loading its weights. */
export function readModelConfig(dir: string): ModelConfig {
  if (isGgufFile(dir)) {
    const gguf = openGgufModel(dir);
    try {
      return parseGguf(dir, gguf.imported.raw, gguf.imported.ropeFactors);
    } finally {
      gguf.close();
    }
  }
  const raw = readConfigJson(dir);
  const source = join(dir, 'config.json');
  return architectureOf(raw, source).parse(raw, dir, source);
}

function parseGguf(path: string, raw: RawConfig, ropeFactors: Float32Array | null): ModelConfig {
  const label = `${path} (GGUF metadata)`;
  return withRopeFactors(architectureOf(raw, label).parse(raw, path, label), ropeFactors, path);
}

export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<CausalLM> {
  if (isGgufFile(dir)) {
    const gguf = openGgufModel(dir);
    try {
      const config = parseGguf(dir, gguf.imported.raw, gguf.imported.ropeFactors);
      const precision = options.precision ?? gguf.source.defaultPrecision();
      return architectureOf(gguf.imported.raw, dir).build(config, gguf.source, { ...options, precision });
    } finally {
      gguf.close();
    }
  }
  const raw = readConfigJson(dir);
  const source = join(dir, 'config.json');
  const arch = architectureOf(raw, source);
  const config = arch.parse(raw, dir, source);
  const checkpoint = openCheckpoint(dir);
  try {
    return arch.build(config, checkpoint, options);
  } finally {
    checkpoint.close();
  }
}

/**
 * A model from a config.json object and any tensor source (benchmarks and tests build random weights in memory;
 * `source.dir` is where generation_config.json would be).
 */
export function buildModel(raw: RawConfig, source: TensorSource, options: LoadModelOptions = {}): CausalLM {
  const label = `${source.dir} (config)`;
  const arch = architectureOf(raw, label);
  return arch.build(arch.parse(raw, source.dir, label), source, options);
}
