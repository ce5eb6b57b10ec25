/* test_ops_shape.c - the shape family (reshape, flatten, permute, concat,
 * stack, narrow, slice, index_select, gather, pad, expand) and the vector
 * products dot and outer, against hand-computed values and gradients, every
 * error path, and a central-difference check of every registry sample case. */
#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"
#include "ops_test.h"

START_TEST(test_shape_samples_match_central_differences) {
    static const char *ops[] = {"reshape", "permute", "flatten", "concat", "stack", "narrow", "slice",
                                "index_select", "gather", "pad", "expand", "dot", "outer", "matmul"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        numeric_check_op(ops[i], 20261125, 1, CHECK_ALL);
    ck_assert_ptr_null(tapegrad_error());
}
END_TEST

/* Upstream gradient 0, 1, 2, ... of y's shape: each element's gradient
 * tells where it came from. */
static tensor *iota_like(const tensor *y) {
    tensor *g = tensor_new(DTYPE_F64, y->ndim, y->shape);
    for (int64_t i = 0; i < g->size; i++) tensor_set(g, i, (double)i);
    return g;
}

static void assert_shape(const tensor *t, int ndim, const int64_t *shape) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, ndim);
    for (int d = 0; d < ndim; d++) ck_assert_int_eq(t->shape[d], shape[d]);
}

/* ------------------------------------------------ reshape, flatten, permute */

/* flatten dims 1..2 of [2,2,3] -> [2,6]: same order; da = g. */
START_TEST(test_flatten_forward_and_grad) {
    tensor *a = leaf(SHAPE(2, 2, 3), (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    tensor *y = tensor_flatten(a, 1, -1);
    assert_shape(y, SHAPE(2, 6));
    ck_assert_tensor(y, ((double[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}), 0);
    tensor *g = iota_like(y);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}), 0);
    assert_shape(tensor_flatten(a, 0, 1), SHAPE(4, 3));
    tensor *s = constant(0, NULL, (double[]){5});
    assert_shape(tensor_flatten(s, 0, -1), SHAPE(1));
    tape_reset();
    tensor_free(a);
    tensor_free(g);
    tensor_free(s);
}
END_TEST

/* transpose of [[1, 2, 3], [4, 5, 6]] is [[1, 4], [2, 5], [3, 6]]; with
 * g = 0..5 over [3,2], a's element (i, j) gets g[j, i]: [[0, 2, 4], [1, 3, 5]]. */
START_TEST(test_transpose_forward_and_grad) {
    tensor *a = leaf(SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    tensor *y = tensor_transpose(a, 0, -1);
    assert_shape(y, SHAPE(3, 2));
    ck_assert_tensor(y, ((double[]){1, 4, 2, 5, 3, 6}), 0);
    tensor *g = iota_like(y);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){0, 2, 4, 1, 3, 5}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(g);
}
END_TEST

/* int64 tensors reshape (indices and labels), and never join the tape. */
START_TEST(test_reshape_int64) {
    tensor *i = tensor_from_doubles(DTYPE_I64, SHAPE(2, 3), (double[]){0, 1, 2, 3, 4, 5});
    tensor *y = tensor_reshape(i, SHAPE(3, -1));
    assert_shape(y, SHAPE(3, 2));
    ck_assert_int_eq(y->dtype, DTYPE_I64);
    ck_assert_tensor(y, ((double[]){0, 1, 2, 3, 4, 5}), 0);
    ck_assert(!y->requires_grad);
    tape_reset();
    tensor_free(i);
}
END_TEST

START_TEST(test_reshape_flatten_permute_errors) {
    tapegrad_error_clear();
    tensor *a = tensor_zeros(DTYPE_F64, SHAPE(2, 3));
    ck_assert_fails_with(tensor_reshape(a, SHAPE(4, 2)),
                         "reshape: cannot view [2,3] (6 elements) as [4,2]");
    ck_assert_fails_with(tensor_reshape(a, SHAPE(4, -1)),
                         "reshape: cannot view [2,3] (6 elements) as [4,-1]");
    ck_assert_fails_with(tensor_reshape(a, SHAPE(-1, -1)), "reshape: bad size -1 in dimension 1");
    ck_assert_fails_with(tensor_reshape(NULL, SHAPE(6)), "reshape: input 0 is NULL");
    ck_assert_fails_with(tensor_flatten(a, 1, 0), "flatten: start_dim 1 comes after end_dim 0");
    ck_assert_fails_with(tensor_flatten(a, 0, 2), "flatten: axis 2 out of range for 2 dimensions");
    ck_assert_fails_with(tensor_flatten(NULL, 0, 1), "flatten: input 0 is NULL");
    ck_assert_fails_with(tensor_permute(a, (int[]){0, 0}),
                         "permute: entry 1 (0) is not a permutation of the 2 dims of [2,3]");
    ck_assert_fails_with(tensor_transpose(a, 0, 2),
                         "transpose: axis 2 out of range for 2 dimensions");
    tensor_free(a);
}
END_TEST

