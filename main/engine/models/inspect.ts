/**
 * What a model folder holds, without loading its weights: architecture, sizes, parameter count from the
 * safetensors headers (or from config.json where the folder has no weights yet), every linear module (as the loaded model will list them) and the LoRA target groups
 * a wizard offers. Used by `lorasmith inspect` and the app's model page.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { INDEX_FILE, openCheckpoint, SINGLE_FILE } from '../io/model-checkpoint';
import { ModelIoError } from '../io/errors';
import { GgufFile, isGgufFile } from '../io/gguf';
import { resolveTargets, TARGET_GROUPS, type TargetGroup } from '../lora/config';
import { linearSpecsOf, readModelConfig, tensorShapesOf } from './registry';
import type { LinearSpec, ModelConfig } from './types';

export { linearSpecsOf };

export interface TargetGroupSummary {
  readonly group: TargetGroup;
  /** Distinct module names (PEFT target_modules entries) in the group. */
  readonly moduleNames: readonly string[];
  readonly modules: number;
  /** Frozen weights the group covers (LoRA params are rank·(in+out) per module on top). */
  readonly weights: number;
}

export interface ModelSummary {
  readonly dir: string;
  readonly config: Omit<ModelConfig, 'raw'>;
  readonly architectures: readonly string[];
  readonly parameterCount: number;
  /** Where the count comes from: the checkpoint's tensors, or config.json alone for a folder without weights. */
  readonly parameterSource: 'checkpoint' | 'config';
  /** Storage dtypes in the checkpoint with their tensor counts, e.g. { BF16: 272 }. */
  readonly dtypes: Readonly<Record<string, number>>;
  readonly checkpointBytes: number;
  readonly linears: readonly LinearSpec[];
  readonly targetGroups: readonly TargetGroupSummary[];
  readonly hasTokenizer: boolean;
  readonly hasChatTemplate: boolean | null;
}

/** Buffers some checkpoints carry that are not parameters (GPT-2's causal masks, rotary caches). */
function isBuffer(name: string): boolean {
  return /\.attn\.(masked_)?bias$/.test(name) || name.endsWith('rotary_emb.inv_freq');
}

/** Parameters a model of this config has, from the tensor shapes its architecture loads (a tied head counted once). */
export function configParameterCount(config: ModelConfig): number {
  let n = 0;
  for (const shape of tensorShapesOf(config).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

function hasWeights(dir: string): boolean {
  return existsSync(join(dir, SINGLE_FILE)) || existsSync(join(dir, INDEX_FILE));
}

/** Parameters, bytes and storage types of a checkpoint's tensors (a GGUF file's included), from headers only. */
function checkpointStats(dir: string, config: ModelConfig): { parameterCount: number; checkpointBytes: number; dtypes: Record<string, number> } {
  const stats = { parameterCount: 0, checkpointBytes: 0, dtypes: {} as Record<string, number> };
  const add = (dtype: string, count: number, bytes: number) => {
    stats.checkpointBytes += bytes;
    stats.parameterCount += count;
    stats.dtypes[dtype] = (stats.dtypes[dtype] ?? 0) + 1;
  };
  if (isGgufFile(dir)) {
    const file = new GgufFile(dir);
    try {
      for (const t of file.tensors.values()) if (t.name !== 'rope_freqs.weight') add(t.type.name, t.count, t.bytes);
    } finally {
      file.close();
    }
    return stats;
  }
  const checkpoint = openCheckpoint(dir);
  let layersHeld = 0;
  try {
    for (const name of checkpoint.names()) {
      const layer = /(?:^|\.)(?:layers|h)\.(\d+)\./.exec(name)?.[1];
      if (layer !== undefined) layersHeld = Math.max(layersHeld, Number(layer) + 1);
      const entry = checkpoint.entry(name);
      if (isBuffer(name)) stats.checkpointBytes += entry.end - entry.begin;
      else add(entry.dtype, entry.shape.reduce((a, b) => a * b, 1), entry.end - entry.begin);
    }
  } finally {
    checkpoint.close();
  }
  // Said before anything is built per layer: a config naming a million layers must not allocate a million.
  if (config.numLayers !== layersHeld) {
    throw new ModelIoError('INVALID_CONFIG', `${join(dir, 'config.json')}: ${config.numLayers} layers (num_hidden_layers / n_layer), but the checkpoint holds ${layersHeld}; the config and the weights are not of one model`);
  }
  return stats;
}

/**
 * A model folder described from config.json and the safetensors headers (a GGUF file from its own header); a folder with config.json only is
 * described from the config (parameterSource 'config', no dtypes).
 */
export function inspectModel(dir: string): ModelSummary {
  const config = readModelConfig(dir);
  const weighed = isGgufFile(dir) || hasWeights(dir);
  const { parameterCount, checkpointBytes, dtypes } = weighed
    ? checkpointStats(dir, config)
    : { parameterCount: configParameterCount(config), checkpointBytes: 0, dtypes: {} };
  const linears = linearSpecsOf(config);
  const targetGroups = TARGET_GROUPS.map((group) => {
    const { modules } = resolveTargets(linears, group);
    return {
      group,
      moduleNames: [...new Set(modules.map((m) => m.name))],
      modules: modules.length,
      weights: modules.reduce((s, m) => s + m.inFeatures * m.outFeatures, 0),
    };
  });
  const { raw } = config;
  // The normalized fields only (architecture extras such as rotary tables stay out of the summary).
  const summaryConfig: Omit<ModelConfig, 'raw'> = {
    modelType: config.modelType,
    vocabSize: config.vocabSize,
    hiddenSize: config.hiddenSize,
    numLayers: config.numLayers,
    numHeads: config.numHeads,
    numKvHeads: config.numKvHeads,
    headDim: config.headDim,
    intermediateSize: config.intermediateSize,
    maxPositions: config.maxPositions,
    tieWordEmbeddings: config.tieWordEmbeddings,
    bosTokenId: config.bosTokenId,
    eosTokenIds: config.eosTokenIds,
    padTokenId: config.padTokenId,
  };
  const architectures = Array.isArray(raw.architectures) ? raw.architectures.filter((a): a is string => typeof a === 'string') : [];
  const gguf = isGgufFile(dir) ? ggufTokenizerFacts(dir) : null;
  const hasTokenizer = gguf ? gguf.hasTokenizer : existsSync(join(dir, 'tokenizer.json'));
  return {
    dir,
    config: summaryConfig,
    architectures,
    parameterCount,
    parameterSource: weighed ? 'checkpoint' : 'config',
    dtypes,
    checkpointBytes,
    linears,
    targetGroups,
    hasTokenizer,
    hasChatTemplate: !hasTokenizer ? null : gguf ? gguf.hasChatTemplate : hasChatTemplate(dir),
  };
}

/** A GGUF file carries its tokenizer and chat template in its metadata. */
function ggufTokenizerFacts(path: string): { hasTokenizer: boolean; hasChatTemplate: boolean } {
  const file = new GgufFile(path);
  try {
    return { hasTokenizer: file.has('tokenizer.ggml.tokens'), hasChatTemplate: file.has('tokenizer.chat_template') };
  } finally {
    file.close();
  }
}

function hasChatTemplate(dir: string): boolean {
  if (existsSync(join(dir, 'chat_template.jinja'))) return true;
  const path = join(dir, 'tokenizer_config.json');
  if (!existsSync(path)) return false;
  try {
    return typeof (JSON.parse(readFileSync(path, 'utf8')) as { chat_template?: unknown }).chat_template !== 'undefined';
  } catch {
    return false;
  }
}
