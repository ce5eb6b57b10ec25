/* activation.c - activations: the relu family, sigmoid and tanh, softmax and
 * log_softmax along an axis, gelu, silu, mish, elu, selu, softplus, hardtanh.
 *
 * Every formula is written in a form that stays finite for large |x|: exp is
 * only taken of non-positive arguments (sigmoid, softplus), softmax and
 * log_softmax subtract the row maximum, and derivatives whose factors tend
 * to 0 and infinity are written so that the 0 wins (e.g. x (1 - tanh^2)).
 * Kinks (relu at 0, hardtanh at its bounds, ...) are named in each op's
 * notes with the gradient used there; the samples keep a margin from them. */
#include <omp.h>

#include "act_kernels.h"
#include "elementwise.h"
#include "grad_ops.h"

/* float32 sigmoid, tanh, GELU's tanh form and the exps of contiguous softmax
 * rows run the vectorised kernels of act_kernels.c, of the variant in use;
 * float64 keeps libm, which is what the float32 results are checked
 * against. */
const act_kernels *tg_act_kernels_of(isa_level v) {
    static const act_kernels *const variants[ISA_COUNT] = {&tg_act_kernels_v2, &tg_act_kernels_v3,
                                                           &tg_act_kernels_v4};
    return variants[v];
}
const act_kernels *tg_act_kernels_run(void) {
    const int v = tg_isa_current();
    return tg_act_kernels_of(v < 0 ? ISA_V2 : (isa_level)v);
}
int tg_act_variant_check(const tensor *a) {
    return a && a->dtype == DTYPE_F32 && tg_isa_current() < 0 ? -1 : 0;
}
/* f over n elements, in per-thread blocks (multiples of 16 elements, whole
 * vectors) when that pays; each element is computed alone, so the result
 * does not depend on the thread count. */
static void act_map(void (*f)(const float *, float *, int64_t), const float *x, float *z, int64_t n) {
    if (!parallel_pays(n)) {
        f(x, z, n);
        return;
    }
#pragma omp parallel
    {
        const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int64_t lo = (n * t / nt) & ~(int64_t)15, hi = t + 1 == nt ? n : (n * (t + 1) / nt) & ~(int64_t)15;
        f(x + lo, z + lo, hi - lo);
    }
}
/* The same for a vjp kernel dx += f(x, g) (write: dx = f(x, g)). */
static void act_map_vjp(void (*f)(const float *, const float *, float *, int64_t, bool), const float *x,
                        const float *g, float *dx, int64_t n, bool write) {
    if (!parallel_pays(n)) {
        f(x, g, dx, n, write);
        return;
    }
#pragma omp parallel
    {
        const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int64_t lo = (n * t / nt) & ~(int64_t)15, hi = t + 1 == nt ? n : (n * (t + 1) / nt) & ~(int64_t)15;
        f(x + lo, g + lo, dx + lo, hi - lo, write);
    }
}

/* sigma(x) = 1 / (1 + e^-x), evaluated with e^-|x| so nothing overflows. */
static inline double sigmoid_of(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}
/* ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|); NaN stays NaN. */
static inline double softplus_of(double x) {
    return (x > 0 ? x : 0.0) + log1p(exp(-fabs(x)));
}

/* ------------------------------------------------------------- relu family */

/* z = max(x, 0) (NaN passes);  dx = g [x > 0]: 0 at the kink x = 0, as PyTorch */
EW_UNARY_FORWARD(relu, x < 0 ? 0 : x)
EW_UNARY_VJP(relu, x > 0 ? g : 0)
/* z = x > 0 ? x : s x (s = p0);  dx = g (x > 0 ? 1 : s) */
EW_UNARY_FORWARD(leaky_relu, x > 0 ? x : p0 * x)
EW_UNARY_VJP(leaky_relu, x > 0 ? g : p0 * g)

/* PReLU with a learnable slope per channel. x is viewed as (N, C, L): C the
 * slope's length (ip[0]: axis 1 of x, or 1 for a single shared slope), L the
 * elements per channel and sample (ip[1]), N = ip[2].
 *   z[n,c,l] = x > 0 ? x : w[c] x
 *   dx = g (x > 0 ? 1 : w[c]),   dw[c] = sum over n, l with x <= 0 of g x */
#define PRELU_KERNELS(T)                                                                \
    static void prelu_fwd_##T(tape_node *n) {                                           \
        const T *X = n->in[0]->data, *W = n->in[1]->data;                               \
        T *Z = n->out->data;                                                            \
        int64_t C = n->ip[0], L = n->ip[1], N = n->ip[2];     \
        for (int64_t b = 0; b < N; b++)                                                 \
            for (int64_t c = 0; c < C; c++) {                                           \
                const T w = W[c], *x = X + (b * C + c) * L;                             \
                T *z = Z + (b * C + c) * L;                                             \
                for (int64_t l = 0; l < L; l++) z[l] = x[l] > 0 ? x[l] : w * x[l];      \
            }                                                                           \
    }                                                                                   \
    static void prelu_bwd_##T(tape_node *n, tensor *const *gin) {                       \
        const T *X = n->in[0]->data, *W = n->in[1]->data, *G = n->out->grad->data;      \
        T *DX = gin[0] ? gin[0]->data : NULL, *DW = gin[1] ? gin[1]->data : NULL;       \
        int64_t C = n->ip[0], L = n->ip[1], N = n->ip[2];     \
        for (int64_t c = 0; c < C; c++) {                                               \
            double dw = 0;                                                              \
            for (int64_t b = 0; b < N; b++) {                                           \
                const T w = W[c], *x = X + (b * C + c) * L, *g = G + (b * C + c) * L;   \
                for (int64_t l = 0; l < L; l++) {                                       \
                    if (DX) DX[(b * C + c) * L + l] += x[l] > 0 ? g[l] : w * g[l];      \
                    if (x[l] <= 0) dw += (double)g[l] * x[l];                           \
                }                                                                       \
            }                                                                           \
            if (DW) DW[c] += (T)dw;                                                     \
        }                                                                               \
    }
