/* gemm_kernels_t.h - the small-M GEMM for one element type T, plain C:
 * gemm_kernels.c includes it once per type, NAME(x) spelling x_T. No
 * include guard, on purpose. */
#ifndef T
#error "gemm_kernels_t.h is included by gemm_kernels.c with T defined"
#endif

typedef T NAME(gvec) __attribute__((vector_size(GEMM_VB)));

/* C[m, n] = sum_k A[m, k] B[n, k] + beta C[m, n] for m < mb, n < nb: vector
 * sums over whole vectors of k, then their lanes in order, then the k past
 * the last whole vector. With beta 0, C is written without being read, as
 * BLAS does. */
static inline __attribute__((always_inline)) void NAME(abt_block)(
    int mb, int nb, int64_t K, const T *A, int64_t lda, const T *B, int64_t ldb, T beta, T *C,
    int64_t ldc) {
    enum { V = GEMM_VB / sizeof(T) };
    NAME(gvec) acc[4][4], b[4], a;
    UNROLL for (int m = 0; m < mb; m++)
        UNROLL for (int n = 0; n < nb; n++) acc[m][n] = (NAME(gvec)){0};
    int64_t k = 0;
    for (; k + V <= K; k += V) {
        UNROLL for (int n = 0; n < nb; n++) memcpy(&b[n], B + n * ldb + k, sizeof b[n]);
        UNROLL for (int m = 0; m < mb; m++) {
            memcpy(&a, A + m * lda + k, sizeof a);
            UNROLL for (int n = 0; n < nb; n++) acc[m][n] += a * b[n];
        }
    }
    UNROLL for (int m = 0; m < mb; m++)
        UNROLL for (int n = 0; n < nb; n++) {
            T lane[V], s = 0;
            memcpy(lane, &acc[m][n], sizeof lane);
            for (int l = 0; l < V; l++) s += lane[l];
            for (int64_t j = k; j < K; j++) s += A[m * lda + j] * B[n * ldb + j];
            T *c = C + m * ldc + n;
            *c = beta == 0 ? s : beta * *c + s;
        }
}

/* mb rows of A (1 to 4) against every row of B, nb at a time */
static inline __attribute__((always_inline)) void NAME(abt_rows)(
    int mb, int64_t N, int64_t K, const T *A, int64_t lda, const T *B, int64_t ldb, T beta, T *C,
    int64_t ldc) {
    const int nb = mb <= 2 ? 4 : 2;
    int64_t n = 0;
    for (; n + nb <= N; n += nb)
        NAME(abt_block)(mb, nb, K, A, lda, B + n * ldb, ldb, beta, C + n, ldc);
    for (; n < N; n++) NAME(abt_block)(mb, 1, K, A, lda, B + n * ldb, ldb, beta, C + n, ldc);
}

/* C (M, N) = A (M, K) B (N, K)^T + beta C, for M <= GEMM_SMALL_M */
static void NAME(gemm_abt)(int64_t M, int64_t N, int64_t K, const void *A_, int64_t lda,
                           const void *B_, int64_t ldb, double beta_, void *C_, int64_t ldc) {
    const T *A = A_, *B = B_, beta = (T)beta_;
    T *C = C_;
    for (int64_t m = 0; m < M; m += 4) {
        const T *Am = A + m * lda;
        T *Cm = C + m * ldc;
        switch (M - m < 4 ? M - m : 4) {
        case 1: NAME(abt_rows)(1, N, K, Am, lda, B, ldb, beta, Cm, ldc); break;
        case 2: NAME(abt_rows)(2, N, K, Am, lda, B, ldb, beta, Cm, ldc); break;
        case 3: NAME(abt_rows)(3, N, K, Am, lda, B, ldb, beta, Cm, ldc); break;
        case 4: NAME(abt_rows)(4, N, K, Am, lda, B, ldb, beta, Cm, ldc); break;
        }
    }
}

