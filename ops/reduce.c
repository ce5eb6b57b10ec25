/* reduce.c - reductions over all elements or given axes, with keepdim:
 * sum, mean, max, min, var, std, logsumexp, and argmax (no gradient).
 *
 * The reduced axes are kept in the node as a bit mask (ip[0]); ip[1] is
 * keepdim. Kernels see the input through an rgeom: the kept and the reduced
 * dims, each coalesced (size-1 dims dropped, neighbours of one kind merged),
 * so output o reads the input at base(o) + off(r) for its r-th reduced
 * element, r running in row-major order of the reduced dims. The common cases
 * (last axes, leading axes, everything) become one reduced dim. */
#include "elementwise.h"

/* Validates axes and computes the output shape; returns the mask or -1. */
static int64_t reduce_axes(const char *op, const tensor *t, const int *axes, int naxes,
                           bool keepdim, int *ndim, int64_t *shape) {
    uint32_t mask = 0;
    if (naxes < 0 || (naxes > 0 && !axes)) {
        tg_error_set("%s: bad axes list (naxes %d)", op, naxes);
        return -1;
    }
    if (naxes == 0) mask = t->ndim ? (1u << t->ndim) - 1 : 0;
    for (int i = 0; i < naxes; i++) {
        int a = tg_axis_normalize(op, axes[i], t->ndim);
        if (a < 0) return -1;
        if (mask & (1u << a)) {
            tg_error_set("%s: axis %d given twice", op, axes[i]);
            return -1;
        }
        mask |= 1u << a;
    }
    int nd = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (!((mask >> d) & 1))
            shape[nd++] = t->shape[d];
        else if (keepdim)
            shape[nd++] = 1;
    }
    *ndim = nd;
    return mask;
}

typedef struct {
    int64_t nout, nred;                        /* outputs, elements per output */
    int nk, nr;                                /* coalesced kept / reduced dims */
    int64_t ks[TENSOR_MAX_DIMS], kst[TENSOR_MAX_DIMS];
    int64_t rs[TENSOR_MAX_DIMS], rst[TENSOR_MAX_DIMS];
} rgeom;

static void rgeom_of(const tensor *x, uint32_t mask, rgeom *g) {
    int64_t st[TENSOR_MAX_DIMS], s = 1;
    for (int d = x->ndim - 1; d >= 0; d--) st[d] = s, s *= x->shape[d];
    g->nk = g->nr = 0;
    g->nout = g->nred = 1;
    int prev = -1; /* kind of the last dim kept in a group: 0 kept, 1 reduced */
    for (int d = 0; d < x->ndim; d++) {
        int red = (mask >> d) & 1;
        int64_t n = x->shape[d];
        *(red ? &g->nred : &g->nout) *= n;
        if (n == 1) continue; /* offsets do not move along it */
        int *cnt = red ? &g->nr : &g->nk;
        int64_t *gs = red ? g->rs : g->ks, *gst = red ? g->rst : g->kst;
        if (prev == red) { /* contiguous with the previous group of its kind */
            gs[*cnt - 1] *= n;
            gst[*cnt - 1] = st[d];
        } else {
            gs[*cnt] = n;
            gst[(*cnt)++] = st[d];
        }
        prev = red;
    }
}

static inline int64_t rg_base(const rgeom *g, int64_t o) {
    return g->nk == 1 ? o * g->kst[0] : bcast_offset(o, g->nk, g->ks, g->kst);
}

/* Runs the body for each reduced element of one output, in row-major order:
 * r is its rank, i its offset from the output's base. The innermost reduced
 * group is a plain strided loop; only the outer groups need a division. */
#define RG_FOR(g, r, i, ...)                                                          \
    for (int64_t ro_ = 0, nin_ = (g)->nr ? (g)->rs[(g)->nr - 1] : 1,                  \
                 sin_ = (g)->nr ? (g)->rst[(g)->nr - 1] : 0,                          \
                 nout_ = nin_ ? (g)->nred / nin_ : 0;                                 \
         ro_ < nout_; ro_++)                                                          \
        for (int64_t ri_ = 0,                                                         \
                     b_ = (g)->nr > 1 ? bcast_offset(ro_, (g)->nr - 1, (g)->rs, (g)->rst) : 0; \
             ri_ < nin_; ri_++) {                                                     \
            const int64_t r = ro_ * nin_ + ri_, i = b_ + ri_ * sin_;                  \
            (void)r;                                                                  \
            __VA_ARGS__;                                                              \
        }

/* True when the reduced elements form one block [outer, red, inner] with
 * inner > 1 (leading or middle axes): rows are then added as whole vectors.
 * inner is 0 when a later dim is empty; the plain loop serves that. */
