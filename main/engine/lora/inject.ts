/**
 * Adds a named LoRA adapter to the chosen linear modules of a model, with PEFT's initialisation:
 * lora_A kaiming-uniform with a = sqrt(5) (which is uniform(±1/sqrt(in))), lora_B zero, so ΔW = 0 at first.
 * Only At and Bt are created; the frozen weights are shared, never copied.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CausalLM, LinearSpec } from '../models/types';
import type { LinearLayer, LoraAdapterWeights } from './linear';
import { moduleSettings, resolveLoraConfig, resolveTargets, type LoraConfig } from './config';
import { LoraError } from './errors';
import { hashSeed, Rng } from '../train/rng';

export interface InjectedModule {
  readonly spec: LinearSpec;
  readonly weights: LoraAdapterWeights;
}

export interface InjectedAdapter {
  readonly name: string;
  readonly config: LoraConfig;
  /** Targeted modules by path, in the model's order. */
  readonly modules: ReadonlyMap<string, InjectedModule>;
}

export interface InjectOptions {
  /** Seed of lora_A's initialisation. */
  readonly seed?: number;
  /** Make this adapter the only active one on every layer (default true). */
  readonly activate?: boolean;
}

/** Initial weights of one module in the layer's orientation: At [in, r] uniform(±1/sqrt(in)), Bt [r, out] zero. */
export function initialLoraWeights(spec: LinearSpec, rank: number, seed: number): { At: Float32Array; Bt: Float32Array } {
  const rng = new Rng(seed);
  const bound = 1 / Math.sqrt(spec.inFeatures);
  const At = new Float32Array(spec.inFeatures * rank);
  for (let i = 0; i < At.length; i++) At[i] = rng.uniform(-bound, bound);
  return { At, Bt: new Float32Array(rank * spec.outFeatures) };
}

/** The linear modules `config` targets on `model`; NO_TARGET_MODULES naming the available ones if a target matches none. */
export function targetedModules(model: Pick<CausalLM, 'linears'>, config: LoraConfig): readonly LinearSpec[] {
  const specs = [...model.linears.values()].map((l) => l.spec);
  const { modules, unmatched } = resolveTargets(specs, config.targetModules);
  const available = [...new Set(specs.map((s) => s.name))].join(', ');
  if (unmatched.length > 0) {
    throw new LoraError('NO_TARGET_MODULES', `target modules ${unmatched.map((u) => `'${u}'`).join(', ')} match no linear module of this model; available: ${available}`);
  }
  if (modules.length === 0) {
    throw new LoraError('NO_TARGET_MODULES', `targetModules ${JSON.stringify(config.targetModules)} match no linear module of this model; available: ${available}`);
  }
  return modules;
}

/** Sets each layer's active adapters to just `name` where it has it, and none elsewhere. */
export function activateOnly(model: Pick<CausalLM, 'linears'>, name: string | null): void {
  for (const layer of model.linears.values()) {
    layer.setActive(name !== null && layer.adapters.has(name) ? [{ name, weight: 1 }] : []);
  }
}

function addToLayer(layer: LinearLayer, name: string, weights: LoraAdapterWeights): void {
  if (layer.adapters.has(name)) {
    throw new LoraError('ADAPTER_EXISTS', `${layer.spec.path} already has an adapter named '${name}'; remove it first or choose another name`);
  }
  layer.adapters.set(name, weights);
}

/** Adds a fresh adapter `name` (PEFT init) to every module the config targets. */
export function injectAdapter(
  model: Pick<CausalLM, 'linears'>,
  name: string,
  partialConfig: Partial<LoraConfig>,
  options: InjectOptions = {},
): InjectedAdapter {
  const config = resolveLoraConfig(partialConfig);
  const seed = options.seed ?? 0;
  const specs = targetedModules(model, config);
  return attach(model, name, config, specs, options.activate ?? true, (spec, index, rank) => {
    const init = initialLoraWeights(spec, rank, hashSeed(seed, index));
    return { At: tf.tensor2d(init.At, [spec.inFeatures, rank]), Bt: tf.tensor2d(init.Bt, [rank, spec.outFeatures]) };
  });
}

/** PEFT's orientation of one module's trained weights: loraA [r, in], loraB [out, r], row-major. */
export interface PeftModuleWeights {
  readonly loraA: Float32Array;
  readonly loraB: Float32Array;
  readonly rank: number;
}

