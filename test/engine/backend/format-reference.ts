/**
 * The stored formats of the frozen-weight store in float64 code written from their definitions (BF16 and F16
 * rounding to nearest even, GGUF's Q8_0 and Q4_0 blocks), independent of the addon and the engine: what a weight's
 * values become in each format, for the tests that check the store and what it costs.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16Value(x: number): number {
  f32[0] = x;
  const bits = u32[0] as number;
  const rounded = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16; // round to nearest even
  u32[0] = (rounded << 16) >>> 0;
  return f32[0] as number;
}

/** The nearest half to x (ties to even), as a number: by scaling to the half's exponent and rounding there. */
export function halfValue(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const exponent = Math.max(Math.floor(Math.log2(Math.abs(x))), -14); // subnormals share 2^-14's spacing
  const step = 2 ** (exponent - 10);
  let q = x / step;
  const floor = Math.floor(q);
  const rest = q - floor;
  q = rest > 0.5 || (rest === 0.5 && floor % 2 !== 0) ? floor + 1 : floor;
  const value = q * step;
  return Math.abs(value) > 65504 ? Math.sign(x) * Infinity : value;
}

/** GGUF's Q8_0 in float32 arithmetic (Math.fround at each float32 step), per 32-value block of each row. */
export function q8Row(row: Float32Array): { values: Float64Array; bound: Float64Array } {
  const values = new Float64Array(row.length);
  const bound = new Float64Array(row.length);
  for (let start = 0; start < row.length; start += 32) {
    const end = Math.min(start + 32, row.length);
    let amax = 0;
    for (let c = start; c < end; c++) amax = Math.max(amax, Math.abs(row[c] as number));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const dHalf = halfValue(d);
    for (let c = start; c < end; c++) {
      const scaled = Math.fround((row[c] as number) * id);
      const q = Math.sign(scaled) * Math.round(Math.abs(scaled)); // roundf: halves away from zero
      values[c] = dHalf * q + 0; // q = 0 is +0 in the addon's int8, whatever the sign of x
      bound[c] = d / 2 + 127 * Math.abs(d - dHalf) + 1e-12;
    }
  }
  return { values, bound };
}

/**
 * GGUF's Q4_0 (ggml's quantize_row_q4_0_ref) in float32 arithmetic, per 32-value block of each row (a short last
 * block as if padded with zeros): m the value of largest magnitude (the first, on a tie), d = m / −8,
 * q = min(15, trunc(x·(1/d) + 8.5)), value = f16(d)·(q − 8). Each value is within |d|/2 of the original (|d| where
 * q is clamped at 15) plus 8·|d − f16(d)|.
 */
export function q4Row(row: Float32Array): { values: Float64Array; bound: Float64Array } {
  const values = new Float64Array(row.length);
  const bound = new Float64Array(row.length);
  for (let start = 0; start < row.length; start += 32) {
    const end = Math.min(start + 32, row.length);
    let amax = 0;
    let max = 0;
    for (let c = start; c < end; c++) {
      const v = row[c] as number;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const dHalf = halfValue(d);
    for (let c = start; c < end; c++) {
      const t = Math.trunc(Math.fround(Math.fround((row[c] as number) * id) + 8.5));
      const q = Math.min(15, t);
      values[c] = dHalf * (q - 8);
      bound[c] = (t > 15 ? 1 : 0.5) * Math.abs(d) * (1 + 2 ** -16) + 8 * Math.abs(d - dHalf) + 1e-12;
    }
  }
  return { values, bound };
}

/** An IEEE half's bits as its value. */
function halfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  return e === 31 ? (f ? NaN : sign * Infinity) : sign * (e === 0 ? 2 ** -14 * (f / 1024) : 2 ** (e - 15) * (1 + f / 1024));
}

/** Q4_0 blocks (18 bytes each: F16 d little-endian, then 16 bytes of codes, low nibbles first) as float64 values. */
export function q4Decode(blocks: Uint8Array, values: number): Float64Array {
  const out = new Float64Array(values);
  for (let i = 0; i < values; i++) {
    const block = Math.floor(i / 32);
    const j = i % 32;
    const at = block * 18;
    const d = halfBits((blocks[at] as number) | ((blocks[at + 1] as number) << 8));
    const byte = blocks[at + 2 + (j % 16)] as number;
    out[i] = d * ((j < 16 ? byte & 0x0f : byte >> 4) - 8);
  }
  return out;
}
