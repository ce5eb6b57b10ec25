/* recompute.c - gradient checkpointing: a segment of the forward pass kept
 * as one tape node, run again when backward reaches it.
 *
 * tape_checkpoint(fn, ctx, inputs, n) runs fn on a tape of its own
 * (tg_tape_swap), recording, so that afterwards the segment's nodes say what
 * it read: its inputs, and tensors from outside it (parameters through ctx,
 * results of earlier ops) that require grad. Those "captured" tensors become
 * inputs of the checkpoint node too, so that backward gives them gradients,
 * the checker perturbs and replays them, and tensor_grad's walks see them.
 * Then the result is copied aside, the segment's tape, arena memory and
 * tensor headers are given back, and one node is recorded whose output holds
 * the result.
 *
 * Backward (ckpt_vjp) calls fn again on the node's inputs, recording on a
 * fresh tape, and walks that tape in reverse as tensor_backward walks its
 * own: the same vjps add into the same buffers in the same order (an input's
 * or a parameter's buffer is the very one the outer walk handed to the
 * checkpoint), so the gradients are bit-identical to the plain run's. Then
 * the recomputed segment is given back again. The outer tape's nodes never
 * move meanwhile: the callers of a vjp hold pointers to them.
 *
 * Random draws: every draw passes through tg_rng_touch while a segment
 * runs. The first run notes each generator's state at its first draw (and
 * at the end); a second run sets the generator back to the noted state at
 * its first draw, checks that it ends where the first run ended, and puts
 * the generator's state of before the second run back, so that the draws
 * after the step are the plain run's. A generator on fn's own stack (seeded
 * inside fn each call) is left alone.
 *
 * Memory: a checkpoint output's gradient lives in a block of its own
 * (grad_materialize), given back once the checkpoint's walk has read it; a
 * checkpoint's input gradient whose producer is a checkpoint gets its block
 * only when the walk first writes to it, after the upstream block is given
 * back. With several results (tape_checkpoint_multi) the node's output is
 * their elements end to end and each result's gradient is a part of the
 * node's.
 *
 * The forward (ckpt_forward), run by the checker's replays, calls fn once
 * more in a no-grad scope and copies the result into the node's output; a
 * graph vjp (ckpt_vjp_graph, tensor_grad with create_graph) recomputes the
 * segment on the outer tape and differentiates it there with create_graph. */
#include <math.h>
#include <string.h>

#include "internal.h"

#define CKPT_MAX_RNGS 16
#define CKPT_MAX_DEPTH 64

static const char *const NAME = "tape_checkpoint";

/* The generators a segment draws from: state at the first draw and at the end. */
typedef struct ckpt_rngs {
    int n;
    rng *g[CKPT_MAX_RNGS];
    rng start[CKPT_MAX_RNGS], end[CKPT_MAX_RNGS];
} ckpt_rngs;

/* What a checkpoint node keeps, in the arena (freed by tape_reset like the
 * node), its address in ip[0]; ip[1] is the number of fn's inputs. With m
 * outputs (m > 1) the node's output is their elements end to end, [total],
 * and each output the user sees is a reshaped narrow of it. */
typedef struct ckpt {
    tape_checkpoint_fn fn;             /* one output, or */
    tape_checkpoint_multi_fn fn_multi; /* m outputs */
    void *ctx;
    int n_args;     /* in[0..n_args) are fn's inputs, the rest were captured */
    int m;
    tensor *shapes; /* m headers: each output's dtype and shape (no data) */
    tensor **orig;  /* the node's inputs as recorded: the checker's clones differ */
    ckpt_rngs rngs;
} ckpt;

static ckpt *rec_of(const tape_node *n) { return (ckpt *)(intptr_t)n->ip[0]; }

/* ------------------------------------------------------------ generators */
typedef struct rng_frame {
    bool replay;          /* false: note the states; true: rewind to them */
    ckpt_rngs *log;
    rng saved[CKPT_MAX_RNGS];
    bool touched[CKPT_MAX_RNGS];
    bool overflow, foreign;
    uintptr_t top;        /* frame address of the caller of fn */
} rng_frame;

int tg_rng_watch; /* frames open */
static rng_frame frames[CKPT_MAX_DEPTH];

