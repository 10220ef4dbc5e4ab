/**
 * GGUF reader (ggml's docs/gguf.md, versions 2 and 3, little-endian):
 *
 *   "GGUF" · u32 version · u64 tensor_count · u64 kv_count
 *   kv_count × (string key · u32 value_type · value)           strings are u64 length + UTF-8 bytes;
 *                                                              arrays are u32 item_type · u64 n · n items
 *   tensor_count × (string name · u32 n_dims · u64 ne[n_dims] · u32 ggml_type · u64 offset)
 *   padding to general.alignment (default 32) · tensor data, each tensor at data_start + offset
 *
 * ne[0] is the fastest-varying dimension: a PyTorch [out, in] weight is stored with ne = [in, out]. `shape` below
 * is the row-major order (ne reversed), as numpy and the safetensors files give it.
 *
 * Only the header is read on open (in chunks, so a 150k-token vocabulary costs a few reads); tensor data is read
 * one tensor at a time through the file descriptor. Every offset is checked against the file's size on open, so a
 * truncated download is refused before any weight is used.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ModelIoError } from './errors';
import { PositionedFile } from './positioned-file';
import { DEQUANTIZABLE, dequantize } from './gguf-quants';
import { GgufValueType, VALUE_BYTES, ggmlTypeById, tensorBytes, type GgmlTypeInfo } from './gguf-types';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as u32 little-endian
export const DEFAULT_ALIGNMENT = 32;
const MAX_DIMS = 4;
const CHUNK = 1 << 20;

export type GgufValue = number | boolean | string | readonly GgufValue[];

export interface GgufEntry {
  readonly type: GgufValueType;
  /** For arrays: the type of their items. */
  readonly itemType?: GgufValueType;
  /** 64-bit integers come back as the nearest number. */
  readonly value: GgufValue;
}

export interface GgufTensorInfo {
  readonly name: string;
  readonly type: GgmlTypeInfo;
  /** ggml order: ne[0] varies fastest. */
  readonly ne: readonly number[];
  /** Row-major order (ne reversed): [out, in] for a linear weight. */
  readonly shape: readonly number[];
  readonly count: number;
  /** Relative to the start of the data section. */
  readonly offset: number;
  readonly bytes: number;
}

function invalid(path: string, why: string): never {
  throw new ModelIoError('INVALID_GGUF', `${path}: not a valid GGUF file: ${why}`);
}

/** Sequential reads of the header through the file descriptor, buffered in 1 MB chunks. */
class HeaderCursor {
  private buffer: Buffer = Buffer.alloc(0);
  private bufferStart = 0;
  pos = 0;

  readonly fileBytes: number;
  private readonly path: string;

  constructor(private readonly file: PositionedFile) {
    this.fileBytes = file.size;
    this.path = file.path;
  }

  private ensure(n: number, what: string): number {
    if (this.pos + n > this.fileBytes) invalid(this.path, `${what} at byte ${this.pos} runs past the end of the ${this.fileBytes}-byte file`);
    const at = this.pos - this.bufferStart;
    if (at >= 0 && at + n <= this.buffer.length) return at;
    const length = Math.min(Math.max(n, CHUNK), this.fileBytes - this.pos);
    this.buffer = this.file.read(this.pos, length, (end) => invalid(this.path, `unexpected end of file at byte ${end}`));
    this.bufferStart = this.pos;
    return 0;
  }

  u32(what: string): number {
    const at = this.ensure(4, what);
    this.pos += 4;
    return this.buffer.readUInt32LE(at);
  }

