/**
 * Preflight check of a PEFT LoRA adapter folder against a base model, before loading anything: the files, the
 * features we support, and every module's path and shape. Reads adapter_config.json and only the safetensors
 * header, so checking a large adapter is instant. Returns a report of everything that does not fit rather than
 * stopping at the first problem; nothing is silently ignored.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { moduleSettings, resolveTargets, type LoraConfig } from '../lora/config';
import { loraConfigFromPeftJson } from '../lora/peft-io';
import type { LinearSpec } from '../models/types';
import { openSafetensors, type TensorEntry } from '../io/safetensors';
import { preflightDetails, preflightVerdict, splitModulePath } from './preflight-verdict';

export type ProblemKind = 'file' | 'unsupported' | 'missing-module' | 'shape' | 'rank' | 'config';

export interface PreflightProblem {
  readonly kind: ProblemKind;
  readonly module?: string;
  readonly message: string;
}

export interface PreflightModule {
  readonly path: string;
  readonly rank: number;
  readonly scaling: number;
  readonly inFeatures: number;
  readonly outFeatures: number;
}

export interface PreflightReport {
  readonly ok: boolean;
  readonly adapterDir: string;
  /** null when checked without a base */
  readonly modelType: string | null;
  readonly modules: readonly PreflightModule[];
  readonly problems: readonly PreflightProblem[];
  /** Mismatches PEFT itself tolerates (it warns and carries on); shown, not fatal. */
  readonly warnings: readonly string[];
  /**
   * What the adapter was made for: adapter_config.json's base_model_name_or_path, the hidden size its modules read
   * (the most common in-features of lora_A) and the layers its paths name.
   */
  readonly madeFor: { readonly nameOrPath: string | null; readonly hiddenSize: number | null; readonly layers: number | null };
  /** The base checked against (null without one). */
  readonly base: { readonly modelType: string; readonly hiddenSize: number | null; readonly layers: number | null } | null;
  /** One line: what it was made for, against this base, and whether it can be used (preflight-verdict.ts). */
  readonly verdict: string;
}

/** What the check needs of the base: its architecture and the specs of its linear modules. */
export interface BaseDescription {
  readonly modelType: string;
  readonly linears: Iterable<LinearSpec>;
  /** config.json's hidden size and layer count, for the verdict's "this base has hidden 32" */
  readonly hiddenSize?: number;
  readonly numLayers?: number;
}

/** The most common value (the larger on a tie), or null for none. */
function mode(values: readonly number[]): number | null {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || b[0] - a[0])[0]?.[0] ?? null;
}

function layerCount(paths: Iterable<string>): number | null {
  const layers = [...paths].flatMap((p) => {
    const { layer } = splitModulePath(p);
    return layer === null ? [] : [layer];
  });
  return layers.length === 0 ? null : Math.max(...layers) + 1;
}