PRELU_KERNELS(float)
PRELU_KERNELS(double)

static void prelu_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32)
        prelu_fwd_float(n);
    else
        prelu_fwd_double(n);
}
static void prelu_vjp(tape_node *n, tensor *const *gin) {
    if (n->out->dtype == DTYPE_F32)
        prelu_bwd_float(n, gin);
    else
        prelu_bwd_double(n, gin);
}

/* --------------------------------------------------------- sigmoid, tanh */

/* z = 1 / (1 + e^-x);  dx = g z (1 - z) */
EW_UNARY_FORWARD(sigmoid_libm, sigmoid_of(x))
static void sigmoid_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32)
        act_map(tg_act_kernels_run()->sigmoid, n->in[0]->data, n->out->data, n->out->size);
    else
        sigmoid_libm_forward(n);
}
EW_UNARY_VJP(sigmoid, g * z * (1 - z))
/* z = tanh x;  dx = g (1 - z^2) */
EW_UNARY_FORWARD(tanh_libm, tanh(x))
static void tanh_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32)
        act_map(tg_act_kernels_run()->tanh, n->in[0]->data, n->out->data, n->out->size);
    else
        tanh_libm_forward(n);
}
EW_UNARY_VJP(tanh, g * (1 - z * z))

/* ------------------------------------------------- softmax, log_softmax */

/* x is viewed as (O, D, I) around the axis of length D (ip[2]); O = ip[1],
 * I = ip[3]. A row is the D elements (o, :, i), I apart in memory.
 *   softmax:      z_d = e^(x_d - m) / s,    m = max_d x_d, s = sum_d e^(x_d - m)
 *                 dx_d = z_d (g_d - sum_k g_k z_k)           (the Jacobian product)
 *   log_softmax:  z_d = x_d - m - ln s
 *                 dx_d = g_d - e^(z_d) sum_k g_k
 * Sums accumulate in double; rows are independent, so splitting them across
 * threads leaves the result unchanged. */
#define ROW_BASE(r, D, I) (((r) / (I)) * (D) * (I) + (r) % (I))
/* for (r = 0; r < rows; r++) BODY, on several threads only for large tensors
 * (parallel_pays). */
#define ROWS_FOR(r, rows, total, BODY)                                  \
    do {                                                                \
        if (parallel_pays(total)) {                                     \
            _Pragma("omp parallel for schedule(static)")                \
            for (int64_t r = 0; r < (rows); r++) BODY;                  \
        } else {                                                        \
            for (int64_t r = 0; r < (rows); r++) BODY;                  \
        }                                                               \
    } while (0)
#define SOFTMAX_KERNELS(T)                                                               \
    static void softmax_row_fwd_##T(const T *x, T *z, int64_t D, int64_t I, bool log_form) { \
        double m = -INFINITY, s = 0;                                                     \
        for (int64_t d = 0; d < D; d++)                                                  \
            if (x[d * I] > m || x[d * I] != x[d * I]) m = x[d * I];                      \
        for (int64_t d = 0; d < D; d++) s += exp(x[d * I] - m);                          \
        if (log_form) {                                                                  \
            const double lse = m + log(s);                                               \
            for (int64_t d = 0; d < D; d++) z[d * I] = (T)(x[d * I] - lse);              \
        } else {                                                                         \
            for (int64_t d = 0; d < D; d++) z[d * I] = (T)(exp(x[d * I] - m) / s);       \
        }                                                                                \
    }                                                                                    \
    static void softmax_row_bwd_##T(const T *z, const T *g, T *dx, int64_t D, int64_t I,  \
                                    bool log_form) {                                     \
        double acc = 0;                                                                  \
        for (int64_t d = 0; d < D; d++)                                                  \
            acc += log_form ? (double)g[d * I] : (double)g[d * I] * z[d * I];            \
        for (int64_t d = 0; d < D; d++)                                                  \
            dx[d * I] += log_form ? (T)(g[d * I] - exp(z[d * I]) * acc)                  \
                                  : (T)(z[d * I] * (g[d * I] - acc));                    \
    }                                                                                    \
    static void softmax_fwd_##T(tape_node *n, bool log_form) {                           \
        const T *X = n->in[0]->data;                                                     \
        T *Z = n->out->data;                                                             \
        const int64_t D = n->ip[2], I = n->ip[3], rows = n->ip[1] * I;                   \
        ROWS_FOR(r, rows, n->out->size,                                                  \
                 softmax_row_fwd_##T(X + ROW_BASE(r, D, I), Z + ROW_BASE(r, D, I), D, I, log_form)); \
    }                                                                                    \
    static void softmax_bwd_##T(tape_node *n, tensor *dst, bool log_form) {              \
        const T *Z = n->out->data, *G = n->out->grad->data;                              \
        T *DX = dst->data;                                                               \
        const int64_t D = n->ip[2], I = n->ip[3], rows = n->ip[1] * I;                   \
        ROWS_FOR(r, rows, n->out->size,                                                  \
                 softmax_row_bwd_##T(Z + ROW_BASE(r, D, I), G + ROW_BASE(r, D, I),       \
                                     DX + ROW_BASE(r, D, I), D, I, log_form));           \
    }
SOFTMAX_KERNELS(float)
SOFTMAX_KERNELS(double)

/* float32 rows along the last axis (I = 1, contiguous) take the vectorised
 * row kernels; softmax's vjp takes no exp and stays as it is. */
