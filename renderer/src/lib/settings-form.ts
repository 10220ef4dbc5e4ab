/**
 * The wizard's hyper-parameter form: text fields as the user typed them, validated into TrainingSettings.
 * Every message names the field, the bad value and what is expected.
 */
import type { TrainingSettings } from '../../../preload/contract';

export interface HyperForm {
  rank: string;
  alpha: string;
  dropout: string;
  useRslora: boolean;
  learningRate: string;
  epochs: string;
  maxSteps: string;
  batchSize: string;
  gradAccum: string;
  maxSeqLen: string;
  valSplit: string;
  seed: string;
  scheduler: TrainingSettings['scheduler'];
  warmupSteps: string;
  weightDecay: string;
  maxGradNorm: string;
  evalEvery: string;
  checkpointEvery: string;
  earlyStoppingPatience: string;
  keepWeights: NonNullable<TrainingSettings['keepWeights']>;
  trainOnPrompt: boolean;
  recompute: NonNullable<TrainingSettings['recompute']>;
  basePrecision: NonNullable<TrainingSettings['basePrecision']>;
}

export type HyperField = keyof HyperForm;
export type FormErrors = Partial<Record<HyperField, string>>;

/** Defaults that finish a short run on a laptop CPU; rank 8 / alpha 16 follow common PEFT practice. */
export const DEFAULT_SETTINGS: Omit<TrainingSettings, 'lora'> & { lora: Omit<TrainingSettings['lora'], 'targetModules'> } = {
  lora: { rank: 8, alpha: 16, dropout: 0.05, useRslora: false },
  epochs: 3,
  learningRate: 2e-4,
  batchSize: 4,
  gradAccum: 1,
  maxSeqLen: 256,
  valSplit: 0.1,
  seed: 42,
  scheduler: 'cosine',
  warmupSteps: 10,
  weightDecay: 0,
  maxGradNorm: 1,
  evalEvery: 20,
  checkpointEvery: 100,
  earlyStoppingPatience: 3,
  keepWeights: 'best',
  trainOnPrompt: false,
  recompute: 'auto',
  basePrecision: 'stored',
};

function text(value: number | undefined): string {
  return value === undefined ? '' : String(value);
}

export function formFromSettings(settings: Partial<TrainingSettings> & { lora?: Partial<TrainingSettings['lora']> }): HyperForm {
  const d = DEFAULT_SETTINGS;
  const lora = { ...d.lora, ...settings.lora };
  const s = { ...d, ...settings };
  return {
    rank: text(lora.rank), alpha: text(lora.alpha), dropout: text(lora.dropout), useRslora: lora.useRslora,
    learningRate: text(s.learningRate), epochs: text(s.maxSteps !== undefined && settings.epochs === undefined ? undefined : s.epochs),
    maxSteps: text(s.maxSteps), batchSize: text(s.batchSize), gradAccum: text(s.gradAccum), maxSeqLen: text(s.maxSeqLen),
    valSplit: text(s.valSplit), seed: text(s.seed), scheduler: s.scheduler, warmupSteps: text(s.warmupSteps),
    weightDecay: text(s.weightDecay), maxGradNorm: text(s.maxGradNorm), evalEvery: text(s.evalEvery),
    checkpointEvery: text(s.checkpointEvery), earlyStoppingPatience: text(s.earlyStoppingPatience), keepWeights: s.keepWeights ?? 'best',
    trainOnPrompt: s.trainOnPrompt, recompute: s.recompute ?? 'auto', basePrecision: s.basePrecision ?? 'stored',
  };
}

type Check = (value: number) => string | null;

const positiveInteger: Check = (v) => (Number.isInteger(v) && v > 0 ? null : 'a positive integer');
const nonNegativeInteger: Check = (v) => (Number.isInteger(v) && v >= 0 ? null : 'an integer ≥ 0');
const positive: Check = (v) => (v > 0 ? null : 'a number > 0');
const nonNegative: Check = (v) => (v >= 0 ? null : 'a number ≥ 0');
const range = (lo: number, hi: number, hiInclusive = false): Check => (v) =>
  v >= lo && (hiInclusive ? v <= hi : v < hi) ? null : `between ${lo} and ${hi}${hiInclusive ? '' : ' (exclusive)'}`;

