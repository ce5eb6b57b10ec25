/* charlstm.c - a byte-level LSTM language model on Debian's fortunes.
 *
 *   charlstm [--steps 2000] [--batch 16] [--lr 1e-3] [--threads 1] [--seed 0]
 *            [--data DIR] [--save FILE] [--load FILE]
 *            [--sample N] [--temperature 1] [--prompt TEXT]
 *
 * The recipe of ../shared/peers/chargpt_torch.py --model lstm: the files of
 * DIR (default /usr/share/games/fortunes, package fortunes) without an
 * extension, concatenated in sorted name order as bytes, the last 10 % held
 * out; windows of T = 64 bytes drawn at random (seeded); embedding 256 -> 128,
 * one LSTM layer (hidden 256, h0 = c0 = 0), linear 256 -> 256; mean
 * cross-entropy over all B x T positions; AdamW lr 1e-3 (weight decay 0.01),
 * batch 16, 1 thread.
 *
 * Prints the training loss every 100 steps (on a terminal a progress bar),
 * then exactly one line
 *   steps=S val_loss=L val_bpb=B seconds=S
 * with the validation loss in nats and bits per byte over 50 batches of
 * held-out windows drawn from a fixed seed (S seconds: training alone).
 * --save writes the model as a safetensors state_dict under the peer's names
 * (emb.weight, rnn.weight_ih_l0, ..., head.weight, head.bias), which
 * PyTorch's model loads with strict=True; --load reads one (--steps 0 with
 * --load evaluates and samples it without training). --sample N prints N
 * bytes drawn after --prompt (default a newline) at --temperature. Uses the
 * public header only. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../include/tapegrad.h"
#include "charlm.h"

enum { CTX = 64, VOCAB = 256, EMB = 128, HIDDEN = 256 };

typedef struct options {
    int64_t steps, batch, sample;
    int threads;
    double lr, temperature;
    uint64_t seed;
    const char *data, *save, *load, *prompt;
} options;

typedef struct net {
    nn_model *m;
    nn_embedding emb;
    nn_rnn rnn;
    nn_linear head;
} net;

static void usage(FILE *f) {
    fprintf(f, "usage: charlstm [--steps N] [--batch N] [--lr X] [--threads N] [--seed N]\n"
               "                [--data DIR] [--save FILE] [--load FILE]\n"
               "                [--sample N] [--temperature X] [--prompt TEXT]\n"
               "defaults: 2000 steps, batch 16, AdamW lr 1e-3, 1 thread, seed 0,\n"
               "          data /usr/share/games/fortunes, no sample, temperature 1\n");
}

static int parse(int argc, char **argv, options *o) {
    static const struct option longs[] = {
        {"steps", 1, 0, 'N'},  {"batch", 1, 0, 'b'},       {"lr", 1, 0, 'l'},
        {"threads", 1, 0, 't'}, {"seed", 1, 0, 's'},       {"data", 1, 0, 'd'},
        {"save", 1, 0, 'S'},   {"load", 1, 0, 'L'},        {"sample", 1, 0, 'n'},
        {"temperature", 1, 0, 'T'}, {"prompt", 1, 0, 'p'}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    *o = (options){.steps = 2000, .batch = 16, .lr = 1e-3, .threads = 1, .temperature = 1,
                   .data = "/usr/share/games/fortunes", .prompt = "\n"};
    int c;
    int64_t v;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'N':
            if (ex_int_opt("charlstm", "steps", optarg, 0, LLONG_MAX, &v)) return 2;
            o->steps = v;
            break;
        case 'b':
            if (ex_int_opt("charlstm", "batch", optarg, 1, 1000000, &v)) return 2;
            o->batch = v;
            break;
        case 't':
            if (ex_int_opt("charlstm", "threads", optarg, 1, 1024, &v)) return 2;
            o->threads = (int)v;
            break;
        case 's':
            if (ex_int_opt("charlstm", "seed", optarg, 0, LLONG_MAX, &v)) return 2;
            o->seed = (uint64_t)v;
            break;
        case 'n':
            if (ex_int_opt("charlstm", "sample", optarg, 0, 100000000, &v)) return 2;
            o->sample = v;
            break;
        case 'l':
            if (ex_pos_opt("charlstm", "lr", optarg, &o->lr)) return 2;
            break;
        case 'T':
            if (ex_pos_opt("charlstm", "temperature", optarg, &o->temperature)) return 2;
            break;
        case 'd': o->data = optarg; break;
        case 'S': o->save = optarg; break;
        case 'L': o->load = optarg; break;
        case 'p': o->prompt = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "charlstm: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!o->prompt[0]) {
        fprintf(stderr, "charlstm: --prompt needs at least one byte\n");
        return 2;
    }
    return 0;
}

static int net_init(net *n, uint64_t seed) {
    n->m = nn_model_new(DTYPE_F32, seed);
    if (!n->m) return -1;
    if (nn_embedding_init(&n->emb, n->m, "emb", VOCAB, EMB) ||
        nn_rnn_init(&n->rnn, n->m, "rnn", NN_RNN_LSTM, EMB, HIDDEN, true, true) ||
        nn_linear_init(&n->head, n->m, "head", HIDDEN, VOCAB, true))
        return -1;
    return 0;
}

/* Mean cross-entropy of the next byte over every position: [B, T] -> scalar. */
static tensor *loss_of(const net *n, tensor *x, tensor *y) {
    tensor *out;
    if (nn_rnn_forward(&n->rnn, nn_embedding_forward(&n->emb, x), NULL, NULL, &out, NULL, NULL))
        return NULL;
    tensor *logits = nn_linear_forward(&n->head, out); /* [B, T, 256] */
    return tensor_cross_entropy(tensor_reshape(logits, SHAPE(-1, VOCAB)), y, NULL, 0,
                                REDUCTION_MEAN);
}

