/* pool.c - 2-D max and average pooling over (B, C, H, W), one (b, c) plane at
 * a time.
 *
 *   OH = (H + 2 ph - KH) / sh + 1, likewise OW (floor; no ceil mode).
 *   Window (i, j) covers rows i sh - ph .. + KH - 1 and cols j sw - pw .. + KW - 1.
 *
 * Padding is at most half the kernel (as in PyTorch), so every window holds at
 * least one input element.
 *
 * Kernels, same results:
 *   - unpadded (LeNet): every window is whole; output k's window starts at a
 *     fixed flat offset org[k] of its plane (a table the builder makes), and
 *     tap (u, v) is u W + v further. One vectorised loop over the plane's
 *     outputs per tap; LeNet's 14- and 5-wide output rows are too short to
 *     vectorise one by one. For a fixed tap distinct outputs touch distinct
 *     elements (windows have distinct origins), so the avg vjp's scatter is
 *     safe in a SIMD loop too.
 *   - padded: one output row at a time, taps as the outer loops, the row's
 *     columns whose tap lies inside the input as the vectorised inner loop.
 *   - max with 2x2 windows, stride 2, unpadded (LeNet's pools): the four taps
 *     as stride-2 loads in one pass over each output row, without the
 *     unpadded kernel's gathers (under half its time on LeNet's shapes),
 *     compiled per ISA variant in pool_kernels.c.
 * Both visit the taps in window order (row by row, left to right).
 *
 * Threads: planes are independent and each thread owns whole planes of the
 * output and of dx, so results are bit-identical for any thread count. */
#include "elementwise.h"
#include "pool_kernels.h"
#include "grad_ops.h"

/* The 2x2 stride-2 max kernel of the variant in use (pool_kernels.c), and its
 * oracle: the four taps in window order, a NaN kept once taken. */
const pool_kernels *tg_pool_kernels_of(isa_level v) {
    static const pool_kernels *const variants[ISA_COUNT] = {&tg_pool_kernels_v2, &tg_pool_kernels_v3,
                                                            &tg_pool_kernels_v4};
    return variants[v];
}
const pool_kernels *tg_pool_kernels_run(void) {
    const int v = tg_isa_in_use();
    return tg_pool_kernels_of(v < 0 ? ISA_V2 : (isa_level)v);
}

#define MAX_2X2_NAIVE(T)                                                                \
    void tg_pool_max_2x2_naive_##T(const T *x, int64_t W, int64_t OH, int64_t OW, T *y,   \
                                   int64_t *idx) {                                      \
        for (int64_t i = 0; i < OH; i++)                                                \
            for (int64_t j = 0; j < OW; j++) {                                          \
                int64_t at = 2 * i * W + 2 * j;                                         \
                for (int64_t t = 1; t < 4; t++) {                                       \
                    int64_t k = (2 * i + t / 2) * W + 2 * j + t % 2;                     \
                    if (x[at] != x[at] ? false : x[k] != x[k] || x[k] > x[at]) at = k;  \
                }                                                                       \
                y[i * OW + j] = x[at], idx[i * OW + j] = at;                            \
            }                                                                           \
    }
MAX_2X2_NAIVE(float)
MAX_2X2_NAIVE(double)

typedef struct {
    int64_t planes, H, W, OH, OW, kh, kw, sh, sw, ph, pw;
    bool include_pad;
} pool_geom;

/* Node integer params: ip[0..1] kernel, ip[2..3] stride, ip[4..5] padding,
 * ip[6] count_include_pad (the same layout in the sample cases). */
static void pool_geom_of(const tape_node *n, pool_geom *q) {
    const tensor *x = n->in[0], *y = n->out;
    q->planes = x->shape[0] * x->shape[1];
    q->H = x->shape[2], q->W = x->shape[3], q->OH = y->shape[2], q->OW = y->shape[3];
    q->kh = n->ip[0], q->kw = n->ip[1], q->sh = n->ip[2], q->sw = n->ip[3];
    q->ph = n->ip[4], q->pw = n->ip[5], q->include_pad = n->ip[6] != 0;
}