const KEY = /^base_model\.model\.(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/;
const SUPPORTED_DTYPES = new Set(['F32', 'F16', 'BF16']);

class Collector {
  readonly problems: PreflightProblem[] = [];
  readonly warnings: string[] = [];
  add(kind: ProblemKind, message: string, module?: string): void {
    this.problems.push(module === undefined ? { kind, message } : { kind, module, message });
  }
}

function isSet(value: unknown): boolean {
  if (value === null || value === undefined || value === false) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}

/** Features of adapter_config.json this engine does not implement, each named in its own problem. */
function checkFeatures(raw: Record<string, unknown>, out: Collector): void {
  if (raw.peft_type !== 'LORA') out.add('unsupported', `peft_type is ${JSON.stringify(raw.peft_type)}; only LORA adapters are supported`);
  const task = raw.task_type;
  if (task !== undefined && task !== null && task !== 'CAUSAL_LM') {
    out.add('unsupported', `task_type is '${String(task)}'; only CAUSAL_LM adapters apply to a language model (a ${String(task)} adapter needs its task head)`);
  }
  const unsupported: [string, string][] = [
    ['use_dora', 'DoRA (use_dora) adapters are not supported; train or export a plain LoRA adapter'],
    ['modules_to_save', `modules_to_save ${JSON.stringify(raw.modules_to_save)} saves full extra weights, which are not supported`],
    ['trainable_token_indices', 'trainable_token_indices (trained embedding rows) is not supported'],
    ['target_parameters', 'target_parameters (LoRA on raw parameters) is not supported'],
    ['layer_replication', 'layer_replication is not supported'],
    ['lora_bias', 'lora_bias (a trained bias on lora_B) is not supported'],
    ['use_qalora', 'QA-LoRA (use_qalora) is not supported'],
  ];
  for (const [field, message] of unsupported) if (isSet(raw[field])) out.add('unsupported', message);
  if (raw.bias !== undefined && raw.bias !== 'none') {
    out.add('unsupported', `bias is '${String(raw.bias)}': trained biases are extra full weights, which are not supported`);
  }
}

function parseConfig(raw: Record<string, unknown>, out: Collector): LoraConfig | null {
  try {
    return loraConfigFromPeftJson(raw);
  } catch (error) {
    out.add('config', `adapter_config.json: ${(error as Error).message}`);
    return null;
  }
}

interface FilePair {
  A?: TensorEntry;
  B?: TensorEntry;
}

/** Groups lora_A / lora_B per module and reports every other key by what it is. */
function pairKeys(header: ReadonlyMap<string, TensorEntry>, out: Collector): Map<string, FilePair> {
  const pairs = new Map<string, FilePair>();
  for (const [key, entry] of header) {
    if (!SUPPORTED_DTYPES.has(entry.dtype)) out.add('unsupported', `tensor '${key}' has dtype ${entry.dtype}; adapters must be F32, F16 or BF16`);
    const match = KEY.exec(key);
    if (match) {
      const [, path, which] = match as unknown as [string, string, 'A' | 'B'];
      const pair = pairs.get(path) ?? {};
      pair[which] = entry;
      pairs.set(path, pair);
    } else if (/lora_embedding_[AB]/.test(key)) {
      out.add('unsupported', `'${key}' adapts an embedding; LoRA on embeddings is not supported`);
    } else if (/lora_magnitude_vector/.test(key)) {
      out.add('unsupported', `'${key}' is a DoRA magnitude vector; DoRA is not supported`);
    } else {
      out.add('unsupported', `'${key}' [${entry.shape.join(', ')}] is an extra full weight (modules_to_save or a task head); it is not supported`);
    }
  }
  return pairs;
}

function layersToTransform(raw: Record<string, unknown>): Set<number> | null {
  const value = raw.layers_to_transform;
  if (typeof value === 'number') return new Set([value]);
  if (Array.isArray(value)) return new Set(value.map(Number));
  return null;
}

function checkModule(path: string, pair: FilePair, spec: LinearSpec | undefined | null, config: LoraConfig | null, out: Collector): PreflightModule | null {
  const { A, B } = pair;
  if (!A || !B) {
    out.add('shape', `has lora_${A ? 'A' : 'B'} but no lora_${A ? 'B' : 'A'}`, path);
    return null;
  }
  if (spec === null) {
    // No base to check against: take the shapes the file declares.
    const [rank = 0, inFeatures = 0] = A.shape;
    const outFeatures = B.shape[0] ?? 0;
    spec = { path, name: path.split('.').pop() ?? path, layer: null, inFeatures, outFeatures, groups: [], fanInFanOut: false };
    if (B.shape[1] !== rank) {
      out.add('shape', `lora_A is [${A.shape.join(', ')}] and lora_B [${B.shape.join(', ')}]: they do not share a rank`, path);
      return null;
    }
  }
  if (!spec) {
    const embedding = /(^|\.)(wte|wpe|embed_tokens|embed_in|word_embeddings)$/.test(path);
    out.add(
      embedding ? 'unsupported' : 'missing-module',
      embedding ? 'is an embedding; LoRA on embeddings is not supported' : 'is not a linear module of this base model',
      path,
    );
    return null;
  }
  const rank = A.shape[0] ?? 0;
  const expectA = `[${rank}, ${spec.inFeatures}]`;
  const expectB = `[${spec.outFeatures}, ${rank}]`;
  const shapeA = `[${A.shape.join(', ')}]`;
  const shapeB = `[${B.shape.join(', ')}]`;
  if (A.shape.length !== 2 || B.shape.length !== 2 || shapeA !== expectA || shapeB !== expectB) {
    out.add('shape', `lora_A is ${shapeA} and lora_B ${shapeB}; this base needs lora_A ${expectA} and lora_B ${expectB}`, path);
    return null;
  }
  if (!config) return null;
  const settings = moduleSettings(config, path);
  if (settings.rank !== rank) {
    out.add('rank', `holds rank ${rank} but r / rank_pattern in adapter_config.json say ${settings.rank}`, path);
    return null;
  }
  return { path, rank, scaling: settings.scaling, inFeatures: spec.inFeatures, outFeatures: spec.outFeatures };
}

function readConfigJson(adapterDir: string, out: Collector): Record<string, unknown> | null {
  const file = join(adapterDir, 'adapter_config.json');
  if (!existsSync(file)) {
    out.add('file', `${file} is missing: not a PEFT adapter folder`);
    return null;
  }
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as Record<string, unknown>;
  } catch (error) {
    out.add('file', `${file} cannot be read: ${(error as Error).message}`);
    return null;
  }
}

