/**
 * LORASMITH_BENCH_QUICK=1: every benchmark runs its own code at reduced shapes, to check it end to end on any
 * machine (bench/run.ts then writes no section). Timings from such a run mean nothing.
 */
export const QUICK = process.env.LORASMITH_BENCH_QUICK === '1';

/** `full` normally, `quick` under LORASMITH_BENCH_QUICK=1. */
export function sized<T>(full: T, quick: T): T {
  return QUICK ? quick : full;
}
