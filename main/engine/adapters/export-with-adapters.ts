/**
 * The app's "export merged model" on a base that stays loaded for chat: the chosen adapter folders are checked and
 * loaded next to the resident ones, merged with their scales, the model written out in its base's layout, then
 * unmerged and unloaded again, leaving the active set and the base weights (within float32 rounding) as they were.
 */
import { exportMergedModel, type ExportMergedOptions } from './write-model-folder';
import type { AdapterSpec } from './generation';
import type { CausalLM } from '../models/types';
import type { ResidentAdapters } from './resident';

export interface MergeExportResult {
  readonly outDir: string;
  readonly files: readonly string[];
  /** Modules each adapter changed, in the order given */
  readonly modules: readonly number[];
}

export async function exportWithAdaptersMerged(
  resident: ResidentAdapters<CausalLM>,
  baseDir: string,
  adapters: readonly AdapterSpec[],
  outDir: string,
  options: ExportMergedOptions = {},
): Promise<MergeExportResult> {
  const names = adapters.map((_, i) => `__merge_export_${Date.now()}_${i}`);
  const loaded: string[] = [];
  const merged: string[] = [];
  try {
    for (const [i, spec] of adapters.entries()) {
      const name = names[i] as string;
      resident.loadFromDir(name, spec.dir);
      loaded.push(name);
      await resident.merge(name, spec.scale);
      merged.push(name);
    }
    const files = await exportMergedModel(resident.model, baseDir, outDir, options);
    return { outDir, files, modules: loaded.map((n) => resident.info(n).modules.length) };
  } finally {
    for (const name of merged.reverse()) resident.unmerge(name);
    for (const name of loaded) resident.unload(name);
  }
}
