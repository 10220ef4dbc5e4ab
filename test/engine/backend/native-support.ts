/**
 * Shared by the native kernel tests: backends, a seeded generator, and a float64 reference product that knows
 * nothing of tfjs or BLAS.
 */
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { loadAddon } from '../../../main/engine/backend/native/addon';

export const addonLoad = loadAddon();
export const addonAvailable = addonLoad.ok;

/**
 * Where the BLAS development package is installed (CI: .ci/run installs it, and sets LORASMITH_REQUIRE_NATIVE=1),
 * `npm install` must have built the addon: a missing addon there is a failure, not a skip. Elsewhere (no
 * compiler, no BLAS) the native comparisons skip, saying why, and the fallback tests run.
 */
export const addonRequired = process.env.LORASMITH_REQUIRE_NATIVE === '1' || (process.platform === 'linux' && (Boolean(process.env.CI) ||
  ['/usr/include/cblas.h', '/usr/include/x86_64-linux-gnu/cblas.h', '/usr/include/aarch64-linux-gnu/cblas.h'].some(existsSync)));

/**
 * Whether tests of `what` skip: never where the addon is required (they run and fail without it), otherwise
 * when it is missing, with the reason printed once.
 */
export function nativeSkipReason(what: string, available: boolean): boolean {
  if (available || addonRequired) return false;
  console.warn(`skipping the tests of ${what}: ${addonLoad.ok ? 'the addon predates it (npm run build:native)' : addonLoad.reason}; ` +
    'set LORASMITH_REQUIRE_NATIVE=1 to make this a failure');
  return true;
}

export async function useBackend(name: 'cpu' | 'wasm'): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`backend ${name} failed to initialise`);
  await tf.ready();
}

export { randomValues, seededRandom } from './fused-reference';

const sizeOf = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);

/**
 * op(a)·op(b) in float64 with NumPy batch broadcasting, plus Σ|a||b| per element (the scale of float32 rounding).
 */
export function referenceMatMul(
  a: Float32Array, aShape: readonly number[], b: Float32Array, bShape: readonly number[],
  transposeA: boolean, transposeB: boolean,
): { shape: number[]; values: Float64Array; magnitude: Float64Array } {
  const [ar = 0, ac = 0] = aShape.slice(-2);
  const [br = 0, bc = 0] = bShape.slice(-2);
  const m = transposeA ? ac : ar;
  const k = transposeA ? ar : ac;
  const n = transposeB ? br : bc;
  const aBatch = aShape.slice(0, -2);
  const bBatch = bShape.slice(0, -2);
  const rank = Math.max(aBatch.length, bBatch.length);
  const pad = (dims: number[]): number[] => [...new Array<number>(rank - dims.length).fill(1), ...dims];
  const aDims = pad(aBatch);
  const bDims = pad(bBatch);
  const outDims = aDims.map((d, i) => (d === 1 ? (bDims[i] ?? 1) : d));
  const batch = sizeOf(outDims);
  const values = new Float64Array(batch * m * n);
  const magnitude = new Float64Array(batch * m * n);
  for (let flat = 0; flat < batch; flat++) {
    // Unravel the output batch index, then ravel it into each operand with size-1 dims pinned to 0.
    let rest = flat;
    let ai = 0;
    let bi = 0;
    let aStride = 1;
    let bStride = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const coordinate = rest % (outDims[d] ?? 1);
      rest = Math.floor(rest / (outDims[d] ?? 1));
      const ad = aDims[d] ?? 1;
      const bd = bDims[d] ?? 1;
      if (ad !== 1) ai += coordinate * aStride;
      if (bd !== 1) bi += coordinate * bStride;
      aStride *= ad;
      bStride *= bd;
    }
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        let abs = 0;
        for (let p = 0; p < k; p++) {
          const x = a[ai * m * k + (transposeA ? p * m + i : i * k + p)] ?? NaN;
          const y = b[bi * k * n + (transposeB ? j * k + p : p * n + j)] ?? NaN;
          sum += x * y;
          abs += Math.abs(x * y);
        }
        values[flat * m * n + i * n + j] = sum;
        magnitude[flat * m * n + i * n + j] = abs;
      }
    }
  }
  return { shape: [...outDims, m, n], values, magnitude };
}

/** Largest |got - want| / (Σ|a||b| + 1e-6): float32 products of k terms land well under 1e-5 on this scale. */
export function worstRelativeError(got: ArrayLike<number>, want: Float64Array, magnitude: Float64Array): number {
  if (got.length !== want.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const error = Math.abs((got[i] ?? NaN) - (want[i] ?? NaN)) / ((magnitude[i] ?? 0) + 1e-6);
    if (!(error <= worst)) worst = Number.isNaN(error) ? Infinity : error;
  }
  return worst;
}