static bool rg_block(const rgeom *g, int64_t *outer, int64_t *red, int64_t *inner) {
    if (g->nr != 1 || g->rst[0] <= 1) return false;
    *inner = g->rst[0];
    *red = g->rs[0];
    *outer = g->nout / *inner;
    return true;
}

#define OMP_IF_BIG _Pragma("omp parallel for schedule(static) if (parallel_pays(x->size))")

/* y[o] = scale * sum_r x[o, r]   (scale 1 for sum, 1/N for mean)
 * dx[o, r] += scale * g[o]
 * Each output adds its elements in row-major order, so the fast paths give
 * the same bits as the plain loop; a single output accumulates in double. */
#define SUM_LOOPS(T)                                                                  \
    static void sum_fwd_##T(const tensor *x, tensor *out, const rgeom *g, double scale) { \
        const T *X = x->data;                                                         \
        T *O = out->data;                                                             \
        int64_t outer, red, inner;                                                    \
        if (g->nout == 1) {                                                           \
            double acc = 0;                                                           \
            for (int64_t i = 0; i < x->size; i++) acc += X[i];                        \
            O[0] = (T)(acc * scale);                                                  \
        } else if (rg_block(g, &outer, &red, &inner)) {                               \
            OMP_IF_BIG for (int64_t b = 0; b < outer; b++) {                          \
                T *Ob = O + b * inner;                                                \
                const T *Xb = X + b * red * inner;                                    \
                for (int64_t i = 0; i < inner; i++) Ob[i] = 0;                        \
                for (int64_t r = 0; r < red; r++)                                     \
                    for (int64_t i = 0; i < inner; i++) Ob[i] += Xb[r * inner + i];   \
                for (int64_t i = 0; i < inner; i++) Ob[i] = (T)(Ob[i] * scale);       \
            }                                                                         \
        } else {                                                                      \
            OMP_IF_BIG for (int64_t o = 0; o < g->nout; o++) {                        \
                const T *Xo = X + rg_base(g, o);                                      \
                T acc = 0;                                                            \
                RG_FOR(g, r, i, acc += Xo[i]);                                        \
                O[o] = (T)(acc * scale);                                              \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
    /* dx += g scale, each element of dx reached once: = into a fresh buffer      \
     * ((write ? 0 : dx) + v keeps the accumulating form's bits) */               \
    static void sum_bwd_##T(const tensor *x, const tensor *gout, tensor *gx,          \
                            const rgeom *g, double scale) {                           \
        const T *G = gout->data;                                                      \
        T *D = gx->data;                                                              \
        const bool write = tg_grad_take_fresh(gx);                                    \
        int64_t outer, red, inner;                                                    \
        if (gout->size == 1) {                                                        \
            const T gs = (T)(G[0] * scale);                                           \
            for (int64_t i = 0; i < x->size; i++) D[i] = (write ? (T)0 : D[i]) + gs;  \
        } else if (rg_block(g, &outer, &red, &inner)) {                               \
            OMP_IF_BIG for (int64_t b = 0; b < outer; b++) {                          \
                const T *Gb = G + b * inner;                                          \
                T *Db = D + b * red * inner;                                          \
                for (int64_t r = 0; r < red; r++)                                     \
                    for (int64_t i = 0; i < inner; i++)                               \
                        Db[r * inner + i] = (write ? (T)0 : Db[r * inner + i]) +      \
                                            (T)(Gb[i] * scale);                       \
            }                                                                         \
        } else {                                                                      \
            OMP_IF_BIG for (int64_t o = 0; o < g->nout; o++) {                        \
                T *Do = D + rg_base(g, o);                                            \
                const T go = (T)(G[o] * scale);                                       \
                RG_FOR(g, r, i, Do[i] = (write ? (T)0 : Do[i]) + go);                 \
            }                                                                         \
        }                                                                             \
    }

/* max / min over the reduced elements of output o:
 *   y[o] = max_r x[o, r];  dx[o, r] += g[o] / k  where x[o, r] == y[o],
 * k the number of elements tied at the maximum. Splitting evenly is the
 * average of the one-sided derivatives, so it is what central differences
 * see at a tie. A NaN element makes y NaN and passes no gradient.
 * argmax: the first maximum in row-major order (NaN counts as largest). */
#define EXTREME_LOOPS(T)                                                              \
    static inline int64_t extreme_scan_##T(const T *Xo, const rgeom *g, bool is_max,  \
                                           T *val) {                                  \
        T m = Xo[0];                                                                  \
        int64_t at = 0;                                                               \
        RG_FOR(g, r, i, const T v = Xo[i];                                            \
               if (m == m && ((is_max ? v > m : v < m) || v != v)) m = v, at = r);    \
        *val = m;                                                                     \
        return at;                                                                    \
    }                                                                                 \
    static void extreme_fwd_##T(const tensor *x, tensor *out, const rgeom *g, bool is_max) { \
        const T *X = x->data;                                                         \
        T *O = out->data;                                                             \
        OMP_IF_BIG for (int64_t o = 0; o < g->nout; o++)                              \
            extreme_scan_##T(X + rg_base(g, o), g, is_max, &O[o]);                    \
    }                                                                                 \
    static void argmax_fwd_##T(const tensor *x, tensor *out, const rgeom *g) {        \
        const T *X = x->data;                                                         \
        int64_t *O = out->data;                                                       \
        T m;                                                                          \
        for (int64_t o = 0; o < g->nout; o++)                                         \
            O[o] = extreme_scan_##T(X + rg_base(g, o), g, true, &m);                  \
    }                                                                                 \
    static void extreme_bwd_##T(const tensor *x, const tensor *y, tensor *gx, const rgeom *g) { \
        const T *X = x->data, *Y = y->data, *G = y->grad->data;                       \
        T *D = gx->data;                                                              \
        OMP_IF_BIG for (int64_t o = 0; o < g->nout; o++) {                            \
            int64_t base = rg_base(g, o), ties = 0;                                   \
            RG_FOR(g, r, i, ties += X[base + i] == Y[o]);                             \
            if (!ties) continue;                                                      \
            const T share = (T)(G[o] / (T)ties);                                      \
            RG_FOR(g, r, i, if (X[base + i] == Y[o]) D[base + i] += share);           \
        }                                                                             \
    }

