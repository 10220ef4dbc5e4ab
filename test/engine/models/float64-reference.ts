/**
 * An independent float64 forward pass for the test models, written from the Hugging Face modeling code
 * (modeling_llama.py, modeling_mistral.py, modeling_qwen2.py, modeling_qwen3.py, modeling_phi3.py,
 * modeling_gemma2.py, modeling_gemma3.py, modeling_gpt2.py) with plain loops: no tfjs, nothing shared with the
 * engine.
 */
export type Weights = Map<string, { shape: number[]; data: Float64Array }>;

type Mat = Float64Array[]; // rows

function get(w: Weights, name: string): { shape: number[]; data: Float64Array } {
  const t = w.get(name);
  if (!t) throw new Error(`reference: missing ${name}`);
  return t;
}

/** x [T][in] · W where W is [out, in] (nn.Linear) or [in, out] (Conv1D) */
function linear(x: Mat, w: Weights, name: string, fanInFanOut: boolean, bias: boolean): Mat {
  const W = get(w, `${name}.weight`);
  const [a, b] = W.shape as [number, number];
  const [inF, outF] = fanInFanOut ? [a, b] : [b, a];
  const B = bias ? get(w, `${name}.bias`).data : null;
  return x.map((row) => {
    const out = new Float64Array(outF);
    for (let o = 0; o < outF; o++) {
      let s = B ? (B[o] as number) : 0;
      for (let i = 0; i < inF; i++) s += (row[i] as number) * (W.data[fanInFanOut ? i * outF + o : o * inF + i] as number);
      out[o] = s;
    }
    return out;
  });
}

function rms(x: Mat, weight: Float64Array, eps: number): Mat {
  return x.map((row) => {
    const ms = row.reduce((s, v) => s + v * v, 0) / row.length;
    return row.map((v, i) => (v / Math.sqrt(ms + eps)) * (weight[i] as number));
  });
}

function ln(x: Mat, weight: Float64Array, bias: Float64Array, eps: number): Mat {
  return x.map((row) => {
    const mean = row.reduce((s, v) => s + v, 0) / row.length;
    const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / row.length;
    return row.map((v, i) => ((v - mean) / Math.sqrt(variance + eps)) * (weight[i] as number) + (bias[i] as number));
  });
}

const add = (a: Mat, b: Mat): Mat => a.map((row, t) => row.map((v, i) => v + (b[t]?.[i] as number)));

export interface AttendOptions {
  /** Multiplies q·k (default 1/√d). */
  scale?: number;
  /** Sliding window W: query t sees keys t−W+1..t (HF: kv_idx > q_idx − sliding_window). */
  window?: number | null;
  /** Gemma 2: scores → cap·tanh(scores / cap) before the mask. */
  softcap?: number | null;
}

/** Causal attention over T positions; q [T][H·D], k/v [T][Hkv·D]. */
function attend(q: Mat, k: Mat, v: Mat, heads: number, kvHeads: number, d: number, o: AttendOptions = {}): Mat {
  const scale = o.scale ?? 1 / Math.sqrt(d);
  return q.map((qRow, t) => {
    const out = new Float64Array(heads * d);
    const first = o.window ? Math.max(0, t - o.window + 1) : 0;
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / (heads / kvHeads));
      const scores: number[] = [];
      for (let s = first; s <= t; s++) {
        let dot = 0;
        for (let i = 0; i < d; i++) dot += (qRow[h * d + i] as number) * (k[s]?.[kh * d + i] as number);
        const scaled = dot * scale;
        scores.push(o.softcap ? o.softcap * Math.tanh(scaled / o.softcap) : scaled);
      }
      const max = Math.max(...scores);
      const e = scores.map((x) => Math.exp(x - max));
      const z = e.reduce((a, b) => a + b, 0);
      for (let s = first; s <= t; s++) {
        const p = (e[s - first] as number) / z;
        for (let i = 0; i < d; i++) out[h * d + i] = (out[h * d + i] as number) + p * (v[s]?.[kh * d + i] as number);
      }
    }
    return out;
  });
}

export interface LlamaRefConfig {
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  invFreq: number[];
  qkvBias: boolean;
  tied: boolean;
  /** Sliding window per layer (mistral, qwen2 with use_sliding_window), null for full attention. */
  windows?: (number | null)[];
  /** attention_bias also puts a bias on o_proj; mlp_bias on gate, up and down. */
  oBias?: boolean;
  mlpBias?: boolean;
}

function rope(x: Mat, heads: number, d: number, invFreq: number[]): Mat {
  return ropeAt(x, heads, d, () => invFreq, 1);
}

