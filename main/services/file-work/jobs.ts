/**
 * The file worker's jobs (protocol.ts), run inside the worker thread: they read users' files through the engine
 * (dataset normalisation, model configs and checkpoint headers, tokenizers) and copy them into staging folders.
 */
import {
  closeSync, copyFileSync, cpSync, fsyncSync, mkdirSync, openSync, readdirSync, readSync, realpathSync, statSync, writeSync,
} from 'node:fs';
import { basename, dirname, join, relative, sep } from 'node:path';
import { fsyncTree } from '../../common/atomic';
import { hashFile, hashFolder } from '../../common/hash';
import { loadTokenizer } from '../../engine/io/tokenizer';
import { inspectModel as inspect } from '../../engine/models/inspect';
import { normalizeDatasetToFile, readDatasetHead, storedDatasetFile } from '../../engine/train/datasets/normalize';
import { chatSegments } from '../../engine/train/tokenize';
import { describeBaseDir } from '../../engine/adapters/describe-base';
import { formatPreflight, preflightAdapter } from '../../engine/adapters/preflight';
import { preflightDetails } from '../../engine/adapters/preflight-verdict';
import { HandoffError } from '../../engine/handoff/errors';
import { describeMachine, readRunResult } from '../../engine/handoff/run-result';
import { versionWarning } from '../../engine/handoff/versions';
import type { TrainSettings } from '../../engine/train/settings';
import type { AdapterPreflight, TrainingSettings } from '../../../preload/contract/domain';
import { ServiceError } from '../errors';
import type { FileJob, FileJobResults, ModelSummary, PreviewResult, RunResultSummary, StagedDataset } from './protocol';

/** Token lengths drawn in the preview's histogram. */
const MAX_LENGTHS = 5000;
const NORMALIZED_NAME = 'normalized.jsonl';

const isInside = (path: string, root: string) => path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);

/**
 * Where a model folder's symlinks may lead: inside the folder itself, or, for a Hugging Face cache snapshot
 * (…/models--owner--name/snapshots/<revision>), into that repository's blobs/: that is how the hub cache keeps files.
 */
function allowedTargets(root: string): string[] {
  const snapshot = /[\\/]models--[^\\/]+[\\/]snapshots[\\/][^\\/]+$/.test(root);
  return snapshot ? [root, join(dirname(dirname(root)), 'blobs')] : [root];
}

/**
 * Walks a model folder. A symlink may point only at a file inside the allowed places: one to a folder, a dangling
 * one or one leading elsewhere (a whole home directory, /etc) is refused, naming it.
 */
function walkModelFolder(root: string, visit: (rel: string, file: string) => void): void {
  const allowed = allowedTargets(root);
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const rel = relative(root, path);
      if (entry.isDirectory()) {
        walk(path);
      } else if (entry.isSymbolicLink()) {
        let target: string;
        try {
          target = realpathSync(path);
        } catch {
          throw new ServiceError('SYMLINK_OUTSIDE', `'${rel}' in ${root} is a symlink to nothing; remove it or replace it with the file`);
        }
        if (statSync(target).isDirectory()) {
          throw new ServiceError('SYMLINK_OUTSIDE', `'${rel}' in ${root} is a symlink to the folder ${target}; a model folder's files must be its own`);
        }
        if (!allowed.some((a) => isInside(target, a))) {
          throw new ServiceError('SYMLINK_OUTSIDE', `'${rel}' in ${root} is a symlink leading outside the model folder (to ${target}); copy that file into the folder instead`);
        }
        visit(rel, target);
      } else if (entry.isFile()) {
        visit(rel, path);
      } else {
        throw new ServiceError('NOT_A_FILE', `'${rel}' in ${root} is not a regular file; remove it from the model folder`);
      }
    }
  };
  walk(root);
}

/** What the library records of a model folder: the engine's own reading of it (inspect), and its content hash. */
function summarize(dir: string): ModelSummary {
  const inspected = inspect(dir); // refuses an unsupported model_type, or a config the weights do not match, naming it
  return { modelType: inspected.config.modelType, parameterCount: inspected.parameterCount, contentHash: hashFolder(dir) };
}

function inspectModel(dir: string): ModelSummary {
  const root = realpathSync(dir);
  walkModelFolder(root, () => undefined);
  return summarize(root);
}

function stageModel(source: string, staging: string): ModelSummary {
  const root = realpathSync(source);
  mkdirSync(staging);
  walkModelFolder(root, (rel, file) => {
    mkdirSync(dirname(join(staging, rel)), { recursive: true });
    copyFileSync(file, join(staging, rel));
  });
  fsyncTree(staging);
  return summarize(staging);
}

/** Copies by reading to the end, not by the size the file claims (files under /proc say 0 and hold text). */
function copyByReading(source: string, target: string): void {
  const from = openSync(source, 'r');
  try {
    if (!statSync(source).isFile()) throw new ServiceError('NOT_A_FILE', `'${source}' is not a regular file; choose a dataset file`);
    const to = openSync(target, 'wx');
    try {
      const buffer = Buffer.allocUnsafe(1 << 20);
      for (let n = readSync(from, buffer); n > 0; n = readSync(from, buffer)) {
        for (let done = 0; done < n;) done += writeSync(to, buffer, done, n - done);
      }
      fsyncSync(to);
    } finally {
      closeSync(to);
    }
  } finally {
    closeSync(from);
  }
}

function copyIn(copies: readonly { readonly from: string; readonly to: string }[]): { copied: number } {
  for (const { from, to } of copies) {
    cpSync(from, to, { recursive: true, dereference: true });
    fsyncTree(to);
  }
  return { copied: copies.length };
}

