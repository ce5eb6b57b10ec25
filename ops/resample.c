/* resample.c - ops that change the spatial size of (B, C, H, W) by a fixed
 * map from output to input positions: adaptive average pooling and
 * upsampling (nearest, bilinear), each with PyTorch's index formulas, one
 * (b, c) plane at a time.
 *
 * The maps depend on the shapes only, so the builders compute them once into
 * tape-owned tables (rows then columns) that forward and the vjp read:
 *   adaptive_avg_pool2d: the window [start, end) of each output row / column,
 *     start = floor(i H / OH), end = ceil((i + 1) H / OH);
 *   upsample: the two source taps (i0, i1) of each output row / column and the
 *     weight l1 of i1 (bilinear), or the one source (nearest; i1 = i0, l1 = 0).
 * Every op here is linear in x, so the vjp applies the transposed map: each
 * g[i, j] is scattered back with the forward's weights.
 *
 * Threads: planes are independent and each thread owns whole planes of y and
 * of dx, so results are bit-identical for any thread count. */
#include <math.h>

#include "elementwise.h"

typedef struct {
    int64_t planes, H, W, OH, OW;
    const int64_t *ri, *ci; /* rows: ri[2 i], ri[2 i + 1]; columns likewise */
    const double *rl, *cl;  /* weights of the second tap (upsample only) */
} rs_geom;

/* Node: in[0] x, out y; saved[0] the int64 table [2 (OH + OW)], saved[1] the
 * float64 weights [OH + OW] (upsample only); ip[0] mode (upsample). */
static void rs_geom_of(const tape_node *n, rs_geom *q) {
    const tensor *x = n->in[0], *y = n->out;
    q->planes = x->shape[0] * x->shape[1];
    q->H = x->shape[2], q->W = x->shape[3], q->OH = y->shape[2], q->OW = y->shape[3];
    const int64_t *t = n->saved[0]->data;
    q->ri = t, q->ci = t + 2 * q->OH;
    const double *l = n->saved[1] ? n->saved[1]->data : NULL;
    q->rl = l, q->cl = l ? l + q->OH : NULL;
}

/* for (p = 0; p < planes; p++) BODY, on several threads only when it pays. */
#define PLANES_FOR(p, q, work, ...)                                                     \
    do {                                                                                \
        if (parallel_pays(work)) {                                                      \
            _Pragma("omp parallel for schedule(static)")                                \
            for (int64_t p = 0; p < (q)->planes; p++) __VA_ARGS__                       \
        } else {                                                                        \
            for (int64_t p = 0; p < (q)->planes; p++) __VA_ARGS__                       \
        }                                                                               \
    } while (0)

/* ------------------------------------------------- adaptive_avg_pool2d */
/* x (B, C, H, W) -> y (B, C, OH, OW):
 *   y[p, i, j] = sum_{r in [rs_i, re_i), c in [cs_j, ce_j)} x[p, r, c] / n_ij,
 *   rs_i = floor(i H / OH), re_i = ceil((i + 1) H / OH), likewise cs_j, ce_j,
 *   n_ij = (re_i - rs_i) (ce_j - cs_j) >= 1.
 * vjp: dx[p, r, c] += g[p, i, j] / n_ij for every window (i, j) holding (r, c)
 * (windows overlap when H is not a multiple of OH, and repeat when OH > H). */
