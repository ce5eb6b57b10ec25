/* burgers_pinn.c - a physics-informed network for Burgers' equation, the
 * derivatives in its loss taken by the tape.
 *
 *   burgers_pinn [--steps 2000] [--layers 8] [--width 20] [--nf 2000]
 *                [--n0 100] [--nb 100] [--lr 1e-3] [--threads 1] [--seed 0]
 *                [--every N] [--f64] [--time] [--reference X,T]
 *
 * The problem (Raissi, Perdikaris and Karniadakis 2019): on x in [-1, 1],
 * t in [0, 1],
 *
 *   u_t + u u_x - nu u_xx = 0,  nu = 0.01 / pi,
 *   u(x, 0) = -sin(pi x),  u(-1, t) = u(1, t) = 0.
 *
 * u is an MLP (x, t) -> 1 with --layers hidden layers of --width tanh units
 * (8 x 20 as in the paper), Xavier-normal weights and zero biases. The loss
 * on --nf collocation points (x_i, t_i), --n0 initial and --nb boundary points
 *
 *   L = mean_i f(x_i, t_i)^2 + mean_j (u(x_j, 0) + sin(pi x_j))^2 + mean_k u(+-1, t_k)^2,
 *   f = u_t + u u_x - nu u_xx,
 *
 * where u_x and u_t are tensor_grad of sum(u) with respect to the point
 * tensors x and t with create_graph (the rows are independent, so row i of
 * the gradient is the derivative at point i), and u_xx is tensor_grad of
 * sum(u_x) with respect to x, again with create_graph: then L is an ordinary
 * tape value and tensor_backward(L) gives its gradient with respect to the
 * parameters (third derivatives of the MLP, mixed). Adam, float32 (float64
 * with --f64).
 *
 * The points are deterministic, so that bench/burgers_torch.py uses the same
 * ones: collocation points from the Halton sequence (bases 2 and 3), the
 * initial points x_j = -1 + 2 (j + 1/2) / n0, the boundary points t_k =
 * (k + 1/2) / (nb/2) on each side.
 *
 * Every --every steps (default steps / 10) one line
 *   step=S loss=L residual=R initial=I boundary=B
 * then, against the exact solution (Cole-Hopf, by quadrature) on a grid of
 * 201 x 10 points in [-1, 1] x {0.1, 0.2, ..., 1},
 *   burgers_pinn: steps=S loss=L l2_rel_error=E seconds=T
 * --time prints instead the median time of a step (after 5 warm-up steps):
 *   burgers_pinn layers=8 width=20 nf=2000 threads=1 ms=M
 * --reference X,T prints the exact solution u(X, T) and exits.
 * Uses the public header only. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../include/tapegrad.h"
#include "example.h"

#define NU (0.01 / M_PI)

typedef struct options {
    int64_t steps, layers, width, nf, n0, nb, every;
    int threads;
    double lr, ref_x, ref_t;
    uint64_t seed;
    bool f64, time, reference;
} options;

static void usage(FILE *f) {
    fprintf(f, "usage: burgers_pinn [--steps N] [--layers N] [--width N] [--nf N] [--n0 N] [--nb N]\n"
               "                    [--lr X] [--threads N] [--seed N] [--every N] [--f64] [--time]\n"
               "                    [--reference X,T]\n"
               "defaults: 2000 Adam steps at lr 1e-3, 8 hidden layers of 20, 2000 collocation,\n"
               "          100 initial and 100 boundary points, float32, 1 thread\n");
}

static int parse(int argc, char **argv, options *o) {
    static const struct option longs[] = {
        {"steps", 1, 0, 'n'}, {"layers", 1, 0, 'L'}, {"width", 1, 0, 'w'},  {"nf", 1, 0, 'f'},
        {"n0", 1, 0, '0'},    {"nb", 1, 0, 'b'},     {"lr", 1, 0, 'l'},     {"threads", 1, 0, 't'},
        {"seed", 1, 0, 's'},  {"every", 1, 0, 'e'},  {"f64", 0, 0, 'd'},    {"time", 0, 0, 'T'},
        {"reference", 1, 0, 'r'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    *o = (options){.steps = 2000, .layers = 8, .width = 20, .nf = 2000, .n0 = 100, .nb = 100,
                   .threads = 1, .lr = 1e-3};
    int c;
    int64_t v;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'n': if (ex_int_opt("burgers_pinn", "steps", optarg, 1, 100000000, &o->steps)) return 2; break;
        case 'L': if (ex_int_opt("burgers_pinn", "layers", optarg, 1, 100, &o->layers)) return 2; break;
        case 'w': if (ex_int_opt("burgers_pinn", "width", optarg, 1, 10000, &o->width)) return 2; break;
        case 'f': if (ex_int_opt("burgers_pinn", "nf", optarg, 1, 10000000, &o->nf)) return 2; break;
        case '0': if (ex_int_opt("burgers_pinn", "n0", optarg, 1, 10000000, &o->n0)) return 2; break;
        case 'b': if (ex_int_opt("burgers_pinn", "nb", optarg, 2, 10000000, &o->nb)) return 2; break;
        case 'e': if (ex_int_opt("burgers_pinn", "every", optarg, 1, 100000000, &o->every)) return 2; break;
        case 't':
            if (ex_int_opt("burgers_pinn", "threads", optarg, 1, 1024, &v)) return 2;
            o->threads = (int)v;
            break;
        case 's':
            if (ex_int_opt("burgers_pinn", "seed", optarg, 0, LLONG_MAX, &v)) return 2;
            o->seed = (uint64_t)v;
            break;
        case 'l': {
            char *end;
            o->lr = strtod(optarg, &end);
            if (!*optarg || *end || !isfinite(o->lr) || !(o->lr > 0)) {
                fprintf(stderr, "burgers_pinn: --lr needs a finite number above 0, not \"%s\"\n", optarg);
                return 2;
            }
            break;
        }
        case 'r': {
            char *end;
            o->ref_x = strtod(optarg, &end);
            if (*end == ',') o->ref_t = strtod(end + 1, &end);
            if (!strchr(optarg, ',') || *end || !(o->ref_x >= -1 && o->ref_x <= 1) ||
                !(o->ref_t > 0 && o->ref_t <= 1)) {
                fprintf(stderr, "burgers_pinn: --reference needs X,T with X in [-1, 1] and T in "
                                "(0, 1], not \"%s\"\n", optarg);
                return 2;
            }
            o->reference = true;
            break;
        }
        case 'd': o->f64 = true; break;
        case 'T': o->time = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "burgers_pinn: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!o->every) o->every = o->steps >= 10 ? o->steps / 10 : 1;
    return 0;
}

/* ---------------------------------------------------- the exact solution */
/* Cole-Hopf: u = -2 nu (log phi)_x turns Burgers' equation into the heat
 * equation for phi, whose solution is a Gaussian convolution of phi(y, 0) =
 * exp(-cos(pi y) / (2 pi nu)) (from u(y, 0) = -sin(pi y)). With eta = x - y
 * and eta = sqrt(4 nu t) s,
 *
 *   u(x, t) = - int sin(pi (x - eta)) w(s) ds / int w(s) ds,
 *   w(s) = exp(-cos(pi (x - eta)) / (2 pi nu) - s^2).
 *
 * The exponent spans hundreds of units, so it is shifted by its maximum
 * before exp (the shift cancels in the ratio). The trapezoidal rule on
 * s in [-14, 14] converges fast: w is smooth on the scale of the step
 * (1/500), and its exponent, at least -1/(2 pi nu) = -50 at s = 0, is at
 * most 50 - s^2, below the peak by more than 90 beyond |s| = 14 (at |s| = 8
 * a tenth of a percent of the mass would be lost). The domain is periodic in x, so the boundary
 * condition u(+-1, t) = 0 holds by symmetry. */
