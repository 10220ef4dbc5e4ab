/**
 * What the host keeps resident: one base model (for chat and training) and the adapters loaded onto it, by
 * name, with the active set and its scales. Each method is one protocol request; serve() calls them.
 */
import { exportGgufFromResident } from '../engine/adapters/gguf-bundle';
import { exportWithAdaptersMerged } from '../engine/adapters/export-with-adapters';
import { analyzeAdapterDir, reduceAdapterDir } from '../engine/adapters/folder-tools';
import { assessTraining, proposeTraining } from '../engine/train/proposal';
import { activeFrozenStore, type BasePrecision } from '../engine/backend/frozen';
import { measurePrecisionCost, type PrecisionProgress } from '../engine/train/precision-cost';
import { dominantFloatDtype } from '../engine/train/memory';
import { inspectModel } from '../engine/models/inspect';
import { findGgufFiles, findOllamaModels, type FoundGguf } from '../engine/io/gguf-discovery';
import { ResidentAdapters } from '../engine/adapters/resident';
import { targetedModules } from '../engine/lora/inject';
import { loadAdapter } from '../engine/lora/peft-io';
import { readDatasetHead, storedDatasetFile } from '../engine/train/datasets/normalize';
import type { CausalLM } from '../engine/models/types';
import { generate } from '../engine/generate/generate';
import { encodePrompt } from '../engine/io/prompt';
import { HostError } from './errors';
import type { LoadedBase, HostModelLoader } from './model-loader';
import { runTraining, type TrainRunOptions } from '../engine/train/run';
import { resolveTrainSettings } from '../engine/train/settings';
import type { HostRequest, HostResults, TrainJob, TrainProgress, WireChatMessage, WireMixAdapter, WireSampling } from './protocol';
import { hashFolder } from '../common/hash';
import { exportRun } from '../engine/handoff/export-run';

type HostRequestOf<T extends HostRequest['type']> = Extract<HostRequest, { type: T }>;

interface Resident {
  readonly modelDir: string;
  /** How the frozen-weight store holds it (what the load asked for, else the store's default). */
  readonly precision: BasePrecision;
  readonly base: LoadedBase;
  /** The adapters on this base, their active set and scales (engine/adapters: switching never copies W0). */
  readonly adapters: ResidentAdapters<CausalLM>;
}

export class HostEngine {
  private resident: Resident | null = null;
  /** The base folder a run is training on: chat is served between its steps, on that base only. */
  private trainingOn: string | null = null;

  constructor(private readonly loader: HostModelLoader) {}

  status(): Omit<HostResults['status'], 'busy'> {
    return {
      baseModelDir: this.resident?.modelDir ?? null,
      adapters: this.resident?.adapters.names ?? [],
      active: this.active(),
      backend: this.loader.backendName(),
    };
  }

  /** The backend report; initialising the backend here if no model has been loaded yet. */
  backend(): Promise<HostResults['backend']> {
    return this.loader.backend();
  }

  /**
   * Loads a base, replacing the resident one (and dropping its adapters) unless it is the same folder held at
   * `precision` (any precision will do where none is asked for: the chat's).
   */
  async loadBase(modelDir: string, precision?: BasePrecision): Promise<HostResults['loadBase']> {
    if (this.trainingOn !== null && this.trainingOn !== modelDir) {
      throw new HostError('BUSY', `a training run holds the engine with the base model ${this.trainingOn}; chat with that base while it trains, or with this one once the run finishes or is paused`);
    }
    if (this.resident?.modelDir !== modelDir || (precision !== undefined && this.resident?.precision !== precision)) {
      this.disposeResident();
      const base = await this.loader.load(modelDir, precision ? { precision } : {});
      const held = precision ?? activeFrozenStore()?.precision ?? 'stored';
      this.resident = { modelDir, precision: held, base, adapters: new ResidentAdapters(base.model) };
    }
    const { base } = this.resident;
    return { modelDir, chatTemplate: base.tokenizer.chatTemplate, parameterCount: base.model.parameterCount() };
  }

