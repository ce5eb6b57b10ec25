/* gradgradcheck.c - the checker one order up.
 *
 * Second-order gradients are first-order gradients of a function that
 * computes gradients. So gradgradcheck hands gradcheck the function
 *     F(x) = flatten(tensor_grad(fn(x), v, x, create_graph = true))
 * (v a seeded random upstream gradient for a non-scalar fn, 1 for a scalar):
 * gradcheck's analytic side backpropagates through the recorded gradients
 * (the second-order vjp, u^T d grad / dx for its random u), and its numeric
 * side takes central differences of F, the first-order gradients, in
 * float64. Everything gradcheck does (replay, kinks, vacuous inputs,
 * determinism) applies unchanged.
 *
 * What a failure means: the first-order vjps are gradcheck's business, so a
 * wrong second order comes from a differentiable vjp (op_def.vjp_graph) that
 * computes the wrong numbers or leaves a dependence off the tape. The second
 * kind is what gradcheck sees: its replay verification finds the value
 * computed off the tape, and re-runs give central differences the analytic
 * side cannot match. The first kind is consistent with itself (F's values and
 * F's vjp are wrong together), so each node of fn's graph also has its
 * differentiable vjp compared with its kernel vjp at the node's recorded
 * values; the first that disagrees fails the check and is named. gradcheck_op_graph_vjp runs the same comparison
 * on an op's sample cases, which the test suite does for the whole
 * registry. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

enum { STREAM_GG_UPSTREAM = 11, STREAM_GG_NODE = 12 };

bool op_differentiable_twice(const op_def *op) {
    if (!op) return false;
    if (op->vjp_graph) return true;
    /* every input gradient-free: never recorded, so never walked */
    return op->arity > 0 && op->arity < 32 &&
           (op->no_grad_inputs & ((1u << op->arity) - 1)) == ((1u << op->arity) - 1);
}

/* +-[0.5, 1.5): every element weighs in, none vanishes. */
static void fill_seeded(tensor *t, rng *g) {
    for (int64_t i = 0; i < t->size; i++) {
        double m = 0.5 + rng_uniform(g);
        tensor_set(t, i, (rng_next_u32(g) & 1) ? m : -m);
    }
}

/* ------------------------------------------ differentiable vjp vs kernel vjp */
/* Node i's vjp_graph (of `op`, which may be a copy of the node's entry) and
 * its kernel vjp, on one seeded upstream gradient (values only: the nodes
 * the graph vjp records are dropped again). Returns 1 when they disagree (the sentence in *msg, allocated), 0
 * when they agree or the node has nothing to compare, -1 on an error. */
