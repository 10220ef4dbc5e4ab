/**
 * Half-precision weights as the WGSL kernels read them: two 16-bit values per 32-bit word, the first in the low
 * half (little-endian, as every platform WebGPU runs on), held as an int32 tensor because tfjs has no 16-bit dtype.
 */
import * as tf from '@tensorflow/tfjs-core';

/** F16 or BF16 bits [n] -> int32 words [ceil(n / 2)] (an odd count ends with a zero half). */
export function halfWords(bits: Uint16Array): tf.Tensor1D {
  const words = new Int32Array((bits.length + 1) >> 1);
  new Uint16Array(words.buffer).set(bits);
  return tf.tensor1d(words, 'int32');
}
