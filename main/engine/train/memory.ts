/**
 * Peak memory of a training run, computed from the shapes before any weight is loaded: the frozen base as the
 * backend holds it, the trainable weights with their gradients and AdamW moments, the activations a step keeps
 * for its backward pass (all blocks, or with recomputation one block plus each block's input), the chunked loss,
 * and the process itself. A run that would not fit is refused before loading, with the numbers and what to change.
 *
 * The activation terms count the tensors tfjs keeps per decoder block (its tape saves each op's inputs and outputs
 * that the gradient reads, and keeps every gradient until the backward pass ends), as the models and LoRA layer
 * compute today; test/engine/train/memory.test.ts measures them on small models and fails if the code drifts.
 * Shapes: B batch, T sequence, N = B·T rows, C hidden, q = H·D and kv = Hkv·D projection widths, F MLP width,
 * V vocabulary, r LoRA rank.
 */
import { freemem, totalmem } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { activeFrozenStore, baseWeightBytes, frozenMatrixBytes, type BasePrecision, type StoredFormat } from '../backend/frozen';
import { FUSED_KERNELS, hasFusedKernel } from '../backend/fused-ops';
import { frozenWeightBytes } from '../models/weights';
import { inspectModel, type ModelSummary } from '../models/inspect';
import type { CausalLM, LinearSpec, ModelConfig } from '../models/types';
import { resolveTargets, type LoraConfig } from '../lora/config';
import { TrainError } from './errors';
import type { RecomputeSetting } from './hyperparameters';
import { DEFAULT_LOSS_CHUNK_BYTES, lossChunkRows } from './loss';

export interface MemoryPlan {
  readonly config: ModelConfig;
  /** Parameters of the base model (every weight, embedding included). */
  readonly baseParameters: number;
  /** Bytes the base takes as loaded: float32 tensors, or the frozen store's BF16/F16/Q8_0 plus float32 norms. */
  readonly baseWeightBytes: number;
  /** Where the base's big matrices live: tfjs tensors (inside the wasm heap on wasm) or the native frozen store. */
  readonly baseHeld: 'tensors' | 'store';
  /**
   * Bytes the base would take held in the frozen store at each precision (its matrices so, the rest float32), for
   * the refusal's alternatives; known before loading (modelDirPlan), absent for a loaded model.
   */
  readonly baseInStore?: Readonly<Record<BasePrecision, number>>;
  /** The precision the store holds (or would hold) the base at. */
  readonly precision?: BasePrecision;
  /** Bytes loading holds beyond the weights at once: the largest tensor's file bytes and conversion copies. */
  readonly loadingBytes: number;
  /** The backend's limit on all tensors together (wasm: one 4 GB heap); null where there is none. */
  readonly tensorHeapBytes: number | null;
  /** LoRA's targeted modules, rank and dropout; null trains every weight. */
  readonly lora: { readonly modules: readonly LinearSpec[]; readonly rank: number; readonly dropout: number } | null;
  readonly batchSize: number;
  /** The longest row of a batch, in tokens. */
  readonly seqLen: number;
  readonly recompute: boolean;
  /** The native fused kernels (RMSNorm, rotary, attention, SwiGLU) serve the model: they keep fewer tensors. */
  readonly fusedKernels: boolean;
  readonly lossChunkBytes?: number;
}

export interface MemoryEstimate {
  /** The process's peak resident memory, the largest of loading and a training step. */
  readonly peakBytes: number;
  readonly parts: {
    /** Node, tfjs and the backend before any model: measured once here. */
    readonly runtime: number;
    readonly baseWeights: number;
    /** Trainable weights, their gradients, AdamW's two moments and the step's copies of them. */
    readonly trainable: number;
    /** What a step keeps for its backward pass and the gradients the backward pass makes. */
    readonly activations: number;
    /** The loss's largest chunk of logits and their gradient. */
    readonly loss: number;
    /** Extra while loading: the largest tensor's conversion copies. */
    readonly loading: number;
  };
}