/* The output columns [lo, hi) whose input column j*s + off lies in [0, W). */
static inline void cols_in_range(int64_t off, int64_t s, int64_t W, int64_t OW, int64_t *lo,
                                 int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = W - 1 - off < 0 ? 0 : (W - 1 - off) / s + 1;
    if (h > OW) h = OW;
    if (l > h) l = h;
    *lo = l, *hi = h;
}

/* Flat offset of tap t (window order) from its window's origin. */
static inline int64_t tap_offset(const pool_geom *q, int64_t t) {
    return t / q->kw * q->W + t % q->kw;
}

/* The input rows [r0, r1) under output row i's windows, clipped to the input. */
static inline void rows_in_range(const pool_geom *q, int64_t i, int64_t *r0, int64_t *r1) {
    int64_t h0 = i * q->sh - q->ph;
    *r0 = h0 < 0 ? 0 : h0;
    *r1 = h0 + q->kh > q->H ? q->H : h0 + q->kh;
}

/* for (p = 0; p < planes; p++) BODY, split across threads only when that
 * pays (a batch-1 LeNet plane set costs less than entering a region). */
#define POOL_FOR(p, q, ...) \
    TG_PAR_FOR(p, (q)->planes, (q)->planes * (q)->OH * (q)->OW * (q)->kh * (q)->kw, __VA_ARGS__)
#define SIMD _Pragma("omp simd")

/* best = v (and at = k) when v > best, or v is NaN and best is not: max_plane's
 * test, spelled so that GCC if-converts it (!(v <= best) leaves loops scalar). */
#define MAX_TAKE(best, at, v, k)                                                        \
    if ((v) > (best) || ((v) != (v) && (best) == (best))) (best) = (v), (at) = (k)

/* max:  y[p, i, j] = max over the window of x[p]; idx[p, i, j] = the argmax's
 *       flat offset in the plane (padding is -inf, so never chosen). Ties go to
 *       the first maximum in window order; a NaN wins over numbers (the first
 *       NaN is kept). Selects, not branches: on random data the branch on
 *       "larger?" mispredicts, and branches block vectorisation.
 *       dx[p, idx[p, i, j]] += g[p, i, j]. The vjp stays a scatter through idx:
 *       for 2x2 stride-2 windows a dense form (each row pair of dx written by
 *       vectors, g at the argmax tap and 0 at the other three, interleaved by a
 *       shuffle) measured slower on LeNet at batch 64 (5.6% of the step against
 *       2.3%): it reads and writes four dx elements per output, not one. Written
 *       once into a fresh dx (no zeroing pass) it was still 1.1-2.8x the time
 *       of zeroing then scattering (AMD EPYC Zen 4, BENCHMARKS.md). */
