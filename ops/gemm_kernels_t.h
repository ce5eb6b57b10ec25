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
    /* two steps of k per pass (the same sums in the same order): the loop's
     * overhead was a fifth of SSE's time, whose 16 registers leave no room
     * for more sums. [2, 400] x [120, 400]^T in float64, the replay of
     * LeNet-5's f1 that dominates its full check: 10.4-12.2 -> 8.5 us on
     * v2, 4.8 -> 4.1 on v3, 3.7 -> 3.45 on v4 (AMD EPYC Zen 5) */
    _Pragma("GCC unroll 2") for (; k + V <= K; k += V) {
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
 * [256, 1024]), and C = A^T B + beta C with A (K, M) for a short contraction
 * (K <= GEMM_ATB_K: conv2d's input gradient W^T G, LeNet-5's conv2 [150, 16]
 * by [16, 100] per image). A tile of mb rows by nv vectors of columns keeps
 * its sums in registers over all of K: per k, nv loads of B's row and, per
 * row, one broadcast of op(A)[m, k] = A[m sam + k sak] feeding nv
 * multiply-adds. Each C[m, n] is a sum over k in order. The tile stores its
 * last vector's first nc columns only (nc < V for a row's tail). With beta 0,
 * C is written without being read. */
static inline __attribute__((always_inline)) void NAME(ab_tile)(
    int mb, int nv, int64_t K, const T *A, int64_t sam, int64_t sak, const T *B, int64_t ldb,
    T beta, T *C, int64_t ldc, int64_t nc) {
    enum { V = GEMM_VB / sizeof(T) };
    NAME(gvec) acc[GEMM_AB_MR][GEMM_AB_NV], b[GEMM_AB_NV];
    UNROLL for (int m = 0; m < mb; m++)
        UNROLL for (int v = 0; v < nv; v++) acc[m][v] = (NAME(gvec)){0};
    for (int64_t k = 0; k < K; k++) {
        UNROLL for (int v = 0; v < nv; v++) memcpy(&b[v], B + k * ldb + v * V, sizeof b[v]);
        UNROLL for (int m = 0; m < mb; m++) {
            const T a = A[m * sam + k * sak];
            UNROLL for (int v = 0; v < nv; v++) acc[m][v] += a * b[v];
        }
    }
    UNROLL for (int m = 0; m < mb; m++)
        UNROLL for (int v = 0; v < nv; v++) {
            T *c = C + m * ldc + v * V;
            const size_t bytes = (v + 1 < nv ? V : (size_t)nc) * sizeof(T);
            if (beta != 0) {
                NAME(gvec) cv = {0};
                memcpy(&cv, c, bytes);
                acc[m][v] = beta * cv + acc[m][v];
            }
            memcpy(c, &acc[m][v], bytes);
        }
}

/* mb rows (a constant in each case, so the sums stay in registers) by the
 * whole vectors of columns, GEMM_AB_NV at a time, then the rest: with bt,
 * one vector of B's last N mod V columns copied there zero-padded (ldb V);
 * without, column by column as scalar sums in the same order. */
static void NAME(ab_rows)(int mb, int64_t N, int64_t K, const T *A, int64_t sam, int64_t sak,
                          const T *B, int64_t ldb, const T *bt, T beta, T *C, int64_t ldc) {
    enum { V = GEMM_VB / sizeof(T) };
    const int64_t nw = N / V * V;
#define AB_CASE(r)                                                                      \
    case r:                                                                             \
        if (r <= GEMM_AB_MR) {                                                          \
            if (full) NAME(ab_tile)(r, GEMM_AB_NV, K, A, sam, sak, B + n, ldb, beta, C + n, ldc, V); \
            else NAME(ab_tile)(r, 1, K, A, sam, sak, B + n, ldb, beta, C + n, ldc, V);  \
        }                                                                               \
        break;
    for (int64_t n = 0; n < nw; n += GEMM_AB_NV * V) {
        const bool full = nw - n >= GEMM_AB_NV * V;
        switch (mb) { AB_CASE(1) AB_CASE(2) AB_CASE(3) AB_CASE(4) AB_CASE(5) AB_CASE(6) AB_CASE(7) AB_CASE(8) }
        if (!full) n -= (GEMM_AB_NV - 1) * V; /* one vector was done, not GEMM_AB_NV */
    }
#undef AB_CASE
    if (nw == N) return;
    if (bt) {
#define AB_TAIL(r) case r: if (r <= GEMM_AB_MR) NAME(ab_tile)(r, 1, K, A, sam, sak, bt, V, beta, C + nw, ldc, N - nw); break;
        switch (mb) { AB_TAIL(1) AB_TAIL(2) AB_TAIL(3) AB_TAIL(4) AB_TAIL(5) AB_TAIL(6) AB_TAIL(7) AB_TAIL(8) }
#undef AB_TAIL
        return;
    }
    for (int64_t n = nw; n < N; n++)
        for (int m = 0; m < mb; m++) {
            T s = 0;
            for (int64_t k = 0; k < K; k++) s += A[m * sam + k * sak] * B[k * ldb + n];
            T *c = C + m * ldc + n;
            *c = beta == 0 ? s : beta * *c + s;
        }
}

