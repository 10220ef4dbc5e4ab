/**
 * `lorasmith train <model-dir> --data FILE --out DIR ...`: fine-tune with LoRA (or --full) and write a PEFT
 * adapter folder with its training record. `--dry-run` prints the estimates only; `--json` prints one JSON object
 * per line (estimate, progress events, and a last line with done, steps, trainLoss, valLoss,
 * trainTokensPerSecond, adapterDir). Ctrl-C stops between steps; the last checkpoint stays resumable.
 */
import { resolve } from 'node:path';
import { UsageError, type CliCommand, type CliIo } from './command';
import type { CausalLM } from '../engine/models/types';
import type { TextTokenizer } from '../engine/io/prompt';
import { resolveLoraConfig, TARGET_GROUPS, type LoraConfig } from '../engine/lora/config';
import { DATASET_FORMATS, type DatasetFormat } from '../engine/train/datasets/formats';
import { SCHEDULES, type ScheduleKind } from '../engine/train/schedule';
import { DEFAULT_HYPERPARAMETERS, type TrainHyperparameters } from '../engine/train/hyperparameters';
import type { RunSettings } from '../engine/train/memory';
import { runTraining } from '../engine/train/run';
import { hashModelDir } from '../engine/train/record';
import type { TrainProgress } from '../engine/train/loop';
import type { TrainingEstimate } from '../engine/train/estimate';
import { loadForTraining } from '../engine/train/load';
import { nativeOptionsFromEnv } from '../engine/backend/native/index';

/** Loads a model folder for training or evaluation, on the chosen backend; with `run`, refuses first a run that cannot fit. */
export type ModelLoader = (
  modelDir: string,
  options: { trainable: boolean; backend?: string; run?: RunSettings },
) => Promise<{ model: CausalLM; tokenizer: TextTokenizer; backend: string }>;

export interface ParsedArgs {
  readonly positional: string[];
  readonly values: Map<string, string>;
  readonly flags: Set<string>;
}

/** --name value / --name=value options, bare --flags (from `flagNames`), and positionals. */
export function parseArgs(argv: readonly string[], valueNames: readonly string[], flagNames: readonly string[]): ParsedArgs {
  const positional: string[] = [];
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    if (flagNames.includes(name)) flags.add(name);
    else if (valueNames.includes(name)) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      values.set(name, value);
    } else throw new UsageError(`unknown option --${name}; see --help`);
  }
  return { positional, values, flags };
}

export function numberOption(args: ParsedArgs, name: string, kind: 'int' | 'float'): number | undefined {
  const raw = args.values.get(name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || (kind === 'int' && !Number.isInteger(value))) {
    throw new UsageError(`--${name} must be ${kind === 'int' ? 'an integer' : 'a number'}, got '${raw}'`);
  }
  return value;
}

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

const VALUE_OPTIONS = [
  'data', 'val-data', 'out', 'format', 'targets', 'rank', 'alpha', 'dropout', 'epochs', 'max-steps', 'lr', 'batch-size', 'grad-accum',
  'max-seq-len', 'val-split', 'seed', 'resume', 'backend', 'schedule', 'warmup-steps', 'weight-decay', 'max-grad-norm', 'eval-every',
  'patience', 'checkpoint-every', 'checkpoint-dir',
];
const FLAG_OPTIONS = ['rslora', 'dry-run', 'json', 'train-on-all', 'packing', 'full', 'recompute'];

export const TRAIN_USAGE = `lorasmith train <model-dir> --data FILE --out DIR [--format F] [--targets LIST|GROUP|re:REGEX] [--rank R]
  [--alpha A] [--dropout P] [--rslora] [--epochs E | --max-steps N] [--lr LR] [--batch-size B] [--grad-accum K]
  [--max-seq-len T] [--val-split F | --val-data FILE] [--seed S] [--resume CHECKPOINT] [--backend B] [--dry-run] [--json]
  [--schedule constant|linear|cosine] [--warmup-steps N] [--weight-decay W] [--max-grad-norm G] [--eval-every N]
  [--patience N] [--checkpoint-every N] [--checkpoint-dir DIR] [--train-on-all] [--packing] [--full] [--recompute]

  --format       ${DATASET_FORMATS.join(', ')} (detected when omitted)
  --targets      module names or suffixes (q_proj,v_proj), a group (${TARGET_GROUPS.join(', ')}), or re:REGEX; default attention
  --full         train every weight instead of a LoRA adapter
  --recompute    recompute each block's activations in the backward pass: less memory, one more forward pass
                 (default: on only when the run would not fit in memory without it)
  --val-split    fraction held out for validation (default 0.1 from 10 records up, else none)
  checkpoints go to --checkpoint-dir (default <out>.checkpoints) every --checkpoint-every steps (default 100)`;

