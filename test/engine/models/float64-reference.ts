/**
 * An independent float64 forward pass for the test models, written from the Hugging Face modeling code
 * (modeling_llama.py, modeling_gpt2.py) with plain loops: no tfjs, nothing shared with the engine.
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

/** Causal attention over T positions; q [T][H·D], k/v [T][Hkv·D]. */
function attend(q: Mat, k: Mat, v: Mat, heads: number, kvHeads: number, d: number): Mat {
  const T = q.length;
  return q.map((qRow, t) => {
    const out = new Float64Array(heads * d);
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / (heads / kvHeads));
      const scores: number[] = [];
      for (let s = 0; s <= t; s++) {
        let dot = 0;
        for (let i = 0; i < d; i++) dot += (qRow[h * d + i] as number) * (k[s]?.[kh * d + i] as number);
        scores.push(dot / Math.sqrt(d));
      }
      const max = Math.max(...scores);
      const e = scores.map((x) => Math.exp(x - max));
      const z = e.reduce((a, b) => a + b, 0);
      for (let s = 0; s <= t; s++) {
        for (let i = 0; i < d; i++) out[h * d + i] = (out[h * d + i] as number) + ((e[s] as number) / z) * (v[s]?.[kh * d + i] as number);
      }
    }
    void T;
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
}

function rope(x: Mat, heads: number, d: number, invFreq: number[]): Mat {
  return x.map((row, pos) => {
    const out = new Float64Array(row.length);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < d / 2; i++) {
        const angle = pos * (invFreq[i] as number);
        const x1 = row[h * d + i] as number;
        const x2 = row[h * d + i + d / 2] as number;
        out[h * d + i] = x1 * Math.cos(angle) - x2 * Math.sin(angle);
        out[h * d + i + d / 2] = x2 * Math.cos(angle) + x1 * Math.sin(angle);
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
    x = add(x, linear(attend(q, k, v, c.heads, c.kvHeads, c.headDim), w, `${p}.self_attn.o_proj`, false, false));
    const m = rms(x, get(w, `${p}.post_attention_layernorm.weight`).data, c.eps);
    const gate = linear(m, w, `${p}.mlp.gate_proj`, false, false);
    const up = linear(m, w, `${p}.mlp.up_proj`, false, false);
    const act = gate.map((row, t) => row.map((g, i) => (g / (1 + Math.exp(-g))) * (up[t]?.[i] as number)));
    x = add(x, linear(act, w, `${p}.mlp.down_proj`, false, false));
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
