#include "fused.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "parallel.h"

#if defined(_MSC_VER)
#define restrict __restrict /* MSVC's C mode spells C99's restrict this way */
#endif

/* Elements per thread below which a loop stays on one thread. */
#define MIN_ELEMENTS_PER_THREAD 32768
/* Elementwise loops run over blocks of this many elements (the unit the threads split). */
#define BLOCK 4096

static int threads(void) { return lorasmith_blas_get_threads(); }

static int64_t min_rows(int64_t elements_per_row) {
  const int64_t rows = MIN_ELEMENTS_PER_THREAD / (elements_per_row > 0 ? elements_per_row : 1);
  return rows > 0 ? rows : 1;
}

/*
 * exp(x) for x in [-87.3, 88.7] (clamped outside): 2^n · e^r with n = round(x / ln 2) and r = x − n·ln 2 in
 * [−ln2/2, ln2/2], e^r by Cephes' expf polynomial (relative error about 1e-7). Branch-free and without library
 * calls (floorf is one on baseline x86-64), so loops over it vectorise; the C library's expf does not.
 */
static inline float exp_approx(float x) {
  /* Written as minps/maxps compute them (NaN passes through as the bound), so the compiler emits those. */
  x = x > -87.3f ? x : -87.3f;
  x = x < 88.7f ? x : 88.7f;
  /* Adding 1.5·2^23 rounds to an integer in float arithmetic (round to nearest); subtracting it gives n. */
  const float shifter = 12582912.0f;
  const float n = (x * 1.44269504088896341f + shifter) - shifter;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f; /* ln 2 in two parts (Cody–Waite) */
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

/* ---- rotary ---- */

typedef struct {
  const float *x, *cos, *sin;
  float *out;
  int64_t t, d;
} Rotary;

static void rotary_groups(void *context, int64_t first, int64_t last) {
  const Rotary *r = (const Rotary *)context;
  const int64_t half = r->d / 2;
  for (int64_t g = first; g < last; g++) {
    for (int64_t p = 0; p < r->t; p++) {
      const float *x = r->x + (g * r->t + p) * r->d;
      const float *c = r->cos + p * r->d;
      const float *s = r->sin + p * r->d;
      float *o = r->out + (g * r->t + p) * r->d;
      for (int64_t i = 0; i < half; i++) o[i] = x[i] * c[i] + x[i + half] * s[i];
      for (int64_t i = half; i < r->d; i++) o[i] = x[i] * c[i] + x[i - half] * s[i];
    }
  }
}

void lorasmith_rotary(const float *x, const float *cos, const float *sin, float *out, int64_t groups, int64_t t,
                      int64_t d) {
  Rotary r = {x, cos, sin, out, t, d};
  lorasmith_parallel_for(groups, threads(), min_rows(t * d), rotary_groups, &r);
}

/* ---- SwiGLU ---- */

typedef struct {
  const float *gate, *up, *dy;
  float *out, *dgate, *dup;
  int64_t n;
} Swiglu;

static void swiglu_blocks(void *context, int64_t first, int64_t last) {
  const Swiglu *s = (const Swiglu *)context;
  const float *restrict gate = s->gate, *restrict up = s->up;
  float *restrict out = s->out;
  const int64_t end = last * BLOCK < s->n ? last * BLOCK : s->n;
  for (int64_t i = first * BLOCK; i < end; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

static void swiglu_grad_blocks(void *context, int64_t first, int64_t last) {
  const Swiglu *s = (const Swiglu *)context;
  const float *restrict gate = s->gate, *restrict up = s->up, *restrict dy = s->dy;
  float *restrict dgate = s->dgate, *restrict dup = s->dup;
  const int64_t end = last * BLOCK < s->n ? last * BLOCK : s->n;
  for (int64_t i = first * BLOCK; i < end; i++) {
    const float g = gate[i];
    const float sg = sigmoid(g);
    dgate[i] = dy[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
    dup[i] = dy[i] * g * sg;
  }
}

void lorasmith_swiglu(const float *gate, const float *up, float *out, int64_t n) {
  Swiglu s = {gate, up, NULL, out, NULL, NULL, n};
  lorasmith_parallel_for((n + BLOCK - 1) / BLOCK, threads(), min_rows(BLOCK), swiglu_blocks, &s);
}

void lorasmith_swiglu_grad(const float *gate, const float *up, const float *dy, float *dgate, float *dup, int64_t n) {
  Swiglu s = {gate, up, dy, NULL, dgate, dup, n};
  lorasmith_parallel_for((n + BLOCK - 1) / BLOCK, threads(), min_rows(BLOCK), swiglu_grad_blocks, &s);
}

/* ---- RMSNorm ---- */

typedef struct {
  const float *x, *weight, *dy;
  float eps;
  float *out, *dx, *dweight, *inv_rms;
  int64_t rows, cols;
} RmsNorm;

static float inverse_rms(const float *x, int64_t cols, float eps) {
  float sum = 0.0f;
  for (int64_t c = 0; c < cols; c++) sum += x[c] * x[c];
  return 1.0f / sqrtf(sum / (float)cols + eps);
}

static void rms_norm_rows(void *context, int64_t first, int64_t last) {
  const RmsNorm *n = (const RmsNorm *)context;
  for (int64_t r = first; r < last; r++) {
    const float *x = n->x + r * n->cols;
    float *o = n->out + r * n->cols;
    const float inv = inverse_rms(x, n->cols, n->eps);
    for (int64_t c = 0; c < n->cols; c++) o[c] = x[c] * inv * n->weight[c];
  }
}

/* dx = inv·(dy·w) − x·inv³/C·Σ(dy·w·x), per row; keeps inv for the weight gradient. */
static void rms_norm_grad_rows(void *context, int64_t first, int64_t last) {
  const RmsNorm *n = (const RmsNorm *)context;
  for (int64_t r = first; r < last; r++) {
    const float *x = n->x + r * n->cols;
    const float *dy = n->dy + r * n->cols;
    float *dx = n->dx + r * n->cols;
    const float inv = inverse_rms(x, n->cols, n->eps);
    float dot = 0.0f;
    for (int64_t c = 0; c < n->cols; c++) dot += dy[c] * n->weight[c] * x[c];
    const float k = inv * inv * inv * dot / (float)n->cols;
    for (int64_t c = 0; c < n->cols; c++) dx[c] = inv * dy[c] * n->weight[c] - x[c] * k;
    n->inv_rms[r] = inv;
  }
}

/* dweight[c] = Σ_rows dy·x·inv, over a range of columns. */
static void rms_norm_weight_grad_columns(void *context, int64_t first, int64_t last) {
  const RmsNorm *n = (const RmsNorm *)context;
  for (int64_t c = first; c < last; c++) n->dweight[c] = 0.0f;
  for (int64_t r = 0; r < n->rows; r++) {
    const float *x = n->x + r * n->cols;
    const float *dy = n->dy + r * n->cols;
    const float inv = n->inv_rms[r];
    for (int64_t c = first; c < last; c++) n->dweight[c] += dy[c] * x[c] * inv;
  }
}

void lorasmith_rms_norm(const float *x, const float *weight, float eps, float *out, int64_t rows, int64_t cols) {
  RmsNorm n = {x, weight, NULL, eps, out, NULL, NULL, NULL, rows, cols};
  lorasmith_parallel_for(rows, threads(), min_rows(cols), rms_norm_rows, &n);
}

int lorasmith_rms_norm_grad(const float *x, const float *weight, const float *dy, float eps, float *dx,
                            float *dweight, int64_t rows, int64_t cols) {
  /* Each row's 1/rms, computed by the row pass and read by the column pass. */
  float stack_scratch[4096];
  float *inv_rms = rows <= 4096 ? stack_scratch : (float *)malloc((size_t)rows * sizeof(float));
  if (inv_rms == NULL) return 0;
  RmsNorm n = {x, weight, dy, eps, NULL, dx, dweight, inv_rms, rows, cols};
  lorasmith_parallel_for(rows, threads(), min_rows(cols), rms_norm_grad_rows, &n);
  lorasmith_parallel_for(cols, threads(), 64, rms_norm_weight_grad_columns, &n);
  if (inv_rms != stack_scratch) free(inv_rms);
  return 1;
}

/* ---- softmax cross-entropy ---- */

typedef struct {
  const float *logits, *lse_in, *coef;
  const int32_t *labels;
  float *nll, *lse, *dlogits;
  int64_t rows, vocab;
} CrossEntropy;

/* Σ exp(x[v] − shift) in LANES partial sums: a single running sum is a serial dependency that cannot be
 * vectorised without reassociating (which the compiler may not do on its own). */
#define LANES 8
static float sum_exp(const float *x, int64_t n, float shift) {
  float partial[LANES] = {0};
  int64_t v = 0;
  for (; v + LANES <= n; v += LANES) {
    for (int l = 0; l < LANES; l++) partial[l] += exp_approx(x[v + l] - shift);
  }
  float sum = 0.0f;
  for (; v < n; v++) sum += exp_approx(x[v] - shift);
  for (int l = 0; l < LANES; l++) sum += partial[l];
  return sum;
}

static void cross_entropy_rows(void *context, int64_t first, int64_t last) {
  const CrossEntropy *e = (const CrossEntropy *)context;
  for (int64_t r = first; r < last; r++) {
    const float *x = e->logits + r * e->vocab;
    float max = x[0];
    for (int64_t v = 1; v < e->vocab; v++) max = x[v] > max ? x[v] : max;
    const float lse = max + logf(sum_exp(x, e->vocab, max));
    e->lse[r] = lse;
    e->nll[r] = lse - x[e->labels[r]];
  }
}

static void cross_entropy_grad_rows(void *context, int64_t first, int64_t last) {
  const CrossEntropy *e = (const CrossEntropy *)context;
  for (int64_t r = first; r < last; r++) {
    const float *restrict x = e->logits + r * e->vocab;
    float *restrict g = e->dlogits + r * e->vocab;
    const float lse = e->lse_in[r];
    const float coef = e->coef[r];
    for (int64_t v = 0; v < e->vocab; v++) g[v] = coef * exp_approx(x[v] - lse);
    g[e->labels[r]] -= coef;
  }
}

int64_t lorasmith_cross_entropy(const float *logits, const int32_t *labels, float *nll, float *lse, int64_t rows,
                                int64_t vocab) {
  for (int64_t r = 0; r < rows; r++) {
    if (labels[r] < 0 || labels[r] >= vocab) return r;
  }
  CrossEntropy e = {logits, NULL, NULL, labels, nll, lse, NULL, rows, vocab};
  lorasmith_parallel_for(rows, threads(), min_rows(vocab), cross_entropy_rows, &e);
  return -1;
}

int64_t lorasmith_cross_entropy_grad(const float *logits, const float *lse, const int32_t *labels, const float *coef,
                                     float *dlogits, int64_t rows, int64_t vocab) {
  for (int64_t r = 0; r < rows; r++) {
    if (labels[r] < 0 || labels[r] >= vocab) return r;
  }
  CrossEntropy e = {logits, lse, coef, labels, NULL, NULL, dlogits, rows, vocab};
  lorasmith_parallel_for(rows, threads(), min_rows(vocab), cross_entropy_grad_rows, &e);
  return -1;
}

/* ---- gather ---- */

int64_t lorasmith_gather(const float *x, const int32_t *indices, float *out, int64_t outer, int64_t axis,
                         int64_t inner, int64_t n) {
  for (int64_t j = 0; j < n; j++) {
    if (indices[j] < 0 || indices[j] >= axis) return j;
  }
  for (int64_t o = 0; o < outer; o++) {
    const float *from = x + o * axis * inner;
    float *to = out + o * n * inner;
    if (inner == 1) {
      for (int64_t j = 0; j < n; j++) to[j] = from[indices[j]];
    } else {
      for (int64_t j = 0; j < n; j++) memcpy(to + j * inner, from + (int64_t)indices[j] * inner, (size_t)inner * sizeof(float));
    }
  }
  return -1;
}

/* ---- attention ---- */

typedef struct {
  const float *q, *k, *v, *probs, *dout;
  float *out, *probs_out, *dq, *dk, *dv;
  int64_t h, hkv, t, s, d;
  float scale;
  int failed; /* set by a unit that could not get scratch memory */
} Attention;

/* Masked softmax of each row of p [T, S] in place: row r sees columns 0..start + r. */
static void causal_softmax(float *p, int64_t t, int64_t s) {
  const int64_t start = s - t;
  for (int64_t r = 0; r < t; r++) {
    float *row = p + r * s;
    const int64_t seen = start + r + 1;
    float max = row[0];
    for (int64_t c = 1; c < seen; c++) max = row[c] > max ? row[c] : max;
    float sum = 0.0f;
    for (int64_t c = 0; c < seen; c++) {
      row[c] = exp_approx(row[c] - max);
      sum += row[c];
    }
    const float inv = 1.0f / sum;
    for (int64_t c = 0; c < seen; c++) row[c] *= inv;
    for (int64_t c = seen; c < s; c++) row[c] = 0.0f;
  }
}

/* Units are (batch, query head). */
static void attention_units(void *context, int64_t first, int64_t last) {
  const Attention *a = (const Attention *)context;
  const int64_t rep = a->h / a->hkv;
  for (int64_t u = first; u < last; u++) {
    const int64_t i = u / a->h, j = u % a->h;
    const float *q = a->q + u * a->t * a->d;
    const float *k = a->k + (i * a->hkv + j / rep) * a->s * a->d;
    const float *v = a->v + (i * a->hkv + j / rep) * a->s * a->d;
    float *p = a->probs_out + u * a->t * a->s;
    lorasmith_sgemm(false, true, (int)a->t, (int)a->s, (int)a->d, a->scale, q, (int)a->d, k, (int)a->d, 0.0f, p,
                    (int)a->s);
    causal_softmax(p, a->t, a->s);
    float *o = a->out + i * a->t * a->h * a->d + j * a->d;
    lorasmith_sgemm(false, false, (int)a->t, (int)a->d, (int)a->s, 1.0f, p, (int)a->s, v, (int)a->d, 0.0f, o,
                    (int)(a->h * a->d));
  }
}

/* Units are (batch, kv head): the query heads sharing a kv head add into its dk and dv, so one thread owns them. */
static void attention_grad_units(void *context, int64_t first, int64_t last) {
  Attention *a = (Attention *)context;
  const int64_t rep = a->h / a->hkv;
  const int ld_out = (int)(a->h * a->d);
  float *scratch = (float *)malloc((size_t)(a->t * a->s) * sizeof(float));
  if (scratch == NULL) {
    a->failed = 1;
    return;
  }
  for (int64_t u = first; u < last; u++) {
    const int64_t i = u / a->hkv, g = u % a->hkv;
    const float *k = a->k + u * a->s * a->d;
    const float *v = a->v + u * a->s * a->d;
    float *dk = a->dk + u * a->s * a->d;
    float *dv = a->dv + u * a->s * a->d;
    for (int64_t r = 0; r < rep; r++) {
      const int64_t j = g * rep + r;
      const float *q = a->q + (i * a->h + j) * a->t * a->d;
      const float *p = a->probs + (i * a->h + j) * a->t * a->s;
      const float *dout = a->dout + i * a->t * a->h * a->d + j * a->d;
      float *dq = a->dq + (i * a->h + j) * a->t * a->d;
      const float beta = r == 0 ? 0.0f : 1.0f; /* the first head of the group writes, the others add */
      /* dv += pᵀ·dout */
      lorasmith_sgemm(true, false, (int)a->s, (int)a->d, (int)a->t, 1.0f, p, (int)a->s, dout, ld_out, beta, dv,
                      (int)a->d);
      /* dp = dout·vᵀ, then ds = p ⊙ (dp − Σ_row dp ⊙ p) */
      lorasmith_sgemm(false, true, (int)a->t, (int)a->s, (int)a->d, 1.0f, dout, ld_out, v, (int)a->d, 0.0f, scratch,
                      (int)a->s);
      for (int64_t row = 0; row < a->t; row++) {
        float *ds = scratch + row * a->s;
        const float *pr = p + row * a->s;
        float dot = 0.0f;
        for (int64_t c = 0; c < a->s; c++) dot += ds[c] * pr[c];
        for (int64_t c = 0; c < a->s; c++) ds[c] = pr[c] * (ds[c] - dot);
      }
      /* dq = scale·ds·k; dk += scale·dsᵀ·q */
      lorasmith_sgemm(false, false, (int)a->t, (int)a->d, (int)a->s, a->scale, scratch, (int)a->s, k, (int)a->d, 0.0f,
                      dq, (int)a->d);
      lorasmith_sgemm(true, false, (int)a->s, (int)a->d, (int)a->t, a->scale, scratch, (int)a->s, q, (int)a->d, beta,
                      dk, (int)a->d);
    }
  }
  free(scratch);
}

void lorasmith_attention(const float *q, const float *k, const float *v, float *out, float *probs, int64_t b,
                         int64_t h, int64_t hkv, int64_t t, int64_t s, int64_t d, float scale) {
  Attention a = {q, k, v, NULL, NULL, out, probs, NULL, NULL, NULL, h, hkv, t, s, d, scale, 0};
  lorasmith_blas_serial_begin();
  lorasmith_parallel_for(b * h, threads(), 1, attention_units, &a);
  lorasmith_blas_serial_end();
}

int lorasmith_attention_grad(const float *q, const float *k, const float *v, const float *probs, const float *dout,
                             float *dq, float *dk, float *dv, int64_t b, int64_t h, int64_t hkv, int64_t t, int64_t s,
                             int64_t d, float scale) {
  Attention a = {q, k, v, probs, dout, NULL, NULL, dq, dk, dv, h, hkv, t, s, d, scale, 0};
  lorasmith_blas_serial_begin();
  lorasmith_parallel_for(b * hkv, threads(), 1, attention_grad_units, &a);
  lorasmith_blas_serial_end();
  return !a.failed;
}
