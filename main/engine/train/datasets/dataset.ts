/**
 * The examples a run trains and validates on: a dataset file (as given, or as an import normalized it), or a
 * train file and a validation file, with a seeded train / validation split.
 */
import { TrainError } from '../errors';
import { hashSeed, Rng } from '../rng';
import type { Example } from './formats';
import { readDataset, type DatasetFileReport, type NormalizeOptions } from './normalize';

export interface DatasetOptions extends NormalizeOptions {
  /** A dataset file as given, or a normalized file an import stored. */
  readonly path: string;
  /** A separate validation file (same format); takes precedence over valSplit. */
  readonly valPath?: string;
  /** Fraction of the records held out for validation, 0 for none; 'auto': 0.1 from 10 valid records up, else none. */
  readonly valSplit?: number | 'auto';
  readonly seed?: number;
}

export interface LoadedDataset {
  readonly train: readonly Example[];
  readonly val: readonly Example[];
  readonly files: readonly DatasetFileReport[];
}

/** Reads (see readDataset), then splits. */
export function loadDataset(options: DatasetOptions): LoadedDataset {
  const requested = options.valSplit ?? 0;
  if (requested !== 'auto' && !(requested >= 0 && requested < 1)) {
    throw new TrainError('INVALID_TRAIN_CONFIG', `valSplit must be in [0, 1) or 'auto', got ${String(requested)}`);
  }
  const main = readDataset(options.path, options);
  const fraction = requested === 'auto' ? (main.examples.length >= 10 ? 0.1 : 0) : requested;
  if (options.valPath) {
    const val = readDataset(options.valPath, { format: options.format ?? main.report.format, fileType: options.fileType });
    return { train: main.examples, val: val.examples, files: [main.report, val.report] };
  }
  if (fraction === 0) return { train: main.examples, val: [], files: [main.report] };
  const order = new Rng(hashSeed(options.seed ?? 0, 0x5b1)).shuffle(main.examples.map((_, i) => i));
  const valCount = Math.max(1, Math.round(main.examples.length * fraction));
  if (valCount >= main.examples.length) {
    throw new TrainError('INVALID_TRAIN_CONFIG', `valSplit ${fraction} leaves no training records out of ${main.examples.length}; lower it or add records`);
  }
  const valSet = new Set(order.slice(0, valCount));
  return {
    train: main.examples.filter((_, i) => !valSet.has(i)),
    val: main.examples.filter((_, i) => valSet.has(i)),
    files: [main.report],
  };
}
