/**
 * PEFT import and export for the adapter tools: every import goes through the preflight check first, so an
 * adapter with features we do not implement is refused with their names instead of loading half of it.
 * The file formats themselves are lora/peft-io's (PEFT's exact layout).
 */
import { loadAdapter, saveAdapter } from '../lora/peft-io';
import type { AdapterWeights } from './compose';
import { AdapterError } from './errors';
import { formatPreflight, preflightAdapter, type BaseDescription, type PreflightReport } from './preflight';

/** Reads a PEFT LoRA folder after checking it (against `base` when given). */
export function importPeftAdapter(dir: string, base: BaseDescription | null = null): AdapterWeights & { readonly report: PreflightReport } {
  const report = preflightAdapter(dir, base);
  if (!report.ok) {
    const onlyFeatures = report.problems.every((p) => p.kind === 'unsupported' || p.kind === 'file' || p.kind === 'config');
    throw new AdapterError(onlyFeatures ? 'UNSUPPORTED_ADAPTER' : 'INCOMPATIBLE_ADAPTER', formatPreflight(report));
  }
  const { config, meta, modules } = loadAdapter(dir);
  return { config, meta, modules, report };
}

/** Writes `adapter` as a PEFT folder (adapter_config.json + adapter_model.safetensors), atomically. */
export function exportPeftAdapter(dir: string, adapter: AdapterWeights, extraFiles?: ReadonlyMap<string, string | Buffer>): void {
  saveAdapter(dir, adapter.config, adapter.modules, { ...adapter.meta, ...(extraFiles ? { extraFiles } : {}) });
}
