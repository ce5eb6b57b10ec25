/* test_fresh_grad.c - the fresh gradient buffer contract of the tape
 * (docs/design.md, "Backward"): an intermediate's gradient buffer is made
 * uninitialised and marked fresh, the first vjp to reach it writes (=) when
 * its op sets vjp_fresh and finds it zeroed otherwise, later ones add. Test
 * builds fill new arena memory with NaN, so a write that should have been an
 * add, or an add into a fresh buffer, shows as NaN or a wrong sum here.
 * The registry-wide check (every op, NaN-filled fresh buffers against
 * zeroed ones) is tests/test_op_contract.c's. */
#include "../autograd/internal.h"
#include "check_main.h"


static tensor *leaf(int ndim, const int64_t *shape, const double *v) {
    tensor *t = tensor_from_doubles(DTYPE_F64, ndim, shape, v);
    ck_assert_ptr_nonnull(t);
    tensor_set_requires_grad(t, true);
    return t;
}

/* y = t * t with t = x + 1 (an intermediate: its buffer is fresh). mul's vjp
 * gets one buffer twice, gin[0] == gin[1]: the first write, the second add.
 * dx = 2 t = 2 (x + 1). */
START_TEST(test_same_input_twice_writes_then_adds) {
    const double xv[] = {0.5, -1.25, 2.0, 3.5, -0.75, 1.0};
    tensor *x = leaf(SHAPE(2, 3), xv);
    tensor *t = tensor_add_scalar(x, 1.0);
    tensor *loss = tensor_sum_all(tensor_mul(t, t));
    ck_assert_int_eq(tensor_backward(loss), 0);
    double want[6];
    for (int i = 0; i < 6; i++) want[i] = 2 * (xv[i] + 1.0);
    ck_assert_tensor(x->grad, want, 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* The same through matmul (t @ t, both operands one buffer, batched and
 * with a broadcast batch) and linear (linear(t, t): x and w one buffer).
 * Expected: the plain sums of the two gradients, computed by the same ops
 * on two distinct copies of t. */
static void two_uses(int which, const int64_t *shape, int ndim) {
    double v[24];
    int64_t size = tg_shape_numel(ndim, shape);
    for (int64_t i = 0; i < size; i++) v[i] = 0.25 * (double)((i * 7) % 11) - 1.0;
    tensor *x = leaf(ndim, shape, v), *x1 = leaf(ndim, shape, v), *x2 = leaf(ndim, shape, v);
    tensor *t = tensor_mul_scalar(x, 1.0);
    tensor *y = which == 0 ? tensor_matmul(t, t) : tensor_linear(t, t, NULL);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_square(y))), 0);
    tensor *y2 = which == 0 ? tensor_matmul(x1, x2) : tensor_linear(x1, x2, NULL);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_square(y2))), 0);
    for (int64_t i = 0; i < size; i++)
        ck_assert_double_eq_tol(tensor_get(x->grad, i),
                                tensor_get(x1->grad, i) + tensor_get(x2->grad, i), 1e-12);
    tape_reset();
    tensor_free(x);
    tensor_free(x1);
    tensor_free(x2);
}

START_TEST(test_matmul_and_linear_of_one_intermediate_twice) {
    two_uses(0, (int64_t[]){3, 3}, 2);
    two_uses(0, (int64_t[]){2, 3, 3}, 3);
    two_uses(1, (int64_t[]){4, 4}, 2);
}
END_TEST

/* A broadcast operand's gradient reaches its fresh buffer through the
 * reduction (autograd/broadcast.c), written: b [3] (suffix rows), c [3,1]
 * (the general path), s [] (one element). y = a * b + a * c + a * s with a
 * [2,3,3] of ones: db[j] = 6, dc[i] = 6, ds = 18 (each times 1). */
START_TEST(test_broadcast_reduction_into_fresh_buffers) {
    double ones[18], bv[3] = {1, 2, 3}, cv[3] = {4, 5, 6}, sv[1] = {7};
    for (int i = 0; i < 18; i++) ones[i] = 1.0;
    tensor *a = leaf(SHAPE(2, 3, 3), ones), *b0 = leaf(SHAPE(3), bv), *c0 = leaf(SHAPE(3, 1), cv),
           *s0 = leaf(0, NULL, sv);
    tensor *b = tensor_neg(b0), *c = tensor_neg(c0), *s = tensor_neg(s0);
    tensor *y = tensor_add(tensor_add(tensor_mul(a, b), tensor_mul(a, c)), tensor_mul(a, s));
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    const double db[3] = {-6, -6, -6}, dc[3] = {-6, -6, -6}, ds[1] = {-18};
    ck_assert_tensor(b0->grad, db, 0);
    ck_assert_tensor(c0->grad, dc, 0);
    ck_assert_tensor(s0->grad, ds, 0);
    /* da = b + c + s, per element */
    for (int i = 0; i < 2; i++)
        for (int r = 0; r < 3; r++)
            for (int j = 0; j < 3; j++)
                ck_assert_double_eq(tensor_get(a->grad, (i * 3 + r) * 3 + j), -(bv[j] + cv[r] + sv[0]));
    tape_reset();
    tensor_free(a);
    tensor_free(b0);
    tensor_free(c0);
    tensor_free(s0);
}
END_TEST

/* An intermediate read by a converted op (mul) and an unconverted one
 * (softmax), in both orders: whichever vjp comes first, the buffer holds the
 * sum. t = 2 x; loss = sum(t * w) + sum(softmax(t) * v) and the other way
 * round give one gradient. */
