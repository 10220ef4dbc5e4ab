#include "convert.h"

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define LS_HAVE_AVX2_PATH 1
#include <immintrin.h>
#define LS_AVX2 __attribute__((target("avx2,fma,f16c")))
#define LS_INLINE static inline __attribute__((always_inline))
#endif

/* Values a portable dot product converts at a time (on the stack). */
#define PORTABLE_CHUNK 256

static int force_portable = 0;
static int avx2_supported = -1;

static int use_avx2(void) {
#if defined(LS_HAVE_AVX2_PATH)
  if (avx2_supported < 0) {
    avx2_supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }
  return avx2_supported && !force_portable;
#else
  return 0;
#endif
}

const char *ls_weight_kernels(void) { return use_avx2() ? "avx2" : "portable"; }

int ls_weight_force_portable(int portable) {
  const int previous = force_portable;
  force_portable = portable;
  return previous;
}

/* ---- portable C ---- */

static void bf16_portable(const uint16_t *src, float *out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = ls_bf16_to_float(src[i]);
}

static void f16_portable(const uint16_t *src, float *out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = ls_half_to_float(src[i]);
}

static void q8_portable(const int8_t *q, const uint16_t *scales, int64_t col0, int64_t n, float *out) {
  for (int64_t c = col0; c < col0 + n;) {
    const int64_t block = c / LS_Q8_BLOCK;
    const int64_t end = (block + 1) * LS_Q8_BLOCK < col0 + n ? (block + 1) * LS_Q8_BLOCK : col0 + n;
    const float d = ls_half_to_float(scales[block]);
    for (; c < end; c++) out[c - col0] = d * (float)q[c];
  }
}

/* Value j (0..31) of a Q4_0 block: low nibbles hold the first 16, high nibbles the last 16. */
static inline float q4_value(const uint8_t *block, float d, int j) {
  const uint8_t byte = block[2 + (j & 15)];
  return d * (float)((j < 16 ? byte & 0x0f : byte >> 4) - 8);
}

static inline float q4_scale(const uint8_t *block) { return ls_half_to_float((uint16_t)(block[0] | block[1] << 8)); }

static void q4_portable(const uint8_t *blocks, int64_t col0, int64_t n, float *out) {
  for (int64_t c = col0; c < col0 + n;) {
    const int64_t b = c / LS_Q4_BLOCK;
    const int64_t end = (b + 1) * LS_Q4_BLOCK < col0 + n ? (b + 1) * LS_Q4_BLOCK : col0 + n;
    const uint8_t *block = blocks + b * LS_Q4_BLOCK_BYTES;
    const float d = q4_scale(block);
    for (; c < end; c++) out[c - col0] = q4_value(block, d, (int)(c - b * LS_Q4_BLOCK));
  }
}

static void row_portable(const ls_weight *w, int64_t r, int64_t col0, int64_t n, float *out) {
  const int64_t at = r * w->cols + col0;
  switch (w->format) {
    case LS_F32: memcpy(out, (const float *)w->data + at, (size_t)n * sizeof(float)); break;
    case LS_BF16: bf16_portable((const uint16_t *)w->data + at, out, n); break;
    case LS_F16: f16_portable((const uint16_t *)w->data + at, out, n); break;
    case LS_Q8_0: q8_portable((const int8_t *)w->data + r * w->cols, w->scales + r * w->blocks, col0, n, out); break;
    case LS_Q4_0: q4_portable((const uint8_t *)w->data + r * w->blocks * LS_Q4_BLOCK_BYTES, col0, n, out); break;
  }
}

static void dot_portable(const ls_weight *w, int64_t r, const float *const *xs, int nx, float *result) {
  float chunk[PORTABLE_CHUNK];
  for (int i = 0; i < nx; i++) result[i] = 0.0f;
  for (int64_t c0 = 0; c0 < w->cols; c0 += PORTABLE_CHUNK) {
    const int64_t n = w->cols - c0 < PORTABLE_CHUNK ? w->cols - c0 : PORTABLE_CHUNK;
    row_portable(w, r, c0, n, chunk);
    for (int i = 0; i < nx; i++) {
      const float *x = xs[i] + c0;
      float sum = 0.0f;
      for (int64_t c = 0; c < n; c++) sum += chunk[c] * x[c];
      result[i] += sum;
    }
  }
}