static void softmax_run(tape_node *n, bool log_form) {
    const int64_t D = n->ip[2], rows = n->ip[1];
    if (n->out->dtype == DTYPE_F32 && n->ip[3] == 1) {
        const act_kernels *k = tg_act_kernels_run();
        const float *X = n->in[0]->data;
        float *Z = n->out->data;
        ROWS_FOR(r, rows, n->out->size, k->softmax_row(X + r * D, Z + r * D, D, log_form));
    } else if (n->out->dtype == DTYPE_F32) {
        softmax_fwd_float(n, log_form);
    } else {
        softmax_fwd_double(n, log_form);
    }
}
static void softmax_back(tape_node *n, tensor *const *gin, bool log_form) {
    if (!gin[0]) return;
    const int64_t D = n->ip[2], rows = n->ip[1];
    if (n->out->dtype == DTYPE_F32 && n->ip[3] == 1 && log_form) {
        const act_kernels *k = tg_act_kernels_run();
        const float *Z = n->out->data, *G = n->out->grad->data;
        float *DX = gin[0]->data;
        ROWS_FOR(r, rows, n->out->size, k->log_softmax_row_vjp(Z + r * D, G + r * D, DX + r * D, D));
    } else if (n->out->dtype == DTYPE_F32) {
        softmax_bwd_float(n, gin[0], log_form);
    } else {
        softmax_bwd_double(n, gin[0], log_form);
    }
}
static void softmax_forward(tape_node *n) { softmax_run(n, false); }
static void softmax_vjp(tape_node *n, tensor *const *gin) { softmax_back(n, gin, false); }
static void log_softmax_forward(tape_node *n) { softmax_run(n, true); }
static void log_softmax_vjp(tape_node *n, tensor *const *gin) { softmax_back(n, gin, true); }

/* -------------------------------------------------- smooth activations */

/* gelu, exact (p0 = 0):  z = x Phi(x),  Phi(x) = erfc(-x / sqrt 2) / 2 (no cancellation for x << 0)
 *                        dx = g (Phi(x) + x phi(x)),  phi(x) = e^(-x^2/2) / sqrt(2 pi)
 * gelu, tanh form (p0 = 1):  z = x (1 + t) / 2,  t = tanh(k0 (x + k1 x^3))
 *                        dx = g ((1 + t) / 2 + x (1 - t^2) k0 (1 + 3 k1 x^2) / 2) */
#define GELU_K0 0.79788456080286535588 /* sqrt(2 / pi) */
#define GELU_K1 0.044715
#define INV_SQRT_2PI 0.39894228040143267794
/* The tanh form is evaluated as x sigma(2u), u = k0 (x + k1 x^3), since
 * (1 + tanh u) / 2 = sigma(2u) and (1 - tanh^2 u) / 4 = sigma(2u) sigma(-2u):
 * the same function without the cancellation of 1 + t where t -> -1
 * (x << 0), where 1 + t was 0 and the value -0 instead of x e^(2u).
 *   z = x sigma(2u),   dx = g (sigma(2u) + 2 x sigma(2u) sigma(-2u) k0 (1 + 3 k1 x^2)) */
static inline double gelu_of(double x, bool tanh_form) {
    if (!tanh_form) return 0.5 * x * erfc(-x * M_SQRT1_2);
    return x * sigmoid_of(2.0 * GELU_K0 * (x + GELU_K1 * x * x * x));
}
static inline double gelu_grad(double x, bool tanh_form) {
    if (!tanh_form) return 0.5 * erfc(-x * M_SQRT1_2) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
    const double u2 = 2.0 * GELU_K0 * (x + GELU_K1 * x * x * x);
    return sigmoid_of(u2) + 2.0 * x * sigmoid_of(u2) * sigmoid_of(-u2) * GELU_K0 * (1.0 + 3.0 * GELU_K1 * x * x);
}
EW_UNARY_FORWARD(gelu_libm, gelu_of(x, p0 != 0))
EW_UNARY_VJP(gelu_libm, g * gelu_grad(x, p0 != 0))
/* float32's tanh form: the vectorised kernels (the erf form keeps libm) */
static void gelu_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32 && n->fp[0] != 0)
        act_map(tg_act_kernels_run()->gelu_tanh, n->in[0]->data, n->out->data, n->out->size);
    else
        gelu_libm_forward(n);
}
static void gelu_vjp(tape_node *n, tensor *const *gin) {
    if (gin[0] && n->out->dtype == DTYPE_F32 && n->fp[0] != 0)
        act_map_vjp(tg_act_kernels_run()->gelu_tanh_vjp, n->in[0]->data, n->out->grad->data, gin[0]->data,
                    n->out->size, tg_grad_take_fresh(gin[0]));
    else
        gelu_libm_vjp(n, gin);
}

/* silu:  z = x sigma(x);  dx = g sigma (1 + x (1 - sigma)) */
static inline double silu_grad(double x) {
    const double s = sigmoid_of(x);
    return s * (1.0 + x * (1.0 - s));
}
EW_UNARY_FORWARD(silu, x * sigmoid_of(x))
EW_UNARY_VJP(silu, g * silu_grad(x))

/* mish:  z = x t,  t = tanh(softplus(x));  dx = g (t + x sigma(x) (1 - t^2)) */
static inline double mish_grad(double x) {
    const double t = tanh(softplus_of(x));
    return t + x * sigmoid_of(x) * (1.0 - t * t);
}
EW_UNARY_FORWARD(mish, x * tanh(softplus_of(x)))
EW_UNARY_VJP(mish, g * mish_grad(x))

/* elu (alpha = p0):  z = x > 0 ? x : alpha (e^x - 1);  dx = g (x > 0 ? 1 : alpha e^x) */
EW_UNARY_FORWARD(elu, x > 0 ? x : p0 * expm1(x))
EW_UNARY_VJP(elu, x > 0 ? g : g * p0 * exp(x))

/* selu:  z = lambda (x > 0 ? x : alpha (e^x - 1));  dx = g lambda (x > 0 ? 1 : alpha e^x)
 * with PyTorch's constants (Klambauer et al. 2017). */
