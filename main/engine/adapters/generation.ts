/**
 * Adapters for one generation request: `--adapter DIR[=SCALE]`, repeatable, becomes a weighted mix of adapters
 * resident on the loaded base (y = W0·x + Σ scale_i·s_i·B_i·A_i·x). Each folder is preflight-checked first.
 */
import { basename, resolve } from 'node:path';
import { AdapterError } from './errors';
import { ResidentAdapters, type AdapterModel } from './resident';

export interface AdapterSpec {
  readonly dir: string;
  /** Mix weight multiplying the adapter's own alpha/r scaling (default 1). */
  readonly scale: number;
}

/** 'DIR' or 'DIR=SCALE' (the last '=' followed by a number; a folder name may itself contain '='). */
export function parseAdapterSpec(text: string): AdapterSpec {
  const at = text.lastIndexOf('=');
  if (at > 0) {
    const scaleText = text.slice(at + 1);
    const scale = Number(scaleText);
    if (scaleText.trim() !== '' && Number.isFinite(scale)) return { dir: text.slice(0, at), scale };
    if (/^[-+.\d]/.test(scaleText)) throw new AdapterError('INVALID_ARGUMENT', `adapter scale must be a number, got '${scaleText}' in '${text}'`);
  }
  if (text.trim() === '') throw new AdapterError('INVALID_ARGUMENT', 'an adapter folder must be given');
  return { dir: text, scale: 1 };
}

/**
 * Loads every adapter onto `model` (checked against it) and activates them as one weighted mix. Names are the
 * folder names, made unique. Returns the resident set: `resident.clear()` takes the model back to its base.
 */
export function loadAdaptersForGeneration(model: AdapterModel, specs: readonly AdapterSpec[]): ResidentAdapters {
  const resident = new ResidentAdapters(model);
  const active: { name: string; weight: number }[] = [];
  try {
    for (const spec of specs) {
      let name = basename(resolve(spec.dir));
      for (let i = 2; resident.names.includes(name); i++) name = `${basename(resolve(spec.dir))}#${i}`;
      resident.loadFromDir(name, spec.dir);
      active.push({ name, weight: spec.scale });
    }
    resident.use(active);
    return resident;
  } catch (error) {
    resident.clear();
    throw error;
  }
}
