/* tape.c - record nodes, walk them backward, accumulate gradients.
 *
 * The tape is an array of nodes in execution order; a tensor knows the
 * position of the node that produced it. Backward seeds the output's grad and
 * visits nodes from the output's position down to 0; a node whose output never
 * received a gradient is skipped, so only nodes leading to the loss run. */
#include <math.h>
#include <string.h>

#include "internal.h"


static tape_node *nodes;
static int64_t n_nodes, cap_nodes;
uint32_t tg_tape_epoch_now = 1;
static int no_grad_depth;
static bool anomaly;

int64_t tg_tape_node_count(void) { return n_nodes; }
int64_t tape_size(void) { return n_nodes; }
tape_node *tg_tape_node_at(int64_t i) { return (i >= 0 && i < n_nodes) ? &nodes[i] : NULL; }
uint32_t tg_tape_epoch(void) { return tg_tape_epoch_now; }
void tape_no_grad_begin(void) { no_grad_depth++; }
void tape_no_grad_end(void) {
    if (no_grad_depth > 0) no_grad_depth--;
}
bool tape_is_recording(void) { return no_grad_depth == 0; }
void tape_set_anomaly(bool on) { anomaly = on; }

/* ------------------------------------------------------ tensor headers */
/* The headers (struct tensor) of tape-owned tensors live apart from their
 * data, in a ring of blocks that tape_reset does not rewind: the cursor goes
 * on round the ring, so the header of a tensor from an earlier step keeps its
 * old epoch until the cursor comes back to it, and any pointer kept across a
 * reset is seen to be stale (tensor_is_stale) by every op and accessor. A
 * slot is handed out again only after every other slot of the ring has been
 * (new blocks only add slots), and the ring holds at least HDR_MIN_SLOTS
 * slots and twice the headers of any finished step: a header is reused only
 * after at least capacity - 1 newer tape tensors (docs/design.md, "staleness
 * rule"). The data arena, rewound at each reset, holds no header. */
typedef struct hdr_block {
    struct hdr_block *next; /* circular */
    int64_t n;
    tensor *slots;
} hdr_block;

#define HDR_MIN_SLOTS 8192
static hdr_block *hdr_cur;          /* the block of the cursor */
static int64_t hdr_idx;             /* the next slot in hdr_cur */
static int64_t hdr_capacity;        /* slots in the ring */
static int64_t hdr_step;            /* headers handed out since the last reset */
static int64_t hdr_peak;            /* the most headers of a finished step */
static uint64_t hdr_grows;          /* blocks added so far (tg_tape_header_seek) */

/* Splices a zeroed block of n slots in after hdr_cur and moves the cursor to
 * its start. Zeroed slots are not tape-owned, hence never live. */
static int hdr_grow(int64_t n) {
    hdr_block *b = tg_mem_alloc(sizeof *b);
    if (!b) return -1;
    b->slots = tg_mem_calloc((size_t)n * sizeof *b->slots);
    if (!b->slots) {
        tg_mem_free(b);
        return -1;
    }
    b->n = n;
    if (hdr_cur) {
        b->next = hdr_cur->next;
        hdr_cur->next = b;
    } else {
        b->next = b;
    }
    hdr_cur = b;
    hdr_idx = 0;
    hdr_capacity += n;
    hdr_grows++;
    return 0;
}

static bool hdr_live(const tensor *t) { return t->tape_owned && t->epoch == tg_tape_epoch_now; }

tensor *tg_tape_header_new(void) {
    if (hdr_cur && hdr_idx == hdr_cur->n) {
        hdr_cur = hdr_cur->next;
        hdr_idx = 0;
    }
    /* round the ring into this step's own headers (the ring is full), or a
     * ring smaller than twice the biggest step: double it */
    if (!hdr_cur || hdr_live(&hdr_cur->slots[hdr_idx]) || hdr_capacity < 2 * hdr_peak) {
        if (hdr_grow(hdr_capacity > HDR_MIN_SLOTS ? hdr_capacity : HDR_MIN_SLOTS)) return NULL;
    }
    hdr_step++;
    return &hdr_cur->slots[hdr_idx++];
}

tape_header_pos tg_tape_header_tell(void) {
    return (tape_header_pos){hdr_cur, hdr_idx, hdr_step, hdr_grows};
}

/* Gives back the headers handed out since p (the checker's re-runs), marked
 * stale first so that a pointer to one is refused like any other. They are
 * the slots from p to the cursor, unless a block was spliced in meanwhile
 * (the cursor jumped over live slots): then they stay in use until the
 * reset, which costs slots only, as each splice doubles the ring. */