  async modules(modelDir: string): Promise<HostResults['modules']> {
    await this.loadBase(modelDir);
    return [...this.requireBase().model.linears.values()].map(({ spec }) => ({
      path: spec.path, layer: spec.layer, name: spec.name, inFeatures: spec.inFeatures, outFeatures: spec.outFeatures, groups: spec.groups,
    }));
  }

  private requireResident(): Resident {
    if (!this.resident) throw new HostError('NO_BASE_MODEL', 'no base model is loaded: load one (chat.load) first');
    return this.resident;
  }

  private requireBase(): LoadedBase {
    return this.requireResident().base;
  }

  private active(): { name: string; scale: number }[] {
    return (this.resident?.adapters.active ?? []).map((a) => ({ name: a.name, scale: a.weight }));
  }

  /** Checks the PEFT folder against the base (a report of every mismatch if it does not fit), then loads it. */
  loadAdapter(name: string, dir: string): HostResults['loadAdapter'] {
    const { adapters } = this.requireResident();
    const stillActive = adapters.active.filter((a) => a.name !== name);
    if (adapters.names.includes(name)) adapters.unload(name);
    const info = adapters.loadFromDir(name, dir);
    adapters.use(stillActive);
    return { name, modules: info.modules.length };
  }

  unloadAdapter(name: string): HostResults['unloadAdapter'] {
    const adapters = this.resident?.adapters;
    if (!adapters || !adapters.names.includes(name)) return { name, unloaded: false };
    adapters.unload(name);
    return { name, unloaded: true };
  }

  setActive(adapters: readonly { name: string; scale: number }[]): HostResults['setActive'] {
    const resident = this.requireResident();
    for (const a of adapters) {
      if (!resident.adapters.names.includes(a.name)) {
        throw new HostError('ADAPTER_NOT_LOADED', `adapter '${a.name}' is not loaded; load it before activating it`);
      }
    }
    resident.adapters.use(adapters.map((a) => ({ name: a.name, weight: a.scale })));
    return { active: this.active() };
  }

  /**
   * The chat's reply with its own base and adapter mix: loads the base and any adapter of the mix not held yet,
   * activates exactly the mix, then encodes and generates as `lorasmith generate --chat` does, streamed.
   */
  async generate(
    modelDir: string,
    mix: readonly WireMixAdapter[],
    messages: readonly WireChatMessage[],
    sampling: WireSampling,
    signal: AbortSignal,
    onToken: (text: string, tokenId: number) => void,
  ): Promise<HostResults['generate']> {
    await this.loadBase(modelDir);
    const { adapters } = this.requireResident();
    for (const a of mix) if (!adapters.names.includes(a.name)) this.loadAdapter(a.name, a.dir);
    this.setActive(mix);
    const { model, tokenizer } = this.requireBase();
    // Between two training steps this replaces the training adapter on the layers by the chat's mix; train() puts
    // the run's own set back before its next step.
    const result = await generate(model, encodePrompt(tokenizer, messages), { ...sampling, tokenizer }, (e) => onToken(e.text, e.id), signal);
    return { text: result.text ?? '', tokens: result.ids.length, tokensPerSecond: result.tokensPerSecond, stopped: result.stopReason === 'aborted' };
  }

  /**
   * The engine's one training run (`lorasmith train` runs it too) on the resident base; the chat's adapters stay.
   * `betweenSteps` runs after each step (serve() answers the chat's requests there): whatever it changes on the
   * layers' active sets is put back before the next step, and the chat's set is back on the layers at the end.
   */
  async train(
    job: TrainJob, signal: AbortSignal, onProgress: (p: TrainProgress) => void, betweenSteps?: () => Promise<void>,
  ): Promise<HostResults['train']> {
    const options = await this.runOptions(job);
    const layers = [...options.model.linears.values()];
    const between = betweenSteps && (async () => {
      const during = layers.map((layer) => [layer, layer.active] as const);
      try {
        await betweenSteps();
      } finally {
        for (const [layer, active] of during) layer.setActive(active);
      }
    });
    this.trainingOn = job.modelDir;
    let result: Awaited<ReturnType<typeof runTraining>>;
    try {
      result = await runTraining({ ...options, signal, onProgress, ...(between ? { betweenSteps: between } : {}) });
    } finally {
      this.trainingOn = null;
      this.resident?.adapters.use(this.resident.adapters.active);
    }
    const loop = result.loop;
    return {
      status: result.status === 'dry-run' ? 'cancelled' : result.status,
      steps: loop?.steps ?? 0,
      totalSteps: loop?.totalSteps ?? result.estimate.totalSteps,
      trainLoss: loop?.trainLoss ?? null,
      valLoss: loop?.valLoss ?? null,
      adapterDir: result.outDir,
      lastCheckpoint: loop?.lastCheckpoint ?? null,
      seconds: loop?.seconds ?? 0,
    };
  }

