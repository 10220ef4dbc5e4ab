/**
 * What an exported run's train.py brings back (OUTPUT/: adapter/, trainer_state.json, run_info.json, run.json),
 * read and checked: the PEFT adapter, the curves from the trainer's log_history, the machine it ran on with the
 * library versions it ran with (against those the export was tested with), and the export's own record of the
 * base, the data and the settings. Nothing is written.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from '../lora/peft-io';
import type { TrainSettings } from '../train/settings';
import { HandoffError } from './errors';
import { RUN_EXPORT_FORMAT, RUN_FILE } from './export-run';
import { describeDifference, TESTED_VERSIONS, versionDifferences, type VersionDifference } from './versions';

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
  /** The main process's machine; `hosts` every machine of the run (several with --num_machines). */
  readonly hostname: string;
  readonly hosts: readonly string[];
  /** The GPU of each process (its CUDA device name), in process order; empty on CPUs. */
  readonly devices: readonly string[];
  /** The world size: processes over all machines. */
  readonly processes: number;
  /** accelerate's distributed type: NO, MULTI_GPU, DEEPSPEED, FSDP. */
  readonly distributedType: string;
  /** Versions by name (python, torch, cuda, transformers, peft, accelerate, deepspeed), null where absent. */
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
  /** The versions the export pinned (run.json's tested_versions), and where the run's differ from them. */
  readonly testedVersions: Readonly<Record<string, string>>;
  readonly versionDifferences: readonly VersionDifference[];
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

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((d): d is string => typeof d === 'string') : []);

function machineOf(raw: unknown): RunMachine {
  const m = (typeof raw === 'object' && raw !== null ? raw : {}) as Json;
  const versions: Record<string, string | null> = {};
  for (const name of ['python', 'torch', 'cuda', 'transformers', 'peft', 'accelerate', 'deepspeed']) versions[name] = text(m[name]);
  const hostname = text(m.hostname) ?? 'unknown';
  const hosts = strings(m.hosts);
  return {
    hostname, hosts: hosts.length > 0 ? hosts : [hostname],
    devices: strings(m.devices),
    processes: finite(m.processes) ?? 1,
    // str(DistributedType.MULTI_GPU) is 'DistributedType.MULTI_GPU' on some Pythons, its value on others.
    distributedType: (text(m.distributed_type) ?? 'NO').replace(/^DistributedType\./, ''),
    versions,
  };
}

/** run.json's tested_versions; an export made before they were recorded was tested with the same pins as now. */
function testedVersionsOf(raw: unknown): Readonly<Record<string, string>> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return TESTED_VERSIONS;
  return Object.fromEntries(Object.entries(raw as Json).filter((e): e is [string, string] => typeof e[1] === 'string'));
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
  // PEFT names itself in the adapter it saved: the version that wrote it, where run_info.json does not say.
  const savedBy = text(readJson(adapterDir, ADAPTER_CONFIG_FILE).peft_version);
  const ran = machineOf(info.machine);
  const machine = ran.versions.peft === null && savedBy !== null ? { ...ran, versions: { ...ran.versions, peft: savedBy } } : ran;
  const testedVersions = testedVersionsOf(run.tested_versions);
  return {
    dir, adapterDir,
    status: text(info.status) ?? 'completed',
    steps: finite(info.steps) ?? trained.at(-1)?.step ?? 0,
    seconds: finite(info.seconds) ?? null,
    tokensPerSecond: finite(info.tokens_per_second) ?? null,
    machine, testedVersions, versionDifferences: versionDifferences(testedVersions, machine.versions, machine.distributedType),
    baseContentHash, baseNameOrPath: text(info.base) ?? text(base.hub_id) ?? text(base.path) ?? 'unknown',
    datasetHashes, settings, library, points,
    trainLoss: trained.at(-1)?.loss ?? null,
    valLoss: evaluated.at(-1)?.valLoss ?? null,
  };
}

/**
 * One line naming where a run trained and with what, a version that differs from the tested one marked:
 * 'gpu-box: 2 × NVIDIA H100 80GB HBM3, 2 processes (MULTI_GPU); torch 2.11.0+cu128, CUDA 12.8, transformers 5.18.0
 * (tested 5.17.0), PEFT 0.21.0, accelerate 1.15.0'.
 */
export function describeMachine(m: RunMachine, differences: readonly VersionDifference[] = []): string {
  const counts = new Map<string, number>();
  for (const d of m.devices) counts.set(d, (counts.get(d) ?? 0) + 1);
  const devices = counts.size === 0 ? 'CPU' : [...counts].map(([name, n]) => (n > 1 ? `${n} × ${name}` : name)).join(', ');
  const hosts = m.hosts.length > 1 ? `${m.hosts.length} machines (${m.hosts.join(', ')})` : m.hostname;
  const how = m.processes > 1 ? `, ${m.processes} processes (${m.distributedType})` : '';
  const differing = new Map(differences.map((d) => [d.library, d]));
  const shown = (key: string, label: string): string | null => {
    const d = differing.get(key);
    if (d) return describeDifference(d);
    const v = m.versions[key];
    return v ? `${label} ${v}` : null;
  };
  const libs = [
    shown('torch', 'torch'), shown('cuda', 'CUDA'), shown('transformers', 'transformers'), shown('peft', 'PEFT'), shown('accelerate', 'accelerate'),
    /DEEPSPEED/.test(m.distributedType) ? shown('deepspeed', 'DeepSpeed') : null,
  ].filter((l): l is string => l !== null);
  return `${hosts}: ${devices}${how}${libs.length > 0 ? `; ${libs.join(', ')}` : ''}`;
}
