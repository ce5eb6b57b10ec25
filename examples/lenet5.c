/* lenet5.c - train LeNet-5 on Fashion-MNIST (or any IDX set) with tapegrad.
 *
 *   lenet5 [--epochs 10] [--batch 64] [--lr 1e-3] [--optim adam|adamw|sgd]
 *          [--threads 1] [--seed 0] [--data DIR] [--subset N]
 *          [--save FILE] [--load FILE] [--csv FILE] [--grad-report]
 *          [--checkpoint FILE] [--resume FILE] [--steps N]
 *
 * --save and --load take the model alone (a state_dict torch reads);
 * --checkpoint writes the whole training state (model, optimiser, data order,
 * generators) after every epoch and at the end, --resume continues from one
 * exactly where it stopped: the same options and a resumed run give the
 * numbers of an uninterrupted one, bit for bit. --steps N stops after N
 * optimiser steps in all (counting those before a resume).
 *
 * The recipe of ../shared/peers/lenet5_fashion_torch.py: pixels / 255,
 * normalised with mean 0.2860 and std 0.3530, Adam lr 1e-3, batch 64, a new
 * shuffle every epoch, 1 thread (the peer's default too). After each epoch
 * one line, exactly
 *   epoch=E train_loss=L test_acc=A seconds=S
 * (S: training time of the epoch, evaluation excluded). On a terminal a
 * progress bar shows batches, loss, samples/s and ETA; otherwise plain
 * progress lines. Uses the public header only. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../include/tapegrad.h"
#include "example.h"

typedef struct options {
    int epochs, threads;
    int64_t batch, subset, steps;
    double lr;
    optim_kind optim;
    uint64_t seed;
    const char *data, *save, *load, *csv, *checkpoint, *resume;
    bool grad_report;
} options;

static void usage(FILE *f) {
    fprintf(f, "usage: lenet5 [--epochs N] [--batch N] [--lr X] [--optim adam|adamw|sgd]\n"
               "              [--threads N] [--seed N] [--data DIR] [--subset N]\n"
               "              [--save FILE] [--load FILE] [--csv FILE] [--grad-report]\n"
               "              [--checkpoint FILE] [--resume FILE] [--steps N]\n"
               "defaults: 10 epochs, batch 64, Adam lr 1e-3, 1 thread, data %s\n",
            NN_DATA_DIR_DEFAULT);
}

static int parse(int argc, char **argv, options *o) {
    static const struct option longs[] = {
        {"epochs", 1, 0, 'e'}, {"batch", 1, 0, 'b'}, {"lr", 1, 0, 'l'},   {"optim", 1, 0, 'o'},
        {"threads", 1, 0, 't'}, {"seed", 1, 0, 's'}, {"data", 1, 0, 'd'},  {"save", 1, 0, 'S'},
        {"load", 1, 0, 'L'},   {"csv", 1, 0, 'c'},   {"subset", 1, 0, 'n'}, {"grad-report", 0, 0, 'g'},
        {"checkpoint", 1, 0, 'C'}, {"resume", 1, 0, 'R'}, {"steps", 1, 0, 'N'},
        {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
    *o = (options){.epochs = 10, .batch = 64, .lr = -1, .optim = OPTIM_ADAM, .threads = 1,
                   .data = NN_DATA_DIR_DEFAULT};
    int c;
    int64_t v;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'e':
            if (ex_int_opt("lenet5", "epochs", optarg, 1, 1000000, &v)) return 2;
            o->epochs = (int)v;
            break;
        case 'b':
            if (ex_int_opt("lenet5", "batch", optarg, 1, 1000000, &v)) return 2;
            o->batch = v;
            break;
        case 't':
            if (ex_int_opt("lenet5", "threads", optarg, 1, 1024, &v)) return 2;
            o->threads = (int)v;
            break;
        case 's':
            if (ex_int_opt("lenet5", "seed", optarg, 0, LLONG_MAX, &v)) return 2;
            o->seed = (uint64_t)v;
            break;
        case 'n':
            if (ex_int_opt("lenet5", "subset", optarg, 1, LLONG_MAX, &v)) return 2;
            o->subset = v;
            break;
        case 'N':
            if (ex_int_opt("lenet5", "steps", optarg, 1, LLONG_MAX, &v)) return 2;
            o->steps = v;
            break;
        case 'l':
            if (ex_pos_opt("lenet5", "lr", optarg, &o->lr)) return 2;
            break;
        case 'd': o->data = optarg; break;
        case 'S': o->save = optarg; break;
        case 'L': o->load = optarg; break;
        case 'c': o->csv = optarg; break;
        case 'C': o->checkpoint = optarg; break;
        case 'R': o->resume = optarg; break;
        case 'g': o->grad_report = true; break;
        case 'o':
            if (!strcmp(optarg, "sgd")) o->optim = OPTIM_SGD;
            else if (!strcmp(optarg, "adam")) o->optim = OPTIM_ADAM;
            else if (!strcmp(optarg, "adamw")) o->optim = OPTIM_ADAMW;
            else {
                fprintf(stderr, "lenet5: --optim must be sgd, adam or adamw, not %s\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lenet5: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (o->load && o->resume) {
        fprintf(stderr, "lenet5: --load and --resume both set the model; give one\n");
        return 2;
    }
    return 0;
}

/* One line rewritten in place on a terminal, at most 10 times a second; a
 * plain line every 100 batches otherwise (logs and pipes get no carriage
 * returns). */
