/* test_blas.c - tg_blas_gemm, the one GEMM call of the ops: the small-M
 * kernels (ops/gemm_kernels.c, C = A B^T + beta C for a few rows of A) on
 * every variant the CPU runs and in both dtypes, against plain loops in
 * float64; and the OpenBLAS fallback when TAPEGRAD_ISA is refused, which
 * must not leave an error behind. */
#include "../autograd/internal.h"
#include "../ops/blas.h"
#include "../ops/isa.h"
#include "check_main.h"

/* C[m, n] = sum_k A[m, k] B[n, k] + beta C[m, n], every operand in float64,
 * with row strides lda, ldb, ldc */
static void naive_abt(int64_t M, int64_t N, int64_t K, const double *A, int64_t lda,
                      const double *B, int64_t ldb, double beta, double *C, int64_t ldc) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += A[m * lda + k] * B[n * ldb + k];
            C[m * ldc + n] = (beta == 0 ? 0 : beta * C[m * ldc + n]) + s;
        }
}

/* tg_blas_gemm(!ta, tb) on seeded values against naive_abt, with padded row
 * strides (lda K + 3, ...); with beta 0 the C it starts from is NaN, which
 * must not survive. Returns nothing: asserts. */
static void check_abt(dtype dt, int64_t M, int64_t N, int64_t K, double beta) {
    const int64_t lda = K + 3, ldb = K + 1, ldc = N + 2;
    size_t es = tg_dtype_size(dt);
    double *A = malloc((size_t)(M * lda) * sizeof *A), *B = malloc((size_t)(N * ldb) * sizeof *B);
    double *C = malloc((size_t)(M * ldc) * sizeof *C);
    void *a = malloc((size_t)(M * lda) * es), *b = malloc((size_t)(N * ldb) * es), *c = malloc((size_t)(M * ldc) * es);
    ck_assert(A && B && C && a && b && c);
    rng g;
    rng_seed(&g, (uint64_t)(M * 1000 + N * 10 + K), 5);
    for (int64_t i = 0; i < M * lda; i++) A[i] = rng_uniform(&g) * 2 - 1;
    for (int64_t i = 0; i < N * ldb; i++) B[i] = rng_uniform(&g) * 2 - 1;
    for (int64_t i = 0; i < M * ldc; i++) C[i] = beta == 0 ? NAN : rng_uniform(&g) * 2 - 1;
    for (int64_t i = 0; i < M * lda; i++)
        dt == DTYPE_F32 ? (void)(((float *)a)[i] = (float)A[i]) : (void)(((double *)a)[i] = A[i]);
    for (int64_t i = 0; i < N * ldb; i++)
        dt == DTYPE_F32 ? (void)(((float *)b)[i] = (float)B[i]) : (void)(((double *)b)[i] = B[i]);
    for (int64_t i = 0; i < M * ldc; i++)
        dt == DTYPE_F32 ? (void)(((float *)c)[i] = (float)C[i]) : (void)(((double *)c)[i] = C[i]);
    /* the float32 operands as rounded, so the oracle sees what the kernel sees */
    for (int64_t i = 0; dt == DTYPE_F32 && i < M * lda; i++) A[i] = (float)A[i];
    for (int64_t i = 0; dt == DTYPE_F32 && i < N * ldb; i++) B[i] = (float)B[i];
    for (int64_t i = 0; dt == DTYPE_F32 && i < M * ldc; i++) C[i] = (float)C[i];
    tg_blas_gemm(dt, false, true, M, N, K, a, lda, b, ldb, beta, c, ldc);
    naive_abt(M, N, K, A, lda, B, ldb, beta, C, ldc);
    double tol = (dt == DTYPE_F32 ? 1e-5 : 1e-13) * (double)(K + 1);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double got = dt == DTYPE_F32 ? ((float *)c)[m * ldc + n] : ((double *)c)[m * ldc + n];
            ck_assert_msg(fabs(got - C[m * ldc + n]) <= tol,
                          "%s %s M %lld N %lld K %lld beta %g: C[%lld, %lld] = %.10g, expected %.10g",
                          tapegrad_isa() ? tapegrad_isa() : "OpenBLAS", tg_dtype_name(dt), (long long)M,
                          (long long)N, (long long)K, beta, (long long)m, (long long)n, got,
                          C[m * ldc + n]);
        }
    free(A), free(B), free(C), free(a), free(b), free(c);
}

/* Every row count of the small kernels (1-4, and 5 and 9: four-row blocks
 * then the rest, or OpenBLAS past GEMM_SMALL_M), N leaving every remainder of
 * the column blocks, K below, at, and past whole vectors (1, 7, 16, 37,
 * 400), beta 0, 1 and 0.5. */
static void check_all_shapes(void) {
    static const int64_t Ms[] = {1, 2, 3, 4, 5, 9}, Ns[] = {1, 3, 6, 7, 120}, Ks[] = {1, 7, 16, 37, 400};
    static const double betas[] = {0, 1, 0.5};
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof Ms / sizeof *Ms; i++)
            for (size_t j = 0; j < sizeof Ns / sizeof *Ns; j++)
                for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++)
                    for (size_t e = 0; e < sizeof betas / sizeof *betas; e++)
                        check_abt(d ? DTYPE_F32 : DTYPE_F64, Ms[i], Ns[j], Ks[k], betas[e]);
}

START_TEST(test_gemm_small_rows_every_variant_matches_naive) {
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported(v)) continue;
        ck_assert_int_eq(tg_isa_select(tg_isa_name(v)), 0);
        check_all_shapes();
    }
    ck_assert_int_eq(tg_isa_select(getenv("TAPEGRAD_ISA")), 0);
}
END_TEST

/* With TAPEGRAD_ISA refused the small GEMMs go to OpenBLAS: the same
 * values, and no error left pending by a call that succeeded. */
START_TEST(test_gemm_small_rows_refused_variant_uses_openblas) {
    ck_assert_int_eq(tg_isa_select("avx2"), -1);
    tapegrad_error_clear();
    ck_assert_int_eq(tg_isa_in_use(), -1);
    check_abt(DTYPE_F64, 2, 7, 37, 1);
    check_abt(DTYPE_F32, 3, 6, 16, 0);
    ck_assert_ptr_null(tapegrad_error());
    ck_assert_int_eq(tg_isa_select(getenv("TAPEGRAD_ISA")), 0);
}
END_TEST

static Suite *blas_suite(void) {
    Suite *s = suite_create("blas");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_gemm_small_rows_every_variant_matches_naive);
    tcase_add_test(tc, test_gemm_small_rows_refused_variant_uses_openblas);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(blas_suite)
