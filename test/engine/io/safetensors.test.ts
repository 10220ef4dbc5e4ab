import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSafetensors, readSafetensors, writeSafetensors, writeSafetensorsLazy } from '../../../main/engine/io/safetensors';
import { openCheckpoint } from '../../../main/engine/io/model-checkpoint';
import { ModelIoError } from '../../../main/engine/io/errors';
import { isTempName } from '../../../main/common/atomic';

const fixtures = join(import.meta.dirname, '../../fixtures');
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'safetensors-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Builds a file by hand, byte by byte, independent of the writer under test. */
function handMade(header: object, data: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

function file(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

function expectCode(fn: () => unknown, code: string, message: RegExp): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ModelIoError);
    expect((error as ModelIoError).code).toBe(code);
    expect((error as Error).message).toMatch(message);
    return;
  }
  throw new Error('expected an error');
}

describe('safetensors reader', () => {
  it('decodes F16 and BF16 bit patterns to the values IEEE defines', () => {
    // half: 1, -2, 65504 (max), 2^-24 (min subnormal), 0x3555 = 0.333251953125, -65504 (+inf: see the next test)
    const half = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x3555, 0xfbff]);
    // bfloat16: 1, -2, 3.140625 (0x4049), 1e-38-ish subnormal-free 0x0080 = 2^-126
    const bf = new Uint16Array([0x3f80, 0xc000, 0x4049, 0x0080]);
    const header = {
      h: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 12] },
      b: { dtype: 'BF16', shape: [4], data_offsets: [12, 20] },
      i: { dtype: 'I64', shape: [2], data_offsets: [20, 36] },
      __metadata__: { format: 'pt' },
    };
    const i64 = new BigInt64Array([-7n, 123456789n]);
    const data = new Uint8Array(36);
    data.set(new Uint8Array(half.buffer), 0);
    data.set(new Uint8Array(bf.buffer), 12);
    data.set(new Uint8Array(i64.buffer), 20);
    const { tensors, metadata } = readSafetensors(file('hand.safetensors', handMade(header, data)));
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.get('h')?.shape).toEqual([2, 3]);
    expect([...(tensors.get('h')?.data ?? [])]).toEqual([1, -2, 65504, 2 ** -24, 0.333251953125, -65504]);
    expect([...(tensors.get('b')?.data ?? [])]).toEqual([1, -2, 3.140625, 2 ** -126]);
    expect(tensors.get('i')?.data).toBeInstanceOf(Int32Array);
    expect([...(tensors.get('i')?.data ?? [])]).toEqual([-7, 123456789]);
  });

  it('refuses a tensor holding NaN or an infinity, naming it and where', () => {
    const cases: [string, Uint8Array][] = [
      ['F16', new Uint8Array(new Uint16Array([0x3c00, 0x7c00]).buffer)], // 1, +inf
      ['BF16', new Uint8Array(new Uint16Array([0x3f80, 0x7fc0]).buffer)], // 1, NaN
      ['F32', new Uint8Array(new Float32Array([0.5, -Infinity]).buffer)],
    ];
    for (const [dtype, bytes] of cases) {
      const header = { 'model.layers.3.mlp.up_proj.weight': { dtype, shape: [2], data_offsets: [0, bytes.length] } };
      const path = file(`non-finite-${dtype}.safetensors`, handMade(header, bytes));
      const refusal = expect.objectContaining({
        code: 'NON_FINITE', message: expect.stringMatching(/tensor 'model\.layers\.3\.mlp\.up_proj\.weight' holds (Infinity|NaN|-Infinity) at index 1 of 2/),
      });
      expect(() => readSafetensors(path)).toThrow(refusal);
      // The frozen-weight store reads stored bits without converting them: refused the same.
      const opened = openSafetensors(path);
      try {
        expect(() => opened.readRaw('model.layers.3.mlp.up_proj.weight')).toThrow(refusal);
      } finally {
        opened.close();
      }
    }
  });

  it('reads the real tiny-random-gpt2 checkpoint (F32) with the shapes its config implies', () => {
    const f = openSafetensors(join(fixtures, 'tiny-random-gpt2/model.safetensors'));
    try {
      const wte = f.read('transformer.wte.weight');
      expect(wte.shape).toEqual([1000, 32]);
      expect(wte.dtype).toBe('F32');
      expect(wte.data.length).toBe(32000);
      expect(f.tensors.get('transformer.h.0.attn.c_attn.weight')?.shape).toEqual([32, 96]);
    } finally {
      f.close();
    }
  });

  it('reads the real tiny-random-llama checkpoint (F16)', () => {
    const { tensors } = readSafetensors(join(fixtures, 'tiny-random-llama/model.safetensors'));
    const embed = tensors.get('model.embed_tokens.weight');
    expect(embed?.dtype).toBe('F16');
    expect(embed?.shape).toEqual([32000, 16]);
    expect(embed?.data.every((v) => Number.isFinite(v))).toBe(true);
  });
});

