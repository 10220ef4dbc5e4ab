/**
 * Export a run for transformers + PEFT + accelerate: the run `lorasmith train` (or the app) would do with these
 * settings, as a self-contained folder another machine trains with train.py. The engine prepares the data exactly
 * as the run does (the same dataset reading, split, chat template, BOS policy, masks, truncation and packing) and
 * writes the token ids with their labels, so the masks there are the engine's by construction; the LoRA starts from
 * the engine's seeded initialisation (or the parent adapter). No weight of the base is read: a base too large for
 * this machine exports as well as a small one. The folder is staged under a temporary name and renamed whole.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fsyncTree, publishDir, sweepTemps, tempSibling } from '../../common/atomic';
import { hashFile } from '../../common/hash';
import { bosToAdd } from '../io/prompt';
import { loadTokenizer } from '../io/tokenizer';
import { resolveTargets, moduleSettings, type LoraConfig } from '../lora/config';
import { LoraError } from '../lora/errors';
import type { PeftModuleWeights } from '../lora/inject';
import { initialLoraWeights } from '../lora/inject';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, loadAdapter, peftAdapterFiles, writeFolderAtomically } from '../lora/peft-io';
import { inspectModel } from '../models/inspect';
import type { LinearSpec } from '../models/types';
import { packExamples } from '../train/batching';
import { loadDataset, type DatasetOptions } from '../train/datasets/dataset';
import type { Example, TextSegment } from '../train/datasets/formats';
import type { DatasetFileReport } from '../train/datasets/normalize';
import { stepsPerEpoch, totalStepsFor } from '../train/loop';
import { AdamW } from '../train/optimizer';
import { hashSeed } from '../train/rng';
import { padIdOf, resolveTrainSettings, type TrainSettings, type TrainSettingsInput } from '../train/settings';
import { chatSegments, tokenizeExamples, type TokenizedExample, type TokenizeReport } from '../train/tokenize';
import { accelerateConfigFiles } from './accelerate-configs';
import { HandoffError } from './errors';
import { bundleReadme } from './readme';
import { TRAIN_SCRIPT } from './train-script';
import { requirementsTxt, TESTED_VERSIONS } from './versions';

export const RUN_EXPORT_FORMAT = 'lorasmith-run-export/1';
export const RUN_FILE = 'run.json';
export const INITIAL_ADAPTER_DIR = 'initial_adapter';

export interface ExportRunOptions {
  /** A Hugging Face model folder (config.json, tokenizer.json); its weights are not read. */
  readonly modelDir: string;
  /** The base's hub repo id where it came from the hub, and its content hash (main/common/hash's hashFolder). */
  readonly base: { readonly hubId: string | null; readonly contentHash: string };
  readonly data: Omit<DatasetOptions, 'valSplit' | 'seed'>;
  readonly settings?: TrainSettingsInput;
  /** Start from this PEFT adapter's weights and LoRA config, as `train --parent-adapter` does. */
  readonly parentAdapterDir?: string;
  /** Must not exist, or be an empty folder. */
  readonly outDir: string;
  /** Named in run.json: what made the export. */
  readonly producer?: string;
  /** The library's ids of the base, the dataset and a parent version, where the app exports (import checks them). */
  readonly library?: { readonly modelId: string; readonly datasetId: string; readonly parentVersionId?: string };
}

export interface ExportRunResult {
  readonly outDir: string;
  readonly settings: TrainSettings;
  readonly trainRows: number;
  readonly valRows: number;
  readonly totalSteps: number;
  readonly tokens: { readonly train: TokenizeReport; readonly val: TokenizeReport };
  readonly datasets: readonly DatasetFileReport[];
  /** Relative paths of every file written. */
  readonly files: readonly string[];
}

/** One row of data/*.jsonl: HF-style labels (the token itself where it is a target, else -100). */
interface ExportedRow {
  readonly line: number;
  readonly input_ids: readonly number[];
  readonly labels: readonly number[];
  /** The text pieces the ids encode, with the engine's prompt / answer mask (unpacked rows only). */
  readonly segments?: readonly TextSegment[];
  /** Whether EOS was appended after the segments. */
  readonly eos?: boolean;
}

function labelsOf(row: TokenizedExample): number[] {
  // Token 0 is never a target (nothing predicts it); the engine's weight at t - 1 is train[t].
  return row.ids.map((id, t) => (t > 0 && row.train[t] === 1 ? id : -100));
}

function refuseNonEmpty(dir: string): void {
  if (!existsSync(dir)) return;
  if (!statSync(dir).isDirectory() || readdirSync(dir).length > 0) {
    throw new HandoffError('OUTPUT_NOT_EMPTY', `${dir} exists and is not an empty folder; choose a new folder for the export (nothing was written)`);
  }
}

