/**
 * Adapters in PEFT's layout: adapter_config.json (LoraConfig as PEFT serialises it) and adapter_model.safetensors
 * with `base_model.model.<module>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r], F32.
 * Written into a temporary folder and renamed, so a reader never sees a half-written adapter.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { assertEmptyOutput, fsyncTree, publishDir, sweepTemps, tempSibling } from '../../common/atomic';
import { resolveLoraConfig, type LoraConfig } from './config';
import { LoraError } from './errors';
import type { PeftModuleWeights } from './inject';
import { readSafetensors, writeSafetensors } from '../io/safetensors';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
const PREFIX = 'base_model.model.';

export interface F32Tensor {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

/** A file of a folder written atomically: text, bytes, or F32 tensors written as safetensors. */
export type FolderFile = string | Buffer | { readonly tensors: ReadonlyMap<string, F32Tensor>; readonly metadata?: Record<string, string> };

/** Every tensor of a safetensors file as float32 (F16 / BF16 converted); integer tensors are refused. */
export function readF32Tensors(path: string): Map<string, F32Tensor> {
  const out = new Map<string, F32Tensor>();
  for (const [name, t] of readSafetensors(path).tensors) {
    if (!(t.data instanceof Float32Array)) {
      throw new LoraError('INVALID_ADAPTER_FILE', `${path}: tensor '${name}' is ${t.dtype}; expected a float type (F32, F16, BF16)`);
    }
    out.set(name, { data: t.data, shape: t.shape });
  }
  return out;
}

function writeFile(path: string, content: FolderFile): void {
  if (typeof content === 'string' || Buffer.isBuffer(content)) return writeFileSync(path, content);
  const tensors = new Map([...content.tensors].map(([k, t]) => [k, { dtype: 'F32' as const, shape: t.shape, data: t.data }]));
  writeSafetensors(path, tensors, content.metadata);
}

export interface PeftAdapterMeta {
  readonly baseModelNameOrPath: string;
  /** True for GPT-2's Conv1D modules (weights stored [in, out]). */
  readonly fanInFanOut: boolean;
}

/** adapter_config.json as PEFT 0.17 writes it for a LoRA CAUSAL_LM adapter. */
export function peftConfigJson(config: LoraConfig, meta: PeftAdapterMeta): Record<string, unknown> {
  return {
    alpha_pattern: { ...config.alphaPattern },
    auto_mapping: null,
    base_model_name_or_path: meta.baseModelNameOrPath,
    bias: 'none',
    corda_config: null,
    eva_config: null,
    exclude_modules: null,
    fan_in_fan_out: meta.fanInFanOut,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: config.alpha,
    lora_bias: false,
    lora_dropout: config.dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    qalora_group_size: 16,
    r: config.rank,
    rank_pattern: { ...config.rankPattern },
    revision: null,
    target_modules: peftTargetModules(config.targetModules),
    target_parameters: null,
    task_type: 'CAUSAL_LM',
    trainable_token_indices: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: config.useRslora,
  };
}

/** PEFT knows 'all-linear' but not our 'attention' / 'mlp' groups: those are written as the matched names. */
function peftTargetModules(targets: LoraConfig['targetModules']): string[] | string {
  return typeof targets === 'string' ? targets : [...targets];
}

/**
 * Writes `dir` atomically: a sibling temp folder (main/common/atomic.ts's scheme) renamed into place. A folder
 * that is not empty is refused with OUTPUT_NOT_EMPTY (a user's files are never written over), unless `replace`:
 * a writer's own folder written again (a checkpoint of the same step).
 */
export function writeFolderAtomically(dir: string, files: ReadonlyMap<string, FolderFile>, options: { replace?: boolean } = {}): void {
  if (!options.replace) assertEmptyOutput(dir);
  mkdirSync(dirname(dir), { recursive: true });
  sweepTemps(dirname(dir), { recursive: false }); // what a crashed write left beside it (the scheme names the writer)
  const temp = tempSibling(dir);
  mkdirSync(temp);
  try {
    for (const [name, content] of files) writeFile(join(temp, name), content);
    fsyncTree(temp);
  } catch (error) {
    rmSync(temp, { recursive: true, force: true });
    throw error;
  }
  publishDir(temp, dir, options);
}

export interface SaveAdapterOptions extends PeftAdapterMeta {
  /** Extra files written in the same atomic step (e.g. training_record.json). */
  readonly extraFiles?: ReadonlyMap<string, FolderFile>;
}

