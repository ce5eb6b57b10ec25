/*
 * internal.h - what the library shares with itself: the tape node, the op
 * registry entry, the arena, error helpers and the helpers every op uses.
 * Users include tapegrad.h only.
 */
#ifndef TAPEGRAD_INTERNAL_H
#define TAPEGRAD_INTERNAL_H

#include "../include/tapegrad.h"

#define NODE_MAX_IPARAMS 16
#define NODE_MAX_FPARAMS 4
#define NODE_MAX_SAVED 5

/* One recorded op application. forward() reads in[] and the params and
 * writes out (and saved tensors it owns); it must be pure so that the checker
 * can replay it: RNG draws and running-statistic updates happen in the op's
 * builder, before forward, never inside it. */
typedef struct tape_node {
    const op_def *op;
    int n_in;
    tensor **in;                      /* arena array of n_in inputs (some may be NULL) */
    tensor *out;
    tensor *saved[NODE_MAX_SAVED];    /* masks, indices, statistics (tape-owned) */
    int64_t ip[NODE_MAX_IPARAMS];     /* integer params: axes, strides, ... */
    double fp[NODE_MAX_FPARAMS];      /* scalar params: slope, eps, ... */
} tape_node;

/* The checker's sample cases (see autograd/gradcheck.c). A case owns its
 * inputs (user-owned float64 or int64 tensors) until the checker frees them. */
#define SAMPLE_MAX_INPUTS 8
typedef struct op_sample {
    char name[96];                    /* "broadcast [3] + [2,3]" */
    int n_inputs;
    tensor *inputs[SAMPLE_MAX_INPUTS];
    uint32_t no_grad_mask;            /* inputs not to check (labels, masks) */
    int64_t ip[NODE_MAX_IPARAMS];     /* passed through to build() */
    double fp[NODE_MAX_FPARAMS];
} op_sample;

/* Tables and tests written before a field existed list the first fields
 * positionally and leave the later ones out (NULL, false): no warning for
 * that, in every file that includes this header. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
struct op_def {
    const char *name;
    int arity;                        /* tensor inputs (-1: variable, e.g. concat) */
    uint32_t no_grad_inputs;          /* bit i: input i never has a gradient */
    void (*forward)(tape_node *n);
    /* Accumulate (+=) the input gradients given n->out->grad. gin[i] is NULL
     * when input i needs no gradient. A vjp that fails (an allocation) sets
     * an error and returns: tensor_backward sees the error (tg_error_count)
     * and stops there, naming the op. */
    void (*vjp)(tape_node *n, tensor *const *gin);
    /* Sample case k (0, 1, 2, ...): fill s and return 0; return 1 when there
     * is no case k. Values must be seeded from g, non-uniform, and keep a
     * margin wider than eps from every kink, tie and domain edge. */
    int (*sample)(int k, rng *g, op_sample *s);
    /* Build the graph of a sample through the public API. */
    tensor *(*build)(tensor *const *in, const op_sample *s);
    const char *signature;            /* "tensor_add(a, b)" */
    const char *formula_forward;      /* "y = a + b" */
    const char *formula_gradient;     /* "da = sum_bcast(g), db = sum_bcast(g)" */
    const char *notes;                /* non-differentiable points, ties, ... */
    /* The vjp once more, built from the public differentiable ops, for
     * tensor_grad(create_graph): for each input j with want[j], gin[j] = the
     * gradient of input j (its shape and dtype) as a tape tensor computed
     * from the upstream gradient g (a tape tensor, the output's shape) and
     * the node's inputs, output and saved tensors, so that it is itself
     * recorded and can be differentiated again. gin[j] is a new value, not
     * accumulated. Returns 0, or -1 with an error set. n is a copy of the
     * node: the ops it calls append nodes and may move the tape. NULL: the
     * op is first order only, and create_graph through it is refused. */
    int (*vjp_graph)(const tape_node *n, tensor *g, const bool *want, tensor **gin);
    /* The vjp honours fresh gradient buffers (tensor.fresh: allocated, never
     * written, contents garbage): for each gin[i] it calls
     * tg_grad_take_fresh(gin[i]) and writes (=) when that says fresh, adds
     * (+=) otherwise. false (every op that does not set it, every custom op):
     * tg_vjp_call zeroes the fresh buffers first, so the vjp only adds. */
    bool vjp_fresh;
};

