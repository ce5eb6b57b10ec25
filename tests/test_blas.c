/* test_blas.c - tg_blas_gemm, the one GEMM call of the ops: the small-M
 * kernels (ops/gemm_kernels.c, C = A B^T + beta C for a few rows of A) on
 * every variant the CPU runs and in both dtypes, against plain loops in
 * float64; and the OpenBLAS fallback when TAPEGRAD_ISA is refused, which
 * must not leave an error behind; float32 GEMMs of every transpose pair on
 * every variant (oneDNN's sgemm or OpenBLAS by blas.c's rule), against the
 * same loops and repeating their bits; the few-row A B kernels (gemm_ab) of
 * every variant against the same loops; the rank-one update (an inner size
 * of 1) of every variant and of OpenBLAS. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* The few-row A B kernel (gemm_ab) of variant v in dtype dt, or with ta the
 * short-contraction A^T B kernel (gemm_atb, A stored (K, M)), called
 * directly (tg_blas_gemm takes them where blas.c's rules say), on seeded
 * values against plain float64 loops: C = op(A) (M, K) B (K, N) + beta C
 * with padded row strides; with beta 0 the C it starts from is NaN, which
 * must not survive. */
static void check_ab(int v, dtype dt, bool ta, int64_t M, int64_t N, int64_t K, double beta) {
    static const gemm_kernels *const kernels[ISA_COUNT] = {&tg_gemm_kernels_v2, &tg_gemm_kernels_v3,
                                                           &tg_gemm_kernels_v4};
    const int64_t lda = ta ? M + 3 : K + 3, ldb = N + 5, ldc = N + 2, na = ta ? K * lda : M * lda;
    const bool f32 = dt == DTYPE_F32;
    double *A = malloc((size_t)na * sizeof *A), *B = malloc((size_t)(K * ldb) * sizeof *B);
    double *C = malloc((size_t)(M * ldc) * sizeof *C);
    float *af = malloc((size_t)na * sizeof *af), *bf = malloc((size_t)(K * ldb) * sizeof *bf);
    float *cf = malloc((size_t)(M * ldc) * sizeof *cf);
    double *ad = malloc((size_t)na * sizeof *ad), *bd = malloc((size_t)(K * ldb) * sizeof *bd);
    double *cd = malloc((size_t)(M * ldc) * sizeof *cd);
    ck_assert(A && B && C && af && bf && cf && ad && bd && cd);
    rng g;
    rng_seed(&g, (uint64_t)(M * 1000 + N * 10 + K), 7);
    for (int64_t i = 0; i < na; i++) A[i] = rng_uniform(&g) * 2 - 1;
    for (int64_t i = 0; i < K * ldb; i++) B[i] = rng_uniform(&g) * 2 - 1;
    for (int64_t i = 0; i < M * ldc; i++) C[i] = beta == 0 ? NAN : rng_uniform(&g) * 2 - 1;
    /* float32 operands as rounded, so the oracle sees what the kernel sees */
    for (int64_t i = 0; f32 && i < na; i++) A[i] = (float)A[i];
    for (int64_t i = 0; f32 && i < K * ldb; i++) B[i] = (float)B[i];
    for (int64_t i = 0; f32 && i < M * ldc; i++) C[i] = (float)C[i];
    for (int64_t i = 0; i < na; i++) af[i] = (float)A[i], ad[i] = A[i];
    for (int64_t i = 0; i < K * ldb; i++) bf[i] = (float)B[i], bd[i] = B[i];
    for (int64_t i = 0; i < M * ldc; i++) cf[i] = (float)C[i], cd[i] = C[i];
    (ta ? kernels[v]->atb : kernels[v]->ab)[f32 ? 0 : 1](M, N, K, f32 ? (void *)af : ad, lda, f32 ? (void *)bf : bd, ldb, beta,
                                f32 ? (void *)cf : cd, ldc);
    const double tol = (f32 ? 1e-5 : 1e-13) * (double)(K + 1);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (ta ? A[k * lda + m] : A[m * lda + k]) * B[k * ldb + n];
            const double want = (beta == 0 ? 0 : beta * C[m * ldc + n]) + s;
            const double got = f32 ? cf[m * ldc + n] : cd[m * ldc + n];
            ck_assert_msg(fabs(got - want) <= tol,
                          "%s %s %s M %lld N %lld K %lld beta %g: C[%lld, %lld] = %.10g, expected %.10g",
                          ta ? "atb" : "ab", tg_isa_name(v), tg_dtype_name(dt), (long long)M, (long long)N, (long long)K,
                          beta, (long long)m, (long long)n, got, want);
        }
    free(A), free(B), free(C), free(af), free(bf), free(cf), free(ad), free(bd), free(cd);
}

