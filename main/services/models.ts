/**
 * Importing a model folder into the library. The folder is read and, in copy mode, copied by the file worker into
 * a staging folder inside the data directory (a temp name, swept at the next start if the app dies meanwhile);
 * the store then moves the complete copy into models/<id>/ and writes the row. Symlinks that leave the folder
 * are refused (file-work/jobs.ts says which are followed).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import type { BaseModel } from '../../preload/contract/domain';
import { tempSibling } from '../common/atomic';
import type { Library } from '../store/index';
import type { ModelDetails } from '../store/types';
import type { FileWork } from './file-work/client';

export interface ModelImportRequest {
  /** An absolute path, already checked by the caller (ipc/paths.ts). */
  readonly path: string;
  readonly mode: 'copy' | 'reference';
  readonly name?: string;
  readonly source?: BaseModel['source'];
}

export async function importModel(library: Library, files: FileWork, request: ModelImportRequest): Promise<ModelDetails> {
  const name = request.name?.trim() || basename(request.path);
  const source = request.source ?? { kind: 'folder' as const, ref: request.path };
  if (request.mode === 'reference') {
    const summary = await files.run({ kind: 'inspectModel', dir: request.path });
    return library.models.import({
      sourcePath: request.path, mode: 'reference', name, architecture: summary.modelType,
      parameterCount: summary.parameterCount, contentHash: summary.contentHash, source,
    });
  }
  mkdirSync(library.dataDir.resolve('models'), { recursive: true });
  const staging = tempSibling(library.dataDir.resolve('models/import'));
  try {
    const summary = await files.run({ kind: 'stageModel', source: request.path, staging });
    return library.models.import({
      sourcePath: staging, mode: 'move', name, architecture: summary.modelType,
      parameterCount: summary.parameterCount, contentHash: summary.contentHash, source,
    });
  } finally {
    rmSync(staging, { recursive: true, force: true }); // gone after the move; a failed import leaves nothing
  }
}
