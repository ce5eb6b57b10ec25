/* test_core.c - tensors, the tape, backward, broadcasting and the first ops,
 * against hand-computed values. */
#include <string.h>

#include "check_main.h"

static tensor *leaf(int ndim, const int64_t *shape, const double *v) {
    tensor *t = tensor_from_doubles(DTYPE_F64, ndim, shape, v);
    tensor_set_requires_grad(t, true);
    return t;
}

/* y = sum(a * b + a), a = [1.5, -2, 0.25], b = [3, 0.5, -4]:
 * dy/da = b + 1 = [4, 1.5, -3], dy/db = a. The value a is used twice. */
START_TEST(test_mul_add_grad_value_used_twice) {
    tensor *a = leaf(SHAPE(3), (double[]){1.5, -2, 0.25});
    tensor *b = leaf(SHAPE(3), (double[]){3, 0.5, -4});
    tensor *y = tensor_sum_all(tensor_add(tensor_mul(a, b), a));
    ck_assert_ptr_nonnull(y);
    ck_assert_close(tensor_item(y), 4.5 - 1 - 1 + 1.5 - 2 + 0.25, 1e-12);
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){4, 1.5, -3}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){1.5, -2, 0.25}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* [3] + [2,3]: the [3] operand's gradient sums over the broadcast rows. */
START_TEST(test_add_grad_broadcast_row) {
    tensor *a = leaf(SHAPE(3), (double[]){1, 2, 3});
    tensor *b = leaf(SHAPE(2, 3), (double[]){0.5, -1, 2, 4, 0.25, -3});
    tensor *w = tensor_from_doubles(DTYPE_F64, SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    tensor *y = tensor_sum_all(tensor_mul(tensor_add(a, b), w));
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){5, 7, 9}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){1, 2, 3, 4, 5, 6}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(w);
}
END_TEST

/* Forward values of sub and div (order matters) for every broadcast layout
 * the kernels special-case or not: the whole-repeat (suffix) operand on
 * either side, with and without leading 1s, against an element-by-element
 * reference of NumPy's rule, in float32 and float64. */
START_TEST(test_binary_forward_every_broadcast_layout) {
    static const struct {
        int na, nb;
        int64_t a[3], b[3];
    } cases[] = {
        {3, 2, {2, 3, 4}, {3, 4}},    {2, 3, {3, 4}, {2, 3, 4}},    {3, 3, {2, 3, 4}, {1, 3, 4}},
        {3, 1, {2, 3, 4}, {4}},       {1, 3, {4}, {2, 3, 4}},       {3, 2, {2, 3, 4}, {3, 1}},
        {3, 3, {2, 1, 4}, {1, 3, 1}}, {3, 3, {1, 1, 5}, {2, 3, 5}},
    };
    for (int dt = 0; dt < 2; dt++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            dtype d = dt ? DTYPE_F32 : DTYPE_F64;
            tensor *a = tensor_new(d, cases[k].na, cases[k].a), *b = tensor_new(d, cases[k].nb, cases[k].b);
            for (int64_t i = 0; i < a->size; i++) tensor_set(a, i, 1.5 + 0.25 * (double)i);
            for (int64_t i = 0; i < b->size; i++) tensor_set(b, i, -0.75 - 0.5 * (double)i);
            tensor *ys[2] = {tensor_sub(a, b), tensor_div(a, b)};
            for (int f = 0; f < 2; f++) {
                tensor *y = ys[f];
                ck_assert_ptr_nonnull(y);
                for (int64_t i = 0; i < y->size; i++) {
                    int64_t rem = i, ia = 0, ib = 0, sa = 1, sb = 1;
                    for (int dd = y->ndim - 1; dd >= 0; dd--) {
                        int64_t c = rem % y->shape[dd];
                        rem /= y->shape[dd];
                        int da = dd - (y->ndim - a->ndim), db = dd - (y->ndim - b->ndim);
                        if (da >= 0) ia += (a->shape[da] == 1 ? 0 : c) * sa, sa *= a->shape[da];
                        if (db >= 0) ib += (b->shape[db] == 1 ? 0 : c) * sb, sb *= b->shape[db];
                    }
                    double x = tensor_get(a, ia), z = tensor_get(b, ib);
                    double want = f == 0 ? x - z : x / z;
                    if (dt) want = f == 0 ? (double)((float)x - (float)z) : (double)((float)x / (float)z);
                    ck_assert_msg(tensor_get(y, i) == want, "case %zu op %d dtype %d element %lld: %.9g, expected %.9g",
                                  k, f, dt, (long long)i, tensor_get(y, i), want);
                }
            }
            tape_reset();
            tensor_free(a);
            tensor_free(b);
        }
}
END_TEST

