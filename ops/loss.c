/* loss.c - the loss family: each loss is one primitive op with its own
 * forward and vjp, following PyTorch's definitions.
 *
 * Reductions (enum reduction): NONE keeps one loss per element (per sample
 * for the class losses and cosine_embedding_loss); SUM adds them; MEAN
 * divides the sum by their count, except cross_entropy and nll_loss with a
 * class weight, whose mean divides by the summed weights of the targets, as
 * PyTorch does. The node keeps the reduction in ip[0] and the op's scalars
 * (delta, beta, margin, alpha, gamma, label smoothing) in fp[].
 *
 * Labels (int64) and weights are constants and never receive a gradient;
 * regression targets are ordinary inputs and do. An optional weight given as
 * NULL is not an input at all: the node then has one input fewer (while an
 * error is pending, a NULL weight is a failed upstream result and propagates). */
#include "act_kernels.h"
#include "elementwise.h"

extern const op_def tg_ops_loss[];
/* The loss family: index of each op in tg_ops_loss, its entry below. */
enum {
    MSE, L1, HUBER, SMOOTH_L1, BCE, BCE_LOGITS, CROSS_ENTROPY, NLL, KL_DIV, HINGE, FOCAL, COSINE,
    N_LOSS_OPS
};
#define OP(k) (&tg_ops_loss[k])

static int reduction_check(const op_def *op, reduction r) {
    if (r != REDUCTION_MEAN && r != REDUCTION_SUM && r != REDUCTION_NONE) {
        tg_error_set("%s: bad reduction %d (REDUCTION_MEAN, REDUCTION_SUM or REDUCTION_NONE)", op->name,
                  (int)r);
        return -1;
    }
    return 0;
}

/* A weight of x's dtype whose shape broadcasts to x's shape without growing it. */
static int weight_check(const op_def *op, const char *what, const tensor *w, const tensor *x) {
    char sw[96], sx[96];
    if (w->dtype != x->dtype) {
        tg_error_set("%s: %s is %s, input is %s", op->name, what, tg_dtype_name(w->dtype),
                  tg_dtype_name(x->dtype));
        return -1;
    }
    bool ok = w->ndim <= x->ndim;
    for (int i = 0; ok && i < w->ndim; i++) {
        int64_t dw = w->shape[i], dx = x->shape[x->ndim - w->ndim + i];
        ok = dw == dx || dw == 1;
    }
    if (!ok) {
        tg_error_set("%s: %s %s does not broadcast to input %s", op->name, what,
                  tensor_shape_str(w, sw, sizeof sw), tensor_shape_str(x, sx, sizeof sx));
        return -1;
    }
    return 0;
}

/* ============================================================ pointwise losses
 * l_i = L(x_i, y_i, w_i) for pred x and target y of one shape (any ndim);
 * w is the optional third input (weight, pos_weight) broadcast to that shape,
 * 1 when absent. Each loss below gives L (NAME_l) and its partials dL/dx,
 * dL/dy (NAME_d) as inline functions of doubles; PW_KERNELS turns them into a
 * forward and a vjp for both float dtypes. The vjp scales by g_i (NONE),
 * g (SUM) or g / count (MEAN). */

typedef struct {
    int64_t cnt;
    const tensor *w;           /* NULL: weight 1 */
    bool w_full;               /* w has x's size: indexed directly */
    int nd;
    const int64_t *shape;
    int64_t ws[TENSOR_MAX_DIMS]; /* w's strides over x's shape, 0 where broadcast */
} pw_geom;

static void pw_geom_of(const tape_node *n, pw_geom *gm) {
    const tensor *x = n->in[0];
    gm->cnt = x->size;
    gm->w = n->n_in > 2 ? n->in[2] : NULL;
    gm->w_full = gm->w && gm->w->size == x->size;
    gm->nd = x->ndim;
    gm->shape = x->shape;
    if (gm->w) tg_broadcast_strides(gm->w, x->ndim, x->shape, gm->ws);
}

static inline int64_t pw_woff(const pw_geom *gm, int64_t i) {
    return gm->w_full ? i : bcast_offset(i, gm->nd, gm->shape, gm->ws);
}

#define PW_OMP _Pragma("omp parallel for schedule(static) if (parallel_pays(gm.cnt))")

/* The sum of a reduced loss runs on one thread in index order, so it is
 * bit-identical run to run whatever the thread count. */
#define PW_FORWARD_T(T, NAME)                                                         \
    do {                                                                              \
        pw_geom gm;                                                                   \
        pw_geom_of(n, &gm);                                                           \
        const T *X = n->in[0]->data, *Y = n->in[1]->data;                             \
        const T *W = gm.w ? gm.w->data : NULL;                                        \
        T *Z = n->out->data;                                                          \
        if (n->ip[0] == REDUCTION_NONE) {                                             \
            PW_OMP for (int64_t i = 0; i < gm.cnt; i++)                               \
                Z[i] = (T)NAME##_l(X[i], Y[i], W ? W[pw_woff(&gm, i)] : 1.0, n->fp);  \
        } else {                                                                      \
            double acc = 0;                                                           \
            for (int64_t i = 0; i < gm.cnt; i++)                                      \
                acc += NAME##_l(X[i], Y[i], W ? W[pw_woff(&gm, i)] : 1.0, n->fp);     \
            Z[0] = (T)(n->ip[0] == REDUCTION_MEAN ? acc / (double)gm.cnt : acc);      \
        }                                                                             \
    } while (0)

#define PW_VJP_T(T, NAME)                                                             \
    do {                                                                              \
        pw_geom gm;                                                                   \
        pw_geom_of(n, &gm);                                                           \
        const T *X = n->in[0]->data, *Y = n->in[1]->data, *G = n->out->grad->data;    \
        const T *W = gm.w ? gm.w->data : NULL;                                        \
        T *DX = gin[0] ? gin[0]->data : NULL, *DY = gin[1] ? gin[1]->data : NULL;     \
        const bool none = n->ip[0] == REDUCTION_NONE;                                 \
        const double g0 = none ? 0.0                                                  \
                          : n->ip[0] == REDUCTION_MEAN ? G[0] / (double)gm.cnt        \
                                                       : G[0];                        \
        PW_OMP for (int64_t i = 0; i < gm.cnt; i++) {                                 \
            const double gi = none ? G[i] : g0;                                       \
            double dx, dy;                                                            \
            NAME##_d(X[i], Y[i], W ? W[pw_woff(&gm, i)] : 1.0, n->fp, &dx, &dy);      \
            if (DX) DX[i] += (T)(gi * dx);                                            \
            if (DY) DY[i] += (T)(gi * dy);                                            \
        }                                                                             \
    } while (0)

#define PW_KERNELS(NAME)                                                              \
    static void NAME##_forward(tape_node *n) {                                        \
        if (n->out->dtype == DTYPE_F32)                                               \
            PW_FORWARD_T(float, NAME);                                                \
        else                                                                          \
            PW_FORWARD_T(double, NAME);                                               \
    }                                                                                 \
    static void NAME##_vjp(tape_node *n, tensor *const *gin) {                        \
        if (!gin[0] && !gin[1]) return;                                               \
        if (n->out->dtype == DTYPE_F32)                                               \
            PW_VJP_T(float, NAME);                                                    \
        else                                                                          \
            PW_VJP_T(double, NAME);                                                   \
    }

static inline double sgn(double d) { return (d > 0) - (d < 0); }

/* log(1 + e^t) without overflow for any t. */
static inline double softplus(double t) { return fmax(t, 0.0) + log1p(exp(-fabs(t))); }

/* 1 / (1 + e^-t), exact in both tails. */
static inline double sigmoid(double t) {
    if (t >= 0) return 1.0 / (1.0 + exp(-t));
    double e = exp(t);
    return e / (1.0 + e);
}

/* mse: L = d^2, d = x - y;  dx = 2d, dy = -2d */
static inline double mse_l(double x, double y, double w, const double *p) {
    (void)w, (void)p;
    return (x - y) * (x - y);
}
static inline void mse_d(double x, double y, double w, const double *p, double *dx, double *dy) {
    (void)w, (void)p;
    *dx = 2 * (x - y);
    *dy = -*dx;
}
PW_KERNELS(mse)

/* l1: L = |d|;  dx = sign(d) (0 at d = 0, like PyTorch), dy = -dx */
static inline double l1_l(double x, double y, double w, const double *p) {
    (void)w, (void)p;
    return fabs(x - y);
}
static inline void l1_d(double x, double y, double w, const double *p, double *dx, double *dy) {
    (void)w, (void)p;
    *dx = sgn(x - y);
    *dy = -*dx;
}
PW_KERNELS(l1)

/* huber, delta = p[0] > 0: L = d^2 / 2 for |d| < delta, else delta (|d| - delta / 2);
 * dx = d inside, delta sign(d) outside (d clamped to [-delta, delta]); dy = -dx */
static inline double huber_l(double x, double y, double w, const double *p) {
    (void)w;
    double d = x - y, a = fabs(d), delta = p[0];
    return a < delta ? 0.5 * d * d : delta * (a - 0.5 * delta);
}
static inline void huber_d(double x, double y, double w, const double *p, double *dx, double *dy) {
    (void)w;
    double d = x - y, delta = p[0];
    *dx = fmin(fmax(d, -delta), delta);
    *dy = -*dx;
}
PW_KERNELS(huber)