void tg_rng_touch(rng *g) {
    const uintptr_t a = (uintptr_t)g, here = (uintptr_t)__builtin_frame_address(0);
    /* outermost first: a rewind by an enclosing recomputation happens
     * before an inner segment notes the state */
    for (int d = 0; d < tg_rng_watch; d++) {
        rng_frame *f = &frames[d];
        if (a >= here && a < f->top) continue; /* on the stack below the caller of fn */
        ckpt_rngs *L = f->log;
        int k = 0;
        while (k < L->n && L->g[k] != g) k++;
        if (!f->replay) {
            if (k < L->n) continue;
            if (L->n == CKPT_MAX_RNGS) {
                f->overflow = true;
                continue;
            }
            L->g[k] = g;
            L->start[k] = *g;
            L->n++;
        } else if (k == L->n) {
            f->foreign = true;
        } else if (!f->touched[k]) {
            f->touched[k] = true;
            f->saved[k] = *g;
            *g = L->start[k];
        }
    }
}

static bool rng_same(const rng *a, const rng *b) { return a->state == b->state && a->inc == b->inc; }

/* Calls the segment's function: ys[0..m) its results; 0, or -1 when it
 * failed (an error set, or "returned NULL without an error" set here). */
static int call_fn(const ckpt *c, tensor *const *in, tensor **ys) {
    const uint64_t errors = tg_error_count();
    for (int i = 0; i < c->m; i++) ys[i] = NULL;
    int rc;
    if (c->fn) {
        ys[0] = c->fn(c->ctx, in, c->n_args);
        rc = ys[0] ? 0 : -1;
    } else {
        rc = c->fn_multi(c->ctx, in, c->n_args, ys, c->m) ? -1 : 0;
        for (int i = 0; i < c->m && rc == 0; i++) {
            if (ys[i]) continue;
            if (tg_error_count() == errors)
                tg_error_set("fn returned 0 but left output %d NULL", i);
            rc = -1;
        }
    }
    if (rc && tg_error_count() == errors) tg_error_set("fn returned NULL without an error");
    return rc;
}

/* call_fn inside a generator frame (noinline: its frame address bounds
 * fn's stack). *fault = 1 when the segment draws from too many generators,
 * 2 when a second run draws differently. */
static __attribute__((noinline)) int run_fn(ckpt_rngs *log, bool replay, const ckpt *c,
                                            tensor *const *in, tensor **ys, int *fault) {
    *fault = 0;
    if (tg_rng_watch == CKPT_MAX_DEPTH) {
        tg_error_set("%s: checkpoints nested deeper than %d", NAME, CKPT_MAX_DEPTH);
        return -1;
    }
    rng_frame *f = &frames[tg_rng_watch];
    memset(f, 0, sizeof *f);
    f->replay = replay;
    f->log = log;
    f->top = (uintptr_t)__builtin_frame_address(0);
    if (!replay) log->n = 0;
    tg_rng_watch++;
    int rc = call_fn(c, in, ys);
    tg_rng_watch--;
    if (!replay) {
        for (int k = 0; k < log->n; k++) log->end[k] = *log->g[k];
        if (f->overflow) *fault = 1;
        return rc;
    }
    for (int k = 0; k < log->n; k++) {
        if (!f->touched[k] || !rng_same(log->g[k], &log->end[k])) *fault = 2;
        if (f->touched[k]) *log->g[k] = f->saved[k];
    }
    if (f->foreign) *fault = 2;
    return rc;
}

/* ------------------------------------------------- gradient buffers */
/* The gradients of checkpoint outputs live in blocks of their own, given
 * back when the checkpoint's vjp has read them: in a chain of checkpoints
 * two are in use at a time, where the arena would keep one per link until
 * the reset. The blocks are kept for the next steps (freed by tape_release). */
typedef struct pool_block {
    void *data;
    size_t bytes;
    bool used;
} pool_block;
static pool_block *pool;
static int pool_n, pool_cap;

