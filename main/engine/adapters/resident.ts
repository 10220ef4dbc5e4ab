/**
 * Several adapters resident on one loaded base model. Each adapter lives as At/Bt pairs on the layers it adapts
 * (LinearLayer's per-adapter map, as PEFT keeps them); choosing the active set per request, none, one or a
 * weighted mix, only changes each layer's small active list: the base weights are never reloaded nor copied.
 *   y = x·Wt + b + Σ_i w_i · s_i · x·At_i·Bt_i
 * An adapter can also be merged into the base weights (zero overhead) and unmerged again.
 */
import type { ActiveAdapter } from '../lora/linear';
import type { LinearLayer } from '../lora/linear';
import type { LoraConfig } from '../lora/config';
import { attachAdapterWeights, removeAdapter, type InjectedAdapter, type PeftModuleWeights } from '../lora/inject';
import { loadAdapter, type PeftAdapterMeta } from '../lora/peft-io';
import type { CausalLM } from '../models/types';
import { AdapterError } from './errors';
import { mergeIntoLayers, unmergeFromLayers } from './merge-weights';
import { formatPreflight, preflightAdapter } from './preflight';

/** What a request asks for: the base alone (null or []), one adapter by name, or a weighted mix. */
export type AdapterSelection = null | string | readonly ActiveAdapter[];

export interface ResidentAdapterInfo {
  readonly name: string;
  readonly config: LoraConfig;
  readonly meta: PeftAdapterMeta;
  /** Module paths it adapts, in the model's order. */
  readonly modules: readonly string[];
  /** Where it was loaded from, if from a folder. */
  readonly source: string | null;
}

export type AdapterModel = Pick<CausalLM, 'config' | 'linears'>;

export class ResidentAdapters<M extends AdapterModel = AdapterModel> {
  private readonly infos = new Map<string, ResidentAdapterInfo>();
  /** name -> weight merged into the base */
  private readonly mergedWeights = new Map<string, number>();
  private current: readonly ActiveAdapter[] = [];

  constructor(readonly model: M) {}

  get names(): string[] {
    return [...this.infos.keys()];
  }

  get active(): readonly ActiveAdapter[] {
    return this.current;
  }

  get merged(): ReadonlyMap<string, number> {
    return this.mergedWeights;
  }

  info(name: string): ResidentAdapterInfo {
    const info = this.infos.get(name);
    if (!info) {
      throw new AdapterError('ADAPTER_NOT_LOADED', `no adapter named '${name}' is loaded (loaded: ${this.names.join(', ') || 'none'})`);
    }
    return info;
  }

  /** Checks the PEFT folder against this base (throws INCOMPATIBLE_ADAPTER with the whole report), then loads it. */
  loadFromDir(name: string, dir: string): ResidentAdapterInfo {
    const report = preflightAdapter(dir, { modelType: this.model.config.modelType, linears: [...this.model.linears.values()].map((l) => l.spec) });
    if (!report.ok) throw new AdapterError('INCOMPATIBLE_ADAPTER', formatPreflight(report));
    const loaded = loadAdapter(dir);
    return this.add(name, loaded.config, loaded.meta, loaded.modules, dir);
  }

  /** Adds an adapter from weights in PEFT's orientation (an import, a mix, a reduction). Not activated. */
  add(name: string, config: LoraConfig, meta: PeftAdapterMeta, modules: ReadonlyMap<string, PeftModuleWeights>, source: string | null = null): ResidentAdapterInfo {
    if (name.trim() === '') throw new AdapterError('INVALID_ARGUMENT', 'an adapter name must not be empty');
    if (this.infos.has(name)) throw new AdapterError('ADAPTER_EXISTS', `an adapter named '${name}' is already loaded; unload it first or choose another name`);
    attachAdapterWeights(this.model, name, config, modules, { activate: false });
    this.restoreActive();
    const order = [...this.model.linears.keys()].filter((p) => modules.has(p));
    const info: ResidentAdapterInfo = { name, config, meta, modules: order, source };
    this.infos.set(name, info);
    return info;
  }

  /** Registers an adapter already injected into the model (by training), so it can be switched, merged, exported. */
  adopt(adapter: InjectedAdapter, meta: PeftAdapterMeta): ResidentAdapterInfo {
    if (this.infos.has(adapter.name)) {
      throw new AdapterError('ADAPTER_EXISTS', `an adapter named '${adapter.name}' is already loaded; unload it first or choose another name`);
    }
    const info: ResidentAdapterInfo = { name: adapter.name, config: adapter.config, meta, modules: [...adapter.modules.keys()], source: null };
    this.infos.set(adapter.name, info);
    this.restoreActive();
    return info;
  }

  /** Frees the adapter's weights; refused while it is merged into the base. */
  unload(name: string): void {
    this.info(name);
    if (this.mergedWeights.has(name)) {
      throw new AdapterError('ADAPTER_MERGED', `adapter '${name}' is merged into the base weights; unmerge it before unloading`);
    }
    removeAdapter(this.model, name);
    this.infos.delete(name);
    this.current = this.current.filter((a) => a.name !== name);
  }

  /** Sets the active set on every layer: the whole switch is this loop over small lists. */
  use(selection: AdapterSelection): void {
    const wanted: readonly ActiveAdapter[] =
      selection === null ? [] : typeof selection === 'string' ? [{ name: selection, weight: 1 }] : selection;
    const seen = new Set<string>();
    for (const { name, weight } of wanted) {
      this.info(name);
      if (seen.has(name)) throw new AdapterError('INVALID_ARGUMENT', `adapter '${name}' is listed twice in the active set`);
      seen.add(name);
      if (!Number.isFinite(weight)) throw new AdapterError('INVALID_ARGUMENT', `the weight of adapter '${name}' must be a finite number, got ${weight}`);
      if (this.mergedWeights.has(name)) {
        throw new AdapterError('ADAPTER_MERGED', `adapter '${name}' is already merged into the base weights; unmerge it to use it as a separate adapter`);
      }
    }
    this.current = wanted.map(({ name, weight }) => ({ name, weight }));
    this.restoreActive();
  }

  /** Adds w·s·B·A of `name` into the base weights (NaN/Inf checked first) and takes it out of the active set. */
  async merge(name: string, weight = 1): Promise<void> {
    this.info(name);
    if (this.mergedWeights.has(name)) throw new AdapterError('ADAPTER_MERGED', `adapter '${name}' is already merged`);
    await mergeIntoLayers(this.model.linears.values(), name, weight);
    this.mergedWeights.set(name, weight);
    this.current = this.current.filter((a) => a.name !== name);
    this.restoreActive();
  }

  /** Subtracts what merge added: the base weights return to W0 within float32 rounding. */
  unmerge(name: string): void {
    const weight = this.mergedWeights.get(name);
    if (weight === undefined) throw new AdapterError('ADAPTER_NOT_MERGED', `adapter '${name}' is not merged into the base`);
    unmergeFromLayers(this.model.linears.values(), name, weight);
    this.mergedWeights.delete(name);
  }

  /** Unmerges everything, then frees every adapter: the model is back to its base. */
  clear(): void {
    for (const name of [...this.mergedWeights.keys()]) this.unmerge(name);
    for (const name of this.names) this.unload(name);
  }

  private restoreActive(): void {
    for (const layer of this.model.linears.values() as Iterable<LinearLayer>) layer.setActive(this.current);
  }
}