/* smooth_l1, beta = p[0] >= 0: L = d^2 / (2 beta) for |d| < beta, else |d| - beta / 2;
 * dx = d / beta inside, sign(d) outside; beta = 0 is plain l1 */
static inline double smooth_l1_l(double x, double y, double w, const double *p) {
    (void)w;
    double d = x - y, a = fabs(d), beta = p[0];
    return a < beta ? 0.5 * d * d / beta : a - 0.5 * beta;
}
static inline void smooth_l1_d(double x, double y, double w, const double *p, double *dx,
                               double *dy) {
    (void)w;
    double d = x - y, beta = p[0];
    *dx = fabs(d) < beta ? d / beta : sgn(d);
    *dy = -*dx;
}
PW_KERNELS(smooth_l1)

/* bce on probabilities x in [0, 1]: L = -w (y log x + (1 - y) log(1 - x)),
 * each log clamped at -100 so x = 0 or 1 gives a finite loss (PyTorch);
 * dx = w (x - y) / max(x (1 - x), 1e-12) (PyTorch's backward);
 * dy = w (log(1 - x) - log x), with the same clamped logs, exact for L. */
static inline double bce_l(double x, double y, double w, const double *p) {
    (void)p;
    double lx = fmax(log(x), -100.0), l1x = fmax(log1p(-x), -100.0);
    return -w * (y * lx + (1 - y) * l1x);
}
static inline void bce_d(double x, double y, double w, const double *p, double *dx, double *dy) {
    (void)p;
    *dx = w * (x - y) / fmax(x * (1 - x), 1e-12);
    *dy = w * (fmax(log1p(-x), -100.0) - fmax(log(x), -100.0));
}
PW_KERNELS(bce)

/* bce_with_logits, w = pos_weight: L = (1 - y) x + (1 + (w - 1) y) softplus(-x),
 * the log-sigmoid form: -log sigmoid(x) = softplus(-x) never overflows;
 * dx = (1 - y) - (1 + (w - 1) y) sigmoid(-x), dy = -x + (w - 1) softplus(-x). */
static inline double bce_logits_l(double x, double y, double w, const double *p) {
    (void)p;
    return (1 - y) * x + (1 + (w - 1) * y) * softplus(-x);
}
static inline void bce_logits_d(double x, double y, double w, const double *p, double *dx,
                                double *dy) {
    (void)p;
    *dx = (1 - y) - (1 + (w - 1) * y) * sigmoid(-x);
    *dy = -x + (w - 1) * softplus(-x);
}
PW_KERNELS(bce_logits)

/* kl_div, x = log q_model, y = target probability: L = y log y - y x, with
 * 0 log 0 = 0 (PyTorch's xlogy); dx = -y, dy = log y + 1 - x (y > 0; at
 * y = 0 the y log y term contributes 0, its one-sided limit being -inf). */
static inline double kl_div_l(double x, double y, double w, const double *p) {
    (void)w, (void)p;
    return (y > 0 ? y * log(y) : 0.0) - y * x;
}
static inline void kl_div_d(double x, double y, double w, const double *p, double *dx, double *dy) {
    (void)w, (void)p;
    *dx = -y;
    *dy = (y > 0 ? log(y) + 1 : 0.0) - x;
}
PW_KERNELS(kl_div)

/* hinge, margin = p[0]: L = max(0, margin - y x); where active, dx = -y, dy = -x */
static inline double hinge_l(double x, double y, double w, const double *p) {
    (void)w;
    return fmax(p[0] - y * x, 0.0);
}
static inline void hinge_d(double x, double y, double w, const double *p, double *dx, double *dy) {
    (void)w;
    bool on = p[0] - y * x > 0;
    *dx = on ? -y : 0.0;
    *dy = on ? -x : 0.0;
}
PW_KERNELS(hinge)

/* focal (torchvision's sigmoid_focal_loss), alpha = p[0], gamma = p[1]:
 *   s = sigmoid(x), q = sigmoid(-x), ce = softplus(x) - x y,
 *   u = 1 - p_t = s (1 - y) + q y,  f = u^gamma,
 *   a = alpha y + (1 - alpha)(1 - y)  (1 when alpha < 0),   L = a ce f.
 * du/dx = s q (1 - 2y), du/dy = q - s. df/dx = gamma f r (1 - 2y) with
 * r = s q / u, which stays in [0, 1] and tends to s (y = 1) or q (y = 0)
 * when u underflows, so logits of +-1e4 give finite gradients. */
typedef struct {
    double s, q, ce, u, f, a;
} focal_terms;
static inline focal_terms focal_of(double x, double y, const double *p) {
    focal_terms t;
    t.s = sigmoid(x);
    t.q = sigmoid(-x);
    t.ce = softplus(x) - x * y;
    t.u = t.s * (1 - y) + t.q * y;
    t.f = pow(t.u, p[1]);
    t.a = p[0] >= 0 ? p[0] * y + (1 - p[0]) * (1 - y) : 1.0;
    return t;
}
static inline double focal_l(double x, double y, double w, const double *p) {
    (void)w;
    focal_terms t = focal_of(x, y, p);
    return t.a * t.ce * t.f;
}
static inline void focal_d(double x, double y, double w, const double *p, double *dx, double *dy) {
    (void)w;
    focal_terms t = focal_of(x, y, p);
    double gamma = p[1];
    double r = t.u > 0 ? t.s * t.q / t.u : (y > 0.5 ? t.s : t.q);
    double dfdx = gamma * t.f * r * (1 - 2 * y);
    /* gamma u^(gamma-1) (q - s); taken as 0 where u underflows to 0 */
    double dfdy = t.u > 0 ? gamma * t.f / t.u * (t.q - t.s) : 0.0;
    *dx = t.a * ((t.s - y) * t.f + t.ce * dfdx);
    *dy = t.a * (-x * t.f + t.ce * dfdy) + (p[0] >= 0 ? (2 * p[0] - 1) * t.ce * t.f : 0.0);
}
PW_KERNELS(focal)

/* ------------------------------------------------------ graph vjps
 * The pointwise losses' vjps built from ops (op_def.vjp_graph): dx = s
 * dL/dx with s = g (NONE, g of x's shape), g (SUM) or g / count (MEAN), both
 * broadcast from a scalar; dy = -dx for these four. */
static tensor *pw_scale(const tape_node *n, tensor *g) {
    if (n->ip[0] != REDUCTION_MEAN) return g;
    return tensor_mul_scalar(g, 1.0 / (double)(n->in[0]->size ? n->in[0]->size : 1));
}
static int pw_graph_done(const tape_node *n, tensor *dx, const bool *want, tensor **gin) {
    if (want[0]) gin[0] = dx;
    if (want[1]) gin[1] = tensor_neg(dx);
    return tg_graph_vjp_done(n, want, gin);
}
#define DIFF (tensor_sub(n->in[0], n->in[1]))
/* mse: dL/dx = 2 d */
static int mse_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    return pw_graph_done(n, tensor_mul(pw_scale(n, g), tensor_mul_scalar(DIFF, 2.0)), want, gin);
}
/* l1: dL/dx = sign(d) (a constant) */
static int l1_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    return pw_graph_done(n, tensor_mul(pw_scale(n, g), tensor_sign(DIFF)), want, gin);
}
/* huber: dL/dx = clamp(d, -delta, delta) */
static int huber_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    return pw_graph_done(n, tensor_mul(pw_scale(n, g), tensor_clamp(DIFF, -n->fp[0], n->fp[0])), want, gin);
}
/* smooth_l1: dL/dx = d / beta for |d| < beta, sign(d) outside (beta = 0: sign(d)) */
static int smooth_l1_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *d = DIFF, *dl;
    const double beta = n->fp[0];
    if (beta == 0) {
        dl = tensor_sign(d);
    } else {
        tensor *inside = tensor_lt(tensor_abs(d), tg_tape_scalar(n->in[0]->dtype, beta));
        dl = tensor_where(inside, tensor_mul_scalar(d, 1.0 / beta), tensor_sign(d));
    }
    return pw_graph_done(n, tensor_mul(pw_scale(n, g), dl), want, gin);
}
#undef DIFF
/* focal: the loss rebuilt from ops and differentiated (a decomposition):
 * s = sigmoid(x), ce = softplus(x) - x y, u = s (1 - y) + (1 - s) y,
 * l = a ce u^gamma, a = alpha y + (1 - alpha)(1 - y) (1 when alpha < 0) */
static tensor *pw_reduce(const tape_node *n, tensor *l) {
    if (n->ip[0] == REDUCTION_NONE) return l;
    return n->ip[0] == REDUCTION_SUM ? tensor_sum_all(l) : tensor_mean_all(l);
}
static int focal_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *x = n->in[0], *y = n->in[1];
    const double alpha = n->fp[0], gamma = n->fp[1];
    tensor *s = tensor_sigmoid(x), *omy = tensor_add_scalar(tensor_neg(y), 1.0);
    tensor *ce = tensor_sub(tensor_softplus(x, 1.0, INFINITY), tensor_mul(x, y));
    tensor *u = tensor_add(tensor_mul(s, omy), tensor_mul(tensor_add_scalar(tensor_neg(s), 1.0), y));
    tensor *l = tensor_mul(ce, tensor_pow_scalar(u, gamma));
    if (alpha >= 0) l = tensor_mul(l, tensor_add(tensor_mul_scalar(y, alpha), tensor_mul_scalar(omy, 1 - alpha)));
    return tg_vjp_graph_by_decomposition(n, pw_reduce(n, l), g, want, gin);
}
/* The scale times the optional weight (input 2, broadcast). */
static tensor *pw_scale_w(const tape_node *n, tensor *g) {
    tensor *s = pw_scale(n, g);
    return n->n_in > 2 && n->in[2] ? tensor_mul(s, n->in[2]) : s;
}
/* bce: dx = (x - y) / (x (1 - x)), dy = log(1 - x) - log x (inside (0, 1),
 * where the kernel's clamps do not act) */
