/**
 * ggml's tensor encodings to float32 and back. Block layouts follow ggml-common.h (little-endian, halves as IEEE
 * binary16); the arithmetic is float32 step by step (Math.fround where ggml rounds an intermediate), so the values
 * come out bit for bit as ggml's own dequantize_row_* gives them (checked against libggml in the tests).
 *
 *   Q4_0  [d: f16][16 B: 32 nibbles]                          x = (q − 8)·d
 *   Q4_1  [d, m: f16][16 B]                                   x = q·d + m
 *   Q5_0  [d: f16][qh: u32][16 B]                             x = (q | high bit·16 − 16)·d
 *   Q5_1  [d, m: f16][qh: u32][16 B]                          x = q·d + m
 *   Q8_0  [d: f16][32 × i8]                                   x = q·d
 *   Q2_K  [16 B scales/mins 4+4 bit][64 B 2-bit q][d, dmin]  per 16 values: x = d·sc·q − dmin·m
 *   Q3_K  [32 B high bits][64 B 2-bit q][12 B 6-bit scales][d] per 16 values: x = d·(sc − 32)·(q − 4·!high)
 *   Q4_K  [d, dmin][12 B 6-bit scales/mins][128 B nibbles]    per 32 values: x = d·sc·q − dmin·m
 *   Q5_K  [d, dmin][12 B][32 B high bits][128 B nibbles]      as Q4_K with a fifth bit
 *   Q6_K  [128 B low 4 bits][64 B high 2 bits][16 × i8 scales][d] per 16 values: x = d·sc·(q − 32)
 */
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, floatToHalf, halfBitsToFloat } from './half';
import type { GgmlTypeInfo } from './gguf-types';

const fr = Math.fround;

function half(b: Uint8Array, at: number): number {
  return halfBitsToFloat((b[at] as number) | ((b[at + 1] as number) << 8));
}

function q4_0(b: Uint8Array, out: Float32Array, blocks: number): void {
  for (let i = 0; i < blocks; i++) {
    const p = i * 18;
    const d = half(b, p);
    const y = i * 32;
    for (let j = 0; j < 16; j++) {
      const q = b[p + 2 + j] as number;
      out[y + j] = ((q & 0xf) - 8) * d;
      out[y + j + 16] = ((q >> 4) - 8) * d;
    }
  }
}

function q4_1(b: Uint8Array, out: Float32Array, blocks: number): void {
  for (let i = 0; i < blocks; i++) {
    const p = i * 20;
    const d = half(b, p);
    const m = half(b, p + 2);
    const y = i * 32;
    for (let j = 0; j < 16; j++) {
      const q = b[p + 4 + j] as number;
      out[y + j] = fr((q & 0xf) * d) + m;
      out[y + j + 16] = fr((q >> 4) * d) + m;
    }
  }
}

function highBits(b: Uint8Array, at: number): number {
  return ((b[at] as number) | ((b[at + 1] as number) << 8) | ((b[at + 2] as number) << 16) | ((b[at + 3] as number) << 24)) >>> 0;
}

function q5_0(b: Uint8Array, out: Float32Array, blocks: number): void {
  for (let i = 0; i < blocks; i++) {
    const p = i * 22;
    const d = half(b, p);
    const qh = highBits(b, p + 2);
    const y = i * 32;
    for (let j = 0; j < 16; j++) {
      const q = b[p + 6 + j] as number;
      const h0 = ((qh >>> j) << 4) & 0x10;
      const h1 = (qh >>> (j + 12)) & 0x10;
      out[y + j] = (((q & 0xf) | h0) - 16) * d;
      out[y + j + 16] = (((q >> 4) | h1) - 16) * d;
    }
  }
}

function q5_1(b: Uint8Array, out: Float32Array, blocks: number): void {
  for (let i = 0; i < blocks; i++) {
    const p = i * 24;
    const d = half(b, p);
    const m = half(b, p + 2);
    const qh = highBits(b, p + 4);
    const y = i * 32;
    for (let j = 0; j < 16; j++) {
      const q = b[p + 8 + j] as number;
      const h0 = ((qh >>> j) << 4) & 0x10;
      const h1 = (qh >>> (j + 12)) & 0x10;
      out[y + j] = fr(((q & 0xf) | h0) * d) + m;
      out[y + j + 16] = fr(((q >> 4) | h1) * d) + m;
    }
  }
}

function q8_0(b: Uint8Array, out: Float32Array, blocks: number): void {
  for (let i = 0; i < blocks; i++) {
    const p = i * 34;
    const d = half(b, p);
    const y = i * 32;
    for (let j = 0; j < 32; j++) out[y + j] = (((b[p + 2 + j] as number) << 24) >> 24) * d;
  }
}

