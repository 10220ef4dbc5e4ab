/** cpu backend with gradients registered (tfjs-core's Node build registers none by itself). */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';

export async function useCpu(): Promise<void> {
  await tf.setBackend('cpu');
  await tf.ready();
}
