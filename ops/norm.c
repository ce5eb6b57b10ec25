/* norm.c - batch normalisation and layer normalisation.
 *
 * Statistics (mean, 1/std) are float64 tensors saved on the node: allocated by
 * the builder, written by forward (so a replay recomputes them from the
 * perturbed input) and read by the vjp; float64 whatever x's dtype, so a
 * float64 replay of a float32 tape can use them as they are. Batch norm's running statistics are
 * updated by the builder after forward, never by forward itself. */
#include "elementwise.h"

extern const op_def tg_ops_norm[];
enum { BATCH_NORM, LAYER_NORM, N_NORM_OPS };
enum { SAVED_MEAN, SAVED_ISTD, SAVED_VAR };

/* -------------------------------------------------------------- batch norm */

/* x (B, C, S...) with S the product of the dims after C, N = B * S values
 * per channel. Training: mu, var = batch mean and biased variance of channel
 * c; eval: the running statistics. With s = 1 / sqrt(var + eps), xh = (x - mu) s:
 *   y = xh w + b
 *   dw += sum g xh    db += sum g
 *   dx += w s (g - sum(g) / N - xh sum(g xh) / N)   (training: mu, var depend on x)
 *   dx += w s g                                      (eval) */
typedef struct {
    int64_t B, C, S, N;
} bn_geom;

static bn_geom bn_geom_of(const tensor *x) {
    bn_geom g = {x->shape[0], x->shape[1], tg_shape_numel(x->ndim - 2, x->shape + 2), 0};
    g.N = g.B * g.S;
    return g;
}

#define BN_LOOPS(T)                                                                      \
    static void bn_fwd_##T(tape_node *n) {                                               \
        const tensor *w = n->in[1], *bias = n->in[2], *rm = n->in[3], *rv = n->in[4];    \
        bn_geom q = bn_geom_of(n->in[0]);                                                \
        const T *X = n->in[0]->data;                                                     \
        T *Y = n->out->data;                                                             \
        double *mean = n->saved[SAVED_MEAN]->data, *istd = n->saved[SAVED_ISTD]->data;   \
        bool training = n->ip[0];                                                        \
        _Pragma("omp parallel for if (parallel_pays(n->out->size))")              \
        for (int64_t c = 0; c < q.C; c++) {                                              \
            double mu, var;                                                              \
            if (training) {                                                              \
                double acc = 0, acc2 = 0;                                                \
                for (int64_t b = 0; b < q.B; b++)                                        \
                    for (int64_t s = 0; s < q.S; s++) acc += X[(b * q.C + c) * q.S + s];  \
                mu = acc / (double)q.N;                                                  \
                for (int64_t b = 0; b < q.B; b++)                                        \
                    for (int64_t s = 0; s < q.S; s++) {                                  \
                        double d = X[(b * q.C + c) * q.S + s] - mu;                      \
                        acc2 += d * d;                                                   \
                    }                                                                    \
                var = acc2 / (double)q.N;                                                \
                ((double *)n->saved[SAVED_VAR]->data)[c] = var;                          \
            } else {                                                                     \
                mu = ((const T *)rm->data)[c];                                           \
                var = ((const T *)rv->data)[c];                                          \
            }                                                                            \
            double is = 1.0 / sqrt(var + n->fp[0]);                                      \
            mean[c] = mu;                                                                \
            istd[c] = is;                                                                \
            double a = is * (w ? ((const T *)w->data)[c] : 1.0);                         \
            double a0 = (bias ? ((const T *)bias->data)[c] : 0.0) - mu * a;              \
            for (int64_t b = 0; b < q.B; b++) {                                          \
                const T *xs = X + (b * q.C + c) * q.S;                                   \
                T *ys = Y + (b * q.C + c) * q.S;                                         \
                for (int64_t s = 0; s < q.S; s++) ys[s] = (T)(xs[s] * a + a0);           \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    static void bn_bwd_##T(tape_node *n, tensor *const *gin) {                           \
        const tensor *w = n->in[1];                                                      \
        bn_geom q = bn_geom_of(n->in[0]);                                                \
        const T *X = n->in[0]->data, *G = n->out->grad->data;                            \
        const double *mean = n->saved[SAVED_MEAN]->data, *istd = n->saved[SAVED_ISTD]->data; \
        bool training = n->ip[0];                                                        \
        _Pragma("omp parallel for if (parallel_pays(n->out->size))")              \
        for (int64_t c = 0; c < q.C; c++) {                                              \
            double mu = mean[c], is = istd[c], sg = 0, sgx = 0;                          \
            for (int64_t b = 0; b < q.B; b++)                                            \
                for (int64_t s = 0; s < q.S; s++) {                                      \
                    int64_t i = (b * q.C + c) * q.S + s;                                 \
                    sg += G[i];                                                          \
                    sgx += G[i] * (X[i] - mu) * is;                                      \
                }                                                                        \
            if (gin[1]) ((T *)gin[1]->data)[c] += (T)sgx;                                \
            if (gin[2]) ((T *)gin[2]->data)[c] += (T)sg;                                 \
            if (!gin[0]) continue;                                                       \
            double ws = is * (w ? ((const T *)w->data)[c] : 1.0);                        \
            double mg = training ? sg / (double)q.N : 0.0;                               \
            double mgx = training ? sgx / (double)q.N : 0.0;                             \
            T *D = gin[0]->data;                                                         \
            for (int64_t b = 0; b < q.B; b++)                                            \
                for (int64_t s = 0; s < q.S; s++) {                                      \
                    int64_t i = (b * q.C + c) * q.S + s;                                 \
                    D[i] += (T)(ws * (G[i] - mg - (X[i] - mu) * is * mgx));              \
                }                                                                        \
        }                                                                                \
    }
BN_LOOPS(float)
BN_LOOPS(double)

static void batch_norm_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32)
        bn_fwd_float(n);
    else
        bn_fwd_double(n);
}
static void batch_norm_vjp(tape_node *n, tensor *const *gin) {
    if (n->out->dtype == DTYPE_F32)
        bn_bwd_float(n, gin);
    else
        bn_bwd_double(n, gin);
}

