/* grad.c - gradients as values: tensor_grad, optionally recorded on the tape
 * so that they can be differentiated again (create_graph), and tensor_hvp.
 *
 * tensor_backward accumulates into the .grad of every leaf that requires
 * grad. tensor_grad instead answers one question, d out / d inputs[k], and
 * returns the answers as tape tensors: no .grad anywhere is changed (not the
 * inputs', not other leaves', not the intermediates'), so it can run in the
 * middle of a step without disturbing an optimiser's gradients.
 *
 * The walk is tensor_backward's: nodes from out's position down to 0. Two
 * sweeps decide which nodes run: `live` (backward from out: out depends on
 * the node's output) and `reach` (forward from the inputs: the node's output
 * depends on an input). Only a node that is both carries a gradient from out
 * to an input; every other node is skipped, and an input no live node reads
 * is not in out's graph (an error, unless the caller allows it).
 *
 * Without create_graph each node runs its kernel vjp, with the node's output
 * gradient lent to it in out->grad for the call and the input gradients in
 * buffers of the walk's own. With create_graph each node runs its graph vjp
 * (op_def.vjp_graph): the input gradients are computed by public ops, so
 * they are recorded on the tape like any other value, and their sums (one
 * input feeding several nodes) are tensor_add nodes too. In a no-grad scope
 * nothing can be recorded, so create_graph falls back to the kernel vjps. */
#include <string.h>

#include "internal.h"

/* Input j of node i carries a gradient: it requires grad and the op does
 * not declare it gradient-free. */
static bool slot_wants(const tape_node *nd, int j) {
    const tensor *t = nd->in[j];
    return t && t->requires_grad && !mask_bit(nd->op->no_grad_inputs, j);
}

/* t is the output of a recorded node before position `before`. */
static bool is_node_output(const tensor *t, int64_t before) {
    if (!t->tape_owned || t->node < 0 || t->node >= before) return false;
    const tape_node *p = tg_tape_node_at(t->node);
    return p && p->out == t;
}

static int index_of(tensor *const *inputs, int n, const tensor *t) {
    for (int k = 0; k < n; k++)
        if (inputs[k] == t) return k;
    return -1;
}

/* The output and upstream gradient, checked as tensor_backward checks them. */
static int check_output(const char *fn, const tensor *out, const tensor *gout) {
    char a[96], b[96];
    if (!out) {
        if (!tg_error_pending()) tg_error_set("%s: output is NULL", fn);
        return -1;
    }
    if (tg_tensor_check_fresh(fn, "output", out)) return -1;
    if (out->tape_owned && out->node >= 0 && !is_node_output(out, INT64_MAX)) {
        tg_error_set("%s: output %s is no longer on the tape (dropped since it was computed)", fn,
                     tensor_shape_str(out, a, sizeof a));
        return -1;
    }
    if (!out->requires_grad) {
        tg_error_set("%s: output %s does not require grad (no input requires grad, or it was "
                     "computed in a no-grad scope)",
                     fn, tensor_shape_str(out, a, sizeof a));
        return -1;
    }
    if (!gout) {
        if (out->size != 1) {
            tg_error_set("%s: output %s is not a scalar; give grad_out, an upstream gradient of "
                         "its shape",
                         fn, tensor_shape_str(out, a, sizeof a));
            return -1;
        }
        return 0;
    }
    if (tg_tensor_check_fresh(fn, "grad_out", gout)) return -1;
    if (gout->dtype != out->dtype || !tensor_same_shape(out, gout)) {
        tg_error_set("%s: grad_out %s %s does not match the output %s %s (same dtype and shape "
                     "needed)",
                     fn, tg_dtype_name(gout->dtype), tensor_shape_str(gout, a, sizeof a),
                     tg_dtype_name(out->dtype), tensor_shape_str(out, b, sizeof b));
        return -1;
    }
    return 0;
}

/* The arguments: grads first (cleared, so that every failure leaves them
 * NULL), then the output, then the inputs. */