#define MAX_POOL_KERNELS(T)                                                             \
    static void max_plane_##T(const pool_geom *q, const T *xp, const int64_t *org, T *best, \
                              int64_t *at) {                                            \
        int64_t n = q->OH * q->OW;                                                      \
        SIMD for (int64_t k = 0; k < n; k++) best[k] = xp[org[k]], at[k] = org[k];      \
        for (int64_t t = 1; t < q->kh * q->kw; t++) {                                   \
            int64_t toff = tap_offset(q, t);                                            \
            SIMD for (int64_t k = 0; k < n; k++) {                                      \
                T val = xp[org[k] + toff], b = best[k];                                 \
                bool take = !(val <= b) & (b == b);                                     \
                best[k] = take ? val : b;                                               \
                at[k] = take ? org[k] + toff : at[k];                                   \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    /* one tap for columns [lo, hi) of an output row: column j reads plane row r at  \
     * j sw + off; the first tap a column sees (at < 0) is always taken */            \
    static inline void max_tap_##T(const T *xp, int64_t r, int64_t W, T *best, int64_t *at, \
                                   int64_t lo, int64_t hi, int64_t sw, int64_t off) {     \
        SIMD for (int64_t j = lo; j < hi; j++) {                                        \
            int64_t c = r * W + j * sw + off;                                           \
            T val = xp[c], b = best[j];                                                 \
            bool take = (at[j] < 0) | (!(val <= b) & (b == b));                         \
            best[j] = take ? val : b;                                                   \
            at[j] = take ? c : at[j];                                                   \
        }                                                                               \
    }                                                                                   \
    static void max_plane_padded_##T(const pool_geom *q, const T *xp, T *y, int64_t *idx) { \
        for (int64_t i = 0; i < q->OH; i++) {                                           \
            T *best = y + i * q->OW;                                                    \
            int64_t *at = idx + i * q->OW;                                              \
            for (int64_t j = 0; j < q->OW; j++) best[j] = 0, at[j] = -1;                \
            for (int64_t u = 0; u < q->kh; u++) {                                       \
                int64_t r = i * q->sh - q->ph + u, lo, hi;                              \
                if (r < 0 || r >= q->H) continue;                                       \
                for (int64_t v = 0; v < q->kw; v++) {                                   \
                    cols_in_range(v - q->pw, q->sw, q->W, q->OW, &lo, &hi);             \
                    max_tap_##T(xp, r, q->W, best, at, lo, hi, q->sw, v - q->pw);       \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    static void max_pool_fwd_##T(const pool_geom *q, const T *x, T *y, int64_t *idx,    \
                                 const int64_t *org) {                                  \
        int64_t in = q->H * q->W, out = q->OH * q->OW;                                  \
        bool k2s2 = org && q->kh == 2 && q->kw == 2 && q->sh == 2 && q->sw == 2 &&       \
                    in <= INT32_MAX; /* the kernel's offsets are int32 */             \
        void (*max_2x2)(const T *, int64_t, int64_t, int64_t, T *, int64_t *) =          \
            tg_pool_kernels_run()->max_2x2_##T;                                         \
        POOL_FOR(p, q, {                                                                \
            if (k2s2)                                                                   \
                max_2x2(x + p * in, q->W, q->OH, q->OW, y + p * out, idx + p * out);     \
            else if (org)                                                               \
                max_plane_##T(q, x + p * in, org, y + p * out, idx + p * out);          \
            else                                                                        \
                max_plane_padded_##T(q, x + p * in, y + p * out, idx + p * out);        \
        });                                                                             \
    }                                                                                   \
    static void max_pool_bwd_##T(const pool_geom *q, const T *g, const int64_t *idx, T *dx, \
                                 bool zero) {                                           \
        int64_t in = q->H * q->W, out = q->OH * q->OW;                                  \
        /* windows that do not overlap have distinct argmaxes: into a zeroed   \
         * plane the gradient is stored, not added (a load less per element) */ \
        const bool store = zero && q->kh <= q->sh && q->kw <= q->sw;                    \
        POOL_FOR(p, q, {                                                                \
            T *d = dx + p * in;                                                         \
            if (zero) memset(d, 0, (size_t)in * sizeof(T));                             \
            if (store)                                                                  \
                for (int64_t o = p * out; o < (p + 1) * out; o++) d[idx[o]] = g[o];     \
            else                                                                        \
                for (int64_t o = p * out; o < (p + 1) * out; o++) d[idx[o]] += g[o];    \
        });                                                                             \
    }
MAX_POOL_KERNELS(float)
MAX_POOL_KERNELS(double)

/* avg:  y[p, i, j] = sum over the window of x[p] / n(i, j), with n the full
 *       KH KW when count_include_pad (always, without padding), else the number
 *       of input elements in the window.
 *       dx[p, r, c] += g[p, i, j] / n(i, j) for every window holding (r, c). */
#define AVG_POOL_KERNELS(T)                                                             \
    static void avg_plane_##T(const pool_geom *q, const T *xp, const int64_t *org, T *y) { \
        int64_t n = q->OH * q->OW;                                                      \
        const T div = (T)(q->kh * q->kw);                                               \
        SIMD for (int64_t k = 0; k < n; k++) y[k] = xp[org[k]];                         \
        for (int64_t t = 1; t < q->kh * q->kw; t++) {                                   \
            int64_t toff = tap_offset(q, t);                                            \
            SIMD for (int64_t k = 0; k < n; k++) y[k] += xp[org[k] + toff];             \
        }                                                                               \
        SIMD for (int64_t k = 0; k < n; k++) y[k] /= div;                               \
    }                                                                                   \
    static void avg_plane_vjp_##T(const pool_geom *q, const T *g, const int64_t *org, T *dp) { \
        int64_t n = q->OH * q->OW;                                                      \
        const T div = (T)(q->kh * q->kw);                                               \
        for (int64_t t = 0; t < q->kh * q->kw; t++) {                                   \
            int64_t toff = tap_offset(q, t);                                            \
            SIMD for (int64_t k = 0; k < n; k++) dp[org[k] + toff] += g[k] / div;       \
        }                                                                               \
    }                                                                                   \
    /* padded, one output row at a time: the forward when y is given (y = sum / n),  \
     * else the vjp (dx += g / n), over the taps inside the input in window order */   \
    static void avg_plane_padded_##T(const pool_geom *q, const T *xp, T *y, T *dp,      \
                                     const T *g) {                                      \
        for (int64_t i = 0; i < q->OH; i++) {                                           \
            int64_t r0, r1, lo, hi;                                                     \
            rows_in_range(q, i, &r0, &r1);                                              \
            T *yr = y ? y + i * q->OW : NULL;                                           \
            const T *gr = g ? g + i * q->OW : NULL;                                     \
            if (yr)                                                                     \
                for (int64_t j = 0; j < q->OW; j++) yr[j] = 0;                          \
            for (int64_t r = r0; r < r1; r++)                                           \
                for (int64_t v = 0; v < q->kw; v++) {                                   \
                    int64_t off = v - q->pw;                                            \
                    cols_in_range(off, q->sw, q->W, q->OW, &lo, &hi);                   \
                    for (int64_t j = lo; j < hi; j++) {                                 \
                        int64_t c = r * q->W + j * q->sw + off;                         \
                        if (yr)                                                         \
                            yr[j] += xp[c];                                             \
                        else                                                            \
                            dp[c] += gr[j] / avg_divisor_##T(q, r0, r1, j);             \
                    }                                                                   \
                }                                                                       \
            if (yr)                                                                     \
                for (int64_t j = 0; j < q->OW; j++) yr[j] /= avg_divisor_##T(q, r0, r1, j); \
        }                                                                               \
    }                                                                                   \
    static void avg_pool_fwd_##T(const pool_geom *q, const T *x, T *y, const int64_t *org) { \
        int64_t in = q->H * q->W, out = q->OH * q->OW;                                  \
        POOL_FOR(p, q, {                                                                \
            if (org)                                                                    \
                avg_plane_##T(q, x + p * in, org, y + p * out);                         \
            else                                                                        \
                avg_plane_padded_##T(q, x + p * in, y + p * out, NULL, NULL);           \
        });                                                                             \
    }                                                                                   \
    static void avg_pool_bwd_##T(const pool_geom *q, const T *g, T *dx, const int64_t *org) { \
        int64_t in = q->H * q->W, out = q->OH * q->OW;                                  \
        POOL_FOR(p, q, {                                                                \
            if (org)                                                                    \
                avg_plane_vjp_##T(q, g + p * out, org, dx + p * in);                    \
            else                                                                        \
                avg_plane_padded_##T(q, NULL, NULL, dx + p * in, g + p * out);          \
        });                                                                             \
    }