/* --------------------------------------------------------- concat, stack */

/* concat along axis 1 of [[1], [2]] and [[3, 4], [5, 6]] -> [[1, 3, 4],
 * [2, 5, 6]]; g = 0..5 splits into [[0], [3]] and [[1, 2], [4, 5]]. */
START_TEST(test_concat_axis1_forward_and_grad) {
    tensor *a = leaf(SHAPE(2, 1), (double[]){1, 2});
    tensor *b = leaf(SHAPE(2, 2), (double[]){3, 4, 5, 6});
    tensor *y = tensor_concat((tensor *[]){a, b}, 2, -1);
    assert_shape(y, SHAPE(2, 3));
    ck_assert_tensor(y, ((double[]){1, 3, 4, 2, 5, 6}), 0);
    tensor *g = iota_like(y);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){0, 3}), 0);
    ck_assert_tensor(b->grad, ((double[]){1, 2, 4, 5}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(g);
}
END_TEST

/* concat along axis 0 with only the second input requiring grad: the
 * first gets no gradient, the second rows 1..2 of g. */
START_TEST(test_concat_axis0_grad_second_only) {
    tensor *a = constant(SHAPE(1, 2), (double[]){1, 2});
    tensor *b = leaf(SHAPE(2, 2), (double[]){3, 4, 5, 6});
    tensor *y = tensor_concat((tensor *[]){a, b}, 2, 0);
    assert_shape(y, SHAPE(3, 2));
    ck_assert_tensor(y, ((double[]){1, 2, 3, 4, 5, 6}), 0);
    tensor *g = iota_like(y);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_ptr_null(a->grad);
    ck_assert_tensor(b->grad, ((double[]){2, 3, 4, 5}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(g);
}
END_TEST

/* stack [1, 2, 3] and [4, 5, 6]: axis 0 -> [[1, 2, 3], [4, 5, 6]];
 * axis 1 (new last) -> [[1, 4], [2, 5], [3, 6]], where g = 0..5 gives
 * a [0, 2, 4] and b [1, 3, 5]. */
START_TEST(test_stack_axes_forward_and_grad) {
    tensor *a = leaf(SHAPE(3), (double[]){1, 2, 3});
    tensor *b = leaf(SHAPE(3), (double[]){4, 5, 6});
    tensor *y0 = tensor_stack((tensor *[]){a, b}, 2, 0);
    assert_shape(y0, SHAPE(2, 3));
    ck_assert_tensor(y0, ((double[]){1, 2, 3, 4, 5, 6}), 0);
    tensor *y1 = tensor_stack((tensor *[]){a, b}, 2, -1);
    assert_shape(y1, SHAPE(3, 2));
    ck_assert_tensor(y1, ((double[]){1, 4, 2, 5, 3, 6}), 0);
    tensor *g = iota_like(y1);
    ck_assert_int_eq(tensor_backward_with(y1, g), 0);
    ck_assert_tensor(a->grad, ((double[]){0, 2, 4}), 0);
    ck_assert_tensor(b->grad, ((double[]){1, 3, 5}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(g);
}
END_TEST

/* Stacking scalars gives a vector. */
START_TEST(test_stack_scalars) {
    tensor *a = constant(0, NULL, (double[]){7});
    tensor *b = constant(0, NULL, (double[]){-1});
    tensor *y = tensor_stack((tensor *[]){a, b, a}, 3, 0);
    assert_shape(y, SHAPE(3));
    ck_assert_tensor(y, ((double[]){7, -1, 7}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

START_TEST(test_concat_stack_errors) {
    tapegrad_error_clear();
    tensor *a = tensor_zeros(DTYPE_F64, SHAPE(2, 3));
    tensor *b = tensor_zeros(DTYPE_F64, SHAPE(3, 3));
    tensor *c = tensor_zeros(DTYPE_F32, SHAPE(2, 3));
    tensor *v = tensor_zeros(DTYPE_F64, SHAPE(6));
    tensor *s = tensor_zeros(DTYPE_F64, 0, NULL);
    tensor *i = tensor_zeros(DTYPE_I64, SHAPE(2, 3));
    ck_assert_fails_with(tensor_concat((tensor *[]){a, b}, 2, 1),
                         "concat: input 1 has shape [3,3] but input 0 has [2,3]; all dims but axis 1 must match");
    ck_assert_fails_with(tensor_concat((tensor *[]){a, v}, 2, 0),
                         "concat: input 1 has shape [6] but input 0 has [2,3]; all dims but axis 0 must match");
    ck_assert_fails_with(tensor_concat((tensor *[]){a, c}, 2, 0),
                         "concat: dtype mismatch: float64 vs float32");
    ck_assert_fails_with(tensor_concat((tensor *[]){a, i}, 2, 0),
                         "concat: dtype mismatch: float64 vs int64");
    ck_assert_fails_with(tensor_concat((tensor *[]){a, a}, 2, 2),
                         "concat: axis 2 out of range for 2 dimensions");
    ck_assert_fails_with(tensor_concat((tensor *[]){s, s}, 2, 0),
                         "concat: needs at least 1 dimension, got a scalar");
    ck_assert_fails_with(tensor_concat((tensor *[]){a, NULL}, 2, 0), "concat: input 1 is NULL");
    /* a NULL list was reported as a count ("needs at least one tensor (n = 2)") */
    ck_assert_fails_with(tensor_concat(NULL, 2, 0), "concat: the tensor list is NULL (n = 2)");
    ck_assert_fails_with(tensor_stack(NULL, 3, 0), "stack: the tensor list is NULL (n = 3)");
    ck_assert_fails_with(tensor_concat((tensor *[]){a}, 0, 0),
                         "concat: needs at least one tensor (n = 0)");
    ck_assert_fails_with(tensor_stack((tensor *[]){a, b}, 2, 0),
                         "stack: input 1 has shape [3,3] but input 0 has [2,3]; all must match");
    ck_assert_fails_with(tensor_stack((tensor *[]){a, c}, 2, 0),
                         "stack: dtype mismatch: float64 vs float32");
    ck_assert_fails_with(tensor_stack((tensor *[]){a, a}, 2, 3),
                         "stack: axis 3 out of range for 3 dimensions");
    ck_assert_fails_with(tensor_stack((tensor *[]){a, a}, 2, -4),
                         "stack: axis -4 out of range for 3 dimensions");
    ck_assert_fails_with(tensor_stack((tensor *[]){NULL}, 1, 0), "stack: input 0 is NULL");
    ck_assert_fails_with(tensor_stack(NULL, 0, 0), "stack: needs at least one tensor (n = 0)");
    tensor *d8 = tensor_zeros(DTYPE_F64, SHAPE(1, 1, 1, 1, 1, 1, 1, 2));
    ck_assert_fails_with(tensor_stack((tensor *[]){d8, d8}, 2, 0),
                         "stack: inputs already have 8 dims (at most 8)");
    tensor_free(d8);
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
    tensor_free(v);
    tensor_free(s);
    tensor_free(i);
}
END_TEST

/* --------------------------------------------------------- narrow, slice */

/* narrow axis 1 of [[1, 2, 3, 4], [5, 6, 7, 8]] from 1, length 2 ->
 * [[2, 3], [6, 7]]; g = [[1, 2], [3, 4]] lands in columns 1..2. A negative
 * start counts from the end: start -1, length 1 -> [[4], [8]]. */
START_TEST(test_narrow_forward_and_grad) {
    tensor *a = leaf(SHAPE(2, 4), (double[]){1, 2, 3, 4, 5, 6, 7, 8});
    tensor *y = tensor_narrow(a, 1, 1, 2);
    assert_shape(y, SHAPE(2, 2));
    ck_assert_tensor(y, ((double[]){2, 3, 6, 7}), 0);
    tensor *g = constant(SHAPE(2, 2), (double[]){1, 2, 3, 4});
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){0, 1, 2, 0, 0, 3, 4, 0}), 0);
    ck_assert_tensor(tensor_narrow(a, -1, -1, 1), ((double[]){4, 8}), 0);
    ck_assert_int_eq(tensor_narrow(a, 0, 2, 0)->size, 0);
    tape_reset();
    tensor_free(a);
    tensor_free(g);
}
END_TEST

/* slice of [0, 10, 20, 30, 40, 50, 60]: [1:6:2] -> [10, 30, 50], with
 * g = [1, 2, 3] at positions 1, 3, 5; [-3:] -> [40, 50, 60]; [-100:2]
 * clamps to [0:2]; [5:2] is empty. */
START_TEST(test_slice_python_semantics_and_grad) {
    tensor *a = leaf(SHAPE(7), (double[]){0, 10, 20, 30, 40, 50, 60});
    tensor *y = tensor_slice(a, 0, 1, 6, 2);
    assert_shape(y, SHAPE(3));
    ck_assert_tensor(y, ((double[]){10, 30, 50}), 0);
    tensor *g = constant(SHAPE(3), (double[]){1, 2, 3});
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){0, 1, 0, 2, 0, 3, 0}), 0);
    ck_assert_tensor(tensor_slice(a, 0, -3, INT64_MAX, 1), ((double[]){40, 50, 60}), 0);
    ck_assert_tensor(tensor_slice(a, -1, -100, 2, 1), ((double[]){0, 10}), 0);
    ck_assert_tensor(tensor_slice(a, 0, 0, 100, 3), ((double[]){0, 30, 60}), 0);
    ck_assert_int_eq(tensor_slice(a, 0, 5, 2, 1)->size, 0);
    ck_assert_tensor(tensor_slice(a, 0, INT64_MIN, INT64_MAX, INT64_MAX), ((double[]){0}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(g);
}
END_TEST

/* slice along the middle axis of [2,3,2] with step 2: rows 0 and 2. */
START_TEST(test_slice_middle_axis_step2) {
    tensor *a = leaf(SHAPE(2, 3, 2), (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    tensor *y = tensor_slice(a, 1, 0, 3, 2);
    assert_shape(y, SHAPE(2, 2, 2));
    ck_assert_tensor(y, ((double[]){1, 2, 5, 6, 7, 8, 11, 12}), 0);
    tensor *g = iota_like(y);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){0, 1, 0, 0, 2, 3, 4, 5, 0, 0, 6, 7}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(g);
}
END_TEST

START_TEST(test_narrow_slice_errors) {
    tapegrad_error_clear();
    tensor *a = tensor_zeros(DTYPE_F64, SHAPE(2, 4));
    tensor *s = tensor_zeros(DTYPE_F64, 0, NULL);
    tensor *i = tensor_zeros(DTYPE_I64, SHAPE(4));
    ck_assert_fails_with(tensor_narrow(a, 1, 3, 2),
                         "narrow: start 3, length 2 out of range for size 4 (axis 1)");
    ck_assert_fails_with(tensor_narrow(a, 1, -5, 1),
                         "narrow: start -5, length 1 out of range for size 4 (axis 1)");
    ck_assert_fails_with(tensor_narrow(a, 0, 0, -1),
                         "narrow: start 0, length -1 out of range for size 2 (axis 0)");
    ck_assert_fails_with(tensor_narrow(a, 2, 0, 1), "narrow: axis 2 out of range for 2 dimensions");
    ck_assert_fails_with(tensor_narrow(s, 0, 0, 1),
                         "narrow: needs at least 1 dimension, got a scalar");
    ck_assert_fails_with(tensor_narrow(NULL, 0, 0, 1), "narrow: input 0 is NULL");
    ck_assert_fails_with(tensor_slice(a, 0, 0, 2, 0), "slice: step 0 must be positive");
    ck_assert_fails_with(tensor_slice(a, 1, 3, 0, -1), "slice: step -1 must be positive");
    ck_assert_fails_with(tensor_slice(a, -3, 0, 1, 1),
                         "slice: axis -3 out of range for 2 dimensions");
    ck_assert_fails_with(tensor_slice(NULL, 0, 0, 1, 1), "slice: input 0 is NULL");
    tensor_free(a);
    tensor_free(s);
    tensor_free(i);
}
END_TEST

/* ---------------------------------------------------- index_select, gather */

/* index_select rows [2, 0, 2] of [[1, 2], [3, 4], [5, 6]] ->
 * [[5, 6], [1, 2], [5, 6]]; g = 0..5: row 2 gets [0, 1] + [4, 5] (the
 * repeat accumulates), row 0 gets [2, 3], row 1 nothing. */
START_TEST(test_index_select_rows_repeat_accumulates) {
    tensor *a = leaf(SHAPE(3, 2), (double[]){1, 2, 3, 4, 5, 6});
    tensor *idx = tensor_from_doubles(DTYPE_I64, SHAPE(3), (double[]){2, 0, 2});
    tensor *y = tensor_index_select(a, 0, idx);
    assert_shape(y, SHAPE(3, 2));
    ck_assert_tensor(y, ((double[]){5, 6, 1, 2, 5, 6}), 0);
    tensor *g = iota_like(y);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){2, 3, 0, 0, 4, 6}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(idx);
    tensor_free(g);
}
END_TEST

/* index_select columns [1, 1] of [[1, 2, 3], [4, 5, 6]] (axis -1) ->
 * [[2, 2], [5, 5]]; g = [[1, 2], [3, 4]] -> column 1 gets [3, 7]. */
START_TEST(test_index_select_last_axis) {
    tensor *a = leaf(SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    tensor *idx = tensor_from_doubles(DTYPE_I64, SHAPE(2), (double[]){1, 1});
    tensor *y = tensor_index_select(a, -1, idx);
    ck_assert_tensor(y, ((double[]){2, 2, 5, 5}), 0);
    tensor *g = constant(SHAPE(2, 2), (double[]){1, 2, 3, 4});
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){0, 3, 0, 0, 7, 0}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(idx);
    tensor_free(g);
}
END_TEST

/* gather along axis 1 of [[1, 2, 3], [4, 5, 6]] with index [[0, 0], [2, 1]]
 * -> [[1, 1], [6, 5]]; g = [[1, 2], [3, 4]] scatter-adds: (0,0) gets 1 + 2,
 * (1,2) gets 3, (1,1) gets 4. */
START_TEST(test_gather_axis1_scatter_add) {
    tensor *a = leaf(SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    tensor *idx = tensor_from_doubles(DTYPE_I64, SHAPE(2, 2), (double[]){0, 0, 2, 1});
    tensor *y = tensor_gather(a, 1, idx);
    assert_shape(y, SHAPE(2, 2));
    ck_assert_tensor(y, ((double[]){1, 1, 6, 5}), 0);
    tensor *g = constant(SHAPE(2, 2), (double[]){1, 2, 3, 4});
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){3, 0, 0, 0, 4, 3}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(idx);
    tensor_free(g);
}
END_TEST

/* gather along axis 0 with an index smaller than a in dim 1 (index [1,2]
 * of a [3,3]): y[0, j] = a[index[0, j], j] = [a[2,0], a[0,1]] = [7, 2]. */
START_TEST(test_gather_axis0_smaller_index) {
    tensor *a = leaf(SHAPE(3, 3), (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
    tensor *idx = tensor_from_doubles(DTYPE_I64, SHAPE(1, 2), (double[]){2, 0});
    tensor *y = tensor_gather(a, 0, idx);
    assert_shape(y, SHAPE(1, 2));
    ck_assert_tensor(y, ((double[]){7, 2}), 0);
    tensor *g = constant(SHAPE(1, 2), (double[]){-1, 5});
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){0, 5, 0, 0, 0, 0, -1, 0, 0}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(idx);
    tensor_free(g);
}
END_TEST

START_TEST(test_index_select_gather_errors) {
    tapegrad_error_clear();
    tensor *a = tensor_zeros(DTYPE_F64, SHAPE(3, 4));
    tensor *big = tensor_from_doubles(DTYPE_I64, SHAPE(2), (double[]){1, 3});
    tensor *neg = tensor_from_doubles(DTYPE_I64, SHAPE(2), (double[]){0, -1});
    tensor *fidx = tensor_zeros(DTYPE_F64, SHAPE(2));
    tensor *i2 = tensor_zeros(DTYPE_I64, SHAPE(2, 2));
    tensor *i3 = tensor_zeros(DTYPE_I64, SHAPE(4, 1));
    tensor *i2big = tensor_from_doubles(DTYPE_I64, SHAPE(1, 2), (double[]){0, 4});
    ck_assert_fails_with(tensor_index_select(a, 0, big),
                         "index_select: index 3 (at position 1) out of range for size 3 of axis 0 of [3,4]");
    ck_assert_fails_with(tensor_index_select(a, 1, neg),
                         "index_select: index -1 (at position 1) out of range for size 4 of axis 1 of [3,4]");
    ck_assert_fails_with(tensor_index_select(a, 0, fidx),
                         "index_select: index must be int64, got float64");
    ck_assert_fails_with(tensor_index_select(a, 0, i2),
                         "index_select: index must have 1 dims, got [2,2]");
    ck_assert_fails_with(tensor_index_select(a, 2, big),
                         "index_select: axis 2 out of range for 2 dimensions");
    ck_assert_fails_with(tensor_index_select(a, 0, NULL), "index_select: input 1 is NULL");
    ck_assert_fails_with(tensor_gather(a, 1, i2big),
                         "gather: index 4 (at position 1) out of range for size 4 of axis 1 of [3,4]");
    ck_assert_fails_with(tensor_gather(a, 1, big), "gather: index must have 2 dims, got [2]");
    ck_assert_fails_with(tensor_gather(a, 1, i3),
                         "gather: index [4,1] is larger than a [3,4] in dimension 0");
    ck_assert_fails_with(tensor_gather(a, 0, fidx), "gather: index must be int64, got float64");
    ck_assert_fails_with(tensor_gather(a, -3, i2), "gather: axis -3 out of range for 2 dimensions");
    ck_assert_fails_with(tensor_gather(NULL, 0, i2), "gather: input 0 is NULL");
    tensor_free(a);
    tensor_free(big);
    tensor_free(neg);
    tensor_free(fidx);
    tensor_free(i2);
    tensor_free(i3);
    tensor_free(i2big);
}
END_TEST

/* ----------------------------------------------------------- pad, expand */

/* pad [[1, 2], [3, 4]] with one row before and one column after, value 9:
 * [[9, 9, 9], [1, 2, 9], [3, 4, 9]]; g = 0..8: a gets g at (1,0), (1,1),
 * (2,0), (2,1) = [3, 4, 6, 7]. */
START_TEST(test_pad_forward_and_grad) {
    tensor *a = leaf(SHAPE(2, 2), (double[]){1, 2, 3, 4});
    tensor *y = tensor_pad(a, (int64_t[]){1, 0, 0, 1}, 9);
    assert_shape(y, SHAPE(3, 3));
    ck_assert_tensor(y, ((double[]){9, 9, 9, 1, 2, 9, 3, 4, 9}), 0);
    tensor *g = iota_like(y);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){3, 4, 6, 7}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(g);
}
END_TEST

/* expand [[1], [2], [3]] ([3,1]) to [2,3,2]; g = 0..11 at (b, i, j) =
 * 6b + 2i + j, so da[i] = sum_{b,j} = (0 + 6) * 2 + 2i * 4 + (0 + 1) * 2
 * = 14 + 8i = [14, 22, 30]. */
START_TEST(test_expand_forward_and_grad_sums_back) {
    tensor *a = leaf(SHAPE(3, 1), (double[]){1, 2, 3});
    tensor *y = tensor_expand(a, SHAPE(2, 3, 2));
    assert_shape(y, SHAPE(2, 3, 2));
    ck_assert_tensor(y, ((double[]){1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}), 0);
    tensor *g = iota_like(y);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){14, 22, 30}), 0);
    /* -1 keeps the size of an existing dim */
    assert_shape(tensor_expand(a, SHAPE(-1, 4)), SHAPE(3, 4));
    tape_reset();
    tensor_free(a);
    tensor_free(g);
}
END_TEST

START_TEST(test_pad_expand_errors) {
    tapegrad_error_clear();
    tensor *a = tensor_zeros(DTYPE_F64, SHAPE(3, 1));
    tensor *i = tensor_zeros(DTYPE_I64, SHAPE(3, 1));
    ck_assert_fails_with(tensor_pad(a, (int64_t[]){0, 1, -1, 0}, 0),
                         "pad: padding (-1, 0) for dimension 1 must be in [0, 2^40]");
    ck_assert_fails_with(tensor_pad(a, (int64_t[]){0, INT64_MAX, 0, 0}, 0),
                         "pad: padding (0, 9223372036854775807) for dimension 0 must be in [0, 2^40]");
    ck_assert_fails_with(tensor_pad(a, NULL, 0), "pad: pads is NULL");
    ck_assert_fails_with(tensor_pad(NULL, (int64_t[]){0, 0, 0, 0}, 0), "pad: input 0 is NULL");
    ck_assert_fails_with(tensor_pad(i, (int64_t[]){0, 0, 0, 0}, 0),
                         "pad: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_expand(a, SHAPE(2, 4)),
                         "expand: cannot expand [3,1] to [2,4] (dimension 0: 3 to 2)");
    ck_assert_fails_with(tensor_expand(a, SHAPE(3)), "expand: cannot expand [3,1] to 1 dims");
    ck_assert_fails_with(tensor_expand(a, SHAPE(-1, 3, 2)),
                         "expand: cannot expand [3,1] to [-1,3,2] (dimension 0: 1 to -1)");
    ck_assert_fails_with(tensor_expand(a, 2, NULL), "expand: cannot expand [3,1] to 2 dims");
    ck_assert_fails_with(tensor_expand(NULL, SHAPE(3, 2)), "expand: input 0 is NULL");
    tensor_free(a);
    tensor_free(i);
}
END_TEST

/* ------------------------------------------------------------ dot, outer */

/* [1, 2, 3] . [4, -5, 6] = 4 - 10 + 18 = 12; g = 2: da = 2 b, db = 2 a. */
START_TEST(test_dot_forward_and_grad) {
    tensor *a = leaf(SHAPE(3), (double[]){1, 2, 3});
    tensor *b = leaf(SHAPE(3), (double[]){4, -5, 6});
    tensor *y = tensor_dot(a, b);
    ck_assert_int_eq(y->ndim, 0);
    ck_assert_close(tensor_item(y), 12, 0);
    tensor *g = constant(0, NULL, (double[]){2});
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){8, -10, 12}), 0);
    ck_assert_tensor(b->grad, ((double[]){2, 4, 6}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(g);
}
END_TEST

/* [1, 2] x [3, 4, 5] = [[3, 4, 5], [6, 8, 10]]; g = [[1, 0, 2], [0, 1, -1]]:
 * da = g b = [3 + 10, 4 - 5] = [13, -1], db = a^T g = [1, 2, 2 - 2] = [1, 2, 0]. */
START_TEST(test_outer_forward_and_grad) {
    tensor *a = leaf(SHAPE(2), (double[]){1, 2});
    tensor *b = leaf(SHAPE(3), (double[]){3, 4, 5});
    tensor *y = tensor_outer(a, b);
    assert_shape(y, SHAPE(2, 3));
    ck_assert_tensor(y, ((double[]){3, 4, 5, 6, 8, 10}), 0);
    tensor *g = constant(SHAPE(2, 3), (double[]){1, 0, 2, 0, 1, -1});
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){13, -1}), 0);
    ck_assert_tensor(b->grad, ((double[]){1, 2, 0}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(g);
}
END_TEST

START_TEST(test_dot_outer_errors) {
    tapegrad_error_clear();
    tensor *a = tensor_zeros(DTYPE_F64, SHAPE(3));
    tensor *b = tensor_zeros(DTYPE_F64, SHAPE(4));
    tensor *m = tensor_zeros(DTYPE_F64, SHAPE(3, 1));
    tensor *f = tensor_zeros(DTYPE_F32, SHAPE(3));
    tensor *i = tensor_zeros(DTYPE_I64, SHAPE(3));
    ck_assert_fails_with(tensor_dot(a, b), "dot: needs two 1-D tensors of one length: [3] and [4]");
    ck_assert_fails_with(tensor_dot(m, a),
                         "dot: needs two 1-D tensors of one length: [3,1] and [3]");
    ck_assert_fails_with(tensor_dot(a, f), "dot: dtype mismatch: float64 vs float32");
    ck_assert_fails_with(tensor_dot(i, a),
                         "dot: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_dot(a, NULL), "dot: input 1 is NULL");
    ck_assert_fails_with(tensor_outer(a, m), "outer: needs two 1-D tensors: [3] and [3,1]");
    ck_assert_fails_with(tensor_outer(f, b), "outer: dtype mismatch: float32 vs float64");
    ck_assert_fails_with(tensor_outer(NULL, b), "outer: input 0 is NULL");
    tensor_free(a);
    tensor_free(b);
    tensor_free(m);
    tensor_free(f);
    tensor_free(i);
}
END_TEST

/* Adversarial sizes whose products overflow int64 (undefined behaviour,
 * caught by UBSan in check-asan): each is refused with a message, none is
 * computed. Before: reshape multiplied the target's sizes unchecked, a
 * tensor [0,2^40,2^40] was accepted (flattening it overflowed), conv2d's
 * dilated kernel extent and arange's count overflowed. */
START_TEST(test_adversarial_sizes_refused_without_overflow) {
    tapegrad_error_clear();
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(0, 4));
    const int64_t big = INT64_MAX / 2;
    ck_assert_fails_with(tensor_reshape(x, 3, (int64_t[]){-1, big, 4}),
                         "reshape: cannot view [0,4] (0 elements) as [-1,4611686018427387903,4]");
    ck_assert_fails_with(tensor_reshape(x, 3, (int64_t[]){big, 4, 0}),
                         "reshape: cannot view [0,4] (0 elements) as [4611686018427387903,4,0]");
    /* 0 elements: the -1 could be anything; it was taken as 0, so an empty
     * batch [0,16,5,5] reshaped to [B,-1] became [0,0] (PyTorch refuses) */
    ck_assert_fails_with(tensor_reshape(x, SHAPE(0, -1)),
                         "reshape: the -1 in [0,-1] is ambiguous: the other sizes multiply to 0, "
                         "so any size fits (give it, or use tensor_flatten)");
    /* every product of a valid shape's sizes fits, also around a zero */
    ck_assert_fails_with(tensor_zeros(DTYPE_F32, SHAPE(0, (int64_t)1 << 40, (int64_t)1 << 40)),
                         "tensor_new: shape too large");
    ck_assert_fails_with(tensor_zeros(DTYPE_F32, SHAPE(INT64_MAX, 2, 0)), "tensor_new: shape too large");
    tensor *e = tensor_zeros(DTYPE_F32, SHAPE(0, (int64_t)1 << 20, (int64_t)1 << 20));
    tensor *f = tensor_flatten(e, 1, 2);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->shape[1], (int64_t)1 << 40);
    /* a kernel [1,1,2^55,0] dilated by 2^31 - 1 */
    tensor *img = tensor_zeros(DTYPE_F32, SHAPE(1, 1, 4, 4));
    tensor *w = tensor_zeros(DTYPE_F32, SHAPE(1, 1, (int64_t)1 << 55, 0));
    conv2d_params p = CONV2D_DEFAULT;
    p.dilation[0] = INT32_MAX;
    ck_assert_fails(tensor_conv2d(img, w, NULL, p), "larger than padded input 4x4");
    ck_assert_fails_with(tensor_arange(DTYPE_F32, 0, 1e30, 1),
                         "tensor_arange: [0, 1e+30) in steps of 1 has too many elements");
    tape_reset();
    tensor_free(x);
    tensor_free(e);
    tensor_free(img);
    tensor_free(w);
}
END_TEST

