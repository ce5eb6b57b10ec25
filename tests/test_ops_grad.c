/* test_ops_grad.c - the gradient ops of ops/grad_ops.c (relu's and
 * max_pool2d's vjps as ops): equal to the kernel vjps they stand for, bit for
 * bit, on every pooling geometry; central differences over the registry's
 * sample cases; every error path. Their second order is checked with the
 * whole registry (test_higher_order). */
#include <math.h>
#include <string.h>

#include "../autograd/internal.h"
#include "../ops/grad_ops.h"
#include "check_main.h"
#include "ops_test.h"

static pool2d_params pp(int kh, int kw, int sh, int sw, int ph, int pw) {
    return (pool2d_params){{kh, kw}, {sh, sw}, {ph, pw}, false};
}

/* x's gradient through y = op(x) with upstream gy, by the kernel vjps
 * (tensor_backward_with) and by the differentiable ones (tensor_grad with
 * create_graph): the same numbers, bit for bit; the latter recorded (it
 * depends on the upstream gradient gy, a leaf here). */
static void expect_graph_vjp_equals_kernel(tensor *x, tensor *(*build)(tensor *, const void *), const void *arg,
                                           uint64_t seed) {
    tape_reset();
    tensor *y = build(x, arg);
    ck_assert_ptr_nonnull(y);
    rng g;
    rng_seed(&g, seed, 1);
    tensor *gy = tensor_new(x->dtype, y->ndim, y->shape);
    for (int64_t i = 0; i < gy->size; i++) tensor_set(gy, i, 2.0 * rng_uniform(&g) - 1.0);
    tensor_set_requires_grad(gy, true); /* so that x's recorded gradient depends on a leaf */
    tensor *gx = NULL;
    ck_assert_int_eq(tensor_grad(y, gy, &x, 1, true, &gx), 0);
    ck_assert(gx->requires_grad);
    tensor_zero_grad(x);
    ck_assert_int_eq(tensor_backward_with(y, gy), 0);
    ck_assert_int_eq(gx->size, x->grad->size);
    for (int64_t i = 0; i < gx->size; i++) {
        double a = tensor_get(gx, i), b = tensor_get(x->grad, i);
        ck_assert_msg(memcmp(&a, &b, sizeof a) == 0, "element %lld: graph vjp %.17g, kernel %.17g", (long long)i,
                      a, b);
    }
    tensor_free(gy);
    tape_reset();
}

static tensor *build_max_pool(tensor *x, const void *p) { return tensor_max_pool2d(x, *(const pool2d_params *)p); }
static tensor *build_relu(tensor *x, const void *p) {
    (void)p;
    return tensor_relu(x);
}

static tensor *random_leaf(dtype dt, int ndim, const int64_t *shape, uint64_t seed) {
    rng g;
    rng_seed(&g, seed, 0);
    tensor *x = tensor_new(dt, ndim, shape);
    for (int64_t i = 0; i < x->size; i++) tensor_set(x, i, 3.0 * rng_uniform(&g) - 1.5);
    tensor_set_requires_grad(x, true);
    return x;
}

START_TEST(test_max_pool2d_graph_vjp_equals_kernel_every_geometry) {
    const pool2d_params ps[] = {pp(2, 2, 2, 2, 0, 0), pp(3, 3, 1, 1, 0, 0), pp(3, 3, 2, 2, 1, 1),
                                pp(2, 3, 1, 2, 1, 1), pp(2, 2, 2, 2, 0, 0)};
    const int64_t xs[][4] = {{2, 3, 6, 6}, {1, 2, 6, 5}, {2, 2, 7, 7}, {2, 2, 5, 8}, {1, 1, 5, 7}};
    for (int dt = 0; dt < 2; dt++)
        for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
            tensor *x = random_leaf(dt ? DTYPE_F32 : DTYPE_F64, 4, xs[k], 10 + k);
            expect_graph_vjp_equals_kernel(x, build_max_pool, &ps[k], 20 + k);
            tensor_free(x);
        }
}
END_TEST

START_TEST(test_relu_graph_vjp_equals_kernel) {
    for (int dt = 0; dt < 2; dt++) {
        tensor *x = random_leaf(dt ? DTYPE_F32 : DTYPE_F64, SHAPE(2, 3, 37), 5);
        expect_graph_vjp_equals_kernel(x, build_relu, NULL, 6);
        tensor_free(x);
    }
}
END_TEST

/* g = [1, inf, NaN, -2], x = [0.5, -1, 0, 3]: y = [1, 0, 0, -2] (a select);
 * its gradient for upstream u is u [x > 0], and none for x. */
START_TEST(test_relu_input_grad_values_select_not_product) {
    tape_reset();
    const double gv[4] = {1, INFINITY, NAN, -2}, xv[4] = {0.5, -1, 0, 3}, uv[4] = {10, 20, 30, 40};
    const double want[4] = {1, 0, 0, -2}, dg[4] = {10, 0, 0, 40};
    tensor *g = leaf(SHAPE(4), gv), *x = leaf(SHAPE(4), xv);
    tensor *y = tg_relu_input_grad(g, x);
    ck_assert_ptr_nonnull(y);
    ck_assert_tensor(y, want, 0);
    tensor *u = constant(SHAPE(4), uv);
    ck_assert_int_eq(tensor_backward_with(y, u), 0);
    ck_assert_tensor(g->grad, dg, 0);
    ck_assert_ptr_null(x->grad);
    tensor_free(g), tensor_free(x), tensor_free(u);
    tape_reset();
}
END_TEST