/* n(i, j) of a padded-path window with rows [r0, r1) and column origin j sw - pw */
#define AVG_DIVISOR(T)                                                                  \
    static inline T avg_divisor_##T(const pool_geom *q, int64_t r0, int64_t r1, int64_t j) { \
        if (q->include_pad) return (T)(q->kh * q->kw);                                  \
        int64_t c0 = j * q->sw - q->pw, c1 = c0 + q->kw;                                \
        c0 = c0 < 0 ? 0 : c0, c1 = c1 > q->W ? q->W : c1;                               \
        return (T)((r1 - r0) * (c1 - c0));                                              \
    }
AVG_DIVISOR(float)
AVG_DIVISOR(double)
AVG_POOL_KERNELS(float)
AVG_POOL_KERNELS(double)

static void max_pool2d_forward(tape_node *n) {
    pool_geom q;
    pool_geom_of(n, &q);
    const int64_t *org = n->saved[1] ? n->saved[1]->data : NULL;
    if (n->out->dtype == DTYPE_F32)
        max_pool_fwd_float(&q, n->in[0]->data, n->out->data, n->saved[0]->data, org);
    else
        max_pool_fwd_double(&q, n->in[0]->data, n->out->data, n->saved[0]->data, org);
}

static void max_pool2d_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    pool_geom q;
    pool_geom_of(n, &q);
    /* a fresh dx (never written) is zeroed plane by plane before its scatter */
    const bool zero = tg_grad_take_fresh(gin[0]);
    if (n->out->dtype == DTYPE_F32)
        max_pool_bwd_float(&q, n->out->grad->data, n->saved[0]->data, gin[0]->data, zero);
    else
        max_pool_bwd_double(&q, n->out->grad->data, n->saved[0]->data, gin[0]->data, zero);
}