/* Calls op->vjp(n, gin), the one way vjps are called (the tape, tensor_grad,
 * recomputation, the checkers): for an op without vjp_fresh, every fresh
 * gin[i] is zeroed first; after the vjp no gin[i] is fresh (a converted vjp
 * that left a buffer unwritten, e.g. for an empty product, has it zeroed). */
void tg_vjp_call(const op_def *op, tape_node *n, tensor *const *gin);
/* True when g is fresh (its contents garbage: the caller must write, not
 * add), and g is no longer fresh from then on: a second take of the same
 * buffer in one vjp (tensor_mul(x, x): gin[0] == gin[1]) adds. */
static inline bool tg_grad_take_fresh(tensor *g) {
    bool f = g->fresh;
    g->fresh = false;
    return f;
}


/* The registry is the concatenation of the family tables in ops/. Each family
 * file defines `const op_def tg_ops_<family>[]` and `const int tg_ops_<family>_count`. */
#define OP_FAMILY(fam)                        \
    extern const op_def tg_ops_##fam[];          \
    extern const int tg_ops_##fam##_count;

/* Bit i of a 32-bit input mask; inputs past 31 (concat, stack) have no bit. */
static inline bool mask_bit(uint32_t mask, int i) { return i < 32 && ((mask >> i) & 1u); }

/* ---------------------------------------------------------------- errors */
/* Sets the pending error unless one is already pending; printf-style. */
void tg_error_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool tg_error_pending(void);
/* How many times tg_error_set was called on this thread, kept message or not:
 * a failure inside a callee shows as a change even while an earlier error is
 * pending (tensor_backward checks it around each vjp). */
uint64_t tg_error_count(void);
/* Puts printf-style context in front of the pending message, if any. */
void tg_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------ allocation */
/* Every byte the library allocates goes through these (64-byte aligned).
 * jemalloc by default; the system allocator with -DTAPEGRAD_SYSTEM_ALLOC
 * (sanitizer builds). A test hook can make the n-th allocation fail; it
 * counts arena blocks (tg_arena_alloc) as allocations too. */
void *tg_mem_alloc(size_t bytes);
void *tg_mem_calloc(size_t bytes);
void tg_mem_free(void *p);
#ifdef TAPEGRAD_TEST_HOOKS
void tg_mem_fail_after(int64_t n); /* -1: never fail (default); test library only */
#endif
/* What the allocations under way are for, named by an out-of-memory message:
 * the op (set by tg_node_begin, cleared by tg_node_finish; returns the previous
 * one) and the tensor (dtype and shape, borrowed until cleared with ndim -1).
 * A request over tapegrad_alloc_limit() is refused before the allocator is
 * asked. */
const char *tg_mem_context_op(const char *op);
void tg_mem_context_tensor(dtype dt, int ndim, const int64_t *shape);

/* The tape's arena: bump allocation, released all at once by tape_reset. */
void *tg_arena_alloc(size_t bytes);      /* 64-byte aligned, uninitialised */
void tg_arena_rewind(void);              /* the next step reuses the memory */
void tg_arena_release(void);             /* frees every chunk */
/* A position in the arena and a return to it (the checker's re-runs of fn):
 * everything allocated after tg_arena_tell() is given back by tg_arena_seek(). */
typedef struct arena_pos {
    struct chunk *chunk;
    size_t used, step_bytes;
} arena_pos;
arena_pos tg_arena_tell(void);
void tg_arena_seek(arena_pos p);
/* Test builds (tests/check_main.h) fill every block tg_arena_alloc returns with
 * NaN bytes, so reading memory a kernel never wrote shows; off by default. */
#ifdef TAPEGRAD_TEST_HOOKS
void tg_arena_set_poison(bool on); /* test library only */
#endif

/* ------------------------------------------------------ size arithmetic */
/* *r = a * b; true (and *r unspecified) when the product overflows int64.
 * Every product of sizes that a user's numbers reach (a reshape's target, a
 * file's dimensions, a batch count) goes through it: a signed overflow is
 * undefined behaviour, not a wrap to check afterwards. */
static inline bool i64_mul_overflows(int64_t a, int64_t b, int64_t *r) {
    return __builtin_mul_overflow(a, b, r);
}

