/* registry.c - the op registry: the concatenation of the family tables that
 * live next to their kernels in ops/, then the custom ops registered at run
 * time. Enumerated by the checker, the docs generator and the tests, so an op
 * cannot be forgotten by any of them. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* op_families.h is generated from ops/ by scripts/op_families.sh (see the
 * Makefile): one OP_FAMILY(name) line per family table found there. */
#include "op_families.h" /* the declarations (OP_FAMILY of internal.h) */

typedef struct {
    const op_def *table;
    const int *count;
} family;

static const family families[] = {
#undef OP_FAMILY
#define OP_FAMILY(fam) {tg_ops_##fam, &tg_ops_##fam##_count},
#include "op_families.h"
};
#define N_FAMILIES (int)(sizeof families / sizeof families[0])

/* A custom op: its registry entry, whose functions are the trampolines
 * below, and the user's spec. The entry comes first, so a node's op pointer
 * leads back to the spec. Registered ops live until the process ends. */
typedef struct custom_op {
    op_def def;
    op_spec spec;
    char name[64];
} custom_op;

static custom_op **customs;
static int n_customs, cap_customs;

int op_count(void) {
    int n = n_customs;
    for (int f = 0; f < N_FAMILIES; f++) n += *families[f].count;
    return n;
}

const op_def *op_at(int i) {
    if (i < 0) return NULL;
    for (int f = 0; f < N_FAMILIES; f++) {
        if (i < *families[f].count) return &families[f].table[i];
        i -= *families[f].count;
    }
    return i < n_customs ? &customs[i]->def : NULL;
}

const op_def *op_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0, n = op_count(); i < n; i++)
        if (strcmp(op_at(i)->name, name) == 0) return op_at(i);
    return NULL;
}

const char *op_name(const op_def *op) { return op ? op->name : NULL; }
int op_arity(const op_def *op) { return op ? op->arity : 0; }
const char *op_signature(const op_def *op) { return op ? op->signature : NULL; }
const char *op_formula_forward(const op_def *op) { return op ? op->formula_forward : NULL; }
const char *op_formula_gradient(const op_def *op) { return op ? op->formula_gradient : NULL; }
const char *op_notes(const op_def *op) { return op ? op->notes : NULL; }

/* ------------------------------------------------------------ custom ops */
static const custom_op *custom_of(const op_def *op) {
    for (int i = 0; op && i < n_customs; i++)
        if (&customs[i]->def == op) return customs[i];
    return NULL;
}

/* The node's params live in fp[0..n_params). */
static void custom_forward(tape_node *n) {
    const custom_op *c = (const custom_op *)n->op;
    c->spec.forward(n->in, n->n_in, n->fp, n->out);
}

static void custom_vjp(tape_node *n, tensor *const *gin) {
    const custom_op *c = (const custom_op *)n->op;
    c->spec.vjp(n->in, n->n_in, n->fp, n->out, n->out->grad, gin);
}

/* The spec's vjp_graph on the node's inputs, params and output; then every
 * wanted gradient must be there (tg_graph_vjp_done names the op). */
static int custom_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    const custom_op *c = (const custom_op *)n->op;
    if (c->spec.vjp_graph(n->in, n->n_in, n->fp, n->out, g, want, gin)) return -1;
    return tg_graph_vjp_done(n, want, gin);
}

/* The checker calls op->sample(k, g, s) and op->build(in, s), with no op
 * argument: each registered op gets its own pair of functions, from a fixed
 * pool of OP_MAX_CUSTOM slots (slot i serves customs[i]). */
static int custom_sample_with(const custom_op *c, int k, rng *g, op_sample *s) {
    if (!c->spec.sample) return 1;
    op_case oc;
    memset(&oc, 0, sizeof oc);
    int rc = c->spec.sample(k, g, &oc);
    if (rc != 0) {
        for (int i = 0; i < oc.n_inputs && i < OP_MAX_INPUTS; i++) tensor_free(oc.inputs[i]);
        return rc;
    }
    memcpy(s->name, oc.name, sizeof s->name);
    s->name[sizeof s->name - 1] = '\0';
    s->n_inputs = oc.n_inputs;
    for (int i = 0; i < OP_MAX_INPUTS; i++) s->inputs[i] = oc.inputs[i];
    s->no_grad_mask = oc.no_grad_mask;
    for (int i = 0; i < OP_MAX_PARAMS; i++) s->fp[i] = oc.params[i];
    return 0;
}

static tensor *custom_build_with(const custom_op *c, tensor *const *in, const op_sample *s) {
    return tensor_apply(&c->def, in, s->n_inputs, s->fp);
}

#define OP_MAX_CUSTOM 32
#define SLOT(i)                                                                      \
    static int sample_##i(int k, rng *g, op_sample *s) {                             \
        return custom_sample_with(customs[i], k, g, s);                              \
    }                                                                                \
    static tensor *build_##i(tensor *const *in, const op_sample *s) {                \
        return custom_build_with(customs[i], in, s);                                 \
    }
