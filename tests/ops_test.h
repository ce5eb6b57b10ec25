/* ops_test.h - what the op tests (tests/test_ops_*.c) share: leaves and a
 * hand-computed unary check, and their own central-difference check of the
 * registry's sample cases. That check does not call gradcheck(): the op tests
 * are the reference the library's checker is judged against, so they must not
 * rest on it.
 *
 * numeric_check_op(name, seed, rounds, what) runs every sample case of the op,
 * drawn from `rounds` seeds, and asserts (Check) for each case:
 *  CHECK_PURE    replaying every node the float64 build recorded gives its
 *                output again bit for bit (forward is pure: the real checker
 *                replays it thousands of times);
 *  CHECK_VJP     with L = sum(y * w), w seeded and |w| in [0.5, 1.5], the
 *                tape's gradient of every differentiated input agrees with
 *                central differences (float64, eps 1e-6) on every element
 *                within atol 1e-5 + rtol 1e-3 |numeric|, the checker's rule;
 *                and each such input has an element with |numeric| > 1e-3 (a
 *                case whose gradients are all zero proves nothing);
 *  CHECK_FLOAT32 the case in float32 agrees with float64 within
 *                1e-4 (1 + |float64|) in every value and every gradient, so
 *                training runs the kernels the checker verified.
 * An input is differentiated unless it is int64 or the sample marks it
 * (no_grad_mask); it must then receive a gradient, and any other input must
 * not. A case whose output the tape does not record (sign, floor_divide: a
 * constant for autograd) is allowed only when the op declares every such
 * input gradient-free (no_grad_inputs); its values are still checked. */
#ifndef TAPEGRAD_TESTS_OPS_TEST_H
#define TAPEGRAD_TESTS_OPS_TEST_H

#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"

/* A user-owned leaf that requires grad (float64, or dtype dt), and a constant. */
static inline tensor *leaf_dt(dtype dt, int ndim, const int64_t *shape, const double *v) {
    tensor *t = tensor_from_doubles(dt, ndim, shape, v);
    tensor_set_requires_grad(t, true);
    return t;
}
static inline tensor *leaf(int ndim, const int64_t *shape, const double *v) {
    return leaf_dt(DTYPE_F64, ndim, shape, v);
}
static inline tensor *constant(int ndim, const int64_t *shape, const double *v) {
    return tensor_from_doubles(DTYPE_F64, ndim, shape, v);
}

/* Backward from y with the upstream gradient g (y's shape). */
static inline void backward_g(tensor *y, const double *g) {
    ck_assert_ptr_nonnull(y);
    tensor *gt = tensor_from_doubles(DTYPE_F64, y->ndim, y->shape, g);
    ck_assert_int_eq(tensor_backward_with(y, gt), 0);
    tensor_free(gt);
}

/* Applies f to x (a [n] leaf), backward with g; checks y and dx. */
static inline void check_unary(tensor *(*f)(tensor *), int n, const double *x, const double *g,
                               const double *y_expected, const double *dx_expected) {
    tensor *a = leaf(1, (int64_t[]){n}, x);
    tensor *y = f(a);
    ck_assert_tensor(y, y_expected, 1e-12);
    backward_g(y, g);
    ck_assert_tensor(a->grad, dx_expected, 1e-12);
    tape_reset();
    tensor_free(a);
}

/* ------------------------------------------------ sample-case differences */

#define NUMERIC_EPS 1e-6
#define NUMERIC_ATOL 1e-5
#define NUMERIC_RTOL 1e-3
#define NUMERIC_NONZERO 1e-3
#define NUMERIC_F32_RTOL 1e-4

enum { CHECK_PURE = 1, CHECK_VJP = 2, CHECK_FLOAT32 = 4, CHECK_ALL = 7 };

static inline bool numeric_differentiated(const op_sample *s, int i) {
    return !mask_bit(s->no_grad_mask, i) && s->inputs[i]->dtype != DTYPE_I64;
}

static inline double numeric_weighted_sum(const tensor *y, const tensor *w) {
    double acc = 0;
    for (int64_t i = 0; i < y->size; i++) acc += tensor_get(y, i) * tensor_get(w, i);
    return acc;
}

/* L at the inputs as they are now, recording nothing. */
static inline double numeric_loss(const op_def *op, const op_sample *s, const tensor *w) {
    tape_no_grad_begin();
    tensor *y = op->build((tensor *const *)s->inputs, s);
    tape_no_grad_end();
    double l = y ? numeric_weighted_sum(y, w) : NAN;
    tape_reset();
    return l;
}

