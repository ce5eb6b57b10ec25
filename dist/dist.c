/*
 * dist.c - data-parallel training over MPI (include/tapegrad_dist.h).
 *
 * Every collective here is entered by all ranks in the same order. Where a
 * rank could disagree with the others (model layout, a failed load), the
 * ranks first exchange a small status so that all of them return the same
 * error instead of some waiting in a collective the others never enter.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tapegrad_dist.h"
#include "../autograd/internal.h"

static bool up;
static int my_rank = -1, n_ranks = -1;
static double comm_seconds;
static void *flat;          /* the gradient buffer, reused between steps */
static size_t flat_bytes;
static MPI_Request *req;    /* one per bucket, reused */
static size_t n_req;
static size_t bucket_cap = (size_t)25 << 20; /* bytes per bucket: DDP's default, 25 MiB */
static int last_buckets;
static bool sync_buffers;

static int need_init(const char *op) {
    if (up) return 0;
    tg_error_set("%s: dist_init has not been called (or dist_finalize has)", op);
    return -1;
}

/* An MPI return code as our error. */
static int mpi_fail(const char *op, int rc) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    tg_error_set("%s: MPI error on rank %d: %s", op, my_rank, msg);
    return -1;
}

int dist_init(int *argc, char ***argv) {
    int done = 0;
    MPI_Initialized(&done);
    if (done || up) {
        tg_error_set("dist_init: MPI is already initialised (dist_init is called once per process)");
        return -1;
    }
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        tg_error_set("dist_init: MPI_Init failed");
        return -1;
    }
    /* Errors come back as return codes, so they reach tapegrad_error(). */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    up = true;
    comm_seconds = 0;
    last_buckets = 0;
    return 0;
}

int dist_finalize(void) {
    if (need_init("dist_finalize")) return -1;
    free(flat);
    flat = NULL;
    flat_bytes = 0;
    free(req);
    req = NULL;
    n_req = 0;
    up = false;
    my_rank = n_ranks = -1;
    return MPI_Finalize() == MPI_SUCCESS ? 0 : (tg_error_set("dist_finalize: MPI_Finalize failed"), -1);
}

bool dist_initialized(void) {
    return up;
}

int dist_rank(void) {
    return need_init("dist_rank") ? -1 : my_rank;
}

int dist_size(void) {
    return need_init("dist_size") ? -1 : n_ranks;
}

double dist_comm_seconds(void) {
    return comm_seconds;
}

/* The ranks' statuses gathered; on any failure, every rank gets an error
 * listing the failed ranks and the message of the first of them (sent by
 * that rank: the others have no other way to learn it), followed by its own
 * message if it failed too. */
#define DIST_MSG 512
int dist_all_ok(int status, const char *what) {
    if (need_init("dist_all_ok")) return -1;
    if (!what) what = "a step";
    char own[DIST_MSG] = "";
    if (status != 0) snprintf(own, sizeof own, "%s", tapegrad_error() ? tapegrad_error() : "(no message)");
    int *all = malloc((size_t)n_ranks * sizeof *all);
    if (!all) {
        tg_error_set("dist_all_ok: out of memory for %d statuses", n_ranks);
        return -1;
    }
    int mine = status != 0, rc = MPI_Allgather(&mine, 1, MPI_INT, all, 1, MPI_INT, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        free(all);
        return mpi_fail("dist_all_ok", rc);
    }
    char ranks[256] = "";
    size_t len = 0;
    int failed = 0, first = -1;
    for (int r = 0; r < n_ranks; r++)
        if (all[r]) {
            if (first < 0) first = r;
            failed++;
            if (len < sizeof ranks - 16)
                len += (size_t)snprintf(ranks + len, sizeof ranks - len, "%s%d", failed > 1 ? ", " : "", r);
        }
    free(all);
    if (!failed) return 0;
    char theirs[DIST_MSG];
    memcpy(theirs, own, sizeof theirs);
    rc = MPI_Bcast(theirs, (int)sizeof theirs, MPI_CHAR, first, MPI_COMM_WORLD);
    theirs[sizeof theirs - 1] = 0;
    tapegrad_error_clear();
    if (rc != MPI_SUCCESS) return mpi_fail("dist_all_ok", rc);
    if (own[0] && my_rank != first)
        tg_error_set("%s failed on rank(s) %s of %d; rank %d: %s; here (rank %d): %s", what, ranks, n_ranks,
                  first, theirs, my_rank, own);
    else
        tg_error_set("%s failed on rank(s) %s of %d; rank %d: %s", what, ranks, n_ranks, first, theirs);
    return -1;
}