/* ----------------------------------------------------------- tensor help */
size_t tg_dtype_size(dtype dt);
const char *tg_dtype_name(dtype dt);
int64_t tg_shape_numel(int ndim, const int64_t *shape);
int tg_shape_check(const char *op, int ndim, const int64_t *shape);
/* A TAPE-OWNED tensor: header in the header ring, data in the arena
 * (uninitialised / zeroed). */
tensor *tg_tensor_tape_new(dtype dt, int ndim, const int64_t *shape);
tensor *tg_tensor_tape_zeros(dtype dt, int ndim, const int64_t *shape);
/* Normalises a possibly negative axis; -1 (and an error naming op) when out of range. */
int tg_axis_normalize(const char *op, int axis, int ndim);

/* ------------------------------------------------------------ staleness */
/* The epoch of the current tape, bumped by tape_reset. A tape-owned tensor
 * of another epoch is stale: computed before the last reset, its data gone.
 * Its header is never in the arena (tg_tape_header_new), so a kept pointer still
 * reads its own old epoch (docs/design.md, "staleness rule"). */
extern uint32_t tg_tape_epoch_now;
static inline bool tensor_is_stale(const tensor *t) {
    return t && t->tape_owned && t->epoch != tg_tape_epoch_now;
}
/* 0, or -1 with an error naming op and `what` ("input 1", "bias") when t is
 * stale. */
int tg_tensor_check_fresh(const char *op, const char *what, const tensor *t);
/* The same for input i of op ("input i" in the message). */
int tg_op_check_fresh(const op_def *op, int i, const tensor *t);
/* A header for a tape-owned tensor (uninitialised), or NULL with an error. */
tensor *tg_tape_header_new(void);
/* A position in the header ring and a return to it (the checker's re-runs,
 * alongside tg_arena_tell/tg_arena_seek): the headers handed out after the
 * position are marked stale and given back. */
typedef struct tape_header_pos {
    struct hdr_block *block;
    int64_t idx, step;
    uint64_t grows;
} tape_header_pos;
tape_header_pos tg_tape_header_tell(void);
void tg_tape_header_seek(tape_header_pos p);

/* --------------------------------------------------------- op plumbing */
/* Validates that the n tensors are non-NULL (an error is set only when none
 * is pending) and that all float inputs share one dtype; input i with bit i of
 * allow_i64 may be DTYPE_I64. Returns 0 or -1. */
int tg_op_check_inputs(const op_def *op, tensor *const *in, int n, uint32_t allow_i64);
/* Optional inputs (bias, weight, running statistics) may be NULL: not given.
 * While an error is pending a NULL is a failed upstream result instead, and
 * propagates like any NULL input: -1 then, else 0. */
static inline int op_check_optional_null(const tensor *t) { return !t && tg_error_pending() ? -1 : 0; }
/* The same, and a given t must be a float tensor of x's dtype (an error
 * naming op and `what`, e.g. "bias"). */
static inline int op_check_optional(const char *op, const char *what, const tensor *t,
                                    const tensor *x) {
    if (!t) return op_check_optional_null(t);
    if (tg_tensor_check_fresh(op, what, t)) return -1;
    if (t->dtype == DTYPE_I64 || t->dtype != x->dtype) {
        tg_error_set("%s: %s is %s; it must have the dtype of x (%s)", op, what, tg_dtype_name(t->dtype),
                  tg_dtype_name(x->dtype));
        return -1;
    }
    return 0;
}
/* Starts a node: allocates the output (uninitialised) and returns the node,
 * whose ip/fp/saved the caller may fill before tg_node_finish(). The node lives
 * at the tape's end; it is kept only if recording and some input requires
 * grad. No other op may run between tg_node_begin and tg_node_finish. */
tape_node *tg_node_begin(const op_def *op, tensor *const *in, int n_in, dtype out_dtype, int ndim,
                      const int64_t *shape);
/* Runs op->forward, records the node when needed; returns the output. */
tensor *tg_node_finish(tape_node *n);
/* tg_node_finish without the forward: records n when needed, for a node
 * whose output its builder has already computed (a checkpoint's). */
tensor *tg_node_commit(tape_node *n);
/* tg_node_begin + tg_node_finish. */
tensor *tg_op_apply(const op_def *op, tensor *const *in, int n_in, dtype out_dtype, int ndim,
                 const int64_t *shape);

