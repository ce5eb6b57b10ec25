/* opcheck.c - the vjp contract of one op, checked on its sample cases.
 *
 * The numerical checker asks whether a vjp computes the right numbers. This
 * file asks whether it behaves as the tape assumes, which central differences
 * cannot see:
 *   - accumulate: the tape hands a vjp gradient buffers that may already hold
 *     the contributions of other consumers (and a leaf's buffer holds earlier
 *     backward passes), so a vjp must add (+=). Each buffer is pre-filled with
 *     seeded values P; after the vjp it must hold P + G, where G is what the
 *     vjp gives into zeroed buffers, and after a second run P + 2 G. A vjp
 *     that assigns (=), or a GEMM called with beta 0, fails even when the
 *     input is used once, where a whole-graph check never notices.
 *   - writes nothing but gradient buffers: the node's inputs, its output, its
 *     saved tensors and the upstream gradient are byte-identical after the
 *     vjp (the tape, the checker's replay and later consumers still read
 *     them).
 *   - deterministic: two runs into zeroed buffers agree bit for bit.
 *   - fresh buffers: the tape hands a vjp, through tg_vjp_call, gradient
 *     buffers that are fresh (never written, garbage) when it is their
 *     first contribution. Filled with NaN and marked fresh, each buffer must
 *     end equal to G: an op with vjp_fresh must write (=) where it would
 *     have added, and only where the buffer is fresh; one without has them
 *     zeroed by tg_vjp_call. Checked alone and with all inputs wanting.
 *   - each input alone: with only input i wanting a gradient (the other
 *     buffers NULL, as the tape passes them when those inputs need none),
 *     input i gets the gradient it gets with all of them.
 * Every case runs in float64 and in float32 (the kernels training runs).
 *
 * The node is found by the op's name on the tape the case's build recorded,
 * and the vjp called is that of the op_def given: a copy of a registry entry
 * with another vjp (a broken one in a test, or a custom op sharing a builder)
 * is checked by the same code. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

enum { STREAM_CONTRACT = 5 };

static void fail(op_contract_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(op_contract_report *r, const char *fmt, ...) {
    if (!r->passed) return; /* the first breach is reported */
    r->passed = false;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    /* the whole sentence, however long (it may carry a gradcheck report) */
    r->message = tg_mem_alloc((size_t)n + 1);
    if (!r->message) return;
    va_start(ap, fmt);
    vsnprintf(r->message, (size_t)n + 1, fmt, ap);
    va_end(ap);
}

void op_check_report_free(op_check_report *r) {
    if (!r) return;
    tg_mem_free(r->message);
    r->message = NULL;
}

/* A tape-owned copy of t (NULL for NULL). */
static tensor *snapshot(const tensor *t) {
    if (!t) return NULL;
    tensor *c = tg_tensor_tape_new(t->dtype, t->ndim, t->shape);
    if (c) memcpy(c->data, t->data, (size_t)t->size * tg_dtype_size(t->dtype));
    return c;
}

static bool same_bytes(const tensor *a, const tensor *b) {
    return memcmp(a->data, b->data, (size_t)a->size * tg_dtype_size(a->dtype)) == 0;
}

/* The first element where a and b differ in bits, or -1. */
static int64_t first_diff(const tensor *a, const tensor *b) {
    size_t es = tg_dtype_size(a->dtype);
    for (int64_t i = 0; i < a->size; i++)
        if (memcmp((const char *)a->data + (size_t)i * es, (const char *)b->data + (size_t)i * es,
                   es) != 0)
            return i;
    return -1;
}

/* +-[0.5, 1.5): never near zero, so an overwritten prefill always shows. */
static void fill_seeded(tensor *t, rng *g) {
    for (int64_t i = 0; i < t->size; i++) {
        double m = 0.5 + rng_uniform(g);
        tensor_set(t, i, (rng_next_u32(g) & 1) ? m : -m);
    }
}

static double max_abs(const tensor *t) {
    double m = 0;
    for (int64_t i = 0; i < t->size; i++) m = fmax(m, fabs(tensor_get(t, i)));
    return m;
}

/* Rounding allowed between a += done inside the vjp and the same sum done
 * afterwards: a few units of the dtype's rounding on the magnitudes involved.
 * The breaches looked for are of the size of the prefill (>= 0.5). */
