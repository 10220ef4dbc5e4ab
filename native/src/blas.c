#include "blas.h"

#include <stdlib.h>

#if defined(LORASMITH_ACCELERATE)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

#include "parallel.h"

/*
 * Below this many flops per matrix, BLAS's own threading costs more than it gains (the attention products
 * [48 × 128×128×64] ran 4× slower on 2 threads than on 1 here): such matrices run single-threaded, and a batch of
 * them is split across our own threads instead.
 */
#define SMALL_GEMM_FLOPS (16.0 * 1024 * 1024)

static int configured_threads = 1;

#if defined(LORASMITH_ACCELERATE)
/* Accelerate sizes its own thread pool; the count only steers the batch split below. */
static void set_blas_threads(int threads) { (void)threads; }
const char *lorasmith_blas_name(void) { return "Accelerate"; }
const char *lorasmith_blas_config(void) { return "Apple Accelerate (vecLib)"; }
#else
static void set_blas_threads(int threads) { openblas_set_num_threads(threads); }
const char *lorasmith_blas_name(void) { return "OpenBLAS"; }
const char *lorasmith_blas_config(void) { return openblas_get_config(); }
#endif

void lorasmith_blas_set_threads(int threads) {
  configured_threads = threads < 1 ? 1 : threads;
  set_blas_threads(configured_threads);
}

int lorasmith_blas_get_threads(void) { return configured_threads; }

void lorasmith_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha,
              a, lda, b, ldb, beta, c, ldc);
}

void lorasmith_blas_serial_begin(void) { set_blas_threads(1); }
void lorasmith_blas_serial_end(void) { set_blas_threads(configured_threads); }

typedef struct {
  bool trans_a, trans_b;
  int m, n, k;
  const float *a, *b;
  float *c;
  int64_t stride_a, stride_b, stride_c;
} Gemm;

/* Batch items [first, last) of one batched product. */
static void gemm_items(void *context, int64_t first, int64_t last) {
  const Gemm *g = (const Gemm *)context;
  /* Row-major leading dimensions: the stored row length of each operand. */
  const int lda = g->trans_a ? g->m : g->k;
  const int ldb = g->trans_b ? g->k : g->n;
  const enum CBLAS_TRANSPOSE op_a = g->trans_a ? CblasTrans : CblasNoTrans;
  const enum CBLAS_TRANSPOSE op_b = g->trans_b ? CblasTrans : CblasNoTrans;
  for (int64_t i = first; i < last; i++) {
    cblas_sgemm(CblasRowMajor, op_a, op_b, g->m, g->n, g->k, 1.0f, g->a + i * g->stride_a, lda,
                g->b + i * g->stride_b, ldb, 0.0f, g->c + i * g->stride_c, g->n);
  }
}

void lorasmith_sgemm_batched(bool trans_a, bool trans_b, int batch, int m, int n, int k, const float *a,
                             int64_t stride_a, const float *b, int64_t stride_b, float *c, int64_t stride_c) {
  Gemm g = {trans_a, trans_b, m, n, k, a, b, c, stride_a, stride_b, stride_c};
  const double flops = 2.0 * m * n * k;
  if (configured_threads == 1 || flops >= SMALL_GEMM_FLOPS) {
    gemm_items(&g, 0, batch);
    return;
  }
  set_blas_threads(1);
  lorasmith_parallel_for(batch, configured_threads, 1, gemm_items, &g);
  set_blas_threads(configured_threads);
}
