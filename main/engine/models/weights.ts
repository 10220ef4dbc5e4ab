/**
 * Turns checkpoint tensors into model tensors: shape-checked, frozen linears pre-transposed to [in, out]
 * (so every product is a plain 2-D matmul), and Variables when the whole model trains.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorSource } from '../io/checkpoint';
import { ModelIoError } from '../io/errors';
import { LinearLayer } from '../lora/linear';
import type { LinearSpec } from './types';

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
  readonly made: tf.Tensor[] = [];

  constructor(
    private readonly checkpoint: TensorSource,
    private readonly trainable: boolean,
  ) {}

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
    return t.data;
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
    const weightT = spec.fanInFanOut
      ? this.matrix(weightName, spec.inFeatures, spec.outFeatures)
      : this.transposedMatrix(weightName, spec.outFeatures, spec.inFeatures);
    const bias = biasName === null ? null : this.vector(biasName, spec.outFeatures);
    return new LinearLayer(spec, weightT, bias);
  }

  disposeAll(): void {
    for (const t of this.made) t.dispose();
  }
}

/** Rejects ids the embedding has no row for, naming the first bad one. ids [B, T] int32. */
export function checkTokenIds(ids: tf.Tensor2D, vocabSize: number): void {
  if (ids.dtype !== 'int32') throw new ModelIoError('TOKEN_OUT_OF_RANGE', `token ids must be an int32 tensor, got ${ids.dtype}`);
  const values = ids.dataSync();
  for (let i = 0; i < values.length; i++) {
    const id = values[i] as number;
    if (id < 0 || id >= vocabSize) {
      throw new ModelIoError('TOKEN_OUT_OF_RANGE', `token id ${id} (position ${i}) is outside this model's vocabulary of ${vocabSize} (ids 0..${vocabSize - 1})`);
    }
  }
}

/** The Variables among a model's linears and other weights, keyed by checkpoint name in model layout. */
export function collectVariables(linears: ReadonlyMap<string, LinearLayer>, others: ReadonlyMap<string, tf.Tensor>): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  for (const [path, layer] of linears) {
    if (layer.weightT instanceof tf.Variable) out.set(`${path}.weight`, layer.weightT);
    if (layer.bias instanceof tf.Variable) out.set(`${path}.bias`, layer.bias);
  }
  for (const [name, t] of others) if (t instanceof tf.Variable) out.set(name, t);
  return out;
}

/** Frozen (or trainable) base parameters: every linear's weight and bias plus the other tensors. Adapters excluded. */
export function countParameters(linears: ReadonlyMap<string, LinearLayer>, others: ReadonlyMap<string, tf.Tensor>): number {
  let n = 0;
  for (const t of others.values()) n += t.size;
  for (const layer of linears.values()) n += layer.weightT.size + (layer.bias?.size ?? 0);
  return n;
}

/** Frees every weight a model holds, its adapters included (LinearLayer.dispose). */
export function disposeWeights(linears: ReadonlyMap<string, LinearLayer>, others: ReadonlyMap<string, tf.Tensor>): void {
  for (const t of others.values()) t.dispose();
  for (const layer of linears.values()) layer.dispose();
}
