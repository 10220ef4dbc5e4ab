/**
 * Base models: Hugging Face folders copied into models/<id>/ or referenced where the user keeps them, and single
 * GGUF files referenced where their app (Ollama, LM Studio) keeps them, never copied.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { BaseModel } from '../../../preload/contract/domain';
import { StoreError, notFound } from '../errors';
import { copyDirAtomic, moveAtomic, removeAtomic } from '../files';
import { hashFolder, listFiles } from '../../common/hash';
import { newId, nowIso } from '../ids';
import { parseJson, stableJson } from '../json';
import { layout } from '../paths';
import type { FileEntry, ModelDetails, ModelRow } from '../types';
import type { StoreContext } from './context';

export interface ModelImport {
  /** A Hugging Face model folder: config.json, *.safetensors, tokenizer files. */
  readonly sourcePath: string;
  /**
   * 'copy' into the data directory, 'reference' the folder where it is (it must stay there), or 'move' it in
   * (a hub download finished in a staging folder: no second copy of gigabytes). 'move' is stored as a copy.
   */
  readonly mode: 'copy' | 'reference' | 'move';
  readonly name?: string;
  /** config.json's model_type, as the engine read it. */
  readonly architecture: string;
  readonly parameterCount: number;
  readonly source?: BaseModel['source'];
  /** Skips hashing when the caller already has the folder's hash (hashFolder's format). */
  readonly contentHash?: string;
}

/** A GGUF file to reference in the library, as the engine described it. */
export interface GgufModelImport {
  /** The GGUF file, absolute; it stays where it is. */
  readonly path: string;
  readonly name?: string;
  /** The Hugging Face model_type its architecture stands for ('llama', 'qwen2'). */
  readonly architecture: string;
  readonly parameterCount: number;
  readonly origin: GgufOrigin;
  /** Its name where it came from: 'qwen2.5:0.5b' in Ollama, 'publisher/repo/file.gguf' in LM Studio. */
  readonly originName: string;
  readonly quantization: string | null;
  /**
   * The file's sha256 as 'sha256:<hex>' (main/common/hash's hashFile, or Ollama's blob digest): the caller's to
   * compute, off the main thread, since a GGUF file is gigabytes.
   */
  readonly contentHash: string;
}

type GgufOrigin = NonNullable<BaseModel['gguf']>['origin'];

/** A base_models row with its base_model_gguf columns (null for a folder model). */
type JoinedRow = ModelRow & { gguf_origin: GgufOrigin | null; gguf_name: string | null; gguf_quantization: string | null; gguf_bytes: number | null };

const SELECT_JOINED = `SELECT m.*, g.origin AS gguf_origin, g.origin_name AS gguf_name, g.quantization AS gguf_quantization,
  g.file_bytes AS gguf_bytes FROM base_models m LEFT JOIN base_model_gguf g ON g.model_id = m.id`;

export function toModel(row: ModelRow | JoinedRow, ctx: StoreContext): ModelDetails {
  const gguf = 'gguf_origin' in row && row.gguf_origin !== null
    ? { gguf: { origin: row.gguf_origin, name: row.gguf_name ?? '', quantization: row.gguf_quantization, fileBytes: row.gguf_bytes ?? 0 } }
    : {};
  return {
    ...gguf,
    id: row.id,
    name: row.name,
    architecture: row.architecture,
    source: row.source_revision === null
      ? { kind: row.source_kind, ref: row.source_ref }
      : { kind: row.source_kind, ref: row.source_ref, revision: row.source_revision },
    path: row.storage === 'copy' ? join(ctx.dataDir.root, row.path) : row.path,
    parameterCount: row.parameter_count,
    contentHash: row.content_hash,
    addedAt: row.added_at,
    status: row.status,
    storage: row.storage,
    files: parseJson<FileEntry[]>(row.files_json),
  };
}

export class ModelsRepo {
  constructor(private readonly ctx: StoreContext) {}

  list(): ModelDetails[] {
    const rows = this.ctx.db.prepare(`${SELECT_JOINED} ORDER BY m.added_at, m.id`).all() as JoinedRow[];
    return rows.map((r) => toModel(r, this.ctx));
  }

  find(id: string): ModelDetails | null {
    const row = this.ctx.db.prepare(`${SELECT_JOINED} WHERE m.id = ?`).get(id) as JoinedRow | undefined;
    return row ? toModel(row, this.ctx) : null;
  }

  get(id: string): ModelDetails {
    const model = this.find(id);
    if (!model) throw notFound('base model', id);
    return model;
  }

  /** The folder to load, checked: a copied model's path must stay inside the data directory. */
  resolvePath(id: string): string {
    const row = this.ctx.db.prepare('SELECT storage, path FROM base_models WHERE id = ?').get(id) as
      Pick<ModelRow, 'storage' | 'path'> | undefined;
    if (!row) throw notFound('base model', id);
    return row.storage === 'copy' ? this.ctx.dataDir.resolve(row.path) : row.path;
  }