static double unit_roundoff(dtype dt) { return dt == DTYPE_F32 ? 0x1p-24 : 0x1p-53; }

/* The contract state of one node. */
typedef struct {
    const op_def *op;
    tape_node *nd;
    const char *where;                   /* "mul case 2 ([3], [2,3]) float32" */
    bool wants[SAMPLE_MAX_INPUTS];
    tensor *gin[SAMPLE_MAX_INPUTS];
    tensor *g1[SAMPLE_MAX_INPUTS];       /* the vjp into zeroed buffers */
} node_check;

/* Runs the vjp into new buffers, zeroed or copies of pre[j] when pre is
 * given, or NaN-filled and marked fresh (tensor.fresh) with fresh; only the
 * inputs in `only` (a bit mask) get a buffer. */
static int run_vjp_into(node_check *c, uint32_t only, tensor *const *pre, bool fresh) {
    tape_node *nd = c->nd;
    for (int j = 0; j < nd->n_in; j++) {
        c->gin[j] = NULL;
        if (!c->wants[j] || !mask_bit(only, j)) continue;
        const tensor *t = nd->in[j];
        c->gin[j] = pre ? snapshot(pre[j]) : tg_tensor_tape_zeros(t->dtype, t->ndim, t->shape);
        if (!c->gin[j]) return -1;
        if (fresh) {
            for (int64_t e = 0; e < t->size; e++) tensor_set(c->gin[j], e, NAN);
            c->gin[j]->fresh = true;
        }
    }
    /* a vjp that fails says so through an error (tensor_backward's rule) */
    uint64_t errors = tg_error_count();
    tg_vjp_call(c->op, nd, c->gin);
    return tg_error_count() == errors ? 0 : -1;
}

static int run_vjp(node_check *c, uint32_t only, tensor *const *pre) {
    return run_vjp_into(c, only, pre, false);
}

/* The first element where got and g1 differ in value (a NaN differs; 0 and
 * -0 agree: a fresh write of -0 where 0 + -0 gave 0), or -1. */
static int64_t first_value_diff(const tensor *got, const tensor *g1) {
    for (int64_t e = 0; e < got->size; e++)
        if (!(tensor_get(got, e) == tensor_get(g1, e))) return e;
    return -1;
}

/* The vjp into fresh NaN-filled buffers, every wanted input at once and
 * each alone, must give G (the zeroed run's buffers, c->g1) exactly. */
static int check_fresh(node_check *c, uint32_t all, op_contract_report *r) {
    tape_node *nd = c->nd;
    for (int i = -1; i < nd->n_in; i++) {
        if (i >= 0 && !c->wants[i]) continue;
        if (run_vjp_into(c, i < 0 ? all : 1u << i, NULL, true)) return -1;
        for (int j = 0; j < nd->n_in; j++) {
            if (!c->gin[j]) continue;
            int64_t e = first_value_diff(c->gin[j], c->g1[j]);
            if (e < 0 && !c->gin[j]->fresh) continue;
            if (e < 0) e = 0;
            fail(r, "%s: the vjp%s does not %s a fresh gradient buffer of input %d (NaN-filled,"
                    " %s): element %lld is %.9g, expected %.9g (the vjp into zeros)",
                 c->where, i < 0 ? "" : " (this input alone)",
                 c->op->vjp_fresh ? "write" : "get zeroed", j,
                 c->op->vjp_fresh ? "the op sets vjp_fresh" : "zeroed by tg_vjp_call",
                 (long long)e, tensor_get(c->gin[j], e), tensor_get(c->g1[j], e));
            return 0;
        }
        if (i < 0 && nd->n_in == 1) break;
    }
    return 0;
}

/* got[e] must be p[e] + k g1[e] (p NULL: 0) within rounding; returns the first
 * element that is not (its expected value in *want), or -1. */
static int64_t check_sum(const tensor *got, const tensor *p, const tensor *g1, double k,
                         double *want) {
    const double u = unit_roundoff(got->dtype), scale = k * max_abs(g1);
    for (int64_t e = 0; e < got->size; e++) {
        double pe = p ? tensor_get(p, e) : 0.0, w = pe + k * tensor_get(g1, e);
        double tol = 64 * u * (fabs(pe) + scale);
        if (!(fabs(tensor_get(got, e) - w) <= tol)) {
            *want = w;
            return e;
        }
    }
    return -1;
}

