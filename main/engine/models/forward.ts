/**
 * What every family's forward pass shares: its start (the token ids checked, the cache and where the new positions
 * begin) and its end, the language-model head: the final hidden states [N, C] times lm_head (a LinearLayer, so LoRA
 * on it and full fine-tuning of it work as on any linear) give the logits [N, V], soft-capped where the config says
 * (Gemma 2: cap·tanh(logits / cap)).
 */
import * as tf from '@tensorflow/tfjs-core';
import { loraDropout, type LinearLayer } from '../lora/linear';
import { asDecoderCache, type DecoderCache } from './kv-cache';
import { variablesOf } from './layers';
import type { ForwardOptions, OutputHead } from './types';
import { checkTokenIds } from './weights';

export interface ForwardStart {
  readonly b: number;
  readonly t: number;
  readonly cache: DecoderCache | null;
  /** The first new position: what the cache already holds. */
  readonly start: number;
  /** LoRA dropout while training, none otherwise. */
  readonly dropout: typeof loraDropout | undefined;
}

/** ids [B, T] checked against the vocabulary (int32, in range), with the cache and the positions they take. */
export function forwardStart(ids: tf.Tensor2D, vocabSize: number, options: ForwardOptions): ForwardStart {
  checkTokenIds(ids, vocabSize);
  const cache = asDecoderCache(options.cache);
  const [b, t] = ids.shape;
  return { b, t, cache, start: cache?.length ?? 0, dropout: options.training ? loraDropout : undefined };
}

export function outputHead(lmHead: LinearLayer, softcap: number | null): OutputHead {
  return {
    logits: (hidden, training) =>
      tf.tidy(() => {
        const out = lmHead.apply(hidden, training ? loraDropout : undefined); // [N, V]
        return softcap === null ? out : (tf.mul(tf.tanh(tf.div(out, softcap)), softcap) as tf.Tensor2D);
      }),
    variables: () => variablesOf([lmHead], []),
  };
}

/** What a model's forward pass is made of: its hidden states, its head and its vocabulary size. */
interface HeadedModel {
  readonly config: { readonly vocabSize: number };
  readonly head: OutputHead;
  hiddenStates(ids: tf.Tensor2D, options?: ForwardOptions): tf.Tensor2D;
}

/** ids [B, T] -> logits [B, T, V]: the hidden states [B·T, C] through the head. */
export function forwardLogits(model: HeadedModel, ids: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor3D {
  const [b, t] = ids.shape;
  return tf.tidy(() => tf.reshape(model.head.logits(model.hiddenStates(ids, options), options.training), [b, t, model.config.vocabSize]) as tf.Tensor3D);
}