static int bce_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *x = n->in[0], *y = n->in[1], *s = pw_scale_w(n, g);
    tensor *omx = tensor_add_scalar(tensor_neg(x), 1.0);
    if (want[0]) gin[0] = tensor_mul(s, tensor_div(tensor_sub(x, y), tensor_mul(x, omx)));
    if (want[1]) gin[1] = tensor_mul(s, tensor_sub(tensor_log(omx), tensor_log(x)));
    return tg_graph_vjp_done(n, want, gin);
}
/* bce_with_logits, w = pos_weight (1 when absent), sp = softplus(-x):
 * dx = (1 - y) - (1 + (w - 1) y) sigmoid(-x),  dy = -x + (w - 1) sp */
static int bce_logits_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *x = n->in[0], *y = n->in[1], *w = n->n_in > 2 ? n->in[2] : NULL, *s = pw_scale(n, g);
    tensor *nx = tensor_neg(x), *wm1 = w ? tensor_add_scalar(w, -1.0) : NULL;
    tensor *coef = w ? tensor_add_scalar(tensor_mul(wm1, y), 1.0) : NULL;
    if (want[0]) {
        tensor *sg = tensor_sigmoid(nx);
        gin[0] = tensor_mul(s, tensor_sub(tensor_add_scalar(tensor_neg(y), 1.0), coef ? tensor_mul(coef, sg) : sg));
    }
    if (want[1]) {
        tensor *d = w ? tensor_add(nx, tensor_mul(wm1, tensor_softplus(nx, 1.0, INFINITY))) : nx;
        gin[1] = tensor_mul(s, d);
    }
    return tg_graph_vjp_done(n, want, gin);
}
/* kl_div: dx = -y, dy = log y + 1 - x (the samples keep y > 0) */
static int kl_div_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *x = n->in[0], *y = n->in[1], *s = pw_scale(n, g);
    if (want[0]) gin[0] = tensor_neg(tensor_mul(s, y));
    if (want[1]) gin[1] = tensor_mul(s, tensor_sub(tensor_add_scalar(tensor_log(y), 1.0), x));
    return tg_graph_vjp_done(n, want, gin);
}
/* hinge: where margin - y x > 0 (a constant mask), dx = -y, dy = -x; else 0 */
static int hinge_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *x = n->in[0], *y = n->in[1], *s = pw_scale(n, g), *zero = tg_tape_scalar(x->dtype, 0);
    tensor *on = tensor_gt(tensor_add_scalar(tensor_neg(tensor_mul(y, x)), n->fp[0]), zero);
    if (want[0]) gin[0] = tensor_where(on, tensor_neg(tensor_mul(s, y)), zero);
    if (want[1]) gin[1] = tensor_where(on, tensor_neg(tensor_mul(s, x)), zero);
    return tg_graph_vjp_done(n, want, gin);
}

/* Validates and records a pointwise loss: x and y of one shape, optional
 * weight w broadcast to it, nfp scalars. */
static tensor *pw_apply(const op_def *op, tensor *x, tensor *y, tensor *w, const double *fp,
                        int nfp, reduction r) {
    tensor *in[3] = {x, y, w};
    char sx[96], sy[96];
    if (tg_op_check_inputs(op, in, 2, 0) || op_check_optional_null(w) || reduction_check(op, r))
        return NULL;
    if (!tensor_same_shape(x, y)) {
        tg_error_set("%s: shape mismatch: input %s vs target %s", op->name,
                  tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(y, sy, sizeof sy));
        return NULL;
    }
    if (w && weight_check(op, op == OP(BCE_LOGITS) ? "pos_weight" : "weight", w, x)) return NULL;
    tape_node *n = tg_node_begin(op, in, w ? 3 : 2, x->dtype, r == REDUCTION_NONE ? x->ndim : 0,
                              x->shape);
    if (!n) return NULL;
    n->ip[0] = r;
    for (int i = 0; i < nfp; i++) n->fp[i] = fp[i];
    return tg_node_finish(n);
}

tensor *tensor_mse_loss(tensor *pred, tensor *target, reduction r) {
    return pw_apply(OP(MSE), pred, target, NULL, NULL, 0, r);
}
tensor *tensor_l1_loss(tensor *pred, tensor *target, reduction r) {
    return pw_apply(OP(L1), pred, target, NULL, NULL, 0, r);
}
tensor *tensor_huber_loss(tensor *pred, tensor *target, double delta, reduction r) {
    if (pred && target && !(delta > 0)) {
        tg_error_set("huber_loss: delta must be > 0, got %g", delta);
        return NULL;
    }
    return pw_apply(OP(HUBER), pred, target, NULL, &delta, 1, r);
}
tensor *tensor_smooth_l1_loss(tensor *pred, tensor *target, double beta, reduction r) {
    if (pred && target && !(beta >= 0)) {
        tg_error_set("smooth_l1_loss: beta must be >= 0, got %g", beta);
        return NULL;
    }
    return pw_apply(OP(SMOOTH_L1), pred, target, NULL, &beta, 1, r);
}

/* PyTorch refuses probabilities outside [0, 1] (and NaN) instead of
 * returning a loss computed from the clamped logs. */
static int probabilities_check(const tensor *p) {
    for (int64_t i = 0; i < p->size; i++) {
        double v = tensor_get(p, i);
        if (!(v >= 0 && v <= 1)) {
            tg_error_set("bce_loss: input must hold probabilities in [0, 1]: element %lld is %g",
                      (long long)i, v);
            return -1;
        }
    }
    return 0;
}
tensor *tensor_bce_loss(tensor *prob, tensor *target, tensor *weight, reduction r) {
    if (prob && prob->dtype != DTYPE_I64 && probabilities_check(prob)) return NULL;
    return pw_apply(OP(BCE), prob, target, weight, NULL, 0, r);
}
tensor *tensor_bce_with_logits(tensor *logits, tensor *target, tensor *pos_weight, reduction r) {
    return pw_apply(OP(BCE_LOGITS), logits, target, pos_weight, NULL, 0, r);
}
tensor *tensor_kl_div(tensor *logp, tensor *target, reduction r) {
    return pw_apply(OP(KL_DIV), logp, target, NULL, NULL, 0, r);
}
tensor *tensor_hinge_loss(tensor *x, tensor *y, double margin, reduction r) {
    return pw_apply(OP(HINGE), x, y, NULL, &margin, 1, r);
}
tensor *tensor_focal_loss(tensor *logits, tensor *target, double alpha, double gamma, reduction r) {
    if (logits && target && !(gamma >= 0)) {
        tg_error_set("focal_loss: gamma must be >= 0, got %g", gamma);
        return NULL;
    }
    double fp[2] = {alpha, gamma};
    return pw_apply(OP(FOCAL), logits, target, NULL, fp, 2, r);
}

/* ============================================================ class losses
 * Logits (or log-probabilities) X (N, C, S) with S the product of any
 * trailing dims d..., labels L (N, S) int64 in [0, C), class weight W (C) or
 * none. Per position (n, s), with y = L[n, s] and the row x_c = X[n, c, s]:
 *
 *   cross_entropy: lse = m + log sum_c exp(x_c - m), m = max_c x_c
 *     l = (1 - e) w_y (lse - x_y) + (e / C) sum_c w_c (lse - x_c)  (label smoothing e)
 *     dx_c = (1 - e) w_y (p_c - [c = y]) + (e / C) (W p_c - w_c),
 *     p_c = exp(x_c - lse), W = sum_c w_c
 *   nll_loss:  l = -w_y x_y,   dx_y = -w_y
 *
 * MEAN divides both terms by sum over positions of w_y (N S without weight),
 * as PyTorch does. The forward keeps p = softmax(x) in saved[0] (allocated by
 * the builder, same layout as X), so the vjp needs no exponential: one pass of
 * C exponentials per row in all. */

typedef struct {
    int64_t N, C, S;
} cls_geom;

static cls_geom cls_geom_of(const tensor *x) {
    cls_geom gm = {x->shape[0], x->shape[1], 1};
    for (int d = 2; d < x->ndim; d++) gm.S *= x->shape[d];
    return gm;
}

/* MEAN's denominator: summed target weights (or the count), 1 otherwise. */
static double cls_denominator(const tape_node *n, cls_geom gm) {
    if (n->ip[0] != REDUCTION_MEAN) return 1.0;
    if (n->n_in < 3) return (double)(gm.N * gm.S);
    const int64_t *L = n->in[1]->data;
    double s = 0;
    for (int64_t i = 0; i < gm.N * gm.S; i++) s += tensor_get(n->in[2], L[i]);
    return s;
}

/* prow[c S] = e^(row[c S] - m). A contiguous float32 row (S = 1) goes to
 * the variant's vectorised e^x (act_kernels.h, a few ulps, as softmax's
 * rows): libm's expf per logit was a third of the forward's time. */
