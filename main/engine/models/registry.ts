/**
 * Loads a Hugging Face model folder, or a GGUF model file, as a CausalLM, choosing the architecture by config.json's
 * model_type (for GGUF: the config its metadata stands for, io/gguf-arch).
 */
import { join } from 'node:path';
import { openCheckpoint, type TensorSource } from '../io/model-checkpoint';
import { ModelIoError } from '../io/errors';
import { isGgufFile } from '../io/gguf';
import { openGgufModel } from '../io/gguf-model';
import { readConfigJson, type RawConfig } from '../io/hf-config';
import { DecoderModel } from './decoder';
import { decoderLinearSpecs, decoderTensorShapes, withRopeFactors, type DecoderConfig } from './decoder-config';
import { GEMMA_FAMILY, parseGemmaConfig } from './gemma';
import { Gpt2Model, gpt2LinearSpecs, gpt2TensorShapes, parseGpt2Config, type Gpt2Config } from './gpt2';
import { LLAMA_FAMILY, parseLlamaConfig } from './llama';
import type { CausalLM, LinearSpec, ModelConfig } from './types';
import type { WeightLoadOptions } from './weights';

/**
 * trainable: every weight a tf.Variable (full fine-tuning); otherwise frozen. precision: how frozen weights are
 * kept where the backend has a frozen store ('stored', 'bf16', 'q8_0', 'q4_0'; a GGUF file's Q4_0 blocks are kept as
 * they are at 'q4_0', the default for a file of Q4_0 matrices only).
 */
export type LoadModelOptions = WeightLoadOptions;

interface Architecture {
  parse(raw: RawConfig, dir: string, source: string): ModelConfig;
  build(config: ModelConfig, checkpoint: TensorSource, load: WeightLoadOptions): CausalLM;
  /** The linears the built model lists, in its order. */
  linearSpecs(config: ModelConfig): LinearSpec[];
  /** The tensors its checkpoint holds, name -> shape. */
  tensorShapes(config: ModelConfig): Map<string, number[]>;
}

const gpt2: Architecture = {
  parse: parseGpt2Config,
  build: (config, checkpoint, load) => new Gpt2Model(config as Gpt2Config, checkpoint, load),
  linearSpecs: (config) => gpt2LinearSpecs(config),
  tensorShapes: (config) => gpt2TensorShapes(config),
};

/** The families the decoder runs, each with its own config parser. */
function decoder(parse: (raw: RawConfig, dir: string, source: string) => DecoderConfig): Architecture {
  return {
    parse,
    build: (config, checkpoint, load) => new DecoderModel(config as DecoderConfig, checkpoint, load),
    linearSpecs: (config) => decoderLinearSpecs(config as DecoderConfig),
    tensorShapes: (config) => decoderTensorShapes(config as DecoderConfig),
  };
}

const ARCHITECTURES: Readonly<Record<string, Architecture>> = {
  gpt2,
  ...Object.fromEntries(LLAMA_FAMILY.map((type) => [type, decoder(parseLlamaConfig)])),
  ...Object.fromEntries(GEMMA_FAMILY.map((type) => [type, decoder(parseGemmaConfig)])),
};

export const SUPPORTED_MODEL_TYPES: readonly string[] = Object.keys(ARCHITECTURES);

/** Relatives of supported families that are refused with a reason more useful than "not supported". */
const NOT_SUPPORTED: Readonly<Record<string, string>> = {
  gemma3:
    "is the vision-language Gemma 3 (Gemma3ForConditionalGeneration), which is not supported; its text-only checkpoints (model_type 'gemma3_text': Gemma-3-270M, Gemma-3-1B) are",
};

function architectureOf(raw: RawConfig, source: string): Architecture {
  const type = raw.model_type;
  if (typeof type !== 'string') throw new ModelIoError('INVALID_CONFIG', `${source}: no "model_type"`);
  return architectureByType(type, source);
}

function architectureByType(type: string, source: string): Architecture {
  const arch = ARCHITECTURES[type];
  if (!arch) {
    const reason = NOT_SUPPORTED[type] ?? `is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`;
    throw new ModelIoError('UNSUPPORTED_MODEL', `${source}: model_type '${type}' ${reason}`);
  }
  return arch;
}

/**
 * A config.json object, normalized by its architecture. `dir` is where generation_config.json may be; `source`
 * names the config in errors.
 */
export function parseModelConfig(raw: RawConfig, dir: string, source = `${dir} (config)`): ModelConfig {
  return architectureOf(raw, source).parse(raw, dir, source);
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
  return parseModelConfig(readConfigJson(dir), dir, join(dir, 'config.json'));
}

/** The linears a model of this config lists (LoRA targets), in the model's order, without loading it. */
export function linearSpecsOf(config: ModelConfig): LinearSpec[] {
  return architectureByType(config.modelType, config.modelType).linearSpecs(config);
}

/** The tensors (name -> shape) a checkpoint of this config holds, without reading one. */
export function tensorShapesOf(config: ModelConfig): Map<string, number[]> {
  return architectureByType(config.modelType, config.modelType).tensorShapes(config);
}

function parseGguf(path: string, raw: RawConfig, ropeFactors: Float32Array | null): ModelConfig {
  const label = `${path} (GGUF metadata)`;
  const config = architectureOf(raw, label).parse(raw, path, label);
  // GGUF maps only the decoder families (io/gguf-arch).
  return ropeFactors === null ? config : withRopeFactors(config as DecoderConfig, ropeFactors, path);
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