/** Rotary embedding with the frequencies each position was rotated with, cos and sin × `scale` (longrope). */
function ropeAt(x: Mat, heads: number, d: number, freqsOf: (pos: number) => number[], scale: number): Mat {
  return x.map((row, pos) => {
    const out = new Float64Array(row.length);
    const invFreq = freqsOf(pos);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < d / 2; i++) {
        const angle = pos * (invFreq[i] as number);
        const cos = Math.cos(angle) * scale;
        const sin = Math.sin(angle) * scale;
        const x1 = row[h * d + i] as number;
        const x2 = row[h * d + i + d / 2] as number;
        out[h * d + i] = x1 * cos - x2 * sin;
        out[h * d + i + d / 2] = x2 * cos + x1 * sin;
      }
    }
    return out;
  });
}

/** Logits [T][V] of one sequence. */
export function llamaReference(w: Weights, c: LlamaRefConfig, ids: number[]): Mat {
  const emb = get(w, 'model.embed_tokens.weight');
  const C = emb.shape[1] as number;
  let x: Mat = ids.map((id) => emb.data.slice(id * C, (id + 1) * C));
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    const h = rms(x, get(w, `${p}.input_layernorm.weight`).data, c.eps);
    const q = rope(linear(h, w, `${p}.self_attn.q_proj`, false, c.qkvBias), c.heads, c.headDim, c.invFreq);
    const k = rope(linear(h, w, `${p}.self_attn.k_proj`, false, c.qkvBias), c.kvHeads, c.headDim, c.invFreq);
    const v = linear(h, w, `${p}.self_attn.v_proj`, false, c.qkvBias);
    x = add(x, linear(attend(q, k, v, c.heads, c.kvHeads, c.headDim, { window: c.windows?.[l] ?? null }), w, `${p}.self_attn.o_proj`, false, c.oBias ?? false));
    const m = rms(x, get(w, `${p}.post_attention_layernorm.weight`).data, c.eps);
    const gate = linear(m, w, `${p}.mlp.gate_proj`, false, c.mlpBias ?? false);
    const up = linear(m, w, `${p}.mlp.up_proj`, false, c.mlpBias ?? false);
    const act = gate.map((row, t) => row.map((g, i) => (g / (1 + Math.exp(-g))) * (up[t]?.[i] as number)));
    x = add(x, linear(act, w, `${p}.mlp.down_proj`, false, c.mlpBias ?? false));
  }
  x = rms(x, get(w, 'model.norm.weight').data, c.eps);
  if (c.tied) {
    const V = emb.shape[0] as number;
    return x.map((row) => {
      const out = new Float64Array(V);
      for (let o = 0; o < V; o++) for (let i = 0; i < C; i++) out[o] = (out[o] as number) + (row[i] as number) * (emb.data[o * C + i] as number);
      return out;
    });
  }
  return linear(x, w, 'lm_head', false, false);
}

export function gpt2Reference(w: Weights, c: { layers: number; heads: number; eps: number }, ids: number[]): Mat {
  const wte = get(w, 'transformer.wte.weight');
  const wpe = get(w, 'transformer.wpe.weight');
  const C = wte.shape[1] as number;
  const d = C / c.heads;
  const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  let x: Mat = ids.map((id, pos) => wte.data.slice(id * C, (id + 1) * C).map((v, i) => v + (wpe.data[pos * C + i] as number)));
  for (let l = 0; l < c.layers; l++) {
    const p = `transformer.h.${l}`;
    const h = ln(x, get(w, `${p}.ln_1.weight`).data, get(w, `${p}.ln_1.bias`).data, c.eps);
    const qkv = linear(h, w, `${p}.attn.c_attn`, true, true);
    const q = qkv.map((r) => r.slice(0, C));
    const k = qkv.map((r) => r.slice(C, 2 * C));
    const v = qkv.map((r) => r.slice(2 * C));
    x = add(x, linear(attend(q, k, v, c.heads, c.heads, d), w, `${p}.attn.c_proj`, true, true));
    const m = ln(x, get(w, `${p}.ln_2.weight`).data, get(w, `${p}.ln_2.bias`).data, c.eps);
    x = add(x, linear(linear(m, w, `${p}.mlp.c_fc`, true, true).map((r) => r.map(gelu)), w, `${p}.mlp.c_proj`, true, true));
  }
  x = ln(x, get(w, 'transformer.ln_f.weight').data, get(w, 'transformer.ln_f.bias').data, c.eps);
  const V = wte.shape[0] as number;
  return x.map((row) => {
    const out = new Float64Array(V);
    for (let o = 0; o < V; o++) for (let i = 0; i < C; i++) out[o] = (out[o] as number) + (row[i] as number) * (wte.data[o * C + i] as number);
    return out;
  });
}

