/**
 * GGUF writer (version 3, little-endian; the layout is described in gguf.ts). The header (metadata and tensor infos)
 * is built in memory, then each tensor is produced, encoded and written one at a time, so memory holds one
 * tensor's values beyond the caller's model. Written to a temporary name, fsynced and renamed: a failure or a
 * cancel leaves nothing behind and never a half-written file at `path`.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { tempSibling } from '../../common/atomic';
import { ModelIoError } from './errors';
import { DEFAULT_ALIGNMENT, GGUF_MAGIC, type GgufValue } from './gguf';
import { quantize, type WritableGgmlType } from './gguf-quants';
import { GgufValueType, ggmlType, tensorBytes } from './gguf-types';

export interface GgufWriteEntry {
  readonly key: string;
  readonly type: GgufValueType;
  readonly itemType?: GgufValueType;
  readonly value: GgufValue;
}

/** Typed metadata entries, as llama.cpp expects each key's type (u32 counts, f32 epsilons, string arrays...). */
export const kv = {
  string: (key: string, value: string): GgufWriteEntry => ({ key, type: GgufValueType.STRING, value }),
  u32: (key: string, value: number): GgufWriteEntry => ({ key, type: GgufValueType.UINT32, value }),
  i32: (key: string, value: number): GgufWriteEntry => ({ key, type: GgufValueType.INT32, value }),
  f32: (key: string, value: number): GgufWriteEntry => ({ key, type: GgufValueType.FLOAT32, value }),
  bool: (key: string, value: boolean): GgufWriteEntry => ({ key, type: GgufValueType.BOOL, value }),
  strings: (key: string, value: readonly string[]): GgufWriteEntry => ({ key, type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value }),
  f32s: (key: string, value: readonly number[]): GgufWriteEntry => ({ key, type: GgufValueType.ARRAY, itemType: GgufValueType.FLOAT32, value }),
  i32s: (key: string, value: readonly number[]): GgufWriteEntry => ({ key, type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value }),
  u32s: (key: string, value: readonly number[]): GgufWriteEntry => ({ key, type: GgufValueType.ARRAY, itemType: GgufValueType.UINT32, value }),
};

export interface GgufTensorSpec {
  readonly name: string;
  /** Row-major ([out, in] for a linear weight); written as ne = shape reversed. */
  readonly shape: readonly number[];
  readonly type: WritableGgmlType;
  /** The values in row-major order, produced when the tensor's turn comes. */
  readonly data: () => Float32Array | Promise<Float32Array>;
}

export interface GgufWriteOptions {
  readonly alignment?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: { step: 'write'; current: number; total: number }) => void;
}

/** A growable little-endian byte buffer for the header. */
class ByteSink {
  private buffer = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): number {
    if (this.length + n > this.buffer.length) {
      const next = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + n));
      this.buffer.copy(next, 0, 0, this.length);
      this.buffer = next;
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  /** Reserves n bytes, then writes them: reserve() may replace the buffer, so `write` gets the current one. */
  private put(n: number, write: (buffer: Buffer, at: number) => void): void {
    const at = this.reserve(n);
    write(this.buffer, at);
  }

  u32(v: number): void {
    this.put(4, (b, at) => b.writeUInt32LE(v >>> 0, at));
  }

  u64(v: number): void {
    this.put(8, (b, at) => b.writeBigUInt64LE(BigInt(v), at));
  }

  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.put(bytes.length, (b, at) => bytes.copy(b, at));
  }

  scalar(type: GgufValueType, v: GgufValue, key: string): void {
    const fail = (): never => {
      throw new ModelIoError('INVALID_GGUF', `metadata '${key}': ${JSON.stringify(v)} is not a valid ${GgufValueType[type]}`);
    };
    if (type === GgufValueType.STRING) {
      if (typeof v !== 'string') fail();
      return this.string(v as string);
    }
    if (type === GgufValueType.BOOL) {
      if (typeof v !== 'boolean') fail();
      return this.put(1, (b, at) => b.writeUInt8(v ? 1 : 0, at));
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) return fail();
    const int = (min: number, max: number) => {
      if (!Number.isInteger(v) || v < min || v > max) fail();
    };
    switch (type) {
      case GgufValueType.UINT8: int(0, 255); return this.put(1, (b, at) => b.writeUInt8(v, at));
      case GgufValueType.INT8: int(-128, 127); return this.put(1, (b, at) => b.writeInt8(v, at));
      case GgufValueType.UINT16: int(0, 65535); return this.put(2, (b, at) => b.writeUInt16LE(v, at));
      case GgufValueType.INT16: int(-32768, 32767); return this.put(2, (b, at) => b.writeInt16LE(v, at));
      case GgufValueType.UINT32: int(0, 2 ** 32 - 1); return this.put(4, (b, at) => b.writeUInt32LE(v, at));
      case GgufValueType.INT32: int(-(2 ** 31), 2 ** 31 - 1); return this.put(4, (b, at) => b.writeInt32LE(v, at));
      case GgufValueType.FLOAT32: return this.put(4, (b, at) => b.writeFloatLE(v, at));
      case GgufValueType.UINT64: int(0, Number.MAX_SAFE_INTEGER); return this.put(8, (b, at) => b.writeBigUInt64LE(BigInt(v), at));
      case GgufValueType.INT64: int(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER); return this.put(8, (b, at) => b.writeBigInt64LE(BigInt(v), at));
      case GgufValueType.FLOAT64: return this.put(8, (b, at) => b.writeDoubleLE(v, at));
      default: fail();
    }
  }

  entry(e: GgufWriteEntry): void {
    this.string(e.key);
    this.u32(e.type);
    if (e.type !== GgufValueType.ARRAY) return this.scalar(e.type, e.value, e.key);
    if (e.itemType === undefined || e.itemType === GgufValueType.ARRAY || !Array.isArray(e.value)) {
      throw new ModelIoError('INVALID_GGUF', `metadata '${e.key}': an array needs a scalar item type and a list of values`);
    }
    const items = e.value as readonly GgufValue[];
    this.u32(e.itemType);
    this.u64(items.length);
    for (const item of items) this.scalar(e.itemType, item, e.key);
  }

  pad(alignment: number): void {
    this.reserve((alignment - (this.length % alignment)) % alignment);
  }

  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
}