static int check_inputs(const char *fn, tensor *const *inputs, int n, tensor **grads,
                        const tensor *out, const tensor *gout) {
    char a[96];
    if (!grads) {
        tg_error_set("%s: grads is NULL; give an array of n tensor pointers for the results", fn);
        return -1;
    }
    if (!inputs || n <= 0) {
        tg_error_set("%s: no inputs (inputs %s, n = %d); give at least one tensor to "
                     "differentiate with respect to",
                     fn, inputs ? "given" : "NULL", n);
        return -1;
    }
    for (int k = 0; k < n; k++) grads[k] = NULL;
    if (check_output(fn, out, gout)) return -1;
    for (int k = 0; k < n; k++) {
        const tensor *t = inputs[k];
        char what[32];
        snprintf(what, sizeof what, "input %d", k);
        if (!t) {
            if (!tg_error_pending()) tg_error_set("%s: input %d is NULL", fn, k);
            return -1;
        }
        if (tg_tensor_check_fresh(fn, what, t)) return -1;
        if (t->dtype == DTYPE_I64) {
            tg_error_set("%s: input %d %s is int64; gradients are taken with respect to float32 "
                         "or float64 tensors",
                         fn, k, tensor_shape_str(t, a, sizeof a));
            return -1;
        }
        if (!t->requires_grad) {
            tg_error_set("%s: input %d %s does not require grad; mark it with "
                         "tensor_set_requires_grad before computing the output",
                         fn, k, tensor_shape_str(t, a, sizeof a));
            return -1;
        }
    }
    return 0;
}

/* A tape tensor of t's shape filled with v. */
static tensor *tape_filled(const tensor *t, double v) {
    tensor *r = tg_tensor_tape_new(t->dtype, t->ndim, t->shape);
    if (r)
        for (int64_t i = 0; i < r->size; i++) tensor_set(r, i, v);
    return r;
}

/* The zeroed gradient buffer *slot of tensor t (kernel mode), made on first use. */
static tensor *buffer(tensor **slot, const tensor *t) {
    if (!*slot) {
        *slot = tg_tensor_tape_zeros(t->dtype, t->ndim, t->shape);
        if (*slot) (*slot)->is_grad = true;
    }
    return *slot;
}

typedef struct {
    const char *fn;
    tensor *out;
    tensor *const *inputs;
    int n;
    int64_t top;            /* out's tape position, -1 for a leaf */
    int64_t floor;          /* nodes below it are not walked: their outputs count as leaves */
    unsigned char *live, *reach;
    tensor **gnode;         /* per position: the gradient of that node's output */
    tensor **gleaf;         /* per input: the gradient of an input that is no node's output */
} walk;

/* t is the output of a node the walk goes through (at or above its floor,
 * below `before`). */
static bool walked(const walk *w, const tensor *t, int64_t before) {
    return is_node_output(t, before) && t->node >= w->floor;
}

/* Where the gradient of input j of node i goes, or NULL when it needs none. */
static tensor **dest_of(walk *w, const tape_node *nd, int64_t i, int j) {
    if (!slot_wants(nd, j)) return NULL;
    tensor *t = nd->in[j];
    if (walked(w, t, i)) return w->reach[t->node] || index_of(w->inputs, w->n, t) >= 0
                                          ? &w->gnode[t->node] : NULL;
    int k = index_of(w->inputs, w->n, t);
    return k >= 0 ? &w->gleaf[k] : NULL;
}

