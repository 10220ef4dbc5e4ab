/**
 * Tokenized examples to padded batches: inputs [B, T], labels [B, T] (the next token) and weights [B, T]
 * (1 where the next token is a target; 0 for prompt, template, padding and the last position). Optional packing
 * concatenates examples into rows of exactly maxSeqLen tokens. Batch order is a seeded shuffle per epoch.
 */
import { hashSeed, Rng } from './rng';
import type { TokenizedExample } from './tokenize';

export interface Batch {
  readonly batchSize: number;
  readonly seqLen: number;
  /** [B*T] row-major */
  readonly inputs: Int32Array;
  readonly labels: Int32Array;
  readonly weights: Float32Array;
  /** Real (non-padding) tokens in the batch. */
  readonly tokens: number;
}

/** Concatenates examples (masks kept) and cuts the stream into rows of maxSeqLen tokens. */
export function packExamples(examples: readonly TokenizedExample[], maxSeqLen: number): TokenizedExample[] {
  const rows: TokenizedExample[] = [];
  let ids: number[] = [];
  let train: number[] = [];
  let line = examples[0]?.line ?? 0;
  for (const example of examples) {
    if (ids.length === 0) line = example.line;
    ids.push(...example.ids);
    train.push(...example.train);
    while (ids.length >= maxSeqLen) {
      rows.push({ line, ids: ids.slice(0, maxSeqLen), train: train.slice(0, maxSeqLen) });
      ids = ids.slice(maxSeqLen);
      train = train.slice(maxSeqLen);
      line = example.line;
    }
  }
  if (train.slice(1).some((t) => t === 1)) rows.push({ line, ids, train });
  return rows;
}

export function makeBatch(rows: readonly TokenizedExample[], padId: number): Batch {
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.ids.length));
  const inputs = new Int32Array(B * T).fill(padId);
  const labels = new Int32Array(B * T).fill(padId);
  const weights = new Float32Array(B * T);
  let tokens = 0;
  rows.forEach((row, b) => {
    const n = row.ids.length;
    tokens += n;
    for (let t = 0; t < n; t++) {
      inputs[b * T + t] = row.ids[t] as number;
      if (t + 1 < n) {
        labels[b * T + t] = row.ids[t + 1] as number;
        weights[b * T + t] = row.train[t + 1] as number;
      }
    }
  });
  return { batchSize: B, seqLen: T, inputs, labels, weights, tokens };
}

/** Indices of the rows of each batch of an epoch: a seeded shuffle (or the file order), cut into batchSize. */
export function epochBatches(rowCount: number, batchSize: number, seed: number, epoch: number, shuffle = true): number[][] {
  const indices = Array.from({ length: rowCount }, (_, i) => i);
  const order = shuffle ? new Rng(hashSeed(seed, 0xe90c, epoch)).shuffle(indices) : indices;
  const batches: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) batches.push(order.slice(i, i + batchSize));
  return batches;
}
