/**
 * What the main side asks of the file worker: every job that reads a user's file (a dataset, a model folder) or
 * a large stored one, so that the main thread (Electron's main process, the server's event loop) never waits on it.
 * Plain data only, structured-clone safe; errors come back as {name, code, message}.
 */
import type { AdapterPreflight, DatasetFormat, TrainingSettings } from '../../../preload/contract/domain';

export interface ModelSummary {
  /** config.json's model_type, as the engine read it. */
  readonly modelType: string;
  readonly parameterCount: number;
  /** main/common/hash's hashFolder of the folder: the library's content hash. */
  readonly contentHash: string;
}

export interface StagedDataset {
  /** The copy of the user's file, in the staging folder. */
  readonly original: string;
  /** Its content hash (main/common/hash). */
  readonly hash: string;
  /** The normalized JSONL, in the staging folder. */
  readonly normalized: string;
  readonly format: DatasetFormat;
  readonly valid: number;
  readonly skipped: number;
}

export interface PreviewResult {
  readonly records: readonly { readonly index: number; readonly spans: readonly { readonly text: string; readonly trained: boolean }[]; readonly tokenCount: number }[];
  readonly issues: readonly { readonly line: number; readonly message: string }[];
  readonly tokenLengths: readonly number[];
}

/** An exported run's result folder (engine/handoff/run-result.ts), in the contract's words. */
export interface RunResultSummary {
  /** The folder holding the result (the one given, or its output/). */
  readonly dir: string;
  readonly adapterDir: string;
  readonly steps: number;
  readonly trainLoss: number | null;
  readonly valLoss: number | null;
  /** The curves of the trainer's log history, merged by step. */
  readonly points: readonly { readonly step: number; readonly loss?: number; readonly valLoss?: number; readonly lr?: number; readonly gradNorm?: number; readonly epoch?: number }[];
  readonly baseContentHash: string;
  readonly baseNameOrPath: string;
  readonly datasetHashes: readonly string[];
  readonly settings: TrainingSettings;
  readonly library: { readonly modelId?: string; readonly datasetId?: string; readonly parentVersionId?: string } | null;
  /** The machine as run_info.json names it, and in one line (with the library versions it ran with). */
  readonly machine: Readonly<Record<string, unknown>>;
  readonly trainedOn: string;
  /** The versions the export pinned, where the run's differ from them, and the import's warning about it (or null). */
  readonly testedVersions: Readonly<Record<string, string>>;
  readonly versionDifferences: readonly { readonly library: string; readonly ran: string | null; readonly tested: string }[];
  readonly versionWarning: string | null;
}

export type FileJob =
  /** Reads a model folder where it is: config, parameter count, content hash. */
  | { readonly kind: 'inspectModel'; readonly dir: string }
  /** Copies a model folder into `staging` (refusing symlinks that leave it), then inspects the copy. */
  | { readonly kind: 'stageModel'; readonly source: string; readonly staging: string }
  /** Copies a dataset file into `staging` and normalises the copy there. */
  | { readonly kind: 'stageDataset'; readonly source: string; readonly staging: string; readonly format?: DatasetFormat }
  /** The first records of a stored dataset as a model sees them, and the token lengths of up to 5000. */
  | {
      readonly kind: 'previewDataset';
      /** The stored dataset's files: its normalized file (what trains) and the original. */
      readonly stored: { readonly normalized: string | null; readonly original: string };
      readonly format: DatasetFormat;
      readonly modelDir: string;
      readonly limit: number;
    }
  /** An exported run's result folder, read and checked (nothing written). */
  | { readonly kind: 'readRunResult'; readonly dir: string }
  /** Whether a PEFT adapter fits a model folder (the preflight): its verdict and details, and as the CLI prints it. */
  | { readonly kind: 'preflightAdapter'; readonly adapterDir: string; readonly modelDir: string }
  /**
   * Copies users' files or folders (`from`, symlinks followed) to `to` in a staging folder of the data directory, and
   * flushes them: an imported adapter's files before the store moves them into a version.
   */
  | { readonly kind: 'copyIn'; readonly copies: readonly { readonly from: string; readonly to: string }[] }
  /** One file's content hash (main/common/hash's hashFile): a GGUF model of gigabytes, read where it lies. */
  | { readonly kind: 'hashFile'; readonly path: string };

export interface FileJobResults {
  inspectModel: ModelSummary;
  stageModel: ModelSummary;
  stageDataset: StagedDataset;
  previewDataset: PreviewResult;
  readRunResult: RunResultSummary;
  preflightAdapter: AdapterPreflight & { readonly report: string };
  copyIn: { readonly copied: number };
  hashFile: { readonly contentHash: string };
}

export type FileJobKind = FileJob['kind'];

export interface WorkerRequest {
  readonly id: number;
  readonly job: FileJob;
}

export type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly result: FileJobResults[FileJobKind] }
  | { readonly id: number; readonly ok: false; readonly error: { readonly name: string; readonly code: string; readonly message: string } };