/* The tape, for the checker. */
int64_t tg_tape_node_count(void);
tape_node *tg_tape_node_at(int64_t i);
uint32_t tg_tape_epoch(void);
/* Drops the nodes from position n on (the checker's re-runs of fn append
 * nodes after the recorded ones and drop them again). */
void tg_tape_truncate(int64_t n);

/* Swaps the tape's node array with *f (a zeroed frame: an empty tape). A
 * checkpoint records its segment on a tape of its own and swaps the outer
 * one back afterwards, so the outer tape's nodes never move while a vjp of
 * it runs (autograd/recompute.c). */
typedef struct tape_frame {
    tape_node *nodes;
    int64_t n, cap;
} tape_frame;
void tg_tape_swap(tape_frame *f);
/* Sets the no-grad depth (0: recording) and returns the old one. */
int tg_tape_set_no_grad_depth(int depth);

/* ------------------------------------------------------ recomputation */
/* The op of a checkpoint node (autograd/recompute.c): not in the registry
 * (it has no samples: its function is the user's). */
extern const op_def tg_op_checkpoint;
/* The zeroed gradient buffer of a checkpoint's output t, outside the arena:
 * given back when the checkpoint's vjp has used it, so that the gradients
 * of a chain of checkpoints take two buffers instead of one per link.
 * deferred (t's consumer is a checkpoint, which alone writes to it first):
 * the header only, data NULL until the consumer's vjp gives it memory. */
tensor *tg_checkpoint_grad_new(const tensor *t, bool deferred);
/* The arena block p of `bytes`, when it is the last one handed out, is
 * given back: 0, else -1 and nothing changes. */
int tg_arena_pop(void *p, size_t bytes);
/* Generators drawn from inside a checkpoint's segment (rng.c calls this
 * before every draw while tg_rng_watch is nonzero): recorded when the
 * segment first runs, rewound when it runs again, so dropout draws the same
 * mask when recomputed. */
extern int tg_rng_watch;
void tg_rng_touch(rng *g);
/* The arena's and the checkpoints' buffers: bytes held now, and the most held
 * since the last tape_reset (tapegrad_tape_peak_bytes). */
void tg_tape_bytes_changed(int64_t delta);
/* Called by tape_reset: every checkpoint gradient buffer is free again. */
void tg_checkpoint_reset(void);
/* Called by tape_release: the buffers are freed. */
void tg_checkpoint_release(void);

/* The checker on the caller's own float64 leaves, perturbed in place instead
 * of copied (gradcheck_model swaps a model's tensors to float64 and checks
 * them where its layers point). Inputs must be user-owned float64 (or int64,
 * passed through); their requires_grad and .grad are changed, their values
 * restored. */
int tg_gradcheck_in_place(gradcheck_fn fn, void *ctx, tensor *const *inputs, int n,
                       const gradcheck_options *opt, gradcheck_report *report);

/* tensor_grad with the caller's name in its messages (tensor_hvp,
 * gradgradcheck); allow_unused gives an input outside out's graph a zero
 * gradient instead of an error (autograd/grad.c). */
int tg_grad(const char *fn, tensor *out, const tensor *gout, tensor *const *inputs, int n,
            bool create_graph, bool allow_unused, tensor **grads);

/* tg_grad walking down to the node at position floor only: outputs of
 * nodes below it count as leaves (a checkpoint's recomputed segment,
 * differentiated with respect to the checkpoint's inputs). */
int tg_grad_from(const char *fn, int64_t floor, tensor *out, const tensor *gout,
                 tensor *const *inputs, int n, bool create_graph, bool allow_unused,
                 tensor **grads);

/* Helpers of the graph vjps (op_def.vjp_graph), autograd/grad.c. */
/* 0 when every wanted gradient gin[j] was made, else -1 with an error (the
 * op that failed set it, or a NULL input propagated). */
int tg_graph_vjp_done(const tape_node *n, const bool *want, tensor *const *gin);
/* A 0-d tape tensor holding v, a constant (for where, comparisons). */
tensor *tg_tape_scalar(dtype dt, double v);
/* The adjoint of a gather along axis ax (y[p] = a[p with p_ax = idx[p]],
 * idx int64 of g's shape, a's other dims at least idx's): g added at the
 * gathered positions of a tensor of a's shape, built from ops (one_hot of
 * idx, a constant, times g, summed over the axis, padded with zeros). */
