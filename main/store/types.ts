/**
 * Row types (exactly what SQLite returns: snake_case, JSON as text, null for absent) and the few domain types
 * the contract does not have yet. Repositories map rows to preload/contract domain objects and back.
 */
import type {
  AdapterVersion, BaseModel, Dataset, DatasetFormat, RunStatus,
  TrainingSettings,
} from '../../preload/contract/domain';

export interface ModelRow {
  id: string;
  name: string;
  architecture: string;
  source_kind: 'folder' | 'hub' | 'starter';
  source_ref: string;
  source_revision: string | null;
  storage: 'copy' | 'reference';
  path: string;
  parameter_count: number;
  content_hash: string;
  files_json: string;
  added_at: string;
  status: 'ok' | 'missing';
}

export interface DatasetRow {
  id: string;
  name: string;
  original_name: string;
  original_file: string;
  original_bytes: number;
  normalized_file: string | null;
  normalized_bytes: number | null;
  format: DatasetFormat;
  record_count: number;
  skipped_count: number;
  token_total: number | null;
  token_min: number | null;
  token_max: number | null;
  token_mean: number | null;
  tokenizer_hash: string | null;
  hash: string;
  added_at: string;
  status: 'ok' | 'missing';
}

export interface AdapterRow {
  id: string;
  name: string;
  base_model_id: string;
  created_at: string;
}

export interface VersionRow {
  id: string;
  adapter_id: string;
  version: number;
  origin: 'trained' | 'imported';
  parent_version_id: string | null;
  parent_label: string | null;
  dataset_id: string | null;
  base_model_hash: string;
  dataset_hash: string | null;
  settings_json: string | null;
  train_loss: number | null;
  val_loss: number | null;
  steps: number | null;
  path: string;
  files_json: string;
  status: 'ok' | 'missing';
  created_at: string;
}

export interface RunRow {
  id: string;
  adapter_id: string;
  base_model_id: string;
  dataset_id: string;
  parent_version_id: string | null;
  adapter_version_id: string | null;
  settings_json: string;
  status: RunStatus;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  last_checkpoint: string | null;
  step: number;
  total_steps: number | null;
}

export interface MetricRow {
  run_id: string;
  step: number;
  loss: number | null;
  val_loss: number | null;
  lr: number | null;
  tokens_per_second: number | null;
  grad_norm: number | null;
  epoch: number | null;
}

export interface ComparisonRow {
  id: string;
  title: string;
  base_model_id: string | null;
  messages_json: string;
  sampling_json: string;
  created_at: string;
}

export interface ComparisonOutputRow {
  comparison_id: string;
  position: number;
  /** Which user message of the conversation it answers (0: the first). */
  turn: number;
  label: string;
  mix_json: string;
  text: string;
  tokens: number;
  tokens_per_second: number | null;
}

export interface SettingRow {
  key: string;
  value_json: string;
  updated_at: string;
}

// ---- Domain types the contract lacks (proposed to the contract's owner; see the store's report) ----

/** One file of a stored folder, for the startup check (a partial file has the wrong size). */
export interface FileEntry {
  readonly path: string;
  readonly bytes: number;
}

/** Token statistics of a dataset, counted with one base model's tokenizer. */
export interface TokenStats {
  readonly total: number;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  readonly tokenizerHash: string;
}

export interface ModelDetails extends BaseModel {
  readonly storage: 'copy' | 'reference';
  readonly files: readonly FileEntry[];
}

export interface DatasetDetails extends Dataset {
  readonly originalName: string;
  readonly tokenStats: TokenStats | null;
}

export interface VersionDetails extends AdapterVersion {
  readonly origin: 'trained' | 'imported';
  readonly baseModelHash: string;
  readonly datasetHash: string | null;
  /** 'name vN' of the parent at the time, kept when the parent itself is deleted. */
  readonly parentLabel: string | null;
  readonly files: readonly FileEntry[];
}

/** Extra per-step values beyond the contract's MetricPoint. */
export interface RunMetricPoint {
  readonly step: number;
  readonly loss?: number;
  readonly valLoss?: number;
  readonly lr?: number;
  readonly tokensPerSecond?: number;
  readonly gradNorm?: number;
  readonly epoch?: number;
}

export type { SavedComparison } from '../../preload/contract/domain';

/** What a new run needs to continue a version or redo it with other settings (prefills the wizard). */
export interface RunPlan {
  readonly adapterId: string;
  readonly adapterName: string;
  readonly baseModelId: string;
  readonly datasetId: string | null;
  readonly parentVersionId: string | null;
  readonly settings: TrainingSettings | null;
}

export interface StartupReport {
  readonly tempsRemoved: readonly string[];
  readonly modelsMissing: readonly string[];
  readonly modelsFound: readonly string[];
  readonly datasetsMissing: readonly string[];
  readonly datasetsFound: readonly string[];
  readonly versionsMissing: readonly string[];
  readonly versionsFound: readonly string[];
  readonly runsInterrupted: readonly string[];
  /** Runs whose recorded checkpoint is gone: still interrupted, but they restart from the beginning. */
  readonly checkpointsLost: readonly string[];
  /** Versions a crash left between their folder's move and their row (versions.commit's marker): recorded now. */
  readonly versionsRecorded: readonly string[];
  /** Version folders with no row and no commit marker: reported, never deleted. */
  readonly orphanFolders: readonly string[];
  /**
   * Model, dataset, adapter, run and version folders with no row, removed: copies of an import that stopped before
   * its row, or what a delete that stopped after its row went had yet to remove.
   */
  readonly foldersRemoved: readonly string[];
  /** Unfinished hub downloads (downloads/<repo>@<commit>) a stopped process left: removed. */
  readonly downloadsRemoved: readonly string[];
}