/** Adds an adapter with given weights (from a PEFT file) to the modules named in `weights`. */
export function attachAdapterWeights(
  model: Pick<CausalLM, 'linears'>,
  name: string,
  config: LoraConfig,
  weights: ReadonlyMap<string, PeftModuleWeights>,
  options: { activate?: boolean } = {},
): InjectedAdapter {
  const specs: LinearSpec[] = [];
  for (const path of weights.keys()) {
    const layer = model.linears.get(path);
    if (!layer) throw new LoraError('NO_TARGET_MODULES', `adapter module '${path}' is not a linear module of this model`);
    specs.push(layer.spec);
  }
  return attach(model, name, config, specs, options.activate ?? true, (spec) => {
    const w = weights.get(spec.path) as PeftModuleWeights;
    const { inFeatures: inF, outFeatures: outF } = spec;
    if (w.loraA.length !== w.rank * inF || w.loraB.length !== outF * w.rank) {
      throw new LoraError('INVALID_ADAPTER_FILE', `${spec.path}: lora_A must be [${w.rank}, ${inF}] and lora_B [${outF}, ${w.rank}] for this model`);
    }
    return tf.tidy(() => ({
      At: tf.transpose(tf.tensor2d(w.loraA, [w.rank, inF])) as tf.Tensor2D, // [in, r]
      Bt: tf.transpose(tf.tensor2d(w.loraB, [outF, w.rank])) as tf.Tensor2D, // [r, out]
    }));
  });
}

function attach(
  model: Pick<CausalLM, 'linears'>,
  name: string,
  config: LoraConfig,
  specs: readonly LinearSpec[],
  activate: boolean,
  makeWeights: (spec: LinearSpec, index: number, rank: number) => { At: tf.Tensor2D; Bt: tf.Tensor2D },
): InjectedAdapter {
  for (const spec of specs) {
    if (model.linears.get(spec.path)?.adapters.has(name)) {
      throw new LoraError('ADAPTER_EXISTS', `${spec.path} already has an adapter named '${name}'; remove it first or choose another name`);
    }
  }
  const modules = new Map<string, InjectedModule>();
  specs.forEach((spec, index) => {
    const settings = moduleSettings(config, spec.path);
    const initial = makeWeights(spec, index, settings.rank);
    // A loaded file's tensors decide the rank; alpha comes from the config (alpha_pattern applied)
    const rank = initial.At.shape[1];
    const scaling = config.useRslora ? settings.alpha / Math.sqrt(rank) : settings.alpha / rank;
    // Unnamed variables: tfjs names must be unique process-wide, and two models may hold the same adapter name.
    const weights: LoraAdapterWeights = {
      At: tf.variable(initial.At, true),
      Bt: tf.variable(initial.Bt, true),
      rank,
      scaling,
      dropout: config.dropout,
    };
    initial.At.dispose();
    initial.Bt.dispose();
    addToLayer(model.linears.get(spec.path) as LinearLayer, name, weights);
    modules.set(spec.path, { spec, weights });
  });
  if (activate) activateOnly(model, name);
  return { name, config, modules };
}

/** Removes adapter `name` from every layer and frees its weights. */
export function removeAdapter(model: Pick<CausalLM, 'linears'>, name: string): void {
  for (const layer of model.linears.values()) {
    const weights = layer.adapters.get(name);
    if (!weights) continue;
    weights.At.dispose();
    weights.Bt.dispose();
    layer.adapters.delete(name);
    layer.setActive(layer.active.filter((a) => a.name !== name));
  }
}

/** The adapter's trainable variables by stable name: '<path>.lora_A' (At [in, r]) and '<path>.lora_B' (Bt [r, out]). */
export function adapterVariables(adapter: InjectedAdapter): Map<string, tf.Variable> {
  const vars = new Map<string, tf.Variable>();
  for (const [path, { weights }] of adapter.modules) {
    vars.set(`${path}.lora_A`, weights.At);
    vars.set(`${path}.lora_B`, weights.Bt);
  }
  return vars;
}

/** Trained weights of each module in PEFT's orientation (loraA [r, in], loraB [out, r]). */
export async function peftWeightsOf(adapter: InjectedAdapter): Promise<Map<string, PeftModuleWeights>> {
  const out = new Map<string, PeftModuleWeights>();
  for (const [path, { weights }] of adapter.modules) {
    const [loraA, loraB] = tf.tidy(() => [tf.transpose(weights.At), tf.transpose(weights.Bt)]) as [tf.Tensor, tf.Tensor];
    out.set(path, { loraA: (await loraA.data()) as Float32Array, loraB: (await loraB.data()) as Float32Array, rank: weights.rank });
    loraA.dispose();
    loraB.dispose();
  }
  return out;
}
