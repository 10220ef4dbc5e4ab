/**
 * What an exported run's train.py brings back (OUTPUT/: adapter/, trainer_state.json, run_info.json, run.json),
 * read and checked: the PEFT adapter, the curves from the trainer's log_history, the machine it ran on, and the
 * export's own record of the base, the data and the settings. Nothing is written.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from '../lora/peft-io';
import type { TrainSettings } from '../train/settings';
import { HandoffError } from './errors';
import { RUN_EXPORT_FORMAT, RUN_FILE } from './export-run';

export const RUN_RESULT_FORMAT = 'lorasmith-run-result/1';

export interface RunResultPoint {
  readonly step: number;
  readonly loss?: number;
  readonly valLoss?: number;
  readonly lr?: number;
  readonly gradNorm?: number;
  readonly epoch?: number;
}

export interface RunMachine {
  readonly hostname: string;
  readonly devices: readonly string[];
  readonly processes: number;
  readonly distributedType: string;
  /** Library versions by name (torch, transformers, peft, accelerate, deepspeed), null where absent. */
  readonly versions: Readonly<Record<string, string | null>>;
}

export interface RunResult {
  readonly dir: string;
  readonly adapterDir: string;
  readonly status: string;
  readonly steps: number;
  readonly seconds: number | null;
  readonly tokensPerSecond: number | null;
  readonly machine: RunMachine;
  /** The base and data the export named, by content hash (main/common/hash). */
  readonly baseContentHash: string;
  readonly baseNameOrPath: string;
  readonly datasetHashes: readonly string[];
  /** The run's settings in the engine's words, as exported. */
  readonly settings: TrainSettings;
  /** Library ids the export was made from, where the app made it (checked again on import). */
  readonly library: { readonly modelId?: string; readonly datasetId?: string; readonly parentVersionId?: string } | null;
  /** Per step (train loss, lr, gradient norm, epoch) and per evaluation (validation loss), merged by step. */
  readonly points: readonly RunResultPoint[];
  readonly trainLoss: number | null;
  readonly valLoss: number | null;
}

type Json = Record<string, unknown>;

function invalid(dir: string, message: string): never {
  throw new HandoffError('INVALID_RUN_RESULT', `${dir}: ${message}`);
}

function readJson(dir: string, name: string): Json {
  const path = join(dir, name);
  if (!existsSync(path)) invalid(dir, `${name} is missing; choose the output folder train.py wrote (it holds adapter/, trainer_state.json, run_info.json and run.json)`);
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) invalid(dir, `${name} is not a JSON object`);
    return value as Json;
  } catch (error) {
    if (error instanceof HandoffError) throw error;
    return invalid(dir, `${name} does not parse: ${(error as Error).message}`);
  }
}

const finite = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const text = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** Where the result is: the folder given, or its output/ (the export folder itself may be chosen). */
export function resolveRunResultDir(dir: string): string {
  if (!existsSync(join(dir, 'run_info.json')) && existsSync(join(dir, 'output', 'run_info.json'))) return join(dir, 'output');
  return dir;
}

function machineOf(raw: unknown): RunMachine {
  const m = (typeof raw === 'object' && raw !== null ? raw : {}) as Json;
  const versions: Record<string, string | null> = {};
  for (const name of ['python', 'torch', 'transformers', 'peft', 'accelerate', 'deepspeed', 'cuda']) versions[name] = text(m[name]);
  return {
    hostname: text(m.hostname) ?? 'unknown',
    devices: Array.isArray(m.devices) ? m.devices.filter((d): d is string => typeof d === 'string') : [],
    processes: finite(m.processes) ?? 1,
    distributedType: text(m.distributed_type) ?? 'NO',
    versions,
  };
}

