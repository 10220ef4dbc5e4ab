/**
 * LoRA configuration in PEFT's vocabulary, its validation, and which linear modules it targets.
 *
 * targetModules follows PEFT's LoraConfig.target_modules: a list matches a module whose path equals an entry or
 * ends with '.' + entry ('q_proj', 'attn.c_attn', a full path); a single string is a regex that must match the
 * whole path. Besides PEFT's 'all-linear' (every linear but the output head), 'attention' and 'mlp' pick the
 * groups each model declares for its linears.
 */
import type { LinearSpec } from '../models/types';
import { LoraError } from './errors';

export type TargetGroup = 'attention' | 'mlp' | 'all-linear';
export const TARGET_GROUPS: readonly TargetGroup[] = ['attention', 'mlp', 'all-linear'];

export interface LoraConfig {
  /** Names/suffixes/paths, a group name, or a regex over the full module path. */
  readonly targetModules: readonly string[] | string;
  readonly rank: number;
  readonly alpha: number;
  /** Dropout probability on the LoRA input, in training only. */
  readonly dropout: number;
  /** rsLoRA: scaling = alpha / sqrt(rank) instead of alpha / rank. */
  readonly useRslora: boolean;
  /** Per-module rank overrides: pattern (as PEFT's rank_pattern) -> rank. */
  readonly rankPattern: Readonly<Record<string, number>>;
  /** Per-module alpha overrides: pattern (as PEFT's alpha_pattern) -> alpha. */
  readonly alphaPattern: Readonly<Record<string, number>>;
}

export const DEFAULT_LORA_CONFIG: LoraConfig = {
  targetModules: 'attention',
  rank: 8,
  alpha: 16,
  dropout: 0.05,
  useRslora: false,
  rankPattern: {},
  alphaPattern: {},
};

function invalid(message: string): never {
  throw new LoraError('INVALID_LORA_CONFIG', message);
}

function checkRank(value: unknown, what: string): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    invalid(`${what} must be a positive integer, got ${String(value)}`);
  }
}

function checkAlpha(value: unknown, what: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    invalid(`${what} must be a positive number, got ${String(value)}`);
  }
}

function compileRegex(pattern: string, what: string): RegExp {
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch (error) {
    return invalid(`${what} is not a valid regular expression: '${pattern}' (${(error as Error).message})`);
  }
}

/** Fills defaults and checks every field; throws LoraError('INVALID_LORA_CONFIG') naming the bad value. */
export function resolveLoraConfig(partial: Partial<LoraConfig> = {}): LoraConfig {
  const config: LoraConfig = { ...DEFAULT_LORA_CONFIG, ...partial };
  checkRank(config.rank, 'rank');
  checkAlpha(config.alpha, 'alpha');
  if (typeof config.dropout !== 'number' || !(config.dropout >= 0 && config.dropout < 1)) {
    invalid(`dropout must be in [0, 1), got ${String(config.dropout)}`);
  }
  if (typeof config.useRslora !== 'boolean') invalid(`useRslora must be true or false, got ${String(config.useRslora)}`);
  const targets = config.targetModules;
  if (typeof targets === 'string') {
    if (targets.trim() === '') invalid('targetModules must name at least one module, got an empty string');
    if (!(TARGET_GROUPS as readonly string[]).includes(targets)) compileRegex(targets, 'targetModules');
  } else if (!Array.isArray(targets) || targets.length === 0) {
    invalid(`targetModules must be a non-empty list of module names, a group or a regex, got ${JSON.stringify(targets)}`);
  } else {
    for (const t of targets) {
      if (typeof t !== 'string' || t.trim() === '') invalid(`targetModules entries must be non-empty strings, got ${JSON.stringify(t)}`);
    }
  }
  for (const [pattern, rank] of Object.entries(config.rankPattern)) {
    compileRegex(pattern, `rankPattern key`);
    checkRank(rank, `rankPattern['${pattern}']`);
  }
  for (const [pattern, alpha] of Object.entries(config.alphaPattern)) {
    compileRegex(pattern, `alphaPattern key`);
    checkAlpha(alpha, `alphaPattern['${pattern}']`);
  }
  return config;
}

function isOutputHead(spec: LinearSpec): boolean {
  return spec.name === 'lm_head' || spec.path.endsWith('lm_head');
}

function matchesEntry(spec: LinearSpec, entry: string): boolean {
  if (entry === 'attention' || entry === 'mlp') return spec.groups.includes(entry);
  if (entry === 'all-linear') return !isOutputHead(spec);
  return spec.path === entry || spec.path.endsWith(`.${entry}`);
}

export interface TargetResolution {
  /** The targeted modules, in the model's order. */
  readonly modules: readonly LinearSpec[];
  /** List entries that matched no module (likely typos). */
  readonly unmatched: readonly string[];
}

/** Which of the model's linear modules the config targets. */
export function resolveTargets(specs: Iterable<LinearSpec>, targetModules: LoraConfig['targetModules']): TargetResolution {
  const all = [...specs];
  if (typeof targetModules === 'string' && !(TARGET_GROUPS as readonly string[]).includes(targetModules)) {
    const regex = compileRegex(targetModules, 'targetModules');
    return { modules: all.filter((s) => regex.test(s.path)), unmatched: [] };
  }
  const entries = typeof targetModules === 'string' ? [targetModules] : targetModules;
  const modules = all.filter((s) => entries.some((e) => matchesEntry(s, e)));
  const unmatched = entries.filter((e) => !all.some((s) => matchesEntry(s, e)));
  return { modules, unmatched };
}

/**
 * PEFT's get_pattern_key: the first pattern equal to the path, or matching it as `(.*\.)?(pattern)$`.
 */
export function findPatternKey(patterns: Readonly<Record<string, number>>, path: string): string | null {
  for (const key of Object.keys(patterns)) {
    if (key === path || new RegExp(`^(?:.*\\.)?(?:${key})$`).test(path)) return key;
  }
  return null;
}

export interface ModuleLoraSettings {
  readonly rank: number;
  readonly alpha: number;
  /** alpha / rank, or alpha / sqrt(rank) with rsLoRA. */
  readonly scaling: number;
}

/** Rank, alpha and scaling of one module, after rankPattern / alphaPattern overrides. */
export function moduleSettings(config: LoraConfig, path: string): ModuleLoraSettings {
  const rankKey = findPatternKey(config.rankPattern, path);
  const alphaKey = findPatternKey(config.alphaPattern, path);
  const rank = rankKey === null ? config.rank : (config.rankPattern[rankKey] ?? config.rank);
  const alpha = alphaKey === null ? config.alpha : (config.alphaPattern[alphaKey] ?? config.alpha);
  const scaling = config.useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
  return { rank, alpha, scaling };
}