/* Upstream gradient with random signs and magnitudes in [0.5, 1.5]: never
 * near zero, so a scalar output cannot make every gradient vanish. */
static inline tensor *numeric_upstream(rng *g, const tensor *y) {
    tensor *w = tensor_rand(g, DTYPE_F64, y->ndim, y->shape, -1.0, 1.0);
    double *p = w->data;
    for (int64_t i = 0; i < w->size; i++) p[i] += p[i] < 0 ? -0.5 : 0.5;
    return w;
}

static inline void numeric_check_pure(const op_def *op, const op_sample *s) {
    for (int64_t k = 0; k < tape_size(); k++) {
        tape_node *nd = tg_tape_node_at(k);
        if (nd->out->size == 0) continue;
        tensor *before = tensor_clone(nd->out);
        nd->op->forward(nd);
        ck_assert_msg(memcmp(before->data, nd->out->data,
                             (size_t)before->size * tg_dtype_size(before->dtype)) == 0,
                      "%s [%s]: replaying node %lld (%s) changed its output: forward is not pure",
                      op->name, s->name, (long long)k, nd->op->name);
        tensor_free(before);
    }
}

static inline void numeric_check_input(const op_def *op, const op_sample *s, int i,
                                       const tensor *w) {
    tensor *x = s->inputs[i];
    double biggest = 0;
    for (int64_t j = 0; j < x->size; j++) {
        double v = tensor_get(x, j);
        tensor_set(x, j, v + NUMERIC_EPS);
        double lp = numeric_loss(op, s, w);
        tensor_set(x, j, v - NUMERIC_EPS);
        double lm = numeric_loss(op, s, w);
        tensor_set(x, j, v);
        double num = (lp - lm) / (2 * NUMERIC_EPS), ana = tensor_get(x->grad, j);
        ck_assert_msg(fabs(ana - num) <= NUMERIC_ATOL + NUMERIC_RTOL * fabs(num),
                      "%s [%s]: input %d [%lld]: analytic %.10g, numeric %.10g", op->name, s->name,
                      i, (long long)j, ana, num);
        biggest = fmax(biggest, fabs(num));
    }
    ck_assert_msg(biggest > NUMERIC_NONZERO,
                  "%s [%s]: input %d: every gradient is zero (vacuous case)", op->name, s->name, i);
}

static inline void numeric_assert_f32_close(const op_def *op, const op_sample *s,
                                            const char *what, int i, int64_t j, double f32,
                                            double f64) {
    ck_assert_msg(fabs(f32 - f64) <= NUMERIC_F32_RTOL * (1 + fabs(f64)),
                  "%s [%s]: float32 %s %d [%lld] = %.8g, float64 %.8g", op->name, s->name, what, i,
                  (long long)j, f32, f64);
}

/* The case again with its float64 inputs as float32 (int64 ones as they are);
 * y64 and the inputs' gradients are the float64 results for upstream w. */
static inline void numeric_check_float32(const op_def *op, const op_sample *s, const tensor *y64,
                                         bool recorded, const tensor *w) {
    op_sample s32 = *s;
    for (int i = 0; i < s->n_inputs; i++) {
        const tensor *x = s->inputs[i];
        s32.inputs[i] = x->dtype == DTYPE_F64 ? tensor_to_dtype(x, DTYPE_F32) : tensor_clone(x);
        if (numeric_differentiated(s, i)) tensor_set_requires_grad(s32.inputs[i], true);
    }
    tensor *y = op->build(s32.inputs, &s32), *w32 = tensor_to_dtype(w, DTYPE_F32);
    ck_assert_msg(y && y->dtype == DTYPE_F32 && y->size == y64->size &&
                      y->requires_grad == recorded,
                  "%s [%s]: float32 run differs in kind from float64: %s", op->name, s->name,
                  tapegrad_error());
    for (int64_t j = 0; j < y->size; j++)
        numeric_assert_f32_close(op, s, "output", 0, j, tensor_get(y, j), tensor_get(y64, j));
    if (recorded) {
        ck_assert_msg(tensor_backward_with(y, w32) == 0, "%s [%s]: float32 backward: %s", op->name,
                      s->name, tapegrad_error());
        for (int i = 0; i < s->n_inputs; i++) {
            if (!numeric_differentiated(s, i)) continue;
            const tensor *g64 = s->inputs[i]->grad, *g32 = s32.inputs[i]->grad;
            ck_assert_msg(g32 != NULL, "%s [%s]: float32 input %d has no gradient", op->name,
                          s->name, i);
            for (int64_t j = 0; j < g64->size; j++)
                numeric_assert_f32_close(op, s, "gradient of input", i, j, tensor_get(g32, j),
                                         tensor_get(g64, j));
        }
    }
    tape_reset();
    tensor_free(w32);
    for (int i = 0; i < s->n_inputs; i++) tensor_free(s32.inputs[i]);
}

