/**
 * safetensors reader and writer (https://github.com/huggingface/safetensors): u64le header length N, N bytes of
 * JSON {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}, then the raw
 * little-endian data, offsets relative to its start.
 *
 * Reading goes tensor by tensor through the file descriptor, so a 2 GB checkpoint never sits in memory twice:
 * each tensor's bytes are read into their own buffer and upcast (F16/BF16 -> float32) from there.
 */
import { closeSync, openSync, renameSync, unlinkSync, writeSync, fsyncSync } from 'node:fs';
import { tempSibling } from '../../common/atomic';
import { ModelIoError } from './errors';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half';
import { PositionedFile } from './positioned-file';

/** Storage types this reader understands. Floats come back as float32, integers as int32. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I32' | 'I64';
/** Storage types the writer produces. */
export type WritableDtype = 'F32' | 'F16' | 'BF16' | 'I32';
const WRITABLE_DTYPES: readonly WritableDtype[] = ['F32', 'F16', 'BF16', 'I32'];

const BYTES_PER_VALUE: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4, I64: 8 };
/** Types that exist in the format but that no checkpoint we load stores its weights in. */
const KNOWN_UNSUPPORTED = new Set(['BOOL', 'U8', 'I8', 'I16', 'U16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2']);
/** The reference implementation refuses headers above 100 MB; so do we, before allocating. */
const MAX_HEADER_BYTES = 100_000_000;

export interface TensorEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Byte offsets relative to the start of the data section. */
  readonly begin: number;
  readonly end: number;
}

export interface LoadedTensor {
  /** The dtype as stored in the file (the data is float32 for float types, int32 for integer types). */
  readonly dtype: SafetensorsDtype;
  readonly shape: number[];
  readonly data: Float32Array | Int32Array;
}

/** A tensor's bytes as stored (little-endian), for loaders that keep the file's precision. */
export interface RawTensor {
  readonly dtype: SafetensorsDtype;
  readonly shape: number[];
  /** Its own buffer, offset 0 (typed views over it are aligned). */
  readonly bytes: Uint8Array;
}

type WritableValues = Float32Array | Int32Array | ArrayLike<number>;

export interface WritableTensor {
  readonly dtype: WritableDtype;
  readonly shape: readonly number[];
  /**
   * Values as numbers; converted to `dtype` on write (float32 -> F16/BF16 rounds to nearest even). A function is
   * called when this tensor's turn to be written comes, and its values are let go once written, so a file larger
   * than memory can be written one tensor at a time.
   */
  readonly data: WritableValues | (() => WritableValues);
}