/* var / std with den = N - correction, mu = mean_r x[o, r]:
 *   v[o] = sum_r (x - mu)^2 / den            dx += g 2 (x - mu) / den
 *   s[o] = sqrt(v[o])                        dx += g (x - mu) / (den s)
 * (the mu term vanishes: sum_r (x - mu) = 0). At s = 0 every x - mu is 0 and
 * the std gradient is defined as 0 (std has a |.|-like kink there). Two
 * passes in double: the shifted sum of squares does not cancel. */
#define VAR_LOOPS(T)                                                                  \
    static inline double mean_of_##T(const T *Xo, const rgeom *g) {                   \
        double acc = 0;                                                               \
        RG_FOR(g, r, i, acc += Xo[i]);                                                \
        return acc / (double)g->nred;                                                 \
    }                                                                                 \
    static void var_fwd_##T(const tensor *x, tensor *out, const rgeom *g, double den, \
                            bool is_std) {                                            \
        const T *X = x->data;                                                         \
        T *O = out->data;                                                             \
        OMP_IF_BIG for (int64_t o = 0; o < g->nout; o++) {                            \
            const T *Xo = X + rg_base(g, o);                                          \
            double mu = mean_of_##T(Xo, g), ss = 0;                                   \
            RG_FOR(g, r, i, const double d = Xo[i] - mu; ss += d * d);                \
            O[o] = (T)(is_std ? sqrt(ss / den) : ss / den);                           \
        }                                                                             \
    }                                                                                 \
    static void var_bwd_##T(const tensor *x, const tensor *y, tensor *gx, const rgeom *g, \
                            double den, bool is_std) {                                \
        const T *X = x->data, *Y = y->data, *G = y->grad->data;                       \
        T *D = gx->data;                                                              \
        OMP_IF_BIG for (int64_t o = 0; o < g->nout; o++) {                            \
            int64_t base = rg_base(g, o);                                             \
            double mu = mean_of_##T(X + base, g);                                     \
            double c = !is_std ? 2.0 * G[o] / den : Y[o] > 0 ? G[o] / (den * Y[o]) : 0.0; \
            RG_FOR(g, r, i, D[base + i] += (T)(c * (X[base + i] - mu)));              \
        }                                                                             \
    }

/* logsumexp, shifted by the maximum m so no exp overflows:
 *   y[o] = m + log sum_r exp(x[o, r] - m)     dx += g exp(x - y)  (softmax)
 * An infinite or NaN m is the result itself (all -inf gives -inf and passes
 * no gradient). In float32 the vjp recomputes y in double instead of reading
 * the stored one: y rounded to float32 is off by up to half an ulp of |y|
 * (3e-5 at 1000), which exp(x - y) turns into a relative error of 3e-5 in
 * every gradient element, 30 times float32's rounding (tests/test_op_contract.c
 * compares float32 with float64 on the same values). */
