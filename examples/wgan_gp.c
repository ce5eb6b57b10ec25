/* wgan_gp.c - a Wasserstein GAN with gradient penalty on 2-D toy data, the
 * penalty's gradient taken by the tape (tensor_grad with create_graph).
 *
 *   wgan_gp [--steps 300] [--batch 64] [--critic 5] [--lambda 10]
 *           [--lr 1e-3] [--hidden 64] [--threads 1] [--seed 0] [--every N]
 *
 * Real samples come from a mixture of 8 Gaussians (std 0.05) on the circle
 * of radius 2; fake ones from a generator G: z ~ N(0, I_2) -> 2 -> H -> H -> 2
 * (relu). The critic D: 2 -> H -> H -> 1 (tanh), smooth, so its penalty has
 * a gradient everywhere. Each of --steps generator steps follows --critic
 * critic steps on the WGAN-GP loss (Gulrajani et al. 2017)
 *
 *   L_D = mean D(fake) - mean D(real) + lambda * mean_i (|grad_x D(xhat_i)|_2 - 1)^2
 *   xhat_i = e_i real_i + (1 - e_i) fake_i,   e_i ~ U(0, 1)
 *
 * where grad_x D(xhat) is recorded on the tape (create_graph), so the
 * penalty is an ordinary function of the critic's parameters and
 * tensor_backward(L_D) takes its gradient: second derivatives of D, mixed in
 * x and the parameters. Then the generator step minimises -mean D(G(z)).
 * Adam with betas (0.5, 0.9) for both, float32.
 *
 * Every --every steps (default steps / 10) and after the last, one line
 *   step=S critic_loss=L wasserstein=W penalty=P grad_norm=N gen_loss=G
 * (wasserstein: mean D(real) - mean D(fake), the critic's estimate of the
 * distance; grad_norm: the mean of |grad_x D(xhat)| over the critic steps
 * since the previous line, which the penalty draws towards 1). Then
 *   wgan_gp: steps=S seconds=T
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

typedef struct options {
    int64_t steps, batch, critic, hidden, every;
    int threads;
    double lambda, lr;
    uint64_t seed;
} options;

static void usage(FILE *f) {
    fprintf(f, "usage: wgan_gp [--steps N] [--batch N] [--critic N] [--lambda X] [--lr X]\n"
               "               [--hidden N] [--threads N] [--seed N] [--every N]\n"
               "defaults: 300 steps, batch 64, 5 critic steps per generator step, lambda 10,\n"
               "          Adam lr 1e-3 betas (0.5, 0.9), 64 hidden units, 1 thread\n");
}

static int parse(int argc, char **argv, options *o) {
    static const struct option longs[] = {
        {"steps", 1, 0, 'n'},  {"batch", 1, 0, 'b'},   {"critic", 1, 0, 'c'},
        {"lambda", 1, 0, 'L'}, {"lr", 1, 0, 'l'},      {"hidden", 1, 0, 'H'},
        {"threads", 1, 0, 't'}, {"seed", 1, 0, 's'},   {"every", 1, 0, 'e'},
        {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
    *o = (options){.steps = 300, .batch = 64, .critic = 5, .hidden = 64, .threads = 1,
                   .lambda = 10, .lr = 1e-3};
    int c;
    int64_t v;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'n': if (ex_int_opt("wgan_gp", "steps", optarg, 1, 100000000, &o->steps)) return 2; break;
        case 'b': if (ex_int_opt("wgan_gp", "batch", optarg, 1, 1000000, &o->batch)) return 2; break;
        case 'c': if (ex_int_opt("wgan_gp", "critic", optarg, 1, 1000, &o->critic)) return 2; break;
        case 'H': if (ex_int_opt("wgan_gp", "hidden", optarg, 1, 100000, &o->hidden)) return 2; break;
        case 'e': if (ex_int_opt("wgan_gp", "every", optarg, 1, 100000000, &o->every)) return 2; break;
        case 't':
            if (ex_int_opt("wgan_gp", "threads", optarg, 1, 1024, &v)) return 2;
            o->threads = (int)v;
            break;
        case 's':
            if (ex_int_opt("wgan_gp", "seed", optarg, 0, LLONG_MAX, &v)) return 2;
            o->seed = (uint64_t)v;
            break;
        case 'L': if (ex_real_opt("wgan_gp", "lambda", optarg, 0, 1e6, &o->lambda)) return 2; break;
        case 'l':
            if (ex_real_opt("wgan_gp", "lr", optarg, 1e-12, 10, &o->lr)) return 2;
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "wgan_gp: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!o->every) o->every = o->steps >= 10 ? o->steps / 10 : 1;
    return 0;
}

/* An MLP of three linear layers; act between them (relu or tanh). */
typedef struct mlp {
    nn_model *m;
    nn_linear l[3];
    bool tanh;
} mlp;

