/**
 * Turns checkpoint tensors into model tensors: shape-checked, and Variables when the whole model trains. Frozen
 * linear weights and embedding tables become FrozenWeights: where the active backend has a frozen store (the
 * native addon on wasm and cpu), straight from the file's bytes into it at the file's precision (or BF16 / Q8_0 /
 * Q4_0 on request; a GGUF's Q4_0 blocks kept as they are), W kept in nn.Linear's [out, in]; elsewhere float32
 * tensors, linears pre-transposed to [in, out] (so every product is a plain 2-D matmul).
 */
import * as tf from '@tensorflow/tfjs-core';
import { activeFrozenStore, baseWeightBytes, storedFormatFor, TensorWeight, type BasePrecision, type FrozenStore, type FrozenWeight, type StoreSource } from '../backend/frozen';
import type { TensorSource } from '../io/model-checkpoint';
import { ModelIoError } from '../io/errors';
import { LinearLayer } from '../lora/linear';
import type { LinearSpec, ModelConfig } from './types';

export interface WeightLoadOptions {
  /** Every weight a tf.Variable (full fine-tuning); otherwise frozen. */
  readonly trainable?: boolean;
  /** Precision of stored frozen weights (default: the store's, normally 'stored', the file's own). Ignored without a store. */
  readonly precision?: BasePrecision;
}

/** [rows, cols] row-major -> [cols, rows], in JS so no backend kernel (and no second backend copy) is involved. */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[base + c] as number;
  }
  return out;
}

export class WeightLoader {
  /** Everything made so far, so a failed load disposes what it built. */
  readonly made: (tf.Tensor | FrozenWeight)[] = [];
  private readonly trainable: boolean;
  private readonly precision: BasePrecision;
  /** Where frozen weights go; null: float32 tensors (no store on this backend, or full fine-tuning). */
  private readonly store: FrozenStore | null;

  constructor(
    private readonly checkpoint: TensorSource,
    options: boolean | WeightLoadOptions,
  ) {
    const o = typeof options === 'boolean' ? { trainable: options } : options;
    this.trainable = o.trainable ?? false;
    this.store = this.trainable ? null : activeFrozenStore();
    this.precision = o.precision ?? this.store?.precision ?? 'stored';
  }

  /** The first of `names` the checkpoint has (GPT-2 checkpoints come with and without the 'transformer.' prefix). */
  resolve(names: readonly string[]): string {
    const found = names.find((n) => this.checkpoint.has(n));
    if (found === undefined) {
      throw new ModelIoError('TENSOR_NOT_FOUND', `${this.checkpoint.dir}: the checkpoint lacks '${names[0] ?? ''}'`);
    }
    return found;
  }

  has(name: string): boolean {
    return this.checkpoint.has(name);
  }

  /** Float data of a tensor, checked against the shape the config implies. */
  data(name: string, shape: readonly number[]): Float32Array {
    return this.read(name, shape).data;
  }