/* Memory for the gradient header g: a free block of its size, or a new one. */
static int grad_materialize(tensor *g) {
    const size_t bytes = (size_t)g->size * tg_dtype_size(g->dtype);
    int k = 0;
    while (k < pool_n && (pool[k].used || pool[k].bytes != bytes)) k++;
    if (k == pool_n) {
        if (pool_n == pool_cap) {
            int cap = pool_cap ? 2 * pool_cap : 8;
            pool_block *p = tg_mem_alloc((size_t)cap * sizeof *p);
            if (!p) return -1;
            if (pool_n) memcpy(p, pool, (size_t)pool_n * sizeof *p);
            tg_mem_free(pool);
            pool = p;
            pool_cap = cap;
        }
        tg_mem_context_tensor(g->dtype, g->ndim, g->shape);
        void *d = tg_mem_alloc(bytes ? bytes : 1);
        tg_mem_context_tensor(g->dtype, -1, NULL);
        if (!d) return -1;
        pool[pool_n++] = (pool_block){d, bytes, false};
    }
    pool[k].used = true;
    g->data = pool[k].data;
    memset(g->data, 0, bytes);
    tg_tape_bytes_changed((int64_t)bytes);
    return 0;
}

tensor *tg_checkpoint_grad_new(const tensor *t, bool deferred) {
    tensor *g = tg_tape_header_new();
    if (!g) return NULL;
    memset(g, 0, sizeof *g);
    g->dtype = t->dtype;
    g->ndim = t->ndim;
    memcpy(g->shape, t->shape, sizeof g->shape);
    g->size = t->size;
    g->tape_owned = true;
    g->is_grad = true;
    g->epoch = tg_tape_epoch_now;
    g->node = -1;
    if (!deferred && grad_materialize(g)) return NULL;
    return g;
}

/* Gives back out's gradient when it is a pool block (tensor_grad lends its
 * own buffers instead), marking its header stale. */
static void grad_release(tensor *out) {
    tensor *g = out->grad;
    if (!g) return;
    for (int k = 0; k < pool_n; k++) {
        if (pool[k].data != g->data || !pool[k].used) continue;
        pool[k].used = false;
        tg_tape_bytes_changed(-(int64_t)pool[k].bytes);
        g->epoch = tg_tape_epoch_now - 1;
        out->grad = NULL;
        return;
    }
}

void tg_checkpoint_reset(void) {
    for (int k = 0; k < pool_n; k++) {
        if (!pool[k].used) continue;
        pool[k].used = false;
        tg_tape_bytes_changed(-(int64_t)pool[k].bytes);
    }
}

void tg_checkpoint_release(void) {
    tg_checkpoint_reset();
    for (int k = 0; k < pool_n; k++) tg_mem_free(pool[k].data);
    tg_mem_free(pool);
    pool = NULL;
    pool_n = pool_cap = 0;
}

/* ------------------------------------------------------- the segment */
/* t is the output of a node of the tape now current (the segment's). */
static bool made_here(const tensor *t) {
    if (!t || !t->tape_owned || t->node < 0 || t->epoch != tg_tape_epoch_now) return false;
    const tape_node *p = tg_tape_node_at(t->node);
    return p && p->out == t;
}

/* Input j of node s carries a gradient. */
static bool slot_wants(const tape_node *s, int j) {
    const tensor *t = s->in[j];
    return t && t->requires_grad && !mask_bit(s->op->no_grad_inputs, j);
}

/* Where a segment ran: the arena, the header ring and the tape to go back to. */
typedef struct seg_state {
    arena_pos arena;
    tape_header_pos headers;
    tape_frame tape;      /* the outer tape while the segment's is current */
    int no_grad;
    uint32_t epoch;
} seg_state;

static void seg_open(seg_state *s, int no_grad_depth) {
    s->arena = tg_arena_tell();
    s->headers = tg_tape_header_tell();
    s->tape = (tape_frame){0};
    s->epoch = tg_tape_epoch_now;
    tg_tape_swap(&s->tape);
    s->no_grad = tg_tape_set_no_grad_depth(no_grad_depth);
}

/* The outer tape back, and every tensor the segment made released: marked
 * stale (a pointer kept through ctx is refused, even when the header ring
 * grew meanwhile and tg_tape_header_seek cannot hand the slots back), its
 * memory given back. Returns -1 when fn reset the tape: then nothing of the
 * outer step is left either, and the tape is reset once more to say so. */