/* ---- AVX2 / FMA / F16C ---- */

#if defined(LS_HAVE_AVX2_PATH)

LS_AVX2 LS_INLINE __m256 load8_bf16(const uint16_t *p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

LS_AVX2 LS_INLINE __m256 load8_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

LS_AVX2 LS_INLINE __m256 load8_q8(const int8_t *p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

/* A Q4_0 block's 32 codes minus 8 as float32, in order: v[0] values 0-7 ... v[3] values 24-31. */
LS_AVX2 LS_INLINE void load32_q4(const uint8_t *block, __m256 v[4]) {
  const __m128i bytes = _mm_loadu_si128((const __m128i *)(block + 2));
  const __m128i mask = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
  const __m128i low = _mm_sub_epi8(_mm_and_si128(bytes, mask), eight);
  const __m128i high = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), eight);
  v[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(low));
  v[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(low, 8)));
  v[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(high));
  v[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(high, 8)));
}

LS_AVX2 LS_INLINE float q4_scale_avx2(const uint8_t *block) { return _cvtsh_ss((unsigned short)(block[0] | block[1] << 8)); }

LS_AVX2 LS_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_hadd_ps(s, s);
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(s);
}

LS_AVX2 static void bf16_avx2(const uint16_t *src, float *out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8_bf16(src + i));
  for (; i < n; i++) out[i] = ls_bf16_to_float(src[i]);
}

LS_AVX2 static void f16_avx2(const uint16_t *src, float *out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8_f16(src + i));
  for (; i < n; i++) out[i] = ls_half_to_float(src[i]);
}

LS_AVX2 static void q8_avx2(const int8_t *q, const uint16_t *scales, int64_t col0, int64_t n, float *out) {
  for (int64_t c = col0; c < col0 + n;) {
    const int64_t block = c / LS_Q8_BLOCK;
    const int64_t end = (block + 1) * LS_Q8_BLOCK < col0 + n ? (block + 1) * LS_Q8_BLOCK : col0 + n;
    const float d = _cvtsh_ss(scales[block]);
    const __m256 dv = _mm256_set1_ps(d);
    for (; c + 8 <= end; c += 8) _mm256_storeu_ps(out + (c - col0), _mm256_mul_ps(dv, load8_q8(q + c)));
    for (; c < end; c++) out[c - col0] = d * (float)q[c];
  }
}

LS_AVX2 static void q4_avx2(const uint8_t *blocks, int64_t col0, int64_t n, float *out) {
  for (int64_t c = col0; c < col0 + n;) {
    const int64_t b = c / LS_Q4_BLOCK;
    const uint8_t *block = blocks + b * LS_Q4_BLOCK_BYTES;
    const float d = q4_scale_avx2(block);
    if (c == b * LS_Q4_BLOCK && c + LS_Q4_BLOCK <= col0 + n) {
      __m256 v[4];
      load32_q4(block, v);
      const __m256 dv = _mm256_set1_ps(d);
      for (int k = 0; k < 4; k++) _mm256_storeu_ps(out + (c - col0) + 8 * k, _mm256_mul_ps(dv, v[k]));
      c += LS_Q4_BLOCK;
      continue;
    }
    const int64_t end = (b + 1) * LS_Q4_BLOCK < col0 + n ? (b + 1) * LS_Q4_BLOCK : col0 + n;
    for (; c < end; c++) out[c - col0] = q4_value(block, d, (int)(c - b * LS_Q4_BLOCK));
  }
}

LS_AVX2 LS_INLINE __m256 load8_weight(ls_format format, const void *row, int64_t c) {
  switch (format) {
    case LS_BF16: return load8_bf16((const uint16_t *)row + c);
    case LS_F16: return load8_f16((const uint16_t *)row + c);
    default: return _mm256_loadu_ps((const float *)row + c);
  }
}

