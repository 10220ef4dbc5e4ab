/**
 * The Llama family's configs (LlamaForCausalLM and its relatives; SmolLM and TinyLlama are llama): RMSNorm,
 * rotary embeddings, grouped-query attention, SwiGLU MLP, tied or untied head.
 * - mistral: a sliding window over every layer where `sliding_window` is set (Mistral-7B-v0.1: 4096).
 * - qwen2: q/k/v biases; with `use_sliding_window`, layers from `max_window_layers` on attend within the window.
 * - qwen3: no biases, per-head RMSNorm of q and k (q_norm, k_norm), head_dim given apart from hidden/heads.
 * - phi3 (Phi-3 / Phi-3.5 mini, Phi3ForCausalLM): q, k, v fused in `qkv_proj` (rows q, then k, then v) and gate, up
 *   in `gate_up_proj` (rows gate, then up), as the checkpoint stores them and PEFT adapts them: LoRA on the fused
 *   module as one linear. A sliding window over every layer where `sliding_window` is set (Phi-3-mini-4k: 2047);
 *   Phi-3.5 and Phi-3-128k extend original_max_position_embeddings with longrope (rope.ts).
 * The decoder (decoder.ts) runs them all.
 */
import { ConfigFields, type RawConfig } from '../io/hf-config';
import { baseDecoderFields, layerTypesOf, slidingWindowOf, type DecoderConfig } from './decoder-config';
import { parseActivation } from './layers';
import { ropeParametersOf, rotaryOf, type LayerType } from './rope';

export const LLAMA_FAMILY = ['llama', 'mistral', 'qwen2', 'qwen3', 'phi3'] as const;

/** Which layers attend within a window, and its size, by the family's rule (or `layer_types`). */
function windowsOf(f: ConfigFields, modelType: string, numLayers: number): { types: LayerType[]; window: number | null } {
  if (modelType === 'mistral' || modelType === 'phi3') {
    const window = slidingWindowOf(f);
    return { types: layerTypesOf(f, numLayers, () => (window === null ? 'full_attention' : 'sliding_attention')), window };
  }
  if (modelType === 'qwen2' || modelType === 'qwen3') {
    // Qwen's configs carry a sliding_window that applies only with use_sliding_window, from max_window_layers on.
    const window = f.bool('use_sliding_window', false) ? slidingWindowOf(f) : null;
    const from = f.int('max_window_layers', numLayers);
    return { types: layerTypesOf(f, numLayers, (i) => (window !== null && i >= from ? 'sliding_attention' : 'full_attention')), window };
  }
  return { types: layerTypesOf(f, numLayers, () => 'full_attention'), window: null };
}

export function parseLlamaConfig(raw: RawConfig, dir: string, source: string): DecoderConfig {
  const f = new ConfigFields(raw, source);
  const modelType = f.string('model_type', 'llama');
  const base = baseDecoderFields(f, dir, modelType);
  const phi3 = modelType === 'phi3';
  const { types, window } = windowsOf(f, modelType, base.numLayers);
  // Phi-3's longrope extends original_max_position_embeddings (4096) to max_position_embeddings.
  const originalMaxPositions = phi3 && f.has('original_max_position_embeddings') ? f.int('original_max_position_embeddings') : null;
  const rotary = rotaryOf(base.headDim, ropeParametersOf(f, 'full_attention'), { maxPositions: base.maxPositions, originalMaxPositions }, source);
  const attentionBias = f.bool('attention_bias', false);
  return {
    ...base,
    // Phi3Config's default epsilon is 1e-5 (LlamaConfig's and Qwen's 1e-6).
    rmsNormEps: phi3 ? f.number('rms_norm_eps', 1e-5) : base.rmsNormEps,
    normPlusOne: false,
    activation: parseActivation(f.string('hidden_act', 'silu'), source, 'hidden_act'),
    qkvBias: modelType === 'qwen2' || attentionBias,
    outputBias: modelType !== 'qwen2' && attentionBias,
    mlpBias: f.bool('mlp_bias', false),
    qkNorm: modelType === 'qwen3',
    sandwichNorms: false,
    fusedProjections: phi3,
    scaleEmbedding: false,
    attentionScale: 1 / Math.sqrt(base.headDim),
    attentionSoftcap: null,
    finalSoftcap: null,
    layers: types.map((type) => ({ type, window: type === 'sliding_attention' ? window : null, rotary })),
    invFreq: rotary.invFreq(1),
  };
}