static inline void exp_row_float(const act_kernels *k, const float *row, float *prow, int64_t C,
                                 int64_t S, float m) {
    if (S == 1) {
        for (int64_t c = 0; c < C; c++) prow[c] = row[c] - m;
        k->exp(prow, prow, C);
        return;
    }
    for (int64_t c = 0; c < C; c++) prow[c * S] = expf(row[c * S] - m);
}
static inline void exp_row_double(const act_kernels *k, const double *row, double *prow, int64_t C,
                                  int64_t S, double m) {
    (void)k;
    for (int64_t c = 0; c < C; c++) prow[c * S] = exp(row[c * S] - m);
}

/* The forward takes the positions CE_ROWS at a time: a row's maximum and
 * its sum of exponentials are chains of dependent operations (the results
 * are those of m = row[c] > m ? row[c] : m and s += e_c in the order of c,
 * which fix the float32 bits), and the chains of CE_ROWS rows interleaved
 * keep the units busy where one row waits out each operation's latency.
 * x[b], p[b] are the rows of the block; those past nb repeat row nb - 1,
 * only read. lse[b] = m + log s of row b; p[b] = softmax(x[b]). */
#define CE_ROWS 4
#define CLS_KERNELS(T, LOG)                                                             \
    static inline void ce_block_##T(const act_kernels *k, const T *const *x, T *const *p, int nb, \
                                    int64_t C, int64_t S, T *lse) {                     \
        T m0 = x[0][0], m1 = x[1][0], m2 = x[2][0], m3 = x[3][0];                       \
        for (int64_t c = 1; c < C; c++) {                                               \
            const int64_t o = c * S;                                                    \
            m0 = x[0][o] > m0 ? x[0][o] : m0;                                           \
            m1 = x[1][o] > m1 ? x[1][o] : m1;                                           \
            m2 = x[2][o] > m2 ? x[2][o] : m2;                                           \
            m3 = x[3][o] > m3 ? x[3][o] : m3;                                           \
        }                                                                               \
        const T m[CE_ROWS] = {m0, m1, m2, m3};                                          \
        for (int b = 0; b < nb; b++) exp_row_##T(k, x[b], p[b], C, S, m[b]);            \
        T s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                               \
        for (int64_t c = 0; c < C; c++) {                                               \
            const int64_t o = c * S;                                                    \
            s0 += p[0][o];                                                              \
            s1 += p[1][o];                                                              \
            s2 += p[2][o];                                                              \
            s3 += p[3][o];                                                              \
        }                                                                               \
        const T s[CE_ROWS] = {s0, s1, s2, s3};                                          \
        for (int b = 0; b < nb; b++) {                                                  \
            const T inv = 1 / s[b];                                                     \
            for (int64_t c = 0; c < C; c++) p[b][c * S] *= inv;                         \
            lse[b] = m[b] + LOG(s[b]);                                                  \
        }                                                                               \
    }                                                                                   \
    /* S is a parameter so that the call with S = 1 (the [N, C] case) inlines to \
     * unit-stride loops. */                                                          \
    static inline void ce_fwd_##T(tape_node *n, cls_geom gm, int64_t S) {               \
        const T *X = n->in[0]->data, *W = n->n_in > 2 ? n->in[2]->data : NULL;          \
        const int64_t *L = n->in[1]->data, C = gm.C, R = gm.N * S;                      \
        T *Z = n->out->data, *P = n->saved[0]->data;                                    \
        const double e = n->fp[0];                                                      \
        const act_kernels *k = tg_act_kernels_run();                                    \
        double acc = 0;                                                                 \
        for (int64_t q0 = 0; q0 < R; q0 += CE_ROWS) { /* positions q = i S + s */       \
            const int nb = R - q0 < CE_ROWS ? (int)(R - q0) : CE_ROWS;                  \
            const T *x[CE_ROWS];                                                        \
            T *pr[CE_ROWS], lse[CE_ROWS];                                               \
            for (int b = 0; b < CE_ROWS; b++) {                                         \
                const int64_t q = q0 + (b < nb ? b : nb - 1), off = q / S * C * S + q % S; \
                x[b] = X + off;                                                         \
                pr[b] = P + off;                                                        \
            }                                                                           \
            ce_block_##T(k, x, pr, nb, C, S, lse);                                      \
            for (int b = 0; b < nb; b++) {                                              \
                const T *row = x[b];                                                    \
                const int64_t y = L[q0 + b];                                            \
                double l = (1 - e) * (W ? W[y] : 1) * (double)(lse[b] - row[y * S]);    \
                if (e > 0) {                                                            \
                    double sm = 0;                                                      \
                    for (int64_t c = 0; c < C; c++)                                     \
                        sm += (W ? W[c] : 1) * (double)(lse[b] - row[c * S]);           \
                    l += e / (double)C * sm;                                            \
                }                                                                       \
                if (n->ip[0] == REDUCTION_NONE) Z[q0 + b] = (T)l;                       \
                else acc += l;                                                          \
            }                                                                           \
        }                                                                               \
        if (n->ip[0] != REDUCTION_NONE) Z[0] = (T)(acc / cls_denominator(n, gm));       \
    }                                                                                   \
    /* dx += ... (write: dx's buffer is fresh; every element is reached once, and     \
     * 0 + v keeps the sums of the accumulating form bit for bit) */                  \
    static inline void ce_bwd_##T(tape_node *n, T *D, cls_geom gm, int64_t S, bool write) { \
        const T *W = n->n_in > 2 ? n->in[2]->data : NULL, *P = n->saved[0]->data;       \
        const T *G = n->out->grad->data;                                                \
        const int64_t *L = n->in[1]->data, C = gm.C;                                    \
        const double e = n->fp[0];                                                      \
        const bool none = n->ip[0] == REDUCTION_NONE;                                   \
        const double g0 = none ? 0 : G[0] / cls_denominator(n, gm);                     \
        double wsum = (double)C;                                                        \
        if (W) {                                                                        \
            wsum = 0;                                                                   \
            for (int64_t c = 0; c < C; c++) wsum += W[c];                               \
        }                                                                               \
        for (int64_t i = 0; i < gm.N; i++)                                              \
            for (int64_t s = 0; s < S; s++) {                                           \
                const T *prow = P + i * C * S + s;                                      \
                T *drow = D + i * C * S + s;                                            \
                const int64_t y = L[i * S + s];                                         \
                const double gi = none ? G[i * S + s] : g0;                             \
                const double a = (1 - e) * (W ? W[y] : 1) * gi, b = e / (double)C * gi; \
                if (!W) { /* a p + b (C p - 1); `omp simd`: drow and prow do not overlap */ \
                    const T ab = (T)(a + b * (double)C), bb = (T)b;                     \
                    if (write) {                                                        \
                        _Pragma("omp simd")                                             \
                        for (int64_t c = 0; c < C; c++)                                 \
                            drow[c * S] = (T)0 + (ab * prow[c * S] - bb);               \
                    } else {                                                            \
                        _Pragma("omp simd")                                             \
                        for (int64_t c = 0; c < C; c++)                                 \
                            drow[c * S] = drow[c * S] + (ab * prow[c * S] - bb);        \
                    }                                                                   \
                } else {                                                                \
                    for (int64_t c = 0; c < C; c++) {                                   \
                        const double p = prow[c * S];                                   \
                        drow[c * S] = (write ? (T)0 : drow[c * S]) +                    \
                                      (T)(a * p + b * (wsum * p - W[c]));               \
                    }                                                                   \
                }                                                                       \
                drow[y * S] -= (T)a;                                                    \
            }                                                                           \
    }                                                                                   \
    static void nll_fwd_##T(tape_node *n, cls_geom gm) {                                \
        const T *X = n->in[0]->data, *W = n->n_in > 2 ? n->in[2]->data : NULL;          \
        const int64_t *L = n->in[1]->data, C = gm.C, S = gm.S;                          \
        T *Z = n->out->data;                                                            \
        double acc = 0;                                                                 \
        for (int64_t i = 0; i < gm.N; i++)                                              \
            for (int64_t s = 0; s < S; s++) {                                           \
                const int64_t y = L[i * S + s];                                         \
                const double l = -(double)(W ? W[y] : 1) * X[(i * C + y) * S + s];      \
                if (n->ip[0] == REDUCTION_NONE) Z[i * S + s] = (T)l;                    \
                else acc += l;                                                          \
            }                                                                           \
        if (n->ip[0] != REDUCTION_NONE) Z[0] = (T)(acc / cls_denominator(n, gm));       \
    }                                                                                   \
    static void nll_bwd_##T(tape_node *n, T *D, cls_geom gm) {                          \
        const T *W = n->n_in > 2 ? n->in[2]->data : NULL, *G = n->out->grad->data;      \
        const int64_t *L = n->in[1]->data, C = gm.C, S = gm.S;                          \
        const bool none = n->ip[0] == REDUCTION_NONE;                                   \
        const double g0 = none ? 0 : G[0] / cls_denominator(n, gm);                     \
        for (int64_t i = 0; i < gm.N; i++)                                              \
            for (int64_t s = 0; s < S; s++) {                                           \
                const int64_t y = L[i * S + s];                                         \
                const double gi = none ? G[i * S + s] : g0;                             \
                D[(i * C + y) * S + s] -= (T)((W ? W[y] : 1) * gi);                     \
            }                                                                           \
    }
CLS_KERNELS(float, logf)
CLS_KERNELS(double, log)

