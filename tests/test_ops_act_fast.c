/* test_ops_act_fast.c - the vectorised float32 activation kernels
 * (ops/act_kernels.c), every variant this CPU runs, held to naive float64
 * libm formulas written here: the error in float32 ulps over a sweep of
 * about 4 million inputs spread over every exponent and both signs (every
 * 997th bit pattern, so NaNs too) plus the edges (+-0, +-inf, NaN,
 * subnormals, FLT_MIN, FLT_MAX, the ends of e^x's range, tanh's switch
 * between its two forms); the variants agree with each other; the ops
 * (tensor_sigmoid, tensor_tanh, tensor_gelu, softmax, log_softmax) give
 * float32 results within a few ulps of their float64 runs, gradients too;
 * and a refused TAPEGRAD_ISA makes the float32 ops fail with its reason. */
#include <float.h>
#include <stdint.h>
#include <stdio.h>

#include "check_main.h"
#include "../ops/act_kernels.h"

/* ------------------------------------------------------------ the oracles */

static double exp_ref(double x) { return exp(x); }
static double sigmoid_ref(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }
static double tanh_ref(double x) { return tanh(x); }
/* x (1 + tanh u) / 2 = x sigma(2u): the same function, with no cancellation
 * in double either where tanh u -> -1 */
#define K0 0.79788456080286535588
#define K1 0.044715
static double gelu_u2(double x) { return 2 * K0 * (x + K1 * x * x * x); }
static double gelu_ref(double x) { return x * sigmoid_ref(gelu_u2(x)); }
/* d/dx = sigma + x sigma (1 - sigma) 2 k0 (1 + 3 k1 x^2); two summands,
 * returned separately (the sum cancels near x = -0.75, where an error is
 * measured against the larger) */
static void gelu_grad_ref(double x, double *a, double *b) {
    const double s = sigmoid_ref(gelu_u2(x)), ms = sigmoid_ref(-gelu_u2(x));
    *a = s;
    *b = isinf(x) ? 0 : x * s * ms * 2 * K0 * (1 + 3 * K1 * x * x);
}

/* The float32 spacing at |r|: 2^(e - 24) for |r| in [2^(e-1), 2^e), 2^-149
 * among the subnormals. */
static double ulp_at(double r) {
    r = fabs(r);
    if (r < FLT_MIN) return 0x1p-149;
    int e;
    frexp(r, &e);
    return ldexp(1.0, e - 24);
}

/* Error of got against ref in ulps at ref; 0 when both are the same NaN,
 * infinity or zero class, INFINITY when only one is NaN or infinite. */
static double ulps(float got, double ref) {
    const float rf = (float)ref;
    if (isnan(rf) || isnan(got)) return isnan(rf) && isnan(got) ? 0 : INFINITY;
    if (isinf(rf) || isinf(got)) {
        /* ref just past FLT_MAX may round either way */
        if (got == rf) return 0;
        return fabs(fabs(ref) - FLT_MAX) <= ulp_at(FLT_MAX) && fabsf(got) == FLT_MAX ? 1 : INFINITY;
    }
    return fabs(got - ref) / ulp_at(ref);
}

/* -------------------------------------------------------------- the sweep */

enum { SWEEP_STEP = 997 };

