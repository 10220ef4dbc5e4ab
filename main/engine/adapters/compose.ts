/**
 * New adapters made from existing ones, ready for PEFT export:
 * - mix by rank concatenation (PEFT's add_weighted_adapter 'cat'): A = [A_1; A_2; …] [Σr, in],
 *   B = [w_1·s_1·B_1, w_2·s_2·B_2, …] [out, Σr], scaling 1, so B·A = Σ w_i·s_i·B_i·A_i exactly;
 * - rank reduction by truncated SVD of each ΔW, with the relative error it costs.
 * Output adapters carry scaling 1 everywhere (lora_alpha = r per module, written through rank/alpha patterns
 * where ranks differ), so their B·A is the update itself.
 */
import * as tf from '@tensorflow/tfjs-core';
import { moduleSettings, resolveLoraConfig, type LoraConfig } from '../lora/config';
import type { PeftModuleWeights } from '../lora/inject';
import type { PeftAdapterMeta } from '../lora/peft-io';
import { AdapterError } from './errors';
import { lowRankSVD, truncate, truncationError } from './lowrank';
import type { AdapterModel, ResidentAdapters } from './resident';

/** An adapter in PEFT's orientation, as read from or written to a PEFT folder. */
export interface AdapterWeights {
  readonly config: LoraConfig;
  readonly meta: PeftAdapterMeta;
  readonly modules: ReadonlyMap<string, PeftModuleWeights>;
}

export function moduleShape(w: PeftModuleWeights): { inFeatures: number; outFeatures: number } {
  return { inFeatures: w.loraA.length / w.rank, outFeatures: w.loraB.length / w.rank };
}

/**
 * A config whose every module has scaling 1: r is the most common rank; modules of another rank get exact-path
 * rank_pattern and alpha_pattern entries (PEFT matches a pattern equal to the module path first).
 */
function unitScalingConfig(ranks: ReadonlyMap<string, number>, targetModules: LoraConfig['targetModules'], dropout: number): LoraConfig {
  const counts = new Map<number, number>();
  for (const r of ranks.values()) counts.set(r, (counts.get(r) ?? 0) + 1);
  const rank = [...counts.entries()].sort((a, b) => b[1] - a[1] || b[0] - a[0])[0]?.[0] ?? 1;
  const rankPattern: Record<string, number> = {};
  for (const [path, r] of ranks) if (r !== rank) rankPattern[path] = r;
  return resolveLoraConfig({ targetModules, rank, alpha: rank, dropout, useRslora: false, rankPattern, alphaPattern: { ...rankPattern } });
}

function sameModuleSets(adapters: readonly AdapterWeights[]): boolean {
  const first = [...(adapters[0]?.modules.keys() ?? [])].sort().join('\n');
  return adapters.every((a) => [...a.modules.keys()].sort().join('\n') === first);
}

export interface MixPart {
  readonly adapter: AdapterWeights;
  readonly weight: number;
}

