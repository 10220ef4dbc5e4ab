/** Domain types shared by main and renderer. Plain data only: everything here crosses IPC as JSON. */

export type BackendName = 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';

export interface BackendInfo {
  /** The backend the engine runs on. */
  readonly name: BackendName;
  /** The setting it started with. */
  readonly requested: BackendName | 'auto';
  /** What was detected on this machine, in order of preference, with why each one is or is not usable. */
  readonly available: readonly { readonly name: BackendName; readonly usable: boolean; readonly detail: string }[];
  /** Which kernels serve matrix products, in words. */
  readonly matmulKernels: string;
  /** The short self-test the backend passed before serving: 'passed in 12 ms'. */
  readonly selfTest: string;
  /** One line when the backend in use is not the first choice: which candidate failed and why. */
  readonly fallback: string | null;
}

export interface AppInfo {
  readonly version: string;
  readonly dataDir: string;
  /** 'electron' or 'browser' (served by `lorasmith serve`). */
  readonly mode: 'electron' | 'browser';
  readonly backend: BackendInfo | null;
  /** The remote engine the app trains and chats on (Settings' remoteEngine); null or absent: this machine's. */
  readonly remoteEngine?: RemoteEngineInfo | null;
}

export interface RemoteEngineInfo {
  /** Where the tunnel ends here: 127.0.0.1:<port>. */
  readonly address: string;
  /** Once it answers: 'gpu-box (linux x64, 32 CPUs, 125 GiB), Lorasmith 0.1.0'. */
  readonly machine: string | null;
  /** Why it cannot be used now (not reachable, refused the token, another version), else null. */
  readonly problem: string | null;
}

export interface LinearModuleInfo {
  /** Module path as in the checkpoint, without '.weight': 'model.layers.0.self_attn.q_proj'. */
  readonly path: string;
  readonly layer: number | null;
  /** Short name used in target_modules: 'q_proj', 'c_attn'. */
  readonly name: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly groups: readonly ('attention' | 'mlp')[];
}

export interface BaseModel {
  readonly id: string;
  readonly name: string;
  readonly architecture: string;
  readonly source: { readonly kind: 'folder' | 'hub' | 'starter'; readonly ref: string; readonly revision?: string };
  readonly path: string;
  readonly parameterCount: number;
  readonly contentHash: string;
  readonly addedAt: string;
  readonly status: 'ok' | 'missing';
  /**
   * Set for a model that is one GGUF file, referenced where its app keeps it: which app, its name there
   * ('qwen2.5:0.5b' in Ollama), its quantization (Q4_K_M, F16...) and size.
   */
  readonly gguf?: { readonly origin: 'ollama' | 'lmstudio' | 'file'; readonly name: string; readonly quantization: string | null; readonly fileBytes: number };
}

/** A GGUF model found on this computer (in Ollama, LM Studio or a folder searched), not yet necessarily in the library. */
export interface FoundGgufModel {
  readonly origin: 'ollama' | 'lmstudio' | 'folder';
  /** Its name there: 'qwen2.5:0.5b' in Ollama, 'publisher/repo/file.gguf' in LM Studio, the path below a folder. */
  readonly name: string;
  readonly path: string;
  readonly bytes: number;
  readonly architecture: string | null;
  readonly quantization: string | null;
  readonly parameterCount: number;
  readonly contextLength: number | null;
  readonly hasChatTemplate: boolean;
  /** Why it cannot be a base model here (unsupported architecture or quantization, a damaged file...), or null. */
  readonly problem: string | null;
  /** What adding it leaves out (an Ollama model's own adapter or vision projector). */
  readonly note: string | null;
  /** The library model it already is, or null. */
  readonly modelId: string | null;
}

/** What a GGUF export wrote and how to run it. */
export interface GgufExport {
  readonly path: string;
  readonly files: readonly string[];
  readonly modelfile: string;
  /** `ollama create … && ollama run …`, `llama-cli …` */
  readonly commands: readonly string[];
  readonly notes: readonly string[];
}