  u64(what: string): number {
    const at = this.ensure(8, what);
    this.pos += 8;
    const v = this.buffer.readBigUInt64LE(at);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) invalid(this.path, `${what} is ${v}, beyond any file this size`);
    return Number(v);
  }

  string(what: string): string {
    const length = this.u64(`${what} length`);
    const at = this.ensure(length, what);
    this.pos += length;
    return this.buffer.toString('utf8', at, at + length);
  }

  scalar(type: GgufValueType, what: string): number | boolean {
    const size = VALUE_BYTES[type];
    if (size === undefined) invalid(this.path, `${what} has value type ${type}, which is not a GGUF scalar type`);
    const at = this.ensure(size, what);
    this.pos += size;
    const b = this.buffer;
    switch (type) {
      case GgufValueType.UINT8: return b.readUInt8(at);
      case GgufValueType.INT8: return b.readInt8(at);
      case GgufValueType.UINT16: return b.readUInt16LE(at);
      case GgufValueType.INT16: return b.readInt16LE(at);
      case GgufValueType.UINT32: return b.readUInt32LE(at);
      case GgufValueType.INT32: return b.readInt32LE(at);
      case GgufValueType.FLOAT32: return b.readFloatLE(at);
      case GgufValueType.BOOL: return b.readUInt8(at) !== 0;
      case GgufValueType.UINT64: return Number(b.readBigUInt64LE(at));
      case GgufValueType.INT64: return Number(b.readBigInt64LE(at));
      default: return b.readDoubleLE(at);
    }
  }

  value(type: number, what: string, depth = 0): GgufEntry {
    if (type === GgufValueType.STRING) return { type, value: this.string(what) };
    if (type === GgufValueType.ARRAY) {
      if (depth > 4) invalid(this.path, `${what}: arrays nested deeper than 4`);
      const itemType = this.u32(`${what} item type`);
      const n = this.u64(`${what} item count`);
      // Every item takes at least one byte: a count beyond the file is corrupt, refused before allocating.
      if (n > this.fileBytes - this.pos) invalid(this.path, `${what} claims ${n} items, more than the file holds`);
      const items: GgufValue[] = new Array<GgufValue>(n);
      for (let i = 0; i < n; i++) items[i] = this.value(itemType, `${what}[${i}]`, depth + 1).value;
      return { type, itemType, value: items };
    }
    if (!(type in VALUE_BYTES)) invalid(this.path, `${what} has value type ${type}, which GGUF does not define`);
    return { type, value: this.scalar(type as GgufValueType, what) };
  }
}

export class GgufFile {
  readonly version: number;
  readonly alignment: number;
  readonly fileBytes: number;
  /** Absolute byte offset of the data section. */
  readonly dataStart: number;
  readonly metadata = new Map<string, GgufEntry>();
  /** Tensor infos in file order. */
  readonly tensors = new Map<string, GgufTensorInfo>();
  private readonly file: PositionedFile;

  constructor(readonly path: string) {
    this.file = new PositionedFile(path);
    try {
      const cursor = new HeaderCursor(this.file);
      this.fileBytes = cursor.fileBytes;
      if (this.fileBytes < 24) invalid(path, `the file is ${this.fileBytes} bytes, shorter than a GGUF header`);
      const magic = cursor.u32('magic');
      if (magic !== GGUF_MAGIC) {
        invalid(path, magic === 0x47475546 ? 'it is a big-endian GGUF, which is not supported' : "it does not start with 'GGUF'");
      }
      this.version = cursor.u32('version');
      if (this.version !== 2 && this.version !== 3) invalid(path, `version ${this.version} is not supported (2 and 3 are)`);
      const tensorCount = cursor.u64('tensor count');
      const kvCount = cursor.u64('metadata count');
      if (tensorCount > this.fileBytes || kvCount > this.fileBytes) invalid(path, `counts ${tensorCount} tensors / ${kvCount} keys exceed the file`);
      for (let i = 0; i < kvCount; i++) {
        const key = cursor.string(`metadata key #${i}`);
        if (this.metadata.has(key)) invalid(path, `metadata key '${key}' appears twice`);
        this.metadata.set(key, cursor.value(cursor.u32(`type of '${key}'`), `'${key}'`));
      }
      this.alignment = this.readAlignment();
      const infos: Omit<GgufTensorInfo, never>[] = [];
      for (let i = 0; i < tensorCount; i++) infos.push(this.readTensorInfo(cursor, i));
      this.dataStart = Math.ceil(cursor.pos / this.alignment) * this.alignment;
      for (const info of infos) this.checkBounds(info);
      for (const info of infos) this.tensors.set(info.name, info);
    } catch (error) {
      this.close();
      throw error;
    }
  }

  private readAlignment(): number {
    const entry = this.metadata.get('general.alignment');
    if (!entry) return DEFAULT_ALIGNMENT;
    const a = entry.value;
    if (entry.type !== GgufValueType.UINT32 || typeof a !== 'number' || a <= 0 || (a & (a - 1)) !== 0) {
      invalid(this.path, `general.alignment must be a u32 power of two, got ${JSON.stringify(a)}`);
    }
    return a;
  }

