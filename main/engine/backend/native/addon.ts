/**
 * Finding and loading the native addon (native/, built by scripts/build-native.js or shipped prebuilt).
 *
 * Looked for, in order: an explicit path; then, walking up from this file (dev tree, the bundled out/main, or a
 * packaged app's resources), `native/prebuilds/<platform>-<arch>/lorasmith_native.node` and
 * `native/build/Release/lorasmith_native.node`. Loading never throws: a missing or broken addon is a reason string.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The functions native/src/addon.c exports. */
export interface NativeAddon {
  /** C_i = op(A_i)·op(B_i) for i < batch; row-major, strides in elements, stride 0 broadcasts. */
  sgemm(
    transA: boolean, transB: boolean, batch: number, m: number, n: number, k: number,
    a: Float32Array, strideA: number, b: Float32Array, strideB: number, c: Float32Array, strideC: number,
  ): void;
  setThreads(threads: number): void;
  getThreads(): number;
  physicalCores(): number;
  info(): { blas: string; config: string; threads: number };
}

export type AddonLoad = { ok: true; addon: NativeAddon; path: string } | { ok: false; reason: string };

const ADDON_FILE = 'lorasmith_native.node';

function here(): string {
  // import.meta.dirname exists in Node ≥ 20.11 ESM; the URL form also works after bundling.
  return dirname(fileURLToPath(import.meta.url));
}

/** Candidate addon paths, nearest first. */
export function addonCandidates(start: string = here()): string[] {
  const candidates: string[] = [];
  const platformDir = `${process.platform}-${process.arch}`;
  let dir = resolve(start);
  for (;;) {
    candidates.push(join(dir, 'native', 'prebuilds', platformDir, ADDON_FILE));
    candidates.push(join(dir, 'native', 'build', 'Release', ADDON_FILE));
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return candidates;
}

function isAddon(value: unknown): value is NativeAddon {
  if (typeof value !== 'object' || value === null) return false;
  const names = ['sgemm', 'setThreads', 'getThreads', 'physicalCores', 'info'] as const;
  return names.every((name) => typeof (value as Record<string, unknown>)[name] === 'function');
}

let cached: Map<string, AddonLoad> | undefined;

/** Loads the addon from `explicitPath`, or the first candidate that exists. The result is cached per path. */
export function loadAddon(explicitPath?: string): AddonLoad {
  const path = explicitPath ?? addonCandidates().find((candidate) => existsSync(candidate));
  if (path === undefined) {
    return { ok: false, reason: 'native addon not built (run `node scripts/build-native.js`; needs a C compiler and OpenBLAS)' };
  }
  cached ??= new Map();
  const known = cached.get(path);
  if (known) return known;
  let result: AddonLoad;
  try {
    const loaded: unknown = createRequire(import.meta.url)(path);
    result = isAddon(loaded) ? { ok: true, addon: loaded, path }
      : { ok: false, reason: `${path} is not the lorasmith native addon (missing exports)` };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    result = { ok: false, reason: `native addon ${path} failed to load: ${message.split('\n')[0]}` };
  }
  cached.set(path, result);
  return result;
}
