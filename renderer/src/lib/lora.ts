/**
 * LoRA arithmetic the wizard shows live: which linear modules a preset selects, how many parameters train,
 * and how the selection is written as PEFT `target_modules`. Pure functions over `models.modules` output.
 */
import type { LinearModuleInfo } from '../../../preload/contract';

export type ModulePreset = 'qv' | 'attention' | 'mlp' | 'all-linear';

export const PRESETS: readonly { id: ModulePreset; label: string; help: string }[] = [
  { id: 'qv', label: 'q, v', help: 'The LoRA paper’s default: query and value projections of every attention block.' },
  { id: 'attention', label: 'Attention', help: 'Every attention projection (q, k, v, o or the fused c_attn / c_proj).' },
  { id: 'mlp', label: 'MLP', help: 'The feed-forward projections (gate, up, down or c_fc / c_proj).' },
  { id: 'all-linear', label: 'All linear', help: 'Every linear layer in the blocks (QLoRA’s choice): most capacity, most memory.' },
];

/** Query/value names across architectures; GPT-2 fuses q, k, v into c_attn, so c_attn stands in for both. */
const QUERY_VALUE = new Set(['q_proj', 'v_proj', 'query', 'value', 'c_attn', 'qkv_proj', 'Wqkv']);

/** Modules outside the transformer blocks (lm_head, embeddings) never belong to a preset. */
function inBlocks(module: LinearModuleInfo): boolean {
  return module.layer !== null;
}

export function presetSelection(modules: readonly LinearModuleInfo[], preset: ModulePreset): Set<string> {
  const chosen = modules.filter((m) => {
    if (!inBlocks(m)) return false;
    switch (preset) {
      case 'qv': return QUERY_VALUE.has(m.name);
      case 'attention': return m.groups.includes('attention');
      case 'mlp': return m.groups.includes('mlp');
      case 'all-linear': return true;
    }
  });
  return new Set(chosen.map((m) => m.path));
}

/** LoRA adds A [r, in] and B [out, r] to each chosen module: r·(in + out) parameters. */
export function trainableParameters(modules: readonly LinearModuleInfo[], selected: ReadonlySet<string>, rank: number): number {
  if (!Number.isInteger(rank) || rank <= 0) return 0;
  let total = 0;
  for (const m of modules) if (selected.has(m.path)) total += rank * (m.inFeatures + m.outFeatures);
  return total;
}

/** Effective multiplier of B·A: alpha / r, or alpha / sqrt(r) with rsLoRA (Kalajdzievski 2023). */
export function loraScaling(alpha: number, rank: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
}

export interface ModuleGrid {
  /** Column names in first-seen order: q_proj, k_proj, ... */
  readonly names: readonly string[];
  /** One row per layer index; cells keyed by module name. */
  readonly rows: readonly { layer: number; cells: ReadonlyMap<string, LinearModuleInfo> }[];
  /** Modules outside the blocks (lm_head ...), listed apart. */
  readonly outside: readonly LinearModuleInfo[];
}

export function moduleGrid(modules: readonly LinearModuleInfo[]): ModuleGrid {
  const names: string[] = [];
  const byLayer = new Map<number, Map<string, LinearModuleInfo>>();
  const outside: LinearModuleInfo[] = [];
  for (const m of modules) {
    if (m.layer === null) {
      outside.push(m);
      continue;
    }
    if (!names.includes(m.name)) names.push(m.name);
    let cells = byLayer.get(m.layer);
    if (!cells) byLayer.set(m.layer, (cells = new Map()));
    cells.set(m.name, m);
  }
  const rows = [...byLayer.entries()].sort((a, b) => a[0] - b[0]).map(([layer, cells]) => ({ layer, cells }));
  return { names, rows, outside };
}

/**
 * PEFT `target_modules`: a short name when every layer's module of that name is chosen (PEFT matches it as a
 * suffix), the full module path otherwise (PEFT matches it exactly).
 */
export function targetModulesOf(modules: readonly LinearModuleInfo[], selected: ReadonlySet<string>): string[] {
  const byName = new Map<string, LinearModuleInfo[]>();
  for (const m of modules) {
    const list = byName.get(m.name) ?? [];
    list.push(m);
    byName.set(m.name, list);
  }
  const targets: string[] = [];
  for (const [name, list] of byName) {
    const chosen = list.filter((m) => selected.has(m.path));
    if (chosen.length === 0) continue;
    if (chosen.length === list.length) targets.push(name);
    else targets.push(...chosen.map((m) => m.path));
  }
  return targets;
}

/** The inverse of targetModulesOf, for prefilling the wizard from a saved version's settings. */
export function selectionOf(modules: readonly LinearModuleInfo[], targetModules: readonly string[]): Set<string> {
  const wanted = new Set(targetModules);
  return new Set(modules.filter((m) => wanted.has(m.name) || wanted.has(m.path)).map((m) => m.path));
}
