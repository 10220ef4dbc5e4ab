/**
 * Parses a dataset file's text into records, each with the line it starts on: JSONL (one object per line), a JSON array,
 * CSV with a header row (RFC 4180 quoting), or plain text (documents separated by blank lines, as {text}).
 * Unparseable records become issues with their line; nothing is dropped silently.
 */
import { extname } from 'node:path';
import { TrainError } from '../errors';

export type FileType = 'jsonl' | 'json' | 'csv' | 'text';
export const FILE_TYPES: readonly FileType[] = ['jsonl', 'json', 'csv', 'text'];

export interface RawRecord {
  /** 1-based line where the record starts. */
  readonly line: number;
  readonly value: unknown;
}

export interface DatasetIssue {
  readonly line: number;
  readonly message: string;
}

export interface ReadResult {
  readonly fileType: FileType;
  readonly records: RawRecord[];
  readonly issues: DatasetIssue[];
}

/** From the extension; a .json file whose first character is not '[' is read as JSONL. */
export function detectFileType(path: string, text: string): FileType {
  const ext = extname(path).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.csv') return 'csv';
  if (ext === '.txt' || ext === '.md') return 'text';
  const first = text.trimStart()[0];
  if (first === '[') return 'json';
  if (first === '{') return 'jsonl';
  return 'text';
}

function readJsonl(text: string): ReadResult {
  const records: RawRecord[] = [];
  const issues: DatasetIssue[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === '') return;
    try {
      records.push({ line: i + 1, value: JSON.parse(raw) });
    } catch (error) {
      issues.push({ line: i + 1, message: `invalid JSON: ${(error as Error).message}` });
    }
  });
  return { fileType: 'jsonl', records, issues };
}

/** The line on which each top-level element of a JSON array starts (a scan that respects strings). */
function arrayElementLines(text: string): number[] {
  const lines: number[] = [];
  let line = 1;
  let depth = 0;
  let inString = false;
  let expectValue = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') line++;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') continue;
    if (depth === 1 && expectValue && c !== ']') {
      lines.push(line);
      expectValue = false;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      depth++;
      if (depth === 1) expectValue = true;
    } else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 1) expectValue = true;
  }
  return lines;
}

function readJsonArray(text: string): ReadResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new TrainError('INVALID_DATASET', `invalid JSON: ${(error as Error).message}; a .json dataset must be one array of records (or use .jsonl, one record per line)`);
  }
  if (!Array.isArray(parsed)) throw new TrainError('INVALID_DATASET', `a .json dataset must be an array of records, got ${typeof parsed}`);
  const lines = arrayElementLines(text);
  return { fileType: 'json', records: parsed.map((value, i) => ({ line: lines[i] ?? 1, value })), issues: [] };
}

/** RFC 4180: fields separated by commas, optionally quoted with "" for a literal quote; newlines inside quotes. */
function parseCsvRows(text: string): { line: number; fields: string[] }[] {
  const rows: { line: number; fields: string[] }[] = [];
  let fields: string[] = [];
  let field = '';
  let inQuotes = false;
  let line = 1;
  let rowLine = 1;
  const endRow = () => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0] === '')) rows.push({ line: rowLine, fields });
    fields = [];
    field = '';
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (inQuotes) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') inQuotes = false;
      else {
        if (c === '\n') line++;
        field += c;
      }
    } else if (c === '"' && field === '') inQuotes = true;
    else if (c === ',') {
      fields.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRow();
      line++;
      rowLine = line;
    } else field += c;
  }
  if (field !== '' || fields.length > 0) endRow();
  return rows;
}

function readCsv(text: string): ReadResult {
  const rows = parseCsvRows(text.replace(/^\uFEFF/, ''));
  const header = rows[0];
  if (!header) throw new TrainError('EMPTY_DATASET', 'the CSV file is empty; it needs a header row (e.g. prompt,completion) and records');
  const names = header.fields.map((f) => f.trim());
  const records: RawRecord[] = [];
  const issues: DatasetIssue[] = [];
  for (const row of rows.slice(1)) {
    if (row.fields.length !== names.length) {
      issues.push({ line: row.line, message: `has ${row.fields.length} fields, the header has ${names.length} (${names.join(', ')})` });
      continue;
    }
    records.push({ line: row.line, value: Object.fromEntries(names.map((n, i) => [n, row.fields[i]])) });
  }
  return { fileType: 'csv', records, issues };
}

function readText(text: string): ReadResult {
  const records: RawRecord[] = [];
  let start = -1;
  let buffer: string[] = [];
  const flush = () => {
    if (buffer.length > 0) records.push({ line: start, value: { text: buffer.join('\n') } });
    buffer = [];
  };
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === '') return flush();
    if (buffer.length === 0) start = i + 1;
    buffer.push(raw);
  });
  flush();
  return { fileType: 'text', records, issues: [] };
}

export function parseDatasetText(text: string, fileType: FileType): ReadResult {
  switch (fileType) {
    case 'jsonl':
      return readJsonl(text);
    case 'json':
      return readJsonArray(text);
    case 'csv':
      return readCsv(text);
    case 'text':
      return readText(text);
  }
}