#define LSE_LOOPS(T)                                                                  \
    static void lse_fwd_##T(const tensor *x, tensor *out, const rgeom *g) {           \
        const T *X = x->data;                                                         \
        T *O = out->data;                                                             \
        OMP_IF_BIG for (int64_t o = 0; o < g->nout; o++) {                            \
            const T *Xo = X + rg_base(g, o);                                          \
            double m = -INFINITY, s = 0;                                              \
            RG_FOR(g, r, i, const double v = Xo[i]; if (v > m || v != v) m = v);      \
            if (!isfinite(m)) {                                                       \
                O[o] = (T)m;                                                          \
                continue;                                                             \
            }                                                                         \
            RG_FOR(g, r, i, s += exp(Xo[i] - m));                                     \
            O[o] = (T)(m + log(s));                                                   \
        }                                                                             \
    }                                                                                 \
    static void lse_bwd_##T(const tensor *x, const tensor *y, tensor *gx, const rgeom *g) { \
        const T *X = x->data, *Y = y->data, *G = y->grad->data;                       \
        T *D = gx->data;                                                              \
        OMP_IF_BIG for (int64_t o = 0; o < g->nout; o++) {                            \
            if (!isfinite(Y[o])) continue;                                            \
            int64_t base = rg_base(g, o);                                             \
            double yo = Y[o];                                                         \
            if (sizeof(T) < sizeof(double)) { /* y again, unrounded (see above) */    \
                double m = -INFINITY, s = 0;                                          \
                RG_FOR(g, r, i, const double v = X[base + i]; if (v > m) m = v);      \
                RG_FOR(g, r, i, s += exp(X[base + i] - m));                           \
                yo = m + log(s);                                                      \
            }                                                                         \
            RG_FOR(g, r, i, D[base + i] += (T)((double)G[o] * exp((double)X[base + i] - yo))); \
        }                                                                             \
    }

#define REDUCE_LOOPS(T) SUM_LOOPS(T) EXTREME_LOOPS(T) VAR_LOOPS(T) LSE_LOOPS(T)
REDUCE_LOOPS(float)
REDUCE_LOOPS(double)

#define NODE_GEOM(n)                                                                  \
    rgeom geom;                                                                       \
    rgeom_of(n->in[0], (uint32_t)n->ip[0], &geom);                                    \
    const bool f32 = n->in[0]->dtype == DTYPE_F32

/* fp[0]: 1 for sum, 1/N for mean */
static void sum_forward(tape_node *n) {
    NODE_GEOM(n);
    if (f32) sum_fwd_float(n->in[0], n->out, &geom, n->fp[0]);
    else sum_fwd_double(n->in[0], n->out, &geom, n->fp[0]);
}
static void sum_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    NODE_GEOM(n);
    if (f32) sum_bwd_float(n->in[0], n->out->grad, gin[0], &geom, n->fp[0]);
    else sum_bwd_double(n->in[0], n->out->grad, gin[0], &geom, n->fp[0]);
}

/* ip[2]: 1 for max, 0 for min */
static void extreme_forward(tape_node *n) {
    NODE_GEOM(n);
    if (f32) extreme_fwd_float(n->in[0], n->out, &geom, n->ip[2]);
    else extreme_fwd_double(n->in[0], n->out, &geom, n->ip[2]);
}
static void extreme_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    NODE_GEOM(n);
    if (f32) extreme_bwd_float(n->in[0], n->out, gin[0], &geom);
    else extreme_bwd_double(n->in[0], n->out, gin[0], &geom);
}

/* fp[0]: N - correction; ip[2]: 1 for std */
static void var_forward(tape_node *n) {
    NODE_GEOM(n);
    if (f32) var_fwd_float(n->in[0], n->out, &geom, n->fp[0], n->ip[2]);
    else var_fwd_double(n->in[0], n->out, &geom, n->fp[0], n->ip[2]);
}
static void var_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    NODE_GEOM(n);
    if (f32) var_bwd_float(n->in[0], n->out, gin[0], &geom, n->fp[0], n->ip[2]);
    else var_bwd_double(n->in[0], n->out, gin[0], &geom, n->fp[0], n->ip[2]);
}

static void lse_forward(tape_node *n) {
    NODE_GEOM(n);
    if (f32) lse_fwd_float(n->in[0], n->out, &geom);
    else lse_fwd_double(n->in[0], n->out, &geom);
}
static void lse_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    NODE_GEOM(n);
    if (f32) lse_bwd_float(n->in[0], n->out, gin[0], &geom);
    else lse_bwd_double(n->in[0], n->out, gin[0], &geom);
}

