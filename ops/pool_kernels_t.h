/* pool_kernels_t.h - the max-pool kernels of pool_kernels.c for element type
 * T (float or double), included once per type with T and POOL(x) defined.
 *
 * A window's argmax is worked out as its tap t (0 top-left, 1 top-right,
 * 2 bottom-left, 3 bottom-right: window order), then stored either as its
 * flat offset in the plane, (2 i + t / 2) W + 2 j + t % 2 (idx, int64), or
 * as t itself (code, int32: conv2d_max_pool2d's). */

/* Outputs [0, OW) of a row in chunks of ch outputs (OW >= ch), the last
 * chunk shifted back to end at the row's end (it recomputes a few outputs
 * with the same values). A row is reduced pair by pair, then the two rows:
 * a tie between the rows keeps the top, within a row the left, which is
 * window order; a NaN is never replaced by take(). base is the row pair's
 * offset in the plane; one of ir (offsets) and cr (taps) is NULL. */
static inline __attribute__((always_inline)) void POOL(max_row_chunks)(
    const T *top, const T *bot, int64_t W, int64_t OW, int64_t base, T *yr, int64_t *ir,
    int32_t *cr, int64_t ch) {
    for (int64_t j0 = 0; j0 < OW; j0 += ch) {
        const int64_t jb = j0 + ch <= OW ? j0 : OW - ch;
        POOL_SIMD for (int64_t t = 0; t < ch; t++) {
            const int64_t j = jb + t;
            T a = top[2 * j], b = top[2 * j + 1], c = bot[2 * j], d = bot[2 * j + 1];
            int32_t ta = 0, tc = 2;
            /* take v over best when v > best, or v is NaN and best is not;
             * spelled so that the compiler if-converts it */
            if (b > a || (b != b && a == a)) a = b, ta = 1;
            if (d > c || (d != d && c == c)) c = d, tc = 3;
            if (c > a || (c != c && a == a)) a = c, ta = tc;
            yr[j] = a;
            if (ir)
                ir[j] = (int32_t)(base + 2 * j) + (ta >> 1) * (int32_t)W + (ta & 1);
            else
                cr[j] = ta;
        }
    }
}

/* Eight outputs' vectors (the max pool's on AVX2 and AVX-512, the unpool's on
 * every variant): values, their comparisons' lanes, taps */
typedef T POOL(v8) __attribute__((vector_size(8 * sizeof(T))));
typedef POOL(mask_t) POOL(m8) __attribute__((vector_size(8 * sizeof(T))));
typedef int32_t POOL(i8) __attribute__((vector_size(32)));
#if POOL_VECTORS
typedef int64_t POOL(l8) __attribute__((vector_size(64))); /* the taps' offsets */
/* Eight outputs of a row from k0 = the flat offset of the first one's window
 * (w = W), in explicit vectors: the two rows' 16 inputs each loaded whole
 * and split into even and odd columns by shuffles, the same three selects
 * as max_row_chunks, the taps in int32 lanes, widened or narrowed once to
 * store. */
/* the select of v where m, best elsewhere (a macro, as TG_POOL_TAKES: a
 * vector argument or result changes the ABI on SSE) */