const F32 = 4;
/** tfjs-backend-wasm's heap maximum (its getHeapMax()); every wasm tensor lives in it. */
const WASM_HEAP_BYTES = 4294901760;
/** Node + tfjs + a backend + the tokenizer, measured on this machine (bench/realsize.bench.ts reports it). */
const RUNTIME_BYTES = 260 * 2 ** 20;
/** The backward pass keeps a gradient for every tensor it passes through, about this many times what the forward saved. */
const GRADIENT_FACTOR = 0.6;

/** Floats the linears' bias additions keep ([N, out] each): GPT-2's every linear; qwen2's q, k, v; attention_bias, mlp_bias. */
function biasFloats(c: ModelConfig, N: number): number {
  const C = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const F = c.intermediateSize;
  if (c.modelType === 'gpt2') return N * (5 * C + F);
  const attention = c.raw.attention_bias === true ? q + 2 * kv + C : c.modelType === 'qwen2' ? q + 2 * kv : 0;
  return N * (attention + (c.raw.mlp_bias === true ? 2 * F + C : 0));
}

/**
 * Floats decoder block `layer` keeps from its forward pass for the backward pass (its output included), on top
 * of its input: the architecture's own tensors (norms, rotary, attention, activation, residuals) per kernel path,
 * the bias additions, and per LoRA-targeted linear its [N, r] product, its unscaled and scaled update and the
 * output it adds to (3·N·out), plus dropout's random, mask and masked-input copies (4·N·in).
 */
export function blockActivationFloats(plan: Pick<MemoryPlan, 'config' | 'lora' | 'batchSize' | 'seqLen' | 'fusedKernels'>, layer: number): number {
  const c = plan.config;
  const B = plan.batchSize;
  const T = plan.seqLen;
  const N = B * T;
  const C = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const F = c.intermediateSize;
  const scores = B * c.numHeads * T * T; // attention probabilities [B, H, T, T]
  let floats = biasFloats(c, N);
  if (c.modelType === 'gpt2') {
    // two LayerNorms of 6 [N, C] each, q/k/v split and transposed, residuals; gelu_new keeps 8 [N, F]
    floats += plan.fusedKernels ? 23 * N * C + 8 * N * F + scores : 24 * N * C + 8 * N * F + 3 * scores;
  } else if (plan.fusedKernels) {
    // norms, q/k/v outputs and rotated copies, attention output and probabilities, SwiGLU's gate, up and product
    floats += 6 * N * C + 3 * N * q + 4 * N * kv + 3 * N * F + scores;
  } else {
    const grouped = c.numHeads !== c.numKvHeads ? 4 : 3; // the grouped-query path reshapes the scores once more
    floats += 10 * N * C + 9 * N * q + 9 * N * kv + 5 * N * F + grouped * scores + 6 * N;
  }
  for (const m of plan.lora?.modules ?? []) {
    if (m.layer !== layer) continue;
    floats += N * plan.lora!.rank + 3 * N * m.outFeatures + (plan.lora!.dropout > 0 ? 4 * N * m.inFeatures : 0);
  }
  return floats;
}

/** Parameters LoRA adds: rank·(in + out) per targeted module; every base parameter in full fine-tuning. */
export function trainableParametersOf(plan: Pick<MemoryPlan, 'lora' | 'baseParameters'>): number {
  if (!plan.lora) return plan.baseParameters;
  const rank = plan.lora.rank;
  return plan.lora.modules.reduce((s, m) => s + rank * (m.inFeatures + m.outFeatures), 0);
}

