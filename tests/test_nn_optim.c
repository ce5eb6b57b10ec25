/* test_nn_optim.c - SGD, Adam and AdamW steps, clipping and schedules
 * against values worked out by hand from PyTorch's update formulas.
 *
 * Every test: one float64 parameter p = [1, -2], gradient g1 = [0.5, -1] on
 * the first step and g2 = [0.25, 0.5] on the second, lr 0.1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../ops/isa.h"
#include "check_main.h"

static tensor *param(void) {
    tensor *p = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){1, -2});
    tensor_set_requires_grad(p, true);
    p->grad = tensor_zeros(DTYPE_F64, SHAPE(2));
    return p;
}

static void set_grad(tensor *p, double a, double b) {
    tensor_set(p->grad, 0, a);
    tensor_set(p->grad, 1, b);
}

/* Runs two steps with g1 then g2 and returns p. */
static tensor *two_steps(optim_config c) {
    tensor *p = param();
    optim *o = optim_new(&c, &p, 1);
    ck_assert_ptr_nonnull(o);
    set_grad(p, 0.5, -1);
    ck_assert_int_eq(optim_step(o), 0);
    set_grad(p, 0.25, 0.5);
    ck_assert_int_eq(optim_step(o), 0);
    ck_assert_int_eq(optim_steps(o), 2);
    optim_free(o);
    return p;
}

/* b1 = g1 = [0.5, -1], p1 = p - 0.1 b1 = [0.95, -1.9];
 * b2 = 0.9 b1 + g2 = [0.7, -0.4], p2 = p1 - 0.1 b2 = [0.88, -1.86]. */
START_TEST(test_sgd_momentum_two_steps) {
    optim_config c = optim_defaults(OPTIM_SGD);
    c.lr = 0.1, c.momentum = 0.9;
    tensor *p = two_steps(c);
    ck_assert_tensor(p, ((double[]){0.88, -1.86}), 1e-12);
    tensor_free(p);
}
END_TEST

/* d1 = g1 + 0.9 b1 = 1.9 g1 = [0.95, -1.9], p1 = [0.905, -1.81];
 * b2 = [0.7, -0.4], d2 = g2 + 0.9 b2 = [0.88, 0.14], p2 = [0.817, -1.824]. */
START_TEST(test_sgd_nesterov_two_steps) {
    optim_config c = optim_defaults(OPTIM_SGD);
    c.lr = 0.1, c.momentum = 0.9, c.nesterov = true;
    tensor *p = two_steps(c);
    ck_assert_tensor(p, ((double[]){0.817, -1.824}), 1e-12);
    tensor_free(p);
}
END_TEST

/* Dampening 0.5 acts from the second step: b1 = g1, p1 = [0.95, -1.9];
 * b2 = 0.9 b1 + 0.5 g2 = [0.575, -0.65], p2 = [0.8925, -1.835]. */
START_TEST(test_sgd_dampening_skips_first_step) {
    optim_config c = optim_defaults(OPTIM_SGD);
    c.lr = 0.1, c.momentum = 0.9, c.dampening = 0.5;
    tensor *p = two_steps(c);
    ck_assert_tensor(p, ((double[]){0.8925, -1.835}), 1e-12);
    tensor_free(p);
}
END_TEST

/* No momentum, weight decay 0.1: d = g1 + 0.1 p = [0.6, -1.2],
 * p1 = [0.94, -1.88]; d = g2 + 0.1 p1 = [0.344, 0.312], p2 = [0.9056, -1.9112]. */
START_TEST(test_sgd_weight_decay_two_steps) {
    optim_config c = optim_defaults(OPTIM_SGD);
    c.lr = 0.1, c.weight_decay = 0.1;
    tensor *p = two_steps(c);
    ck_assert_tensor(p, ((double[]){0.9056, -1.9112}), 1e-12);
    tensor_free(p);
}
END_TEST

/* Adam (0.9, 0.999, eps 1e-8). Step 1: m = 0.1 g1, v = 0.001 g1^2, the
 * bias corrections divide them back to g1 and g1^2, so p1 = p - 0.1 g1 /
 * (|g1| + 1e-8) = [0.9000000020, -1.9000000010].
 * Step 2, element 0: m = 0.9*0.05 + 0.1*0.25 = 0.07, v = 0.999*0.00025 +
 * 0.001*0.0625 = 3.1225e-4; m / (1 - 0.81) = 0.368421, v / (1 - 0.998001) =
 * 0.156203, p2 = p1 - 0.1 * 0.368421 / 0.395225 = 0.806782.
 * Element 1: m = -0.04, v = 1.249e-3 -> p2 = -1.873366. */
