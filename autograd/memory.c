/* memory.c - every allocation of the library, and the tape's arena.
 *
 * jemalloc (mallocx with 64-byte alignment) is the allocator; sanitizer
 * builds define TAPEGRAD_SYSTEM_ALLOC and use aligned_alloc instead, since
 * jemalloc and ASan do not mix. The arena is a list of chunks with a bump
 * pointer; tape_reset rewinds it, and when a step needed more than one chunk
 * the chunks are merged into one big enough for the whole step, so after the
 * first steps a training loop allocates nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#ifndef TAPEGRAD_SYSTEM_ALLOC
#include <jemalloc/jemalloc.h>
#else
static int64_t system_live_bytes; /* live bytes, counted by hand */
#endif

#define ALIGN 64
/* Test hooks exist only in the library the tests link (built with
 * -DTAPEGRAD_TEST_HOOKS); the release library has neither the functions nor
 * the checks on its allocation path. */
#ifdef TAPEGRAD_TEST_HOOKS
static int64_t fail_countdown = -1;
void tg_mem_fail_after(int64_t n) { fail_countdown = n; }
#define FAIL_NOW() (fail_countdown >= 0 && fail_countdown-- == 0)
#else
#define FAIL_NOW() false
#endif

/* The ceiling on one allocation. Under overcommit the allocator grants any
 * size and the first touch of the pages brings the OOM killer instead of an
 * error, so a request larger than the machine is refused before asking:
 * by default the physical memory, which no single tensor can use whole. */
static size_t alloc_limit; /* 0: the default */

/* Asked once: sysconf(_SC_PHYS_PAGES) is a system call (sysinfo), and the
 * limit is read by every allocation, arena blocks included. A race between
 * threads stores the same value twice. */
static size_t physical_memory(void) {
    static size_t phys;
    if (!phys) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        /* unknown: no ceiling */
        phys = pages <= 0 || page <= 0 ? SIZE_MAX : (size_t)pages * (size_t)page;
    }
    return phys;
}

void tapegrad_set_alloc_limit(size_t bytes) { alloc_limit = bytes; }

size_t tapegrad_alloc_limit(void) { return alloc_limit ? alloc_limit : physical_memory(); }

/* What the allocation under way is for, named in an out-of-memory message:
 * the op being built (tg_node_begin to tg_node_finish) and the tensor being made
 * (tensor_new, tg_tensor_tape_new). */
static _Thread_local const char *ctx_op;
static _Thread_local struct {
    dtype dt;
    int ndim; /* -1: no tensor */
    const int64_t *shape;
} ctx_tensor = {DTYPE_F32, -1, NULL};

const char *tg_mem_context_op(const char *op) {
    const char *was = ctx_op;
    ctx_op = op;
    return was;
}

void tg_mem_context_tensor(dtype dt, int ndim, const int64_t *shape) {
    ctx_tensor.dt = dt;
    ctx_tensor.ndim = shape || ndim == 0 ? ndim : -1;
    ctx_tensor.shape = shape;
}

/* The message names the op being built when there is one; without (a vjp
 * running, a loader's buffer) the caller names itself: tensor_backward puts
 * "the vjp of OP failed: " in front. */
static void oom(size_t bytes, bool over_limit) {
    const char *op = ctx_op ? ctx_op : "", *sep = ctx_op ? ": " : "";
    if (ctx_tensor.ndim < 0) {
        if (over_limit)
            tg_error_set("%s%sout of memory: allocation of %zu bytes refused, over the limit of "
                         "%zu bytes (tapegrad_set_alloc_limit)",
                         op, sep, bytes, tapegrad_alloc_limit());
        else
            tg_error_set("%s%sout of memory: allocation of %zu bytes failed", op, sep, bytes);
        return;
    }
    tensor t = {.ndim = ctx_tensor.ndim};
    for (int i = 0; i < t.ndim && i < TENSOR_MAX_DIMS; i++) t.shape[i] = ctx_tensor.shape[i];
    char sh[96];
    tensor_shape_str(&t, sh, sizeof sh);
    if (over_limit)
        tg_error_set("%s%sout of memory: allocation of %zu bytes refused for a %s %s tensor, over "
                  "the limit of %zu bytes (tapegrad_set_alloc_limit)",
                  op, sep, bytes, tg_dtype_name(ctx_tensor.dt), sh, tapegrad_alloc_limit());
    else
        tg_error_set("%s%sout of memory: allocation of %zu bytes failed for a %s %s tensor", op,
                  sep, bytes, tg_dtype_name(ctx_tensor.dt), sh);
}

