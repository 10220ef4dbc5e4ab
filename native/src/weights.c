#include "weights.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "convert.h"
#include "parallel.h"

/* Floats in each thread's tile buffer (1 MiB): big enough that sgemm runs at speed, small enough for L2/L3. */
#define TILE_FLOATS (1 << 18)
/* Weight values per thread below which a GEMV stays on fewer threads: starting one costs tens of microseconds,
 * about what reading 256 KiB of weights takes. */
#define GEMV_MIN_VALUES_PER_THREAD (1 << 17)
/* Floating-point operations per thread below which a tiled product stays on fewer threads. */
#define SMALL_PRODUCT_FLOPS (4.0 * 1024 * 1024)
/* x rows a GEMV pass carries at once: each weight row is converted once for all of them. */
#define GEMV_GROUP 4

static int64_t live_bytes = 0;

#if defined(_MSC_VER)
#include <windows.h>
static void add_live(int64_t delta) { InterlockedExchangeAdd64(&live_bytes, delta); }
static int64_t read_live(void) { return InterlockedCompareExchange64(&live_bytes, 0, 0); }
#else
static void add_live(int64_t delta) { __atomic_fetch_add(&live_bytes, delta, __ATOMIC_RELAXED); }
static int64_t read_live(void) { return __atomic_load_n(&live_bytes, __ATOMIC_RELAXED); }
#endif

int64_t ls_weight_live_bytes(void) { return read_live(); }

ls_weight *ls_weight_create(ls_format format, int64_t rows, int64_t cols) {
  ls_weight *w = (ls_weight *)calloc(1, sizeof *w);
  if (w == NULL) return NULL;
  w->format = format;
  w->rows = rows;
  w->cols = cols;
  w->blocks = (cols + LS_Q8_BLOCK - 1) / LS_Q8_BLOCK;
  const size_t values = (size_t)(rows * cols);
  const size_t data_bytes = format == LS_Q4_0 ? (size_t)(rows * w->blocks) * LS_Q4_BLOCK_BYTES
                            : values * (format == LS_F32 ? 4 : format == LS_Q8_0 ? 1 : 2);
  const size_t scale_bytes = format == LS_Q8_0 ? (size_t)(rows * w->blocks) * sizeof(uint16_t) : 0;
  w->data = malloc(data_bytes > 0 ? data_bytes : 1);
  w->scales = scale_bytes > 0 ? (uint16_t *)malloc(scale_bytes) : NULL;
  if (w->data == NULL || (scale_bytes > 0 && w->scales == NULL)) {
    free(w->data);
    free(w->scales);
    free(w);
    return NULL;
  }
  w->bytes = data_bytes + scale_bytes;
  add_live((int64_t)w->bytes);
  return w;
}

void ls_weight_free(ls_weight *w) {
  if (w == NULL) return;
  add_live(-(int64_t)w->bytes);
  free(w->data);
  free(w->scales);
  free(w);
}

/* ---- filling ---- */

static void source_row(const void *src, ls_format src_format, int64_t r, int64_t cols, float *out) {
  switch (src_format) {
    case LS_BF16: ls_bf16_to_f32((const uint16_t *)src + r * cols, out, cols); break;
    case LS_F16: ls_f16_to_f32((const uint16_t *)src + r * cols, out, cols); break;
    default: memcpy(out, (const float *)src + r * cols, (size_t)cols * sizeof(float)); break;
  }
}

/* GGUF's quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d), d stored as F16. */
static void quantize_q8_row(const float *x, int64_t cols, int8_t *q, uint16_t *scales) {
  for (int64_t b = 0; b * LS_Q8_BLOCK < cols; b++) {
    const int64_t start = b * LS_Q8_BLOCK;
    const int64_t end = start + LS_Q8_BLOCK < cols ? start + LS_Q8_BLOCK : cols;
    float amax = 0.0f;
    for (int64_t c = start; c < end; c++) amax = fabsf(x[c]) > amax ? fabsf(x[c]) : amax;
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    scales[b] = ls_float_to_half(d);
    for (int64_t c = start; c < end; c++) q[c] = (int8_t)roundf(x[c] * id);
  }
}