/* C (M, N) = A (M, K) B (K, N) + beta C, B's rows contiguous, for a few rows
 * (GEMM_AB_MIN_M to GEMM_AB_M: an LSTM's recurrent product, 16 rows by
 * [256, 1024]). A tile of mb rows by nv vectors of columns keeps its sums in
 * registers over all of K: per k, nv loads of B's row and, per row, one
 * broadcast of A[m, k] feeding nv multiply-adds. Each C[m, n] is a sum over
 * k in order, the columns past the last whole vector as scalar sums in the
 * same order. With beta 0, C is written without being read. */
static inline __attribute__((always_inline)) void NAME(ab_tile)(
    int mb, int nv, int64_t K, const T *A, int64_t lda, const T *B, int64_t ldb, T beta, T *C,
    int64_t ldc) {
    enum { V = GEMM_VB / sizeof(T) };
    NAME(gvec) acc[GEMM_AB_MR][GEMM_AB_NV], b[GEMM_AB_NV];
    UNROLL for (int m = 0; m < mb; m++)
        UNROLL for (int v = 0; v < nv; v++) acc[m][v] = (NAME(gvec)){0};
    for (int64_t k = 0; k < K; k++) {
        UNROLL for (int v = 0; v < nv; v++) memcpy(&b[v], B + k * ldb + v * V, sizeof b[v]);
        UNROLL for (int m = 0; m < mb; m++) {
            const T a = A[m * lda + k];
            UNROLL for (int v = 0; v < nv; v++) acc[m][v] += a * b[v];
        }
    }
    UNROLL for (int m = 0; m < mb; m++)
        UNROLL for (int v = 0; v < nv; v++) {
            T *c = C + m * ldc + v * V;
            if (beta != 0) {
                NAME(gvec) cv;
                memcpy(&cv, c, sizeof cv);
                acc[m][v] = beta * cv + acc[m][v];
            }
            memcpy(c, &acc[m][v], sizeof acc[m][v]);
        }
}

/* mb rows (a constant in each case, so the sums stay in registers) by the
 * whole vectors of columns, GEMM_AB_NV at a time, then the rest one by one */
static void NAME(ab_rows)(int mb, int64_t N, int64_t K, const T *A, int64_t lda, const T *B,
                          int64_t ldb, T beta, T *C, int64_t ldc) {
    enum { V = GEMM_VB / sizeof(T) };
    const int64_t nw = N / V * V;
    for (int64_t n = 0; n < nw; n += GEMM_AB_NV * V) {
        const bool full = nw - n >= GEMM_AB_NV * V;
#define AB_CASE(r)                                                                      \
    case r:                                                                             \
        if (r <= GEMM_AB_MR) {                                                          \
            if (full) NAME(ab_tile)(r, GEMM_AB_NV, K, A, lda, B + n, ldb, beta, C + n, ldc); \
            else NAME(ab_tile)(r, 1, K, A, lda, B + n, ldb, beta, C + n, ldc);          \
        }                                                                               \
        break;
        switch (mb) { AB_CASE(1) AB_CASE(2) AB_CASE(3) AB_CASE(4) AB_CASE(5) AB_CASE(6) AB_CASE(7) AB_CASE(8) }
#undef AB_CASE
        if (!full) n -= (GEMM_AB_NV - 1) * V; /* one vector was done, not GEMM_AB_NV */
    }
    for (int64_t n = nw; n < N; n++)
        for (int m = 0; m < mb; m++) {
            T s = 0;
            for (int64_t k = 0; k < K; k++) s += A[m * lda + k] * B[k * ldb + n];
            T *c = C + m * ldc + n;
            *c = beta == 0 ? s : beta * *c + s;
        }
}

static void NAME(gemm_ab)(int64_t M, int64_t N, int64_t K, const void *A_, int64_t lda,
                          const void *B_, int64_t ldb, double beta_, void *C_, int64_t ldc) {
    const T *A = A_, *B = B_, beta = (T)beta_;
    T *C = C_;
    for (int64_t m = 0; m < M; m += GEMM_AB_MR)
        NAME(ab_rows)(M - m < GEMM_AB_MR ? (int)(M - m) : GEMM_AB_MR, N, K, A + m * lda, lda, B,
                      ldb, beta, C + m * ldc, ldc);
}
