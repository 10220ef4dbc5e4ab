/**
 * A model loader for host tests: any folder with a tiny.json ({ "seed": n, "layers": n }) loads as the tiny
 * LinearLayer model of test/engine/lora with the character tokenizer, so a real host process trains in seconds.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '../../main/engine/backend/index';
import type { HostModelLoader } from '../../main/host/model-loader';
import { tinyModel } from '../engine/lora/tiny-model';
import { CHARS, charTokenizer } from '../engine/train/char-tokenizer';

export const loader: HostModelLoader = {
  async load(modelDir: string) {
    await initBackend('cpu');
    const spec = JSON.parse(readFileSync(join(modelDir, 'tiny.json'), 'utf8')) as { seed?: number; layers?: number; hidden?: number; hangMs?: number };
    // A loader that never yields (as a stuck native call would), to test the hard kill after a cancel.
    const until = Date.now() + (spec.hangMs ?? 0);
    while (Date.now() < until) { /* busy */ }
    const model = tinyModel({ vocab: CHARS.length, hidden: spec.hidden ?? 16, layers: spec.layers ?? 1, seed: spec.seed ?? 1 });
    return { model, tokenizer: charTokenizer() };
  },
  backendName: () => tf.getBackend() ?? 'none',
  backend: () => initBackend('cpu'),
};