/* Validates everything but x itself; returns 0 or -1 with the error set. */
static int batch_norm_check(tensor *const *in, bool training, double momentum, double eps) {
    static const char *what[] = {"x", "weight", "bias", "running_mean", "running_var"};
    const tensor *x = in[0];
    char sx[96], st[96];
    for (int i = 1; i < 5; i++)
        if (op_check_optional("batch_norm", what[i], in[i], x)) return -1;
    if (x->ndim < 2) {
        tg_error_set("batch_norm: x must be (B, C, ...) with at least 2 dims, got %s",
                  tensor_shape_str(x, sx, sizeof sx));
        return -1;
    }
    for (int i = 1; i < 5; i++) {
        if (in[i] && (in[i]->ndim != 1 || in[i]->shape[0] != x->shape[1])) {
            tg_error_set("batch_norm: %s must be [C] = [%lld] for x %s, got %s", what[i],
                      (long long)x->shape[1], tensor_shape_str(x, sx, sizeof sx),
                      tensor_shape_str(in[i], st, sizeof st));
            return -1;
        }
    }
    if (!in[3] != !in[4]) {
        tg_error_set("batch_norm: give both running_mean and running_var, or neither");
        return -1;
    }
    if (!training && !in[3]) {
        tg_error_set("batch_norm: eval mode needs running_mean and running_var, got NULL");
        return -1;
    }
    if (training && bn_geom_of(x).N <= 1) {
        tg_error_set("batch_norm: training needs more than 1 value per channel, x %s",
                  tensor_shape_str(x, sx, sizeof sx));
        return -1;
    }
    if (!(eps >= 0.0 && eps < INFINITY)) {
        tg_error_set("batch_norm: eps must be finite and >= 0, got %g", eps);
        return -1;
    }
    if (!(momentum >= 0.0 && momentum <= 1.0)) {
        tg_error_set("batch_norm: momentum must be in [0, 1], got %g", momentum);
        return -1;
    }
    return 0;
}

