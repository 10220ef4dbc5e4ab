import { describe, expect, it } from 'vitest';
import { NativeKernelError } from '../../../main/engine/backend/native/errors';
import { broadcastBatchShape, planMatMul } from '../../../main/engine/backend/native/plan';
import { addonCandidates, loadAddon } from '../../../main/engine/backend/native/addon';
import { nativeOptionsFromEnv } from '../../../main/engine/backend/native/index';

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return error instanceof NativeKernelError ? error.code : `not a NativeKernelError: ${String(error)}`;
  }
  return undefined;
}

describe('planMatMul', () => {
  it('plans a 2-D product as one call', () => {
    const plan = planMatMul([3, 5], [5, 7], false, false);
    expect(plan.outShape).toEqual([3, 7]);
    expect([plan.m, plan.n, plan.k]).toEqual([3, 7, 5]);
    expect(plan.calls).toEqual([{ batch: 1, offsetA: 0, strideA: 0, offsetB: 0, strideB: 0, offsetC: 0, strideC: 21 }]);
  });

  it('reads m, k, n through transposes', () => {
    const plan = planMatMul([5, 3], [7, 5], true, true);
    expect([plan.m, plan.n, plan.k]).toEqual([3, 7, 5]);
    expect(plan.outShape).toEqual([3, 7]);
  });

  it('strides equal batches and broadcasts a single matrix with stride 0', () => {
    const equal = planMatMul([2, 4, 3, 5], [2, 4, 5, 7], false, false);
    expect(equal.outShape).toEqual([2, 4, 3, 7]);
    expect(equal.calls).toEqual([{ batch: 8, offsetA: 0, strideA: 15, offsetB: 0, strideB: 35, offsetC: 0, strideC: 21 }]);
    const weights = planMatMul([8, 3, 5], [5, 7], false, false);
    expect(weights.outShape).toEqual([8, 3, 7]);
    expect(weights.calls).toEqual([{ batch: 8, offsetA: 0, strideA: 15, offsetB: 0, strideB: 0, offsetC: 0, strideC: 21 }]);
    const left = planMatMul([1, 3, 5], [6, 5, 7], false, false);
    expect(left.calls).toEqual([{ batch: 6, offsetA: 0, strideA: 0, offsetB: 0, strideB: 35, offsetC: 0, strideC: 21 }]);
  });

  it('splits general broadcasting into one call per output matrix with the right sources', () => {
    // a [2, 1, m, k] against b [1, 3, k, n]: output matrix (i, j) uses a[i] and b[j].
    const plan = planMatMul([2, 1, 2, 2], [1, 3, 2, 2], false, false);
    expect(plan.outShape).toEqual([2, 3, 2, 2]);
    expect(plan.calls.map((c) => [c.offsetA / 4, c.offsetB / 4, c.offsetC / 4]))
      .toEqual([[0, 0, 0], [0, 1, 1], [0, 2, 2], [1, 0, 3], [1, 1, 4], [1, 2, 5]]);
  });

  it('plans no calls for empty outputs', () => {
    expect(planMatMul([0, 5], [5, 7], false, false).calls).toEqual([]);
    expect(planMatMul([0, 3, 5], [5, 7], false, false).outShape).toEqual([0, 3, 7]);
  });

  it('rejects bad shapes with stable codes that name the shapes', () => {
    expect(codeOf(() => planMatMul([3, 5], [6, 7], false, false))).toBe('MATMUL_INNER_MISMATCH');
    expect(codeOf(() => planMatMul([5], [5, 7], false, false))).toBe('MATMUL_RANK');
    expect(codeOf(() => broadcastBatchShape([2], [3]))).toBe('MATMUL_BATCH_MISMATCH');
    expect(() => planMatMul([3, 5], [6, 7], false, false)).toThrow(/\[3, 5\] and \[6, 7\]/);
  });
});

describe('addon loading', () => {
  it('searches native/ from this file up to the root, prebuilds before a local build', () => {
    const candidates = addonCandidates('/a/b');
    expect(candidates[0]).toBe(`/a/b/native/prebuilds/${process.platform}-${process.arch}/lorasmith_native.node`);
    expect(candidates[1]).toBe('/a/b/native/build/Release/lorasmith_native.node');
    expect(candidates.at(-1)).toBe('/native/build/Release/lorasmith_native.node');
  });

  it('reports a broken addon file as a reason, never a throw', () => {
    const load = loadAddon(import.meta.filename);
    expect(load.ok).toBe(false);
    if (!load.ok) expect(load.reason).toContain('failed to load');
  });
});

describe('nativeOptionsFromEnv', () => {
  it('reads the switch and the thread count from a given environment', () => {
    expect(nativeOptionsFromEnv({})).toEqual({});
    expect(nativeOptionsFromEnv({ LORASMITH_NATIVE: '0' })).toEqual({ disabled: true });
    expect(nativeOptionsFromEnv({ LORASMITH_NATIVE: 'off', LORASMITH_NATIVE_THREADS: '3' })).toEqual({ disabled: true, threads: 3 });
    expect(nativeOptionsFromEnv({ LORASMITH_NATIVE: '1' })).toEqual({});
  });

  it('reads the frozen store switch and the base precision, refusing an unknown one', () => {
    expect(nativeOptionsFromEnv({ LORASMITH_FROZEN_STORE: 'off' })).toEqual({ frozenStore: false });
    expect(nativeOptionsFromEnv({ LORASMITH_BASE_PRECISION: 'Q8_0' })).toEqual({ basePrecision: 'q8_0' });
    expect(() => nativeOptionsFromEnv({ LORASMITH_BASE_PRECISION: 'q4' })).toThrow(expect.objectContaining({ code: 'NATIVE_BAD_ARGUMENT' }));
  });
});
