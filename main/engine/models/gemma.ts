/**
 * Gemma 2 (Gemma2ForCausalLM) and Gemma 3's text models (Gemma3ForCausalLM, model_type gemma3_text: Gemma-3-270M,
 * 1B), read as modeling_gemma2.py / modeling_gemma3.py compute them:
 * - embeddings multiplied by √hidden (as a number of the embedding's dtype), head tied to the embedding;
 * - RMSNorm scaling by (1 + w), in four places per layer: before and after attention, before and after the MLP;
 * - GELU-tanh gated MLP; scores scaled by query_pre_attn_scalar^−½ instead of head_dim^−½;
 * - local layers attending within `sliding_window`, interleaved with global layers (`layer_types`, or Gemma 2's
 *   every other layer, Gemma 3's every `sliding_window_pattern`-th layer global);
 * - Gemma 3: per-head RMSNorm of q and k, local layers with their own rope θ (rope_local_base_freq), rope scaling
 *   on the global layers only; Gemma 2: scores and final logits soft-capped (attn_logit_softcapping,
 *   final_logit_softcapping).
 * The vision-language Gemma 3 checkpoints (model_type gemma3) are refused by the registry: their text weights sit
 * under another prefix next to a vision tower.
 */
import { ModelIoError } from '../io/errors';
import { ConfigFields, type RawConfig } from '../io/hf-config';
import { baseDecoderFields, layerTypesOf, slidingWindowOf, type DecoderConfig } from './decoder-config';
import { parseActivation } from './layers';
import { ropeParametersOf, rotaryOf, type LayerType } from './rope';

export const GEMMA_FAMILY = ['gemma2', 'gemma3_text'] as const;

function softcap(f: ConfigFields, key: string): number | null {
  if (!f.has(key)) return null;
  const cap = f.number(key, 0);
  if (!(cap > 0)) throw new ModelIoError('INVALID_CONFIG', `${f.source}: "${key}" must be a positive number or null, got ${cap}`);
  return cap;
}

export function parseGemmaConfig(raw: RawConfig, dir: string, source: string): DecoderConfig {
  const f = new ConfigFields(raw, source);
  const modelType = f.string('model_type', 'gemma3_text');
  const gemma3 = modelType === 'gemma3_text';
  f.unsupported('use_bidirectional_attention', (v) => v === false, 'only causal attention: EmbeddingGemma-style bidirectional models are encoders');
  const base = baseDecoderFields(f, dir, modelType);
  const window = slidingWindowOf(f);
  // Gemma 2 alternates local and global layers starting with a local one; Gemma 3 makes every pattern-th layer global.
  const pattern = gemma3 ? f.int(['sliding_window_pattern', '_sliding_window_pattern'], 6) : 2;
  const types = layerTypesOf(f, base.numLayers, (i): LayerType => ((i + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention'));
  const context = { maxPositions: base.maxPositions, originalMaxPositions: null };
  const globalRotary = rotaryOf(base.headDim, ropeParametersOf(f, 'full_attention'), context, source);
  const localRotary = gemma3
    ? rotaryOf(base.headDim, ropeParametersOf(f, 'sliding_attention', { thetaKey: 'rope_local_base_freq', scaled: false }), context, source)
    : globalRotary;
  const activation = f.has('hidden_activation') ? f.string('hidden_activation', '') : f.string('hidden_act', 'gelu_pytorch_tanh');
  const attentionBias = f.bool('attention_bias', false);
  const queryScalar = f.number('query_pre_attn_scalar', base.headDim);
  if (!(queryScalar > 0)) throw new ModelIoError('INVALID_CONFIG', `${source}: "query_pre_attn_scalar" must be positive, got ${queryScalar}`);
  return {
    ...base,
    tieWordEmbeddings: f.bool('tie_word_embeddings', true),
    normPlusOne: true,
    activation: parseActivation(activation, source, f.has('hidden_activation') ? 'hidden_activation' : 'hidden_act'),
    qkvBias: attentionBias,
    outputBias: attentionBias,
    mlpBias: false,
    qkNorm: gemma3,
    sandwichNorms: true,
    fusedProjections: false,
    scaleEmbedding: true,
    attentionScale: 1 / Math.sqrt(queryScalar),
    attentionSoftcap: softcap(f, 'attn_logit_softcapping'),
    finalSoftcap: softcap(f, 'final_logit_softcapping'),
    layers: types.map((type) =>
      type === 'sliding_attention' ? { type, window, rotary: localRotary } : { type, window: null, rotary: globalRotary },
    ),
    invFreq: globalRotary.invFreq(1),
  };
}