/* Every variant the CPU runs, both dtypes: row counts below, at and past
 * a tile (1, 3, 4, 5, 8, 9, 16), N leaving every remainder of the column
 * vectors and pairs of them (1, 7, 16, 33, 100), K from 1 to past the
 * recurrence's 256, beta 0, 1 and 0.5. And where tg_blas_gemm takes it. */
/* check_ab over every variant the CPU runs, both dtypes, the grid Ms x Ns x
 * Ks (nm, nn, nk long), beta 0, 1 and 0.5 in turn */
static void check_ab_grid(bool ta, const int64_t *Ms, size_t nm, const int64_t *Ns, size_t nn,
                          const int64_t *Ks, size_t nk) {
    static const double betas[] = {0, 1, 0.5};
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported(v)) continue;
        for (int d = 0; d < 2; d++)
            for (size_t i = 0; i < nm; i++)
                for (size_t j = 0; j < nn; j++)
                    for (size_t k = 0; k < nk; k++)
                        check_ab(v, d ? DTYPE_F32 : DTYPE_F64, ta, Ms[i], Ns[j], Ks[k],
                                 betas[(i + j + k) % 3]);
    }
}
START_TEST(test_gemm_few_rows_ab_every_variant_matches_naive) {
    static const int64_t Ms[] = {1, 3, 4, 5, 8, 9, 16}, Ns[] = {1, 7, 16, 33, 100}, Ks[] = {1, 7, 37, 300};
    check_ab_grid(false, Ms, 7, Ns, 5, Ks, 4);
    for (int v = 0; v < ISA_COUNT; v++)
        for (int64_t M = 1; M <= 20; M++) {
            ck_assert(tg_blas_rows_ab(v, DTYPE_F32, M) ==
                      (v == ISA_V4 && M >= GEMM_AB_MIN_M && M <= GEMM_AB_M));
            ck_assert(!tg_blas_rows_ab(v, DTYPE_F64, M));
        }
    ck_assert(!tg_blas_rows_ab(-1, DTYPE_F32, 16));
}
END_TEST

/* The short-contraction A^T B kernel of every variant the CPU runs, both
 * dtypes: rows below, at and past a tile and odd (1, 5, 8, 9, 27, 150), N
 * leaving every remainder of the column vectors and pairs of them (1, 7, 16,
 * 33, 100), K from 1 to GEMM_ATB_K and past it (21: the tails as scalar sums),
 * beta 0, 1 and 0.5. And where
 * tg_blas_gemm takes it: float32, K <= 16, except on v4 while OpenBLAS runs
 * its AVX-512 kernels. */
START_TEST(test_gemm_short_atb_every_variant_matches_naive) {
    static const int64_t Ms[] = {1, 5, 8, 9, 27, 150}, Ns[] = {1, 7, 16, 33, 100}, Ks[] = {1, 6, 16, 21};
    check_ab_grid(true, Ms, 6, Ns, 5, Ks, 4);
    for (int v = 0; v < ISA_COUNT; v++)
        for (int level = -1; level < ISA_COUNT; level++) {
            const bool lib = v == ISA_V4 && level >= ISA_V4;
            ck_assert(tg_blas_short_atb(v, level, DTYPE_F32, 1) == !lib);
            ck_assert(tg_blas_short_atb(v, level, DTYPE_F32, GEMM_ATB_K) == !lib);
            ck_assert(!tg_blas_short_atb(v, level, DTYPE_F32, GEMM_ATB_K + 1));
            ck_assert(!tg_blas_short_atb(v, level, DTYPE_F32, 0));
            ck_assert(!tg_blas_short_atb(v, level, DTYPE_F64, 16));
        }
    ck_assert(!tg_blas_short_atb(-1, -1, DTYPE_F32, 16));
}
END_TEST