/** RMSNorm of each head's D values (Qwen3RMSNorm / Gemma3RMSNorm applied on [.., heads, D]). */
function rmsPerHead(x: Mat, weight: Float64Array, heads: number, d: number, eps: number, plusOne: boolean): Mat {
  return x.map((row) => {
    const out = new Float64Array(row.length);
    for (let h = 0; h < heads; h++) {
      let ms = 0;
      for (let i = 0; i < d; i++) ms += (row[h * d + i] as number) ** 2;
      const r = 1 / Math.sqrt(ms / d + eps);
      for (let i = 0; i < d; i++) out[h * d + i] = (row[h * d + i] as number) * r * ((plusOne ? 1 : 0) + (weight[i] as number));
    }
    return out;
  });
}

/** x [T][C] · Eᵀ for the embedding E [V, C] (a tied head). */
function tiedHead(x: Mat, emb: { shape: number[]; data: Float64Array }): Mat {
  const [V, C] = emb.shape as [number, number];
  return x.map((row) => {
    const out = new Float64Array(V);
    for (let o = 0; o < V; o++) for (let i = 0; i < C; i++) out[o] = (out[o] as number) + (row[i] as number) * (emb.data[o * C + i] as number);
    return out;
  });
}

const silu = (g: number) => g / (1 + Math.exp(-g));
const geluTanh = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

export interface Qwen3RefConfig {
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  invFreq: number[];
  tied: boolean;
  windows?: (number | null)[];
}

/** modeling_qwen3.py: q_norm / k_norm over each head's D before rotary; no biases. */
export function qwen3Reference(w: Weights, c: Qwen3RefConfig, ids: number[]): Mat {
  const emb = get(w, 'model.embed_tokens.weight');
  const C = emb.shape[1] as number;
  let x: Mat = ids.map((id) => emb.data.slice(id * C, (id + 1) * C));
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    const h = rms(x, get(w, `${p}.input_layernorm.weight`).data, c.eps);
    const qn = rmsPerHead(linear(h, w, `${p}.self_attn.q_proj`, false, false), get(w, `${p}.self_attn.q_norm.weight`).data, c.heads, c.headDim, c.eps, false);
    const kn = rmsPerHead(linear(h, w, `${p}.self_attn.k_proj`, false, false), get(w, `${p}.self_attn.k_norm.weight`).data, c.kvHeads, c.headDim, c.eps, false);
    const q = rope(qn, c.heads, c.headDim, c.invFreq);
    const k = rope(kn, c.kvHeads, c.headDim, c.invFreq);
    const v = linear(h, w, `${p}.self_attn.v_proj`, false, false);
    x = add(x, linear(attend(q, k, v, c.heads, c.kvHeads, c.headDim, { window: c.windows?.[l] ?? null }), w, `${p}.self_attn.o_proj`, false, false));
    const m = rms(x, get(w, `${p}.post_attention_layernorm.weight`).data, c.eps);
    const gate = linear(m, w, `${p}.mlp.gate_proj`, false, false);
    const up = linear(m, w, `${p}.mlp.up_proj`, false, false);
    x = add(x, linear(gate.map((row, t) => row.map((g, i) => silu(g) * (up[t]?.[i] as number))), w, `${p}.mlp.down_proj`, false, false));
  }
  x = rms(x, get(w, 'model.norm.weight').data, c.eps);
  return c.tied ? tiedHead(x, emb) : linear(x, w, 'lm_head', false, false);
}

export interface Phi3RefConfig {
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  invFreq: number[];
  window: number | null;
  /** Longrope: the frequencies position p was rotated with (short or long factors), and the cos/sin factor. */
  freqsAt?: (pos: number) => number[];
  ropeScale?: number;
}