static inline void numeric_check_case(const op_def *op, op_sample *s, rng *g, unsigned what) {
    for (int i = 0; i < s->n_inputs; i++)
        if (numeric_differentiated(s, i)) tensor_set_requires_grad(s->inputs[i], true);
    tensor *y = op->build(s->inputs, s);
    ck_assert_msg(y != NULL, "%s [%s]: build failed: %s", op->name, s->name, tapegrad_error());
    if (what & CHECK_PURE) numeric_check_pure(op, s);
    tensor *w = numeric_upstream(g, y), *y64 = tensor_clone(y);
    bool recorded = y->requires_grad;
    if (recorded)
        ck_assert_msg(tensor_backward_with(y, w) == 0, "%s [%s]: backward failed: %s", op->name,
                      s->name, tapegrad_error());
    tape_reset();
    for (int i = 0; i < s->n_inputs; i++) {
        bool diff = numeric_differentiated(s, i);
        ck_assert_msg(diff || !s->inputs[i]->grad,
                      "%s [%s]: input %d is marked gradient-free, yet has a gradient", op->name,
                      s->name, i);
        if (!diff) continue;
        if (!recorded) {
            ck_assert_msg(mask_bit(op->no_grad_inputs, i) && !s->inputs[i]->grad,
                          "%s [%s]: output not recorded, yet input %d is not declared "
                          "gradient-free", op->name, s->name, i);
            continue;
        }
        ck_assert_msg(s->inputs[i]->grad != NULL, "%s [%s]: input %d got no gradient", op->name,
                      s->name, i);
        if (what & CHECK_VJP) numeric_check_input(op, s, i, w);
    }
    if (what & CHECK_FLOAT32) numeric_check_float32(op, s, y64, recorded, w);
    tensor_free(w);
    tensor_free(y64);
}

/* Every sample case of the op named `name`, for the seeds seed .. seed +
 * rounds - 1 (case k of seed r draws from rng_seed(r, k)); the op must have
 * at least 3 cases and a documented registry entry. Returns the number of
 * cases checked. */
static inline int numeric_check_op(const char *name, uint64_t seed, int rounds, unsigned what) {
    const op_def *op = op_find(name);
    ck_assert_msg(op != NULL, "%s is not in the registry", name);
    ck_assert_msg(op->signature && op->formula_forward && op->formula_gradient && op->notes,
                  "%s: the registry entry lacks its signature, formulas or notes", name);
    tapegrad_error_clear();
    tape_reset();
    int cases = 0;
    for (uint64_t r = seed; r < seed + (uint64_t)rounds; r++) {
        for (int k = 0;; k++) {
            op_sample s;
            memset(&s, 0, sizeof s);
            rng g;
            rng_seed(&g, r, (uint64_t)k);
            int rc = op->sample(k, &g, &s);
            if (rc == 1) {
                ck_assert_msg(k >= 3, "%s has only %d sample cases", name, k);
                break;
            }
            ck_assert_msg(rc == 0, "%s: sample case %d failed: %s", name, k, tapegrad_error());
            numeric_check_case(op, &s, &g, what);
            for (int i = 0; i < s.n_inputs; i++) tensor_free(s.inputs[i]);
            cases++;
        }
    }
    ck_assert_msg(tapegrad_error() == NULL, "%s: error left pending: %s", name, tapegrad_error());
    return cases;
}

/* numeric_check_op for every op of a family table (each found in the
 * registry); returns the number of cases checked. */
static inline int numeric_check_family(const op_def *ops, int count, uint64_t seed, int rounds,
                                       unsigned what) {
    int cases = 0;
    for (int o = 0; o < count; o++) {
        ck_assert_ptr_eq(op_find(ops[o].name), &ops[o]);
        cases += numeric_check_op(ops[o].name, seed, rounds, what);
    }
    return cases;
}

#endif