  private readTensorInfo(cursor: HeaderCursor, index: number): GgufTensorInfo {
    const name = cursor.string(`tensor #${index} name`);
    if (this.tensors.has(name)) invalid(this.path, `tensor '${name}' appears twice`);
    const nDims = cursor.u32(`'${name}' dimension count`);
    if (nDims < 1 || nDims > MAX_DIMS) invalid(this.path, `tensor '${name}' has ${nDims} dimensions (1 to ${MAX_DIMS} allowed)`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(cursor.u64(`'${name}' ne[${d}]`));
    const count = ne.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(count) || ne.some((n) => n <= 0)) invalid(this.path, `tensor '${name}' has dimensions [${ne.join(', ')}]`);
    const typeId = cursor.u32(`'${name}' type`);
    const type = ggmlTypeById(typeId);
    if (!type) {
      throw new ModelIoError('UNSUPPORTED_DTYPE', `${this.path}: tensor '${name}' has ggml type ${typeId}, a quantization this version does not know; convert the model to F16, Q8_0 or a K-quant`);
    }
    const offset = cursor.u64(`'${name}' offset`);
    if (offset % this.alignment !== 0) invalid(this.path, `tensor '${name}' starts at offset ${offset}, not a multiple of the alignment ${this.alignment}`);
    const bytes = tensorBytes(type, count);
    if (bytes === null || (ne[0] as number) % type.blockSize !== 0) {
      invalid(this.path, `tensor '${name}' (${type.name}) has rows of ${ne[0]} values, not a multiple of its block of ${type.blockSize}`);
    }
    return { name, type, ne, shape: [...ne].reverse(), count, offset, bytes };
  }

  private checkBounds(info: GgufTensorInfo): void {
    const end = this.dataStart + info.offset + info.bytes;
    if (end > this.fileBytes) {
      throw new ModelIoError(
        'INVALID_GGUF',
        `${this.path}: tensor '${info.name}' needs bytes up to ${end} but the file has ${this.fileBytes}: the file is truncated (an incomplete download or copy?)`,
      );
    }
  }

  has(key: string): boolean {
    return this.metadata.has(key);
  }

  /** A metadata value of the expected kind, or `fallback` when absent; a value of another kind is refused. */
  string(key: string, fallback?: string): string {
    const v = this.metadata.get(key)?.value;
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'string') this.bad(key, 'a string', v);
    return v;
  }

  number(key: string, fallback?: number): number {
    const v = this.metadata.get(key)?.value;
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'number') this.bad(key, 'a number', v);
    return v;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.metadata.get(key)?.value;
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'boolean') this.bad(key, 'true or false', v);
    return v;
  }

  array(key: string): readonly GgufValue[] | null {
    const v = this.metadata.get(key)?.value;
    if (v === undefined) return null;
    if (!Array.isArray(v)) this.bad(key, 'an array', v);
    return v as readonly GgufValue[];
  }

  private bad(key: string, expected: string, got: GgufValue | undefined): never {
    const shown = got === undefined ? 'nothing' : Array.isArray(got) ? `an array of ${got.length}` : JSON.stringify(got);
    throw new ModelIoError('INVALID_GGUF', `${this.path}: metadata '${key}' must be ${expected}, got ${shown}`);
  }

  tensor(name: string): GgufTensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new ModelIoError('TENSOR_NOT_FOUND', `${this.path}: no tensor named '${name}'`);
    return info;
  }

  /** The tensor's bytes as stored. */
  readRaw(name: string): Uint8Array {
    const info = this.tensor(name);
    const buffer = this.file.read(this.dataStart + info.offset, info.bytes, () => {
      throw new ModelIoError('INVALID_GGUF', `${this.path}: tensor '${name}' is cut short: the file ended while reading it (truncated?)`);
    });
    return new Uint8Array(buffer.buffer, 0, info.bytes);
  }

  /** The tensor as float32 in row-major `shape`; quantized blocks are dequantized. */
  readFloat(name: string): { shape: number[]; data: Float32Array } {
    const info = this.tensor(name);
    checkReadable(this.path, info);
    return { shape: [...info.shape], data: dequantize(info.type, this.readRaw(name), info.count) };
  }

  close(): void {
    this.file.close();
  }
}

/** Refuses a tensor whose type this engine cannot turn into float32, naming both. */
export function checkReadable(path: string, info: GgufTensorInfo): void {
  if (DEQUANTIZABLE.includes(info.type.name)) return;
  throw new ModelIoError(
    'UNSUPPORTED_DTYPE',
    `${path}: tensor '${info.name}' is ${info.type.name}, a quantization this version cannot read (readable: ${DEQUANTIZABLE.join(', ')}); choose a Q4_K_M, Q5_K_M, Q6_K, Q8_0 or F16 file of the model`,
  );
}

export function openGguf(path: string): GgufFile {
  return new GgufFile(path);
}

/** True when the file at `path` starts with GGUF's magic (any readable file; folders and missing paths are false). */
export function isGgufFile(path: string): boolean {
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    if (!fstatSync(fd).isFile()) return false;
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && head.readUInt32LE(0) === GGUF_MAGIC;
  } catch {
    return false;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