/* tg_blas_gemm with an inner size of 1 (the rank-one update of a linear
 * layer's weight gradient at batch 1: ops/gemm_kernels.c's gemm_outer when
 * a variant is in use, OpenBLAS when TAPEGRAD_ISA was refused), op(A) a
 * column of A (lda 3: a strided a[m]) or with ta a row (contiguous), op(B)
 * a row of B (or with tb and N = 1 its one element), seeded values against
 * float64 products, padded C; with beta 0 the C it starts from is NaN, which
 * must not survive. */
static void check_outer(dtype dt, bool ta, bool tb, int64_t M, int64_t N, double beta) {
    const int64_t lda = ta ? M + 2 : 3, ldb = tb ? 1 : N + 4, ldc = N + 3;
    const int64_t na = ta ? lda : M * lda, nb = tb ? N : ldb, nc = M * ldc;
    const bool f32 = dt == DTYPE_F32;
    double *A = malloc((size_t)na * sizeof *A), *B = malloc((size_t)nb * sizeof *B);
    double *C = malloc((size_t)nc * sizeof *C), *want = malloc((size_t)nc * sizeof *want);
    float *af = malloc((size_t)na * sizeof *af), *bf = malloc((size_t)nb * sizeof *bf);
    float *cf = malloc((size_t)nc * sizeof *cf);
    ck_assert(A && B && C && want && af && bf && cf);
    rng g;
    rng_seed(&g, (uint64_t)(M * 131 + N * 7 + ta * 2 + tb), 11);
    for (int64_t i = 0; i < na; i++) A[i] = af[i] = (float)(rng_uniform(&g) * 2 - 1);
    for (int64_t i = 0; i < nb; i++) B[i] = bf[i] = (float)(rng_uniform(&g) * 2 - 1);
    for (int64_t i = 0; i < nc; i++) C[i] = cf[i] = beta == 0 ? NAN : (float)(rng_uniform(&g) * 2 - 1);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < ldc; n++) {
            const double x = ta ? A[m] : A[m * lda], y = n < N ? B[n] : 0;
            want[m * ldc + n] = n >= N ? C[m * ldc + n] : (beta == 0 ? 0 : beta * C[m * ldc + n]) + x * y;
        }
    tg_blas_gemm(dt, ta, tb, M, N, 1, f32 ? (void *)af : A, lda, f32 ? (void *)bf : B, ldb, beta,
                 f32 ? (void *)cf : C, ldc);
    const double tol = f32 ? 2e-6 : 1e-15;
    for (int64_t i = 0; i < nc; i++) {
        const double got = f32 ? cf[i] : C[i];
        ck_assert_msg(i % ldc >= N ? memcmp(&got, &want[i], sizeof got) == 0 || (isnan(got) && isnan(want[i]))
                                   : fabs(got - want[i]) <= tol,
                      "%s %s ta %d tb %d M %lld N %lld beta %g: C[%lld, %lld] = %.10g, expected %.10g",
                      tapegrad_isa() ? tapegrad_isa() : "OpenBLAS", tg_dtype_name(dt), ta, tb,
                      (long long)M, (long long)N, beta, (long long)(i / ldc), (long long)(i % ldc), got,
                      want[i]);
    }
    free(A), free(B), free(C), free(want), free(af), free(bf), free(cf);
}