/* A 1x1x2x2 pool of a 1x1x3x3 plane: offsets 4, 4, 0, 8 (a shared one
 * accumulates), g = [1, 2, 3, 4]; gather reads the same offsets back. */
START_TEST(test_max_pool2d_scatter_and_gather_values) {
    tape_reset();
    const double gv[4] = {1, 2, 3, 4};
    const double uv[9] = {0.5, 1, 2, 3, 4, 5, 6, 7, 8};
    tensor *g = leaf(SHAPE(1, 1, 2, 2), gv), *u = leaf(SHAPE(1, 1, 3, 3), uv);
    tensor *idx = tensor_new(DTYPE_I64, SHAPE(1, 1, 2, 2));
    const int64_t I[4] = {4, 4, 0, 8};
    memcpy(idx->data, I, sizeof I);
    tensor *y = tg_max_pool2d_input_grad(g, idx, 3, 3);
    const double ys[9] = {3, 0, 0, 0, 3, 0, 0, 0, 4};
    ck_assert_tensor(y, ys, 0);
    tensor *z = tg_max_pool2d_gather(u, idx);
    const double zs[4] = {4, 4, 0.5, 8};
    ck_assert_tensor(z, zs, 0);
    ck_assert_int_eq(z->shape[2], 2);
    tensor_free(g), tensor_free(u), tensor_free(idx);
    tape_reset();
}
END_TEST

START_TEST(test_grad_ops_central_differences_all_samples) {
    ck_assert_int_ge(numeric_check_op("relu_input_grad", 300, 2, CHECK_ALL), 6);
    ck_assert_int_ge(numeric_check_op("max_pool2d_input_grad", 300, 2, CHECK_ALL), 6);
    ck_assert_int_ge(numeric_check_op("max_pool2d_gather", 300, 2, CHECK_ALL), 6);
}
END_TEST

START_TEST(test_grad_ops_errors) {
    tape_reset();
    tensor *g = tensor_zeros(DTYPE_F64, SHAPE(1, 2, 2, 2)), *x3 = tensor_zeros(DTYPE_F64, SHAPE(3));
    tensor *idx = tensor_zeros(DTYPE_I64, SHAPE(1, 2, 2, 2)), *fidx = tensor_zeros(DTYPE_F64, SHAPE(1, 2, 2, 2));
    tensor *idx3 = tensor_zeros(DTYPE_I64, SHAPE(1, 3, 2, 2)), *u = tensor_zeros(DTYPE_F64, SHAPE(1, 2, 3, 3));
    tensor *g32 = tensor_zeros(DTYPE_F32, SHAPE(1, 2, 2, 2));
    tapegrad_error_clear();
    ck_assert_fails_with(tg_relu_input_grad(g, x3),
                         "relu_input_grad: g [1,2,2,2] and x [3] must have one shape");
    ck_assert_fails(tg_relu_input_grad(g, g32), "relu_input_grad");
    ck_assert_fails(tg_relu_input_grad(NULL, g), "relu_input_grad");
    ck_assert_fails_with(tg_max_pool2d_input_grad(g, fidx, 3, 3),
                         "max_pool2d_input_grad: g must be float and idx int64, got float64 [1,2,2,2] and "
                         "float64 [1,2,2,2]");
    ck_assert_fails_with(tg_max_pool2d_input_grad(g, idx3, 3, 3),
                         "max_pool2d_input_grad: g [1,2,2,2] and idx [1,3,2,2] must be 4-D [B,C,..] with one shape");
    ck_assert_fails_with(tg_max_pool2d_input_grad(g, idx, 0, 3),
                         "max_pool2d_input_grad: the plane 0x3 must be at least 1x1");
    ((int64_t *)idx->data)[5] = 9;
    ck_assert_fails_with(tg_max_pool2d_input_grad(g, idx, 3, 3),
                         "max_pool2d_input_grad: idx 9 (at position 5 of [1,2,2,2]) is outside the 3x3 plane");
    ck_assert_fails_with(tg_max_pool2d_gather(u, idx3),
                         "max_pool2d_gather: u [1,2,3,3] and idx [1,3,2,2] must be 4-D [B,C,..] with the same B and C");
    ((int64_t *)idx->data)[5] = -1;
    ck_assert_fails_with(tg_max_pool2d_gather(u, idx),
                         "max_pool2d_gather: idx -1 (at position 5 of [1,2,2,2]) is outside the 3x3 plane");
    ck_assert_fails(tg_max_pool2d_gather(NULL, idx), "max_pool2d_gather");
    ck_assert_fails(tg_max_pool2d_gather(idx, idx), "max_pool2d_gather");
    tensor_free(g), tensor_free(x3), tensor_free(idx), tensor_free(fidx), tensor_free(idx3), tensor_free(u);
    tensor_free(g32);
    tape_reset();
}
END_TEST

Suite *grad_ops_suite(void) {
    Suite *s = suite_create("ops_grad");
    TCase *tc = tcase_create("grad_ops");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_max_pool2d_graph_vjp_equals_kernel_every_geometry);
    tcase_add_test(tc, test_relu_graph_vjp_equals_kernel);
    tcase_add_test(tc, test_relu_input_grad_values_select_not_product);
    tcase_add_test(tc, test_max_pool2d_scatter_and_gather_values);
    tcase_add_test(tc, test_grad_ops_central_differences_all_samples);
    tcase_add_test(tc, test_grad_ops_errors);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(grad_ops_suite)