#define SELU_ALPHA 1.6732632423543772848170429916717
#define SELU_SCALE 1.0507009873554804934193349852946
EW_UNARY_FORWARD(selu, SELU_SCALE * (x > 0 ? x : SELU_ALPHA * expm1(x)))
EW_UNARY_VJP(selu, x > 0 ? g * SELU_SCALE : g * (SELU_SCALE * SELU_ALPHA) * exp(x))

/* softplus (beta = p0, threshold = p1), PyTorch semantics:
 *   z = beta x > threshold ? x : ln(1 + e^(beta x)) / beta
 *   dx = g (beta x > threshold ? 1 : sigma(beta x)) */
EW_UNARY_FORWARD(softplus, p0 * x > p1 ? x : softplus_of(p0 * x) / p0)
EW_UNARY_VJP(softplus, p0 * x > p1 ? g : g * sigmoid_of(p0 * x))

/* hardtanh (lo = p0, hi = p1):  z = min(max(x, lo), hi);
 * dx = g strictly inside (lo, hi), 0 elsewhere, bounds included (PyTorch's hardtanh) */
EW_UNARY_FORWARD(hardtanh, x < p0 ? p0 : (x > p1 ? p1 : x))
EW_UNARY_VJP(hardtanh, (x > p0 && x < p1) ? g : 0)

/* ----------------------------------------------------------- samples */

static const double at_zero[] = {0.0};

/* "x[3,4] <what>": the case name with the op's parameters. */
static void name_with_params(op_sample *s, const char *fmt, double a, double b) {
    char sh[64], what[64];
    snprintf(what, sizeof what, fmt, a, b);
    tg_sample_name(s, "x%s %s", tensor_shape_str(s->inputs[0], sh, sizeof sh), what);
}

static int smooth_sample(int k, rng *g, op_sample *s) {
    return tg_ew_unary_sample(k, g, s, -3.0, 3.0, NULL, 0, 0);
}
/* Values 0.05 from the kink at 0, of both signs (so no case has an all-zero gradient). */
static int relu_sample(int k, rng *g, op_sample *s) {
    int r = tg_ew_unary_sample(k, g, s, -2.0, 2.0, at_zero, 1, 0.05);
    if (r == 0) {
        double *p = s->inputs[0]->data;
        p[0] = fabs(p[0]);
        p[1] = -fabs(p[1]);
    }
    return r;
}
/* Slopes 0.1, 0.01 and a negative one; values 0.05 from the kink. */
static int leaky_relu_sample(int k, rng *g, op_sample *s) {
    static const double slope[] = {0.1, 0.01, -0.2};
    if (k >= 3) return 1;
    int r = tg_ew_unary_sample(k, g, s, -2.0, 2.0, at_zero, 1, 0.05);
    s->fp[0] = slope[k];
    if (r == 0) name_with_params(s, "slope %g", slope[k], 0);
    return r;
}
/* elu with alpha 1 (C1 at 0), 0.5 and 2 (kinks at 0); values 0.05 from 0. */
static int elu_sample(int k, rng *g, op_sample *s) {
    static const double alpha[] = {1.0, 0.5, 2.0};
    if (k >= 3) return 1;
    int r = tg_ew_unary_sample(k, g, s, -3.0, 3.0, at_zero, 1, 0.05);
    s->fp[0] = alpha[k];
    if (r == 0) name_with_params(s, "alpha %g", alpha[k], 0);
    return r;
}
/* Cases 0-2: the exact (erf) form; 3-5: the tanh approximation. */
static int gelu_sample(int k, rng *g, op_sample *s) {
    if (k >= 6) return 1;
    int r = tg_ew_unary_sample(k % 3, g, s, -3.0, 3.0, NULL, 0, 0);
    s->fp[0] = k >= 3;
    if (r == 0) name_with_params(s, k >= 3 ? "tanh form" : "erf form", 0, 0);
    return r;
}
/* (beta, threshold): the default (1, 20); (2, 1.5), whose switch to the
 * linear branch at x = 0.75 (a jump of e^-1.5 / 2 in z) the values avoid by
 * 0.05; and (0.5, 20). */
static int softplus_sample(int k, rng *g, op_sample *s) {
    static const double beta[] = {1.0, 2.0, 0.5}, thr[] = {20.0, 1.5, 20.0};
    if (k >= 3) return 1;
    double kink = thr[k] / beta[k];
    int r = tg_ew_unary_sample(k, g, s, -3.0, 3.0, &kink, 1, 0.05);
    s->fp[0] = beta[k];
    s->fp[1] = thr[k];
    if (r == 0) name_with_params(s, "beta %g, threshold %g", beta[k], thr[k]);
    return r;
}
static int hardtanh_sample(int k, rng *g, op_sample *s) {
    static const double lo[] = {-1.0, -0.5, 0.0}, hi[] = {1.0, 1.5, 0.7};
    if (k >= 3) return 1;
    double bounds[2] = {lo[k], hi[k]};
    int r = tg_ew_unary_sample(k, g, s, -2.0, 2.0, bounds, 2, 0.05);
    if (r == 0) /* one value strictly inside, so no case is all-zero gradient */
        ((double *)s->inputs[0]->data)[0] = 0.5 * (lo[k] + hi[k]);
    s->fp[0] = lo[k];
    s->fp[1] = hi[k];
    if (r == 0) name_with_params(s, "in [%g, %g]", lo[k], hi[k]);
    return r;
}
/* (x shape, slope length): per-channel on (N,C,L), on (N,C,H,W), on (N,C),
 * and one shared slope. Slopes of both signs. */