#define ADAPTIVE_KERNELS(T)                                                             \
    static void adaptive_fwd_##T(const rs_geom *q, const T *x, T *y) {                  \
        PLANES_FOR(p, q, q->planes * q->H * q->W + q->planes * q->OH * q->OW, {         \
            const T *xp = x + p * q->H * q->W;                                          \
            T *yp = y + p * q->OH * q->OW;                                              \
            for (int64_t i = 0; i < q->OH; i++)                                         \
                for (int64_t j = 0; j < q->OW; j++) {                                   \
                    int64_t r0 = q->ri[2 * i], r1 = q->ri[2 * i + 1];                   \
                    int64_t c0 = q->ci[2 * j], c1 = q->ci[2 * j + 1];                   \
                    T s = 0;                                                            \
                    for (int64_t r = r0; r < r1; r++)                                   \
                        for (int64_t c = c0; c < c1; c++) s += xp[r * q->W + c];        \
                    yp[i * q->OW + j] = s / (T)((r1 - r0) * (c1 - c0));                 \
                }                                                                       \
        });                                                                             \
    }                                                                                   \
    static void adaptive_bwd_##T(const rs_geom *q, const T *g, T *dx) {                 \
        PLANES_FOR(p, q, q->planes * q->H * q->W + q->planes * q->OH * q->OW, {         \
            T *dp = dx + p * q->H * q->W;                                               \
            const T *gp = g + p * q->OH * q->OW;                                        \
            for (int64_t i = 0; i < q->OH; i++)                                         \
                for (int64_t j = 0; j < q->OW; j++) {                                   \
                    int64_t r0 = q->ri[2 * i], r1 = q->ri[2 * i + 1];                   \
                    int64_t c0 = q->ci[2 * j], c1 = q->ci[2 * j + 1];                   \
                    T v = gp[i * q->OW + j] / (T)((r1 - r0) * (c1 - c0));               \
                    for (int64_t r = r0; r < r1; r++)                                   \
                        for (int64_t c = c0; c < c1; c++) dp[r * q->W + c] += v;        \
                }                                                                       \
        });                                                                             \
    }
ADAPTIVE_KERNELS(float)
ADAPTIVE_KERNELS(double)

/* ------------------------------------------------------------ upsample */
/* x (B, C, H, W) -> y (B, C, OH, OW), with the row taps (a_i, b_i) and weight
 * u_i of b_i, the column taps (c_j, d_j) and weight v_j of d_j:
 *   y[p, i, j] = (1 - u_i) ((1 - v_j) x[a_i, c_j] + v_j x[a_i, d_j])
 *              +      u_i  ((1 - v_j) x[b_i, c_j] + v_j x[b_i, d_j])
 * (nearest: a = b, c = d, u = v = 0, so y[p, i, j] = x[a_i, c_j]).
 * vjp: the same four terms scattered: dx[a_i, c_j] += (1 - u_i)(1 - v_j) g[i, j]
 * and so on; a source tap shared by several outputs sums their shares. */
#define UPSAMPLE_KERNELS(T)                                                             \
    static void upsample_fwd_##T(const rs_geom *q, const T *x, T *y) {                  \
        PLANES_FOR(p, q, 4 * q->planes * q->OH * q->OW, {                               \
            const T *xp = x + p * q->H * q->W;                                          \
            T *yp = y + p * q->OH * q->OW;                                              \
            for (int64_t i = 0; i < q->OH; i++) {                                       \
                const T *ra = xp + q->ri[2 * i] * q->W, *rb = xp + q->ri[2 * i + 1] * q->W; \
                T *yr = yp + i * q->OW;                                                 \
                if (!q->rl) { /* nearest: a copy, so an inf stays an inf */             \
                    for (int64_t j = 0; j < q->OW; j++) yr[j] = ra[q->ci[2 * j]];       \
                    continue;                                                           \
                }                                                                       \
                T u = (T)q->rl[i];                                                      \
                for (int64_t j = 0; j < q->OW; j++) {                                   \
                    int64_t c = q->ci[2 * j], d = q->ci[2 * j + 1];                     \
                    T v = (T)q->cl[j];                                                  \
                    T top = (1 - v) * ra[c] + v * ra[d], bot = (1 - v) * rb[c] + v * rb[d]; \
                    yr[j] = (1 - u) * top + u * bot;                                    \
                }                                                                       \
            }                                                                           \
        });                                                                             \
    }                                                                                   \
    static void upsample_bwd_##T(const rs_geom *q, const T *g, T *dx) {                 \
        PLANES_FOR(p, q, 4 * q->planes * q->OH * q->OW, {                               \
            T *dp = dx + p * q->H * q->W;                                               \
            const T *gp = g + p * q->OH * q->OW;                                        \
            for (int64_t i = 0; i < q->OH; i++) {                                       \
                T *ra = dp + q->ri[2 * i] * q->W, *rb = dp + q->ri[2 * i + 1] * q->W;   \
                const T *gr = gp + i * q->OW;                                           \
                if (!q->rl) {                                                           \
                    for (int64_t j = 0; j < q->OW; j++) ra[q->ci[2 * j]] += gr[j];      \
                    continue;                                                           \
                }                                                                       \
                T u = (T)q->rl[i];                                                      \
                for (int64_t j = 0; j < q->OW; j++) {                                   \
                    int64_t c = q->ci[2 * j], d = q->ci[2 * j + 1];                     \
                    T v = (T)q->cl[j], gv = gr[j];                                      \
                    T top = (1 - u) * gv, bot = u * gv;                                 \
                    ra[c] += (1 - v) * top, ra[d] += v * top;                           \
                    rb[c] += (1 - v) * bot, rb[d] += v * bot;                           \
                }                                                                       \
            }                                                                           \
        });                                                                             \
    }
