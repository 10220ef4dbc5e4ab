/**
 * The engine host's wire protocol: what the main side sends (HostRequest) and what the host answers
 * (HostMessage). Every request carries a `seq`; every answer names the seq it belongs to. Plain data only,
 * structured-clone safe, so the same messages travel over worker_threads and an Electron utilityProcess.
 * Errors cross as {name, code, message} and nothing else.
 */
import type { AdapterAnalysis } from '../engine/adapters/analyze';
import type { ReductionReport } from '../engine/adapters/compose';
import type { DatasetFormat } from '../engine/train/datasets/formats';
import type { TrainProgress } from '../engine/train/loop';
import type { PrecisionCost, PrecisionProgress } from '../engine/train/precision-cost';
import type { AssessedSettings, Effect, Proposal, ProposalInput } from '../engine/train/proposal';
import type { TrainSettingsInput } from '../engine/train/settings';
import type { GgufExport, TrainingEstimate } from '../../preload/contract';

/** A training run's step, evaluation and checkpoint events cross the wire as the loop reports them. */
export type { TrainProgress };

/** The error shape that crosses the process boundary (same as preload/contract's AppError). */
export interface WireError {
  readonly name: string;
  readonly code: string;
  readonly message: string;
}

export interface WireChatMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
}

export interface WireSampling {
  readonly maxNewTokens: number;
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly repetitionPenalty: number;
  readonly seed: number;
}

/** One adapter of a chat's mix: loaded under `name` from `dir` if the host does not hold it yet. */
export interface WireMixAdapter {
  readonly name: string;
  readonly dir: string;
  readonly scale: number;
}

/**
 * One fine-tuning job, fully resolved by the main side: every path is inside the data directory. The settings
 * are the contract's TrainingSettings as the user gave them; the engine fills the same defaults the CLI gets.
 */
export interface TrainJob {
  readonly modelDir: string;
  /** The library's content hash of the model folder (main/common/hash), for the training record. */
  readonly baseModelHash: string | null;
  /** The stored dataset: its normalized file (what trains), the file as imported, and the format chosen then. */
  readonly dataset: { readonly normalized: string | null; readonly original: string; readonly format: DatasetFormat };
  readonly settings: TrainSettingsInput;
  /** Start from these adapter weights (a parent version) instead of a fresh initialisation. */
  readonly parentAdapterDir?: string;
  /** Where the finished PEFT adapter is written (atomically). */
  readonly outputDir: string;
  readonly checkpointDir: string;
  /** A checkpoint-<step> folder to continue from. */
  readonly resumeFrom?: string;
}

