/**
 * How a Hugging Face model and its GGUF form correspond, per architecture, following llama.cpp's converter
 * (convert_hf_to_gguf.py): the config fields as `<arch>.*` metadata, tensor names (model.layers.3.self_attn.q_proj ->
 * blk.3.attn_q), and the row permutation llama-architecture q/k weights get.
 *
 * Why the permutation: Hugging Face's Llama rotates each head's first half against its second half (rotate-half);
 * ggml's llama rope rotates adjacent pairs. The converter reorders each head's rows from [first half, second half]
 * to interleaved pairs so ggml's rope computes the same thing. qwen2 (and qwen3, gemma3, phi3) use ggml's NEOX rope,
 * which is rotate-half: no permutation.
 */
import { ModelIoError } from './errors';
import type { GgufFile } from './gguf';

export interface GgufArchitecture {
  /** general.architecture */
  readonly name: string;
  /** Hugging Face model_type values stored under this architecture; the first is used when importing. */
  readonly modelTypes: readonly string[];
  /** config.json's "architectures" entry for an imported model. */
  readonly hfClass: string;
  /** llama's rope layout: q/k rows interleaved per head (see above). */
  readonly permuteQK: boolean;
  /** Block tensors this architecture names otherwise than llama (Hugging Face suffix -> GGUF suffix). */
  readonly blockNames?: Readonly<Record<string, string>>;
  /** Gemma: RMSNorm weights w are kept as 1 + w in the file (llama.cpp's converter adds the one). */
  readonly normPlusOne?: boolean;
}

const ARCHITECTURES: readonly GgufArchitecture[] = [
  { name: 'llama', modelTypes: ['llama', 'mistral'], hfClass: 'LlamaForCausalLM', permuteQK: true },
  { name: 'qwen2', modelTypes: ['qwen2'], hfClass: 'Qwen2ForCausalLM', permuteQK: false },
  { name: 'qwen3', modelTypes: ['qwen3'], hfClass: 'Qwen3ForCausalLM', permuteQK: false },
  { name: 'phi3', modelTypes: ['phi3'], hfClass: 'Phi3ForCausalLM', permuteQK: false },
  {
    name: 'gemma3',
    modelTypes: ['gemma3_text'],
    hfClass: 'Gemma3ForCausalLM',
    permuteQK: false,
    normPlusOne: true,
    // Gemma's four norms per layer: post_attention_layernorm is the attention output's, not the pre-MLP one.
    blockNames: {
      'post_attention_layernorm.weight': 'post_attention_norm.weight',
      'pre_feedforward_layernorm.weight': 'ffn_norm.weight',
      'post_feedforward_layernorm.weight': 'post_ffw_norm.weight',
    },
  },
];

export const GGUF_ARCHITECTURES: readonly string[] = ARCHITECTURES.map((a) => a.name);

export function architectureForModelType(modelType: string): GgufArchitecture {
  const arch = ARCHITECTURES.find((a) => a.modelTypes.includes(modelType));
  if (!arch) {
    const known = ARCHITECTURES.flatMap((a) => a.modelTypes).join(', ');
    throw new ModelIoError('UNSUPPORTED_MODEL', `model_type '${modelType}' cannot be written as GGUF yet (supported: ${known}); export it as a PEFT adapter or a merged Hugging Face model instead`);
  }
  return arch;
}

export function architectureNamed(name: string, source: string): GgufArchitecture {
  const arch = ARCHITECTURES.find((a) => a.name === name);
  if (!arch) {
    throw new ModelIoError('UNSUPPORTED_MODEL', `${source}: general.architecture '${name}' is not supported (supported: ${GGUF_ARCHITECTURES.join(', ')})`);
  }
  return arch;
}

/** Per-layer tensors: Hugging Face suffix (after model.layers.N.) -> GGUF suffix (after blk.N.). */
const BLOCK: Readonly<Record<string, string>> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'self_attn.qkv_proj.weight': 'attn_qkv.weight', // phi3's fused q, k, v rows
  'self_attn.o_proj.weight': 'attn_output.weight',
  'self_attn.o_proj.bias': 'attn_output.bias',
  'self_attn.q_norm.weight': 'attn_q_norm.weight', // qwen3's per-head norms [head_dim]
  'self_attn.k_norm.weight': 'attn_k_norm.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.gate_proj.bias': 'ffn_gate.bias',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.up_proj.bias': 'ffn_up.bias',
  'mlp.gate_up_proj.weight': 'ffn_up.weight', // phi3's fused gate, up rows (ggml's swiglu takes the first half as gate)
  'mlp.down_proj.weight': 'ffn_down.weight',
  'mlp.down_proj.bias': 'ffn_down.bias',
};
// ffn_up is both llama's up_proj and phi3's gate_up_proj: the first (unfused) name is the one given back.
const BLOCK_BACK: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(BLOCK).reverse().map(([hf, g]) => [g, hf]));

