/**
 * One training run end to end: dataset -> tokens with loss masks -> LoRA injection (or full fine-tuning) -> the
 * loop -> a PEFT adapter folder with training_record.json, written atomically. A cancelled run writes no adapter;
 * its last checkpoint stays valid for --resume.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CausalLM } from '../models/types';
import { resolveLoraConfig, type LoraConfig } from '../lora/config';
import { adapterVariables, injectAdapter, peftWeightsOf, removeAdapter, type InjectedAdapter } from '../lora/inject';
import { peftAdapterFiles, writeFolderAtomically, type F32Tensor, type FolderFile } from '../lora/peft-io';
import { loadDataset, type DatasetOptions } from './datasets/dataset';
import type { DatasetFileReport } from './datasets/normalize';
import { packExamples } from './batching';
import { estimateTraining, type TrainingEstimate } from './estimate';
import { resolveHyperparameters, type TrainHyperparameters } from './hyperparameters';
import { trainLoop, type LoopResult, type TrainProgress } from './loop';
import { TRAINING_RECORD_FILE } from './record';
import type { TextTokenizer } from '../io/prompt';
import { tokenizeExamples, type TokenizeReport } from './tokenize';
import { fullTrainableVariables } from './trainable';

export const TRAINING_ADAPTER_NAME = 'default';

export interface TrainRunOptions {
  readonly model: CausalLM;
  readonly tokenizer: TextTokenizer;
  /** base_model_name_or_path written into adapter_config.json. */
  readonly baseModelName: string;
  readonly baseModelHash?: string | null;
  readonly data: DatasetOptions;
  /** LoRA settings; null trains every weight (full fine-tuning). */
  readonly lora: Partial<LoraConfig> | null;
  readonly hyperparameters?: Partial<TrainHyperparameters>;
  readonly maxSeqLen: number;
  readonly trainOnAll?: boolean;
  readonly packing?: boolean;
  readonly outDir: string;
  readonly checkpointDir?: string;
  readonly resumeFrom?: string;
  /** Measure and return estimates only, training nothing. */
  readonly dryRun?: boolean;
  readonly backend?: string;
  readonly signal?: AbortSignal;
  readonly onProgress?: (event: TrainProgress) => void;
  /** Called once the data is validated and the estimate measured, before the first step. */
  readonly onPrepared?: (prepared: { datasets: readonly DatasetFileReport[]; tokens: TrainRunResult['tokens']; estimate: TrainingEstimate }) => void;
}

export interface TrainRunResult {
  readonly status: LoopResult['status'] | 'dry-run';
  /** Where the adapter (or full weights) was written; null when cancelled or a dry run. */
  readonly outDir: string | null;
  readonly estimate: TrainingEstimate;
  readonly datasets: readonly DatasetFileReport[];
  readonly tokens: { readonly train: TokenizeReport; readonly val: TokenizeReport };
  readonly loop: LoopResult | null;
  readonly record: Record<string, unknown> | null;
}

function prepare(options: TrainRunOptions) {
  const hyperparameters = resolveHyperparameters(options.hyperparameters);
  const dataset = loadDataset({ seed: hyperparameters.seed, ...options.data });
  const tokenizeOptions = { maxSeqLen: options.maxSeqLen, trainOnAll: options.trainOnAll };
  const train = tokenizeExamples(dataset.train, options.tokenizer, tokenizeOptions);
  const val = tokenizeExamples(dataset.val, options.tokenizer, tokenizeOptions);
  const trainRows = options.packing ? packExamples(train.examples, options.maxSeqLen) : train.examples;
  const padId = options.model.config.padTokenId ?? options.tokenizer.eosTokenIds[0] ?? 0;
  return { hyperparameters, dataset, train, val, trainRows, padId };
}