tensor *tg_gather_adjoint(tensor *g, int ax, tensor *idx, const tensor *a);
/* A graph vjp by decomposition: out is the node's forward rebuilt by the
 * caller from differentiable ops on the node's inputs (recorded: graph vjps
 * run only while the tape records), and gin[j] for each wanted input is
 * tensor_grad(out, g, create_graph) - itself differentiable to any order.
 * For ops whose formulas are long (focal loss, cosine embedding). */
int tg_vjp_graph_by_decomposition(const tape_node *n, tensor *out, tensor *g, const bool *want,
                                  tensor **gin);
/* The windows of a 2-D sliding op (conv2d, pools), built from ops for
 * their decompositions: x [B, C, H, W] padded by (ph, pw) with pad_value,
 * and for each of the KH KW taps (kh, kw) the strided slice starting at
 * (kh dh, kw dw) of OH x OW positions; stacked [B, C, KH KW, OH, OW]. */
tensor *tg_unfold2d(tensor *x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                    int64_t pw, int64_t dh, int64_t dw, double pad_value, int64_t oh, int64_t ow);

/* ------------------------------------------------------ broadcasting */
/* NumPy broadcast of two shapes; sets an error naming op and both shapes. */
int tg_broadcast_shapes(const char *op, const tensor *a, const tensor *b, int *ndim, int64_t *shape);
/* Strides (in elements) of t viewed with shape out (ndim dims, right-aligned):
 * 0 on broadcast dims. */
void tg_broadcast_strides(const tensor *t, int ndim, const int64_t *shape, int64_t *strides);
/* dst (shape of the smaller operand) += src summed over the broadcast dims. */
void tg_reduce_to_shape_acc(tensor *dst, const tensor *src);
/* The same into a gradient buffer that may be fresh: = when it is (and it is
 * no longer fresh), += otherwise. The sums are the same, bit for bit. */
void tg_reduce_to_shape_grad(tensor *dst, const tensor *src);
/* The same adjoint built from differentiable ops (graph vjps): g summed
 * over the dims that broadcasting added or stretched to give like's shape.
 * Returns g itself when the shapes agree; a tape tensor, or NULL with an
 * error. */
tensor *tg_sum_to_shape(tensor *g, const tensor *like);

/* Flat offset iteration helper for broadcast binaries: calls nothing, just
 * computes the source offset of out element i. Used by generic slow paths. */
static inline int64_t bcast_offset(int64_t i, int ndim, const int64_t *shape,
                                   const int64_t *strides) {
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; d--) {
        int64_t c = i % shape[d];
        i /= shape[d];
        off += c * strides[d];
    }
    return off;
}

/* Threading threshold: a loop enters an OpenMP parallel region when it has at
 * least tg_parallel_min() elements of work and there is more than one thread.
 * What a region costs depends on how libgomp's threads wait between regions.
 * Spinning (its default): 0.3-0.5 us to enter, paid for by PARALLEL_MIN_ELEMS
 * elements. Sleeping (OMP_WAIT_POLICY=passive, the README's advice on a shared
 * machine): every region wakes the partner thread, 30-40 us on a 2-core
 * virtual machine (BENCHMARKS.md, "Two threads under passive waiting"), as long
 * as a ReLU over 300,000 floats takes; there the threshold is
 * PARALLEL_MIN_PASSIVE. The policy is read once, when the library is loaded. */
#define PARALLEL_MIN_ELEMS 32768
#define PARALLEL_MIN_PASSIVE 524288
/* The threshold for the OMP_WAIT_POLICY value policy (NULL: unset). */
int64_t tg_parallel_min_for(const char *policy);
/* The threshold in force. */
int64_t tg_parallel_min(void);
/* Whether libgomp's threads sleep between regions (OMP_WAIT_POLICY=passive,
 * read when the library is loaded). A woken thread then starts a region late,
 * so loops of a few large items hand them out one at a time (the convolutions'
 * images) rather than in equal static shares that the late thread finishes
 * last. */
bool tg_threads_sleep(void);

