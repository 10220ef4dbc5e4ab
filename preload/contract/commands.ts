import type {
  Adapter, AdapterMix, AdapterPreflight, AdapterSpectrum, AdapterVersion, AppInfo, BackendName, BaseModel, ChatMessage, Dataset, DatasetFormat,
  DatasetIssue, FoundGgufModel, GgufExport, HubDownload, LinearModuleInfo, MetricPoint, PrecisionCost, RankReduction, SamplingSettings, SavedComparison, TrainingEstimate, TrainingProposal, TrainingRun, TrainingSettings,
} from './domain';

/**
 * Every command the renderer can send: name -> { args, result }. Main registers one handler per name
 * (COMMAND_NAMES makes a missing one a compile error) and validates args before acting.
 */
export interface Commands {
  'app.info': { args: Record<string, never>; result: AppInfo };
  /** The starter resources that ship with the app, and the guided first fine-tune while none has run yet. */
  'app.firstRun': { args: Record<string, never>; result: FirstRun };
  'settings.get': { args: Record<string, never>; result: Settings };
  'settings.set': { args: Partial<Settings>; result: Settings };

  'models.list': { args: Record<string, never>; result: readonly BaseModel[] };
  'models.import': { args: { path: string; mode: 'copy' | 'reference'; name?: string }; result: BaseModel };
  'models.modules': { args: { id: string }; result: readonly LinearModuleInfo[] };
  'models.delete': { args: { id: string }; result: { deleted: true } };
  /**
   * Starts downloading a model from the Hugging Face hub (only the files a model needs) and answers once the
   * file list is known; `download.progress` follows, then `download.finished` with the registered model.
   * Asking again for the same repo and revision resumes what a cancel or failure left.
   */
  'models.download': { args: { repoId: string; revision?: string }; result: HubDownload };
  'models.cancelDownload': { args: { id: string }; result: { cancelled: boolean } };
  /**
   * GGUF models already on this computer: in Ollama's and LM Studio's model folders, and below `folder` when
   * given (a folder chosen with dialog.openPath 'model-folder'). Headers only; nothing is copied or loaded.
   */
  'models.findGguf': { args: { folder?: string }; result: { found: readonly FoundGgufModel[]; searched: readonly string[] } };
  /** Adds a GGUF model the last models.findGguf found to the library, referenced where it lies. */
  'models.importGguf': { args: { path: string; name?: string }; result: BaseModel };

  'datasets.list': { args: Record<string, never>; result: readonly Dataset[] };
  'datasets.import': { args: { path: string; format?: DatasetFormat; name?: string }; result: Dataset };
  'datasets.preview': {
    args: { id: string; modelId: string; limit: number };
    result: { records: readonly PreviewRecord[]; issues: readonly DatasetIssue[]; tokenLengths: readonly number[] };
  };
  'datasets.delete': { args: { id: string }; result: { deleted: true } };

  'adapters.list': { args: Record<string, never>; result: readonly Adapter[] };
  'adapters.versions': { args: { adapterId: string }; result: readonly AdapterVersion[] };
  'adapters.deleteVersion': { args: { versionId: string }; result: { deleted: true } };
  'adapters.exportPeft': { args: { versionId: string; destination: string }; result: { path: string } };
  'adapters.exportMerged': { args: { versionId: string; destination: string }; result: { path: string } };
  /** Deletes the adapter with every version and run (refused while one of its runs trains). */
  'adapters.delete': { args: { adapterId: string }; result: { deleted: true } };
  /**
   * For Ollama, llama.cpp and LM Studio: the version as a GGUF LoRA beside its base ('adapter'), or merged into one
   * GGUF model ('merged', in `type`, default F16), with a Modelfile, in a new folder `destination`.
   */
  'adapters.exportGguf': {
    args: { versionId: string; destination: string; kind: 'adapter' | 'merged'; type?: 'F16' | 'BF16' | 'Q8_0' };
    result: GgufExport;
  };

