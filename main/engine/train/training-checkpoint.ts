/**
 * Resumable checkpoints: `<dir>/checkpoint-<step>/` holding the trainable weights, AdamW's moments, the best
 * weights so far (early stopping), and trainer_state.json (step, data position, seed, history). Each is written
 * to a temp folder and renamed, so the newest complete checkpoint is always valid, whatever interrupts a write.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readF32Tensors, writeFolderAtomically, type F32Tensor, type FolderFile } from '../lora/peft-io';
import type { AdamW } from './optimizer';
import { TrainError } from './errors';

export interface EvalRecord {
  readonly step: number;
  readonly valLoss: number;
  readonly valPerplexity: number;
  /** What the model generated at this evaluation (see LoopOptions.sampleAtEval), when asked. */
  readonly sample?: string;
}

export interface StepRecord {
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  readonly gradNorm: number;
  readonly tokens: number;
}

export interface TrainerState {
  readonly version: 1;
  /** Optimizer steps completed. */
  readonly step: number;
  /** Position of the next micro-batch: epoch and index within that epoch's order. */
  readonly epoch: number;
  readonly batchInEpoch: number;
  /** Every draw (shuffles, dropout) derives from seed and position, so these are the whole RNG state. */
  readonly seed: number;
  readonly optimizerStep: number;
  readonly tokensSeen: number;
  readonly history: readonly StepRecord[];
  readonly evals: readonly EvalRecord[];
  readonly bestValLoss: number | null;
  readonly bestStep: number | null;
  readonly evalsWithoutImprovement: number;
  readonly variableNames: readonly string[];
}

export const STATE_FILE = 'trainer_state.json';
const WEIGHTS_FILE = 'trainable.safetensors';
const OPTIMIZER_FILE = 'optimizer.safetensors';
const BEST_FILE = 'best.safetensors';

export async function variableTensors(variables: ReadonlyMap<string, tf.Variable>): Promise<Map<string, F32Tensor>> {
  const out = new Map<string, F32Tensor>();
  for (const [name, v] of variables) out.set(name, { data: (await v.data()) as Float32Array, shape: v.shape.slice() });
  return out;
}

export interface CheckpointContent {
  readonly state: TrainerState;
  readonly variables: ReadonlyMap<string, tf.Variable>;
  readonly optimizer: AdamW;
  readonly best: ReadonlyMap<string, F32Tensor> | null;
  /** Files to include for users (a PEFT adapter of the current weights). */
  readonly extraFiles?: ReadonlyMap<string, FolderFile>;
}

/** Writes checkpoint-<step> atomically and keeps only the newest `keep` checkpoints. Returns its path. */
export async function writeCheckpoint(dir: string, content: CheckpointContent, keep = 2): Promise<string> {
  const path = join(dir, `checkpoint-${content.state.step}`);
  const files = new Map<string, FolderFile>(content.extraFiles ?? []);
  files.set(WEIGHTS_FILE, { tensors: await variableTensors(content.variables) });
  files.set(OPTIMIZER_FILE, { tensors: await content.optimizer.stateTensors() });
  if (content.best) files.set(BEST_FILE, { tensors: content.best });
  files.set(STATE_FILE, JSON.stringify(content.state, null, 1));
  writeFolderAtomically(path, files, { replace: true }); // the run's own folder: a step written again replaces it
  const steps = listCheckpoints(dir);
  for (const old of steps.slice(0, Math.max(0, steps.length - keep))) rmSync(join(dir, `checkpoint-${old}`), { recursive: true, force: true });
  return path;
}

/** Steps of the complete checkpoints in `dir`, oldest first. */
export function listCheckpoints(dir: string): number[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((n) => /^checkpoint-(\d+)$/.exec(n)?.[1])
    .filter((s): s is string => s !== undefined && existsSync(join(dir, `checkpoint-${s}`, STATE_FILE)))
    .map(Number)
    .sort((a, b) => a - b);
}

function invalid(path: string, why: string): never {
  throw new TrainError('INVALID_CHECKPOINT', `${path}: ${why}; point --resume at a checkpoint-<step> folder written by this trainer`);
}

/** Reads a checkpoint and restores weights and optimizer; returns the state and the saved best weights. */
export function restoreCheckpoint(
  path: string,
  variables: ReadonlyMap<string, tf.Variable>,
  optimizer: AdamW,
): { state: TrainerState; best: Map<string, F32Tensor> | null } {
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(join(path, STATE_FILE), 'utf8')) as TrainerState;
  } catch (error) {
    return invalid(path, `cannot read ${STATE_FILE} (${(error as Error).message})`);
  }
  if (state.version !== 1) invalid(path, `unknown checkpoint version ${String(state.version)}`);
  const names = [...variables.keys()];
  if (names.join('\n') !== state.variableNames.join('\n')) {
    invalid(path, `it trains ${state.variableNames.length} tensors (${state.variableNames.slice(0, 2).join(', ')}...) but this run trains ${names.length} (${names.slice(0, 2).join(', ')}...): use the same model, targets and rank`);
  }
  const weights = readF32Tensors(join(path, WEIGHTS_FILE));
  for (const [name, v] of variables) {
    const saved = weights.get(name);
    if (!saved || saved.data.length !== v.size) invalid(path, `weight '${name}' is missing or has the wrong size`);
    tf.tidy(() => v.assign(tf.tensor(saved.data, v.shape)));
  }
  const moments = readF32Tensors(join(path, OPTIMIZER_FILE));
  try {
    optimizer.loadState(state.optimizerStep, moments);
  } catch (error) {
    invalid(path, (error as Error).message);
  }
  const bestPath = join(path, BEST_FILE);
  const best = existsSync(bestPath) ? readF32Tensors(bestPath) : null;
  return { state, best };
}