void tg_tape_header_seek(tape_header_pos p) {
    if (p.grows != hdr_grows) return;
    hdr_block *b = p.block;
    int64_t i = p.idx;
    for (int64_t k = p.step; k < hdr_step && b; k++) {
        if (i == b->n) {
            b = b->next;
            i = 0;
        }
        b->slots[i++].epoch = tg_tape_epoch_now - 1;
    }
    if (p.block) {
        hdr_cur = p.block;
        hdr_idx = p.idx;
        hdr_step = p.step;
    }
}

static void hdr_release(void) {
    if (!hdr_cur) return;
    hdr_block *b = hdr_cur->next;
    hdr_cur->next = NULL;
    while (b) {
        hdr_block *next = b->next;
        tg_mem_free(b->slots);
        tg_mem_free(b);
        b = next;
    }
    hdr_cur = NULL;
    hdr_idx = hdr_capacity = hdr_step = hdr_peak = 0;
}

void tape_reset(void) {
    n_nodes = 0;
    tg_tape_epoch_now++;
    if (tg_tape_epoch_now == 0) tg_tape_epoch_now = 1; /* zeroed slots carry epoch 0 */
    tg_checkpoint_reset();
    tg_arena_rewind();
    if (hdr_step > hdr_peak) hdr_peak = hdr_step;
    hdr_step = 0;
}

void tape_release(void) {
    tape_reset();
    tg_checkpoint_release();
    hdr_release();
    tg_arena_release();
    tg_mem_free(nodes);
    nodes = NULL;
    cap_nodes = 0;
}

static int nodes_reserve(int64_t need) {
    if (need <= cap_nodes) return 0;
    int64_t cap = cap_nodes ? cap_nodes * 2 : 1024;
    tape_node *grown = tg_mem_alloc((size_t)cap * sizeof *grown);
    if (!grown) return -1;
    if (n_nodes) memcpy(grown, nodes, (size_t)n_nodes * sizeof *grown);
    tg_mem_free(nodes);
    nodes = grown;
    cap_nodes = cap;
    return 0;
}

int tg_op_check_fresh(const op_def *op, int i, const tensor *t) {
    if (!tensor_is_stale(t)) return 0;
    char what[32];
    snprintf(what, sizeof what, "input %d", i);
    return tg_tensor_check_fresh(op->name, what, t);
}

int tg_op_check_inputs(const op_def *op, tensor *const *in, int n, uint32_t allow_i64) {
    const tensor *first_float = NULL;
    for (int i = 0; i < n; i++) {
        if (!in[i]) {
            if (!tg_error_pending()) tg_error_set("%s: input %d is NULL", op->name, i);
            return -1;
        }
        if (tensor_is_stale(in[i])) return tg_op_check_fresh(op, i, in[i]);
    }
    for (int i = 0; i < n; i++) {
        if (in[i]->dtype == DTYPE_I64) {
            if (mask_bit(allow_i64, i)) continue;
            tg_error_set("%s: input %d is int64; this op needs float32 or float64", op->name, i);
            return -1;
        }
        if (!first_float) {
            first_float = in[i];
        } else if (in[i]->dtype != first_float->dtype) {
            tg_error_set("%s: dtype mismatch: %s vs %s", op->name, tg_dtype_name(first_float->dtype),
                      tg_dtype_name(in[i]->dtype));
            return -1;
        }
    }
    return 0;
}

tape_node *tg_node_begin(const op_def *op, tensor *const *in, int n_in, dtype out_dtype, int ndim,
                      const int64_t *shape) {
    if (tg_shape_check(op->name, ndim, shape)) return NULL;
    tg_mem_context_op(op->name); /* an allocation failing from here on names the op */
    if (nodes_reserve(n_nodes + 1)) return NULL;
    tape_node *n = &nodes[n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->n_in = n_in;
    n->in = tg_arena_alloc((size_t)(n_in > 0 ? n_in : 1) * sizeof *n->in);
    n->out = tg_tensor_tape_new(out_dtype, ndim, shape);
    if (!n->in || !n->out) return NULL;
    /* the last line against a stale input, for a builder that validated its
     * inputs by hand; tg_op_check_inputs refuses it before any data is read */
    for (int i = 0; i < n_in; i++) {
        if (tensor_is_stale(in[i])) {
            tg_op_check_fresh(op, i, in[i]);
            return NULL;
        }
        n->in[i] = in[i];
    }
    return n;
}

static bool all_finite(const tensor *t) {
    if (t->dtype == DTYPE_F32) {
        const float *p = t->data;
        for (int64_t i = 0; i < t->size; i++)
            if (!isfinite(p[i])) return false;
    } else if (t->dtype == DTYPE_F64) {
        const double *p = t->data;
        for (int64_t i = 0; i < t->size; i++)
            if (!isfinite(p[i])) return false;
    }
    return true;
}

static void describe_inputs(const tape_node *n, char *buf, size_t len) {
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < n->n_in && o < len; i++) {
        char s[96];
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "",
                              tensor_shape_str(n->in[i], s, sizeof s));
    }
}