  /** Checks a PEFT adapter folder (chosen with 'adapter-folder') against a library model; nothing is copied. */
  'adapters.checkPeft': { args: { path: string; modelId: string }; result: AdapterPreflight };
  /**
   * Imports a PEFT adapter folder as a new version of the adapter `name` on that model (created when new) after the
   * same check; refused, writing nothing, when it does not fit.
   */
  'adapters.importPeft': { args: { path: string; modelId: string; name: string }; result: { version: AdapterVersion; adapterName: string; preflight: AdapterPreflight } };
  /** Per module: the singular values of ΔW and its effective rank (the engine's `lorasmith adapter analyze`). */
  'adapters.analyze': { args: { versionId: string }; result: AdapterSpectrum };
  /**
   * The best rank-`rank` approximation of every module (truncated SVD, `lorasmith adapter reduce`) as a new version
   * of the same adapter; the version reduced stays as it was.
   */
  'adapters.reduce': { args: { versionId: string; rank: number }; result: { version: AdapterVersion; report: RankReduction } };

  /**
   * Learning rate, steps and rank proposed from the model's and the dataset's sizes, with the effect of `settings`
   * (the proposal's own where absent): passes over the data and warnings.
   */
  'train.propose': { args: { modelId: string; datasetId: string; settings?: TrainingSettings }; result: TrainingProposal };
  'train.estimate': { args: { modelId: string; datasetId: string; settings: TrainingSettings }; result: TrainingEstimate };
  /**
   * What each base precision costs on this dataset: a few validation batches scored with the base at 16 bits, at
   * Q8_0 and at Q4_0 in turn (the engine's measurePrecisionCost), each loss and the memory each takes; `train.precisionProgress`
   * events with this `requestId` say how far it is.
   */
  'train.measurePrecision': { args: { requestId: string; modelId: string; datasetId: string; settings: TrainingSettings }; result: PrecisionCost };
  /** Stops that measuring between two batches (a run about to start need not wait behind it); it rejects with CANCELLED. */
  'train.stopMeasure': { args: { requestId: string }; result: { stopped: boolean } };
  'train.start': {
    args: { modelId: string; datasetId: string; settings: TrainingSettings; adapterName: string; parentVersionId?: string };
    result: TrainingRun;
  };
  'train.cancel': { args: { runId: string }; result: { cancelled: boolean } };
  /**
   * Continues a cancelled or interrupted run from its last checkpoint (or from step 0 where it wrote none): the
   * same run, its recorded curve cut back to that step, then `train.progress` and `train.finished` as for a start.
   */
  'train.resume': { args: { runId: string }; result: TrainingRun };
  'runs.list': { args: Record<string, never>; result: readonly TrainingRun[] };
  'runs.metrics': { args: { runId: string }; result: readonly MetricPoint[] };
  /** Deletes a run that is not training, with its metrics and checkpoints; an adapter version it made stays. */
  'runs.delete': { args: { runId: string }; result: { deleted: true } };
  /**
   * Writes the run these settings describe as a folder for transformers + PEFT + accelerate on other GPUs (data with
   * the engine's masks, LoraConfig, hyperparameters, train.py, accelerate configs, README) into `destination`, which
   * must be new or empty.
   */
  'runs.exportForPeft': {
    args: { modelId: string; datasetId: string; settings: TrainingSettings; parentVersionId?: string; destination: string };
    result: { path: string; trainRows: number; valRows: number; totalSteps: number };
  };
  /**
   * Imports what an exported run's train.py wrote (its output folder) as a new version of `adapterName` (default
   * '<dataset>-<base>'), after checking its base and dataset against the library and its adapter against the base.
   */
  'runs.importResult': { args: { path: string; adapterName?: string }; result: { version: AdapterVersion; adapterName: string; trainedOn: string; warnings: string[] } };

  'chat.load': { args: { modelId: string }; result: { modelId: string; chatTemplate: string | null } };
  'chat.generate': {
    args: { requestId: string; mix: AdapterMix; messages: readonly ChatMessage[]; sampling: SamplingSettings };
    result: { text: string; tokens: number; tokensPerSecond: number };
  };
  'chat.stop': { args: { requestId: string }; result: { stopped: boolean } };
  /** Keeps a chat comparison in the library: the conversation and every answer with its set-up's label. */
  'comparisons.save': { args: Omit<SavedComparison, 'id' | 'createdAt'>; result: SavedComparison };
  /** The saved comparisons, newest first. */
  'comparisons.list': { args: Record<string, never>; result: readonly SavedComparison[] };
  'comparisons.delete': { args: { id: string }; result: { deleted: true } };

