/**
 * Analysis of an adapter, module by module: the singular values of ΔW = s·B·A (float64, via lowRankSVD), how
 * many of them matter, and how large the update is against the frozen weight (‖ΔW‖_F / ‖W0‖_F, when the base is
 * given). The paper's observation that ΔW is rank-deficient shows up as rankFor99 well below the rank.
 */
import { moduleSettings } from '../lora/config';
import type { AdapterWeights } from './compose';
import { moduleShape } from './compose';
import { lowRankSVD, summarizeSpectrum, type RankSummary } from './lowrank';

export interface ModuleAnalysis extends RankSummary {
  readonly path: string;
  readonly rank: number;
  readonly scaling: number;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Descending */
  readonly singularValues: readonly number[];
  /** ‖ΔW‖_F = √Σσ² */
  readonly deltaNorm: number;
  /** ‖ΔW‖_F / ‖W0‖_F, or null without a base */
  readonly relativeToBase: number | null;
}

export interface AdapterAnalysis {
  readonly modules: readonly ModuleAnalysis[];
  /** Mean over modules of rankFor99 / rank */
  readonly meanRankFor99Fraction: number;
}

/** baseNorms: module path -> ‖W0‖_F (see baseWeightNorms). */
export function analyzeAdapter(adapter: AdapterWeights, baseNorms?: ReadonlyMap<string, number>): AdapterAnalysis {
  const modules: ModuleAnalysis[] = [];
  const byPath = [...adapter.modules].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })); // layer 2 before 10
  for (const [path, w] of byPath) {
    const shape = moduleShape(w);
    const { scaling } = moduleSettings(adapter.config, path);
    const svd = lowRankSVD({ ...w, ...shape, scaling }, path);
    const singularValues = Array.from(svd.singularValues);
    const deltaNorm = Math.sqrt(singularValues.reduce((a, s) => a + s * s, 0));
    const baseNorm = baseNorms?.get(path);
    modules.push({
      path,
      rank: w.rank,
      scaling,
      ...shape,
      singularValues,
      deltaNorm,
      relativeToBase: baseNorm === undefined || baseNorm === 0 ? null : deltaNorm / baseNorm,
      ...summarizeSpectrum(svd.singularValues, shape.outFeatures, shape.inFeatures),
    });
  }
  const fractions = modules.map((m) => m.rankFor99 / m.rank);
  return { modules, meanRankFor99Fraction: fractions.length ? fractions.reduce((a, b) => a + b, 0) / fractions.length : 0 };
}

function fmt(x: number, digits = 3): string {
  return x === 0 ? '0' : Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toPrecision(digits) : x.toExponential(digits - 1);
}

/** A plain-text table for the CLI. */
export function formatAnalysis(analysis: AdapterAnalysis): string {
  const header = ['module', 'r', 'σ1', 'σ_r', 'num.rank', 'eff.rank', 'rank@99%', '‖ΔW‖', '‖ΔW‖/‖W0‖'];
  const rows = analysis.modules.map((m) => [
    m.path,
    String(m.rank),
    fmt(m.singularValues[0] ?? 0),
    fmt(m.singularValues[m.singularValues.length - 1] ?? 0),
    String(m.numericalRank),
    m.effectiveRank.toFixed(2),
    String(m.rankFor99),
    fmt(m.deltaNorm),
    m.relativeToBase === null ? '-' : fmt(m.relativeToBase),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  return [
    line(header),
    ...rows.map(line),
    '',
    `${analysis.modules.length} module(s); on average ${(100 * analysis.meanRankFor99Fraction).toFixed(0)}% of the rank keeps 99% of ‖ΔW‖²`,
  ].join('\n');
}