/* r <- (1 - momentum) r + momentum v for the running statistics, as PyTorch
 * does: running_var takes the unbiased variance var * N / (N - 1). */
static void batch_norm_update_running(tape_node *n, tensor *rm, tensor *rv, double momentum) {
    const double *mean = n->saved[SAVED_MEAN]->data, *var = n->saved[SAVED_VAR]->data;
    double N = (double)bn_geom_of(n->in[0]).N;
    for (int64_t c = 0; c < rm->size; c++) {
        tensor_set(rm, c, (1.0 - momentum) * tensor_get(rm, c) + momentum * mean[c]);
        tensor_set(rv, c, (1.0 - momentum) * tensor_get(rv, c) + momentum * var[c] * N / (N - 1.0));
    }
}

tensor *tensor_batch_norm(tensor *x, tensor *weight, tensor *bias, tensor *running_mean,
                          tensor *running_var, bool training, double momentum, double eps) {
    const op_def *op = &tg_ops_norm[BATCH_NORM];
    tensor *in[5] = {x, weight, bias, running_mean, running_var};
    if (tg_op_check_inputs(op, in, 1, 0) || batch_norm_check(in, training, momentum, eps)) return NULL;
    tape_node *n = tg_node_begin(op, in, 5, x->dtype, x->ndim, x->shape);
    if (!n) return NULL;
    int64_t C[1] = {x->shape[1]};
    for (int k = 0; k < (training ? 3 : 2); k++)
        if (!(n->saved[k] = tg_tensor_tape_new(DTYPE_F64, 1, C))) return NULL;
    n->ip[0] = training;
    n->fp[0] = eps;
    n->fp[1] = momentum;
    tensor *y = tg_node_finish(n);
    if (y && training && running_mean) batch_norm_update_running(n, running_mean, running_var, momentum);
    return y;
}

/* -------------------------------------------------------------- layer norm */

/* x viewed as (M, D), D the product of the last k dims; per row m:
 * mu, var = mean and biased variance, s = 1 / sqrt(var + eps), xh = (x - mu) s:
 *   y = xh w + b                     (w, b of the last k dims' shape)
 *   dw += sum over rows g xh    db += sum over rows g
 *   dx += s (gw - sum(gw) / D - xh sum(gw xh) / D),  gw = g w */
/* The row loops are `omp simd` with their sums as reductions, one loop per
 * case of w and b present (no select per element): the double sums did not
 * vectorise otherwise, and layer norm was 6% of a GPT step. */
/* The last loop of ln_row_dx: dxr[j] OPEQ its value (OPEQ = or +=). */
#define LN_DX_LOOP(T, OPEQ)                                                             \
    do {                                                                                \
        if (W) {                                                                        \
            _Pragma("omp simd")                                                         \
            for (int64_t j = 0; j < D; j++)                                             \
                dxr[j] OPEQ (T)(is * ((double)gr[j] * W[j] - s1 - (xr[j] - mu) * is * s2)); \
        } else {                                                                        \
            _Pragma("omp simd")                                                         \
            for (int64_t j = 0; j < D; j++)                                             \
                dxr[j] OPEQ (T)(is * (gr[j] - s1 - (xr[j] - mu) * is * s2));            \
        }                                                                               \
    } while (0)

