/* chargpt.c - a byte-level GPT language model on Debian's fortunes.
 *
 *   chargpt [--steps 2000] [--batch 16] [--lr 1e-3] [--threads 1] [--seed 0]
 *           [--data DIR] [--save FILE] [--load FILE] [--quiet]
 *           [--sample N] [--temperature 1] [--prompt TEXT]
 *
 * The recipe of ../shared/peers/chargpt_torch.py --model gpt: the files of
 * DIR (default /usr/share/games/fortunes, package fortunes) without an
 * extension, concatenated in sorted name order as bytes, the last 10 % held
 * out; windows of T = 64 bytes drawn at random (seeded); a GPT-2 style
 * model: token embedding 256 -> 128 plus a learned position embedding, 2
 * pre-LayerNorm blocks (causal self-attention with 4 heads, MLP
 * 128 -> 512 -> 128 with GELU's tanh form), a final LayerNorm and a head
 * that is the token embedding's weight (tied, no bias), no dropout; mean
 * cross-entropy over all B x T positions; AdamW lr 1e-3 (weight decay 0.01),
 * batch 16, 1 thread.
 *
 * Prints the training loss every 100 steps (on a terminal a progress bar;
 * --quiet prints neither), then exactly one line
 *   steps=S val_loss=L val_bpb=B seconds=S
 * with the validation loss in nats and bits per byte over 50 batches of
 * held-out windows drawn from a fixed seed (S seconds: training alone).
 * --save writes the model as a safetensors state_dict under the peer's names
 * (tok.weight, pos.weight, blocks.N.ln1.weight, ..., blocks.N.mask, ln.weight,
 * ln.bias, head.weight: the tied weight under both of its names, as PyTorch's
 * state_dict keeps it), which PyTorch's model loads with strict=True. The
 * peer's blocks hold their causal mask as a buffer `mask` [T, T] (true on and
 * below the diagonal); it is written as 0/1 int64 (load_state_dict copies it
 * into the boolean buffer) and on --load it must be there but is not used:
 * the blocks here are causal by construction. --load reads a model (--steps
 * 0 with --load evaluates and samples it without training). --sample N
 * prints N bytes drawn after --prompt (default a newline) from
 * softmax(logits / --temperature), the model seeing the last T bytes. Uses
 * the public header only. */
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

enum { CTX = 64, VOCAB = 256, EMB = 128, HEADS = 4, LAYERS = 2, VAL_BATCHES = 50, VAL_BATCH = 16 };

typedef struct options {
    int64_t steps, batch, sample;
    int threads;
    double lr, temperature;
    uint64_t seed;
    const char *data, *save, *load, *prompt;
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

static int fail(const char *what) {
    fprintf(stderr, "chargpt: %s: %s\n", what, tapegrad_error() ? tapegrad_error() : "failed");
    return 1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: chargpt [--steps N] [--batch N] [--lr X] [--threads N] [--seed N]\n"
               "               [--data DIR] [--save FILE] [--load FILE] [--quiet]\n"
               "               [--sample N] [--temperature X] [--prompt TEXT]\n"
               "defaults: 2000 steps, batch 16, AdamW lr 1e-3, 1 thread, seed 0,\n"
               "          data /usr/share/games/fortunes, no sample, temperature 1\n");
}