static void avg_pool2d_forward(tape_node *n) {
    pool_geom q;
    pool_geom_of(n, &q);
    const int64_t *org = n->saved[0] ? n->saved[0]->data : NULL;
    if (n->out->dtype == DTYPE_F32)
        avg_pool_fwd_float(&q, n->in[0]->data, n->out->data, org);
    else
        avg_pool_fwd_double(&q, n->in[0]->data, n->out->data, org);
}

static void avg_pool2d_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    pool_geom q;
    pool_geom_of(n, &q);
    const int64_t *org = n->saved[0] ? n->saved[0]->data : NULL;
    if (n->out->dtype == DTYPE_F32)
        avg_pool_bwd_float(&q, n->out->grad->data, gin[0]->data, org);
    else
        avg_pool_bwd_double(&q, n->out->grad->data, gin[0]->data, org);
}

/* ------------------------------------------------------------ builders */
/* The pool family: index of each op in tg_ops_pool, its entry below. */
enum { MAX_POOL2D, AVG_POOL2D, N_POOL_OPS };

extern const op_def tg_ops_pool[];

/* Validates x and p for op; fills the output shape. */
static int pool_validate(const char *op, const tensor *x, pool2d_params p, int64_t *shape) {
    char sx[96]; /* x's shape, formatted only for a message: snprintf costs ~0.2 us a call */
    if (x->ndim != 4) {
        tg_error_set("%s: input must be 4-D (B, C, H, W), got %s", op,
                  tensor_shape_str(x, sx, sizeof sx));
        return -1;
    }
    if (p.kernel[0] < 1 || p.kernel[1] < 1 || p.stride[0] < 1 || p.stride[1] < 1) {
        tg_error_set("%s: kernel [%d,%d] and stride [%d,%d] must be >= 1", op, p.kernel[0],
                  p.kernel[1], p.stride[0], p.stride[1]);
        return -1;
    }
    if (p.padding[0] < 0 || p.padding[1] < 0 || p.padding[0] > p.kernel[0] / 2 ||
        p.padding[1] > p.kernel[1] / 2) {
        tg_error_set("%s: padding [%d,%d] must be >= 0 and at most half the kernel [%d,%d]", op,
                  p.padding[0], p.padding[1], p.kernel[0], p.kernel[1]);
        return -1;
    }
    int64_t ph = x->shape[2] + 2 * (int64_t)p.padding[0], pw = x->shape[3] + 2 * (int64_t)p.padding[1];
    if (p.kernel[0] > ph || p.kernel[1] > pw) {
        tg_error_set("%s: kernel [%d,%d] larger than padded input %lldx%lld (input %s, padding [%d,%d])",
                  op, p.kernel[0], p.kernel[1], (long long)ph, (long long)pw,
                  tensor_shape_str(x, sx, sizeof sx), p.padding[0], p.padding[1]);
        return -1;
    }
    shape[0] = x->shape[0], shape[1] = x->shape[1];
    shape[2] = (ph - p.kernel[0]) / p.stride[0] + 1;
    shape[3] = (pw - p.kernel[1]) / p.stride[1] + 1;
    return 0;
}