function hyperparametersFrom(args: ParsedArgs): Partial<TrainHyperparameters> {
  const h: Record<string, unknown> = {};
  const set = (key: keyof TrainHyperparameters, value: unknown) => {
    if (value !== undefined) h[key] = value;
  };
  if (args.values.has('epochs') && args.values.has('max-steps')) throw new UsageError('give --epochs or --max-steps, not both');
  set('epochs', numberOption(args, 'epochs', 'int'));
  set('maxSteps', numberOption(args, 'max-steps', 'int'));
  set('lr', numberOption(args, 'lr', 'float'));
  set('batchSize', numberOption(args, 'batch-size', 'int'));
  set('gradAccum', numberOption(args, 'grad-accum', 'int'));
  set('seed', numberOption(args, 'seed', 'int'));
  set('warmupSteps', numberOption(args, 'warmup-steps', 'int'));
  set('weightDecay', numberOption(args, 'weight-decay', 'float'));
  set('maxGradNorm', numberOption(args, 'max-grad-norm', 'float'));
  set('evalEvery', numberOption(args, 'eval-every', 'int'));
  set('earlyStoppingPatience', numberOption(args, 'patience', 'int'));
  set('checkpointEvery', numberOption(args, 'checkpoint-every', 'int') ?? 100);
  if (args.flags.has('recompute')) set('recompute', true);
  const schedule = args.values.get('schedule');
  if (schedule !== undefined && !(SCHEDULES as readonly string[]).includes(schedule)) throw new UsageError(`--schedule must be one of ${SCHEDULES.join(', ')}, got '${schedule}'`);
  set('schedule', schedule as ScheduleKind | undefined);
  return h as Partial<TrainHyperparameters>;
}

function loraFrom(args: ParsedArgs): Partial<LoraConfig> | null {
  if (args.flags.has('full')) return null;
  const lora: Record<string, unknown> = { targetModules: parseTargets(args.values.get('targets') ?? 'attention') };
  const rank = numberOption(args, 'rank', 'int');
  const alpha = numberOption(args, 'alpha', 'float');
  const dropout = numberOption(args, 'dropout', 'float');
  if (rank !== undefined) lora.rank = rank;
  lora.alpha = alpha ?? 2 * (rank ?? 8);
  if (dropout !== undefined) lora.dropout = dropout;
  if (args.flags.has('rslora')) lora.useRslora = true;
  return lora as Partial<LoraConfig>;
}

const MB = 1024 * 1024;
function describeEstimate(e: TrainingEstimate): string {
  return [
    `trainable parameters  ${e.trainableParameters.toLocaleString('en-US')}`,
    `adapter size          ${(e.adapterBytes / MB).toFixed(2)} MiB`,
    `peak memory           ${(e.peakMemoryBytes / MB).toFixed(0)} MiB of ${(e.availableMemoryBytes / MB).toFixed(0)} MiB available ` +
      `(base weights ${(e.memory.baseWeights / MB).toFixed(0)}, activations ${(e.memory.activations / MB).toFixed(0)}, ` +
      `trainable + optimizer ${(e.memory.trainable / MB).toFixed(0)}, loss ${(e.memory.loss / MB).toFixed(0)}, runtime ${(e.memory.runtime / MB).toFixed(0)} MiB)`,
    `recompute             ${e.recompute ? 'on (activations recomputed per block in the backward pass)' : 'off'}`,
    `time per epoch        ${e.secondsPerEpoch.toFixed(1)} s (${e.stepsPerEpoch} steps, ${e.secondsPerStep.toFixed(2)} s/step over ${e.calibrationSteps} timed steps)`,
    `total                 ${e.totalSteps} steps, about ${Math.ceil(e.totalSeconds)} s`,
  ].join('\n');
}