static void cross_entropy_forward(tape_node *n) {
    cls_geom gm = cls_geom_of(n->in[0]);
    if (n->out->dtype == DTYPE_F32) {
        if (gm.S == 1) ce_fwd_float(n, gm, 1);
        else ce_fwd_float(n, gm, gm.S);
    } else {
        if (gm.S == 1) ce_fwd_double(n, gm, 1);
        else ce_fwd_double(n, gm, gm.S);
    }
}
static void cross_entropy_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    cls_geom gm = cls_geom_of(n->in[0]);
    const bool w = tg_grad_take_fresh(gin[0]);
    if (n->out->dtype == DTYPE_F32) {
        if (gm.S == 1) ce_bwd_float(n, gin[0]->data, gm, 1, w);
        else ce_bwd_float(n, gin[0]->data, gm, gm.S, w);
    } else {
        if (gm.S == 1) ce_bwd_double(n, gin[0]->data, gm, 1, w);
        else ce_bwd_double(n, gin[0]->data, gm, gm.S, w);
    }
}
static void nll_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32) nll_fwd_float(n, cls_geom_of(n->in[0]));
    else nll_fwd_double(n, cls_geom_of(n->in[0]));
}
static void nll_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    if (n->out->dtype == DTYPE_F32) nll_bwd_float(n, gin[0]->data, cls_geom_of(n->in[0]));
    else nll_bwd_double(n, gin[0]->data, cls_geom_of(n->in[0]));
}

/* Labels must be int64 of shape [N, d...] for x [N, C, d...], each in [0, C). */
static int labels_check(const op_def *op, const tensor *x, const tensor *labels) {
    char sx[96], sl[96];
    if (labels->dtype != DTYPE_I64) {
        tg_error_set("%s: labels must be int64, got %s", op->name, tg_dtype_name(labels->dtype));
        return -1;
    }
    if (x->ndim < 2) {
        tg_error_set("%s: input must be [N, C] or [N, C, d...], got %s", op->name,
                  tensor_shape_str(x, sx, sizeof sx));
        return -1;
    }
    bool ok = labels->ndim == x->ndim - 1 && labels->shape[0] == x->shape[0];
    for (int d = 1; ok && d < labels->ndim; d++) ok = labels->shape[d] == x->shape[d + 1];
    if (!ok) {
        tg_error_set("%s: shape mismatch: input %s needs labels [N, d...] without C, got %s",
                  op->name, tensor_shape_str(x, sx, sizeof sx),
                  tensor_shape_str(labels, sl, sizeof sl));
        return -1;
    }
    const int64_t *L = labels->data, C = x->shape[1];
    for (int64_t i = 0; i < labels->size; i++) {
        if (L[i] < 0 || L[i] >= C) {
            tg_error_set("%s: label %lld at position %lld out of range [0, %lld)", op->name,
                      (long long)L[i], (long long)i, (long long)C);
            return -1;
        }
    }
    return 0;
}

static tensor *cls_apply(const op_def *op, tensor *x, tensor *labels, tensor *w, double smoothing,
                         reduction r) {
    tensor *in[3] = {x, labels, w};
    char sw[96], sx[96];
    if (tg_op_check_inputs(op, in, 2, 1u << 1) || op_check_optional_null(w) ||
        reduction_check(op, r) || labels_check(op, x, labels))
        return NULL;
    if (w && (w->dtype != x->dtype || w->ndim != 1 || w->shape[0] != x->shape[1])) {
        tg_error_set("%s: weight must be %s [C] = [%lld] for input %s, got %s %s", op->name,
                  tg_dtype_name(x->dtype), (long long)x->shape[1], tensor_shape_str(x, sx, sizeof sx),
                  tg_dtype_name(w->dtype), tensor_shape_str(w, sw, sizeof sw));
        return NULL;
    }
    if (!(smoothing >= 0 && smoothing <= 1)) {
        tg_error_set("%s: label_smoothing must be in [0, 1], got %g", op->name, smoothing);
        return NULL;
    }
    tape_node *n = tg_node_begin(op, in, w ? 3 : 2, x->dtype, r == REDUCTION_NONE ? labels->ndim : 0,
                              labels->shape);
    if (!n) return NULL;
    n->ip[0] = r;
    n->fp[0] = smoothing;
    if (op == OP(CROSS_ENTROPY) && !(n->saved[0] = tg_tensor_tape_new(x->dtype, x->ndim, x->shape)))
        return NULL;
    return tg_node_finish(n);
}

tensor *tensor_cross_entropy(tensor *logits, tensor *labels, tensor *weight,
                             double label_smoothing, reduction r) {
    return cls_apply(OP(CROSS_ENTROPY), logits, labels, weight, label_smoothing, r);
}
tensor *tensor_nll_loss(tensor *logp, tensor *labels, tensor *weight, reduction r) {
    return cls_apply(OP(NLL), logp, labels, weight, 0.0, r);
}

/* ============================================================ cosine embedding
 * x1, x2 (N, D), y (N) in {-1, +1}, margin m. Per row (PyTorch's eps 1e-12):
 *   n1 = |x1|^2 + eps, n2 = |x2|^2 + eps, cos = <x1, x2> / sqrt(n1 n2)
 *   l = 1 - cos (y = 1), max(0, cos - m) (y = -1), 0 for any other y (as PyTorch)
 *   dcos/dx1 = x2 / sqrt(n1 n2) - cos x1 / n1, dcos/dx2 likewise. */
#define COS_EPS 1e-12

#define COS_KERNELS(T)                                                                  \
    static void cos_row_##T(const T *a, const T *b, int64_t D, double *cos, double *n1, \
                            double *n2) {                                               \
        double ab = 0, aa = COS_EPS, bb = COS_EPS;                                      \
        for (int64_t d = 0; d < D; d++) {                                               \
            ab += (double)a[d] * b[d];                                                  \
            aa += (double)a[d] * a[d];                                                  \
            bb += (double)b[d] * b[d];                                                  \
        }                                                                               \
        *cos = ab / sqrt(aa * bb);                                                      \
        *n1 = aa;                                                                       \
        *n2 = bb;                                                                       \
    }                                                                                   \
    static void cos_fwd_##T(tape_node *n) {                                             \
        const T *A = n->in[0]->data, *B = n->in[1]->data, *Y = n->in[2]->data;          \
        const int64_t N = n->in[0]->shape[0], D = n->in[0]->shape[1];                   \
        T *Z = n->out->data;                                                            \
        double acc = 0;                                                                 \
        for (int64_t i = 0; i < N; i++) {                                               \
            double cos, n1, n2;                                                         \
            cos_row_##T(A + i * D, B + i * D, D, &cos, &n1, &n2);                       \
            double l = Y[i] == 1 ? 1 - cos : Y[i] == -1 ? fmax(cos - n->fp[0], 0.0) : 0.0; \
            if (n->ip[0] == REDUCTION_NONE) Z[i] = (T)l;                                \
            else acc += l;                                                              \
        }                                                                               \
        if (n->ip[0] != REDUCTION_NONE)                                                 \
            Z[0] = (T)(n->ip[0] == REDUCTION_MEAN ? acc / (double)N : acc);             \
    }                                                                                   \
    static void cos_bwd_##T(tape_node *n, tensor *const *gin) {                         \
        const T *A = n->in[0]->data, *B = n->in[1]->data, *Y = n->in[2]->data;          \
        const T *G = n->out->grad->data;                                                \
        T *DA = gin[0] ? gin[0]->data : NULL, *DB = gin[1] ? gin[1]->data : NULL;       \
        const int64_t N = n->in[0]->shape[0], D = n->in[0]->shape[1];                   \
        const bool none = n->ip[0] == REDUCTION_NONE;                                   \
        const double g0 = none ? 0 : n->ip[0] == REDUCTION_MEAN ? G[0] / (double)N : G[0]; \
        for (int64_t i = 0; i < N; i++) {                                               \
            double cos, n1, n2;                                                         \
            const T *a = A + i * D, *b = B + i * D;                                     \
            cos_row_##T(a, b, D, &cos, &n1, &n2);                                       \
            double dl = Y[i] == 1 ? -1.0 : (Y[i] == -1 && cos > n->fp[0]) ? 1.0 : 0.0;   \
            double k = (none ? G[i] : g0) * dl, den = sqrt(n1 * n2);                    \
            if (k == 0) continue;                                                       \
            for (int64_t d = 0; d < D; d++) {                                           \
                if (DA) DA[i * D + d] += (T)(k * (b[d] / den - cos * a[d] / n1));       \
                if (DB) DB[i * D + d] += (T)(k * (a[d] / den - cos * b[d] / n2));       \
            }                                                                           \
        }                                                                               \
    }
COS_KERNELS(float)
COS_KERNELS(double)

static void cosine_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32) cos_fwd_float(n);
    else cos_fwd_double(n);
}
static void cosine_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0] && !gin[1]) return;
    if (n->out->dtype == DTYPE_F32) cos_bwd_float(n, gin);
    else cos_bwd_double(n, gin);
}

tensor *tensor_cosine_embedding_loss(tensor *x1, tensor *x2, tensor *y, double margin, reduction r) {
    const op_def *op = OP(COSINE);
    tensor *in[3] = {x1, x2, y};
    char s1[96], s2[96], sy[96];
    if (tg_op_check_inputs(op, in, 3, 0) || reduction_check(op, r)) return NULL;
    if (x1->ndim != 2 || !tensor_same_shape(x1, x2) || y->ndim != 1 || y->shape[0] != x1->shape[0]) {
        tg_error_set("%s: shape mismatch: needs x1 [N, D], x2 [N, D], y [N], got %s, %s, %s", op->name,
                  tensor_shape_str(x1, s1, sizeof s1), tensor_shape_str(x2, s2, sizeof s2),
                  tensor_shape_str(y, sy, sizeof sy));
        return NULL;
    }
    tape_node *n = tg_node_begin(op, in, 3, x1->dtype, r == REDUCTION_NONE ? 1 : 0, y->shape);
    if (!n) return NULL;
    n->ip[0] = r;
    n->fp[0] = margin;
    return tg_node_finish(n);
}