static int prelu_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int nd;
        int64_t x[4], c;
    } cases[] = {{3, {2, 3, 4}, 3}, {4, {2, 3, 2, 2}, 3}, {2, {4, 5}, 5}, {2, {4, 5}, 1}};
    if (k >= 4) return 1;
    s->n_inputs = 2;
    s->inputs[0] = tg_sample_tensor_avoiding(g, cases[k].nd, cases[k].x, -2.0, 2.0, at_zero, 1, 0.05);
    s->inputs[1] = tg_sample_tensor(g, 1, &cases[k].c, -0.5, 0.8);
    char sx[64], sw[64];
    tg_sample_name(s, "x%s, slope%s", tensor_shape_str(s->inputs[0], sx, sizeof sx),
                tensor_shape_str(s->inputs[1], sw, sizeof sw));
    return s->inputs[0] && s->inputs[1] ? 0 : -1;
}
/* Each axis of a 2-D and a 3-D tensor, negative axes included, and a 1-D row. */
static int softmax_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int nd;
        int64_t x[3];
        int axis;
    } cases[] = {{2, {3, 5}, 1}, {2, {3, 5}, 0}, {3, {2, 3, 4}, -2},
                 {3, {2, 3, 4}, -1}, {3, {2, 3, 4}, 0}, {1, {6}, 0}};
    if (k >= 6) return 1;
    s->n_inputs = 1;
    s->inputs[0] = tg_sample_tensor(g, cases[k].nd, cases[k].x, -3.0, 3.0);
    s->ip[0] = cases[k].axis;
    char sx[64];
    tg_sample_name(s, "x%s axis %d", tensor_shape_str(s->inputs[0], sx, sizeof sx), cases[k].axis);
    return s->inputs[0] ? 0 : -1;
}

/* ------------------------------------------------------------ builds */

#define BUILD(op, call) \
    static tensor *op##_build(tensor *const *in, const op_sample *s) { (void)s; return call; }
BUILD(relu, tensor_relu(in[0]))
BUILD(leaky_relu, tensor_leaky_relu(in[0], s->fp[0]))
BUILD(prelu, tensor_prelu(in[0], in[1]))
BUILD(sigmoid, tensor_sigmoid(in[0]))
BUILD(tanh, tensor_tanh(in[0]))
BUILD(softmax, tensor_softmax(in[0], (int)s->ip[0]))
BUILD(log_softmax, tensor_log_softmax(in[0], (int)s->ip[0]))
BUILD(gelu, tensor_gelu(in[0], s->fp[0] != 0))
BUILD(silu, tensor_silu(in[0]))
BUILD(mish, tensor_mish(in[0]))
BUILD(elu, tensor_elu(in[0], s->fp[0]))
BUILD(selu, tensor_selu(in[0]))
BUILD(softplus, tensor_softplus(in[0], s->fp[0], s->fp[1]))
BUILD(hardtanh, tensor_hardtanh(in[0], s->fp[0], s->fp[1]))

/* ------------------------------------------------------- graph vjps
 * The vjps built from ops (op_def.vjp_graph), the formulas above. A kink's
 * side is chosen by a comparison, a constant for autograd (its second
 * derivative is 0 away from the kink, which is where samples are). */
#define X (n->in[0])
#define Z (n->out)
static tensor *scalar_like(const tensor *t, double v) { return tg_tape_scalar(t->dtype, v); }
/* 1 - t */
static tensor *one_minus(tensor *t) { return tensor_add_scalar(tensor_neg(t), 1.0); }

/* [x > 0] as a constant of x's shape and dtype, written directly: the same
 * test as the kernels', and a where of operands of one shape takes its flat
 * path (against a scalar zero it broadcasts, an index computation per
 * element, which was a tenth of a LeNet-5 Hessian-vector product). */
static tensor *positive_mask(const tensor *x) {
    tensor *m = tg_tensor_tape_new(x->dtype, x->ndim, x->shape);
    if (!m) return NULL;
    if (x->dtype == DTYPE_F32) {
        const float *a = x->data;
        float *d = m->data;
        for (int64_t i = 0; i < x->size; i++) d[i] = a[i] > 0 ? 1.0f : 0.0f;
    } else {
        const double *a = x->data;
        double *d = m->data;
        for (int64_t i = 0; i < x->size; i++) d[i] = a[i] > 0 ? 1.0 : 0.0;
    }
    return m;
}
/* g where x > 0 and exactly 0 elsewhere, as the kernel, also for an inf or
 * NaN in g: one node (grad_ops.c), whose own vjp is that node again */
static int relu_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    gin[0] = tg_relu_input_grad(g, X);
    return tg_graph_vjp_done(n, want, gin);
}
static int leaky_relu_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    gin[0] = tensor_where(positive_mask(X), g, tensor_mul_scalar(g, n->fp[0]));
    return tg_graph_vjp_done(n, want, gin);
}
static int hardtanh_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *inside = tensor_logical_and(tensor_gt(X, scalar_like(X, n->fp[0])),
                                        tensor_lt(X, scalar_like(X, n->fp[1])));
    gin[0] = tensor_where(inside, g, scalar_like(X, 0));
    return tg_graph_vjp_done(n, want, gin);
}
/* prelu, w [C] along axis 1 of x (or one shared w [1]):
 * dx = g (x > 0 ? 1 : w_c),  dw_c = sum over x <= 0 in channel c of g x */