/* The peer's validation (charlm_validate) of this model. */
static tensor *loss_of_any(const void *n, tensor *x, tensor *y) {
    return loss_of(n, x, y);
}

static double validate(const net *n, const unsigned char *text, int64_t len) {
    return charlm_validate(text, len, CTX, loss_of_any, n);
}

/* Feeds the prompt, then prints n bytes each drawn from
 * softmax(logits / temperature), one LSTM step at a time. The state crosses
 * each step's tape reset as a detached copy. */
static int sample(const net *n, const options *o) {
    rng g;
    rng_seed(&g, o->seed, 1);
    tensor *h = NULL, *c = NULL, *next = NULL, *x = tensor_zeros(DTYPE_I64, SHAPE(1));
    if (!x) return -1;
    int rc = -1;
    size_t np = strlen(o->prompt);
    fwrite(o->prompt, 1, np, stdout);
    tape_no_grad_begin();
    for (int64_t i = 0; i < (int64_t)np + o->sample - 1; i++) {
        ((int64_t *)x->data)[0] =
            i < (int64_t)np ? (unsigned char)o->prompt[i] : ((int64_t *)next->data)[0];
        tensor *h1, *c1;
        if (nn_rnn_cell_forward(&n->rnn, nn_embedding_forward(&n->emb, x), h, c, &h1, &c1))
            goto done;
        tensor_free(h);
        tensor_free(c);
        h = tensor_detach(h1);
        c = tensor_detach(c1);
        if (!h || !c) goto done;
        if (i + 1 >= (int64_t)np) {
            tensor *logits = nn_linear_forward(&n->head, h1); /* [1, 256] */
            tensor *p = tensor_softmax(tensor_mul_scalar(logits, 1 / o->temperature), 1);
            tensor *k = tensor_multinomial(p, 1, false, &g); /* int64 [1, 1] */
            if (!k) goto done;
            tensor_free(next);
            next = tensor_detach(k);
            if (!next) goto done;
            putchar((int)((int64_t *)next->data)[0]);
        }
        tape_reset();
    }
    putchar('\n');
    rc = 0;
done:
    tape_no_grad_end();
    tape_reset();
    tensor_free(h);
    tensor_free(c);
    tensor_free(next);
    tensor_free(x);
    return rc;
}