/* Every variant the CPU runs and the refused one, both dtypes: N leaving
 * every remainder of a vector (1, 7, 16, 33, 120), a few rows, a strided or
 * contiguous a, beta 0, 1 and 0.5; and op(B) = B^T of a single column. */
START_TEST(test_gemm_outer_every_variant_matches_naive) {
    static const int64_t Ms[] = {1, 5, 84}, Ns[] = {1, 7, 16, 33, 120};
    static const double betas[] = {0, 1, 0.5};
    for (int v = -1; v < ISA_COUNT; v++) {
        if (v >= 0 && !tg_isa_supported(v)) continue;
        ck_assert_int_eq(tg_isa_select(v < 0 ? "avx2" : tg_isa_name(v)), v < 0 ? -1 : 0);
        tapegrad_error_clear();
        for (int d = 0; d < 2; d++)
            for (size_t i = 0; i < sizeof Ms / sizeof *Ms; i++) {
                for (size_t j = 0; j < sizeof Ns / sizeof *Ns; j++)
                    for (int e = 0; e < 3; e++)
                        check_outer(d ? DTYPE_F32 : DTYPE_F64, (i + j) % 2, false, Ms[i], Ns[j], betas[e]);
                check_outer(d ? DTYPE_F32 : DTYPE_F64, i % 2, true, Ms[i], 1, betas[i % 3]);
            }
        ck_assert_ptr_null(tapegrad_error());
    }
    ck_assert_int_eq(tg_isa_select(getenv("TAPEGRAD_ISA")), 0);
}
END_TEST

/* op(X)[i, j] of a row-major X with row stride ld: X[j, i] when transposed */
static double at(const double *X, int64_t ld, bool t, int64_t i, int64_t j) {
    return t ? X[j * ld + i] : X[i * ld + j];
}

/* tg_blas_gemm in float32 for one transpose pair against float64 loops on
 * the same rounded operands, with padded strides and, for beta 0, a NaN C
 * that must not survive; then the same call again, which must repeat every
 * bit. */
static void check_gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double beta) {
    const int64_t lda = (ta ? M : K) + 5, ldb = (tb ? K : N) + 3, ldc = N + 1;
    const int64_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb, nc = M * ldc;
    double *A = malloc((size_t)na * sizeof *A), *B = malloc((size_t)nb * sizeof *B);
    double *C = malloc((size_t)nc * sizeof *C);
    float *a = malloc((size_t)na * sizeof *a), *b = malloc((size_t)nb * sizeof *b);
    float *c = malloc((size_t)nc * sizeof *c), *c0 = malloc((size_t)nc * sizeof *c0);
    ck_assert(A && B && C && a && b && c && c0);
    rng g;
    rng_seed(&g, (uint64_t)(M * 7919 + N * 31 + K), 9);
    for (int64_t i = 0; i < na; i++) A[i] = a[i] = (float)(rng_uniform(&g) * 2 - 1);
    for (int64_t i = 0; i < nb; i++) B[i] = b[i] = (float)(rng_uniform(&g) * 2 - 1);
    for (int64_t i = 0; i < nc; i++) C[i] = c0[i] = beta == 0 ? NAN : (float)(rng_uniform(&g) * 2 - 1);
    memcpy(c, c0, (size_t)nc * sizeof *c);
    tg_blas_gemm(DTYPE_F32, ta, tb, M, N, K, a, lda, b, ldb, beta, c, ldc);
    double tol = 1e-5 * (double)(K + 1);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = beta == 0 ? 0 : beta * C[m * ldc + n];
            for (int64_t k = 0; k < K; k++) s += at(A, lda, ta, m, k) * at(B, ldb, tb, k, n);
            ck_assert_msg(fabs(c[m * ldc + n] - s) <= tol,
                          "%s ta %d tb %d M %lld N %lld K %lld beta %g: C[%lld, %lld] = %.10g, expected %.10g",
                          tapegrad_isa(), ta, tb, (long long)M, (long long)N, (long long)K, beta,
                          (long long)m, (long long)n, c[m * ldc + n], s);
        }
    float *c2 = malloc((size_t)nc * sizeof *c2);
    ck_assert_ptr_nonnull(c2);
    memcpy(c2, c0, (size_t)nc * sizeof *c2);
    tg_blas_gemm(DTYPE_F32, ta, tb, M, N, K, a, lda, b, ldb, beta, c2, ldc);
    ck_assert_int_eq(memcmp(c, c2, (size_t)nc * sizeof *c), 0);
    free(A), free(B), free(C), free(a), free(b), free(c), free(c0), free(c2);
}

