/**
 * Rotary position embeddings' inverse frequencies [D/2] from config.json, as transformers' rope init functions
 * compute them: the default θ^(−2i/D), and the scaling kinds the supported models ship with: linear, llama3, and
 * longrope (Phi-3.5, Phi-3-128k: per-frequency factors, short ones up to the original context and long ones past
 * it, with cos and sin scaled by an attention factor). Kinds not implemented (dynamic, yarn) are refused by name
 * rather than run with the wrong positions.
 *
 * Two config spellings exist: `rope_theta` + `rope_scaling` (transformers 4), and `rope_parameters` holding
 * `rope_theta`, `rope_type` and the kind's fields (transformers 5), per layer type where layers differ (Gemma 3).
 */
import { ModelIoError } from '../io/errors';
import type { ConfigFields } from '../io/hf-config';

export type LayerType = 'full_attention' | 'sliding_attention';

export interface RopeParameters {
  readonly theta: number;
  /** The scaling kind's fields ({rope_type | type, factor, ...}), or null for the plain frequencies. */
  readonly scaling: Readonly<Record<string, unknown>> | null;
}

export const SUPPORTED_ROPE_TYPES = ['default', 'linear', 'llama3', 'longrope'] as const;

/** A layer's rotary embedding: its frequencies for a forward call, and the factor on cos and sin. */
export interface Rotary {
  /** Inverse frequencies [D/2] for a forward call whose last position is end − 1. */
  invFreq(end: number): Float64Array;
  /** Multiplies cos and sin (longrope's attention factor); 1 for the other kinds. */
  readonly attentionFactor: number;
}