static int mlp_init(mlp *n, uint64_t seed, int64_t in, int64_t hidden, int64_t out, bool tanh) {
    n->m = nn_model_new(DTYPE_F32, seed);
    n->tanh = tanh;
    if (!n->m) return -1;
    const int64_t sizes[4] = {in, hidden, hidden, out};
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "l%d", i);
        if (nn_linear_init(&n->l[i], n->m, name, sizes[i], sizes[i + 1], true)) return -1;
    }
    return 0;
}

static tensor *mlp_forward(const mlp *n, tensor *x) {
    for (int i = 0; i < 3; i++) {
        x = nn_linear_forward(&n->l[i], x);
        if (i < 2) x = n->tanh ? tensor_tanh(x) : tensor_relu(x);
    }
    return x;
}

/* B samples of the mixture: a centre on the circle of radius 2 (one of 8,
 * uniform), plus N(0, 0.05^2 I). */
static void draw_real(rng *g, tensor *x) {
    float *p = x->data;
    for (int64_t i = 0; i < x->shape[0]; i++) {
        double a = 2 * M_PI * (double)rng_below(g, 8) / 8;
        p[2 * i] = (float)(2 * cos(a) + 0.05 * rng_normal(g));
        p[2 * i + 1] = (float)(2 * sin(a) + 0.05 * rng_normal(g));
    }
}

static void draw_normal(rng *g, tensor *x) {
    float *p = x->data;
    for (int64_t i = 0; i < x->size; i++) p[i] = (float)rng_normal(g);
}

/* The mean over the batch of |grad_x D(xhat)|_2 and the penalty
 * mean (|grad| - 1)^2, both on the tape; xhat requires grad. */
static tensor *penalty(const mlp *critic, tensor *xhat, tensor **norm) {
    tensor *g;
    tensor *d = mlp_forward(critic, xhat);
    /* sum_i D(xhat_i): row i of its gradient is grad_x D(xhat_i), the rows
     * being independent samples */
    if (!d || tensor_grad(tensor_sum_all(d), NULL, &xhat, 1, true, &g)) return NULL;
    *norm = tensor_sqrt(tensor_sum(tensor_square(g), (int[]){1}, 1, false)); /* [B] */
    return tensor_mean_all(tensor_square(tensor_add_scalar(*norm, -1)));
}