#define LN_LOOPS(T)                                                                     \
    /* y[0..D) = ((x - mu) is) w + b, w and b NULL for ones and zeros */                \
    static inline void ln_row_out_##T(const T *xr, T *yr, int64_t D, double mu, double is, \
                                      const T *W, const T *Bi) {                        \
        if (W && Bi) {                                                                  \
            _Pragma("omp simd")                                                         \
            for (int64_t j = 0; j < D; j++) yr[j] = (T)((xr[j] - mu) * is * W[j] + Bi[j]); \
        } else if (W) {                                                                 \
            _Pragma("omp simd")                                                         \
            for (int64_t j = 0; j < D; j++) yr[j] = (T)((xr[j] - mu) * is * W[j]);      \
        } else if (Bi) {                                                                \
            _Pragma("omp simd")                                                         \
            for (int64_t j = 0; j < D; j++) yr[j] = (T)((xr[j] - mu) * is + Bi[j]);     \
        } else {                                                                        \
            _Pragma("omp simd")                                                         \
            for (int64_t j = 0; j < D; j++) yr[j] = (T)((xr[j] - mu) * is);             \
        }                                                                               \
    }                                                                                   \
    static void ln_fwd_##T(tape_node *n, int64_t M, int64_t D) {                        \
        const T *X = n->in[0]->data;                                                    \
        const T *W = n->in[1] ? n->in[1]->data : NULL, *Bi = n->in[2] ? n->in[2]->data : NULL; \
        T *Y = n->out->data;                                                            \
        double *mean = n->saved[SAVED_MEAN]->data, *istd = n->saved[SAVED_ISTD]->data;  \
        _Pragma("omp parallel for if (parallel_pays(n->out->size))")             \
        for (int64_t m = 0; m < M; m++) {                                               \
            const T *xr = X + m * D;                                                    \
            double acc = 0, acc2 = 0;                                                   \
            _Pragma("omp simd reduction(+ : acc)")                                      \
            for (int64_t j = 0; j < D; j++) acc += xr[j];                               \
            const double mu = acc / (double)D;                                          \
            _Pragma("omp simd reduction(+ : acc2)")                                     \
            for (int64_t j = 0; j < D; j++) acc2 += (xr[j] - mu) * (xr[j] - mu);        \
            const double is = 1.0 / sqrt(acc2 / (double)D + n->fp[0]);                  \
            mean[m] = mu;                                                               \
            istd[m] = is;                                                               \
            ln_row_out_##T(xr, Y + m * D, D, mu, is, W, Bi);                            \
        }                                                                               \
    }                                                                                   \
    /* dx[0..D) += is (gw - s1 - xh s2), gw = g w, s1 = mean gw, s2 = mean gw xh   \
     * (= when write: dx's buffer is fresh) */                                         \
    static inline void ln_row_dx_##T(const T *xr, const T *gr, T *dxr, int64_t D, double mu, \
                                     double is, const T *W, bool write) {               \
        double s1 = 0, s2 = 0;                                                          \
        if (W) {                                                                        \
            _Pragma("omp simd reduction(+ : s1, s2)")                                   \
            for (int64_t j = 0; j < D; j++) {                                           \
                const double gw = (double)gr[j] * W[j];                                 \
                s1 += gw;                                                               \
                s2 += gw * ((xr[j] - mu) * is);                                         \
            }                                                                           \
        } else {                                                                        \
            _Pragma("omp simd reduction(+ : s1, s2)")                                   \
            for (int64_t j = 0; j < D; j++) {                                           \
                s1 += gr[j];                                                            \
                s2 += gr[j] * ((xr[j] - mu) * is);                                      \
            }                                                                           \
        }                                                                               \
        s1 /= (double)D, s2 /= (double)D;                                               \
        if (write) LN_DX_LOOP(T, =);                                                    \
        else LN_DX_LOOP(T, +=);                                                         \
    }                                                                                   \
    static void ln_bwd_##T(tape_node *n, tensor *const *gin, int64_t M, int64_t D) {    \
        const T *X = n->in[0]->data, *G = n->out->grad->data;                           \
        const T *W = n->in[1] ? n->in[1]->data : NULL;                                  \
        const double *mean = n->saved[SAVED_MEAN]->data, *istd = n->saved[SAVED_ISTD]->data; \
        if (gin[0]) {                                                                   \
            T *DX = gin[0]->data;                                                       \
            const bool write = tg_grad_take_fresh(gin[0]);                              \
            _Pragma("omp parallel for if (parallel_pays(n->out->size))")         \
            for (int64_t m = 0; m < M; m++)                                             \
                ln_row_dx_##T(X + m * D, G + m * D, DX + m * D, D, mean[m], istd[m], W, write); \
        }                                                                               \
        T *DW = gin[1] ? gin[1]->data : NULL, *DB = gin[2] ? gin[2]->data : NULL;       \
        /* w and b are parameters as a rule, never fresh: zeroed when they are */     \
        for (int k = 1; k <= 2; k++)                                                    \
            if (gin[k] && tg_grad_take_fresh(gin[k]))                                   \
                memset(gin[k]->data, 0, (size_t)gin[k]->size * sizeof(T));              \
        for (int64_t m = 0; m < M && (DW || DB); m++) {                                 \
            const T *gr = G + m * D, *xr = X + m * D;                                   \
            const double mu = mean[m], is = istd[m];                                    \
            if (DW) {                                                                   \
                _Pragma("omp simd")                                                     \
                for (int64_t j = 0; j < D; j++) DW[j] += (T)(gr[j] * ((xr[j] - mu) * is)); \
            }                                                                           \
            if (DB) {                                                                   \
                _Pragma("omp simd")                                                     \
                for (int64_t j = 0; j < D; j++) DB[j] += gr[j];                         \
            }                                                                           \
        }                                                                               \
    }