static double burgers_exact(double x, double t) {
    enum { M = 14001 };
    static double e[M];
    const double c = sqrt(4 * NU * t), h = 28.0 / (M - 1);
    double top = -INFINITY;
    for (int i = 0; i < M; i++) {
        double s = -14 + h * i, y = x - c * s;
        e[i] = -cos(M_PI * y) / (2 * M_PI * NU) - s * s;
        if (e[i] > top) top = e[i];
    }
    double num = 0, den = 0;
    for (int i = 0; i < M; i++) {
        double s = -14 + h * i, w = exp(e[i] - top) * (i == 0 || i == M - 1 ? 0.5 : 1);
        num += sin(M_PI * (x - c * s)) * w;
        den += w;
    }
    return -num / den;
}

/* ------------------------------------------------------------ the points */
/* The radical inverse of i in base b: the Halton sequence's coordinate. */
static double halton(int64_t i, int b) {
    double f = 1, r = 0;
    for (; i > 0; i /= b) {
        f /= b;
        r += f * (double)(i % b);
    }
    return r;
}

typedef struct points {
    tensor *xf, *tf;       /* collocation [NF, 1] each, requiring grad */
    tensor *x0t0;          /* initial [N0, 2] (t = 0) */
    tensor *u0;            /* -sin(pi x0) [N0, 1] */
    tensor *xbtb;          /* boundary [NB, 2] */
} points;