static void pool_set_params(tape_node *n, pool2d_params p) {
    const int ip[7] = {p.kernel[0], p.kernel[1], p.stride[0], p.stride[1],
                       p.padding[0], p.padding[1], p.count_include_pad};
    for (int i = 0; i < 7; i++) n->ip[i] = ip[i];
}

/* Without padding: *org = a tape-owned table of the flat offset of each
 * output's window origin in its plane (fixed by the shapes, so made here and
 * only read by forward); with padding *org stays NULL. Returns 0 or -1. */
static int window_origins(const tensor *x, pool2d_params p, const int64_t *shape, tensor **org) {
    if (p.padding[0] || p.padding[1]) return 0;
    *org = tg_tensor_tape_new(DTYPE_I64, 2, shape + 2);
    if (!*org) return -1;
    int64_t *o = (*org)->data;
    for (int64_t i = 0; i < shape[2]; i++)
        for (int64_t j = 0; j < shape[3]; j++)
            o[i * shape[3] + j] = i * p.stride[0] * x->shape[3] + j * p.stride[1];
    return 0;
}

tensor *tensor_max_pool2d(tensor *x, pool2d_params p) {
    const op_def *op = &tg_ops_pool[MAX_POOL2D];
    int64_t shape[4];
    if (tg_op_check_inputs(op, &x, 1, 0) || pool_validate(op->name, x, p, shape)) return NULL;
    tape_node *n = tg_node_begin(op, &x, 1, x->dtype, 4, shape);
    if (!n) return NULL;
    /* argmax offsets, written by every forward, read by the vjp */
    n->saved[0] = tg_tensor_tape_new(DTYPE_I64, 4, shape);
    if (!n->saved[0]) return NULL;
    pool_set_params(n, p);
    if (window_origins(x, p, shape, &n->saved[1])) return NULL;
    return tg_node_finish(n);
}

tensor *tensor_avg_pool2d(tensor *x, pool2d_params p) {
    const op_def *op = &tg_ops_pool[AVG_POOL2D];
    int64_t shape[4];
    if (tg_op_check_inputs(op, &x, 1, 0) || pool_validate(op->name, x, p, shape)) return NULL;
    tape_node *n = tg_node_begin(op, &x, 1, x->dtype, 4, shape);
    if (!n) return NULL;
    pool_set_params(n, p);
    if (window_origins(x, p, shape, &n->saved[0])) return NULL;
    return tg_node_finish(n);
}

/* ------------------------------------------------------------- samples */
static const struct {
    const char *what;
    int64_t x[4];
    int ip[7]; /* kernel, stride, padding, count_include_pad */
} pool_cases[] = {
    {"2x2 stride 2", {2, 3, 6, 6}, {2, 2, 2, 2, 0, 0, 0}},
    {"3x3 stride 2 pad 1", {1, 2, 7, 7}, {3, 3, 2, 2, 1, 1, 0}},
    {"2x3 stride (1,2) pad 1", {2, 2, 5, 8}, {2, 3, 1, 2, 1, 1, 0}},
    {"3x3 stride 1", {1, 1, 6, 5}, {3, 3, 1, 1, 0, 0, 0}},
    {"3x3 stride 2 pad 1, incl. pad", {1, 2, 7, 7}, {3, 3, 2, 2, 1, 1, 1}},
    {"2x3 stride (1,2) pad 1, incl. pad", {2, 2, 5, 8}, {2, 3, 1, 2, 1, 1, 1}},
};

