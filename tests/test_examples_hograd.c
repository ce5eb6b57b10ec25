/* test_examples_hograd.c - the examples that put gradients into their loss:
 * examples/wgan_gp (a gradient penalty on a critic) and examples/burgers_pinn
 * (a physics-informed network whose loss holds u_x, u_t and u_xx).
 *
 * Each loss is rebuilt here as its example builds it (the examples use the
 * public header only and have no library part to share) and checked in
 * float64: the penalty's gradient with respect to the critic's parameters
 * and the interpolates against central differences (gradcheck), the
 * network's input derivatives taken by the tape against finite differences
 * of the network itself; then each example runs on small sizes and its
 * printed numbers must show what its method is for: the penalty draws the
 * critic's gradient norm to 1 (and without it the norm runs away), the PINN
 * loss falls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"

/* ------------------------------------------------------------ helpers */
static tensor *seeded(uint64_t seed, int ndim, const int64_t *shape, double lo, double hi) {
    rng g;
    rng_seed(&g, seed, 3);
    tensor *t = tensor_rand(&g, DTYPE_F64, ndim, shape, lo, hi);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* build/examples/NAME beside this test binary's folder (build/tests/); NULL
 * (and the test does nothing) in a build without examples (check-asan). */
static const char *example(const char *name) {
    static char p[4096];
    ssize_t n = readlink("/proc/self/exe", p, sizeof p - 64);
    ck_assert_int_gt(n, 0);
    p[n] = '\0';
    *strrchr(p, '/') = '\0';
    snprintf(strrchr(p, '/'), 64, "/examples/%s", name);
    if (access(p, X_OK)) {
        fprintf(stderr, "test_examples_hograd: %s not built; its test does nothing here\n", p);
        return NULL;
    }
    return p;
}

/* Runs cmd with its stdout and stderr into a buffer of the caller's;
 * returns the exit status. */
static int run_capture(const char *cmd, char *buf, size_t len) {
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The value of "key=" in the k-th line (from 0) holding it, or NAN. */
static double field_at(const char *out, const char *key, int k) {
    char pat[64];
    snprintf(pat, sizeof pat, "%s=", key);
    const char *p = out;
    for (int i = 0; (p = strstr(p, pat)); i++, p++)
        if (i == k && (p == out || p[-1] == ' ' || p[-1] == '\n')) return strtod(p + strlen(pat), NULL);
    return NAN;
}

static int count_lines_with(const char *out, const char *what) {
    int n = 0;
    for (const char *p = out; (p = strstr(p, what)); p++) n++;
    return n;
}

/* ------------------------------------------------------------ WGAN-GP */
/* The example's critic, D: 2 -> H -> H -> 1 with tanh, on parameters
 * p = {W1 [H,2], b1 [H], W2 [H,H], b2 [H], W3 [1,H], b3 [1]}. */
static tensor *critic(tensor *const *p, tensor *x) {
    tensor *h = tensor_tanh(tensor_linear(x, p[0], p[1]));
    h = tensor_tanh(tensor_linear(h, p[2], p[3]));
    return tensor_linear(h, p[4], p[5]);
}

/* The example's penalty mean_i (|grad_x D(xhat_i)|_2 - 1)^2, in[6] = xhat. */
static tensor *penalty_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    tensor *g, *xhat = in[6];
    if (tensor_grad(tensor_sum_all(critic(in, xhat)), NULL, &xhat, 1, true, &g)) return NULL;
    tensor *norm = tensor_sqrt(tensor_sum(tensor_square(g), (int[]){1}, 1, false));
    return tensor_mean_all(tensor_square(tensor_add_scalar(norm, -1)));
}

enum { H = 5, NB = 4 };

static void critic_inputs(tensor **in) {
    const double a = 1.0; /* weights in [-a, a): tanh away from saturation */
    in[0] = seeded(11, SHAPE(H, 2), -a, a);
    in[1] = seeded(12, SHAPE(H), -0.5, 0.5);
    in[2] = seeded(13, SHAPE(H, H), -a, a);
    in[3] = seeded(14, SHAPE(H), -0.5, 0.5);
    in[4] = seeded(15, SHAPE(1, H), -a, a);
    in[5] = seeded(16, SHAPE(1), -0.5, 0.5);
    in[6] = seeded(17, SHAPE(NB, 2), -1.5, 1.5);
}

/* The penalty's gradient, with respect to every critic parameter and to the
 * interpolates, against central differences of the penalty (float64, the
 * checker's default tolerances). It runs through second derivatives of D
 * (mixed in x and the parameters), recorded by tensor_grad. */
START_TEST(test_wgan_penalty_gradient_against_differences) {
    tensor *in[7];
    critic_inputs(in);
    gradcheck_options opt = gradcheck_defaults();
    /* not b3 (in[5]): the output's bias moves D but not its gradient, so
     * the penalty does not depend on it (the checker would call it vacuous) */
    opt.check_mask = 0x7f & ~(1u << 5);
    gradcheck_report rep;
    ck_assert_msg(gradcheck(penalty_fn, NULL, in, 7, &opt, &rep) == 0, "%s", tapegrad_error());
    ck_assert_msg(rep.passed, "%s", rep.message);
    for (int i = 0; i < 7; i++)
        if (i != 5) ck_assert(rep.input[i].checked && !rep.input[i].vacuous && rep.input[i].passed);
    gradcheck_report_free(&rep);
    for (int i = 0; i < 7; i++) tensor_free(in[i]);
}
END_TEST

/* The penalty's gradient with respect to W3 by hand: D is linear in W3, so
 * grad_x D(x_i) = J_i^T W3^T with J_i the Jacobian of the last hidden layer,
 * and for n_i = |grad_x D(x_i)| the derivative of (n_i - 1)^2 is
 * 2 (n_i - 1) / n_i * J_i grad_x D(x_i), averaged over i. J_i is taken here
 * from the tape as well but without create_graph, column by column, so the
 * numbers come from first-order vjps only. */
START_TEST(test_wgan_penalty_gradient_by_hand) {
    tensor *in[7];
    critic_inputs(in);
    for (int i = 0; i < 7; i++) ck_assert_int_eq(tensor_set_requires_grad(in[i], true), 0);
    tape_reset();
    tensor *pen = penalty_fn(in, 7, NULL), *gw3;
    ck_assert_ptr_nonnull(pen);
    ck_assert_int_eq(tensor_grad(pen, NULL, &in[4], 1, false, &gw3), 0);
    double want[H] = {0};
    tensor *xis[NB]; /* kept until the tape is reset: later walks read the nodes using them */
    for (int i = 0; i < NB; i++) {
        /* J: d h2 / d x at sample i, [H, 2], row k by a first-order walk */
        double J[H][2], gx[2] = {0, 0};
        tensor *xi = xis[i] = tensor_from_doubles(DTYPE_F64, SHAPE(1, 2),
                                         (double[]){tensor_get(in[6], 2 * i), tensor_get(in[6], 2 * i + 1)});
        ck_assert_int_eq(tensor_set_requires_grad(xi, true), 0);
        for (int k = 0; k < H; k++) {
            tensor *h = tensor_tanh(tensor_linear(tensor_tanh(tensor_linear(xi, in[0], in[1])), in[2], in[3]));
            tensor *hk = tensor_narrow(h, 1, k, 1), *g;
            ck_assert_int_eq(tensor_grad(tensor_sum_all(hk), NULL, &xi, 1, false, &g), 0);
            J[k][0] = tensor_get(g, 0), J[k][1] = tensor_get(g, 1);
            gx[0] += tensor_get(in[4], k) * J[k][0], gx[1] += tensor_get(in[4], k) * J[k][1];
        }
        double nrm = sqrt(gx[0] * gx[0] + gx[1] * gx[1]);
        for (int k = 0; k < H; k++)
            want[k] += 2 * (nrm - 1) / nrm * (J[k][0] * gx[0] + J[k][1] * gx[1]) / NB;
    }
    for (int k = 0; k < H; k++) ck_assert_close(tensor_get(gw3, k), want[k], 1e-12);
    tape_reset();
    for (int i = 0; i < NB; i++) tensor_free(xis[i]);
    for (int i = 0; i < 7; i++) tensor_free(in[i]);
}
END_TEST

/* The example: with the penalty, the critic's mean gradient norm at the
 * interpolates goes from far below 1 to within 0.1 of it in 40 generator
 * steps (seed 0); with lambda 0 (no penalty) the same run's norm grows past
 * 1.5, so it is the penalty, differentiated through, that holds it. */
START_TEST(test_wgan_gp_example) {
    const char *exe = example("wgan_gp");
    if (!exe) return;
    static char out[1 << 15];
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' --steps 40 --every 4 --batch 32 --hidden 32 --seed 0 2>&1", exe);
    ck_assert_int_eq(run_capture(cmd, out, sizeof out), 0);
    ck_assert_msg(count_lines_with(out, "grad_norm=") == 10, "%s", out);
    ck_assert_msg(strstr(out, "wgan_gp: steps=40 seconds="), "%s", out);
    double first = field_at(out, "grad_norm", 0), last = field_at(out, "grad_norm", 9);
    ck_assert_msg(fabs(first - 1) > 0.3, "first grad_norm %g\n%s", first, out);
    ck_assert_msg(fabs(last - 1) < 0.1, "last grad_norm %g\n%s", last, out);
    for (int k = 0; k < 10; k++) ck_assert(isfinite(field_at(out, "critic_loss", k)));

    snprintf(cmd, sizeof cmd, "'%s' --steps 40 --every 4 --batch 32 --hidden 32 --lambda 0 2>&1", exe);
    ck_assert_int_eq(run_capture(cmd, out, sizeof out), 0);
    double free_norm = field_at(out, "grad_norm", 9);
    ck_assert_msg(free_norm > 1.5, "without the penalty grad_norm %g\n%s", free_norm, out);
    ck_assert(field_at(out, "penalty", 9) >= 0);

    static const struct { const char *args, *says; } bad[] = {
        {"--steps 0", "--steps needs a whole number from 1 to"},
        {"--lambda -1", "--lambda needs a number from 0 to"},
        {"--lr x", "--lr needs a number"},
        {"--frobnicate", "usage: wgan_gp"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", exe, bad[i].args);
        ck_assert_int_eq(run_capture(cmd, out, sizeof out), 2);
        ck_assert_msg(strstr(out, bad[i].says), "%s: %s", bad[i].args, out);
    }
}
END_TEST

/* ------------------------------------------------------- Burgers PINN */
#define NU (0.01 / M_PI)

/* The example's u(x, t) with 2 hidden layers: 2 -> W -> W -> 1, tanh, on
 * p = {W1 [W,2], b1, W2, b2, W3 [1,W], b3}; the points enter as the columns
 * x and t. */
static tensor *pinn_u(tensor *const *p, tensor *x, tensor *t) {
    tensor *h = tensor_concat((tensor *[]){x, t}, 2, 1);
    for (int i = 0; i < 3; i++) {
        h = tensor_linear(h, p[2 * i], p[2 * i + 1]);
        if (i < 2) h = tensor_tanh(h);
    }
    return h;
}

enum { PW = 6, NP = 5 };

static void pinn_params(tensor **p) {
    p[0] = seeded(21, SHAPE(PW, 2), -1, 1);
    p[1] = seeded(22, SHAPE(PW), -0.5, 0.5);
    p[2] = seeded(23, SHAPE(PW, PW), -0.8, 0.8);
    p[3] = seeded(24, SHAPE(PW), -0.5, 0.5);
    p[4] = seeded(25, SHAPE(1, PW), -1, 1);
    p[5] = seeded(26, SHAPE(1), -0.5, 0.5);
}

/* u at one point, off the tape, for the differences. */
static double u_at(tensor *const *p, double x, double t) {
    tensor *xs = tensor_from_doubles(DTYPE_F64, SHAPE(1, 1), &x);
    tensor *ts = tensor_from_doubles(DTYPE_F64, SHAPE(1, 1), &t);
    tape_no_grad_begin();
    double u = tensor_item(pinn_u(p, xs, ts));
    tape_no_grad_end();
    tensor_free(xs), tensor_free(ts);
    return u;
}

/* u_x, u_t (tensor_grad of sum u with create_graph) and u_xx (tensor_grad of
 * sum u_x) at NP points at once, against central differences of the network
 * itself at each point: (u(x+h) - u(x-h)) / 2h with h = 1e-5 (error
 * h^2 u^(3) / 6 plus rounding 1e-16 / h, both near 1e-10) and
 * (u(x+h) - 2u + u(x-h)) / h^2 with h = 1e-4 (error near 1e-8). */
START_TEST(test_pinn_derivatives_against_differences) {
    tensor *p[6];
    pinn_params(p);
    const double xs[NP] = {-0.9, -0.35, 0.05, 0.4, 0.77}, ts[NP] = {0.1, 0.8, 0.45, 0.0, 0.63};
    tensor *x = tensor_from_doubles(DTYPE_F64, SHAPE(NP, 1), xs);
    tensor *t = tensor_from_doubles(DTYPE_F64, SHAPE(NP, 1), ts);
    ck_assert_int_eq(tensor_set_requires_grad(x, true), 0);
    ck_assert_int_eq(tensor_set_requires_grad(t, true), 0);
    tape_reset();
    tensor *u = pinn_u(p, x, t), *d[2], *dxx;
    ck_assert_int_eq(tensor_grad(tensor_sum_all(u), NULL, (tensor *[]){x, t}, 2, true, d), 0);
    ck_assert_int_eq(tensor_grad(tensor_sum_all(d[0]), NULL, &x, 1, true, &dxx), 0);
    ck_assert(d[0]->requires_grad && dxx->requires_grad);
    double h1 = 1e-5, h2 = 1e-4;
    for (int i = 0; i < NP; i++) {
        double u0 = u_at(p, xs[i], ts[i]);
        ck_assert_close(tensor_get(u, i), u0, 1e-15);
        double ux = (u_at(p, xs[i] + h1, ts[i]) - u_at(p, xs[i] - h1, ts[i])) / (2 * h1);
        double ut = (u_at(p, xs[i], ts[i] + h1) - u_at(p, xs[i], ts[i] - h1)) / (2 * h1);
        double uxx = (u_at(p, xs[i] + h2, ts[i]) - 2 * u0 + u_at(p, xs[i] - h2, ts[i])) / (h2 * h2);
        ck_assert_close(tensor_get(d[0], i), ux, 1e-8);
        ck_assert_close(tensor_get(d[1], i), ut, 1e-8);
        ck_assert_close(tensor_get(dxx, i), uxx, 1e-6);
        ck_assert(fabs(uxx) > 1e-3); /* curved: the comparison means something */
    }
    tape_reset();
    tensor_free(x), tensor_free(t);
    for (int i = 0; i < 6; i++) tensor_free(p[i]);
}
END_TEST

/* The example's loss, in[0..5] the parameters, in[6], in[7] the collocation
 * points' x and t, in[8] initial points [N0, 2], in[9] boundary points [NB, 2]. */
static tensor *pinn_loss_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    tensor *x = in[6], *t = in[7], *d[2], *dxx;
    tensor *u = pinn_u(in, x, t);
    if (tensor_grad(tensor_sum_all(u), NULL, (tensor *[]){x, t}, 2, true, d) ||
        tensor_grad(tensor_sum_all(d[0]), NULL, &x, 1, true, &dxx))
        return NULL;
    tensor *f = tensor_sub(tensor_add(d[1], tensor_mul(u, d[0])), tensor_mul_scalar(dxx, NU));
    tensor *x0 = tensor_narrow(in[8], 1, 0, 1);
    tensor *u0 = pinn_u(in, x0, tensor_narrow(in[8], 1, 1, 1));
    tensor *ub = pinn_u(in, tensor_narrow(in[9], 1, 0, 1), tensor_narrow(in[9], 1, 1, 1));
    tensor *ic = tensor_add(u0, tensor_sin(tensor_mul_scalar(x0, M_PI)));
    return tensor_add(tensor_add(tensor_mean_all(tensor_square(f)), tensor_mean_all(tensor_square(ic))),
                      tensor_mean_all(tensor_square(ub)));
}

/* The PINN loss's gradient with respect to every parameter and the
 * collocation points (through u_xx: third derivatives of the network, mixed)
 * against central differences. */
START_TEST(test_pinn_loss_gradient_against_differences) {
    tensor *in[10];
    pinn_params(in);
    in[6] = seeded(31, SHAPE(NP, 1), -1, 1);
    in[7] = seeded(32, SHAPE(NP, 1), 0, 1);
    in[8] = tensor_from_doubles(DTYPE_F64, SHAPE(3, 2), (double[]){-0.6, 0, 0.1, 0, 0.7, 0});
    in[9] = tensor_from_doubles(DTYPE_F64, SHAPE(4, 2), (double[]){-1, 0.2, -1, 0.7, 1, 0.3, 1, 0.9});
    gradcheck_options opt = gradcheck_defaults();
    opt.check_mask = 0xff; /* parameters and the collocation points */
    gradcheck_report rep;
    ck_assert_msg(gradcheck(pinn_loss_fn, NULL, in, 10, &opt, &rep) == 0, "%s", tapegrad_error());
    ck_assert_msg(rep.passed, "%s", rep.message);
    for (int i = 0; i < 8; i++) ck_assert(rep.input[i].checked && !rep.input[i].vacuous);
    gradcheck_report_free(&rep);
    for (int i = 0; i < 10; i++) tensor_free(in[i]);
}
END_TEST

/* The example's exact solution (Cole-Hopf by quadrature): the steepest slope
 * of the shock, u_x(0, t) at t = 1.6037 / pi, is -152.00516 (Basdevant et al.
 * 1986, the value PINN papers compare with); near t = 0 it is -sin(pi x); at
 * the boundary 0. */
START_TEST(test_burgers_reference) {
    const char *exe = example("burgers_pinn");
    if (!exe) return;
    static char out[4096];
    char cmd[4300];
    double u[2];
    for (int s = 0; s < 2; s++) {
        snprintf(cmd, sizeof cmd, "'%s' --reference %s,%.17g 2>&1", exe, s ? "1e-6" : "-1e-6",
                 1.6037 / M_PI);
        ck_assert_int_eq(run_capture(cmd, out, sizeof out), 0);
        char *eq = strchr(out, '=');
        ck_assert_msg(strncmp(out, "u_ref(", 6) == 0 && eq, "%s", out);
        u[s] = strtod(eq + 1, NULL);
    }
    ck_assert_close((u[1] - u[0]) / 2e-6, -152.00516, 2e-4);
    for (double x = -0.75; x < 0.8; x += 0.5) {
        snprintf(cmd, sizeof cmd, "'%s' --reference %g,1e-6 2>&1", exe, x);
        ck_assert_int_eq(run_capture(cmd, out, sizeof out), 0);
        ck_assert_close(strtod(strchr(out, '=') + 1, NULL), -sin(M_PI * x), 1e-4);
    }
    snprintf(cmd, sizeof cmd, "'%s' --reference 1,0.5 2>&1", exe);
    ck_assert_int_eq(run_capture(cmd, out, sizeof out), 0);
    ck_assert_close(strtod(strchr(out, '=') + 1, NULL), 0, 1e-12);
}
END_TEST

/* The example, small: 200 Adam steps of a 3 x 10 network on 200 collocation
 * points in float64 (0.1 s); the loss falls to less than half of its value
 * after 20 steps, every part is printed, the relative error against the
 * exact solution falls below 0.7 (an untrained network is near 1: it
 * predicts about 0 where the solution is of size 1), and bad options are
 * refused. */
START_TEST(test_burgers_pinn_example) {
    const char *exe = example("burgers_pinn");
    if (!exe) return;
    static char out[1 << 14];
    char cmd[4300];
    snprintf(cmd, sizeof cmd,
             "'%s' --steps 200 --every 20 --layers 3 --width 10 --nf 200 --n0 50 --nb 50 "
             "--lr 5e-3 --f64 2>&1", exe);
    ck_assert_int_eq(run_capture(cmd, out, sizeof out), 0);
    ck_assert_msg(count_lines_with(out, "residual=") == 10, "%s", out);
    double first = field_at(out, "loss", 0), last = field_at(out, "loss", 9);
    ck_assert_msg(isfinite(first) && last < 0.5 * first, "loss %g -> %g\n%s", first, last, out);
    char *end = strstr(out, "burgers_pinn: steps=200 loss=");
    ck_assert_msg(end, "%s", out);
    double err = field_at(end, "l2_rel_error", 0);
    ck_assert_msg(isfinite(err) && err > 0 && err < 0.7, "%s", out);

    static const struct { const char *args, *says; } bad[] = {
        {"--nb 1", "--nb needs a whole number from 2 to"},
        {"--layers 0", "--layers needs a whole number from 1 to"},
        {"--reference 2,0.5", "--reference needs X,T with X in [-1, 1]"},
        {"--reference 0.5", "--reference needs X,T"},
        {"--lr 0", "--lr needs a finite number above 0"},
        {"--frobnicate", "usage: burgers_pinn"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", exe, bad[i].args);
        ck_assert_int_eq(run_capture(cmd, out, sizeof out), 2);
        ck_assert_msg(strstr(out, bad[i].says), "%s: %s", bad[i].args, out);
    }
}
END_TEST

static Suite *examples_hograd_suite(void) {
    Suite *s = suite_create("examples_hograd");
    TCase *tc = tcase_create("wgan_gp");
    tcase_add_test(tc, test_wgan_penalty_gradient_against_differences);
    tcase_add_test(tc, test_wgan_penalty_gradient_by_hand);
    tcase_add_test(tc, test_wgan_gp_example);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("burgers_pinn");
    tcase_add_test(tp, test_pinn_derivatives_against_differences);
    tcase_add_test(tp, test_pinn_loss_gradient_against_differences);
    tcase_add_test(tp, test_burgers_reference);
    tcase_add_test(tp, test_burgers_pinn_example);
    tcase_set_timeout(tp, 120);
    suite_add_tcase(s, tp);
    return s;
}

TEST_MAIN(examples_hograd_suite)
