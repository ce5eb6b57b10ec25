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

/* Eight outputs of a row from k0 = the flat offset of the first one's window
 * (w = W), in explicit vectors: the two rows' 16 inputs each loaded whole
 * and split into even and odd columns by shuffles, the same three selects
 * as max_row_chunks in int32 lanes (the offsets), widened once to store. */
typedef T POOL(v8) __attribute__((vector_size(8 * sizeof(T))));
typedef POOL(mask_t) POOL(m8) __attribute__((vector_size(8 * sizeof(T))));
typedef int32_t POOL(i8) __attribute__((vector_size(32)));
typedef int64_t POOL(l8) __attribute__((vector_size(64)));
/* lanes where v replaces best (v > best, or v is NaN and best is not), and
 * the select (macros: a vector argument or result changes the ABI on SSE) */
#define TAKE8(best, v) (((v) > (best)) | (((v) != (v)) & ((best) == (best))))
#define SEL8(m, v, best) ((POOL(v8))(((POOL(m8))(v) & (m)) | ((POOL(m8))(best) & ~(m))))
static inline __attribute__((always_inline)) void POOL(max_chunk8)(const T *top, const T *bot,
                                                                   int32_t k0, int32_t w, T *yr,
                                                                   int64_t *ir) {
    POOL(v8) t0, t1, b0, b1;
    memcpy(&t0, top, sizeof t0), memcpy(&t1, top + 8, sizeof t1);
    memcpy(&b0, bot, sizeof b0), memcpy(&b1, bot + 8, sizeof b1);
    POOL(v8) a = __builtin_shufflevector(t0, t1, 0, 2, 4, 6, 8, 10, 12, 14);
    POOL(v8) b = __builtin_shufflevector(t0, t1, 1, 3, 5, 7, 9, 11, 13, 15);
    POOL(v8) c = __builtin_shufflevector(b0, b1, 0, 2, 4, 6, 8, 10, 12, 14);
    POOL(v8) d = __builtin_shufflevector(b0, b1, 1, 3, 5, 7, 9, 11, 13, 15);
    const POOL(i8) even = {0, 2, 4, 6, 8, 10, 12, 14};
    POOL(i8) ia = even + k0, ic = ia + w;
    POOL(m8) m = TAKE8(a, b);
    a = SEL8(m, b, a), ia -= __builtin_convertvector(m, POOL(i8)); /* + 1 where taken */
    m = TAKE8(c, d);
    c = SEL8(m, d, c), ic -= __builtin_convertvector(m, POOL(i8));
    m = TAKE8(a, c);
    a = SEL8(m, c, a);
    const POOL(i8) mi = __builtin_convertvector(m, POOL(i8));
    ia = (ic & mi) | (ia & ~mi);
    const POOL(l8) il = __builtin_convertvector(ia, POOL(l8));
    memcpy(yr, &a, sizeof a), memcpy(ir, &il, sizeof il);
}
#undef TAKE8
#undef SEL8

/* LeNet's rows are 14 and 5 outputs wide: a vector loop over a row would
 * leave most of it to a scalar remainder whose branches mispredict on data,
 * so rows go in fixed chunks of 8, 4 or 1. */
static void POOL(max_2x2)(const T *x, int64_t W, int64_t OH, int64_t OW, T *y, int64_t *idx) {
    for (int64_t i = 0; i < OH; i++) {
        const T *top = x + 2 * i * W, *bot = top + W;
        T *yr = y + i * OW;
        int64_t *ir = idx + i * OW;
#if POOL_VECTORS
        if (OW >= 8) {
            for (int64_t j0 = 0; j0 < OW; j0 += 8) {
                const int64_t jb = j0 + 8 <= OW ? j0 : OW - 8;
                POOL(max_chunk8)(top + 2 * jb, bot + 2 * jb, (int32_t)(2 * i * W + 2 * jb),
                                 (int32_t)W, yr + jb, ir + jb);
            }
            continue;
        }
        /* A row of 4 to 7 outputs but the last as one chunk of 8: its loads
         * run into the next row pair and its last lanes' stores into the next
         * output row, which that row's chunk writes again (both stay inside
         * the plane: 2 W + 16 <= 3 W and 8 <= 2 OW) */
        if (OW >= 4 && i + 1 < OH) {
            POOL(max_chunk8)(top, bot, (int32_t)(2 * i * W), (int32_t)W, yr, ir);
            continue;
        }
#endif
        if (OW >= 8)
            POOL(max_row_chunks)(top, bot, W, OW, 2 * i * W, yr, ir, 8);
        else if (OW >= 4)
            POOL(max_row_chunks)(top, bot, W, OW, 2 * i * W, yr, ir, 4);
        else
            POOL(max_row_chunks)(top, bot, W, OW, 2 * i * W, yr, ir, 1);
    }
}