static void argmax_forward(tape_node *n) {
    NODE_GEOM(n);
    if (f32) argmax_fwd_float(n->in[0], n->out, &geom);
    else argmax_fwd_double(n->in[0], n->out, &geom);
}
/* Never called: argmax's input is a no-grad input, so its node is never
 * recorded. */
static void argmax_vjp(tape_node *n, tensor *const *gin) {
    (void)n;
    (void)gin;
}

extern const op_def tg_ops_reduce[];
enum { SUM, MEAN, MAX, MIN, VAR, STD, LOGSUMEXP, ARGMAX, N_REDUCE_OPS };

/* ------------------------------------------------------ graph vjps
 * The vjps built from ops (op_def.vjp_graph). back(t) takes a tensor of the
 * output's shape (the upstream gradient, the output itself) back to the
 * input's: reshaped to keepdim form, then expanded over the reduced axes. */
static tensor *back(const tape_node *n, tensor *t) {
    const tensor *a = n->in[0];
    int64_t keep[TENSOR_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) keep[d] = (n->ip[0] >> d) & 1 ? 1 : a->shape[d];
    tensor *r = tensor_reshape(t, a->ndim, keep);
    return r ? tensor_expand(r, a->ndim, a->shape) : NULL;
}
static int axes_of(const tape_node *n, int *axes) {
    int na = 0;
    for (int d = 0; d < n->in[0]->ndim; d++)
        if ((n->ip[0] >> d) & 1) axes[na++] = d;
    return na;
}
/* sum: da = back(g); mean: da = back(g) / N (fp[0] = 1 or 1/N) */
static int sum_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *b = back(n, g);
    gin[0] = n->fp[0] == 1.0 || !b ? b : tensor_mul_scalar(b, n->fp[0]);
    return tg_graph_vjp_done(n, want, gin);
}
/* max/min: da = back(g) m / back(k), m = [a = back(y)] (constant), k = sum m */
static int extreme_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *a = n->in[0], *one = tg_tape_scalar(a->dtype, 1), *zero = tg_tape_scalar(a->dtype, 0);
    int axes[TENSOR_MAX_DIMS], na = axes_of(n, axes);
    tensor *m = tensor_where(tensor_eq(a, back(n, n->out)), one, zero);
    tensor *k = m ? tensor_sum(m, axes, na, true) : NULL;
    gin[0] = tensor_mul(back(n, g), tensor_div(m, k));
    return tg_graph_vjp_done(n, want, gin);
}
/* var: da = back(g) 2 (a - mean) / (N - c);  std: da = back(g) (a - mean) / ((N - c) back(y)) */
static int var_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *a = n->in[0];
    int axes[TENSOR_MAX_DIMS], na = axes_of(n, axes);
    tensor *c = tensor_sub(a, tensor_mean(a, axes, na, true));
    tensor *t = tensor_mul(back(n, g), c);
    gin[0] = n->ip[2] ? tensor_div(t, tensor_mul_scalar(back(n, n->out), n->fp[0]))
                      : tensor_mul_scalar(t, 2.0 / n->fp[0]);
    return tg_graph_vjp_done(n, want, gin);
}
/* logsumexp: da = back(g) e^(a - back(y)) */
static int lse_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    gin[0] = tensor_mul(back(n, g), tensor_exp(tensor_sub(n->in[0], back(n, n->out))));
    return tg_graph_vjp_done(n, want, gin);
}

/* Validates a and the axes and starts the node (mask in ip[0], keepdim in
 * ip[1]); *per receives the number of elements folded into each output. */
static tape_node *reduce_begin(int which, tensor *a, const int *axes, int naxes, bool keepdim,
                               dtype out_dtype, int64_t *per) {
    const op_def *op = &tg_ops_reduce[which];
    tensor *in[1] = {a};
    if (tg_op_check_inputs(op, in, 1, 0)) return NULL;
    int nd;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t mask = reduce_axes(op->name, a, axes, naxes, keepdim, &nd, shape);
    if (mask < 0) return NULL;
    *per = 1;
    for (int d = 0; d < a->ndim; d++)
        if ((mask >> d) & 1) *per *= a->shape[d];
    int64_t nout = tg_shape_numel(nd, shape);
    if (*per == 0 && nout > 0 && (which == MAX || which == MIN || which == ARGMAX)) {
        char s[96];
        tg_error_set("%s: cannot reduce %s over an empty dimension", op->name,
                  tensor_shape_str(a, s, sizeof s));
        return NULL;
    }
    tape_node *n = tg_node_begin(op, in, 1, out_dtype, nd, shape);
    if (!n) return NULL;
    n->ip[0] = mask;
    n->ip[1] = keepdim;
    return n;
}

