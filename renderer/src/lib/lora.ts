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

/** The preset a selection equals (the first, where two presets select the same modules), or null for a hand-picked one. */
export function activePreset(modules: readonly LinearModuleInfo[], selected: ReadonlySet<string>): ModulePreset | null {
  if (selected.size === 0) return null;
  for (const p of PRESETS) {
    const preset = presetSelection(modules, p.id);
    if (preset.size === selected.size && [...preset].every((path) => selected.has(path))) return p.id;
  }
  return null;
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

/**
 * Each module's kind: its path after the layer index ('attn.c_proj', 'self_attn.q_proj'), labelled by the shortest
 * dotted suffix that tells the model's kinds apart: 'q_proj' for the Llama family, but 'attn.c_proj' and
 * 'mlp.c_proj' for GPT-2, whose attention and MLP output projections share a name. The label is also a PEFT
 * target_modules entry (PEFT matches it as a path suffix). Modules outside the blocks keep their name.
 */
export function moduleKinds(modules: readonly LinearModuleInfo[]): Map<string, string> {
  const kindOf = (m: LinearModuleInfo): string => {
    if (m.layer === null) return m.name;
    const marker = `.${m.layer}.`;
    const at = m.path.indexOf(marker);
    return at < 0 ? m.name : m.path.slice(at + marker.length);
  };
  const kinds = [...new Set(modules.map(kindOf))];
  const label = (kind: string): string => {
    const parts = kind.split('.');
    for (let n = 1; n < parts.length; n++) {
      const suffix = parts.slice(-n).join('.');
      if (kinds.every((k) => k === kind || !(k === suffix || k.endsWith(`.${suffix}`)))) return suffix;
    }
    return kind;
  };
  const labels = new Map(kinds.map((k) => [k, label(k)]));
  return new Map(modules.map((m) => [m.path, labels.get(kindOf(m)) as string]));
}

export interface ModuleGrid {
  /** Column labels (module kinds) in first-seen order: q_proj, k_proj, ... or attn.c_proj, mlp.c_proj. */
  readonly names: readonly string[];
  /** One row per layer index; cells keyed by module kind. */
  readonly rows: readonly { layer: number; cells: ReadonlyMap<string, LinearModuleInfo> }[];
  /** Modules outside the blocks (lm_head ...), listed apart. */
  readonly outside: readonly LinearModuleInfo[];
}

export function moduleGrid(modules: readonly LinearModuleInfo[]): ModuleGrid {
  const kinds = moduleKinds(modules);
  const names: string[] = [];
  const byLayer = new Map<number, Map<string, LinearModuleInfo>>();
  const outside: LinearModuleInfo[] = [];
  for (const m of modules) {
    if (m.layer === null) {
      outside.push(m);
      continue;
    }
    const kind = kinds.get(m.path) as string;
    if (!names.includes(kind)) names.push(kind);
    let cells = byLayer.get(m.layer);
    if (!cells) byLayer.set(m.layer, (cells = new Map()));
    cells.set(kind, m);
  }
  const rows = [...byLayer.entries()].sort((a, b) => a[0] - b[0]).map(([layer, cells]) => ({ layer, cells }));
  return { names, rows, outside };
}

export interface ModuleSummaryRow {
  readonly kind: string;
  readonly layers: number;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly groups: readonly string[];
  /** Frozen weights of these modules together. */
  readonly weights: number;
}

/** One row per module kind and shape (a kind whose shape varies by layer gets a row per shape), in model order. */
export function moduleSummary(modules: readonly LinearModuleInfo[]): ModuleSummaryRow[] {
  const kinds = moduleKinds(modules);
  const rows = new Map<string, ModuleSummaryRow>();
  for (const m of modules) {
    const kind = kinds.get(m.path) as string;
    const key = `${kind} ${m.inFeatures}x${m.outFeatures}`;
    const row = rows.get(key);
    rows.set(key, {
      kind, inFeatures: m.inFeatures, outFeatures: m.outFeatures, groups: m.groups,
      layers: (row?.layers ?? 0) + 1, weights: (row?.weights ?? 0) + m.inFeatures * m.outFeatures,
    });
  }
  return [...rows.values()];
}

/**
 * PEFT `target_modules`: a module kind when every layer's module of that kind is chosen (PEFT matches it as a
 * suffix), the full module path otherwise (PEFT matches it exactly).
 */
export function targetModulesOf(modules: readonly LinearModuleInfo[], selected: ReadonlySet<string>): string[] {
  const kinds = moduleKinds(modules);
  const byKind = new Map<string, LinearModuleInfo[]>();
  for (const m of modules) {
    const kind = kinds.get(m.path) as string;
    const list = byKind.get(kind) ?? [];
    list.push(m);
    byKind.set(kind, list);
  }
  const targets: string[] = [];
  for (const [kind, list] of byKind) {
    const chosen = list.filter((m) => selected.has(m.path));
    if (chosen.length === 0) continue;
    if (chosen.length === list.length) targets.push(kind);
    else targets.push(...chosen.map((m) => m.path));
  }
  return targets;
}

/** The inverse of targetModulesOf, for prefilling the wizard from a saved version's settings (PEFT suffix matching). */
export function selectionOf(modules: readonly LinearModuleInfo[], targetModules: readonly string[]): Set<string> {
  const matches = (m: LinearModuleInfo, entry: string) => m.path === entry || m.path.endsWith(`.${entry}`);
  return new Set(modules.filter((m) => targetModules.some((entry) => matches(m, entry))).map((m) => m.path));
}