static void progress(bool tty, int epoch, int64_t b, int64_t nb, double loss, int64_t samples,
                     double t0) {
    static double shown;
    double t = ex_now(), dt = t - t0, rate = dt > 0 ? (double)samples / dt : 0;
    double eta = b > 0 ? dt * (double)(nb - b) / (double)b : 0;
    if (tty && (t - shown >= 0.1 || b == nb)) {
        shown = t;
        char bar[31];
        int fill = (int)(30 * b / (nb ? nb : 1));
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[30] = '\0';
        printf("\repoch %d [%s] %lld/%lld loss %.4f %6.0f samples/s ETA %3.0fs ", epoch, bar,
               (long long)b, (long long)nb, loss, rate, eta);
        fflush(stdout);
    } else if (b % 100 == 0 || b == nb) {
        printf("epoch %d batch %lld/%lld loss %.4f samples/s %.0f eta %.0fs\n", epoch,
               (long long)b, (long long)nb, loss, rate, eta);
        fflush(stdout);
    }
}

/* Accuracy over the test set in eval mode, without recording. */
static double evaluate(nn_lenet5 *net, const nn_dataset *test) {
    nn_loader *l = nn_loader_new(test, 1000, false, 0);
    if (!l) return -1;
    int64_t right = 0, seen = 0;
    tensor *x, *y;
    nn_model_train(net->model, false);
    tape_no_grad_begin();
    int rc;
    while ((rc = nn_loader_next(l, &x, &y)) == 1) {
        tensor *logits = nn_lenet5_forward(net, x);
        if (!logits) {
            rc = -1;
            break;
        }
        for (int64_t i = 0; i < logits->shape[0]; i++) {
            int64_t best = 0, k = logits->shape[1];
            for (int64_t j = 1; j < k; j++)
                if (tensor_get(logits, i * k + j) > tensor_get(logits, i * k + best)) best = j;
            right += best == (int64_t)tensor_get(y, i);
        }
        seen += logits->shape[0];
        tape_reset();
    }
    tape_no_grad_end();
    nn_model_train(net->model, true);
    nn_loader_free(l);
    return rc < 0 ? -1 : (double)right / (double)(seen ? seen : 1);
}

typedef struct run {
    const options *o;
    nn_lenet5 *net;
    optim *opt;
    nn_loader *train;
    bool tty;
} run;

/* One epoch of training (the rest of one, after a resume inside it): 0 with
 * the mean training loss of the batches run in *mean, 1 when --steps is
 * reached inside it, -1 on an error or a loss that is not finite (said). */
static int train_epoch(run *r, int epoch, bool rewind, double *mean) {
    double t0 = ex_now(), sum = 0, last = 0;
    int64_t samples = 0, b = 0, nb = nn_loader_batches(r->train);
    tensor *x, *y;
    int rc;
    if (rewind) nn_loader_rewind(r->train);
    while ((rc = nn_loader_next(r->train, &x, &y)) == 1) {
        optim_zero_grad(r->opt);
        tensor *loss = nn_lenet5_loss(r->net, x, y);
        if (!loss || tensor_backward(loss)) return -1;
        last = tensor_item(loss);
        if (!isfinite(last)) {
            fprintf(stderr, "%slenet5: training diverged: the loss is %g at step %lld (epoch %d, "
                            "batch %lld); try a lower --lr\n",
                    r->tty ? "\n" : "", last, (long long)optim_steps(r->opt) + 1, epoch,
                    (long long)b + 1);
            return -2;
        }
        if (r->o->grad_report && b == 0) {
            nn_gradflow g;
            if (nn_gradflow_model(r->net->model, 1e-7, 1e3, &g) == 0) {
                if (r->tty) printf("\n");
                nn_gradflow_print(stdout, &g);
                nn_gradflow_free(&g);
            }
        }
        if (optim_step(r->opt)) return -1;
        sum += last * (double)x->shape[0];
        samples += x->shape[0];
        tape_reset(); /* every tape-owned tensor of the step goes; memory stays flat */
        progress(r->tty, epoch, ++b, nb, sum / (double)samples, samples, t0);
        if (r->o->steps && optim_steps(r->opt) >= r->o->steps) break;
    }
    if (r->tty) printf("\n");
    *mean = sum / (double)(samples ? samples : 1);
    return rc < 0 ? -1 : r->o->steps && optim_steps(r->opt) >= r->o->steps ? 1 : 0;
}