export type HostRequest =
  | { readonly type: 'status'; readonly seq: number }
  /** The tfjs backend in use (initialised on first ask) and every backend's availability; answered at once. */
  | { readonly type: 'backend'; readonly seq: number }
  /** The machine the engine runs on (a remote engine's, through its tunnel); answered at once. */
  | { readonly type: 'machine'; readonly seq: number }
  | { readonly type: 'loadBase'; readonly seq: number; readonly modelDir: string }
  /** The base's LoRA-targetable linear modules (loads it as the resident base). */
  | { readonly type: 'modules'; readonly seq: number; readonly modelDir: string }
  | { readonly type: 'loadAdapter'; readonly seq: number; readonly name: string; readonly dir: string }
  | { readonly type: 'unloadAdapter'; readonly seq: number; readonly name: string }
  | {
      readonly type: 'setActive';
      readonly seq: number;
      readonly adapters: readonly { readonly name: string; readonly scale: number }[];
    }
  /**
   * One chat reply with its own base and adapter mix: the host loads what it lacks and activates exactly this mix
   * inside the request, so two replies with different mixes never see each other's.
   */
  | {
      readonly type: 'generate';
      readonly seq: number;
      readonly modelDir: string;
      readonly adapters: readonly WireMixAdapter[];
      readonly messages: readonly WireChatMessage[];
      readonly sampling: WireSampling;
    }
  | { readonly type: 'train'; readonly seq: number; readonly job: TrainJob }
  /** Checks `job` without training: the base loads, the targets match its modules, the dataset reads. */
  | { readonly type: 'checkJob'; readonly seq: number; readonly job: TrainJob }
  /** A couple of timed micro-steps of `job` on the resident base: memory, time and size before committing. */
  | { readonly type: 'estimate'; readonly seq: number; readonly job: TrainJob }
  /** The validation-loss difference of the base at Q8_0 and Q4_0 against 16 bits on `job`'s data, and the bytes each takes. */
  | { readonly type: 'measurePrecision'; readonly seq: number; readonly job: TrainJob }
  | {
      readonly type: 'exportMerged';
      readonly seq: number;
      readonly modelDir: string;
      readonly adapters: readonly { readonly dir: string; readonly scale: number }[];
      readonly outputDir: string;
    }
  /** An adapter as a GGUF LoRA, or adapters merged into a GGUF model, with an Ollama Modelfile, in `outputDir`. */
  | {
      readonly type: 'exportGguf';
      readonly seq: number;
      readonly modelDir: string;
      readonly kind: 'adapter' | 'merged';
      readonly adapters: readonly { readonly dir: string; readonly scale: number }[];
      readonly outputDir: string;
      readonly name: string;
      readonly ggufType: 'F16' | 'BF16' | 'Q8_0' | 'F32';
      /** The base's name in Ollama when it came from there (the Modelfile's FROM). */
      readonly ollamaBase?: string;
    }
  /** GGUF models in Ollama's and LM Studio's folders and in chosen folders, from their headers; answered at once. */
  | {
      readonly type: 'findGguf';
      readonly seq: number;
      readonly ollamaDirs: readonly string[];
      readonly lmstudioDirs: readonly string[];
      readonly folders: readonly string[];
    }
  /**
   * The run `job` would train, written as a folder for transformers + PEFT + accelerate (engine/handoff): job's
   * outputDir is the export folder (new or empty); no weight of the base is read.
   */
  | {
      readonly type: 'exportRun';
      readonly seq: number;
      readonly job: TrainJob;
      readonly hubId: string | null;
      readonly library: { readonly modelId: string; readonly datasetId: string; readonly parentVersionId?: string };
    }
  /**
   * Adapter tools on a PEFT folder (engine/adapters/folder-tools, the CLI's `adapter analyze|reduce`), answered
   * outside the queue: they read an adapter (and for the analysis the base's norms), never the resident model.
   */
  | { readonly type: 'analyzeAdapter'; readonly seq: number; readonly adapterDir: string; readonly modelDir: string | null }
  | { readonly type: 'reduceAdapter'; readonly seq: number; readonly adapterDir: string; readonly rank: number; readonly outputDir: string }
  /** The proposed learning rate, steps and rank for these sizes, and the effect of `settings` (the proposal's where null). */
  | { readonly type: 'proposeTraining'; readonly seq: number; readonly input: ProposalInput; readonly settings: AssessedSettings | null }
  /** Cooperative: the target request's AbortSignal fires; it stops between steps / tokens. */
  | { readonly type: 'cancel'; readonly seq: number; readonly target: number }
  | { readonly type: 'shutdown'; readonly seq: number };

export type HostRequestType = HostRequest['type'];

/** A GGUF model found on disk (engine/io/gguf-discovery's FoundGguf, as plain data). */
export interface WireFoundGguf {
  readonly origin: 'ollama' | 'lmstudio' | 'folder';
  readonly name: string;
  readonly path: string;
  readonly bytes: number;
  readonly digest: string | null;
  readonly architecture: string | null;
  readonly quantization: string | null;
  readonly parameterCount: number;
  readonly contextLength: number | null;
  readonly hasChatTemplate: boolean;
  readonly problem: string | null;
  readonly note: string | null;
}

/**
 * The engine's initBackend report: the active backend, what was asked for, what was detected, which kernels do
 * the matmuls, its self-test, and why it is not the first choice (one line) when a candidate failed.
 */
export interface HostBackendInfo {
  readonly name: 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
  readonly requested: 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
  readonly available: readonly { readonly name: 'tensorflow' | 'webgpu' | 'wasm' | 'cpu'; readonly usable: boolean; readonly detail: string }[];
  readonly matmulKernels: string;
  readonly selfTest: string;
  readonly fallback: string | null;
}

/** The machine an engine runs on; `remote` names the address and Lorasmith version of a remote engine. */
export interface HostMachine {
  readonly hostname: string;
  readonly platform: string;
  readonly arch: string;
  readonly cpus: number;
  readonly memoryBytes: number;
  readonly remote: { readonly address: string; readonly version: string } | null;
}

