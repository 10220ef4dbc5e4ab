/**
 * The SVD of one module's update ΔW = s·B·A without forming the [out, in] matrix:
 *   B = Qb·Rb (Qb [out, r]),  Aᵀ = Qa·Ra (Qa [in, r]),  s·Rb·Raᵀ = U·Σ·Vᵀ  (all r×r)
 *   ΔW = (Qb·U)·Σ·(Qa·V)ᵀ
 * Everything in float64. Used for analysis (singular values, effective rank) and rank reduction.
 */
import { AdapterError } from './errors';
import { jacobiSVD, matrix, multiply, thinQR, transpose, type Matrix } from './linalg';

/** One module's LoRA pair in PEFT's orientation. */
export interface LoraPair {
  /** lora_A.weight, [rank, in] row-major */
  readonly loraA: ArrayLike<number>;
  /** lora_B.weight, [out, rank] row-major */
  readonly loraB: ArrayLike<number>;
  readonly rank: number;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** alpha / rank (or alpha / sqrt(rank) with rsLoRA), times any mix weight */
  readonly scaling: number;
}

export interface LowRankSVD {
  /** Descending, length = rank */
  readonly singularValues: Float64Array;
  /** [out, rank]: left singular vectors of ΔW */
  readonly left: Matrix;
  /** [in, rank]: right singular vectors of ΔW */
  readonly right: Matrix;
}

export function lowRankSVD(pair: LoraPair, where = 'module'): LowRankSVD {
  const { rank, inFeatures, outFeatures } = pair;
  if (rank > inFeatures || rank > outFeatures) {
    throw new AdapterError(
      'INVALID_ARGUMENT',
      `${where}: rank ${rank} exceeds the layer's size [${outFeatures}, ${inFeatures}]; such an adapter cannot be factored`,
    );
  }
  const b = thinQR(matrix(outFeatures, rank, pair.loraB));
  const aT = thinQR(transpose(matrix(rank, inFeatures, pair.loraA)));
  const core = multiply(b.r, transpose(aT.r));
  for (let i = 0; i < core.data.length; i++) core.data[i] = (core.data[i] as number) * pair.scaling;
  const svd = jacobiSVD(core);
  return { singularValues: svd.s, left: multiply(b.q, svd.u), right: multiply(aT.q, svd.v) };
}

/** ‖ΔW − ΔW_k‖_F / ‖ΔW‖_F for the best rank-k approximation (Eckart–Young); 0 for a zero update. */
export function truncationError(singularValues: ArrayLike<number>, k: number): number {
  let total = 0;
  let dropped = 0;
  for (let i = 0; i < singularValues.length; i++) {
    const sq = (singularValues[i] as number) ** 2;
    total += sq;
    if (i >= k) dropped += sq;
  }
  return total === 0 ? 0 : Math.sqrt(dropped / total);
}

/**
 * The best rank-k LoRA pair for ΔW, with scaling 1: B' = Qb·U_k·√Σ_k [out, k], A' = √Σ_k·(Qa·V_k)ᵀ [k, in],
 * splitting Σ evenly so neither factor's magnitude dwarfs the other's (as trained LoRA pairs are).
 */
export function truncate(svd: LowRankSVD, k: number): { loraA: Float32Array; loraB: Float32Array } {
  const rank = svd.singularValues.length;
  if (!Number.isInteger(k) || k <= 0 || k > rank) {
    throw new AdapterError('INVALID_ARGUMENT', `target rank must be an integer in [1, ${rank}], got ${k}`);
  }
  const out = svd.left.rows;
  const inFeatures = svd.right.rows;
  const loraB = new Float32Array(out * k);
  const loraA = new Float32Array(k * inFeatures);
  for (let j = 0; j < k; j++) {
    const root = Math.sqrt(svd.singularValues[j] as number);
    for (let i = 0; i < out; i++) loraB[i * k + j] = (svd.left.data[i * rank + j] as number) * root;
    for (let i = 0; i < inFeatures; i++) loraA[j * inFeatures + i] = (svd.right.data[i * rank + j] as number) * root;
  }
  return { loraA, loraB };
}

export interface RankSummary {
  /** σ_i > σ_max · max(out, in) · float32 epsilon: the rank float32 weights can actually express */
  readonly numericalRank: number;
  /** exp(entropy of σ / Σσ) (Roy & Vetterli 2007): a continuous measure between 1 and rank */
  readonly effectiveRank: number;
  /** Smallest k keeping 99% of ‖ΔW‖_F² */
  readonly rankFor99: number;
}

export function summarizeSpectrum(singularValues: ArrayLike<number>, outFeatures: number, inFeatures: number): RankSummary {
  const values = Array.from(singularValues);
  const max = values[0] ?? 0;
  const tolerance = max * Math.max(outFeatures, inFeatures) * 2 ** -23;
  const numericalRank = values.filter((v) => v > tolerance && v > 0).length;
  const sum = values.reduce((a, b) => a + b, 0);
  let entropy = 0;
  for (const v of values) if (v > 0) entropy -= (v / sum) * Math.log(v / sum);
  const energy = values.reduce((a, b) => a + b * b, 0);
  let kept = 0;
  let rankFor99 = 0;
  while (rankFor99 < values.length && kept < 0.99 * energy) kept += (values[rankFor99++] as number) ** 2;
  return { numericalRank, effectiveRank: sum > 0 ? Math.exp(entropy) : 0, rankFor99 };
}