static int seg_close(seg_state *s) {
    const int64_t m = tg_tape_node_count();
    const bool reset = tg_tape_epoch_now != s->epoch;
    for (int64_t i = 0; i < m && !reset; i++) {
        tape_node *p = tg_tape_node_at(i);
        p->out->epoch = tg_tape_epoch_now - 1;
        for (int k = 0; k < NODE_MAX_SAVED; k++)
            if (p->saved[k] && p->saved[k]->tape_owned) p->saved[k]->epoch = tg_tape_epoch_now - 1;
    }
    tg_tape_swap(&s->tape);
    tg_mem_free(s->tape.nodes);
    s->tape = (tape_frame){0};
    tg_tape_set_no_grad_depth(s->no_grad);
    if (reset) {
        tape_reset();
        tapegrad_error_clear();
        tg_error_set("%s: fn called tape_reset() or tape_release(), which released the step's tape"
                     " (the checkpoint's inputs with it); fn is run again during backward and"
                     " must leave the tape to its caller",
                     NAME);
        return -1;
    }
    tg_arena_seek(s->arena);
    tg_tape_header_seek(s->headers);
    return 0;
}

/* For the checker's clones of the node (localisation): a captured tensor's
 * clone lends its data to the tensor fn reads through ctx, and back. */
static void swap_captured(const tape_node *n, const ckpt *c) {
    for (int k = c->n_args; k < n->n_in; k++) {
        if (n->in[k] == c->orig[k]) continue;
        void *d = n->in[k]->data;
        n->in[k]->data = c->orig[k]->data;
        c->orig[k]->data = d;
    }
}

/* The gradient slot of input k of the checkpoint for tensor t read by the
 * recomputed segment, or -1. */
static int input_slot(const tape_node *n, const ckpt *c, const tensor *t) {
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] == t || c->orig[k] == t) return k;
    return -1;
}

/* The recomputed results against the first run's: same dtypes and shapes,
 * and (on the tape: `recorded`) computed by the segment when they require
 * grad. */
static int check_results(const ckpt *c, tensor *const *ys, const char *when, bool recorded) {
    char a[96], b[96], what[32] = "";
    for (int i = 0; i < c->m; i++) {
        const tensor *y = ys[i], *e = &c->shapes[i];
        bool own = !recorded || !e->requires_grad || made_here(y);
        if (y->dtype == e->dtype && tensor_same_shape(y, e) && own) continue;
        if (c->m > 1) snprintf(what, sizeof what, " output %d:", i);
        tg_error_set("%s:%s fn gave %s %s%s, the first run %s %s: fn must compute the same graph "
                     "from the same values each call",
                     when, what, tg_dtype_name(y->dtype), tensor_shape_str(y, a, sizeof a),
                     own ? "" : " not computed by the segment", tg_dtype_name(e->dtype),
                     tensor_shape_str(e, b, sizeof b));
        return -1;
    }
    return 0;
}

static const char *const RNG_FAULT =
    "%s: the segment drew random numbers differently from its first run (another generator, "
    "or another count): fn must draw the same numbers from the same generators each call";

/* A header for elements [off, off + like's size) of g's data, of like's
 * shape: the gradient of one of several outputs, inside the node's. */
static tensor *grad_part(const tensor *g, int64_t off, const tensor *like) {
    tensor *v = tg_tape_header_new();
    if (!v) return NULL;
    memset(v, 0, sizeof *v);
    v->dtype = like->dtype;
    v->ndim = like->ndim;
    memcpy(v->shape, like->shape, sizeof v->shape);
    v->size = like->size;
    v->data = (char *)g->data + (size_t)off * tg_dtype_size(like->dtype);
    v->tape_owned = v->is_grad = true;
    v->epoch = tg_tape_epoch_now;
    v->node = -1;
    return v;
}

/* Backpropagates the upstream gradient (n->out->grad) through the segment
 * just recomputed on the current tape, ys its results, into gin. */
