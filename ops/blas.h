/* blas.h - the one GEMM call of the ops (matmul, linear, conv2d, attention),
 * dispatched on the element type and shape to our small-M kernels, oneDNN's
 * sgemm (float32) or OpenBLAS's sgemm or dgemm. */
#ifndef TAPEGRAD_BLAS_H
#define TAPEGRAD_BLAS_H

#include "../autograd/internal.h"

/* Row-major C (M, N) = op(A) op(B) + beta C, op(X) = X^T when its flag is
 * set, for A, B, C of dtype dt (float32 or float64; beta is converted).
 * Does nothing when M or N is 0; leading dimensions are raised to at least 1
 * so that OpenBLAS accepts an empty inner dimension K (C = beta C then). */
void tg_blas_gemm(dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A,
               int64_t lda, const void *B, int64_t ldb, double beta, void *C, int64_t ldc);

/* GEMMs of at most GEMM_SMALL_M rows with B transposed (a linear layer at a
 * small batch), per ISA variant: ops/gemm_kernels.c. abt[0] float32, [1]
 * float64: C (M, N) = A (M, K) B (N, K)^T + beta C. */
enum { GEMM_SMALL_M = 4 };
/* GEMMs of fewer multiply-adds run OpenBLAS on one thread (blas.c). */
#define GEMM_ONE_THREAD_MACS 4e6
/* ab[0] float32, [1] float64: C (M, N) = A (M, K) B (K, N) + beta C for a few
 * rows, GEMM_AB_MIN_M to GEMM_AB_M (tg_blas_rows_ab says where it runs). */
enum { GEMM_AB_MIN_M = 8, GEMM_AB_M = 16 };
/* atb[0] float32, [1] float64: C (M, N) = A^T B + beta C, A (K, M), B (K, N),
 * for a contraction of at most GEMM_ATB_K (conv2d's input gradient with few
 * output channels; tg_blas_short_atb says where it runs). */
enum { GEMM_ATB_K = 16 };
/* outer[0] float32, [1] float64: C (M, N) = a b^T + beta C, an inner size of
 * 1, a[m] at a[m * sa], b contiguous (a linear layer's weight gradient at
 * batch 1). */
typedef struct {
    void (*abt[2])(int64_t M, int64_t N, int64_t K, const void *A, int64_t lda, const void *B,
                   int64_t ldb, double beta, void *C, int64_t ldc);
    void (*ab[2])(int64_t M, int64_t N, int64_t K, const void *A, int64_t lda, const void *B,
                  int64_t ldb, double beta, void *C, int64_t ldc);
    void (*atb[2])(int64_t M, int64_t N, int64_t K, const void *A, int64_t lda, const void *B,
                   int64_t ldb, double beta, void *C, int64_t ldc);
    void (*outer[2])(int64_t M, int64_t N, const void *a, int64_t sa, const void *b, double beta,
                     void *C, int64_t ldc);
} gemm_kernels;
extern const gemm_kernels tg_gemm_kernels_v2, tg_gemm_kernels_v3, tg_gemm_kernels_v4;

/* Whether tg_blas_gemm sends a float32 GEMM (op(A) rows M, inner size K,
 * A transposed when ta) to oneDNN's sgemm rather than OpenBLAS on variant v
 * (isa.h; -1: none): see blas.c for the measured rule. The first call fixes
 * the variant oneDNN is held to. */
bool tg_blas_uses_dnnl(int v, bool ta, int64_t M, int64_t K);
/* The rule itself, for OpenBLAS kernels of vector unit `level` (a variant,
 * -1 below v2): tg_blas_uses_dnnl applies it with tg_blas_openblas_level(). */
bool tg_blas_dnnl_rule(int v, int level, bool ta, int64_t M, int64_t K);
/* The variant whose vector unit OpenBLAS's kernels named `core` use (the
 * names of openblas_get_corename), -1 for those below v2 or unknown; and
 * that of the kernels the running OpenBLAS picked (read once). */
int tg_blas_core_level(const char *core);
int tg_blas_openblas_level(void);

/* Whether tg_blas_gemm runs C = A B + beta C (neither operand transposed)
 * with M rows of dtype dt on the few-row kernel (gemm_ab) on variant v: on
 * v4, float32, GEMM_AB_MIN_M to GEMM_AB_M rows, where it beat oneDNN (blas.c).
 * A caller that multiplies by the same B^T many times (lstm_seq's recurrence)
 * keeps B^T's transpose and calls the A B form when this holds. */
bool tg_blas_rows_ab(int v, dtype dt, int64_t M);
/* Whether tg_blas_gemm runs C = A^T B + beta C (A transposed, B not) of
 * dtype dt and inner size K on the short-contraction kernel (gemm_atb) on
 * variant v, with OpenBLAS's kernels at `level` (tg_blas_openblas_level;
 * blas.c has the measurements). */
bool tg_blas_short_atb(int v, int level, dtype dt, int64_t K);

/* Typed forms, for kernels written once as a macro over the element type T
 * (blas_gemm_##T). */
static inline void blas_gemm_float(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                   const float *A, int64_t lda, const float *B, int64_t ldb,
                                   float beta, float *C, int64_t ldc) {
    tg_blas_gemm(DTYPE_F32, ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
}
static inline void blas_gemm_double(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                    const double *A, int64_t lda, const double *B, int64_t ldb,
                                    double beta, double *C, int64_t ldc) {
    tg_blas_gemm(DTYPE_F64, ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

#endif