function readHeader(adapterDir: string, out: Collector): Map<string, TensorEntry> | null {
  const file = join(adapterDir, 'adapter_model.safetensors');
  if (!existsSync(file)) {
    out.add(
      'file',
      existsSync(join(adapterDir, 'adapter_model.bin'))
        ? `${adapterDir} holds the legacy adapter_model.bin (a Python pickle), which is not read for safety; convert it with PEFT: PeftModel.from_pretrained(...).save_pretrained(dir, safe_serialization=True)`
        : `${file} is missing`,
    );
    return null;
  }
  let opened;
  try {
    opened = openSafetensors(file);
  } catch (error) {
    out.add('file', (error as Error).message);
    return null;
  }
  try {
    // Every value is read once: a NaN or an infinity in an adapter (a diverged run) would poison any base it meets.
    for (const name of opened.tensors.keys()) {
      try {
        opened.read(name);
      } catch (error) {
        out.add('file', (error as Error).message);
      }
    }
    return opened.tensors;
  } finally {
    opened.close();
  }
}

/**
 * The preflight report of the adapter in `adapterDir` against `base` (or, with null, of the adapter alone: files,
 * features, pairs and ranks). Never throws for a bad adapter.
 */
export function preflightAdapter(adapterDir: string, base: BaseDescription | null): PreflightReport {
  const out = new Collector();
  const baseLinears = base ? [...base.linears] : [];
  const specs = base ? new Map(baseLinears.map((s) => [s.path, s])) : null;
  let pairs = new Map<string, FilePair>();
  const raw = readConfigJson(adapterDir, out);
  const header = readHeader(adapterDir, out);
  const modules: PreflightModule[] = [];
  if (raw) checkFeatures(raw, out);
  const config = raw ? parseConfig(raw, out) : null;
  if (header) {
    pairs = pairKeys(header, out);
    if (pairs.size === 0) out.add('file', 'adapter_model.safetensors holds no lora_A / lora_B tensors');
    const layers = raw ? layersToTransform(raw) : null;
    const byPath = [...pairs].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })); // layer 2 before 10
    for (const [path, pair] of byPath) {
      const spec = specs ? specs.get(path) : null;
      const checked = checkModule(path, pair, spec, config, out);
      if (!checked) continue;
      modules.push(checked);
      if (!spec) continue;
      if (layers && spec.layer !== null && !layers.has(spec.layer)) {
        out.add('config', `is in layer ${spec.layer}, outside layers_to_transform [${[...layers].join(', ')}]`, path);
      }
      if (config && resolveTargets([spec], config.targetModules).modules.length === 0) {
        out.warnings.push(`${path}: has weights but is not matched by target_modules ${JSON.stringify(config.targetModules)}`);
      }
      if (raw && (raw.fan_in_fan_out === true) !== spec.fanInFanOut) {
        out.warnings.push(`${path}: fan_in_fan_out is ${String(raw.fan_in_fan_out === true)} but this base stores the module as ${spec.fanInFanOut ? 'Conv1D [in, out]' : 'Linear [out, in]'} (PEFT corrects this too)`);
      }
    }
  }
  const nameOrPath = typeof raw?.base_model_name_or_path === 'string' && raw.base_model_name_or_path !== '' ? raw.base_model_name_or_path : null;
  const report = {
    ok: out.problems.length === 0, adapterDir, modelType: base?.modelType ?? null, modules, problems: out.problems, warnings: out.warnings,
    madeFor: { nameOrPath, hiddenSize: mode([...pairs.values()].flatMap((p) => (p.A?.shape.length === 2 ? [p.A.shape[1] as number] : []))), layers: layerCount(pairs.keys()) },
    base: base ? {
      modelType: base.modelType,
      hiddenSize: base.hiddenSize ?? mode(baseLinears.map((l) => l.inFeatures)),
      layers: base.numLayers ?? layerCount(baseLinears.map((l) => l.path)),
    } : null,
  };
  return { ...report, verdict: preflightVerdict(report) };
}

/** The report as the CLI prints it: the verdict first, then the details grouped by module kind over layers. */
export function formatPreflight(report: PreflightReport): string {
  const against = report.modelType === null ? '' : ` against a ${report.modelType} base`;
  const details = preflightDetails(report);
  const lines = [report.verdict, `${report.adapterDir}${against}: ${report.ok ? 'OK' : `${report.problems.length} problem(s)`}`];
  if (report.modules.length > 0) {
    const ranks = [...new Set(report.modules.map((m) => m.rank))].join('/');
    lines.push(`  ${report.modules.length} module(s) fit, rank ${ranks}`);
    if (!report.ok) for (const f of details.fits) lines.push(`  ✓ ${f}`);
  }
  for (const p of details.problems) lines.push(`  ✗ ${p}`);
  for (const w of details.warnings) lines.push(`  ! ${w}`);
  return lines.join('\n');
}