LN_LOOPS(float)
LN_LOOPS(double)

static void ln_rows(const tape_node *n, int64_t *M, int64_t *D) {
    const tensor *x = n->in[0];
    int k = (int)n->ip[0];
    *M = tg_shape_numel(x->ndim - k, x->shape);
    *D = tg_shape_numel(k, x->shape + x->ndim - k);
}

static void layer_norm_forward(tape_node *n) {
    int64_t M, D;
    ln_rows(n, &M, &D);
    if (n->out->dtype == DTYPE_F32)
        ln_fwd_float(n, M, D);
    else
        ln_fwd_double(n, M, D);
}
static void layer_norm_vjp(tape_node *n, tensor *const *gin) {
    int64_t M, D;
    ln_rows(n, &M, &D);
    if (n->out->dtype == DTYPE_F32)
        ln_bwd_float(n, gin, M, D);
    else
        ln_bwd_double(n, gin, M, D);
}

tensor *tensor_layer_norm(tensor *x, int normalized_ndim, tensor *weight, tensor *bias, double eps) {
    const op_def *op = &tg_ops_norm[LAYER_NORM];
    tensor *in[3] = {x, weight, bias};
    if (tg_op_check_inputs(op, in, 1, 0) || op_check_optional(op->name, "weight", weight, x) ||
        op_check_optional(op->name, "bias", bias, x))
        return NULL;
    char sx[96], st[96], se[96];
    int k = normalized_ndim;
    if (k < 1 || k > x->ndim) {
        tg_error_set("layer_norm: normalized_ndim %d out of range for x %s (1 to %d)", k,
                  tensor_shape_str(x, sx, sizeof sx), x->ndim);
        return NULL;
    }
    if (!(eps >= 0.0 && eps < INFINITY)) {
        tg_error_set("layer_norm: eps must be finite and >= 0, got %g", eps);
        return NULL;
    }
    tensor last = {.ndim = k}; /* the shape weight and bias must have */
    memcpy(last.shape, x->shape + x->ndim - k, sizeof(int64_t) * (size_t)k);
    for (int i = 1; i < 3; i++) {
        if (in[i] && !tensor_same_shape(in[i], &last)) {
            tg_error_set("layer_norm: %s must be %s (the last %d dims of x %s), got %s",
                      i == 1 ? "weight" : "bias", tensor_shape_str(&last, se, sizeof se), k,
                      tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(in[i], st, sizeof st));
            return NULL;
        }
    }
    tape_node *n = tg_node_begin(op, in, 3, x->dtype, x->ndim, x->shape);
    if (!n) return NULL;
    int64_t M[1] = {tg_shape_numel(x->ndim - k, x->shape)};
    for (int s = 0; s < 2; s++)
        if (!(n->saved[s] = tg_tensor_tape_new(DTYPE_F64, 1, M))) return NULL;
    n->ip[0] = k;
    n->fp[0] = eps;
    return tg_node_finish(n);
}