static int prelu_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *w = n->in[1], *zero = scalar_like(X, 0);
    /* w shaped to broadcast over x: [1, C, 1, ..] (a shared w: a scalar) */
    tensor wshape = {.ndim = w->size == 1 ? 0 : X->ndim};
    for (int d = 0; d < wshape.ndim; d++) wshape.shape[d] = d == 1 ? w->size : 1;
    tensor *pos = tensor_gt(X, zero);
    if (want[0]) gin[0] = tensor_where(pos, g, tensor_mul(g, tensor_reshape(w, wshape.ndim, wshape.shape)));
    if (want[1]) {
        tensor *t = tensor_where(pos, zero, tensor_mul(g, X));
        tensor *s = w->size == 1 ? tensor_sum_all(t) : tg_sum_to_shape(t, &wshape);
        gin[1] = s ? tensor_reshape(s, w->ndim, w->shape) : NULL;
    }
    return tg_graph_vjp_done(n, want, gin);
}
/* dx = g z (1 - z) */
static int sigmoid_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    gin[0] = tensor_mul(g, tensor_mul(Z, one_minus(Z)));
    return tg_graph_vjp_done(n, want, gin);
}
/* dx = g (1 - z^2) */
static int tanh_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    gin[0] = tensor_mul(g, one_minus(tensor_square(Z)));
    return tg_graph_vjp_done(n, want, gin);
}
/* The axis of a softmax node (ip[0]). */
static int softmax_axis(const tape_node *n) { return (int)(n->ip[0] < 0 ? n->ip[0] + X->ndim : n->ip[0]); }
/* softmax: dx = z (g - sum_axis(g z)) */
static int softmax_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    int ax = softmax_axis(n);
    gin[0] = tensor_mul(Z, tensor_sub(g, tensor_sum(tensor_mul(g, Z), &ax, 1, true)));
    return tg_graph_vjp_done(n, want, gin);
}
/* log_softmax: dx = g - e^z sum_axis(g) */
static int log_softmax_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    int ax = softmax_axis(n);
    gin[0] = tensor_sub(g, tensor_mul(tensor_exp(Z), tensor_sum(g, &ax, 1, true)));
    return tg_graph_vjp_done(n, want, gin);
}
/* silu: dx = g s (1 + x (1 - s)), s = sigma(x) */
static int silu_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *s = tensor_sigmoid(X);
    gin[0] = tensor_mul(g, tensor_mul(s, tensor_add_scalar(tensor_mul(X, one_minus(s)), 1.0)));
    return tg_graph_vjp_done(n, want, gin);
}
/* mish: dx = g (t + x sigma(x) (1 - t^2)), t = tanh(softplus(x)) (no threshold) */
static int mish_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *t = tensor_tanh(tensor_softplus(X, 1.0, INFINITY));
    tensor *d = tensor_add(t, tensor_mul(tensor_mul(X, tensor_sigmoid(X)), one_minus(tensor_square(t))));
    gin[0] = tensor_mul(g, d);
    return tg_graph_vjp_done(n, want, gin);
}
/* elu: dx = g (x > 0 ? 1 : alpha e^x) */
static int elu_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    gin[0] = tensor_where(tensor_gt(X, scalar_like(X, 0)), g,
                          tensor_mul(g, tensor_mul_scalar(tensor_exp(X), n->fp[0])));
    return tg_graph_vjp_done(n, want, gin);
}
/* selu: dx = g lambda (x > 0 ? 1 : alpha e^x) */
static int selu_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    gin[0] = tensor_where(tensor_gt(X, scalar_like(X, 0)), tensor_mul_scalar(g, SELU_SCALE),
                          tensor_mul(g, tensor_mul_scalar(tensor_exp(X), SELU_SCALE * SELU_ALPHA)));
    return tg_graph_vjp_done(n, want, gin);
}
/* softplus: dx = g (beta x > threshold ? 1 : sigma(beta x)) */
static int softplus_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *bx = tensor_mul_scalar(X, n->fp[0]);
    gin[0] = tensor_where(tensor_gt(bx, scalar_like(X, n->fp[1])), g, tensor_mul(g, tensor_sigmoid(bx)));
    return tg_graph_vjp_done(n, want, gin);
}
/* gelu. Tanh form: the forward rebuilt from ops and differentiated (a
 * decomposition). Exact form: dx = g (Phi(x) + x phi(x)), where no op gives
 * Phi = erfc(-x / sqrt 2) / 2, but gelu itself does: Phi(x) = gelu(x) / x
 * (1/2 at x = 0, a constant there), so the second order goes through
 * another gelu node, and so on to any order. */
static int gelu_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    if (n->fp[0] != 0) {
        tensor *u = tensor_mul_scalar(tensor_add(X, tensor_mul_scalar(tensor_pow_scalar(X, 3), GELU_K1)), GELU_K0);
        tensor *y = tensor_mul(tensor_mul_scalar(X, 0.5), tensor_add_scalar(tensor_tanh(u), 1.0));
        return tg_vjp_graph_by_decomposition(n, y, g, want, gin);
    }
    tensor *at0 = tensor_eq(X, scalar_like(X, 0));
    tensor *phi_big = tensor_div(tensor_gelu(X, false), tensor_where(at0, scalar_like(X, 1), X));
    tensor *Phi = tensor_where(at0, scalar_like(X, 0.5), phi_big);
    tensor *phi = tensor_mul_scalar(tensor_exp(tensor_mul_scalar(tensor_square(X), -0.5)), INV_SQRT_2PI);
    gin[0] = tensor_mul(g, tensor_add(Phi, tensor_mul(X, phi)));
    return tg_graph_vjp_done(n, want, gin);
}
#undef X
#undef Z

/* ---------------------------------------------------------- registry */