export function estimateMemory(plan: MemoryPlan): MemoryEstimate {
  const c = plan.config;
  const N = plan.batchSize * plan.seqLen;
  const trainableParameters = trainableParametersOf(plan);
  const baseWeights = plan.baseWeightBytes;
  // weights (LoRA only: the base is counted above), gradient, clipped gradient, AdamW's m and v, an update's temporaries
  const trainable = trainableParameters * F32 * (plan.lora ? 6 : 5);
  const blocks = Array.from({ length: c.numLayers }, (_, layer) => blockActivationFloats(plan, layer) * F32);
  const boundary = N * c.hiddenSize * F32; // one block's input [N, C]
  const activations = plan.recompute
    ? c.numLayers * 2 * boundary + Math.max(...blocks) * (1 + GRADIENT_FACTOR) // inputs kept and their gradients; one block at a time
    : blocks.reduce((s, b) => s + b, 0) * (1 + GRADIENT_FACTOR);
  const headLora = plan.lora?.modules.some((m) => m.layer === null) ?? false;
  const chunk = lossChunkRows(c.vocabSize, plan.lossChunkBytes ?? DEFAULT_LOSS_CHUNK_BYTES) * c.vocabSize * F32;
  // a chunk's logits and their gradient (the plain kernels add the softmax, one-hot and broadcast copies); LoRA on
  // the head adds its frozen output, update and scaled update, and their gradients
  const logitsCopies = (plan.fusedKernels ? 2 : 5) + (headLora ? 6 : 0);
  const loss = Math.min(N * c.vocabSize * F32, chunk) * logitsCopies + 3 * boundary;
  const loading = plan.loadingBytes;
  const training = baseWeights + trainable + activations + loss;
  const peakBytes = RUNTIME_BYTES + Math.max(baseWeights + loading, training);
  return { peakBytes, parts: { runtime: RUNTIME_BYTES, baseWeights, trainable, activations, loss, loading } };
}

/**
 * Memory this process can use now: what the system reports available (os.freemem is Linux's MemAvailable), or
 * the container's limit where Node knows one, whichever is smaller.
 */
export function availableMemoryBytes(): number {
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  const limit = constrained && constrained > 0 && constrained < totalmem() ? constrained - process.memoryUsage().rss : Infinity;
  return Math.min(freemem(), limit);
}

export interface FitOptions {
  /** The model is loaded already: the process and the base weights are in memory and not counted again. */
  readonly resident?: boolean;
}

function neededBytes(estimate: MemoryEstimate, fit: FitOptions): number {
  return fit.resident ? estimate.peakBytes - estimate.parts.runtime - estimate.parts.baseWeights - estimate.parts.loading : estimate.peakBytes;
}

/** Bytes of tensors a step holds at its peak: what must fit in the backend's heap (wasm's 4 GB). */
export function tensorBytes(plan: MemoryPlan, estimate = estimateMemory(plan)): number {
  const p = estimate.parts;
  return (plan.baseHeld === 'tensors' ? p.baseWeights : 0) + p.trainable + p.activations + p.loss;
}

/** Whether `plan` fits: in the memory available, and its tensors in the backend's heap (allocation leaves ~10% unused). */
function fitsIn(plan: MemoryPlan, availableBytes: number, fit: FitOptions): boolean {
  const estimate = estimateMemory(plan);
  return neededBytes(estimate, fit) <= availableBytes && (plan.tensorHeapBytes === null || tensorBytes(plan, estimate) <= 0.9 * plan.tensorHeapBytes);
}

/** 'auto' recomputes only when the run would not fit without it; an explicit choice stands. */
export function resolveRecompute(setting: RecomputeSetting, plan: MemoryPlan, availableBytes: number, fit: FitOptions = { resident: true }): boolean {
  if (setting !== 'auto') return setting === 'on';
  return !fitsIn({ ...plan, recompute: false }, availableBytes, fit);
}

interface RunShape {
  readonly batchSize: number;
  readonly seqLen: number;
  readonly recompute: boolean;
}

/** How the loaded base holds its big matrices on the active backend, and what else the plan needs from the backend. */
function backendPart(): Pick<MemoryPlan, 'fusedKernels' | 'tensorHeapBytes'> & { store: boolean } {
  return { fusedKernels: hasFusedKernel(FUSED_KERNELS.attention), tensorHeapBytes: tf.getBackend() === 'wasm' ? WASM_HEAP_BYTES : null, store: activeFrozenStore() !== null };
}

/**
 * The plan of a run on a model not loaded yet (call after the backend started: the frozen store and the fused kernels
 * are the backend's): config and linears from inspectModel; LoRA settings, or null for full fine-tuning.
 */
