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
static uint32_t epoch = 1;
static int no_grad_depth;
static bool anomaly;

int64_t tape_node_count(void) { return n_nodes; }
int64_t tape_size(void) { return n_nodes; }
tape_node *tape_node_at(int64_t i) { return (i >= 0 && i < n_nodes) ? &nodes[i] : NULL; }
uint32_t tape_epoch(void) { return epoch; }
void tape_no_grad_begin(void) { no_grad_depth++; }
void tape_no_grad_end(void) {
    if (no_grad_depth > 0) no_grad_depth--;
}
bool tape_is_recording(void) { return no_grad_depth == 0; }
void tape_set_anomaly(bool on) { anomaly = on; }

void tape_reset(void) {
    n_nodes = 0;
    epoch++;
    arena_rewind();
}

void tape_release(void) {
    tape_reset();
    arena_release();
    mem_free(nodes);
    nodes = NULL;
    cap_nodes = 0;
}

static int nodes_reserve(int64_t need) {
    if (need <= cap_nodes) return 0;
    int64_t cap = cap_nodes ? cap_nodes * 2 : 1024;
    tape_node *grown = mem_alloc((size_t)cap * sizeof *grown);
    if (!grown) return -1;
    if (n_nodes) memcpy(grown, nodes, (size_t)n_nodes * sizeof *grown);
    mem_free(nodes);
    nodes = grown;
    cap_nodes = cap;
    return 0;
}

int op_check_inputs(const op_def *op, tensor *const *in, int n, uint32_t allow_i64) {
    const tensor *first_float = NULL;
    for (int i = 0; i < n; i++) {
        if (!in[i]) {
            if (!error_pending()) error_set("%s: input %d is NULL", op->name, i);
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        if (in[i]->dtype == DTYPE_I64) {
            if (mask_bit(allow_i64, i)) continue;
            error_set("%s: input %d is int64; this op needs float32 or float64", op->name, i);
            return -1;
        }
        if (!first_float) {
            first_float = in[i];
        } else if (in[i]->dtype != first_float->dtype) {
            error_set("%s: dtype mismatch: %s vs %s", op->name, dtype_name(first_float->dtype),
                      dtype_name(in[i]->dtype));
            return -1;
        }
    }
    return 0;
}

tape_node *node_begin(const op_def *op, tensor *const *in, int n_in, dtype out_dtype, int ndim,
                      const int64_t *shape) {
    if (shape_check(op->name, ndim, shape)) return NULL;
    mem_context_op(op->name); /* an allocation failing from here on names the op */
    if (nodes_reserve(n_nodes + 1)) return NULL;
    tape_node *n = &nodes[n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->n_in = n_in;
    n->in = arena_alloc((size_t)(n_in > 0 ? n_in : 1) * sizeof *n->in);
    n->out = tensor_tape_new(out_dtype, ndim, shape);
    if (!n->in || !n->out) return NULL;
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
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

tensor *node_finish(tape_node *n) {
    mem_context_op(NULL);
    n->op->forward(n);
    bool needs_grad = false;
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] && n->in[i]->requires_grad && !mask_bit(n->op->no_grad_inputs, i))
            needs_grad = true;
    if (anomaly && !all_finite(n->out)) {
        char s[256];
        describe_inputs(n, s, sizeof s);
        error_set("anomaly: forward of %s (tape position %lld, inputs %s) produced NaN or Inf",
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

tensor *op_apply(const op_def *op, tensor *const *in, int n_in, dtype out_dtype, int ndim,
                 const int64_t *shape) {
    tape_node *n = node_begin(op, in, n_in, out_dtype, ndim, shape);
    return n ? node_finish(n) : NULL;
}

/* The gradient buffer of t, made (zeroed) on first use: in the arena for a
 * tape-owned tensor, owned by the tensor for a user-owned leaf. */
static tensor *grad_of(tensor *t) {
    if (t->grad) return t->grad;
    t->grad = t->tape_owned ? tensor_tape_zeros(t->dtype, t->ndim, t->shape)
                            : tensor_new(t->dtype, t->ndim, t->shape);
    return t->grad;
}

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
        if (!error_pending()) error_set("tensor_backward: output is NULL");
        return -1;
    }
    if (out->tape_owned && (out->epoch != epoch ||
                            (out->node >= 0 && (out->node >= n_nodes || nodes[out->node].out != out)))) {
        error_set("tensor_backward: the tape was reset after this tensor was computed");
        return -1;
    }
    if (!out->requires_grad) {
        error_set("tensor_backward: output %s does not require grad (no input requires grad, "
                  "or it was computed in a no-grad scope)",
                  tensor_shape_str(out, a, sizeof a));
        return -1;
    }
    if (!gout && out->size != 1) {
        error_set("tensor_backward: output %s is not a scalar; give an upstream gradient "
                  "with tensor_backward_with",
                  tensor_shape_str(out, a, sizeof a));
        return -1;
    }
    if (gout && gout->dtype == DTYPE_I64) {
        error_set("tensor_backward_with: upstream gradient %s is int64; it must be float32 or "
                  "float64 (output %s %s)",
                  tensor_shape_str(gout, a, sizeof a), dtype_name(out->dtype),
                  tensor_shape_str(out, b, sizeof b));
        return -1;
    }
    if (gout && !tensor_same_shape(out, gout)) {
        error_set("tensor_backward_with: upstream gradient %s %s does not match output %s",
                  dtype_name(gout->dtype), tensor_shape_str(gout, a, sizeof a),
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
    acc_into(out->grad, gout);
    tensor *gin_small[8];
    for (int64_t i = out->node; i >= 0; i--) {
        tape_node *n = &nodes[i];
        if (!n->out->grad) continue;
        tensor **gin = n->n_in <= 8 ? gin_small : arena_alloc((size_t)n->n_in * sizeof *gin);
        if (!gin) return -1;
        for (int j = 0; j < n->n_in; j++) {
            tensor *t = n->in[j];
            bool wants = t && t->requires_grad && !mask_bit(n->op->no_grad_inputs, j);
            gin[j] = wants ? grad_of(t) : NULL;
            if (wants && !gin[j]) return -1;
        }
        n->op->vjp(n, gin);
        if (anomaly) {
            for (int j = 0; j < n->n_in; j++) {
                if (gin[j] && !all_finite(gin[j])) {
                    char s[256];
                    describe_inputs(n, s, sizeof s);
                    error_set("anomaly: backward of %s (tape position %lld, inputs %s) produced "
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

void tape_truncate(int64_t n) {
    if (n >= 0 && n < n_nodes) n_nodes = n;
}
