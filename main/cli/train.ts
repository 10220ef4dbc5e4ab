/**
 * `lorasmith train <model-dir> --data FILE --out DIR ...`: fine-tune with LoRA (or --full) through the engine's
 * one training run (engine/train/run.ts, the app's too) and write a PEFT adapter folder with its training record.
 * The options are the app's settings by the same names. `--dry-run` prints the estimates only; `--json` prints one
 * JSON object per line (dataset, tokens, estimate, progress events, and a last line with done, steps, trainLoss,
 * valLoss, trainTokensPerSecond, adapterDir). Ctrl-C stops between steps; the last checkpoint stays resumable.
 * `--remote` trains on another machine's `lorasmith serve` instead (train-remote.ts).
 */
import { resolve } from 'node:path';
import { hashModel } from '../common/hash';
import { BASE_PRECISIONS, isBasePrecision, type BasePrecision } from '../engine/backend/frozen';
import { nativeOptionsFromEnv } from '../engine/backend/native/index';
import { TARGET_GROUPS, type LoraConfig } from '../engine/lora/config';
import { loadDataset, type DatasetOptions } from '../engine/train/datasets/dataset';
import { DATASET_FORMATS, type DatasetFormat } from '../engine/train/datasets/formats';
import type { TrainingEstimate } from '../engine/train/estimate';
import { describePrecisionCost, measurePrecisionCost } from '../engine/train/precision-cost';
import type { TrainProgress } from '../engine/train/loop';
import { KEEP_WEIGHTS, type KeepWeights } from '../engine/train/hyperparameters';
import { assessTraining, formatAdvice, proposeAdapter, proposeTraining, withProposal, type Proposal, type ProposedField } from '../engine/train/proposal';
import { runTraining } from '../engine/train/run';
import { SCHEDULES, type ScheduleKind } from '../engine/train/schedule';
import { resolveTrainSettings, type TrainSettingsInput } from '../engine/train/settings';
import { UsageError, type CliCommand, type CliIo } from './command';
import { loadModelFolder, type ModelFolderLoader } from './load-model';
import { REMOTE_TOKEN_ENV, trainOnRemoteEngine } from './train-remote';
import { flagOption, numberOption, parseOptions, positional, stringOption, type OptionKinds, type ParsedOptions } from './options';

/** 'q_proj,v_proj' -> list; 'attention' | 'mlp' | 'all-linear' -> group; 're:PATTERN' -> regex. */
export function parseTargets(raw: string): LoraConfig['targetModules'] {
  if (raw.startsWith('re:')) return raw.slice(3);
  if ((TARGET_GROUPS as readonly string[]).includes(raw)) return raw;
  const list = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (list.length === 0) throw new UsageError(`--targets needs module names, a group (${TARGET_GROUPS.join(', ')}) or re:PATTERN, got '${raw}'`);
  return list;
}

export function parseFormat(raw: string | undefined): DatasetFormat | undefined {
  if (raw === undefined) return undefined;
  if (!(DATASET_FORMATS as readonly string[]).includes(raw)) throw new UsageError(`--format must be one of ${DATASET_FORMATS.join(', ')}, got '${raw}'`);
  return raw as DatasetFormat;
}

export const TRAIN_OPTIONS: OptionKinds = {
  data: 'string', 'val-data': 'string', out: 'string', format: 'string', targets: 'string', rank: 'string', alpha: 'string',
  dropout: 'string', rslora: 'flag', full: 'flag', 'parent-adapter': 'string', epochs: 'string', 'max-steps': 'string',
  'learning-rate': 'string', 'batch-size': 'string', 'grad-accum': 'string', 'max-seq-len': 'string', 'val-split': 'string',
  seed: 'string', scheduler: 'string', 'warmup-steps': 'string', 'weight-decay': 'string', 'max-grad-norm': 'string',
  'eval-every': 'string', patience: 'string', keep: 'string', 'checkpoint-every': 'string', 'checkpoint-dir': 'string', resume: 'string',
  'train-on-prompt': 'flag', packing: 'flag', recompute: 'flag', backend: 'string', 'base-precision': 'string',
  'measure-precision': 'flag', 'dry-run': 'flag', json: 'flag', remote: 'string', token: 'string',
};

