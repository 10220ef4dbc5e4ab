/**
 * Learning-rate schedules with linear warmup, as transformers' get_*_schedule_with_warmup define them:
 * during warmup lr·step/warmup, then constant, linear decay to 0, or half a cosine to 0 at totalSteps.
 */
export type ScheduleKind = 'constant' | 'linear' | 'cosine';
export const SCHEDULES: readonly ScheduleKind[] = ['constant', 'linear', 'cosine'];

export interface ScheduleOptions {
  readonly kind: ScheduleKind;
  readonly lr: number;
  readonly warmupSteps: number;
  readonly totalSteps: number;
}

/** The learning rate for optimizer step `step` (0-based). */
export function learningRateAt(step: number, o: ScheduleOptions): number {
  if (step < o.warmupSteps) return (o.lr * step) / Math.max(1, o.warmupSteps);
  if (o.kind === 'constant') return o.lr;
  const progress = (step - o.warmupSteps) / Math.max(1, o.totalSteps - o.warmupSteps);
  if (o.kind === 'linear') return o.lr * Math.max(0, 1 - progress);
  return o.lr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
}
