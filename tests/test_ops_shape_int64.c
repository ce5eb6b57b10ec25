/* test_ops_shape_int64.c - int64 tensors (indices, positions, labels) through
 * the shape ops that move them: narrow, slice, concat, stack, index_select
 * and reshape. Values are checked exactly, beyond 2^53 where a float64 detour
 * would round them, and no node is ever recorded: int64 has no gradient. */
#include "check_main.h"

#define BIG ((int64_t)1 << 60) /* BIG + 1 is not a float64 */

static tensor *i64(int ndim, const int64_t *shape, const int64_t *v) {
    return tensor_from_data(DTYPE_I64, ndim, shape, v);
}

static void assert_i64(const tensor *t, int ndim, const int64_t *shape, const int64_t *expected) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, DTYPE_I64);
    ck_assert(!t->requires_grad);
    ck_assert_int_eq(t->ndim, ndim);
    for (int d = 0; d < ndim; d++) ck_assert_int_eq(t->shape[d], shape[d]);
    const int64_t *p = t->data;
    for (int64_t i = 0; i < t->size; i++)
        ck_assert_msg(p[i] == expected[i], "[%lld] = %lld, expected %lld", (long long)i,
                      (long long)p[i], (long long)expected[i]);
}

/* x [2,4] = BIG + 0..7: narrow(axis 1, start 1, length 2) = BIG + [1,2 | 5,6];
 * slice(axis 1, 0:4:3) = BIG + [0,3 | 4,7]; a negative start, narrow(-1, -1, 1)
 * = BIG + [3 | 7]. */
START_TEST(test_narrow_slice_int64_exact) {
    int64_t v[8];
    for (int i = 0; i < 8; i++) v[i] = BIG + i;
    tensor *x = i64(SHAPE(2, 4), v);
    assert_i64(tensor_narrow(x, 1, 1, 2), SHAPE(2, 2), (int64_t[]){BIG + 1, BIG + 2, BIG + 5, BIG + 6});
    assert_i64(tensor_slice(x, 1, 0, 4, 3), SHAPE(2, 2), (int64_t[]){BIG, BIG + 3, BIG + 4, BIG + 7});
    assert_i64(tensor_narrow(x, -1, -1, 1), SHAPE(2, 1), (int64_t[]){BIG + 3, BIG + 7});
    ck_assert_int_eq(tape_size(), 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* concat([BIG+1, BIG+2], [-3]) = [BIG+1, BIG+2, -3]; stack of two [2] along
 * axis 1 = [[a0, b0], [a1, b1]]. */
START_TEST(test_concat_stack_int64_exact) {
    tensor *a = i64(SHAPE(2), (int64_t[]){BIG + 1, BIG + 2});
    tensor *b = i64(SHAPE(1), (int64_t[]){-3});
    tensor *c = i64(SHAPE(2), (int64_t[]){7, -BIG - 1});
    assert_i64(tensor_concat((tensor *[]){a, b}, 2, 0), SHAPE(3), (int64_t[]){BIG + 1, BIG + 2, -3});
    assert_i64(tensor_stack((tensor *[]){a, c}, 2, 1), SHAPE(2, 2),
               (int64_t[]){BIG + 1, 7, BIG + 2, -BIG - 1});
    tensor *f = tensor_zeros(DTYPE_F64, SHAPE(2));
    ck_assert_fails_with(tensor_stack((tensor *[]){a, f}, 2, 0),
                         "stack: dtype mismatch: int64 vs float64");
    ck_assert_fails_with(tensor_concat((tensor *[]){a, b, f}, 3, 0),
                         "concat: dtype mismatch: int64 vs float64");
    ck_assert_fails_with(tensor_concat((tensor *[]){a, NULL}, 2, 0), "concat: input 1 is NULL");
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
    tensor_free(f);
}
END_TEST

/* rows [2, 0, 2] of x [3,2] = [[BIG, 1], [2, 3], [4, BIG + 5]]:
 * [[4, BIG+5], [BIG, 1], [4, BIG+5]]; reshape to [3,2] back from [6] keeps them. */
START_TEST(test_index_select_reshape_int64_exact) {
    tensor *x = i64(SHAPE(3, 2), (int64_t[]){BIG, 1, 2, 3, 4, BIG + 5});
    tensor *idx = i64(SHAPE(3), (int64_t[]){2, 0, 2});
    tensor *y = tensor_index_select(x, 0, idx);
    assert_i64(y, SHAPE(3, 2), (int64_t[]){4, BIG + 5, BIG, 1, 4, BIG + 5});
    assert_i64(tensor_reshape(y, SHAPE(6)), SHAPE(6), (int64_t[]){4, BIG + 5, BIG, 1, 4, BIG + 5});
    ck_assert_fails_with(tensor_index_select(x, 1, idx),
                         "index_select: index 2 (at position 0) out of range for size 2 of axis 1 of [3,2]");
    tape_reset();
    tensor_free(x);
    tensor_free(idx);
}
END_TEST

/* The position lookup of a sequence model: positions 0..T-1 narrowed from an
 * arange of the longest length, then an embedding. With weight [5,2] = 0..9
 * and T = 3, rows 0, 1, 2: [0,1, 2,3, 4,5]; the gradient reaches rows 0..2 only. */
START_TEST(test_positions_from_int64_arange) {
    tensor *pos = tensor_arange(DTYPE_I64, 0, 5, 1);
    double w[10];
    for (int i = 0; i < 10; i++) w[i] = i;
    tensor *wt = tensor_from_doubles(DTYPE_F64, SHAPE(5, 2), w);
    tensor_set_requires_grad(wt, true);
    tensor *y = tensor_embedding(tensor_narrow(pos, 0, 0, 3), wt);
    ck_assert_tensor(y, ((double[]){0, 1, 2, 3, 4, 5}), 0);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(wt->grad, ((double[]){1, 1, 1, 1, 1, 1, 0, 0, 0, 0}), 0);
    tape_reset();
    tensor_free(pos);
    tensor_free(wt);
}
END_TEST

Suite *ops_shape_int64_suite(void) {
    Suite *s = suite_create("ops_shape_int64");
    TCase *tc = tcase_create("int64");
    tcase_add_test(tc, test_narrow_slice_int64_exact);
    tcase_add_test(tc, test_concat_stack_int64_exact);
    tcase_add_test(tc, test_index_select_reshape_int64_exact);
    tcase_add_test(tc, test_positions_from_int64_arange);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ops_shape_int64_suite)