/** Σ w_i·ΔW_i as one adapter of rank Σ r_i per module (exact, no approximation). */
export function concatenateAdapters(parts: readonly MixPart[]): AdapterWeights {
  const first = parts[0];
  if (!first) throw new AdapterError('INVALID_ARGUMENT', 'a mix needs at least one adapter');
  const paths = [...new Set(parts.flatMap((p) => [...p.adapter.modules.keys()]))];
  const modules = new Map<string, PeftModuleWeights>();
  for (const path of paths) {
    const present = parts.filter((p) => p.adapter.modules.has(path));
    const shapes = present.map((p) => moduleShape(p.adapter.modules.get(path) as PeftModuleWeights));
    const { inFeatures, outFeatures } = shapes[0] as { inFeatures: number; outFeatures: number };
    if (shapes.some((s) => s.inFeatures !== inFeatures || s.outFeatures !== outFeatures)) {
      throw new AdapterError('INCOMPATIBLE_ADAPTER', `${path}: the adapters of the mix disagree on its shape; were they trained on the same base?`);
    }
    const rank = present.reduce((sum, p) => sum + (p.adapter.modules.get(path) as PeftModuleWeights).rank, 0);
    const loraA = new Float32Array(rank * inFeatures);
    const loraB = new Float32Array(outFeatures * rank);
    let offset = 0;
    for (const { adapter, weight } of present) {
      const w = adapter.modules.get(path) as PeftModuleWeights;
      const factor = weight * moduleSettings(adapter.config, path).scaling;
      loraA.set(w.loraA, offset * inFeatures); // rows offset … offset + r of [Σr, in]
      for (let o = 0; o < outFeatures; o++) {
        for (let k = 0; k < w.rank; k++) loraB[o * rank + offset + k] = (w.loraB[o * w.rank + k] as number) * factor;
      }
      offset += w.rank;
    }
    modules.set(path, { loraA, loraB, rank });
  }
  const ranks = new Map([...modules].map(([p, w]) => [p, w.rank]));
  const targets = sameModuleSets(parts.map((p) => p.adapter)) ? first.adapter.config.targetModules : paths;
  return { config: unitScalingConfig(ranks, targets, first.adapter.config.dropout), meta: first.adapter.meta, modules };
}

export interface ReductionReport {
  /** Per module: rank before and after, and ‖ΔW − ΔW_k‖_F / ‖ΔW‖_F */
  readonly modules: readonly { path: string; fromRank: number; toRank: number; relativeError: number }[];
  /** The same over all modules together: √(Σ dropped σ² / Σ σ²) */
  readonly overallRelativeError: number;
}

/** Each module's best rank-min(R, r) approximation (Eckart–Young), in float64. */
export function reduceRank(adapter: AdapterWeights, targetRank: number): { adapter: AdapterWeights; report: ReductionReport } {
  if (!Number.isInteger(targetRank) || targetRank <= 0) {
    throw new AdapterError('INVALID_ARGUMENT', `rank must be a positive integer, got ${targetRank}`);
  }
  const modules = new Map<string, PeftModuleWeights>();
  const rows: ReductionReport['modules'][number][] = [];
  let dropped = 0;
  let total = 0;
  for (const [path, w] of adapter.modules) {
    const shape = moduleShape(w);
    const svd = lowRankSVD({ ...w, ...shape, scaling: moduleSettings(adapter.config, path).scaling }, path);
    const k = Math.min(targetRank, w.rank);
    modules.set(path, { ...truncate(svd, k), rank: k });
    const error = truncationError(svd.singularValues, k);
    const energy = svd.singularValues.reduce((a, s) => a + s * s, 0);
    total += energy;
    dropped += error * error * energy;
    rows.push({ path, fromRank: w.rank, toRank: k, relativeError: error });
  }
  const ranks = new Map([...modules].map(([p, w]) => [p, w.rank]));
  return {
    adapter: { config: unitScalingConfig(ranks, adapter.config.targetModules, adapter.config.dropout), meta: adapter.meta, modules },
    report: { modules: rows, overallRelativeError: total === 0 ? 0 : Math.sqrt(dropped / total) },
  };
}

/** The weights of a resident adapter in PEFT's orientation (loraA [r, in], loraB [out, r]). */
export async function residentWeights(resident: ResidentAdapters, name: string): Promise<AdapterWeights> {
  const info = resident.info(name);
  const model: AdapterModel = resident.model;
  const modules = new Map<string, PeftModuleWeights>();
  for (const path of info.modules) {
    const weights = model.linears.get(path)?.adapters.get(name);
    if (!weights) continue;
    const [a, b] = tf.tidy(() => [tf.transpose(weights.At), tf.transpose(weights.Bt)]);
    modules.set(path, { loraA: (await a.data()) as Float32Array, loraB: (await b.data()) as Float32Array, rank: weights.rank });
    a.dispose();
    b.dispose();
  }
  return { config: info.config, meta: info.meta, modules };
}
