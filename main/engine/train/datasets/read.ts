/**
 * Parses a dataset file into records, each with the line it starts on: JSONL (one object per line), a JSON array,
 * CSV with a header row (RFC 4180 quoting), or plain text (documents separated by blank lines, as {text}).
 * The parsers are fed one line at a time (stream.ts reads a file of any size that way, in bounded memory), and a
 * record longer than MAX_RECORD_CHARS is reported and skipped rather than held: no training example is that long.
 * Unparseable records become issues with their line; nothing is dropped silently.
 */
import { extname } from 'node:path';
import { TrainError } from '../errors';

export type FileType = 'jsonl' | 'json' | 'csv' | 'text';
export const FILE_TYPES: readonly FileType[] = ['jsonl', 'json', 'csv', 'text'];

/** 1 Mi characters: about 250k tokens, far beyond any context a record could train in. */
export const MAX_RECORD_CHARS = 1 << 20;

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

/** Where a parser puts what it finds. */
export interface RecordSink {
  record(record: RawRecord): void;
  issue(issue: DatasetIssue): void;
}

/** Takes a file's lines in order (without their line breaks), then end(). */
export interface RecordParser {
  line(text: string, line: number): void;
  /** A line too long to hold: only its length is known; the record it belongs to is skipped. */
  longLine(chars: number, line: number): void;
  end(): void;
}

/** From the extension; otherwise from the first non-blank character: '[' a JSON array, '{' JSONL, else text. */
export function detectFileType(path: string, start: string): FileType {
  const ext = extname(path).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.csv') return 'csv';
  if (ext === '.txt' || ext === '.md') return 'text';
  const first = start.trimStart()[0];
  if (first === '[') return 'json';
  if (first === '{') return 'jsonl';
  return 'text';
}

function tooLong(chars: number): string {
  return `the record is ${(chars / (1 << 20)).toFixed(1)} Mi characters; records longer than ${MAX_RECORD_CHARS / (1 << 20)} Mi characters are skipped (a training example is a few thousand tokens)`;
}

function parseJson(text: string): { value: unknown } | { error: string } {
  try {
    return { value: JSON.parse(text) as unknown };
  } catch (error) {
    return { error: `invalid JSON: ${(error as Error).message}` };
  }
}

function jsonlParser(sink: RecordSink): RecordParser {
  return {
    line(text, line) {
      if (text.trim() === '') return;
      if (text.length > MAX_RECORD_CHARS) return sink.issue({ line, message: tooLong(text.length) });
      const parsed = parseJson(text);
      if ('error' in parsed) sink.issue({ line, message: parsed.error });
      else sink.record({ line, value: parsed.value });
    },
    longLine: (chars, line) => sink.issue({ line, message: tooLong(chars) }),
    end: () => undefined,
  };
}

/** Plain text: a document is a run of non-blank lines. */
function textParser(sink: RecordSink): RecordParser {
  let start = -1;
  let lines: string[] = [];
  let chars = 0;
  const flush = () => {
    if (start < 0) return;
    if (chars > MAX_RECORD_CHARS) sink.issue({ line: start, message: tooLong(chars) });
    else sink.record({ line: start, value: { text: lines.join('\n') } });
    start = -1;
    lines = [];
    chars = 0;
  };
  const add = (text: string | null, length: number, line: number) => {
    if (start < 0) start = line;
    chars += length + (chars > 0 ? 1 : 0);
    if (text !== null && chars <= MAX_RECORD_CHARS) lines.push(text);
  };
  return {
    line(text, line) {
      if (text.trim() === '') return flush();
      add(text, text.length, line);
    },
    longLine: (length, line) => add(null, length, line),
    end: flush,
  };
}

/** RFC 4180: fields separated by commas, optionally quoted with "" for a literal quote; newlines inside quotes. */
function csvParser(sink: RecordSink): RecordParser {
  let header: string[] | null = null;
  let fields: string[] = [];
  let field = '';
  let inQuotes = false;
  let rowLine = 1;
  let chars = 0;
  const endRow = () => {
    fields.push(field);
    const empty = fields.length === 1 && fields[0] === '';
    if (chars > MAX_RECORD_CHARS) sink.issue({ line: rowLine, message: tooLong(chars) });
    else if (!empty) row(fields);
    fields = [];
    field = '';
    chars = 0;
  };
  const row = (values: string[]) => {
    if (header === null) {
      header = values.map((f) => f.trim());
      return;
    }
    if (values.length !== header.length) {
      return sink.issue({ line: rowLine, message: `has ${values.length} fields, the header has ${header.length} (${header.join(', ')})` });
    }
    const names = header;
    sink.record({ line: rowLine, value: Object.fromEntries(names.map((n, i) => [n, values[i]])) });
  };
  return {
    line(raw, line) {
      const text = line === 1 ? raw.replace(/^\uFEFF/, '') : raw;
      if (!inQuotes) rowLine = line;
      chars += text.length + 1;
      const keep = chars <= MAX_RECORD_CHARS; // past the limit the row is only scanned for where it ends
      const append = (part: string) => {
        if (keep) field += part;
      };
      // Runs between quotes and commas are taken whole (indexOf), not a character at a time.
      for (let i = 0; i < text.length;) {
        if (inQuotes) {
          const quote = text.indexOf('"', i);
          if (quote < 0) {
            append(text.slice(i));
            break;
          }
          if (text[quote + 1] === '"') {
            append(text.slice(i, quote + 1)); // "" is a literal quote
            i = quote + 2;
          } else {
            append(text.slice(i, quote));
            inQuotes = false;
            i = quote + 1;
          }
        } else if (field === '' && text[i] === '"') {
          inQuotes = true;
          i++;
        } else {
          const comma = text.indexOf(',', i);
          if (comma < 0) {
            append(text.slice(i));
            break;
          }
          append(text.slice(i, comma));
          fields.push(field);
          field = '';
          i = comma + 1;
        }
      }
      if (inQuotes) append('\n');
      else endRow();
    },
    longLine(length, line) {
      if (!inQuotes) rowLine = line;
      chars += length + 1;
      // Its quotes are unknown: the row is taken to end here.
      inQuotes = false;
      endRow();
    },
    end() {
      if (inQuotes || field !== '' || fields.length > 0) endRow();
      if (header === null) throw new TrainError('EMPTY_DATASET', 'the CSV file is empty; it needs a header row (e.g. prompt,completion) and records');
    },
  };
}

