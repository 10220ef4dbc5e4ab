/**
 * Datasets: the file as the user gave it, copied into datasets/<id>/, plus the normalized JSONL the engine's
 * dataset code produces (moved in with attachNormalized, possibly later than the import).
 */
import { copyFileSync, existsSync, statSync } from 'node:fs';
import { basename, isAbsolute, join } from 'node:path';
import type { DatasetFormat } from '../../../preload/contract/domain';
import { StoreError, notFound } from '../errors';
import { moveAtomic, removeAtomic, replaceFileWith, stageDir } from '../files';
import { hashFile } from '../../common/hash';
import { newId, nowIso } from '../ids';
import { layout } from '../paths';
import type { DatasetDetails, DatasetRow, TokenStats } from '../types';
import type { StoreContext } from './context';

export const NORMALIZED_NAME = 'normalized.jsonl';
const FORMATS: readonly DatasetFormat[] = ['prompt-completion', 'alpaca', 'messages', 'sharegpt', 'text'];

export interface DatasetImport {
  readonly sourcePath: string;
  /** 'copy' the file in (the default), or 'move' a copy that an import staged inside the data directory. */
  readonly take?: 'copy' | 'move';
  /** The user's name for the file, where sourcePath is a staged copy. */
  readonly originalName?: string;
  /** The file's content hash (main/common/hash), where the caller already computed it (off the main thread). */
  readonly hash?: string;
  readonly format: DatasetFormat;
  readonly name?: string;
  readonly normalized?: NormalizedInput;
}

export interface NormalizedInput {
  /** A file the engine wrote (anywhere, e.g. a temp folder); it is moved into the dataset's folder. */
  readonly path: string;
  readonly recordCount: number;
  readonly skippedCount: number;
  readonly format?: DatasetFormat;
  readonly tokenStats?: TokenStats;
}

export function toDataset(row: DatasetRow, ctx: StoreContext): DatasetDetails {
  return {
    id: row.id,
    name: row.name,
    originalName: row.original_name,
    originalFile: join(ctx.dataDir.root, row.original_file),
    // The contract has no "not normalized yet"; '' says it until the contract allows null.
    normalizedFile: row.normalized_file === null ? '' : join(ctx.dataDir.root, row.normalized_file),
    format: row.format,
    recordCount: row.record_count,
    skippedCount: row.skipped_count,
    hash: row.hash,
    addedAt: row.added_at,
    status: row.status,
    tokenStats: row.token_total === null || row.tokenizer_hash === null ? null : {
      total: row.token_total, min: row.token_min ?? 0, max: row.token_max ?? 0, mean: row.token_mean ?? 0,
      tokenizerHash: row.tokenizer_hash,
    },
  };
}

export class DatasetsRepo {
  constructor(private readonly ctx: StoreContext) {}

  list(): DatasetDetails[] {
    const rows = this.ctx.db.prepare('SELECT * FROM datasets ORDER BY added_at, id').all() as DatasetRow[];
    return rows.map((r) => toDataset(r, this.ctx));
  }

  find(id: string): DatasetDetails | null {
    const row = this.ctx.db.prepare('SELECT * FROM datasets WHERE id = ?').get(id) as DatasetRow | undefined;
    return row ? toDataset(row, this.ctx) : null;
  }

  get(id: string): DatasetDetails {
    const found = this.find(id);
    if (!found) throw notFound('dataset', id);
    return found;
  }

  /** Checked absolute paths of the original and (when there is one) the normalized file. */
  resolveFiles(id: string): { original: string; normalized: string | null } {
    const row = this.row(id);
    return {
      original: this.ctx.dataDir.resolve(row.original_file),
      normalized: row.normalized_file === null ? null : this.ctx.dataDir.resolve(row.normalized_file),
    };
  }

  /** Builds datasets/<id>/ (original copied, normalized moved) in a temp folder, renames it, then writes the row. */
  import(input: DatasetImport): DatasetDetails {
    checkFormat(input.format);
    if (!isAbsolute(input.sourcePath) || !existsSync(input.sourcePath) || !statSync(input.sourcePath).isFile()) {
      throw new StoreError('FILE_MISSING', `dataset file '${input.sourcePath}' does not exist or is not a file`);
    }
    if (input.normalized) checkNormalized(input.normalized);
    const id = newId('ds');
    const dir = layout.datasetDir(id);
    const originalName = input.originalName ?? basename(input.sourcePath);
    const storedName = originalName === NORMALIZED_NAME ? `original-${originalName}` : originalName;
    const folder = this.ctx.dataDir.resolve(dir);
    stageDir(folder, (staging) => {
      if (input.take === 'move') moveAtomic(input.sourcePath, join(staging, storedName));
      else copyFileSync(input.sourcePath, join(staging, storedName));
      if (input.normalized) moveAtomic(input.normalized.path, join(staging, NORMALIZED_NAME));
    });
    try {
      const original = join(folder, storedName);
      const row: DatasetRow = {
        id,
        name: input.name?.trim() || originalName.replace(/\.[^.]+$/, ''),
        original_name: originalName,
        original_file: `${dir}/${storedName}`,
        original_bytes: statSync(original).size,
        normalized_file: null,
        normalized_bytes: null,
        format: input.normalized?.format ?? input.format,
        record_count: 0,
        skipped_count: 0,
        token_total: null, token_min: null, token_max: null, token_mean: null, tokenizer_hash: null,
        hash: input.hash ?? hashFile(original),
        added_at: nowIso(),
        status: 'ok',
      };
      if (input.normalized) Object.assign(row, normalizedColumns(dir, folder, input.normalized));
      this.ctx.db.prepare(`INSERT INTO datasets VALUES (@id, @name, @original_name, @original_file, @original_bytes,
        @normalized_file, @normalized_bytes, @format, @record_count, @skipped_count, @token_total, @token_min,
        @token_max, @token_mean, @tokenizer_hash, @hash, @added_at, @status)`).run(row);
      return toDataset(row, this.ctx);
    } catch (error) {
      removeAtomic(folder);
      throw error;
    }
  }