/* Fills case k with input x (distinct values for max: no ties in a window). */
static int pool_sample(int k, rng *g, op_sample *s, bool distinct, int n_cases) {
    if (k >= n_cases) return 1;
    s->n_inputs = 1;
    s->inputs[0] = distinct ? tg_sample_tensor_distinct(g, 4, pool_cases[k].x, -1.5, 0.01)
                            : tg_sample_tensor(g, 4, pool_cases[k].x, -1.5, 1.5);
    for (int i = 0; i < 7; i++) s->ip[i] = pool_cases[k].ip[i];
    char sx[64];
    tg_sample_name(s, "%s: %s", tensor_shape_str(s->inputs[0], sx, sizeof sx), pool_cases[k].what);
    return s->inputs[0] ? 0 : -1;
}
/* count_include_pad has no meaning for max: its cases stop before those. */
static int max_pool2d_sample(int k, rng *g, op_sample *s) { return pool_sample(k, g, s, true, 4); }
static int avg_pool2d_sample(int k, rng *g, op_sample *s) { return pool_sample(k, g, s, false, 6); }

static pool2d_params params_of(const op_sample *s) {
    return (pool2d_params){{(int)s->ip[0], (int)s->ip[1]}, {(int)s->ip[2], (int)s->ip[3]},
                           {(int)s->ip[4], (int)s->ip[5]}, s->ip[6] != 0};
}
static tensor *max_pool2d_build(tensor *const *in, const op_sample *s) {
    return tensor_max_pool2d(in[0], params_of(s));
}
static tensor *avg_pool2d_build(tensor *const *in, const op_sample *s) {
    return tensor_avg_pool2d(in[0], params_of(s));
}

/* The pools' differentiable vjps. In general by decomposition: the windows
 * unfolded by ops (tg_unfold2d) and reduced over the taps, max (padding
 * -inf) or sum divided by the count n(i, j) (a constant). ip as in
 * pool_geom_of. */
static tensor *pool_windows(const tape_node *n, double pad_value) {
    return tg_unfold2d(n->in[0], n->ip[0], n->ip[1], n->ip[2], n->ip[3], n->ip[4], n->ip[5], 1, 1, pad_value,
                       n->out->shape[2], n->out->shape[3]);
}
/* Windows that tile x (stride = kernel, no padding: LeNet's pools) need no
 * unfolding: each element of x is in at most one window, so the adjoint
 * repeats g over its window (a reshape and an expand) and crops nothing
 * (x's rows and columns past the last window get 0: a pad). */
static bool pool_tiles(const tape_node *n) {
    return n->ip[2] == n->ip[0] && n->ip[3] == n->ip[1] && n->ip[4] == 0 && n->ip[5] == 0;
}
static tensor *pool_repeat(const tape_node *n, tensor *g) {
    const tensor *x = n->in[0];
    const int64_t B = x->shape[0], C = x->shape[1], OH = n->out->shape[2], OW = n->out->shape[3];
    const int64_t kh = n->ip[0], kw = n->ip[1];
    const int64_t s6[6] = {B, C, OH, 1, OW, 1}, e6[6] = {B, C, OH, kh, OW, kw}, s4[4] = {B, C, OH * kh, OW * kw};
    tensor *t;
    if (kh <= 2 && kw <= 2)
        /* nearest upsampling to twice the size takes source index i >> 1
         * (the same size: i), exactly the repeat, as a plain copy whose vjp
         * adds each window's 4 values; an expand of the 6-D view computes a
         * broadcast index per element both ways (a fifth of a LeNet-5
         * Hessian-vector product) */
        t = tensor_upsample(g, (upsample_params){{OH * kh, OW * kw}, {0, 0}, UPSAMPLE_NEAREST, false});
    else
        t = tensor_reshape(tensor_expand(tensor_reshape(g, 6, s6), 6, e6), 4, s4);
    const int64_t pads[8] = {0, 0, 0, 0, 0, x->shape[2] - OH * kh, 0, x->shape[3] - OW * kw};
    return pads[5] || pads[7] ? tensor_pad(t, pads, 0.0) : t;
}
/* dx = g scattered to the kernel's own argmax offsets (saved[0], per plane:
 * ties routed as the kernel routes them), a constant: one node
 * (grad_ops.c), whose vjp is a gather through the same offsets, and so on to
 * any order. Any window geometry: overlapping windows accumulate. */