static tensor *sum_or_mean(int which, tensor *a, const int *axes, int naxes, bool keepdim) {
    int64_t per;
    tape_node *n = reduce_begin(which, a, axes, naxes, keepdim, a ? a->dtype : DTYPE_F32, &per);
    if (!n) return NULL;
    n->fp[0] = which == MEAN ? 1.0 / (double)(per ? per : 1) : 1.0;
    return tg_node_finish(n);
}

tensor *tensor_sum(tensor *a, const int *axes, int naxes, bool keepdim) {
    return sum_or_mean(SUM, a, axes, naxes, keepdim);
}
tensor *tensor_mean(tensor *a, const int *axes, int naxes, bool keepdim) {
    return sum_or_mean(MEAN, a, axes, naxes, keepdim);
}
tensor *tensor_sum_all(tensor *a) { return sum_or_mean(SUM, a, NULL, 0, false); }
tensor *tensor_mean_all(tensor *a) { return sum_or_mean(MEAN, a, NULL, 0, false); }

static tensor *extreme(int which, tensor *a, const int *axes, int naxes, bool keepdim) {
    int64_t per;
    tape_node *n = reduce_begin(which, a, axes, naxes, keepdim, a ? a->dtype : DTYPE_F32, &per);
    if (!n) return NULL;
    n->ip[2] = which == MAX;
    return tg_node_finish(n);
}
tensor *tensor_max(tensor *a, const int *axes, int naxes, bool keepdim) {
    return extreme(MAX, a, axes, naxes, keepdim);
}
tensor *tensor_min(tensor *a, const int *axes, int naxes, bool keepdim) {
    return extreme(MIN, a, axes, naxes, keepdim);
}

static tensor *var_or_std(int which, tensor *a, const int *axes, int naxes, int correction,
                          bool keepdim) {
    const char *name = tg_ops_reduce[which].name;
    if (correction < 0) {
        if (a) tg_error_set("%s: correction %d is negative", name, correction);
        else if (!tg_error_pending()) tg_error_set("%s: input 0 is NULL", name);
        return NULL;
    }
    int64_t per;
    tape_node *n = reduce_begin(which, a, axes, naxes, keepdim, a ? a->dtype : DTYPE_F32, &per);
    if (!n) return NULL;
    if (per - correction <= 0 && n->out->size > 0) {
        char s[96];
        tg_error_set("%s: correction %d leaves no degrees of freedom: %lld elements per output of %s",
                  name, correction, (long long)per, tensor_shape_str(a, s, sizeof s));
        return NULL;
    }
    n->fp[0] = (double)(per - correction);
    n->ip[2] = which == STD;
    return tg_node_finish(n);
}
tensor *tensor_var(tensor *a, const int *axes, int naxes, int correction, bool keepdim) {
    return var_or_std(VAR, a, axes, naxes, correction, keepdim);
}
tensor *tensor_std(tensor *a, const int *axes, int naxes, int correction, bool keepdim) {
    return var_or_std(STD, a, axes, naxes, correction, keepdim);
}

tensor *tensor_logsumexp(tensor *a, const int *axes, int naxes, bool keepdim) {
    int64_t per;
    tape_node *n = reduce_begin(LOGSUMEXP, a, axes, naxes, keepdim, a ? a->dtype : DTYPE_F32, &per);
    return n ? tg_node_finish(n) : NULL;
}

tensor *tensor_argmax(tensor *a, int axis, bool keepdim) {
    int64_t per;
    tape_node *n = reduce_begin(ARGMAX, a, &axis, 1, keepdim, DTYPE_I64, &per);
    return n ? tg_node_finish(n) : NULL;
}

/* ---------------------------------------------------------------- samples
 * ip[0] naxes, ip[1..2] axes, ip[3] keepdim, ip[4] correction.
 * Cases: all elements, one axis, two axes with keepdim, a negative axis
 * with keepdim, the leading axis of a matrix. */
