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
    for (int i = 0; i < NB; i++) {
        /* J: d h2 / d x at sample i, [H, 2], row k by a first-order walk */
        double J[H][2], gx[2] = {0, 0};
        tensor *xi = tensor_from_doubles(DTYPE_F64, SHAPE(1, 2),
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
        tensor_free(xi);
    }
    for (int k = 0; k < H; k++) ck_assert_close(tensor_get(gw3, k), want[k], 1e-12);
    tape_reset();
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

static Suite *examples_hograd_suite(void) {
    Suite *s = suite_create("examples_hograd");
    TCase *tc = tcase_create("wgan_gp");
    tcase_add_test(tc, test_wgan_penalty_gradient_against_differences);
    tcase_add_test(tc, test_wgan_penalty_gradient_by_hand);
    tcase_add_test(tc, test_wgan_gp_example);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(examples_hograd_suite)