START_TEST(test_adam_two_steps_bias_corrected) {
    optim_config c = optim_defaults(OPTIM_ADAM);
    c.lr = 0.1;
    tensor *p = two_steps(c);
    ck_assert_tensor(p, ((double[]){0.8067820404774624, -1.873366297370903}), 1e-12);
    tensor_free(p);
}
END_TEST

/* Adam's weight decay is L2 in the gradient: g1' = g1 + 0.1 p = [0.6, -1.2],
 * step 1 still moves 0.1 against the sign; step 2 uses g2 + 0.1 p1. */
START_TEST(test_adam_weight_decay_in_gradient) {
    optim_config c = optim_defaults(OPTIM_ADAM);
    c.lr = 0.1, c.weight_decay = 0.1;
    tensor *p = two_steps(c);
    ck_assert_tensor(p, ((double[]){0.8050097658613199, -1.8537472646427609}), 1e-12);
    tensor_free(p);
}
END_TEST

/* AdamW decouples the decay: p *= 1 - lr wd = 0.99 before the Adam step,
 * so step 1 gives [0.99 - 0.1, -1.98 + 0.1] = [0.89, -1.88] (up to eps). */
START_TEST(test_adamw_decoupled_decay) {
    optim_config c = optim_defaults(OPTIM_ADAMW);
    ck_assert_double_eq(c.weight_decay, 1e-2);
    c.lr = 0.1, c.weight_decay = 0.1;
    tensor *p = param();
    optim *o = optim_new(&c, &p, 1);
    set_grad(p, 0.5, -1);
    optim_step(o);
    ck_assert_tensor(p, ((double[]){0.89, -1.88}), 1e-7);
    set_grad(p, 0.25, 0.5);
    optim_step(o);
    ck_assert_tensor(p, ((double[]){0.7878820404574624, -1.8345662973609032}), 1e-12);
    optim_free(o);
    tensor_free(p);
}
END_TEST

/* Plain SGD on float32 runs in float32 as PyTorch's p.add_(g, alpha=-lr):
 * p = 1/16, g = 5/8, lr 0.1. Exactly, p - lr g = 0; but lr in float is
 * 0.1 + 1.490116119384765625e-9, and 5/8 of that error is 2^-30, which one
 * fused multiply-add keeps: p = -2^-30. (In float64, lr's error is 5.6e-18
 * and p would be about -3.5e-18.) */
START_TEST(test_sgd_float32_is_pytorch_float32_arithmetic) {
    tensor *p = tensor_from_doubles(DTYPE_F32, SHAPE(1), (double[]){0.0625});
    tensor_set_requires_grad(p, true);
    p->grad = tensor_from_doubles(DTYPE_F32, SHAPE(1), (double[]){0.625});
    optim_config c = optim_defaults(OPTIM_SGD);
    c.lr = 0.1;
    optim *o = optim_new(&c, &p, 1);
    ck_assert_int_eq(optim_step(o), 0);
    ck_assert_double_eq(tensor_get(p, 0), -ldexp(1, -30));
    optim_free(o);
    tensor_free(p);
}
END_TEST

/* float32 parameters take the same update, rounded to float. */
START_TEST(test_adam_float32_parameter) {
    tensor *p = tensor_from_doubles(DTYPE_F32, SHAPE(2), (double[]){1, -2});
    tensor_set_requires_grad(p, true);
    p->grad = tensor_from_doubles(DTYPE_F32, SHAPE(2), (double[]){0.5, -1});
    optim_config c = optim_defaults(OPTIM_ADAM);
    c.lr = 0.1;
    optim *o = optim_new(&c, &p, 1);
    optim_step(o);
    ck_assert_tensor(p, ((double[]){0.9, -1.9}), 1e-6);
    optim_free(o);
    tensor_free(p);
}
END_TEST

/* A parameter without .grad is left alone, and its step count does not move:
 * its first real step is still bias-corrected as step 1. */