#define SEL8(m, v, best) ((POOL(v8))(((POOL(m8))(v) & (m)) | ((POOL(m8))(best) & ~(m))))
static inline __attribute__((always_inline)) void POOL(max_chunk8)(const T *top, const T *bot,
                                                                   int32_t k0, int32_t w, T *yr,
                                                                   int64_t *ir, int32_t *cr) {
    POOL(v8) t0, t1, b0, b1;
    memcpy(&t0, top, sizeof t0), memcpy(&t1, top + 8, sizeof t1);
    memcpy(&b0, bot, sizeof b0), memcpy(&b1, bot + 8, sizeof b1);
    POOL(v8) a = __builtin_shufflevector(t0, t1, 0, 2, 4, 6, 8, 10, 12, 14);
    POOL(v8) b = __builtin_shufflevector(t0, t1, 1, 3, 5, 7, 9, 11, 13, 15);
    POOL(v8) c = __builtin_shufflevector(b0, b1, 0, 2, 4, 6, 8, 10, 12, 14);
    POOL(v8) d = __builtin_shufflevector(b0, b1, 1, 3, 5, 7, 9, 11, 13, 15);
    POOL(m8) m = TG_POOL_TAKES(a, b);
    a = SEL8(m, b, a);
    const POOL(i8) ta = __builtin_convertvector(m, POOL(i8)) & 1; /* 1 where b was taken */
    m = TG_POOL_TAKES(c, d);
    c = SEL8(m, d, c);
    const POOL(i8) tc = (__builtin_convertvector(m, POOL(i8)) & 1) + 2;
    m = TG_POOL_TAKES(a, c);
    a = SEL8(m, c, a);
    const POOL(i8) mi = __builtin_convertvector(m, POOL(i8)), t = (tc & mi) | (ta & ~mi);
    memcpy(yr, &a, sizeof a);
    if (ir) {
        const POOL(i8) even = {0, 2, 4, 6, 8, 10, 12, 14};
        const POOL(l8) il = __builtin_convertvector(even + k0 + (-(t >> 1) & w) + (t & 1), POOL(l8));
        memcpy(ir, &il, sizeof il);
    } else {
        memcpy(cr, &t, sizeof t);
    }
}
#undef SEL8
#endif

/* LeNet's rows are 14 and 5 outputs wide: a vector loop over a row would
 * leave most of it to a scalar remainder whose branches mispredict on data,
 * so rows go in fixed chunks of 8, 4 or 1. One of idx and code is NULL. */
static inline __attribute__((always_inline)) void POOL(max_2x2_plane)(
    const T *x, int64_t W, int64_t OH, int64_t OW, T *y, int64_t *idx, int32_t *code) {
    for (int64_t i = 0; i < OH; i++) {
        const T *top = x + 2 * i * W, *bot = top + W;
        T *yr = y + i * OW;
        int64_t *ir = idx ? idx + i * OW : NULL;
        int32_t *cr = code ? code + i * OW : NULL;
#if POOL_VECTORS
        if (OW >= 8) {
            for (int64_t j0 = 0; j0 < OW; j0 += 8) {
                const int64_t jb = j0 + 8 <= OW ? j0 : OW - 8;
                POOL(max_chunk8)(top + 2 * jb, bot + 2 * jb, (int32_t)(2 * i * W + 2 * jb),
                                 (int32_t)W, yr + jb, ir ? ir + jb : NULL, cr ? cr + jb : NULL);
            }
            continue;
        }
        /* A row of 4 to 7 outputs but the last as one chunk of 8: its loads
         * run into the next row pair (to (2 i + 1) W + 16 <= (2 OH - 3) W + 16,
         * inside the plane as 16 <= 3 W) and its last lanes' stores into the
         * next output row (8 <= 2 OW), which that row's chunk writes again */
        if (OW >= 4 && i + 1 < OH) {
            POOL(max_chunk8)(top, bot, (int32_t)(2 * i * W), (int32_t)W, yr, ir, cr);
            continue;
        }
#endif
        if (OW >= 8)
            POOL(max_row_chunks)(top, bot, W, OW, 2 * i * W, yr, ir, cr, 8);
        else if (OW >= 4)
            POOL(max_row_chunks)(top, bot, W, OW, 2 * i * W, yr, ir, cr, 4);
        else
            POOL(max_row_chunks)(top, bot, W, OW, 2 * i * W, yr, ir, cr, 1);
    }
}
static void POOL(max_2x2)(const T *x, int64_t W, int64_t OH, int64_t OW, T *y, int64_t *idx) {
    POOL(max_2x2_plane)(x, W, OH, OW, y, idx, NULL);
}
static void POOL(max_2x2_code)(const T *x, int64_t W, int64_t OH, int64_t OW, T *y, int32_t *code) {
    POOL(max_2x2_plane)(x, W, OH, OW, y, NULL, code);
}

/* v where on, else +0: by its bits, as the vector form does (the ternary
 * branched, and a tap is data the predictor cannot learn) */