tensor *tg_node_finish(tape_node *n) {
    tg_mem_context_op(NULL);
    n->op->forward(n);
    return tg_node_commit(n);
}

tensor *tg_node_commit(tape_node *n) {
    tg_mem_context_op(NULL);
    bool needs_grad = false;
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] && n->in[i]->requires_grad && !mask_bit(n->op->no_grad_inputs, i))
            needs_grad = true;
    if (anomaly && !all_finite(n->out)) {
        char s[256];
        describe_inputs(n, s, sizeof s);
        tg_error_set("anomaly: forward of %s (tape position %lld, inputs %s) produced NaN or Inf",
                  n->op->name, (long long)n_nodes, s);
        return NULL;
    }
    if (needs_grad && no_grad_depth == 0) {
        n->out->requires_grad = true;
        n->out->node = (int32_t)n_nodes;
        n_nodes++;
    }
    return n->out;
}

tensor *tg_op_apply(const op_def *op, tensor *const *in, int n_in, dtype out_dtype, int ndim,
                 const int64_t *shape) {
    tape_node *n = tg_node_begin(op, in, n_in, out_dtype, ndim, shape);
    return n ? tg_node_finish(n) : NULL;
}

/* The gradient buffer of t, made on first use: in the arena for a
 * tape-owned tensor, uninitialised and marked fresh (its first vjp writes
 * it, tg_vjp_call), owned by the tensor and zeroed for a user-owned leaf,
 * which accumulates across backward calls. */
static bool is_checkpoint_output(const tensor *t) {
    return t->tape_owned && t->node >= 0 && t->node < n_nodes && nodes[t->node].out == t &&
           nodes[t->node].op == &tg_op_checkpoint;
}

/* The gradient buffer for input t of `consumer`. A checkpoint's output has a
 * buffer the checkpoint gives back once its segment has been
 * backpropagated; when its consumer is a checkpoint too, the buffer gets
 * its memory only when the consumer's recomputed segment first writes to
 * it, after the consumer's own upstream gradient is given back (a chain of
 * checkpoints then holds two gradients at a time: autograd/recompute.c). */
static tensor *grad_of_for(tensor *t, const tape_node *consumer) {
    if (t->grad) return t->grad;
    if (is_checkpoint_output(t))
        return t->grad = tg_checkpoint_grad_new(t, consumer && consumer->op == &tg_op_checkpoint);
    t->grad = t->tape_owned ? tg_tensor_tape_new(t->dtype, t->ndim, t->shape)
                            : tensor_new(t->dtype, t->ndim, t->shape);
    if (t->grad) {
        t->grad->is_grad = true;
        t->grad->fresh = t->tape_owned;
    }
    return t->grad;
}

static void zero_fresh(tensor *g) {
    if (g && tg_grad_take_fresh(g)) memset(g->data, 0, (size_t)g->size * tg_dtype_size(g->dtype));
}

void tg_vjp_call(const op_def *op, tape_node *n, tensor *const *gin) {
    if (!op->vjp_fresh)
        for (int j = 0; j < n->n_in; j++) zero_fresh(gin[j]);
    op->vjp(n, gin);
    for (int j = 0; j < n->n_in; j++) zero_fresh(gin[j]);
}

static tensor *grad_of(tensor *t) { return grad_of_for(t, NULL); }

static void acc_into(tensor *dst, const tensor *src) {
    if (!src) {
        for (int64_t i = 0; i < dst->size; i++) tensor_set(dst, i, tensor_get(dst, i) + 1.0);
    } else if (dst->dtype == DTYPE_F32 && src->dtype == DTYPE_F32) {
        float *d = dst->data;
        const float *s = src->data;
        for (int64_t i = 0; i < dst->size; i++) d[i] += s[i];
    } else {
        for (int64_t i = 0; i < dst->size; i++)
            tensor_set(dst, i, tensor_get(dst, i) + tensor_get(src, i));
    }
}