START_TEST(test_step_skips_parameter_without_grad) {
    tensor *a = param(), *b = param();
    tensor_free(b->grad);
    b->grad = NULL;
    tensor *ps[2] = {a, b};
    optim_config c = optim_defaults(OPTIM_ADAM);
    c.lr = 0.1;
    optim *o = optim_new(&c, ps, 2);
    set_grad(a, 0.5, -1);
    optim_step(o);
    ck_assert_tensor(b, ((double[]){1, -2}), 0);
    b->grad = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){0.5, -1});
    optim_step(o);
    ck_assert_tensor(b, ((double[]){0.9, -1.9}), 1e-7);
    optim_free(o);
    tensor_free(a);
    tensor_free(b);
}
END_TEST

START_TEST(test_zero_grad_zeroes_in_place) {
    tensor *p = param();
    set_grad(p, 3, 4);
    optim_config c = optim_defaults(OPTIM_SGD);
    optim *o = optim_new(&c, &p, 1);
    tensor *g = p->grad;
    optim_zero_grad(o);
    ck_assert_ptr_eq(p->grad, g);
    ck_assert_tensor(p->grad, ((double[]){0, 0}), 0);
    optim_free(o);
    tensor_free(p);
}
END_TEST

/* Grads [3, 4] and [12]: global norm sqrt(9 + 16 + 144) = 13; max 6.5
 * scales by 6.5 / (13 + 1e-6) to about [1.5, 2] and [6]. */
START_TEST(test_clip_grad_norm_global) {
    tensor *a = param(), *b = tensor_zeros(DTYPE_F64, SHAPE(1));
    tensor_set_requires_grad(b, true);
    b->grad = tensor_from_doubles(DTYPE_F64, SHAPE(1), (double[]){12});
    set_grad(a, 3, 4);
    tensor *ps[2] = {a, b};
    ck_assert_close(optim_clip_grad_norm(ps, 2, 6.5), 13, 1e-12);
    double k = 6.5 / (13 + 1e-6);
    ck_assert_tensor(a->grad, ((double[]){3 * k, 4 * k}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){12 * k}), 1e-12);
    /* under the limit: untouched */
    ck_assert_close(optim_clip_grad_norm(ps, 2, 100), 13 * k, 1e-9);
    ck_assert_tensor(b->grad, ((double[]){12 * k}), 1e-12);
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* A tied weight listed under both of its names is one parameter: the norm
 * counts it once (13, not sqrt(9 + 16 + 144 + 144)) and it is scaled once
 * (by k, not k squared). */
START_TEST(test_clip_grad_norm_tied_listed_twice) {
    tensor *a = param(), *b = tensor_zeros(DTYPE_F64, SHAPE(1));
    tensor_set_requires_grad(b, true);
    b->grad = tensor_from_doubles(DTYPE_F64, SHAPE(1), (double[]){12});
    set_grad(a, 3, 4);
    tensor *ps[3] = {b, a, b};
    ck_assert_close(optim_clip_grad_norm(ps, 3, 6.5), 13, 1e-12);
    double k = 6.5 / (13 + 1e-6);
    ck_assert_tensor(a->grad, ((double[]){3 * k, 4 * k}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){12 * k}), 1e-12);
    tensor_free(a);
    tensor_free(b);
}
END_TEST

START_TEST(test_clip_grad_value) {
    tensor *p = param();
    set_grad(p, 3, -0.5);
    ck_assert_int_eq(optim_clip_grad_value(&p, 1, 1), 0);
    ck_assert_tensor(p->grad, ((double[]){1, -0.5}), 0);
    set_grad(p, -7, 0.25);
    optim_clip_grad_value(&p, 1, 0.5);
    ck_assert_tensor(p->grad, ((double[]){-0.5, 0.25}), 0);
    tensor_free(p);
}
END_TEST

/* StepLR(step 2, gamma 0.5) at epoch 5: 0.1 * 0.5^2. Cosine over 10:
 * half way is the mean of base and eta_min, the end is eta_min. */