/* The shapes the oneDNN route takes (past the small kernels' rows), every
 * transpose pair: inner sizes 16 to 300 and up to 600 rows (the v3 rule
 * sends A^T B with either to OpenBLAS), linear layers at batch 64,
 * an attention head, and odd sizes that leave every
 * remainder of the register blocks. Each variant in a child process of its
 * own, since oneDNN is held to the first variant that calls it. */
START_TEST(test_gemm_f32_every_transpose_every_variant_matches_naive) {
    static const int64_t shapes[][3] = {{600, 40, 64}, {40, 24, 300}, {520, 33, 16}, {12, 37, 19},
                                        {64, 120, 100},   {10, 84, 64},     {64, 64, 32},
                                        {5, 3, 7},        {37, 129, 77},    {16, 160, 256}};
    static const double betas[] = {0, 1, 0.5};
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported(v)) continue;
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            if (tg_isa_select(tg_isa_name(v))) _exit(3);
            /* the route the rule of blas.c names, pinned to this variant */
            if (!tg_blas_uses_dnnl(v, false, 1024, 128)) _exit(4);
            /* the exceptions hold against OpenBLAS kernels of the variant's
             * vector unit (AVX2 for v4 too); below it, oneDNN takes all */
            bool fit = tg_blas_openblas_level() >= (v < ISA_V3 ? v : ISA_V3);
            if (tg_blas_uses_dnnl(v, true, 40, 300) != (!fit || v != ISA_V3)) _exit(5);
            if (tg_blas_uses_dnnl(v, true, 150, 16) == fit || !tg_blas_uses_dnnl(v, true, 150, 17))
                _exit(6);
            for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
                for (int t = 0; t < 4; t++)
                    check_gemm_f32(t & 1, t & 2, shapes[i][0], shapes[i][1], shapes[i][2],
                                   betas[(i + (size_t)t) % 3]);
            _exit(0);
        }
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "variant %s: child status %d",
                      tg_isa_name(v), st);
    }
}
END_TEST

/* oneDNN is held to the first variant that called it: a GEMM on another
 * variant (selected later in the same process) runs OpenBLAS, and so does
 * every GEMM when TAPEGRAD_ISA is refused. */
START_TEST(test_gemm_f32_dnnl_only_on_its_first_variant) {
    int first = tg_isa_in_use();
    ck_assert_int_ge(first, 0);
    ck_assert(tg_blas_uses_dnnl(first, false, 1024, 128));
    for (int v = 0; v < ISA_COUNT; v++)
        if (v != first) ck_assert(!tg_blas_uses_dnnl(v, false, 1024, 128));
    ck_assert(!tg_blas_uses_dnnl(-1, false, 1024, 128));
    check_gemm_f32(false, true, 37, 129, 77, 0.5);
}
END_TEST

/* OpenBLAS's kernels by name: the vector unit each needs, unknown names and
 * the generic SSE3 kernels (what OpenBLAS 0.3.21 runs on a CPU model newer
 * than itself) below v2. */
