/*
 * Fused elementwise kernels for the training step's memory-bound work: each replaces a chain of tfjs kernels (and
 * their intermediate tensors) with one pass over the data. Row-major float32 throughout; loops run on the
 * configured thread count. Shapes: N rows, V vocabulary, G = batch·heads, T positions, D head dim, C channels.
 */
#ifndef LORASMITH_FUSED_H
#define LORASMITH_FUSED_H

#include <stdint.h>

/* Rotary embedding, rotate-half layout: out = x·cos + [x2, x1]·sin; x, out [G, T, D]; cos, sin [T, D]. The
 * gradient is the same map with sin negated. */
void lorasmith_rotary(const float *x, const float *cos, const float *sin, float *out, int64_t groups, int64_t t,
                      int64_t d);

/* SwiGLU's product: out = silu(gate)·up over n elements, silu(g) = g·sigmoid(g). */
void lorasmith_swiglu(const float *gate, const float *up, float *out, int64_t n);
/* Its gradient: dgate = dy·up·s·(1 + g·(1 − s)), dup = dy·g·s with s = sigmoid(g). */
void lorasmith_swiglu_grad(const float *gate, const float *up, const float *dy, float *dgate, float *dup, int64_t n);

/* RMSNorm: out = x / sqrt(mean(x²) + eps) · weight; x, out [N, C], weight [C]. */
void lorasmith_rms_norm(const float *x, const float *weight, float eps, float *out, int64_t rows, int64_t cols);
/* Its gradient: dx [N, C] and dweight [C] (summed over rows). Returns 0 when out of memory (nothing written). */
int lorasmith_rms_norm_grad(const float *x, const float *weight, const float *dy, float eps, float *dx,
                            float *dweight, int64_t rows, int64_t cols);

/* Softmax cross-entropy per row: lse = log Σ exp(logits), nll = lse − logits[label]; logits [N, V], labels,
 * nll and lse [N]. Returns -1, or the first row whose label is outside [0, V) (nothing is written then). */
int64_t lorasmith_cross_entropy(const float *logits, const int32_t *labels, float *nll, float *lse, int64_t rows,
                                int64_t vocab);
/* Its gradient for per-row weights coef [N]: dlogits = coef·(softmax(logits) − onehot(label)), softmax from the
 * forward's lse. Returns -1, or the first row whose label is out of range (nothing is written then). */
int64_t lorasmith_cross_entropy_grad(const float *logits, const float *lse, const int32_t *labels, const float *coef,
                                     float *dlogits, int64_t rows, int64_t vocab);

/* Causal attention with grouped-query heads (query head j reads kv head j / (H / Hkv), as HF's repeat_kv):
 * q [B, H, T, D], k and v [B, Hkv, S, D], query t at position S − T + t sees keys 0..S − T + t;
 * out [B, T, H·D] (heads side by side, the layout o_proj takes), probs [B, H, T, S] (the softmax, for the gradient). */
void lorasmith_attention(const float *q, const float *k, const float *v, float *out, float *probs, int64_t b,
                         int64_t h, int64_t hkv, int64_t t, int64_t s, int64_t d, float scale);
/* Its gradient for dout [B, T, H·D]: dq [B, H, T, D], dk and dv [B, Hkv, S, D]. Returns 0 when out of memory. */
int lorasmith_attention_grad(const float *q, const float *k, const float *v, const float *probs, const float *dout,
                             float *dq, float *dk, float *dv, int64_t b, int64_t h, int64_t hkv, int64_t t, int64_t s,
                             int64_t d, float scale);

/* Gather along one axis: x [outer, axis, inner], indices [n] -> out [outer, n, inner]. Returns -1, or the
 * position of the first index outside [0, axis) (nothing is written then). */
int64_t lorasmith_gather(const float *x, const int32_t *indices, float *out, int64_t outer, int64_t axis,
                         int64_t inner, int64_t n);

#endif
