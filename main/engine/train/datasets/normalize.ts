/**
 * The one normalisation of a dataset: a file as the user gave it (JSONL, JSON, CSV or text, in any record format)
 * to validated examples, with a report of every record skipped and why. An import stores the result as a
 * normalized JSONL: a header line holding the report, then one example per line. Training and previews read
 * that file back (readDataset below) and get exactly what normalising the original file gives.
 */
import { closeSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tempSibling } from '../../../common/atomic';
import { hashFile } from '../../../common/hash';
import { TrainError } from '../errors';
import { detectFormat, toExamples, DATASET_FORMATS, type ChatRole, type DatasetFormat, type Example } from './formats';
import { FILE_TYPES, type DatasetIssue, type FileType, type RawRecord } from './read';
import { readDatasetFile } from './stream';

/** The header's `format`: names a normalized file, and its layout's version. */
export const NORMALIZED_DATASET_FORMAT = 'lorasmith-normalized-dataset/1';
/** Issues a normalized file keeps in its header; `skipped` still counts them all. */
export const STORED_ISSUES = 1000;

export interface DatasetFileReport {
  /** The file as the user gave it (where it was when it was normalised). */
  readonly path: string;
  readonly fileType: FileType;
  readonly format: DatasetFormat;
  /** main/common/hash's hashFile of that file: the library's dataset hash, for lineage. */
  readonly contentHash: string;
  readonly records: number;
  readonly valid: number;
  readonly skipped: number;
  /** Every record skipped, by line, with what is wrong. */
  readonly issues: readonly DatasetIssue[];
}

export interface NormalizedDataset {
  readonly report: DatasetFileReport;
  /** The valid records, in file order. */
  readonly examples: readonly Example[];
}

export interface NormalizeOptions {
  /** Force a record format instead of detecting it. */
  readonly format?: DatasetFormat;
  /** Force a file type instead of the extension's. */
  readonly fileType?: FileType;
  /** The path the report names, where it is not the path read (an import normalises its own copy of the user's file). */
  readonly reportedPath?: string;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new TrainError('INVALID_DATASET', `cannot read dataset ${path}: ${(error as Error).message}`);
  }
}

/** How many records are looked at to detect the format. */
const DETECT_FROM = 200;

interface StreamOptions extends NormalizeOptions {
  /** Issues to keep in the report (all are counted); every one by default. */
  readonly keepIssues?: number;
  /** Stop after this many examples (previews); the report then covers what was read. */
  readonly stopAfter?: number;
}

class EnoughRead extends Error {}

/**
 * The normalisation itself, streamed: records from the file (stream.ts, bounded memory), the format detected
 * from the first ones (or forced), each record validated into an example for `onExample` or an issue.
 */
function normalizeStream(path: string, options: StreamOptions, onExample: (example: Example) => void): DatasetFileReport {
  let format: DatasetFormat | null = options.format ?? null;
  const waiting: RawRecord[] = [];
  const issues: DatasetIssue[] = [];
  const keep = options.keepIssues ?? Number.POSITIVE_INFINITY;
  let records = 0;
  let valid = 0;
  let skipped = 0;
  const issue = (i: DatasetIssue) => {
    skipped++;
    if (issues.length < keep) issues.push(i);
  };
  const convert = (batch: readonly RawRecord[], f: DatasetFormat) => {
    const result = toExamples(batch, f);
    for (const i of result.issues) issue(i);
    for (const e of result.examples) {
      valid++;
      onExample(e);
      if (options.stopAfter !== undefined && valid >= options.stopAfter) throw new EnoughRead();
    }
  };
  const detect = () => {
    format = detectFormat(waiting);
    if (format === null) {
      const first = waiting[0]?.value;
      const keys = typeof first === 'object' && first !== null ? Object.keys(first).join(', ') : 'none';
      throw new TrainError(
        'INVALID_DATASET',
        `${path}: cannot tell the record format (first record's keys: ${keys}); expected prompt/completion, instruction/output (alpaca), messages, conversations (ShareGPT) or text, or force one with a format option`,
      );
    }
    convert(waiting.splice(0), format);
  };
  let fileType: FileType = options.fileType ?? 'jsonl';
  try {
    fileType = readDatasetFile(path, {
      record(r) {
        records++;
        if (format !== null) return convert([r], format);
        waiting.push(r);
        if (waiting.length >= DETECT_FROM) detect();
      },
      issue(i) {
        records++;
        issue(i);
      },
    }, options.fileType);
    if (format === null && waiting.length > 0) detect();
  } catch (error) {
    if (!(error instanceof EnoughRead)) throw error;
  }
  issues.sort((a, b) => a.line - b.line);
  const found: DatasetFormat | null = format;
  if (records === 0) {
    throw new TrainError('EMPTY_DATASET', `${path} is empty: it holds no records; a dataset needs one record per line (JSONL, e.g. {"prompt": "...", "completion": "..."}), a JSON array, CSV rows under a header, or plain text`);
  }
  if (valid === 0 || found === null) {
    const first = issues.slice(0, 3).map((i) => `line ${i.line}: ${i.message}`).join('; ');
    throw new TrainError('EMPTY_DATASET', `${path}: no valid ${found ? `${found} ` : ''}records${first ? ` (${first})` : ''}`);
  }
  return { path: options.reportedPath ?? path, fileType, format: found, contentHash: hashFile(path), records, valid, skipped, issues };
}

