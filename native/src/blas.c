#include "blas.h"

#include <stdlib.h>

#if defined(LORASMITH_ACCELERATE)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

#if !defined(_WIN32)
#include <pthread.h>
#define LORASMITH_HAVE_PTHREADS 1
#endif

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

typedef struct {
  bool trans_a, trans_b;
  int first, last, m, n, k;
  const float *a, *b;
  float *c;
  int64_t stride_a, stride_b, stride_c;
} GemmRange;

static void gemm_range(const GemmRange *r) {
  /* Row-major leading dimensions: the stored row length of each operand. */
  const int lda = r->trans_a ? r->m : r->k;
  const int ldb = r->trans_b ? r->k : r->n;
  const enum CBLAS_TRANSPOSE op_a = r->trans_a ? CblasTrans : CblasNoTrans;
  const enum CBLAS_TRANSPOSE op_b = r->trans_b ? CblasTrans : CblasNoTrans;
  for (int i = r->first; i < r->last; i++) {
    cblas_sgemm(CblasRowMajor, op_a, op_b, r->m, r->n, r->k, 1.0f, r->a + i * r->stride_a, lda,
                r->b + i * r->stride_b, ldb, 0.0f, r->c + i * r->stride_c, r->n);
  }
}

#if defined(LORASMITH_HAVE_PTHREADS)
static void *gemm_range_thread(void *arg) {
  gemm_range((const GemmRange *)arg);
  return NULL;
}

/* Splits the batch into `workers` contiguous ranges; this thread runs the first. */
static void gemm_split(const GemmRange *whole, int workers) {
  GemmRange ranges[64];
  pthread_t threads[64];
  bool started[64] = {false};
  if (workers > 64) workers = 64;
  const int batch = whole->last;
  for (int w = 0; w < workers; w++) {
    ranges[w] = *whole;
    ranges[w].first = (int)((int64_t)batch * w / workers);
    ranges[w].last = (int)((int64_t)batch * (w + 1) / workers);
  }
  for (int w = 1; w < workers; w++) {
    started[w] = pthread_create(&threads[w], NULL, gemm_range_thread, &ranges[w]) == 0;
    if (!started[w]) gemm_range(&ranges[w]); /* could not start: do that range here */
  }
  gemm_range(&ranges[0]);
  for (int w = 1; w < workers; w++) {
    if (started[w]) pthread_join(threads[w], NULL);
  }
}
#endif

void lorasmith_sgemm_batched(bool trans_a, bool trans_b, int batch, int m, int n, int k, const float *a,
                             int64_t stride_a, const float *b, int64_t stride_b, float *c, int64_t stride_c) {
  GemmRange whole = {trans_a, trans_b, 0, batch, m, n, k, a, b, c, stride_a, stride_b, stride_c};
  const double flops = 2.0 * m * n * k;
  if (configured_threads == 1 || flops >= SMALL_GEMM_FLOPS) {
    gemm_range(&whole);
    return;
  }
  set_blas_threads(1);
#if defined(LORASMITH_HAVE_PTHREADS)
  const int workers = batch < configured_threads ? batch : configured_threads;
  if (workers > 1) {
    gemm_split(&whole, workers);
  } else {
    gemm_range(&whole);
  }
#else
  gemm_range(&whole);
#endif
  set_blas_threads(configured_threads);
}