static int points_make(points *p, const options *o, dtype dt) {
    int64_t nf = o->nf, n0 = o->n0, nb = o->nb / 2 * 2;
    double *xf = malloc(sizeof(double) * (size_t)nf), *tf = malloc(sizeof(double) * (size_t)nf);
    double *x0 = malloc(sizeof(double) * 2 * (size_t)n0), *u0 = malloc(sizeof(double) * (size_t)n0);
    double *xb = malloc(sizeof(double) * 2 * (size_t)nb);
    int rc = -1;
    if (!xf || !tf || !x0 || !u0 || !xb) goto out;
    for (int64_t i = 0; i < nf; i++) {
        xf[i] = -1 + 2 * halton(i + 1, 2); /* from 1: the sequence's 0 is a corner */
        tf[i] = halton(i + 1, 3);
    }
    for (int64_t j = 0; j < n0; j++) {
        x0[2 * j] = -1 + 2 * ((double)j + 0.5) / (double)n0;
        x0[2 * j + 1] = 0;
        u0[j] = -sin(M_PI * x0[2 * j]);
    }
    for (int64_t k = 0; k < nb; k++) {
        xb[2 * k] = k < nb / 2 ? -1 : 1;
        xb[2 * k + 1] = ((double)(k % (nb / 2)) + 0.5) / (double)(nb / 2);
    }
    p->xf = tensor_from_doubles(dt, SHAPE(nf, 1), xf);
    p->tf = tensor_from_doubles(dt, SHAPE(nf, 1), tf);
    p->x0t0 = tensor_from_doubles(dt, SHAPE(n0, 2), x0);
    p->u0 = tensor_from_doubles(dt, SHAPE(n0, 1), u0);
    p->xbtb = tensor_from_doubles(dt, SHAPE(nb, 2), xb);
    if (p->xf && p->tf && p->x0t0 && p->u0 && p->xbtb && !tensor_set_requires_grad(p->xf, true) &&
        !tensor_set_requires_grad(p->tf, true))
        rc = 0;
out:
    free(xf), free(tf), free(x0), free(u0), free(xb);
    return rc;
}

static void points_free(points *p) {
    tensor_free(p->xf), tensor_free(p->tf), tensor_free(p->x0t0), tensor_free(p->u0);
    tensor_free(p->xbtb);
}

/* ------------------------------------------------------------- the model */
typedef struct mlp {
    nn_model *m;
    nn_linear *l;          /* layers + 1 */
    int64_t n;
} mlp;

/* Xavier-normal weights (std sqrt(2 / (fan_in + fan_out))), zero biases. */
static int mlp_init(mlp *net, const options *o, dtype dt) {
    net->n = o->layers + 1;
    net->m = nn_model_new(dt, o->seed);
    net->l = calloc((size_t)net->n, sizeof *net->l);
    if (!net->m || !net->l) return -1;
    for (int64_t i = 0; i < net->n; i++) {
        int64_t in = i == 0 ? 2 : o->width, out = i == net->n - 1 ? 1 : o->width;
        char name[32];
        snprintf(name, sizeof name, "l%lld", (long long)i);
        if (nn_linear_init(&net->l[i], net->m, name, in, out, true) ||
            nn_init_xavier_normal(net->l[i].weight, &net->m->rng, 1) ||
            nn_init_constant(net->l[i].bias, 0))
            return -1;
    }
    return 0;
}

static tensor *mlp_forward(const mlp *net, tensor *x) {
    for (int64_t i = 0; i < net->n; i++) {
        x = nn_linear_forward(&net->l[i], x);
        if (i < net->n - 1) x = tensor_tanh(x);
    }
    return x;
}

/* The loss of the header, its three parts in parts[0..2] (tape tensors). */
static tensor *pinn_loss(const mlp *net, const points *p, tensor **parts) {
    tensor *x = p->xf, *t = p->tf, *d[2], *dxx;
    tensor *u = mlp_forward(net, tensor_concat((tensor *[]){x, t}, 2, 1)); /* [NF, 1] */
    if (!u || tensor_grad(tensor_sum_all(u), NULL, (tensor *[]){x, t}, 2, true, d)) return NULL;
    tensor *ux = d[0], *ut = d[1];
    if (tensor_grad(tensor_sum_all(ux), NULL, &x, 1, true, &dxx)) return NULL;
    tensor *f = tensor_sub(tensor_add(ut, tensor_mul(u, ux)), tensor_mul_scalar(dxx, NU));
    parts[0] = tensor_mean_all(tensor_square(f));
    parts[1] = tensor_mean_all(tensor_square(tensor_sub(mlp_forward(net, p->x0t0), p->u0)));
    parts[2] = tensor_mean_all(tensor_square(mlp_forward(net, p->xbtb)));
    return tensor_add(tensor_add(parts[0], parts[1]), parts[2]);
}

