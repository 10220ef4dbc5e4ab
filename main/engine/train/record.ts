/**
 * training_record.json: how an adapter was made (base and data with their content hashes, settings, seed, losses,
 * samples), one versioned schema whether the app or `lorasmith train` made it. Everything that depends on the
 * machine or the moment (time, speed, the estimate) sits under `performance` and `createdAt`; the rest is the
 * same for the same base, data and settings.
 */
import type { TrainingEstimate } from './estimate';
import type { EvalRecord, StepRecord } from './training-checkpoint';
import type { LoopResult } from './loop';
import type { DatasetFileReport } from './datasets/normalize';
import type { TokenizeReport } from './tokenize';
import type { TrainSettings } from './settings';

export const TRAINING_RECORD_FILE = 'training_record.json';
export const TRAINING_RECORD_FORMAT = 'lorasmith-training-record/2';
/** Skipped records listed per data file (the count is always whole). */
const RECORDED_ISSUES = 100;

export interface TokenCounts extends Omit<TokenizeReport, 'skipped'> {
  readonly skipped: number;
}

export interface TrainingRecord {
  readonly format: typeof TRAINING_RECORD_FORMAT;
  readonly createdAt: string;
  readonly mode: 'lora' | 'full';
  /** contentHash: main/common/hash's hashFolder of the model folder, the library's hash of the same model. */
  readonly baseModel: { readonly nameOrPath: string; readonly contentHash: string | null; readonly modelType: string; readonly parameters: number };
  /** The adapter whose weights this run started from, with the hash of its adapter_model.safetensors. */
  readonly parentAdapter: { readonly path: string; readonly contentHash: string } | null;
  readonly settings: TrainSettings;
  readonly data: {
    readonly files: readonly DatasetFileReport[];
    /** The BOS id put before every example (the tokenizer's policy), or null. */
    readonly bosTokenId: number | null;
    readonly padId: number;
    readonly tokens: { readonly train: TokenCounts; readonly val: TokenCounts };
  };
  readonly result: Pick<LoopResult, 'status' | 'steps' | 'totalSteps' | 'trainLoss' | 'recentTrainLoss' | 'valLoss' | 'bestValLoss' | 'bestStep'> & {
    readonly valPerplexity: number | null;
    readonly resumedFrom: string | null;
  };
  readonly history: readonly StepRecord[];
  readonly evals: readonly EvalRecord[];
  readonly performance: { readonly backend: string | null; readonly backendFallback: string | null; readonly tokensPerSecond: number; readonly seconds: number; readonly estimate: TrainingEstimate };
}

export interface RecordInput {
  readonly baseModel: TrainingRecord['baseModel'];
  readonly parentAdapter: TrainingRecord['parentAdapter'];
  readonly settings: TrainSettings;
  readonly files: readonly DatasetFileReport[];
  readonly bosTokenId: number | null;
  readonly padId: number;
  readonly tokens: { readonly train: TokenizeReport; readonly val: TokenizeReport };
  readonly estimate: TrainingEstimate;
  readonly loop: LoopResult;
  readonly resumedFrom: string | null;
  readonly backend: string | null;
  readonly backendFallback: string | null;
}

const counts = (report: TokenizeReport): TokenCounts => ({ ...report, skipped: report.skipped.length });

export function trainingRecord(input: RecordInput): TrainingRecord {
  const { loop } = input;
  return {
    format: TRAINING_RECORD_FORMAT,
    createdAt: new Date().toISOString(),
    mode: input.settings.lora ? 'lora' : 'full',
    baseModel: input.baseModel,
    parentAdapter: input.parentAdapter,
    settings: input.settings,
    data: {
      files: input.files.map((f) => ({ ...f, issues: f.issues.slice(0, RECORDED_ISSUES) })),
      bosTokenId: input.bosTokenId,
      padId: input.padId,
      tokens: { train: counts(input.tokens.train), val: counts(input.tokens.val) },
    },
    result: {
      status: loop.status, steps: loop.steps, totalSteps: loop.totalSteps, trainLoss: loop.trainLoss, recentTrainLoss: loop.recentTrainLoss,
      valLoss: loop.valLoss, valPerplexity: loop.valLoss === null ? null : Math.exp(loop.valLoss), bestValLoss: loop.bestValLoss,
      bestStep: loop.bestStep, resumedFrom: input.resumedFrom,
    },
    history: loop.history,
    evals: loop.evals,
    performance: { backend: input.backend, backendFallback: input.backendFallback, tokensPerSecond: loop.tokensPerSecond, seconds: loop.seconds, estimate: input.estimate },
  };
}