  private read(name: string, shape: readonly number[]): { dtype: string; data: Float32Array } {
    const t = this.checkpoint.read(name);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new ModelIoError(
        'INVALID_SAFETENSORS',
        `${this.checkpoint.dir}: '${name}' is [${t.shape.join(', ')}], config.json implies [${shape.join(', ')}]`,
      );
    }
    if (!(t.data instanceof Float32Array)) {
      throw new ModelIoError('UNSUPPORTED_DTYPE', `${this.checkpoint.dir}: '${name}' is ${t.dtype}, a weight must be a float type`);
    }
    return { dtype: t.dtype, data: t.data };
  }

  private track<T extends tf.Tensor>(t: T): T {
    const out = (this.trainable ? tf.variable(t, true) : t) as unknown as T;
    if (out !== t) t.dispose();
    this.made.push(out);
    return out;
  }

  vector(name: string, size: number): tf.Tensor1D {
    return this.track(tf.tensor1d(this.data(name, [size])));
  }

  matrix(name: string, rows: number, cols: number): tf.Tensor2D {
    return this.track(tf.tensor2d(this.data(name, [rows, cols]), [rows, cols]));
  }

  /** A [out, in] nn.Linear weight stored as [in, out]. */
  transposedMatrix(name: string, out: number, inFeatures: number): tf.Tensor2D {
    return this.track(tf.tensor2d(transpose2d(this.data(name, [out, inFeatures]), out, inFeatures), [inFeatures, out]));
  }

  /** A linear module: `spec.fanInFanOut` says whether the checkpoint holds [in, out] (Conv1D) or [out, in]. */
  linear(spec: LinearSpec, weightName: string, biasName: string | null): LinearLayer {
    const weight = this.store
      ? this.stored(this.store, weightName, spec.outFeatures, spec.inFeatures, spec.fanInFanOut)
      : spec.fanInFanOut
        ? this.matrix(weightName, spec.inFeatures, spec.outFeatures)
        : this.transposedMatrix(weightName, spec.outFeatures, spec.inFeatures);
    const bias = biasName === null ? null : this.vector(biasName, spec.outFeatures);
    return new LinearLayer(spec, weight, bias);
  }

  /**
   * An embedding table [vocab, hidden] looked up by rows (an untied one: a tied head's table is its linear's
   * weight). Stored where the store is, else the tensor as in the file ([vocab, hidden], no transpose).
   */
  embedding(name: string, vocab: number, hidden: number): FrozenWeight {
    if (this.store) return this.stored(this.store, name, vocab, hidden, false);
    return new TensorWeight(this.matrix(name, vocab, hidden), 'out-in');
  }

  /** W [rows, cols] ([cols, rows] in the file when `transposedInFile`, GPT-2's Conv1D) into the store. */
  private stored(store: FrozenStore, name: string, rows: number, cols: number, transposedInFile: boolean): FrozenWeight {
    const blocks = this.precision === 'q4_0' && !transposedInFile ? this.q4Blocks(name, rows, cols) : null;
    if (blocks) {
      const weight = store.create(blocks, 'Q4_0');
      this.made.push(weight);
      return weight;
    }
    let source: StoreSource;
    let fileDtype: string;
    if (transposedInFile) {
      // Conv1D's [in, out] turned upright once, at load (a float32 copy of this one tensor only).
      const t = this.read(name, [cols, rows]);
      source = { rows, cols, dtype: 'F32', data: transpose2d(t.data, cols, rows) };
      fileDtype = t.dtype;
    } else {
      source = this.storeSource(name, rows, cols);
      fileDtype = source.dtype;
    }
    const format = storedFormatFor(fileDtype === 'BF16' || fileDtype === 'F16' ? fileDtype : 'F32', this.precision);
    const weight = store.create(source, format);
    this.made.push(weight);
    return weight;
  }

  /** The checkpoint's Q4_0 blocks of W [rows, cols] where it holds them so (a GGUF file), else null. */
  private q4Blocks(name: string, rows: number, cols: number): StoreSource | null {
    const held = this.checkpoint.readQ4Blocks?.(name);
    if (!held) return null;
    if (held.shape.length !== 2 || held.shape[0] !== rows || held.shape[1] !== cols) {
      throw new ModelIoError('INVALID_GGUF', `${this.checkpoint.dir}: '${name}' is [${held.shape.join(', ')}], the model's metadata implies [${rows}, ${cols}]`);
    }
    return { rows, cols, dtype: 'Q4_0', data: held.bytes };
  }

  /** The file's bytes as they are (BF16/F16 bits or F32 values), without a float32 detour where it can. */
  private storeSource(name: string, rows: number, cols: number): StoreSource {
    const raw = this.checkpoint.readRaw?.(name);
    if (raw && (raw.dtype === 'BF16' || raw.dtype === 'F16' || raw.dtype === 'F32')) {
      if (raw.shape.length !== 2 || raw.shape[0] !== rows || raw.shape[1] !== cols) {
        throw new ModelIoError('INVALID_SAFETENSORS', `${this.checkpoint.dir}: '${name}' is [${raw.shape.join(', ')}], config.json implies [${rows}, ${cols}]`);
      }
      const buffer = raw.bytes.buffer;
      const data = raw.dtype === 'F32' ? new Float32Array(buffer, raw.bytes.byteOffset, rows * cols) : new Uint16Array(buffer, raw.bytes.byteOffset, rows * cols);
      return { rows, cols, dtype: raw.dtype, data };
    }
    return { rows, cols, dtype: 'F32', data: this.data(name, [rows, cols]) };
  }

  disposeAll(): void {
    for (const t of this.made) t.dispose();
  }
}

/** The largest id in a tensor made by tokenIds, and its position: what the forward pass checks, with no read-back. */
const idRanges = new WeakMap<tf.Tensor, { max: number; position: number }>();

/**
 * Token ids [B, T] int32 made from JS numbers, checked here: each must be a non-negative integer. The forward pass
 * then checks the largest against its vocabulary without reading the tensor back (a synchronous read would stall,
 * and on webgpu fail). Every engine caller makes its ids here.
 */
export function tokenIds(values: ArrayLike<number>, shape: readonly [number, number]): tf.Tensor2D {
  const [b, t] = shape;
  if (values.length !== b * t) throw new ModelIoError('TOKEN_OUT_OF_RANGE', `${values.length} token ids do not fill a [${b}, ${t}] batch`);
  let max = -1;
  let position = -1;
  for (let i = 0; i < values.length; i++) {
    const id = values[i] as number;
    if (!Number.isInteger(id) || id < 0 || id > 0x7fffffff) {
      throw new ModelIoError('TOKEN_OUT_OF_RANGE', `token id ${id} (position ${i}) is not a non-negative integer`);
    }
    if (id > max) {
      max = id;
      position = i;
    }
  }
  const ids = tf.tensor2d(Int32Array.from(values), [b, t], 'int32');
  idRanges.set(ids, { max, position });
  return ids;
}

