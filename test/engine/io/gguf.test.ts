/**
 * The GGUF reader and writer against ggml's own parser: llama.cpp's converter output read key by key as ggml reads
 * it, our files parsed by ggml to the same metadata, tensor infos and bytes, and bad files refused by name.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GgufFile, isGgufFile } from '../../../main/engine/io/gguf';
import { dequantize } from '../../../main/engine/io/gguf-quants';
import { GgufValueType, ggmlType } from '../../../main/engine/io/gguf-types';
import { kv, writeGguf, type GgufTensorSpec } from '../../../main/engine/io/gguf-write';
import { ggmlDump, llamaCppVocab } from '../../support/llama-cpp';

const dir = mkdtempSync(join(tmpdir(), 'lorasmith-gguf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ramp(n: number, scale = 0.01): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * scale * (1 + (i % 5)));
}

/** Our metadata as plain JSON-comparable values (ggml's dump prints floats with 9 significant digits). */
function plain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain);
  return typeof value === 'number' && !Number.isInteger(value) ? Number(value.toPrecision(9)) : value;
}

describe('reading files llama.cpp wrote', () => {
  for (const name of ['llama-spm', 'qwen2'] as const) {
    it(`ggml-vocab-${name}.gguf: every key, type and value as ggml reads it`, () => {
      const path = llamaCppVocab(name);
      const ours = new GgufFile(path);
      const ggml = ggmlDump(path);
      try {
        expect(ours.version).toBe(ggml.version);
        expect(ours.alignment).toBe(ggml.alignment);
        expect([...ours.metadata.keys()]).toEqual([...ggml.metadata.keys()]);
        for (const [key, entry] of ours.metadata) {
          const theirs = ggml.metadata.get(key);
          expect(entry.type, key).toBe(theirs?.type);
          expect(entry.itemType, key).toBe(theirs?.itemType);
          expect(plain(entry.value), key).toEqual(plain(theirs?.value));
        }
        expect(ours.string('general.architecture')).toBe(name === 'qwen2' ? 'qwen2' : 'llama');
        expect(ours.array('tokenizer.ggml.tokens')?.length).toBeGreaterThan(30000);
        expect(ours.tensors.size).toBe(0);
      } finally {
        ours.close();
      }
    });
  }

  it('names a value of the wrong kind', () => {
    const file = new GgufFile(llamaCppVocab('llama-spm'));
    try {
      expect(() => file.number('general.architecture')).toThrow(/'general.architecture' must be a number, got "llama"/);
      expect(file.number('llama.rope.freq_base', 10000)).toBe(10000);
    } finally {
      file.close();
    }
  });
});

const EVERY_TYPE = [
  { key: 't.u8', type: GgufValueType.UINT8, value: 250 },
  { key: 't.i8', type: GgufValueType.INT8, value: -100 },
  { key: 't.u16', type: GgufValueType.UINT16, value: 65000 },
  { key: 't.i16', type: GgufValueType.INT16, value: -32000 },
  kv.u32('t.u32', 4_000_000_000),
  kv.i32('t.i32', -2_000_000_000),
  kv.f32('t.f32', 1e-5),
  kv.bool('t.bool', true),
  kv.string('t.string', 'grüße, 世界 ▁<0x0A>'),
  { key: 't.u64', type: GgufValueType.UINT64, value: 2 ** 40 + 3 },
  { key: 't.i64', type: GgufValueType.INT64, value: -(2 ** 40) },
  { key: 't.f64', type: GgufValueType.FLOAT64, value: Math.PI },
  kv.strings('t.strings', ['a', '', 'Ġthe', '<|im_start|>']),
  kv.f32s('t.f32s', [0, -1000, 0.5]),
  kv.i32s('t.i32s', [1, 3, 6, -2]),
  kv.u32s('t.u32s', [7, 8]),
  { key: 't.bools', type: GgufValueType.ARRAY, itemType: GgufValueType.BOOL, value: [true, false] },
];

const TENSORS: GgufTensorSpec[] = [
  { name: 'norm.weight', shape: [48], type: 'F32', data: () => ramp(48, 1) },
  { name: 'blk.0.attn_q.weight', shape: [40, 64], type: 'F16', data: () => ramp(40 * 64) },
  { name: 'blk.0.ffn_up.weight', shape: [3, 5, 96], type: 'BF16', data: () => ramp(3 * 5 * 96) },
  { name: 'token_embd.weight', shape: [7, 128], type: 'Q8_0', data: async () => ramp(7 * 128, 0.2) },
];

