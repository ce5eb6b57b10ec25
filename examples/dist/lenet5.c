/*
 * lenet5 (dist) - LeNet-5 on Fashion-MNIST, data-parallel over MPI:
 *   mpirun -np 2 build/examples/dist/lenet5 [--epochs 1] [--batch 64]
 *       [--lr 1e-3] [--steps N] [--save FILE] [--resume FILE] [--check-every 100]
 *       [--data DIR]
 * Every rank holds the model, trains on its shard of each epoch with batch
 * --batch (the global batch is --batch x ranks) and averages gradients with
 * the others after backward. Rank 0 prints the loss of the last global
 * batch, the test accuracy (each rank classifies its shard of the test
 * set), the throughput (images per second over all ranks) and the share of
 * the time spent in the gradient allreduce. One thread per rank.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tapegrad_dist.h"
#include "../example.h"

/* A local failure the other ranks cannot see: end the job, loudly. */
#define TRY(cond, what) \
    do {                \
        if (!(cond)) dist_abort(what); \
    } while (0)

/* Each rank classifies its shard of the test set; the counts are summed
 * over the ranks. *seen_all gets the images classified (all of them when
 * the ranks divide the test set, else n mod ranks fewer). */
static double accuracy(const nn_lenet5 *net, const nn_dataset *test, int rank, int size, double *seen_all) {
    nn_loader *l = nn_loader_new(test, 1000, false, 0);
    TRY(l && nn_loader_set_shard(l, rank, size) == 0, "test loader");
    tensor *x, *y;
    int64_t right = 0, seen = 0;
    nn_model_train(net->model, false);
    tape_no_grad_begin();
    while (nn_loader_next(l, &x, &y) == 1) {
        tensor *am = tensor_argmax(nn_lenet5_forward(net, x), 1, false);
        TRY(am, "evaluation");
        for (int64_t i = 0; i < y->shape[0]; i++) right += tensor_get(am, i) == tensor_get(y, i);
        seen += y->shape[0];
        tape_reset();
    }
    tape_no_grad_end();
    nn_model_train(net->model, true);
    nn_loader_free(l);
    double c[2] = {(double)right, (double)seen};
    TRY(dist_sum(c, 2) == 0, "test accuracy");
    *seen_all = c[1];
    return c[1] > 0 ? c[0] / c[1] : 0;
}

int main(int argc, char **argv) {
    int epochs = 1, batch = 64, check_every = 100;
    long steps = 0;
    double lr = 1e-3;
    const char *save = NULL, *resume = NULL, *data = NULL;
    if (dist_init(&argc, &argv)) {
        fprintf(stderr, "lenet5: %s\n", tapegrad_error());
        return 1;
    }
    int rank = dist_rank(), size = dist_size();
    static const struct option opts[] = {
        {"epochs", 1, 0, 'e'}, {"batch", 1, 0, 'b'}, {"lr", 1, 0, 'l'},    {"steps", 1, 0, 'n'},
        {"save", 1, 0, 's'},   {"resume", 1, 0, 'r'}, {"data", 1, 0, 'd'}, {"check-every", 1, 0, 'c'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'e': epochs = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 'l': lr = strtod(optarg, NULL); break;
        case 'n': steps = atol(optarg); break;
        case 's': save = optarg; break;
        case 'r': resume = optarg; break;
        case 'd': data = optarg; break;
        case 'c': check_every = atoi(optarg); break;
        default:
            if (rank == 0)
                fprintf(stderr, "usage: mpirun -np N lenet5 [--epochs N] [--batch N] [--lr X] [--steps N] "
                                "[--save FILE] [--resume FILE] [--check-every N] [--data DIR]\n");
            dist_finalize();
            return 2;
        }
    }
    tapegrad_set_threads(1);
    nn_dataset *train = nn_dataset_load_dir(data, "train"), *test = nn_dataset_load_dir(data, "t10k");
    /* A missing file on one rank is an error on all, naming it. */
    if (dist_all_ok(train && test ? 0 : -1, "loading Fashion-MNIST")) {
        if (rank == 0) fprintf(stderr, "lenet5: %s\n", tapegrad_error());
        dist_finalize();
        return 1;
    }
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 1);
    TRY(net, "model");
    int n;
    tensor *const *p = nn_model_parameters(net->model, &n);
    optim_config oc = optim_defaults(OPTIM_ADAM);
    oc.lr = lr;
    optim *opt = optim_new(&oc, p, n);
    nn_loader *ld = nn_loader_new(train, batch, true, 42);
    TRY(opt && ld && nn_loader_set_shard(ld, rank, size) == 0, "setup");
    if (resume ? dist_checkpoint_load(resume, net->model, opt, ld) : dist_broadcast_model(net->model)) {
        if (rank == 0) fprintf(stderr, "lenet5: %s\n", tapegrad_error());
        dist_finalize();
        return 1;
    }
    if (rank == 0)
        printf("%d rank(s), batch %d per rank (%d in all), %lld steps per epoch\n", size, batch, batch * size,
               (long long)nn_loader_batches(ld));
    double t0 = ex_now(), comm0 = dist_comm_seconds();
    int64_t images = 0;
    long done = 0;
    for (int e = 0; e < epochs && !(steps && done >= steps); e++) {
        tensor *x, *y;
        double loss = 0;
        int rc;
        while ((rc = nn_loader_next(ld, &x, &y)) == 1) {
            optim_zero_grad(opt);
            tensor *l = nn_lenet5_loss(net, x, y);
            TRY(l && tensor_backward(l) == 0, "forward/backward");
            loss = tensor_item(l);
            images += y->shape[0];
            tape_reset();
            TRY(dist_allreduce_grads(net->model) == 0, "gradient allreduce");
            TRY(optim_step(opt) == 0, "optimiser step");
            done++;
            if (check_every > 0 && done % check_every == 0 && dist_check_params(net->model)) {
                if (rank == 0) fprintf(stderr, "lenet5: %s\n", tapegrad_error());
                dist_abort("divergence check");
            }
            if (steps && done >= steps) break;
        }
        TRY(rc >= 0, "loader");
        if (rc == 0) nn_loader_rewind(ld);
        double t = ex_now() - t0, comm = dist_comm_seconds() - comm0, tested = 0;
        double acc = accuracy(net, test, rank, size, &tested);
        TRY(dist_sum(&loss, 1) == 0, "loss");
        int64_t all = images * size;
        if (rank == 0)
            printf("epoch %d: step %lld, loss %.4f (the last global batch), test accuracy %.4f (%.0f "
                   "images), %.0f images/s, allreduce %.1f%% of the time\n",
                   e + 1, (long long)optim_steps(opt), loss / size, acc, tested, (double)all / t, 100 * comm / t);
    }
    if (save && dist_checkpoint_save(save, net->model, opt, ld)) {
        if (rank == 0) fprintf(stderr, "lenet5: %s\n", tapegrad_error());
        dist_abort("checkpoint");
    }
    if (save && rank == 0) printf("checkpoint %s at step %lld\n", save, (long long)optim_steps(opt));
    optim_free(opt);
    nn_loader_free(ld);
    nn_lenet5_free(net);
    nn_dataset_free(train);
    nn_dataset_free(test);
    dist_finalize();
    return 0;
}