/**
 * A JSON array, one element at a time: a scan that respects strings finds where each top-level element starts
 * and ends, and each is parsed on its own, so a bad element is an issue on its line, not the whole file's failure.
 */
function jsonArrayParser(sink: RecordSink): RecordParser {
  let started = false;
  let finished = false;
  let depth = 1;
  let inString = false;
  let escaped = false;
  let element: string[] = [];
  let elementLine = 0;
  let chars = 0;
  const emit = () => {
    if (elementLine === 0) return;
    const parsed = chars > MAX_RECORD_CHARS ? { error: tooLong(chars) } : parseJson(element.join(''));
    if ('error' in parsed) sink.issue({ line: elementLine, message: parsed.error });
    else sink.record({ line: elementLine, value: parsed.value });
    element = [];
    elementLine = 0;
    chars = 0;
  };
  const notAnArray = (line: number, what: string): never => {
    throw new TrainError('INVALID_DATASET', `line ${line}: ${what}; a .json dataset must be one array of records (or use .jsonl, one record per line)`);
  };
  return {
    line(text, line) {
      let from = -1; // start of the element's part on this line
      const take = (to: number) => {
        if (from < 0) return;
        chars += to - from;
        if (chars <= MAX_RECORD_CHARS) element.push(text.slice(from, to));
        from = -1;
      };
      for (let i = 0; i < text.length; i++) {
        const c = text[i] as string;
        const blank = c === ' ' || c === '\t' || c === '\r';
        if (!started) {
          if (blank) continue;
          if (c !== '[') notAnArray(line, `expected '[', got '${c}'`);
          started = true;
          continue;
        }
        if (finished) {
          if (!blank) notAnArray(line, `'${c}' after the array's closing ']'`);
          continue;
        }
        if (inString) {
          if (escaped) escaped = false;
          else if (c === '\\') escaped = true;
          else if (c === '"') inString = false;
          continue;
        }
        if (depth === 1 && (c === ',' || c === ']')) {
          take(i);
          emit();
          if (c === ']') finished = true;
          continue;
        }
        if (elementLine === 0) {
          if (blank) continue;
          elementLine = line;
        }
        if (from < 0) from = i;
        if (c === '"') inString = true;
        else if (c === '[' || c === '{') depth++;
        else if (c === ']' || c === '}') depth--;
      }
      take(text.length);
      if (from < 0 && elementLine !== 0) {
        chars += 1;
        if (chars <= MAX_RECORD_CHARS) element.push('\n');
      }
    },
    longLine(length, line) {
      if (!started || finished) notAnArray(line, `a line of ${length} characters outside the array's records`);
      // Inside an element: that element is too long; its end cannot be found without reading the line.
      throw new TrainError('INVALID_DATASET', `line ${line} is ${(length / (1 << 20)).toFixed(1)} Mi characters long; a JSON array on one line cannot be read in parts: save the dataset as JSONL (one record per line)`);
    },
    end() {
      if (!started) throw new TrainError('EMPTY_DATASET', 'the JSON file is empty; a .json dataset must be one array of records');
      if (!finished) throw new TrainError('INVALID_DATASET', 'the JSON array is not closed: the file ends before its final \']\'');
    },
  };
}

export function recordParser(fileType: FileType, sink: RecordSink): RecordParser {
  switch (fileType) {
    case 'jsonl':
      return jsonlParser(sink);
    case 'json':
      return jsonArrayParser(sink);
    case 'csv':
      return csvParser(sink);
    case 'text':
      return textParser(sink);
  }
}

/** Parses a whole text already in memory (tests, small files). */
export function parseDatasetText(text: string, fileType: FileType): ReadResult {
  const records: RawRecord[] = [];
  const issues: DatasetIssue[] = [];
  const parser = recordParser(fileType, { record: (r) => records.push(r), issue: (i) => issues.push(i) });
  const lines = text.split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop(); // the final line break ends the last line
  lines.forEach((raw, i) => parser.line(raw.endsWith('\r') ? raw.slice(0, -1) : raw, i + 1));
  parser.end();
  return { fileType, records, issues };
}
