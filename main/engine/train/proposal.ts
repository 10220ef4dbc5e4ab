/**
 * Settings that learn: the learning rate, steps and rank proposed from the model's and the dataset's sizes, and
 * what given settings would do (passes over the data, how strong the update is against the proposal), with
 * warnings when they are too weak to move the loss. One home for the rule: the wizard asks for it through the
 * engine host, `lorasmith train` fills the settings a user leaves out with it.
 *
 * The rule, from what trains the starter model (4M parameters: 3e-3 for 100 steps teaches a sample's form in
 * a minute) and the usual LoRA rates at 0.5B–3B (1e-4 to 3e-4): the rate falls with the square root of the
 * model's size; a small dataset is seen several times (at least 100 steps), a large one about three times
 * (at most 2000 steps); LoRA on every linear layer of the blocks (QLoRA's finding; on the starter model q and v
 * alone learn the sample's closing "Amen." in 100 steps but not its opening "Verily,"); rank 8, 16 from 5000
 * records, alpha 2 × rank.
 */
import { stepsPerEpoch } from './loop';
import type { TrainSettingsInput } from './settings';

export const PROPOSAL_RULE =
  'Learning rate 3e-3 × √(4M ÷ model parameters), between 1e-4 and 3e-3; steps for 3 passes over the training records, ' +
  'at least 100 and at most 2000; every linear layer of the blocks; rank 8 (16 from 5,000 records), alpha 2 × rank.';

const REFERENCE_PARAMETERS = 4e6;
const MAX_LR = 3e-3;
const MIN_LR = 1e-4;
const PASSES = 3;
const MIN_STEPS = 100;
const MAX_STEPS = 2000;
const LARGE_DATASET = 5000;
/** Below this share of the proposal's learning rate × steps, a run rarely moves the loss visibly. */
export const WEAK_STRENGTH = 0.25;
/** A learning rate this many times the proposal's often makes the loss jump. */
const HOT_LR = 4;

export interface ProposalInput {
  readonly parameterCount: number;
  /** Valid records in the dataset (before the validation split). */
  readonly records: number;
}

/** The settings whose effect is assessed: the contract's names. */
export interface AssessedSettings {
  readonly learningRate: number;
  readonly maxSteps?: number;
  readonly epochs?: number;
  readonly batchSize: number;
  readonly gradAccum: number;
  /** Fraction held out; 'auto' as the dataset loader reads it (0.1 from 10 records up). */
  readonly valSplit: number | 'auto';
  readonly lora: { readonly rank: number; readonly alpha: number; readonly useRslora: boolean } | null;
}

export interface Proposal {
  readonly learningRate: number;
  /** The target preset: every linear layer of the blocks. */
  readonly targets: 'all-linear';
  readonly maxSteps: number;
  readonly rank: number;
  readonly alpha: number;
  readonly rule: string;
}

export interface Effect {
  readonly trainRecords: number;
  readonly steps: number;
  readonly passes: number;
  readonly strength: number;
  readonly summary: string;
  readonly warnings: readonly string[];
}

/** Batch 4, no accumulation: what the proposal assumes (the wizard's and the engine's default batch). */
const PROPOSAL_BATCH = { batchSize: 4, gradAccum: 1 } as const;

const round2 = (x: number) => Number(x.toPrecision(2));

export function trainRecordsOf(records: number, valSplit: number | 'auto'): number {
  const fraction = valSplit === 'auto' ? (records >= 10 ? 0.1 : 0) : valSplit;
  return fraction === 0 ? records : records - Math.max(1, Math.round(records * fraction));
}

/** The adapter part of the proposal: it depends on the records alone, so it is known before the model loads. */
export function proposeAdapter(records: number): Pick<Proposal, 'targets' | 'rank' | 'alpha'> {
  const rank = records >= LARGE_DATASET ? 16 : 8;
  return { targets: 'all-linear', rank, alpha: 2 * rank };
}

export function proposeTraining(input: ProposalInput): Proposal {
  const parameters = Math.max(1, input.parameterCount);
  const learningRate = round2(Math.min(MAX_LR, Math.max(MIN_LR, MAX_LR * Math.sqrt(REFERENCE_PARAMETERS / parameters))));
  const perPass = stepsPerEpoch(Math.max(1, trainRecordsOf(input.records, 'auto')), PROPOSAL_BATCH);
  const maxSteps = Math.min(MAX_STEPS, Math.max(MIN_STEPS, PASSES * perPass));
  return { learningRate, maxSteps, ...proposeAdapter(input.records), rule: PROPOSAL_RULE };
}