/** The LoRA's starting weights in PEFT's orientation: the engine's seeded initialisation (lora/inject.ts). */
export function initialPeftWeights(linears: readonly LinearSpec[], config: LoraConfig, seed: number): Map<string, PeftModuleWeights> {
  const { modules, unmatched } = resolveTargets(linears, config.targetModules);
  const available = [...new Set(linears.map((s) => s.name))].join(', ');
  if (unmatched.length > 0 || modules.length === 0) {
    const what = unmatched.length > 0 ? unmatched.map((u) => `'${u}'`).join(', ') : JSON.stringify(config.targetModules);
    throw new LoraError('NO_TARGET_MODULES', `target modules ${what} match no linear module of this model; available: ${available}`);
  }
  const out = new Map<string, PeftModuleWeights>();
  modules.forEach((spec, index) => {
    const { rank } = moduleSettings(config, spec.path);
    const { At } = initialLoraWeights(spec, rank, hashSeed(seed, index));
    // At [in, r] -> lora_A [r, in]; lora_B [out, r] starts at zero.
    const loraA = new Float32Array(rank * spec.inFeatures);
    for (let i = 0; i < spec.inFeatures; i++) for (let r = 0; r < rank; r++) loraA[r * spec.inFeatures + i] = At[i * rank + r] as number;
    out.set(spec.path, { loraA, loraB: new Float32Array(spec.outFeatures * rank), rank });
  });
  return out;
}

function parentWeights(dir: string, linears: readonly LinearSpec[], settings: TrainSettings): { config: LoraConfig; modules: Map<string, PeftModuleWeights> } {
  const parent = loadAdapter(dir);
  const byPath = new Map(linears.map((s) => [s.path, s]));
  for (const [path, w] of parent.modules) {
    const spec = byPath.get(path);
    if (!spec) throw new LoraError('NO_TARGET_MODULES', `parent adapter module '${path}' is not a linear module of this model`);
    if (w.loraA.length !== w.rank * spec.inFeatures || w.loraB.length !== spec.outFeatures * w.rank) {
      throw new LoraError('INVALID_ADAPTER_FILE', `${path}: lora_A must be [${w.rank}, ${spec.inFeatures}] and lora_B [${spec.outFeatures}, ${w.rank}] for this model`);
    }
  }
  return { config: { ...parent.config, dropout: settings.lora?.dropout ?? parent.config.dropout }, modules: parent.modules };
}

function rowsOf(tokenized: readonly TokenizedExample[], examples: readonly Example[], segmentsOf: (e: Example) => readonly TextSegment[], packed: boolean): ExportedRow[] {
  if (packed) return tokenized.map((row) => ({ line: row.line, input_ids: row.ids, labels: labelsOf(row) }));
  const byLine = new Map(examples.map((e) => [e.line, e]));
  return tokenized.map((row) => {
    const example = byLine.get(row.line) as Example;
    return { line: row.line, input_ids: row.ids, labels: labelsOf(row), segments: segmentsOf(example), eos: example.kind === 'segments' };
  });
}