static int node_compare(const op_def *op, int64_t i, rng *g, const char *where, char **msg) {
    tape_node *nd = tg_tape_node_at(i);
    bool want[SAMPLE_MAX_INPUTS];
    bool any = false;
    if (nd->n_in > SAMPLE_MAX_INPUTS || nd->out->size == 0) return 0;
    for (int j = 0; j < nd->n_in; j++) {
        const tensor *t = nd->in[j];
        want[j] = t && t->requires_grad && !mask_bit(op->no_grad_inputs, j) && t->size > 0;
        any |= want[j];
    }
    if (!any) return 0;
    double atol, rtol;
    tg_op_tight_tolerances(op, &atol, &rtol);
    tensor *u = tg_tensor_tape_new(nd->out->dtype, nd->out->ndim, nd->out->shape);
    if (!u) return -1;
    fill_seeded(u, g);
    tensor *kern[SAMPLE_MAX_INPUTS] = {NULL}, *graph[SAMPLE_MAX_INPUTS] = {NULL};
    for (int j = 0; j < nd->n_in; j++) {
        if (!want[j]) continue;
        kern[j] = tg_tensor_tape_zeros(nd->in[j]->dtype, nd->in[j]->ndim, nd->in[j]->shape);
        if (!kern[j]) return -1;
    }
    const uint64_t errors = tg_error_count();
    tensor *kept = nd->out->grad;
    nd->out->grad = u;
    tg_vjp_call(op, nd, kern);
    nd->out->grad = kept;
    /* recorded (a decomposition must be), then dropped from the tape */
    const tape_node copy = *nd;
    const int64_t count = tg_tape_node_count();
    int rc = op->vjp_graph(&copy, u, want, graph);
    tg_tape_truncate(count);
    if (rc || tg_error_count() != errors) {
        if (!tg_error_pending()) tg_error_set("%s: the differentiable vjp failed", where);
        else tg_error_prefix("%s: ", where);
        return -1;
    }
    nd = tg_tape_node_at(i);
    for (int j = 0; j < nd->n_in; j++) {
        if (!want[j]) continue;
        char a[96], b[96];
        if (!graph[j] || !tensor_same_shape(graph[j], nd->in[j])) {
            int n = snprintf(NULL, 0, "%s: the differentiable vjp of %s gives input %d a gradient "
                             "of shape %s, the input is %s", where, op->name, j,
                             graph[j] ? tensor_shape_str(graph[j], a, sizeof a) : "NULL",
                             tensor_shape_str(nd->in[j], b, sizeof b));
            *msg = tg_mem_alloc((size_t)n + 1);
            if (*msg)
                snprintf(*msg, (size_t)n + 1, "%s: the differentiable vjp of %s gives input %d a "
                         "gradient of shape %s, the input is %s", where, op->name, j,
                         graph[j] ? tensor_shape_str(graph[j], a, sizeof a) : "NULL",
                         tensor_shape_str(nd->in[j], b, sizeof b));
            return 1;
        }
        for (int64_t e = 0; e < kern[j]->size; e++) {
            double k = tensor_get(kern[j], e), v = tensor_get(graph[j], e);
            if (fabs(k - v) <= atol + rtol * fabs(k)) continue;
            const char *fmt = "%s: the differentiable vjp of %s disagrees with its kernel vjp: "
                              "input %d element %lld is %.17g, the kernel gives %.17g (atol %g, "
                              "rtol %g)";
            int n = snprintf(NULL, 0, fmt, where, op->name, j, (long long)e, v, k, atol, rtol);
            *msg = tg_mem_alloc((size_t)n + 1);
            if (*msg) snprintf(*msg, (size_t)n + 1, fmt, where, op->name, j, (long long)e, v, k, atol, rtol);
            return 1;
        }
    }
    return 0;
}

/* Float64 copies of the inputs, requiring grad unless int64 or masked out
 * (mask 0: all). */
static int copy_inputs(tensor *const *in, int n, uint32_t mask, tensor **out) {
    for (int i = 0; i < n; i++) {
        out[i] = in[i]->dtype == DTYPE_I64 ? tensor_clone(in[i]) : tensor_to_dtype(in[i], DTYPE_F64);
        if (!out[i]) return -1;
        if (in[i]->dtype != DTYPE_I64 && (mask == 0 || mask_bit(mask, i)))
            tensor_set_requires_grad(out[i], true);
    }
    return 0;
}

