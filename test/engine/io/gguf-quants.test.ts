/**
 * ggml's encodings against llama.cpp's own code (libggml as node-llama-cpp ships it, through ggml-tool): the type
 * table, every dequantizer bit for bit on blocks ggml's reference quantizers made from random values, and our
 * F16 / BF16 / Q8_0 encoders byte for byte against ggml's.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEQUANTIZABLE, dequantize, quantize } from '../../../main/engine/io/gguf-quants';
import { GGML_TYPES, ggmlType } from '../../../main/engine/io/gguf-types';
import { runGgmlTool } from '../../support/llama-cpp';

const dir = mkdtempSync(join(tmpdir(), 'lorasmith-quants-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Deterministic values with a spread of magnitudes, outliers and exact zeros, as real weights have. */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = s / 2 ** 32;
    out[i] = i % 97 === 0 ? 0 : (u - 0.5) * (i % 13 === 0 ? 8 : 0.2) * (1 + (i % 7));
  }
  return out;
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function ggmlQuantize(type: string, x: Float32Array, rows: number): Uint8Array {
  const input = join(dir, `${type}.f32`);
  const output = join(dir, `${type}.q`);
  writeFileSync(input, bytesOf(x));
  runGgmlTool(['quant', String(ggmlType(type).id), input, output, String(rows), String(x.length / rows)]);
  return new Uint8Array(readFileSync(output));
}

function ggmlDequantize(type: string, bytes: Uint8Array, n: number): Float32Array {
  const input = join(dir, `${type}.in`);
  const output = join(dir, `${type}.out`);
  writeFileSync(input, bytes);
  runGgmlTool(['dequant', String(ggmlType(type).id), input, output, String(n)]);
  const b = readFileSync(output);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

describe('ggml types', () => {
  it('match ggml block sizes and type sizes for every type ggml knows', () => {
    const ggml = runGgmlTool(['types']).trim().split('\n').map((l) => l.split(' '));
    expect(ggml.length).toBeGreaterThan(30);
    for (const [id, name, block, size] of ggml) {
      const ours = GGML_TYPES.find((t) => t.id === Number(id));
      expect(ours, `ggml type ${id} ${name}`).toBeDefined();
      expect([ours?.name.toLowerCase(), ours?.blockSize, ours?.typeSize]).toEqual([name?.toLowerCase(), Number(block), Number(size)]);
    }
  });
});

describe('dequantize', () => {
  const rows = 3;
  const cols = 512;
  for (const type of DEQUANTIZABLE.filter((t) => t !== 'F32' && t !== 'F64')) {
    it(`${type} equals ggml's dequantizer bit for bit`, () => {
      const x = values(rows * cols, type.length * 7919);
      const encoded = ggmlQuantize(type, x, rows);
      const ours = dequantize(ggmlType(type), encoded, x.length);
      const theirs = ggmlDequantize(type, encoded, x.length);
      let mismatches = 0;
      for (let i = 0; i < x.length; i++) if (!Object.is(ours[i], theirs[i])) mismatches++;
      expect(mismatches).toBe(0);
      // And the encoding is the lossy approximation it should be (not, say, all zeros).
      let err = 0;
      let norm = 0;
      for (let i = 0; i < x.length; i++) {
        err += ((ours[i] as number) - (x[i] as number)) ** 2;
        norm += (x[i] as number) ** 2;
      }
      expect(Math.sqrt(err / norm)).toBeLessThan(type === 'Q2_K' ? 0.5 : 0.2);
    });
  }

  it('reads F32 and F64 as they are', () => {
    const x = values(64, 3);
    expect(dequantize(ggmlType('F32'), new Uint8Array(bytesOf(x)), 64)).toEqual(x);
    const wide = Float64Array.from(x);
    expect(dequantize(ggmlType('F64'), new Uint8Array(wide.buffer), 64)).toEqual(x);
  });
});

describe('quantize', () => {
  it('F16, BF16 and Q8_0 encode byte for byte as ggml does, specials included', () => {
    const x = values(4 * 256, 11);
    x.set([65504, 65520, -1e-8, 6e-5, 1e-7, Infinity, -Infinity, 3.0000001], 0);
    const finite = x.map((v) => (Number.isFinite(v) ? v : 0));
    const ref = (cmd: 'f16' | 'bf16') => {
      const input = join(dir, `${cmd}.f32`);
      writeFileSync(input, bytesOf(x));
      runGgmlTool([cmd, input, join(dir, `${cmd}.out`), String(x.length)]);
      return new Uint8Array(readFileSync(join(dir, `${cmd}.out`)));
    };
    expect(Buffer.from(quantize('F16', x))).toEqual(Buffer.from(ref('f16')));
    expect(Buffer.from(quantize('BF16', x))).toEqual(Buffer.from(ref('bf16')));
    expect(Buffer.from(quantize('Q8_0', finite))).toEqual(Buffer.from(ggmlQuantize('Q8_0', finite, 4)));
  });

  it('refuses Q8_0 rows that are not whole blocks', () => {
    expect(() => quantize('Q8_0', new Float32Array(33))).toThrow(/multiple of 32/);
  });
});