function q2_K(b: Uint8Array, out: Float32Array, blocks: number): void {
  for (let i = 0; i < blocks; i++) {
    const p = i * 84;
    const d = half(b, p + 80);
    const min = half(b, p + 82);
    let y = i * 256;
    let q = p + 16;
    let is = 0;
    for (let n = 0; n < 256; n += 128) {
      for (let shift = 0; shift < 8; shift += 2) {
        for (const offset of [0, 16]) {
          const sc = b[p + is++] as number;
          const dl = fr(d * (sc & 0xf));
          const ml = fr(min * (sc >> 4));
          for (let l = 0; l < 16; l++) out[y++] = fr(dl * (((b[q + offset + l] as number) >> shift) & 3)) - ml;
        }
      }
      q += 32;
    }
  }
}

/** Q3_K's twelve bytes of 6-bit scales, unpacked to sixteen signed scales (−32 applied). */
function q3kScales(b: Uint8Array, at: number): Int32Array {
  const s = new Int32Array(16);
  for (let j = 0; j < 16; j++) {
    const low = j < 8 ? (b[at + (j % 8)] as number) & 0xf : (b[at + (j % 8)] as number) >> 4;
    const high = ((b[at + 8 + (j % 4)] as number) >> (2 * Math.floor(j / 4))) & 3;
    s[j] = (low | (high << 4)) - 32;
  }
  return s;
}

function q3_K(b: Uint8Array, out: Float32Array, blocks: number): void {
  for (let i = 0; i < blocks; i++) {
    const p = i * 110;
    const hm = p;
    let q = p + 32;
    const scales = q3kScales(b, p + 96);
    const d = half(b, p + 108);
    let y = i * 256;
    let is = 0;
    let m = 1;
    for (let n = 0; n < 256; n += 128) {
      for (let shift = 0; shift < 8; shift += 2) {
        for (const offset of [0, 16]) {
          const dl = fr(d * (scales[is++] as number));
          for (let l = 0; l < 16; l++) {
            const low = ((b[q + offset + l] as number) >> shift) & 3;
            out[y++] = dl * (low - ((b[hm + offset + l] as number) & m ? 0 : 4));
          }
        }
        m <<= 1;
      }
      q += 32;
    }
  }
}

/** The j-th 6-bit scale and min of a Q4_K / Q5_K super-block (`at`: its 12 scale bytes). */
function scaleMinK4(b: Uint8Array, at: number, j: number): [number, number] {
  if (j < 4) return [(b[at + j] as number) & 63, (b[at + j + 4] as number) & 63];
  const sc = ((b[at + j + 4] as number) & 0xf) | (((b[at + j - 4] as number) >> 6) << 4);
  const m = ((b[at + j + 4] as number) >> 4) | (((b[at + j] as number) >> 6) << 4);
  return [sc, m];
}

function q4_K(b: Uint8Array, out: Float32Array, blocks: number): void {
  for (let i = 0; i < blocks; i++) {
    const p = i * 144;
    const d = half(b, p);
    const min = half(b, p + 2);
    let q = p + 16;
    let y = i * 256;
    for (let is = 0; is < 8; is += 2) {
      const [sc1, m1] = scaleMinK4(b, p + 4, is);
      const [sc2, m2] = scaleMinK4(b, p + 4, is + 1);
      const d1 = fr(d * sc1);
      const dm1 = fr(min * m1);
      const d2 = fr(d * sc2);
      const dm2 = fr(min * m2);
      for (let l = 0; l < 32; l++) out[y++] = fr(d1 * ((b[q + l] as number) & 0xf)) - dm1;
      for (let l = 0; l < 32; l++) out[y++] = fr(d2 * ((b[q + l] as number) >> 4)) - dm2;
      q += 32;
    }
  }
}