int gradcheck_op_graph_vjp(const op_def *op, uint64_t seed, op_check_report *r) {
    if (!op || !r) {
        tg_error_set("gradcheck_op_graph_vjp: %s is NULL", !op ? "op" : "report");
        return -1;
    }
    memset(r, 0, sizeof *r);
    r->passed = true;
    if (!op->vjp_graph || !op->sample || !op->build) {
        tg_error_set("gradcheck_op_graph_vjp: %s has no %s", op->name,
                     !op->vjp_graph ? "differentiable vjp (first order only)"
                     : !op->sample  ? "sample cases"
                                    : "build function");
        return -1;
    }
    int rc = 0;
    for (int k = 0; rc == 0 && r->passed; k++) {
        op_sample s;
        memset(&s, 0, sizeof s);
        rng g;
        rng_seed(&g, seed, (uint64_t)k);
        int sr = op->sample(k, &g, &s);
        if (sr == 1) break;
        tensor *in[SAMPLE_MAX_INPUTS] = {NULL};
        char where[256];
        snprintf(where, sizeof where, "%s case %d (%s)", op->name, k, s.name);
        if (sr != 0) {
            if (!tg_error_pending()) tg_error_set("gradcheck_op_graph_vjp: %s: the sample failed", where);
            rc = -1;
        }
        if (rc == 0 && copy_inputs(s.inputs, s.n_inputs, 0, in)) rc = -1;
        for (int i = 0; rc == 0 && i < s.n_inputs; i++)
            if (mask_bit(s.no_grad_mask, i) && in[i]->requires_grad) in[i]->requires_grad = false;
        if (rc == 0) {
            tape_reset();
            if (!op->build(in, &s)) {
                if (!tg_error_pending()) tg_error_set("gradcheck_op_graph_vjp: %s: the build failed", where);
                rc = -1;
            }
        }
        if (rc == 0) r->cases++;
        rng gu;
        rng_seed(&gu, seed, STREAM_GG_NODE);
        for (int64_t j = 0; rc == 0 && j < tg_tape_node_count(); j++) {
            if (strcmp(tg_tape_node_at(j)->op->name, op->name) != 0) continue;
            r->nodes++;
            char *msg = NULL;
            int c = node_compare(op, j, &gu, where, &msg);
            if (c < 0) rc = -1;
            if (c > 0) {
                r->passed = false;
                r->message = msg;
                break;
            }
        }
        tape_reset();
        for (int i = 0; i < SAMPLE_MAX_INPUTS; i++) tensor_free(in[i]);
        for (int i = 0; i < s.n_inputs && i < SAMPLE_MAX_INPUTS; i++) tensor_free(s.inputs[i]);
    }
    if (rc) op_check_report_free(r);
    return rc;
}

/* ------------------------------------------------------------ gradgradcheck */
typedef struct {
    gradcheck_fn fn;
    void *ctx;
    uint64_t seed;
    tensor *v; /* fn's upstream gradient (user-owned), made at the first call */
} gg_ctx;

/* F(x): fn's first-order gradients, recorded, flattened into one vector. */
static tensor *gg_fn(tensor *const *in, int n, void *vc) {
    gg_ctx *c = vc;
    tensor *out = c->fn(in, n, c->ctx);
    if (!out) return NULL;
    char a[96], b[96];
    if (!out->requires_grad) {
        tg_error_set("gradgradcheck: fn's output %s does not require grad",
                     tensor_shape_str(out, a, sizeof a));
        return NULL;
    }
    const tensor *gout = NULL;
    if (out->size != 1) {
        if (!c->v) {
            c->v = tensor_new(out->dtype, out->ndim, out->shape);
            if (!c->v) return NULL;
            rng g;
            rng_seed(&g, c->seed, STREAM_GG_UPSTREAM);
            fill_seeded(c->v, &g);
        } else if (!tensor_same_shape(c->v, out)) {
            tg_error_set("gradgradcheck: fn's output changed shape from %s to %s",
                         tensor_shape_str(c->v, a, sizeof a), tensor_shape_str(out, b, sizeof b));
            return NULL;
        }
        gout = c->v;
    }
    tensor *wrt[GRADCHECK_MAX_INPUTS], *g[GRADCHECK_MAX_INPUTS], *flat[GRADCHECK_MAX_INPUTS];
    int m = 0;
    for (int k = 0; k < n && m < GRADCHECK_MAX_INPUTS; k++)
        if (in[k] && in[k]->dtype != DTYPE_I64 && in[k]->requires_grad) wrt[m++] = in[k];
    /* (m = 0 is refused by tg_grad, as no inputs) an input that out does not depend on has a zero gradient, constant */
    if (tg_grad("gradgradcheck", out, gout, wrt, m, true, true, g)) return NULL;
    for (int k = 0; k < m; k++) {
        int64_t len = g[k]->size;
        if (!(flat[k] = tensor_reshape(g[k], 1, &len))) return NULL;
    }
    return m == 1 ? flat[0] : tensor_concat(flat, m, 0);
}

