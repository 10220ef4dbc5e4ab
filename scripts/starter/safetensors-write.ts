/**
 * Writes a safetensors file (8-byte little-endian header length, JSON header, raw little-endian data) in F16 or
 * F32. The starter script keeps its own small writer so that it does not depend on the engine's IO for output.
 */
import { renameSync, writeFileSync } from 'node:fs';

export type SafetensorsDtype = 'F16' | 'F32';

export interface NamedArray {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** IEEE 754 binary32 -> binary16 bits, round to nearest even, with overflow to infinity and subnormals. */
export function float32ToFloat16Bits(value: number): number {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0] as number;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mantissa | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1))) half++;
    return sign | half;
  }
  let half = sign | (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half++;
  return half;
}

export function writeSafetensors(path: string, arrays: readonly NamedArray[], dtype: SafetensorsDtype,
  metadata: Record<string, string> = {}): void {
  const bytesPer = dtype === 'F16' ? 2 : 4;
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const a of arrays) {
    const size = a.data.length * bytesPer;
    header[a.name] = { dtype, shape: a.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let headerText = JSON.stringify(header);
  headerText += ' '.repeat((8 - (headerText.length % 8)) % 8);
  const headerBytes = Buffer.from(headerText, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const a of arrays) {
    for (const v of a.data) {
      if (dtype === 'F16') {
        out.writeUInt16LE(float32ToFloat16Bits(v), at);
        at += 2;
      } else {
        out.writeFloatLE(v, at);
        at += 4;
      }
    }
  }
  writeFileSync(path + '.tmp', out);
  renameSync(path + '.tmp', path);
}