const LABELS: Record<HyperField, string> = {
  rank: 'rank', alpha: 'alpha', dropout: 'dropout', useRslora: 'rsLoRA', learningRate: 'learning rate',
  epochs: 'epochs', maxSteps: 'max steps', batchSize: 'batch size', gradAccum: 'gradient accumulation',
  maxSeqLen: 'max sequence length', valSplit: 'validation split', seed: 'seed', scheduler: 'scheduler',
  warmupSteps: 'warm-up steps', weightDecay: 'weight decay', maxGradNorm: 'max gradient norm',
  evalEvery: 'evaluate every', checkpointEvery: 'checkpoint every', earlyStoppingPatience: 'early-stopping patience',
  keepWeights: 'weights kept',
  trainOnPrompt: 'train on prompt', recompute: 'activation recomputation', basePrecision: 'base precision',
};

const RULES: Partial<Record<HyperField, { checks: Check[]; optional?: boolean }>> = {
  rank: { checks: [positiveInteger, (v) => (v <= 1024 ? null : 'at most 1024')] },
  alpha: { checks: [positive] },
  dropout: { checks: [range(0, 1)] },
  learningRate: { checks: [positive, (v) => (v < 1 ? null : 'below 1 (LoRA typically uses 1e-4 to 1e-3)')] },
  epochs: { checks: [positiveInteger], optional: true },
  maxSteps: { checks: [positiveInteger], optional: true },
  batchSize: { checks: [positiveInteger] },
  gradAccum: { checks: [positiveInteger] },
  maxSeqLen: { checks: [positiveInteger, (v) => (v >= 8 ? null : 'at least 8 tokens')] },
  valSplit: { checks: [range(0, 0.5, true)] },
  seed: { checks: [nonNegativeInteger] },
  warmupSteps: { checks: [nonNegativeInteger] },
  weightDecay: { checks: [nonNegative] },
  maxGradNorm: { checks: [positive] },
  evalEvery: { checks: [positiveInteger] },
  checkpointEvery: { checks: [positiveInteger] },
  earlyStoppingPatience: { checks: [positiveInteger], optional: true },
};

/** The number in a field, or a message saying why it is not one. */
function parseField(form: HyperForm, field: HyperField): { value?: number; error?: string } {
  const rule = RULES[field];
  const raw = String(form[field]).trim();
  if (!rule) return {};
  if (raw === '') return rule.optional ? {} : { error: `${LABELS[field]} is required` };
  const value = Number(raw);
  if (!Number.isFinite(value)) return { error: `${LABELS[field]} must be a number, got "${raw}"` };
  for (const check of rule.checks) {
    const expected = check(value);
    if (expected) return { error: `${LABELS[field]} must be ${expected}, got ${raw}` };
  }
  return { value };
}

export function validateForm(form: HyperForm): FormErrors {
  const errors: FormErrors = {};
  for (const field of Object.keys(RULES) as HyperField[]) {
    const { error } = parseField(form, field);
    if (error) errors[field] = error;
  }
  if (!errors.epochs && !errors.maxSteps && form.epochs.trim() === '' && form.maxSteps.trim() === '') {
    errors.epochs = 'set epochs or max steps (or both: training stops at whichever comes first)';
  }
  return errors;
}

/** TrainingSettings from a form that validated cleanly; throws on an invalid form (a programming error). */
export function settingsFromForm(form: HyperForm, targetModules: readonly string[]): TrainingSettings {
  const errors = validateForm(form);
  const first = Object.values(errors)[0];
  if (first) throw new Error(`invalid training settings: ${first}`);
  const num = (field: HyperField): number | undefined => parseField(form, field).value;
  const req = (field: HyperField): number => num(field)!;
  const epochs = num('epochs');
  const maxSteps = num('maxSteps');
  const patience = num('earlyStoppingPatience');
  return {
    lora: { targetModules: [...targetModules], rank: req('rank'), alpha: req('alpha'), dropout: req('dropout'), useRslora: form.useRslora },
    ...(epochs !== undefined ? { epochs } : {}),
    ...(maxSteps !== undefined ? { maxSteps } : {}),
    learningRate: req('learningRate'), batchSize: req('batchSize'), gradAccum: req('gradAccum'), maxSeqLen: req('maxSeqLen'),
    valSplit: req('valSplit'), seed: req('seed'), scheduler: form.scheduler, warmupSteps: req('warmupSteps'),
    weightDecay: req('weightDecay'), maxGradNorm: req('maxGradNorm'), evalEvery: req('evalEvery'),
    checkpointEvery: req('checkpointEvery'),
    ...(patience !== undefined ? { earlyStoppingPatience: patience } : {}),
    keepWeights: form.keepWeights,
    trainOnPrompt: form.trainOnPrompt,
    recompute: form.recompute,
    basePrecision: form.basePrecision,
  };
}