static void check_node(node_check *c, rng *g, op_contract_report *r) {
    tape_node *nd = c->nd;
    const int n_in = nd->n_in;
    uint32_t all = 0;
    int n_wanted = 0;
    for (int j = 0; j < n_in; j++) {
        const tensor *t = nd->in[j];
        c->wants[j] = t && t->requires_grad && !mask_bit(c->op->no_grad_inputs, j) && t->size > 0;
        if (c->wants[j]) all |= 1u << j, n_wanted++;
    }
    if (!n_wanted || nd->out->size == 0) return;
    r->nodes++;
    /* the upstream gradient, and copies of everything the vjp may only read */
    tensor *u = tg_tensor_tape_new(nd->out->dtype, nd->out->ndim, nd->out->shape);
    if (!u) goto oom;
    fill_seeded(u, g);
    nd->out->grad = u;
    tensor *in0[SAMPLE_MAX_INPUTS], *saved0[NODE_MAX_SAVED], *out0 = snapshot(nd->out),
           *u0 = snapshot(u);
    for (int j = 0; j < n_in; j++) in0[j] = snapshot(nd->in[j]);
    for (int s = 0; s < NODE_MAX_SAVED; s++) saved0[s] = snapshot(nd->saved[s]);

    /* run 1: zeroed buffers; nothing but them may change */
    if (run_vjp(c, all, NULL)) goto oom;
    for (int j = 0; j < n_in; j++) c->g1[j] = c->gin[j];
    for (int j = 0; j < n_in; j++)
        if (in0[j] && !same_bytes(in0[j], nd->in[j]))
            fail(r, "%s: the vjp wrote into input %d (element %lld changed)", c->where, j,
                 (long long)first_diff(in0[j], nd->in[j]));
    if (!same_bytes(out0, nd->out))
        fail(r, "%s: the vjp wrote into the op's output (element %lld changed)", c->where,
             (long long)first_diff(out0, nd->out));
    if (!same_bytes(u0, u))
        fail(r, "%s: the vjp wrote into its upstream gradient (element %lld changed)", c->where,
             (long long)first_diff(u0, u));
    for (int s = 0; s < NODE_MAX_SAVED; s++)
        if (saved0[s] && !same_bytes(saved0[s], nd->saved[s]))
            fail(r, "%s: the vjp wrote into saved tensor %d (element %lld changed)", c->where, s,
                 (long long)first_diff(saved0[s], nd->saved[s]));
    if (!r->passed) return;

    /* run 2: the same again, bit for bit */
    if (run_vjp(c, all, NULL)) goto oom;
    for (int j = 0; j < n_in; j++) {
        int64_t e = c->wants[j] ? first_diff(c->g1[j], c->gin[j]) : -1;
        if (e >= 0) {
            fail(r, "%s: the vjp is not deterministic: the gradient of input %d differs between"
                    " two runs at element %lld (%.17g, then %.17g)",
                 c->where, j, (long long)e, tensor_get(c->g1[j], e), tensor_get(c->gin[j], e));
            return;
        }
    }

    /* runs 3 and 4: buffers pre-filled with P end as P + G, and as P + 2 G
     * after a second run into the same buffers */
    tensor *pre[SAMPLE_MAX_INPUTS] = {NULL};
    for (int j = 0; j < n_in; j++) {
        if (!c->wants[j]) continue;
        pre[j] = tg_tensor_tape_new(nd->in[j]->dtype, nd->in[j]->ndim, nd->in[j]->shape);
        if (!pre[j]) goto oom;
        fill_seeded(pre[j], g);
    }
    if (run_vjp(c, all, pre)) goto oom;
    for (int run = 1; run <= 2; run++) {
        for (int j = 0; j < n_in; j++) {
            if (!c->wants[j]) continue;
            double want = 0;
            int64_t e = check_sum(c->gin[j], pre[j], c->g1[j], run, &want);
            if (e < 0) continue;
            fail(r, "%s: the vjp does not accumulate into the gradient of input %d: with the"
                    " buffer pre-filled (element %lld: %.9g) and the vjp %s, element %lld is"
                    " %.9g, expected %.9g (pre-filled value + %s the vjp's %.9g into zeros)",
                 c->where, j, (long long)e, tensor_get(pre[j], e),
                 run == 1 ? "run once" : "run twice", (long long)e, tensor_get(c->gin[j], e),
                 want, run == 1 ? "" : "2 x", tensor_get(c->g1[j], e));
            return;
        }
        if (run == 1) {
            uint64_t errors = tg_error_count();
            tg_vjp_call(c->op, nd, c->gin);
            if (tg_error_count() != errors) goto oom;
        }
    }

    /* each wanted input alone gets the gradient it gets with all of them */
    for (int i = 0; i < n_in && n_wanted > 1; i++) {
        if (!c->wants[i]) continue;
        if (run_vjp(c, 1u << i, NULL)) goto oom;
        double want = 0;
        int64_t e = check_sum(c->gin[i], NULL, c->g1[i], 1, &want);
        if (e >= 0) {
            fail(r, "%s: the gradient of input %d depends on which other inputs want one:"
                    " element %lld is %.9g alone, %.9g with every input",
                 c->where, i, (long long)e, tensor_get(c->gin[i], e), want);
            return;
        }
    }

    /* fresh buffers: written, not added to */
    if (check_fresh(c, all, r)) goto oom;
    return;
oom:
    fail(r, "%s: out of memory while checking the vjp contract (or the vjp failed: %s)", c->where,
         tapegrad_error() ? tapegrad_error() : "no message");
}

