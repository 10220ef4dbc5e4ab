/* The BLAS behind the addon: OpenBLAS on Linux and Windows, Apple's Accelerate on macOS. */
#ifndef LORASMITH_BLAS_H
#define LORASMITH_BLAS_H

#include <stdbool.h>
#include <stdint.h>

/* C_i = op(A_i) · op(B_i) for i in [0, batch), row-major, strides in elements (0 broadcasts). */
void lorasmith_sgemm_batched(bool trans_a, bool trans_b, int batch, int m, int n, int k, const float *a,
                             int64_t stride_a, const float *b, int64_t stride_b, float *c, int64_t stride_c);
void lorasmith_blas_set_threads(int threads);
int lorasmith_blas_get_threads(void);
const char *lorasmith_blas_name(void);
const char *lorasmith_blas_config(void);

#endif