export const TRAIN_USAGE = `lorasmith train <model-dir> --data FILE --out DIR [--format F] [--targets LIST|GROUP|re:REGEX] [--rank R]
  [--alpha A] [--dropout P] [--rslora] [--full | --parent-adapter DIR] [--epochs E | --max-steps N] [--learning-rate LR]
  [--batch-size B] [--grad-accum K] [--max-seq-len T] [--val-split F | --val-data FILE] [--seed S]
  [--scheduler constant|linear|cosine] [--warmup-steps N] [--weight-decay W] [--max-grad-norm G] [--eval-every N]
  [--patience N] [--keep best|last] [--checkpoint-every N] [--checkpoint-dir DIR] [--resume CHECKPOINT] [--train-on-prompt]
  [--packing] [--recompute] [--backend B] [--base-precision stored|bf16|q8_0|q4_0] [--measure-precision] [--dry-run] [--json]
  [--remote 127.0.0.1:PORT [--token T]]

  --data           a dataset file, or the normalized.jsonl an import stored in the library
  --format         ${DATASET_FORMATS.join(', ')} (detected when omitted)
  --targets        module names or suffixes (q_proj,v_proj), a group (${TARGET_GROUPS.join(', ')}), or re:REGEX
  --alpha          default 2 × rank
  --full           train every weight instead of a LoRA adapter
  --parent-adapter start from this adapter's weights and LoRA settings (continue an adapter)
  --val-split      fraction held out for validation (default 0.1 from 10 records up, else none)
  --keep           the weights the run ends with: best (the default) those of the lowest validation loss, what
                   generalizes to new prompts; last the last step's, what has learned the training rows themselves
  --recompute      recompute each block's activations in the backward pass: less memory, one more forward pass
                   (default: on only when the run would not fit in memory without it)
  --base-precision how the frozen-weight store keeps the base: stored (the file's dtype, the default), bf16, q8_0
                   (8-bit blocks, about half the memory; its outputs change slightly) or q4_0 (4-bit blocks, about a
                   quarter; they change more); recorded with the settings
  --measure-precision  before training, score a few validation batches with the base at BF16, Q8_0 and Q4_0 and
                   print the loss difference and the memory each takes
  --remote         train on the engine of a \`lorasmith serve\` on another machine, through an SSH tunnel's local end
                   (\`ssh -N -L PORT:127.0.0.1:PORT you@gpu-box\`; the address serve printed works too); the model and
                   data are sent once, the adapter comes back into --out with machine.json naming where it trained
  --token          the token serve printed (the part after /t/), or set $${REMOTE_TOKEN_ENV}
  A LoRA run given no --learning-rate, no --max-steps or --epochs, no --rank or no --targets takes them from the
  app wizard's proposal for this model and dataset (engine/train/proposal.ts: the learning rate from the model's
  size, steps for 3 passes, rank 8 or 16, every linear layer); it says which it took. Other defaults are the
  engine's, the app's too (seed 42, batch 4, max 512 tokens).
  Checkpoints go to --checkpoint-dir (default <out>.checkpoints) every --checkpoint-every steps (default 100).`;

/** The run's settings from the options (the app's settings by the same names). */
export function settingsFrom(parsed: ParsedOptions): TrainSettingsInput {
  const s: Record<string, unknown> = {};
  const set = (key: string, value: unknown) => {
    if (value !== undefined) s[key] = value;
  };
  if (parsed.values.epochs !== undefined && parsed.values['max-steps'] !== undefined) throw new UsageError('give --epochs or --max-steps, not both');
  if (flagOption(parsed, 'full') && parsed.values['parent-adapter'] !== undefined) throw new UsageError('give --full or --parent-adapter, not both');
  const ints: Record<string, string> = {
    epochs: 'epochs', maxSteps: 'max-steps', batchSize: 'batch-size', gradAccum: 'grad-accum', seed: 'seed', warmupSteps: 'warmup-steps',
    evalEvery: 'eval-every', earlyStoppingPatience: 'patience', checkpointEvery: 'checkpoint-every', maxSeqLen: 'max-seq-len',
  };
  const floats: Record<string, string> = { learningRate: 'learning-rate', weightDecay: 'weight-decay', maxGradNorm: 'max-grad-norm', valSplit: 'val-split' };
  for (const [key, name] of Object.entries(ints)) set(key, numberOption(parsed, name, 'int'));
  for (const [key, name] of Object.entries(floats)) set(key, numberOption(parsed, name, 'float'));
  const scheduler = stringOption(parsed, 'scheduler');
  if (scheduler !== undefined && !(SCHEDULES as readonly string[]).includes(scheduler)) throw new UsageError(`--scheduler must be one of ${SCHEDULES.join(', ')}, got '${scheduler}'`);
  set('scheduler', scheduler as ScheduleKind | undefined);
  const keep = stringOption(parsed, 'keep');
  if (keep !== undefined && !(KEEP_WEIGHTS as readonly string[]).includes(keep)) throw new UsageError(`--keep must be one of ${KEEP_WEIGHTS.join(', ')}, got '${keep}'`);
  set('keepWeights', keep as KeepWeights | undefined);
  if (flagOption(parsed, 'train-on-prompt')) s.trainOnPrompt = true;
  if (flagOption(parsed, 'packing')) s.packing = true;
  if (flagOption(parsed, 'recompute')) s.recompute = 'on';
  set('basePrecision', parseBasePrecision(stringOption(parsed, 'base-precision')));
  s.lora = flagOption(parsed, 'full') ? null : loraFrom(parsed);
  return s as TrainSettingsInput;
}

