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
static int64_t agreed_numel = -1; /* gradient length the ranks last agreed on */

static int need_init(const char *op) {
    if (up) return 0;
    error_set("%s: dist_init has not been called (or dist_finalize has)", op);
    return -1;
}

/* An MPI return code as our error. */
static int mpi_fail(const char *op, int rc) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    error_set("%s: MPI error on rank %d: %s", op, my_rank, msg);
    return -1;
}

int dist_init(int *argc, char ***argv) {
    int done = 0;
    MPI_Initialized(&done);
    if (done || up) {
        error_set("dist_init: MPI is already initialised (dist_init is called once per process)");
        return -1;
    }
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        error_set("dist_init: MPI_Init failed");
        return -1;
    }
    /* Errors come back as return codes, so they reach tapegrad_error(). */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    up = true;
    comm_seconds = 0;
    agreed_numel = -1;
    return 0;
}

int dist_finalize(void) {
    if (need_init("dist_finalize")) return -1;
    free(flat);
    flat = NULL;
    flat_bytes = 0;
    up = false;
    my_rank = n_ranks = -1;
    return MPI_Finalize() == MPI_SUCCESS ? 0 : (error_set("dist_finalize: MPI_Finalize failed"), -1);
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
 * listing the failed ranks, followed by its own message if it failed. */
int dist_all_ok(int status, const char *what) {
    if (need_init("dist_all_ok")) return -1;
    if (!what) what = "a step";
    char own[256] = "";
    if (status != 0) snprintf(own, sizeof own, "%s", tapegrad_error() ? tapegrad_error() : "");
    int *all = malloc((size_t)n_ranks * sizeof *all);
    if (!all) {
        error_set("dist_all_ok: out of memory for %d statuses", n_ranks);
        return -1;
    }
    int mine = status != 0, rc = MPI_Allgather(&mine, 1, MPI_INT, all, 1, MPI_INT, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        free(all);
        return mpi_fail("dist_all_ok", rc);
    }
    char ranks[256] = "";
    size_t len = 0;
    int failed = 0;
    for (int r = 0; r < n_ranks; r++)
        if (all[r]) {
            failed++;
            if (len < sizeof ranks - 16)
                len += (size_t)snprintf(ranks + len, sizeof ranks - len, "%s%d", failed > 1 ? ", " : "", r);
        }
    free(all);
    if (!failed) return 0;
    tapegrad_error_clear();
    if (own[0])
        error_set("%s failed on rank(s) %s of %d; here (rank %d): %s", what, ranks, n_ranks, my_rank, own);
    else
        error_set("%s failed on rank(s) %s of %d", what, ranks, n_ranks);
    return -1;
}

/* Every rank holds the same value v, or all return an error naming what. */
static int agree(const char *op, const char *what, int64_t v) {
    int64_t mm[2] = {v, -v}; /* MAX of both: the maximum and minus the minimum */
    int rc = MPI_Allreduce(MPI_IN_PLACE, mm, 2, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(op, rc);
    if (mm[0] != -mm[1]) {
        error_set("%s: the ranks' models differ: %s ranges from %lld to %lld (rank %d has %lld)", op, what,
                  (long long)-mm[1], (long long)mm[0], my_rank, (long long)v);
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
        error_set("dist_broadcast_model: model is NULL");
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
    if (agree("dist_broadcast_model", "the number of parameters and buffers", n) ||
        agree("dist_broadcast_model", "the parameter count (elements)", nn_model_numel(m)) ||
        agree("dist_broadcast_model", "the layout checksum (dtypes and sizes)", (int64_t)(sig >> 1)))
        return -1;
    for (int i = 0; i < n; i++) {
        const char *name;
        tensor *t;
        nn_model_state_at(m, i, &name, &t);
        /* Sizes are checked against int: MPI counts are int. */
        size_t bytes = (size_t)t->size * dtype_size(t->dtype);
        if (bytes > (size_t)INT32_MAX) {
            error_set("dist_broadcast_model: %s has %zu bytes, over MPI's int count", name, bytes);
            return -1; /* the same on every rank: the layouts agree */
        }
        int rc = MPI_Bcast(t->data, (int)bytes, MPI_BYTE, 0, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail("dist_broadcast_model", rc);
    }
    agreed_numel = -1;
    return 0;
}

int dist_allreduce_grads(nn_model *m) {
    if (need_init("dist_allreduce_grads")) return -1;
    if (!m) {
        /* Every rank passes the same model object kind; a NULL one is a
         * programming error on all ranks alike. */
        error_set("dist_allreduce_grads: model is NULL");
        return -1;
    }
    int n;
    tensor *const *p = nn_model_parameters(m, &n);
    int64_t numel = 0;
    for (int i = 0; i < n; i++) {
        if (p[i]->dtype != p[0]->dtype) {
            error_set("dist_allreduce_grads: parameters mix %s and %s; one dtype is needed",
                      dtype_name(p[0]->dtype), dtype_name(p[i]->dtype));
            return -1;
        }
        numel += p[i]->size;
    }
    /* A changed length is checked across ranks once (two integers), not on
     * every step: MPI_Allreduce with unequal counts has no defined outcome. */
    if (numel != agreed_numel) {
        if (agree("dist_allreduce_grads", "the gradient length (elements)", numel)) return -1;
        agreed_numel = numel;
    }
    if (numel == 0) return 0;
    if (numel > INT32_MAX) {
        error_set("dist_allreduce_grads: %lld gradient elements are over MPI's int count",
                  (long long)numel);
        return -1;
    }
    size_t es = n ? dtype_size(p[0]->dtype) : 4, bytes = (size_t)numel * es;
    if (bytes > flat_bytes) {
        void *nb = realloc(flat, bytes);
        if (!nb) {
            error_set("dist_allreduce_grads: out of memory for a %zu-byte gradient buffer", bytes);
            return -1;
        }
        flat = nb;
        flat_bytes = bytes;
    }
    char *at = flat;
    for (int i = 0; i < n; i++) {
        size_t b = (size_t)p[i]->size * es;
        if (p[i]->grad) memcpy(at, p[i]->grad->data, b);
        else memset(at, 0, b); /* all-bits-zero is 0.0 for both float types */
        at += b;
    }
    bool f64 = p[0]->dtype == DTYPE_F64;
    double t0 = MPI_Wtime();
    int rc = MPI_Allreduce(MPI_IN_PLACE, flat, (int)numel, f64 ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM,
                           MPI_COMM_WORLD);
    comm_seconds += MPI_Wtime() - t0;
    if (rc != MPI_SUCCESS) return mpi_fail("dist_allreduce_grads", rc);
    /* mean = sum / N, one rounding per element (as x * (1/N) is for N a
     * power of two, but exact division keeps any N correctly rounded). */
    if (f64) {
        double *g = flat;
        for (int64_t i = 0; i < numel; i++) g[i] /= n_ranks;
    } else {
        float *g = flat;
        for (int64_t i = 0; i < numel; i++) g[i] /= (float)n_ranks;
    }
    at = flat;
    for (int i = 0; i < n; i++) {
        size_t b = (size_t)p[i]->size * es;
        if (!p[i]->grad) {
            p[i]->grad = tensor_zeros(p[i]->dtype, p[i]->ndim, p[i]->shape);
            if (!p[i]->grad) return -1; /* the ranks now differ: the caller aborts */
        }
        memcpy(p[i]->grad->data, at, b);
        at += b;
    }
    return 0;
}

int dist_check_params(const nn_model *m) {
    if (need_init("dist_check_params")) return -1;
    uint64_t h = 0xcbf29ce484222325ULL;
    int n = 0;
    tensor *const *p = m ? nn_model_parameters(m, &n) : NULL;
    for (int i = 0; i < n; i++) h = fnv(h, p[i]->data, (size_t)p[i]->size * dtype_size(p[i]->dtype));
    uint64_t *all = malloc((size_t)n_ranks * sizeof *all);
    if (!all) {
        error_set("dist_check_params: out of memory for %d checksums", n_ranks);
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
    error_set("dist_check_params: the parameters of rank(s) %s differ from rank 0's (checksum %016llx; "
              "here, rank %d: %016llx): the ranks have diverged",
              ranks, (unsigned long long)h0, my_rank, (unsigned long long)h);
    return -1;
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
        error_set("dist_checkpoint_save: rank 0 could not write the checkpoint: %s", r.msg);
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