/**
 * Rejects ids the embedding has no row for, naming the largest bad one. ids [B, T] int32. Ids made by tokenIds
 * are checked from what it recorded; other int32 tensors (made by hand in tests) pass unchecked.
 */
export function checkTokenIds(ids: tf.Tensor2D, vocabSize: number): void {
  if (ids.dtype !== 'int32') throw new ModelIoError('TOKEN_OUT_OF_RANGE', `token ids must be an int32 tensor, got ${ids.dtype}`);
  const range = idRanges.get(ids);
  if (range && range.max >= vocabSize) {
    throw new ModelIoError(
      'TOKEN_OUT_OF_RANGE',
      `token id ${range.max} (position ${range.position}) is outside this model's vocabulary of ${vocabSize} (ids 0..${vocabSize - 1})`,
    );
  }
}

/** The tensor a frozen weight is when it is one (the Variable of full fine-tuning included). */
function tensorOf(weight: FrozenWeight): tf.Tensor | null {
  return weight instanceof TensorWeight ? weight.tensor : null;
}

/**
 * The Variables among a model's linears, other weights and embedding tables, keyed by checkpoint name in model
 * layout (linears' [in, out]).
 */
export function collectVariables(
  linears: ReadonlyMap<string, LinearLayer>, others: ReadonlyMap<string, tf.Tensor>, tables: ReadonlyMap<string, FrozenWeight> = new Map(),
): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  for (const [path, layer] of linears) {
    const weight = tensorOf(layer.weight);
    if (weight instanceof tf.Variable) out.set(`${path}.weight`, weight);
    if (layer.bias instanceof tf.Variable) out.set(`${path}.bias`, layer.bias);
  }
  for (const [name, t] of others) if (t instanceof tf.Variable) out.set(name, t);
  for (const [name, w] of tables) {
    const t = tensorOf(w);
    if (t instanceof tf.Variable) out.set(name, t);
  }
  return out;
}

/** Frozen (or trainable) base parameters: every linear's weight and bias plus the other tensors. Adapters excluded. */
export function countParameters(
  linears: ReadonlyMap<string, LinearLayer>, others: ReadonlyMap<string, tf.Tensor>, tables: ReadonlyMap<string, FrozenWeight> = new Map(),
): number {
  let n = 0;
  for (const t of others.values()) n += t.size;
  for (const w of tables.values()) n += w.outFeatures * w.inFeatures;
  for (const layer of linears.values()) n += layer.weight.outFeatures * layer.weight.inFeatures + (layer.bias?.size ?? 0);
  return n;
}

/** Frees every weight a model holds, its adapters included (LinearLayer.dispose). */
export function disposeWeights(
  linears: ReadonlyMap<string, LinearLayer>, others: ReadonlyMap<string, tf.Tensor>, tables: ReadonlyMap<string, FrozenWeight> = new Map(),
): void {
  for (const t of others.values()) t.dispose();
  for (const w of tables.values()) w.dispose();
  for (const layer of linears.values()) layer.dispose();
}

/** Bytes a model's frozen weights hold, by where they live: tfjs tensors, or the frozen store. */
export function frozenWeightBytes(linears: ReadonlyMap<string, LinearLayer>, tables: ReadonlyMap<string, FrozenWeight> = new Map()): { tensor: number; stored: number } {
  const out = { tensor: 0, stored: 0 };
  const seen = new Set<FrozenWeight>();
  for (const w of [...[...linears.values()].map((l) => l.weight), ...tables.values()]) {
    if (seen.has(w)) continue;
    seen.add(w);
    if (w.format === 'tensor') out.tensor += w.bytes;
    else out.stored += w.bytes;
  }
  return out;
}

/**
 * Bytes a model's frozen matrices take in each representation (backend/frozen.ts baseWeightBytes): every linear
 * of `linears` (linearSpecsOf(config)) plus, when the head is untied, the embedding table [vocab, hidden]; all
 * stored as `fileDtype`. `tensor` is the float32 tfjs path (the wasm heap); the rest live in the frozen store.
 */
export function frozenBaseBytes(
  config: Pick<ModelConfig, 'vocabSize' | 'hiddenSize' | 'tieWordEmbeddings'>, linears: readonly LinearSpec[], fileDtype: 'F32' | 'BF16' | 'F16',
): Record<'tensor' | BasePrecision, number> {
  const matrices = linears.map((l) => ({ rows: l.outFeatures, cols: l.inFeatures, dtype: fileDtype }));
  if (!config.tieWordEmbeddings) matrices.push({ rows: config.vocabSize, cols: config.hiddenSize, dtype: fileDtype });
  return baseWeightBytes(matrices);
}