/** modeling_phi3.py: qkv_proj rows are q, k, v; gate_up_proj rows are gate, up (chunk(2)); untied head. */
export function phi3Reference(w: Weights, c: Phi3RefConfig, ids: number[]): Mat {
  const emb = get(w, 'model.embed_tokens.weight');
  const C = emb.shape[1] as number;
  const qw = c.heads * c.headDim;
  const kw = c.kvHeads * c.headDim;
  let x: Mat = ids.map((id) => emb.data.slice(id * C, (id + 1) * C));
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    const h = rms(x, get(w, `${p}.input_layernorm.weight`).data, c.eps);
    const qkv = linear(h, w, `${p}.self_attn.qkv_proj`, false, false);
    const freqsAt = c.freqsAt ?? (() => c.invFreq);
    const q = ropeAt(qkv.map((r) => r.slice(0, qw)), c.heads, c.headDim, freqsAt, c.ropeScale ?? 1);
    const k = ropeAt(qkv.map((r) => r.slice(qw, qw + kw)), c.kvHeads, c.headDim, freqsAt, c.ropeScale ?? 1);
    const v = qkv.map((r) => r.slice(qw + kw));
    x = add(x, linear(attend(q, k, v, c.heads, c.kvHeads, c.headDim, { window: c.window }), w, `${p}.self_attn.o_proj`, false, false));
    const m = rms(x, get(w, `${p}.post_attention_layernorm.weight`).data, c.eps);
    const gateUp = linear(m, w, `${p}.mlp.gate_up_proj`, false, false);
    const F = (gateUp[0]?.length as number) / 2;
    const act = gateUp.map((row) => row.slice(F).map((u, i) => u * silu(row[i] as number)));
    x = add(x, linear(act, w, `${p}.mlp.down_proj`, false, false));
  }
  x = rms(x, get(w, 'model.norm.weight').data, c.eps);
  return linear(x, w, 'lm_head', false, false);
}

export interface GemmaRefConfig {
  /** 2 or 3 */
  version: 2 | 3;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  /** The embedding multiplier as upstream rounds it: √hidden in the embedding's dtype. */
  normalizer: number;
  queryPreAttnScalar: number;
  /** Per layer: its window (null for a global layer) and its rotary frequencies. */
  layerWindows: (number | null)[];
  layerInvFreq: number[][];
  attnSoftcap: number | null;
  finalSoftcap: number | null;
  /** The MLP's GELU (default: the tanh form upstream uses). */
  gelu?: (v: number) => number;
}

/** Gemma2RMSNorm / Gemma3RMSNorm: x / √(mean(x²) + eps) · (1 + w). */
function rmsPlusOne(x: Mat, weight: Float64Array, eps: number): Mat {
  return rms(x, weight.map((v) => 1 + v), eps);
}

/** modeling_gemma2.py / modeling_gemma3.py (text): scaled embedding, four (1 + w) norms per layer, tied head. */
export function gemmaReference(w: Weights, c: GemmaRefConfig, ids: number[]): Mat {
  const emb = get(w, 'model.embed_tokens.weight');
  const C = emb.shape[1] as number;
  let x: Mat = ids.map((id) => emb.data.slice(id * C, (id + 1) * C).map((v) => v * c.normalizer));
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    const invFreq = c.layerInvFreq[l] as number[];
    const h = rmsPlusOne(x, get(w, `${p}.input_layernorm.weight`).data, c.eps);
    let q = linear(h, w, `${p}.self_attn.q_proj`, false, false);
    let k = linear(h, w, `${p}.self_attn.k_proj`, false, false);
    if (c.version === 3) {
      q = rmsPerHead(q, get(w, `${p}.self_attn.q_norm.weight`).data, c.heads, c.headDim, c.eps, true);
      k = rmsPerHead(k, get(w, `${p}.self_attn.k_norm.weight`).data, c.kvHeads, c.headDim, c.eps, true);
    }
    q = rope(q, c.heads, c.headDim, invFreq);
    k = rope(k, c.kvHeads, c.headDim, invFreq);
    const v = linear(h, w, `${p}.self_attn.v_proj`, false, false);
    const options = { scale: c.queryPreAttnScalar ** -0.5, window: c.layerWindows[l] ?? null, softcap: c.attnSoftcap };
    const a = linear(attend(q, k, v, c.heads, c.kvHeads, c.headDim, options), w, `${p}.self_attn.o_proj`, false, false);
    x = add(x, rmsPlusOne(a, get(w, `${p}.post_attention_layernorm.weight`).data, c.eps));
    const m = rmsPlusOne(x, get(w, `${p}.pre_feedforward_layernorm.weight`).data, c.eps);
    const gate = linear(m, w, `${p}.mlp.gate_proj`, false, false);
    const up = linear(m, w, `${p}.mlp.up_proj`, false, false);
    const f = linear(gate.map((row, t) => row.map((g, i) => (c.gelu ?? geluTanh)(g) * (up[t]?.[i] as number))), w, `${p}.mlp.down_proj`, false, false);
    x = add(x, rmsPlusOne(f, get(w, `${p}.post_feedforward_layernorm.weight`).data, c.eps));
  }
  x = rmsPlusOne(x, get(w, 'model.norm.weight').data, c.eps);
  const logits = tiedHead(x, emb);
  const cap = c.finalSoftcap;
  return cap ? logits.map((row) => row.map((v) => cap * Math.tanh(v / cap))) : logits;
}