static void sub_walk(tape_node *n, const ckpt *c, tensor *const *gin, tensor **ys) {
    char a[96];
    /* the seeds: the upstream gradient itself (for several outputs, each
     * one's part of it), read by each result's producer; a copy for a
     * result the segment reads too, whose gradient the segment's own vjps
     * then add to (the upstream buffer is the caller's, to be left as it
     * is). A result that does not require grad is not the segment's. */
    bool release_early = c->m == 1;
    int64_t off = 0;
    for (int i = 0; i < c->m; off += ys[i]->size, i++) {
        if (!made_here(ys[i])) continue;
        bool read_inside = false;
        for (int64_t k = 0, m = tg_tape_node_count(); k < m && !read_inside; k++) {
            const tape_node *s = tg_tape_node_at(k);
            for (int j = 0; j < s->n_in; j++) read_inside |= s->in[j] == ys[i];
        }
        tensor *part = c->m == 1 ? n->out->grad : grad_part(n->out->grad, off, ys[i]);
        if (!part) return;
        if (read_inside) {
            release_early = false;
            tensor *copy = tg_tensor_tape_new(part->dtype, part->ndim, part->shape);
            if (!copy) return;
            memcpy(copy->data, part->data, (size_t)part->size * tg_dtype_size(part->dtype));
            copy->is_grad = true;
            part = copy;
        }
        ys[i]->grad = part;
    }
    const uint64_t errors = tg_error_count();
    const bool pending_before = tg_error_pending();
    tensor *small[8];
    for (int64_t i = tg_tape_node_count() - 1; i >= 0; i--) {
        tape_node *s = tg_tape_node_at(i);
        if (!s->out->grad) continue;
        tensor **g = s->n_in <= 8 ? small : tg_arena_alloc((size_t)s->n_in * sizeof *g);
        if (!g) return;
        for (int j = 0; j < s->n_in; j++) {
            tensor *t = s->in[j];
            g[j] = NULL;
            if (!slot_wants(s, j)) continue;
            if (made_here(t)) {
                if (!t->grad) {
                    t->grad = tg_tensor_tape_zeros(t->dtype, t->ndim, t->shape);
                    if (!t->grad) return;
                    t->grad->is_grad = true;
                }
                g[j] = t->grad;
                continue;
            }
            int k = input_slot(n, c, t);
            if (k < 0) {
                tg_error_set("recomputing the segment: %s reads %s, which requires grad and was not"
                             " read by the first run: fn must compute the same graph each call",
                             s->op->name, tensor_shape_str(t, a, sizeof a));
                return;
            }
            if (gin[k] && !gin[k]->data && grad_materialize(gin[k])) return;
            g[j] = gin[k];
        }
        tg_vjp_call(s->op, s, g);
        /* the upstream gradient has done its work: its memory can hold the
         * input's gradient, given memory only now (deferred) */
        if (release_early && s->out == ys[0]) {
            ys[0]->grad = NULL;
            grad_release(n->out);
        }
        if (tg_error_count() != errors) {
            if (!pending_before)
                tg_error_prefix("recomputing the segment: the vjp of %s (segment position %lld) "
                                "failed: ",
                                s->op->name, (long long)i);
            return;
        }
    }
}

static void ckpt_vjp(tape_node *n, tensor *const *gin) {
    ckpt *c = rec_of(n);
    tensor *ys[TAPE_CHECKPOINT_MAX_OUTPUTS];
    swap_captured(n, c);
    seg_state s;
    seg_open(&s, 0); /* records even when backward runs in a no-grad scope */
    int fault;
    const char *when = "recomputing the segment";
    if (run_fn(&c->rngs, true, c, n->in, ys, &fault)) {
        tg_error_prefix("%s: fn failed: ", when);
    } else if (check_results(c, ys, when, true) == 0) {
        /* one result's values are the node's output, bit for bit: when its
         * memory is the arena's last block, the output stands in for it */
        if (c->m == 1 &&
            tg_arena_pop(ys[0]->data, (size_t)ys[0]->size * tg_dtype_size(ys[0]->dtype)) == 0)
            ys[0]->data = n->out->data;
        if (fault) tg_error_set(RNG_FAULT, when);
        else sub_walk(n, c, gin, ys);
    }
    /* a deferred gradient the segment never wrote to is zero; on a failure
     * to make it, the input is left without one rather than with a header
     * without memory */
    for (int k = 0; k < n->n_in; k++) {
        if (!gin[k] || gin[k]->data || grad_materialize(gin[k]) == 0) continue;
        if (n->in[k]->grad == gin[k]) n->in[k]->grad = NULL;
    }
    seg_close(&s);
    swap_captured(n, c);
    grad_release(n->out);
}

/* The checker's replays: the segment's function of the node's current
 * inputs, off the tape. */
