/**
 * A dataset file (or a train file and a validation file) to validated examples, with a report of every record
 * skipped and why, the format detected (or forced), and a seeded train / validation split.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TrainError } from '../errors';
import { hashSeed, Rng } from '../rng';
import { detectFormat, toExamples, type DatasetFormat, type Example } from './formats';
import { readDatasetFile, type DatasetIssue, type FileType } from './read';

export interface DatasetOptions {
  readonly path: string;
  /** Force a record format instead of detecting it. */
  readonly format?: DatasetFormat;
  /** Force a file type instead of the extension's. */
  readonly fileType?: FileType;
  /** A separate validation file (same format); takes precedence over valFraction. */
  readonly valPath?: string;
  /** Fraction of the records held out for validation, 0 for none; 'auto': 0.1 from 10 valid records up, else none. */
  readonly valFraction?: number | 'auto';
  readonly seed?: number;
}

export interface DatasetFileReport {
  readonly path: string;
  readonly fileType: FileType;
  readonly format: DatasetFormat;
  readonly sha256: string;
  readonly records: number;
  readonly valid: number;
  readonly skipped: number;
  /** Every record skipped, by line, with what is wrong. */
  readonly issues: readonly DatasetIssue[];
}

export interface LoadedDataset {
  readonly train: readonly Example[];
  readonly val: readonly Example[];
  readonly files: readonly DatasetFileReport[];
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function loadFile(path: string, options: Pick<DatasetOptions, 'format' | 'fileType'>): { examples: Example[]; report: DatasetFileReport } {
  const read = readDatasetFile(path, options.fileType);
  const format = options.format ?? detectFormat(read.records);
  if (format === null) {
    const keys = read.records[0] && typeof read.records[0].value === 'object' && read.records[0].value !== null ? Object.keys(read.records[0].value).join(', ') : 'none';
    throw new TrainError(
      'INVALID_DATASET',
      `${path}: cannot tell the record format (first record's keys: ${keys}); expected prompt/completion, instruction/output (alpaca), messages (chat), conversations (ShareGPT) or text, or force one with a format option`,
    );
  }
  const { examples, issues } = toExamples(read.records, format);
  const allIssues = [...read.issues, ...issues].sort((a, b) => a.line - b.line);
  const report: DatasetFileReport = {
    path,
    fileType: read.fileType,
    format,
    sha256: sha256File(path),
    records: read.records.length + read.issues.length,
    valid: examples.length,
    skipped: allIssues.length,
    issues: allIssues,
  };
  if (examples.length === 0) {
    const first = allIssues.slice(0, 3).map((i) => `line ${i.line}: ${i.message}`).join('; ');
    throw new TrainError('EMPTY_DATASET', `${path}: no valid ${format} records${first ? ` (${first})` : ''}`);
  }
  return { examples, report };
}

/** Reads, validates and splits. Bad records are skipped and each is reported; an empty result is an error. */
export function loadDataset(options: DatasetOptions): LoadedDataset {
  const requested = options.valFraction ?? 0;
  if (requested !== 'auto' && !(requested >= 0 && requested < 1)) {
    throw new TrainError('INVALID_TRAIN_CONFIG', `valFraction must be in [0, 1) or 'auto', got ${String(requested)}`);
  }
  const main = loadFile(options.path, options);
  const fraction = requested === 'auto' ? (main.examples.length >= 10 ? 0.1 : 0) : requested;
  if (options.valPath) {
    const val = loadFile(options.valPath, { format: options.format ?? main.report.format, fileType: options.fileType });
    return { train: main.examples, val: val.examples, files: [main.report, val.report] };
  }
  if (fraction === 0) return { train: main.examples, val: [], files: [main.report] };
  const order = new Rng(hashSeed(options.seed ?? 0, 0x5b1)).shuffle(main.examples.map((_, i) => i));
  const valCount = Math.max(1, Math.round(main.examples.length * fraction));
  if (valCount >= main.examples.length) {
    throw new TrainError('INVALID_TRAIN_CONFIG', `valFraction ${fraction} leaves no training records out of ${main.examples.length}; lower it or add records`);
  }
  const valSet = new Set(order.slice(0, valCount));
  return {
    train: main.examples.filter((_, i) => !valSet.has(i)),
    val: main.examples.filter((_, i) => valSet.has(i)),
    files: [main.report],
  };
}
