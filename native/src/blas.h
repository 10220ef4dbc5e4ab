/* The BLAS behind the addon: OpenBLAS on Linux and Windows, Apple's Accelerate on macOS. */
#ifndef LORASMITH_BLAS_H
#define LORASMITH_BLAS_H

#include <stdbool.h>
#include <stdint.h>

/* C_i = op(A_i) · op(B_i) for i in [0, batch), row-major, strides in elements (0 broadcasts). */
void lorasmith_sgemm_batched(bool trans_a, bool trans_b, int batch, int m, int n, int k, const float *a,
                             int64_t stride_a, const float *b, int64_t stride_b, float *c, int64_t stride_c);
/* One row-major sgemm on the calling thread's share of the BLAS: C = alpha·op(A)·op(B) + beta·C with leading
 * dimensions. Call it between lorasmith_blas_serial_begin() and _end() when several threads call at once. */
void lorasmith_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc);
/* BLAS threads set to 1 while our own threads split the work, and back to the configured count. */
void lorasmith_blas_serial_begin(void);
void lorasmith_blas_serial_end(void);
void lorasmith_blas_set_threads(int threads);
int lorasmith_blas_get_threads(void);
const char *lorasmith_blas_name(void);
const char *lorasmith_blas_config(void);

#endif
