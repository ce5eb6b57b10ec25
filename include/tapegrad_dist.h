/*
 * tapegrad_dist.h - data-parallel training over MPI (dist/, the library
 * libtapegrad_dist.a, built by `make MPI=1` or `make check-mpi` when Open MPI
 * is installed; the core library never needs MPI).
 *
 * Each rank (process) holds a whole copy of the model and trains on its shard
 * of the data (nn_loader_set_shard). After backward, dist_allreduce_grads
 * replaces every parameter's gradient with the mean over the ranks, so every
 * rank steps its optimiser with the same gradient and the copies stay equal.
 * A step on N ranks with per-rank batch B/N is the step one process takes
 * with batch B (the loss being a batch mean), up to the order of the sums.
 *
 * Errors: functions return 0 (or a value) on success and -1 with a message
 * in tapegrad_error(). They are collective: every rank calls them in the
 * same order. Disagreements the ranks can see together (different parameter
 * counts or shapes, a rank whose load failed) are returned as an error on
 * every rank, naming the ranks at fault, rather than leaving a collective
 * waiting. A rank that fails on its own between collectives must call
 * dist_abort, which ends the whole job with its rank and message.
 * Buffers (batch-norm running statistics) are broadcast by
 * dist_broadcast_model and otherwise stay per rank, as in PyTorch's DDP,
 * unless dist_sync_buffers averages them.
 */
#ifndef TAPEGRAD_DIST_H
#define TAPEGRAD_DIST_H
#include "tapegrad.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* MPI_Init (argc, argv may be NULL); once per process. 0 or -1. */
int dist_init(int *argc, char ***argv);
int dist_finalize(void);                 /* MPI_Finalize; 0 or -1 */
bool dist_initialized(void);             /* between dist_init and dist_finalize */
int dist_rank(void);                     /* this process's rank, -1 before dist_init */
int dist_size(void);                     /* number of ranks, -1 before dist_init */

/* Copies every parameter and buffer of rank 0's model, and its generator
 * (dropout masks), into the others', so all ranks start from the same
 * values and draw the same masks. Checks first that every rank's model has
 * the same tensors (count, dtypes and sizes). */
int dist_broadcast_model(nn_model *m);

/* Gradient averaging after backward: the gradients of the model's distinct
 * parameters, in registration order, packed into buckets of at most
 * dist_set_bucket_bytes bytes (25 MiB by default), each summed over the
 * ranks (MPI_Iallreduce, started as soon as the bucket is packed; one
 * bucket: MPI_Allreduce) and divided by dist_size(). A parameter without a
 * gradient on this rank contributes zeros and gets the average. The
 * parameters must share one dtype. With dist_set_sync_buffers(true) it
 * also calls dist_sync_buffers. */
int dist_allreduce_grads(nn_model *m);

/* The bucket cap in bytes (at least 8), the same on every rank (checked at
 * the next dist_allreduce_grads). 0 or -1. Not collective. */
int dist_set_bucket_bytes(size_t bytes);
int dist_buckets(void); /* buckets in the last dist_allreduce_grads */

/* Buffers (batch-norm running statistics) stay per rank after
 * dist_broadcast_model, as in PyTorch's DDP, unless synchronised:
 * dist_sync_buffers averages the floating-point buffers over the ranks
 * (integer ones, batch counters, must agree already). The mean of running
 * variances is not the global batch's variance: this keeps the copies
 * equal, it does not make batch norm see the global batch.
 * dist_set_sync_buffers(true) makes every dist_allreduce_grads call it. */
int dist_sync_buffers(nn_model *m);
void dist_set_sync_buffers(bool on);

/* Seconds spent communicating in dist_allreduce_grads since dist_init:
 * the length agreement and the buckets' reductions, from the first
 * bucket's start to the last one's end, waiting for slower ranks included
 * (the communication share of a step). */
double dist_comm_seconds(void);

/* Divergence check: a 64-bit checksum of each rank's parameter bytes and
 * model generator, compared with rank 0's; -1 on every rank naming the
 * ranks that differ. */
int dist_check_params(const nn_model *m);

/* Combines each rank's status (0 or -1 from a local call described by
 * what): 0 when every rank succeeded, otherwise -1 on every rank with a
 * message naming the failed ranks and giving the first failed rank's error
 * (and this rank's own, when it failed too). */
int dist_all_ok(int status, const char *what);

/* Sums v[0..n-1] over the ranks in place (MPI_Allreduce): for metrics,
 * such as the global batch's loss or the test accuracy of sharded
 * evaluation. 0 or -1. */
int dist_sum(double *v, int n);

/* Checkpoints (nn_checkpoint_save's format): rank 0 writes the model,
 * optimiser and loader state atomically, and every rank learns whether it
 * succeeded (rank 0's message on failure); loading is done by every rank
 * (every rank needs the file) and fails on all when one fails. o and l may
 * be NULL. A sharded loader's state is the same on every rank (same order
 * and generator, same position in its shard), so rank 0's serves all. */
int dist_checkpoint_save(const char *path, const nn_model *m, const optim *o, const nn_loader *l);
int dist_checkpoint_load(const char *path, nn_model *m, optim *o, nn_loader *l);

/* Ends the whole job (MPI_Abort) after printing "rank R: what: error" to
 * stderr: for a failure on one rank that the others cannot learn of. */
void dist_abort(const char *what) __attribute__((noreturn));

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