/** The files of a PEFT adapter; `targetModules` groups are resolved to the module names actually adapted. */
export function peftAdapterFiles(config: LoraConfig, modules: ReadonlyMap<string, PeftModuleWeights>, meta: PeftAdapterMeta): Map<string, FolderFile> {
  const tensors = new Map<string, F32Tensor>();
  for (const [path, w] of modules) {
    const inF = w.loraA.length / w.rank;
    const outF = w.loraB.length / w.rank;
    tensors.set(`${PREFIX}${path}.lora_A.weight`, { data: w.loraA, shape: [w.rank, inF] });
    tensors.set(`${PREFIX}${path}.lora_B.weight`, { data: w.loraB, shape: [outF, w.rank] });
  }
  const targets = config.targetModules;
  const written: LoraConfig =
    typeof targets === 'string' && (targets === 'attention' || targets === 'mlp')
      ? { ...config, targetModules: [...new Set([...modules.keys()].map((p) => p.split('.').pop() as string))] }
      : config;
  return new Map<string, FolderFile>([
    [ADAPTER_CONFIG_FILE, JSON.stringify(peftConfigJson(written, meta), null, 2) + '\n'],
    [ADAPTER_WEIGHTS_FILE, { tensors, metadata: { format: 'pt' } }],
  ]);
}

export function saveAdapter(dir: string, config: LoraConfig, modules: ReadonlyMap<string, PeftModuleWeights>, options: SaveAdapterOptions): void {
  const files = peftAdapterFiles(config, modules, options);
  for (const [name, content] of options.extraFiles ?? []) files.set(name, content);
  writeFolderAtomically(dir, files);
}

export interface LoadedAdapter {
  readonly config: LoraConfig;
  readonly meta: PeftAdapterMeta;
  /** adapter_config.json as read. */
  readonly raw: Readonly<Record<string, unknown>>;
  /** Per module path, weights in PEFT's orientation. */
  readonly modules: Map<string, PeftModuleWeights>;
}

function invalidFile(dir: string, message: string): never {
  throw new LoraError('INVALID_ADAPTER_FILE', `${dir}: ${message}`);
}

/** The LoraConfig an adapter_config.json describes (r, lora_alpha, use_rslora, rank/alpha patterns); throws LoraError. */
export function loraConfigFromPeftJson(raw: Readonly<Record<string, unknown>>): LoraConfig {
  const targets = raw.target_modules;
  return resolveLoraConfig({
    targetModules: typeof targets === 'string' ? targets : Array.isArray(targets) ? targets.map(String) : [],
    rank: raw.r as number,
    alpha: (raw.lora_alpha ?? raw.r) as number,
    dropout: (raw.lora_dropout ?? 0) as number,
    useRslora: raw.use_rslora === true,
    rankPattern: (raw.rank_pattern ?? {}) as Record<string, number>,
    alphaPattern: (raw.alpha_pattern ?? {}) as Record<string, number>,
  });
}

function configFromPeft(dir: string, raw: Record<string, unknown>): LoraConfig {
  if (raw.peft_type !== 'LORA') invalidFile(dir, `peft_type is ${JSON.stringify(raw.peft_type)}; only LORA adapters are supported`);
  if (typeof raw.target_modules !== 'string' && !Array.isArray(raw.target_modules)) invalidFile(dir, 'target_modules is missing');
  try {
    return loraConfigFromPeftJson(raw);
  } catch (error) {
    return invalidFile(dir, `${ADAPTER_CONFIG_FILE}: ${(error as Error).message}`);
  }
}

/** Reads a PEFT LoRA adapter folder. Keys may carry PEFT's adapter name (`.lora_A.default.weight`). */
export function loadAdapter(dir: string): LoadedAdapter {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
  } catch (error) {
    return invalidFile(dir, `cannot read ${ADAPTER_CONFIG_FILE}: ${(error as Error).message}`);
  }
  const config = configFromPeft(dir, raw);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!existsSync(weightsPath)) invalidFile(dir, `${ADAPTER_WEIGHTS_FILE} is missing (adapter_model.bin is not supported: convert it with PEFT's save_pretrained(safe_serialization=True))`);
  const tensors = readF32Tensors(weightsPath);
  const parts = new Map<string, { A?: F32Tensor; B?: F32Tensor }>();
  for (const [key, tensor] of tensors) {
    const match = /^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/.exec(key);
    if (!match) continue;
    const [, path, which] = match as unknown as [string, string, 'A' | 'B'];
    const entry = parts.get(path) ?? {};
    entry[which] = tensor;
    parts.set(path, entry);
  }
  const modules = new Map<string, PeftModuleWeights>();
  for (const [path, { A, B }] of parts) {
    if (!A || !B) invalidFile(dir, `module '${path}' has lora_${A ? 'A' : 'B'} but no lora_${A ? 'B' : 'A'}`);
    const rank = A.shape[0] as number;
    if (A.shape.length !== 2 || B.shape.length !== 2 || B.shape[1] !== rank) {
      invalidFile(dir, `module '${path}': lora_A [${A.shape.join(', ')}] and lora_B [${B.shape.join(', ')}] do not share a rank`);
    }
    modules.set(path, { loraA: A.data, loraB: B.data, rank });
  }
  if (modules.size === 0) invalidFile(dir, `${ADAPTER_WEIGHTS_FILE} holds no lora_A / lora_B tensors`);
  return {
    config,
    raw,
    modules,
    meta: { baseModelNameOrPath: String(raw.base_model_name_or_path ?? ''), fanInFanOut: raw.fan_in_fan_out === true },
  };
}