/** The settings a proposal fills in where they were left out, by their contract names. */
export type ProposedField = 'learningRate' | 'maxSteps' | 'rank' | 'targetModules';

/**
 * `input` with what it leaves out of a LoRA run taken from the proposal: the learning rate, the steps (where neither
 * steps nor epochs are given), the rank (alpha then defaults to 2 × rank, the proposal's) and the targets. Full
 * fine-tuning (lora: null) is left as it is: the proposal is for LoRA. `filled` names what was taken.
 */
export function withProposal(
  input: TrainSettingsInput, proposal: Partial<Pick<Proposal, 'learningRate' | 'maxSteps' | 'rank' | 'targets'>>,
): { settings: TrainSettingsInput; filled: ProposedField[] } {
  if (input.lora === null) return { settings: input, filled: [] };
  const lora = input.lora ?? {};
  const learningRate = input.learningRate === undefined ? proposal.learningRate : undefined;
  const maxSteps = input.maxSteps == null && input.epochs === undefined ? proposal.maxSteps : undefined;
  const rank = lora.rank === undefined ? proposal.rank : undefined;
  const targetModules = lora.targetModules === undefined ? proposal.targets : undefined;
  const taken: [ProposedField, unknown][] = [['learningRate', learningRate], ['maxSteps', maxSteps], ['rank', rank], ['targetModules', targetModules]];
  const settings: TrainSettingsInput = {
    ...input,
    ...(learningRate !== undefined ? { learningRate } : {}),
    ...(maxSteps !== undefined ? { maxSteps } : {}),
    lora: { ...lora, ...(rank !== undefined ? { rank } : {}), ...(targetModules !== undefined ? { targetModules } : {}) },
  };
  return { settings, filled: taken.filter(([, value]) => value !== undefined).map(([field]) => field) };
}

const scaleOf = (lora: AssessedSettings['lora']) => (lora === null ? 1 : lora.alpha / (lora.useRslora ? Math.sqrt(lora.rank) : lora.rank));

function times(x: number): string {
  return x >= 10 ? `${Math.round(x)}×` : `${x.toFixed(1)}×`;
}

/** What `settings` would do on this model and dataset, against the proposal. */
export function assessTraining(input: ProposalInput, settings: AssessedSettings): Effect {
  const proposal = proposeTraining(input);
  const trainRecords = Math.max(0, trainRecordsOf(input.records, settings.valSplit));
  const perPass = stepsPerEpoch(Math.max(1, trainRecords), settings);
  const steps = settings.maxSteps ?? perPass * (settings.epochs ?? 3);
  const passes = trainRecords === 0 ? 0 : (steps * settings.batchSize * settings.gradAccum) / trainRecords;
  const budget = settings.learningRate * steps * scaleOf(settings.lora);
  const proposed = proposal.learningRate * proposal.maxSteps * (proposal.alpha / proposal.rank);
  const strength = budget / proposed;
  const warnings: string[] = [];
  if (strength < WEAK_STRENGTH) {
    warnings.push(
      `Too weak to move the loss: learning rate × steps × scale is ${times(1 / strength)} below the proposal ` +
      `(${settings.learningRate} × ${steps} steps against ${proposal.learningRate} × ${proposal.maxSteps}); the replies would likely keep the base model's style. ` +
      'Raise the learning rate or the steps, or use the proposal.',
    );
  }
  if (trainRecords > 0 && passes < 1) {
    warnings.push(`Less than one pass over the data: about ${Math.round(passes * trainRecords)} of ${trainRecords} training records are seen once.`);
  }
  if (settings.learningRate > HOT_LR * proposal.learningRate) {
    warnings.push(`The learning rate is ${times(settings.learningRate / proposal.learningRate)} the proposal's ${proposal.learningRate} for a model this size: the loss may jump or diverge; watch the curve.`);
  }
  const summary = `about ${passes >= 10 ? Math.round(passes) : passes.toFixed(1)} ${passes === 1 ? 'pass' : 'passes'} over ${trainRecords} training records ` +
    `(${steps} steps of ${settings.batchSize * settings.gradAccum}); ${times(strength)} the proposal's learning rate × steps`;
  return { trainRecords, steps, passes, strength, summary, warnings };
}

/** What `lorasmith train` prints before training: the effect of its settings, the proposal, and any warning. */
export function formatAdvice(proposal: Proposal, effect: Effect): string {
  return [
    `these settings: ${effect.summary}`,
    `proposed for this model and data: learning rate ${proposal.learningRate}, ${proposal.maxSteps} steps, ${proposal.targets} targets, rank ${proposal.rank} (${proposal.rule})`,
    ...effect.warnings.map((w) => `warning: ${w}`),
  ].join('\n');
}