export function modelDirPlan(
  summary: Pick<ModelSummary, 'config' | 'linears' | 'parameterCount' | 'dtypes'>,
  lora: Pick<LoraConfig, 'targetModules' | 'rank' | 'dropout'> | null,
  run: RunShape,
  precision: BasePrecision = 'stored',
): MemoryPlan {
  const config = { ...summary.config, raw: {} } as ModelConfig;
  const c = summary.config;
  // The big matrices: every linear (a tied head is the embedding) and an untied embedding table.
  const matrices = summary.linears.map((l) => ({ rows: l.outFeatures, cols: l.inFeatures }));
  if (!c.tieWordEmbeddings) matrices.push({ rows: c.vocabSize, cols: c.hiddenSize });
  const matrixParameters = matrices.reduce((n, m) => n + m.rows * m.cols, 0);
  const fileDtype = dominantFloatDtype(summary.dtypes);
  const backend = backendPart();
  const stored = backend.store && lora !== null; // full fine-tuning trains float32 Variables
  const otherBytes = (summary.parameterCount - matrixParameters) * F32; // norms, biases, position tables
  const atPrecision = baseWeightBytes(matrices.map((m) => ({ ...m, dtype: fileDtype })));
  const baseInStore = {
    stored: atPrecision.stored + otherBytes, bf16: atPrecision.bf16 + otherBytes, q8_0: atPrecision.q8_0 + otherBytes, q4_0: atPrecision.q4_0 + otherBytes,
  };
  const largest = Math.max(...matrices.map((m) => m.rows * m.cols));
  const fileBytes = fileDtype === 'F32' ? 4 : 2;
  return {
    config, baseParameters: summary.parameterCount,
    baseWeightBytes: stored ? baseInStore[precision] : matrixParameters * F32 + otherBytes,
    baseHeld: stored ? 'store' : 'tensors', baseInStore, precision,
    // the store copies each tensor's file bytes in; the tensor path converts to float32 and transposes (two copies)
    loadingBytes: largest * (stored ? fileBytes : fileBytes + 2 * F32),
    lora: lora ? { modules: resolveTargets(summary.linears, lora.targetModules).modules, rank: lora.rank, dropout: lora.dropout } : null,
    fusedKernels: backend.fusedKernels, tensorHeapBytes: backend.tensorHeapBytes, ...run,
  };
}

/** The float dtype most of a checkpoint's parameters are stored in (F32 where it holds none). */
export function dominantFloatDtype(dtypes: Readonly<Record<string, number>>): 'F32' | 'BF16' | 'F16' {
  const floats = (['BF16', 'F16', 'F32'] as const).filter((d) => (dtypes[d] ?? 0) > 0);
  return floats.reduce<'F32' | 'BF16' | 'F16'>((best, d) => ((dtypes[d] ?? 0) > (dtypes[best] ?? 0) ? d : best), floats[0] ?? 'F32');
}

/**
 * The plan of a run on a loaded model: LoRA when `variables` are adapters' A and B (their modules, largest rank
 * and dropout), full fine-tuning otherwise; the base's bytes as its weights hold them.
 */
export function loadedModelPlan(model: CausalLM, variables: ReadonlyMap<string, tf.Variable>, run: RunShape): MemoryPlan {
  const trained = new Set([...variables.values()]);
  const modules: LinearSpec[] = [];
  let rank = 0;
  let dropout = 0;
  for (const layer of model.linears.values()) {
    for (const adapter of layer.adapters.values()) {
      if (!trained.has(adapter.At) && !trained.has(adapter.Bt)) continue;
      modules.push(layer.spec);
      rank = Math.max(rank, adapter.rank);
      dropout = Math.max(dropout, adapter.dropout);
    }
  }
  const held = frozenWeightBytes(model.linears);
  const weights = [...new Set([...model.linears.values()].map((l) => l.weight))];
  const matrixParameters = weights.reduce((n, w) => n + w.inFeatures * w.outFeatures, 0);
  const largest = weights.reduce((m, w) => Math.max(m, w.bytes), 0);
  const baseHeld = held.stored > held.tensor ? 'store' : 'tensors';
  const backend = backendPart();
  return {
    config: model.config, baseParameters: model.parameterCount(),
    baseWeightBytes: held.tensor + held.stored + (model.parameterCount() - matrixParameters) * F32,
    baseHeld,
    // as modelDirPlan: the largest weight's file bytes (about what the store keeps), or those and two float32 copies
    loadingBytes: baseHeld === 'store' ? largest : 2.5 * largest,
    lora: modules.length > 0 ? { modules, rank, dropout } : null,
    fusedKernels: backend.fusedKernels, tensorHeapBytes: backend.tensorHeapBytes, ...run,
  };
}