/* ----------------------------------------------------------------- samples */

/* Batch norm cases. Inputs are compact: x, then weight, bias, running_mean,
 * running_var when present. ip[0] training, ip[1] has weight, ip[2] has bias,
 * ip[3] has running statistics; fp[0] momentum, fp[1] eps. */
static const struct {
    int nx;
    int64_t x[4];
    bool train, w, b, run;
} bn_cases[] = {
    {2, {4, 3}, true, true, true, true},      {4, {2, 3, 2, 2}, true, true, true, true},
    {3, {3, 2, 5}, true, false, false, false}, {4, {2, 3, 2, 2}, true, true, false, false},
    {3, {2, 3, 5}, true, false, true, true},  {4, {2, 3, 2, 2}, false, true, true, true},
    {2, {4, 3}, false, false, false, true},   {3, {2, 2, 3}, false, true, true, true},
};

static int batch_norm_sample(int k, rng *g, op_sample *s) {
    if (k >= (int)(sizeof bn_cases / sizeof bn_cases[0])) return 1;
    int64_t C[1] = {bn_cases[k].x[1]};
    int i = 0;
    s->inputs[i++] = tg_sample_tensor(g, bn_cases[k].nx, bn_cases[k].x, -2.0, 2.0);
    if (bn_cases[k].w) s->inputs[i++] = tg_sample_tensor(g, 1, C, 0.5, 1.5);
    if (bn_cases[k].b) s->inputs[i++] = tg_sample_tensor(g, 1, C, -1.0, 1.0);
    if (bn_cases[k].run) {
        s->no_grad_mask = 3u << i;
        s->inputs[i++] = tg_sample_tensor(g, 1, C, -0.5, 0.5);
        s->inputs[i++] = tg_sample_tensor(g, 1, C, 0.5, 1.5);
    }
    s->n_inputs = i;
    s->ip[0] = bn_cases[k].train;
    s->ip[1] = bn_cases[k].w;
    s->ip[2] = bn_cases[k].b;
    s->ip[3] = bn_cases[k].run;
    s->fp[0] = 0.1;
    s->fp[1] = 1e-5;
    char sx[64];
    tg_sample_name(s, "x%s %s%s%s%s", tensor_shape_str(s->inputs[0], sx, sizeof sx),
                bn_cases[k].train ? "train" : "eval", bn_cases[k].w ? " weight" : "",
                bn_cases[k].b ? " bias" : "", bn_cases[k].run ? " running" : "");
    for (int j = 0; j < i; j++)
        if (!s->inputs[j]) return -1;
    return 0;
}
static tensor *batch_norm_build(tensor *const *in, const op_sample *s) {
    int i = 1;
    tensor *w = s->ip[1] ? in[i++] : NULL, *b = s->ip[2] ? in[i++] : NULL;
    tensor *rm = s->ip[3] ? in[i] : NULL, *rv = s->ip[3] ? in[i + 1] : NULL;
    return tensor_batch_norm(in[0], w, b, rm, rv, s->ip[0], s->fp[0], s->fp[1]);
}