/* matmul [2,3] @ [3,2] by hand; dA = G B^T, dB = A^T G with G = ones. */
START_TEST(test_matmul_forward_and_grad) {
    tensor *a = leaf(SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    tensor *b = leaf(SHAPE(3, 2), (double[]){0.5, -1, 2, 0, -3, 1});
    tensor *c = tensor_matmul(a, b);
    ck_assert_tensor(c, ((double[]){-4.5, 2, -6, 2}), 1e-12);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(c)), 0);
    ck_assert_tensor(a->grad, ((double[]){-0.5, 2, -2, -0.5, 2, -2}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){5, 5, 7, 7, 9, 9}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

START_TEST(test_matmul_error_names_shapes) {
    tapegrad_error_clear();
    tensor *a = tensor_zeros(DTYPE_F32, SHAPE(3, 4));
    tensor *b = tensor_zeros(DTYPE_F32, SHAPE(5, 2));
    ck_assert_ptr_null(tensor_matmul(a, b));
    ck_assert_str_eq(tapegrad_error(), "matmul: inner dimensions differ: [3,4] @ [5,2]");
    tapegrad_error_clear();
    tensor_free(a);
    tensor_free(b);
}
END_TEST


/* [2,1,4] * [3,1] -> [2,3,4]. With y = sum(a * b):
 * da[i,0,k] = sum_j b[j], db[j,0] = sum_{i,k} a[i,0,k]. */
START_TEST(test_mul_grad_broadcast_both_operands) {
    tensor *a = leaf(SHAPE(2, 1, 4), (double[]){1, -2, 3, 0.5, 2, 0.25, -1, 4});
    tensor *b = leaf(SHAPE(3, 1), (double[]){0.5, -1.5, 3});
    tensor *y = tensor_mul(a, b);
    ck_assert_int_eq(y->ndim, 3);
    ck_assert_int_eq(y->shape[0] * 100 + y->shape[1] * 10 + y->shape[2], 234);
    /* y[1,2,3] = a[1,0,3] * b[2,0] = 4 * 3 */
    ck_assert_close(tensor_at(y, (int64_t[]){1, 2, 3}), 12.0, 1e-12);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(a->grad, ((double[]){2, 2, 2, 2, 2, 2, 2, 2}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){7.75, 7.75, 7.75}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* y = sum(w * (a - b) / c): da = w / c, db = -w / c, dc = -w (a - b) / c^2, and
 * neg: d(-a) = -1. */
START_TEST(test_sub_div_neg_grads) {
    tensor *a = leaf(SHAPE(3), (double[]){1, 2, -3});
    tensor *b = leaf(SHAPE(3), (double[]){0.5, -1, 1});
    tensor *c = leaf(SHAPE(3), (double[]){2, -4, 0.5});
    tensor *w = tensor_from_doubles(DTYPE_F64, SHAPE(3), (double[]){1, 2, 3});
    tensor *q = tensor_div(tensor_sub(a, b), c); /* [0.25, -0.75, -8] */
    ck_assert_tensor(q, ((double[]){0.25, -0.75, -8}), 1e-12);
    tensor *y = tensor_sum_all(tensor_mul(tensor_neg(q), w));
    ck_assert_close(tensor_item(y), -(0.25 - 1.5 - 24), 1e-12);
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){-0.5, 0.5, -6}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){0.5, -0.5, 6}), 1e-12);
    /* dc = w (a - b) / c^2 (negated twice): [0.5/4, 2*3/16, 3*-4/0.25] */
    ck_assert_tensor(c->grad, ((double[]){0.125, 0.375, -48}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
    tensor_free(w);
}
END_TEST

/* y = sum((a + 2) * 3) -> dy/da = 3 */
START_TEST(test_scalar_ops) {
    tensor *a = leaf(SHAPE(2), (double[]){1, -4});
    tensor *y = tensor_mul_scalar(tensor_add_scalar(a, 2), 3);
    ck_assert_tensor(y, ((double[]){9, -6}), 1e-12);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(a->grad, ((double[]){3, 3}), 1e-12);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* batched [2,3,4] @ [4,5] and [5,1,3,4] @ [2,4,6]: compare with a naive
 * product, and check the broadcast operand's gradient sums over batches. */
static double naive_mm(const tensor *a, const tensor *b, int64_t ba, int64_t bb, int64_t i,
                       int64_t j) {
    int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], N = b->shape[b->ndim - 1];
    double s = 0;
    for (int64_t k = 0; k < K; k++)
        s += tensor_get(a, ba * M * K + i * K + k) * tensor_get(b, bb * K * N + k * N + j);
    return s;
}

START_TEST(test_matmul_batched_broadcast) {
    rng g;
    rng_seed(&g, 7, 1);
    tensor *a = tensor_randn(&g, DTYPE_F64, SHAPE(2, 3, 4), 0, 1);
    tensor *b = tensor_randn(&g, DTYPE_F64, SHAPE(4, 5), 0, 1);
    tensor_set_requires_grad(b, true);
    tensor *c = tensor_matmul(a, b);
    ck_assert_int_eq(c->ndim, 3);
    ck_assert_int_eq(c->shape[2], 5);
    for (int64_t bi = 0; bi < 2; bi++)
        for (int64_t i = 0; i < 3; i++)
            for (int64_t j = 0; j < 5; j++)
                ck_assert_close(tensor_get(c, bi * 15 + i * 5 + j), naive_mm(a, b, bi, 0, i, j), 1e-12);
    /* d sum(c) / db[k,j] = sum over batch and rows of a[.., k] */
    ck_assert_int_eq(tensor_backward(tensor_sum_all(c)), 0);
    for (int64_t k = 0; k < 4; k++) {
        double s = 0;
        for (int64_t bi = 0; bi < 2; bi++)
            for (int64_t i = 0; i < 3; i++) s += tensor_get(a, bi * 12 + i * 4 + k);
        for (int64_t j = 0; j < 5; j++) ck_assert_close(tensor_get(b->grad, k * 5 + j), s, 1e-12);
    }
    tape_reset();

    tensor *p = tensor_randn(&g, DTYPE_F64, SHAPE(5, 1, 3, 4), 0, 1);
    tensor *q = tensor_randn(&g, DTYPE_F64, SHAPE(2, 4, 6), 0, 1);
    tensor *r = tensor_matmul(p, q);
    ck_assert_int_eq(r->ndim, 4);
    ck_assert_int_eq(r->shape[0] * 1000 + r->shape[1] * 100 + r->shape[2] * 10 + r->shape[3], 5236);
    /* r[4,1,2,5] = p[4,0] @ q[1] at (2,5) */
    ck_assert_close(tensor_at(r, (int64_t[]){4, 1, 2, 5}), naive_mm(p, q, 4, 1, 2, 5), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(p);
    tensor_free(q);
}
END_TEST

/* sum/mean over axes with keepdim on [2,3] = [[1,2,3],[4,5,6]]. */
START_TEST(test_sum_mean_axes_keepdim) {
    tensor *a = leaf(SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    int ax0[1] = {0}, axm1[1] = {-1};
    tensor *s0 = tensor_sum(a, ax0, 1, false);
    ck_assert_int_eq(s0->ndim, 1);
    ck_assert_tensor(s0, ((double[]){5, 7, 9}), 1e-12);
    tensor *m1 = tensor_mean(a, axm1, 1, true);
    ck_assert_int_eq(m1->ndim, 2);
    ck_assert_int_eq(m1->shape[1], 1);
    ck_assert_tensor(m1, ((double[]){2, 5}), 1e-12);
    /* y = sum(s0 * [1,2,3]) + sum(m1 * [10, 20]):
     * da[i,j] = w0[j] + w1[i] / 3 */
    tensor *w0 = tensor_from_doubles(DTYPE_F64, SHAPE(3), (double[]){1, 2, 3});
    tensor *w1 = tensor_from_doubles(DTYPE_F64, SHAPE(2, 1), (double[]){10, 20});
    tensor *y = tensor_add(tensor_sum_all(tensor_mul(s0, w0)), tensor_sum_all(tensor_mul(m1, w1)));
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){1 + 10 / 3.0, 2 + 10 / 3.0, 3 + 10 / 3.0, 1 + 20 / 3.0,
                                           2 + 20 / 3.0, 3 + 20 / 3.0}),
                     1e-12);
    ck_assert_close(tensor_item(tensor_mean_all(a)), 3.5, 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(w0);
    tensor_free(w1);
}
END_TEST

/* transpose [2,3] -> [3,2]; permute [2,3,4] by (2,0,1); reshape with -1.
 * Gradients are the inverse maps of a weighted sum. */
START_TEST(test_transpose_permute_reshape) {
    tensor *a = leaf(SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    tensor *t = tensor_transpose(a, 0, 1);
    ck_assert_tensor(t, ((double[]){1, 4, 2, 5, 3, 6}), 0);
    tensor *w = tensor_from_doubles(DTYPE_F64, SHAPE(3, 2), (double[]){1, 2, 3, 4, 5, 6});
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(t, w))), 0);
    /* da[i,j] = w[j,i] */
    ck_assert_tensor(a->grad, ((double[]){1, 3, 5, 2, 4, 6}), 0);
    tape_reset();

    rng g;
    rng_seed(&g, 3, 0);
    tensor *b = tensor_randn(&g, DTYPE_F64, SHAPE(2, 3, 4), 0, 1);
    tensor_set_requires_grad(b, true);
    tensor *p = tensor_permute(b, (int[]){2, 0, 1});
    ck_assert_int_eq(p->shape[0] * 100 + p->shape[1] * 10 + p->shape[2], 423);
    /* p[k,i,j] = b[i,j,k] */
    ck_assert_close(tensor_at(p, (int64_t[]){3, 1, 2}), tensor_at(b, (int64_t[]){1, 2, 3}), 0);
    tensor *wp = tensor_arange(DTYPE_F64, 0, 24, 1);
    tensor *r = tensor_reshape(p, SHAPE(-1));
    ck_assert_int_eq(r->ndim, 1);
    ck_assert_int_eq(r->shape[0], 24);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(r, wp))), 0);
    /* db[i,j,k] = flat index of p[k,i,j] = k*6 + i*3 + j */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                ck_assert_close(tensor_get(b->grad, i * 12 + j * 4 + k), k * 6 + i * 3 + j, 0);
    tape_reset();
    tensor_free(a);
    tensor_free(w);
    tensor_free(b);
    tensor_free(wp);
}
END_TEST

