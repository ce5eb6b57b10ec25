/* test_ops_sequence.c - the sequence family (sin, cos, tril, triu, cumsum,
 * one_hot, sort, topk, multinomial): hand-computed values and gradients, the error paths, and a
 * central-difference check of every registry sample case. */
#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"
#include "ops_test.h"

OP_FAMILY(sequence)

static void assert_shape(const tensor *t, int ndim, const int64_t *shape) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, ndim);
    for (int d = 0; d < ndim; d++) ck_assert_int_eq(t->shape[d], shape[d]);
}

static const double one_to_12[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

/* ----------------------------------------------------------- sin, cos */

/* sin at [0, pi/6, -pi/2] = [0, 1/2, -1]; dx = g cos x, g = [1, 2, 3]:
 * [1, 2 (sqrt 3 / 2), 3 * 0] = [1, sqrt 3, 0] */
START_TEST(test_sin_forward_and_grad) {
    check_unary(tensor_sin, 3, (double[]){0, M_PI / 6, -M_PI / 2}, (double[]){1, 2, 3},
                (double[]){0, 0.5, -1}, (double[]){1, sqrt(3.0), 0});
}
END_TEST

/* cos at [0, pi/3, pi] = [1, 1/2, -1]; dx = -g sin x, g = [1, 2, 3]:
 * [0, -2 (sqrt 3 / 2), -3 * 0] = [0, -sqrt 3, 0] */
START_TEST(test_cos_forward_and_grad) {
    check_unary(tensor_cos, 3, (double[]){0, M_PI / 3, M_PI}, (double[]){1, 2, 3},
                (double[]){1, 0.5, -1}, (double[]){0, -sqrt(3.0), 0});
}
END_TEST

/* ---------------------------------------------------------- tril, triu */

/* x [3,4] = 1..12. tril keeps c - r <= k:
 *   k = 0:  [1,0,0,0 | 5,6,0,0 | 9,10,11,0]
 *   k = 1:  [1,2,0,0 | 5,6,7,0 | 9,10,11,12]
 *   k = -1: [0,0,0,0 | 5,0,0,0 | 9,10,0,0]
 * triu keeps c - r >= k; k = 0: [1,2,3,4 | 0,6,7,8 | 0,0,11,12].
 * The gradient is the same triangle of g (g = 1..12 again). */
START_TEST(test_tril_triu_forward_and_grad) {
    tensor *x = leaf(SHAPE(3, 4), one_to_12);
    ck_assert_tensor(tensor_tril(x, 0), ((double[]){1, 0, 0, 0, 5, 6, 0, 0, 9, 10, 11, 0}), 0);
    ck_assert_tensor(tensor_tril(x, 1), ((double[]){1, 2, 0, 0, 5, 6, 7, 0, 9, 10, 11, 12}), 0);
    ck_assert_tensor(tensor_tril(x, -1), ((double[]){0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0}), 0);
    tensor *u = tensor_triu(x, 0);
    ck_assert_tensor(u, ((double[]){1, 2, 3, 4, 0, 6, 7, 8, 0, 0, 11, 12}), 0);
    backward_g(u, one_to_12);
    ck_assert_tensor(x->grad, ((double[]){1, 2, 3, 4, 0, 6, 7, 8, 0, 0, 11, 12}), 0);
    tape_reset();
    tensor_zero_grad(x);
    backward_g(tensor_tril(x, -1), one_to_12);
    ck_assert_tensor(x->grad, ((double[]){0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0}), 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* Batched [2,2,2] = 1..8, triu with k = 1 keeps only (r, c) = (0, 1) of each
 * matrix: [0,2,0,0, 0,6,0,0]. */
START_TEST(test_triu_batched) {
    tensor *x = leaf(SHAPE(2, 2, 2), one_to_12);
    tensor *y = tensor_triu(x, 1);
    assert_shape(y, SHAPE(2, 2, 2));
    ck_assert_tensor(y, ((double[]){0, 2, 0, 0, 0, 6, 0, 0}), 0);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(x->grad, ((double[]){0, 1, 0, 0, 0, 1, 0, 0}), 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* A causal mask from tril: eq(tril(ones [3,3]), 0) marks the future,
 * [0,1,1 | 0,0,1 | 0,0,0]. */
START_TEST(test_causal_mask_from_tril) {
    tensor *ones = tensor_ones(DTYPE_F32, SHAPE(3, 3));
    tensor *zero = tensor_zeros(DTYPE_F32, 0, (int64_t[]){0});
    tensor *m = tensor_eq(tensor_tril(ones, 0), zero);
    ck_assert_int_eq(m->dtype, DTYPE_I64);
    ck_assert_tensor(m, ((double[]){0, 1, 1, 0, 0, 1, 0, 0, 0}), 0);
    tape_reset();
    tensor_free(ones);
    tensor_free(zero);
}
END_TEST

/* -------------------------------------------------------------- cumsum */

/* x [2,3] = [1,2,3 | 4,5,6].
 * axis 1: y = [1,3,6 | 4,9,15]; g = [1,2,3 | 4,5,6]: dx = reverse sums [6,5,3 | 15,11,6]
 * axis 0: y = [1,2,3 | 5,7,9];  dx = [g0 + g1 | g1] = [5,7,9 | 4,5,6] */
START_TEST(test_cumsum_forward_and_grad_both_axes) {
    tensor *x = leaf(SHAPE(2, 3), one_to_12);
    tensor *y = tensor_cumsum(x, -1);
    ck_assert_tensor(y, ((double[]){1, 3, 6, 4, 9, 15}), 0);
    backward_g(y, one_to_12);
    ck_assert_tensor(x->grad, ((double[]){6, 5, 3, 15, 11, 6}), 0);
    tape_reset();
    tensor_zero_grad(x);
    y = tensor_cumsum(x, 0);
    ck_assert_tensor(y, ((double[]){1, 2, 3, 5, 7, 9}), 0);
    backward_g(y, one_to_12);
    ck_assert_tensor(x->grad, ((double[]){5, 7, 9, 4, 5, 6}), 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* The middle axis of [2,2,2] = 1..8 (inner 2): y = [1,2,4,6 | 5,6,12,14]. */
START_TEST(test_cumsum_middle_axis_float32) {
    tensor *x = tensor_from_doubles(DTYPE_F32, SHAPE(2, 2, 2), one_to_12);
    tensor *y = tensor_cumsum(x, 1);
    ck_assert_int_eq(y->dtype, DTYPE_F32);
    ck_assert_tensor(y, ((double[]){1, 2, 4, 6, 5, 6, 12, 14}), 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* ------------------------------------------------------------- one_hot */

/* index [3] = [2,0,2], n = 3: [0,0,1 | 1,0,0 | 0,0,1]; index [2,2] = [0,1,1,1],
 * n = 2, float32: shape [2,2,2], [1,0, 0,1, 0,1, 0,1]. */
START_TEST(test_one_hot_values_and_shapes) {
    tensor *i1 = tensor_from_data(DTYPE_I64, SHAPE(3), (int64_t[]){2, 0, 2});
    tensor *y = tensor_one_hot(i1, 3, DTYPE_F64);
    assert_shape(y, SHAPE(3, 3));
    ck_assert_int_eq(y->dtype, DTYPE_F64);
    ck_assert(!y->requires_grad);
    ck_assert_tensor(y, ((double[]){0, 0, 1, 1, 0, 0, 0, 0, 1}), 0);
    tensor *i2 = tensor_from_data(DTYPE_I64, SHAPE(2, 2), (int64_t[]){0, 1, 1, 1});
    y = tensor_one_hot(i2, 2, DTYPE_F32);
    assert_shape(y, SHAPE(2, 2, 2));
    ck_assert_int_eq(y->dtype, DTYPE_F32);
    ck_assert_tensor(y, ((double[]){1, 0, 0, 1, 0, 1, 0, 1}), 0);
    tape_reset();
    tensor_free(i1);
    tensor_free(i2);
}
END_TEST

/* one_hot(index) @ w looks rows up: index [0,2,2], w [3,2] = 1..6 gives
 * [1,2 | 5,6 | 5,6]; with g = 1 everywhere, dw = [1,1 | 0,0 | 2,2] (row 2
 * used twice). */
START_TEST(test_one_hot_matmul_is_a_lookup) {
    tensor *idx = tensor_from_data(DTYPE_I64, SHAPE(3), (int64_t[]){0, 2, 2});
    tensor *w = leaf(SHAPE(3, 2), one_to_12);
    tensor *y = tensor_matmul(tensor_one_hot(idx, 3, DTYPE_F64), w);
    ck_assert_tensor(y, ((double[]){1, 2, 5, 6, 5, 6}), 0);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(w->grad, ((double[]){1, 1, 0, 0, 2, 2}), 0);
    tape_reset();
    tensor_free(idx);
    tensor_free(w);
}
END_TEST

/* The int64 arange the sequence ops start from (positions 0..T-1). */
START_TEST(test_arange_int64_exact) {
    tensor *t = tensor_arange(DTYPE_I64, 0, 5, 1);
    assert_shape(t, SHAPE(5));
    ck_assert_int_eq(t->dtype, DTYPE_I64);
    const int64_t *p = t->data;
    for (int64_t i = 0; i < 5; i++) ck_assert_int_eq(p[i], i);
    tensor_free(t);
    t = tensor_arange(DTYPE_I64, 10, 0, -3); /* 10, 7, 4, 1 */
    assert_shape(t, SHAPE(4));
    p = t->data;
    ck_assert(p[0] == 10 && p[1] == 7 && p[2] == 4 && p[3] == 1);
    tensor_free(t);
}
END_TEST

/* ----------------------------------------------------------- sort, topk */

static void assert_index(const tensor *t, const int64_t *expected) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, DTYPE_I64);
    const int64_t *p = t->data;
    for (int64_t i = 0; i < t->size; i++)
        ck_assert_msg(p[i] == expected[i], "index [%lld] = %lld, expected %lld", (long long)i,
                      (long long)p[i], (long long)expected[i]);
}

/* x = [3, 1, 2, 5]: ascending [1,2,3,5] from positions [1,2,0,3]; descending
 * [5,3,2,1] from [3,0,2,1]. The gradient goes back to each value's origin:
 * ascending with g = [10,20,30,40] gives dx[1] = 10, dx[2] = 20, dx[0] = 30,
 * dx[3] = 40, i.e. [30,10,20,40]. */
START_TEST(test_sort_values_indices_and_grad) {
    tensor *x = leaf(SHAPE(4), (double[]){3, 1, 2, 5});
    tensor *idx = NULL;
    tensor *y = tensor_sort(x, 0, false, &idx);
    ck_assert_tensor(y, ((double[]){1, 2, 3, 5}), 0);
    assert_index(idx, (int64_t[]){1, 2, 0, 3});
    ck_assert(!idx->requires_grad);
    backward_g(y, (double[]){10, 20, 30, 40});
    ck_assert_tensor(x->grad, ((double[]){30, 10, 20, 40}), 0);
    tape_reset();
    y = tensor_sort(x, -1, true, &idx);
    ck_assert_tensor(y, ((double[]){5, 3, 2, 1}), 0);
    assert_index(idx, (int64_t[]){3, 0, 2, 1});
    tape_reset();
    tensor_free(x);
}
END_TEST

/* Ties keep their order: [2, 1, 2, 1] ascending is [1,1,2,2] from [1,3,0,2],
 * descending [2,2,1,1] from [0,2,1,3]. NaN is the largest: [1, NaN, 0]
 * ascending is [0, 1, NaN] from [2,0,1], descending [NaN, 1, 0] from [1,0,2]. */
START_TEST(test_sort_stable_ties_and_nan_largest) {
    tensor *t = constant(SHAPE(4), (double[]){2, 1, 2, 1});
    tensor *idx;
    ck_assert_tensor(tensor_sort(t, 0, false, &idx), ((double[]){1, 1, 2, 2}), 0);
    assert_index(idx, (int64_t[]){1, 3, 0, 2});
    ck_assert_tensor(tensor_sort(t, 0, true, &idx), ((double[]){2, 2, 1, 1}), 0);
    assert_index(idx, (int64_t[]){0, 2, 1, 3});
    tensor *n = constant(SHAPE(3), (double[]){1, NAN, 0});
    tensor *y = tensor_sort(n, 0, false, &idx);
    ck_assert(tensor_get(y, 0) == 0 && tensor_get(y, 1) == 1 && isnan(tensor_get(y, 2)));
    assert_index(idx, (int64_t[]){2, 0, 1});
    y = tensor_sort(n, 0, true, &idx);
    ck_assert(isnan(tensor_get(y, 0)) && tensor_get(y, 1) == 1 && tensor_get(y, 2) == 0);
    assert_index(idx, (int64_t[]){1, 0, 2});
    tape_reset();
    tensor_free(t);
    tensor_free(n);
}
END_TEST

/* Along axis 0 of [3,2] = [[3,0],[1,5],[2,4]]: column 0 [3,1,2] sorts to
 * [1,2,3] from [1,2,0], column 1 [0,5,4] to [0,4,5] from [0,2,1]. */
START_TEST(test_sort_axis0_columns_float32) {
    tensor *x = tensor_from_doubles(DTYPE_F32, SHAPE(3, 2), (double[]){3, 0, 1, 5, 2, 4});
    tensor *idx;
    tensor *y = tensor_sort(x, 0, false, &idx);
    ck_assert_int_eq(y->dtype, DTYPE_F32);
    ck_assert_tensor(y, ((double[]){1, 0, 2, 4, 3, 5}), 0);
    assert_index(idx, (int64_t[]){1, 0, 2, 2, 0, 1});
    tape_reset();
    tensor_free(x);
}
END_TEST

/* 1000 seeded values with repeats (a sixth of 0..99, so ties): the output is
 * nondecreasing, the indices a permutation, y[j] = x[idx[j]], and equal
 * values keep increasing positions. */
START_TEST(test_sort_long_row_is_a_stable_permutation) {
    rng g;
    rng_seed(&g, 42, 0);
    tensor *x = tensor_new(DTYPE_F64, SHAPE(1000));
    for (int64_t i = 0; i < 1000; i++) tensor_set(x, i, (double)rng_below(&g, 100) / 6.0);
    tensor *idx;
    tensor *y = tensor_sort(x, 0, false, &idx);
    const int64_t *p = idx->data;
    char seen[1000] = {0};
    for (int64_t j = 0; j < 1000; j++) {
        ck_assert(p[j] >= 0 && p[j] < 1000 && !seen[p[j]]);
        seen[p[j]] = 1;
        ck_assert(tensor_get(y, j) == tensor_get(x, p[j]));
        if (j > 0) {
            ck_assert(tensor_get(y, j - 1) <= tensor_get(y, j));
            if (tensor_get(y, j - 1) == tensor_get(y, j)) ck_assert(p[j - 1] < p[j]);
        }
    }
    tape_reset();
    tensor_free(x);
}
END_TEST

/* topk of [4,1,3,2,5]: k = 2 largest is [5,4] from [4,0] (g = [1,2] gives
 * dx = [2,0,0,0,1], 0 for the values not chosen); k = 3 smallest is [1,2,3]
 * from [1,3,2]. Rows of [2,3] = [[1,3,2],[6,5,4]], k = 1 largest: [[3],[6]]
 * from [[1],[0]]; k = 0 gives an empty [2,0]. */
START_TEST(test_topk_values_indices_and_grad) {
    tensor *x = leaf(SHAPE(5), (double[]){4, 1, 3, 2, 5});
    tensor *idx;
    tensor *y = tensor_topk(x, 2, 0, true, &idx);
    ck_assert_tensor(y, ((double[]){5, 4}), 0);
    assert_index(idx, (int64_t[]){4, 0});
    backward_g(y, (double[]){1, 2});
    ck_assert_tensor(x->grad, ((double[]){2, 0, 0, 0, 1}), 0);
    tape_reset();
    y = tensor_topk(x, 3, 0, false, &idx);
    ck_assert_tensor(y, ((double[]){1, 2, 3}), 0);
    assert_index(idx, (int64_t[]){1, 3, 2});
    tensor *m = constant(SHAPE(2, 3), (double[]){1, 3, 2, 6, 5, 4});
    y = tensor_topk(m, 1, -1, true, &idx);
    assert_shape(y, SHAPE(2, 1));
    ck_assert_tensor(y, ((double[]){3, 6}), 0);
    assert_index(idx, (int64_t[]){1, 0});
    y = tensor_topk(m, 0, 1, true, &idx);
    assert_shape(y, SHAPE(2, 0));
    assert_shape(idx, SHAPE(2, 0));
    tape_reset();
    tensor_free(x);
    tensor_free(m);
}
END_TEST

START_TEST(test_sort_topk_errors) {
    tapegrad_error_clear();
    tensor *v = tensor_ones(DTYPE_F64, SHAPE(3));
    tensor *s = tensor_ones(DTYPE_F64, 0, (int64_t[]){0});
    tensor *i64 = tensor_zeros(DTYPE_I64, SHAPE(3));
    tensor *idx = v; /* must be set to NULL on error */
    ck_assert_fails_with(tensor_sort(s, 0, false, &idx), "sort: needs at least 1 dimension, got a scalar");
    ck_assert_ptr_null(idx);
    ck_assert_fails_with(tensor_sort(v, 1, false, NULL), "sort: axis 1 out of range for 1 dimensions");
    ck_assert_fails_with(tensor_sort(i64, 0, false, NULL),
                         "sort: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_sort(NULL, 0, false, NULL), "sort: input 0 is NULL");
    ck_assert_fails_with(tensor_topk(v, 4, 0, true, NULL),
                         "topk: k = 4 out of range for size 3 of axis 0 of [3]");
    ck_assert_fails_with(tensor_topk(v, -1, -1, true, NULL),
                         "topk: k = -1 out of range for size 3 of axis -1 of [3]");
    ck_assert_fails_with(tensor_topk(v, 1, -2, true, NULL), "topk: axis -2 out of range for 1 dimensions");
    ck_assert_fails_with(tensor_topk(s, 1, 0, true, NULL), "topk: needs at least 1 dimension, got a scalar");
    tensor_free(v);
    tensor_free(s);
    tensor_free(i64);
}
END_TEST

/* --------------------------------------------------------- multinomial */

/* Counts of each category in a row of draws. */
static void count_draws(const tensor *y, int64_t from, int64_t n, int64_t *counts, int64_t C) {
    memset(counts, 0, (size_t)C * sizeof *counts);
    const int64_t *p = y->data;
    for (int64_t i = from; i < from + n; i++) {
        ck_assert(p[i] >= 0 && p[i] < C);
        counts[p[i]]++;
    }
}

/* N = 200000 draws with replacement from weights [1,2,3,4] (p = w / 10):
 * count_c ~ Binomial(N, p_c), so its frequency has standard deviation
 * sqrt(p_c (1 - p_c) / N) (at most 0.0011 here), and each frequency must lie
 * within 5 of them of p_c (a correct sampler misses that with probability
 * under 1e-6 per category). A draw that ignored the last category, or
 * normalised wrongly, misses by 0.04 or more. */
START_TEST(test_multinomial_frequencies_with_replacement) {
    const int64_t N = 200000;
    tensor *w = constant(SHAPE(4), (double[]){1, 2, 3, 4});
    rng g;
    rng_seed(&g, 7, 0);
    tensor *y = tensor_multinomial(w, N, true, &g);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->dtype, DTYPE_I64);
    ck_assert_int_eq(y->ndim, 1);
    ck_assert_int_eq(y->shape[0], N);
    int64_t counts[4];
    count_draws(y, 0, N, counts, 4);
    for (int c = 0; c < 4; c++) {
        double p = (c + 1) / 10.0, f = (double)counts[c] / (double)N;
        ck_assert_msg(fabs(f - p) <= 5 * sqrt(p * (1 - p) / (double)N),
                      "category %d: frequency %.5f, probability %.2f", c, f, p);
    }
    tape_reset();
    tensor_free(w);
}
END_TEST

/* Rows draw from their own weights; a zero weight is never drawn:
 * [[0, 1, 0], [2, 0, 0]] gives 1 and 0 every time (float32 too). The same
 * seed gives the same draws, another seed others. */
START_TEST(test_multinomial_rows_zero_weights_and_seeds) {
    tensor *w = tensor_from_doubles(DTYPE_F32, SHAPE(2, 3), (double[]){0, 1, 0, 2, 0, 0});
    rng g;
    rng_seed(&g, 1, 0);
    tensor *y = tensor_multinomial(w, 50, true, &g);
    ck_assert_int_eq(y->ndim, 2);
    ck_assert_int_eq(y->shape[0], 2);
    ck_assert_int_eq(y->shape[1], 50);
    int64_t counts[3];
    count_draws(y, 0, 50, counts, 3);
    ck_assert_int_eq(counts[1], 50);
    count_draws(y, 50, 50, counts, 3);
    ck_assert_int_eq(counts[0], 50);
    tensor *u = constant(SHAPE(6), (double[]){1, 1, 1, 1, 1, 1});
    rng a, b, c;
    rng_seed(&a, 5, 0);
    rng_seed(&b, 5, 0);
    rng_seed(&c, 6, 0);
    tensor *ya = tensor_multinomial(u, 40, true, &a), *yb = tensor_multinomial(u, 40, true, &b),
           *yc = tensor_multinomial(u, 40, true, &c);
    ck_assert(memcmp(ya->data, yb->data, 40 * sizeof(int64_t)) == 0);
    ck_assert(memcmp(ya->data, yc->data, 40 * sizeof(int64_t)) != 0);
    tape_reset();
    tensor_free(w);
    tensor_free(u);
}
END_TEST

/* Without replacement: 5 draws from 5 equal weights are a permutation of
 * 0..4; 2 draws from [0, 3, 0, 1] are {1, 3}. From 20000 rows of [1, 3], 2
 * draws each: the first is 1 with probability 3/4 (standard deviation of the
 * frequency sqrt(3/16 / 20000) = 0.0031, 5 of them allowed), and the second
 * is always the other category. */
START_TEST(test_multinomial_without_replacement) {
    tensor *u = constant(SHAPE(5), (double[]){1, 1, 1, 1, 1});
    rng g;
    rng_seed(&g, 3, 0);
    tensor *y = tensor_multinomial(u, 5, false, &g);
    int64_t counts[5];
    count_draws(y, 0, 5, counts, 5);
    for (int c = 0; c < 5; c++) ck_assert_int_eq(counts[c], 1);
    tensor *z = constant(SHAPE(4), (double[]){0, 3, 0, 1});
    y = tensor_multinomial(z, 2, false, &g);
    count_draws(y, 0, 2, counts, 4);
    ck_assert(counts[1] == 1 && counts[3] == 1);
    const int64_t R = 20000;
    tensor *rows = tensor_new(DTYPE_F64, SHAPE(R, 2));
    for (int64_t r = 0; r < R; r++) tensor_set(rows, 2 * r, 1), tensor_set(rows, 2 * r + 1, 3);
    y = tensor_multinomial(rows, 2, false, &g);
    const int64_t *p = y->data;
    int64_t first_is_1 = 0;
    for (int64_t r = 0; r < R; r++) {
        ck_assert(p[2 * r] + p[2 * r + 1] == 1); /* the two categories, once each */
        first_is_1 += p[2 * r] == 1;
    }
    double f = (double)first_is_1 / (double)R;
    ck_assert_msg(fabs(f - 0.75) <= 5 * sqrt(0.75 * 0.25 / (double)R), "frequency %.5f", f);
    tape_reset();
    tensor_free(u);
    tensor_free(z);
    tensor_free(rows);
}
END_TEST

START_TEST(test_multinomial_errors) {
    tapegrad_error_clear();
    rng g;
    rng_seed(&g, 1, 0);
    tensor *ok = constant(SHAPE(3), (double[]){1, 0, 2});
    tensor *neg = constant(SHAPE(2, 2), (double[]){1, 1, 0.5, -1});
    tensor *nan = constant(SHAPE(2), (double[]){NAN, 1});
    tensor *inf = constant(SHAPE(2), (double[]){INFINITY, 1});
    tensor *zero = constant(SHAPE(2, 2), (double[]){1, 0, 0, 0});
    tensor *s = tensor_ones(DTYPE_F64, 0, (int64_t[]){0});
    tensor *d3 = tensor_ones(DTYPE_F64, SHAPE(1, 1, 2));
    tensor *i64 = tensor_ones(DTYPE_I64, SHAPE(2));
    ck_assert_fails_with(tensor_multinomial(NULL, 1, true, &g), "multinomial: input 0 is NULL");
    ck_assert_fails_with(tensor_multinomial(i64, 1, true, &g),
                         "multinomial: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_multinomial(s, 1, true, &g), "multinomial: probs must be 1-D or 2-D, got []");
    ck_assert_fails_with(tensor_multinomial(d3, 1, true, &g),
                         "multinomial: probs must be 1-D or 2-D, got [1,1,2]");
    ck_assert_fails_with(tensor_multinomial(ok, 0, true, &g), "multinomial: n = 0 draws; need at least 1");
    ck_assert_fails_with(tensor_multinomial(ok, 1, true, NULL), "multinomial: rng is NULL");
    ck_assert_fails_with(tensor_multinomial(neg, 1, true, &g),
                         "multinomial: weight -1 at row 1, column 1 of [2,2] is negative or not finite");
    ck_assert_fails_with(tensor_multinomial(nan, 1, true, &g),
                         "multinomial: weight nan at row 0, column 0 of [2] is negative or not finite");
    ck_assert_fails_with(tensor_multinomial(inf, 1, true, &g),
                         "multinomial: weight inf at row 0, column 0 of [2] is negative or not finite");
    ck_assert_fails_with(tensor_multinomial(zero, 1, true, &g),
                         "multinomial: row 1 of [2,2] sums to 0; need a positive finite sum");
    ck_assert_fails_with(tensor_multinomial(ok, 3, false, &g),
                         "multinomial: cannot draw 3 without replacement from row 0 of [3], which has 2 "
                         "nonzero weights");
    tensor *big = constant(SHAPE(2), (double[]){1e308, 1e308});
    ck_assert_fails_with(tensor_multinomial(big, 1, true, &g),
                         "multinomial: row 0 of [2] sums to inf; need a positive finite sum");
    tensor_free(ok);
    tensor_free(neg);
    tensor_free(nan);
    tensor_free(inf);
    tensor_free(zero);
    tensor_free(s);
    tensor_free(d3);
    tensor_free(i64);
    tensor_free(big);
}
END_TEST

START_TEST(test_sequence_errors) {
    tapegrad_error_clear();
    tensor *v = tensor_ones(DTYPE_F64, SHAPE(4));
    tensor *m = tensor_ones(DTYPE_F64, SHAPE(2, 3));
    tensor *s = tensor_ones(DTYPE_F64, 0, (int64_t[]){0});
    tensor *i64 = tensor_zeros(DTYPE_I64, SHAPE(2, 3));
    tensor *idx = tensor_from_data(DTYPE_I64, SHAPE(3), (int64_t[]){0, 3, 1});
    tensor *neg = tensor_from_data(DTYPE_I64, SHAPE(2), (int64_t[]){-1, 0});
    tensor *deep = tensor_zeros(DTYPE_I64, SHAPE(1, 1, 1, 1, 1, 1, 1, 1));
    ck_assert_fails_with(tensor_sin(NULL), "sin: input 0 is NULL");
    ck_assert_fails_with(tensor_cos(i64), "cos: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_tril(v, 0), "tril: needs at least 2 dimensions, got [4]");
    ck_assert_fails_with(tensor_triu(s, 0), "triu: needs at least 2 dimensions, got []");
    ck_assert_fails_with(tensor_triu(i64, 0), "triu: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_tril(NULL, 0), "tril: input 0 is NULL");
    ck_assert_fails_with(tensor_cumsum(s, 0), "cumsum: needs at least 1 dimension, got a scalar");
    ck_assert_fails_with(tensor_cumsum(m, 2), "cumsum: axis 2 out of range for 2 dimensions");
    ck_assert_fails_with(tensor_cumsum(m, -3), "cumsum: axis -3 out of range for 2 dimensions");
    ck_assert_fails_with(tensor_cumsum(i64, 0), "cumsum: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_one_hot(NULL, 3, DTYPE_F32), "one_hot: input 0 is NULL");
    ck_assert_fails_with(tensor_one_hot(m, 3, DTYPE_F32), "one_hot: index must be int64, got float64");
    ck_assert_fails_with(tensor_one_hot(idx, 4, DTYPE_I64),
                         "one_hot: the output dtype must be float32 or float64, got int64");
    ck_assert_fails_with(tensor_one_hot(idx, 0, DTYPE_F32), "one_hot: cannot encode index [3] in 0 classes");
    ck_assert_fails_with(tensor_one_hot(deep, 2, DTYPE_F32),
                         "one_hot: cannot encode index [1,1,1,1,1,1,1,1] in 2 classes");
    ck_assert_fails_with(tensor_one_hot(idx, 3, DTYPE_F32),
                         "one_hot: index 3 (at position 1 of [3]) out of range for 3 classes");
    ck_assert_fails_with(tensor_one_hot(neg, 3, DTYPE_F64),
                         "one_hot: index -1 (at position 0 of [2]) out of range for 3 classes");
    /* NULL propagates: the first cause is kept */
    ck_assert_fails_with(tensor_cumsum(tensor_sin(NULL), 0), "sin: input 0 is NULL");
    tensor_free(v);
    tensor_free(m);
    tensor_free(s);
    tensor_free(i64);
    tensor_free(idx);
    tensor_free(neg);
    tensor_free(deep);
}
END_TEST

/* Every op of the family, every sample case, four seeds: see tests/ops_test.h. */
START_TEST(test_sequence_samples_match_central_differences) {
    ck_assert_int_eq(tg_ops_sequence_count, 9);
    ck_assert_int_ge(numeric_check_family(tg_ops_sequence, tg_ops_sequence_count, 1, 4, CHECK_ALL), 136);
}
END_TEST

Suite *ops_sequence_suite(void) {
    Suite *s = suite_create("ops_sequence");
    TCase *tc = tcase_create("sequence");
    tcase_add_test(tc, test_sin_forward_and_grad);
    tcase_add_test(tc, test_cos_forward_and_grad);
    tcase_add_test(tc, test_tril_triu_forward_and_grad);
    tcase_add_test(tc, test_triu_batched);
    tcase_add_test(tc, test_causal_mask_from_tril);
    tcase_add_test(tc, test_cumsum_forward_and_grad_both_axes);
    tcase_add_test(tc, test_cumsum_middle_axis_float32);
    tcase_add_test(tc, test_one_hot_values_and_shapes);
    tcase_add_test(tc, test_one_hot_matmul_is_a_lookup);
    tcase_add_test(tc, test_arange_int64_exact);
    tcase_add_test(tc, test_sort_values_indices_and_grad);
    tcase_add_test(tc, test_sort_stable_ties_and_nan_largest);
    tcase_add_test(tc, test_sort_axis0_columns_float32);
    tcase_add_test(tc, test_sort_long_row_is_a_stable_permutation);
    tcase_add_test(tc, test_topk_values_indices_and_grad);
    tcase_add_test(tc, test_sort_topk_errors);
    tcase_add_test(tc, test_multinomial_frequencies_with_replacement);
    tcase_add_test(tc, test_multinomial_rows_zero_weights_and_seeds);
    tcase_add_test(tc, test_multinomial_without_replacement);
    tcase_add_test(tc, test_multinomial_errors);
    tcase_add_test(tc, test_sequence_errors);
    tcase_add_test(tc, test_sequence_samples_match_central_differences);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ops_sequence_suite)