SLOT(0) SLOT(1) SLOT(2) SLOT(3) SLOT(4) SLOT(5) SLOT(6) SLOT(7)
SLOT(8) SLOT(9) SLOT(10) SLOT(11) SLOT(12) SLOT(13) SLOT(14) SLOT(15)
SLOT(16) SLOT(17) SLOT(18) SLOT(19) SLOT(20) SLOT(21) SLOT(22) SLOT(23)
SLOT(24) SLOT(25) SLOT(26) SLOT(27) SLOT(28) SLOT(29) SLOT(30) SLOT(31)
#define SLOT_FNS(i) {sample_##i, build_##i}
static const struct {
    int (*sample)(int, rng *, op_sample *);
    tensor *(*build)(tensor *const *, const op_sample *);
} slot_fns[OP_MAX_CUSTOM] = {
    SLOT_FNS(0), SLOT_FNS(1), SLOT_FNS(2), SLOT_FNS(3), SLOT_FNS(4), SLOT_FNS(5), SLOT_FNS(6), SLOT_FNS(7),
    SLOT_FNS(8), SLOT_FNS(9), SLOT_FNS(10), SLOT_FNS(11), SLOT_FNS(12), SLOT_FNS(13), SLOT_FNS(14), SLOT_FNS(15),
    SLOT_FNS(16), SLOT_FNS(17), SLOT_FNS(18), SLOT_FNS(19), SLOT_FNS(20), SLOT_FNS(21), SLOT_FNS(22), SLOT_FNS(23),
    SLOT_FNS(24), SLOT_FNS(25), SLOT_FNS(26), SLOT_FNS(27), SLOT_FNS(28), SLOT_FNS(29), SLOT_FNS(30), SLOT_FNS(31),
};

static int spec_errors(const op_spec *sp) {
    if (!sp) {
        tg_error_set("op_register: spec is NULL");
        return -1;
    }
    const char *missing = !sp->name || !*sp->name ? "name" : !sp->forward ? "forward function"
                          : !sp->vjp ? "vjp function" : NULL;
    if (missing) {
        tg_error_set("op_register: the spec has no %s", missing);
        return -1;
    }
    if (strlen(sp->name) >= sizeof ((custom_op *)0)->name || sp->arity < 1 ||
        sp->arity > OP_MAX_INPUTS || sp->n_params < 0 || sp->n_params > OP_MAX_PARAMS) {
        tg_error_set("op_register: %s: name of %zu characters (at most %zu), arity %d (1..%d),"
                  " %d params (0..%d)",
                  sp->name, strlen(sp->name), sizeof ((custom_op *)0)->name - 1, sp->arity,
                  OP_MAX_INPUTS, sp->n_params, OP_MAX_PARAMS);
        return -1;
    }
    if (op_find(sp->name)) {
        tg_error_set("op_register: an op named %s is already registered", sp->name);
        return -1;
    }
    if (n_customs == OP_MAX_CUSTOM) {
        tg_error_set("op_register: %s: %d custom ops are registered already (at most %d)", sp->name,
                  n_customs, OP_MAX_CUSTOM);
        return -1;
    }
    return 0;
}

const op_def *op_register(const op_spec *sp) {
    if (spec_errors(sp)) return NULL;
    if (n_customs == cap_customs) {
        custom_op **grown = tg_mem_alloc(OP_MAX_CUSTOM * sizeof *grown);
        if (!grown) return NULL;
        cap_customs = OP_MAX_CUSTOM;
        customs = grown;
    }
    custom_op *c = tg_mem_calloc(sizeof *c);
    if (!c) return NULL;
    c->spec = *sp;
    snprintf(c->name, sizeof c->name, "%s", sp->name);
    c->spec.name = c->name;
    c->def = (op_def){c->name,
                      sp->arity,
                      sp->no_grad_inputs,
                      custom_forward,
                      custom_vjp,
                      slot_fns[n_customs].sample,
                      slot_fns[n_customs].build,
                      sp->signature ? sp->signature : c->name,
                      sp->formula_forward ? sp->formula_forward : "",
                      sp->formula_gradient ? sp->formula_gradient : "",
                      sp->notes ? sp->notes : "",
                      /* NULL: first order only, create_graph refused naming it */
                      .vjp_graph = sp->vjp_graph ? custom_vjp_graph : NULL};
    customs[n_customs++] = c;
    return &c->def;
}

tensor *tensor_apply(const op_def *op, tensor *const *in, int n, const double *params) {
    const custom_op *c = custom_of(op);
    if (!c) {
        tg_error_set("tensor_apply: %s is not a registered custom op", op ? op->name : "NULL");
        return NULL;
    }
    const op_spec *sp = &c->spec;
    if (n > 0 && !in) {
        tg_error_set("tensor_apply: %s: the input list is NULL (n = %d)", sp->name, n);
        return NULL;
    }
    if (n != sp->arity) {
        tg_error_set("tensor_apply: %s takes %d inputs, given %d", sp->name, sp->arity, n);
        return NULL;
    }
    if (tg_op_check_inputs(op, in, n, sp->no_grad_inputs)) return NULL;
    dtype dt = DTYPE_F64;
    bool any_float = false;
    for (int i = 0; i < n; i++)
        if (in[i]->dtype != DTYPE_I64) dt = in[i]->dtype, any_float = true;
    if (!any_float) {
        tg_error_set("tensor_apply: %s: every input is int64; one must be float", sp->name);
        return NULL;
    }
    int ndim = in[0]->ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, in[0]->shape, sizeof shape);
    if (sp->shape && sp->shape(in, n, params, &ndim, shape)) {
        if (!tg_error_pending()) tg_error_set("tensor_apply: %s refused the shapes of its inputs", sp->name);
        return NULL;
    }
    tape_node *nd = tg_node_begin(op, in, n, dt, ndim, shape);
    if (!nd) return NULL;
    for (int i = 0; i < sp->n_params && params; i++) nd->fp[i] = params[i];
    return tg_node_finish(nd);
}