static int run_kernel(walk *w, tape_node *nd, int64_t i, uint64_t errors, bool pending_before) {
    tensor *gin_small[8];
    tensor **gin = nd->n_in <= 8 ? gin_small : tg_arena_alloc((size_t)nd->n_in * sizeof *gin);
    if (!gin) return -1;
    for (int j = 0; j < nd->n_in; j++) {
        tensor **d = dest_of(w, nd, i, j);
        gin[j] = d ? buffer(d, nd->in[j]) : NULL;
        if (d && !gin[j]) return -1;
    }
    /* the vjp reads the upstream gradient from out->grad: lent for the call */
    tensor *kept = nd->out->grad;
    nd->out->grad = w->gnode[i];
    tg_vjp_call(nd->op, nd, gin);
    nd->out->grad = kept;
    if (tg_error_count() != errors) {
        if (!pending_before)
            tg_error_prefix("%s: the vjp of %s (tape position %lld) failed: ", w->fn, nd->op->name,
                            (long long)i);
        return -1;
    }
    return 0;
}

static int run_graph(walk *w, int64_t i, uint64_t errors, bool pending_before) {
    /* a copy: the graph vjp's ops append nodes, and the tape may move */
    const tape_node nd = *tg_tape_node_at(i);
    bool want_small[8];
    tensor *gin_small[8];
    bool *want = nd.n_in <= 8 ? want_small : tg_arena_alloc((size_t)nd.n_in * sizeof *want);
    tensor **gin = nd.n_in <= 8 ? gin_small : tg_arena_alloc((size_t)nd.n_in * sizeof *gin);
    if (!want || !gin) return -1;
    bool any = false;
    for (int j = 0; j < nd.n_in; j++) {
        want[j] = dest_of(w, &nd, i, j) != NULL;
        gin[j] = NULL;
        any |= want[j];
    }
    if (!any) return 0;
    int rc = nd.op->vjp_graph(&nd, w->gnode[i], want, gin);
    if (rc || tg_error_count() != errors) {
        if (!tg_error_pending()) tg_error_set("%s: the graph vjp of %s failed", w->fn, nd.op->name);
        else if (!pending_before)
            tg_error_prefix("%s: the graph vjp of %s (tape position %lld) failed: ", w->fn,
                            nd.op->name, (long long)i);
        return -1;
    }
    for (int j = 0; j < nd.n_in; j++) {
        if (!want[j]) continue;
        if (!gin[j] || !tensor_same_shape(gin[j], nd.in[j]) || gin[j]->dtype != nd.in[j]->dtype) {
            char a[96], b[96];
            tg_error_set("%s: the graph vjp of %s (tape position %lld) gave input %d a gradient "
                         "%s for an input %s",
                         w->fn, nd.op->name, (long long)i, j,
                         gin[j] ? tensor_shape_str(gin[j], a, sizeof a) : "NULL",
                         tensor_shape_str(nd.in[j], b, sizeof b));
            return -1;
        }
        tensor **d = dest_of(w, &nd, i, j);
        *d = *d ? tensor_add(*d, gin[j]) : gin[j];
        if (!*d) return -1;
    }
    return 0;
}

