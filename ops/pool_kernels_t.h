/* pool_kernels_t.h - the max-pool kernels of pool_kernels.c for element type
 * T (float or double), included once per type with T and POOL(x) defined. */

/* Outputs [0, OW) of a row in chunks of ch outputs (OW >= ch), the last
 * chunk shifted back to end at the row's end (it recomputes a few outputs
 * with the same values). A row is reduced pair by pair, then the two rows:
 * a tie between the rows keeps the top, within a row the left, which is
 * window order; a NaN is never replaced by take(). */
static inline __attribute__((always_inline)) void POOL(max_row_chunks)(
    const T *top, const T *bot, int64_t W, int64_t OW, int64_t base, T *yr, int64_t *ir,
    int64_t ch) {
    for (int64_t j0 = 0; j0 < OW; j0 += ch) {
        const int64_t jb = j0 + ch <= OW ? j0 : OW - ch;
        POOL_SIMD for (int64_t t = 0; t < ch; t++) {
            const int64_t j = jb + t;
            const int32_t k = (int32_t)(base + 2 * j), w = (int32_t)W;
            T a = top[2 * j], b = top[2 * j + 1], c = bot[2 * j], d = bot[2 * j + 1];
            int32_t ia = k, ic = k + w;
            /* take v over best when v > best, or v is NaN and best is not;
             * spelled so that the compiler if-converts it */
            if (b > a || (b != b && a == a)) a = b, ia = k + 1;
            if (d > c || (d != d && c == c)) c = d, ic = k + w + 1;
            if (c > a || (c != c && a == a)) a = c, ia = ic;
            yr[j] = a;
            ir[j] = ia;
        }
    }
}

/* LeNet's rows are 14 and 5 outputs wide: a vector loop over a row would
 * leave most of it to a scalar remainder whose branches mispredict on data,
 * so rows go in fixed chunks of 8, 4 or 1. */
static void POOL(max_2x2)(const T *x, int64_t W, int64_t OH, int64_t OW, T *y, int64_t *idx) {
    for (int64_t i = 0; i < OH; i++) {
        const T *top = x + 2 * i * W, *bot = top + W;
        T *yr = y + i * OW;
        int64_t *ir = idx + i * OW;
        if (OW >= 8)
            POOL(max_row_chunks)(top, bot, W, OW, 2 * i * W, yr, ir, 8);
        else if (OW >= 4)
            POOL(max_row_chunks)(top, bot, W, OW, 2 * i * W, yr, ir, 4);
        else
            POOL(max_row_chunks)(top, bot, W, OW, 2 * i * W, yr, ir, 1);
    }
}