/** A model download from the Hugging Face hub, as started by models.download. */
export interface HubDownload {
  readonly id: string;
  readonly repoId: string;
  /** The commit the files come from (the hub resolves a branch or tag to it). */
  readonly revision: string;
  /** The files a model needs, of those the repo holds. */
  readonly files: readonly string[];
  /** 0 where the hub did not say. */
  readonly totalBytes: number;
}

export type DatasetFormat = 'prompt-completion' | 'alpaca' | 'messages' | 'sharegpt' | 'text';

export interface Dataset {
  readonly id: string;
  readonly name: string;
  readonly originalFile: string;
  readonly normalizedFile: string;
  readonly format: DatasetFormat;
  readonly recordCount: number;
  readonly skippedCount: number;
  readonly hash: string;
  readonly addedAt: string;
  readonly status: 'ok' | 'missing';
}

export interface DatasetIssue {
  readonly line: number;
  readonly field?: string;
  readonly message: string;
}

export interface LoraSettings {
  readonly targetModules: readonly string[];
  readonly rank: number;
  readonly alpha: number;
  readonly dropout: number;
  readonly useRslora: boolean;
}

/**
 * How the frozen-weight store keeps the base model's weights while a run trains: 'stored' (the file's own dtype),
 * 'bf16' (16 bits; an F32 file halves), 'q8_0' (8-bit blocks of 32 with an F16 scale, GGUF's Q8_0: about half
 * of 16 bits; the outputs change slightly) or 'q4_0' (GGUF's 4-bit Q4_0 blocks: about a quarter of 16 bits; they
 * change more). train.measurePrecision says how much on the run's own data.
 */
export type BasePrecision = 'stored' | 'bf16' | 'q8_0' | 'q4_0';

export interface TrainingSettings {
  readonly lora: LoraSettings;
  readonly epochs?: number;
  readonly maxSteps?: number;
  readonly learningRate: number;
  readonly batchSize: number;
  readonly gradAccum: number;
  readonly maxSeqLen: number;
  readonly valSplit: number;
  readonly seed: number;
  readonly scheduler: 'constant' | 'linear' | 'cosine';
  readonly warmupSteps: number;
  readonly weightDecay: number;
  readonly maxGradNorm: number;
  readonly evalEvery: number;
  readonly checkpointEvery: number;
  readonly earlyStoppingPatience?: number;
  /**
   * The weights the run ends with: 'best' (the default where absent) those of the lowest validation loss, what
   * generalizes to new prompts; 'last' the last step's, what has learned the training rows themselves.
   */
  readonly keepWeights?: 'best' | 'last';
  readonly trainOnPrompt: boolean;
  /**
   * Activation recomputation: keep only each decoder block's input and run the block again in the backward pass
   * (less memory, about a third more time). 'auto' (the default) turns it on when the run would not fit otherwise.
   */
  readonly recompute?: 'auto' | 'on' | 'off';
  /** Where the engine keeps the base in its frozen-weight store; 'stored' where absent. Recorded with the adapter. */
  readonly basePrecision?: BasePrecision;
}

export interface TrainingEstimate {
  readonly trainableParams: number;
  readonly totalParams: number;
  readonly adapterBytes: number;
  /** Peak resident memory of the training process, computed from the shapes. */
  readonly peakMemoryBytes: number;
  /** Memory free for training beyond the loaded base model when the estimate was made. */
  readonly availableMemoryBytes: number;
  /** Whether the run will recompute activations (chosen, or turned on by 'auto' because memory is tight). */
  readonly recompute: boolean;
  readonly secondsPerEpoch: number;
  readonly stepsPerEpoch: number;
  /**
   * How the base's linear weights are held: 'tensor' (float32 tensors: the backend has no frozen-weight store, and
   * the base precision changes nothing) or the store's format ('BF16', 'F16', 'F32', 'Q8_0', 'Q4_0'), with its bytes
   * and what BF16, Q8_0 and Q4_0 would take; `stored` is the format the 'stored' precision keeps (the checkpoint's).
   */
  readonly base?: {
    readonly held: string; readonly bytes: number; readonly bf16Bytes: number; readonly q8_0Bytes: number; readonly q4_0Bytes: number; readonly stored: string;
  };
}