LS_AVX2 LS_INLINE float weight_at(ls_format format, const void *row, int64_t c) {
  switch (format) {
    case LS_BF16: return ls_bf16_to_float(((const uint16_t *)row)[c]);
    case LS_F16: return ls_half_to_float(((const uint16_t *)row)[c]);
    default: return ((const float *)row)[c];
  }
}

/* F32/BF16/F16 rows: two accumulators per x row so the FMA chains overlap. `format` and `nx` are constants at
 * each call site, so the loops unroll into straight code. */
LS_AVX2 LS_INLINE void dot_plain(ls_format format, const void *row, int64_t cols, const float *const *xs, int nx,
                                 float *result) {
  __m256 a0[4], a1[4];
  for (int i = 0; i < 4; i++) a0[i] = a1[i] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 16 <= cols; c += 16) {
    const __m256 w0 = load8_weight(format, row, c), w1 = load8_weight(format, row, c + 8);
    for (int i = 0; i < nx; i++) {
      a0[i] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xs[i] + c), a0[i]);
      a1[i] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xs[i] + c + 8), a1[i]);
    }
  }
  for (; c + 8 <= cols; c += 8) {
    const __m256 w0 = load8_weight(format, row, c);
    for (int i = 0; i < nx; i++) a0[i] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xs[i] + c), a0[i]);
  }
  for (int i = 0; i < nx; i++) {
    float sum = hsum(_mm256_add_ps(a0[i], a1[i]));
    for (int64_t t = c; t < cols; t++) sum += weight_at(format, row, t) * xs[i][t];
    result[i] = sum;
  }
}

/* Q8_0 rows: each block's four 8-lane products summed, then scaled once by the block's d. */
LS_AVX2 LS_INLINE void dot_q8(const int8_t *q, const uint16_t *scales, int64_t cols, const float *const *xs, int nx,
                              float *result) {
  __m256 acc[4];
  float tail[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int i = 0; i < 4; i++) acc[i] = _mm256_setzero_ps();
  const int64_t full = cols / LS_Q8_BLOCK;
  for (int64_t b = 0; b < full; b++) {
    const int8_t *qb = q + b * LS_Q8_BLOCK;
    const __m256 w0 = load8_q8(qb), w1 = load8_q8(qb + 8), w2 = load8_q8(qb + 16), w3 = load8_q8(qb + 24);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(scales[b]));
    for (int i = 0; i < nx; i++) {
      const float *x = xs[i] + b * LS_Q8_BLOCK;
      __m256 s = _mm256_mul_ps(w0, _mm256_loadu_ps(x));
      s = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), s);
      s = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x + 16), s);
      s = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x + 24), s);
      acc[i] = _mm256_fmadd_ps(d, s, acc[i]);
    }
  }
  if (full * LS_Q8_BLOCK < cols) {
    const float d = _cvtsh_ss(scales[full]);
    for (int i = 0; i < nx; i++) {
      for (int64_t c = full * LS_Q8_BLOCK; c < cols; c++) tail[i] += d * (float)q[c] * xs[i][c];
    }
  }
  for (int i = 0; i < nx; i++) result[i] = hsum(acc[i]) + tail[i];
}

/* Q4_0 rows: as Q8_0, each block's 32 products summed and scaled once by its d; a short last block adds only the
 * values the row has. */
LS_AVX2 LS_INLINE void dot_q4(const uint8_t *blocks, int64_t cols, const float *const *xs, int nx, float *result) {
  __m256 acc[4];
  float tail[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int i = 0; i < 4; i++) acc[i] = _mm256_setzero_ps();
  const int64_t full = cols / LS_Q4_BLOCK;
  for (int64_t b = 0; b < full; b++) {
    const uint8_t *block = blocks + b * LS_Q4_BLOCK_BYTES;
    __m256 w[4];
    load32_q4(block, w);
    const __m256 d = _mm256_set1_ps(q4_scale_avx2(block));
    for (int i = 0; i < nx; i++) {
      const float *x = xs[i] + b * LS_Q4_BLOCK;
      __m256 s = _mm256_mul_ps(w[0], _mm256_loadu_ps(x));
      s = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(x + 8), s);
      s = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(x + 16), s);
      s = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(x + 24), s);
      acc[i] = _mm256_fmadd_ps(d, s, acc[i]);
    }
  }
  if (full * LS_Q4_BLOCK < cols) {
    const uint8_t *block = blocks + full * LS_Q4_BLOCK_BYTES;
    const float d = q4_scale_avx2(block);
    for (int i = 0; i < nx; i++) {
      for (int64_t c = full * LS_Q4_BLOCK; c < cols; c++) tail[i] += q4_value(block, d, (int)(c - full * LS_Q4_BLOCK)) * xs[i][c];
    }
  }
  for (int i = 0; i < nx; i++) result[i] = hsum(acc[i]) + tail[i];
}

