/**
 * Choosing the next token from one position's logits, in transformers' order: repetition penalty, temperature,
 * top-k, top-p, then a seeded draw (or argmax when temperature is 0). Plain JS on a [V] row: the row is small
 * next to the forward pass, and the same code serves every backend.
 */
import { Rng } from '../train/rng';

export interface SamplingOptions {
  /** 0 (the default) is greedy. */
  readonly temperature?: number;
  /** Keep only the k most likely tokens; 0 or undefined keeps all. */
  readonly topK?: number;
  /** Keep the smallest set whose probability reaches p (at least the most likely token: 0 keeps only it); 1 or undefined keeps all. */
  readonly topP?: number;
  /** > 1 discourages tokens already present (CTRL's penalty, as transformers applies it); 1 = off. */
  readonly repetitionPenalty?: number;
  readonly seed?: number;
}

export class SamplingError extends Error {
  override readonly name = 'SamplingError';
  readonly code = 'INVALID_SAMPLING';
}

export function checkSamplingOptions(o: SamplingOptions): void {
  const bad = (what: string) => {
    throw new SamplingError(what);
  };
  if (o.temperature !== undefined && !(o.temperature >= 0 && Number.isFinite(o.temperature))) bad(`temperature must be >= 0, got ${o.temperature}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) bad(`top-k must be a non-negative integer, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP >= 0 && o.topP <= 1)) bad(`top-p must be in [0, 1], got ${o.topP}`);
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0 && Number.isFinite(o.repetitionPenalty))) {
    bad(`repetition penalty must be > 0, got ${o.repetitionPenalty}`);
  }
  if (o.seed !== undefined && !Number.isInteger(o.seed)) bad(`seed must be an integer, got ${o.seed}`);
}

/** In place: logit / penalty where positive, · penalty where negative, for every id seen. */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of new Set(seen)) {
    const v = logits[id];
    if (v === undefined) continue;
    logits[id] = v < 0 ? v * penalty : v / penalty;
  }
}

export function argmax(values: Float32Array): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** Candidate ids and their probabilities after temperature, top-k and top-p (most likely first). */
export function candidates(logits: Float32Array, temperature: number, topK: number, topP: number): { ids: number[]; probs: number[] } {
  let order = Array.from(logits.keys()).sort((a, b) => (logits[b] as number) - (logits[a] as number));
  if (topK > 0 && topK < order.length) order = order.slice(0, topK);
  const max = (logits[order[0] as number] as number) / temperature;
  const weights = order.map((id) => Math.exp((logits[id] as number) / temperature - max));
  const total = weights.reduce((a, b) => a + b, 0);
  let probs = weights.map((w) => w / total);
  if (topP < 1) {
    let cumulative = 0;
    let keep = 0;
    while (keep < probs.length && cumulative < topP) cumulative += probs[keep++] as number;
    order = order.slice(0, Math.max(1, keep));
    const kept = probs.slice(0, order.length);
    const sum = kept.reduce((a, b) => a + b, 0);
    probs = kept.map((p) => p / sum);
  }
  return { ids: order, probs };
}

export class Sampler {
  private readonly rng: Rng;

  constructor(private readonly options: SamplingOptions) {
    checkSamplingOptions(options);
    this.rng = new Rng(options.seed ?? 0);
  }

  /** logits [V] (modified in place) and the ids so far -> the next id. */
  next(logits: Float32Array, history: readonly number[]): number {
    applyRepetitionPenalty(logits, history, this.options.repetitionPenalty ?? 1);
    const temperature = this.options.temperature ?? 0;
    if (temperature === 0) return argmax(logits);
    const { ids, probs } = candidates(logits, temperature, this.options.topK ?? 0, this.options.topP ?? 1);
    let u = this.rng.next();
    for (let i = 0; i < ids.length; i++) {
      u -= probs[i] as number;
      if (u < 0) return ids[i] as number;
    }
    return ids[ids.length - 1] as number;
  }
}