/* Items over threads whose waits are short: body(ctx, i, slot) for every i in
 * [0, n), on `threads` threads, the caller as slot 0 and workers as slots 1
 * to threads - 1, items handed out one at a time to whichever is free. What
 * a body writes must depend on i alone, not on the slot (each slot's scratch
 * is its own), so the result is the same for any thread count.
 *
 * Why not an OpenMP region: under OMP_WAIT_POLICY=passive libgomp's threads
 * sleep as soon as a region ends, and waking one for the next region costs
 * 40-50 us on a 2-core virtual machine, as long as LeNet-5's conv1 forward
 * at batch 64 takes on two threads (BENCHMARKS.md, "The convolutions' own
 * workers"). These workers spin for TG_PAR_SPIN_US after each run, so the
 * convolutions of one training step find them awake, then sleep on a
 * condition variable: a program that stops calling costs no CPU after that.
 * The caller waits for the last item the same way. Workers start on first
 * use and live until exit; a forked child starts its own. A call from inside
 * a body or an OpenMP region (or with threads < 2) runs the items in order on
 * the caller: one run at a time. */
enum { TG_PAR_SPIN_US = 100 };
typedef void (*tg_par_body)(void *ctx, int64_t i, int slot);
void tg_par_items(int64_t n, int threads, tg_par_body body, void *ctx);
/* Whether this thread is running a tg_par_items body: a GEMM there stays on
 * one thread, as inside an OpenMP region. */
bool tg_par_in_body(void);

/* Whether a loop of `work` elements should enter an OpenMP parallel region:
 * only when it is large and there is more than one thread. Entering a region
 * costs 0.3-0.5 us even when an `if` clause keeps it on one thread, as much
 * as a whole small kernel. */
static inline bool parallel_pays(int64_t work) {
    return tapegrad_threads() > 1 && work >= tg_parallel_min();
}

/* ----------------------------------------------- the vjp contract */
/* What tg_op_check_contract and tg_op_check_float32 found (the public
 * op_check_report of gradcheck_op). */
typedef op_check_report op_contract_report;
/* Checks the vjp contract of op on each of its sample cases (drawn from
 * seed), in float64 and float32: the vjp accumulates (+=) into pre-filled
 * buffers, writes nothing but the gradient buffers, is deterministic, and
 * gives an input the same gradient whether or not the others want one (see
 * autograd/opcheck.c). The node checked is found by op's name on the tape its
 * build records, and op's own vjp is called, so a copy of an entry with
 * another vjp is checked as itself. Returns 0 (verdict in r) or -1 with an
 * error set (NULL argument, an entry without samples, a failing sample). */
int tg_op_check_contract(const op_def *op, uint64_t seed, op_contract_report *r);
/* Runs each sample case in float32 and in float64 on the same values (the
 * float64 inputs rounded to float32 first) and compares the outputs and the
 * gradients within a bound derived from float32 rounding and the op's size
 * (autograd/opcheck.c). Returns 0 (verdict in r) or -1 with an error set. */
int tg_op_check_float32(const op_def *op, uint64_t seed, op_contract_report *r);
/* The float64 tolerances of the tight registry check, far below gradcheck's
 * defaults (atol 1e-5, rtol 1e-3): OP_TIGHT_ATOL / OP_TIGHT_RTOL, or the
 * measured figure of an op whose own numeric noise is larger. */
#define OP_TIGHT_ATOL 1e-8
#define OP_TIGHT_RTOL 1e-6
void tg_op_tight_tolerances(const op_def *op, double *atol, double *rtol);

/* ------------------------------------------------- sample helpers */
/* A user-owned float64 tensor with values uniform in [lo, hi) from g, each
 * at least `margin` away from every point in avoid[0..n_avoid). */
tensor *tg_sample_tensor(rng *g, int ndim, const int64_t *shape, double lo, double hi);
tensor *tg_sample_tensor_avoiding(rng *g, int ndim, const int64_t *shape, double lo, double hi,
                               const double *avoid, int n_avoid, double margin);
/* A float64 tensor whose elements are pairwise at least `gap` apart (for
 * max/min/pool ties): a shuffled arithmetic progression. */
tensor *tg_sample_tensor_distinct(rng *g, int ndim, const int64_t *shape, double lo, double gap);
tensor *tg_sample_labels(rng *g, int ndim, const int64_t *shape, int64_t n_classes);
void tg_sample_name(op_sample *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