START_TEST(test_lr_schedules) {
    ck_assert_close(optim_lr_step(0.1, 0, 2, 0.5), 0.1, 1e-15);
    ck_assert_close(optim_lr_step(0.1, 5, 2, 0.5), 0.025, 1e-15);
    ck_assert_close(optim_lr_cosine(0.1, 0.0, 0, 10), 0.1, 1e-15);
    ck_assert_close(optim_lr_cosine(0.1, 0.0, 5, 10), 0.05, 1e-15);
    ck_assert_close(optim_lr_cosine(0.1, 0.01, 10, 10), 0.01, 1e-15);
    ck_assert_close(optim_lr_cosine(0.1, 0.0, 2, 8), 0.1 * (1 + cos(M_PI / 4)) / 2, 1e-15);
}
END_TEST

START_TEST(test_optim_set_lr_takes_effect) {
    tensor *p = param();
    optim_config c = optim_defaults(OPTIM_SGD);
    optim *o = optim_new(&c, &p, 1);
    optim_set_lr(o, 1.0);
    ck_assert_double_eq(optim_get_lr(o), 1.0);
    set_grad(p, 0.5, -1);
    optim_step(o);
    ck_assert_tensor(p, ((double[]){0.5, -1}), 1e-15);
    optim_free(o);
    tensor_free(p);
}
END_TEST

START_TEST(test_optim_bad_configs_rejected) {
    tensor *p = param();
    optim_config c = optim_defaults(OPTIM_SGD);
    c.nesterov = true;
    tapegrad_error_clear();
    ck_assert_ptr_null(optim_new(&c, &p, 1));
    ck_assert_str_eq(tapegrad_error(), "optim_new: nesterov needs momentum > 0 and dampening 0");
    tapegrad_error_clear();
    c = optim_defaults(OPTIM_ADAM);
    c.lr = -1;
    ck_assert_ptr_null(optim_new(&c, &p, 1));
    ck_assert_str_eq(tapegrad_error(), "optim_new: lr must be >= 0");
    tapegrad_error_clear();
    c = optim_defaults(OPTIM_ADAM);
    c.beta2 = 1;
    ck_assert_ptr_null(optim_new(&c, &p, 1));
    ck_assert_str_eq(tapegrad_error(), "optim_new: betas must be in [0, 1)");
    tapegrad_error_clear();
    tensor *none = NULL;
    ck_assert_ptr_null(optim_new(&c, &none, 1));
    tapegrad_error_clear();
    ck_assert(optim_clip_grad_norm(&p, 1, -1) < 0);
    ck_assert_ptr_nonnull(tapegrad_error());
    tapegrad_error_clear();
    tensor_free(p);
}
END_TEST

/* The float32 update loops (plain SGD, Adam, AdamW) have a copy per ISA
 * variant, the one in use (TAPEGRAD_ISA) running: every variant the CPU runs
 * gives v2's bits over three steps, on 37 values (whole vectors and a tail
 * on every width), and the steps move every value. */
START_TEST(test_float32_updates_same_bits_on_every_variant) {
    enum { N = 37 };
    const optim_kind kinds[] = {OPTIM_SGD, OPTIM_ADAM, OPTIM_ADAMW};
    for (int k = 0; k < 3; k++) {
        float ref[N], start[N];
        for (int v = 0; v < ISA_COUNT; v++) {
            if (!tg_isa_supported(v)) continue;
            ck_assert_int_eq(tg_isa_select(tg_isa_name(v)), 0);
            rng g;
            rng_seed(&g, 11, (uint64_t)k);
            tensor *p = tensor_randn(&g, DTYPE_F32, SHAPE(N), 0.0, 1.0);
            ck_assert_ptr_nonnull(p);
            tensor_set_requires_grad(p, true);
            p->grad = tensor_zeros(DTYPE_F32, SHAPE(N));
            memcpy(start, p->data, sizeof start);
            optim_config c = optim_defaults(kinds[k]);
            c.lr = 0.03;
            if (kinds[k] != OPTIM_SGD) c.weight_decay = 0.1;
            optim *o = optim_new(&c, &p, 1);
            ck_assert_ptr_nonnull(o);
            for (int s = 0; s < 3; s++) {
                for (int64_t i = 0; i < N; i++) tensor_set(p->grad, i, rng_normal(&g) * (1 + i % 5));
                ck_assert_int_eq(optim_step(o), 0);
            }
            const float *d = p->data;
            for (int i = 0; i < N; i++) ck_assert_float_ne(d[i], start[i]);
            if (v == ISA_V2)
                memcpy(ref, d, sizeof ref);
            else
                for (int i = 0; i < N; i++)
                    ck_assert_msg(d[i] == ref[i], "%s, kind %d, [%d]: %a against v2's %a",
                                  tg_isa_name(v), k, i, (double)d[i], (double)ref[i]);
            optim_free(o);
            tensor_free(p);
        }
    }
    ck_assert_int_eq(tg_isa_select(getenv("TAPEGRAD_ISA")), 0);
}
END_TEST