/** One precision's measured cost (train.measurePrecision). */
export interface PrecisionMeasure {
  readonly precision: BasePrecision;
  /** How the store held the weights at this precision: 'BF16', 'F16', 'F32', 'Q8_0' or 'Q4_0'. */
  readonly format: string;
  /** Mean cross-entropy over the scored target tokens. */
  readonly loss: number;
  /** Bytes the frozen-weight store took for the base at this precision. */
  readonly baseBytes: number;
  /** loss − the 16-bit reference's (positive: worse). */
  readonly lossDelta: number;
  /** The reference's bytes − these (positive: smaller). */
  readonly bytesSaved: number;
}

/** The base precision's cost on a dataset's own validation rows: the 16-bit reference and each smaller precision. */
export interface PrecisionCost {
  readonly reference: PrecisionMeasure;
  readonly others: readonly PrecisionMeasure[];
  /** Which rows were scored ('training' where the dataset holds none out), how many, and their target tokens. */
  readonly rows: 'validation' | 'training';
  readonly examples: number;
  readonly tokens: number;
}

/** How far a train.measurePrecision request is: loading a copy of the base, or scoring it batch by batch. */
export interface PrecisionProgress {
  readonly requestId: string;
  readonly precision: BasePrecision;
  readonly stage: 'loading' | 'scoring';
  /** This copy (1-based, the reference first) of `copies`. */
  readonly copy: number;
  readonly copies: number;
  readonly batch: number;
  readonly batches: number;
}

export type RunStatus = 'queued' | 'running' | 'done' | 'failed' | 'cancelled' | 'interrupted';

export interface TrainingRun {
  readonly id: string;
  /** The adapter this run trains a version of, and its name as the library shows it. */
  readonly adapterId: string;
  readonly adapterName: string;
  readonly adapterVersionId: string | null;
  readonly baseModelId: string;
  readonly datasetId: string;
  readonly status: RunStatus;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  readonly error: string | null;
  readonly lastCheckpoint: string | null;
  /** The step of the last checkpoint: a resume continues after it (null: none was written, a resume starts over). */
  readonly checkpointStep: number | null;
  readonly settings: TrainingSettings;
}

export interface TrainingProgress {
  readonly runId: string;
  readonly step: number;
  readonly totalSteps: number;
  readonly epoch: number;
  readonly loss: number;
  readonly valLoss?: number;
  readonly lr: number;
  readonly gradNorm: number;
  readonly tokensPerSecond: number;
  readonly etaSeconds: number;
  readonly memoryBytes: number;
  readonly sample?: string;
}

export interface MetricPoint {
  readonly step: number;
  readonly loss?: number;
  readonly valLoss?: number;
  readonly lr?: number;
  readonly tokensPerSecond?: number;
}

export interface Adapter {
  readonly id: string;
  readonly name: string;
  readonly baseModelId: string;
  readonly createdAt: string;
}

export interface AdapterVersion {
  readonly id: string;
  readonly adapterId: string;
  readonly version: number;
  readonly parentVersionId: string | null;
  readonly datasetId: string | null;
  readonly settings: TrainingSettings | null;
  readonly metrics: { readonly trainLoss?: number; readonly valLoss?: number; readonly steps?: number };
  readonly path: string;
  readonly status: 'ok' | 'missing' | 'training' | 'failed';
  readonly createdAt: string;
  /** Where a run exported for transformers + PEFT trained it ('host: 2 × GPU name, ...'); absent or null: here. */
  readonly trainedOn?: string | null;
  /** 'imported': from a PEFT folder, or made from another version (a rank reduction); absent on older answers. */
  readonly origin?: 'trained' | 'imported';
  /** How an imported version came to be, in words ('rank 8 → 2 by truncated SVD of v1, relative error 0.12'). */
  readonly note?: string | null;
}