START_TEST(test_converted_and_unconverted_consumers_sum) {
    const double xv[] = {0.1, -0.4, 0.7, 0.2}, wv[] = {1.5, -2.0, 0.5, 3.0}, vv[] = {1, 2, 3, 4};
    tensor *x = leaf(SHAPE(4), xv), *w = leaf(SHAPE(4), wv), *v = leaf(SHAPE(4), vv);
    double g[2][4];
    for (int order = 0; order < 2; order++) {
        tensor *t = tensor_mul_scalar(x, 2.0);
        tensor *p = tensor_sum_all(tensor_mul(t, w)), *q = tensor_sum_all(tensor_mul(tensor_softmax(t, 0), v));
        tensor *loss = order == 0 ? tensor_add(p, q) : tensor_add(q, p);
        ck_assert_int_eq(tensor_zero_grad(x), 0);
        ck_assert_int_eq(tensor_backward(loss), 0);
        for (int i = 0; i < 4; i++) g[order][i] = tensor_get(x->grad, i);
        tape_reset();
    }
    /* dx = 2 (w + s * (v - sum(s v))), s = softmax(2 x) */
    double s[4], z = 0, sv = 0;
    for (int i = 0; i < 4; i++) z += exp(2 * xv[i]);
    for (int i = 0; i < 4; i++) s[i] = exp(2 * xv[i]) / z, sv += s[i] * vv[i];
    for (int i = 0; i < 4; i++) {
        ck_assert_double_eq_tol(g[0][i], 2 * (wv[i] + s[i] * (vv[i] - sv)), 1e-12);
        ck_assert_double_eq_tol(g[1][i], g[0][i], 1e-12);
    }
    tensor_free(x);
    tensor_free(w);
    tensor_free(v);
}
END_TEST

/* Leaves are never fresh: their buffers are zeroed once and accumulate
 * across backward calls until tensor_zero_grad. loss = sum(x @ w): dw[k][n]
 * = sum_m x[m][k], doubled by a second backward over a second forward. */
START_TEST(test_leaves_accumulate_across_backward_calls) {
    const double xv[] = {1, 2, 3, 4, 5, 6}, wv[] = {0.5, -1, 2, 0.25, 1, -3};
    tensor *x = leaf(SHAPE(2, 3), xv), *w = leaf(SHAPE(3, 2), wv);
    for (int call = 1; call <= 2; call++) {
        ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_matmul(x, w))), 0);
        ck_assert(!w->grad->fresh && !x->grad->fresh);
        const double dw[6] = {5.0 * call, 5.0 * call, 7.0 * call, 7.0 * call, 9.0 * call, 9.0 * call};
        ck_assert_tensor(w->grad, dw, 0);
        tape_reset();
    }
    ck_assert_int_eq(tensor_zero_grad(w), 0);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_matmul(x, w))), 0);
    const double dw1[6] = {5, 5, 7, 7, 9, 9};
    ck_assert_tensor(w->grad, dw1, 0);
    tape_reset();
    tensor_free(x);
    tensor_free(w);
}
END_TEST

/* tg_vjp_call: a fresh buffer handed to an op without vjp_fresh is zeroed
 * before its vjp adds, and none is left fresh afterwards. */
static int seen_nonzero;
static void adds_one(tape_node *n, tensor *const *gin) {
    (void)n;
    for (int64_t i = 0; i < gin[0]->size; i++) {
        if (tensor_get(gin[0], i) != 0) seen_nonzero++;
        tensor_set(gin[0], i, tensor_get(gin[0], i) + 1);
    }
}

START_TEST(test_vjp_call_zeroes_fresh_buffers_for_unconverted_ops) {
    const double xv[] = {1, 2, 3};
    tensor *x = leaf(SHAPE(3), xv);
    tensor *y = tensor_neg(x); /* a node to call the vjp on */
    tape_node *nd = tg_tape_node_at(y->node);
    nd->out->grad = tg_tensor_tape_new(DTYPE_F64, 1, (int64_t[]){3});
    tensor *g = tg_tensor_tape_new(DTYPE_F64, 1, (int64_t[]){3});
    for (int i = 0; i < 3; i++) tensor_set(g, i, NAN);
    g->fresh = true;
    op_def plain = *nd->op;
    plain.vjp = adds_one;
    plain.vjp_fresh = false;
    seen_nonzero = 0;
    tg_vjp_call(&plain, nd, &g);
    ck_assert_int_eq(seen_nonzero, 0);
    ck_assert(!g->fresh);
    const double ones[3] = {1, 1, 1};
    ck_assert_tensor(g, ones, 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

Suite *fresh_grad_suite(void) {
    Suite *s = suite_create("fresh_grad");
    TCase *tc = tcase_create("fresh");
    tcase_add_test(tc, test_same_input_twice_writes_then_adds);
    tcase_add_test(tc, test_matmul_and_linear_of_one_intermediate_twice);
    tcase_add_test(tc, test_broadcast_reduction_into_fresh_buffers);
    tcase_add_test(tc, test_converted_and_unconverted_consumers_sum);
    tcase_add_test(tc, test_leaves_accumulate_across_backward_calls);
    tcase_add_test(tc, test_vjp_call_zeroes_fresh_buffers_for_unconverted_ops);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(fresh_grad_suite)