static void NAME(gemm_ab)(int64_t M, int64_t N, int64_t K, const void *A_, int64_t lda,
                          const void *B_, int64_t ldb, double beta_, void *C_, int64_t ldc) {
    const T *A = A_, *B = B_, beta = (T)beta_;
    T *C = C_;
    for (int64_t m = 0; m < M; m += GEMM_AB_MR)
        NAME(ab_rows)(M - m < GEMM_AB_MR ? (int)(M - m) : GEMM_AB_MR, N, K, A + m * lda, lda, 1,
                      B, ldb, NULL, beta, C + m * ldc, ldc);
}

/* C = A^T B + beta C, A (K, M), for a short contraction (blas.c sends K <=
 * GEMM_ATB_K): the tiles read A down its columns, and a row's last N mod V
 * columns come from a zero-padded copy of B's (at most GEMM_ATB_K vectors;
 * a longer K takes the scalar sums). */
static void NAME(gemm_atb)(int64_t M, int64_t N, int64_t K, const void *A_, int64_t lda,
                           const void *B_, int64_t ldb, double beta_, void *C_, int64_t ldc) {
    enum { V = GEMM_VB / sizeof(T) };
    const T *A = A_, *B = B_, beta = (T)beta_;
    T *C = C_, bt[GEMM_ATB_K * V];
    const int64_t nw = N / V * V;
    const bool copy = nw < N && K <= GEMM_ATB_K;
    for (int64_t k = 0; copy && k < K; k++)
        for (int64_t j = 0; j < V; j++) bt[k * V + j] = nw + j < N ? B[k * ldb + nw + j] : 0;
    for (int64_t m = 0; m < M; m += GEMM_AB_MR)
        NAME(ab_rows)(M - m < GEMM_AB_MR ? (int)(M - m) : GEMM_AB_MR, N, K, A + m, 1, lda, B, ldb,
                      copy ? bt : NULL, beta, C + m * ldc, ldc);
}

/* C (M, N) = a b^T + beta C for an inner size of 1, a[m] at a[m * sa] and b
 * contiguous: a rank-one update (a linear layer's weight gradient G^T X at
 * batch 1). Each row of C is streamed once, whole vectors then the rest; with
 * beta 0, C is written without being read. */
static void NAME(gemm_outer)(int64_t M, int64_t N, const void *a_, int64_t sa, const void *b_,
                             double beta_, void *C_, int64_t ldc) {
    enum { V = GEMM_VB / sizeof(T) };
    const T *a = a_, *b = b_, beta = (T)beta_;
    T *C = C_;
    const int64_t nw = N / V * V;
    for (int64_t m = 0; m < M; m++) {
        const T x = a[m * sa];
        const NAME(gvec) xv = (NAME(gvec)){0} + x;
        T *c = C + m * ldc;
        for (int64_t n = 0; n < nw; n += V) {
            NAME(gvec) bv, cv;
            memcpy(&bv, b + n, sizeof bv);
            if (beta == 0) {
                cv = xv * bv;
            } else {
                memcpy(&cv, c + n, sizeof cv);
                cv = beta == 1 ? cv + xv * bv : beta * cv + xv * bv;
            }
            memcpy(c + n, &cv, sizeof cv);
        }
        for (int64_t n = nw; n < N; n++)
            c[n] = beta == 0 ? x * b[n] : beta == 1 ? c[n] + x * b[n] : beta * c[n] + x * b[n];
    }
}