  /** What a train request would refuse, found before anything is recorded: nothing is trained or kept. */
  async checkJob(job: TrainJob): Promise<HostResults['checkJob']> {
    const settings = resolveTrainSettings(job.settings); // a bad value refused by name
    await this.loadBase(job.modelDir, settings.basePrecision);
    readDatasetHead(storedDatasetFile(job.dataset), 1, { format: job.dataset.format }); // unreadable or empty: refused here
    if (job.parentAdapterDir) return { targetModules: loadAdapter(job.parentAdapterDir).modules.size };
    const { model } = this.requireBase();
    return { targetModules: settings.lora ? targetedModules(model, settings.lora).length : model.linears.size };
  }

  /** The run's estimate alone (a dry run: a few timed micro-steps, nothing written). */
  async estimate(job: TrainJob): Promise<HostResults['estimate']> {
    const { estimate, settings } = await runTraining({ ...(await this.runOptions(job)), dryRun: true });
    // What 'stored' means for this base: how it is held now when loaded as stored, else the checkpoint's own dtype.
    const stored = settings.basePrecision === 'stored' ? estimate.base.held : dominantFloatDtype(inspectModel(job.modelDir).dtypes);
    return {
      trainableParams: estimate.trainableParameters, totalParams: this.requireBase().model.parameterCount(), adapterBytes: estimate.adapterBytes,
      peakMemoryBytes: estimate.peakMemoryBytes, availableMemoryBytes: estimate.availableMemoryBytes, recompute: estimate.recompute,
      secondsPerEpoch: estimate.secondsPerEpoch, stepsPerEpoch: estimate.stepsPerEpoch, base: { ...estimate.base, stored },
    };
  }

  /**
   * What holding the base at 8 or 4 bits costs on the job's own validation rows: the base loaded into the store at
   * 16 bits, Q8_0 and Q4_0 in turn beside the resident one (engine/train/precision-cost), each copy freed once scored.
   */
  async measurePrecision(job: TrainJob, signal: AbortSignal, onProgress: (p: PrecisionProgress) => void): Promise<HostResults['measurePrecision']> {
    await this.loadBase(job.modelDir); // its tokenizer, and the backend started
    return measurePrecisionCost({
      modelDir: job.modelDir, tokenizer: this.requireBase().tokenizer, data: { path: storedDatasetFile(job.dataset), format: job.dataset.format },
      settings: job.settings, signal, onProgress,
    });
  }

  private async runOptions(job: TrainJob): Promise<TrainRunOptions> {
    await this.loadBase(job.modelDir, resolveTrainSettings(job.settings).basePrecision);
    const { model, tokenizer } = this.requireBase();
    return {
      model, tokenizer, backend: this.loader.backendName(), backendFallback: (await this.loader.backend()).fallback,
      base: { nameOrPath: job.modelDir, contentHash: job.baseModelHash },
      data: { path: storedDatasetFile(job.dataset), format: job.dataset.format },
      settings: job.settings,
      ...(job.parentAdapterDir ? { parentAdapterDir: job.parentAdapterDir } : {}),
      outDir: job.outputDir, checkpointDir: job.checkpointDir,
      ...(job.resumeFrom ? { resumeFrom: job.resumeFrom } : {}),
    };
  }