/* Every rank holds the same values v[0..k-1] (k <= 4), or all return an
 * error naming the first that differs; one small collective. */
static int agree(const char *op, int k, const char *const *what, const int64_t *v) {
    int64_t mm[8]; /* MAX of v and of -v: the maxima and minus the minima */
    for (int i = 0; i < k; i++) mm[2 * i] = v[i], mm[2 * i + 1] = -v[i];
    int rc = MPI_Allreduce(MPI_IN_PLACE, mm, 2 * k, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(op, rc);
    for (int i = 0; i < k; i++)
        if (mm[2 * i] != -mm[2 * i + 1]) {
            tg_error_set("%s: the ranks' models differ: %s ranges from %lld to %lld (rank %d has %lld)", op,
                      what[i], (long long)-mm[2 * i + 1], (long long)mm[2 * i], my_rank, (long long)v[i]);
            return -1;
        }
    return 0;
}

/* FNV-1a over bytes, continued from h. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

int dist_broadcast_model(nn_model *m) {
    if (need_init("dist_broadcast_model")) return -1;
    int local = 0;
    if (!m) {
        tg_error_set("dist_broadcast_model: model is NULL");
        local = -1;
    }
    if (dist_all_ok(local, "dist_broadcast_model")) return -1;
    /* The layout (count, dtype and size of each state tensor) must match
     * before any per-tensor broadcast, whose counts would otherwise differ. */
    int n = nn_model_state_count(m);
    uint64_t sig = 0xcbf29ce484222325ULL;
    for (int i = 0; i < n; i++) {
        const char *name;
        tensor *t;
        nn_model_state_at(m, i, &name, &t);
        int64_t d[2] = {t->dtype, t->size};
        sig = fnv(sig, d, sizeof d);
    }
    static const char *const what[] = {"the number of parameters and buffers", "the parameter count (elements)",
                                       "the layout checksum (dtypes and sizes)"};
    if (agree("dist_broadcast_model", 3, what, (int64_t[]){n, nn_model_numel(m), (int64_t)(sig >> 1)}))
        return -1;
    for (int i = 0; i < n; i++) {
        const char *name;
        tensor *t;
        nn_model_state_at(m, i, &name, &t);
        /* Sizes are checked against int: MPI counts are int. */
        size_t bytes = (size_t)t->size * tg_dtype_size(t->dtype);
        if (bytes > (size_t)INT32_MAX) {
            tg_error_set("dist_broadcast_model: %s has %zu bytes, over MPI's int count", name, bytes);
            return -1; /* the same on every rank: the layouts agree */
        }
        int rc = MPI_Bcast(t->data, (int)bytes, MPI_BYTE, 0, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail("dist_broadcast_model", rc);
    }
    /* The model's generator too (dropout masks): then every rank draws the
     * same stream, and rank 0's checkpoint, which holds one generator,
     * resumes every rank exactly. */
    int rc = MPI_Bcast(&m->rng, (int)sizeof m->rng, MPI_BYTE, 0, MPI_COMM_WORLD);
    return rc != MPI_SUCCESS ? mpi_fail("dist_broadcast_model", rc) : 0;
}

int dist_set_bucket_bytes(size_t bytes) {
    if (bytes < 8) {
        tg_error_set("dist_set_bucket_bytes: a bucket of %zu bytes cannot hold one float64 gradient "
                  "element (8 bytes at least)",
                  bytes);
        return -1;
    }
    bucket_cap = bytes;
    return 0;
}

int dist_buckets(void) {
    return last_buckets;
}

void dist_set_sync_buffers(bool on) {
    sync_buffers = on;
}

/* Gradients are packed, in the parameters' registration order, into one
 * flat buffer cut into buckets of at most bucket_cap bytes; a bucket's
 * reduction starts as soon as it is packed (MPI_Iallreduce), so packing the
 * later buckets overlaps the earlier ones' communication, and all are
 * awaited together. The order and the cuts depend only on the model and the
 * cap, which every rank shares, so every rank reduces the same buckets in
 * the same order and a run at a fixed np is reproducible. A single bucket
 * goes through the blocking MPI_Allreduce (Open MPI's tuned algorithms). */
int dist_allreduce_grads(nn_model *m) {
    if (need_init("dist_allreduce_grads")) return -1;
    if (!m) {
        /* Every rank passes the same model object kind; a NULL one is a
         * programming error on all ranks alike. */
        tg_error_set("dist_allreduce_grads: model is NULL");
        return -1;
    }
    int n;
    tensor *const *p = nn_model_parameters(m, &n);
    int64_t numel = 0;
    for (int i = 0; i < n; i++) {
        if (p[i]->dtype != p[0]->dtype) {
            tg_error_set("dist_allreduce_grads: parameters mix %s and %s; one dtype is needed",
                      tg_dtype_name(p[0]->dtype), tg_dtype_name(p[i]->dtype));
            return -1;
        }
        numel += p[i]->size;
    }
    size_t es = n ? tg_dtype_size(p[0]->dtype) : 4;
    int64_t per = (int64_t)(bucket_cap / es); /* elements per bucket, >= 1 */
    if (per > INT32_MAX) per = INT32_MAX;     /* MPI counts are int */
    /* The length and the cut are checked across ranks on every call (one
     * 32-byte allreduce, a latency term): reductions of unequal counts have
     * no defined outcome, and a rank whose model or cap changed alone cannot
     * know that the others need to check. */
    static const char *const what[] = {"the gradient length (elements)",
                                       "the elements per bucket (dist_set_bucket_bytes)"};
    double t0 = MPI_Wtime();
    int bad = agree("dist_allreduce_grads", 2, what, (int64_t[]){numel, per});
    comm_seconds += MPI_Wtime() - t0;
    if (bad) return -1;
    last_buckets = 0;
    if (numel == 0) return sync_buffers ? dist_sync_buffers(m) : 0;
    size_t bytes = (size_t)numel * es;
    int64_t nb = (numel + per - 1) / per;
    if (bytes > flat_bytes || (size_t)nb > n_req) {
        void *nf = bytes > flat_bytes ? realloc(flat, bytes) : flat;
        if (nf) flat = nf, flat_bytes = bytes > flat_bytes ? bytes : flat_bytes;
        MPI_Request *nr = (size_t)nb > n_req ? realloc(req, (size_t)nb * sizeof *req) : req;
        if (nr) req = nr, n_req = (size_t)nb > n_req ? (size_t)nb : n_req;
        if (!nf || !nr) {
            tg_error_set("dist_allreduce_grads: out of memory for a %zu-byte gradient buffer in %lld buckets",
                      bytes, (long long)nb);
            return -1; /* the ranks now differ: the caller aborts */
        }
    }
    MPI_Datatype type = p[0]->dtype == DTYPE_F64 ? MPI_DOUBLE : MPI_FLOAT;
    char *base = flat;
    int64_t packed = 0, started = 0;
    int rc = MPI_SUCCESS;
    for (int i = 0; i <= n && rc == MPI_SUCCESS; i++) {
        if (i < n) {
            size_t b = (size_t)p[i]->size * es;
            if (p[i]->grad) memcpy(base + (size_t)packed * es, p[i]->grad->data, b);
            else memset(base + (size_t)packed * es, 0, b); /* all-bits-zero is 0.0 in both types */
            packed += p[i]->size;
        }
        /* every bucket now fully packed (all of them after the last one) */
        while (rc == MPI_SUCCESS && started < nb && (i == n || (started + 1) * per <= packed)) {
            int64_t off = started * per, cnt = numel - off < per ? numel - off : per;
            if (started == 0) t0 = MPI_Wtime(); /* communication from the first bucket on */
            rc = nb == 1 ? MPI_Allreduce(MPI_IN_PLACE, base, (int)cnt, type, MPI_SUM, MPI_COMM_WORLD)
                         : MPI_Iallreduce(MPI_IN_PLACE, base + (size_t)off * es, (int)cnt, type, MPI_SUM,
                                          MPI_COMM_WORLD, &req[started]);
            if (rc == MPI_SUCCESS) started++;
        }
    }
    if (nb > 1 && started > 0) {
        int wrc = MPI_Waitall((int)started, req, MPI_STATUSES_IGNORE);
        if (rc == MPI_SUCCESS) rc = wrc;
    }
    comm_seconds += MPI_Wtime() - t0;
    if (rc != MPI_SUCCESS) return mpi_fail("dist_allreduce_grads", rc);
    last_buckets = (int)nb;
    /* mean = sum / N, one rounding per element (as x * (1/N) is for N a
     * power of two, but exact division keeps any N correctly rounded). */
    if (type == MPI_DOUBLE) {
        double *g = flat;
        for (int64_t i = 0; i < numel; i++) g[i] /= n_ranks;
    } else {
        float *g = flat;
        for (int64_t i = 0; i < numel; i++) g[i] /= (float)n_ranks;
    }
    char *at = flat;
    for (int i = 0; i < n; i++) {
        size_t b = (size_t)p[i]->size * es;
        if (!p[i]->grad) {
            p[i]->grad = tensor_zeros(p[i]->dtype, p[i]->ndim, p[i]->shape);
            if (!p[i]->grad) return -1; /* the ranks now differ: the caller aborts */
        }
        memcpy(p[i]->grad->data, at, b);
        at += b;
    }
    return sync_buffers ? dist_sync_buffers(m) : 0;
}

/* Buffers averaged over the ranks: floating-point ones (running mean and
 * variance) summed and divided by N; integer ones (batch counters) must
 * already agree, as they do when every rank ran the same steps. The mean of
 * the ranks' running variances is not the variance of the global batch
 * (that needs the batch statistics shared inside the forward, as PyTorch's
 * SyncBatchNorm does); it keeps the copies equal, for evaluation and
 * checkpoints, at the cost of one small reduction per buffer. */
int dist_sync_buffers(nn_model *m) {
    if (need_init("dist_sync_buffers")) return -1;
    int local = 0;
    if (!m) {
        tg_error_set("dist_sync_buffers: model is NULL");
        local = -1;
    }
    if (dist_all_ok(local, "dist_sync_buffers")) return -1;
    uint64_t sig = 0xcbf29ce484222325ULL, ints = 0xcbf29ce484222325ULL;
    for (int i = 0; i < m->n_buffers; i++) {
        const tensor *t = m->buffers[i];
        int64_t d[2] = {t->dtype, t->size};
        sig = fnv(sig, d, sizeof d);
        if (t->dtype != DTYPE_F32 && t->dtype != DTYPE_F64)
            ints = fnv(ints, t->data, (size_t)t->size * tg_dtype_size(t->dtype));
    }
    static const char *const what[] = {"the number of buffers", "the buffers' layout checksum (dtypes and sizes)",
                                       "the checksum of the integer buffers (batch counters)"};
    if (agree("dist_sync_buffers", 3, what, (int64_t[]){m->n_buffers, (int64_t)(sig >> 1), (int64_t)(ints >> 1)}))
        return -1;
    for (int i = 0; i < m->n_buffers; i++) {
        tensor *t = m->buffers[i];
        if ((t->dtype != DTYPE_F32 && t->dtype != DTYPE_F64) || t->size == 0) continue;
        if (t->size > INT32_MAX) {
            tg_error_set("dist_sync_buffers: %s has %lld elements, over MPI's int count", m->buffer_names[i],
                      (long long)t->size);
            return -1; /* the same on every rank: the layouts agree */
        }
        bool f64 = t->dtype == DTYPE_F64;
        int rc = MPI_Allreduce(MPI_IN_PLACE, t->data, (int)t->size, f64 ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM,
                               MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail("dist_sync_buffers", rc);
        if (f64)
            for (int64_t j = 0; j < t->size; j++) ((double *)t->data)[j] /= n_ranks;
        else
            for (int64_t j = 0; j < t->size; j++) ((float *)t->data)[j] /= (float)n_ranks;
    }
    return 0;
}

int dist_check_params(const nn_model *m) {
    if (need_init("dist_check_params")) return -1;
    uint64_t h = 0xcbf29ce484222325ULL;
    int n = 0;
    tensor *const *p = m ? nn_model_parameters(m, &n) : NULL;
    for (int i = 0; i < n; i++) h = fnv(h, p[i]->data, (size_t)p[i]->size * tg_dtype_size(p[i]->dtype));
    if (m) h = fnv(h, &m->rng, sizeof m->rng); /* a rank that drew more dropout masks has left too */
    uint64_t *all = malloc((size_t)n_ranks * sizeof *all);
    if (!all) {
        tg_error_set("dist_check_params: out of memory for %d checksums", n_ranks);
        return -1;
    }
    int rc = MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        free(all);
        return mpi_fail("dist_check_params", rc);
    }
    char ranks[256] = "";
    size_t len = 0;
    int bad = 0;
    for (int r = 1; r < n_ranks; r++)
        if (all[r] != all[0]) {
            bad++;
            if (len < sizeof ranks - 16)
                len += (size_t)snprintf(ranks + len, sizeof ranks - len, "%s%d", bad > 1 ? ", " : "", r);
        }
    uint64_t h0 = all[0];
    free(all);
    if (!bad) return 0;
    tg_error_set("dist_check_params: the parameters of rank(s) %s differ from rank 0's (checksum %016llx; "
              "here, rank %d: %016llx): the ranks have diverged",
              ranks, (unsigned long long)h0, my_rank, (unsigned long long)h);
    return -1;
}

int dist_sum(double *v, int n) {
    if (need_init("dist_sum")) return -1;
    if (n < 0 || (n > 0 && !v)) {
        /* the same call on every rank: the same error everywhere */
        tg_error_set("dist_sum: %d values at %p", n, (void *)v);
        return -1;
    }
    if (n == 0) return 0;
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return rc != MPI_SUCCESS ? mpi_fail("dist_sum", rc) : 0;
}

int dist_checkpoint_save(const char *path, const nn_model *m, const optim *o, const nn_loader *l) {
    if (need_init("dist_checkpoint_save")) return -1;
    struct {
        int rc;
        char msg[512];
    } r = {0, ""};
    if (my_rank == 0 && nn_checkpoint_save(path, m, o, l)) {
        r.rc = -1;
        snprintf(r.msg, sizeof r.msg, "%s", tapegrad_error() ? tapegrad_error() : "");
    }
    int rc = MPI_Bcast(&r, (int)sizeof r, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail("dist_checkpoint_save", rc);
    if (r.rc) {
        tapegrad_error_clear();
        tg_error_set("dist_checkpoint_save: rank 0 could not write the checkpoint: %s", r.msg);
        return -1;
    }
    return 0;
}

int dist_checkpoint_load(const char *path, nn_model *m, optim *o, nn_loader *l) {
    if (need_init("dist_checkpoint_load")) return -1;
    int rc = nn_checkpoint_load(path, m, o, l);
    if (dist_all_ok(rc, "dist_checkpoint_load")) return -1;
    /* Every rank read a file: one with a different file on some rank would
     * start apart; the checksum says so now rather than never. */
    return dist_check_params(m);
}

void dist_abort(const char *what) {
    const char *e = tapegrad_error();
    fprintf(stderr, "tapegrad dist: rank %d of %d: %s%s%s\n", my_rank, n_ranks, what ? what : "failure",
            e ? ": " : "", e ? e : "");
    fflush(stderr);
    if (up) MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}
