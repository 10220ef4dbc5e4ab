/**
 * Reads a dataset file of any size line by line into a RecordParser (read.ts), in bounded memory: 1 MiB chunks,
 * and at most MAX_LINE_BYTES of one line held (a longer line is measured, not kept). What is not text is refused
 * by its content, whatever the file is called: a NUL byte means a binary file, and bytes that are not UTF-8 are
 * named with their line, never replaced.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { TrainError } from '../errors';
import { detectFileType, recordParser, type FileType, type RecordSink } from './read';

export const MAX_LINE_BYTES = 64 << 20;
const CHUNK = 1 << 20;
const NEWLINE = 0x0a;

/** Byte offset of the first byte that is not part of valid UTF-8, or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i] as number;
    const need = b < 0x80 ? 0 : b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
    if (need === 0) {
      i++;
      continue;
    }
    if (need < 0 || i + need >= bytes.length) return i;
    for (let k = 1; k <= need; k++) if (((bytes[i + k] as number) & 0xc0) !== 0x80) return i;
    // Overlong three-byte forms, UTF-16 surrogates and code points past U+10FFFF.
    const b1 = bytes[i + 1] as number;
    if ((b === 0xe0 && b1 < 0xa0) || (b === 0xed && b1 >= 0xa0) || (b === 0xf0 && b1 < 0x90) || (b === 0xf4 && b1 >= 0x90)) return i;
    i += need + 1;
  }
  return -1;
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function notText(path: string, line: number, why: string): never {
  throw new TrainError('INVALID_DATASET', `${path}: line ${line} ${why}; a dataset is a UTF-8 text file (JSONL, JSON, CSV or plain text)`);
}

/**
 * Feeds every line of `path` to a parser of its file type (given, or detected from the extension and the first
 * characters) that reports into `sink`. Returns the file type.
 */
export function readDatasetFile(path: string, sink: RecordSink, fileType?: FileType): FileType {
  let fd: number;
  try {
    fd = openSync(path, 'r');
    if (!fstatSync(fd).isFile()) {
      closeSync(fd);
      throw new Error('not a regular file');
    }
  } catch (error) {
    throw new TrainError('INVALID_DATASET', `cannot read dataset ${path}: ${(error as Error).message}`);
  }
  try {
    const buffer = Buffer.allocUnsafe(CHUNK);
    let n = readSync(fd, buffer, 0, CHUNK, null);
    const startsWithBom = n >= 3 && buffer[0] === 0xef && buffer[1] === 0xbb && buffer[2] === 0xbf;
    const type = fileType ?? detectFileType(path, buffer.subarray(startsWithBom ? 3 : 0, Math.min(n, 4096)).toString('latin1'));
    const parser = recordParser(type, sink);
    let parts: Buffer[] = [];
    let held = 0;
    let long = 0; // bytes of a line too long to hold, 0 while it is held
    let line = 1;
    const endLine = () => {
      if (long > 0) {
        parser.longLine(long, line);
      } else {
        let bytes = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, held);
        if (line === 1 && startsWithBom) bytes = bytes.subarray(3);
        if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, -1);
        const nul = bytes.indexOf(0);
        if (nul >= 0) notText(path, line, `holds a NUL byte (at byte ${nul}): this is a binary file, not text`);
        let text: string;
        try {
          text = decoder.decode(bytes);
        } catch {
          const at = firstInvalidUtf8(bytes);
          notText(path, line, `is not valid UTF-8 (byte 0x${(bytes[at] ?? 0).toString(16).padStart(2, '0')} at byte ${at} of the line); save the file as UTF-8`);
        }
        parser.line(text, line);
      }
      parts = [];
      held = 0;
      long = 0;
      line++;
    };
    while (n > 0) {
      let from = 0;
      while (from < n) {
        const newline = buffer.indexOf(NEWLINE, from);
        const to = newline < 0 || newline >= n ? n : newline;
        const size = to - from;
        if (long > 0) long += size;
        else if (held + size > MAX_LINE_BYTES) {
          long = held + size;
          parts = [];
          held = 0;
        } else if (size > 0) {
          parts.push(Buffer.from(buffer.subarray(from, to))); // a copy: the buffer is reused for the next chunk
          held += size;
        }
        if (to === n) break;
        endLine();
        from = to + 1;
      }
      n = readSync(fd, buffer, 0, CHUNK, null);
    }
    if (held > 0 || long > 0) endLine();
    parser.end();
    return type;
  } finally {
    closeSync(fd);
  }
}
