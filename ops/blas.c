/* blas.c - see blas.h. */
#include "blas.h"

#include <cblas.h>
#include <omp.h>

#include "isa.h"

static const gemm_kernels *const gemm_variants[ISA_COUNT] = {&tg_gemm_kernels_v2, &tg_gemm_kernels_v3,
                                                             &tg_gemm_kernels_v4};

/* C = beta C + a b^T for an inner dimension of 1: a rank-one update, which
 * is what the weight gradient G^T X of a linear layer is at batch 1. OpenBLAS
 * pays its GEMM set-up for it; the plain loop streams each row of C once and
 * measured 1.0 -> 0.6 us on LeNet-5's [84,120] gradient alone. a[m] is at
 * a[m * sa]; b is contiguous (a strided b would not vectorise). With beta 0, C is written without being
 * read, as BLAS does (so NaN in C does not survive). */
#define OUTER_T(T)                                                                      \
    static void outer_##T(int64_t M, int64_t N, const T *a, int64_t sa, const T *b,      \
                          T beta, T *C, int64_t ldc) {                                   \
        for (int64_t m = 0; m < M; m++) {                                               \
            const T x = a[m * sa];                                                      \
            T *c = C + m * ldc;                                                         \
            if (beta == 0) {                                                            \
                _Pragma("omp simd")                                                     \
                for (int64_t n = 0; n < N; n++) c[n] = x * b[n];                        \
            } else if (beta == 1) {                                                     \
                _Pragma("omp simd")                                                     \
                for (int64_t n = 0; n < N; n++) c[n] += x * b[n];                       \
            } else {                                                                    \
                _Pragma("omp simd")                                                     \
                for (int64_t n = 0; n < N; n++) c[n] = beta * c[n] + x * b[n];          \
            }                                                                           \
        }                                                                               \
    }
OUTER_T(float)
OUTER_T(double)

void tg_blas_gemm(dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A,
               int64_t lda, const void *B, int64_t ldb, double beta, void *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (K == 1 && (!tb || N == 1)) {
        /* op(A)[m][0] is A[m] when transposed (a row of length M), else
         * A[m * lda]; op(B)[0][n] is B[n] (with tb, only N = 1 is contiguous). */
        int64_t sa = ta ? 1 : lda;
        if (dt == DTYPE_F32)
            outer_float(M, N, A, sa, B, (float)beta, C, ldc);
        else
            outer_double(M, N, A, sa, B, beta, C, ldc);
        return;
    }
    /* a few rows times B^T (gemm_kernels.c): B read once, not packed; the
     * variant in use, or OpenBLAS when TAPEGRAD_ISA was refused */
    int v;
    if (!ta && tb && M <= GEMM_SMALL_M && K > 0 && (v = tg_isa_in_use()) >= 0) {
        gemm_variants[v]->abt[dt == DTYPE_F32 ? 0 : 1](M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    lda = lda > 1 ? lda : 1, ldb = ldb > 1 ? ldb : 1, ldc = ldc > 1 ? ldc : 1;
    enum CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
    /* A small GEMM stays on this thread: OpenBLAS splits any product past
     * 2^18 multiply-adds, and waking its threads and waiting for them costs
     * more than the split saves below GEMM_ONE_THREAD_MACS (LeNet-5's linear
     * layers at batch 64: 0.6-3 M). Not inside our own parallel regions,
     * which hold OpenBLAS to one thread themselves (the setting is global). */
    int was = 1;
    if ((double)M * (double)N * (double)K < GEMM_ONE_THREAD_MACS && !omp_in_parallel()) {
        was = openblas_get_num_threads();
        if (was > 1) openblas_set_num_threads(1);
    }
    if (dt == DTYPE_F32)
        cblas_sgemm(CblasRowMajor, opa, opb, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb,
                    (float)beta, C, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, opa, opb, (int)M, (int)N, (int)K, 1.0, A, (int)lda, B, (int)ldb,
                    beta, C, (int)ldc);
    if (was > 1) openblas_set_num_threads(was);
}
