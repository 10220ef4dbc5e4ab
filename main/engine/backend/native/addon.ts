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

/**
 * The fused kernels of native/src/fused.h (an addon built before them lacks these). Every call writes into
 * outputs the caller allocated; sizes are checked against the arrays' lengths. Those returning a number give -1,
 * or the first row/position whose label or index is out of range (then nothing was written).
 */
export interface NativeFusedKernels {
  /** x, out [groups, t, d]; cos, sin [t, d]: out = x·cos + [x2, x1]·sin. */
  rotary(x: Float32Array, cos: Float32Array, sin: Float32Array, out: Float32Array, groups: number, t: number, d: number): void;
  swiglu(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;
  swigluGrad(gate: Float32Array, up: Float32Array, dy: Float32Array, dgate: Float32Array, dup: Float32Array, n: number): void;
  rmsNorm(x: Float32Array, weight: Float32Array, eps: number, out: Float32Array, rows: number, cols: number): void;
  rmsNormGrad(
    x: Float32Array, weight: Float32Array, dy: Float32Array, eps: number, dx: Float32Array, dweight: Float32Array,
    rows: number, cols: number,
  ): void;
  crossEntropy(logits: Float32Array, labels: Int32Array, nll: Float32Array, lse: Float32Array, rows: number, vocab: number): number;
  crossEntropyGrad(
    logits: Float32Array, lse: Float32Array, labels: Int32Array, coef: Float32Array, dlogits: Float32Array,
    rows: number, vocab: number,
  ): number;
  gather(x: Float32Array, indices: Int32Array, out: Float32Array, outer: number, axis: number, inner: number, n: number): number;
  /** q [b, h, t, d], k and v [b, hkv, s, d] -> out [b, t, h·d], probs [b, h, t, s]; causal, query t at s − t + t. */
  attention(
    q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, probs: Float32Array,
    b: number, h: number, hkv: number, t: number, s: number, d: number, scale: number,
  ): void;
  attentionGrad(
    q: Float32Array, k: Float32Array, v: Float32Array, probs: Float32Array, dout: Float32Array,
    dq: Float32Array, dk: Float32Array, dv: Float32Array,
    b: number, h: number, hkv: number, t: number, s: number, d: number, scale: number,
  ): void;
}

/** A frozen weight in the addon's memory (an N-API external); freed by weightFree or when collected. */
export type NativeWeightHandle = { readonly __nativeWeight: never };

/** Stored formats by the addon's numbering (native/src/weights.h). */
export const NATIVE_FORMATS = ['F32', 'BF16', 'F16', 'Q8_0', 'Q4_0'] as const;

/**
 * The frozen-weight store of native/src/weights.h (an addon built before it lacks these). W is [rows = out,
 * cols = in]; formats are indices into NATIVE_FORMATS. Sizes are checked against the arrays' lengths.
 */
export interface NativeWeightKernels {
  weightCreate(format: number, rows: number, cols: number): NativeWeightHandle;
  /**
   * Rows [row0, row0 + rows) from `source` ([rows, cols] in sourceFormat: F32, BF16 or F16 bits; or, into a Q4_0
   * weight only, the rows' Q4_0 blocks as bytes).
   */
  weightFill(weight: NativeWeightHandle, row0: number, rows: number, source: Float32Array | Uint16Array | Uint8Array, sourceFormat: number): void;
  /** out [n, rows] = x [n, cols]·Wᵀ; gemv: the in-register kernel for a few rows, else tiled sgemm. */
  weightMatmul(weight: NativeWeightHandle, x: Float32Array, out: Float32Array, n: number, gemv: boolean): void;
  /** dx [n, cols] = dy [n, rows]·W. */
  weightMatmulT(weight: NativeWeightHandle, dy: Float32Array, dx: Float32Array, n: number): void;
  /** out [n, cols] = rows ids of W; -1, or the first position whose id is out of range (nothing written). */
  weightGather(weight: NativeWeightHandle, ids: Int32Array, out: Float32Array, n: number): number;
  weightDequantize(weight: NativeWeightHandle, row0: number, rows: number, out: Float32Array): void;
  /** Rows [row0, row0 + rows) as bytes in GGUF's layout of the weight's format (Q8_0, Q4_0: 34- / 18-byte blocks). */
  weightRead(weight: NativeWeightHandle, row0: number, rows: number, out: Uint8Array): void;
  weightFree(weight: NativeWeightHandle): void;
  weightInfo(weight: NativeWeightHandle): { format: string; rows: number; cols: number; bytes: number };
  weightLiveBytes(): number;
  /** 'avx2' or 'portable': the converting kernels in use. */
  weightKernels(): string;
  /** Forces the portable kernels on or off; returns the previous setting (tests compare both). */
  weightForcePortable(on: boolean): boolean;
}

const WEIGHT_NAMES = ['weightCreate', 'weightFill', 'weightMatmul', 'weightMatmulT', 'weightGather', 'weightDequantize', 'weightRead', 'weightFree', 'weightInfo', 'weightLiveBytes', 'weightKernels', 'weightForcePortable'] as const;

/** True when the loaded addon has the frozen-weight store (a prebuilt binary from before it does not). */
export function hasWeightKernels(addon: NativeAddon): addon is NativeAddon & NativeWeightKernels {
  return WEIGHT_NAMES.every((name) => typeof (addon as unknown as Record<string, unknown>)[name] === 'function');
}

const FUSED_NAMES = ['rotary', 'swiglu', 'swigluGrad', 'rmsNorm', 'rmsNormGrad', 'crossEntropy', 'crossEntropyGrad', 'gather', 'attention', 'attentionGrad'] as const;

/** True when the loaded addon has the fused kernels (a prebuilt binary from before them does not). */
export function hasFusedKernels(addon: NativeAddon): addon is NativeAddon & NativeFusedKernels {
  return FUSED_NAMES.every((name) => typeof (addon as unknown as Record<string, unknown>)[name] === 'function');
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
