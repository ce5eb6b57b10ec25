/* chargpt.h - the byte-level GPT of examples/chargpt and its training, shared
 * by the one-process program (examples/chargpt.c) and the data-parallel one
 * (examples/dist/chargpt.c): the options, the model, its loss, validation,
 * sampling and the training loop. The loop knows nothing of MPI: the
 * data-parallel program hands it a chargpt_par of function pointers (the
 * gradient averaging, the divergence check, the sum of a metric over the
 * ranks), so this header and examples/chargpt.c link the core library alone.
 * Header-only (static), as charlm.h. */
#ifndef TAPEGRAD_EXAMPLES_CHARGPT_H
#define TAPEGRAD_EXAMPLES_CHARGPT_H

#include <getopt.h>
#include <limits.h>
#include <unistd.h>

#include "../include/tapegrad.h"
#include "charlm.h"

enum { CTX = 64, VOCAB = 256, EMB = 128, HEADS = 4, LAYERS = 2 };

typedef struct options {
    int64_t steps, batch, sample;
    int threads, check_every;
    double lr, temperature;
    uint64_t seed;
    const char *data, *save, *load, *prompt, *checkpoint, *resume;
    bool quiet;
} options;

typedef struct net {
    nn_model *m;
    nn_embedding tok;
    nn_pos_embedding pos;
    nn_transformer_block blocks[LAYERS];
    nn_layernorm ln;
    tensor *head;           /* tok.weight itself, registered again as head.weight */
} net;

/* What data-parallel training adds to the loop; chargpt_one_process for
 * one process. Every function is collective over the ranks. */
typedef struct chargpt_par {
    int rank, size;
    int (*reduce_grads)(nn_model *m);      /* after backward: the ranks' mean gradient */
    int (*check_params)(const nn_model *m); /* every check_every steps: the ranks agree */
    int (*sum)(double *v, int n);          /* a metric summed over the ranks */
} chargpt_par;

static const chargpt_par chargpt_one_process = {0, 1, NULL, NULL, NULL};

/* The generator stream of rank r's training windows: 0 on rank 0, as one
 * process draws; the sampler has stream 1. */
static uint64_t chargpt_stream(int rank) {
    return 2 * (uint64_t)rank;
}

static void chargpt_usage(FILE *f, const char *prog, bool dist) {
    fprintf(f, "usage: %s [--steps N] [--batch N] [--lr X] [--threads N] [--seed N]\n"
               "               [--data DIR] [--save FILE] [--load FILE] [--quiet]\n"
               "               [--checkpoint FILE] [--resume FILE]%s\n"
               "               [--sample N] [--temperature X] [--prompt TEXT]\n"
               "defaults: 2000 steps, batch 16%s, AdamW lr 1e-3, 1 thread, seed 0,\n"
               "          data /usr/share/games/fortunes, no sample, temperature 1\n",
            prog, dist ? " [--check-every N]" : "", dist ? " per rank" : "");
}

/* The command line into o: 0, or 2 (the exit status) after a message. dist:
 * the data-parallel program, which also takes --check-every. */
static int chargpt_parse(int argc, char **argv, const char *prog, bool dist, options *o) {
    static const struct option longs[] = {
        {"steps", 1, 0, 'N'},  {"batch", 1, 0, 'b'},       {"lr", 1, 0, 'l'},
        {"threads", 1, 0, 't'}, {"seed", 1, 0, 's'},       {"data", 1, 0, 'd'},
        {"save", 1, 0, 'S'},   {"load", 1, 0, 'L'},        {"sample", 1, 0, 'n'},
        {"temperature", 1, 0, 'T'}, {"prompt", 1, 0, 'p'}, {"help", 0, 0, 'h'},
        {"quiet", 0, 0, 'q'},  {"checkpoint", 1, 0, 'C'},  {"resume", 1, 0, 'R'},
        {"check-every", 1, 0, 'E'},
        {0, 0, 0, 0}};
    *o = (options){.steps = 2000, .batch = 16, .lr = 1e-3, .threads = 1, .temperature = 1,
                   .check_every = 100, .data = "/usr/share/games/fortunes", .prompt = "\n"};
    int c;
    int64_t v;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'N':
            if (ex_int_opt(prog, "steps", optarg, 0, LLONG_MAX, &v)) return 2;
            o->steps = v;
            break;
        case 'b':
            if (ex_int_opt(prog, "batch", optarg, 1, 1000000, &v)) return 2;
            o->batch = v;
            break;
        case 't':
            if (ex_int_opt(prog, "threads", optarg, 1, 1024, &v)) return 2;
            o->threads = (int)v;
            break;
        case 's':
            if (ex_int_opt(prog, "seed", optarg, 0, LLONG_MAX, &v)) return 2;
            o->seed = (uint64_t)v;
            break;
        case 'n':
            if (ex_int_opt(prog, "sample", optarg, 0, 100000000, &v)) return 2;
            o->sample = v;
            break;
        case 'E':
            if (!dist) goto bad;
            if (ex_int_opt(prog, "check-every", optarg, 0, INT_MAX, &v)) return 2;
            o->check_every = (int)v;
            break;
        case 'l':
            if (ex_pos_opt(prog, "lr", optarg, &o->lr)) return 2;
            break;
        case 'T':
            if (ex_pos_opt(prog, "temperature", optarg, &o->temperature)) return 2;
            break;
        case 'd': o->data = optarg; break;
        case 'S': o->save = optarg; break;
        case 'L': o->load = optarg; break;
        case 'p': o->prompt = optarg; break;
        case 'C': o->checkpoint = optarg; break;
        case 'R': o->resume = optarg; break;
        case 'q': o->quiet = true; break;
        case 'h': chargpt_usage(stdout, prog, dist); exit(0);
        default:
        bad:
            chargpt_usage(stderr, prog, dist);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog, argv[optind]);
        chargpt_usage(stderr, prog, dist);
        return 2;
    }
    if (!o->prompt[0]) {
        fprintf(stderr, "%s: --prompt needs at least one byte\n", prog);
        return 2;
    }
    if (o->load && o->resume) {
        fprintf(stderr, "%s: --load and --resume both give the model: choose one\n", prog);
        return 2;
    }
    return 0;
}