/* The relative L2 error of the network against the exact solution on a
 * 201 x 10 grid of [-1, 1] x {0.1, ..., 1} (t = 0 is the initial condition, fitted
 * directly). */
static double l2_error(const mlp *net, dtype dt) {
    enum { NX = 201, NT = 10 };
    static double g[NX * NT * 2], ref[NX * NT];
    for (int j = 0; j < NT; j++)
        for (int i = 0; i < NX; i++) {
            double x = -1 + 2.0 * i / (NX - 1), t = 0.1 * (j + 1);
            g[2 * (j * NX + i)] = x, g[2 * (j * NX + i) + 1] = t;
            ref[j * NX + i] = burgers_exact(x, t);
        }
    tensor *in = tensor_from_doubles(dt, SHAPE(NX * NT, 2), g);
    if (!in) return NAN;
    tape_no_grad_begin();
    tensor *u = mlp_forward(net, in);
    tape_no_grad_end();
    double num = 0, den = 0;
    for (int k = 0; u && k < NX * NT; k++) {
        double e = tensor_get(u, k) - ref[k];
        num += e * e, den += ref[k] * ref[k];
    }
    tensor_free(in);
    return u ? sqrt(num / den) : NAN;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    options o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    if (o.reference) {
        printf("u_ref(%.17g, %.17g)=%.17g\n", o.ref_x, o.ref_t, burgers_exact(o.ref_x, o.ref_t));
        return 0;
    }
    tapegrad_set_threads(o.threads);
    dtype dt = o.f64 ? DTYPE_F64 : DTYPE_F32;
    points p = {0};
    mlp net = {0};
    optim *opt = NULL;
    double *times = NULL;
    rc = 1;
    if (points_make(&p, &o, dt) || mlp_init(&net, &o, dt)) {
        ex_fail("burgers_pinn", "setup");
        goto out;
    }
    optim_config oc = optim_defaults(OPTIM_ADAM);
    oc.lr = o.lr;
    int np;
    tensor *const *params = nn_model_parameters(net.m, &np);
    if (!(opt = optim_new(&oc, params, np))) {
        ex_fail("burgers_pinn", "optimiser");
        goto out;
    }
    const int64_t warm = 5;
    int64_t total = o.time ? o.steps + warm : o.steps;
    if (o.time && !(times = malloc(sizeof(double) * (size_t)o.steps))) goto out;
    if (!o.time)
        printf("burgers_pinn: %lld parameters, %lld x %lld tanh, %lld collocation points, %s\n",
               (long long)nn_model_numel(net.m), (long long)o.layers, (long long)o.width,
               (long long)o.nf, o.f64 ? "float64" : "float32");
    double t0 = ex_now(), loss = NAN;
    for (int64_t step = 1; step <= total; step++) {
        double s0 = ex_now();
        tape_reset();
        tensor *parts[3];
        tensor *L = pinn_loss(&net, &p, parts);
        optim_zero_grad(opt);
        if (!L || tensor_backward(L) || optim_step(opt)) {
            ex_fail("burgers_pinn", "step");
            goto out;
        }
        loss = tensor_item(L);
        if (o.time) {
            if (step > warm) times[step - warm - 1] = ex_now() - s0;
            continue;
        }
        if (step % o.every == 0 || step == o.steps) {
            printf("step=%lld loss=%.6g residual=%.6g initial=%.6g boundary=%.6g\n",
                   (long long)step, loss, tensor_item(parts[0]), tensor_item(parts[1]),
                   tensor_item(parts[2]));
            fflush(stdout);
        }
    }
    if (o.time) {
        qsort(times, (size_t)o.steps, sizeof *times, cmp_double);
        printf("burgers_pinn layers=%lld width=%lld nf=%lld threads=%d loss=%.6g ms=%.3f\n",
               (long long)o.layers, (long long)o.width, (long long)o.nf, o.threads, loss,
               1e3 * times[o.steps / 2]);
    } else {
        double secs = ex_now() - t0;
        printf("burgers_pinn: steps=%lld loss=%.6g l2_rel_error=%.4g seconds=%.2f\n",
               (long long)o.steps, loss, l2_error(&net, dt), secs);
    }
    rc = 0;
out:
    free(times);
    optim_free(opt);
    nn_model_free(net.m);
    free(net.l);
    points_free(&p);
    tape_release();
    return rc;
}