describe('safetensors validation', () => {
  const good = handMade({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8));

  it('rejects a truncated file', () => {
    expectCode(() => openSafetensors(file('trunc.safetensors', good.subarray(0, good.length - 3))), 'INVALID_SAFETENSORS', /'a' ends at data byte 8.*truncated/);
    expectCode(() => openSafetensors(file('tiny.safetensors', good.subarray(0, 5))), 'INVALID_SAFETENSORS', /shorter than the 8-byte/);
  });

  it('rejects a header length past the end of the file', () => {
    const bad = Buffer.from(good);
    bad.writeBigUInt64LE(10_000n, 0);
    expectCode(() => openSafetensors(file('len.safetensors', bad)), 'INVALID_SAFETENSORS', /header length 10000 runs past/);
    bad.writeBigUInt64LE(2n ** 60n, 0);
    expectCode(() => openSafetensors(file('huge.safetensors', bad)), 'INVALID_SAFETENSORS', /outside 2\.\./);
  });

  it('rejects a corrupted header', () => {
    const bad = Buffer.from(good);
    bad[9] = 0x7b; // '{' inside the JSON: no longer parses
    bad[10] = 0x7b;
    expectCode(() => openSafetensors(file('json.safetensors', bad)), 'INVALID_SAFETENSORS', /not JSON/);
  });

  it('rejects a dtype that does not fit the byte length, and an unknown dtype', () => {
    const wrong = handMade({ a: { dtype: 'F16', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8));
    expectCode(() => openSafetensors(file('dt.safetensors', wrong)), 'INVALID_SAFETENSORS', /F16 \[2\] = 4 bytes, but its offsets span 8/);
    const unknown = handMade({ a: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8));
    expectCode(() => openSafetensors(file('q4.safetensors', unknown)), 'UNSUPPORTED_DTYPE', /dtype Q4/);
  });

  it('rejects overlapping tensors', () => {
    const overlap = handMade(
      { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
      new Uint8Array(12),
    );
    expectCode(() => openSafetensors(file('ov.safetensors', overlap)), 'INVALID_SAFETENSORS', /'a' and 'b' overlap/);
  });

  it('names a missing tensor', () => {
    const f = openSafetensors(file('ok.safetensors', good));
    expectCode(() => f.read('nope'), 'TENSOR_NOT_FOUND', /no tensor named 'nope'/);
    f.close();
  });
});

describe('safetensors writer', () => {
  it('round-trips F32 exactly and F16/BF16 to the nearest representable value', () => {
    const values = Float32Array.from([1, -2.5, 0.1, 65504, 1e-8, 3.3]);
    const path = join(dir, 'rt.safetensors');
    writeSafetensors(
      path,
      {
        f32: { dtype: 'F32', shape: [2, 3], data: values },
        f16: { dtype: 'F16', shape: [6], data: values },
        bf16: { dtype: 'BF16', shape: [3, 2], data: values },
      },
      { format: 'pt' },
    );
    expect(readdirSync(dir).some((n) => n.includes('.tmp-'))).toBe(false);
    const bytes = readFileSync(path);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect((8 + headerLength) % 8).toBe(0);
    const { tensors, metadata } = readSafetensors(path);
    expect(metadata).toEqual({ format: 'pt' });
    expect([...(tensors.get('f32')?.data ?? [])]).toEqual([...values]);
    // Nearest halves, worked out by hand: 0.1 -> 0x2e66 = 0.0999755859375, 1e-8 -> 0 (below 2^-25), 3.3 -> 0x429a = 3.30078125 (checked with struct.pack("<e"))
    expect([...(tensors.get('f16')?.data ?? [])]).toEqual([1, -2.5, 0.0999755859375, 65504, 0, 3.30078125]);
    // bfloat16 keeps 8 mantissa bits: 0.1 -> 0x3dcd = 0.10009765625, 3.3 -> 0x4053 = 3.296875, 65504 -> 65536
    const bf = tensors.get('bf16')?.data ?? [];
    expect([bf[0], bf[1], bf[2], bf[3], bf[5]]).toEqual([1, -2.5, 0.10009765625, 65536, 3.296875]);
    expect(tensors.get('bf16')?.shape).toEqual([3, 2]);
  });

  it('reads lazy tensors one at a time, in name order, each after the one before it is on disk', () => {
    const path = join(dir, 'lazy.safetensors');
    const order: string[] = [];
    const lazy = (name: string, values: number[]) => ({
      dtype: 'F32' as const, shape: [values.length],
      data: () => {
        // The temporary file already holds the header and every tensor before this one.
        const temp = readdirSync(dir).find((n) => isTempName(n) && n.includes('lazy.safetensors')) as string;
        order.push(`${name}@${readFileSync(join(dir, temp)).length}`);
        return values;
      },
    });
    writeSafetensors(path, { b: lazy('b', [3, 4, 5]), a: lazy('a', [1, 2]), c: { dtype: 'BF16', shape: [1], data: [0.5] } });
    const headerEnd = 8 + Number(readFileSync(path).readBigUInt64LE(0));
    expect(order).toEqual([`a@${headerEnd}`, `b@${headerEnd + 8}`]);
    const { tensors } = readSafetensors(path);
    expect([...(tensors.get('a')?.data ?? [])]).toEqual([1, 2]);
    expect([...(tensors.get('b')?.data ?? [])]).toEqual([3, 4, 5]);
    expect(() => writeSafetensors(path, { a: lazy('a', [1, 2, 3]), z: { dtype: 'F32', shape: [2], data: () => [1] } })).toThrow(/'z' has 1 values.*needs 2/);
    expect([...(readSafetensors(path).tensors.get('b')?.data ?? [])]).toEqual([3, 4, 5]); // the earlier file kept
    expect(readdirSync(dir).some((n) => n.includes('.tmp-'))).toBe(false);
  });

  it('awaits asynchronous producers one at a time: header first, each tensor written before the next is asked for', async () => {
    const path = join(dir, 'async.safetensors');
    const events: string[] = [];
    let pending = 0;
    const produced = (name: string, values: number[]) => ({
      dtype: 'BF16' as const, shape: [values.length],
      data: async () => {
        expect(pending).toBe(0); // the one before is written and let go
        pending++;
        const temp = readdirSync(dir).find((n) => isTempName(n) && n.includes('async.safetensors')) as string;
        events.push(`${name}@${readFileSync(join(dir, temp)).length}`);
        await new Promise((resolve) => setTimeout(resolve, 5)); // a device read resolving later
        return Float32Array.from(values);
      },
    });
    const tensors = new Map([['b', produced('b', [3, 4, 5])], ['a', produced('a', [1, 2])], ['c', produced('c', [0.5])]]);
    await writeSafetensorsLazy(path, tensors, { metadata: { format: 'pt' }, onWritten: (name) => { pending--; events.push(`wrote ${name}`); } });
    const headerEnd = 8 + Number(readFileSync(path).readBigUInt64LE(0));
    expect(events).toEqual([`a@${headerEnd}`, 'wrote a', `b@${headerEnd + 4}`, 'wrote b', `c@${headerEnd + 10}`, 'wrote c']);
    const read = readSafetensors(path);
    expect(read.metadata).toEqual({ format: 'pt' });
    expect([...(read.tensors.get('b')?.data ?? [])]).toEqual([3, 4, 5]);
    expect(read.tensors.get('c')?.dtype).toBe('BF16');
  });

  it('a lazy write whose producer fails, or whose shape is bad, leaves the earlier file and no temp', async () => {
    const path = join(dir, 'async-keep.safetensors');
    writeSafetensors(path, { a: { dtype: 'F32', shape: [1], data: [5] } });
    let asked = 0;
    const failing = new Map([
      ['a', { dtype: 'F32' as const, shape: [2], data: async () => [1, 2] }],
      ['b', { dtype: 'F32' as const, shape: [2], data: async () => { throw new Error('the device was lost'); } }],
    ]);
    await expect(writeSafetensorsLazy(path, failing)).rejects.toThrow('the device was lost');
    await expect(writeSafetensorsLazy(path, new Map([['a', { dtype: 'F32' as const, shape: [2], data: () => { asked++; return [1, 2]; } }], ['b', { dtype: 'F32' as const, shape: [-1], data: () => { asked++; return []; } }]])))
      .rejects.toThrow(/tensor 'b': shape \[-1\] is not non-negative integers/);
    expect(asked).toBe(0); // refused from the header, before any value was asked for
    expect([...(readSafetensors(path).tensors.get('a')?.data ?? [])]).toEqual([5]);
    expect(readdirSync(dir).some((n) => n.includes('.tmp-'))).toBe(false);
  });

  it('leaves an existing file untouched when the input is bad', () => {
    const path = join(dir, 'keep.safetensors');
    writeSafetensors(path, { a: { dtype: 'F32', shape: [1], data: [5] } });
    expect(() => writeSafetensors(path, { a: { dtype: 'F32', shape: [2, 2], data: [1, 2, 3] } })).toThrow(/has 3 values.*needs 4/);
    expect([...(readSafetensors(path).tensors.get('a')?.data ?? [])]).toEqual([5]);
    expect(readdirSync(dir).some((n) => n.includes('.tmp-'))).toBe(false);
  });
});

describe('sharded checkpoints', () => {
  it('reads tensors across shards through model.safetensors.index.json', () => {
    const shardDir = mkdtempSync(join(dir, 'sharded-'));
    writeSafetensors(join(shardDir, 'model-00001-of-00002.safetensors'), { x: { dtype: 'F32', shape: [2], data: [1, 2] } });
    writeSafetensors(join(shardDir, 'model-00002-of-00002.safetensors'), { y: { dtype: 'BF16', shape: [1], data: [3] } });
    const index = { metadata: { total_size: 10 }, weight_map: { x: 'model-00001-of-00002.safetensors', y: 'model-00002-of-00002.safetensors' } };
    writeFileSync(join(shardDir, 'model.safetensors.index.json'), JSON.stringify(index));
    const ckpt = openCheckpoint(shardDir);
    expect(ckpt.names().sort()).toEqual(['x', 'y']);
    expect([...ckpt.read('x').data]).toEqual([1, 2]);
    expect([...ckpt.read('y').data]).toEqual([3]);
    expectCode(() => ckpt.read('z'), 'TENSOR_NOT_FOUND', /no tensor 'z'/);
    ckpt.close();

    writeFileSync(join(shardDir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { ...index.weight_map, z: 'model-00001-of-00002.safetensors' } }));
    expectCode(() => openCheckpoint(shardDir), 'TENSOR_NOT_FOUND', /lists 'z'.*shard lacks it/);
    expect(existsSync(join(shardDir, 'model.safetensors'))).toBe(false);
    expectCode(() => openCheckpoint(join(dir, 'nowhere')), 'MODEL_NOT_FOUND', /no model\.safetensors/);
  });
});