/* One plain SGD step on float32 p (its grad set) at lr: p becomes want,
 * fmaf(-lr, g, p) element by element, bit for bit. */
static void sgd_step_is_fmaf(tensor *p, double lr, const float *want) {
    optim_config c = optim_defaults(OPTIM_SGD);
    c.lr = lr;
    optim *o = optim_new(&c, &p, 1);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(optim_step(o), 0);
    const float *P = p->data;
    for (int64_t i = 0; i < p->size; i++)
        ck_assert_msg(P[i] == want[i], "[%lld]: %a, fmaf gives %a", (long long)i, (double)P[i],
                      (double)want[i]);
    optim_free(o);
}

/* v2 has no FMA instruction and computes plain SGD's fmaf(-lr, g, p) in
 * float64 (optim.c, sgd_f32_v2): held to libm's fmaf on 200,000 values
 * of wide-ranging exponents and signs, and on sums that land exactly on a
 * float32 midpoint after rounding to float64 (p + lr g = 2^24 + 3 - 2^-46,
 * scaled by 2^j), where rounding twice would give the other neighbour. */
START_TEST(test_sgd_float32_without_fma_is_fmaf) {
    enum { N = 200000, TIE = 64 };
    ck_assert_int_eq(tg_isa_select("v2"), 0);
    const double lr = 1 + 0x1p-23; /* -lr g = (1 + 2^-23)(1 - 2^-23) = 1 - 2^-46 */
    tensor *p = tensor_zeros(DTYPE_F32, SHAPE(N));
    ck_assert_ptr_nonnull(p);
    tensor_set_requires_grad(p, true);
    p->grad = tensor_zeros(DTYPE_F32, SHAPE(N));
    float *P = p->data, *G = p->grad->data, *want = malloc(N * sizeof *want);
    ck_assert_ptr_nonnull(want);
    rng g;
    rng_seed(&g, 5, 1);
    for (int i = 0; i < N; i++) {
        if (i < TIE) { /* the double-rounding cases, at 64 scales and both signs */
            float sc = ldexpf(i % 2 ? -1.0f : 1.0f, i / 2 - 16);
            P[i] = (0x1p24f + 2) * sc;
            G[i] = -(1 - 0x1p-23f) * sc;
        } else {
            P[i] = (float)(rng_normal(&g) * ldexp(1, (int)rng_below(&g, 60) - 30));
            G[i] = (float)(rng_normal(&g) * ldexp(1, (int)rng_below(&g, 60) - 30));
        }
        want[i] = fmaf((float)-lr, G[i], P[i]);
        /* rounding to float64 and then to float32 misses every crafted case */
        if (i < TIE) ck_assert_float_ne((float)((double)(float)-lr * G[i] + P[i]), want[i]);
    }
    sgd_step_is_fmaf(p, lr, want);
    free(want);
    tensor_free(p);
    ck_assert_int_eq(tg_isa_select(getenv("TAPEGRAD_ISA")), 0);
}
END_TEST

/* The same in float32's subnormal range and at its edge, where a float64
 * sum that rounds onto a midpoint does not show a normal midpoint's bit
 * pattern. Two crafted cases, each with its lr:
 *   lr = (1 - 2^-23) 2^-24, p = 2^-127 + 2^-149 (odd), g = (1 + 2^-23) 2^-126:
 *     p - lr g = p - (1 - 2^-46) 2^-150 lies just above the midpoint p -
 *     2^-150; float64 rounds it onto the midpoint, float32 then to the even
 *     2^-127, where fmaf keeps p;
 *   lr = (1 + 2896 2^-23) 2^-24, p = 2^-126 (the smallest normal), g = (1 -
 *     2895 2^-23) 2^-126: p - lr g = 2^-126 - (1 + 4688 2^-46) 2^-150 lies
 *     just below the midpoint with the largest subnormal, which fmaf gives;
 *     rounding twice gives 2^-126, a normal result.
 * Both signs, among random values of normal results (which alone would not
 * send a block to the exact form), at every position of a block and past the
 * last whole block (37 elements). */
