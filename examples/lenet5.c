/* lenet5.c - train LeNet-5 on Fashion-MNIST (or any IDX set) with tapegrad.
 *
 *   lenet5 [--epochs 10] [--batch 64] [--lr 1e-3] [--optim adam|adamw|sgd]
 *          [--threads 1] [--seed 0] [--data DIR] [--subset N]
 *          [--save FILE] [--load FILE] [--csv FILE] [--grad-report]
 *
 * The recipe of ../shared/peers/lenet5_fashion_torch.py: pixels / 255,
 * normalised with mean 0.2860 and std 0.3530, Adam lr 1e-3, batch 64, a new
 * shuffle every epoch, 1 thread (the peer's default too). After each epoch
 * one line, exactly
 *   epoch=E train_loss=L test_acc=A seconds=S
 * (S: training time of the epoch, evaluation excluded). On a terminal a
 * progress bar shows batches, loss, samples/s and ETA; otherwise plain
 * progress lines. Uses the public header only. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../include/tapegrad.h"

typedef struct options {
    int epochs, threads;
    int64_t batch, subset;
    double lr;
    optim_kind optim;
    uint64_t seed;
    const char *data, *save, *load, *csv;
    bool grad_report;
} options;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(const char *what) {
    fprintf(stderr, "lenet5: %s: %s\n", what, tapegrad_error() ? tapegrad_error() : "failed");
    return 1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: lenet5 [--epochs N] [--batch N] [--lr X] [--optim adam|adamw|sgd]\n"
               "              [--threads N] [--seed N] [--data DIR] [--subset N]\n"
               "              [--save FILE] [--load FILE] [--csv FILE] [--grad-report]\n"
               "defaults: 10 epochs, batch 64, Adam lr 1e-3, 1 thread, data %s\n",
            NN_DATA_DIR_DEFAULT);
}

static int parse(int argc, char **argv, options *o) {
    static const struct option longs[] = {
        {"epochs", 1, 0, 'e'}, {"batch", 1, 0, 'b'}, {"lr", 1, 0, 'l'},   {"optim", 1, 0, 'o'},
        {"threads", 1, 0, 't'}, {"seed", 1, 0, 's'}, {"data", 1, 0, 'd'},  {"save", 1, 0, 'S'},
        {"load", 1, 0, 'L'},   {"csv", 1, 0, 'c'},   {"subset", 1, 0, 'n'}, {"grad-report", 0, 0, 'g'},
        {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
    *o = (options){.epochs = 10, .batch = 64, .lr = -1, .optim = OPTIM_ADAM, .threads = 1,
                   .data = NN_DATA_DIR_DEFAULT};
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'e': o->epochs = atoi(optarg); break;
        case 'b': o->batch = atoll(optarg); break;
        case 'l': o->lr = atof(optarg); break;
        case 't': o->threads = atoi(optarg); break;
        case 's': o->seed = strtoull(optarg, NULL, 0); break;
        case 'd': o->data = optarg; break;
        case 'S': o->save = optarg; break;
        case 'L': o->load = optarg; break;
        case 'c': o->csv = optarg; break;
        case 'n': o->subset = atoll(optarg); break;
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
    if (optind < argc || o->epochs < 0 || o->batch <= 0) {
        usage(stderr);
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
    double t = now(), dt = t - t0, rate = dt > 0 ? (double)samples / dt : 0;
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

/* One epoch of training; returns the mean training loss or NAN on error. */
static double train_epoch(run *r, int epoch) {
    double t0 = now(), sum = 0, last = 0;
    int64_t samples = 0, b = 0, nb = nn_loader_batches(r->train);
    tensor *x, *y;
    int rc;
    if (epoch > 1) nn_loader_rewind(r->train);
    while ((rc = nn_loader_next(r->train, &x, &y)) == 1) {
        optim_zero_grad(r->opt);
        tensor *loss = nn_lenet5_loss(r->net, x, y);
        if (!loss || tensor_backward(loss)) return NAN;
        if (r->o->grad_report && b == 0) {
            nn_gradflow g;
            if (nn_gradflow_model(r->net->model, 1e-7, 1e3, &g) == 0) {
                if (r->tty) printf("\n");
                nn_gradflow_print(stdout, &g);
                nn_gradflow_free(&g);
            }
        }
        if (optim_step(r->opt)) return NAN;
        last = tensor_item(loss);
        sum += last * (double)x->shape[0];
        samples += x->shape[0];
        tape_reset(); /* every tape-owned tensor of the step goes; memory stays flat */
        progress(r->tty, epoch, ++b, nb, sum / (double)samples, samples, t0);
    }
    if (r->tty) printf("\n");
    return rc < 0 ? NAN : sum / (double)(samples ? samples : 1);
}

int main(int argc, char **argv) {
    options o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    if (o.threads > 0) tapegrad_set_threads(o.threads);
    nn_dataset *train = nn_dataset_load_dir(o.data, "train");
    nn_dataset *test = train ? nn_dataset_load_dir(o.data, "t10k") : NULL;
    if (!train || !test) return fail("loading data");
    if (o.subset > 0) nn_dataset_truncate(train, o.subset);
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, o.seed);
    if (!net) return fail("building LeNet-5");
    if (o.load && nn_model_load(net->model, o.load)) return fail("loading the checkpoint");
    optim_config cfg = optim_defaults(o.optim);
    if (o.lr >= 0) cfg.lr = o.lr;
    run r = {.o = &o, .net = net, .tty = isatty(STDOUT_FILENO)};
    int n_params;
    tensor *const *params = nn_model_parameters(net->model, &n_params);
    r.opt = optim_new(&cfg, params, n_params);
    r.train = nn_loader_new(train, o.batch, true, o.seed);
    if (!r.opt || !r.train) return fail("setting up training");
    FILE *csv = o.csv ? fopen(o.csv, "w") : NULL;
    if (o.csv && !csv) {
        perror(o.csv);
        return 1;
    }
    if (csv) fprintf(csv, "epoch,train_loss,test_acc,seconds\n");
    printf("lenet5: %lld parameters, %lld training images, %lld test images, %s lr %g, batch "
           "%lld, %d threads\n",
           (long long)nn_model_numel(net->model), (long long)train->n, (long long)test->n,
           o.optim == OPTIM_SGD ? "sgd" : o.optim == OPTIM_ADAM ? "adam" : "adamw", cfg.lr,
           (long long)o.batch, tapegrad_threads());
    for (int e = 1; e <= o.epochs; e++) {
        double t0 = now(), loss = train_epoch(&r, e), secs = now() - t0;
        if (isnan(loss)) return fail("training");
        double acc = evaluate(net, test);
        if (acc < 0) return fail("evaluating");
        printf("epoch=%d train_loss=%.4f test_acc=%.4f seconds=%.1f\n", e, loss, acc, secs);
        fflush(stdout);
        if (csv) {
            fprintf(csv, "%d,%.6f,%.6f,%.3f\n", e, loss, acc, secs);
            fflush(csv);
        }
    }
    if (csv) fclose(csv);
    if (o.save) {
        if (nn_model_save(net->model, o.save)) return fail("saving the checkpoint");
        printf("saved %s\n", o.save);
    }
    optim_free(r.opt);
    nn_loader_free(r.train);
    nn_lenet5_free(net);
    nn_dataset_free(train);
    nn_dataset_free(test);
    return 0;
}
