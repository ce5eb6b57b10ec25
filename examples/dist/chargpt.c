/*
 * chargpt (dist) - the byte-level GPT of examples/chargpt, data-parallel over
 * MPI:
 *   mpirun -np 2 build/examples/dist/chargpt [the options of examples/chargpt]
 *       [--check-every 100]
 * Every rank holds the model (built from --seed, then rank 0's copy
 * broadcast) and draws its own --batch windows a step from the generator
 * (--seed, stream 2 x rank: rank 0 draws what one process draws), so the
 * global batch is --batch x ranks; after backward the gradients are averaged
 * over the ranks (dist_allreduce_grads) and every rank takes the same AdamW
 * step. Every --check-every steps (0: never) the ranks compare their
 * parameters' checksums (dist_check_params). Rank 0 prints the progress (the
 * ranks' mean loss every 100 steps), the validation line of examples/chargpt
 * (it alone validates), the throughput and the allreduce's share of the
 * time; it writes --save (the model for PyTorch) and --checkpoint (the
 * model and AdamW's state, dist_checkpoint_save), both atomically. --resume
 * loads a checkpoint on every rank and continues for --steps more steps, each
 * rank drawing the windows the uninterrupted run would have drawn: on the
 * same number of ranks, 10 + 10 steps through a checkpoint write the file 20
 * steps write. --sample runs on rank 0. The model, loss, validation and the
 * training loop are examples/chargpt.h, shared with examples/chargpt.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad_dist.h"
#include "../chargpt.h"

/* Rank 0 says why all ranks stop together (an error every rank has). */
static int fail_all(int rank, const char *what) {
    if (rank == 0) fprintf(stderr, "chargpt: %s: %s\n", what, tapegrad_error() ? tapegrad_error() : "failed");
    dist_finalize();
    return 1;
}

int main(int argc, char **argv) {
    if (dist_init(&argc, &argv)) {
        fprintf(stderr, "chargpt: %s\n", tapegrad_error());
        return 1;
    }
    int rank = dist_rank(), size = dist_size();
    options o;
    int rc = chargpt_parse(argc, argv, "chargpt", true, &o);
    if (rc) {
        dist_finalize();
        return rc;
    }
    tapegrad_set_threads(o.threads);
    unsigned char *text = NULL;
    int64_t len = 0;
    /* A missing corpus on one rank is an error on all, naming it. */
    int read = charlm_read_corpus("chargpt", o.data, CTX, &text, &len);
    if (read) tapegrad_error_clear();
    if (dist_all_ok(read, "reading the corpus")) return fail_all(rank, "reading the corpus");
    int64_t n_train = (int64_t)((double)len * 0.9), n_val = len - n_train;
    net n;
    if (chargpt_net_init(&n, o.seed)) dist_abort("building the model");
    optim_config cfg = optim_defaults(OPTIM_ADAMW);
    cfg.lr = o.lr;
    int n_params;
    tensor *const *params = nn_model_parameters(n.m, &n_params);
    optim *opt = optim_new(&cfg, params, n_params);
    if (!opt) dist_abort("setting up training");
    if (o.load) {
        if (dist_all_ok(nn_model_load(n.m, o.load), "loading the model"))
            return fail_all(rank, "loading the model");
        if (dist_check_params(n.m)) return fail_all(rank, "loading the model");
    } else if (o.resume ? dist_checkpoint_load(o.resume, n.m, opt, NULL) : dist_broadcast_model(n.m)) {
        return fail_all(rank, o.resume ? "resuming" : "broadcasting the model");
    }
    if (rank == 0 && !o.quiet)
        printf("chargpt: %d rank(s), %lld parameters, %lld training bytes, %lld validation bytes, "
               "adamw lr %g, batch %lld per rank (%lld in all), context %d, %d thread(s) per rank\n",
               size, (long long)nn_model_numel(n.m), (long long)n_train, (long long)n_val, o.lr,
               (long long)o.batch, (long long)o.batch * size, CTX, tapegrad_threads());
    fflush(stdout);
    chargpt_par par = {rank, size, dist_allreduce_grads, dist_check_params, dist_sum};
    double t0 = ex_now(), comm0 = dist_comm_seconds();
    const char *what;
    if (chargpt_train(&n, opt, &o, &par, text, n_train, "chargpt", &what)) dist_abort(what);
    double secs = ex_now() - t0, comm = dist_comm_seconds() - comm0;
    if (rank == 0) {
        double vl = chargpt_validate(&n, text + n_train, n_val);
        if (!isfinite(vl)) dist_abort("validating");
        if (!o.quiet && o.steps > 0)
            printf("%.0f windows/s over all ranks, allreduce %.1f%% of rank 0's time\n",
                   (double)(o.steps * o.batch * size) / secs, 100 * comm / secs);
        printf("steps=%lld val_loss=%.4f val_bpb=%.4f seconds=%.1f\n", (long long)optim_steps(opt), vl,
               vl / log(2.0), secs);
        fflush(stdout);
    }
    if (o.save) {
        /* rank 0 writes (nn_model_save is atomic); every rank learns how it went */
        int st = rank == 0 ? nn_model_save(n.m, o.save) : 0;
        if (dist_all_ok(st, "saving the model")) return fail_all(rank, "saving the model");
        if (rank == 0) printf("saved %s\n", o.save);
    }
    if (o.checkpoint) {
        if (dist_checkpoint_save(o.checkpoint, n.m, opt, NULL)) return fail_all(rank, "writing the checkpoint");
        if (rank == 0) printf("checkpoint %s at step %lld\n", o.checkpoint, (long long)optim_steps(opt));
    }
    if (rank == 0 && o.sample > 0 && chargpt_sample(&n, &o, "chargpt")) dist_abort("sampling");
    fflush(stdout);
    optim_free(opt);
    nn_model_free(n.m);
    free(text);
    dist_finalize();
    return 0;
}