describe('writing', () => {
  for (const alignment of [32, 64]) {
    it(`ggml parses what we write (alignment ${alignment}): metadata, tensor infos and data`, async () => {
      const path = join(dir, `every-${alignment}.gguf`);
      await writeGguf(path, [kv.string('general.architecture', 'llama'), ...EVERY_TYPE], TENSORS, { alignment });
      expect(isGgufFile(path)).toBe(true);
      const ggml = ggmlDump(path);
      expect(ggml.alignment).toBe(alignment);
      for (const e of EVERY_TYPE) {
        const theirs = ggml.metadata.get(e.key);
        expect(theirs?.type, e.key).toBe(e.type);
        expect(plain(theirs?.value), e.key).toEqual(plain(e.type === GgufValueType.FLOAT32 ? Math.fround(e.value as number) : e.value));
      }
      const ours = new GgufFile(path);
      try {
        expect(ours.dataStart).toBe(ggml.dataOffset);
        expect(ggml.tensors.map((t) => t.name)).toEqual(TENSORS.map((t) => t.name));
        const bytes = readFileSync(path);
        for (const [i, spec] of TENSORS.entries()) {
          const theirs = ggml.tensors[i] as (typeof ggml.tensors)[number];
          const info = ours.tensor(spec.name);
          expect([theirs.type, theirs.offset, theirs.size]).toEqual([ggmlType(spec.type).id, info.offset, info.bytes]);
          expect(info.shape).toEqual(spec.shape);
          expect(info.ne).toEqual([...spec.shape].reverse());
          // The bytes where ggml says the tensor is decode to the values we wrote (within the type's rounding).
          const raw = bytes.subarray(ggml.dataOffset + theirs.offset, ggml.dataOffset + theirs.offset + theirs.size);
          const decoded = dequantize(ggmlType(spec.type), new Uint8Array(raw), info.count);
          expect(ours.readFloat(spec.name).data).toEqual(decoded);
          const x = await spec.data();
          // Q8_0: half a step of max|x|/127 plus the half-precision rounding of that scale; halves: 2^-8 relative.
          const maxAbs = x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          const tol = (v: number) => (spec.type === 'F32' ? 0 : spec.type === 'Q8_0' ? (maxAbs / 127) * 0.6 : Math.abs(v) * 2 ** -8);
          decoded.forEach((v, j) => expect(Math.abs(v - (x[j] as number))).toBeLessThanOrEqual(tol(x[j] as number) + 1e-12));
        }
      } finally {
        ours.close();
      }
    });
  }

  it('leaves nothing behind when a tensor fails, and keeps an existing file', async () => {
    const path = join(dir, 'kept.gguf');
    writeFileSync(path, 'the user file');
    const failing: GgufTensorSpec = { name: 'x', shape: [4], type: 'F32', data: () => { throw new Error('model disposed'); } };
    await expect(writeGguf(path, [], [failing])).rejects.toThrow('model disposed');
    await expect(writeGguf(path, [], [{ name: 'y', shape: [2, 33], type: 'Q8_0', data: () => new Float32Array(66) }])).rejects.toThrow(/rows of 33 values cannot be stored as Q8_0/);
    await expect(writeGguf(path, [], [{ name: 'z', shape: [3], type: 'F32', data: () => new Float32Array(2) }])).rejects.toThrow(/'z' has 2 values/);
    await expect(writeGguf(path, [kv.u32('a', 1), kv.u32('a', 2)], [])).rejects.toThrow(/'a' is listed twice/);
    await expect(writeGguf(path, [kv.u32('a', -1)], [])).rejects.toThrow(/'a': -1 is not a valid UINT32/);
    expect(readFileSync(path, 'utf8')).toBe('the user file');
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});

describe('bad files', () => {
  async function sample(name: string): Promise<string> {
    const path = join(dir, name);
    await writeGguf(path, [kv.string('general.architecture', 'llama')], TENSORS);
    return path;
  }

  it('refuses a truncated file, naming the tensor that is cut', async () => {
    const path = await sample('truncated.gguf');
    truncateSync(path, readFileSync(path).length - 100);
    expect(() => new GgufFile(path)).toThrow(/tensor 'token_embd.weight' needs bytes up to \d+ but the file has \d+: the file is truncated/);
  });

  it('refuses an unknown quantization, naming the tensor and the type', async () => {
    const path = await sample('unknown-type.gguf');
    const bytes = readFileSync(path);
    // The type field of the first tensor info follows its name, n_dims and one u64 dimension.
    const at = bytes.indexOf(Buffer.from('norm.weight')) + 'norm.weight'.length + 4 + 8;
    expect(bytes.readUInt32LE(at)).toBe(0);
    bytes.writeUInt32LE(77, at);
    writeFileSync(path, bytes);
    expect(() => new GgufFile(path)).toThrow(/tensor 'norm.weight' has ggml type 77, a quantization this version does not know/);
  });

  it('refuses a quantization it knows but cannot read, by name', async () => {
    const path = await sample('iq2.gguf');
    const bytes = readFileSync(path);
    const at = bytes.indexOf(Buffer.from('token_embd.weight')) + 'token_embd.weight'.length + 4 + 16;
    expect(bytes.readUInt32LE(at)).toBe(8);
    bytes.writeUInt32LE(20, at); // IQ4_NL: same block geometry as Q8_0's 32 values, fewer bytes
    writeFileSync(path, bytes);
    const file = new GgufFile(path);
    try {
      expect(() => file.readFloat('token_embd.weight')).toThrow(/'token_embd.weight' is IQ4_NL, a quantization this version cannot read/);
    } finally {
      file.close();
    }
  });

  it('refuses files that are not GGUF', () => {
    const path = join(dir, 'not.gguf');
    writeFileSync(path, Buffer.alloc(64, 1));
    expect(isGgufFile(path)).toBe(false);
    expect(isGgufFile(dir)).toBe(false);
    expect(() => new GgufFile(path)).toThrow(/does not start with 'GGUF'/);
    expect(() => new GgufFile(join(dir, 'missing.gguf'))).toThrow(/cannot open/);
    expect(existsSync(join(dir, 'missing.gguf'))).toBe(false);
  });
});