/* Appends " sentence" to the report's message (a new allocation). */
static void report_append(gradcheck_report *r, const char *sentence) {
    size_t l0 = r->message ? strlen(r->message) : 0, l1 = strlen(sentence);
    char *m = tg_mem_alloc(l0 + l1 + 2);
    if (!m) return;
    if (l0) memcpy(m, r->message, l0);
    m[l0] = ' ';
    memcpy(m + l0 + 1, sentence, l1 + 1);
    tg_mem_free(r->message);
    r->message = m;
}

/* Records fn once more and names the first node whose differentiable vjp
 * disagrees with its kernel vjp: the check fails there, localised. */
static void gg_localize(gradcheck_fn fn, void *ctx, tensor *const *inputs, int n,
                        const gradcheck_options *o, gradcheck_report *r) {
    tensor *in[GRADCHECK_MAX_INPUTS] = {NULL};
    tape_reset();
    if (copy_inputs(inputs, n, o->check_mask, in) == 0 && fn(in, n, ctx)) {
        rng g;
        rng_seed(&g, o->seed, STREAM_GG_NODE);
        for (int64_t i = 0; i < tg_tape_node_count(); i++) {
            const op_def *op = tg_tape_node_at(i)->op;
            if (!op->vjp_graph) continue;
            char where[64], *msg = NULL;
            snprintf(where, sizeof where, "tape position %lld", (long long)i);
            int c = node_compare(op, i, &g, where, &msg);
            if (c < 0) break;
            if (c == 0) continue;
            /* "tanh [3,4]": the op and its inputs' shapes */
            char desc[256];
            const tape_node *nd = tg_tape_node_at(i);
            int o2 = snprintf(desc, sizeof desc, "%s", op->name);
            for (int j = 0; j < nd->n_in && o2 < (int)sizeof desc; j++) {
                char s[96];
                o2 += snprintf(desc + o2, sizeof desc - (size_t)o2, "%s%s", j ? " * " : " ",
                               nd->in[j] ? tensor_shape_str(nd->in[j], s, sizeof s) : "-");
            }
            tg_mem_free(r->bad_node_desc);
            size_t dl = strlen(desc) + 1;
            r->bad_node_desc = tg_mem_alloc(dl);
            if (r->bad_node_desc) memcpy(r->bad_node_desc, desc, dl);
            r->passed = false;
            r->localized = true;
            r->bad_node = (int)i;
            report_append(r, "Second order localised:");
            if (msg) report_append(r, msg);
            tg_mem_free(msg);
            break;
        }
    }
    tapegrad_error_clear();
    tape_reset();
    for (int i = 0; i < n; i++) tensor_free(in[i]);
}

int gradgradcheck(gradcheck_fn fn, void *ctx, tensor *const *inputs, int n,
                  const gradcheck_options *opt, gradcheck_report *report) {
    if (!fn || !inputs || !report || n <= 0 || n > GRADCHECK_MAX_INPUTS) {
        tg_error_set("gradgradcheck: %s", !fn ? "fn is NULL" : !inputs ? "inputs is NULL"
                                          : !report ? "report is NULL"
                                                    : "n must be 1..GRADCHECK_MAX_INPUTS");
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (!inputs[i]) {
            tg_error_set("gradgradcheck: input %d is NULL", i);
            return -1;
        }
    gradcheck_options o = opt ? *opt : gradcheck_defaults();
    gg_ctx c = {.fn = fn, .ctx = ctx, .seed = o.seed};
    int rc = gradcheck(gg_fn, &c, inputs, n, &o, report);
    tensor_free(c.v);
    /* gradcheck differentiates F by F's own values: a graph vjp that is
     * wrong in value but consistently so would pass it. Its values are held
     * to the kernel vjps node by node (also the localisation). */
    if (rc == 0 && !report->localized) gg_localize(fn, ctx, inputs, n, &o, report);
    return rc;
}