/* The peer's GPT, registered in its state_dict's names. The masks are
 * buffers the model owns (the peer's `mask`), read by nothing here. */
static int chargpt_net_init(net *n, uint64_t seed) {
    n->m = nn_model_new(DTYPE_F32, seed);
    if (!n->m) return -1;
    if (nn_embedding_init(&n->tok, n->m, "tok", VOCAB, EMB) ||
        nn_pos_embedding_init(&n->pos, n->m, "pos", CTX, EMB, false))
        return -1;
    for (int b = 0; b < LAYERS; b++) {
        char name[NN_NAME_MAX];
        snprintf(name, sizeof name, "blocks.%d", b);
        if (nn_transformer_block_init(&n->blocks[b], n->m, name, EMB, HEADS, true, 0)) return -1;
        tensor *mask = tensor_zeros(DTYPE_I64, SHAPE(CTX, CTX));
        if (!mask) return -1;
        for (int i = 0; i < CTX; i++)
            for (int j = 0; j <= i; j++) ((int64_t *)mask->data)[i * CTX + j] = 1;
        snprintf(name, sizeof name, "blocks.%d.mask", b);
        if (!nn_model_add_buffer(n->m, name, mask)) return -1;
    }
    if (nn_layernorm_init(&n->ln, n->m, "ln", 1, (int64_t[]){EMB})) return -1;
    n->head = nn_model_add_param(n->m, "head.weight", n->tok.weight);
    return n->head ? 0 : -1;
}

/* Logits of every position: idx int64 [B, T'] (T' <= T) -> [B, T', 256].
 *   x = tok[idx] + pos[0:T'];  x = block(x) for each block;
 *   logits = ln(x) head^T  (head = tok.weight [256, 128]) */
static tensor *chargpt_logits(const net *n, tensor *idx) {
    tensor *x = nn_pos_embedding_forward(&n->pos, nn_embedding_forward(&n->tok, idx));
    for (int b = 0; b < LAYERS; b++) x = nn_transformer_block_forward(&n->blocks[b], x, NULL);
    return tensor_linear(nn_layernorm_forward(&n->ln, x), n->head, NULL);
}

/* Mean cross-entropy of the next byte over every position: [B, T] -> scalar. */
static tensor *chargpt_loss(const net *n, tensor *x, tensor *y) {
    tensor *logits = chargpt_logits(n, x); /* [B, T, 256] */
    return tensor_cross_entropy(tensor_reshape(logits, SHAPE(-1, VOCAB)), y, NULL, 0,
                                REDUCTION_MEAN);
}

/* The peer's validation (charlm_validate) of this model. */
static tensor *chargpt_loss_any(const void *n, tensor *x, tensor *y) {
    return chargpt_loss(n, x, y);
}

static double chargpt_validate(const net *n, const unsigned char *text, int64_t len) {
    return charlm_validate(text, len, CTX, chargpt_loss_any, n);
}

/* Prints the prompt, then n bytes, each drawn from softmax(logits / t) at
 * the last position of the model run on the last T bytes so far. */