static int parse(int argc, char **argv, options *o) {
    static const struct option longs[] = {
        {"steps", 1, 0, 'N'},  {"batch", 1, 0, 'b'},       {"lr", 1, 0, 'l'},
        {"threads", 1, 0, 't'}, {"seed", 1, 0, 's'},       {"data", 1, 0, 'd'},
        {"save", 1, 0, 'S'},   {"load", 1, 0, 'L'},        {"sample", 1, 0, 'n'},
        {"temperature", 1, 0, 'T'}, {"prompt", 1, 0, 'p'}, {"help", 0, 0, 'h'},
        {"quiet", 0, 0, 'q'},
        {0, 0, 0, 0}};
    *o = (options){.steps = 2000, .batch = 16, .lr = 1e-3, .threads = 1, .temperature = 1,
                   .data = "/usr/share/games/fortunes", .prompt = "\n"};
    int c;
    long long v;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'N':
            if (charlm_int_opt("chargpt", "steps", optarg, 0, LLONG_MAX, &v)) return 2;
            o->steps = v;
            break;
        case 'b':
            if (charlm_int_opt("chargpt", "batch", optarg, 1, 1000000, &v)) return 2;
            o->batch = v;
            break;
        case 't':
            if (charlm_int_opt("chargpt", "threads", optarg, 1, 1024, &v)) return 2;
            o->threads = (int)v;
            break;
        case 's':
            if (charlm_int_opt("chargpt", "seed", optarg, 0, LLONG_MAX, &v)) return 2;
            o->seed = (uint64_t)v;
            break;
        case 'n':
            if (charlm_int_opt("chargpt", "sample", optarg, 0, 100000000, &v)) return 2;
            o->sample = v;
            break;
        case 'l':
            if (charlm_pos_opt("chargpt", "lr", optarg, &o->lr)) return 2;
            break;
        case 'T':
            if (charlm_pos_opt("chargpt", "temperature", optarg, &o->temperature)) return 2;
            break;
        case 'd': o->data = optarg; break;
        case 'S': o->save = optarg; break;
        case 'L': o->load = optarg; break;
        case 'p': o->prompt = optarg; break;
        case 'q': o->quiet = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "chargpt: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!o->prompt[0]) {
        fprintf(stderr, "chargpt: --prompt needs at least one byte\n");
        return 2;
    }
    return 0;
}

/* The peer's GPT, registered in its state_dict's names. The masks are
 * buffers the model owns (the peer's `mask`), read by nothing here. */