/* ============================================================ sample cases
 * Pointwise losses run over three shapes, one per reduction; the losses with
 * a weight add weighted cases (same shape, broadcast row, broadcast column).
 * Values keep a margin of 0.05 from every kink: d = x - y is drawn first,
 * away from 0 and +-delta, and y = x - d. */

typedef struct {
    int nd;
    int64_t shape[3];
    reduction r;
    int wnd;                   /* weight dims, -1 for none */
    int64_t wshape[3];
} pw_case;

static const pw_case pw_cases[] = {
    {2, {3, 4}, REDUCTION_MEAN, -1, {0}}, {3, {2, 3, 2}, REDUCTION_SUM, -1, {0}},
    {1, {5}, REDUCTION_NONE, -1, {0}},    {2, {3, 4}, REDUCTION_MEAN, 2, {3, 4}},
    {2, {3, 4}, REDUCTION_NONE, 1, {4}},  {2, {3, 4}, REDUCTION_SUM, 2, {3, 1}},
};
static const char *red_name[] = {"mean", "sum", "none"};

static int pw_case_count(bool weighted) { return weighted ? 6 : 3; }

static void pw_case_name(op_sample *s, const pw_case *c, const char *extra) {
    char sx[64], sw[64] = "";
    tensor_shape_str(s->inputs[0], sx, sizeof sx);
    if (s->n_inputs > 2) tensor_shape_str(s->inputs[2], sw, sizeof sw);
    tg_sample_name(s, "%s %s%s%s%s", sx, red_name[c->r], s->n_inputs > 2 ? " weight " : "", sw, extra);
}

/* Fills inputs x in [lo, hi) and y = x - d, d in [-dmax, dmax) away from the
 * kinks; the weight (if the case has one) in [0.5, 2). */
static int pw_sample_diff(const pw_case *c, rng *g, op_sample *s, double lo, double hi,
                          double dmax, const double *kinks, int nk) {
    s->n_inputs = 2;
    s->ip[0] = c->r;
    s->inputs[0] = tg_sample_tensor(g, c->nd, c->shape, lo, hi);
    tensor *d = tg_sample_tensor_avoiding(g, c->nd, c->shape, -dmax, dmax, kinks, nk, 0.05);
    s->inputs[1] = tensor_new(DTYPE_F64, c->nd, c->shape);
    if (!s->inputs[0] || !d || !s->inputs[1]) {
        tensor_free(d);
        return -1;
    }
    double *X = s->inputs[0]->data, *Y = s->inputs[1]->data, *Dd = d->data;
    for (int64_t i = 0; i < d->size; i++) Y[i] = X[i] - Dd[i];
    tensor_free(d);
    return 0;
}

/* Fills x in [xlo, xhi), y in [ylo, yhi), the weight in [wlo, whi). */
static int pw_sample_ranges(const pw_case *c, rng *g, op_sample *s, double xlo, double xhi,
                            double ylo, double yhi, double wlo, double whi) {
    s->ip[0] = c->r;
    s->inputs[0] = tg_sample_tensor(g, c->nd, c->shape, xlo, xhi);
    s->inputs[1] = tg_sample_tensor(g, c->nd, c->shape, ylo, yhi);
    s->n_inputs = 2;
    if (c->wnd >= 0) {
        s->inputs[2] = tg_sample_tensor(g, c->wnd, c->wshape, wlo, whi);
        s->n_inputs = 3;
        s->no_grad_mask = 1u << 2;
        if (!s->inputs[2]) return -1;
    }
    return s->inputs[0] && s->inputs[1] ? 0 : -1;
}

static int mse_sample(int k, rng *g, op_sample *s) {
    if (k >= pw_case_count(false)) return 1;
    if (pw_sample_ranges(&pw_cases[k], g, s, -2, 2, -2, 2, 0, 0)) return -1;
    pw_case_name(s, &pw_cases[k], "");
    return 0;
}
static int l1_sample(int k, rng *g, op_sample *s) {
    static const double kink[] = {0.0};
    if (k >= pw_case_count(false)) return 1;
    if (pw_sample_diff(&pw_cases[k], g, s, -2, 2, 2, kink, 1)) return -1;
    pw_case_name(s, &pw_cases[k], "");
    return 0;
}
/* huber's delta / smooth_l1's beta vary by case as param[k] = 1, 0.5, 1.5
 * (smooth_l1: 0, which is l1, last); kinks at +-param[k], and at 0 with
 * nkinks 3 (smooth_l1 with beta 0). */
static int pw_param_sample(int k, rng *g, op_sample *s, const double *param, int nkinks,
                           const char *pname) {
    if (k >= pw_case_count(false)) return 1;
    double kinks[3] = {-param[k], param[k], 0.0};
    if (pw_sample_diff(&pw_cases[k], g, s, -2, 2, 2.5, kinks, nkinks)) return -1;
    s->fp[0] = param[k];
    char extra[32];
    snprintf(extra, sizeof extra, " %s %g", pname, param[k]);
    pw_case_name(s, &pw_cases[k], extra);
    return 0;
}
static int huber_sample(int k, rng *g, op_sample *s) {
    static const double deltas[] = {1.0, 0.5, 1.5};
    return pw_param_sample(k, g, s, deltas, 2, "delta");
}
static int smooth_l1_sample(int k, rng *g, op_sample *s) {
    static const double betas[] = {1.0, 0.5, 0.0};
    return pw_param_sample(k, g, s, betas, 3, "beta");
}
static int bce_sample(int k, rng *g, op_sample *s) {
    if (k >= pw_case_count(true)) return 1;
    if (pw_sample_ranges(&pw_cases[k], g, s, 0.05, 0.95, 0, 1, 0.5, 2)) return -1;
    pw_case_name(s, &pw_cases[k], "");
    return 0;
}
static int bce_logits_sample(int k, rng *g, op_sample *s) {
    if (k >= pw_case_count(true)) return 1;
    if (pw_sample_ranges(&pw_cases[k], g, s, -4, 4, 0, 1, 0.5, 3)) return -1;
    pw_case_name(s, &pw_cases[k], "");
    return 0;
}
static int kl_div_sample(int k, rng *g, op_sample *s) {
    if (k >= pw_case_count(false)) return 1;
    if (pw_sample_ranges(&pw_cases[k], g, s, -3, -0.1, 0.05, 1, 0, 0)) return -1;
    pw_case_name(s, &pw_cases[k], "");
    return 0;
}
/* y = +-1 at random, x at least 0.05 from the kinks x = +-margin. */
static int hinge_sample(int k, rng *g, op_sample *s) {
    static const double margins[] = {1.0, 0.5, 0.0};
    if (k >= pw_case_count(false)) return 1;
    const pw_case *c = &pw_cases[k];
    double kinks[2] = {-margins[k], margins[k]};
    s->n_inputs = 2;
    s->ip[0] = c->r;
    s->fp[0] = margins[k];
    s->inputs[0] = tg_sample_tensor_avoiding(g, c->nd, c->shape, -2, 2, kinks, 2, 0.05);
    s->inputs[1] = tensor_new(DTYPE_F64, c->nd, c->shape);
    if (!s->inputs[0] || !s->inputs[1]) return -1;
    double *Y = s->inputs[1]->data;
    for (int64_t i = 0; i < s->inputs[1]->size; i++) Y[i] = rng_below(g, 2) ? 1.0 : -1.0;
    /* y x < 0 <= margin: element 0 is active, so no case has zero gradients */
    Y[0] = ((const double *)s->inputs[0]->data)[0] > 0 ? -1.0 : 1.0;
    char extra[32];
    snprintf(extra, sizeof extra, " margin %g", margins[k]);
    pw_case_name(s, c, extra);
    return 0;
}
/* (alpha, gamma) per case, soft targets in (0, 1); the last case has hard
 * 0/1 targets as in detection. */
static int focal_sample(int k, rng *g, op_sample *s) {
    static const double alphas[] = {0.25, -1.0, 0.6, 0.25}, gammas[] = {2.0, 0.5, 0.0, 2.0};
    if (k >= 4) return 1;
    const pw_case *c = &pw_cases[k % 3];
    if (pw_sample_ranges(c, g, s, -3, 3, 0, 1, 0, 0)) return -1;
    if (k == 3) {
        double *Y = s->inputs[1]->data;
        for (int64_t i = 0; i < s->inputs[1]->size; i++) Y[i] = Y[i] < 0.5 ? 0.0 : 1.0;
    }
    s->fp[0] = alphas[k];
    s->fp[1] = gammas[k];
    char extra[64];
    snprintf(extra, sizeof extra, " alpha %g gamma %g%s", alphas[k], gammas[k],
             k == 3 ? " hard targets" : "");
    pw_case_name(s, c, extra);
    return 0;
}