const jsonl = (rows: readonly ExportedRow[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length > 0 ? '\n' : '');

/** Writes the export folder; see the file's header. Throws HandoffError, TrainError or LoraError naming the problem. */
export async function exportRun(options: ExportRunOptions): Promise<ExportRunResult> {
  const { outDir } = options;
  refuseNonEmpty(outDir);
  const settings = resolveTrainSettings(options.settings);
  if (settings.lora === null) {
    throw new HandoffError('UNSUPPORTED_RUN', 'a full fine-tuning run cannot be exported for PEFT; export a LoRA run (leave out --full)');
  }
  const summary = inspectModel(options.modelDir);
  const tokenizer = await loadTokenizer(options.modelDir);
  const parent = options.parentAdapterDir ? parentWeights(options.parentAdapterDir, summary.linears, settings) : null;
  const lora = parent?.config ?? settings.lora;
  const initial = parent?.modules ?? initialPeftWeights(summary.linears, lora, settings.seed);

  const dataset = loadDataset({ ...options.data, valSplit: settings.valSplit, seed: settings.seed });
  const tokenizeOptions = { maxSeqLen: settings.maxSeqLen, trainOnPrompt: settings.trainOnPrompt };
  const train = tokenizeExamples(dataset.train, tokenizer, tokenizeOptions);
  const val = tokenizeExamples(dataset.val, tokenizer, tokenizeOptions);
  const trainRows = settings.packing ? packExamples(train.examples, settings.maxSeqLen) : train.examples;
  const segmentsOf = (e: Example): readonly TextSegment[] => (e.kind === 'chat' ? chatSegments(tokenizer, e.messages) : e.segments);
  const padId = padIdOf(summary, tokenizer);
  const totalSteps = totalStepsFor(trainRows.length, settings);
  const adam = new AdamW(new Map());

  const fanInFanOut = summary.linears.some((s) => s.fanInFanOut);
  const nameOrPath = options.base.hubId ?? options.modelDir;
  const adapterFiles = peftAdapterFiles(lora, initial, { baseModelNameOrPath: nameOrPath, fanInFanOut });
  const adapterConfig = JSON.parse(adapterFiles.get(ADAPTER_CONFIG_FILE) as string) as Record<string, unknown>;
  // PEFT's LoraConfig(**lora_config.json): the fields this run sets, in PEFT's names.
  const loraConfig = Object.fromEntries(
    ['task_type', 'target_modules', 'r', 'lora_alpha', 'lora_dropout', 'use_rslora', 'bias', 'fan_in_fan_out', 'rank_pattern', 'alpha_pattern'].map((k) => [k, adapterConfig[k]]),
  );
  const run = {
    format: RUN_EXPORT_FORMAT,
    created_at: new Date().toISOString(),
    producer: options.producer ?? 'lorasmith',
    library: options.library ?? null,
    base_model: {
      hub_id: options.base.hubId, path: options.modelDir, content_hash: options.base.contentHash,
      model_type: summary.config.modelType, architectures: summary.architectures, parameters: summary.parameterCount,
    },
    parent_adapter: options.parentAdapterDir ? { path: options.parentAdapterDir, content_hash: hashFile(join(options.parentAdapterDir, ADAPTER_WEIGHTS_FILE)) } : null,
    dataset: {
      files: dataset.files.map((f) => ({ path: f.path, format: f.format, file_type: f.fileType, content_hash: f.contentHash, records: f.records, valid: f.valid, skipped: f.skipped })),
      train_rows: trainRows.length, val_rows: val.examples.length,
      tokens: { train: { ...train.report, skipped: train.report.skipped.length }, val: { ...val.report, skipped: val.report.skipped.length } },
    },
    tokenization: {
      bos_token_id: bosToAdd(tokenizer, []), eos_token_id: tokenizer.eosTokenIds[0] ?? null, pad_id: padId,
      max_length: settings.maxSeqLen, train_on_prompt: settings.trainOnPrompt, packing: settings.packing, chat_template: tokenizer.chatTemplate,
    },
    lora: loraConfig,
    hyperparameters: {
      optimizer: 'adamw_torch', adam_beta1: adam.beta1, adam_beta2: adam.beta2, adam_epsilon: adam.epsilon, weight_decay: settings.weightDecay,
      learning_rate: settings.learningRate, lr_scheduler_type: settings.scheduler, warmup_steps: settings.warmupSteps,
      per_device_train_batch_size: settings.batchSize, gradient_accumulation_steps: settings.gradAccum,
      num_train_epochs: settings.epochs, max_steps: settings.maxSteps, steps_per_epoch: stepsPerEpoch(trainRows.length, settings), total_steps: totalSteps,
      max_grad_norm: settings.maxGradNorm, seed: settings.seed, eval_steps: settings.evalEvery, early_stopping_patience: settings.earlyStoppingPatience,
      keep_weights: settings.keepWeights,
      max_length: settings.maxSeqLen,
    },
    /** The engine's own words, for importing the result back with the same settings. */
    settings: { ...settings, lora },
    /** What requirements.txt pins; the import compares them with the versions train.py ran with. */
    tested_versions: TESTED_VERSIONS,
  };

  const files = new Map<string, string>([
    [RUN_FILE, JSON.stringify(run, null, 2) + '\n'],
    ['lora_config.json', JSON.stringify(loraConfig, null, 2) + '\n'],
    ['data/train.jsonl', jsonl(rowsOf(trainRows, dataset.train, segmentsOf, settings.packing))],
    ['data/val.jsonl', jsonl(rowsOf(val.examples, dataset.val, segmentsOf, false))],
    ['train.py', TRAIN_SCRIPT],
    ['requirements.txt', requirementsTxt(TESTED_VERSIONS)],
    ...Object.entries(accelerateConfigFiles(settings)),
  ]);
  files.set('README.md', bundleReadme(run, [...files.keys(), `${INITIAL_ADAPTER_DIR}/${ADAPTER_CONFIG_FILE}`, `${INITIAL_ADAPTER_DIR}/${ADAPTER_WEIGHTS_FILE}`]));

  const parentDir = dirname(outDir);
  mkdirSync(parentDir, { recursive: true });
  // Staged under the one temp-naming scheme (main/common/atomic): a crashed export's temp is swept by the next one here.
  sweepTemps(parentDir, { recursive: false });
  const staging = tempSibling(outDir);
  mkdirSync(staging);
  try {
    for (const [path, text] of files) {
      mkdirSync(dirname(join(staging, path)), { recursive: true });
      writeFileSync(join(staging, path), text);
    }
    writeFolderAtomically(join(staging, INITIAL_ADAPTER_DIR), adapterFiles);
    refuseNonEmpty(outDir);
    fsyncTree(staging);
    publishDir(staging, outDir); // an empty folder there is replaced
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  }
  return {
    outDir, settings: { ...settings, lora }, trainRows: trainRows.length, valRows: val.examples.length, totalSteps,
    tokens: { train: train.report, val: val.report }, datasets: dataset.files,
    files: [...files.keys(), `${INITIAL_ADAPTER_DIR}/${ADAPTER_CONFIG_FILE}`, `${INITIAL_ADAPTER_DIR}/${ADAPTER_WEIGHTS_FILE}`].sort(),
  };
}