/* GGUF's quantize_row_q4_0_ref: per block the value of largest magnitude m (its sign kept), d = m / −8,
 * q = min(15, (int8)(x / d + 8.5)) truncating; the block's first 16 values in the low nibbles. A short last block
 * is quantized as if padded with zeros (they change neither m nor the codes of the values present). */
static void quantize_q4_row(const float *x, int64_t cols, uint8_t *blocks) {
  for (int64_t b = 0; b * LS_Q4_BLOCK < cols; b++) {
    float v[LS_Q4_BLOCK];
    const int64_t start = b * LS_Q4_BLOCK;
    for (int j = 0; j < LS_Q4_BLOCK; j++) v[j] = start + j < cols ? x[start + j] : 0.0f;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < LS_Q4_BLOCK; j++) {
      if (amax < fabsf(v[j])) {
        amax = fabsf(v[j]);
        max = v[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t *block = blocks + b * LS_Q4_BLOCK_BYTES;
    const uint16_t h = ls_float_to_half(d);
    block[0] = (uint8_t)(h & 0xff); /* little-endian, as in the file */
    block[1] = (uint8_t)(h >> 8);
    for (int j = 0; j < LS_Q4_BLOCK / 2; j++) {
      const float x0 = v[j] * id, x1 = v[j + LS_Q4_BLOCK / 2] * id;
      const int8_t q0 = (int8_t)(x0 + 8.5f), q1 = (int8_t)(x1 + 8.5f);
      const uint8_t c0 = (uint8_t)(q0 < 15 ? q0 : 15), c1 = (uint8_t)(q1 < 15 ? q1 : 15);
      block[2 + j] = (uint8_t)(c0 | (uint8_t)(c1 << 4));
    }
  }
}

static size_t element_bytes(ls_format format) { return format == LS_F32 ? 4 : format == LS_Q8_0 ? 1 : 2; }

int64_t ls_weight_row_bytes(const ls_weight *w) {
  switch (w->format) {
    case LS_Q4_0: return w->blocks * LS_Q4_BLOCK_BYTES;
    case LS_Q8_0: return w->blocks * 2 + w->blocks * LS_Q8_BLOCK;
    default: return w->cols * (int64_t)element_bytes(w->format);
  }
}

void ls_weight_fill(ls_weight *w, int64_t row0, int64_t nrows, const void *src, ls_format src_format) {
  const int64_t cols = w->cols;
  if (w->format == src_format && w->format != LS_Q8_0) {
    const int64_t row_bytes = ls_weight_row_bytes(w);
    memcpy((char *)w->data + (size_t)(row0 * row_bytes), src, (size_t)(nrows * row_bytes));
    return;
  }
  if (src_format == LS_Q4_0) return; /* only into a Q4_0 weight, copied above (the addon refuses the rest) */
  float *row = (float *)malloc((size_t)cols * sizeof(float) + 1);
  if (row == NULL) return; /* callers check the addon's allocation before; a row buffer is a few KiB */
  for (int64_t r = 0; r < nrows; r++) {
    source_row(src, src_format, r, cols, row);
    const int64_t at = (row0 + r) * cols;
    switch (w->format) {
      case LS_F32: memcpy((float *)w->data + at, row, (size_t)cols * sizeof(float)); break;
      case LS_BF16: for (int64_t c = 0; c < cols; c++) ((uint16_t *)w->data)[at + c] = ls_float_to_bf16(row[c]); break;
      case LS_F16: for (int64_t c = 0; c < cols; c++) ((uint16_t *)w->data)[at + c] = ls_float_to_half(row[c]); break;
      case LS_Q8_0: quantize_q8_row(row, cols, (int8_t *)w->data + at, w->scales + (row0 + r) * w->blocks); break;
      case LS_Q4_0: quantize_q4_row(row, cols, (uint8_t *)w->data + (row0 + r) * ls_weight_row_bytes(w)); break;
    }
  }
  free(row);
}

void ls_weight_read(const ls_weight *w, int64_t row0, int64_t nrows, uint8_t *out) {
  const int64_t row_bytes = ls_weight_row_bytes(w);
  if (w->format != LS_Q8_0) {
    memcpy(out, (const char *)w->data + (size_t)(row0 * row_bytes), (size_t)(nrows * row_bytes));
    return;
  }
  /* Q8_0 keeps q and the scales apart; GGUF's block is the scale then 32 int8 (a short last block zero-padded). */
  memset(out, 0, (size_t)(nrows * row_bytes));
  for (int64_t r = 0; r < nrows; r++) {
    const int8_t *q = (const int8_t *)w->data + (row0 + r) * w->cols;
    for (int64_t b = 0; b < w->blocks; b++) {
      uint8_t *block = out + r * row_bytes + b * (2 + LS_Q8_BLOCK);
      const uint16_t h = w->scales[(row0 + r) * w->blocks + b];
      block[0] = (uint8_t)(h & 0xff);
      block[1] = (uint8_t)(h >> 8);
      const int64_t n = w->cols - b * LS_Q8_BLOCK < LS_Q8_BLOCK ? w->cols - b * LS_Q8_BLOCK : LS_Q8_BLOCK;
      memcpy(block + 2, q + b * LS_Q8_BLOCK, (size_t)n);
    }
  }
}

/* ---- reading ---- */

void ls_weight_dequantize(const ls_weight *w, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols, float *out,
                          int64_t ld) {
  for (int64_t r = 0; r < nrows; r++) {
    const int64_t at = (row0 + r) * w->cols + col0;
    float *o = out + r * ld;
    switch (w->format) {
      case LS_F32: memcpy(o, (const float *)w->data + at, (size_t)ncols * sizeof(float)); break;
      case LS_BF16: ls_bf16_to_f32((const uint16_t *)w->data + at, o, ncols); break;
      case LS_F16: ls_f16_to_f32((const uint16_t *)w->data + at, o, ncols); break;
      case LS_Q8_0:
        ls_q8_to_f32((const int8_t *)w->data + (row0 + r) * w->cols, w->scales + (row0 + r) * w->blocks, col0, ncols, o);
        break;
      case LS_Q4_0:
        ls_q4_to_f32((const uint8_t *)w->data + (row0 + r) * w->blocks * LS_Q4_BLOCK_BYTES, col0, ncols, o);
        break;
    }
  }
}

int64_t ls_weight_gather(const ls_weight *w, const int32_t *ids, float *out, int64_t n) {
  for (int64_t j = 0; j < n; j++) {
    if (ids[j] < 0 || ids[j] >= w->rows) return j;
  }
  for (int64_t j = 0; j < n; j++) ls_weight_dequantize(w, ids[j], 1, 0, w->cols, out + j * w->cols, w->cols);
  return -1;
}

/* ---- GEMV: a few rows of x against every weight row, converting in registers ---- */

typedef struct {
  const ls_weight *w;
  const float *x, *dy;
  float *out, *dx;
  int64_t n, tile;
  int failed;
} Product;

static void gemv_rows(void *context, int64_t first, int64_t last) {
  const Product *p = (const Product *)context;
  const ls_weight *w = p->w;
  for (int64_t i0 = 0; i0 < p->n; i0 += GEMV_GROUP) {
    const int nx = (int)(p->n - i0 < GEMV_GROUP ? p->n - i0 : GEMV_GROUP);
    const float *xs[GEMV_GROUP];
    for (int i = 0; i < nx; i++) xs[i] = p->x + (i0 + i) * w->cols;
    float result[GEMV_GROUP];
    for (int64_t r = first; r < last; r++) {
      ls_dot_row(w, r, xs, nx, result);
      for (int i = 0; i < nx; i++) p->out[(i0 + i) * w->rows + r] = result[i];
    }
  }
}

/* ---- tiled sgemm: tiles of W converted into a per-thread buffer ---- */

/* Output-row tiles [first, last): out[:, tile] = x · tileᵀ. */
static void forward_tiles(void *context, int64_t first, int64_t last) {
  Product *p = (Product *)context;
  const ls_weight *w = p->w;
  float *buffer = (float *)malloc((size_t)(p->tile * w->cols) * sizeof(float));
  if (buffer == NULL) {
    p->failed = 1;
    return;
  }
  for (int64_t t = first; t < last; t++) {
    const int64_t r0 = t * p->tile;
    const int64_t nr = r0 + p->tile <= w->rows ? p->tile : w->rows - r0;
    ls_weight_dequantize(w, r0, nr, 0, w->cols, buffer, w->cols);
    lorasmith_sgemm(false, true, (int)p->n, (int)nr, (int)w->cols, 1.0f, p->x, (int)w->cols, buffer, (int)w->cols,
                    0.0f, p->out + r0, (int)w->rows);
  }
  free(buffer);
}

/* Column chunks [first, last) of dx (p->tile columns each): dx[:, chunk] = Σ_row tiles dy[:, tile] · W[tile, chunk]. */
static void backward_columns(void *context, int64_t first, int64_t last) {
  Product *p = (Product *)context;
  const ls_weight *w = p->w;
  const int64_t c0 = first * p->tile;
  const int64_t c1 = last * p->tile < w->cols ? last * p->tile : w->cols;
  const int64_t nc = c1 - c0;
  if (nc <= 0) return;
  int64_t tile_rows = TILE_FLOATS / nc;
  if (tile_rows < 16) tile_rows = 16;
  if (tile_rows > w->rows) tile_rows = w->rows;
  float *buffer = (float *)malloc((size_t)(tile_rows * nc) * sizeof(float));
  if (buffer == NULL) {
    p->failed = 1;
    return;
  }
  for (int64_t r0 = 0; r0 < w->rows; r0 += tile_rows) {
    const int64_t nr = r0 + tile_rows <= w->rows ? tile_rows : w->rows - r0;
    ls_weight_dequantize(w, r0, nr, c0, nc, buffer, nc);
    lorasmith_sgemm(false, false, (int)p->n, (int)nc, (int)nr, 1.0f, p->dy + r0, (int)w->rows, buffer, (int)nc,
                    r0 == 0 ? 0.0f : 1.0f, p->dx + c0, (int)w->cols);
  }
  free(buffer);
}

static int64_t round_up(int64_t value, int64_t unit) { return (value + unit - 1) / unit * unit; }

int ls_weight_matmul(const ls_weight *w, const float *x, float *out, int64_t n, int gemv, int threads) {
  if (n == 0 || w->rows == 0) return 1;
  if (w->cols == 0) {
    memset(out, 0, (size_t)(n * w->rows) * sizeof(float));
    return 1;
  }
  Product p = {w, x, NULL, out, NULL, n, 0, 0};
  if (gemv) {
    lorasmith_parallel_for(w->rows, threads, GEMV_MIN_VALUES_PER_THREAD / w->cols + 1, gemv_rows, &p);
    return 1;
  }
  /* Tiles small enough for the buffer, and one per thread so layers split, but only as many threads as have
   * a few MFLOP each (below that, starting a thread costs more than it saves). */
  const double flops = 2.0 * (double)n * (double)w->rows * (double)w->cols;
  const int64_t useful = (int64_t)(flops / SMALL_PRODUCT_FLOPS) + 1;
  if (threads > useful) threads = (int)useful;
  int64_t tile = TILE_FLOATS / w->cols;
  const int64_t per_thread = round_up((w->rows + threads - 1) / threads, 8);
  if (tile > per_thread) tile = per_thread;
  if (tile < 8) tile = 8;
  p.tile = tile;
  lorasmith_blas_serial_begin();
  lorasmith_parallel_for((w->rows + tile - 1) / tile, threads, 1, forward_tiles, &p);
  lorasmith_blas_serial_end();
  return !p.failed;
}

int ls_weight_matmul_t(const ls_weight *w, const float *dy, float *dx, int64_t n, int threads) {
  if (n == 0 || w->cols == 0) return 1;
  if (w->rows == 0) {
    memset(dx, 0, (size_t)(n * w->cols) * sizeof(float));
    return 1;
  }
  Product p = {w, NULL, dy, NULL, dx, n, 0, 0};
  const double flops = 2.0 * (double)n * (double)w->rows * (double)w->cols;
  const int64_t useful = (int64_t)(flops / SMALL_PRODUCT_FLOPS) + 1;
  if (threads > useful) threads = (int)useful;
  /* Column chunks of whole Q8_0 / Q4_0 blocks, one per thread. */
  p.tile = round_up((w->cols + threads - 1) / threads, LS_Q8_BLOCK);
  lorasmith_blas_serial_begin();
  lorasmith_parallel_for((w->cols + p.tile - 1) / p.tile, threads, 1, backward_columns, &p);
  lorasmith_blas_serial_end();
  return !p.failed;
}
