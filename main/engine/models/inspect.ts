/**
 * What a model folder holds, without loading its weights: architecture, sizes, parameter count from the
 * safetensors headers, every linear module (as the loaded model will list them) and the LoRA target groups
 * a wizard offers. Used by `lorasmith inspect` and the app's model page.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../io/model-checkpoint';
import { ModelIoError } from '../io/errors';
import { resolveTargets, TARGET_GROUPS, type TargetGroup } from '../lora/config';
import { readModelConfig } from './registry';
import type { LinearSpec, ModelConfig } from './types';

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

function spec(path: string, layer: number | null, inFeatures: number, outFeatures: number, groups: LinearSpec['groups'], fanInFanOut: boolean): LinearSpec {
  return { path, name: path.slice(path.lastIndexOf('.') + 1), layer, inFeatures, outFeatures, groups, fanInFanOut };
}

/** The linears loadModel will build for this config, in the same order (a test keeps the two in step). */
export function linearSpecsOf(c: ModelConfig): LinearSpec[] {
  const out: LinearSpec[] = [];
  if (c.modelType === 'gpt2') {
    const C = c.hiddenSize;
    for (let i = 0; i < c.numLayers; i++) {
      const p = `transformer.h.${i}`;
      out.push(spec(`${p}.attn.c_attn`, i, C, 3 * C, ['attention'], true));
      out.push(spec(`${p}.attn.c_proj`, i, C, C, ['attention'], true));
      out.push(spec(`${p}.mlp.c_fc`, i, C, c.intermediateSize, ['mlp'], true));
      out.push(spec(`${p}.mlp.c_proj`, i, c.intermediateSize, C, ['mlp'], true));
    }
    out.push(spec('lm_head', null, C, c.vocabSize, [], false)); // wte [V, C]: nn.Linear-shaped, not a Conv1D
    return out;
  }
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  for (let i = 0; i < c.numLayers; i++) {
    const a = `model.layers.${i}.self_attn`;
    const m = `model.layers.${i}.mlp`;
    out.push(spec(`${a}.q_proj`, i, c.hiddenSize, q, ['attention'], false));
    out.push(spec(`${a}.k_proj`, i, c.hiddenSize, kv, ['attention'], false));
    out.push(spec(`${a}.v_proj`, i, c.hiddenSize, kv, ['attention'], false));
    out.push(spec(`${a}.o_proj`, i, q, c.hiddenSize, ['attention'], false));
    out.push(spec(`${m}.gate_proj`, i, c.hiddenSize, c.intermediateSize, ['mlp'], false));
    out.push(spec(`${m}.up_proj`, i, c.hiddenSize, c.intermediateSize, ['mlp'], false));
    out.push(spec(`${m}.down_proj`, i, c.intermediateSize, c.hiddenSize, ['mlp'], false));
  }
  out.push(spec('lm_head', null, c.hiddenSize, c.vocabSize, [], false));
  return out;
}

export function inspectModel(dir: string): ModelSummary {
  const config = readModelConfig(dir);
  const checkpoint = openCheckpoint(dir);
  let parameterCount = 0;
  let checkpointBytes = 0;
  const dtypes: Record<string, number> = {};
  let layersHeld = 0;
  try {
    for (const name of checkpoint.names()) {
      const layer = /(?:^|\.)(?:layers|h)\.(\d+)\./.exec(name)?.[1];
      if (layer !== undefined) layersHeld = Math.max(layersHeld, Number(layer) + 1);
      const entry = checkpoint.entry(name);
      checkpointBytes += entry.end - entry.begin;
      if (isBuffer(name)) continue;
      parameterCount += entry.shape.reduce((a, b) => a * b, 1);
      dtypes[entry.dtype] = (dtypes[entry.dtype] ?? 0) + 1;
    }
  } finally {
    checkpoint.close();
  }
  // Said before anything is built per layer: a config naming a million layers must not allocate a million.
  if (config.numLayers !== layersHeld) {
    throw new ModelIoError('INVALID_CONFIG', `${join(dir, 'config.json')}: ${config.numLayers} layers (num_hidden_layers / n_layer), but the checkpoint holds ${layersHeld}; the config and the weights are not of one model`);
  }
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
  const hasTokenizer = existsSync(join(dir, 'tokenizer.json'));
  return {
    dir,
    config: summaryConfig,
    architectures,
    parameterCount,
    dtypes,
    checkpointBytes,
    linears,
    targetGroups,
    hasTokenizer,
    hasChatTemplate: hasTokenizer ? hasChatTemplate(dir) : null,
  };
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
