/**
 * Importing a dataset file into the library. The file worker copies it into a staging folder inside the data
 * directory and normalises that copy there (streamed: any size in bounded memory, refused by content when it is
 * not UTF-8 text); the store then moves both files into datasets/<id>/ and writes the row. A preview reads the
 * stored records in the worker too.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import type { DatasetFormat } from '../../preload/contract/domain';
import { tempSibling } from '../common/atomic';
import type { Library } from '../store/index';
import type { DatasetDetails } from '../store/types';
import type { FileWork } from './file-work/client';
import type { PreviewResult } from './file-work/protocol';

export interface DatasetImportRequest {
  /** An absolute path to a file, already checked by the caller (ipc/paths.ts). */
  readonly path: string;
  readonly format?: DatasetFormat;
  readonly name?: string;
}

export async function importDataset(library: Library, files: FileWork, request: DatasetImportRequest): Promise<DatasetDetails> {
  mkdirSync(library.dataDir.resolve('datasets'), { recursive: true });
  const staging = tempSibling(library.dataDir.resolve('datasets/import'));
  try {
    const staged = await files.run({ kind: 'stageDataset', source: request.path, staging, ...(request.format ? { format: request.format } : {}) });
    return library.datasets.import({
      sourcePath: staged.original, take: 'move', originalName: basename(request.path), hash: staged.hash,
      format: staged.format, ...(request.name ? { name: request.name } : {}),
      normalized: { path: staged.normalized, recordCount: staged.valid, skippedCount: staged.skipped },
    });
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** The first `limit` records of a stored dataset as `modelId` sees them (template applied, trained spans marked). */
export async function previewDataset(library: Library, files: FileWork, datasetId: string, modelId: string, limit: number): Promise<PreviewResult> {
  const { format } = library.datasets.get(datasetId);
  return files.run({
    kind: 'previewDataset', stored: library.datasets.resolveFiles(datasetId), format, modelDir: library.models.resolvePath(modelId), limit,
  });
}