/** How a loaded model holds its linear weights, and what the frozen store would hold them in at BF16, Q8_0 and Q4_0. */
export interface BaseHolding {
  /** 'tensor' (float32 tfjs tensors), the stored format, or 'mixed' where weights differ. */
  readonly held: 'tensor' | StoredFormat | 'mixed';
  readonly bytes: number;
  readonly bf16Bytes: number;
  readonly q8_0Bytes: number;
  readonly q4_0Bytes: number;
}

export function baseHolding(model: CausalLM): BaseHolding {
  const weights = [...new Set([...model.linears.values()].map((l) => l.weight))];
  const formats = new Set(weights.map((w) => w.format));
  const sum = (f: (w: (typeof weights)[number]) => number) => weights.reduce((n, w) => n + f(w), 0);
  return {
    held: formats.size === 1 ? (weights[0]?.format ?? 'tensor') : 'mixed',
    bytes: sum((w) => w.bytes),
    bf16Bytes: sum((w) => frozenMatrixBytes(w.outFeatures, w.inFeatures, 'BF16')),
    q8_0Bytes: sum((w) => frozenMatrixBytes(w.outFeatures, w.inFeatures, 'Q8_0')),
    q4_0Bytes: sum((w) => frozenMatrixBytes(w.outFeatures, w.inFeatures, 'Q4_0')),
  };
}

const GiB = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/**
 * Throws TrainError('NOT_ENOUGH_MEMORY') when `estimate` exceeds `availableBytes`, saying what the run needs, what
 * is free and which changes would fit (recomputation, a smaller batch or sequence), each with its estimate.
 */
