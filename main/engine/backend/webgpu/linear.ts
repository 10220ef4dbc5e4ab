/**
 * The frozen linear on webgpu in one kernel: y = x·op(W) + bias + scale·u·op(B), where W is the frozen weight,
 * float32 or kept on the GPU at its stored half precision (F16 or BF16, two values per 32-bit word, converted in
 * the kernel), and u·B is a LoRA pair's second product (u = x·At from a plain matMul). The gradient runs the same
 * kernel with W and the LoRA factor read the other way: dx = dy·op(W)ᵀ + dU·Atᵀ (fused-ops' fusedFrozenLinear).
 *
 * Half-precision words and not `array<f16>`: f16 types need `enable f16;` ahead of every declaration, which tfjs's
 * shader assembly does not allow, and the `shader-f16` feature tfjs does not request. `unpack2x16float` is core
 * WGSL and converts exactly; BF16 is the upper half of a float32, so a shift converts it.
 *
 * Shapes: x [M, K], W stored [rows, cols] with op(W) [K, N] (W itself, or Wᵀ when transposeWeight), bias [N],
 * u [M, R], loraB [R, N] (or [N, R] read transposed) -> y [M, N].
 */
import type * as tf from '@tensorflow/tfjs-core';
import { FROZEN_LINEAR_KERNEL, type FrozenLinearAttrs, type FrozenWeightFormat } from '../fused-ops';
import { FLAT_WORKGROUP, flatWorkgroups, reduceSnippet, release, runProgram, WORKGROUP_ROW, type KernelArgs, type Uniform } from './program';

const TILE = 64;
const TILE_K = 16;
/** Rows up to which the product is a matrix-vector kernel (decoding): a 64-row tile would idle 60 of them. */
export const GEMV_ROWS = 4;
const GEMV_SLICES = 4;
const DOT_THREADS = 64;

/** WGSL `weightAtFlat(flat)`: element `flat` of the stored row-major W as f32. */
export function weightRead(format: FrozenWeightFormat): string {
  switch (format) {
    case 'F32':
      return 'fn weightAtFlat(flat : i32) -> f32 { return weight[flat]; }';
    case 'F16':
      return `fn weightAtFlat(flat : i32) -> f32 {
        return unpack2x16float(bitcast<u32>(weight[flat >> 1u]))[flat & 1];
      }`;
    case 'BF16':
      return `fn weightAtFlat(flat : i32) -> f32 {
        let word = bitcast<u32>(weight[flat >> 1u]);
        return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (flat & 1) == 1));
      }`;
  }
}

const FIELDS = 'm : i32, n : i32, k : i32, rank : i32, cols : i32, splits : i32, kPer : i32, scale : f32,';

/**
 * Splits of the k range for a product with few output tiles and a long k (the gradient through a vocabulary-sized
 * head: dy [n, V]·W with V = 151936 is 28 tiles, each 9500 steps deep, on a GPU with a hundred-odd cores): enough
 * for about 256 workgroups, each at least 512 deep. 1 means no split.
 */
export function kSplits(tiles: number, k: number): { splits: number; kPer: number } {
  if (tiles >= 64 || k < 2048) return { splits: 1, kPer: k };
  const wanted = Math.min(Math.ceil(256 / tiles), Math.floor(k / 512));
  const kPer = Math.ceil(k / wanted / TILE_K) * TILE_K;
  return { splits: Math.ceil(k / kPer), kPer };
}

/** `finish(row, col, product)`: the product plus the bias and the LoRA term of output (row, col). */
function epilogue(hasBias: boolean, hasLora: boolean, transposeB: boolean): string {
  const b = transposeB ? 'loraB[col * uniforms.rank + r]' : 'loraB[r * uniforms.n + col]';
  return `
    fn finish(row : i32, col : i32, product : f32) -> f32 {
      var value = product;
      ${hasBias ? 'value += bias[col];' : ''}
      ${hasLora ? `var lora = 0.0;
      for (var r = 0; r < uniforms.rank; r++) { lora += loraU[row * uniforms.rank + r] * ${b}; }
      value += uniforms.scale * lora;` : ''}
      return value;
    }`;
}

/** Flat index in the stored W of op(W)'s (k, n). */
const weightIndex = (transposed: boolean): string => (transposed ? 'n * uniforms.cols + k' : 'k * uniforms.cols + n');

/**
 * 64×64 output tiles, 16×16 threads of 4×4 outputs each, through workgroup tiles of x and op(W) 16 deep in k. Split
 * (kSplits), workgroup tile + tiles·s sums k in [s·kPer, (s + 1)·kPer) and writes its raw sums to partial [splits,
 * M, N] for splitSumCode to add up and finish.
 */