/* Class losses: (shape, weight?, label smoothing, reduction). */
static const struct {
    int nd;
    int64_t shape[4];
    bool weighted;
    double smoothing;
    reduction r;
} cls_cases[] = {
    {2, {4, 5}, false, 0.0, REDUCTION_MEAN},     {2, {4, 5}, true, 0.0, REDUCTION_SUM},
    {4, {3, 4, 2, 2}, false, 0.0, REDUCTION_NONE}, {2, {4, 5}, true, 0.1, REDUCTION_MEAN},
    {3, {3, 4, 3}, false, 0.2, REDUCTION_MEAN},  {2, {6, 3}, true, 0.15, REDUCTION_NONE},
    {3, {2, 3, 4}, true, 0.0, REDUCTION_MEAN},
};
#define N_CLS_CASES (int)(sizeof cls_cases / sizeof cls_cases[0])

static int cls_sample(int k, rng *g, op_sample *s, bool smoothing, double lo, double hi) {
    if (k >= N_CLS_CASES) return 1;
    int nd = cls_cases[k].nd;
    const int64_t *shape = cls_cases[k].shape;
    int64_t lshape[4] = {shape[0], shape[2], shape[3]};
    s->n_inputs = cls_cases[k].weighted ? 3 : 2;
    s->no_grad_mask = (1u << 1) | (1u << 2);
    s->ip[0] = cls_cases[k].r;
    s->fp[0] = smoothing ? cls_cases[k].smoothing : 0.0;
    s->inputs[0] = tg_sample_tensor(g, nd, shape, lo, hi);
    s->inputs[1] = tg_sample_labels(g, nd - 1, lshape, shape[1]);
    if (cls_cases[k].weighted) s->inputs[2] = tg_sample_tensor(g, 1, &shape[1], 0.3, 2.0);
    for (int i = 0; i < s->n_inputs; i++)
        if (!s->inputs[i]) return -1;
    char sx[64];
    tg_sample_name(s, "%s %s%s smoothing %g", tensor_shape_str(s->inputs[0], sx, sizeof sx),
                red_name[s->ip[0]], cls_cases[k].weighted ? " weight" : "", s->fp[0]);
    return 0;
}
static int cross_entropy_sample(int k, rng *g, op_sample *s) { return cls_sample(k, g, s, true, -3, 3); }
static int nll_sample(int k, rng *g, op_sample *s) { return cls_sample(k, g, s, false, -4, -0.1); }

/* Rows with y = -1 keep cos at least 0.05 from the margin (else y becomes +1);
 * row 0 has y = +1, always active, so no case has zero gradients. */
static int cosine_sample(int k, rng *g, op_sample *s) {
    static const int64_t shapes[][2] = {{4, 5}, {5, 3}, {3, 6}};
    static const double margins[] = {0.0, 0.2, -0.1};
    static const reduction reds[] = {REDUCTION_MEAN, REDUCTION_SUM, REDUCTION_NONE};
    if (k >= 3) return 1;
    int64_t N = shapes[k][0], D = shapes[k][1];
    s->n_inputs = 3;
    s->no_grad_mask = 1u << 2;
    s->ip[0] = reds[k];
    s->fp[0] = margins[k];
    s->inputs[0] = tg_sample_tensor(g, 2, shapes[k], -2, 2);
    s->inputs[1] = tg_sample_tensor(g, 2, shapes[k], -2, 2);
    s->inputs[2] = tensor_new(DTYPE_F64, 1, &N);
    if (!s->inputs[0] || !s->inputs[1] || !s->inputs[2]) return -1;
    const double *A = s->inputs[0]->data, *B = s->inputs[1]->data;
    double *Y = s->inputs[2]->data;
    for (int64_t i = 0; i < N; i++) {
        double cos, n1, n2;
        cos_row_double(A + i * D, B + i * D, D, &cos, &n1, &n2);
        Y[i] = (i > 0 && rng_below(g, 2) && fabs(cos - margins[k]) > 0.05) ? -1.0 : 1.0;
    }
    tg_sample_name(s, "[%lld,%lld] %s margin %g", (long long)N, (long long)D, red_name[reds[k]],
                margins[k]);
    return 0;
}

static tensor *weight_in(tensor *const *in, const op_sample *s) {
    return s->n_inputs > 2 ? in[2] : NULL;
}
static tensor *mse_build(tensor *const *in, const op_sample *s) {
    return tensor_mse_loss(in[0], in[1], (reduction)s->ip[0]);
}
static tensor *l1_build(tensor *const *in, const op_sample *s) {
    return tensor_l1_loss(in[0], in[1], (reduction)s->ip[0]);
}
static tensor *huber_build(tensor *const *in, const op_sample *s) {
    return tensor_huber_loss(in[0], in[1], s->fp[0], (reduction)s->ip[0]);
}
static tensor *smooth_l1_build(tensor *const *in, const op_sample *s) {
    return tensor_smooth_l1_loss(in[0], in[1], s->fp[0], (reduction)s->ip[0]);
}
static tensor *bce_build(tensor *const *in, const op_sample *s) {
    return tensor_bce_loss(in[0], in[1], weight_in(in, s), (reduction)s->ip[0]);
}
static tensor *bce_logits_build(tensor *const *in, const op_sample *s) {
    return tensor_bce_with_logits(in[0], in[1], weight_in(in, s), (reduction)s->ip[0]);
}
static tensor *cross_entropy_build(tensor *const *in, const op_sample *s) {
    return tensor_cross_entropy(in[0], in[1], weight_in(in, s), s->fp[0], (reduction)s->ip[0]);
}
static tensor *nll_build(tensor *const *in, const op_sample *s) {
    return tensor_nll_loss(in[0], in[1], weight_in(in, s), (reduction)s->ip[0]);
}
static tensor *kl_div_build(tensor *const *in, const op_sample *s) {
    return tensor_kl_div(in[0], in[1], (reduction)s->ip[0]);
}
static tensor *hinge_build(tensor *const *in, const op_sample *s) {
    return tensor_hinge_loss(in[0], in[1], s->fp[0], (reduction)s->ip[0]);
}
static tensor *focal_build(tensor *const *in, const op_sample *s) {
    return tensor_focal_loss(in[0], in[1], s->fp[0], s->fp[1], (reduction)s->ip[0]);
}
static tensor *cosine_build(tensor *const *in, const op_sample *s) {
    return tensor_cosine_embedding_loss(in[0], in[1], in[2], s->fp[0], (reduction)s->ip[0]);
}

#define RED_NOTE "reduction: mean (over elements), sum or none (one loss per element). "

/* ------------------------------------------- class losses: graph vjps
 * With gs the upstream gradient per position (NONE: g reshaped to
 * [N, 1, d...]; otherwise g / denominator, a scalar), and constants made
 * from the labels and the class weight (neither has a gradient):
 *   cross_entropy: dx = gs (K1 p - K2), p = softmax(x, 1) (a new node, so
 *     that the second order sees p's dependence on x),
 *     K1 = (1-e) w_y + (e/C) W  [N, 1, d...],  K2_c = (1-e) w_y [c = y] + (e/C) w_c
 *   nll_loss: dx = -gs K, K_c = w_y [c = y] */
static tensor *cls_scale(const tape_node *n, tensor *g, cls_geom gm) {
    if (n->ip[0] != REDUCTION_NONE) return tensor_mul_scalar(g, 1.0 / cls_denominator(n, gm));
    const tensor *x = n->in[0];
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = d == 1 ? 1 : x->shape[d];
    return tensor_reshape(g, x->ndim, shape);
}
/* K1 (k1 non-NULL) and K2 of cross_entropy with smoothing e, or nll's K (e = 0, k1 NULL). */
static int cls_constants(const tape_node *n, cls_geom gm, double e, tensor **k1, tensor **k2) {
    const tensor *x = n->in[0], *w = n->n_in > 2 ? n->in[2] : NULL;
    const int64_t *L = n->in[1]->data, C = gm.C, S = gm.S;
    int64_t shape1[TENSOR_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape1[d] = d == 1 ? 1 : x->shape[d];
    *k2 = tg_tensor_tape_zeros(x->dtype, x->ndim, x->shape);
    if (k1) *k1 = tg_tensor_tape_new(x->dtype, x->ndim, shape1);
    if (!*k2 || (k1 && !*k1)) return -1;
    double W = 0;
    for (int64_t c = 0; c < C; c++) W += w ? tensor_get(w, c) : 1;
    for (int64_t i = 0; i < gm.N; i++)
        for (int64_t s = 0; s < S; s++) {
            const int64_t y = L[i * S + s];
            const double wy = (1 - e) * (w ? tensor_get(w, y) : 1);
            if (k1) tensor_set(*k1, i * S + s, wy + e / (double)C * W);
            for (int64_t c = 0; c < C; c++)
                tensor_set(*k2, (i * C + c) * S + s,
                           (c == y ? wy : 0) + e / (double)C * (w ? tensor_get(w, c) : 1));
        }
    return 0;
}
static int cross_entropy_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    cls_geom gm = cls_geom_of(n->in[0]);
    tensor *k1, *k2;
    if (cls_constants(n, gm, n->fp[0], &k1, &k2)) return -1;
    gin[0] = tensor_mul(cls_scale(n, g, gm), tensor_sub(tensor_mul(k1, tensor_softmax(n->in[0], 1)), k2));
    return tg_graph_vjp_done(n, want, gin);
}
static int nll_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    cls_geom gm = cls_geom_of(n->in[0]);
    tensor *k;
    if (cls_constants(n, gm, 0.0, NULL, &k)) return -1;
    gin[0] = tensor_neg(tensor_mul(cls_scale(n, g, gm), k));
    return tg_graph_vjp_done(n, want, gin);
}