function loraFrom(parsed: ParsedOptions): Partial<LoraConfig> {
  const lora: Record<string, unknown> = {};
  const targets = stringOption(parsed, 'targets');
  if (targets !== undefined) lora.targetModules = parseTargets(targets);
  for (const [key, name, kind] of [['rank', 'rank', 'int'], ['alpha', 'alpha', 'float'], ['dropout', 'dropout', 'float']] as const) {
    const value = numberOption(parsed, name, kind);
    if (value !== undefined) lora[key] = value;
  }
  if (flagOption(parsed, 'rslora')) lora.useRslora = true;
  return lora as Partial<LoraConfig>;
}

export function parseBasePrecision(raw: string | undefined): BasePrecision | undefined {
  if (raw === undefined) return undefined;
  const value = raw.trim().toLowerCase();
  if (!isBasePrecision(value)) throw new UsageError(`--base-precision must be one of ${BASE_PRECISIONS.join(', ')}, got '${raw}'`);
  return value;
}

/** Valid records of the (training) data file: what the proposal sizes steps and rank by. */
function recordsIn(data: Omit<DatasetOptions, 'valSplit' | 'seed'>): number {
  return loadDataset(data).files[0]?.valid ?? 0;
}

const FILLED_NAMES: Record<ProposedField, (p: Proposal) => string> = {
  learningRate: (p) => `learning rate ${p.learningRate}`,
  maxSteps: (p) => `${p.maxSteps} steps`,
  rank: (p) => `rank ${p.rank}`,
  targetModules: (p) => `${p.targets} targets`,
};

const MB = 1024 * 1024;
function describeBase(b: TrainingEstimate['base']): string {
  const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  const choices = `BF16 ${gib(b.bf16Bytes)}, Q8_0 ${gib(b.q8_0Bytes)}, Q4_0 ${gib(b.q4_0Bytes)}`;
  return b.held === 'tensor'
    ? `float32 tensors, ${gib(b.bytes)} (the native frozen-weight store would hold them at ${choices})`
    : `${b.held} in the frozen-weight store, ${gib(b.bytes)} (--base-precision bf16, q8_0 or q4_0 picks another, --measure-precision measures what it costs: ${choices})`;
}

function describeEstimate(e: TrainingEstimate): string {
  return [
    `trainable parameters  ${e.trainableParameters.toLocaleString('en-US')}`,
    `adapter size          ${(e.adapterBytes / MB).toFixed(2)} MiB`,
    `peak memory           ${(e.peakMemoryBytes / MB).toFixed(0)} MiB of ${(e.availableMemoryBytes / MB).toFixed(0)} MiB available ` +
      `(base weights ${(e.memory.baseWeights / MB).toFixed(0)}, activations ${(e.memory.activations / MB).toFixed(0)}, ` +
      `trainable + optimizer ${(e.memory.trainable / MB).toFixed(0)}, loss ${(e.memory.loss / MB).toFixed(0)}, runtime ${(e.memory.runtime / MB).toFixed(0)} MiB)`,
    `base weights          ${describeBase(e.base)}`,
    `recompute             ${e.recompute ? 'on (activations recomputed per block in the backward pass)' : 'off'}`,
    `time per epoch        ${e.secondsPerEpoch.toFixed(1)} s (${e.stepsPerEpoch} steps, ${e.secondsPerStep.toFixed(2)} s/step over ${e.calibrationSteps} timed steps)`,
    `total                 ${e.totalSteps} steps, about ${Math.ceil(e.totalSeconds)} s`,
  ].join('\n');
}