/* The walk between the checks and the results; grads[k] filled on success. */
static int grad_walk(walk *w, const tensor *gout, bool create_graph, bool allow_unused,
                     tensor **grads) {
    char a[96], b[96];
    tensor *out = w->out;
    const int64_t top = w->top;
    /* live: out depends on the node's output; used[k]: input k reaches out */
    bool used_small[16];
    bool *used = w->n <= 16 ? used_small : tg_arena_alloc((size_t)w->n * sizeof *used);
    if (!used) return -1;
    for (int k = 0; k < w->n; k++) used[k] = w->inputs[k] == out;
    if (top >= 0) w->live[top] = 1;
    for (int64_t i = top; i >= w->floor; i--) {
        if (!w->live[i]) continue;
        const tape_node *nd = tg_tape_node_at(i);
        for (int j = 0; j < nd->n_in; j++) {
            if (!slot_wants(nd, j)) continue;
            tensor *t = nd->in[j];
            for (int k = 0; k < w->n; k++)
                if (w->inputs[k] == t) used[k] = true;
            if (walked(w, t, i)) w->live[t->node] = 1;
        }
    }
    for (int k = 0; k < w->n && !allow_unused; k++) {
        if (used[k]) continue;
        tg_error_set("%s: input %d %s is not in the graph of the output %s: the output does not "
                     "depend on it through the tape (not used, used in a no-grad scope, or "
                     "through a detached copy)",
                     w->fn, k, tensor_shape_str(w->inputs[k], a, sizeof a),
                     tensor_shape_str(out, b, sizeof b));
        return -1;
    }
    /* reach: the node's output depends on an input */
    for (int64_t i = w->floor; i <= top; i++) {
        const tape_node *nd = tg_tape_node_at(i);
        for (int j = 0; j < nd->n_in && !w->reach[i]; j++) {
            if (!slot_wants(nd, j)) continue;
            tensor *t = nd->in[j];
            if (index_of(w->inputs, w->n, t) >= 0 || (walked(w, t, i) && w->reach[t->node]))
                w->reach[i] = 1;
        }
    }
    /* refuse a first-order-only op before anything is recorded */
    for (int64_t i = top; i >= w->floor && create_graph; i--) {
        const tape_node *nd = tg_tape_node_at(i);
        if (w->live[i] && w->reach[i] && !nd->op->vjp_graph) {
            tg_error_set("%s: create_graph through %s: %s has no differentiable vjp (first order "
                         "only)",
                         w->fn, nd->op->name, nd->op->name);
            return -1;
        }
    }
    /* the seed: grad_out, or ones for a scalar */
    tensor *seed;
    if (create_graph) {
        seed = gout ? (tensor *)gout : tape_filled(out, 1.0);
    } else {
        seed = gout ? tape_filled(out, 0.0) : tape_filled(out, 1.0);
        if (seed && gout) tensor_copy_data(seed, gout);
        if (seed) seed->is_grad = true;
    }
    if (!seed) return -1;
    if (top >= 0) w->gnode[top] = seed;

    const bool pending_before = tg_error_pending();
    const uint64_t errors = tg_error_count();
    for (int64_t i = top; i >= w->floor; i--) {
        if (!w->live[i] || !w->reach[i] || !w->gnode[i]) continue;
        int rc = create_graph ? run_graph(w, i, errors, pending_before)
                              : run_kernel(w, tg_tape_node_at(i), i, errors, pending_before);
        if (rc) return -1;
    }
    for (int k = 0; k < w->n; k++) {
        tensor *t = w->inputs[k], *g;
        if (t == out) g = seed;
        else if (walked(w, t, top + 1)) g = w->gnode[t->node];
        else g = w->gleaf[index_of(w->inputs, w->n, t)];
        if (!g) g = tape_filled(t, 0.0); /* allowed unused: the gradient is zero */
        /* every result is a tape tensor of its own: the seed may be the
         * caller's grad_out (a copy keeps its link to it when it requires grad) */
        else if (!g->tape_owned) g = tensor_add_scalar(g, 0.0);
        if (!g) return -1;
        if (!create_graph) g->is_grad = false;
        grads[k] = g;
    }
    return 0;
}

/* The walk from out down to the node at position floor: below it, node
 * outputs are leaves (an input there gets the gradient that reaches it
 * directly, not through the nodes that made it). */
static int grad_above(const char *fn, int64_t floor, tensor *out, const tensor *gout,
                      tensor *const *inputs, int n, bool create_graph, bool allow_unused,
                      tensor **grads) {
    if (check_inputs(fn, inputs, n, grads, out, gout)) return -1;
    /* in a no-grad scope nothing can be recorded: the kernel vjps give the
     * same numbers */
    if (!tape_is_recording()) create_graph = false;
    walk w = {.fn = fn, .out = out, .inputs = inputs, .n = n, .floor = floor};
    w.top = out->tape_owned && out->node >= 0 ? out->node : -1;
    const size_t np = (size_t)(w.top + 1);
    w.live = tg_mem_calloc(np + 1);
    w.reach = tg_mem_calloc(np + 1);
    w.gnode = tg_mem_calloc((np + 1) * sizeof *w.gnode);
    w.gleaf = tg_mem_calloc((size_t)n * sizeof *w.gleaf);
    const int64_t n0 = tg_tape_node_count();
    int rc = -1;
    if (w.live && w.reach && w.gnode && w.gleaf)
        rc = grad_walk(&w, gout, create_graph, allow_unused, grads);
    tg_mem_free(w.live);
    tg_mem_free(w.reach);
    tg_mem_free(w.gnode);
    tg_mem_free(w.gleaf);
    if (rc) {
        for (int k = 0; k < n; k++) grads[k] = NULL;
        tg_tape_truncate(n0); /* nodes a failed create_graph walk recorded */
    }
    return rc;
}