static void ckpt_forward(tape_node *n) {
    ckpt *c = rec_of(n);
    tensor *ys[TAPE_CHECKPOINT_MAX_OUTPUTS];
    swap_captured(n, c);
    seg_state s;
    seg_open(&s, 1);
    int fault;
    const char *when = "checkpoint: running the segment again";
    bool ok = false;
    if (run_fn(&c->rngs, true, c, n->in, ys, &fault)) tg_error_prefix("%s: fn failed: ", when);
    else if (fault) tg_error_set(RNG_FAULT, when);
    else ok = check_results(c, ys, when, false) == 0;
    char *o = n->out->data;
    for (int i = 0; ok && i < c->m; i++) {
        const size_t bytes = (size_t)ys[i]->size * tg_dtype_size(ys[i]->dtype);
        memcpy(o, ys[i]->data, bytes);
        o += bytes;
    }
    if (!ok)
        for (int64_t i = 0; i < n->out->size; i++) tensor_set(n->out, i, NAN);
    seg_close(&s);
    swap_captured(n, c);
}

/* create_graph: the segment recomputed on the outer tape, where it stays
 * (the graph of its gradient reads it), and differentiated there; several
 * results are flattened and joined end to end, as the node's output. */
static int ckpt_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    ckpt *c = rec_of(n);
    tensor *ys[TAPE_CHECKPOINT_MAX_OUTPUTS];
    const int64_t floor = tg_tape_node_count();
    int fault;
    const char *when = "checkpoint: recomputing the segment";
    if (run_fn(&c->rngs, true, c, n->in, ys, &fault)) {
        tg_error_prefix("%s: fn failed: ", when);
        return -1;
    }
    if (check_results(c, ys, when, true)) return -1;
    if (fault) {
        tg_error_set(RNG_FAULT, when);
        return -1;
    }
    tensor *y = ys[0];
    if (c->m > 1) {
        for (int i = 0; i < c->m; i++) ys[i] = tensor_reshape(ys[i], 1, &ys[i]->size);
        y = tensor_concat(ys, c->m, 0);
        if (!y) return -1;
    }
    int m = 0;
    for (int j = 0; j < n->n_in; j++) m += want[j];
    tensor **wrt = tg_arena_alloc((size_t)(m ? m : 1) * sizeof *wrt),
           **res = tg_arena_alloc((size_t)(m ? m : 1) * sizeof *res);
    if (!wrt || !res) return -1;
    m = 0;
    for (int j = 0; j < n->n_in; j++)
        if (want[j]) wrt[m++] = n->in[j];
    /* the walk stops at the recomputation's first node: the inputs are its leaves */
    if (tg_grad_from("checkpoint", floor, y, g, wrt, m, true, true, res)) return -1;
    m = 0;
    for (int j = 0; j < n->n_in; j++)
        if (want[j]) gin[j] = res[m++];
    return tg_graph_vjp_done(n, want, gin);
}

const op_def tg_op_checkpoint = {
    .name = "checkpoint",
    .arity = -1,
    .no_grad_inputs = 0,
    .forward = ckpt_forward,
    .vjp = ckpt_vjp,
    .sample = NULL,
    .build = NULL,
    .signature = "tape_checkpoint(fn, ctx, inputs, n)",
    .formula_forward = "y = fn(ctx, inputs), intermediates dropped",
    .formula_gradient = "fn recomputed, its vjps run on the recomputed segment",
    .notes = "not in the registry: the segment is the user's function",
    .vjp_graph = ckpt_vjp_graph,
};

/* ------------------------------------------------------- the scope */
static int check_args(const char *name, bool have_fn, tensor *const *inputs, int n,
                      tensor **outputs, int m) {
    if (!have_fn) {
        tg_error_set("%s: fn is NULL; give the function that computes the segment", name);
        return -1;
    }
    if (n < 0) {
        tg_error_set("%s: n = %d inputs; give 0 or more", name, n);
        return -1;
    }
    if (n > 0 && !inputs) {
        tg_error_set("%s: inputs is NULL with n = %d; give an array of n tensors", name, n);
        return -1;
    }
    if (!outputs || m < 1 || m > TAPE_CHECKPOINT_MAX_OUTPUTS) {
        tg_error_set("%s: outputs %s with m = %d; give an array of m tensor pointers, m in 1..%d",
                     name, outputs ? "given" : "NULL", m, TAPE_CHECKPOINT_MAX_OUTPUTS);
        return -1;
    }
    for (int i = 0; i < m; i++) outputs[i] = NULL;
    for (int i = 0; i < n; i++) {
        if (!inputs[i]) {
            if (!tg_error_pending()) tg_error_set("%s: input %d is NULL", name, i);
            return -1;
        }
        char what[32];
        snprintf(what, sizeof what, "input %d", i);
        if (tg_tensor_check_fresh(name, what, inputs[i])) return -1;
    }
    return 0;
}

