/**
 * What a base precision does to a model's loss, in float64 code that shares nothing with the engine: the weights as
 * GGUF's Q8_0 or Q4_0 holds them (format-reference's q8Row / q4Row, per row of every matrix) and the mean
 * cross-entropy of a llama family model's target tokens through llamaReference. For the tests that check measured
 * precision costs.
 */
import { readFileSync } from 'node:fs';
import { decodeBf16, decodeF16 } from '../backend/fused-reference';
import { q4Row, q8Row } from '../backend/format-reference';
import { llamaReference, type LlamaRefConfig, type Weights } from './float64-reference';

/** Every matrix (the linears and the embedding table) as Q8_0 holds it; norms and biases as they are. */
export function q8Weights(weights: Weights): Weights {
  return rowsAs(weights, q8Row);
}

/** Every matrix as Q4_0 holds it; norms and biases as they are. */
export function q4Weights(weights: Weights): Weights {
  return rowsAs(weights, q4Row);
}

function rowsAs(weights: Weights, quantize: (row: Float32Array) => { values: Float64Array }): Weights {
  const out: Weights = new Map();
  for (const [name, w] of weights) {
    if (w.shape.length !== 2) {
      out.set(name, w);
      continue;
    }
    const [rows, cols] = w.shape as [number, number];
    const data = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) data.set(quantize(Float32Array.from(w.data.subarray(r * cols, (r + 1) * cols))).values, r * cols);
    out.set(name, { shape: w.shape, data });
  }
  return out;
}

/** Mean cross-entropy of the target tokens (ids[t+1] where train[t+1]), each row through the float64 model alone. */
export function targetLoss(weights: Weights, config: LlamaRefConfig, rows: readonly { ids: readonly number[]; train: readonly number[] }[]): number {
  let sum = 0;
  let count = 0;
  for (const row of rows) {
    const logits = llamaReference(weights, config, [...row.ids]);
    for (let t = 0; t + 1 < row.ids.length; t++) {
      if (row.train[t + 1] !== 1) continue;
      const z = logits[t] as Float64Array;
      const max = Math.max(...z);
      const logSum = Math.log(z.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
      sum += logSum - (z[row.ids[t + 1] as number] as number);
      count++;
    }
  }
  return sum / count;
}

/** A safetensors file's F16 / BF16 / F32 tensors as float64, read by the format's definition (8-byte header size, JSON header, data). */
export function readSafetensorsF64(path: string): Weights {
  const bytes = readFileSync(path);
  const headerBytes = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerBytes).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const weights: Weights = new Map();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const raw = bytes.subarray(8 + headerBytes + t.data_offsets[0], 8 + headerBytes + t.data_offsets[1]);
    const n = t.shape.reduce((a, b) => a * b, 1);
    const data = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      if (t.dtype === 'F16') data[i] = decodeF16(raw.readUInt16LE(2 * i));
      else if (t.dtype === 'BF16') data[i] = decodeBf16(raw.readUInt16LE(2 * i));
      else if (t.dtype === 'F32') data[i] = raw.readFloatLE(4 * i);
      else throw new Error(`${path}: ${name} is ${t.dtype}, not F16, BF16 or F32`);
    }
    weights.set(name, { shape: t.shape, data });
  }
  return weights;
}