#define N_REDUCE_CASES 5
static int reduce_case(int k, rng *g, op_sample *s, bool distinct) {
    static const int64_t shape3[3] = {2, 3, 4}, shape2[2] = {5, 3};
    static const char *names[] = {"[2,3,4] all", "[2,3,4] axis 1", "[2,3,4] axes 0,2 keepdim",
                                  "[2,3,4] axis -1 keepdim", "[5,3] axis 0"};
    static const int64_t naxes[] = {0, 1, 2, 1, 1}, ax0[] = {0, 1, 0, -1, 0},
                         ax1[] = {0, 0, 2, 0, 0}, keep[] = {0, 0, 1, 1, 0};
    if (k >= N_REDUCE_CASES) return 1;
    int nd = k == 4 ? 2 : 3;
    const int64_t *shape = k == 4 ? shape2 : shape3;
    s->n_inputs = 1;
    /* distinct: pairwise 0.1 apart, so no tie is within eps of another */
    s->inputs[0] = distinct ? tg_sample_tensor_distinct(g, nd, shape, -1.2, 0.1)
                            : tg_sample_tensor(g, nd, shape, -2.0, 2.0);
    s->ip[0] = naxes[k];
    s->ip[1] = ax0[k];
    s->ip[2] = ax1[k];
    s->ip[3] = keep[k];
    tg_sample_name(s, "%s", names[k]);
    return s->inputs[0] ? 0 : -1;
}
static int reduce_sample(int k, rng *g, op_sample *s) { return reduce_case(k, g, s, false); }
static int extreme_sample(int k, rng *g, op_sample *s) { return reduce_case(k, g, s, true); }

/* var/std: the reduce cases with correction 1, then two with correction 0. */
static int var_sample(int k, rng *g, op_sample *s) {
    if (k >= N_REDUCE_CASES + 2) return 1;
    int r = reduce_case(k % N_REDUCE_CASES, g, s, false);
    if (r) return r;
    s->ip[4] = k < N_REDUCE_CASES ? 1 : 0;
    char base[sizeof s->name];
    memcpy(base, s->name, sizeof base);
    tg_sample_name(s, "%.60s correction %d", base, (int)s->ip[4]);
    return 0;
}

/* logsumexp: the reduce cases, then values near 1000 (exp would overflow
 * without the max shift). */
static int lse_sample(int k, rng *g, op_sample *s) {
    if (k < N_REDUCE_CASES) return reduce_case(k, g, s, false);
    if (k > N_REDUCE_CASES) return 1;
    static const int64_t shape[2] = {3, 4};
    s->n_inputs = 1;
    s->inputs[0] = tg_sample_tensor(g, 2, shape, 998.0, 1002.0);
    s->ip[0] = 1;
    s->ip[1] = 1;
    tg_sample_name(s, "[3,4] axis 1 values near 1000");
    return s->inputs[0] ? 0 : -1;
}

/* argmax: one axis per case (ip[1]), keepdim ip[3]. */
static int argmax_sample(int k, rng *g, op_sample *s) {
    static const int axis[] = {1, -1, 0, 2};
    if (k >= 4) return 1;
    static const int64_t shape[3] = {2, 3, 4};
    s->n_inputs = 1;
    s->inputs[0] = tg_sample_tensor_distinct(g, 3, shape, -1.2, 0.1);
    s->ip[0] = 1;
    s->ip[1] = axis[k];
    s->ip[3] = k % 2;
    tg_sample_name(s, "[2,3,4] axis %d%s", axis[k], k % 2 ? " keepdim" : "");
    return s->inputs[0] ? 0 : -1;
}

#define SAMPLE_AXES(s) {(int)(s)->ip[1], (int)(s)->ip[2]}
static tensor *sum_build(tensor *const *in, const op_sample *s) {
    int axes[2] = SAMPLE_AXES(s);
    return tensor_sum(in[0], axes, (int)s->ip[0], s->ip[3]);
}
static tensor *mean_build(tensor *const *in, const op_sample *s) {
    int axes[2] = SAMPLE_AXES(s);
    return tensor_mean(in[0], axes, (int)s->ip[0], s->ip[3]);
}
static tensor *max_build(tensor *const *in, const op_sample *s) {
    int axes[2] = SAMPLE_AXES(s);
    return tensor_max(in[0], axes, (int)s->ip[0], s->ip[3]);
}
static tensor *min_build(tensor *const *in, const op_sample *s) {
    int axes[2] = SAMPLE_AXES(s);
    return tensor_min(in[0], axes, (int)s->ip[0], s->ip[3]);
}
static tensor *var_build(tensor *const *in, const op_sample *s) {
    int axes[2] = SAMPLE_AXES(s);
    return tensor_var(in[0], axes, (int)s->ip[0], (int)s->ip[4], s->ip[3]);
}
static tensor *std_build(tensor *const *in, const op_sample *s) {
    int axes[2] = SAMPLE_AXES(s);
    return tensor_std(in[0], axes, (int)s->ip[0], (int)s->ip[4], s->ip[3]);
}
static tensor *lse_build(tensor *const *in, const op_sample *s) {
    int axes[2] = SAMPLE_AXES(s);
    return tensor_logsumexp(in[0], axes, (int)s->ip[0], s->ip[3]);
}
/* argmax has no gradient, so its case checks what it is for: the value of a
 * at the argmax, gather(a, axis, argmax(a, axis)), whose gradient is one-hot
 * at the chosen index. This runs argmax (both keepdim forms: without keepdim
 * the index is reshaped back) inside a differentiated graph. */
