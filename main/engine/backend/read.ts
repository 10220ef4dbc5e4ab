/**
 * Reading tensor values back into JS, the one way the engine does it: asynchronously. A synchronous read
 * (dataSync, arraySync) blocks the thread until the device is done and, on webgpu under Node, fails outright
 * (its sync path needs a canvas). eslint forbids them in main/; these helpers are what to use instead.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The value of a one-element tensor; the tensor is disposed. */
export async function readScalar(t: tf.Tensor): Promise<number> {
  try {
    return (await t.data())[0] as number;
  } finally {
    t.dispose();
  }
}

/**
 * A float32 tensor's values; the tensor is disposed. On cpu the array may be the backend's own memory, shared with
 * clones of the tensor: read it, or copy it before changing it.
 */
export async function readFloats(t: tf.Tensor): Promise<Float32Array> {
  try {
    const data = await t.data();
    return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
  } finally {
    t.dispose();
  }
}

/**
 * Reads the tensors `pick` returns, which may mix tensors someone else owns (a model's weights) with fresh ones
 * made inside it (transposes): pick runs in a tidy, each result is held by a clone that shares its memory (tfjs
 * Identity), so the fresh ones live exactly until they are read. Results come in pick's order, read-only as for
 * readFloats.
 */
export async function readPicked(pick: () => tf.Tensor[]): Promise<{ data: Float32Array; shape: number[] }[]> {
  const held = tf.tidy(() => pick().map((t) => tf.clone(t)));
  const out: { data: Float32Array; shape: number[] }[] = [];
  try {
    for (const t of held) {
      const data = await t.data();
      out.push({ data: data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>), shape: t.shape.slice() });
    }
  } finally {
    tf.dispose(held);
  }
  return out;
}