#define BY_NX(CALL)   \
  switch (nx) {       \
    case 1: CALL(1); break; \
    case 2: CALL(2); break; \
    case 3: CALL(3); break; \
    default: CALL(4); break; \
  }

LS_AVX2 static void dot_avx2(const ls_weight *w, int64_t r, const float *const *xs, int nx, float *result) {
  const int64_t cols = w->cols;
  switch (w->format) {
    case LS_Q8_0: {
      const int8_t *q = (const int8_t *)w->data + r * cols;
      const uint16_t *scales = w->scales + r * w->blocks;
#define Q8(N) dot_q8(q, scales, cols, xs, N, result)
      BY_NX(Q8)
#undef Q8
      break;
    }
    case LS_Q4_0: {
      const uint8_t *blocks = (const uint8_t *)w->data + r * w->blocks * LS_Q4_BLOCK_BYTES;
#define Q4(N) dot_q4(blocks, cols, xs, N, result)
      BY_NX(Q4)
#undef Q4
      break;
    }
    case LS_BF16: {
      const uint16_t *row = (const uint16_t *)w->data + r * cols;
#define BF16(N) dot_plain(LS_BF16, row, cols, xs, N, result)
      BY_NX(BF16)
#undef BF16
      break;
    }
    case LS_F16: {
      const uint16_t *row = (const uint16_t *)w->data + r * cols;
#define F16(N) dot_plain(LS_F16, row, cols, xs, N, result)
      BY_NX(F16)
#undef F16
      break;
    }
    case LS_F32: {
      const float *row = (const float *)w->data + r * cols;
#define F32(N) dot_plain(LS_F32, row, cols, xs, N, result)
      BY_NX(F32)
#undef F32
      break;
    }
  }
}

#endif /* LS_HAVE_AVX2_PATH */

/* ---- dispatch ---- */

void ls_bf16_to_f32(const uint16_t *src, float *out, int64_t n) {
#if defined(LS_HAVE_AVX2_PATH)
  if (use_avx2()) {
    bf16_avx2(src, out, n);
    return;
  }
#endif
  bf16_portable(src, out, n);
}

void ls_f16_to_f32(const uint16_t *src, float *out, int64_t n) {
#if defined(LS_HAVE_AVX2_PATH)
  if (use_avx2()) {
    f16_avx2(src, out, n);
    return;
  }
#endif
  f16_portable(src, out, n);
}

void ls_q8_to_f32(const int8_t *q, const uint16_t *scales, int64_t col0, int64_t n, float *out) {
#if defined(LS_HAVE_AVX2_PATH)
  if (use_avx2()) {
    q8_avx2(q, scales, col0, n, out);
    return;
  }
#endif
  q8_portable(q, scales, col0, n, out);
}

void ls_q4_to_f32(const uint8_t *blocks, int64_t col0, int64_t n, float *out) {
#if defined(LS_HAVE_AVX2_PATH)
  if (use_avx2()) {
    q4_avx2(blocks, col0, n, out);
    return;
  }
#endif
  q4_portable(blocks, col0, n, out);
}

void ls_dot_row(const ls_weight *w, int64_t r, const float *const *xs, int nx, float *result) {
#if defined(LS_HAVE_AVX2_PATH)
  if (use_avx2()) {
    dot_avx2(w, r, xs, nx, result);
    return;
  }
#endif
  dot_portable(w, r, xs, nx, result);
}
