/**
 * Registers tfjs-core's gradient functions when running under plain Node (tsx). The package's Node bundle
 * (tf-core.node.js) has no gradients, and its ESM register_all_gradients.js cannot be imported by Node because
 * one of its files (Prod_grad, which this script does not need) imports a path that is both a file and a folder.
 * Each gradient file is imported on its own, as listed in register_all_gradients.js, and registered.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';

export async function registerGradients(): Promise<number> {
  const require = createRequire(import.meta.url);
  const dist = dirname(require.resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js'));
  const listing = readFileSync(join(dist, 'register_all_gradients.js'), 'utf8');
  const files = [...listing.matchAll(/from '\.\/(gradients\/[A-Za-z0-9_]+)'/g)].map((m) => m[1] as string)
    .filter((f) => f !== 'gradients/Prod_grad');
  let count = 0;
  for (const file of files) {
    const module = (await import(join(dist, `${file}.js`))) as Record<string, unknown>;
    for (const config of Object.values(module)) {
      const candidate = config as tf.GradConfig;
      if (candidate && typeof candidate.kernelName === 'string' && typeof candidate.gradFunc === 'function') {
        tf.registerGradient(candidate);
        count++;
      }
    }
  }
  return count;
}
