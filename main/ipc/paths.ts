/**
 * Paths the renderer hands to main. In Electron a path is accepted only if a native dialog returned it
 * (granted once, for one purpose); in browser mode there is no dialog, so a typed path is checked instead:
 * absolute, no NUL, and of the right kind (a folder with config.json, a readable file, an existing parent).
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, normalize } from 'node:path';
import type { PathPurpose } from '../../preload/contract';
import { IpcError } from './errors';

export interface UserPaths {
  /** Shows a dialog where there is one; { path: null, dialog: false } in browser mode. */
  choose(purpose: PathPurpose): Promise<{ path: string | null; dialog: boolean }>;
  /** The checked absolute path, or PATH_NOT_GRANTED / PATH_INVALID. */
  check(path: string, purpose: PathPurpose): string;
}

function checkKind(path: string, purpose: PathPurpose): string {
  if (path.includes('\0') || !isAbsolute(path)) {
    throw new IpcError('PATH_INVALID', `'${path}' is not an absolute path; type the full path (starting with / or a drive letter)`);
  }
  const p = normalize(path);
  if (purpose === 'model-folder') {
    if (!existsSync(p) || !statSync(p).isDirectory()) throw new IpcError('PATH_INVALID', `'${p}' is not a folder; choose a Hugging Face model folder`);
  } else if (purpose === 'run-folder') {
    if (!existsSync(p) || !statSync(p).isDirectory()) throw new IpcError('PATH_INVALID', `'${p}' is not a folder; choose the output folder of the exported run's train.py`);
  } else if (purpose === 'adapter-folder') {
    if (!existsSync(p) || !statSync(p).isDirectory()) throw new IpcError('PATH_INVALID', `'${p}' is not a folder; choose a PEFT adapter folder (adapter_config.json and adapter_model.safetensors)`);
  } else if (purpose === 'dataset-file') {
    if (!existsSync(p) || !statSync(p).isFile()) throw new IpcError('PATH_INVALID', `'${p}' is not a file; choose a .jsonl, .json, .csv or .txt dataset`);
  } else if (!existsSync(dirname(p)) || !statSync(dirname(p)).isDirectory()) {
    throw new IpcError('PATH_INVALID', `the folder '${dirname(p)}' does not exist; choose where to export inside an existing folder`);
  }
  return p;
}

/** Browser mode: typed paths, validated. */
export function typedPaths(): UserPaths {
  return {
    choose: async () => ({ path: null, dialog: false }),
    check: checkKind,
  };
}

/** Electron: only what a dialog returned, once, for the purpose it was chosen for. */
export function dialogPaths(show: (purpose: PathPurpose) => Promise<string | null>): UserPaths {
  const granted = new Map<string, PathPurpose>();
  return {
    async choose(purpose) {
      const path = await show(purpose);
      if (path !== null) granted.set(normalize(path), purpose);
      return { path, dialog: true };
    },
    check(path, purpose) {
      const p = normalize(path);
      if (granted.get(p) !== purpose) {
        throw new IpcError('PATH_NOT_GRANTED', `'${path}' was not chosen in a dialog for this ${purpose}; choose it with the Browse button`);
      }
      granted.delete(p);
      return checkKind(p, purpose);
    },
  };
}
