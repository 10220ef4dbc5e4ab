/**
 * Phi-3 / Phi-3.5 mini (Phi3ForCausalLM): the Llama block with q, k, v fused in `qkv_proj` (rows q, then k, then
 * v) and gate, up fused in `gate_up_proj` (rows gate, then up), as the checkpoint stores them and PEFT adapts
 * them: LoRA on the fused module as one linear. A sliding window over every layer where `sliding_window` is set
 * (Phi-3-mini-4k: 2047). Phi-3.5 and Phi-3-128k extend the context with longrope (rope.ts).
 */
import { ConfigFields, type RawConfig } from '../io/hf-config';
import { baseDecoderFields, layerTypesOf, slidingWindowOf, type DecoderConfig } from './decoder-config';
import { parseActivation } from './layers';
import { ropeParametersOf, rotaryOf } from './rope';

export function parsePhi3Config(raw: RawConfig, dir: string, source: string): DecoderConfig {
  const f = new ConfigFields(raw, source);
  const base = baseDecoderFields(f, dir, 'phi3');
  const window = slidingWindowOf(f);
  const types = layerTypesOf(f, base.numLayers, () => (window === null ? 'full_attention' : 'sliding_attention'));
  // Phi-3's longrope extends original_max_position_embeddings (4096) to max_position_embeddings.
  const originalMaxPositions = f.has('original_max_position_embeddings') ? f.int('original_max_position_embeddings') : null;
  const rotary = rotaryOf(base.headDim, ropeParametersOf(f, 'full_attention'), { maxPositions: base.maxPositions, originalMaxPositions }, source);
  return {
    ...base,
    rmsNormEps: f.number('rms_norm_eps', 1e-5),
    normPlusOne: false,
    activation: parseActivation(f.string('hidden_act', 'silu'), source, 'hidden_act'),
    qkvBias: false,
    outputBias: false,
    mlpBias: false,
    qkNorm: false,
    sandwichNorms: false,
    fusedProjections: true,
    scaleEmbedding: false,
    attentionScale: 1 / Math.sqrt(base.headDim),
    attentionSoftcap: null,
    finalSoftcap: null,
    layers: types.map((type) => ({ type, window: type === 'sliding_attention' ? window : null, rotary })),
    invFreq: rotary.invFreq(1),
  };
}