START_TEST(test_sgd_float32_without_fma_subnormal) {
    enum { N = 37 };
    ck_assert_int_eq(tg_isa_select("v2"), 0);
    const float lrs[2] = {(1 - 0x1p-23f) * 0x1p-24f, (1 + 2896 * 0x1p-23f) * 0x1p-24f},
                ps[2] = {0x1p-127f + 0x1p-149f, 0x1p-126f},
                gs[2] = {(1 + 0x1p-23f) * 0x1p-126f, (1 - 2895 * 0x1p-23f) * 0x1p-126f};
    for (int c = 0; c < 2; c++) {
        const float lr = lrs[c];
        tensor *p = tensor_zeros(DTYPE_F32, SHAPE(N));
        ck_assert_ptr_nonnull(p);
        tensor_set_requires_grad(p, true);
        p->grad = tensor_zeros(DTYPE_F32, SHAPE(N));
        float *P = p->data, *G = p->grad->data, want[N];
        rng g;
        rng_seed(&g, 6, (uint64_t)c);
        for (int i = 0; i < N; i++) {
            float sg = i % 2 ? -1.0f : 1.0f;
            if (i % 5 == 0) { /* the crafted case */
                P[i] = sg * ps[c];
                G[i] = sg * gs[c];
                ck_assert_float_ne((float)((double)-lr * G[i] + P[i]), fmaf(-lr, G[i], P[i]));
            } else {
                P[i] = (float)(rng_normal(&g) * 0x1p-100);
                G[i] = (float)(rng_normal(&g) * 0x1p-80);
            }
            want[i] = fmaf(-lr, G[i], P[i]);
        }
        sgd_step_is_fmaf(p, lr, want);
        tensor_free(p);
    }
    ck_assert_int_eq(tg_isa_select(getenv("TAPEGRAD_ISA")), 0);
}
END_TEST

START_TEST(test_step_rejects_misshapen_grad) {
    tensor *p = param();
    tensor_free(p->grad);
    p->grad = tensor_zeros(DTYPE_F64, SHAPE(3));
    optim_config c = optim_defaults(OPTIM_SGD);
    optim *o = optim_new(&c, &p, 1);
    tapegrad_error_clear();
    ck_assert_int_eq(optim_step(o), -1);
    ck_assert_str_eq(tapegrad_error(), "optim_step: parameter 0 [2] has a gradient of shape [3]");
    tapegrad_error_clear();
    ck_assert_tensor(p, ((double[]){1, -2}), 0);
    optim_free(o);
    tensor_free(p);
}
END_TEST

Suite *nn_optim_suite(void) {
    Suite *s = suite_create("nn_optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, test_sgd_momentum_two_steps);
    tcase_add_test(tc, test_sgd_nesterov_two_steps);
    tcase_add_test(tc, test_sgd_dampening_skips_first_step);
    tcase_add_test(tc, test_sgd_weight_decay_two_steps);
    tcase_add_test(tc, test_adam_two_steps_bias_corrected);
    tcase_add_test(tc, test_adam_weight_decay_in_gradient);
    tcase_add_test(tc, test_adamw_decoupled_decay);
    tcase_add_test(tc, test_adam_float32_parameter);
    tcase_add_test(tc, test_sgd_float32_is_pytorch_float32_arithmetic);
    tcase_add_test(tc, test_step_skips_parameter_without_grad);
    tcase_add_test(tc, test_zero_grad_zeroes_in_place);
    tcase_add_test(tc, test_clip_grad_norm_global);
    tcase_add_test(tc, test_clip_grad_norm_tied_listed_twice);
    tcase_add_test(tc, test_clip_grad_value);
    tcase_add_test(tc, test_lr_schedules);
    tcase_add_test(tc, test_optim_set_lr_takes_effect);
    tcase_add_test(tc, test_optim_bad_configs_rejected);
    tcase_add_test(tc, test_step_rejects_misshapen_grad);
    tcase_add_test(tc, test_float32_updates_same_bits_on_every_variant);
    tcase_add_test(tc, test_sgd_float32_without_fma_is_fmaf);
    tcase_add_test(tc, test_sgd_float32_without_fma_subnormal);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(nn_optim_suite)