export interface HostStatus {
  readonly baseModelDir: string | null;
  readonly adapters: readonly string[];
  readonly active: readonly { readonly name: string; readonly scale: number }[];
  readonly backend: string;
  readonly busy: readonly HostRequestType[];
}

export interface TrainOutcome {
  readonly status: 'completed' | 'early-stopped' | 'cancelled';
  readonly steps: number;
  readonly totalSteps: number;
  readonly trainLoss: number | null;
  readonly valLoss: number | null;
  /** The adapter folder written, or null when cancelled before any weights were worth keeping. */
  readonly adapterDir: string | null;
  readonly lastCheckpoint: string | null;
  readonly seconds: number;
  /** Where a remote engine trained it (absent for this machine's engine): recorded beside the adapter as its lineage. */
  readonly trainedOn?: TrainedOn;
}

/** The machine and engine a run trained on, when not this one. */
export interface TrainedOn {
  /** One line for people: 'gpu-box (linux x64, 32 CPUs, 125 GiB) through the remote engine at 127.0.0.1:8765, Lorasmith 0.1.0'. */
  readonly description: string;
  readonly machine: Omit<HostMachine, 'remote'>;
  readonly engine: { readonly name: 'lorasmith'; readonly version: string };
  readonly address: string;
}

/** What each request resolves to. */
export interface HostResults {
  status: HostStatus;
  backend: HostBackendInfo;
  machine: HostMachine;
  loadBase: { readonly modelDir: string; readonly chatTemplate: string | null; readonly parameterCount: number };
  modules: readonly {
    readonly path: string;
    readonly layer: number | null;
    readonly name: string;
    readonly inFeatures: number;
    readonly outFeatures: number;
    readonly groups: readonly ('attention' | 'mlp')[];
  }[];
  loadAdapter: { readonly name: string; readonly modules: number };
  unloadAdapter: { readonly name: string; readonly unloaded: boolean };
  setActive: { readonly active: readonly { readonly name: string; readonly scale: number }[] };
  generate: { readonly text: string; readonly tokens: number; readonly tokensPerSecond: number; readonly stopped: boolean };
  train: TrainOutcome;
  checkJob: { readonly targetModules: number };
  measurePrecision: PrecisionCost;
  /** Passed to the renderer as it is: the contract's shape, with how the base is held always given. */
  estimate: Required<TrainingEstimate>;
  exportMerged: { readonly path: string };
  /** Passed to the renderer as it is: the contract's shape. */
  exportGguf: GgufExport;
  findGguf: readonly WireFoundGguf[];
  exportRun: { readonly path: string; readonly trainRows: number; readonly valRows: number; readonly totalSteps: number };
  analyzeAdapter: AdapterAnalysis;
  reduceAdapter: { readonly path: string; readonly report: ReductionReport };
  proposeTraining: { readonly proposal: Proposal; readonly effect: Effect };
  cancel: { readonly cancelled: boolean };
  shutdown: { readonly ok: true };
}

/** Streamed while a request runs. */
export type HostEvent =
  | { readonly kind: 'token'; readonly text: string; readonly tokenId: number }
  | { readonly kind: 'progress'; readonly progress: TrainProgress }
  | { readonly kind: 'precision'; readonly progress: PrecisionProgress };

export type HostMessage =
  | { readonly type: 'ready'; readonly pid: number }
  | { readonly type: 'event'; readonly seq: number; readonly event: HostEvent }
  | { readonly type: 'result'; readonly seq: number; readonly result: HostResults[HostRequestType] }
  | { readonly type: 'error'; readonly seq: number; readonly error: WireError };

/** A request without its seq, as callers of the client write it. */
export type HostCall<T extends HostRequestType = HostRequestType> = T extends HostRequestType
  ? Omit<Extract<HostRequest, { type: T }>, 'seq'>
  : never;

/** One end of a message channel: a worker's parentPort, a utilityProcess's parentPort, an in-memory pair. */
export interface HostTransport {
  send(message: HostMessage): void;
  onRequest(listener: (request: HostRequest) => void): void;
  /**
   * Delivers requests that are waiting, synchronously. The engine's loops run many steps without yielding to
   * the event loop; serve() polls between steps so a cancel arrives while a run is busy. Optional.
   */
  poll?(): void;
}

export function isHostRequest(value: unknown): value is HostRequest {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.type === 'string' && typeof v.seq === 'number';
}