int main(int argc, char **argv) {
    options o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    tapegrad_set_threads(o.threads);
    rng data;
    rng_seed(&data, o.seed, 7);
    mlp gen = {0}, critic = {0};
    optim *gopt = NULL, *copt = NULL;
    const int64_t B = o.batch;
    tensor *real = tensor_zeros(DTYPE_F32, SHAPE(B, 2));
    tensor *z = tensor_zeros(DTYPE_F32, SHAPE(B, 2));
    tensor *xhat = tensor_zeros(DTYPE_F32, SHAPE(B, 2));
    rc = 1;
    if (!real || !z || !xhat || tensor_set_requires_grad(xhat, true)) {
        ex_fail("wgan_gp", "tensors");
        goto out;
    }
    if (mlp_init(&gen, o.seed * 2 + 1, 2, o.hidden, 2, false) ||
        mlp_init(&critic, o.seed * 2 + 2, 2, o.hidden, 1, true)) {
        ex_fail("wgan_gp", "models");
        goto out;
    }
    optim_config oc = optim_defaults(OPTIM_ADAM);
    oc.lr = o.lr, oc.beta1 = 0.5, oc.beta2 = 0.9;
    int ng, nc;
    tensor *const *gp = nn_model_parameters(gen.m, &ng);
    gopt = optim_new(&oc, gp, ng);
    tensor *const *cp = nn_model_parameters(critic.m, &nc);
    copt = optim_new(&oc, cp, nc);
    if (!gopt || !copt) {
        ex_fail("wgan_gp", "optimisers");
        goto out;
    }
    printf("wgan_gp: critic %lld parameters, generator %lld, batch %lld, lambda %g\n",
           (long long)nn_model_numel(critic.m), (long long)nn_model_numel(gen.m), (long long)B,
           o.lambda);
    double t0 = ex_now(), norm_sum = 0;
    int64_t norm_n = 0;
    for (int64_t step = 1; step <= o.steps; step++) {
        double closs = 0, wdist = 0, pen = 0, gloss = 0;
        for (int64_t k = 0; k < o.critic; k++) {
            tape_reset();
            draw_real(&data, real);
            draw_normal(&data, z);
            /* the generator is a constant in the critic's step */
            tape_no_grad_begin();
            tensor *fake = mlp_forward(&gen, z);
            tape_no_grad_end();
            if (!fake) {
                ex_fail("wgan_gp", "generator");
                goto out;
            }
            const float *r = real->data, *f = fake->data;
            float *h = xhat->data;
            for (int64_t i = 0; i < B; i++) {
                double e = rng_uniform(&data);
                for (int j = 0; j < 2; j++)
                    h[2 * i + j] = (float)(e * r[2 * i + j] + (1 - e) * f[2 * i + j]);
            }
            tensor *norm = NULL;
            tensor *p = penalty(&critic, xhat, &norm);
            tensor *dr = tensor_mean_all(mlp_forward(&critic, real));
            tensor *df = tensor_mean_all(mlp_forward(&critic, fake));
            tensor *loss = tensor_add(tensor_sub(df, dr), tensor_mul_scalar(p, o.lambda));
            optim_zero_grad(copt);
            if (!loss || tensor_backward(loss) || optim_step(copt)) {
                ex_fail("wgan_gp", "critic step");
                goto out;
            }
            closs = tensor_item(loss), wdist = tensor_item(dr) - tensor_item(df);
            pen = tensor_item(p);
            for (int64_t i = 0; i < B; i++) norm_sum += tensor_get(norm, i);
            norm_n += B;
        }
        tape_reset();
        draw_normal(&data, z);
        tensor *gl = tensor_neg(tensor_mean_all(mlp_forward(&critic, mlp_forward(&gen, z))));
        optim_zero_grad(gopt);
        if (!gl || tensor_backward(gl) || optim_step(gopt)) {
            ex_fail("wgan_gp", "generator step");
            goto out;
        }
        gloss = tensor_item(gl);
        if (step % o.every == 0 || step == o.steps) {
            printf("step=%lld critic_loss=%.4f wasserstein=%.4f penalty=%.4f grad_norm=%.4f "
                   "gen_loss=%.4f\n",
                   (long long)step, closs, wdist, pen, norm_sum / (double)norm_n, gloss);
            fflush(stdout);
            norm_sum = 0, norm_n = 0;
        }
    }
    printf("wgan_gp: steps=%lld seconds=%.2f\n", (long long)o.steps, ex_now() - t0);
    rc = 0;
out:
    optim_free(gopt);
    optim_free(copt);
    nn_model_free(gen.m);
    nn_model_free(critic.m);
    tensor_free(real), tensor_free(z), tensor_free(xhat);
    tape_release();
    return rc;
}