/* The tensors the segment read from outside that carry a gradient, after
 * fn's inputs: the checkpoint node's inputs (*all, tg_mem_alloc'd). */
static int gather_inputs(tensor *const *inputs, int n, tensor ***all, int *n_all) {
    int cap = n + 16, m = 0;
    tensor **a = tg_mem_alloc((size_t)cap * sizeof *a);
    if (!a) return -1;
    for (int i = 0; i < n; i++) a[m++] = inputs[i];
    for (int64_t i = 0, nn = tg_tape_node_count(); i < nn; i++) {
        const tape_node *s = tg_tape_node_at(i);
        for (int j = 0; j < s->n_in; j++) {
            tensor *t = s->in[j];
            if (!slot_wants(s, j) || made_here(t)) continue;
            int k = 0;
            while (k < m && a[k] != t) k++;
            if (k < m) continue;
            if (m == cap) {
                tensor **b = tg_mem_alloc((size_t)(2 * cap) * sizeof *b);
                if (!b) {
                    tg_mem_free(a);
                    return -1;
                }
                memcpy(b, a, (size_t)m * sizeof *a);
                tg_mem_free(a);
                a = b;
                cap *= 2;
            }
            a[m++] = t;
        }
    }
    *all = a;
    *n_all = m;
    return 0;
}

/* fn's first results, checked: 0 to record the checkpoint, 1 for a plain
 * call (no result requires grad), -1 with an error. */
static int check_first(const char *name, tensor *const *ys, int m) {
    char a[96];
    bool any = false;
    for (int i = 0; i < m; i++) {
        const tensor *y = ys[i];
        if (tensor_is_stale(y)) {
            tg_error_set("%s: fn returned a stale tensor %s", name, tensor_shape_str(y, a, sizeof a));
            return -1;
        }
        any |= y->requires_grad;
    }
    if (!any) return 1;
    for (int i = 0; i < m; i++) {
        const tensor *y = ys[i];
        char which[32] = "";
        if (m > 1) snprintf(which, sizeof which, " output %d:", i);
        if (y->requires_grad && !made_here(y)) {
            tg_error_set("%s:%s fn returned %s, a tensor it did not compute (one of its inputs or a "
                         "tensor made before the call); return a result of the segment's ops",
                         name, which, tensor_shape_str(y, a, sizeof a));
            return -1;
        }
        if (y->dtype == DTYPE_I64 || y->dtype != ys[0]->dtype) {
            tg_error_set("%s:%s fn returned a %s tensor %s; the outputs must share one float dtype"
                         " (output 0 is %s)",
                         name, which, tg_dtype_name(y->dtype), tensor_shape_str(y, a, sizeof a),
                         tg_dtype_name(ys[0]->dtype));
            return -1;
        }
        for (int j = 0; j < i; j++) {
            if (ys[j] != y) continue;
            tg_error_set("%s: outputs %d and %d are the same tensor %s; each output must be a "
                         "tensor of its own",
                         name, j, i, tensor_shape_str(y, a, sizeof a));
            return -1;
        }
    }
    return 0;
}

