/** Equal-width bins for the dataset token-length histogram. */
export interface Bin {
  readonly from: number;
  /** Exclusive, except for the last bin, which includes the maximum. */
  readonly to: number;
  readonly count: number;
}

export function histogram(values: readonly number[], binCount = 20): Bin[] {
  if (values.length === 0) return [];
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const width = Math.max(1, Math.ceil((max - min + 1) / binCount));
  const bins = Math.max(1, Math.ceil((max - min + 1) / width));
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - min) / width))]! += 1;
  return counts.map((count, i) => ({ from: min + i * width, to: min + (i + 1) * width, count }));
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}
