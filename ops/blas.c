/* blas.c - see blas.h. */
#include "blas.h"

#include <cblas.h>

void blas_gemm(dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A,
               int64_t lda, const void *B, int64_t ldb, double beta, void *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    lda = lda > 1 ? lda : 1, ldb = ldb > 1 ? ldb : 1, ldc = ldc > 1 ? ldc : 1;
    enum CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
    if (dt == DTYPE_F32)
        cblas_sgemm(CblasRowMajor, opa, opb, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb,
                    (float)beta, C, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, opa, opb, (int)M, (int)N, (int)K, 1.0, A, (int)lda, B, (int)ldb,
                    beta, C, (int)ldc);
}