/* Layer norm cases: ip[0] normalized_ndim, ip[1] has weight, ip[2] has bias;
 * inputs x[, weight][, bias]. */
static int layer_norm_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int nx, k;
        int64_t x[3];
        bool w, b;
    } cases[] = {
        {2, 1, {3, 4}, true, true},    {3, 2, {2, 3, 4}, true, true}, {2, 1, {2, 5}, false, false},
        {3, 3, {2, 2, 3}, true, false}, {2, 1, {4, 3}, false, true},
    };
    if (k >= (int)(sizeof cases / sizeof cases[0])) return 1;
    const int64_t *last = cases[k].x + cases[k].nx - cases[k].k;
    int i = 0;
    s->inputs[i++] = tg_sample_tensor(g, cases[k].nx, cases[k].x, -2.0, 2.0);
    if (cases[k].w) s->inputs[i++] = tg_sample_tensor(g, cases[k].k, last, 0.5, 1.5);
    if (cases[k].b) s->inputs[i++] = tg_sample_tensor(g, cases[k].k, last, -1.0, 1.0);
    s->n_inputs = i;
    s->ip[0] = cases[k].k;
    s->ip[1] = cases[k].w;
    s->ip[2] = cases[k].b;
    s->fp[0] = 1e-5;
    char sx[64];
    tg_sample_name(s, "x%s last %d%s%s", tensor_shape_str(s->inputs[0], sx, sizeof sx), cases[k].k,
                cases[k].w ? " weight" : "", cases[k].b ? " bias" : "");
    for (int j = 0; j < i; j++)
        if (!s->inputs[j]) return -1;
    return 0;
}
static tensor *layer_norm_build(tensor *const *in, const op_sample *s) {
    int i = 1;
    tensor *w = s->ip[1] ? in[i++] : NULL, *b = s->ip[2] ? in[i] : NULL;
    return tensor_layer_norm(in[0], (int)s->ip[0], w, b, s->fp[0]);
}

/* ------------------------------------------------------ graph vjps
 * The normalisations' vjps built from ops (op_def.vjp_graph). Over the
 * normalised axes, with batch statistics:
 *   xhat = (x - mean) rstd, rstd = (var + eps)^-1/2 (population variance),
 *   gh = g w,  dx = rstd (gh - mean(gh) - xhat mean(gh xhat)),
 *   dw = sum(g xhat), db = sum(g) over every other axis.
 * The statistics are recomputed by ops from x, so that their dependence on
 * x is on the tape for the second order. */
static int norm_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin, const int *axes,
                      int na, tensor *w, tensor *b, tensor *xhat, tensor *rstd, bool batch_stats) {
    tensor *gh = w ? tensor_mul(g, w) : g;
    if (want[0]) {
        tensor *t = gh;
        if (batch_stats)
            t = tensor_sub(tensor_sub(gh, tensor_mean(gh, axes, na, true)),
                           tensor_mul(xhat, tensor_mean(tensor_mul(gh, xhat), axes, na, true)));
        gin[0] = tensor_mul(t, rstd);
    }
    if (n->in[1] && want[1]) gin[1] = tg_sum_to_shape(tensor_mul(g, xhat), w);
    if (n->in[2] && want[2]) gin[2] = tg_sum_to_shape(g, b);
    return tg_graph_vjp_done(n, want, gin);
}

/* [C] viewed as [1, C, 1, ..] to broadcast over x's axis 1 (NULL stays NULL). */
static tensor *per_channel(tensor *t, const tensor *x) {
    if (!t) return NULL;
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = d == 1 ? x->shape[1] : 1;
    return tensor_reshape(t, x->ndim, shape);
}

/* batch_norm: the axes are all but 1; eval mode uses the running statistics
 * (constants: dx = g w rstd). w and b are reshaped to [1, C, 1, ..], so
 * tg_sum_to_shape sums their gradients back to [C] through that shape. */