UPSAMPLE_KERNELS(float)
UPSAMPLE_KERNELS(double)

static void adaptive_avg_pool2d_forward(tape_node *n) {
    rs_geom q;
    rs_geom_of(n, &q);
    if (n->out->dtype == DTYPE_F32)
        adaptive_fwd_float(&q, n->in[0]->data, n->out->data);
    else
        adaptive_fwd_double(&q, n->in[0]->data, n->out->data);
}

static void adaptive_avg_pool2d_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    rs_geom q;
    rs_geom_of(n, &q);
    if (n->out->dtype == DTYPE_F32)
        adaptive_bwd_float(&q, n->out->grad->data, gin[0]->data);
    else
        adaptive_bwd_double(&q, n->out->grad->data, gin[0]->data);
}

static void upsample_forward(tape_node *n) {
    rs_geom q;
    rs_geom_of(n, &q);
    if (n->out->dtype == DTYPE_F32)
        upsample_fwd_float(&q, n->in[0]->data, n->out->data);
    else
        upsample_fwd_double(&q, n->in[0]->data, n->out->data);
}

static void upsample_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    rs_geom q;
    rs_geom_of(n, &q);
    if (n->out->dtype == DTYPE_F32)
        upsample_bwd_float(&q, n->out->grad->data, gin[0]->data);
    else
        upsample_bwd_double(&q, n->out->grad->data, gin[0]->data);
}

/* ------------------------------------------------------ graph vjps */
/* Both ops are y = M_h x M_w^T per plane, with M_h [OH, H] and M_w [OW, W]
 * the maps of the node's own tables (so nearest's and bilinear's index
 * rules are the kernel's, not recomputed): row i of M_h holds 1 / (re_i -
 * rs_i) over the window (adaptive) or 1 - u_i at a_i plus u_i at b_i
 * (upsample; nearest: 1 at a_i). The vjp is gx = M_h^T g M_w, two matmuls
 * of g with constant tape tensors - linear in g, differentiable to any
 * order. The per-element factor 1 / n_ij of the kernel becomes the product
 * of the row and column factors, equal to rounding. */
static tensor *rs_map_rows(const rs_geom *q, dtype dt, bool adaptive, bool transpose) {
    /* rows: M_h^T [H, OH] (transpose) else columns: M_w [OW, W] */
    int64_t out = transpose ? q->OH : q->OW, in = transpose ? q->H : q->W;
    const int64_t *t = transpose ? q->ri : q->ci;
    const double *l = transpose ? q->rl : q->cl;
    tensor *m = tg_tensor_tape_zeros(dt, 2, transpose ? (int64_t[]){in, out} : (int64_t[]){out, in});
    if (!m) return NULL;
    for (int64_t i = 0; i < out; i++) {
        int64_t a = t[2 * i], b = t[2 * i + 1];
        if (adaptive) {
            for (int64_t r = a; r < b; r++)
                tensor_set(m, transpose ? r * out + i : i * in + r, 1.0 / (double)(b - a));
            continue;
        }
        double u = l ? l[i] : 0;
        /* a == b (nearest, or the last row of bilinear): the weights add */
        double wa = a == b ? 1.0 : 1.0 - u, wb = a == b ? 0.0 : u;
        tensor_set(m, transpose ? a * out + i : i * in + a, wa);
        if (a != b) tensor_set(m, transpose ? b * out + i : i * in + b, wb);
    }
    return m;
}

