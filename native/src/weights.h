/*
 * Frozen weights held outside the tensors' memory, at their stored precision or smaller, and the products that
 * read them converting on the fly. A weight is nn.Linear's W [rows = out, cols = in], row-major, in one format:
 *
 *   F32    float                       4 bytes a value
 *   BF16   bfloat16 (top half of F32)  2 bytes
 *   F16    IEEE half                   2 bytes
 *   Q8_0   per row, blocks of 32 values: int8 q and one F16 scale d, value = d·q (GGUF's Q8_0, 1.0625 bytes);
 *          a row whose length is not a multiple of 32 ends in a shorter block; q and the scales are kept apart
 *   Q4_0   per row, GGUF's block_q4_0 exactly, 18 bytes per 32 values (0.5625 bytes a value): the F16 scale d,
 *          then 16 bytes of 4-bit codes q (low nibbles the block's first 16 values, high nibbles the last 16),
 *          value = d·(q − 8); a row whose length is not a multiple of 32 ends in a block padded with zeros
 *
 * No float32 copy of a whole weight is ever made: many-row products convert tiles of W into a per-thread buffer
 * and run sgemm on them; one to a few rows (decoding) run a GEMV that converts in registers (AVX2/F16C when the
 * CPU has them, checked at run time, portable C otherwise).
 */
#ifndef LORASMITH_WEIGHTS_H
#define LORASMITH_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { LS_F32 = 0, LS_BF16 = 1, LS_F16 = 2, LS_Q8_0 = 3, LS_Q4_0 = 4 } ls_format;

#define LS_Q8_BLOCK 32
#define LS_Q4_BLOCK 32
/* Bytes of one Q4_0 block: the F16 scale and 16 bytes of codes. */
#define LS_Q4_BLOCK_BYTES 18

typedef struct {
  ls_format format;
  int64_t rows, cols;
  int64_t blocks;    /* Q8_0, Q4_0: blocks per row, ceil(cols / 32) */
  void *data;        /* F32 float[rows·cols]; BF16/F16 uint16[rows·cols]; Q8_0 int8[rows·cols];
                        Q4_0 uint8[rows·blocks·18] */
  uint16_t *scales;  /* Q8_0: F16 [rows·blocks] */
  size_t bytes;
} ls_weight;

/* A weight of rows × cols in `format`, contents undefined; NULL when out of memory. */
ls_weight *ls_weight_create(ls_format format, int64_t rows, int64_t cols);
void ls_weight_free(ls_weight *w);
/* Bytes held by every weight not yet freed. */
int64_t ls_weight_live_bytes(void);

/* Rows [row0, row0 + nrows) from `src` ([nrows, cols] in src_format: F32, BF16 or F16), converted to w's format
 * (to BF16/F16 rounding to nearest even; to Q8_0 and Q4_0 as GGUF's reference quantizers), or Q4_0 blocks
 * ([nrows, blocks] of 18 bytes) copied as they are into a Q4_0 weight. */
void ls_weight_fill(ls_weight *w, int64_t row0, int64_t nrows, const void *src, ls_format src_format);
/* Bytes one row of w takes in GGUF's layout of its format (Q8_0: blocks of the F16 scale then 32 int8). */
int64_t ls_weight_row_bytes(const ls_weight *w);
/* Rows [row0, row0 + nrows) in GGUF's layout of w's format into out (nrows · ls_weight_row_bytes bytes). */
void ls_weight_read(const ls_weight *w, int64_t row0, int64_t nrows, uint8_t *out);

/* W[row0 : row0 + nrows, col0 : col0 + ncols] as float32 into out, rows `ld` floats apart. */
void ls_weight_dequantize(const ls_weight *w, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols, float *out,
                          int64_t ld);

/* out [n, rows] = x [n, cols] · Wᵀ. `gemv` picks the in-register kernel (for a few rows) over tiled sgemm.
 * Returns 0 when out of memory for the tile buffers (nothing useful written). */
int ls_weight_matmul(const ls_weight *w, const float *x, float *out, int64_t n, int gemv, int threads);
/* dx [n, cols] = dy [n, rows] · W (the gradient of the product above for x; W gets none). Returns 0 when out of
 * memory. */
int ls_weight_matmul_t(const ls_weight *w, const float *dy, float *dx, int64_t n, int threads);
/* out [n, cols] = rows ids[j] of W. Returns -1, or the position of the first id outside [0, rows). */
int64_t ls_weight_gather(const ls_weight *w, const int32_t *ids, float *out, int64_t n);

/* "avx2" when the converting kernels use AVX2/FMA/F16C, "portable" otherwise. */
const char *ls_weight_kernels(void);
/* Forces the portable kernels (tests compare both paths); returns the previous setting. */
int ls_weight_force_portable(int portable);

#endif