int tg_grad_from(const char *fn, int64_t floor, tensor *out, const tensor *gout,
                 tensor *const *inputs, int n, bool create_graph, bool allow_unused,
                 tensor **grads) {
    return grad_above(fn, floor, out, gout, inputs, n, create_graph, allow_unused, grads);
}

/* tensor_grad with the caller's name for messages; allow_unused gives an
 * input outside out's graph a zero gradient instead of an error. */
int tg_grad(const char *fn, tensor *out, const tensor *gout, tensor *const *inputs, int n,
            bool create_graph, bool allow_unused, tensor **grads) {
    return grad_above(fn, 0, out, gout, inputs, n, create_graph, allow_unused, grads);
}

int tensor_grad(tensor *out, const tensor *grad_out, tensor *const *inputs, int n,
                bool create_graph, tensor **grads) {
    return tg_grad("tensor_grad", out, grad_out, inputs, n, create_graph, false, grads);
}

/* H v = d/dx <grad f(x), v>: the gradient is recorded (create_graph), its
 * inner product with v is a scalar, and a first-order walk over that scalar
 * gives H v. An input whose gradient does not depend on the inputs (f
 * linear in it) has a zero row block of H, hence allow_unused. */
int tensor_hvp(tensor *out, tensor *const *inputs, int n, tensor *const *v, tensor **hv) {
    const char *fn = "tensor_hvp";
    if (check_inputs(fn, inputs, n, hv, out, NULL)) return -1;
    if (!v) {
        tg_error_set("%s: v is NULL; give one vector per input", fn);
        return -1;
    }
    for (int k = 0; k < n; k++) {
        char a[96], b[96];
        if (!v[k]) {
            if (!tg_error_pending()) tg_error_set("%s: v[%d] is NULL", fn, k);
            return -1;
        }
        char what[32];
        snprintf(what, sizeof what, "v[%d]", k);
        if (tg_tensor_check_fresh(fn, what, v[k])) return -1;
        if (v[k]->dtype != inputs[k]->dtype || !tensor_same_shape(v[k], inputs[k])) {
            tg_error_set("%s: v[%d] %s %s does not match input %d %s %s", fn, k,
                         tg_dtype_name(v[k]->dtype), tensor_shape_str(v[k], a, sizeof a), k,
                         tg_dtype_name(inputs[k]->dtype), tensor_shape_str(inputs[k], b, sizeof b));
            return -1;
        }
    }
    tensor *small[16];
    tensor **g = n <= 16 ? small : tg_arena_alloc((size_t)n * sizeof *g);
    if (!g) return -1;
    if (tg_grad(fn, out, NULL, inputs, n, true, false, g)) return -1;
    tensor *s = NULL;
    for (int k = 0; k < n; k++) {
        tensor *p = tensor_sum_all(tensor_mul(g[k], v[k]));
        s = s ? tensor_add(s, p) : p;
    }
    if (!s) return -1;
    if (!s->requires_grad) { /* the gradient is constant: H = 0 */
        for (int k = 0; k < n; k++)
            if (!(hv[k] = tape_filled(inputs[k], 0.0))) return -1;
        return 0;
    }
    return tg_grad(fn, s, NULL, inputs, n, false, true, hv);
}