/** Trains and writes the output folder; see TrainRunResult. */
export async function runTraining(options: TrainRunOptions): Promise<TrainRunResult> {
  const prepared = prepare(options);
  const { hyperparameters, dataset, train, val, trainRows, padId } = prepared;
  let adapter: InjectedAdapter | null = null;
  let variables: Map<string, tf.Variable>;
  let lora: LoraConfig | null = null;
  if (options.lora) {
    lora = resolveLoraConfig(options.lora);
    adapter = injectAdapter(options.model, TRAINING_ADAPTER_NAME, lora, { seed: hyperparameters.seed });
    variables = adapterVariables(adapter);
  } else {
    variables = fullTrainableVariables(options.model);
  }
  try {
    const estimate = await estimateTraining({ model: options.model, variables, rows: trainRows, padId, hyperparameters });
    const tokens = { train: train.report, val: val.report };
    options.onPrepared?.({ datasets: dataset.files, tokens, estimate });
    if (options.dryRun) return { status: 'dry-run', outDir: null, estimate, datasets: dataset.files, tokens, loop: null, record: null };
    const files = async (): Promise<Map<string, FolderFile>> =>
      adapter && lora ? peftAdapterFiles(lora, await peftWeightsOf(adapter), adapterMeta(options)) : new Map<string, FolderFile>([['model.safetensors', { tensors: namedWeightTensors(options.model) }]]);
    const loop = await trainLoop({
      model: options.model, variables, trainRows, valRows: val.examples, padId, hyperparameters,
      checkpointDir: options.checkpointDir, resumeFrom: options.resumeFrom, checkpointFiles: files,
      signal: options.signal, onProgress: options.onProgress,
    });
    if (loop.status === 'cancelled') return { status: 'cancelled', outDir: null, estimate, datasets: dataset.files, tokens, loop, record: null };
    const record = trainingRecord(options, lora, hyperparameters, dataset.files, tokens, estimate, loop);
    const out = await files();
    out.set(TRAINING_RECORD_FILE, JSON.stringify(record, null, 2) + '\n');
    writeFolderAtomically(options.outDir, out);
    return { status: loop.status, outDir: options.outDir, estimate, datasets: dataset.files, tokens, loop, record };
  } finally {
    if (adapter) removeAdapter(options.model, TRAINING_ADAPTER_NAME);
  }
}

/** Every weight under its checkpoint name and layout (what transformers loads), for full fine-tuning's output. */
function namedWeightTensors(model: CausalLM): Map<string, F32Tensor> {
  const out = new Map<string, F32Tensor>();
  tf.tidy(() => {
    for (const [name, t] of model.namedWeights()) out.set(name, { data: t.dataSync() as Float32Array, shape: t.shape.slice() });
  });
  return out;
}

function adapterMeta(options: TrainRunOptions) {
  const fanIn = [...options.model.linears.values()].some((l) => l.spec.fanInFanOut);
  return { baseModelNameOrPath: options.baseModelName, fanInFanOut: fanIn };
}

function trainingRecord(
  options: TrainRunOptions,
  lora: LoraConfig | null,
  hyperparameters: TrainHyperparameters,
  datasets: readonly DatasetFileReport[],
  tokens: TrainRunResult['tokens'],
  estimate: TrainingEstimate,
  loop: LoopResult,
): Record<string, unknown> {
  return {
    format: 'lorasmith-training-record/1',
    createdAt: new Date().toISOString(),
    mode: lora ? 'lora' : 'full',
    baseModel: { nameOrPath: options.baseModelName, sha256: options.baseModelHash ?? null, modelType: options.model.config.modelType, parameters: options.model.parameterCount() },
    lora,
    hyperparameters,
    seed: hyperparameters.seed,
    backend: options.backend ?? null,
    data: {
      maxSeqLen: options.maxSeqLen, trainOnAll: options.trainOnAll ?? false, packing: options.packing ?? false,
      files: datasets.map((d) => ({ path: d.path, contentHash: d.contentHash, fileType: d.fileType, format: d.format, records: d.records, valid: d.valid, skipped: d.skipped, issues: d.issues.slice(0, 100) })),
      tokens: { train: { ...tokens.train, skipped: tokens.train.skipped.length }, val: { ...tokens.val, skipped: tokens.val.skipped.length } },
    },
    estimate,
    result: {
      status: loop.status, steps: loop.steps, totalSteps: loop.totalSteps, trainLoss: loop.trainLoss, recentTrainLoss: loop.recentTrainLoss,
      valLoss: loop.valLoss, valPerplexity: loop.valLoss === null ? null : Math.exp(loop.valLoss), bestValLoss: loop.bestValLoss, bestStep: loop.bestStep,
      tokensPerSecond: loop.tokensPerSecond, seconds: loop.seconds, resumedFrom: options.resumeFrom ?? null,
    },
    history: loop.history,
    evals: loop.evals,
  };
}