/* flatten of an empty batch keeps the other sizes, as PyTorch does:
 * [0,16,5,5] -> [0,400]. */
START_TEST(test_flatten_empty_batch_keeps_sizes) {
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(0, 16, 5, 5));
    tensor *y = tensor_flatten(x, 1, -1);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->ndim, 2);
    ck_assert_int_eq(y->shape[0], 0);
    ck_assert_int_eq(y->shape[1], 400);
    tape_reset();
    tensor_free(x);
}
END_TEST

Suite *ops_shape_suite(void) {
    Suite *s = suite_create("ops_shape");
    TCase *tc = tcase_create("shape");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_shape_samples_match_central_differences);
    tcase_add_test(tc, test_flatten_forward_and_grad);
    tcase_add_test(tc, test_transpose_forward_and_grad);
    tcase_add_test(tc, test_reshape_int64);
    tcase_add_test(tc, test_reshape_flatten_permute_errors);
    tcase_add_test(tc, test_concat_axis1_forward_and_grad);
    tcase_add_test(tc, test_concat_axis0_grad_second_only);
    tcase_add_test(tc, test_stack_axes_forward_and_grad);
    tcase_add_test(tc, test_stack_scalars);
    tcase_add_test(tc, test_concat_stack_errors);
    tcase_add_test(tc, test_narrow_forward_and_grad);
    tcase_add_test(tc, test_slice_python_semantics_and_grad);
    tcase_add_test(tc, test_slice_middle_axis_step2);
    tcase_add_test(tc, test_narrow_slice_errors);
    tcase_add_test(tc, test_index_select_rows_repeat_accumulates);
    tcase_add_test(tc, test_index_select_last_axis);
    tcase_add_test(tc, test_gather_axis1_scatter_add);
    tcase_add_test(tc, test_gather_axis0_smaller_index);
    tcase_add_test(tc, test_index_select_gather_errors);
    tcase_add_test(tc, test_pad_forward_and_grad);
    tcase_add_test(tc, test_expand_forward_and_grad_sums_back);
    tcase_add_test(tc, test_pad_expand_errors);
    tcase_add_test(tc, test_dot_forward_and_grad);
    tcase_add_test(tc, test_outer_forward_and_grad);
    tcase_add_test(tc, test_dot_outer_errors);
    tcase_add_test(tc, test_adversarial_sizes_refused_without_overflow);
    tcase_add_test(tc, test_flatten_empty_batch_keeps_sizes);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ops_shape_suite)
