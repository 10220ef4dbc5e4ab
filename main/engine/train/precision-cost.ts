/**
 * What a smaller base costs on the user's own data, measured: the base's frozen weights held at 8 bits (Q8_0) or
 * 4 bits (Q4_0) instead of 16 (BF16, or an F16 file as it is) change the model's outputs; this runs a few
 * validation batches through the model at each precision and reports the validation-loss difference against the
 * 16-bit base with the memory each takes ("Q8_0: +0.003 loss, 0.55 GB less"). The app asks it through the engine
 * host, the CLI with `train --measure-precision`.
 *
 * Each precision loads its own copy of the base from the folder into the active backend's frozen-weight store,
 * one after the other (at most one extra base held at a time), and its bytes are what the store took for it.
 */
import { activeFrozenStore, type BasePrecision, type StoredFormat } from '../backend/frozen';
import type { TextTokenizer } from '../io/prompt';
import { loadModel } from '../models/registry';
import type { CausalLM } from '../models/types';
import { loadDataset, type DatasetOptions } from './datasets/dataset';
import { TrainError } from './errors';
import { evaluateRows } from './loop';
import { padIdOf, resolveTrainSettings, type TrainSettingsInput } from './settings';
import { tokenizeExamples } from './tokenize';

/** The precision the others are measured against: 16 bits (a BF16 or F16 file as stored, an F32 file as BF16). */
export const REFERENCE_PRECISION: BasePrecision = 'bf16';
/** The smaller precisions measured against it when the caller names none. */
export const MEASURED_PRECISIONS: readonly BasePrecision[] = ['q8_0', 'q4_0'];

export interface PrecisionCostOptions {
  /** The base folder (or GGUF file) the model is loaded from. */
  readonly modelDir: string;
  readonly tokenizer: TextTokenizer;
  /** The run's dataset: its validation rows are scored (its training rows where it holds none out). */
  readonly data: Omit<DatasetOptions, 'valSplit' | 'seed'>;
  /** The run's settings: the split, seed, sequence length, prompt masking and batch size it would use. */
  readonly settings?: TrainSettingsInput;
  /** Measured against the reference, in this order; default MEASURED_PRECISIONS. */
  readonly precisions?: readonly BasePrecision[];
  /** Batches scored (default 4): a few, so the answer comes in seconds to a minute. */
  readonly batches?: number;
  readonly signal?: AbortSignal;
  /** Called as each copy starts loading and after each batch it scores (the app shows it: a real size takes minutes). */
  readonly onProgress?: (progress: PrecisionProgress) => void;
}

export interface PrecisionProgress {
  readonly precision: BasePrecision;
  /** Loading this copy of the base, or scoring it (`batch` of `batches` done). */
  readonly stage: 'loading' | 'scoring';
  /** This copy's place (1-based, the reference first) among `copies`. */
  readonly copy: number;
  readonly copies: number;
  readonly batch: number;
  readonly batches: number;
}

export interface PrecisionMeasure {
  readonly precision: BasePrecision;
  /** How the store held the linear weights (the first one's format: a mixed file reports its first). */
  readonly format: StoredFormat;
  /** Mean cross-entropy over the scored target tokens. */
  readonly loss: number;
  /** Bytes the store took for this copy of the base. */
  readonly baseBytes: number;
  /** loss − the reference's (positive: worse than 16 bits). */
  readonly lossDelta: number;
  /** The reference's bytes − these (positive: smaller). */
  readonly bytesSaved: number;
}

export interface PrecisionCost {
  readonly reference: PrecisionMeasure;
  readonly others: readonly PrecisionMeasure[];
  /** Which rows were scored, how many, and their target tokens. */
  readonly rows: 'validation' | 'training';
  readonly examples: number;
  readonly tokens: number;
}

