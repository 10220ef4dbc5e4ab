/**
 * A LoRA adapter as a GGUF file that llama.cpp (--lora), Ollama (ADAPTER) and LM Studio apply to their GGUF base,
 * as llama.cpp's convert_lora_to_gguf.py writes it:
 *   general.type = adapter, adapter.type = lora, adapter.lora.alpha, general.architecture of the base;
 *   per adapted weight W (GGUF name, e.g. blk.0.attn_q.weight): W.lora_a = A [r, in] (ne = [in, r]) and
 *   W.lora_b = B [out, r] (ne = [r, out]), F32.
 * llama.cpp applies scale = alpha / r with r read from each lora_b, so per-module scalings that one alpha cannot
 * express (rsLoRA's alpha/√r, rank_pattern, alpha_pattern) are folded into B, exactly. llama-architecture q/k
 * weights are stored with their rows permuted (gguf-arch), so B's rows get the same permutation.
 * Every module is checked against the base before anything is written.
 */
import { GgufFile, isGgufFile } from '../io/gguf';
import { architectureForModelType, ggufWeightOfModule, hfConfigFromGguf, permuteRows, permutedHeads, type GgufArchitecture } from '../io/gguf-arch';
import { kv, writeGguf, type GgufTensorSpec } from '../io/gguf-write';
import { moduleSettings } from '../lora/config';
import { readModelConfig } from '../models/registry';
import type { AdapterWeights } from './compose';
import { moduleShape } from './compose';
import { describeBaseDir } from './describe-base';
import { AdapterError } from './errors';

/** What the export needs of the base: its architecture, heads and the GGUF weights LoRA can adapt, [out, in]. */
export interface GgufBaseShape {
  readonly source: string;
  readonly arch: GgufArchitecture;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly weights: ReadonlyMap<string, readonly [number, number]>;
}

/** The base as a GGUF file would hold it: from a GGUF model file, or a Hugging Face folder's config and headers. */
export function describeGgufBase(base: string): GgufBaseShape {
  if (isGgufFile(base)) {
    const file = new GgufFile(base);
    try {
      const { arch, raw } = hfConfigFromGguf(file);
      const weights = new Map<string, readonly [number, number]>();
      for (const t of file.tensors.values()) if (t.shape.length === 2) weights.set(t.name, [t.shape[0] as number, t.shape[1] as number]);
      return { source: base, arch, numHeads: raw.num_attention_heads as number, numKvHeads: raw.num_key_value_heads as number, weights };
    } finally {
      file.close();
    }
  }
  const config = readModelConfig(base);
  const arch = architectureForModelType(config.modelType);
  const weights = new Map<string, readonly [number, number]>();
  for (const spec of describeBaseDir(base).linears) {
    const name = ggufWeightOfModule(spec.path);
    if (name !== null) weights.set(name, [spec.outFeatures, spec.inFeatures]);
  }
  return { source: base, arch, numHeads: config.numHeads, numKvHeads: config.numKvHeads, weights };
}

interface PlannedModule {
  readonly path: string;
  readonly weight: string;
  readonly rank: number;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** scaling · rank: the alpha llama.cpp would need for this module alone. */
  readonly alphaNeeded: number;
}

/** Every module mapped to its GGUF weight and checked against the base; all problems at once. */
function planModules(adapter: AdapterWeights, base: GgufBaseShape): PlannedModule[] {
  const problems: string[] = [];
  const planned: PlannedModule[] = [];
  for (const [path, w] of adapter.modules) {
    const { inFeatures, outFeatures } = moduleShape(w);
    const weight = ggufWeightOfModule(path);
    const shape = weight === null ? undefined : base.weights.get(weight);
    if (weight === null) {
      problems.push(`${path}: no ${base.arch.name} GGUF weight corresponds to this module`);
    } else if (!shape) {
      problems.push(
        path === 'lm_head'
          ? `${path}: the base ties its output head to the embedding (no output.weight), and llama.cpp cannot apply a LoRA to that`
          : `${path}: the base has no '${weight}'; was the adapter trained on another model?`,
      );
    } else if (shape[0] !== outFeatures || shape[1] !== inFeatures) {
      problems.push(`${path}: the adapter is [out ${outFeatures}, in ${inFeatures}] but the base's '${weight}' is [${shape[0]}, ${shape[1]}]`);
    } else {
      const { scaling } = moduleSettings(adapter.config, path);
      planned.push({ path, weight, rank: w.rank, inFeatures, outFeatures, alphaNeeded: scaling * w.rank });
    }
  }
  if (problems.length > 0) {
    throw new AdapterError('INCOMPATIBLE_ADAPTER', `the adapter does not fit the base ${base.source}; nothing was written:\n  ✗ ${problems.join('\n  ✗ ')}`);
  }
  if (planned.length === 0) throw new AdapterError('INVALID_ARGUMENT', 'the adapter has no modules to export');
  return planned;
}

export interface GgufAdapterExport {
  readonly path: string;
  readonly modules: number;
  /** adapter.lora.alpha as written. */
  readonly alpha: number;
  /** Modules whose scaling was folded into lora_b because one alpha could not express it. */
  readonly folded: number;
  readonly bytes: number;
}

export interface ExportGgufAdapterOptions {
  readonly name?: string;
  readonly signal?: AbortSignal;
}

/** Writes `adapter` (PEFT orientation) as a GGUF LoRA for `base`, atomically, after checking every module fits. */
export async function exportGgufAdapter(adapter: AdapterWeights, base: GgufBaseShape, outPath: string, options: ExportGgufAdapterOptions = {}): Promise<GgufAdapterExport> {
  const planned = planModules(adapter, base);
  const alpha = (planned[0] as PlannedModule).alphaNeeded;
  let folded = 0;
  const tensors: GgufTensorSpec[] = [];
  for (const m of planned) {
    const w = adapter.modules.get(m.path);
    if (!w) continue;
    const factor = m.alphaNeeded / alpha;
    if (Math.abs(factor - 1) > 1e-9) folded++;
    const heads = permutedHeads(base.arch, `${m.path}.weight`, base);
    tensors.push({ name: `${m.weight}.lora_a`, shape: [m.rank, m.inFeatures], type: 'F32', data: () => w.loraA });
    tensors.push({
      name: `${m.weight}.lora_b`,
      shape: [m.outFeatures, m.rank],
      type: 'F32',
      data: () => {
        const b = factor === 1 ? w.loraB : w.loraB.map((v) => v * factor);
        return heads === null ? b : permuteRows(b, m.outFeatures, m.rank, heads, true);
      },
    });
  }
  const metadata = [
    kv.string('general.architecture', base.arch.name),
    kv.string('general.type', 'adapter'),
    kv.string('general.name', options.name ?? 'adapter'),
    kv.string('adapter.type', 'lora'),
    kv.f32('adapter.lora.alpha', alpha),
  ];
  const bytes = await writeGguf(outPath, metadata, tensors, options.signal ? { signal: options.signal } : {});
  return { path: outPath, modules: planned.length, alpha, folded, bytes };
}
