/**
 * A PEFT adapter folder from elsewhere (the Hugging Face hub, a PEFT training script) into the library: checked
 * against the chosen base first (the preflight, in the file worker: the verdict in one line, then what fits and
 * what does not), then its PEFT files, and nothing else of the folder, become a new version of an adapter on that
 * base. A folder that does not fit is refused with the verdict and writes nothing.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AdapterPreflight } from '../../preload/contract';
import { tempSibling } from '../common/atomic';
import type { Library } from '../store/index';
import { NOTE_FILE, PEFT_FILES } from '../store/repos/versions';
import type { VersionDetails } from '../store/types';
import { ServiceError } from './errors';
import type { FileWork } from './file-work/client';

/** PEFT's own model card travels with its weights where there is one. */
const KEPT_FILES = [...PEFT_FILES, 'README.md'] as const;

export async function checkPeftAdapter(library: Library, files: FileWork, dir: string, modelId: string): Promise<AdapterPreflight> {
  const { report: _text, ...preflight } = await files.run({ kind: 'preflightAdapter', adapterDir: dir, modelDir: library.models.resolvePath(modelId) });
  return preflight;
}

export interface PeftImport {
  readonly version: VersionDetails;
  readonly adapterName: string;
  readonly preflight: AdapterPreflight;
}

/** Checks, then adds the folder's PEFT files as the next version of `name` on `modelId` (a new adapter when new). */
export async function importPeftFolder(library: Library, files: FileWork, dir: string, modelId: string, name: string): Promise<PeftImport> {
  const model = library.models.get(modelId);
  const adapterName = name.trim();
  const existing = library.adapters.findByName(adapterName);
  if (existing && existing.baseModelId !== model.id) {
    throw new ServiceError('ADAPTER_MISMATCH', `adapter '${adapterName}' belongs to another base model; choose another name`);
  }
  const preflight = await checkPeftAdapter(library, files, dir, modelId);
  if (!preflight.ok) {
    throw new ServiceError('ADAPTER_MISMATCH', [`${dir} does not fit ${model.name}: ${preflight.verdict}`, ...preflight.problems.map((p) => `  ${p}`)].join('\n'));
  }
  // Staged under a temp name in the data directory (what a stop midway leaves, the start-up sweep removes), then
  // moved in by the commit; a new adapter's row and its first version's row are written in one transaction, so a
  // stop between them leaves neither (no adapter without the version it was made for).
  const staging = tempSibling(library.dataDir.resolve('peft-import'));
  mkdirSync(staging);
  try {
    const kept = KEPT_FILES.filter((file) => existsSync(join(dir, file)));
    await files.run({ kind: 'copyIn', copies: kept.map((file) => ({ from: join(dir, file), to: join(staging, file) })) });
    writeFileSync(join(staging, NOTE_FILE), JSON.stringify({ description: `imported from ${dir} (${preflight.verdict})` }, null, 2) + '\n');
    const version = library.transaction(() => {
      const adapter = existing ?? library.adapters.create({ name: adapterName, baseModelId: model.id });
      return library.versions.commit({ adapterId: adapter.id, filesFrom: staging, take: 'move', origin: 'imported' });
    });
    return { version, adapterName, preflight };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