/* Every SWEEP_STEP-th bit pattern, then the edges. */
static float *sweep(int64_t *count) {
    static const float edges[] = {
        0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, FLT_MIN, -FLT_MIN, FLT_MAX, -FLT_MAX,
        0x1p-149f, -0x1p-149f, 0x1.8p-140f, -0x1.8p-140f, 1e-30f, -1e-30f, 1e-7f, -1e-7f,
        88.72283f, 88.72284f, 88.8f, 89.0f, -87.33654f, -87.5f, -103.9f, -103.97208f, -104.0f,
        -110.0f, 0.625f, -0.625f, 0.62499994f, -0.62499994f, 9.0f, -9.0f, 44.4f, -44.4f,
        16.0f, -16.0f, 20.0f, -20.0f, 1e19f, -1e19f, 1e30f, -1e30f, 0.5f, -0.75f, 1.0f, -1.0f};
    const int64_t ne = (int64_t)(sizeof edges / sizeof edges[0]);
    const int64_t n = ((int64_t)UINT32_MAX + 1) / SWEEP_STEP + 1 + ne;
    float *x = malloc((size_t)n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    int64_t i = 0;
    for (uint64_t u = 0; u <= UINT32_MAX; u += SWEEP_STEP) {
        uint32_t b = (uint32_t)u;
        memcpy(&x[i++], &b, sizeof b);
    }
    for (int64_t e = 0; e < ne; e++) x[i++] = edges[e];
    *count = i;
    return x;
}

typedef void (*map_fn)(const float *, float *, int64_t);

/* The largest error in ulps of f (every variant this CPU runs) against ref
 * over the sweep; the variants must agree within twice the bound. */
static double max_ulps(map_fn (*pick)(const act_kernels *), double (*ref)(double), double bound,
                       const char *name) {
    int64_t n;
    float *x = sweep(&n), *z = malloc((size_t)n * sizeof *z), *first = malloc((size_t)n * sizeof *first);
    ck_assert(z && first);
    double worst = 0;
    bool have_first = false;
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported(v)) continue;
        pick(tg_act_kernels_of(v))(x, z, n);
        double w = 0;
        float wx = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = ulps(z[i], ref(x[i]));
            if (e > w) w = e, wx = x[i];
            /* the variants against each other (no Check assertion per
             * element: each one is a write to the runner's pipe) */
            if (have_first && ulps(z[i], first[i]) > 2 * bound)
                ck_abort_msg("%s: %s gives %a at %a, the first variant %a", name, tg_isa_name(v), z[i], x[i],
                             first[i]);
        }
        ck_assert_msg(w <= bound, "%s (%s): %.2f ulps at x = %a (%g): %a, float64 %a", name, tg_isa_name(v), w,
                      wx, wx, z[0], ref(wx));
        printf("%s %s: max %.3f ulps\n", name, tg_isa_name(v), w);
        if (!have_first) memcpy(first, z, (size_t)n * sizeof *z), have_first = true;
        if (w > worst) worst = w;
    }
    free(x);
    free(z);
    free(first);
    return worst;
}

static map_fn pick_exp(const act_kernels *k) { return k->exp; }
static map_fn pick_sigmoid(const act_kernels *k) { return k->sigmoid; }
static map_fn pick_tanh(const act_kernels *k) { return k->tanh; }

/* e^x is within 1.5 ulps everywhere, subnormal results and the overflow edge included */
START_TEST(test_exp_within_ulps_of_libm) {
    max_ulps(pick_exp, exp_ref, 1.5, "exp");
}
END_TEST

/* sigmoid: e^-|x|, one addition, one division: within 2.5 ulps */
START_TEST(test_sigmoid_within_ulps_of_libm) {
    max_ulps(pick_sigmoid, sigmoid_ref, 2.5, "sigmoid");
}
END_TEST

/* tanh: within 2.5 ulps in both forms and at the switch between them */
START_TEST(test_tanh_within_ulps_of_libm) {
    max_ulps(pick_tanh, tanh_ref, 2.5, "tanh");
}
END_TEST

/* The values IEEE fixes: e^+-inf, e^NaN, sigmoid and tanh at +-inf, the
 * sign of tanh(-0), e^x past the ends of the range. */
START_TEST(test_edges_exact) {
    const float x[] = {INFINITY, -INFINITY, NAN, -0.0f, 0.0f, 100.0f, -200.0f, 1e-45f};
    enum { N = sizeof x / sizeof x[0] };
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported(v)) continue;
        const act_kernels *k = tg_act_kernels_of(v);
        float e[N], s[N], t[N];
        k->exp(x, e, N);
        k->sigmoid(x, s, N);
        k->tanh(x, t, N);
        ck_assert(e[0] == INFINITY && e[1] == 0 && isnan(e[2]) && e[3] == 1 && e[4] == 1);
        ck_assert(e[5] == INFINITY && e[6] == 0 && e[7] == 1);
        ck_assert(s[0] == 1 && s[1] == 0 && isnan(s[2]) && s[3] == 0.5f && s[4] == 0.5f);
        ck_assert(t[0] == 1 && t[1] == -1 && isnan(t[2]) && t[3] == 0 && signbit(t[3]) && t[4] == 0);
        ck_assert(t[5] == 1 && t[6] == -1 && t[7] == 1e-45f);
    }
}
END_TEST