/* Case k of op in dtype dt: sample, build, and check every node of the op the
 * build recorded. Returns 1 when the op has no case k, -1 on an error. */
static int check_case(const op_def *op, int k, dtype dt, uint64_t seed, op_contract_report *r) {
    op_sample s;
    memset(&s, 0, sizeof s);
    rng g;
    rng_seed(&g, seed, (uint64_t)k);
    int rc = op->sample(k, &g, &s);
    if (rc == 1) return 1;
    tensor *in[SAMPLE_MAX_INPUTS] = {NULL};
    char where[256];
    snprintf(where, sizeof where, "%s case %d (%s) %s", op->name, k, s.name, tg_dtype_name(dt));
    if (rc != 0) {
        if (!tg_error_pending()) tg_error_set("op contract: %s: the sample failed", where);
        goto out;
    }
    for (int i = 0; i < s.n_inputs && rc == 0; i++) {
        const tensor *x = s.inputs[i];
        if (!x) continue;
        in[i] = x->dtype == DTYPE_F64 ? tensor_to_dtype(x, dt) : tensor_clone(x);
        if (!in[i]) rc = -1;
        else if (x->dtype != DTYPE_I64 && !mask_bit(s.no_grad_mask, i))
            tensor_set_requires_grad(in[i], true);
    }
    if (rc) goto out;
    tape_reset();
    if (!op->build(in, &s)) {
        if (!tg_error_pending()) tg_error_set("op contract: %s: the build returned NULL", where);
        rc = -1;
        goto out;
    }
    r->cases++;
    rng gv;
    rng_seed(&gv, seed, STREAM_CONTRACT);
    for (int64_t j = 0; j < tg_tape_node_count() && r->passed; j++) {
        tape_node *nd = tg_tape_node_at(j);
        if (strcmp(nd->op->name, op->name) != 0 || nd->n_in > SAMPLE_MAX_INPUTS) continue;
        node_check c = {.op = op, .nd = nd, .where = where};
        check_node(&c, &gv, r);
    }
out:
    tape_reset();
    for (int i = 0; i < SAMPLE_MAX_INPUTS; i++) tensor_free(in[i]);
    for (int i = 0; i < s.n_inputs && i < SAMPLE_MAX_INPUTS; i++) tensor_free(s.inputs[i]);
    return rc;
}