static int save_checkpoint(const run *r) {
    if (!r->o->checkpoint) return 0;
    if (nn_checkpoint_save(r->o->checkpoint, r->net->model, r->opt, r->train)) return -1;
    printf("checkpoint %s at step %lld\n", r->o->checkpoint, (long long)optim_steps(r->opt));
    return 0;
}

int main(int argc, char **argv) {
    options o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    tapegrad_set_threads(o.threads);
    nn_dataset *train = nn_dataset_load_dir(o.data, "train");
    nn_dataset *test = train ? nn_dataset_load_dir(o.data, "t10k") : NULL;
    if (!train || !test) return ex_fail("lenet5", "loading data");
    if (o.subset > 0) nn_dataset_truncate(train, o.subset);
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, o.seed);
    if (!net) return ex_fail("lenet5", "building LeNet-5");
    if (o.load && nn_model_load(net->model, o.load)) return ex_fail("lenet5", "loading the checkpoint");
    optim_config cfg = optim_defaults(o.optim);
    if (o.lr >= 0) cfg.lr = o.lr;
    run r = {.o = &o, .net = net, .tty = isatty(STDOUT_FILENO)};
    int n_params;
    tensor *const *params = nn_model_parameters(net->model, &n_params);
    r.opt = optim_new(&cfg, params, n_params);
    r.train = nn_loader_new(train, o.batch, true, o.seed);
    if (!r.opt || !r.train) return ex_fail("lenet5", "setting up training");
    if (o.resume && nn_checkpoint_load(o.resume, net->model, r.opt, r.train))
        return ex_fail("lenet5", "resuming");
    /* where the run stands: every batch is one step */
    int64_t done = optim_steps(r.opt), nb = nn_loader_batches(r.train);
    int first = (int)(done / nb) + 1;
    FILE *csv = o.csv ? fopen(o.csv, "w") : NULL;
    if (o.csv && !csv) {
        perror(o.csv);
        return 1;
    }
    if (csv) fprintf(csv, "epoch,train_loss,test_acc,seconds\n");
    printf("lenet5: %lld parameters, %lld training images, %lld test images, %s lr %g, batch "
           "%lld, %d threads\n",
           (long long)nn_model_numel(net->model), (long long)train->n, (long long)test->n,
           o.optim == OPTIM_SGD ? "sgd" : o.optim == OPTIM_ADAM ? "adam" : "adamw",
           optim_get_lr(r.opt), (long long)o.batch, tapegrad_threads());
    if (o.resume)
        printf("resumed %s at step %lld (epoch %d, batch %lld)\n", o.resume, (long long)done, first,
               (long long)(done % nb));
    for (int e = first; e <= o.epochs; e++) {
        /* a new order at each epoch's start, none inside a resumed epoch */
        bool rewind = e > 1 && (e > first || done % nb == 0);
        double t0 = ex_now(), loss;
        int st = train_epoch(&r, e, rewind, &loss);
        double secs = ex_now() - t0;
        if (st == -2) return 1;
        if (st < 0) return ex_fail("lenet5", "training");
        if (save_checkpoint(&r)) return ex_fail("lenet5", "saving the training checkpoint");
        if (st == 1) {
            printf("stopped at step %lld (--steps)\n", (long long)optim_steps(r.opt));
            break;
        }
        double acc = evaluate(net, test);
        if (acc < 0) return ex_fail("lenet5", "evaluating");
        printf("epoch=%d train_loss=%.4f test_acc=%.4f seconds=%.1f\n", e, loss, acc, secs);
        fflush(stdout);
        if (csv) {
            fprintf(csv, "%d,%.6f,%.6f,%.3f\n", e, loss, acc, secs);
            fflush(csv);
        }
    }
    if (csv) fclose(csv);
    if (o.save) {
        if (nn_model_save(net->model, o.save)) return ex_fail("lenet5", "saving the checkpoint");
        printf("saved %s\n", o.save);
    }
    optim_free(r.opt);
    nn_loader_free(r.train);
    nn_lenet5_free(net);
    nn_dataset_free(train);
    nn_dataset_free(test);
    return 0;
}