static int max_pool2d_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    const tensor *x = n->in[0];
    gin[0] = tg_max_pool2d_input_grad(g, n->saved[0], x->shape[2], x->shape[3]);
    return tg_graph_vjp_done(n, want, gin);
}
static int avg_pool2d_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    if (pool_tiles(n)) { /* dx = g repeated over its window / (KH KW) */
        gin[0] = tensor_mul_scalar(pool_repeat(n, g), 1.0 / (double)(n->ip[0] * n->ip[1]));
        return tg_graph_vjp_done(n, want, gin);
    }
    const tensor *x = n->in[0];
    const int64_t H = x->shape[2], W = x->shape[3], OH = n->out->shape[2], OW = n->out->shape[3];
    const int64_t kh = n->ip[0], kw = n->ip[1], sh = n->ip[2], sw = n->ip[3], ph = n->ip[4], pw = n->ip[5];
    /* 1 / n(i, j): the window's size, or its elements inside x */
    tensor *inv = tg_tensor_tape_new(x->dtype, 2, (int64_t[]){OH, OW});
    if (!inv) return -1;
    for (int64_t i = 0; i < OH; i++)
        for (int64_t j = 0; j < OW; j++) {
            int64_t r0 = i * sh - ph, c0 = j * sw - pw, cnt = kh * kw;
            if (!n->ip[6]) {
                int64_t rows = (r0 + kh < H ? r0 + kh : H) - (r0 > 0 ? r0 : 0);
                int64_t cols = (c0 + kw < W ? c0 + kw : W) - (c0 > 0 ? c0 : 0);
                cnt = rows * cols;
            }
            tensor_set(inv, i * OW + j, 1.0 / (double)cnt);
        }
    int ax = 2;
    tensor *y = tensor_mul(tensor_sum(pool_windows(n, 0.0), &ax, 1, false), inv);
    return tg_vjp_graph_by_decomposition(n, y, g, want, gin);
}

const op_def tg_ops_pool[] = {
    [MAX_POOL2D] = {"max_pool2d", 1, 0, max_pool2d_forward, max_pool2d_vjp, max_pool2d_sample, max_pool2d_build,
     "tensor_max_pool2d(x, params)", "y[b,c,i,j] = max over window (i,j) of x[b,c] (padding = -inf)",
     "dx[b,c,argmax(i,j)] += g[b,c,i,j]",
     "not differentiable where a window has tied maxima: the gradient goes to the first maximum "
     "in window order (row by row, left to right); samples use distinct values",
     .vjp_graph = max_pool2d_vjp_graph, .vjp_fresh = true},
    [AVG_POOL2D] = {"avg_pool2d", 1, 0, avg_pool2d_forward, avg_pool2d_vjp, avg_pool2d_sample, avg_pool2d_build,
     "tensor_avg_pool2d(x, params)",
     "y[b,c,i,j] = sum over window (i,j) of x[b,c] / n, n = KH KW if count_include_pad else the "
     "elements inside the input",
     "dx[b,c,r,s] += g[b,c,i,j] / n for every window (i,j) holding (r,s)", "linear; no kinks",
     .vjp_graph = avg_pool2d_vjp_graph},
};
const int tg_ops_pool_count = N_POOL_OPS;
_Static_assert(sizeof tg_ops_pool / sizeof tg_ops_pool[0] == N_POOL_OPS,
               "tg_ops_pool: one entry per op of its enum");