  /**
   * Electron: shows a native open/save dialog and grants main the chosen path for the import or export that
   * follows. Browser mode has no dialog: the result is { path: null, dialog: false } and the UI asks for a typed path.
   */
  'dialog.openPath': { args: { purpose: PathPurpose }; result: { path: string | null; dialog: boolean } };
}

/**
 * What a user-chosen path is for: a model folder to import, a dataset file to import, a folder to export into,
 * the output folder of a run trained elsewhere to import, or a PEFT adapter folder to import.
 */
export type PathPurpose = 'model-folder' | 'dataset-file' | 'export-folder' | 'run-folder' | 'adapter-folder';

export interface Settings {
  readonly backend: BackendName | 'auto';
  readonly theme: 'light' | 'dark' | 'system';
  readonly defaults: Partial<TrainingSettings>;
  /** Train and chat on a `lorasmith serve` on another machine, through an SSH tunnel; null or absent: this machine. */
  readonly remoteEngine?: RemoteEngineSetting | null;
}

/** Where the tunnel to a remote engine ends here (127.0.0.1:<port>, or the address its serve printed) and its token. */
export interface RemoteEngineSetting {
  readonly address: string;
  readonly token: string;
}

/** A sample dataset from resources/samples, as registered in the library on the first run. */
export interface FirstRunSample {
  readonly datasetId: string;
  readonly name: string;
  readonly format: DatasetFormat;
  /** What a short fine-tune on it teaches, in words the user can check in the chat preview. */
  readonly behaviour: string;
  /** A prompt that shows the behaviour: the chat preview is filled in with it after the run. */
  readonly tryPrompt: string;
}

export interface FirstRun {
  /**
   * The guided first fine-tune (the starter model on the guided sample, with settings that finish in minutes on a
   * laptop CPU), offered while the library holds the starter model and has no training run yet; else null.
   */
  readonly guided: { readonly modelId: string; readonly modelName: string; readonly datasetId: string; readonly settings: TrainingSettings } | null;
  /** The samples still in the library, in samples.json's order. */
  readonly samples: readonly FirstRunSample[];
}

export interface PreviewRecord {
  readonly index: number;
  /** The text as the model sees it (chat template applied), split into spans that train or not. */
  readonly spans: readonly { readonly text: string; readonly trained: boolean }[];
  readonly tokenCount: number;
}

export type CommandName = keyof Commands;
export type CommandArgs<K extends CommandName> = Commands[K]['args'];
export type CommandResult<K extends CommandName> = Commands[K]['result'];

/** The runtime name table. `satisfies` makes a missing or extra name a compile error. */
export const COMMAND_NAMES = [
  'app.info', 'app.firstRun', 'settings.get', 'settings.set',
  'models.list', 'models.import', 'models.modules', 'models.delete', 'models.download', 'models.cancelDownload',
  'models.findGguf', 'models.importGguf',
  'datasets.list', 'datasets.import', 'datasets.preview', 'datasets.delete',
  'adapters.list', 'adapters.versions', 'adapters.deleteVersion', 'adapters.exportPeft', 'adapters.exportMerged',
  'adapters.exportGguf', 'adapters.delete', 'adapters.checkPeft', 'adapters.importPeft', 'adapters.analyze', 'adapters.reduce',
  'train.propose', 'train.estimate', 'train.measurePrecision', 'train.stopMeasure', 'train.start', 'train.cancel', 'train.resume', 'runs.list', 'runs.metrics', 'runs.delete',
  'runs.exportForPeft', 'runs.importResult',
  'chat.load', 'chat.generate', 'chat.stop', 'comparisons.save', 'comparisons.list', 'comparisons.delete',
  'dialog.openPath',
] as const satisfies readonly CommandName[];

type Missing = Exclude<CommandName, (typeof COMMAND_NAMES)[number]>;
// If this line fails to compile, a command is declared in Commands but absent from COMMAND_NAMES.
export const _allCommandsListed: Missing extends never ? true : Missing = true;