function describeProgress(e: TrainProgress): string {
  if (e.kind === 'eval') {
    const sample = e.sample !== undefined ? `\n  sample: ${JSON.stringify(e.sample)}` : '';
    return `step ${e.step}/${e.totalSteps}  val loss ${e.valLoss?.toFixed(4)}  perplexity ${e.valPerplexity?.toFixed(2)}${sample}`;
  }
  if (e.kind === 'checkpoint') return `checkpoint ${e.checkpoint}`;
  return `step ${e.step}/${e.totalSteps}  epoch ${e.epoch.toFixed(2)}  loss ${e.loss.toFixed(4)}  lr ${e.lr.toExponential(2)}  grad ${e.gradNorm.toFixed(3)}  ${e.tokensPerSecond.toFixed(0)} tok/s  eta ${Math.ceil(e.etaSeconds)} s`;
}

export function makeTrainCommand(loadModel: ModelFolderLoader = loadModelFolder): CliCommand {
  return {
    name: 'train',
    summary: 'fine-tune a model with LoRA on a dataset and write a PEFT adapter',
    usage: TRAIN_USAGE,
    async run(argv: readonly string[], io: CliIo): Promise<number> {
      const parsed = parseOptions(argv, TRAIN_OPTIONS);
      const modelArg = positional(parsed, 'train', '<model-dir>', TRAIN_USAGE);
      const data = stringOption(parsed, 'data');
      const out = stringOption(parsed, 'out');
      const dryRun = flagOption(parsed, 'dry-run');
      if (!data) throw new UsageError('--data FILE is required');
      if (!out && !dryRun) throw new UsageError('--out DIR is required');
      const json = flagOption(parsed, 'json');
      const print = (value: Record<string, unknown>, text: string) => io.out(json ? JSON.stringify(value) : text);
      const format = parseFormat(stringOption(parsed, 'format'));
      const valData = stringOption(parsed, 'val-data');
      const parent = stringOption(parsed, 'parent-adapter');
      const resume = stringOption(parsed, 'resume');
      const modelDir = resolve(modelArg);
      const outDir = resolve(out ?? '.');
      const dataOptions = { path: resolve(data), format, ...(valData ? { valPath: resolve(valData) } : {}) };
      const flags = settingsFrom(parsed);
      if (stringOption(parsed, 'remote') === undefined && stringOption(parsed, 'token') !== undefined) throw new UsageError('--token goes with --remote');
      if (stringOption(parsed, 'remote') !== undefined) {
        const proposalNote = (filled: readonly ProposedField[], proposal: Proposal) => filled.map((f) => FILLED_NAMES[f](proposal)).join(', ');
        return trainOnRemoteEngine({ parsed, modelDir, data, outDir, settings: flags, format, describeProgress, proposalNote }, io);
      }
      // --base-precision, else LORASMITH_BASE_PRECISION: the setting the run records is the one the base is loaded at.
      const basePrecision = flags.basePrecision ?? nativeOptionsFromEnv(process.env).basePrecision;
      const given: TrainSettingsInput = { ...flags, ...(basePrecision ? { basePrecision } : {}) };
      // What a LoRA run leaves out comes from the wizard's proposal (one home for the defaults): its adapter part from
      // the records now (a run that cannot fit is refused before loading), its learning rate and steps once the size is known.
      const records = given.lora === null ? 0 : recordsIn(dataOptions);
      const settings = resolveTrainSettings(withProposal(given, proposeAdapter(records)).settings);
      const run = { lora: settings.lora, batchSize: settings.batchSize, maxSeqLen: settings.maxSeqLen, recompute: settings.recompute, precision: settings.basePrecision };
      const { model, tokenizer, backend, backendFallback = null } = await loadModel(modelDir, {
        trainable: settings.lora === null, backend: stringOption(parsed, 'backend'), run, basePrecision: settings.basePrecision,
      });
      const proposal = proposeTraining({ parameterCount: model.parameterCount(), records });
      const { settings: input, filled } = withProposal(given, proposal);
      try {
        if (flagOption(parsed, 'measure-precision')) {
          // Copies of the base at each precision, one at a time beside the loaded one, each freed once scored.
          const cost = await measurePrecisionCost({ modelDir, tokenizer, data: dataOptions, settings: input, signal: io.signal });
          print({ event: 'precision', ...cost }, `base precision, measured:\n${describePrecisionCost(cost).map((l) => `  ${l}`).join('\n')}`);
        }
        const result = await runTraining({
          model, tokenizer, backend, backendFallback, settings: input,
          base: { nameOrPath: modelDir, contentHash: dryRun ? null : hashModel(modelDir) },
          data: dataOptions,
          ...(parent ? { parentAdapterDir: resolve(parent) } : {}),
          outDir,
          checkpointDir: resolve(stringOption(parsed, 'checkpoint-dir') ?? `${outDir}.checkpoints`),
          ...(resume ? { resumeFrom: resolve(resume) } : {}),
          dryRun,
          signal: io.signal,
          onProgress: (e) => print({ event: 'progress', ...e }, describeProgress(e)),
          onPrepared: ({ datasets, tokens, estimate, settings: resolved }) => {
            for (const file of datasets) {
              print({ event: 'dataset', ...file, issues: file.issues.slice(0, 50) }, `${file.path}: ${file.format} (${file.fileType}), ${file.valid} of ${file.records} records used, ${file.skipped} skipped`);
              if (!json) for (const issue of file.issues.slice(0, 20)) io.err(`  line ${issue.line}: ${issue.message}`);
            }
            const t = tokens.train;
            print({ event: 'tokens', ...tokens }, `${t.examples} training examples, ${t.targetTokens} target tokens; ${t.truncated} truncated to ${resolved.maxSeqLen} tokens; ${t.skipped.length} skipped`);
            print({ event: 'estimate', backend, backendFallback, ...estimate }, `backend ${backend}${backendFallback ? ` (${backendFallback})` : ''}\n${describeEstimate(estimate)}`);
            // The app's proposal rule (engine/train/proposal.ts): what these settings do, and a warning when too weak.
            const sizes = { parameterCount: model.parameterCount(), records: datasets[0]?.valid ?? 0 };
            const effect = assessTraining(sizes, {
              ...resolved, maxSteps: resolved.maxSteps ?? undefined, valSplit: valData ? 0 : resolved.valSplit,
              lora: resolved.lora && { rank: resolved.lora.rank, alpha: resolved.lora.alpha, useRslora: resolved.lora.useRslora },
            });
            const taken = filled.length > 0 ? `\nnot given, so from the proposal: ${filled.map((f) => FILLED_NAMES[f](proposal)).join(', ')}` : '';
            print({ event: 'advice', proposal, effect, filled }, formatAdvice(proposal, effect) + taken);
          },
        });
        if (result.status === 'dry-run') {
          if (json) io.out(JSON.stringify({ done: true, dryRun: true, steps: 0, trainLoss: null, valLoss: null, trainTokensPerSecond: null, adapterDir: null }));
          return 0;
        }
        const loop = result.loop;
        if (result.status === 'cancelled') {
          const checkpoint = loop?.lastCheckpoint ?? null;
          print({ done: false, cancelled: true, steps: loop?.steps ?? 0, checkpoint }, `cancelled at step ${loop?.steps ?? 0}; ${checkpoint ? `resume with --resume ${checkpoint}` : 'no checkpoint was written'}`);
          return 130;
        }
        print(
          { done: true, status: result.status, steps: loop?.steps, trainLoss: loop?.trainLoss, valLoss: loop?.valLoss, valPerplexity: loop?.valLoss == null ? null : Math.exp(loop.valLoss), trainTokensPerSecond: loop?.tokensPerSecond, seconds: loop?.seconds, adapterDir: result.outDir },
          `done (${result.status}): ${loop?.steps} steps, train loss ${loop?.trainLoss?.toFixed(4)}, val loss ${loop?.valLoss?.toFixed(4) ?? 'n/a'}, ${loop?.tokensPerSecond.toFixed(0)} tok/s\nadapter written to ${result.outDir}`,
        );
        return 0;
      } finally {
        model.dispose();
      }
    },
  };
}

export const trainCommand: CliCommand = makeTrainCommand();
