/**
 * The library's part in a remote engine: base models by content hash (a server does not take again a model its
 * library holds) and by folder (an app does not hash again a model whose hash the library recorded at import), and
 * the record of where a run trained, kept beside its adapter.
 */
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainedOn } from '../host/protocol';
import type { ContentRef } from '../host/remote/protocol';
import type { Library } from '../store/index';
import { MACHINE_FILE } from '../store/repos/versions';

/** machine.json beside an adapter a remote engine trained: the machine and engine (a version's lineage, its trainedOn). */
export function recordTrainedOn(adapterDir: string, trainedOn: TrainedOn): void {
  const { description, machine, engine, address } = trainedOn;
  writeFileSync(join(adapterDir, MACHINE_FILE), JSON.stringify({ description, ...machine, engine, address }, null, 2) + '\n');
}

/** The path of a base model of this library with `ref`'s content (hashModel: a folder, or a GGUF file), or null. */
export function heldModel(library: Library, ref: ContentRef): string | null {
  const model = library.models.list().find((m) => m.contentHash === ref.hash);
  if (!model) return null;
  const path = library.models.resolvePath(model.id);
  return existsSync(path) && statSync(path).isFile() === (ref.kind === 'file') ? path : null;
}

/** The content hash the library recorded for the base model at `path`, or null for any other path. */
export function recordedModelHash(library: Library, path: string): string | null {
  for (const model of library.models.list()) {
    if (model.contentHash && library.models.resolvePath(model.id) === path) return model.contentHash;
  }
  return null;
}
