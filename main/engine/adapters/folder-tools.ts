/**
 * The adapter tools on PEFT folders, one home for `lorasmith adapter analyze|reduce` and the app's Adapters view
 * (through the engine host): read the folder (checked first), analyze its spectrum, or write its rank reduction.
 */
import { analyzeAdapter, type AdapterAnalysis } from './analyze';
import { baseWeightNorms } from './base-norms';
import { reduceRank, type ReductionReport } from './compose';
import { describeBaseDir } from './describe-base';
import { exportPeftAdapter, importPeftAdapter } from './peft';

/** Per module: singular values, effective rank, and with a base ‖ΔW‖/‖W0‖. */
export function analyzeAdapterDir(adapterDir: string, modelDir: string | null): AdapterAnalysis {
  const base = modelDir === null ? null : describeBaseDir(modelDir);
  const adapter = importPeftAdapter(adapterDir, base);
  const norms = modelDir === null ? undefined : baseWeightNorms(modelDir, adapter.modules.keys());
  return analyzeAdapter(adapter, norms);
}

/** Each module's best rank-`rank` approximation written as a PEFT folder at `outDir` (atomically); the source stays. */
export function reduceAdapterDir(adapterDir: string, rank: number, outDir: string): ReductionReport {
  const { adapter: reduced, report } = reduceRank(importPeftAdapter(adapterDir), rank);
  exportPeftAdapter(outDir, reduced);
  return report;
}