/** Loads the base at `precision`, scores `rows` and frees it again. */
async function measureOne(
  options: PrecisionCostOptions, precision: BasePrecision, score: (model: CausalLM, precision: BasePrecision) => Promise<number>,
): Promise<Omit<PrecisionMeasure, 'lossDelta' | 'bytesSaved'>> {
  const store = activeFrozenStore();
  if (!store) throw new TrainError('INVALID_TRAIN_CONFIG', 'the base precision applies to the frozen-weight store, which the active backend lacks');
  const before = store.liveBytes();
  const model = await loadModel(options.modelDir, { precision });
  try {
    const baseBytes = store.liveBytes() - before;
    const first = model.linears.values().next().value;
    const format = first && first.weight.format !== 'tensor' ? first.weight.format : null;
    if (format === null) throw new TrainError('INVALID_TRAIN_CONFIG', `${options.modelDir}: the base did not load into the frozen-weight store, so its precision cannot be chosen`);
    return { precision, format, loss: await score(model, precision), baseBytes };
  } finally {
    model.dispose();
  }
}

/** Measures each precision against REFERENCE_PRECISION on the run's own rows; see PrecisionCost. */
export async function measurePrecisionCost(options: PrecisionCostOptions): Promise<PrecisionCost> {
  const settings = resolveTrainSettings(options.settings);
  const batches = options.batches ?? 4;
  if (!Number.isSafeInteger(batches) || batches < 1) throw new TrainError('INVALID_TRAIN_CONFIG', `batches must be a positive integer, got ${batches}`);
  const dataset = loadDataset({ ...options.data, valSplit: settings.valSplit, seed: settings.seed });
  const source = dataset.val.length > 0 ? 'validation' : 'training';
  const tokenized = tokenizeExamples(source === 'validation' ? dataset.val : dataset.train, options.tokenizer, { maxSeqLen: settings.maxSeqLen, trainOnPrompt: settings.trainOnPrompt });
  const rows = tokenized.examples.slice(0, batches * settings.batchSize);
  if (rows.length === 0) throw new TrainError('EMPTY_DATASET', `${options.data.path}: no example has a target token to score`);
  const precisions = options.precisions ?? MEASURED_PRECISIONS;
  const copies = precisions.length + 1;
  const batchCount = Math.ceil(rows.length / settings.batchSize);
  let copy = 0;
  const cancelled = () => new TrainError('CANCELLED', 'measuring the base precision was cancelled');
  const progress = (precision: BasePrecision, stage: PrecisionProgress['stage'], batch: number) =>
    options.onProgress?.({ precision, stage, copy, copies, batch, batches: batchCount });
  let tokens = 0;
  // Batch by batch (the sums as evaluateRows adds them), so progress shows and a cancel stops between batches.
  const score = async (model: CausalLM, precision: BasePrecision): Promise<number> => {
    let sum = 0;
    let count = 0;
    for (let b = 0; b < batchCount; b++) {
      if (options.signal?.aborted) throw cancelled();
      const result = await evaluateRows(model, rows.slice(b * settings.batchSize, (b + 1) * settings.batchSize), padIdOf(model, options.tokenizer), settings.batchSize);
      sum += result.loss * result.tokens;
      count += result.tokens;
      progress(precision, 'scoring', b + 1);
    }
    tokens = count;
    return sum / count;
  };
  const measure = (precision: BasePrecision) => {
    if (options.signal?.aborted) throw cancelled();
    copy++;
    progress(precision, 'loading', 0);
    return measureOne(options, precision, score);
  };
  const reference = await measure(REFERENCE_PRECISION);
  const others: PrecisionMeasure[] = [];
  for (const precision of precisions) {
    const measured = await measure(precision);
    others.push({ ...measured, lossDelta: measured.loss - reference.loss, bytesSaved: reference.baseBytes - measured.baseBytes });
  }
  return { reference: { ...reference, lossDelta: 0, bytesSaved: 0 }, others, rows: source, examples: rows.length, tokens };
}

/** "Q8_0: +0.003 loss, 0.55 GB less" for each measured precision, after the reference's own line. */
export function describePrecisionCost(cost: PrecisionCost): string[] {
  const size = (bytes: number) => (bytes >= 1e8 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`);
  const signed = (v: number) => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(3)}`;
  return [
    `${cost.reference.format}: loss ${cost.reference.loss.toFixed(4)} on ${cost.examples} ${cost.rows} examples (${cost.tokens} target tokens), ${size(cost.reference.baseBytes)}`,
    ...cost.others.map((m) => `${m.format}: ${signed(m.lossDelta)} loss, ${size(Math.abs(m.bytesSaved))} ${m.bytesSaved >= 0 ? 'less' : 'more'}`),
  ];
}
