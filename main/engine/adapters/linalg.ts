/**
 * Small dense float64 linear algebra for adapter analysis: thin Householder QR of tall matrices and a one-sided
 * Jacobi SVD of small square ones. ΔW = s·B·A is never formed: with B = Qb·Rb and Aᵀ = Qa·Ra,
 * ΔW = Qb·(s·Rb·Raᵀ)·Qaᵀ, so its singular values are those of the r×r core s·Rb·Raᵀ.
 * Matrices are row-major; sizes here are at most a few thousand rows by a few tens of columns.
 */

export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  /** Row-major, rows × cols. */
  readonly data: Float64Array;
}

export function matrix(rows: number, cols: number, data?: ArrayLike<number>): Matrix {
  const out = new Float64Array(rows * cols);
  if (data) {
    if (data.length !== rows * cols) throw new Error(`matrix data has ${data.length} values, expected ${rows}×${cols}`);
    for (let i = 0; i < out.length; i++) out[i] = data[i] as number;
  }
  return { rows, cols, data: out };
}

export function transpose(m: Matrix): Matrix {
  const out = new Float64Array(m.rows * m.cols);
  for (let i = 0; i < m.rows; i++) {
    for (let j = 0; j < m.cols; j++) out[j * m.rows + i] = m.data[i * m.cols + j] as number;
  }
  return { rows: m.cols, cols: m.rows, data: out };
}

export function multiply(a: Matrix, b: Matrix): Matrix {
  if (a.cols !== b.rows) throw new Error(`cannot multiply ${a.rows}×${a.cols} by ${b.rows}×${b.cols}`);
  const out = new Float64Array(a.rows * b.cols);
  for (let i = 0; i < a.rows; i++) {
    for (let k = 0; k < a.cols; k++) {
      const aik = a.data[i * a.cols + k] as number;
      if (aik === 0) continue;
      const bRow = k * b.cols;
      const outRow = i * b.cols;
      for (let j = 0; j < b.cols; j++) out[outRow + j] = (out[outRow + j] as number) + aik * (b.data[bRow + j] as number);
    }
  }
  return { rows: a.rows, cols: b.cols, data: out };
}

export function frobeniusNorm(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += (values[i] as number) ** 2;
  return Math.sqrt(sum);
}

export interface ThinQR {
  /** [rows, cols] with orthonormal columns */
  readonly q: Matrix;
  /** [cols, cols] upper triangular */
  readonly r: Matrix;
}

/** Householder QR of a tall matrix (rows ≥ cols), returning the thin factors. Stable for rank-deficient input. */
export function thinQR(m: Matrix): ThinQR {
  const { rows, cols } = m;
  if (rows < cols) throw new Error(`thinQR needs rows >= cols, got ${rows}×${cols}`);
  const a = Float64Array.from(m.data); // overwritten by R above the diagonal
  const reflectors: Float64Array[] = [];
  for (let k = 0; k < cols; k++) {
    const v = new Float64Array(rows - k);
    for (let i = k; i < rows; i++) v[i - k] = a[i * cols + k] as number;
    const norm = frobeniusNorm(v);
    const v0 = v[0] as number;
    const alpha = v0 >= 0 ? -norm : norm;
    v[0] = v0 - alpha;
    const vNorm = frobeniusNorm(v);
    if (vNorm > 0) for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) / vNorm;
    reflectors.push(v);
    // A[k:, k:] -= 2 v (vᵀ A[k:, k:])
    for (let j = k; j < cols; j++) {
      let dot = 0;
      for (let i = k; i < rows; i++) dot += (v[i - k] as number) * (a[i * cols + j] as number);
      for (let i = k; i < rows; i++) a[i * cols + j] = (a[i * cols + j] as number) - 2 * dot * (v[i - k] as number);
    }
  }
  const r = matrix(cols, cols);
  for (let i = 0; i < cols; i++) for (let j = i; j < cols; j++) r.data[i * cols + j] = a[i * cols + j] as number;
  // Q = H_0 · H_1 ⋯ H_{cols-1} · [I; 0], applied right to left.
  const q = matrix(rows, cols);
  for (let i = 0; i < cols; i++) q.data[i * cols + i] = 1;
  for (let k = cols - 1; k >= 0; k--) {
    const v = reflectors[k] as Float64Array;
    for (let j = 0; j < cols; j++) {
      let dot = 0;
      for (let i = k; i < rows; i++) dot += (v[i - k] as number) * (q.data[i * cols + j] as number);
      if (dot === 0) continue;
      for (let i = k; i < rows; i++) q.data[i * cols + j] = (q.data[i * cols + j] as number) - 2 * dot * (v[i - k] as number);
    }
  }
  return { q, r };
}

export interface SVD {
  /** [n, n], columns are left singular vectors */
  readonly u: Matrix;
  /** n values, descending, non-negative */
  readonly s: Float64Array;
  /** [n, n], columns are right singular vectors */
  readonly v: Matrix;
}

/**
 * One-sided Jacobi SVD of a square matrix (Hestenes): rotate column pairs of W = M·V until all are orthogonal;
 * then σ_j = ‖W[:, j]‖ and U[:, j] = W[:, j] / σ_j. Accurate to float64 rounding for the small cores used here.
 */
export function jacobiSVD(m: Matrix, maxSweeps = 60): SVD {
  const n = m.rows;
  if (m.cols !== n) throw new Error(`jacobiSVD expects a square matrix, got ${m.rows}×${m.cols}`);
  const w = Float64Array.from(m.data);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  const column = (x: Float64Array, p: number, q: number): [number, number, number] => {
    let app = 0, aqq = 0, apq = 0;
    for (let i = 0; i < n; i++) {
      const xp = x[i * n + p] as number;
      const xq = x[i * n + q] as number;
      app += xp * xp; aqq += xq * xq; apq += xp * xq;
    }
    return [app, aqq, apq];
  };
  const rotate = (x: Float64Array, p: number, q: number, c: number, s: number): void => {
    for (let i = 0; i < n; i++) {
      const xp = x[i * n + p] as number;
      const xq = x[i * n + q] as number;
      x[i * n + p] = c * xp - s * xq;
      x[i * n + q] = s * xp + c * xq;
    }
  };
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const [app, aqq, apq] = column(w, p, q);
        if (apq === 0 || Math.abs(apq) <= 1e-15 * Math.sqrt(app * aqq)) continue;
        rotated = true;
        const zeta = (aqq - app) / (2 * apq);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        rotate(w, p, q, c, s);
        rotate(v, p, q, c, s);
      }
    }
    if (!rotated) break;
  }
  const sigma = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += (w[i * n + j] as number) ** 2;
    sigma[j] = Math.sqrt(sum);
  }
  const order = [...sigma.keys()].sort((a, b) => (sigma[b] as number) - (sigma[a] as number));
  const u = matrix(n, n);
  const vSorted = matrix(n, n);
  const s = new Float64Array(n);
  order.forEach((src, dst) => {
    const value = sigma[src] as number;
    s[dst] = value;
    for (let i = 0; i < n; i++) {
      vSorted.data[i * n + dst] = v[i * n + src] as number;
      // A zero singular value leaves its left vector undefined; zeros keep products exact.
      u.data[i * n + dst] = value > 0 ? (w[i * n + src] as number) / value : 0;
    }
  });
  return { u, s, v: vSorted };
}