function tiledCode(transposed: boolean, split: boolean, head: string): string {
  // Threads walk W's contiguous dimension as they load its tile: n when op(W) = W, k when it is Wᵀ.
  const wLoad = transposed ? 'let wn = e / TILE_K; let wk = e % TILE_K;' : 'let wk = e / TILE; let wn = e % TILE;';
  return `
    ${head}
    const TILE = ${TILE};
    const TILE_K = ${TILE_K};
    var<workgroup> xTile : array<array<f32, TILE_K>, TILE>;
    var<workgroup> wTile : array<array<f32, TILE>, TILE_K>;
    fn main(index : i32) {
      let tilesN = (uniforms.n + TILE - 1) / TILE;
      let tiles = tilesN * ((uniforms.m + TILE - 1) / TILE);
      let group = workgroupRow();
      if (group >= tiles * uniforms.splits) { return; }
      let tile = group % tiles;
      let kStart = (group / tiles) * uniforms.kPer;
      let kEnd = min(kStart + uniforms.kPer, uniforms.k);
      let m0 = (tile / tilesN) * TILE;
      let n0 = (tile % tilesN) * TILE;
      let lx = i32(localId.x);
      let ly = i32(localId.y);
      let lane = i32(localIndex);
      var acc : array<f32, 16>;
      for (var k0 = kStart; k0 < kEnd; k0 += TILE_K) {
        for (var i = 0; i < 4; i++) {
          let e = lane + i * 256;
          let xm = e / TILE_K;
          let xk = e % TILE_K;
          let row = m0 + xm;
          let kx = k0 + xk;
          xTile[xm][xk] = select(0.0, x[row * uniforms.k + kx], row < uniforms.m && kx < kEnd);
          ${wLoad}
          let k = k0 + wk;
          let n = n0 + wn;
          wTile[wk][wn] = select(0.0, weightAtFlat(${weightIndex(transposed)}), k < kEnd && n < uniforms.n);
        }
        workgroupBarrier();
        for (var kk = 0; kk < TILE_K; kk++) {
          for (var i = 0; i < 4; i++) {
            let a = xTile[ly * 4 + i][kk];
            for (var j = 0; j < 4; j++) { acc[i * 4 + j] += a * wTile[kk][lx + 16 * j]; }
          }
        }
        workgroupBarrier();
      }
      for (var i = 0; i < 4; i++) {
        let row = m0 + ly * 4 + i;
        for (var j = 0; j < 4; j++) {
          let col = n0 + lx + 16 * j;
          if (row < uniforms.m && col < uniforms.n) {
            ${split ? 'setOutputAtIndex(((group / tiles) * uniforms.m + row) * uniforms.n + col, acc[i * 4 + j]);' : 'setOutputAtIndex(row * uniforms.n + col, finish(row, col, acc[i * 4 + j]));'}
          }
        }
      }
    }`;
}

/** The split product's partial sums [splits, M, N] added up per output, then the bias and LoRA terms. */
function splitSumCode(head: string): string {
  return `
    ${head}
    fn main(index : i32) {
      if (index >= uniforms.m * uniforms.n) { return; }
      var sum = 0.0;
      for (var s = 0; s < uniforms.splits; s++) { sum += partial[s * uniforms.m * uniforms.n + index]; }
      setOutputAtIndex(index, finish(index / uniforms.n, index % uniforms.n, sum));
    }`;
}

/**
 * Up to GEMV_ROWS rows of x·W (W [K, N]): 64 columns per workgroup, each column's k range split over 4 slices of
 * threads and summed through workgroup memory; adjacent threads read adjacent columns of each row of W.
 */
function columnsCode(head: string): string {
  return `
    ${head}
    var<workgroup> partial : array<f32, ${GEMV_ROWS * GEMV_SLICES * 64}>;
    fn main(index : i32) {
      let lx = i32(localId.x);
      let slice = i32(localId.y);
      let col = workgroupRow() * 64 + lx;
      var acc : array<f32, ${GEMV_ROWS}>;
      if (col < uniforms.n) {
        for (var k = slice; k < uniforms.k; k += ${GEMV_SLICES}) {
          let w = weightAtFlat(k * uniforms.cols + col);
          for (var r = 0; r < uniforms.m; r++) { acc[r] += x[r * uniforms.k + k] * w; }
        }
      }
      for (var r = 0; r < ${GEMV_ROWS}; r++) { partial[(r * ${GEMV_SLICES} + slice) * 64 + lx] = acc[r]; }
      workgroupBarrier();
      if (slice == 0 && col < uniforms.n) {
        for (var r = 0; r < uniforms.m; r++) {
          var sum = 0.0;
          for (var s = 0; s < ${GEMV_SLICES}; s++) { sum += partial[(r * ${GEMV_SLICES} + s) * 64 + lx] ; }
          setOutputAtIndex(r * uniforms.n + col, finish(r, col, sum));
        }
      }
    }`;
}

/**
 * Up to GEMV_ROWS rows of x·Wᵀ (W [N, K], nn.Linear's layout): one workgroup per output column, its threads
 * striding along the contiguous row of W and summing across the workgroup.
 */