/* The allocator itself, without a message (tg_arena_rewind's merge may fail
 * quietly: it only costs the next step a few chunks). */
static void *raw_alloc(size_t bytes) {
    if (bytes > tapegrad_alloc_limit() || bytes > SIZE_MAX - 2 * ALIGN) return NULL;
    if (bytes == 0) bytes = 1;
    size_t rounded = (bytes + ALIGN - 1) & ~(size_t)(ALIGN - 1);
#ifdef TAPEGRAD_SYSTEM_ALLOC
    void *p = aligned_alloc(ALIGN, rounded + ALIGN);
    if (p) {
        *(size_t *)p = rounded; /* size kept in a header for the byte count */
        system_live_bytes += (int64_t)rounded;
        p = (char *)p + ALIGN;
    }
#else
    void *p = mallocx(rounded, MALLOCX_ALIGN(ALIGN));
#endif
    return p;
}

void *tg_mem_alloc(size_t bytes) {
    if (FAIL_NOW()) {
        oom(bytes, false);
        return NULL;
    }
    if (bytes > tapegrad_alloc_limit()) {
        oom(bytes, true);
        return NULL;
    }
    void *p = raw_alloc(bytes);
    if (!p) oom(bytes, false);
    return p;
}

void *tg_mem_calloc(size_t bytes) {
    void *p = tg_mem_alloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void tg_mem_free(void *p) {
    if (!p) return;
#ifdef TAPEGRAD_SYSTEM_ALLOC
    char *base = (char *)p - ALIGN;
    system_live_bytes -= (int64_t) * (size_t *)base;
    free(base);
#else
    dallocx(p, MALLOCX_ALIGN(ALIGN));
#endif
}

int64_t tapegrad_allocated_bytes(void) {
#ifdef TAPEGRAD_SYSTEM_ALLOC
    return system_live_bytes;
#else
    /* jemalloc counts the regions parked in this thread's cache as allocated
     * and returns them to its arenas a few at a time, so without the flush
     * the figure wanders by a few KB while nothing is allocated. */
    mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
    uint64_t epoch = 1;
    size_t sz = sizeof epoch;
    mallctl("epoch", &epoch, &sz, &epoch, sz); /* refresh the cached stats */
    size_t allocated = 0;
    sz = sizeof allocated;
    if (mallctl("stats.allocated", &allocated, &sz, NULL, 0) != 0) return -1;
    return (int64_t)allocated;
#endif
}

/* ------------------------------------------------------------- arena */
typedef struct chunk {
    struct chunk *next;
    size_t cap, used;
    char *base;
} chunk;

static chunk *arena_first, *arena_cur;
static size_t arena_step_bytes; /* bytes requested since the last rewind */
/* tapegrad_tape_peak_bytes: the arena's bytes in use (arena_step_bytes,
 * which tg_arena_seek lowers again) plus the checkpoints' gradient buffers
 * (other_bytes), and the most of that sum since the last rewind */
static int64_t other_bytes, peak_bytes;

static void note_peak(void) {
    int64_t now = (int64_t)arena_step_bytes + other_bytes;
    if (now > peak_bytes) peak_bytes = now;
}

void tg_tape_bytes_changed(int64_t delta) {
    other_bytes += delta;
    note_peak();
}

int64_t tapegrad_tape_peak_bytes(void) { return peak_bytes; }
#ifdef TAPEGRAD_TEST_HOOKS
static bool arena_poison; /* test builds: fresh blocks filled with NaN */
void tg_arena_set_poison(bool on) { arena_poison = on; }
#else
#define arena_poison false
#endif
#define ARENA_MIN_CHUNK (1u << 20)

static chunk *chunk_new(size_t cap, bool quiet) {
    void *(*alloc)(size_t) = quiet ? raw_alloc : tg_mem_alloc;
    chunk *c = alloc(sizeof *c);
    if (!c) return NULL;
    c->base = alloc(cap);
    if (!c->base) {
        tg_mem_free(c);
        return NULL;
    }
    c->next = NULL;
    c->cap = cap;
    c->used = 0;
    return c;
}

void *tg_arena_alloc(size_t bytes) {
    if (bytes > tapegrad_alloc_limit()) { /* also keeps the rounding below from wrapping */
        oom(bytes, true);
        return NULL;
    }
    /* the test hook counts arena blocks too: most are carved from a chunk
     * taken long before, so failing only tg_mem_alloc would never reach them */
    if (FAIL_NOW()) {
        oom(bytes, false);
        return NULL;
    }
    size_t need = (bytes + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (need == 0) need = ALIGN;
    arena_step_bytes += need;
    note_peak();
    while (arena_cur && arena_cur->used + need > arena_cur->cap) {
        if (!arena_cur->next) break;
        arena_cur = arena_cur->next;
        arena_cur->used = 0;
    }
    if (!arena_cur || arena_cur->used + need > arena_cur->cap) {
        size_t cap = need > ARENA_MIN_CHUNK ? need : ARENA_MIN_CHUNK;
        chunk *c = chunk_new(cap, false);
        if (!c) return NULL;
        if (arena_cur)
            arena_cur->next = c;
        else
            arena_first = c;
        arena_cur = c;
    }
    void *p = arena_cur->base + arena_cur->used;
    arena_cur->used += need;
    /* all-ones bytes are a NaN in float32 and float64 (and -1 in int64), so
     * a kernel that reads memory it never wrote gives NaN, not the zeros of a
     * fresh page or the values of the last step */
    if (arena_poison) memset(p, 0xff, need);
    return p;
}

void tg_arena_release(void) {
    for (chunk *c = arena_first, *next; c; c = next) {
        next = c->next;
        tg_mem_free(c->base);
        tg_mem_free(c);
    }
    arena_first = arena_cur = NULL;
    arena_step_bytes = 0;
    peak_bytes = other_bytes;
}

void tg_arena_rewind(void) {
    if (arena_first && arena_first->next) {
        /* The step spilled into several chunks: replace them by one chunk
         * that holds the whole step, so the next step stays in one chunk. */
        size_t cap = arena_step_bytes + arena_step_bytes / 8, limit = tapegrad_alloc_limit();
        if (cap > limit) cap = limit; /* the steps to come spill past it again */
        chunk *c = arena_first;
        while (c) {
            chunk *next = c->next;
            tg_mem_free(c->base);
            tg_mem_free(c);
            c = next;
        }
        /* quiet: a failure here is no error of tape_reset's caller; the next
         * step allocates its chunks as the first one did */
        arena_first = chunk_new(cap < ARENA_MIN_CHUNK ? ARENA_MIN_CHUNK : cap, true);
    }
    if (arena_first) arena_first->used = 0;
    arena_cur = arena_first;
    arena_step_bytes = 0;
    peak_bytes = other_bytes;
}

int tg_arena_pop(void *p, size_t bytes) {
    size_t need = (bytes + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (need == 0) need = ALIGN;
    if (!arena_cur || arena_cur->used < need || (char *)p != arena_cur->base + arena_cur->used - need)
        return -1;
    arena_cur->used -= need;
    arena_step_bytes -= need;
    return 0;
}

/* The checker re-runs the user's function after the recorded step and then
 * drops what the re-run allocated: a position in the arena to come back to.
 * Chunks past the position stay linked and are reused. */
arena_pos tg_arena_tell(void) {
    return (arena_pos){arena_cur, arena_cur ? arena_cur->used : 0, arena_step_bytes};
}

void tg_arena_seek(arena_pos p) {
    arena_cur = p.chunk ? p.chunk : arena_first;
    if (arena_cur) arena_cur->used = p.chunk ? p.used : 0;
    arena_step_bytes = p.step_bytes;
}