/* ------------------------------------------------- helpers of graph vjps */
int tg_graph_vjp_done(const tape_node *n, const bool *want, tensor *const *gin) {
    for (int j = 0; j < n->n_in; j++) {
        if (!want[j] || gin[j]) continue;
        if (!tg_error_pending()) tg_error_set("%s: the graph vjp made no gradient for input %d", n->op->name, j);
        return -1;
    }
    return 0;
}

tensor *tg_tape_scalar(dtype dt, double v) {
    tensor *t = tg_tensor_tape_new(dt, 0, NULL);
    if (t) tensor_set(t, 0, v);
    return t;
}

tensor *tg_gather_adjoint(tensor *g, int ax, tensor *idx, const tensor *a) {
    if (!g || !idx) return NULL;
    const int nd = g->ndim;
    const int64_t A = a->shape[ax];
    int64_t s1[TENSOR_MAX_DIMS], s2[TENSOR_MAX_DIMS], pads[2 * TENSOR_MAX_DIMS] = {0};
    for (int d = 0; d < nd; d++) s1[d] = g->shape[d];
    s1[nd] = 1;
    /* t[p, c] = g[p] [idx[p] = c], summed over p_ax: [.., 1 (ax), .., A] */
    tensor *t = tensor_mul(tensor_reshape(g, nd + 1, s1), tensor_one_hot(idx, A, g->dtype));
    t = tensor_sum(t, &ax, 1, true);
    /* the class dim takes the axis's place */
    t = tensor_transpose(t, ax, nd);
    bool pad = false;
    for (int d = 0; d < nd; d++) {
        s2[d] = d == ax ? A : g->shape[d];
        pads[2 * d + 1] = a->shape[d] - s2[d];
        pad |= pads[2 * d + 1] > 0;
    }
    t = tensor_reshape(t, nd, s2);
    return pad ? tensor_pad(t, pads, 0.0) : t;
}

int tg_vjp_graph_by_decomposition(const tape_node *n, tensor *out, tensor *g, const bool *want,
                                  tensor **gin) {
    tensor *wrt[8], *res[8];
    int m = 0, slot[8];
    for (int j = 0; j < n->n_in && m < 8; j++)
        if (want[j]) slot[m] = j, wrt[m++] = n->in[j];
    if (!out) return tg_graph_vjp_done(n, want, gin);
    /* an input the decomposition does not reach has a zero gradient */
    /* only the decomposition is walked, from out down to the nodes recorded
     * after the one differentiated (position n->out->node): an input computed
     * from another input is a leaf here, its own history is the outer walk's
     * (walking it here too counted those paths twice) */
    const int64_t floor = n->out->tape_owned && n->out->node >= 0 ? n->out->node + 1 : 0;
    if (grad_above(n->op->name, floor, out, g, wrt, m, true, true, res)) return -1;
    for (int k = 0; k < m; k++) gin[slot[k]] = res[k];
    return tg_graph_vjp_done(n, want, gin);
}

tensor *tg_unfold2d(tensor *x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                    int64_t pw, int64_t dh, int64_t dw, double pad_value, int64_t oh, int64_t ow) {
    if (!x) return NULL;
    const int64_t pads[8] = {0, 0, 0, 0, ph, ph, pw, pw};
    tensor *xp = ph || pw ? tensor_pad(x, pads, pad_value) : x;
    const int64_t taps = kh * kw;
    tensor *small[64];
    tensor **t = taps <= 64 ? small : tg_arena_alloc((size_t)taps * sizeof *t);
    if (!t || !xp) return NULL;
    for (int64_t i = 0; i < kh; i++)
        for (int64_t j = 0; j < kw; j++) {
            tensor *r = tensor_slice(xp, 2, i * dh, i * dh + (oh - 1) * sh + 1, sh);
            t[i * kw + j] = tensor_slice(r, 3, j * dw, j * dw + (ow - 1) * sw + 1, sw);
        }
    return tensor_stack(t, (int)taps, 2);
}
