/**
 * The preflight report in plain words: one verdict line first ("made for gpt2 with hidden 768; this base has
 * hidden 32: it cannot be used with this base"), then the details grouped so that one module kind over many layers
 * is one line ("attn.c_attn, mlp.c_fc (layers 0–4): ..."), not one line per module. The CLI's `adapter check` and
 * the app's Adapters view both print these.
 */
import type { PreflightModule, PreflightProblem, PreflightReport } from './preflight';

/** Blocks of a decoder as PEFT paths name them: GPT-2's transformer.h.N, Llama's model.layers.N, ... */
const LAYERED = /^(.*?\.(?:h|layers|blocks|layer)\.)(\d+)\.(.+)$/;

/** A module path split into its layer (null outside the blocks) and its kind: 'self_attn.q_proj', 'mlp.c_proj'. */
export function splitModulePath(path: string): { layer: number | null; kind: string } {
  const match = LAYERED.exec(path);
  return match ? { layer: Number(match[2]), kind: match[3] as string } : { layer: null, kind: path };
}

/** [0, 1, 2, 4] -> '0–2, 4' */
export function formatLayers(layers: readonly number[]): string {
  const sorted = [...new Set(layers)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && (sorted[j + 1] as number) === (sorted[j] as number) + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}–${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

interface Entry {
  readonly path: string;
  readonly message: string;
}

/**
 * Entries of the same message over the same layers become one line naming each module kind once:
 * first by (kind, message) collecting layers, then by (message, layers) collecting kinds. Order of first sight.
 */
export function groupByModule(entries: readonly Entry[]): string[] {
  const byKind = new Map<string, { kind: string; message: string; layers: number[]; outside: boolean }>();
  for (const { path, message } of entries) {
    const { layer, kind } = splitModulePath(path);
    const key = `${kind}\0${message}`;
    const group = byKind.get(key) ?? { kind, message, layers: [], outside: false };
    if (layer === null) group.outside = true;
    else group.layers.push(layer);
    byKind.set(key, group);
  }
  const byLayers = new Map<string, { kinds: string[]; message: string; where: string }>();
  for (const g of byKind.values()) {
    const where = g.layers.length === 0 ? '' : ` (${g.layers.length === 1 ? 'layer' : 'layers'} ${formatLayers(g.layers)}${g.outside ? ' and outside the blocks' : ''})`;
    const key = `${g.message}\0${where}`;
    const line = byLayers.get(key) ?? { kinds: [], message: g.message, where };
    line.kinds.push(g.kind);
    byLayers.set(key, line);
  }
  return [...byLayers.values()].map((l) => `${l.kinds.join(', ')}${l.where}: ${l.message}`);
}

export interface PreflightDetails {
  /** What fits, by module kind: 'self_attn.q_proj, self_attn.v_proj (layers 0–3): rank 4, scale 2' */
  readonly fits: readonly string[];
  /** What does not, grouped; problems of the whole adapter (its files, its features) first. */
  readonly problems: readonly string[];
  /** What PEFT would tolerate too (shown, not fatal), grouped. */
  readonly warnings: readonly string[];
}

function fitsLines(modules: readonly PreflightModule[]): string[] {
  return groupByModule(modules.map((m) => ({
    path: m.path, message: `rank ${m.rank}, scale ${Number(m.scaling.toPrecision(4))}, ${m.inFeatures} → ${m.outFeatures}`,
  })));
}

function problemLines(problems: readonly PreflightProblem[]): string[] {
  const whole = problems.filter((p) => p.module === undefined).map((p) => p.message);
  const perModule = problems.flatMap((p) => (p.module === undefined ? [] : [{ path: p.module, message: p.message }]));
  return [...whole, ...groupByModule(perModule)];
}

/** Warnings are 'path: message' lines (preflight.ts); grouped the same way. */
function warningLines(warnings: readonly string[]): string[] {
  const entries: Entry[] = [];
  const other: string[] = [];
  for (const w of warnings) {
    const at = w.indexOf(': ');
    if (at > 0 && !w.slice(0, at).includes(' ')) entries.push({ path: w.slice(0, at), message: w.slice(at + 2) });
    else other.push(w);
  }
  return [...other, ...groupByModule(entries)];
}

export function preflightDetails(report: PreflightReport): PreflightDetails {
  return { fits: fitsLines(report.modules), problems: problemLines(report.problems), warnings: warningLines(report.warnings) };
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The verdict: what it was made for against what this base is, and whether it can be used, in one line. */
export function preflightVerdict(report: Omit<PreflightReport, 'verdict'>): string {
  const { madeFor, base, problems, modules } = report;
  const name = madeFor.nameOrPath ? madeFor.nameOrPath : 'an unnamed base';
  const fileProblem = problems.find((p) => p.kind === 'file');
  if (fileProblem) return `not a usable PEFT LoRA adapter: ${fileProblem.message}`;
  const hidden = madeFor.hiddenSize === null ? '' : ` with hidden ${madeFor.hiddenSize}`;
  const unsupported = problems.filter((p) => p.kind === 'unsupported' || p.kind === 'config');
  const cannot = (why: string) => `${why}: it cannot be used${base ? ' with this base' : ''}`;
  if (base && madeFor.hiddenSize !== null && base.hiddenSize !== null && madeFor.hiddenSize !== base.hiddenSize) {
    return cannot(`made for ${name}${hidden}; this base has hidden ${base.hiddenSize}`);
  }
  if (base && madeFor.layers !== null && base.layers !== null && madeFor.layers > base.layers) {
    return cannot(`made for ${name} with ${madeFor.layers} layers; this base has ${base.layers}`);
  }
  if (unsupported.length > 0) {
    const first = unsupported[0] as PreflightProblem;
    const more = unsupported.length > 1 ? ` (and ${plural(unsupported.length - 1, 'other problem')})` : '';
    return cannot(`made for ${name}${hidden}, but ${first.module ? `${first.module} ` : ''}${first.message}${more}`);
  }
  const misfits = new Set(problems.flatMap((p) => (p.module ? [p.module] : [])));
  if (misfits.size > 0) {
    const total = misfits.size + modules.length;
    return cannot(`made for ${name}${hidden}; ${misfits.size} of ${plural(total, 'module')} do not fit this base`);
  }
  const ranks = [...new Set(modules.map((m) => m.rank))].sort((a, b) => a - b).join('/');
  const kinds = [...new Set(modules.map((m) => splitModulePath(m.path).kind.split('.').pop() as string))];
  const what = `${plural(modules.length, 'module')} (${kinds.join(', ')}) at rank ${ranks}`;
  const notes = report.warnings.length > 0 ? `, with ${plural(warningLines(report.warnings).length, 'note')}` : '';
  return base
    ? `made for ${name}${hidden}; fits this ${base.modelType} base: ${what}${notes}`
    : `a LoRA adapter made for ${name}${hidden}: ${what}${notes}`;
}