/** Reads, validates and converts a dataset file as given. Bad records are reported; none valid is an error. */
export function normalizeDataset(path: string, options: NormalizeOptions = {}): NormalizedDataset {
  const examples: Example[] = [];
  const report = normalizeStream(path, options, (e) => examples.push(e));
  return { report, examples };
}

/**
 * Normalises `path` straight into a normalized JSONL at `outPath` (header, then the examples), in bounded memory
 * whatever the file's size: the examples stream into a temp file beside it, the header (which needs the counts)
 * goes first into `outPath`, then the examples are copied after it. Returns the report.
 */
export function normalizeDatasetToFile(path: string, outPath: string, options: NormalizeOptions = {}): DatasetFileReport {
  const body = tempSibling(outPath);
  const out = openSync(body, 'w');
  let pending: string[] = [];
  let pendingChars = 0;
  const flush = () => {
    if (pending.length === 0) return;
    writeSync(out, pending.join(''));
    pending = [];
    pendingChars = 0;
  };
  try {
    const report = normalizeStream(path, { ...options, keepIssues: STORED_ISSUES }, (e) => {
      const text = JSON.stringify(e) + '\n';
      pending.push(text);
      pendingChars += text.length;
      if (pendingChars > 1 << 20) flush();
    });
    flush();
    closeSync(out);
    const header = JSON.stringify({ format: NORMALIZED_DATASET_FORMAT, report }) + '\n';
    writeFileSync(outPath, header);
    const to = openSync(outPath, 'a');
    try {
      const from = openSync(body, 'r');
      try {
        const buffer = Buffer.allocUnsafe(1 << 20);
        for (let n = readSync(from, buffer); n > 0; n = readSync(from, buffer)) writeSync(to, buffer, 0, n);
      } finally {
        closeSync(from);
      }
    } finally {
      closeSync(to);
    }
    return report;
  } catch (error) {
    try {
      closeSync(out);
    } catch {
      // closed already
    }
    throw error;
  } finally {
    rmSync(body, { force: true });
  }
}

/** Writes the normalized JSONL (header, then the examples). The caller picks a temp path and moves it in. */
export function writeNormalizedDataset(path: string, dataset: NormalizedDataset): void {
  const report = { ...dataset.report, issues: dataset.report.issues.slice(0, STORED_ISSUES) };
  const lines = [JSON.stringify({ format: NORMALIZED_DATASET_FORMAT, report }), ...dataset.examples.map((e) => JSON.stringify(e))];
  writeFileSync(path, lines.join('\n') + '\n');
}

/**
 * A dataset as training and previews read it: a normalized file as stored, or any other file normalised now.
 * A forced format must agree with the one a normalized file was made with.
 */
export function readDataset(path: string, options: NormalizeOptions = {}): NormalizedDataset {
  if (!isNormalizedDatasetFile(path)) return normalizeDataset(path, options);
  const text = readText(path);
  const header = headerOf(text);
  if (header === null) return normalizeDataset(path, options);
  const dataset = parseNormalized(path, text, header);
  if (options.format !== undefined && options.format !== dataset.report.format) {
    throw new TrainError('INVALID_DATASET', `${path} holds ${dataset.report.format} records, not ${options.format}; drop the format option or import the file again with that format`);
  }
  return dataset;
}

/**
 * The first `limit` examples of a dataset as training would read them, and its report, in bounded memory
 * (previews): a normalized file's header and first lines, or the first records of any other file normalised now.
 */
