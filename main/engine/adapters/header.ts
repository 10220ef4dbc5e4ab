/**
 * Reads only the JSON header of a safetensors file (u64le length, then {name: {dtype, shape, data_offsets}}),
 * so a preflight check of a large file touches a few kilobytes.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { AdapterError } from './errors';

export interface HeaderEntry {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly dataOffsets: readonly [number, number];
}

export interface SafetensorsHeader {
  readonly tensors: Map<string, HeaderEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  /** Byte offset of the data section: a tensor's bytes are at dataStart + dataOffsets. */
  readonly dataStart: number;
}

const MAX_HEADER = 100 * 2 ** 20;

export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const bad = (why: string): never => {
    throw new AdapterError('INVALID_ADAPTER_FILE', `${file}: not a valid safetensors file (${why})`);
  };
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const prefix = Buffer.alloc(8);
    if (size < 8 || readSync(fd, prefix, 0, 8, 0) !== 8) bad('shorter than its 8-byte header length');
    const length = Number(prefix.readBigUInt64LE(0));
    if (length > MAX_HEADER || 8 + length > size) bad(`header length ${length} exceeds the file of ${size} bytes`);
    const json = Buffer.alloc(length);
    readSync(fd, json, 0, length, 8);
    let parsed: Record<string, { dtype?: unknown; shape?: unknown; data_offsets?: unknown }>;
    try {
      parsed = JSON.parse(json.toString('utf8'));
    } catch (error) {
      return bad(`header is not JSON: ${(error as Error).message}`);
    }
    const tensors = new Map<string, HeaderEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, info] of Object.entries(parsed)) {
      if (name === '__metadata__') {
        metadata = info as unknown as Record<string, string>;
        continue;
      }
      const { dtype, shape, data_offsets: offsets } = info;
      if (typeof dtype !== 'string' || !Array.isArray(shape) || !Array.isArray(offsets) || offsets.length !== 2) {
        bad(`tensor '${name}' lacks dtype, shape or data_offsets`);
      }
      const [start, end] = (offsets as number[]).map(Number) as [number, number];
      if (!(start <= end) || 8 + length + end > size) bad(`tensor '${name}' lies outside the file`);
      tensors.set(name, { dtype: dtype as string, shape: (shape as unknown[]).map(Number), dataOffsets: [start, end] });
    }
    return { tensors, metadata, dataStart: 8 + length };
  } finally {
    closeSync(fd);
  }
}