/** The context sizes longrope needs: the config's max_position_embeddings and original_max_position_embeddings. */
export interface ContextSizes {
  readonly maxPositions: number;
  readonly originalMaxPositions: number | null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The rope parameters of one layer type. `legacy` gives the transformers 4 fields to use when the config has no
 * `rope_parameters` (Gemma 3's sliding layers take `rope_local_base_freq` and no scaling).
 */
export function ropeParametersOf(f: ConfigFields, layerType: LayerType, legacy: { thetaKey: string; scaled: boolean } = { thetaKey: 'rope_theta', scaled: true }): RopeParameters {
  const params = f.raw.rope_parameters;
  if (isObject(params)) {
    const section = isObject(params[layerType]) ? params[layerType] : params;
    const theta = section.rope_theta;
    if (typeof theta !== 'number' || !(theta > 0)) {
      throw new ModelIoError('INVALID_CONFIG', `${f.source}: rope_parameters${section === params ? '' : `.${layerType}`}.rope_theta must be a positive number, got ${JSON.stringify(theta)}`);
    }
    return { theta, scaling: section };
  }
  const theta = f.number(legacy.thetaKey, 10000);
  if (!(theta > 0)) throw new ModelIoError('INVALID_CONFIG', `${f.source}: "${legacy.thetaKey}" must be positive, got ${theta}`);
  const scaling = legacy.scaled ? f.raw.rope_scaling : null;
  if (scaling !== null && scaling !== undefined && !isObject(scaling)) {
    throw new ModelIoError('INVALID_CONFIG', `${f.source}: "rope_scaling" must be an object or null, got ${JSON.stringify(scaling)}`);
  }
  return { theta, scaling: isObject(scaling) ? scaling : null };
}

function positive(scaling: Readonly<Record<string, unknown>>, key: string, source: string): number {
  const v = scaling[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ModelIoError('INVALID_CONFIG', `${source}: rope scaling "${key}" must be a positive number, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** HF's _compute_llama3_parameters: long wavelengths slowed by `factor`, short ones kept, a smooth ramp between. */
function llama3Scaling(invFreq: Float64Array, scaling: Readonly<Record<string, unknown>>, source: string): Float64Array {
  const factor = positive(scaling, 'factor', source);
  const low = positive(scaling, 'low_freq_factor', source);
  const high = positive(scaling, 'high_freq_factor', source);
  const oldContext = positive(scaling, 'original_max_position_embeddings', source);
  const lowWavelen = oldContext / low;
  const highWavelen = oldContext / high;
  return invFreq.map((freq) => {
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) return freq;
    if (wavelen > lowWavelen) return freq / factor;
    const smooth = (oldContext / wavelen - low) / (high - low);
    return (1 - smooth) * (freq / factor) + smooth * freq;
  });
}

function factorList(scaling: Readonly<Record<string, unknown>>, key: string, length: number, source: string): Float64Array {
  const v = scaling[key];
  if (!Array.isArray(v) || v.length !== length || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
    throw new ModelIoError('INVALID_CONFIG', `${source}: rope scaling "${key}" must list ${length} positive numbers (one per frequency)`);
  }
  return Float64Array.from(v as number[]);
}

/**
 * HF's _compute_longrope_parameters with its frequency update: θ^(−2i/D) / short_factor[i] while the sequence
 * fits the original context, / long_factor[i] past it; cos and sin × √(1 + ln s / ln original) with s the context
 * extension (max_position_embeddings / original_max_position_embeddings, or rope scaling's `factor`).
 */
function longrope(base: Float64Array, scaling: Readonly<Record<string, unknown>>, context: ContextSizes, source: string): Rotary {
  const short = factorList(scaling, 'short_factor', base.length, source);
  const long = factorList(scaling, 'long_factor', base.length, source);
  const original = context.originalMaxPositions ?? (typeof scaling.original_max_position_embeddings === 'number' ? scaling.original_max_position_embeddings : context.maxPositions);
  const extension = context.originalMaxPositions !== null ? context.maxPositions / original : typeof scaling.factor === 'number' ? scaling.factor : 1;
  const given = scaling.attention_factor;
  const attentionFactor = typeof given === 'number' ? given : extension <= 1 ? 1 : Math.sqrt(1 + Math.log(extension) / Math.log(original));
  const shortFreq = base.map((f, i) => f / (short[i] as number));
  const longFreq = base.map((f, i) => f / (long[i] as number));
  return { invFreq: (end) => (end > original ? longFreq : shortFreq), attentionFactor };
}

function fixed(invFreq: Float64Array): Rotary {
  return { invFreq: () => invFreq, attentionFactor: 1 };
}

/** The rotary embedding for head dim D (rotate-half layout, the whole head rotated). */
export function rotaryOf(headDim: number, rope: RopeParameters, context: ContextSizes, source: string): Rotary {
  const invFreq = new Float64Array(headDim / 2).map((_, i) => 1 / rope.theta ** ((2 * i) / headDim));
  const scaling = rope.scaling;
  if (scaling === null) return fixed(invFreq);
  const type = scaling.rope_type ?? scaling.type ?? 'default';
  switch (type) {
    case 'default':
      return fixed(invFreq);
    case 'linear': {
      const factor = positive(scaling, 'factor', source);
      return fixed(invFreq.map((x) => x / factor));
    }
    case 'llama3':
      return fixed(llama3Scaling(invFreq, scaling, source));
    case 'longrope':
    case 'su': // Phi-3-128k's first name for longrope
      return longrope(invFreq, scaling, context, source);
    default:
      throw new ModelIoError(
        'UNSUPPORTED_MODEL',
        `${source}: rope scaling type ${JSON.stringify(type)} is not supported (${SUPPORTED_ROPE_TYPES.join(', ')}); remove "rope_scaling" to run at the model's original context length`,
      );
  }
}

/** `rotary` with each inverse frequency divided by its factor [D/2]. */
export function scaledRotary(rotary: Rotary, factors: Float32Array): Rotary {
  return { invFreq: (end) => rotary.invFreq(end).map((f, i) => f / (factors[i] as number)), attentionFactor: rotary.attentionFactor };
}