/* cosine_embedding_loss rebuilt from ops and differentiated: per row
 * cos = <x1, x2> (|x1|^2 + eps)^-1/2 (|x2|^2 + eps)^-1/2,
 * l = 1 - cos (y = 1), relu(cos - margin) (y = -1), 0 otherwise */
static int cosine_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *a = n->in[0], *b = n->in[1], *y = n->in[2];
    int ax1 = 1;
    tensor *ab = tensor_sum(tensor_mul(a, b), &ax1, 1, false);
    tensor *n1 = tensor_add_scalar(tensor_sum(tensor_square(a), &ax1, 1, false), COS_EPS);
    tensor *n2 = tensor_add_scalar(tensor_sum(tensor_square(b), &ax1, 1, false), COS_EPS);
    tensor *cos = tensor_mul(ab, tensor_pow_scalar(tensor_mul(n1, n2), -0.5));
    tensor *zero = tg_tape_scalar(a->dtype, 0), *one = tg_tape_scalar(a->dtype, 1), *mone = tg_tape_scalar(a->dtype, -1);
    tensor *l = tensor_where(tensor_eq(y, one), tensor_add_scalar(tensor_neg(cos), 1.0),
                             tensor_where(tensor_eq(y, mone), tensor_relu(tensor_add_scalar(cos, -n->fp[0])), zero));
    tensor *out = n->ip[0] == REDUCTION_NONE ? l : n->ip[0] == REDUCTION_SUM ? tensor_sum_all(l) : tensor_mean_all(l);
    return tg_vjp_graph_by_decomposition(n, out, g, want, gin);
}

const op_def tg_ops_loss[] = {
    [MSE] = {"mse_loss", 2, 0, mse_forward, mse_vjp, mse_sample, mse_build,
             "tensor_mse_loss(pred, target, reduction)", "l = (pred - target)^2",
             "dpred = 2 (pred - target) g, dtarget = -dpred", RED_NOTE "pred and target: one shape",
     .vjp_graph = mse_vjp_graph},
    [L1] = {"l1_loss", 2, 0, l1_forward, l1_vjp, l1_sample, l1_build,
            "tensor_l1_loss(pred, target, reduction)", "l = |pred - target|",
            "dpred = sign(pred - target) g, dtarget = -dpred",
            RED_NOTE "kink at pred = target (gradient 0 there, like PyTorch); samples keep |d| >= 0.05",
     .vjp_graph = l1_vjp_graph},
    [HUBER] = {"huber_loss", 2, 0, huber_forward, huber_vjp, huber_sample, huber_build,
               "tensor_huber_loss(pred, target, delta, reduction)",
               "d = pred - target; l = d^2/2 if |d| < delta else delta (|d| - delta/2)",
               "dpred = clamp(d, -delta, delta) g, dtarget = -dpred",
               RED_NOTE "delta > 0; second derivative jumps at |d| = delta; samples keep 0.05 away",
     .vjp_graph = huber_vjp_graph},
    [SMOOTH_L1] = {"smooth_l1_loss", 2, 0, smooth_l1_forward, smooth_l1_vjp, smooth_l1_sample,
                   smooth_l1_build, "tensor_smooth_l1_loss(pred, target, beta, reduction)",
                   "d = pred - target; l = d^2/(2 beta) if |d| < beta else |d| - beta/2",
                   "dpred = (d / beta if |d| < beta else sign(d)) g, dtarget = -dpred",
                   RED_NOTE "beta >= 0, beta = 0 is l1_loss; samples keep |d| 0.05 from 0 and beta",
     .vjp_graph = smooth_l1_vjp_graph},
    [BCE] = {"bce_loss", 3, 1u << 2, bce_forward, bce_vjp, bce_sample, bce_build,
             "tensor_bce_loss(prob, target, weight or NULL, reduction)",
             "l = -w (t max(log p, -100) + (1 - t) max(log(1 - p), -100))",
             "dp = w (p - t) / max(p (1 - p), 1e-12) g, dt = w (max(log(1-p),-100) - max(log p,-100)) g",
             RED_NOTE "prob must be in [0, 1] (checked); the weight broadcasts to prob and gets no "
                      "gradient; mean divides by the element count; samples keep p in (0.05, 0.95)",
     .vjp_graph = bce_vjp_graph},
    [BCE_LOGITS] = {"bce_with_logits", 3, 1u << 2, bce_logits_forward, bce_logits_vjp,
                    bce_logits_sample, bce_logits_build,
                    "tensor_bce_with_logits(logits, target, pos_weight or NULL, reduction)",
                    "l = (1 - t) x + (1 + (pw - 1) t) softplus(-x)",
                    "dx = ((1 - t) - (1 + (pw - 1) t) sigmoid(-x)) g, dt = (-x + (pw - 1) softplus(-x)) g",
                    RED_NOTE "log-sigmoid form, finite for any logit; pos_weight broadcasts to the "
                             "logits (typically [C]) and gets no gradient",
     .vjp_graph = bce_logits_vjp_graph},
    [CROSS_ENTROPY] = {"cross_entropy", 3, (1u << 1) | (1u << 2), cross_entropy_forward,
                       cross_entropy_vjp, cross_entropy_sample, cross_entropy_build,
                       "tensor_cross_entropy(logits, labels, weight or NULL, label_smoothing, reduction)",
                       "lse = logsumexp_c x; l = (1-e) w_y (lse - x_y) + (e/C) sum_c w_c (lse - x_c)",
                       "dx_c = g ((1-e) w_y (p_c - [c = y]) + (e/C) (W p_c - w_c)), p = softmax(x), W = sum w",
                       "logits [N, C] or [N, C, d...], labels int64 [N] or [N, d...] in [0, C), no "
                       "gradient; weight [C], no gradient; label_smoothing e in [0, 1]; mean divides "
                       "by the summed weights of the targets (PyTorch); none gives [N, d...]; "
                       "max-shifted log-sum-exp, finite for any logit; softmax kept for the vjp. "
                       "Not offered: ignore_index, probability targets",
     .vjp_graph = cross_entropy_vjp_graph, .vjp_fresh = true},
    [NLL] = {"nll_loss", 3, (1u << 1) | (1u << 2), nll_forward, nll_vjp, nll_sample, nll_build,
             "tensor_nll_loss(logp, labels, weight or NULL, reduction)", "l = -w_y logp_y",
             "dlogp_c = -w_y [c = y] g",
             "shapes as cross_entropy; mean divides by the summed weights of the targets",
     .vjp_graph = nll_vjp_graph},
    [KL_DIV] = {"kl_div", 2, 0, kl_div_forward, kl_div_vjp, kl_div_sample, kl_div_build,
                "tensor_kl_div(logp, target, reduction)", "l = t log t - t logp  (0 log 0 = 0)",
                "dlogp = -t g, dt = (log t + 1 - logp) g",
                RED_NOTE "PyTorch's kl_div with log_target = false; mean is the element mean like "
                         "PyTorch's 'mean'; 'batchmean' is not offered: use sum and divide by N. "
                         "At t = 0 the target gradient is taken as -logp; samples keep t >= 0.05",
     .vjp_graph = kl_div_vjp_graph},
    [HINGE] = {"hinge_loss", 2, 0, hinge_forward, hinge_vjp, hinge_sample, hinge_build,
               "tensor_hinge_loss(x, y, margin, reduction)", "l = max(0, margin - y x)",
               "dx = -y [margin > y x] g, dy = -x [margin > y x] g",
               RED_NOTE "y in {-1, +1}, same shape as x; kink at y x = margin, samples keep 0.05 away",
     .vjp_graph = hinge_vjp_graph},
    [FOCAL] = {"focal_loss", 2, 0, focal_forward, focal_vjp, focal_sample, focal_build,
               "tensor_focal_loss(logits, target, alpha, gamma, reduction)",
               "s = sigmoid(x); u = s (1 - t) + (1 - s) t; a = alpha t + (1 - alpha)(1 - t); "
               "l = a u^gamma bce_with_logits(x, t)",
               "dx = a g ((s - t) u^gamma + ce gamma u^(gamma-1) s (1 - s) (1 - 2t)), "
               "dt = a g (-x u^gamma + ce gamma u^(gamma-1) (1 - 2s)) + (2 alpha - 1) ce u^gamma g",
               RED_NOTE "torchvision.ops.sigmoid_focal_loss; alpha < 0 disables the alpha weight; "
                        "gamma >= 0; finite for any logit; soft targets allowed",
     .vjp_graph = focal_vjp_graph},
    [COSINE] = {"cosine_embedding_loss", 3, 1u << 2, cosine_forward, cosine_vjp, cosine_sample,
                cosine_build, "tensor_cosine_embedding_loss(x1, x2, y, margin, reduction)",
                "c = <x1, x2> / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)); l = 1 - c (y = 1), "
                "max(0, c - margin) (y = -1)",
                "dx1 = dl/dc (x2 / sqrt(n1 n2) - c x1 / n1) g, dx2 likewise, dl/dc = -1 or [c > margin]",
                "x1, x2 [N, D], y [N] in {-1, +1} (other values give 0, as PyTorch), no gradient; "
                "none gives [N]; kink at c = margin for y = -1, samples keep 0.05 away",
     .vjp_graph = cosine_vjp_graph},
};
const int tg_ops_loss_count = N_LOSS_OPS;
_Static_assert(sizeof tg_ops_loss / sizeof tg_ops_loss[0] == N_LOSS_OPS,
               "tg_ops_loss: one entry per op of its enum");