  async exportMerged(modelDir: string, adapters: readonly { dir: string; scale: number }[], outputDir: string): Promise<HostResults['exportMerged']> {
    await this.loadBase(modelDir);
    // Written in the base checkpoint's own names, orientation, dtype and sharding; the chat's set is left as it was.
    const result = await exportWithAdaptersMerged(this.requireResident().adapters, modelDir, adapters, outputDir);
    return { path: result.outDir };
  }

  async exportGguf(request: Extract<HostRequest, { type: 'exportGguf' }>, signal: AbortSignal): Promise<HostResults['exportGguf']> {
    await this.loadBase(request.modelDir);
    const bundle = await exportGgufFromResident(this.requireResident().adapters, request.modelDir, {
      kind: request.kind, adapters: request.adapters, outDir: request.outputDir, name: request.name, type: request.ggufType,
      ...(request.ollamaBase ? { ollamaBase: request.ollamaBase } : {}), signal,
    });
    return { path: bundle.outDir, files: bundle.files, modelfile: bundle.modelfile, commands: bundle.commands, notes: bundle.notes };
  }

  /** Reads only headers (no weights, nothing resident): answered outside the queue. */
  findGguf(request: Extract<HostRequest, { type: 'findGguf' }>): HostResults['findGguf'] {
    const found: FoundGguf[] = [
      ...request.ollamaDirs.flatMap((dir) => findOllamaModels(dir)),
      ...request.lmstudioDirs.flatMap((dir) => findGgufFiles(dir, 'lmstudio')),
      ...request.folders.flatMap((dir) => findGgufFiles(dir, 'folder')),
    ];
    return found.map((f) => ({
      origin: f.origin, name: f.name, path: f.path, bytes: f.bytes, digest: f.digest,
      architecture: f.summary?.architecture ?? null, quantization: f.summary?.quantization ?? null,
      parameterCount: f.summary?.parameterCount ?? 0, contextLength: f.summary?.contextLength ?? null,
      hasChatTemplate: f.summary?.hasChatTemplate ?? false, problem: f.problem, note: f.note,
    }));
  }

  /** Reads the adapter (and the base's norms), not the resident model: answered outside the queue. */
  analyzeAdapter(request: HostRequestOf<'analyzeAdapter'>): HostResults['analyzeAdapter'] {
    return analyzeAdapterDir(request.adapterDir, request.modelDir);
  }

  reduceAdapter(request: HostRequestOf<'reduceAdapter'>): HostResults['reduceAdapter'] {
    return { path: request.outputDir, report: reduceAdapterDir(request.adapterDir, request.rank, request.outputDir) };
  }

  proposeTraining(request: HostRequestOf<'proposeTraining'>): HostResults['proposeTraining'] {
    const proposal = proposeTraining(request.input);
    const settings = request.settings ?? {
      learningRate: proposal.learningRate, maxSteps: proposal.maxSteps, batchSize: 4, gradAccum: 1, valSplit: 'auto' as const,
      lora: { rank: proposal.rank, alpha: proposal.alpha, useRslora: false },
    };
    return { proposal, effect: assessTraining(request.input, settings) };
  }

  /** The run `job` describes, exported for transformers + PEFT + accelerate (the base is not loaded). */
  async exportRun(job: TrainJob, hubId: string | null, library: HostRequestOf<'exportRun'>['library']): Promise<HostResults['exportRun']> {
    const result = await exportRun({
      modelDir: job.modelDir, base: { hubId, contentHash: job.baseModelHash ?? hashFolder(job.modelDir) },
      data: { path: storedDatasetFile(job.dataset), format: job.dataset.format }, settings: job.settings,
      ...(job.parentAdapterDir ? { parentAdapterDir: job.parentAdapterDir } : {}), outDir: job.outputDir, library,
    });
    return { path: result.outDir, trainRows: result.trainRows, valRows: result.valRows, totalSteps: result.totalSteps };
  }

  private disposeResident(): void {
    this.resident?.base.model.dispose();
    this.resident = null;
  }

  dispose(): void {
    this.disposeResident();
  }
}
