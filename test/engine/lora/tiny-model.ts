/**
 * A tiny causal LM built from LinearLayers, for LoRA and training tests that must not wait on the real
 * architectures: token + position embeddings, `layers` blocks of single-head causal attention (q, k, v, o) and
 * a tanh MLP (up, down), each with a residual, then lm_head. Seeded, float32.
 */
import * as tf from '@tensorflow/tfjs-core';
import { LinearLayer, loraDropout } from '../../../main/engine/lora/linear';
import { variablesOf } from '../../../main/engine/models/layers';
import { ownTensor } from '../../../main/engine/models/named-weights';
import type { CausalLM, DecoderBlock, ForwardOptions, KVCache, LinearSpec, ModelConfig, OutputHead } from '../../../main/engine/models/types';
import { Rng } from '../../../main/engine/train/rng';

export interface TinyOptions {
  readonly vocab?: number;
  readonly hidden?: number;
  readonly layers?: number;
  readonly seed?: number;
  readonly trainable?: boolean;
  readonly scale?: number;
}

function randomMatrix(rng: Rng, rows: number, cols: number, scale: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = rng.uniform(-scale, scale);
  return out;
}

export function tinyModel(options: TinyOptions = {}): CausalLM {
  const V = options.vocab ?? 16;
  const D = options.hidden ?? 8;
  const L = options.layers ?? 1;
  const scale = options.scale ?? 0.5;
  const trainable = options.trainable ?? false;
  const rng = new Rng(options.seed ?? 1);
  const maybeVar = <T extends tf.Tensor>(t: T): T => (trainable ? (tf.variable(t, true) as unknown as T) : t);
  const named = new Map<string, tf.Tensor>();
  const linears = new Map<string, LinearLayer>();

  const wte = maybeVar(tf.tensor2d(randomMatrix(rng, V, D, scale), [V, D]));
  const wpe = maybeVar(tf.tensor2d(randomMatrix(rng, 64, D, scale * 0.2), [64, D]));
  named.set('wte.weight', wte);
  named.set('wpe.weight', wpe);
  const linear = (path: string, inF: number, outF: number, groups: LinearSpec['groups'], layer: number | null): LinearLayer => {
    const name = path.split('.').pop() as string;
    const spec: LinearSpec = { path, name, layer, inFeatures: inF, outFeatures: outF, groups, fanInFanOut: false };
    const w = maybeVar(tf.tensor2d(randomMatrix(rng, inF, outF, scale), [inF, outF]));
    const b = name === 'lm_head' ? null : maybeVar(tf.tensor1d(randomMatrix(rng, 1, outF, 0.1)));
    const l = new LinearLayer(spec, w, b);
    linears.set(path, l);
    named.set(`${path}.weight`, w);
    if (b) named.set(`${path}.bias`, b);
    return l;
  };
  const blocks = Array.from({ length: L }, (_, i) => ({
    q: linear(`h.${i}.attn.q_proj`, D, D, ['attention'], i),
    k: linear(`h.${i}.attn.k_proj`, D, D, ['attention'], i),
    v: linear(`h.${i}.attn.v_proj`, D, D, ['attention'], i),
    o: linear(`h.${i}.attn.o_proj`, D, D, ['attention'], i),
    up: linear(`h.${i}.mlp.up_proj`, D, 2 * D, ['mlp'], i),
    down: linear(`h.${i}.mlp.down_proj`, 2 * D, D, ['mlp'], i),
  }));
  const head = linear('lm_head', D, V, [], null);

  const config: ModelConfig = {
    modelType: 'tiny', vocabSize: V, hiddenSize: D, numLayers: L, numHeads: 1, numKvHeads: 1, headDim: D,
    intermediateSize: 2 * D, maxPositions: 64, tieWordEmbeddings: false, bosTokenId: null, eosTokenIds: [1],
    padTokenId: 0, raw: {},
  };

  function hiddenStates(ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor2D {
    const drop = opts.training ? loraDropout : undefined;
    return tf.tidy(() => {
      const [B, T] = ids.shape;
      const n = B * T;
      const positions = tf.tile(tf.range(0, T, 1, 'int32'), [B]);
      let h = tf.add(tf.gather(wte, tf.reshape(ids, [n])), tf.gather(wpe, positions)) as tf.Tensor2D; // [B*T, D]
      // causal mask [T, T]: 0 on and below the diagonal, -1e9 above
      const mask = tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)), -1e9);
      for (const blk of blocks) {
        const block: DecoderBlock = (x, [m]) => tf.tidy(() => {
          const q = tf.reshape(blk.q.apply(x, drop), [B, T, D]);
          const k = tf.reshape(blk.k.apply(x, drop), [B, T, D]);
          const v = tf.reshape(blk.v.apply(x, drop), [B, T, D]);
          const scores = tf.add(tf.div(tf.matMul(q, k, false, true), Math.sqrt(D)), m as tf.Tensor); // [B, T, T]
          const attn = tf.reshape(tf.matMul(tf.softmax(scores), v), [n, D]);
          const y = tf.add(x, blk.o.apply(attn as tf.Tensor2D, drop)) as tf.Tensor2D;
          return tf.add(y, blk.down.apply(tf.tanh(blk.up.apply(y, drop)), drop)) as tf.Tensor2D;
        });
        h = opts.runBlock ? opts.runBlock(block, h, [mask], variablesOf(Object.values(blk), [])) : block(h, [mask]);
      }
      return h;
    });
  }

  const outputHead: OutputHead = {
    logits: (hidden, training) => head.apply(hidden, training ? loraDropout : undefined),
    variables: () => variablesOf([head], []),
  };

  function forward(ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
    const [B, T] = ids.shape;
    return tf.tidy(() => tf.reshape(outputHead.logits(hiddenStates(ids, opts), opts.training), [B, T, V]) as tf.Tensor3D);
  }

  return {
    config,
    linears,
    forward,
    hiddenStates,
    head: outputHead,
    createCache(): KVCache {
      throw new Error('tiny model has no cache');
    },
    namedWeights: () => new Map(named),
    weights: () => new Map([...named].map(([name, t]) => [name, ownTensor(t)])),
    parameterCount: () => [...named.values()].reduce((s, t) => s + t.size, 0),
    dispose() {
      for (const t of named.values()) t.dispose();
      for (const l of linears.values()) for (const a of l.adapters.values()) { a.At.dispose(); a.Bt.dispose(); }
    },
  };
}
