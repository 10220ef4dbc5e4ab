/**
 * The shape arithmetic of a (batched) matrix product, independent of where the numbers live: which sgemm calls
 * compute `op(a)·op(b)` for tfjs's BatchMatMul semantics (leading dims broadcast as in NumPy, the last two are the
 * matrices, op transposes when asked).
 *
 *   a [...batchA, m, k] (or [..., k, m] when transposeA)   b [...batchB, k, n] (or [..., n, k] when transposeB)
 *   out [...broadcast(batchA, batchB), m, n]
 */
import { NativeKernelError } from './errors';

/** One call of the addon's batched sgemm; offsets and strides count float32 elements. */
export interface SgemmCall {
  readonly batch: number;
  readonly offsetA: number;
  readonly strideA: number;
  readonly offsetB: number;
  readonly strideB: number;
  readonly offsetC: number;
  readonly strideC: number;
}

export interface MatMulPlan {
  readonly outShape: number[];
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly transposeA: boolean;
  readonly transposeB: boolean;
  readonly calls: readonly SgemmCall[];
}

const product = (dims: readonly number[]): number => dims.reduce((p, d) => p * d, 1);

/** NumPy broadcasting of two batch shapes, right-aligned. */
export function broadcastBatchShape(aDims: readonly number[], bDims: readonly number[]): number[] {
  const rank = Math.max(aDims.length, bDims.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = aDims[aDims.length - rank + i] ?? 1;
    const db = bDims[bDims.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new NativeKernelError('MATMUL_BATCH_MISMATCH',
        `matMul: batch dimensions [${aDims.join(', ')}] and [${bDims.join(', ')}] do not broadcast ` +
        `(${da} against ${db}); make them equal or 1`);
    }
    out.push(da === 1 ? db : da); // a size-1 dim takes the other's size, 0 included
  }
  return out;
}

/** Index into an operand's flattened batch for the output batch index `flat`, honouring size-1 dimensions. */
function sourceBatchIndex(flat: number, outDims: readonly number[], srcDims: readonly number[]): number {
  let index = 0;
  let srcStride = 1;
  let remaining = flat;
  for (let i = outDims.length - 1; i >= 0; i--) {
    const outDim = outDims[i] ?? 1;
    const coordinate = remaining % outDim;
    remaining = Math.floor(remaining / outDim);
    const srcDim = srcDims[srcDims.length - outDims.length + i] ?? 1;
    if (srcDim !== 1) index += coordinate * srcStride;
    srcStride *= srcDim;
  }
  return index;
}

export function planMatMul(
  aShape: readonly number[], bShape: readonly number[], transposeA: boolean, transposeB: boolean,
): MatMulPlan {
  if (aShape.length < 2 || bShape.length < 2) {
    throw new NativeKernelError('MATMUL_RANK',
      `matMul needs operands of rank 2 or more, got shapes [${aShape.join(', ')}] and [${bShape.join(', ')}]`);
  }
  const [aRows = 0, aCols = 0] = aShape.slice(-2);
  const [bRows = 0, bCols = 0] = bShape.slice(-2);
  const m = transposeA ? aCols : aRows;
  const k = transposeA ? aRows : aCols;
  const kB = transposeB ? bCols : bRows;
  const n = transposeB ? bRows : bCols;
  if (k !== kB) {
    throw new NativeKernelError('MATMUL_INNER_MISMATCH',
      `matMul: inner dimensions differ (${k} against ${kB}) for shapes [${aShape.join(', ')}] and ` +
      `[${bShape.join(', ')}] with transposeA=${transposeA}, transposeB=${transposeB}`);
  }
  const aBatchDims = aShape.slice(0, -2);
  const bBatchDims = bShape.slice(0, -2);
  const outBatchDims = broadcastBatchShape(aBatchDims, bBatchDims);
  const outShape = [...outBatchDims, m, n];
  const batch = product(outBatchDims);
  const batchA = product(aBatchDims);
  const batchB = product(bBatchDims);
  const sizeA = m * k;
  const sizeB = k * n;
  const sizeC = m * n;
  const plan = { outShape, m, n, k, transposeA, transposeB };
  if (batch === 0 || sizeC === 0) return { ...plan, calls: [] };

  // The common cases are one call: equal batches, or one side a single matrix broadcast with stride 0.
  if ((batchA === batch || batchA === 1) && (batchB === batch || batchB === 1) &&
      sameBroadcastLayout(aBatchDims, outBatchDims) && sameBroadcastLayout(bBatchDims, outBatchDims)) {
    return {
      ...plan,
      calls: [{
        batch, offsetA: 0, strideA: batchA === 1 ? 0 : sizeA, offsetB: 0, strideB: batchB === 1 ? 0 : sizeB,
        offsetC: 0, strideC: sizeC,
      }],
    };
  }
  // General broadcasting ([2, 1] against [1, 3]): one single-matrix call per output matrix.
  const calls: SgemmCall[] = [];
  for (let i = 0; i < batch; i++) {
    calls.push({
      batch: 1,
      offsetA: sourceBatchIndex(i, outBatchDims, aBatchDims) * sizeA, strideA: 0,
      offsetB: sourceBatchIndex(i, outBatchDims, bBatchDims) * sizeB, strideB: 0,
      offsetC: i * sizeC, strideC: sizeC,
    });
  }
  return { ...plan, calls };
}

/** True when an operand's batch is either a single matrix or laid out exactly as the output's batch. */
function sameBroadcastLayout(srcDims: readonly number[], outDims: readonly number[]): boolean {
  if (product(srcDims) === 1) return true;
  for (let i = 1; i <= outDims.length; i++) {
    if ((srcDims[srcDims.length - i] ?? 1) !== outDims[outDims.length - i]) return false;
  }
  return true;
}