function describeProgress(e: TrainProgress): string {
  if (e.kind === 'eval') return `step ${e.step}/${e.totalSteps}  val loss ${e.valLoss?.toFixed(4)}  perplexity ${e.valPerplexity?.toFixed(2)}`;
  if (e.kind === 'checkpoint') return `checkpoint ${e.checkpoint}`;
  return `step ${e.step}/${e.totalSteps}  epoch ${e.epoch.toFixed(2)}  loss ${e.loss.toFixed(4)}  lr ${e.lr.toExponential(2)}  grad ${e.gradNorm.toFixed(3)}  ${e.tokensPerSecond.toFixed(0)} tok/s  eta ${Math.ceil(e.etaSeconds)} s`;
}

export function makeTrainCommand(loadModel: ModelLoader): CliCommand {
  return {
    name: 'train',
    summary: 'fine-tune a model with LoRA on a dataset and write a PEFT adapter',
    usage: TRAIN_USAGE,
    async run(argv: readonly string[], io: CliIo): Promise<number> {
      const args = parseArgs(argv, VALUE_OPTIONS, FLAG_OPTIONS);
      const [modelDir, ...extra] = args.positional;
      if (!modelDir || extra.length > 0) throw new UsageError(`train needs exactly one <model-dir>\nUsage: ${TRAIN_USAGE}`);
      const data = args.values.get('data');
      const out = args.values.get('out');
      if (!data) throw new UsageError('--data FILE is required');
      if (!out && !args.flags.has('dry-run')) throw new UsageError('--out DIR is required');
      const json = args.flags.has('json');
      const print = (value: Record<string, unknown>, text: string) => io.out(json ? JSON.stringify(value) : text);
      const lora = loraFrom(args);
      const hyperparameters = hyperparametersFrom(args);
      const maxSeqLen = numberOption(args, 'max-seq-len', 'int') ?? 512;
      const valSplit = numberOption(args, 'val-split', 'float') ?? (args.values.has('val-data') ? 0 : 'auto');
      const format = parseFormat(args.values.get('format'));
      const outDir = resolve(out ?? '.');
      const run: RunSettings = {
        lora: lora === null ? null : resolveLoraConfig(lora), batchSize: hyperparameters.batchSize ?? DEFAULT_HYPERPARAMETERS.batchSize,
        maxSeqLen, recompute: hyperparameters.recompute ?? DEFAULT_HYPERPARAMETERS.recompute,
      };
      const { model, tokenizer, backend } = await loadModel(resolve(modelDir), { trainable: lora === null, backend: args.values.get('backend'), run });
      try {
        const result = await runTraining({
          model, tokenizer, backend,
          baseModelName: resolve(modelDir),
          baseModelHash: args.flags.has('dry-run') ? null : hashModelDir(resolve(modelDir)),
          data: { path: resolve(data), format, valPath: args.values.get('val-data'), valSplit },
          lora, hyperparameters, maxSeqLen,
          trainOnAll: args.flags.has('train-on-all'), packing: args.flags.has('packing'),
          outDir,
          checkpointDir: resolve(args.values.get('checkpoint-dir') ?? `${outDir}.checkpoints`),
          resumeFrom: args.values.get('resume') ? resolve(args.values.get('resume') as string) : undefined,
          dryRun: args.flags.has('dry-run'),
          signal: io.signal,
          onProgress: (e) => print({ event: 'progress', ...e }, describeProgress(e)),
          onPrepared: ({ datasets, tokens, estimate }) => {
            for (const file of datasets) {
              print({ event: 'dataset', ...file, issues: file.issues.slice(0, 50) }, `${file.path}: ${file.format} (${file.fileType}), ${file.valid} of ${file.records} records used, ${file.skipped} skipped`);
              if (!json) for (const issue of file.issues.slice(0, 20)) io.err(`  line ${issue.line}: ${issue.message}`);
            }
            const t = tokens.train;
            print({ event: 'tokens', ...tokens }, `${t.examples} training examples, ${t.targetTokens} target tokens; ${t.truncated} truncated to ${maxSeqLen} tokens; ${t.skipped.length} skipped`);
            print({ event: 'estimate', backend, ...estimate }, `backend ${backend}\n${describeEstimate(estimate)}`);
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

export const trainCommand: CliCommand = makeTrainCommand((dir, options) =>
  loadForTraining(dir, { ...options, native: nativeOptionsFromEnv(process.env) }));