#define ENTRY(name, arity, sample, sig, fwd, grad, notes) \
    {#name, arity, 0, name##_forward, name##_vjp, sample, name##_build, sig, fwd, grad, notes}
/* An entry with a differentiable vjp (create_graph goes through it). */
#define ENTRY_G(name, arity, sample, sig, fwd, grad, notes, graph) \
    {#name, arity, 0, name##_forward, name##_vjp, sample, name##_build, sig, fwd, grad, notes, \
     .vjp_graph = graph}
/* The same for an op whose vjp writes fresh gradient buffers
 * (op_def.vjp_fresh): an EW_UNARY_VJP one, or gelu's (its float32 kernel
 * takes a write flag). */
#define ENTRY_EW(name, arity, sample, sig, fwd, grad, notes, graph) \
    {#name, arity, 0, name##_forward, name##_vjp, sample, name##_build, sig, fwd, grad, notes, \
     .vjp_graph = graph, .vjp_fresh = true}

/* The activation family: index of each op in tg_ops_activation, its entry below. */
enum {
    RELU, LEAKY_RELU, PRELU, SIGMOID, TANH, SOFTMAX, LOG_SOFTMAX, GELU, SILU, MISH, ELU, SELU,
    SOFTPLUS, HARDTANH,
    N_ACTIVATION_OPS
};
#define OP(i) (&tg_ops_activation[i])

const op_def tg_ops_activation[] = {
    [RELU] = ENTRY_EW(relu, 1, relu_sample, "tensor_relu(a)", "y = max(a, 0)", "da = g [a > 0]",
          "kink at a = 0, where the gradient used is 0 (as PyTorch); NaN passes through; "
          "samples keep |a| >= 0.05", relu_vjp_graph),
    [LEAKY_RELU] = ENTRY_EW(leaky_relu, 1, leaky_relu_sample, "tensor_leaky_relu(a, slope)",
          "y = a > 0 ? a : slope * a", "da = g (a > 0 ? 1 : slope)",
          "kink at a = 0, where the gradient used is slope (as PyTorch); samples keep |a| >= 0.05", leaky_relu_vjp_graph),
    [PRELU] = ENTRY_G(prelu, 2, prelu_sample, "tensor_prelu(a, w)",
          "y = a > 0 ? a : w[c] * a, c = index along axis 1 (w [C]) or one shared w [1]",
          "da = g (a > 0 ? 1 : w[c]), dw[c] = sum over a <= 0 of channel c of g * a",
          "kink at a = 0, where the slope branch is used (as PyTorch); a of fewer than 2 "
          "dimensions takes w [1] only; samples keep |a| >= 0.05", prelu_vjp_graph),
    [SIGMOID] = ENTRY_EW(sigmoid, 1, smooth_sample, "tensor_sigmoid(a)", "y = 1 / (1 + e^-a)",
          "da = g * y * (1 - y)",
          "computed with e^-|a| only, so it is finite (0 or 1) for any |a|", sigmoid_vjp_graph),
    [TANH] = ENTRY_EW(tanh, 1, smooth_sample, "tensor_tanh(a)", "y = tanh(a)", "da = g * (1 - y^2)", "", tanh_vjp_graph),
    [SOFTMAX] = ENTRY_G(softmax, 1, softmax_sample, "tensor_softmax(a, axis)",
          "y = e^(a - m) / sum_axis e^(a - m), m = max along axis",
          "da = y * (g - sum_axis(g * y)) (the full Jacobian product per row)",
          "the max shift keeps it finite for any finite input; axis may be negative", softmax_vjp_graph),
    [LOG_SOFTMAX] = ENTRY_G(log_softmax, 1, softmax_sample, "tensor_log_softmax(a, axis)",
          "y = a - m - ln sum_axis e^(a - m), m = max along axis (logsumexp)",
          "da = g - e^y * sum_axis(g)",
          "finite for any finite input (no log of an underflowed softmax); axis may be negative", log_softmax_vjp_graph),
    [GELU] = ENTRY_EW(gelu, 1, gelu_sample, "tensor_gelu(a, tanh_approx)",
          "y = a * Phi(a) = a erfc(-a / sqrt 2) / 2; tanh_approx: "
          "y = a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3))) / 2",
          "da = g (Phi(a) + a phi(a)); tanh_approx: da = g ((1 + t) / 2 + a (1 - t^2) "
          "sqrt(2/pi) (1 + 3 * 0.044715 a^2) / 2)",
          "smooth; samples cover both forms (cases 0-2 erf, 3-5 tanh)", gelu_vjp_graph),
    [SILU] = ENTRY_EW(silu, 1, smooth_sample, "tensor_silu(a)", "y = a * sigmoid(a)",
          "da = g * s * (1 + a (1 - s)), s = sigmoid(a)", "smooth", silu_vjp_graph),
    [MISH] = ENTRY_EW(mish, 1, smooth_sample, "tensor_mish(a)", "y = a * tanh(softplus(a))",
          "da = g (t + a sigmoid(a) (1 - t^2)), t = tanh(softplus(a))",
          "smooth; softplus via ln(1 + e^-|a|) keeps it finite for any |a|", mish_vjp_graph),
    [ELU] = ENTRY_EW(elu, 1, elu_sample, "tensor_elu(a, alpha)", "y = a > 0 ? a : alpha (e^a - 1)",
          "da = g (a > 0 ? 1 : alpha e^a)",
          "kink at a = 0 unless alpha = 1; there the gradient used is alpha (the left branch, "
          "as PyTorch); samples keep |a| >= 0.05", elu_vjp_graph),
    [SELU] = ENTRY_EW(selu, 1, relu_sample, "tensor_selu(a)",
          "y = lambda (a > 0 ? a : alpha (e^a - 1)), alpha = 1.6732632423543772, "
          "lambda = 1.0507009873554805",
          "da = g lambda (a > 0 ? 1 : alpha e^a)",
          "kink at a = 0 (slopes lambda and lambda alpha), where the gradient used is "
          "lambda alpha (the left branch); samples keep |a| >= 0.05", selu_vjp_graph),
    [SOFTPLUS] = ENTRY_EW(softplus, 1, softplus_sample, "tensor_softplus(a, beta, threshold)",
          "y = beta a > threshold ? a : ln(1 + e^(beta a)) / beta",
          "da = g (beta a > threshold ? 1 : sigmoid(beta a))",
          "PyTorch semantics (defaults beta 1, threshold 20): linear above the threshold, a "
          "jump of about e^-threshold / beta there, so samples keep 0.05 from a = "
          "threshold / beta; beta = 0 is an error", softplus_vjp_graph),
    [HARDTANH] = ENTRY_EW(hardtanh, 1, hardtanh_sample, "tensor_hardtanh(a, lo, hi)", "y = min(max(a, lo), hi)",
          "da = g where lo < a < hi, else 0",
          "kinks at lo and hi, where the gradient used is 0 (PyTorch's hardtanh; note clamp "
          "uses 1 there); lo > hi is an error; samples keep 0.05 from each bound", hardtanh_vjp_graph),
};
const int tg_ops_activation_count = N_ACTIVATION_OPS;
_Static_assert(sizeof tg_ops_activation / sizeof tg_ops_activation[0] == N_ACTIVATION_OPS,
               "tg_ops_activation: one entry per op of its enum");

/* ---------------------------------------------------------- builders */


tensor *tensor_relu(tensor *a) { return tg_ew_unary_apply(OP(RELU), a, NULL, 0); }
tensor *tensor_leaky_relu(tensor *a, double slope) {
    return tg_ew_unary_apply(OP(LEAKY_RELU), a, &slope, 1);
}
tensor *tensor_sigmoid(tensor *a) {
    return tg_act_variant_check(a) ? NULL : tg_ew_unary_apply(OP(SIGMOID), a, NULL, 0);
}
tensor *tensor_tanh(tensor *a) { return tg_act_variant_check(a) ? NULL : tg_ew_unary_apply(OP(TANH), a, NULL, 0); }
tensor *tensor_gelu(tensor *a, bool tanh_approx) {
    if (tanh_approx && tg_act_variant_check(a)) return NULL;
    double form = tanh_approx ? 1.0 : 0.0;
    return tg_ew_unary_apply(OP(GELU), a, &form, 1);
}
tensor *tensor_silu(tensor *a) { return tg_ew_unary_apply(OP(SILU), a, NULL, 0); }
tensor *tensor_mish(tensor *a) { return tg_ew_unary_apply(OP(MISH), a, NULL, 0); }
tensor *tensor_elu(tensor *a, double alpha) { return tg_ew_unary_apply(OP(ELU), a, &alpha, 1); }
tensor *tensor_selu(tensor *a) { return tg_ew_unary_apply(OP(SELU), a, NULL, 0); }

tensor *tensor_softplus(tensor *a, double beta, double threshold) {
    if (beta == 0 || isnan(beta) || isnan(threshold)) {
        tg_error_set("softplus: beta must be nonzero and beta, threshold not NaN (beta %g, "
                  "threshold %g)", beta, threshold);
        return NULL;
    }
    double fp[2] = {beta, threshold};
    return tg_ew_unary_apply(OP(SOFTPLUS), a, fp, 2);
}

tensor *tensor_hardtanh(tensor *a, double lo, double hi) {
    if (isnan(lo) || isnan(hi) || lo > hi) {
        tg_error_set("hardtanh: bounds [%g, %g] are not an interval (need lo <= hi, no NaN)", lo, hi);
        return NULL;
    }
    double fp[2] = {lo, hi};
    return tg_ew_unary_apply(OP(HARDTANH), a, fp, 2);
}

tensor *tensor_prelu(tensor *a, tensor *slope) {
    const op_def *op = OP(PRELU);
    tensor *in[2] = {a, slope};
    if (tg_op_check_inputs(op, in, 2, 0)) return NULL;
    int64_t channels = a->ndim >= 2 ? a->shape[1] : 1;
    if (slope->ndim != 1 || (slope->size != 1 && slope->size != channels)) {
        char sa[96], sw[96];
        tg_error_set("prelu: slope %s must be [1] or [C] with C = %lld, the size of axis 1 of "
                  "input %s",
                  tensor_shape_str(slope, sw, sizeof sw), (long long)channels,
                  tensor_shape_str(a, sa, sizeof sa));
        return NULL;
    }
    tape_node *n = tg_node_begin(op, in, 2, a->dtype, a->ndim, a->shape);
    if (!n) return NULL;
    /* a shared slope sees the whole tensor as one channel */
    int64_t L = slope->size == 1 ? a->size : 1;
    for (int d = 2; slope->size != 1 && d < a->ndim; d++) L *= a->shape[d];
    /* zero channels or an empty channel: a has no element, N = 0 (no division by 0) */
    int64_t CL = slope->size * L;
    n->ip[0] = slope->size; /* C */
    n->ip[1] = L;
    n->ip[2] = CL ? a->size / CL : 0; /* N */
    return tg_node_finish(n);
}

/* ip[0] = the axis as given, ip[1..3] = (O, D, I) around the normalised axis. */
static tensor *softmax_apply(const op_def *op, tensor *a, int axis) {
    tensor *in[1] = {a};
    if (tg_op_check_inputs(op, in, 1, 0) || tg_act_variant_check(a)) return NULL;
    /* a 0-d tensor is one row of length 1, reached by axis 0 or -1 */
    int ax = a->ndim == 0 && axis == -1 ? 0 : tg_axis_normalize(op->name, axis, a->ndim);
    if (ax < 0) return NULL;
    int64_t O = 1, D = a->ndim ? a->shape[ax] : 1, I = 1;
    for (int d = 0; d < ax; d++) O *= a->shape[d];
    for (int d = ax + 1; d < a->ndim; d++) I *= a->shape[d];
    tape_node *n = tg_node_begin(op, in, 1, a->dtype, a->ndim, a->shape);
    if (!n) return NULL;
    n->ip[0] = axis;
    n->ip[1] = O;
    n->ip[2] = D;
    n->ip[3] = I;
    return tg_node_finish(n);
}
tensor *tensor_softmax(tensor *a, int axis) { return softmax_apply(OP(SOFTMAX), a, axis); }
tensor *tensor_log_softmax(tensor *a, int axis) { return softmax_apply(OP(LOG_SOFTMAX), a, axis); }