static int chargpt_sample(const net *n, const options *o, const char *prog) {
    rng g;
    rng_seed(&g, o->seed, 1);
    size_t np = strlen(o->prompt);
    int64_t len = (int64_t)np + o->sample;
    unsigned char *text = malloc((size_t)len);
    if (!text) {
        fprintf(stderr, "%s: out of memory for %lld sampled bytes\n", prog, (long long)o->sample);
        return -1;
    }
    memcpy(text, o->prompt, np);
    fwrite(o->prompt, 1, np, stdout);
    int rc = -1;
    tape_no_grad_begin();
    for (int64_t at = (int64_t)np; at < len; at++) {
        int64_t t = at < CTX ? at : CTX;
        tensor *x = tensor_zeros(DTYPE_I64, SHAPE(1, t));
        if (!x) goto done;
        for (int64_t i = 0; i < t; i++) ((int64_t *)x->data)[i] = text[at - t + i];
        tensor *last = tensor_reshape(tensor_narrow(chargpt_logits(n, x), 1, t - 1, 1), SHAPE(1, VOCAB));
        tensor *p = tensor_softmax(tensor_mul_scalar(last, 1 / o->temperature), 1);
        tensor *k = tensor_multinomial(p, 1, false, &g); /* int64 [1, 1] */
        if (k) text[at] = (unsigned char)((int64_t *)k->data)[0];
        tape_reset(); /* before x goes: the tape may still point at it */
        tensor_free(x);
        if (!k) goto done;
        putchar(text[at]);
    }
    putchar('\n');
    rc = 0;
done:
    tape_no_grad_end();
    tape_reset();
    free(text);
    return rc;
}

/* o->steps steps of training on text[0, n_train), after the optim_steps(opt)
 * steps a resumed run has already taken. Each rank draws its own o->batch
 * windows a step from the generator (o->seed, chargpt_stream(rank)), first
 * skipping the windows of the steps already taken, so a resumed run draws
 * what the uninterrupted run would have. Rank 0 prints the progress (its
 * own batch's loss on the bar; the ranks' mean loss every 100 steps).
 * 0, or -1 with *what naming the part that failed (and tapegrad_error()). */
static int chargpt_train(const net *n, optim *opt, const options *o, const chargpt_par *par,
                         const unsigned char *text, int64_t n_train, const char *prog,
                         const char **what) {
    int rc = -1;
    *what = "setting up training";
    tensor *x = tensor_zeros(DTYPE_I64, SHAPE(o->batch, CTX));
    tensor *y = tensor_zeros(DTYPE_I64, SHAPE(o->batch * CTX));
    if (!x || !y) goto done;
    bool talk = par->rank == 0 && !o->quiet, tty = talk && isatty(STDOUT_FILENO);
    rng g;
    rng_seed(&g, o->seed, chargpt_stream(par->rank));
    int64_t first = optim_steps(opt), last_step = first + o->steps;
    for (int64_t s = 0; s < first; s++) charlm_draw(text, n_train, CTX, &g, x, y);
    double t0 = ex_now(), shown = 0, last = 0;
    *what = "training";
    for (int64_t s = first + 1; s <= last_step; s++) {
        charlm_draw(text, n_train, CTX, &g, x, y);
        optim_zero_grad(opt);
        tensor *loss = chargpt_loss(n, x, y);
        if (!loss || tensor_backward(loss)) goto done;
        last = tensor_item(loss);
        if (!isfinite(last)) {
            fprintf(stderr, "%s%s: training diverged: the loss is %g at step %lld; try a lower --lr\n",
                    tty ? "\n" : "", prog, last, (long long)s);
            goto done;
        }
        tape_reset(); /* every tape-owned tensor of the step goes; memory stays flat */
        *what = "gradient allreduce";
        if (par->reduce_grads && par->reduce_grads(n->m)) goto done;
        *what = "training";
        if (optim_step(opt)) goto done;
        *what = "divergence check";
        if (par->check_params && o->check_every > 0 && s % o->check_every == 0 &&
            par->check_params(n->m))
            goto done;
        *what = "training";
        double t = ex_now(), dt = t - t0, done_here = (double)(s - first);
        double eta = dt * (double)(last_step - s) / done_here;
        if (tty && (t - shown >= 0.1 || s == last_step)) {
            shown = t;
            char bar[31];
            int fill = (int)(30 * (s - first) / o->steps);
            for (int i = 0; i < 30; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
            bar[30] = '\0';
            printf("\r[%s] %lld/%lld loss %.4f %5.1f ms/step ETA %4.0fs ", bar, (long long)s,
                   (long long)last_step, last, 1e3 * dt / done_here, eta);
            fflush(stdout);
        }
        /* the condition is the same on every rank: the sum is collective */
        if (!o->quiet && (s % 100 == 0 || s == last_step)) {
            double mean = last;
            *what = "the mean loss";
            if (par->sum && par->sum(&mean, 1)) goto done;
            mean /= par->size;
            if (talk) {
                printf("%sstep=%lld train_loss=%.4f ms_per_step=%.1f\n", tty ? "\r\033[K" : "",
                       (long long)s, mean, 1e3 * dt / done_here);
                fflush(stdout);
            }
            *what = "training";
        }
    }
    rc = 0;
done:
    tensor_free(x);
    tensor_free(y);
    return rc;
}

#endif