START_TEST(test_blas_core_level_by_name) {
    ck_assert_int_eq(tg_blas_core_level("SkylakeX"), ISA_V4);
    ck_assert_int_eq(tg_blas_core_level("SapphireRapids"), ISA_V4);
    ck_assert_int_eq(tg_blas_core_level("Haswell"), ISA_V3);
    ck_assert_int_eq(tg_blas_core_level("Zen"), ISA_V3);
    ck_assert_int_eq(tg_blas_core_level("Nehalem"), ISA_V2);
    ck_assert_int_eq(tg_blas_core_level("Sandybridge"), ISA_V2);
    ck_assert_int_eq(tg_blas_core_level("Prescott"), -1);
    ck_assert_int_eq(tg_blas_core_level("Core2"), -1);
    ck_assert_int_eq(tg_blas_core_level("skylakex"), -1);
    ck_assert_int_eq(tg_blas_core_level(""), -1);
    ck_assert_int_eq(tg_blas_core_level(NULL), -1);
}
END_TEST

/* The route per OpenBLAS level: with kernels of the variant's unit (or AVX2
 * under v4) the measured exceptions stay on OpenBLAS (a contraction of 16 or
 * fewer; v3's A^T B with a long inner size or many rows); with kernels below
 * it every float32 GEMM goes to oneDNN; no variant, no oneDNN. */
START_TEST(test_blas_dnnl_rule_follows_openblas_level) {
    for (int v = ISA_V2; v < ISA_COUNT; v++) {
        int need = v < ISA_V3 ? v : ISA_V3;
        for (int level = -1; level < ISA_COUNT; level++) {
            bool fit = level >= need;
            ck_assert(tg_blas_dnnl_rule(v, level, false, 64, 128));
            ck_assert(tg_blas_dnnl_rule(v, level, true, 150, 16) == !fit);
            ck_assert(tg_blas_dnnl_rule(v, level, false, 150, 17));
            ck_assert(tg_blas_dnnl_rule(v, level, true, 40, 300) == (!fit || v != ISA_V3));
            ck_assert(tg_blas_dnnl_rule(v, level, true, 600, 40) == (!fit || v != ISA_V3));
            ck_assert(tg_blas_dnnl_rule(v, level, false, 600, 300));
        }
        ck_assert(!tg_blas_dnnl_rule(-1, v, false, 64, 128));
    }
    ck_assert(!tg_blas_dnnl_rule(-1, -1, false, 64, 128));
}
END_TEST

/* The running OpenBLAS's level is that of the kernels it reports; when
 * OPENBLAS_CORETYPE names them (run_tests.sh runs this suite once more with
 * its generic "Prescott"), the name it was given. */
START_TEST(test_blas_openblas_level_is_the_running_core) {
    ck_assert_int_eq(tg_blas_openblas_level(), tg_blas_core_level(openblas_get_corename()));
    const char *forced = getenv("OPENBLAS_CORETYPE");
    if (forced && !strcmp(forced, "Prescott")) {
        ck_assert_str_eq(openblas_get_corename(), "Prescott");
        ck_assert_int_eq(tg_blas_openblas_level(), -1);
    }
}
END_TEST

static Suite *blas_suite(void) {
    Suite *s = suite_create("blas");
    TCase *tc = tcase_create("core");
    /* Check's default 4 s is a hang detector; every variant's sweep of shapes
     * against naive loops runs 2-4 s under ASan and UBSan, and over 4 on a
     * busy host (a clean-clone CI run timed out once, at 7eececf) */
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gemm_small_rows_every_variant_matches_naive);
    tcase_add_test(tc, test_gemm_small_rows_refused_variant_uses_openblas);
    tcase_add_test(tc, test_gemm_few_rows_ab_every_variant_matches_naive);
    tcase_add_test(tc, test_gemm_f32_every_transpose_every_variant_matches_naive);
    tcase_add_test(tc, test_gemm_f32_dnnl_only_on_its_first_variant);
    tcase_add_test(tc, test_gemm_short_atb_every_variant_matches_naive);
    tcase_add_test(tc, test_gemm_outer_every_variant_matches_naive);
    tcase_add_test(tc, test_blas_core_level_by_name);
    tcase_add_test(tc, test_blas_dnnl_rule_follows_openblas_level);
    tcase_add_test(tc, test_blas_openblas_level_is_the_running_core);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(blas_suite)
