/**
 * A run's settings and their defaults, in one place for the app and the CLI: the names are the contract's
 * (preload/contract TrainingSettings), so the app passes its settings through unchanged and `lorasmith train`
 * fills the same object from its options; whatever either leaves out gets the same default here.
 */
import { BASE_PRECISIONS, isBasePrecision, type BasePrecision } from '../backend/frozen';
import { resolveLoraConfig, TARGET_GROUPS, type LoraConfig } from '../lora/config';
import type { TextTokenizer } from '../io/prompt';
import type { CausalLM } from '../models/types';
import { TrainError } from './errors';
import { DEFAULT_HYPERPARAMETERS, resolveHyperparameters, type TrainHyperparameters } from './hyperparameters';

export interface TrainSettings extends TrainHyperparameters {
  /** The adapter to train; null trains every weight (full fine-tuning). */
  readonly lora: LoraConfig | null;
  /** Longer examples are cut to this many tokens (and the cut reported). */
  readonly maxSeqLen: number;
  /** Fraction of the records held out for validation; 'auto': 0.1 from 10 records up, else none. */
  readonly valSplit: number | 'auto';
  /** Train on every token, prompt and template included, not only completions / assistant turns. */
  readonly trainOnPrompt: boolean;
  /** Concatenate examples into rows of exactly maxSeqLen tokens. */
  readonly packing: boolean;
  /**
   * How the frozen-weight store keeps the base for this run: 'stored' (the file's dtype), 'bf16' or 'q8_0'. Whoever
   * loads the base loads it so (the host, `lorasmith train --base-precision`); without a store the base is float32
   * tensors and this changes nothing (the record's estimate says how the base was held).
   */
  readonly basePrecision: BasePrecision;
}

/** What a caller gives: any subset; `lora: null` asks for full fine-tuning. */
export type TrainSettingsInput = Partial<Omit<TrainSettings, 'lora'>> & { readonly lora?: Partial<LoraConfig> | null };

export const DEFAULT_TRAIN_SETTINGS: Omit<TrainSettings, 'lora'> = {
  ...DEFAULT_HYPERPARAMETERS,
  maxSeqLen: 512,
  valSplit: 'auto',
  trainOnPrompt: false,
  packing: false,
  basePrecision: 'stored',
};

/** A list naming one group ('all-linear', 'attention', 'mlp') is that group: PEFT reads ["all-linear"] as a module name. */
function normalizeTargets(targets: LoraConfig['targetModules'] | undefined): LoraConfig['targetModules'] | undefined {
  const only = Array.isArray(targets) && targets.length === 1 ? (targets[0] as string) : null;
  return only !== null && (TARGET_GROUPS as readonly string[]).includes(only) ? only : targets;
}

function resolveLora(input: Partial<LoraConfig>): LoraConfig {
  const rank = input.rank ?? 8;
  const targetModules = normalizeTargets(input.targetModules);
  // alpha = 2·rank unless given: the usual choice, and PEFT's default scale for rank 8 (alpha 16).
  return resolveLoraConfig({ ...input, rank, alpha: input.alpha ?? 2 * rank, ...(targetModules !== undefined ? { targetModules } : {}) });
}

/** Fills defaults and checks every field (TrainError / LoraError naming the bad value). */
export function resolveTrainSettings(input: TrainSettingsInput = {}): TrainSettings {
  const { lora, maxSeqLen, valSplit, trainOnPrompt, packing, basePrecision, ...hyperparameters } = { ...DEFAULT_TRAIN_SETTINGS, ...input };
  if (!Number.isInteger(maxSeqLen) || maxSeqLen < 2) {
    throw new TrainError('INVALID_TRAIN_CONFIG', `maxSeqLen must be an integer of at least 2, got ${String(maxSeqLen)}`);
  }
  if (valSplit !== 'auto' && !(typeof valSplit === 'number' && valSplit >= 0 && valSplit < 1)) {
    throw new TrainError('INVALID_TRAIN_CONFIG', `valSplit must be in [0, 1) or 'auto', got ${String(valSplit)}`);
  }
  if (typeof basePrecision !== 'string' || !isBasePrecision(basePrecision)) {
    throw new TrainError('INVALID_TRAIN_CONFIG', `basePrecision must be one of ${BASE_PRECISIONS.join(', ')}, got ${JSON.stringify(basePrecision)}`);
  }
  return {
    ...resolveHyperparameters(hyperparameters),
    lora: lora === null ? null : resolveLora(lora ?? {}),
    maxSeqLen, valSplit, trainOnPrompt: trainOnPrompt === true, packing: packing === true, basePrecision,
  };
}

/** The padding id of batches: the model's pad token, else the tokenizer's EOS, else 0 (padded positions never train). */
export function padIdOf(model: { readonly config: Pick<CausalLM['config'], 'padTokenId' | 'eosTokenIds'> }, tokenizer: TextTokenizer): number {
  return model.config.padTokenId ?? tokenizer.eosTokenIds[0] ?? model.config.eosTokenIds[0] ?? 0;
}