static int rs_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin, bool adaptive) {
    rs_geom q;
    rs_geom_of(n, &q);
    tensor *mht = rs_map_rows(&q, n->out->dtype, adaptive, true);
    tensor *mw = mht ? rs_map_rows(&q, n->out->dtype, adaptive, false) : NULL;
    if (!mw) return -1;
    /* [H, OH] @ g [B, C, OH, OW] -> [B, C, H, OW]; @ [OW, W] -> [B, C, H, W] */
    gin[0] = tensor_matmul(tensor_matmul(mht, g), mw);
    return tg_graph_vjp_done(n, want, gin);
}
static int adaptive_avg_pool2d_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    return rs_vjp_graph(n, g, want, gin, true);
}
static int upsample_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    return rs_vjp_graph(n, g, want, gin, false);
}

/* ------------------------------------------------------------ builders */
/* The resample family: index of each op in tg_ops_resample, its entry below. */
enum { ADAPTIVE_AVG_POOL2D, UPSAMPLE, N_RESAMPLE_OPS };

extern const op_def tg_ops_resample[];

static int check_4d(const char *op, const tensor *x) {
    if (x->ndim == 4) return 0;
    char sx[96];
    tg_error_set("%s: input must be 4-D (B, C, H, W), got %s", op, tensor_shape_str(x, sx, sizeof sx));
    return -1;
}

/* The window of output index i of `out` over `in`: [floor(i in / out),
 * ceil((i + 1) in / out)); in, out >= 1 and below 2^31 (so no product wraps). */
static void adaptive_window(int64_t i, int64_t in, int64_t out, int64_t *t) {
    t[0] = i * in / out;
    t[1] = ((i + 1) * in + out - 1) / out;
}