function rowDotsCode(head: string): string {
  return `
    ${head}
    ${reduceSnippet('groupSum', 'sum', DOT_THREADS)}
    fn main(index : i32) {
      let col = workgroupRow();
      if (col >= uniforms.n) { return; }
      let lane = i32(localIndex);
      var acc : array<f32, ${GEMV_ROWS}>;
      for (var k = lane; k < uniforms.k; k += ${DOT_THREADS}) {
        let w = weightAtFlat(col * uniforms.cols + k);
        for (var r = 0; r < uniforms.m; r++) { acc[r] += x[r * uniforms.k + k] * w; }
      }
      for (var r = 0; r < ${GEMV_ROWS}; r++) {
        let sum = groupSum(acc[r], lane);
        if (lane == 0 && r < uniforms.m) { setOutputAtIndex(r * uniforms.n + col, finish(r, col, sum)); }
      }
    }`;
}

type Shape = 'tiled' | 'columns' | 'rowdots';

function linear({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, weight, bias, loraU, loraB } = inputs as Record<'x' | 'weight', tf.TensorInfo> & Partial<Record<'bias' | 'loraU' | 'loraB', tf.TensorInfo>>;
  const a = attrs as unknown as FrozenLinearAttrs;
  const [m = 0, k = 0] = x.shape;
  const [expectedK, n] = a.transposeWeight ? [a.cols, a.rows] : [a.rows, a.cols];
  if (k !== expectedK) {
    throw new Error(`${FROZEN_LINEAR_KERNEL}: x has ${k} columns, op(W) of the stored [${a.rows}, ${a.cols}] needs ${expectedK}`);
  }
  const hasLora = loraU !== undefined && loraB !== undefined;
  const rank = hasLora ? (loraU.shape[1] ?? 0) : 0;
  const names = ['x', 'weight', ...(bias ? ['bias'] : []), ...(hasLora ? ['loraU', 'loraB'] : [])];
  const tensors = [x, weight, ...(bias ? [bias] : []), ...(hasLora ? [loraU, loraB] : [])];
  const head = `${weightRead(a.format)}${WORKGROUP_ROW}${epilogue(bias !== undefined, hasLora, a.transposeLoraB)}`;
  const shape: Shape = m > GEMV_ROWS ? 'tiled' : a.transposeWeight ? 'rowdots' : 'columns';
  const tiles = Math.ceil(m / TILE) * Math.ceil(n / TILE);
  const { splits, kPer } = shape === 'tiled' ? kSplits(tiles, k) : { splits: 1, kPer: k };
  const uniforms: Uniform[] = [
    ...[m, n, k, rank, a.cols, splits, kPer].map((v) => ({ type: 'int32' as const, data: [v] })),
    { type: 'float32', data: [a.scale] },
  ];
  const epilogueKey = `${bias ? 'bias' : ''}_${hasLora ? (a.transposeLoraB ? 'lorabt' : 'lorab') : ''}`;
  const key = `linear_${shape}_${a.format}_${a.transposeWeight ? 'wt' : 'w'}_${splits > 1 ? 'split' : epilogueKey}`;
  if (splits > 1) {
    const partial = runProgram(backend, {
      key, inputs: ['x', 'weight'], outputShape: [splits, m, n], uniformFields: FIELDS,
      workgroupSize: [16, 16, 1], workgroups: tiles * splits, code: tiledCode(a.transposeWeight, true, `${weightRead(a.format)}${WORKGROUP_ROW}`),
    }, [x, weight], 'float32', uniforms);
    const summed = runProgram(backend, {
      key: `linear_split_sum_${epilogueKey}`, inputs: ['partial', ...names.slice(2)], outputShape: [m, n], uniformFields: FIELDS,
      workgroupSize: FLAT_WORKGROUP, workgroups: flatWorkgroups(m * n), code: splitSumCode(epilogue(bias !== undefined, hasLora, a.transposeLoraB)),
    }, [partial, ...tensors.slice(2)], 'float32', uniforms);
    release(backend, partial);
    return summed;
  }
  const launch = {
    tiled: { workgroupSize: [16, 16, 1] as const, workgroups: tiles, code: tiledCode(a.transposeWeight, false, head) },
    columns: { workgroupSize: [64, GEMV_SLICES, 1] as const, workgroups: Math.ceil(n / 64), code: columnsCode(head) },
    rowdots: { workgroupSize: [DOT_THREADS, 1, 1] as const, workgroups: n, code: rowDotsCode(head) },
  }[shape];
  return runProgram(backend, { key, inputs: names, outputShape: [m, n], uniformFields: FIELDS, ...launch }, tensors, 'float32', uniforms);
}

export const LINEAR_KERNELS: ReadonlyMap<string, tf.KernelFunc> = new Map<string, tf.KernelFunc>([
  [FROZEN_LINEAR_KERNEL, linear as tf.KernelFunc],
]);