export function readDatasetHead(path: string, limit: number, options: NormalizeOptions = {}): NormalizedDataset {
  if (!isNormalizedDatasetFile(path)) {
    const examples: Example[] = [];
    const report = normalizeStream(path, { ...options, keepIssues: STORED_ISSUES, stopAfter: limit }, (e) => examples.push(e));
    return { report, examples };
  }
  let report: DatasetFileReport | null = null;
  const examples: Example[] = [];
  try {
    readDatasetFile(path, {
      record(r) {
        if (report === null) {
          report = checkReport(path, (r.value as { report?: unknown }).report);
          if (options.format !== undefined && options.format !== report.format) {
            throw new TrainError('INVALID_DATASET', `${path} holds ${report.format} records, not ${options.format}; import the file again with that format`);
          }
          return;
        }
        if (!checkExample(r.value)) corrupt(path, r.line, 'not a normalized example');
        examples.push(r.value);
        if (examples.length >= limit) throw new EnoughRead();
      },
      issue: (i) => corrupt(path, i.line, i.message),
    }, 'jsonl');
  } catch (error) {
    if (!(error instanceof EnoughRead)) throw error;
  }
  if (report === null) corrupt(path, 1, 'the header is missing');
  return { report, examples };
}

/**
 * Which file of a stored dataset to read: its normalized file, unless there is none or it predates the header
 * (an older import), in which case the original, normalised again with the format recorded at import.
 */
export function storedDatasetFile(stored: { readonly normalized: string | null; readonly original: string }): string {
  return stored.normalized !== null && isNormalizedDatasetFile(stored.normalized) ? stored.normalized : stored.original;
}

/** True when the file starts with a normalized dataset's header (only its first line is read). */
export function isNormalizedDatasetFile(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  try {
    const chunk = Buffer.alloc(256);
    const n = readSync(fd, chunk, 0, chunk.length, 0);
    return chunk.subarray(0, n).toString('utf8').startsWith(`{"format":${JSON.stringify(NORMALIZED_DATASET_FORMAT)}`);
  } finally {
    closeSync(fd);
  }
}

function headerOf(text: string): Record<string, unknown> | null {
  const end = text.indexOf('\n');
  try {
    const first: unknown = JSON.parse(end < 0 ? text : text.slice(0, end));
    const isHeader = typeof first === 'object' && first !== null && (first as { format?: unknown }).format === NORMALIZED_DATASET_FORMAT;
    return isHeader ? (first as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function corrupt(path: string, line: number, why: string): never {
  throw new TrainError('INVALID_DATASET', `${path}:${line}: ${why}; the normalized file is damaged: import the dataset again`);
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isIssue = (v: unknown): v is DatasetIssue =>
  typeof v === 'object' && v !== null && isCount((v as DatasetIssue).line) && typeof (v as DatasetIssue).message === 'string';

function checkReport(path: string, value: unknown): DatasetFileReport {
  const r = (typeof value === 'object' && value !== null ? value : {}) as Partial<Record<keyof DatasetFileReport, unknown>>;
  const ok = typeof r.path === 'string' && FILE_TYPES.includes(r.fileType as FileType) && DATASET_FORMATS.includes(r.format as DatasetFormat)
    && typeof r.contentHash === 'string' && isCount(r.records) && isCount(r.valid) && isCount(r.skipped)
    && Array.isArray(r.issues) && r.issues.every(isIssue);
  if (!ok) corrupt(path, 1, 'the header does not describe a dataset');
  return r as unknown as DatasetFileReport;
}

const ROLES: readonly ChatRole[] = ['system', 'user', 'assistant'];

function checkExample(value: unknown): value is Example {
  if (typeof value !== 'object' || value === null) return false;
  const e = value as { line?: unknown; kind?: unknown; segments?: unknown; messages?: unknown };
  if (!isCount(e.line)) return false;
  if (e.kind === 'segments') {
    return Array.isArray(e.segments) && e.segments.every((s: { text?: unknown; train?: unknown }) => typeof s?.text === 'string' && typeof s.train === 'boolean');
  }
  return e.kind === 'chat' && Array.isArray(e.messages) && e.messages.length > 0
    && e.messages.every((m: { role?: unknown; content?: unknown }) => ROLES.includes(m?.role as ChatRole) && typeof m.content === 'string');
}

function parseNormalized(path: string, text: string, header: Record<string, unknown>): NormalizedDataset {
  const report = checkReport(path, header.report);
  const examples: Example[] = [];
  text.split('\n').forEach((raw, i) => {
    if (i === 0 || raw.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (error) {
      corrupt(path, i + 1, `invalid JSON (${(error as Error).message})`);
    }
    if (!checkExample(value)) corrupt(path, i + 1, 'not a normalized example');
    examples.push(value);
  });
  if (examples.length !== report.valid) corrupt(path, 1, `the header promises ${report.valid} examples, the file holds ${examples.length}`);
  return { report, examples };
}