/* Both public forms: c describes fn (ctx, n_args, m). */
static int checkpoint(const char *name, ckpt *c, tensor *const *inputs, int n, tensor **outputs) {
    const int m = c->m;
    if (!tape_is_recording()) {
        if (call_fn(c, inputs, outputs)) {
            tg_error_prefix("%s: fn failed: ", name);
            return -1;
        }
        return 0;
    }
    seg_state s;
    seg_open(&s, 0);
    int fault;
    tensor *ys[TAPE_CHECKPOINT_MAX_OUTPUTS];
    int rc = run_fn(&c->rngs, false, c, inputs, ys, &fault);
    if (tg_tape_epoch_now != s.epoch) {
        seg_close(&s);
        return -1;
    }
    if (rc) {
        /* an inner checkpoint's failure names the scope already: once is enough */
        const char *e = tapegrad_error();
        if (e && strncmp(e, NAME, strlen(NAME)) != 0) tg_error_prefix("%s: fn failed: ", name);
    } else if (fault) {
        tg_error_set("%s: the segment draws from more than %d generators", name, CKPT_MAX_RNGS);
        rc = -1;
    } else {
        rc = check_first(name, ys, m);
    }
    if (rc == 1) {
        /* nothing to differentiate: a plain call, whose results stay */
        tg_tape_swap(&s.tape);
        tg_mem_free(s.tape.nodes);
        tg_tape_set_no_grad_depth(s.no_grad);
        for (int i = 0; i < m; i++) outputs[i] = ys[i];
        return 0;
    }
    if (rc) {
        seg_close(&s);
        return -1;
    }
    /* the inputs and captured tensors, and the results set aside end to end */
    tensor **all = NULL;
    int n_all = 0;
    tensor info[TAPE_CHECKPOINT_MAX_OUTPUTS];
    size_t bytes = 0;
    for (int i = 0; i < m; i++) {
        info[i] = *ys[i];
        bytes += (size_t)ys[i]->size * tg_dtype_size(ys[i]->dtype);
    }
    char *kept = tg_mem_alloc(bytes ? bytes : 1);
    for (size_t i = 0, o = 0; kept && i < (size_t)m; i++) {
        memcpy(kept + o, ys[i]->data, (size_t)ys[i]->size * tg_dtype_size(ys[i]->dtype));
        o += (size_t)ys[i]->size * tg_dtype_size(ys[i]->dtype);
    }
    rc = kept ? gather_inputs(inputs, n, &all, &n_all) : -1;
    if (seg_close(&s) || rc) {
        tg_mem_free(kept);
        tg_mem_free(all);
        return -1;
    }
    const int64_t total = (int64_t)(bytes / tg_dtype_size(info[0].dtype));
    tape_node *nd = m == 1 ? tg_node_begin(&tg_op_checkpoint, all, n_all, info[0].dtype,
                                           info[0].ndim, info[0].shape)
                           : tg_node_begin(&tg_op_checkpoint, all, n_all, info[0].dtype, 1, &total);
    ckpt *r = nd ? tg_arena_alloc(sizeof *r) : NULL;
    tensor **orig = r ? tg_arena_alloc((size_t)n_all * sizeof *orig) : NULL;
    tensor *shapes = orig ? tg_arena_alloc((size_t)m * sizeof *shapes) : NULL;
    tensor *out = NULL;
    if (shapes) {
        memcpy(orig, all, (size_t)n_all * sizeof *orig);
        for (int i = 0; i < m; i++) {
            shapes[i] = info[i];
            shapes[i].data = shapes[i].grad = NULL;
        }
        *r = *c;
        r->orig = orig;
        r->shapes = shapes;
        nd->ip[0] = (int64_t)(intptr_t)r;
        nd->ip[1] = n;
        memcpy(nd->out->data, kept, bytes);
        out = tg_node_commit(nd);
    }
    tg_mem_context_op(NULL);
    tg_mem_free(kept);
    tg_mem_free(all);
    if (!out) return -1;
    if (m == 1) {
        outputs[0] = out;
        return 0;
    }
    int64_t off = 0;
    for (int i = 0; i < m; off += info[i].size, i++) {
        outputs[i] = tensor_reshape(tensor_narrow(out, 0, off, info[i].size), info[i].ndim,
                                    info[i].shape);
        if (!outputs[i]) {
            for (int j = 0; j < m; j++) outputs[j] = NULL;
            return -1;
        }
    }
    return 0;
}

tensor *tape_checkpoint(tape_checkpoint_fn fn, void *ctx, tensor *const *inputs, int n) {
    tensor *y;
    if (check_args(NAME, fn != NULL, inputs, n, &y, 1)) return NULL;
    ckpt c = {.fn = fn, .ctx = ctx, .n_args = n, .m = 1};
    return checkpoint(NAME, &c, inputs, n, &y) ? NULL : y;
}

int tape_checkpoint_multi(tape_checkpoint_multi_fn fn, void *ctx, tensor *const *inputs, int n,
                          tensor **outputs, int m) {
    const char *name = "tape_checkpoint_multi";
    if (check_args(name, fn != NULL, inputs, n, outputs, m)) return -1;
    ckpt c = {.fn_multi = fn, .ctx = ctx, .n_args = n, .m = m};
    return checkpoint(name, &c, inputs, n, outputs);
}