/* Two backward calls accumulate; tensor_zero_grad resets. */
START_TEST(test_grad_accumulates_over_two_backward_calls) {
    tensor *a = leaf(SHAPE(2), (double[]){3, -1});
    tensor *y = tensor_sum_all(tensor_mul(a, a)); /* dy/da = 2a */
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){12, -4}), 1e-12);
    tape_reset();
    y = tensor_sum_all(tensor_mul_scalar(a, 5));
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){17, 1}), 1e-12);
    tensor_zero_grad(a);
    ck_assert_tensor(a->grad, ((double[]){0, 0}), 0);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* Non-scalar output with an explicit upstream gradient. */
START_TEST(test_backward_with_upstream_gradient) {
    tensor *a = leaf(SHAPE(3), (double[]){1, 2, 3});
    tensor *y = tensor_mul(a, a);
    tensor *u = tensor_from_doubles(DTYPE_F64, SHAPE(3), (double[]){0.5, -1, 2});
    ck_assert_int_eq(tensor_backward_with(y, u), 0);
    ck_assert_tensor(a->grad, ((double[]){1, -4, 12}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(u);
}
END_TEST

/* The output's gradient is the upstream gradient as given, bit for bit (-0.0
 * included) when the dtypes agree, converted when they do not; a second
 * backward over the same tape seeds it afresh while the leaf accumulates. */
START_TEST(test_backward_with_seeds_output_gradient) {
    tensor *a = tensor_from_doubles(DTYPE_F32, SHAPE(4), (double[]){1, -2, 0.5, 3});
    tensor_set_requires_grad(a, true);
    tensor *y = tensor_mul_scalar(a, 3);
    tensor *u = tensor_from_doubles(DTYPE_F32, SHAPE(4), (double[]){0.5, -0.0, -2, 7});
    tensor *u64 = tensor_from_doubles(DTYPE_F64, SHAPE(4), (double[]){0.25, 1, -3, 0.125});
    for (int round = 1; round <= 2; round++) {
        ck_assert_int_eq(tensor_backward_with(y, u), 0);
        ck_assert_int_eq(y->grad->dtype, DTYPE_F32);
        ck_assert(memcmp(y->grad->data, u->data, 4 * sizeof(float)) == 0);
        ck_assert_tensor(a->grad, ((double[]){1.5 * round, 0, -6.0 * round, 21.0 * round}), 0);
    }
    ck_assert(signbit(((float *)y->grad->data)[1]));
    ck_assert_int_eq(tensor_backward_with(y, u64), 0);
    ck_assert_int_eq(y->grad->dtype, DTYPE_F32);
    ck_assert_tensor(y->grad, ((double[]){0.25, 1, -3, 0.125}), 0);
    ck_assert_tensor(a->grad, ((double[]){3.75, 3, -21, 42.375}), 0);
    tape_reset();
    tensor_free(a), tensor_free(u), tensor_free(u64);
}
END_TEST

/* Nothing is recorded in a no-grad scope; outputs do not require grad. */
START_TEST(test_no_grad_scope_records_nothing) {
    tensor *a = leaf(SHAPE(2), (double[]){1, 2});
    tape_reset();
    tape_no_grad_begin();
    ck_assert(!tape_is_recording());
    tensor *y = tensor_mul(a, a);
    tape_no_grad_end();
    ck_assert(tape_is_recording());
    ck_assert_int_eq(tape_size(), 0);
    ck_assert(!y->requires_grad);
    ck_assert_tensor(y, ((double[]){1, 4}), 0);
    tensor *z = tensor_mul(a, a);
    ck_assert_int_eq(tape_size(), 1);
    ck_assert(z->requires_grad);
    tapegrad_error_clear();
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "tensor_backward: output [] does not require grad (no input requires grad, "));
    tapegrad_error_clear();
    tape_reset();
    tensor_free(a);
}
END_TEST

