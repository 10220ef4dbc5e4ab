import { describe, expect, it } from 'vitest';
import { lowRankSVD, summarizeSpectrum, truncate, truncationError, type LoraPair } from '../../../main/engine/adapters/lowrank';
import { Rng } from '../../../main/engine/train/rng';

function randomPair(out: number, inFeatures: number, rank: number, scaling: number, seed: number): LoraPair {
  const rng = new Rng(seed);
  const loraA = Float32Array.from({ length: rank * inFeatures }, () => rng.uniform(-1, 1));
  const loraB = Float32Array.from({ length: out * rank }, () => rng.uniform(-1, 1));
  return { loraA, loraB, rank, inFeatures, outFeatures: out, scaling };
}

/** Dense s·B·A in float64, [out, in]. */
function denseDelta(p: LoraPair): Float64Array {
  const d = new Float64Array(p.outFeatures * p.inFeatures);
  for (let o = 0; o < p.outFeatures; o++) {
    for (let i = 0; i < p.inFeatures; i++) {
      let sum = 0;
      for (let k = 0; k < p.rank; k++) sum += (p.loraB[o * p.rank + k] as number) * (p.loraA[k * p.inFeatures + i] as number);
      d[o * p.inFeatures + i] = p.scaling * sum;
    }
  }
  return d;
}

/** Reference: eigenvalues of the Gram matrix ΔWᵀΔW by the classical symmetric Jacobi method, √ and sorted. */
function referenceSingularValues(d: Float64Array, rows: number, cols: number): number[] {
  const g = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let r = 0; r < rows; r++) s += (d[r * cols + i] as number) * (d[r * cols + j] as number);
      g[i * cols + j] = s;
    }
  }
  const at = (i: number, j: number) => g[i * cols + j] as number;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < cols; p++) for (let q = p + 1; q < cols; q++) off += at(p, q) ** 2;
    if (off < 1e-26) break;
    for (let p = 0; p < cols; p++) {
      for (let q = p + 1; q < cols; q++) {
        if (at(p, q) === 0) continue;
        const theta = (at(q, q) - at(p, p)) / (2 * at(p, q));
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < cols; k++) {
          const gkp = at(k, p), gkq = at(k, q);
          g[k * cols + p] = c * gkp - s * gkq;
          g[k * cols + q] = s * gkp + c * gkq;
        }
        for (let k = 0; k < cols; k++) {
          const gpk = at(p, k), gqk = at(q, k);
          g[p * cols + k] = c * gpk - s * gqk;
          g[q * cols + k] = s * gpk + c * gqk;
        }
      }
    }
  }
  return Array.from({ length: cols }, (_, i) => Math.sqrt(Math.max(0, at(i, i)))).sort((a, b) => b - a);
}

describe('low-rank SVD of s·B·A', () => {
  it('matches the singular values of the dense update (float64 reference)', () => {
    const pair = randomPair(14, 10, 4, 2.5, 7);
    const svd = lowRankSVD(pair);
    const reference = referenceSingularValues(denseDelta(pair), 14, 10);
    for (let i = 0; i < 4; i++) expect(svd.singularValues[i]).toBeCloseTo(reference[i] as number, 9);
    // the rest of the dense spectrum is zero: rank 4 at most
    for (let i = 4; i < 10; i++) expect(reference[i]).toBeLessThan(1e-6);
  });

  it('finds the true rank of a rank-deficient pair', () => {
    const pair = randomPair(12, 9, 4, 1, 3);
    const b = Float32Array.from(pair.loraB);
    for (let o = 0; o < 12; o++) b[o * 4 + 3] = (b[o * 4 + 0] as number) + (b[o * 4 + 1] as number); // column 3 = 0 + 1
    const svd = lowRankSVD({ ...pair, loraB: b });
    expect(summarizeSpectrum(svd.singularValues, 12, 9).numericalRank).toBe(3);
    expect(svd.singularValues[3]).toBeLessThan(1e-5 * (svd.singularValues[0] as number));
  });

  it('truncation at full rank rebuilds ΔW, and at rank k has the Eckart–Young error', () => {
    const pair = randomPair(16, 11, 5, 0.75, 11);
    const dense = denseDelta(pair);
    const svd = lowRankSVD(pair);
    for (const k of [5, 3, 1]) {
      const reduced = truncate(svd, k);
      const approx = denseDelta({ ...reduced, rank: k, inFeatures: 11, outFeatures: 16, scaling: 1 });
      let diff = 0, norm = 0;
      for (let i = 0; i < dense.length; i++) {
        diff += ((dense[i] as number) - (approx[i] as number)) ** 2;
        norm += (dense[i] as number) ** 2;
      }
      const measured = Math.sqrt(diff / norm);
      if (k === 5) expect(measured).toBeLessThan(1e-6); // float32 storage of the factors
      else expect(measured).toBeCloseTo(truncationError(svd.singularValues, k), 5);
    }
    expect(() => truncate(svd, 6)).toThrow(/target rank must be an integer in \[1, 5\], got 6/);
  });

  it('a zero update (fresh adapter, B = 0) has no rank and no error', () => {
    const pair = { ...randomPair(8, 6, 3, 2, 1), loraB: new Float32Array(24) };
    const svd = lowRankSVD(pair);
    expect(Array.from(svd.singularValues)).toEqual([0, 0, 0]);
    expect(summarizeSpectrum(svd.singularValues, 8, 6)).toEqual({ numericalRank: 0, effectiveRank: 0, rankFor99: 0 });
    expect(truncationError(svd.singularValues, 1)).toBe(0);
  });
});