/* GELU (tanh form) and its derivative over the sweep. The function is
 * x sigma(v), v = 2u a cubic of x: a relative error d in v moves sigma by
 * |v| (1 - sigma(v)) d relatively, so where v << 0 the float32 rounding of
 * v itself (the input's conditioning, not the kernel's) allows that many
 * ulps more: the bound is 3 (1 + |v| (1 - sigma(v))) ulps. The derivative is
 * a sum of two terms that cancel near x = -0.75; its error is measured in
 * ulps of the larger term, with the same allowance. */
START_TEST(test_gelu_tanh_within_ulps_of_libm) {
    int64_t n;
    float *x = sweep(&n), *z = malloc((size_t)n * sizeof *z), *dx = malloc((size_t)n * sizeof *dx),
          *g = malloc((size_t)n * sizeof *g);
    ck_assert(z && dx && g);
    for (int64_t i = 0; i < n; i++) g[i] = 1.0f;
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported(v)) continue;
        const act_kernels *k = tg_act_kernels_of(v);
        k->gelu_tanh(x, z, n);
        memset(dx, 0, (size_t)n * sizeof *dx);
        k->gelu_tanh_vjp(x, g, dx, n, false);
        double wf = 0, wg = 0;
        for (int64_t i = 0; i < n; i++) {
            const double xv = x[i], v2 = gelu_u2(xv);
            const double cond = isfinite(v2) ? 1 + fabs(v2) * sigmoid_ref(-v2) : 1;
            const double ef = ulps(z[i], gelu_ref(xv)) / cond;
            if (ef > 3)
                ck_abort_msg("gelu_tanh (%s) at %a: %a, float64 %a", tg_isa_name(v), x[i], z[i], gelu_ref(xv));
            if (ef > wf) wf = ef;
            double a, b;
            gelu_grad_ref(xv, &a, &b);
            const double ref = a + b;
            double eg;
            if (isnan(ref) || isnan(dx[i]))
                eg = isnan(ref) == isnan(dx[i]) ? 0 : INFINITY;
            else
                eg = fabs(dx[i] - ref) / ulp_at(fmax(fabs(a), fabs(b))) / cond;
            if (eg > 3) ck_abort_msg("gelu_tanh' (%s) at %a: %a, float64 %a", tg_isa_name(v), x[i], dx[i], ref);
            if (eg > wg) wg = eg;
        }
        printf("gelu_tanh %s: max %.3f (scaled) ulps, derivative %.3f\n", tg_isa_name(v), wf, wg);
    }
    free(x);
    free(z);
    free(dx);
    free(g);
}
END_TEST

/* The vjp kernel accumulates into dx and scales by g. */
START_TEST(test_gelu_tanh_vjp_accumulates) {
    const float x[3] = {0.5f, -1.0f, 2.0f}, g[3] = {2.0f, -1.0f, 0.5f};
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported(v)) continue;
        float dx[3] = {1.0f, 1.0f, 1.0f};
        tg_act_kernels_of(v)->gelu_tanh_vjp(x, g, dx, 3, false);
        for (int i = 0; i < 3; i++) {
            double a, b;
            gelu_grad_ref(x[i], &a, &b);
            ck_assert_close(dx[i], 1 + g[i] * (a + b), 1e-6);
        }
    }
}
END_TEST

/* With write (a fresh gradient buffer) the kernel stores g gelu'(x) without
 * reading dx: NaN in dx is overwritten, and the values are the accumulating
 * form's from zero, bit for bit, over the sweep (vector bodies and tails). */
