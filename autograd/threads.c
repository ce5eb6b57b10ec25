/* threads.c - one setting for OpenMP kernels and OpenBLAS's GEMM threads.
 *
 * One thread unless asked for more. libgomp's and OpenBLAS's threads spin
 * while they wait for each other, so on a machine busy with other work more
 * threads can be many times slower than one (2 threads: 66 -> 320 ms a step
 * for a user's model). More threads come from tapegrad_set_threads(n) or from
 * OMP_NUM_THREADS in the environment, the user's explicit choice. The default
 * is applied when the library is loaded, before any GEMM, so OpenBLAS does
 * not keep its default of one thread per core. So is the work a loop needs
 * before it enters a parallel region (parallel_pays, internal.h), and how the
 * convolutions share images among threads (tg_threads_sleep): both depend on
 * OMP_WAIT_POLICY. */
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"

void openblas_set_num_threads(int n); /* OpenBLAS's own API (cblas.h) */

static int n_threads = 1;
static int64_t parallel_min = PARALLEL_MIN_ELEMS;

void tapegrad_set_threads(int n) {
    if (n < 1) n = 1;
    n_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int tapegrad_threads(void) { return n_threads; }

int64_t tg_parallel_min_for(const char *policy) {
    return policy && strcasecmp(policy, "passive") == 0 ? PARALLEL_MIN_PASSIVE : PARALLEL_MIN_ELEMS;
}

int64_t tg_parallel_min(void) { return parallel_min; }

bool tg_threads_sleep(void) { return parallel_min == PARALLEL_MIN_PASSIVE; }

__attribute__((constructor)) static void threads_default(void) {
    const char *env = getenv("OMP_NUM_THREADS");
    tapegrad_set_threads(env && *env ? omp_get_max_threads() : 1);
    parallel_min = tg_parallel_min_for(getenv("OMP_WAIT_POLICY"));
}

/* ------------------------------------------------ tg_par_items' workers
 *
 * One run at a time (the tape is single-threaded). The caller publishes a
 * run by setting the fields below and bumping `gen` for the workers taking
 * part (gen[k], k < threads - 1); each worker waits for its gen to
 * move, takes items from `next` until none are left, and counts itself in
 * `done`. Sleeping and waking follow one pattern on both sides: the sleeper
 * announces itself (sleepers, caller_asleep) under `mu` and re-checks the
 * condition before pthread_cond_wait; the waker changes the condition, then
 * reads the announcement, both sequentially consistent, so one of the two
 * sees the other and no wake-up is lost. */
enum { PAR_MAX_WORKERS = 63 };
static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake, idle;
    int started;       /* workers running (slots 1..started) */
    int sleepers;      /* workers in pthread_cond_wait(wake) */
    int caller_asleep; /* the caller in pthread_cond_wait(idle) */
    /* the run */
    tg_par_body body;
    void *ctx;
    int64_t n, next;
    unsigned team, done;         /* workers taking part, workers finished */
    unsigned gen[PAR_MAX_WORKERS]; /* runs published to each worker */
} par = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};
static _Thread_local bool in_body;

bool tg_par_in_body(void) { return in_body; }

static int64_t par_now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* Spins while (*word == value) != until_equal, at most TG_PAR_SPIN_US: whether
 * the wait ended (a worker waits for its gen to move, the caller for `done`
 * to reach the team). */
static bool par_spin(const unsigned *word, unsigned value, bool until_equal) {
    int64_t start = par_now_us();
    for (unsigned k = 1; (__atomic_load_n(word, __ATOMIC_ACQUIRE) == value) != until_equal; k++) {
        __builtin_ia32_pause();
        if (!(k & 127) && par_now_us() - start > TG_PAR_SPIN_US) return false;
    }
    return true;
}

static void par_take_items(int slot) {
    for (int64_t i; (i = __atomic_fetch_add(&par.next, 1, __ATOMIC_RELAXED)) < par.n;)
        par.body(par.ctx, i, slot);
}

static void *par_worker_main(void *arg) {
    const int slot = (int)(intptr_t)arg;
    unsigned *gen = &par.gen[slot - 1];
    unsigned seen = 0;
    in_body = true; /* a worker runs nothing but bodies */
    for (;;) {
        if (!par_spin(gen, seen, false)) {
            pthread_mutex_lock(&par.mu);
            __atomic_add_fetch(&par.sleepers, 1, __ATOMIC_SEQ_CST);
            while (__atomic_load_n(gen, __ATOMIC_SEQ_CST) == seen)
                pthread_cond_wait(&par.wake, &par.mu);
            __atomic_sub_fetch(&par.sleepers, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&par.mu);
        }
        seen = __atomic_load_n(gen, __ATOMIC_ACQUIRE);
        const unsigned team = par.team; /* the run's fields change once all are done */
        par_take_items(slot);
        if (__atomic_add_fetch(&par.done, 1, __ATOMIC_SEQ_CST) == team &&
            __atomic_load_n(&par.caller_asleep, __ATOMIC_SEQ_CST)) {
            pthread_mutex_lock(&par.mu);
            pthread_cond_signal(&par.idle);
            pthread_mutex_unlock(&par.mu);
        }
    }
    return NULL;
}

/* A forked child has none of the parent's workers. */
static void par_after_fork_child(void) {
    pthread_mutex_init(&par.mu, NULL);
    pthread_cond_init(&par.wake, NULL);
    pthread_cond_init(&par.idle, NULL);
    par.started = par.sleepers = par.caller_asleep = 0;
    memset(par.gen, 0, sizeof par.gen);
}

/* Starts workers up to `want`; the number running. */
static int par_start(int want) {
    static bool atfork;
    if (!atfork) atfork = pthread_atfork(NULL, NULL, par_after_fork_child) == 0;
    if (want > PAR_MAX_WORKERS) want = PAR_MAX_WORKERS;
    while (par.started < want) {
        pthread_attr_t a;
        pthread_t t;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &a, par_worker_main, (void *)(intptr_t)(par.started + 1));
        pthread_attr_destroy(&a);
        if (rc) break; /* fewer threads: the caller takes what they would have */
        par.started++;
    }
    return par.started;
}

void tg_par_items(int64_t n, int threads, tg_par_body body, void *ctx) {
    int team = threads - 1 < n - 1 ? threads - 1 : (int)(n - 1);
    if (omp_in_parallel()) team = 0; /* one run at a time: not from OpenMP's threads */
    if (team > 0 && !in_body) {
        int started = par_start(team);
        team = team < started ? team : started;
    }
    if (team < 1 || in_body) {
        const bool was = in_body;
        in_body = true;
        for (int64_t i = 0; i < n; i++) body(ctx, i, 0);
        in_body = was;
        return;
    }
    par.body = body, par.ctx = ctx, par.n = n, par.next = 0;
    par.team = (unsigned)team, par.done = 0;
    for (int k = 0; k < team; k++) __atomic_add_fetch(&par.gen[k], 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&par.sleepers, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&par.mu);
        pthread_cond_broadcast(&par.wake);
        pthread_mutex_unlock(&par.mu);
    }
    in_body = true;
    par_take_items(0);
    in_body = false;
    if (!par_spin(&par.done, par.team, true)) {
        pthread_mutex_lock(&par.mu);
        __atomic_store_n(&par.caller_asleep, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&par.done, __ATOMIC_SEQ_CST) < par.team)
            pthread_cond_wait(&par.idle, &par.mu);
        __atomic_store_n(&par.caller_asleep, 0, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&par.mu);
    }
}