static inline T POOL(keep)(T v, int on) {
    POOL(mask_t) b;
    memcpy(&b, &v, sizeof b);
    b &= -(POOL(mask_t))on;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* The adjoint into a whole (H, W) plane whose rows start ld >= W apart: each
 * window's four elements get g at its tap and 0 at the other three, and the
 * rows and columns no window holds get 0, so dx needs no zeroing first; so do
 * the ld - W elements after each row but the last (a convolution's wide
 * layout, whose row gaps must hold zeros). A row of 8+ outputs goes 8
 * outputs at a time, on every variant: per row of the window, a vector of g
 * where the tap is left and one where it is right, interleaved by shuffles.
 * A row of 4-7 outputs but the last is one such chunk: its lanes past the
 * row read the next output row (inside the plane, as 8 <= 2 OW), and what
 * they store lands in the columns past 2 OW, zeroed after, or in the next
 * rows, written after (the bottom row's store follows the top's). */
static void POOL(unpool_2x2_code)(const T *g, const int32_t *code, int64_t OH, int64_t OW, int64_t H,
                                  int64_t W, int64_t ld, T *dx) {
    for (int64_t i = 0; i < OH; i++) {
        const T *gr = g + i * OW;
        const int32_t *cr = code + i * OW;
        T *top = dx + 2 * i * ld, *bot = top + ld;
        int64_t j = 0;
        if (OW >= 8 || (OW >= 4 && i + 1 < OH)) {
            for (int64_t j0 = 0; j0 < OW; j0 += 8) {
                const int64_t jb = OW < 8 ? 0 : j0 + 8 <= OW ? j0 : OW - 8;
                POOL(v8) gv;
                POOL(i8) t;
                memcpy(&gv, gr + jb, sizeof gv);
                memcpy(&t, cr + jb, sizeof t);
                const POOL(m8) gm = (POOL(m8))gv;
                const POOL(v8) t0 = (POOL(v8))(gm & __builtin_convertvector(t == 0, POOL(m8)));
                const POOL(v8) t1 = (POOL(v8))(gm & __builtin_convertvector(t == 1, POOL(m8)));
                const POOL(v8) t2 = (POOL(v8))(gm & __builtin_convertvector(t == 2, POOL(m8)));
                const POOL(v8) t3 = (POOL(v8))(gm & __builtin_convertvector(t == 3, POOL(m8)));
                const POOL(v8) u0 = __builtin_shufflevector(t0, t1, 0, 8, 1, 9, 2, 10, 3, 11);
                const POOL(v8) u1 = __builtin_shufflevector(t0, t1, 4, 12, 5, 13, 6, 14, 7, 15);
                const POOL(v8) v0 = __builtin_shufflevector(t2, t3, 0, 8, 1, 9, 2, 10, 3, 11);
                const POOL(v8) v1 = __builtin_shufflevector(t2, t3, 4, 12, 5, 13, 6, 14, 7, 15);
                memcpy(top + 2 * jb, &u0, sizeof u0), memcpy(top + 2 * jb + 8, &u1, sizeof u1);
                memcpy(bot + 2 * jb, &v0, sizeof v0), memcpy(bot + 2 * jb + 8, &v1, sizeof v1);
                if (OW < 8) break;
            }
            j = OW;
        }
        for (int64_t k = j; k < OW; k++) {
            const T v = gr[k];
            const int t = cr[k];
            top[2 * k] = POOL(keep)(v, t == 0), top[2 * k + 1] = POOL(keep)(v, t == 1);
            bot[2 * k] = POOL(keep)(v, t == 2), bot[2 * k + 1] = POOL(keep)(v, t == 3);
        }
        /* the columns past the windows, and the gaps (bot's is the plane's
         * end when it is the last row) */
        const int64_t bot_end = 2 * i + 2 < H ? ld : W;
        for (int64_t c = 2 * OW; c < ld; c++) top[c] = 0;
        for (int64_t c = 2 * OW; c < bot_end; c++) bot[c] = 0;
    }
    for (int64_t r = 2 * OH; r < H; r++) {
        T *row = dx + r * ld;
        const int64_t end = r + 1 < H ? ld : W;
        for (int64_t c = 0; c < end; c++) row[c] = 0;
    }
}
