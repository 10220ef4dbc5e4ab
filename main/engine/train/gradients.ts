/**
 * tfjs-core's Node build registers no gradient functions; backend/index.ts registers them when it starts a
 * backend. Training checks once, so a missing registration is a clear error instead of a failure mid-step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { TrainError } from './errors';

export function assertGradientsRegistered(): void {
  try {
    tf.tidy(() => {
      const x = tf.ones([2, 2]);
      tf.grad((v: tf.Tensor) => tf.sum(tf.logSumExp(tf.matMul(v, v), -1)))(x);
    });
  } catch (error) {
    throw new TrainError('INVALID_TRAIN_CONFIG', `tfjs gradients are not registered (${(error as Error).message}); start the backend with initBackend() before training`);
  }
}