/**
 * A PEFT adapter folder checked against a base before anything is copied: the verdict in one line first
 * ("made for gpt2 with hidden 768; this base has hidden 32: it cannot be used with this base"), then what fits
 * and what does not, each line one module kind over its layers.
 */
export interface AdapterPreflight {
  readonly ok: boolean;
  readonly verdict: string;
  /** adapter_config.json's base_model_name_or_path, the hidden size its modules read, its layers. */
  readonly madeFor: { readonly nameOrPath: string | null; readonly hiddenSize: number | null; readonly layers: number | null };
  readonly base: { readonly modelType: string; readonly hiddenSize: number | null; readonly layers: number | null } | null;
  readonly moduleCount: number;
  readonly fits: readonly string[];
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
}

/** One module's update ΔW = s·B·A through its singular values (`lorasmith adapter analyze`). */
export interface ModuleSpectrum {
  readonly path: string;
  readonly rank: number;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Descending, one per rank. */
  readonly singularValues: readonly number[];
  /** exp(entropy of σ / Σσ): between 1 and rank. */
  readonly effectiveRank: number;
  readonly numericalRank: number;
  /** The smallest rank keeping 99% of ‖ΔW‖². */
  readonly rankFor99: number;
  readonly deltaNorm: number;
  /** ‖ΔW‖ / ‖W0‖, or null where the base weight was not found. */
  readonly relativeToBase: number | null;
}

export interface AdapterSpectrum {
  readonly modules: readonly ModuleSpectrum[];
  /** Mean over modules of rankFor99 / rank. */
  readonly meanRankFor99Fraction: number;
}

/** What a rank reduction cost: ‖ΔW − ΔW_r‖ / ‖ΔW‖ per module and over all. */
export interface RankReduction {
  readonly rank: number;
  readonly overallRelativeError: number;
  readonly modules: readonly { readonly path: string; readonly fromRank: number; readonly toRank: number; readonly relativeError: number }[];
}

/**
 * The wizard's proposal for a model and dataset (learning rate, steps, rank from their sizes; `rule` says how in
 * one sentence) and what the settings given would do: passes over the data, and warnings when they are too weak
 * to move the loss or strong enough to diverge.
 */
export interface TrainingProposal {
  readonly learningRate: number;
  readonly maxSteps: number;
  /** The target preset proposed (the wizard's presets: 'qv', 'attention', 'mlp', 'all-linear'). */
  readonly targets: 'qv' | 'attention' | 'mlp' | 'all-linear';
  readonly rank: number;
  readonly alpha: number;
  readonly rule: string;
  readonly effect: TrainingEffect;
}

export interface TrainingEffect {
  readonly trainRecords: number;
  readonly steps: number;
  /** Records seen per record: steps × batch × accumulation / training records. */
  readonly passes: number;
  /** learning rate × steps × LoRA scale, against the proposal's (1 = as strong as proposed). */
  readonly strength: number;
  /** In words: 'about 7 passes over 54 training records (100 steps of 4)'. */
  readonly summary: string;
  readonly warnings: readonly string[];
}

export interface SamplingSettings {
  readonly maxNewTokens: number;
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly repetitionPenalty: number;
  readonly seed: number;
}

/** One chat set-up: the base alone (no adapters), one adapter, or a weighted mix. */
export interface AdapterMix {
  readonly adapters: readonly { readonly versionId: string; readonly scale: number }[];
}

export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
}

/**
 * A chat comparison the user saved: the conversation's messages (system, then the user's prompts) and every answer
 * with the label of the set-up that produced it, as it was when the prompt was sent.
 */
export interface SavedComparison {
  readonly id: string;
  readonly title: string;
  readonly baseModelId: string | null;
  readonly messages: readonly ChatMessage[];
  readonly sampling: SamplingSettings;
  readonly outputs: readonly {
    /** Which user message of `messages` it answers (0: the first). */
    readonly turn: number;
    readonly label: string;
    readonly mix: AdapterMix;
    readonly text: string;
    readonly tokens: number;
    readonly tokensPerSecond: number | null;
  }[];
  readonly createdAt: string;
}