/* Nodes not leading to the loss are skipped: b's branch is never visited. */
START_TEST(test_only_nodes_leading_to_loss_run) {
    tensor *a = leaf(SHAPE(2), (double[]){1, 2});
    tensor *b = leaf(SHAPE(2), (double[]){3, 4});
    tensor *unused = tensor_mul(b, b);
    tensor *y = tensor_sum_all(tensor_mul_scalar(a, 2));
    ck_assert_ptr_nonnull(unused);
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_ptr_null(b->grad);
    ck_assert_tensor(a->grad, ((double[]){2, 2}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

START_TEST(test_float32_training_path) {
    tensor *a = tensor_from_doubles(DTYPE_F32, SHAPE(2, 2), (double[]){1, 2, 3, 4});
    tensor *b = tensor_from_doubles(DTYPE_F32, SHAPE(2), (double[]){0.5, -1});
    tensor_set_requires_grad(a, true);
    tensor_set_requires_grad(b, true);
    tensor *y = tensor_sum_all(tensor_mul(tensor_add(a, b), a));
    ck_assert_int_eq(y->dtype, DTYPE_F32);
    /* d/da = 2a + b, d/db = sum over rows of a */
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){2.5, 3, 6.5, 7}), 1e-6);
    ck_assert_tensor(b->grad, ((double[]){4, 6}), 1e-6);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* concat of 40 leaves (more inputs than a 32-bit mask has bits): each leaf
 * gets its slice of the weights as gradient. */
START_TEST(test_concat_of_forty_inputs_backward) {
    tensor *ts[40];
    for (int i = 0; i < 40; i++) {
        ts[i] = tensor_full(DTYPE_F64, SHAPE(2), i);
        tensor_set_requires_grad(ts[i], true);
    }
    tensor *w = tensor_arange(DTYPE_F64, 0, 80, 1);
    tensor *y = tensor_sum_all(tensor_mul(tensor_concat(ts, 40, 0), w));
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(tensor_backward(y), 0);
    for (int i = 0; i < 40; i++) {
        ck_assert_tensor(ts[i]->grad, ((double[]){2 * i, 2 * i + 1}), 0);
        tensor_free(ts[i]);
    }
    tape_reset();
    tensor_free(w);
}
END_TEST

/* ---------------------------------------------------------- errors */
#define EXPECT_ERROR(expr, fragment)                                                      \
    do {                                                                                  \
        tapegrad_error_clear();                                                           \
        ck_assert_msg(!(expr), "expected failure: %s", #expr);                            \
        ck_assert_ptr_nonnull(tapegrad_error());                                          \
        ck_assert_msg(strstr(tapegrad_error(), fragment), "message '%s' lacks '%s'",       \
                      tapegrad_error(), fragment);                                        \
        tapegrad_error_clear();                                                           \
    } while (0)

START_TEST(test_errors_every_core_path) {
    tensor *f32 = tensor_zeros(DTYPE_F32, SHAPE(2, 3));
    tensor *f64 = tensor_zeros(DTYPE_F64, SHAPE(2, 3));
    tensor *v4 = tensor_zeros(DTYPE_F32, SHAPE(4));
    tensor *i64 = tensor_zeros(DTYPE_I64, SHAPE(2, 3));
    EXPECT_ERROR(tensor_add(f32, NULL), "add: input 1 is NULL");
    EXPECT_ERROR(tensor_mul(f32, f64), "mul: dtype mismatch: float32 vs float64");
    EXPECT_ERROR(tensor_sub(f32, v4), "sub: shapes [2,3] and [4] do not broadcast (dimension 1: 3 vs 4)");
    EXPECT_ERROR(tensor_div(i64, f32), "div: input 0 is int64; this op needs float32 or float64");
    EXPECT_ERROR(tensor_matmul(v4, f32), "matmul: operands need at least 2 dimensions: [4] @ [2,3] (use tensor_dot or ");
    EXPECT_ERROR(tensor_sum(f32, (int[]){2}, 1, false), "sum: axis 2 out of range for 2 dimensions");
    EXPECT_ERROR(tensor_mean(f32, (int[]){0, -2}, 2, false), "mean: axis -2 given twice");
    EXPECT_ERROR(tensor_reshape(f32, SHAPE(4, 2)), "reshape: cannot view [2,3] (6 elements) as [4,2]");
    EXPECT_ERROR(tensor_permute(f32, (int[]){0, 0}), "permute: entry 1 (0) is not a permutation of the 2 dims of [2,3]");
    EXPECT_ERROR(tensor_permute(f32, NULL), "permute: perm is NULL");
    EXPECT_ERROR(tensor_transpose(NULL, 0, 1), "transpose: input 0 is NULL");
    EXPECT_ERROR(tensor_reshape(f32, 9, (int64_t[9]){1}), "reshape: bad target rank 9");
    EXPECT_ERROR(tensor_reshape(f32, SHAPE(-2, 3)), "reshape: bad size -2 in dimension 0");
    EXPECT_ERROR(tensor_sum(f32, NULL, 1, false), "sum: bad axes list (naxes 1)");
    EXPECT_ERROR(tensor_new(DTYPE_F32, 2, NULL), "tensor_new: shape is NULL");
    EXPECT_ERROR(tensor_new(DTYPE_F32, SHAPE(1LL << 40, 1LL << 30)), "tensor_new: shape too large");
    EXPECT_ERROR(tensor_new((dtype)7, SHAPE(2)), "tensor_new: unknown dtype 7");
    EXPECT_ERROR(tensor_from_doubles(DTYPE_F32, SHAPE(2), NULL), "tensor_from_doubles: values is NULL");
    EXPECT_ERROR(tensor_randn(NULL, DTYPE_F32, SHAPE(2), 0, 1), "tensor_randn: generator is NULL");
    EXPECT_ERROR(tensor_copy_data(NULL, f32) == 0, "tensor_copy_data: tensor is NULL");
    EXPECT_ERROR(tensor_to_dtype(NULL, DTYPE_F32), "tensor_to_dtype: tensor is NULL");
    EXPECT_ERROR(tensor_clone(NULL), "tensor_clone: tensor is NULL");
    EXPECT_ERROR(tensor_set_requires_grad(NULL, true) == 0, "tensor_set_requires_grad: tensor is NULL");
    EXPECT_ERROR(tensor_zero_grad(NULL) == 0, "tensor_zero_grad: tensor is NULL");
    EXPECT_ERROR(tensor_set(f32, 6, 1.0) == 0, "tensor_set: index 6 out of range");
    EXPECT_ERROR(tensor_transpose(f32, 0, 5), "transpose: axis 5 out of range");
    EXPECT_ERROR(tensor_new(DTYPE_F32, 9, (int64_t[9]){1}), "tensor_new: 9 dimensions (at most 8)");
    EXPECT_ERROR(tensor_new(DTYPE_F32, SHAPE(2, -1)), "tensor_new: negative size -1 in dimension 1");
    EXPECT_ERROR(tensor_set_requires_grad(i64, true) == 0, "tensor_set_requires_grad: int64 tensors have no gradient");
    EXPECT_ERROR(tensor_backward(NULL) == 0, "tensor_backward: output is NULL");
    EXPECT_ERROR(tensor_arange(DTYPE_F32, 0, 1, 0), "tensor_arange: step must be nonzero and bounds finite");
    EXPECT_ERROR(tensor_from_data(DTYPE_F32, SHAPE(2), NULL), "tensor_from_data: data is NULL");
    EXPECT_ERROR(tensor_copy_data(f32, v4) == 0, "tensor_copy_data: shapes differ: [2,3] vs [4]");
    EXPECT_ERROR(tensor_rand(NULL, DTYPE_F32, SHAPE(2), 0, 1), "tensor_rand: generator is NULL");

    /* backward on a non-scalar without upstream gradient; wrong upstream shape */
    tensor *a = tensor_ones(DTYPE_F32, SHAPE(2, 3));
    tensor_set_requires_grad(a, true);
    tensor *y = tensor_mul(a, a);
    EXPECT_ERROR(tensor_backward(y) == 0,
                 "tensor_backward: output [2,3] is not a scalar; give an upstream gradient with tensor_backward_with");
    EXPECT_ERROR(tensor_backward_with(y, v4) == 0,
                 "tensor_backward_with: upstream gradient float32 [4] does not match output [2,3]");
    /* a dtype fault said so as a shape mismatch ("int64 [2,3] does not match output [2,3]") */
    tensor *g64 = tensor_zeros(DTYPE_I64, SHAPE(2, 3));
    EXPECT_ERROR(tensor_backward_with(y, g64) == 0,
                 "tensor_backward_with: upstream gradient [2,3] is int64; it must be float32 or "
                 "float64 (output float32 [2,3])");
    tensor_free(g64);
    EXPECT_ERROR(tensor_set_requires_grad(y, false) == 0,
                 "tensor_set_requires_grad: only leaves can be marked (this tensor is an op's output)");
    /* backward over a tape that was reset */
    tensor *loss = tensor_sum_all(y);
    tape_reset();
    EXPECT_ERROR(tensor_backward(loss) == 0,
                 "tensor_backward: output [] is stale: it was computed before the last tape_reset(), which"
                 " released it; keep a value across a reset with tensor_detach()");
    tensor_free(a);
    tensor_free(f32);
    tensor_free(f64);
    tensor_free(v4);
    tensor_free(i64);
}
END_TEST

/* An error propagates through a whole expression like a NaN: the first
 * message is kept, later ops on the NULL add none. */
START_TEST(test_error_propagates_through_expression) {
    tensor *a = tensor_ones(DTYPE_F32, SHAPE(3, 4));
    tensor *b = tensor_ones(DTYPE_F32, SHAPE(5, 2));
    tapegrad_error_clear();
    tensor *y = tensor_sum_all(tensor_add_scalar(tensor_mul(tensor_matmul(a, b), a), 1));
    ck_assert_ptr_null(y);
    ck_assert_str_eq(tapegrad_error(), "matmul: inner dimensions differ: [3,4] @ [5,2]");
    tapegrad_error_clear();
    ck_assert_ptr_null(tapegrad_error());
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* PCG32 reference stream (seed 42, stream 54) from the generator's authors:
 * the same numbers on every machine. */
START_TEST(test_rng_reference_stream) {
    rng g;
    rng_seed(&g, 42, 54);
    const uint32_t expect[6] = {0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e};
    for (int i = 0; i < 6; i++) ck_assert_uint_eq(rng_next_u32(&g), expect[i]);
    rng_seed(&g, 1, 2);
    double u = rng_uniform(&g), n = rng_normal(&g);
    rng h;
    rng_seed(&h, 1, 2);
    ck_assert(u == rng_uniform(&h) && n == rng_normal(&h));
    ck_assert(u >= 0 && u < 1);
    for (int i = 0; i < 1000; i++) ck_assert_uint_lt(rng_below(&g, 7), 7);
}
END_TEST

START_TEST(test_creation_and_conversion) {
    tensor *r = tensor_arange(DTYPE_F64, 0, 1, 0.25);
    ck_assert_tensor(r, ((double[]){0, 0.25, 0.5, 0.75}), 0);
    tensor *f = tensor_full(DTYPE_F32, SHAPE(2), 2.5);
    ck_assert_tensor(f, ((double[]){2.5, 2.5}), 0);
    tensor *d = tensor_to_dtype(f, DTYPE_F64);
    ck_assert_int_eq(d->dtype, DTYPE_F64);
    ck_assert_tensor(d, ((double[]){2.5, 2.5}), 0);
    int64_t raw[3] = {4, -2, 9};
    tensor *ix = tensor_from_data(DTYPE_I64, SHAPE(3), raw);
    ck_assert_tensor(ix, ((double[]){4, -2, 9}), 0);
    tensor *c = tensor_clone(ix);
    ck_assert_tensor(c, ((double[]){4, -2, 9}), 0);
    ck_assert_int_eq(((uintptr_t)f->data) % 64, 0);
    char buf[32];
    ck_assert_str_eq(tensor_shape_str(ix, buf, sizeof buf), "[3]");
    tensor_free(r);
    tensor_free(f);
    tensor_free(d);
    tensor_free(ix);
    tensor_free(c);
}
END_TEST

Suite *core_suite(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_mul_add_grad_value_used_twice);
    tcase_add_test(tc, test_add_grad_broadcast_row);
    tcase_add_test(tc, test_binary_forward_every_broadcast_layout);
    tcase_add_test(tc, test_matmul_forward_and_grad);
    tcase_add_test(tc, test_matmul_error_names_shapes);
    tcase_add_test(tc, test_mul_grad_broadcast_both_operands);
    tcase_add_test(tc, test_sub_div_neg_grads);
    tcase_add_test(tc, test_scalar_ops);
    tcase_add_test(tc, test_matmul_batched_broadcast);
    tcase_add_test(tc, test_sum_mean_axes_keepdim);
    tcase_add_test(tc, test_transpose_permute_reshape);
    tcase_add_test(tc, test_grad_accumulates_over_two_backward_calls);
    tcase_add_test(tc, test_backward_with_upstream_gradient);
    tcase_add_test(tc, test_backward_with_seeds_output_gradient);
    tcase_add_test(tc, test_no_grad_scope_records_nothing);
    tcase_add_test(tc, test_only_nodes_leading_to_loss_run);
    tcase_add_test(tc, test_float32_training_path);
    tcase_add_test(tc, test_concat_of_forty_inputs_backward);
    tcase_add_test(tc, test_errors_every_core_path);
    tcase_add_test(tc, test_error_propagates_through_expression);
    tcase_add_test(tc, test_rng_reference_stream);
    tcase_add_test(tc, test_creation_and_conversion);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(core_suite)