const TOP: Readonly<Record<string, string>> = {
  'model.embed_tokens.weight': 'token_embd.weight',
  'model.norm.weight': 'output_norm.weight',
  'lm_head.weight': 'output.weight',
};
const TOP_BACK: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(TOP).map(([hf, g]) => [g, hf]));

/** The GGUF name of a Hugging Face tensor (in `arch`'s names where it has its own), or null for one GGUF has no place for. */
export function ggufTensorName(hfName: string, arch?: GgufArchitecture): string | null {
  const top = TOP[hfName];
  if (top) return top;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName);
  const suffix = m ? (arch?.blockNames?.[m[2] as string] ?? BLOCK[m[2] as string]) : undefined;
  return m && suffix ? `blk.${m[1]}.${suffix}` : null;
}

/** The Hugging Face name of a GGUF tensor, or null (rope_freqs and others the engine derives itself). */
export function hfTensorName(ggufName: string, arch?: GgufArchitecture): string | null {
  const top = TOP_BACK[ggufName];
  if (top) return top;
  const m = /^blk\.(\d+)\.(.+)$/.exec(ggufName);
  const own = m && arch?.blockNames ? Object.entries(arch.blockNames).find(([, g]) => g === m[2])?.[0] : undefined;
  const suffix = m ? (own ?? BLOCK_BACK[m[2] as string]) : undefined;
  return m && suffix ? `model.layers.${m[1]}.${suffix}` : null;
}

/** Whether a Hugging Face tensor is an RMSNorm weight (which Gemma files keep as 1 + w). */
export function isNormWeight(hfName: string): boolean {
  return hfName.endsWith('norm.weight');
}

/** The GGUF weight a LoRA target module adapts ('model.layers.0.self_attn.q_proj' -> 'blk.0.attn_q.weight'). */
export function ggufWeightOfModule(modulePath: string): string | null {
  return ggufTensorName(`${modulePath}.weight`);
}

/** The number of heads whose rows a tensor's permutation groups, or null when it is not permuted. */
export function permutedHeads(arch: GgufArchitecture, hfName: string, heads: { numHeads: number; numKvHeads: number }): number | null {
  if (!arch.permuteQK) return null;
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(hfName)) return heads.numHeads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(hfName)) return heads.numKvHeads;
  return null;
}

/**
 * Reorders the rows of a row-major [rows, cols] matrix (a bias is cols = 1) head by head: within each head of
 * d = rows / heads rows, row (half·d/2 + j) moves to (2j + half) when `toGguf`, and back otherwise. Works on the
 * values of any element type (float32 values, or 16-bit F16/BF16 bits).
 */