export function assertFits(plan: MemoryPlan, availableBytes: number, fit: FitOptions = {}): void {
  if (fitsIn(plan, availableBytes, fit)) return;
  const estimate = estimateMemory(plan);
  const needs = (e: MemoryEstimate) => neededBytes(e, fit);
  const options: string[] = [];
  const tryPlan = (label: string, changed: Partial<MemoryPlan>): boolean => {
    const next = { ...plan, ...changed };
    if (!fitsIn(next, availableBytes, fit)) return false;
    options.push(`${label} (needs ${GiB(needs(estimateMemory(next)))})`);
    return true;
  };
  if (!plan.recompute) tryPlan('turn on activation recomputation (--recompute)', { recompute: true });
  // A smaller base precision the store could hold this base at, in bytes, or undefined.
  const smaller = (precision: 'q8_0' | 'q4_0'): number | undefined => {
    const bytes = plan.baseInStore?.[precision];
    return plan.baseHeld === 'store' && bytes !== undefined && plan.precision !== precision && bytes < plan.baseWeightBytes ? bytes : undefined;
  };
  const at8 = smaller('q8_0');
  const at4 = smaller('q4_0');
  const fitsAt8 = at8 !== undefined &&
    tryPlan(`keep the base at 8 bits (LORASMITH_BASE_PRECISION=q8_0: ${GiB(at8)} instead of ${GiB(plan.baseWeightBytes)}; its outputs change slightly)`, { baseWeightBytes: at8, precision: 'q8_0' });
  if (!fitsAt8 && at4 !== undefined) {
    tryPlan(`keep the base at 4 bits (LORASMITH_BASE_PRECISION=q4_0: ${GiB(at4)} instead of ${GiB(plan.baseWeightBytes)}; its outputs change more, --measure-precision says how much)`, { baseWeightBytes: at4, precision: 'q4_0' });
  }
  for (let batchSize = Math.floor(plan.batchSize / 2); batchSize >= 1; batchSize = Math.floor(batchSize / 2)) {
    const accumulate = Math.ceil(plan.batchSize / batchSize);
    if (tryPlan(`batch size ${batchSize} with recomputation (--batch-size ${batchSize} --recompute; --grad-accum ${accumulate} keeps ${plan.batchSize} rows per step)`, { batchSize, recompute: true })) break;
  }
  for (let seqLen = Math.floor(plan.seqLen / 2); seqLen >= 16; seqLen = Math.floor(seqLen / 2)) {
    if (tryPlan(`rows of at most ${seqLen} tokens with recomputation and batch size 1 (--max-seq-len ${seqLen} --batch-size 1 --recompute)`, { seqLen, batchSize: 1, recompute: true })) break;
  }
  if (options.length === 0 && at8 !== undefined) {
    tryPlan('the base at 8 bits with batch size 1 and recomputation (LORASMITH_BASE_PRECISION=q8_0 --batch-size 1 --recompute)', { baseWeightBytes: at8, precision: 'q8_0', batchSize: 1, recompute: true });
  }
  if (options.length === 0 && at4 !== undefined) {
    tryPlan('the base at 4 bits with batch size 1 and recomputation (LORASMITH_BASE_PRECISION=q4_0 --batch-size 1 --recompute)', { baseWeightBytes: at4, precision: 'q4_0', batchSize: 1, recompute: true });
  }
  const heap = plan.tensorHeapBytes;
  const heapBound = heap !== null && tensorBytes(plan, estimate) > 0.9 * heap;
  if (heapBound && plan.baseHeld === 'tensors') options.push('the cpu backend, which has no heap limit (--backend cpu; slower without the native addon)');
  const floor = needs(estimateMemory({ ...plan, batchSize: 1, seqLen: Math.min(plan.seqLen, 16), recompute: true }));
  const what = options.length > 0
    ? `To fit: ${options.join('; or ')}.`
    : `No batch or sequence length fits: the base model alone takes ${GiB(estimate.parts.baseWeights)}, and the smallest run needs ${GiB(floor)}; ` +
      `use a smaller model or a machine with more memory${plan.lora ? '' : ', or train a LoRA adapter instead of every weight'}.`;
  const needed = `about ${GiB(needs(estimate))} of memory${fit.resident ? ' beyond the loaded model' : ''} (base weights ${GiB(estimate.parts.baseWeights)}, ` +
    `activations ${GiB(estimate.parts.activations)}, trainable weights and optimizer ${GiB(estimate.parts.trainable)}, loss ${GiB(estimate.parts.loss)}, runtime ${GiB(estimate.parts.runtime)})`;
  const limit = heapBound ? ` Its tensors need ${GiB(tensorBytes(plan, estimate))}, more than the wasm backend's single ${GiB(heap ?? 0)} heap can hold.` : '';
  throw new TrainError('NOT_ENOUGH_MEMORY', `this run needs ${needed} and ${GiB(availableBytes)} is available.${limit} ${what}${withoutStore(plan, estimate, availableBytes, fit)}`);
}

/** The parameter count `room` bytes of float32 weights hold, in words: "about 350M", "about 1.20B". */
function parametersIn(room: number): string {
  const n = Math.max(0, room) / F32;
  return n >= 1e9 ? `about ${(n / 1e9).toFixed(2)}B` : `about ${Math.round(n / 1e6)}M`;
}

/**
 * For a LoRA run whose base is float32 tensors because no frozen-weight store serves the backend (on wasm and cpu:
 * the native addon is not built, or LORASMITH_FROZEN_STORE is off): which base sizes fit at these settings as it is, and what the
 * store would hold this base in and whether the run would then fit. Empty otherwise.
 */