static tensor *argmax_build(tensor *const *in, const op_sample *s) {
    int axis = (int)s->ip[1];
    tensor *idx = tensor_argmax(in[0], axis, s->ip[3]);
    if (idx && !s->ip[3]) {
        int64_t shape[TENSOR_MAX_DIMS];
        int ax = axis < 0 ? axis + in[0]->ndim : axis;
        for (int d = 0; d < in[0]->ndim; d++) shape[d] = d == ax ? 1 : in[0]->shape[d];
        idx = tensor_reshape(idx, in[0]->ndim, shape);
    }
    return tensor_gather(in[0], axis, idx);
}

const op_def tg_ops_reduce[] = {
    [SUM] = {"sum", 1, 0, sum_forward, sum_vjp, reduce_sample, sum_build,
     "tensor_sum(a, axes, naxes, keepdim)", "y = sum of a over the axes",
     "da = g broadcast back over the reduced axes",
     "a single output accumulates in double; several accumulate in the dtype, in row-major order",
     .vjp_graph = sum_vjp_graph, .vjp_fresh = true},
    [MEAN] = {"mean", 1, 0, sum_forward, sum_vjp, reduce_sample, mean_build,
     "tensor_mean(a, axes, naxes, keepdim)", "y = (1/N) sum of a over the axes, N = elements per output",
     "da = g / N broadcast back over the reduced axes", "",
     .vjp_graph = sum_vjp_graph, .vjp_fresh = true},
    [MAX] = {"max", 1, 0, extreme_forward, extreme_vjp, extreme_sample, max_build,
     "tensor_max(a, axes, naxes, keepdim)", "y = max of a over the axes",
     "da = g / k at each of the k elements equal to y, 0 elsewhere",
     "ties split the gradient evenly (like torch.amax; the mean of the one-sided derivatives, "
     "which is what central differences measure); NaN propagates and passes no gradient; "
     "an empty reduction is an error",
     .vjp_graph = extreme_vjp_graph},
    [MIN] = {"min", 1, 0, extreme_forward, extreme_vjp, extreme_sample, min_build,
     "tensor_min(a, axes, naxes, keepdim)", "y = min of a over the axes",
     "da = g / k at each of the k elements equal to y, 0 elsewhere", "ties as for max",
     .vjp_graph = extreme_vjp_graph},
    [VAR] = {"var", 1, 0, var_forward, var_vjp, var_sample, var_build,
     "tensor_var(a, axes, naxes, correction, keepdim)",
     "y = sum (a - mean)^2 / (N - correction)", "da = g * 2 (a - mean) / (N - correction)",
     "correction 1 is the unbiased estimate, 0 the population variance; N - correction <= 0 "
     "is an error",
     .vjp_graph = var_vjp_graph},
    [STD] = {"std", 1, 0, var_forward, var_vjp, var_sample, std_build,
     "tensor_std(a, axes, naxes, correction, keepdim)", "y = sqrt(var(a, correction))",
     "da = g * (a - mean) / ((N - correction) y)",
     "not differentiable at zero variance; the gradient there is defined as 0",
     .vjp_graph = var_vjp_graph},
    [LOGSUMEXP] = {"logsumexp", 1, 0, lse_forward, lse_vjp, lse_sample, lse_build,
     "tensor_logsumexp(a, axes, naxes, keepdim)", "y = m + log sum exp(a - m), m = max of a",
     "da = g * exp(a - y) (the softmax over the axes)",
     "shifted by the maximum, so stable for large values; all -inf gives -inf and no gradient",
     .vjp_graph = lse_vjp_graph},
    [ARGMAX] = {"argmax", 1, 1, argmax_forward, argmax_vjp, argmax_sample, argmax_build,
     "tensor_argmax(a, axis, keepdim)", "y = index of the first maximum of a along axis (int64)",
     "none: the index is piecewise constant in a; never recorded on the tape",
     "ties: the first maximum; NaN counts as largest. Its cases build gather(a, axis, "
     "argmax(a, axis)), which must equal max(a, axis, keepdim) and has a one-hot gradient in a "
     "(tests/test_ops_reduce.c checks both); the registry checker lists them as no-grad"},
};
const int tg_ops_reduce_count = N_REDUCE_OPS;
_Static_assert(sizeof tg_ops_reduce / sizeof tg_ops_reduce[0] == N_REDUCE_OPS,
               "tg_ops_reduce: one entry per op of its enum");