  /** Copies or references the folder, then writes the row; a failed insert removes the copy. */
  import(input: ModelImport): ModelDetails {
    const source = checkModelFolder(input.sourcePath);
    if (!Number.isSafeInteger(input.parameterCount) || input.parameterCount < 0) {
      throw new StoreError('INVALID_INPUT', `parameterCount must be a non-negative integer, got ${input.parameterCount}`);
    }
    if (input.architecture.trim() === '') throw new StoreError('INVALID_INPUT', 'architecture must not be empty');
    const id = newId('mdl');
    let folder = source;
    let storedPath = source;
    const storage = input.mode === 'reference' ? 'reference' : 'copy';
    if (storage === 'copy') {
      storedPath = layout.modelDir(id);
      folder = this.ctx.dataDir.resolve(storedPath);
      if (input.mode === 'move') moveAtomic(source, folder);
      else copyDirAtomic(source, folder);
    }
    try {
      const files = listFiles(folder);
      const row: ModelRow = {
        id,
        name: input.name?.trim() || lastSegment(source),
        architecture: input.architecture,
        source_kind: input.source?.kind ?? 'folder',
        source_ref: input.source?.ref ?? source,
        source_revision: input.source?.revision ?? null,
        storage,
        path: storedPath,
        parameter_count: input.parameterCount,
        content_hash: input.contentHash ?? hashFolder(folder),
        files_json: stableJson(files),
        added_at: nowIso(),
        status: 'ok',
      };
      this.ctx.db.prepare(`INSERT INTO base_models VALUES (@id, @name, @architecture, @source_kind, @source_ref,
        @source_revision, @storage, @path, @parameter_count, @content_hash, @files_json, @added_at, @status)`).run(row);
      return toModel(row, this.ctx);
    } catch (error) {
      // A moved folder goes back where it came from; a copy is simply dropped.
      if (input.mode === 'move') moveAtomic(folder, source);
      else if (storage === 'copy') removeAtomic(folder);
      throw error;
    }
  }

  /**
   * References one GGUF file where it lies (an Ollama blob, an LM Studio download): the row and its GGUF facts in
   * one transaction. Refused when the file is already in the library.
   */
  importGguf(input: GgufModelImport): ModelDetails {
    if (!isAbsolute(input.path)) throw new StoreError('INVALID_INPUT', `a GGUF model must be an absolute path, got '${input.path}'`);
    if (!existsSync(input.path) || !statSync(input.path).isFile()) throw new StoreError('FILE_MISSING', `GGUF file '${input.path}' does not exist`);
    if (!Number.isSafeInteger(input.parameterCount) || input.parameterCount < 0) {
      throw new StoreError('INVALID_INPUT', `parameterCount must be a non-negative integer, got ${input.parameterCount}`);
    }
    if (input.architecture.trim() === '') throw new StoreError('INVALID_INPUT', 'architecture must not be empty');
    const path = realpathSync(input.path);
    const existing = this.ctx.db.prepare('SELECT id, name FROM base_models WHERE path = ?').get(path) as { id: string; name: string } | undefined;
    if (existing) throw new StoreError('ALREADY_EXISTS', `'${path}' is already in the library as '${existing.name}' (${existing.id})`);
    const id = newId('mdl');
    const row: ModelRow = {
      id,
      name: input.name?.trim() || input.originName,
      architecture: input.architecture,
      source_kind: 'folder',
      source_ref: path,
      source_revision: null,
      storage: 'reference',
      path,
      parameter_count: input.parameterCount,
      content_hash: input.contentHash,
      // Presence is what the startup check can promise of a file its app may replace; no listing of a folder.
      files_json: stableJson([]),
      added_at: nowIso(),
      status: 'ok',
    };
    this.ctx.db.transaction(() => {
      this.ctx.db.prepare(`INSERT INTO base_models VALUES (@id, @name, @architecture, @source_kind, @source_ref,
        @source_revision, @storage, @path, @parameter_count, @content_hash, @files_json, @added_at, @status)`).run(row);
      this.ctx.db.prepare('INSERT INTO base_model_gguf VALUES (?, ?, ?, ?, ?)')
        .run(id, input.origin, input.originName, input.quantization, statSync(path).size);
    })();
    return this.get(id);
  }

  rename(id: string, name: string): ModelDetails {
    if (name.trim() === '') throw new StoreError('INVALID_INPUT', 'a model name must not be empty');
    const info = this.ctx.db.prepare('UPDATE base_models SET name = ? WHERE id = ?').run(name.trim(), id);
    if (info.changes === 0) throw notFound('base model', id);
    return this.get(id);
  }

  /**
   * Deletes the row, then a copied folder (never a referenced one: it is the user's). Refused while adapters or
   * runs were made from it, because their lineage would point at nothing.
   */
  delete(id: string): void {
    const model = this.get(id);
    const users = this.ctx.db.prepare(`SELECT (SELECT COUNT(*) FROM adapters WHERE base_model_id = ?)
      + (SELECT COUNT(*) FROM training_runs WHERE base_model_id = ?) AS n`).get(id, id) as { n: number };
    if (users.n > 0) {
      throw new StoreError('IN_USE',
        `base model '${model.name}' (${id}) has adapters or runs made from it; delete those adapters first`);
    }
    const row = this.ctx.db.prepare('SELECT storage, path FROM base_models WHERE id = ?').get(id) as
      Pick<ModelRow, 'storage' | 'path'>;
    this.ctx.db.prepare('DELETE FROM base_models WHERE id = ?').run(id);
    if (row.storage === 'copy') removeAtomic(this.ctx.dataDir.resolve(row.path));
  }
}

function checkModelFolder(path: string): string {
  if (!isAbsolute(path)) throw new StoreError('INVALID_INPUT', `model folder must be an absolute path, got '${path}'`);
  if (!existsSync(path) || !statSync(path).isDirectory()) {
    throw new StoreError('FILE_MISSING', `model folder '${path}' does not exist or is not a folder`);
  }
  if (!existsSync(join(path, 'config.json'))) {
    throw new StoreError('INVALID_INPUT',
      `'${path}' has no config.json; choose a Hugging Face model folder (config.json, *.safetensors, tokenizer.json)`);
  }
  return realpathSync(resolve(path));
}

function lastSegment(path: string): string {
  return path.split(/[/\\]/).filter(Boolean).pop() ?? path;
}