START_TEST(test_gelu_tanh_vjp_writes) {
    int64_t n;
    float *x = sweep(&n), *g = malloc((size_t)n * sizeof *g), *acc = malloc((size_t)n * sizeof *acc),
          *wr = malloc((size_t)n * sizeof *wr);
    ck_assert(g && acc && wr);
    for (int64_t i = 0; i < n; i++) g[i] = (float)(i % 7) - 3.25f;
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported(v)) continue;
        const act_kernels *k = tg_act_kernels_of(v);
        for (int64_t len = n - 37; len <= n; len += 37) {
            memset(acc, 0, (size_t)n * sizeof *acc);
            for (int64_t i = 0; i < n; i++) wr[i] = NAN;
            k->gelu_tanh_vjp(x, g, acc, len, false);
            k->gelu_tanh_vjp(x, g, wr, len, true);
            for (int64_t i = 0; i < len; i++)
                if (!(wr[i] == acc[i] || (isnan(wr[i]) && isnan(acc[i]))))
                    ck_abort_msg("gelu_tanh_vjp write (%s) at %a: %a, accumulated %a", tg_isa_name(v), x[i],
                                 wr[i], acc[i]);
            for (int64_t i = len; i < n; i++) ck_assert(isnan(wr[i]));
        }
    }
    free(x);
    free(g);
    free(acc);
    free(wr);
}
END_TEST

/* ------------------------------------------------------- softmax rows */

/* Rows of 1 to 300 elements (vector tails), spreads up to +-100, rows with
 * -inf (masked positions) and all equal: every element within 4 ulps of
 * float64 (log_softmax: within 4 ulps of the largest of |x - m| and ln s,
 * its terms); a row with a NaN is all NaN; a row with only -inf is all NaN,
 * as in float64. */
START_TEST(test_softmax_rows_within_ulps_of_libm) {
    enum { DMAX = 300 };
    float x[DMAX], z[DMAX];
    uint64_t state = 12345;
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported(v)) continue;
        const act_kernels *k = tg_act_kernels_of(v);
        for (int D = 1; D <= DMAX; D += D < 20 ? 1 : 37) {
            for (int kind = 0; kind < 4; kind++) {
                const double spread = kind == 0 ? 3 : kind == 1 ? 100 : kind == 2 ? 10 : 0;
                for (int d = 0; d < D; d++) {
                    state = state * 6364136223846793005ull + 1442695040888963407ull;
                    x[d] = (float)(((double)(state >> 11) / 0x1p53 * 2 - 1) * spread + 0.25);
                    if (kind == 2 && d % 3 == 1 && D > 1) x[d] = -INFINITY;
                }
                double m = -INFINITY, s = 0;
                for (int d = 0; d < D; d++) m = fmax(m, x[d]);
                for (int d = 0; d < D; d++) s += exp((double)x[d] - m);
                for (int log_form = 0; log_form < 2; log_form++) {
                    k->softmax_row(x, z, D, log_form);
                    for (int d = 0; d < D; d++) {
                        const double ref = log_form ? x[d] - m - log(s) : exp((double)x[d] - m) / s;
                        const double e = log_form ? (isinf(ref) ? (z[d] == ref ? 0 : INFINITY)
                                                                : fabs(z[d] - ref) /
                                                                      ulp_at(fmax(fabs(x[d] - m), log(s))))
                                                  : ulps(z[d], ref);
                        if (e > 4)
                            ck_abort_msg("%s (%s) D %d kind %d [%d]: %a, float64 %a",
                                         log_form ? "log_softmax" : "softmax", tg_isa_name(v), D, kind, d, z[d], ref);
                    }
                }
            }
        }
        const float nan_row[4] = {1, NAN, 2, 3}, inf_row[3] = {-INFINITY, -INFINITY, -INFINITY};
        for (int log_form = 0; log_form < 2; log_form++) {
            k->softmax_row(nan_row, z, 4, log_form);
            for (int d = 0; d < 4; d++) ck_assert(isnan(z[d]));
            k->softmax_row(inf_row, z, 3, log_form);
            for (int d = 0; d < 3; d++) ck_assert(isnan(z[d]));
        }
    }
}
END_TEST

/* log_softmax's row vjp: dx += g - e^z sum(g), within 4 ulps of the larger
 * term, accumulated onto what dx held. */
START_TEST(test_log_softmax_row_vjp_within_ulps) {
    enum { D = 77 };
    float x[D], z[D], g[D], dx[D];
    for (int d = 0; d < D; d++) {
        x[d] = (float)sin(d * 1.3) * 6;
        g[d] = (float)cos(d * 0.7);
    }
    double gs = 0;
    for (int d = 0; d < D; d++) gs += g[d];
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported(v)) continue;
        const act_kernels *k = tg_act_kernels_of(v);
        k->softmax_row(x, z, D, true);
        for (int d = 0; d < D; d++) dx[d] = 0.5f;
        k->log_softmax_row_vjp(z, g, dx, D);
        for (int d = 0; d < D; d++) {
            const double t = exp((double)z[d]) * gs, ref = 0.5 + g[d] - t;
            ck_assert_msg(fabs(dx[d] - ref) <= 4 * ulp_at(fmax(fmax(fabs(g[d]), fabs(t)), 0.5)),
                          "%s [%d]: %a, float64 %a", tg_isa_name(v), d, dx[d], ref);
        }
    }
}
END_TEST

