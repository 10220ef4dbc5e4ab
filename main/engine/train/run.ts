/**
 * One training run end to end, the same for the app's host and `lorasmith train`: dataset (as given or as an
 * import normalized it) -> tokens with loss masks (io/prompt's BOS policy) -> a fresh LoRA adapter, one
 * initialised from a parent adapter's weights, or every weight (full fine-tuning) -> an estimate -> the loop,
 * with a sample generation at each evaluation and checkpoints that carry the PEFT files -> the adapter folder
 * with training_record.json, written atomically. A cancelled run writes no adapter; its last checkpoint stays
 * valid for resuming. Other adapters on the model are inactive while it trains and active again afterwards.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { assertEmptyOutput } from '../../common/atomic';
import { hashFile } from '../../common/hash';
import { bosToAdd, type TextTokenizer } from '../io/prompt';
import type { LoraConfig } from '../lora/config';
import { adapterVariables, attachAdapterWeights, injectAdapter, peftWeightsOf, removeAdapter, type InjectedAdapter } from '../lora/inject';
import { ADAPTER_WEIGHTS_FILE, loadAdapter, peftAdapterFiles, writeFolderAtomically, type F32Tensor, type FolderFile } from '../lora/peft-io';
import type { CausalLM } from '../models/types';
import { packExamples } from './batching';
import { loadDataset, type DatasetOptions } from './datasets/dataset';
import type { DatasetFileReport } from './datasets/normalize';
import { estimateTraining, type TrainingEstimate } from './estimate';
import { trainLoop, type LoopResult, type TrainProgress } from './loop';
import { TRAINING_RECORD_FILE, trainingRecord, type TrainingRecord } from './record';
import { evaluationSampler } from './sample';
import { padIdOf, resolveTrainSettings, type TrainSettings, type TrainSettingsInput } from './settings';
import { tokenizeExamples, type TokenizeReport } from './tokenize';
import { fullTrainableVariables } from './trainable';

export const TRAINING_ADAPTER_NAME = 'training';

export interface TrainRunOptions {
  readonly model: CausalLM;
  readonly tokenizer: TextTokenizer;
  /** base_model_name_or_path of adapter_config.json, and the model's content hash (main/common/hash) if known. */
  readonly base: { readonly nameOrPath: string; readonly contentHash: string | null };
  /** The dataset file (as given, or normalized by an import), or a train file and a validation file. */
  readonly data: Omit<DatasetOptions, 'valSplit' | 'seed'>;
  readonly settings?: TrainSettingsInput;
  /** Start from this PEFT adapter's weights and LoRA config (settings' dropout still applies) instead of a fresh one. */
  readonly parentAdapterDir?: string;
  readonly outDir: string;
  readonly checkpointDir?: string;
  /** A checkpoint-<step> folder to continue from. */
  readonly resumeFrom?: string;
  /** Measure and return the estimate only, training nothing. */
  readonly dryRun?: boolean;
  /** Named in the record: the backend and kernels the run used. */
  readonly backend?: string;
  /** Named in the record: why that backend serves instead of the one asked for (initBackend's fallback), or null. */
  readonly backendFallback?: string | null;
  readonly signal?: AbortSignal;
  readonly onProgress?: (event: TrainProgress) => void;
  /** Awaited between two steps (the loop's betweenSteps): the app's chat while a run trains. */
  readonly betweenSteps?: () => Promise<void>;
  /** Called once the data is read and the estimate measured, before the first step. */
  readonly onPrepared?: (prepared: { datasets: readonly DatasetFileReport[]; tokens: TrainRunResult['tokens']; estimate: TrainingEstimate; settings: TrainSettings }) => void;
}

export interface TrainRunResult {
  readonly status: LoopResult['status'] | 'dry-run';
  /** Where the adapter (or full weights) was written; null when cancelled or a dry run. */
  readonly outDir: string | null;
  readonly settings: TrainSettings;
  readonly estimate: TrainingEstimate;
  readonly datasets: readonly DatasetFileReport[];
  readonly tokens: { readonly train: TokenizeReport; readonly val: TokenizeReport };
  readonly loop: LoopResult | null;
  readonly record: TrainingRecord | null;
}

interface Trainable {
  readonly variables: Map<string, tf.Variable>;
  readonly adapter: InjectedAdapter | null;
  readonly settings: TrainSettings;
  readonly parent: TrainingRecord['parentAdapter'];
}