export function permuteRows<T extends Float32Array | Uint16Array | Uint8Array>(data: T, rows: number, cols: number, heads: number, toGguf: boolean): T {
  const d = rows / heads;
  if (!Number.isInteger(d) || d % 2 !== 0) {
    throw new ModelIoError('INVALID_CONFIG', `cannot split ${rows} rows into ${heads} heads of an even size for the rope permutation`);
  }
  const out = data.slice() as T;
  const half = d / 2;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < half; j++) {
      for (let s = 0; s < 2; s++) {
        const hfRow = h * d + s * half + j;
        const ggufRow = h * d + 2 * j + s;
        const [from, to] = toGguf ? [hfRow, ggufRow] : [ggufRow, hfRow];
        out.set(data.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/** What an imported GGUF model becomes: a config.json object, and rope frequency factors GGUF keeps as a tensor. */
export interface ImportedConfig {
  readonly arch: GgufArchitecture;
  readonly raw: Record<string, unknown>;
  /** rope_freqs.weight [head_dim / 2]: each rotary frequency is divided by its factor (llama 3's long-context scaling). */
  readonly ropeFactors: Float32Array | null;
}

/** A Hugging Face config.json object for a GGUF model, from its `<arch>.*` metadata and tensor shapes. */
export function hfConfigFromGguf(file: GgufFile): ImportedConfig {
  const arch = architectureNamed(file.string('general.architecture'), file.path);
  const key = (k: string) => `${arch.name}.${k}`;
  const refuse = (what: string): never => {
    throw new ModelIoError('UNSUPPORTED_MODEL', `${file.path}: ${what} is not supported`);
  };
  const headsKv = file.metadata.get(key('attention.head_count_kv'))?.value;
  if (Array.isArray(headsKv)) refuse(`a different number of key/value heads per layer (${key('attention.head_count_kv')})`);
  const hidden = file.number(key('embedding_length'));
  const heads = file.number(key('attention.head_count'));
  const headDim = file.number(key('attention.key_length'), hidden / heads);
  if (file.number(key('attention.value_length'), headDim) !== headDim) refuse(`${key('attention.value_length')} different from the key length`);
  if (file.number(key('rope.dimension_count'), headDim) !== headDim) refuse(`rotary embeddings over part of each head (${key('rope.dimension_count')})`);
  const embedding = file.tensor('token_embd.weight');
  const raw: Record<string, unknown> = {
    architectures: [arch.hfClass],
    model_type: arch.modelTypes[0],
    hidden_size: hidden,
    intermediate_size: file.number(key('feed_forward_length')),
    num_hidden_layers: file.number(key('block_count')),
    num_attention_heads: heads,
    num_key_value_heads: typeof headsKv === 'number' ? headsKv : heads,
    head_dim: headDim,
    rms_norm_eps: file.number(key('attention.layer_norm_rms_epsilon'), 1e-5),
    rope_theta: file.number(key('rope.freq_base'), 10000),
    max_position_embeddings: file.number(key('context_length'), 2048),
    vocab_size: embedding.shape[0],
    tie_word_embeddings: !file.tensors.has('output.weight'),
    hidden_act: 'silu',
  };
  if (arch.name === 'llama') {
    raw.attention_bias = file.tensors.has('blk.0.attn_q.bias');
    raw.mlp_bias = file.tensors.has('blk.0.ffn_up.bias');
  }
  if (arch.name === 'gemma3') {
    // What llama.cpp's gemma3 assumes: scores scaled by head_dim^-1/2, every 6th layer global, local rope base 10000.
    raw.hidden_activation = 'gelu_pytorch_tanh';
    raw.query_pre_attn_scalar = headDim;
    raw.sliding_window = file.number(key('attention.sliding_window'));
    raw.sliding_window_pattern = 6;
    raw.rope_local_base_freq = file.number(key('rope.freq_base_swa'), 10000);
  }
  if (arch.name === 'phi3') {
    raw.tie_word_embeddings = false; // llama.cpp's phi3 needs output.weight
    // phi3.attention.sliding_window (Phi-3-mini-4k's converter writes 2047) is read by llama.cpp and switched off:
    // every layer attends to the whole context there, and so here, so that the model trains as it runs there.
  }
  const scaling = file.string(key('rope.scaling.type'), 'none');
  if (scaling === 'linear') raw.rope_scaling = { rope_type: 'linear', factor: file.number(key('rope.scaling.factor')) };
  else if (scaling !== 'none') refuse(`rope scaling '${scaling}' (${key('rope.scaling.type')})`);
  for (const [field, k] of [['bos_token_id', 'bos_token_id'], ['pad_token_id', 'padding_token_id']] as const) {
    if (file.has(`tokenizer.ggml.${k}`)) raw[field] = file.number(`tokenizer.ggml.${k}`);
  }
  // Every end-of-generation token llama.cpp would stop at.
  const eos = ['eos_token_id', 'eot_token_id', 'eom_token_id'].filter((k) => file.has(`tokenizer.ggml.${k}`)).map((k) => file.number(`tokenizer.ggml.${k}`));
  if (eos.length > 0) raw.eos_token_id = [...new Set(eos)];
  const ropeFactors = file.tensors.has('rope_freqs.weight') ? file.readFloat('rope_freqs.weight').data : null;
  if (ropeFactors && ropeFactors.length !== headDim / 2) {
    throw new ModelIoError('INVALID_GGUF', `${file.path}: rope_freqs.weight has ${ropeFactors.length} factors, the head dim ${headDim} needs ${headDim / 2}`);
  }
  return { arch, raw, ropeFactors };
}