function stageDataset(job: Extract<FileJob, { kind: 'stageDataset' }>): StagedDataset {
  mkdirSync(job.staging);
  // The copy is what gets normalised and hashed: what is stored is exactly what was read, once.
  const name = basename(job.source);
  const original = join(job.staging, name === NORMALIZED_NAME ? `original-${name}` : name);
  copyByReading(job.source, original);
  const normalized = join(job.staging, NORMALIZED_NAME);
  let report: ReturnType<typeof normalizeDatasetToFile>;
  try {
    report = normalizeDatasetToFile(original, normalized, { ...(job.format ? { format: job.format } : {}), reportedPath: job.source });
  } catch (error) {
    // The engine names the file it read, the copy in the staging folder (gone once the import fails): the user
    // knows the file they chose.
    if (error instanceof Error) error.message = error.message.split(original).join(job.source);
    throw error;
  }
  fsyncTree(job.staging);
  return { original, hash: report.contentHash, normalized, format: report.format, valid: report.valid, skipped: report.skipped };
}

async function previewDataset(job: Extract<FileJob, { kind: 'previewDataset' }>): Promise<PreviewResult> {
  const tokenizer = await loadTokenizer(job.modelDir);
  // What trains: the stored normalized records (an older import's original, normalised again, where it has none).
  const head = readDatasetHead(storedDatasetFile(job.stored), Math.max(job.limit, MAX_LENGTHS), { format: job.format });
  const spansOf = (i: number) => {
    const example = head.examples[i];
    if (!example) return [];
    const segments = example.kind === 'chat' ? chatSegments(tokenizer, example.messages) : example.segments;
    return segments.map((s) => ({ text: s.text, trained: s.train }));
  };
  const count = (spans: readonly { text: string }[]) =>
    spans.reduce((n, s) => n + tokenizer.encode(s.text, { addSpecialTokens: false }).length, 0);
  const records = [];
  for (let i = 0; i < Math.min(job.limit, head.examples.length); i++) {
    const spans = spansOf(i);
    records.push({ index: i, spans, tokenCount: count(spans) });
  }
  const tokenLengths: number[] = [];
  for (let i = 0; i < Math.min(MAX_LENGTHS, head.examples.length); i++) tokenLengths.push(count(spansOf(i)));
  return { records, issues: head.report.issues.map((i) => ({ line: i.line, message: i.message })), tokenLengths };
}

/** The engine's settings in the contract's words (what a version records and the wizard can start again from). */
export function contractSettings(s: TrainSettings): TrainingSettings {
  const lora = s.lora;
  if (lora === null) throw new HandoffError('INVALID_RUN_RESULT', 'run.json describes full fine-tuning; only LoRA runs come back as adapter versions');
  return {
    lora: { targetModules: typeof lora.targetModules === 'string' ? [lora.targetModules] : [...lora.targetModules], rank: lora.rank, alpha: lora.alpha, dropout: lora.dropout, useRslora: lora.useRslora },
    ...(s.maxSteps !== null ? { maxSteps: s.maxSteps } : { epochs: s.epochs }),
    learningRate: s.learningRate, batchSize: s.batchSize, gradAccum: s.gradAccum, maxSeqLen: s.maxSeqLen,
    valSplit: s.valSplit === 'auto' ? 0.1 : s.valSplit, seed: s.seed, scheduler: s.scheduler, warmupSteps: s.warmupSteps,
    weightDecay: s.weightDecay, maxGradNorm: s.maxGradNorm, evalEvery: s.evalEvery, checkpointEvery: s.checkpointEvery,
    earlyStoppingPatience: s.earlyStoppingPatience, keepWeights: s.keepWeights, trainOnPrompt: s.trainOnPrompt, recompute: s.recompute,
  };
}

function runResultSummary(dir: string): RunResultSummary {
  const r = readRunResult(dir);
  return {
    dir: r.dir, adapterDir: r.adapterDir, steps: r.steps, trainLoss: r.trainLoss, valLoss: r.valLoss, points: r.points,
    baseContentHash: r.baseContentHash, baseNameOrPath: r.baseNameOrPath, datasetHashes: r.datasetHashes,
    settings: contractSettings(r.settings), library: r.library, machine: { ...r.machine }, trainedOn: describeMachine(r.machine, r.versionDifferences),
    testedVersions: r.testedVersions, versionDifferences: r.versionDifferences, versionWarning: versionWarning(r.versionDifferences),
  };
}

function preflightJob(adapterDir: string, modelDir: string): AdapterPreflight & { report: string } {
  const report = preflightAdapter(adapterDir, describeBaseDir(modelDir));
  return {
    ok: report.ok, verdict: report.verdict, madeFor: report.madeFor, base: report.base, moduleCount: report.modules.length,
    ...preflightDetails(report), report: report.ok ? '' : formatPreflight(report),
  };
}

export async function runJob(job: FileJob): Promise<FileJobResults[FileJob['kind']]> {
  switch (job.kind) {
    case 'inspectModel':
      return inspectModel(job.dir);
    case 'stageModel':
      return stageModel(job.source, job.staging);
    case 'stageDataset':
      return stageDataset(job);
    case 'previewDataset':
      return previewDataset(job);
    case 'readRunResult':
      return runResultSummary(job.dir);
    case 'preflightAdapter':
      return preflightJob(job.adapterDir, job.modelDir);
    case 'copyIn':
      return copyIn(job.copies);
    case 'hashFile':
      return { contentHash: hashFile(job.path) };
  }
}