static int backward_checks(const tensor *out, const tensor *gout) {
    char a[96], b[96];
    if (!out) {
        if (!tg_error_pending()) tg_error_set("tensor_backward: output is NULL");
        return -1;
    }
    if (tg_tensor_check_fresh("tensor_backward", "output", out)) return -1;
    if (out->tape_owned && out->node >= 0 && (out->node >= n_nodes || nodes[out->node].out != out)) {
        tg_error_set("tensor_backward: output %s is no longer on the tape (dropped since it was"
                  " computed)", tensor_shape_str(out, a, sizeof a));
        return -1;
    }
    if (gout && tg_tensor_check_fresh("tensor_backward_with", "upstream gradient", gout)) return -1;
    if (!out->requires_grad) {
        tg_error_set("tensor_backward: output %s does not require grad (no input requires grad, "
                  "or it was computed in a no-grad scope)",
                  tensor_shape_str(out, a, sizeof a));
        return -1;
    }
    if (!gout && out->size != 1) {
        tg_error_set("tensor_backward: output %s is not a scalar; give an upstream gradient "
                  "with tensor_backward_with",
                  tensor_shape_str(out, a, sizeof a));
        return -1;
    }
    if (gout && gout->dtype == DTYPE_I64) {
        tg_error_set("tensor_backward_with: upstream gradient %s is int64; it must be float32 or "
                  "float64 (output %s %s)",
                  tensor_shape_str(gout, a, sizeof a), tg_dtype_name(out->dtype),
                  tensor_shape_str(out, b, sizeof b));
        return -1;
    }
    if (gout && !tensor_same_shape(out, gout)) {
        tg_error_set("tensor_backward_with: upstream gradient %s %s does not match output %s",
                  tg_dtype_name(gout->dtype), tensor_shape_str(gout, a, sizeof a),
                  tensor_shape_str(out, b, sizeof b));
        return -1;
    }
    return 0;
}

int tensor_backward_with(tensor *out, const tensor *gout) {
    if (backward_checks(out, gout)) return -1;
    /* Intermediate grads of an earlier backward over this tape start again
     * from zero; leaves keep accumulating. */
    for (int64_t i = 0; i <= out->node; i++) nodes[i].out->grad = NULL;
    if (!grad_of(out)) return -1;
    if (gout && gout->dtype == out->dtype && tg_grad_take_fresh(out->grad)) {
        /* a new gradient takes the seed as it is (one pass, not zero then add) */
        memcpy(out->grad->data, gout->data, (size_t)gout->size * tg_dtype_size(gout->dtype));
    } else {
        zero_fresh(out->grad);
        acc_into(out->grad, gout);
    }
    const bool pending_before = tg_error_pending();
    const uint64_t errors = tg_error_count();
    tensor *gin_small[8];
    for (int64_t i = out->node; i >= 0; i--) {
        tape_node *n = &nodes[i];
        if (!n->out->grad) continue;
        tensor **gin = n->n_in <= 8 ? gin_small : tg_arena_alloc((size_t)n->n_in * sizeof *gin);
        if (!gin) return -1;
        for (int j = 0; j < n->n_in; j++) {
            tensor *t = n->in[j];
            bool wants = t && t->requires_grad && !mask_bit(n->op->no_grad_inputs, j);
            gin[j] = wants ? grad_of_for(t, n) : NULL;
            if (wants && !gin[j]) return -1;
        }
        /* a failing vjp sets an error (tg_error_count moves even when an older
         * message is kept): stop at the first, naming the op. Nothing else
         * in this loop sets one without returning, so one count serves all. */
        tg_vjp_call(n->op, n, gin);
        if (tg_error_count() != errors) {
            if (!pending_before)
                tg_error_prefix("tensor_backward: the vjp of %s (tape position %lld) failed: ",
                             n->op->name, (long long)i);
            return -1;
        }
        if (anomaly) {
            for (int j = 0; j < n->n_in; j++) {
                if (gin[j] && !all_finite(gin[j])) {
                    char s[256];
                    describe_inputs(n, s, sizeof s);
                    tg_error_set("anomaly: backward of %s (tape position %lld, inputs %s) produced "
                              "NaN or Inf in the gradient of input %d",
                              n->op->name, (long long)i, s, j);
                    return -1;
                }
            }
        }
    }
    return 0;
}

int tensor_backward(tensor *loss) { return tensor_backward_with(loss, NULL); }

void tg_tape_swap(tape_frame *f) {
    tape_node *a = nodes;
    int64_t n = n_nodes, c = cap_nodes;
    nodes = f->nodes;
    n_nodes = f->n;
    cap_nodes = f->cap;
    f->nodes = a;
    f->n = n;
    f->cap = c;
}

int tg_tape_set_no_grad_depth(int depth) {
    int was = no_grad_depth;
    no_grad_depth = depth;
    return was;
}

void tg_tape_truncate(int64_t n) {
    if (n >= 0 && n < n_nodes) n_nodes = n;
}