function withoutStore(plan: MemoryPlan, estimate: MemoryEstimate, availableBytes: number, fit: FitOptions): string {
  if (plan.baseHeld !== 'tensors' || !plan.lora || !plan.baseInStore) return '';
  const p = estimate.parts;
  const beside = p.trainable + p.activations + p.loss; // what the run holds beside its base
  const inMemory = availableBytes - (fit.resident ? 0 : p.runtime) - Math.max(beside, p.loading);
  const room = Math.min(inMemory, plan.tensorHeapBytes === null ? Infinity : 0.9 * plan.tensorHeapBytes - beside);
  const stored = { ...plan, baseHeld: 'store' as const, baseWeightBytes: plan.baseInStore.stored };
  const q8 = { ...plan, baseHeld: 'store' as const, baseWeightBytes: plan.baseInStore.q8_0 };
  const q4 = { ...plan, baseHeld: 'store' as const, baseWeightBytes: plan.baseInStore.q4_0 };
  const then = fitsIn(stored, availableBytes, fit) ? 'this run would fit'
    : fitsIn(q8, availableBytes, fit) ? 'this run would fit at Q8_0'
      : fitsIn(q4, availableBytes, fit) ? 'this run would fit at Q4_0'
        : `this run would still need ${GiB(neededBytes(estimateMemory(q4), fit))} at Q4_0`;
  return ' Here the base is held as float32 tensors: the frozen-weight store is not in use (on wasm and cpu it is the ' +
    'native addon\'s: `npm run build:native` builds it, with a C compiler and OpenBLAS; LORASMITH_FROZEN_STORE=off turns it off). ' +
    (room >= 1e6 * F32 ? `As it is, a base of ${parametersIn(room)} parameters at most fits beside these settings' activations. `
      : 'As it is, no base fits beside these settings\' activations. ') +
    `With the store this base would take ${GiB(plan.baseInStore.stored)} at its file precision, ${GiB(plan.baseInStore.q8_0)} at Q8_0 ` +
    `or ${GiB(plan.baseInStore.q4_0)} at Q4_0, and ${then}.`;
}

export interface RunSettings {
  readonly lora: Pick<LoraConfig, 'targetModules' | 'rank' | 'dropout'> | null;
  readonly batchSize: number;
  /** The longest a row may be (rows are cut to it): the estimate takes every batch at this length. */
  readonly maxSeqLen: number;
  readonly recompute: RecomputeSetting;
  /** Precision the frozen store keeps the base at (default: the file's own). */
  readonly precision?: BasePrecision;
}

/**
 * Refuses, before a weight is read, a run on the model folder `dir` that cannot fit in `availableBytes` even with
 * what 'auto' may still turn on (recomputation); returns the estimate otherwise.
 */
export function assertRunFitsBeforeLoading(dir: string, settings: RunSettings, availableBytes = availableMemoryBytes()): MemoryEstimate {
  const plan = modelDirPlan(inspectModel(dir), settings.lora, {
    batchSize: settings.batchSize, seqLen: settings.maxSeqLen, recompute: settings.recompute !== 'off',
  }, settings.precision);
  assertFits(plan, availableBytes);
  return estimateMemory(plan);
}

/**
 * A TrainError('NOT_ENOUGH_MEMORY') for an allocation that failed mid-run (a JavaScript array buffer, the wasm
 * heap reaching its 4 GB, an abort inside the wasm backend), naming the step and what to change; null for any other
 * error. The run fails; the process and the library stay as they were.
 */
export function outOfMemoryError(error: unknown, step: number): TrainError | null {
  const message = error instanceof Error ? error.message : String(error);
  if (!/allocation failed|out of memory|Aborted\(|Cannot enlarge memory|memory access out of bounds|Invalid typed array length|Array buffer allocation/i.test(message)) return null;
  return new TrainError('NOT_ENOUGH_MEMORY',
    `ran out of memory at step ${step} (${message.split('\n')[0]?.slice(0, 200)}); turn on activation recomputation, or lower the batch size or the sequence length, then start again`);
}