/** The curves of log_history: step entries (loss) and evaluation entries (eval_loss) merged by step. */
function pointsOf(dir: string, history: unknown): RunResultPoint[] {
  if (!Array.isArray(history)) invalid(dir, 'trainer_state.json has no log_history list');
  const byStep = new Map<number, RunResultPoint>();
  for (const entry of history as unknown[]) {
    const e = (typeof entry === 'object' && entry !== null ? entry : {}) as Json;
    const step = finite(e.step);
    if (step === undefined || !Number.isInteger(step) || step < 0) invalid(dir, `log_history has an entry without a whole step: ${JSON.stringify(entry).slice(0, 200)}`);
    const point: Record<string, number> = { ...byStep.get(step), step };
    for (const [key, name] of [['loss', 'loss'], ['valLoss', 'eval_loss'], ['lr', 'learning_rate'], ['gradNorm', 'grad_norm'], ['epoch', 'epoch']] as const) {
      const value = finite(e[name]);
      if (value !== undefined) point[key] = value;
    }
    byStep.set(step, point as unknown as RunResultPoint);
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** Reads and checks a run's result folder; throws HandoffError('INVALID_RUN_RESULT') naming what is wrong. */
export function readRunResult(given: string): RunResult {
  const dir = resolveRunResultDir(given);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) invalid(given, 'is not a folder');
  const info = readJson(dir, 'run_info.json');
  if (info.format !== RUN_RESULT_FORMAT) invalid(dir, `run_info.json is not a Lorasmith run result (format ${JSON.stringify(info.format)}, expected '${RUN_RESULT_FORMAT}')`);
  const run = readJson(dir, RUN_FILE);
  if (run.format !== RUN_EXPORT_FORMAT) invalid(dir, `run.json is not a Lorasmith run export (format ${JSON.stringify(run.format)}, expected '${RUN_EXPORT_FORMAT}')`);
  const state = readJson(dir, 'trainer_state.json');
  const adapterDir = join(dir, 'adapter');
  for (const name of [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]) {
    if (!existsSync(join(adapterDir, name))) invalid(dir, `adapter/${name} is missing; the run did not finish writing its adapter`);
  }
  const base = (run.base_model ?? {}) as Json;
  const baseContentHash = text(base.content_hash);
  if (baseContentHash === null) invalid(dir, 'run.json names no base_model.content_hash');
  const files = Array.isArray((run.dataset as Json | undefined)?.files) ? ((run.dataset as Json).files as Json[]) : [];
  const datasetHashes = files.map((f) => text(f.content_hash)).filter((h): h is string => h !== null);
  if (datasetHashes.length === 0) invalid(dir, 'run.json names no dataset file hash');
  const settings = run.settings as TrainSettings | undefined;
  if (typeof settings !== 'object' || settings === null || typeof settings.learningRate !== 'number') invalid(dir, 'run.json has no settings');
  const points = pointsOf(dir, state.log_history);
  const trained = points.filter((p) => p.loss !== undefined);
  const evaluated = points.filter((p) => p.valLoss !== undefined);
  const library = typeof run.library === 'object' && run.library !== null ? (run.library as RunResult['library']) : null;
  return {
    dir, adapterDir,
    status: text(info.status) ?? 'completed',
    steps: finite(info.steps) ?? trained.at(-1)?.step ?? 0,
    seconds: finite(info.seconds) ?? null,
    tokensPerSecond: finite(info.tokens_per_second) ?? null,
    machine: machineOf(info.machine),
    baseContentHash, baseNameOrPath: text(info.base) ?? text(base.hub_id) ?? text(base.path) ?? 'unknown',
    datasetHashes, settings, library, points,
    trainLoss: trained.at(-1)?.loss ?? null,
    valLoss: evaluated.at(-1)?.valLoss ?? null,
  };
}

/** One line naming where a run trained: 'gpu-box: 2 × NVIDIA H100 80GB HBM3, MULTI_GPU (transformers 5.17.0, PEFT 0.21.0)'. */
export function describeMachine(m: RunMachine): string {
  const counts = new Map<string, number>();
  for (const d of m.devices) counts.set(d, (counts.get(d) ?? 0) + 1);
  const devices = counts.size === 0 ? 'CPU' : [...counts].map(([name, n]) => (n > 1 ? `${n} × ${name}` : name)).join(', ');
  const how = m.processes > 1 ? `, ${m.processes} processes (${m.distributedType})` : '';
  const libs = [['transformers', 'transformers'], ['PEFT', 'peft']].map(([label, key]) => (m.versions[key as string] ? `${label} ${m.versions[key as string]}` : null)).filter(Boolean).join(', ');
  return `${m.hostname}: ${devices}${how}${libs ? ` (${libs})` : ''}`;
}