/* ------------------------------------------------------------ the ops */

/* op in float32 against float64 on the same 1000 values in [-8, 8] (not a
 * multiple of any vector width): values within 4 ulps of the larger of the
 * value and 1e-3, times GELU's condition number (see its kernel test); the gradient
 * of sum(y * w) within 4 ulps of the larger of the value and 1: the vjps of
 * sigmoid and tanh take 1 - y from the float32 output, whose rounding is an
 * ulp of 1 where y saturates, and GELU's derivative crosses 0. */
static void check_op_f32(tensor *(*op)(tensor *), const char *name, double (*cond)(double)) {
    enum { N = 1000 };
    double v[N], w[N];
    for (int i = 0; i < N; i++) {
        v[i] = (float)(8 * sin(i * 0.731 + 0.2)); /* both runs see the same inputs */
        w[i] = 0.5 + fabs(cos(i * 1.37));
    }
    tensor *r[2][2]; /* [dtype][value, grad] */
    tensor *leaves[2];
    for (int f = 0; f < 2; f++) {
        const dtype dt = f ? DTYPE_F32 : DTYPE_F64;
        tensor *x = tensor_from_doubles(dt, 1, (int64_t[]){N}, v);
        tensor *wt = tensor_from_doubles(dt, 1, (int64_t[]){N}, w);
        ck_assert(x && wt);
        tensor_set_requires_grad(x, true);
        tensor *y = op(x);
        ck_assert_msg(y != NULL, "%s: %s", name, tapegrad_error());
        tensor *loss = tensor_sum_all(tensor_mul(y, tensor_reshape(wt, y->ndim, y->shape)));
        ck_assert_msg(tensor_backward(loss) == 0, "%s: %s", name, tapegrad_error());
        r[f][0] = tensor_detach(y);
        r[f][1] = tensor_clone(x->grad);
        tape_reset();
        leaves[f] = x;
        tensor_free(wt);
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 2; j++) {
            const double a = tensor_get(r[1][j], i), b = tensor_get(r[0][j], i);
            const double c = cond ? cond(v[i]) : 1;
            ck_assert_msg(fabs(a - b) <= 4 * c * ulp_at(fmax(fabs(b), j ? 1 : 1e-3)), "%s %s [%d] at %g: %.9g, float64 %.9g",
                          name, j ? "grad" : "value", i, v[i], a, b);
        }
    for (int f = 0; f < 2; f++) {
        tensor_free(r[f][0]);
        tensor_free(r[f][1]);
        tensor_free(leaves[f]);
    }
}
static tensor *gelu_tanh_op(tensor *a) { return tensor_gelu(a, true); }
/* GELU's conditioning in its argument v = 2u (test_gelu_tanh_within_ulps_of_libm) */
static double gelu_cond(double x) { return 1 + fabs(gelu_u2(x)) * sigmoid_ref(-gelu_u2(x)); }
/* log_softmax's dx = g - e^z sum(g) is a difference; with these weights its
 * terms reach twice |dx| */
static double log_softmax_cond(double x) { return x == x ? 2 : 1; }
static tensor *softmax_op(tensor *a) { return tensor_softmax(tensor_reshape(a, 2, (int64_t[]){8, 125}), 1); }
static tensor *log_softmax_op(tensor *a) {
    return tensor_log_softmax(tensor_reshape(a, 2, (int64_t[]){10, 100}), -1);
}

START_TEST(test_ops_float32_match_float64) {
    check_op_f32(tensor_sigmoid, "sigmoid", NULL);
    check_op_f32(tensor_tanh, "tanh", NULL);
    check_op_f32(gelu_tanh_op, "gelu_tanh", gelu_cond);
    check_op_f32(softmax_op, "softmax", NULL);
    check_op_f32(log_softmax_op, "log_softmax", log_softmax_cond);
}
END_TEST