interface Planned {
  readonly spec: GgufTensorSpec;
  readonly count: number;
  readonly bytes: number;
  readonly offset: number;
}

function plan(tensors: readonly GgufTensorSpec[], alignment: number): Planned[] {
  const seen = new Set<string>();
  let offset = 0;
  return tensors.map((spec) => {
    if (seen.has(spec.name)) throw new ModelIoError('INVALID_GGUF', `tensor '${spec.name}' is listed twice`);
    seen.add(spec.name);
    if (spec.shape.length < 1 || spec.shape.length > 4 || spec.shape.some((d) => !Number.isSafeInteger(d) || d <= 0)) {
      throw new ModelIoError('INVALID_GGUF', `tensor '${spec.name}': shape [${spec.shape.join(', ')}] must be 1 to 4 positive integers`);
    }
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const type = ggmlType(spec.type);
    const rowLength = spec.shape[spec.shape.length - 1] as number;
    const bytes = tensorBytes(type, count);
    if (bytes === null || rowLength % type.blockSize !== 0) {
      throw new ModelIoError('INVALID_GGUF', `tensor '${spec.name}': rows of ${rowLength} values cannot be stored as ${spec.type} (blocks of ${type.blockSize})`);
    }
    const planned = { spec, count, bytes, offset };
    offset += Math.ceil(bytes / alignment) * alignment;
    return planned;
  });
}

function header(metadata: readonly GgufWriteEntry[], planned: readonly Planned[], alignment: number): Uint8Array {
  const keys = new Set<string>();
  for (const e of metadata) {
    if (keys.has(e.key)) throw new ModelIoError('INVALID_GGUF', `metadata key '${e.key}' is listed twice`);
    keys.add(e.key);
  }
  const sink = new ByteSink();
  sink.u32(GGUF_MAGIC);
  sink.u32(3);
  sink.u64(planned.length);
  const entries = alignment === DEFAULT_ALIGNMENT || keys.has('general.alignment') ? metadata : [...metadata, kv.u32('general.alignment', alignment)];
  sink.u64(entries.length);
  for (const e of entries) sink.entry(e);
  for (const t of planned) {
    sink.string(t.spec.name);
    sink.u32(t.spec.shape.length);
    for (const d of [...t.spec.shape].reverse()) sink.u64(d);
    sink.u32(ggmlType(t.spec.type).id);
    sink.u64(t.offset);
  }
  sink.pad(alignment);
  return sink.bytes();
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) done += writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, 1 << 30));
}

/** Writes a GGUF file atomically. Returns the number of bytes written. */
export async function writeGguf(
  path: string,
  metadata: readonly GgufWriteEntry[],
  tensors: readonly GgufTensorSpec[],
  options: GgufWriteOptions = {},
): Promise<number> {
  const alignment = options.alignment ?? DEFAULT_ALIGNMENT;
  const planned = plan(tensors, alignment);
  const head = header(metadata, planned, alignment);
  const temp = tempSibling(path);
  const fd = openSync(temp, 'w');
  let closed = false;
  try {
    writeAll(fd, head);
    let written = head.byteLength;
    for (const [i, t] of planned.entries()) {
      if (options.signal?.aborted) throw new ModelIoError('INVALID_GGUF', `writing ${path} was cancelled; nothing was written`);
      const values = await t.spec.data();
      if (values.length !== t.count) {
        throw new ModelIoError('INVALID_GGUF', `tensor '${t.spec.name}' has ${values.length} values, its shape [${t.spec.shape.join(', ')}] needs ${t.count}`);
      }
      const encoded = quantize(t.spec.type, values);
      writeAll(fd, encoded);
      const padding = Math.ceil(t.bytes / alignment) * alignment - t.bytes;
      if (padding > 0) writeAll(fd, new Uint8Array(padding));
      written += t.bytes + padding;
      options.onProgress?.({ step: 'write', current: i + 1, total: planned.length });
    }
    fsyncSync(fd);
    closeSync(fd);
    closed = true;
    renameSync(temp, path);
    return written;
  } catch (error) {
    if (!closed) closeSync(fd);
    try {
      unlinkSync(temp);
    } catch {
      // never created or already renamed
    }
    throw error;
  }
}
