import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeAdapter, formatAnalysis } from '../../../main/engine/adapters/analyze';
import { baseWeightNorms } from '../../../main/engine/adapters/base-norms';
import { concatenateAdapters, reduceRank, type AdapterWeights } from '../../../main/engine/adapters/compose';
import { exportPeftAdapter, importPeftAdapter } from '../../../main/engine/adapters/peft';
import { openCheckpoint } from '../../../main/engine/io/model-checkpoint';
import type { PeftModuleWeights } from '../../../main/engine/lora/inject';

const FIXTURES = join(import.meta.dirname, '../../fixtures');
const PEFT = join(FIXTURES, 'peft-gpt2-lora-c_attn-c_proj');
const ATTN = 'transformer.h.0.attn.c_attn';

/** Bit-for-bit equality of two float arrays (fast, unlike a deep toEqual over 100k elements). */
function sameBits(a: Float32Array | undefined, b: Float32Array | undefined): boolean {
  return !!a && !!b && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

let work: string;
let adapter: AdapterWeights;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'lorasmith-compose-'));
  adapter = importPeftAdapter(PEFT);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Dense s·B·A of one module in float64, [out, in]. */
function dense(w: PeftModuleWeights, scaling: number): Float64Array {
  const inF = w.loraA.length / w.rank;
  const outF = w.loraB.length / w.rank;
  const d = new Float64Array(outF * inF);
  for (let o = 0; o < outF; o++) {
    for (let k = 0; k < w.rank; k++) {
      const b = (w.loraB[o * w.rank + k] as number) * scaling;
      for (let i = 0; i < inF; i++) d[o * inF + i] = (d[o * inF + i] as number) + b * (w.loraA[k * inF + i] as number);
    }
  }
  return d;
}

function relativeError(a: Float64Array, b: Float64Array): number {
  let diff = 0, norm = 0;
  for (let i = 0; i < a.length; i++) {
    diff += ((a[i] as number) - (b[i] as number)) ** 2;
    norm += (a[i] as number) ** 2;
  }
  return Math.sqrt(diff / norm);
}

describe('rank reduction of the real adapter', () => {
  it('reduces rank 8 to 4 with the relative error the dense float64 update shows, and exports in PEFT layout', () => {
    const { adapter: reduced, report } = reduceRank(adapter, 4);
    const row = report.modules.find((m) => m.path === ATTN);
    expect(row).toMatchObject({ fromRank: 8, toRank: 4 });
    const measured = relativeError(dense(adapter.modules.get(ATTN) as PeftModuleWeights, 4), dense(reduced.modules.get(ATTN) as PeftModuleWeights, 1));
    expect(row?.relativeError).toBeGreaterThan(0.01);
    expect(measured).toBeCloseTo(row?.relativeError as number, 5);
    expect(report.overallRelativeError).toBeGreaterThan(0);
    expect(report.overallRelativeError).toBeLessThan(1);

    const out = join(work, 'reduced');
    exportPeftAdapter(out, reduced);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ r: 4, lora_alpha: 4, use_rslora: false, rank_pattern: {}, target_modules: ['c_attn', 'c_proj'], fan_in_fan_out: true });
    const again = importPeftAdapter(out);
    expect(sameBits(again.modules.get(ATTN)?.loraB, reduced.modules.get(ATTN)?.loraB)).toBe(true);
  });

  it('at the full rank rebuilds ΔW to float32 precision', () => {
    const { adapter: same, report } = reduceRank(adapter, 8);
    expect(report.overallRelativeError).toBeLessThan(1e-6);
    const measured = relativeError(dense(adapter.modules.get(ATTN) as PeftModuleWeights, 4), dense(same.modules.get(ATTN) as PeftModuleWeights, 1));
    expect(measured).toBeLessThan(1e-6);
    expect(() => reduceRank(adapter, 0)).toThrow(/rank must be a positive integer, got 0/);
  });
});

describe('analysis', () => {
  it('gives each module its spectrum, effective rank and size against the base', () => {
    const norms = new Map([...adapter.modules.keys()].map((p) => [p, 10]));
    const analysis = analyzeAdapter(adapter, norms);
    expect(analysis.modules).toHaveLength(36);
    const m = analysis.modules.find((x) => x.path === ATTN);
    expect(m?.singularValues).toHaveLength(8);
    const d = dense(adapter.modules.get(ATTN) as PeftModuleWeights, 4);
    const frob = Math.sqrt(d.reduce((a, x) => a + x * x, 0));
    expect(m?.deltaNorm).toBeCloseTo(frob, 8);
    expect(m?.relativeToBase).toBeCloseTo(frob / 10, 8);
    expect(m?.numericalRank).toBe(8);
    expect(m?.effectiveRank).toBeGreaterThan(1);
    expect(m?.effectiveRank).toBeLessThanOrEqual(8);
    expect(formatAnalysis(analysis)).toContain(ATTN);
  });

  it('reads ‖W0‖_F of the base straight from its checkpoint', () => {
    const gpt2 = join(FIXTURES, 'tiny-random-gpt2');
    const norms = baseWeightNorms(gpt2, ['transformer.h.0.attn.c_attn', 'transformer.h.9.attn.c_attn']);
    expect([...norms.keys()]).toEqual(['transformer.h.0.attn.c_attn']);
    const { data } = openCheckpoint(gpt2).read('transformer.h.0.attn.c_attn.weight');
    expect(norms.get('transformer.h.0.attn.c_attn')).toBeCloseTo(Math.sqrt(Array.from(data).reduce((a, x) => a + x * x, 0)), 6);
  });
});

describe('mix as a new adapter', () => {
  it('concatenates ranks, writes rank/alpha patterns where ranks differ, and re-imports bit-exactly', () => {
    const { adapter: small } = reduceRank({ ...adapter, modules: new Map([...adapter.modules].filter(([p]) => p.endsWith('c_attn'))) }, 2);
    const mix = concatenateAdapters([{ adapter, weight: 0.5 }, { adapter: small, weight: 2 }]);
    expect(mix.modules.get(ATTN)?.rank).toBe(10);
    expect(mix.modules.get('transformer.h.0.attn.c_proj')?.rank).toBe(8);
    const expected = dense(adapter.modules.get(ATTN) as PeftModuleWeights, 0.5 * 4);
    const extra = dense(small.modules.get(ATTN) as PeftModuleWeights, 2);
    for (let i = 0; i < expected.length; i++) expected[i] = (expected[i] as number) + (extra[i] as number);
    expect(relativeError(expected, dense(mix.modules.get(ATTN) as PeftModuleWeights, 1))).toBeLessThan(1e-6);

    const out = join(work, 'mix');
    exportPeftAdapter(out, mix);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as { r: number; rank_pattern: Record<string, number>; alpha_pattern: Record<string, number> };
    expect(config.r).toBe(8);
    expect(config.rank_pattern[ATTN]).toBe(10);
    expect(config.alpha_pattern[ATTN]).toBe(10);
    const again = importPeftAdapter(out);
    for (const [path, w] of mix.modules) {
      expect(sameBits(again.modules.get(path)?.loraA, w.loraA)).toBe(true);
      expect(sameBits(again.modules.get(path)?.loraB, w.loraB)).toBe(true);
    }
  });
});
