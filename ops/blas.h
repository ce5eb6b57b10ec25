/* blas.h - the one GEMM call of the ops (matmul, linear, conv2d), dispatched
 * on the element type to OpenBLAS's sgemm or dgemm. */
#ifndef TAPEGRAD_BLAS_H
#define TAPEGRAD_BLAS_H

#include "../autograd/internal.h"

/* Row-major C (M, N) = op(A) op(B) + beta C, op(X) = X^T when its flag is
 * set, for A, B, C of dtype dt (float32 or float64; beta is converted).
 * Does nothing when M or N is 0; leading dimensions are raised to at least 1
 * so that OpenBLAS accepts an empty inner dimension K (C = beta C then). */
void blas_gemm(dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A,
               int64_t lda, const void *B, int64_t ldb, double beta, void *C, int64_t ldc);

#endif