/* The same float32 results on 1 and 2 threads, on a tensor large enough to
 * be split (each element is computed alone). */
START_TEST(test_ops_float32_same_on_threads) {
    enum { N = 1 << 18 };
    tensor *x = tensor_new(DTYPE_F32, 1, (int64_t[]){N});
    ck_assert_ptr_nonnull(x);
    for (int64_t i = 0; i < N; i++) ((float *)x->data)[i] = (float)(10 * sin(i * 0.01));
    tensor *(*ops[3])(tensor *) = {tensor_sigmoid, tensor_tanh, gelu_tanh_op};
    const int was = tapegrad_threads();
    for (int o = 0; o < 3; o++) {
        tensor *y[2];
        for (int t = 0; t < 2; t++) {
            tapegrad_set_threads(t + 1);
            y[t] = tensor_detach(ops[o](x));
            ck_assert_ptr_nonnull(y[t]);
            tape_reset();
        }
        ck_assert(!memcmp(y[0]->data, y[1]->data, N * sizeof(float)));
        tensor_free(y[0]);
        tensor_free(y[1]);
    }
    tapegrad_set_threads(was);
    tensor_free(x);
}
END_TEST

/* TAPEGRAD_ISA naming a variant that is not (v9): the float32 ops that
 * run per-variant kernels refuse with the reason, float64 and the erf form
 * of GELU still run; choosing again restores them. Attention's float32
 * kernel takes e^x from them too. */
START_TEST(test_refused_variant_fails_float32_ops) {
    tensor *x32 = tensor_from_doubles(DTYPE_F32, 1, (int64_t[]){2}, (double[]){0.5, -1});
    tensor *x64 = tensor_from_doubles(DTYPE_F64, 1, (int64_t[]){2}, (double[]){0.5, -1});
    ck_assert_int_eq(tg_isa_select("v9"), -1);
    tapegrad_error_clear();
    const char *msg = "TAPEGRAD_ISA=v9 names no kernel variant (v2, v3 or v4)";
    ck_assert_fails_with(tensor_sigmoid(x32), msg);
    ck_assert_fails_with(tensor_tanh(x32), msg);
    ck_assert_fails_with(tensor_gelu(x32, true), msg);
    ck_assert_fails_with(tensor_softmax(x32, 0), msg);
    ck_assert_fails_with(tensor_log_softmax(x32, 0), msg);
    tensor *q = tensor_reshape(x32, 2, (int64_t[]){1, 2});
    ck_assert_ptr_nonnull(q);
    ck_assert_fails_with(tensor_scaled_dot_product_attention(q, q, q, NULL, true, 0, NULL), msg);
    ck_assert_ptr_nonnull(tensor_sigmoid(x64));
    ck_assert_ptr_nonnull(tensor_gelu(x32, false));
    ck_assert_ptr_null(tapegrad_error());
    ck_assert_int_eq(tg_isa_select(getenv("TAPEGRAD_ISA")), 0);
    ck_assert_ptr_nonnull(tensor_sigmoid(x32));
    tape_reset();
    tensor_free(x32);
    tensor_free(x64);
}
END_TEST

static Suite *ops_act_fast_suite(void) {
    Suite *s = suite_create("ops_act_fast");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_exp_within_ulps_of_libm);
    tcase_add_test(tc, test_sigmoid_within_ulps_of_libm);
    tcase_add_test(tc, test_tanh_within_ulps_of_libm);
    tcase_add_test(tc, test_edges_exact);
    tcase_add_test(tc, test_gelu_tanh_within_ulps_of_libm);
    tcase_add_test(tc, test_gelu_tanh_vjp_accumulates);
    tcase_add_test(tc, test_gelu_tanh_vjp_writes);
    tcase_add_test(tc, test_softmax_rows_within_ulps_of_libm);
    tcase_add_test(tc, test_log_softmax_row_vjp_within_ulps);
    tcase_add_test(tc, test_ops_float32_match_float64);
    tcase_add_test(tc, test_ops_float32_same_on_threads);
    tcase_add_test(tc, test_refused_variant_fails_float32_ops);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ops_act_fast_suite)