/** The adapter (fresh or from the parent) or the model's own weights, with the settings it really trains with. */
function makeTrainable(options: TrainRunOptions, settings: TrainSettings): Trainable {
  if (options.parentAdapterDir) {
    const parent = loadAdapter(options.parentAdapterDir);
    const lora: LoraConfig = { ...parent.config, dropout: settings.lora?.dropout ?? parent.config.dropout };
    const adapter = attachAdapterWeights(options.model, TRAINING_ADAPTER_NAME, lora, parent.modules, { activate: true });
    const contentHash = hashFile(join(options.parentAdapterDir, ADAPTER_WEIGHTS_FILE));
    return { variables: adapterVariables(adapter), adapter, settings: { ...settings, lora }, parent: { path: options.parentAdapterDir, contentHash } };
  }
  if (settings.lora) {
    const adapter = injectAdapter(options.model, TRAINING_ADAPTER_NAME, settings.lora, { seed: settings.seed, activate: true });
    return { variables: adapterVariables(adapter), adapter, settings, parent: null };
  }
  return { variables: fullTrainableVariables(options.model), adapter: null, settings, parent: null };
}

/** Trains and writes the output folder; see TrainRunResult. */
export async function runTraining(options: TrainRunOptions): Promise<TrainRunResult> {
  // Refused before any work: the output folder must be new or empty (a user's files are never written over).
  if (!options.dryRun) assertEmptyOutput(options.outDir);
  const { model, tokenizer } = options;
  const requested = resolveTrainSettings(options.settings);
  const dataset = loadDataset({ ...options.data, valSplit: requested.valSplit, seed: requested.seed });
  const tokenizeOptions = { maxSeqLen: requested.maxSeqLen, trainOnPrompt: requested.trainOnPrompt };
  const train = tokenizeExamples(dataset.train, tokenizer, tokenizeOptions);
  const val = tokenizeExamples(dataset.val, tokenizer, tokenizeOptions);
  const trainRows = requested.packing ? packExamples(train.examples, requested.maxSeqLen) : train.examples;
  const tokens = { train: train.report, val: val.report };
  const padId = padIdOf(model, tokenizer);

  const activeBefore = new Map([...model.linears].map(([path, layer]) => [path, layer.active]));
  const trainable = makeTrainable(options, requested);
  const { variables, adapter, settings } = trainable;
  try {
    const estimate = await estimateTraining({ model, variables, rows: trainRows, padId, hyperparameters: settings });
    options.onPrepared?.({ datasets: dataset.files, tokens, estimate, settings });
    const prepared = { settings, estimate, datasets: dataset.files, tokens };
    if (options.dryRun) return { ...prepared, status: 'dry-run', outDir: null, loop: null, record: null };
    const files = async (): Promise<Map<string, FolderFile>> =>
      adapter && settings.lora
        ? peftAdapterFiles(settings.lora, await peftWeightsOf(adapter), adapterMeta(options))
        : new Map<string, FolderFile>([['model.safetensors', { tensors: await namedWeightTensors(model) }]]);
    const sampleAtEval = evaluationSampler(model, tokenizer, [...val.examples, ...train.examples]);
    const loop = await trainLoop({
      model, variables, trainRows, valRows: val.examples, padId, hyperparameters: settings,
      checkpointDir: options.checkpointDir, resumeFrom: options.resumeFrom, checkpointFiles: files,
      signal: options.signal, onProgress: options.onProgress, ...(sampleAtEval ? { sampleAtEval } : {}),
      ...(options.betweenSteps ? { betweenSteps: options.betweenSteps } : {}),
    });
    if (loop.status === 'cancelled') return { ...prepared, status: 'cancelled', outDir: null, loop, record: null };
    const record = trainingRecord({
      baseModel: { ...options.base, modelType: model.config.modelType, parameters: model.parameterCount() },
      parentAdapter: trainable.parent, settings, files: dataset.files, bosTokenId: bosToAdd(tokenizer, []), padId, tokens,
      estimate, loop, resumedFrom: options.resumeFrom ?? null, backend: options.backend ?? null,
      backendFallback: options.backendFallback ?? null,
    });
    const out = await files();
    out.set(TRAINING_RECORD_FILE, JSON.stringify(record, null, 2) + '\n');
    writeFolderAtomically(options.outDir, out);
    return { ...prepared, status: loop.status, outDir: options.outDir, loop, record };
  } finally {
    if (adapter) removeAdapter(model, adapter.name);
    for (const [path, layer] of model.linears) layer.setActive(activeBefore.get(path) ?? []);
  }
}

/** Every weight under its checkpoint name and layout (what transformers loads), for full fine-tuning's output. */
async function namedWeightTensors(model: CausalLM): Promise<Map<string, F32Tensor>> {
  // namedWeights may make transposed copies: clones inside a tidy hold exactly what is read, then go.
  const held = tf.tidy(() => [...model.namedWeights()].map(([name, t]) => ({ name, t: tf.clone(t) })));
  const out = new Map<string, F32Tensor>();
  try {
    for (const { name, t } of held) out.set(name, { data: Float32Array.from((await t.data()) as Float32Array), shape: t.shape.slice() });
  } finally {
    tf.dispose(held.map((h) => h.t));
  }
  return out;
}

function adapterMeta(options: TrainRunOptions) {
  const fanIn = [...options.model.linears.values()].some((l) => l.spec.fanInFanOut);
  return { baseModelNameOrPath: options.base.nameOrPath, fanInFanOut: fanIn };
}