  /** Moves the engine's normalized JSONL in (replacing an older one), then updates the row. */
  attachNormalized(id: string, normalized: NormalizedInput): DatasetDetails {
    checkNormalized(normalized);
    const row = this.row(id);
    const dir = layout.datasetDir(id);
    const folder = this.ctx.dataDir.resolve(dir);
    replaceFileWith(normalized.path, join(folder, NORMALIZED_NAME));
    const columns = normalizedColumns(dir, folder, normalized);
    this.ctx.db.prepare(`UPDATE datasets SET normalized_file = @normalized_file, normalized_bytes = @normalized_bytes,
      record_count = @record_count, skipped_count = @skipped_count, format = @format, token_total = @token_total,
      token_min = @token_min, token_max = @token_max, token_mean = @token_mean, tokenizer_hash = @tokenizer_hash,
      status = 'ok' WHERE id = @id`).run({ ...columns, format: normalized.format ?? row.format, id });
    return this.get(id);
  }

  setTokenStats(id: string, stats: TokenStats): DatasetDetails {
    this.row(id);
    this.ctx.db.prepare(`UPDATE datasets SET token_total = ?, token_min = ?, token_max = ?, token_mean = ?,
      tokenizer_hash = ? WHERE id = ?`).run(stats.total, stats.min, stats.max, stats.mean, stats.tokenizerHash, id);
    return this.get(id);
  }

  rename(id: string, name: string): DatasetDetails {
    if (name.trim() === '') throw new StoreError('INVALID_INPUT', 'a dataset name must not be empty');
    this.row(id);
    this.ctx.db.prepare('UPDATE datasets SET name = ? WHERE id = ?').run(name.trim(), id);
    return this.get(id);
  }

  /** Row first, then datasets/<id>/. Refused while versions or runs were trained on it (their lineage). */
  delete(id: string): void {
    const row = this.row(id);
    const users = this.ctx.db.prepare(`SELECT (SELECT COUNT(*) FROM adapter_versions WHERE dataset_id = ?)
      + (SELECT COUNT(*) FROM training_runs WHERE dataset_id = ?) AS n`).get(id, id) as { n: number };
    if (users.n > 0) {
      throw new StoreError('IN_USE',
        `dataset '${row.name}' (${id}) was used by ${users.n} adapter versions or runs; delete those first`);
    }
    this.ctx.db.prepare('DELETE FROM datasets WHERE id = ?').run(id);
    removeAtomic(this.ctx.dataDir.resolve(layout.datasetDir(id)));
  }

  private row(id: string): DatasetRow {
    const row = this.ctx.db.prepare('SELECT * FROM datasets WHERE id = ?').get(id) as DatasetRow | undefined;
    if (!row) throw notFound('dataset', id);
    return row;
  }
}

function normalizedColumns(dir: string, folder: string, n: NormalizedInput): Partial<DatasetRow> {
  return {
    normalized_file: `${dir}/${NORMALIZED_NAME}`,
    normalized_bytes: statSync(join(folder, NORMALIZED_NAME)).size,
    record_count: n.recordCount,
    skipped_count: n.skippedCount,
    token_total: n.tokenStats?.total ?? null,
    token_min: n.tokenStats?.min ?? null,
    token_max: n.tokenStats?.max ?? null,
    token_mean: n.tokenStats?.mean ?? null,
    tokenizer_hash: n.tokenStats?.tokenizerHash ?? null,
  };
}

function checkFormat(format: string): void {
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw new StoreError('INVALID_INPUT', `dataset format must be one of ${FORMATS.join(', ')}; got '${format}'`);
  }
}

function checkNormalized(n: NormalizedInput): void {
  if (n.format !== undefined) checkFormat(n.format);
  for (const [field, value] of [['recordCount', n.recordCount], ['skippedCount', n.skippedCount]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new StoreError('INVALID_INPUT', `${field} must be a non-negative integer, got ${value}`);
    }
  }
  if (!isAbsolute(n.path) || !existsSync(n.path)) {
    throw new StoreError('FILE_MISSING', `normalized dataset file '${n.path}' does not exist`);
  }
}
