/**
 * The library's part in a remote engine: base models by content hash (a server does not take again a model its
 * library holds) and by folder (an app does not hash again a model whose hash the library recorded at import).
 */
import { existsSync, statSync } from 'node:fs';
import type { ContentRef } from '../host/remote/protocol';
import type { Library } from '../store/index';

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