int tg_op_check_contract(const op_def *op, uint64_t seed, op_contract_report *r) {
    if (!op || !r) {
        tg_error_set("op contract: %s is NULL", !op ? "op" : "report");
        return -1;
    }
    memset(r, 0, sizeof *r);
    r->passed = true;
    if (!op->sample || !op->build || !op->vjp) {
        tg_error_set("op contract: %s has no %s", op->name,
                  !op->sample ? "sample cases" : !op->build ? "build function" : "vjp");
        return -1;
    }
    static const dtype dts[2] = {DTYPE_F64, DTYPE_F32};
    for (int d = 0; d < 2 && r->passed; d++) {
        for (int k = 0; r->passed; k++) {
            int rc = check_case(op, k, dts[d], seed, r);
            if (rc == 1) break;
            if (rc < 0) {
                op_check_report_free(r);
                return -1;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------- float32 against float64
 * Training runs the float32 kernels; the numerical checker runs float64 ones
 * (distinct code in conv, GEMM and elsewhere). Each case runs in both on the
 * same values: inputs and upstream gradient rounded to float32 first, so both
 * runs see identical numbers and any difference comes from the float32
 * arithmetic of the kernels alone. That difference is bounded by float32
 * rounding on the magnitudes involved: an element of a result computed from
 * up to n numbers of the op (the elements of its inputs and output) carries a
 * few roundings per step, and a sum of n terms up to sqrt(n) of them
 * (rounding errors of a sum of random terms add like a random walk), each of
 * the size of the element itself or of the terms it was summed from, which
 * can cancel down to a small element. The terms of an output are bounded by
 * the largest input or output element (s_y), those of a gradient by the
 * largest upstream or gradient element (s_g):
 *     |y32 - y64| <= F32_UNITS u32 (1 + sqrt(n)) (|y64| + s),
 * u32 = 2^-24. One rule for every op, none loosened: over the registry and
 * 20 seeds the largest error is 0.55 of this bound with F32_UNITS = 1 (div's
 * gradient); F32_UNITS = 4 leaves a margin of 7. A float32 kernel wrong by a
 * relative 1e-5 fails it. */
#ifndef F32_UNITS
#define F32_UNITS 4.0
#endif

typedef struct {
    tensor *y, *grad[SAMPLE_MAX_INPUTS];
} run_result;

static void result_free(run_result *r) {
    tensor_free(r->y);
    for (int i = 0; i < SAMPLE_MAX_INPUTS; i++) tensor_free(r->grad[i]);
}

/* The case built in dtype dt from the float32-rounded sample values x32, with
 * backward from w (also float32-representable); the output and the gradients
 * copied out (user-owned). */
static int run_in(const op_def *op, const op_sample *s, tensor *const *x32, dtype dt,
                  const tensor *w64, tensor **w_out, rng *g, run_result *res) {
    tensor *in[SAMPLE_MAX_INPUTS] = {NULL};
    int rc = 0;
    memset(res, 0, sizeof *res);
    for (int i = 0; i < s->n_inputs && rc == 0; i++) {
        if (!x32[i]) continue;
        in[i] = x32[i]->dtype == DTYPE_I64 ? tensor_clone(x32[i]) : tensor_to_dtype(x32[i], dt);
        if (!in[i]) rc = -1;
        else if (in[i]->dtype != DTYPE_I64 && !mask_bit(s->no_grad_mask, i))
            tensor_set_requires_grad(in[i], true);
    }
    tape_reset();
    tensor *y = rc ? NULL : op->build(in, s);
    if (!y) rc = -1;
    /* the vjp of the entry given runs, as in tg_op_check_contract */
    for (int64_t j = 0; rc == 0 && j < tg_tape_node_count(); j++)
        if (strcmp(tg_tape_node_at(j)->op->name, op->name) == 0) tg_tape_node_at(j)->op = op;
    if (rc == 0) res->y = tensor_clone(y);
    if (rc == 0 && y->requires_grad && y->size > 0) {
        tensor *w = NULL;
        if (w64) {
            w = tensor_to_dtype(w64, dt);
        } else { /* the first run draws the upstream gradient, float32 values */
            w = tensor_new(DTYPE_F64, y->ndim, y->shape);
            if (w) fill_seeded(w, g);
            for (int64_t e = 0; w && e < w->size; e++) tensor_set(w, e, (float)tensor_get(w, e));
            *w_out = w ? tensor_clone(w) : NULL;
        }
        rc = !w || tensor_backward_with(y, w) ? -1 : 0;
        tensor_free(w);
        for (int i = 0; i < s->n_inputs && rc == 0; i++)
            if (in[i] && in[i]->grad) res->grad[i] = tensor_clone(in[i]->grad);
    }
    tape_reset();
    for (int i = 0; i < SAMPLE_MAX_INPUTS; i++) tensor_free(in[i]);
    return rc;
}

/* Compares b (float32) with a (float64) element by element; false and a
 * message at the first element beyond the bound. */
static bool f32_close(const tensor *a, const tensor *b, double n, double scale,
                      const char *where, const char *what, op_contract_report *r) {
    if (!a || !b || a->size != b->size) {
        fail(r, "%s: %s: float32 and float64 runs differ in kind (%s)", where, what,
             !a || !b ? "one has no result" : "sizes differ");
        return false;
    }
    const double k = F32_UNITS * 0x1p-24 * (1 + sqrt(n));
    for (int64_t e = 0; e < a->size; e++) {
        double x = tensor_get(a, e), y = tensor_get(b, e), tol = k * (fabs(x) + scale);
        double ratio = fabs(x - y) / tol;
        if (!(ratio <= 1) && !(x == y)) { /* x == y: equal infinities */
            fail(r, "%s: float32 %s element %lld is %.9g, float64 %.17g on the same values:"
                    " the error %.3g exceeds the float32 rounding bound %.3g",
                 where, what, (long long)e, y, x, fabs(x - y), tol);
            return false;
        }
        if (ratio > r->f32_worst) r->f32_worst = ratio;
    }
    return true;
}

static int check_case_f32(const op_def *op, int k, uint64_t seed, op_contract_report *r) {
    op_sample s;
    memset(&s, 0, sizeof s);
    rng g;
    rng_seed(&g, seed, (uint64_t)k);
    int rc = op->sample(k, &g, &s);
    if (rc == 1) return 1;
    char where[256];
    snprintf(where, sizeof where, "%s case %d (%s)", op->name, k, s.name);
    tensor *x32[SAMPLE_MAX_INPUTS] = {NULL}, *w = NULL;
    run_result r64, r32;
    memset(&r64, 0, sizeof r64);
    memset(&r32, 0, sizeof r32);
    if (rc != 0) {
        if (!tg_error_pending()) tg_error_set("op contract: %s: the sample failed", where);
        goto out;
    }
    double n = 0; /* the op's size: the numbers an element may be computed from */
    for (int i = 0; i < s.n_inputs && rc == 0; i++) {
        const tensor *x = s.inputs[i];
        if (!x) continue;
        x32[i] = x->dtype == DTYPE_F64 ? tensor_to_dtype(x, DTYPE_F32) : tensor_clone(x);
        if (!x32[i]) rc = -1;
        else n += (double)x->size;
    }
    rng gw;
    rng_seed(&gw, seed, STREAM_CONTRACT);
    if (rc || run_in(op, &s, x32, DTYPE_F64, NULL, &w, &gw, &r64) ||
        run_in(op, &s, x32, DTYPE_F32, w, NULL, &gw, &r32)) {
        if (!tg_error_pending()) tg_error_set("op contract: %s: the build returned NULL", where);
        rc = -1;
        goto out;
    }
    r->cases++;
    n += (double)r64.y->size;
    double s_y = max_abs(r64.y), s_g = w ? max_abs(w) : 0;
    for (int i = 0; i < s.n_inputs; i++) {
        if (x32[i] && x32[i]->dtype != DTYPE_I64) s_y = fmax(s_y, max_abs(x32[i]));
        if (r64.grad[i]) s_g = fmax(s_g, max_abs(r64.grad[i]));
    }
    if (!f32_close(r64.y, r32.y, n, s_y, where, "output", r)) goto out;
    for (int i = 0; i < s.n_inputs; i++) {
        if (!r64.grad[i] && !r32.grad[i]) continue;
        char what[64];
        snprintf(what, sizeof what, "gradient of input %d", i);
        if (!f32_close(r64.grad[i], r32.grad[i], n, s_g, where, what, r)) goto out;
    }
out:
    result_free(&r64);
    result_free(&r32);
    tensor_free(w);
    for (int i = 0; i < SAMPLE_MAX_INPUTS; i++) tensor_free(x32[i]);
    for (int i = 0; i < s.n_inputs && i < SAMPLE_MAX_INPUTS; i++) tensor_free(s.inputs[i]);
    return rc;
}

int tg_op_check_float32(const op_def *op, uint64_t seed, op_contract_report *r) {
    if (!op || !r) {
        tg_error_set("op contract: %s is NULL", !op ? "op" : "report");
        return -1;
    }
    memset(r, 0, sizeof *r);
    r->passed = true;
    if (!op->sample || !op->build) {
        tg_error_set("op contract: %s has no %s", op->name, !op->sample ? "sample cases" : "build function");
        return -1;
    }
    for (int k = 0; r->passed; k++) {
        int rc = check_case_f32(op, k, seed, r);
        if (rc == 1) break;
        if (rc < 0) {
            op_check_report_free(r);
            return -1;
        }
    }
    return 0;
}

/* -------------------------------------------------- tight float64 tolerances
 * Central differences in float64 with eps 1e-6 err by about u |L| / eps
 * (rounding of L = <u, f(x)>) plus eps^2 f''' / 6: a few 1e-9 for the
 * registry's samples. Measured over 100 seeds of every case, every op's
 * error stays within atol 3.3e-9 + rtol 3.3e-7, a third of OP_TIGHT_ATOL /
 * OP_TIGHT_RTOL, but five, whose own noise is larger and whose figures
 * here keep the same margin of 3: */
static const struct {
    const char *name;
    double atol, rtol;
} tight_exceptions[] = {
    {"matmul", 3e-8, OP_TIGHT_RTOL},    /* sums of K products: up to 1.9e-8 */
    {"conv2d", 1e-7, OP_TIGHT_RTOL},    /* sums of C kh kw products: up to 3.1e-8 */
    /* conv2d's two gradients, sums of OC kh kw and of B OH OW products on
     * conv2d's kernels: up to 4.6e-8 over 30 seeds (conv2d's figure kept) */
    {"conv2d_input_grad", 1e-7, OP_TIGHT_RTOL},
    {"conv2d_weight_grad", 1e-7, OP_TIGHT_RTOL},
    {"logsumexp", OP_TIGHT_ATOL, 1e-4}, /* values near 1000, L ~ 1e4: relative 2e-5 */
};

void tg_op_tight_tolerances(const op_def *op, double *atol, double *rtol) {
    *atol = OP_TIGHT_ATOL;
    *rtol = OP_TIGHT_RTOL;
    for (size_t i = 0; op && i < sizeof tight_exceptions / sizeof tight_exceptions[0]; i++) {
        if (strcmp(op->name, tight_exceptions[i].name) == 0) {
            *atol = tight_exceptions[i].atol;
            *rtol = tight_exceptions[i].rtol;
        }
    }
}

/* ------------------------------------------------------------ gradcheck_op
 * One op checked the way the suite checks the built-ins: per sample case,
 * the primal against a re-run, the vjp against central differences, no
 * gradient for declared no-grad inputs; then the vjp contract and the
 * float32 comparison above. */
typedef struct {
    const op_def *op;
    const op_sample *s;
} op_case_ctx;

static tensor *op_case_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    const op_case_ctx *c = ctx;
    return c->op->build(in, c->s);
}

static bool differentiable(const op_def *op, const op_sample *s, int i) {
    const tensor *x = s->inputs[i];
    return x && x->dtype != DTYPE_I64 && !mask_bit(s->no_grad_mask | op->no_grad_inputs, i);
}

/* The output again, bit for bit: its node's forward replayed, and a fresh
 * build. */
static void check_primal(const op_def *op, op_sample *s, const char *where, op_check_report *r) {
    tensor *in[SAMPLE_MAX_INPUTS] = {NULL}, *y0 = NULL;
    for (int i = 0; i < s->n_inputs; i++) {
        if (!s->inputs[i]) continue;
        in[i] = tensor_clone(s->inputs[i]);
        if (!in[i]) goto out;
        if (differentiable(op, s, i)) tensor_set_requires_grad(in[i], true);
    }
    tape_reset();
    tensor *y = op->build(in, s);
    y0 = y ? tensor_clone(y) : NULL;
    if (!y0) {
        fail(r, "%s: the build failed: %s", where, tg_error_pending() ? tapegrad_error() : "NULL");
        goto out;
    }
    for (int64_t j = 0; j < tg_tape_node_count(); j++) {
        tape_node *nd = tg_tape_node_at(j);
        if (nd->out == y) nd->op->forward(nd);
    }
    if (!same_bytes(y0, y))
        fail(r, "%s: the primal is not a pure function: replaying its forward on the same inputs"
                " changed element %lld", where, (long long)first_diff(y0, y));
    tape_reset();
    y = op->build(in, s);
    if (r->passed && (!y || y->size != y0->size || !same_bytes(y0, y)))
        fail(r, "%s: the primal differs between two calls on the same inputs (element %lld)",
             where, y && y->size == y0->size ? (long long)first_diff(y0, y) : -1LL);
out:
    tape_reset();
    tensor_free(y0);
    for (int i = 0; i < SAMPLE_MAX_INPUTS; i++) tensor_free(in[i]);
}

/* Every float input requires grad, declared no-grad ones too: those must get
 * no gradient, the differentiable ones one. */
static void check_no_grad_inputs(const op_def *op, op_sample *s, const char *where,
                                 op_check_report *r) {
    tensor *in[SAMPLE_MAX_INPUTS] = {NULL};
    for (int i = 0; i < s->n_inputs; i++) {
        if (!s->inputs[i]) continue;
        in[i] = tensor_clone(s->inputs[i]);
        if (!in[i]) goto out;
        if (in[i]->dtype != DTYPE_I64) tensor_set_requires_grad(in[i], true);
    }
    tape_reset();
    tensor *y = op->build(in, s);
    if (!y || !y->requires_grad) goto out;
    tensor *u = tg_tensor_tape_new(y->dtype, y->ndim, y->shape);
    rng g;
    rng_seed(&g, 1, STREAM_CONTRACT);
    if (!u) goto out;
    fill_seeded(u, &g);
    if (tensor_backward_with(y, u)) goto out;
    for (int i = 0; i < s->n_inputs; i++) {
        if (!in[i] || in[i]->dtype == DTYPE_I64) continue;
        if (mask_bit(op->no_grad_inputs, i) && in[i]->grad)
            fail(r, "%s: input %d is declared without gradient, yet it got one", where, i);
        else if (differentiable(op, s, i) && !in[i]->grad)
            fail(r, "%s: input %d requires grad, yet backward gave it none", where, i);
    }
out:
    tape_reset();
    for (int i = 0; i < SAMPLE_MAX_INPUTS; i++) tensor_free(in[i]);
}

int gradcheck_op(const op_def *op, const gradcheck_options *opt, op_check_report *report) {
    if (!op || !report) {
        tg_error_set("gradcheck_op: %s is NULL", !op ? "op" : "report");
        return -1;
    }
    if (!op->sample || !op->build) {
        tg_error_set("op contract: %s has no %s", op->name, !op->sample ? "sample cases" : "build function");
        return -1;
    }
    gradcheck_options o = opt ? *opt : gradcheck_defaults();
    op_check_report *r = report;
    memset(r, 0, sizeof *r);
    r->passed = true;
    int k = 0;
    for (; r->passed; k++) {
        op_sample s;
        memset(&s, 0, sizeof s);
        rng g;
        rng_seed(&g, o.seed, (uint64_t)k);
        int rc = op->sample(k, &g, &s);
        if (rc == 1) break;
        char where[256];
        snprintf(where, sizeof where, "%s case %d (%s)", op->name, k, s.name);
        if (rc != 0) {
            if (!tg_error_pending()) tg_error_set("op contract: %s: the sample failed", where);
            for (int i = 0; i < s.n_inputs && i < SAMPLE_MAX_INPUTS; i++) tensor_free(s.inputs[i]);
            op_check_report_free(r);
            return -1;
        }
        r->cases++;
        check_primal(op, &s, where, r);
        uint32_t mask = 0;
        for (int i = 0; i < s.n_inputs; i++)
            if (differentiable(op, &s, i)) mask |= 1u << i;
        if (r->passed && mask) {
            gradcheck_options oc = o;
            oc.check_mask = mask;
            op_case_ctx ctx = {op, &s};
            gradcheck_report gr;
            if (gradcheck(op_case_fn, &ctx, s.inputs, s.n_inputs, &oc, &gr)) {
                fail(r, "%s: gradcheck could not run: %s", where, tapegrad_error());
                tapegrad_error_clear();
            } else if (!gr.passed) {
                fail(r, "%s: the vjp disagrees with central differences: %s", where, gr.message);
            }
            gradcheck_report_free(&gr);
        }
        if (r->passed) check_no_grad_inputs(op, &s, where, r);
        for (int i = 0; i < s.n_inputs && i < SAMPLE_MAX_INPUTS; i++) tensor_free(s.inputs[i]);
    }
    if (k == 0) fail(r, "%s: the op has no sample case to check", op->name);
    if (!r->passed) return 0;
    int cases = r->cases;
    op_check_report c;
    if (tg_op_check_contract(op, o.seed, &c)) return -1;
    if (c.passed && tg_op_check_float32(op, o.seed, &c)) return -1;
    if (!c.passed) { /* r holds no message: it passed so far */
        *r = c;
        r->passed = false;
    }
    r->cases = cases;
    return 0;
}