static int batch_norm_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *x = n->in[0];
    int axes[TENSOR_MAX_DIMS], na = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != 1) axes[na++] = d;
    const bool training = n->ip[0];
    tensor *mu = training ? tensor_mean(x, axes, na, true) : per_channel(n->in[3], x);
    tensor *xc = tensor_sub(x, mu);
    tensor *var = training ? tensor_mean(tensor_square(xc), axes, na, true) : per_channel(n->in[4], x);
    tensor *rstd = tensor_pow_scalar(tensor_add_scalar(var, n->fp[0]), -0.5);
    tensor *xhat = tensor_mul(xc, rstd);
    tensor *w = per_channel(n->in[1], x), *b = per_channel(n->in[2], x);
    int rc = norm_graph(n, g, want, gin, axes, na, w, b, xhat, rstd, training);
    for (int j = 1; j <= 2 && rc == 0; j++)
        if (n->in[j] && want[j]) gin[j] = tensor_reshape(gin[j], 1, n->in[j]->shape);
    return rc ? rc : tg_graph_vjp_done(n, want, gin);
}

/* layer_norm over the last k = ip[0] axes; w and b have those axes' shape */
static int layer_norm_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *x = n->in[0];
    int axes[TENSOR_MAX_DIMS], na = 0;
    for (int d = x->ndim - (int)n->ip[0]; d < x->ndim; d++) axes[na++] = d;
    tensor *xc = tensor_sub(x, tensor_mean(x, axes, na, true));
    tensor *rstd = tensor_pow_scalar(tensor_add_scalar(tensor_mean(tensor_square(xc), axes, na, true), n->fp[0]), -0.5);
    return norm_graph(n, g, want, gin, axes, na, n->in[1], n->in[2], tensor_mul(xc, rstd), rstd, true);
}

const op_def tg_ops_norm[] = {
    [BATCH_NORM] = {"batch_norm", 5, (1u << 3) | (1u << 4), batch_norm_forward, batch_norm_vjp, batch_norm_sample,
     batch_norm_build,
     "tensor_batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps)",
     "y = (x - mu_c) / sqrt(var_c + eps) * w_c + b_c over x (B, C, ...); training: batch mean and "
     "biased variance per channel; eval: running statistics",
     "xh = (x - mu) s, s = 1/sqrt(var + eps); dw = sum g xh, db = sum g; training: "
     "dx = w s (g - mean(g) - xh mean(g xh)) (means over the B*spatial values of a channel); "
     "eval: dx = w s g",
     "training updates running_mean and running_var in the builder (never in forward), like "
     "PyTorch: r = (1 - momentum) r + momentum v, with the unbiased variance for running_var; "
     "no gradient for the running statistics; weight, bias and the running statistics may be "
     "NULL (eval needs the running statistics; training needs more than 1 value per channel); "
     "samples list only the present inputs, in this order",
     .vjp_graph = batch_norm_vjp_graph},
    [LAYER_NORM] = {"layer_norm", 3, 0, layer_norm_forward, layer_norm_vjp, layer_norm_sample, layer_norm_build,
     "tensor_layer_norm(x, normalized_ndim, weight, bias, eps)",
     "y = (x - mu) / sqrt(var + eps) * w + b, mu and biased var over the last normalized_ndim dims",
     "xh = (x - mu) s; dw = sum over rows g xh, db = sum over rows g; "
     "dx = s (g w - mean(g w) - xh mean(g w xh)) (means over the normalised dims)",
     "weight and bias have the shape of the last normalized_ndim dims, or are NULL; samples list "
     "only the present inputs, in this order",
     .vjp_graph = layer_norm_vjp_graph, .vjp_fresh = true},
};
const int tg_ops_norm_count = N_NORM_OPS;
_Static_assert(sizeof tg_ops_norm / sizeof tg_ops_norm[0] == N_NORM_OPS,
               "tg_ops_norm: one entry per op of its enum");