static int net_init(net *n, uint64_t seed) {
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
static tensor *logits_of(const net *n, tensor *idx) {
    tensor *x = nn_pos_embedding_forward(&n->pos, nn_embedding_forward(&n->tok, idx));
    for (int b = 0; b < LAYERS; b++) x = nn_transformer_block_forward(&n->blocks[b], x, NULL);
    return tensor_linear(nn_layernorm_forward(&n->ln, x), n->head, NULL);
}

/* Mean cross-entropy of the next byte over every position: [B, T] -> scalar. */
static tensor *loss_of(const net *n, tensor *x, tensor *y) {
    tensor *logits = logits_of(n, x); /* [B, T, 256] */
    return tensor_cross_entropy(tensor_reshape(logits, SHAPE(-1, VOCAB)), y, NULL, 0,
                                REDUCTION_MEAN);
}

/* The peer's validation: VAL_BATCHES batches of VAL_BATCH held-out windows
 * (whatever --batch is) from a generator seeded 12345, without recording;
 * the mean of their losses. */
static double validate(const net *n, const unsigned char *text, int64_t len) {
    tensor *x = tensor_zeros(DTYPE_I64, SHAPE(VAL_BATCH, CTX));
    tensor *y = tensor_zeros(DTYPE_I64, SHAPE(VAL_BATCH * CTX));
    if (!x || !y) {
        tensor_free(x);
        return NAN;
    }
    rng g;
    rng_seed(&g, 12345, 0);
    double sum = 0;
    tape_no_grad_begin();
    for (int i = 0; i < VAL_BATCHES; i++) {
        charlm_draw(text, len, CTX, &g, x, y);
        tensor *loss = loss_of(n, x, y);
        double v = loss ? tensor_item(loss) : NAN;
        tape_reset();
        if (!loss) {
            sum = NAN;
            break;
        }
        sum += v;
    }
    tape_no_grad_end();
    tensor_free(x);
    tensor_free(y);
    return sum / VAL_BATCHES;
}

/* Prints the prompt, then n bytes, each drawn from softmax(logits / t) at
 * the last position of the model run on the last T bytes so far. */
static int sample(const net *n, const options *o) {
    rng g;
    rng_seed(&g, o->seed, 1);
    size_t np = strlen(o->prompt);
    int64_t len = (int64_t)np + o->sample;
    unsigned char *text = malloc((size_t)len);
    if (!text) {
        fprintf(stderr, "chargpt: out of memory for %lld sampled bytes\n", (long long)o->sample);
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
        tensor *last = tensor_reshape(tensor_narrow(logits_of(n, x), 1, t - 1, 1), SHAPE(1, VOCAB));
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

int main(int argc, char **argv) {
    options o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    tapegrad_set_threads(o.threads);
    unsigned char *text = NULL;
    int64_t len = 0;
    if (charlm_read_corpus("chargpt", o.data, CTX, &text, &len)) return 1;
    int64_t n_train = (int64_t)((double)len * 0.9), n_val = len - n_train;
    net n;
    if (net_init(&n, o.seed)) return fail("building the model");
    if (o.load && nn_model_load(n.m, o.load)) return fail("loading the model");
    optim_config cfg = optim_defaults(OPTIM_ADAMW);
    cfg.lr = o.lr;
    int n_params;
    tensor *const *params = nn_model_parameters(n.m, &n_params);
    optim *opt = optim_new(&cfg, params, n_params);
    tensor *x = tensor_zeros(DTYPE_I64, SHAPE(o.batch, CTX));
    tensor *y = tensor_zeros(DTYPE_I64, SHAPE(o.batch * CTX));
    if (!opt || !x || !y) return fail("setting up training");
    if (!o.quiet)
        printf("chargpt: %lld parameters, %lld training bytes, %lld validation bytes, adamw lr %g, "
           "batch %lld, context %d, %d threads\n",
           (long long)nn_model_numel(n.m), (long long)n_train, (long long)n_val, o.lr,
           (long long)o.batch, CTX, tapegrad_threads());
    fflush(stdout);
    bool tty = isatty(STDOUT_FILENO);
    rng g;
    rng_seed(&g, o.seed, 0);
    double t0 = charlm_now(), shown = 0, last = 0;
    for (int64_t s = 1; s <= o.steps; s++) {
        charlm_draw(text, n_train, CTX, &g, x, y);
        optim_zero_grad(opt);
        tensor *loss = loss_of(&n, x, y);
        if (!loss || tensor_backward(loss)) return fail("training");
        last = tensor_item(loss);
        if (!isfinite(last)) {
            fprintf(stderr, "%schargpt: training diverged: the loss is %g at step %lld; try a "
                            "lower --lr\n",
                    tty ? "\n" : "", last, (long long)s);
            return 1;
        }
        if (optim_step(opt)) return fail("training");
        tape_reset(); /* every tape-owned tensor of the step goes; memory stays flat */
        double t = charlm_now(), dt = t - t0, eta = dt * (double)(o.steps - s) / (double)s;
        if (!o.quiet && tty && (t - shown >= 0.1 || s == o.steps)) {
            shown = t;
            char bar[31];
            int fill = (int)(30 * s / o.steps);
            for (int i = 0; i < 30; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
            bar[30] = '\0';
            printf("\r[%s] %lld/%lld loss %.4f %5.1f ms/step ETA %4.0fs ", bar, (long long)s,
                   (long long)o.steps, last, 1e3 * dt / (double)s, eta);
            fflush(stdout);
        }
        if (!o.quiet && (s % 100 == 0 || s == o.steps)) {
            printf("%sstep=%lld train_loss=%.4f ms_per_step=%.1f\n", tty ? "\r\033[K" : "",
                   (long long)s, last, 1e3 * dt / (double)s);
            fflush(stdout);
        }
    }
    double secs = charlm_now() - t0;
    double vl = validate(&n, text + n_train, n_val);
    if (!isfinite(vl)) return fail("validating");
    printf("steps=%lld val_loss=%.4f val_bpb=%.4f seconds=%.1f\n", (long long)o.steps, vl,
           vl / log(2.0), secs);
    if (o.save) {
        if (nn_model_save(n.m, o.save)) return fail("saving the model");
        printf("saved %s\n", o.save);
    }
    if (o.sample > 0 && sample(&n, &o)) return fail("sampling");
    optim_free(opt);
    tensor_free(x);
    tensor_free(y);
    nn_model_free(n.m);
    free(text);
    return 0;
}
