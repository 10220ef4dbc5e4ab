/**
 * The starter model before training: its Llama config (Hugging Face's LlamaConfig vocabulary) and seeded random
 * weights, written as a Hugging Face folder (config.json + model.safetensors) with the engine's safetensors
 * writer, so the engine's own loader builds the model that pretraining then trains (loadModel(dir, { trainable })).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, type WritableTensor } from '../../main/engine/io/safetensors';
import { Rng } from '../../main/engine/train/rng';

export interface StarterConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly maxPositions: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
}

export interface SpecialTokenIds {
  readonly bos: number;
  readonly eos: number[];
  readonly pad: number;
}

/** config.json in Hugging Face's LlamaConfig vocabulary (tied embeddings, no biases). */
export function hfConfigJson(config: StarterConfig, special: SpecialTokenIds): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.hiddenSize / config.numHeads,
    max_position_embeddings: config.maxPositions,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: true,
    bos_token_id: special.bos,
    eos_token_id: special.eos,
    pad_token_id: special.pad,
    torch_dtype: 'float16',
  };
}

/** Every weight's checkpoint name and shape ([out, in] for linears), in checkpoint order. */
export function weightShapes(c: StarterConfig): [string, number[]][] {
  const headDim = c.hiddenSize / c.numHeads;
  const shapes: [string, number[]][] = [['model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]]];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    shapes.push(
      [`${p}.input_layernorm.weight`, [c.hiddenSize]],
      [`${p}.self_attn.q_proj.weight`, [c.numHeads * headDim, c.hiddenSize]],
      [`${p}.self_attn.k_proj.weight`, [c.numKvHeads * headDim, c.hiddenSize]],
      [`${p}.self_attn.v_proj.weight`, [c.numKvHeads * headDim, c.hiddenSize]],
      [`${p}.self_attn.o_proj.weight`, [c.hiddenSize, c.numHeads * headDim]],
      [`${p}.post_attention_layernorm.weight`, [c.hiddenSize]],
      [`${p}.mlp.gate_proj.weight`, [c.intermediateSize, c.hiddenSize]],
      [`${p}.mlp.up_proj.weight`, [c.intermediateSize, c.hiddenSize]],
      [`${p}.mlp.down_proj.weight`, [c.hiddenSize, c.intermediateSize]],
    );
  }
  shapes.push(['model.norm.weight', [c.hiddenSize]]);
  return shapes;
}

function gaussian(rng: Rng): number {
  // Box-Muller over the seeded generator, so initialisation does not depend on tfjs's random state.
  const u = Math.max(rng.next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/** GPT-2-style init: N(0, 0.02), residual output projections scaled by 1/sqrt(2 * layers), norms at 1. */
export function initialWeights(c: StarterConfig, seed: number): Map<string, WritableTensor> {
  const rng = new Rng(seed);
  const weights = new Map<string, WritableTensor>();
  for (const [name, shape] of weightShapes(c)) {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith('norm.weight')) {
      values.fill(1);
    } else {
      const residual = name.endsWith('o_proj.weight') || name.endsWith('down_proj.weight');
      const std = residual ? 0.02 / Math.sqrt(2 * c.numLayers) : 0.02;
      for (let i = 0; i < values.length; i++) values[i] = gaussian(rng) * std;
    }
    weights.set(name, { dtype: 'F32', shape, data: values });
  }
  return weights;
}

/** Writes the untrained model folder (config.json + F32 model.safetensors) for the engine's loader. */
export function writeInitialModel(dir: string, c: StarterConfig, special: SpecialTokenIds, seed: number): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfigJson(c, special), null, 2) + '\n');
  writeSafetensors(join(dir, 'model.safetensors'), initialWeights(c, seed), { format: 'pt', step: '0' });
}