int main(int argc, char **argv) {
    options o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    tapegrad_set_threads(o.threads);
    unsigned char *text;
    int64_t len;
    if (charlm_read_corpus("charlstm", o.data, CTX, &text, &len)) return 1;
    int64_t n_train = (int64_t)((double)len * 0.9), n_val = len - n_train;
    net n;
    if (net_init(&n, o.seed)) return ex_fail("charlstm", "building the model");
    if (o.load && nn_model_load(n.m, o.load)) return ex_fail("charlstm", "loading the model");
    optim_config cfg = optim_defaults(OPTIM_ADAMW);
    cfg.lr = o.lr;
    int n_params;
    tensor *const *params = nn_model_parameters(n.m, &n_params);
    optim *opt = optim_new(&cfg, params, n_params);
    tensor *x = tensor_zeros(DTYPE_I64, SHAPE(o.batch, CTX));
    tensor *y = tensor_zeros(DTYPE_I64, SHAPE(o.batch * CTX));
    if (!opt || !x || !y) return ex_fail("charlstm", "setting up training");
    printf("charlstm: %lld parameters, %lld training bytes, %lld validation bytes, adamw lr %g, "
           "batch %lld, context %d, %d threads\n",
           (long long)nn_model_numel(n.m), (long long)n_train, (long long)n_val, o.lr,
           (long long)o.batch, CTX, tapegrad_threads());
    fflush(stdout);
    bool tty = isatty(STDOUT_FILENO);
    rng g;
    rng_seed(&g, o.seed, 0);
    double t0 = ex_now(), shown = 0, last = 0;
    for (int64_t s = 1; s <= o.steps; s++) {
        charlm_draw(text, n_train, CTX, &g, x, y);
        optim_zero_grad(opt);
        tensor *loss = loss_of(&n, x, y);
        if (!loss || tensor_backward(loss)) return ex_fail("charlstm", "training");
        last = tensor_item(loss);
        if (!isfinite(last)) {
            fprintf(stderr, "%scharlstm: training diverged: the loss is %g at step %lld; try a "
                            "lower --lr\n",
                    tty ? "\n" : "", last, (long long)s);
            return 1;
        }
        if (optim_step(opt)) return ex_fail("charlstm", "training");
        tape_reset(); /* every tape-owned tensor of the step goes; memory stays flat */
        double t = ex_now(), dt = t - t0, eta = dt * (double)(o.steps - s) / (double)s;
        if (tty && (t - shown >= 0.1 || s == o.steps)) {
            shown = t;
            char bar[31];
            int fill = (int)(30 * s / o.steps);
            for (int i = 0; i < 30; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
            bar[30] = '\0';
            printf("\r[%s] %lld/%lld loss %.4f %5.1f ms/step ETA %4.0fs ", bar, (long long)s,
                   (long long)o.steps, last, 1e3 * dt / (double)s, eta);
            fflush(stdout);
        }
        if (s % 100 == 0 || s == o.steps) {
            printf("%sstep=%lld train_loss=%.4f ms_per_step=%.1f\n", tty ? "\r\033[K" : "",
                   (long long)s, last, 1e3 * dt / (double)s);
            fflush(stdout);
        }
    }
    double secs = ex_now() - t0;
    double vl = validate(&n, text + n_train, n_val);
    if (!isfinite(vl)) return ex_fail("charlstm", "validating");
    printf("steps=%lld val_loss=%.4f val_bpb=%.4f seconds=%.1f\n", (long long)o.steps, vl,
           vl / log(2.0), secs);
    if (o.save) {
        if (nn_model_save(n.m, o.save)) return ex_fail("charlstm", "saving the model");
        printf("saved %s\n", o.save);
    }
    if (o.sample > 0 && sample(&n, &o)) return ex_fail("charlstm", "sampling");
    optim_free(opt);
    tensor_free(x);
    tensor_free(y);
    nn_model_free(n.m);
    free(text);
    return 0;
}