function q5_K(b: Uint8Array, out: Float32Array, blocks: number): void {
  for (let i = 0; i < blocks; i++) {
    const p = i * 176;
    const d = half(b, p);
    const min = half(b, p + 2);
    const qh = p + 16;
    let ql = p + 48;
    let y = i * 256;
    let u1 = 1;
    let u2 = 2;
    for (let is = 0; is < 8; is += 2) {
      const [sc1, m1] = scaleMinK4(b, p + 4, is);
      const [sc2, m2] = scaleMinK4(b, p + 4, is + 1);
      const d1 = fr(d * sc1);
      const dm1 = fr(min * m1);
      const d2 = fr(d * sc2);
      const dm2 = fr(min * m2);
      for (let l = 0; l < 32; l++) out[y++] = fr(d1 * (((b[ql + l] as number) & 0xf) + ((b[qh + l] as number) & u1 ? 16 : 0))) - dm1;
      for (let l = 0; l < 32; l++) out[y++] = fr(d2 * (((b[ql + l] as number) >> 4) + ((b[qh + l] as number) & u2 ? 16 : 0))) - dm2;
      ql += 32;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}

function q6_K(b: Uint8Array, out: Float32Array, blocks: number): void {
  for (let i = 0; i < blocks; i++) {
    const p = i * 210;
    const d = half(b, p + 208);
    let ql = p;
    let qh = p + 128;
    let sc = p + 192;
    let y = i * 256;
    for (let n = 0; n < 256; n += 128) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = b[qh + l] as number;
        const lo = b[ql + l] as number;
        const hi = b[ql + l + 32] as number;
        const s = (k: number) => fr(d * (((b[sc + is + k] as number) << 24) >> 24));
        out[y + l] = s(0) * (((lo & 0xf) | ((h & 3) << 4)) - 32);
        out[y + l + 32] = s(2) * (((hi & 0xf) | (((h >> 2) & 3) << 4)) - 32);
        out[y + l + 64] = s(4) * (((lo >> 4) | (((h >> 4) & 3) << 4)) - 32);
        out[y + l + 96] = s(6) * (((hi >> 4) | (((h >> 6) & 3) << 4)) - 32);
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

type BlockDecoder = (bytes: Uint8Array, out: Float32Array, blocks: number) => void;

const BLOCK_DECODERS: Readonly<Record<string, BlockDecoder>> = { Q4_0: q4_0, Q4_1: q4_1, Q5_0: q5_0, Q5_1: q5_1, Q8_0: q8_0, Q2_K: q2_K, Q3_K: q3_K, Q4_K: q4_K, Q5_K: q5_K, Q6_K: q6_K };

/** Types whose tensors load as float32 weights. */
export const DEQUANTIZABLE: readonly string[] = ['F32', 'F16', 'BF16', 'F64', ...Object.keys(BLOCK_DECODERS)];

/** A view of `bytes` as `Ctor` elements; copies once when the bytes are not aligned for it. */
function view<T extends Uint16Array | Float32Array | Float64Array>(
  Ctor: { new (buffer: ArrayBuffer, offset: number, length: number): T; BYTES_PER_ELEMENT: number },
  bytes: Uint8Array,
  count: number,
): T {
  const aligned = bytes.byteOffset % Ctor.BYTES_PER_ELEMENT === 0 ? bytes : bytes.slice();
  return new Ctor(aligned.buffer as ArrayBuffer, aligned.byteOffset, count);
}

/**
 * `count` values of `type` from their encoded bytes, as float32. The caller has checked that the type is in
 * DEQUANTIZABLE and that `bytes` holds exactly the tensor.
 */
export function dequantize(type: GgmlTypeInfo, bytes: Uint8Array, count: number): Float32Array {
  switch (type.name) {
    case 'F32':
      return view(Float32Array, bytes, count).slice();
    case 'F16':
      return f16ToF32(view(Uint16Array, bytes, count));
    case 'BF16':
      return bf16ToF32(view(Uint16Array, bytes, count));
    case 'F64':
      return Float32Array.from(view(Float64Array, bytes, count));
  }
  const decode = BLOCK_DECODERS[type.name];
  if (!decode) throw new Error(`dequantize: no decoder for ${type.name}`);
  const out = new Float32Array(count);
  decode(bytes, out, count / type.blockSize);
  return out;
}

/** Types this engine writes. */
export type WritableGgmlType = 'F32' | 'F16' | 'BF16' | 'Q8_0';

/** ggml's roundf: halves away from zero. */
function roundAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** As ggml's quantize_row_q8_0_ref: d = max|x| / 127 per block of 32, q = round(x / d). values.length % 32 == 0. */
function quantizeQ8_0(values: Float32Array): Uint8Array {
  const blocks = values.length / 32;
  const out = new Uint8Array(blocks * 34);
  for (let i = 0; i < blocks; i++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(values[i * 32 + j] as number));
    const d = fr(amax / 127);
    const id = d ? fr(1 / d) : 0;
    const h = floatToHalf(d);
    const p = i * 34;
    out[p] = h & 0xff;
    out[p + 1] = h >> 8;
    for (let j = 0; j < 32; j++) out[p + 2 + j] = roundAway(fr((values[i * 32 + j] as number) * id)) & 0xff;
  }
  return out;
}

/** float32 values encoded as `type` (Q8_0 needs a multiple of 32 values). */
export function quantize(type: WritableGgmlType, values: Float32Array): Uint8Array {
  const bytes = (typed: Float32Array | Uint16Array) => new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  switch (type) {
    case 'F32':
      return bytes(values);
    case 'F16':
      return bytes(f32ToF16(values));
    case 'BF16':
      return bytes(f32ToBf16(values));
    case 'Q8_0':
      if (values.length % 32 !== 0) throw new Error(`Q8_0 needs a multiple of 32 values, got ${values.length}`);
      return quantizeQ8_0(values);
  }
}