tensor *tensor_adaptive_avg_pool2d(tensor *x, int64_t out_h, int64_t out_w) {
    const op_def *op = &tg_ops_resample[ADAPTIVE_AVG_POOL2D];
    if (tg_op_check_inputs(op, &x, 1, 0) || check_4d(op->name, x)) return NULL;
    char sx[96];
    if (out_h < 1 || out_w < 1 || out_h > INT32_MAX || out_w > INT32_MAX) {
        tg_error_set("%s: output size [%lld,%lld] must be >= 1 (input %s)", op->name, (long long)out_h,
                     (long long)out_w, tensor_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    if (x->shape[2] < 1 || x->shape[3] < 1 || x->shape[2] > INT32_MAX || x->shape[3] > INT32_MAX) {
        tg_error_set("%s: input %s must have H and W >= 1", op->name, tensor_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    int64_t shape[4] = {x->shape[0], x->shape[1], out_h, out_w};
    tape_node *n = tg_node_begin(op, &x, 1, x->dtype, 4, shape);
    if (!n) return NULL;
    n->saved[0] = tg_tensor_tape_new(DTYPE_I64, 1, (int64_t[]){2 * (out_h + out_w)});
    if (!n->saved[0]) return NULL;
    int64_t *t = n->saved[0]->data;
    for (int64_t i = 0; i < out_h; i++) adaptive_window(i, x->shape[2], out_h, t + 2 * i);
    for (int64_t j = 0; j < out_w; j++) adaptive_window(j, x->shape[3], out_w, t + 2 * (out_h + j));
    return tg_node_finish(n);
}

/* Nearest source of output index dst, as PyTorch computes it (in float32
 * arithmetic, whatever the dtype): the same size copies, twice the size
 * halves the index, otherwise floor(dst s) with s = 1 / scale_factor when
 * one was given, else in / out, clipped to in - 1. */
static int64_t nearest_source(int64_t dst, int64_t in, int64_t out, double scale_factor) {
    if (out == in) return dst;
    if (out == 2 * in) return dst >> 1;
    float s = scale_factor > 0 ? (float)(1.0 / scale_factor) : (float)in / (float)out;
    int64_t k = (int64_t)floorf((float)dst * s);
    return k < in - 1 ? k : in - 1;
}

/* Bilinear taps of output index dst (PyTorch's area_pixel_compute_scale and
 * source index): align_corners maps the corner pixels' centres onto each
 * other, src = dst (in - 1) / (out - 1); otherwise pixel areas, src = (dst +
 * 0.5) s - 0.5 clipped at 0, with s as for nearest. Taps floor(src) and the
 * next one (the last row repeats), the second weighted by the fraction. */
static void linear_source(int64_t dst, int64_t in, int64_t out, double scale_factor, bool align,
                          int64_t *tap, double *l1) {
    double s, src;
    if (align) {
        s = out > 1 ? (double)(in - 1) / (double)(out - 1) : 0;
        src = dst * s;
    } else {
        s = scale_factor > 0 ? 1.0 / scale_factor : (double)in / (double)out;
        src = (dst + 0.5) * s - 0.5;
        if (src < 0) src = 0;
    }
    int64_t i0 = (int64_t)src;
    if (i0 > in - 1) i0 = in - 1;
    double l = src - (double)i0;
    tap[0] = i0, tap[1] = i0 < in - 1 ? i0 + 1 : i0;
    *l1 = l < 0 ? 0 : l > 1 ? 1 : l;
}

/* The output size of one dimension of upsample, or -1 with an error. */
static int upsample_sizes(const char *op, const tensor *x, upsample_params p, int64_t *out) {
    char sx[96];
    bool by_size = p.size[0] || p.size[1], by_scale = p.scale_factor[0] != 0 || p.scale_factor[1] != 0;
    if (by_size == by_scale) {
        tg_error_set("%s: give either size [%lld,%lld] or scale_factor [%g,%g], not %s (input %s)", op,
                     (long long)p.size[0], (long long)p.size[1], p.scale_factor[0], p.scale_factor[1],
                     by_size ? "both" : "neither", tensor_shape_str(x, sx, sizeof sx));
        return -1;
    }
    for (int d = 0; d < 2; d++) {
        double o = by_size ? (double)p.size[d] : floor((double)x->shape[2 + d] * p.scale_factor[d]);
        if (by_scale && !(p.scale_factor[d] > 0 && isfinite(p.scale_factor[d]))) o = 0;
        if (!(o >= 1 && o <= INT32_MAX)) {
            tg_error_set("%s: output size must be >= 1: size [%lld,%lld], scale_factor [%g,%g], input %s",
                         op, (long long)p.size[0], (long long)p.size[1], p.scale_factor[0],
                         p.scale_factor[1], tensor_shape_str(x, sx, sizeof sx));
            return -1;
        }
        out[d] = (int64_t)o;
    }
    return 0;
}

tensor *tensor_upsample(tensor *x, upsample_params p) {
    const op_def *op = &tg_ops_resample[UPSAMPLE];
    if (tg_op_check_inputs(op, &x, 1, 0) || check_4d(op->name, x)) return NULL;
    char sx[96];
    if (p.mode != UPSAMPLE_NEAREST && p.mode != UPSAMPLE_BILINEAR) {
        tg_error_set("%s: mode %d is neither UPSAMPLE_NEAREST nor UPSAMPLE_BILINEAR", op->name, (int)p.mode);
        return NULL;
    }
    if (p.mode == UPSAMPLE_NEAREST && p.align_corners) {
        tg_error_set("%s: align_corners applies to bilinear only, not nearest", op->name);
        return NULL;
    }
    if (x->shape[2] < 1 || x->shape[3] < 1 || x->shape[2] > INT32_MAX || x->shape[3] > INT32_MAX) {
        tg_error_set("%s: input %s must have H and W >= 1", op->name, tensor_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    int64_t out[2];
    if (upsample_sizes(op->name, x, p, out)) return NULL;
    int64_t shape[4] = {x->shape[0], x->shape[1], out[0], out[1]};
    tape_node *n = tg_node_begin(op, &x, 1, x->dtype, 4, shape);
    if (!n) return NULL;
    bool bilinear = p.mode == UPSAMPLE_BILINEAR;
    n->ip[0] = p.mode, n->ip[1] = p.align_corners;
    n->saved[0] = tg_tensor_tape_new(DTYPE_I64, 1, (int64_t[]){2 * (out[0] + out[1])});
    if (!n->saved[0]) return NULL;
    if (bilinear) {
        n->saved[1] = tg_tensor_tape_new(DTYPE_F64, 1, (int64_t[]){out[0] + out[1]});
        if (!n->saved[1]) return NULL;
    }
    int64_t *t = n->saved[0]->data;
    double *l = bilinear ? n->saved[1]->data : NULL;
    for (int d = 0, k = 0; d < 2; d++)
        for (int64_t i = 0; i < out[d]; i++, k++) {
            double sf = p.size[0] || p.size[1] ? 0 : p.scale_factor[d];
            if (bilinear)
                linear_source(i, x->shape[2 + d], out[d], sf, p.align_corners, t + 2 * k, l + k);
            else
                t[2 * k] = t[2 * k + 1] = nearest_source(i, x->shape[2 + d], out[d], sf);
        }
    return tg_node_finish(n);
}

/* ------------------------------------------------------------- samples */
/* Both ops are linear in x, so any seeded values do: no kinks or ties. */
static int adaptive_avg_pool2d_sample(int k, rng *g, op_sample *s) {
    static const struct {
        const char *what;
        int64_t x[4], out[2];
    } cases[] = {
        {"7x5 -> 3x2, overlapping windows", {2, 3, 7, 5}, {3, 2}},
        {"6x6 -> 3x3, divisible", {1, 2, 6, 6}, {3, 3}},
        {"5x7 -> 4x3", {2, 1, 5, 7}, {4, 3}},
        {"3x4 -> 5x6, larger than the input", {1, 2, 3, 4}, {5, 6}},
        {"4x5 -> 1x1, global", {2, 2, 4, 5}, {1, 1}},
    };
    if (k >= (int)(sizeof cases / sizeof cases[0])) return 1;
    s->n_inputs = 1;
    s->inputs[0] = tg_sample_tensor(g, 4, cases[k].x, -1.5, 1.5);
    s->ip[0] = cases[k].out[0], s->ip[1] = cases[k].out[1];
    char sx[64];
    tg_sample_name(s, "%s: %s", tensor_shape_str(s->inputs[0], sx, sizeof sx), cases[k].what);
    return s->inputs[0] ? 0 : -1;
}

static tensor *adaptive_avg_pool2d_build(tensor *const *in, const op_sample *s) {
    return tensor_adaptive_avg_pool2d(in[0], s->ip[0], s->ip[1]);
}

/* ip: size (2), mode, align_corners; fp: scale_factor (2) */
static int upsample_sample(int k, rng *g, op_sample *s) {
    static const struct {
        const char *what;
        int64_t x[4], size[2];
        double scale[2];
        int mode, align;
    } cases[] = {
        {"nearest, scale 2", {2, 3, 3, 4}, {0, 0}, {2, 2}, UPSAMPLE_NEAREST, 0},
        {"nearest, size 5x7", {1, 2, 3, 4}, {5, 7}, {0, 0}, UPSAMPLE_NEAREST, 0},
        {"nearest, scale (1.5,2.5)", {2, 1, 4, 3}, {0, 0}, {1.5, 2.5}, UPSAMPLE_NEAREST, 0},
        {"nearest, size 2x3 (down)", {1, 2, 5, 7}, {2, 3}, {0, 0}, UPSAMPLE_NEAREST, 0},
        {"bilinear, scale 2", {2, 2, 3, 4}, {0, 0}, {2, 2}, UPSAMPLE_BILINEAR, 0},
        {"bilinear, align_corners, size 5x7", {1, 2, 3, 4}, {5, 7}, {0, 0}, UPSAMPLE_BILINEAR, 1},
        {"bilinear, size 7x5", {2, 1, 4, 3}, {7, 5}, {0, 0}, UPSAMPLE_BILINEAR, 0},
        {"bilinear, scale (1.7,0.6)", {1, 2, 4, 6}, {0, 0}, {1.7, 0.6}, UPSAMPLE_BILINEAR, 0},
        {"bilinear, align_corners, size 3x2 (down)", {1, 1, 5, 6}, {3, 2}, {0, 0}, UPSAMPLE_BILINEAR, 1},
    };
    if (k >= (int)(sizeof cases / sizeof cases[0])) return 1;
    s->n_inputs = 1;
    s->inputs[0] = tg_sample_tensor(g, 4, cases[k].x, -1.5, 1.5);
    s->ip[0] = cases[k].size[0], s->ip[1] = cases[k].size[1];
    s->ip[2] = cases[k].mode, s->ip[3] = cases[k].align;
    s->fp[0] = cases[k].scale[0], s->fp[1] = cases[k].scale[1];
    char sx[64];
    tg_sample_name(s, "%s: %s", tensor_shape_str(s->inputs[0], sx, sizeof sx), cases[k].what);
    return s->inputs[0] ? 0 : -1;
}

static tensor *upsample_build(tensor *const *in, const op_sample *s) {
    upsample_params p = {{s->ip[0], s->ip[1]}, {s->fp[0], s->fp[1]}, (upsample_mode)s->ip[2], s->ip[3] != 0};
    return tensor_upsample(in[0], p);
}

const op_def tg_ops_resample[] = {
    [ADAPTIVE_AVG_POOL2D] = {"adaptive_avg_pool2d", 1, 0, adaptive_avg_pool2d_forward,
     adaptive_avg_pool2d_vjp, adaptive_avg_pool2d_sample, adaptive_avg_pool2d_build,
     "tensor_adaptive_avg_pool2d(x, out_h, out_w)",
     "y[b,c,i,j] = mean of x[b,c,r,s] over r in [floor(i H/OH), ceil((i+1) H/OH)), "
     "s in [floor(j W/OW), ceil((j+1) W/OW)) (PyTorch's windows)",
     "dx[b,c,r,s] += g[b,c,i,j] / n_ij for every window (i,j) holding (r,s), n_ij its element count",
     "linear; no kinks. Windows overlap when H is not a multiple of OH; OH > H repeats rows. "
     "4-D input only",
     .vjp_graph = adaptive_avg_pool2d_vjp_graph},
    [UPSAMPLE] = {"upsample", 1, 0, upsample_forward, upsample_vjp, upsample_sample, upsample_build,
     "tensor_upsample(x, params)",
     "nearest: y[b,c,i,j] = x[b,c,a_i,c_j], a_i = min(floor(i s_h), H-1) (PyTorch's 'nearest', in "
     "float32 arithmetic); bilinear: y = sum over the taps a_i, a_i+1 and c_j, c_j+1 of x weighted "
     "(1-u_i or u_i)(1-v_j or v_j), source row (i+0.5) s_h - 0.5 clipped at 0, or i (H-1)/(OH-1) "
     "with align_corners; s_h = 1/scale_factor[0] when given, else H/OH",
     "dx[b,c,tap] += weight(tap) g[b,c,i,j] over the taps of every output (i,j)",
     "linear; no kinks. Size or scale_factor, not both; align_corners (true or false) for bilinear "
     "only; 4-D input only",
     .vjp_graph = upsample_vjp_graph},
};
const int tg_ops_resample_count = N_RESAMPLE_OPS;
_Static_assert(sizeof tg_ops_resample / sizeof tg_ops_resample[0] == N_RESAMPLE_OPS,
               "tg_ops_resample: one entry per op of its enum");