function invalid(path: string, why: string): never {
  throw new ModelIoError('INVALID_SAFETENSORS', `${path}: not a valid safetensors file: ${why}`);
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function parseEntry(path: string, name: string, raw: unknown, dataBytes: number): TensorEntry {
  if (typeof raw !== 'object' || raw === null) invalid(path, `entry '${name}' is not an object`);
  const { dtype, shape, data_offsets: offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof dtype !== 'string') invalid(path, `tensor '${name}' has no dtype`);
  if (!(dtype in BYTES_PER_VALUE)) {
    const what = KNOWN_UNSUPPORTED.has(dtype) ? 'is not supported' : 'is not a safetensors dtype';
    throw new ModelIoError(
      'UNSUPPORTED_DTYPE',
      `${path}: tensor '${name}' has dtype ${dtype}, which ${what} (supported: ${Object.keys(BYTES_PER_VALUE).join(', ')})`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
    invalid(path, `tensor '${name}' has shape ${JSON.stringify(shape)}, expected an array of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt)) {
    invalid(path, `tensor '${name}' has data_offsets ${JSON.stringify(offsets)}, expected [begin, end]`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) invalid(path, `tensor '${name}' ends (${end}) before it begins (${begin})`);
  if (end > dataBytes) {
    invalid(path, `tensor '${name}' ends at data byte ${end} but the file holds only ${dataBytes} data bytes (truncated?)`);
  }
  const typed = dtype as SafetensorsDtype;
  const expected = (shape as number[]).reduce((a, b) => a * b, 1) * BYTES_PER_VALUE[typed];
  if (end - begin !== expected) {
    invalid(path, `tensor '${name}' is ${typed} [${(shape as number[]).join(', ')}] = ${expected} bytes, but its offsets span ${end - begin}`);
  }
  return { name, dtype: typed, shape: shape as number[], begin, end };
}

/** An open safetensors file: the validated header, and tensors read one at a time on demand. */
export class SafetensorsFile {
  readonly tensors = new Map<string, TensorEntry>();
  readonly metadata: Record<string, string> = {};
  private readonly file: PositionedFile;
  private readonly dataStart: number;

  constructor(readonly path: string) {
    this.file = new PositionedFile(path);
    try {
      this.dataStart = this.readHeader();
    } catch (error) {
      this.close();
      throw error;
    }
  }

  private readHeader(): number {
    const path = this.path;
    const fileBytes = this.file.size;
    if (fileBytes < 8) invalid(path, `the file is ${fileBytes} bytes, shorter than the 8-byte header length`);
    const lengthBytes = this.readAt(0, 8);
    const headerBytes = Number(lengthBytes.readBigUInt64LE(0));
    if (headerBytes < 2 || headerBytes > MAX_HEADER_BYTES) {
      invalid(path, `header length ${headerBytes} is outside 2..${MAX_HEADER_BYTES} bytes`);
    }
    if (8 + headerBytes > fileBytes) invalid(path, `header length ${headerBytes} runs past the end of the ${fileBytes}-byte file`);
    let header: unknown;
    try {
      header = JSON.parse(this.readAt(8, headerBytes).toString('utf8'));
    } catch (error) {
      invalid(path, `the header is not JSON (${(error as Error).message})`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) invalid(path, 'the header is not a JSON object');
    const dataBytes = fileBytes - 8 - headerBytes;
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        this.readMetadata(raw);
        continue;
      }
      this.tensors.set(name, parseEntry(path, name, raw, dataBytes));
    }
    const sorted = [...this.tensors.values()].sort((a, b) => a.begin - b.begin);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1] as TensorEntry;
      const cur = sorted[i] as TensorEntry;
      if (cur.begin < prev.end) invalid(path, `tensors '${prev.name}' and '${cur.name}' overlap`);
    }
    return 8 + headerBytes;
  }

  private readMetadata(raw: unknown): void {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) invalid(this.path, '__metadata__ is not an object');
    for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
      if (typeof value !== 'string') invalid(this.path, `__metadata__.${key} is not a string`);
      this.metadata[key] = value;
    }
  }

  private readAt(position: number, length: number): Buffer {
    return this.file.read(position, length, (end) => invalid(this.path, `unexpected end of file at byte ${end}`));
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /**
   * Reads one tensor; float types come back as float32, integer types as int32. Float data holding NaN or an
   * infinity is refused (NON_FINITE), naming the tensor.
   */
  read(name: string): LoadedTensor {
    const entry = this.tensors.get(name);
    if (!entry) throw new ModelIoError('TENSOR_NOT_FOUND', `${this.path}: no tensor named '${name}'`);
    const bytes = this.readAt(this.dataStart + entry.begin, entry.end - entry.begin);
    const data = decode(this.path, entry, bytes);
    if (data instanceof Float32Array) assertFinite(this.path, entry, data);
    return { dtype: entry.dtype, shape: [...entry.shape], data };
  }

  /** Reads one tensor's bytes without converting them; refused as read() refuses non-finite float values. */
  readRaw(name: string): RawTensor {
    const entry = this.tensors.get(name);
    if (!entry) throw new ModelIoError('TENSOR_NOT_FOUND', `${this.path}: no tensor named '${name}'`);
    const bytes = this.readAt(this.dataStart + entry.begin, entry.end - entry.begin);
    assertFiniteBits(this.path, entry, bytes);
    return { dtype: entry.dtype, shape: [...entry.shape], bytes };
  }

  close(): void {
    this.file.close();
  }
}

/**
 * Weights are finite: a NaN or an infinity (a diverged run, a damaged file) would load and generate garbage, or
 * poison every merge and training step after it. v - v is 0 for every finite v and NaN otherwise.
 */
function assertFinite(path: string, entry: TensorEntry, data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as number;
    if (v - v !== 0) {
      throw new ModelIoError('NON_FINITE', `${path}: tensor '${entry.name}' holds ${v} at index ${i} of ${data.length}; the weights are damaged or diverged: use another copy or an earlier checkpoint`);
    }
  }
}

/** The same check on stored bits: a half or bfloat16 whose exponent bits are all ones is an infinity or a NaN. */
function assertFiniteBits(path: string, entry: TensorEntry, bytes: Buffer): void {
  const count = bytes.byteLength / BYTES_PER_VALUE[entry.dtype];
  if (entry.dtype === 'F32') return assertFinite(path, entry, new Float32Array(bytes.buffer, bytes.byteOffset, count));
  const exponent = entry.dtype === 'F16' ? 0x7c00 : entry.dtype === 'BF16' ? 0x7f80 : 0;
  if (exponent === 0) return;
  const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
  for (let i = 0; i < bits.length; i++) {
    if (((bits[i] as number) & exponent) === exponent) {
      const value = ((bits[i] as number) & (exponent === 0x7c00 ? 0x03ff : 0x007f)) === 0 ? ((bits[i] as number) & 0x8000 ? '-Infinity' : 'Infinity') : 'NaN';
      throw new ModelIoError('NON_FINITE', `${path}: tensor '${entry.name}' holds ${value} at index ${i} of ${bits.length}; the weights are damaged or diverged: use another copy or an earlier checkpoint`);
    }
  }
}

function decode(path: string, entry: TensorEntry, bytes: Buffer): Float32Array | Int32Array {
  const count = bytes.byteLength / BYTES_PER_VALUE[entry.dtype];
  const ab = bytes.buffer;
  switch (entry.dtype) {
    case 'F32':
      return new Float32Array(ab, 0, count);
    case 'F16':
      return f16ToF32(new Uint16Array(ab, 0, count));
    case 'BF16':
      return bf16ToF32(new Uint16Array(ab, 0, count));
    case 'F64':
      return Float32Array.from(new Float64Array(ab, 0, count));
    case 'I32':
      return new Int32Array(ab, 0, count);
    case 'I64': {
      const wide = new BigInt64Array(ab, 0, count);
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const v = wide[i] as bigint;
        if (v > 2147483647n || v < -2147483648n) {
          throw new ModelIoError('UNSUPPORTED_DTYPE', `${path}: tensor '${entry.name}' (I64) holds ${v}, outside int32`);
        }
        out[i] = Number(v);
      }
      return out;
    }
  }
}

export function openSafetensors(path: string): SafetensorsFile {
  return new SafetensorsFile(path);
}

/** Reads every tensor of a (small) file: adapters, checkpoints, tests. */
export function readSafetensors(path: string): { tensors: Map<string, LoadedTensor>; metadata: Record<string, string> } {
  const file = new SafetensorsFile(path);
  try {
    const tensors = new Map<string, LoadedTensor>();
    for (const name of file.tensors.keys()) tensors.set(name, file.read(name));
    return { tensors, metadata: { ...file.metadata } };
  } finally {
    file.close();
  }
}

/** A tensor's values converted to `dtype`'s little-endian bytes, refused when they do not fill its shape. */
function encode(name: string, dtype: WritableDtype, shape: readonly number[], values: WritableValues): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (values.length !== count) {
    throw new ModelIoError('INVALID_SAFETENSORS', `tensor '${name}' has ${values.length} values, its shape [${shape.join(', ')}] needs ${count}`);
  }
  let typed: Float32Array | Int32Array | Uint16Array;
  switch (dtype) {
    case 'F32':
      typed = values instanceof Float32Array ? values : Float32Array.from(values);
      break;
    case 'I32':
      typed = values instanceof Int32Array ? values : Int32Array.from(values);
      break;
    case 'F16':
      typed = f32ToF16(values);
      break;
    case 'BF16':
      typed = f32ToBf16(values);
      break;
    default:
      throw new ModelIoError('UNSUPPORTED_DTYPE', `tensor '${name}': cannot write dtype ${String(dtype)} (${WRITABLE_DTYPES.join(', ')})`);
  }
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}

/**
 * The file's first bytes (u64 header length, then the JSON header, padded to 8) from the tensors' shapes and dtypes
 * alone, and the names in the order their data follows. Bad shapes and dtypes are refused before anything is written.
 */
function fileHeader(
  tensors: ReadonlyMap<string, { readonly dtype: WritableDtype; readonly shape: readonly number[] }>,
  metadata: Readonly<Record<string, string>> | undefined,
): { prefix: Uint8Array; names: string[] } {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = { ...metadata };
  let offset = 0;
  for (const name of names) {
    const { dtype, shape } = tensors.get(name) as { dtype: WritableDtype; shape: readonly unknown[] };
    if (!shape.every(isNonNegativeInt)) {
      throw new ModelIoError('INVALID_SAFETENSORS', `tensor '${name}': shape [${shape.join(', ')}] is not non-negative integers`);
    }
    if (!(WRITABLE_DTYPES as readonly string[]).includes(dtype)) {
      throw new ModelIoError('UNSUPPORTED_DTYPE', `tensor '${name}': cannot write dtype ${String(dtype)} (${WRITABLE_DTYPES.join(', ')})`);
    }
    const bytes = (shape as number[]).reduce((a, b) => a * b, 1) * BYTES_PER_VALUE[dtype];
    header[name] = { dtype, shape: [...shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8); // data aligned to 8 bytes, as the reference writer does
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8 + headerBytes.length);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));
  headerBytes.copy(prefix, 8);
  return { prefix, names };
}

/** A file being written under a temp name in the one scheme (common/atomic), renamed into place once complete. */
interface TempFile {
  readonly path: string;
  readonly temp: string;
  readonly fd: number;
}

function openTemp(path: string): TempFile {
  const temp = tempSibling(path);
  return { path, temp, fd: openSync(temp, 'w') };
}

function commitTemp(file: TempFile): void {
  fsyncSync(file.fd);
  closeSync(file.fd);
  renameSync(file.temp, file.path);
}

/** After a failure: the temp goes, and whatever was at the final path stays as it was. */
function abandonTemp(file: TempFile): void {
  try {
    closeSync(file.fd);
  } catch {
    // already closed
  }
  try {
    unlinkSync(file.temp);
  } catch {
    // never created, or already renamed
  }
}

function asMap<T>(tensors: Readonly<Record<string, T>> | ReadonlyMap<string, T>): ReadonlyMap<string, T> {
  return tensors instanceof Map ? (tensors as ReadonlyMap<string, T>) : new Map(Object.entries(tensors));
}

/**
 * Writes a safetensors file atomically (temp name, fsync, rename): a crash or bad input leaves any existing
 * file at `path` untouched. Tensors are written in name order, each converted on its own, so memory stays at
 * one tensor's encoding beyond the caller's data.
 */
export function writeSafetensors(
  path: string,
  tensors: Readonly<Record<string, WritableTensor>> | ReadonlyMap<string, WritableTensor>,
  metadata?: Readonly<Record<string, string>>,
): void {
  const map = asMap(tensors);
  const { prefix, names } = fileHeader(map, metadata);
  const file = openTemp(path);
  try {
    writeAll(file.fd, prefix);
    for (const name of names) {
      const { dtype, shape, data } = map.get(name) as WritableTensor;
      writeAll(file.fd, encode(name, dtype, shape, typeof data === 'function' ? data() : data));
    }
    commitTemp(file);
  } catch (error) {
    abandonTemp(file);
    throw error;
  }
}

/** A tensor whose values are produced only when its turn to be written comes, possibly asynchronously (a device read). */
export interface LazyWritableTensor {
  readonly dtype: WritableDtype;
  readonly shape: readonly number[];
  readonly data: () => WritableValues | Promise<WritableValues>;
}

/**
 * writeSafetensors for tensors larger together than memory: the header is written from shapes and dtypes alone,
 * then each tensor's producer is awaited in name order, its bytes written and its values let go before the next
 * producer is called, so no more than one tensor's values (and their encoding) exist at once. `onWritten` follows
 * each tensor. Atomic as writeSafetensors: a producer that throws leaves nothing at `path` but what was there.
 */
export async function writeSafetensorsLazy(
  path: string,
  tensors: ReadonlyMap<string, LazyWritableTensor>,
  options: { readonly metadata?: Readonly<Record<string, string>>; readonly onWritten?: (name: string) => void } = {},
): Promise<void> {
  const { prefix, names } = fileHeader(tensors, options.metadata);
  const file = openTemp(path);
  try {
    writeAll(file.fd, prefix);
    for (const name of names) {
      const { dtype, shape, data } = tensors.get(name) as LazyWritableTensor;
      writeAll(file.fd, encode(name, dtype, shape, await data()));
      options.onWritten?.(name);
    }
    commitTemp(file);
  } catch (error) {
    abandonTemp(file);
    throw error;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) done += writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, 1 << 30));
}
