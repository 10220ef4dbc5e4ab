/**
 * The review step's base-precision choices: how the frozen-weight store may keep the base (as stored, BF16 for an
 * F32 checkpoint, Q8_0, Q4_0), each with the memory it takes (from the estimate) and its measured cost (from
 * train.measurePrecision: the validation-loss difference against 16 bits). Pure functions, no DOM.
 */
import type { BasePrecision, PrecisionCost, PrecisionMeasure, TrainingEstimate } from '../../../preload/contract';
import { formatBytes } from './format';

export interface PrecisionChoice {
  readonly value: BasePrecision;
  /** 'Stored (F16)', 'BF16', 'Q8_0', 'Q4_0'. */
  readonly label: string;
  /** Bytes of the base's linear weights at this precision, and the run's peak with them. */
  readonly baseBytes: number;
  readonly peakBytes: number;
  /** The measured cost in words ('+0.003 loss against F16'), the reference's loss, or null before measuring. */
  readonly cost: string | null;
}

type EstimateBase = NonNullable<TrainingEstimate['base']>;

/** The store holds the base, so its precision can be chosen (without a store it is float32 tensors). */
export function precisionApplies(estimate: TrainingEstimate | null): estimate is TrainingEstimate & { base: EstimateBase } {
  return estimate?.base !== undefined && estimate.base.held !== 'tensor';
}

const signed = (v: number) => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(3)}`;

function describe(measure: PrecisionMeasure | undefined, reference: PrecisionMeasure): string | null {
  if (!measure) return null;
  if (measure === reference) return `loss ${measure.loss.toFixed(4)}, the reference`;
  return `${signed(measure.lossDelta)} loss against ${reference.format}`;
}

/** The choices the estimate's base allows, with what each takes and (once measured) costs. */
export function precisionChoices(estimate: TrainingEstimate & { base: EstimateBase }, cost: PrecisionCost | null): PrecisionChoice[] {
  const { base } = estimate;
  const sixteenBit = base.stored === 'BF16' || base.stored === 'F16';
  const storedBytes = base.stored === 'F32' ? 2 * base.bf16Bytes : base.stored === 'Q8_0' ? base.q8_0Bytes : base.stored === 'Q4_0' ? base.q4_0Bytes : base.bf16Bytes;
  const measured = (precision: BasePrecision) => {
    if (!cost) return undefined;
    // The reference is 16 bits: a 16-bit checkpoint as stored, an F32 one as BF16.
    if (precision === (sixteenBit ? 'stored' : 'bf16')) return cost.reference;
    return cost.others.find((m) => m.precision === precision);
  };
  const choices: { value: BasePrecision; label: string; bytes: number }[] = [
    { value: 'stored', label: `Stored (${base.stored})`, bytes: storedBytes },
    ...(base.stored === 'F32' ? [{ value: 'bf16' as const, label: 'BF16', bytes: base.bf16Bytes }] : []),
    ...(base.stored === 'Q8_0' ? [] : [{ value: 'q8_0' as const, label: 'Q8_0', bytes: base.q8_0Bytes }]),
    ...(base.stored === 'Q4_0' ? [] : [{ value: 'q4_0' as const, label: 'Q4_0', bytes: base.q4_0Bytes }]),
  ];
  return choices.map(({ value, label, bytes }) => ({
    value, label, baseBytes: bytes,
    peakBytes: estimate.peakMemoryBytes - base.bytes + bytes,
    cost: cost ? describe(measured(value), cost.reference) : null,
  }));
}

/** One line per choice: "Q8_0: +0.003 loss against F16, base 4.1 MiB (3.9 MiB less), peak 310 MiB". */
export function describeChoice(choice: PrecisionChoice, stored: PrecisionChoice | undefined): string {
  const saved = stored && stored !== choice ? stored.baseBytes - choice.baseBytes : 0;
  const less = saved > 0 ? ` (${formatBytes(saved)} less)` : saved < 0 ? ` (${formatBytes(-saved)} more)` : '';
  return `${choice.cost ? `${choice.cost}, ` : ''}base ${formatBytes(choice.baseBytes)}${less}, peak ${formatBytes(choice.peakBytes)}`;
}
