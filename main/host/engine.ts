/**
 * What the host keeps resident: one base model (for chat and training) and the adapters loaded onto it, by
 * name, with the active set and its scales. Each method is one protocol request; serve() calls them.
 */
import { attachAdapterWeights, removeAdapter } from '../engine/lora/inject';
import { loadAdapter } from '../engine/lora/peft-io';
import { HostError } from './errors';
import { generateStream } from './generate-stream';
import { exportMerged } from './merge-export';
import type { LoadedBase, ModelLoader } from './model-loader';
import type { HostResults, TrainJob, TrainProgressEvent, WireChatMessage, WireSampling } from './protocol';
import { estimateJob, runTrainJob } from './train-job';

interface Resident {
  readonly modelDir: string;
  readonly base: LoadedBase;
}

export class HostEngine {
  private resident: Resident | null = null;
  private readonly adapters = new Set<string>();
  private active: readonly { name: string; scale: number }[] = [];

  constructor(private readonly loader: ModelLoader) {}

  status(): Omit<HostResults['status'], 'busy'> {
    return {
      baseModelDir: this.resident?.modelDir ?? null,
      adapters: [...this.adapters],
      active: this.active,
      backend: this.loader.backendName(),
    };
  }

  /** Loads a base, replacing the resident one (and dropping its adapters) unless it is the same folder. */
  async loadBase(modelDir: string): Promise<HostResults['loadBase']> {
    if (this.resident?.modelDir !== modelDir) {
      this.disposeResident();
      this.resident = { modelDir, base: await this.loader.load(modelDir) };
    }
    const { base } = this.resident;
    return { modelDir, chatTemplate: base.chatTemplate, parameterCount: base.model.parameterCount() };
  }

  async modules(modelDir: string): Promise<HostResults['modules']> {
    await this.loadBase(modelDir);
    return [...this.requireBase().model.linears.values()].map(({ spec }) => ({
      path: spec.path, layer: spec.layer, name: spec.name, inFeatures: spec.inFeatures, outFeatures: spec.outFeatures, groups: spec.groups,
    }));
  }

  private requireBase(): LoadedBase {
    if (!this.resident) throw new HostError('NO_BASE_MODEL', 'no base model is loaded: load one (chat.load) first');
    return this.resident.base;
  }

  loadAdapter(name: string, dir: string): HostResults['loadAdapter'] {
    const base = this.requireBase();
    if (this.adapters.has(name)) this.unloadAdapter(name);
    const loaded = loadAdapter(dir);
    attachAdapterWeights(base.model, name, loaded.config, loaded.modules, { activate: false });
    this.adapters.add(name);
    this.applyActive();
    return { name, modules: loaded.modules.size };
  }

  unloadAdapter(name: string): HostResults['unloadAdapter'] {
    if (!this.resident || !this.adapters.has(name)) return { name, unloaded: false };
    removeAdapter(this.resident.base.model, name);
    this.adapters.delete(name);
    this.active = this.active.filter((a) => a.name !== name);
    return { name, unloaded: true };
  }

  setActive(adapters: readonly { name: string; scale: number }[]): HostResults['setActive'] {
    this.requireBase();
    for (const a of adapters) {
      if (!this.adapters.has(a.name)) throw new HostError('ADAPTER_NOT_LOADED', `adapter '${a.name}' is not loaded; load it before activating it`);
      if (!Number.isFinite(a.scale)) throw new HostError('ADAPTER_NOT_LOADED', `scale of '${a.name}' must be a finite number, got ${a.scale}`);
    }
    this.active = adapters.map((a) => ({ name: a.name, scale: a.scale }));
    this.applyActive();
    return { active: this.active };
  }

  private applyActive(): void {
    if (!this.resident) return;
    const set = this.active.map((a) => ({ name: a.name, weight: a.scale }));
    for (const layer of this.resident.base.model.linears.values()) layer.setActive(set);
  }

  generate(
    messages: readonly WireChatMessage[],
    sampling: WireSampling,
    signal: AbortSignal,
    onToken: (text: string, tokenId: number) => void,
  ): Promise<HostResults['generate']> {
    return generateStream(this.requireBase(), messages, sampling, signal, onToken);
  }

  async train(job: TrainJob, signal: AbortSignal, onProgress: (p: TrainProgressEvent) => void): Promise<HostResults['train']> {
    await this.loadBase(job.modelDir);
    const outcome = await runTrainJob(this.requireBase(), job, signal, onProgress);
    this.applyActive();
    return outcome;
  }

  async estimate(job: TrainJob): Promise<HostResults['estimate']> {
    await this.loadBase(job.modelDir);
    return estimateJob(this.requireBase(), job);
  }

  async exportMerged(modelDir: string, adapters: readonly { dir: string; scale: number }[], outputDir: string): Promise<HostResults['exportMerged']> {
    await this.loadBase(modelDir);
    const path = await exportMerged(this.requireBase(), modelDir, adapters, outputDir);
    this.applyActive();
    return { path };
  }

  private disposeResident(): void {
    this.resident?.base.model.dispose();
    this.resident = null;
    this.adapters.clear();
    this.active = [];
  }

  dispose(): void {
    this.disposeResident();
  }
}
