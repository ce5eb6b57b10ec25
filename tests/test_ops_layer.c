/* test_ops_layer.c - linear, dropout, dropout2d and embedding against
 * hand-computed values and gradients, every error path, and a central
 * difference check of every registry sample case. */
#include <string.h>

#include "../autograd/internal.h"
#include "../ops/blas.h"
#include "check_main.h"
#include "ops_test.h"

/* ------------------------------------------------------------------ linear */

/* x = [[1, 2, 3], [-1, 0.5, 2]], W = [[0.5, -1, 2], [1, 0, -0.5]], b = [0.1, -0.2]
 *   y00 = 0.5 - 2 + 6 + 0.1 = 4.6     y01 = 1 + 0 - 1.5 - 0.2 = -0.7
 *   y10 = -0.5 - 0.5 + 4 + 0.1 = 3.1  y11 = -1 + 0 - 1 - 0.2 = -2.2
 * upstream G = [[1, 2], [-1, 0.5]]:
 *   dx = G W:   row 0 = [0.5, -1, 2] + 2 [1, 0, -0.5] = [2.5, -1, 1]
 *               row 1 = -[0.5, -1, 2] + 0.5 [1, 0, -0.5] = [0, 1, -2.25]
 *   dW = G^T x: row 0 = [1, 2, 3] - [-1, 0.5, 2] = [2, 1.5, 1]
 *               row 1 = 2 [1, 2, 3] + 0.5 [-1, 0.5, 2] = [1.5, 4.25, 7]
 *   db = column sums of G = [0, 2.5] */
static const double lin_x[] = {1, 2, 3, -1, 0.5, 2}, lin_w[] = {0.5, -1, 2, 1, 0, -0.5},
                    lin_b[] = {0.1, -0.2}, lin_g[] = {1, 2, -1, 0.5};
static const double lin_y[] = {4.6, -0.7, 3.1, -2.2}, lin_dx[] = {2.5, -1, 1, 0, 1, -2.25},
                    lin_dw[] = {2, 1.5, 1, 1.5, 4.25, 7}, lin_db[] = {0, 2.5};

static void linear_case(dtype dt, int xnd, const int64_t *xshape, double tol) {
    tensor *x = leaf_dt(dt, xnd, xshape, lin_x);
    tensor *w = leaf_dt(dt, SHAPE(2, 3), lin_w);
    tensor *b = leaf_dt(dt, SHAPE(2), lin_b);
    tensor *y = tensor_linear(x, w, b);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->ndim, xnd);
    ck_assert_int_eq(y->shape[xnd - 1], 2);
    ck_assert_tensor(y, lin_y, tol);
    int64_t gshape[TENSOR_MAX_DIMS];
    memcpy(gshape, y->shape, sizeof gshape);
    tensor *g = tensor_from_doubles(dt, y->ndim, gshape, lin_g);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(x->grad, lin_dx, tol);
    ck_assert_tensor(w->grad, lin_dw, tol);
    ck_assert_tensor(b->grad, lin_db, tol);
    tape_reset();
    tensor_free(x);
    tensor_free(w);
    tensor_free(b);
    tensor_free(g);
}

START_TEST(test_linear_forward_and_grad_2d) { linear_case(DTYPE_F64, SHAPE(2, 3), 1e-12); }
END_TEST

/* The same rows as a (2, 1, 3) batch: leading dims fold into rows. */
START_TEST(test_linear_grad_batched_3d) { linear_case(DTYPE_F64, SHAPE(2, 1, 3), 1e-12); }
END_TEST

START_TEST(test_linear_forward_and_grad_f32) { linear_case(DTYPE_F32, SHAPE(2, 3), 1e-5); }
END_TEST

/* Without a bias: y = x W^T, i.e. lin_y minus b per column; dx and dW unchanged. */
START_TEST(test_linear_no_bias) {
    tensor *x = leaf(SHAPE(2, 3), lin_x);
    tensor *w = leaf(SHAPE(2, 3), lin_w);
    tensor *y = tensor_linear(x, w, NULL);
    ck_assert_tensor(y, ((double[]){4.5, -0.5, 3.0, -2.0}), 1e-12);
    tensor *g = tensor_from_doubles(DTYPE_F64, SHAPE(2, 2), lin_g);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(x->grad, lin_dx, 1e-12);
    ck_assert_tensor(w->grad, lin_dw, 1e-12);
    tape_reset();
    tensor_free(x);
    tensor_free(w);
    tensor_free(g);
}
END_TEST

/* Two uses of the same x, W, b: the vjps accumulate (+=), so every gradient
 * doubles: dx = 2 lin_dx, dW = 2 lin_dw, db = 2 lin_db. */
START_TEST(test_linear_grad_accumulates_across_uses) {
    tensor *x = leaf(SHAPE(2, 3), lin_x);
    tensor *w = leaf(SHAPE(2, 3), lin_w);
    tensor *b = leaf(SHAPE(2), lin_b);
    tensor *g = tensor_from_doubles(DTYPE_F64, SHAPE(2, 2), lin_g);
    tensor *y = tensor_add(tensor_linear(x, w, b), tensor_linear(x, w, b));
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    for (int i = 0; i < 6; i++) {
        ck_assert_close(tensor_get(x->grad, i), 2 * lin_dx[i], 1e-12);
        ck_assert_close(tensor_get(w->grad, i), 2 * lin_dw[i], 1e-12);
    }
    ck_assert_tensor(b->grad, ((double[]){0, 5}), 1e-12);
    tape_reset();
    tensor_free(x);
    tensor_free(w);
    tensor_free(b);
    tensor_free(g);
}
END_TEST

/* A single vector x [3] gives y [2] = row 0 of the 2-D case. */
START_TEST(test_linear_vector_input) {
    tensor *x = leaf(SHAPE(3), lin_x);
    tensor *w = tensor_from_doubles(DTYPE_F64, SHAPE(2, 3), lin_w);
    tensor *b = tensor_from_doubles(DTYPE_F64, SHAPE(2), lin_b);
    tensor *g = tensor_from_doubles(DTYPE_F64, SHAPE(2), lin_g);
    tensor *y = tensor_linear(x, w, b);
    ck_assert_int_eq(y->ndim, 1);
    ck_assert_tensor(y, ((double[]){4.6, -0.7}), 1e-12);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(x->grad, lin_dx, 1e-12);
    tape_reset();
    tensor_free(g);
    tensor_free(x);
    tensor_free(w);
    tensor_free(b);
}
END_TEST

START_TEST(test_linear_errors) {
    tensor *x = tensor_zeros(DTYPE_F64, SHAPE(2, 3));
    tensor *w = tensor_zeros(DTYPE_F64, SHAPE(4, 3));
    tensor *w5 = tensor_zeros(DTYPE_F64, SHAPE(4, 5));
    tensor *w1 = tensor_zeros(DTYPE_F64, SHAPE(3));
    tensor *b3 = tensor_zeros(DTYPE_F64, SHAPE(3));
    tensor *b2d = tensor_zeros(DTYPE_F64, SHAPE(1, 4));
    tensor *xi = tensor_zeros(DTYPE_I64, SHAPE(2, 3));
    tensor *wi = tensor_zeros(DTYPE_I64, SHAPE(4, 3));
    tensor *bi = tensor_zeros(DTYPE_I64, SHAPE(4));
    tensor *bf = tensor_zeros(DTYPE_F32, SHAPE(4));
    tensor *s = tensor_zeros(DTYPE_F64, 0, NULL);
    ck_assert_fails(tensor_linear(x, w5, NULL),
                    "linear: x [.., IN] and w [OUT, IN] do not match: x [2,3], w [4,5]");
    ck_assert_fails(tensor_linear(x, w1, NULL), "do not match: x [2,3], w [3]");
    ck_assert_fails(tensor_linear(s, w, NULL), "do not match: x [], w [4,3]");
    ck_assert_fails(tensor_linear(x, w, b3), "linear: bias must be [OUT] = [4] for w [4,3], got [3]");
    ck_assert_fails(tensor_linear(x, w, b2d), "got [1,4]");
    ck_assert_fails(tensor_linear(xi, w, NULL), "linear: input 0 is int64");
    ck_assert_fails(tensor_linear(x, wi, NULL), "linear: input 1 is int64");
    ck_assert_fails(tensor_linear(x, w, bi), "linear: bias is int64");
    ck_assert_fails(tensor_linear(x, w, bf),
                    "linear: bias is float32; it must have the dtype of x (float64)");
    ck_assert_fails(tensor_linear(NULL, w, NULL), "linear: input 0 is NULL");
    ck_assert_fails(tensor_linear(x, NULL, NULL), "linear: input 1 is NULL");
    /* a NULL bias while an error is pending is a failed upstream result */
    tapegrad_error_clear();
    ck_assert_ptr_null(tensor_linear(x, w, tensor_linear(x, w5, NULL)));
    ck_assert_msg(strstr(tapegrad_error(), "w [4,5]"), "first error kept: %s", tapegrad_error());
    tapegrad_error_clear();
    tensor *all[] = {x, w, w5, w1, b3, b2d, xi, wi, bi, bf, s};
    for (int i = 0; i < 11; i++) tensor_free(all[i]);
}
END_TEST

/* An inner dimension of 1 is a rank-one update C = beta C + a b^T, taken
 * outside OpenBLAS. Every transpose flag and beta 0 / 1 / 0.5 against the
 * definition; with beta 0, C starts as NaN, which must not survive.
 * a = [1, 2, 3], b = [4, -5], so (a b^T)[m][n] = a[m] b[n]. */
START_TEST(test_gemm_rank_one_all_transposes) {
    const double a[3] = {1, 2, 3}, b[2] = {4, -5}, betas[3] = {0, 1, 0.5};
    /* op(A) is [3,1]: A stored [3,1] (lda 1) or, transposed, [1,3] (lda 3);
     * op(B) is [1,2]: B stored [1,2] (ldb 2) or, transposed, [2,1] (ldb 1). */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int k = 0; k < 3; k++) {
                double C[6];
                float Cf[6];
                const float af[3] = {1, 2, 3}, bf[2] = {4, -5};
                for (int i = 0; i < 6; i++) C[i] = Cf[i] = betas[k] == 0 ? NAN : (float)(i + 1);
                tg_blas_gemm(DTYPE_F64, ta, tb, 3, 2, 1, a, ta ? 3 : 1, b, tb ? 1 : 2, betas[k], C, 2);
                tg_blas_gemm(DTYPE_F32, ta, tb, 3, 2, 1, af, ta ? 3 : 1, bf, tb ? 1 : 2, betas[k], Cf, 2);
                for (int m = 0; m < 3; m++)
                    for (int n = 0; n < 2; n++) {
                        double want = betas[k] * (betas[k] == 0 ? 0 : m * 2 + n + 1) + a[m] * b[n];
                        ck_assert_double_eq_tol(C[m * 2 + n], want, 1e-15);
                        ck_assert_double_eq_tol(Cf[m * 2 + n], want, 1e-6);
                    }
            }
}
END_TEST

START_TEST(test_linear_samples_numerically) { numeric_check_op("linear", 1000, 1, CHECK_ALL); }
END_TEST

/* ----------------------------------------------------------------- dropout */

/* The mask is the generator's stream: element i is kept when the i-th
 * uniform draw is >= p, and then worth 1 / (1 - p) = 2 at p = 0.5. So
 * y[i] = 2 x[i] or 0, and dx[i] = 2 g[i] or 0, element for element. */
START_TEST(test_dropout_mask_from_generator) {
    static const double xv[] = {1.5, -2, 0.25, 3, -0.5, 1, 2, -1.25, 0.75, -3};
    static const double gv[] = {1, -1, 2, 0.5, -2, 3, 1.5, -0.5, 4, 1};
    tensor *x = leaf(SHAPE(2, 5), xv);
    rng g, h;
    rng_seed(&g, 2024, 3);
    rng_seed(&h, 2024, 3);
    tensor *gt = tensor_from_doubles(DTYPE_F64, SHAPE(2, 5), gv);
    tensor *y = tensor_dropout(x, 0.5, true, &g);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(tensor_backward_with(y, gt), 0);
    int kept = 0;
    for (int i = 0; i < 10; i++) {
        bool keep = rng_uniform(&h) >= 0.5;
        kept += keep;
        ck_assert_close(tensor_get(y, i), keep ? 2 * xv[i] : 0.0, 1e-15);
        ck_assert_close(tensor_get(x->grad, i), keep ? 2 * gv[i] : 0.0, 1e-15);
    }
    ck_assert_msg(kept > 0 && kept < 10, "the seed should keep some and drop some (kept %d)", kept);
    ck_assert_uint_eq(rng_next_u32(&g), rng_next_u32(&h)); /* exactly 10 draws */
    tape_reset();
    tensor_free(gt);
    tensor_free(x);
}
END_TEST

/* A replay of forward (the checker's) reuses the saved mask: same output,
 * and the generator is not touched. */
START_TEST(test_dropout_replay_is_pure) {
    rng g;
    rng_seed(&g, 7, 1);
    tensor *x = tensor_from_doubles(DTYPE_F64, SHAPE(3, 4),
                                    (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    tensor_set_requires_grad(x, true);
    tensor *y = tensor_dropout(x, 0.3, true, &g);
    tensor *copy = tensor_clone(y);
    rng after = g;
    tape_node *n = tg_tape_node_at(tape_size() - 1);
    ck_assert_ptr_nonnull(n->saved[0]);
    n->op->forward(n);
    ck_assert_int_eq(memcmp(copy->data, y->data, 12 * sizeof(double)), 0);
    ck_assert(after.state == g.state);
    tape_reset();
    tensor_free(copy);
    tensor_free(x);
}
END_TEST

/* Eval mode, and p = 0 in training, are copies that still record a node:
 * y = x, dx = g. The generator may be NULL and is not drawn from. */
START_TEST(test_dropout_eval_and_p0_are_copies) {
    static const double xv[] = {1.5, -2, 0.25, 3}, gv[] = {1, -1, 2, 0.5};
    for (int mode = 0; mode < 4; mode++) {
        tensor *x = leaf_dt(DTYPE_F32, SHAPE(2, 2), xv);
        tensor *y = mode == 0   ? tensor_dropout(x, 0.4, false, NULL)
                    : mode == 1 ? tensor_dropout(x, 0.0, true, NULL)
                    : mode == 2 ? tensor_dropout2d(tensor_reshape(x, SHAPE(1, 2, 2)), 0.4, false, NULL)
                                : tensor_dropout2d(tensor_reshape(x, SHAPE(1, 2, 2)), 0.0, true, NULL);
        ck_assert_ptr_nonnull(y);
        ck_assert_int_eq(tape_size(), mode < 2 ? 1 : 2);
        ck_assert_tensor(y, xv, 0);
        tensor *g = tensor_from_doubles(DTYPE_F32, y->ndim, y->shape, gv);
        ck_assert_int_eq(tensor_backward_with(y, g), 0);
        ck_assert_tensor(x->grad, gv, 0);
        tape_reset();
        tensor_free(x);
        tensor_free(g);
    }
}
END_TEST

/* p = 1 keeps nothing: y = 0 and dx = 0 (defined, not an error). */
START_TEST(test_dropout_p1_zeroes) {
    rng g;
    rng_seed(&g, 3, 3);
    tensor *x = leaf(SHAPE(4), (double[]){1, -2, 3, -4});
    tensor *y = tensor_dropout(x, 1.0, true, &g);
    ck_assert_tensor(y, ((double[]){0, 0, 0, 0}), 0);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(x->grad, ((double[]){0, 0, 0, 0}), 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* dropout2d (B, C, H, W) = (2, 3, 1, 2) or (B, C, L) = (2, 3, 2): one draw
 * per (b, c) in row-major order; a kept channel is doubled as a whole
 * (p = 0.5), a dropped one is 0. Values are exact in float32 too. */
static void dropout2d_case(dtype dt, int ndim, const int64_t *shape) {
    double xv[12], gv[12];
    for (int i = 0; i < 12; i++) xv[i] = 0.5 * i - 2.25, gv[i] = 1.0 + 0.25 * i;
    tensor *x = leaf_dt(dt, ndim, shape, xv);
    rng g, h;
    rng_seed(&g, 99, 2);
    rng_seed(&h, 99, 2);
    tensor *gt = tensor_from_doubles(dt, ndim, shape, gv);
    tensor *y = tensor_dropout2d(x, 0.5, true, &g);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(tensor_backward_with(y, gt), 0);
    int kept = 0;
    for (int ch = 0; ch < 6; ch++) {
        bool keep = rng_uniform(&h) >= 0.5;
        kept += keep;
        for (int s = 0; s < 2; s++) {
            int i = ch * 2 + s;
            ck_assert_close(tensor_get(y, i), keep ? 2 * xv[i] : 0.0, 1e-15);
            ck_assert_close(tensor_get(x->grad, i), keep ? 2 * gv[i] : 0.0, 1e-15);
        }
    }
    ck_assert_msg(kept > 0 && kept < 6, "kept %d of 6 channels", kept);
    tape_reset();
    tensor_free(gt);
    tensor_free(x);
}

START_TEST(test_dropout2d_whole_channels_4d_f32) { dropout2d_case(DTYPE_F32, SHAPE(2, 3, 1, 2)); }
END_TEST

START_TEST(test_dropout2d_whole_channels_3d) { dropout2d_case(DTYPE_F64, SHAPE(2, 3, 2)); }
END_TEST

START_TEST(test_dropout_errors) {
    rng g;
    rng_seed(&g, 1, 1);
    tensor *x = tensor_zeros(DTYPE_F64, SHAPE(2, 3));
    tensor *x4 = tensor_zeros(DTYPE_F64, SHAPE(2, 3, 2, 2));
    tensor *xi = tensor_zeros(DTYPE_I64, SHAPE(2, 3));
    ck_assert_fails(tensor_dropout(x, -0.1, true, &g), "dropout: p must be in [0, 1], got -0.1");
    ck_assert_fails(tensor_dropout(x, 1.5, false, &g), "dropout: p must be in [0, 1], got 1.5");
    ck_assert_fails(tensor_dropout(x, NAN, true, &g), "dropout: p must be in [0, 1]");
    ck_assert_fails(tensor_dropout2d(x4, 2.0, true, &g), "dropout2d: p must be in [0, 1], got 2");
    ck_assert_fails(tensor_dropout(x, 0.5, true, NULL),
                    "dropout: training with p = 0.5 needs a generator, got NULL");
    ck_assert_fails(tensor_dropout2d(x4, 0.5, true, NULL), "dropout2d: training with p = 0.5");
    ck_assert_fails(tensor_dropout2d(x, 0.5, true, &g),
                    "dropout2d: x must be (B, C, H, W) or (B, C, L), got [2,3]");
    ck_assert_fails(tensor_dropout(xi, 0.5, true, &g), "dropout: input 0 is int64");
    ck_assert_fails(tensor_dropout2d(NULL, 0.5, true, &g), "dropout2d: input 0 is NULL");
    tensor_free(x);
    tensor_free(x4);
    tensor_free(xi);
}
END_TEST

START_TEST(test_dropout_samples_numerically) { numeric_check_op("dropout", 1000, 1, CHECK_ALL); }
END_TEST

START_TEST(test_dropout2d_samples_numerically) { numeric_check_op("dropout2d", 1000, 1, CHECK_ALL); }
END_TEST

/* --------------------------------------------------------------- embedding */

/* W [3, 2] = [[1, 2], [3, 4], [5, 6]], index [[2, 0], [2, 1]]:
 *   y = [[[5, 6], [1, 2]], [[5, 6], [3, 4]]]
 * upstream G = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]; row 2 is used twice:
 *   dW[0] = [3, 4], dW[1] = [7, 8], dW[2] = [1 + 5, 2 + 6] = [6, 8] */
START_TEST(test_embedding_forward_and_grad_duplicates) {
    tensor *w = leaf(SHAPE(3, 2), (double[]){1, 2, 3, 4, 5, 6});
    tensor *idx = tensor_from_data(DTYPE_I64, SHAPE(2, 2), (int64_t[]){2, 0, 2, 1});
    tensor *y = tensor_embedding(idx, w);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->ndim, 3);
    ck_assert_int_eq(y->shape[2], 2);
    ck_assert_tensor(y, ((double[]){5, 6, 1, 2, 5, 6, 3, 4}), 0);
    tensor *g = tensor_from_doubles(DTYPE_F64, SHAPE(2, 2, 2), (double[]){1, 2, 3, 4, 5, 6, 7, 8});
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(w->grad, ((double[]){3, 4, 7, 8, 6, 8}), 0);
    ck_assert_ptr_null(idx->grad);
    tape_reset();
    tensor_free(w);
    tensor_free(idx);
    tensor_free(g);
}
END_TEST

/* A scalar index selects one row: y [D]. */
START_TEST(test_embedding_scalar_index_f32) {
    tensor *w = leaf_dt(DTYPE_F32, SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    tensor *idx = tensor_from_data(DTYPE_I64, 0, NULL, (int64_t[]){1});
    tensor *y = tensor_embedding(idx, w);
    ck_assert_int_eq(y->ndim, 1);
    ck_assert_tensor(y, ((double[]){4, 5, 6}), 0);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(w->grad, ((double[]){0, 0, 0, 1, 1, 1}), 0);
    tape_reset();
    tensor_free(w);
    tensor_free(idx);
}
END_TEST

START_TEST(test_embedding_errors) {
    tensor *w = tensor_zeros(DTYPE_F64, SHAPE(3, 2));
    tensor *w1 = tensor_zeros(DTYPE_F64, SHAPE(6));
    tensor *wi = tensor_zeros(DTYPE_I64, SHAPE(3, 2));
    tensor *big = tensor_from_data(DTYPE_I64, SHAPE(3), (int64_t[]){0, 3, 1});
    tensor *neg = tensor_from_data(DTYPE_I64, SHAPE(2), (int64_t[]){-1, 1});
    tensor *fidx = tensor_zeros(DTYPE_F64, SHAPE(2));
    tensor *ok = tensor_from_data(DTYPE_I64, SHAPE(2), (int64_t[]){0, 2});
    tensor *deep = tensor_zeros(DTYPE_I64, SHAPE(1, 1, 1, 1, 1, 1, 1, 1));
    ck_assert_fails(tensor_embedding(big, w),
                    "embedding: index 3 (at position 1) is out of range for N = 3 rows");
    ck_assert_fails(tensor_embedding(neg, w), "embedding: index -1 (at position 0) is out of range");
    ck_assert_fails(tensor_embedding(fidx, w), "embedding: index must be int64, got float64");
    ck_assert_fails(tensor_embedding(ok, wi), "embedding: input 1 is int64");
    ck_assert_fails(tensor_embedding(ok, w1),
                    "embedding: weight must be [N, D] and index at most 7-D: index [2], weight [6]");
    ck_assert_fails(tensor_embedding(deep, w), "index [1,1,1,1,1,1,1,1], weight [3,2]");
    ck_assert_fails(tensor_embedding(NULL, w), "embedding: input 0 is NULL");
    ck_assert_fails(tensor_embedding(ok, NULL), "embedding: input 1 is NULL");
    tensor *all[] = {w, w1, wi, big, neg, fidx, ok, deep};
    for (int i = 0; i < 8; i++) tensor_free(all[i]);
}
END_TEST

START_TEST(test_embedding_samples_numerically) { numeric_check_op("embedding", 1000, 1, CHECK_ALL); }
END_TEST

Suite *ops_layer_suite(void) {
    Suite *s = suite_create("ops_layer");
    TCase *tc = tcase_create("layer");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_linear_forward_and_grad_2d);
    tcase_add_test(tc, test_linear_grad_batched_3d);
    tcase_add_test(tc, test_linear_forward_and_grad_f32);
    tcase_add_test(tc, test_linear_no_bias);
    tcase_add_test(tc, test_linear_grad_accumulates_across_uses);
    tcase_add_test(tc, test_linear_vector_input);
    tcase_add_test(tc, test_linear_errors);
    tcase_add_test(tc, test_linear_samples_numerically);
    tcase_add_test(tc, test_gemm_rank_one_all_transposes);
    tcase_add_test(tc, test_dropout_mask_from_generator);
    tcase_add_test(tc, test_dropout_replay_is_pure);
    tcase_add_test(tc, test_dropout_eval_and_p0_are_copies);
    tcase_add_test(tc, test_dropout_p1_zeroes);
    tcase_add_test(tc, test_dropout2d_whole_channels_4d_f32);
    tcase_add_test(tc, test_dropout2d_whole_channels_3d);
    tcase_add_test(tc, test_dropout_errors);
    tcase_add_test(tc, test_dropout_samples_numerically);
    tcase_add_test(tc, test_dropout2d_samples_numerically);
    tcase_add_test(tc, test_embedding_forward_and_grad_duplicates);
    tcase_add_test(tc, test_embedding_scalar_index_f32);
    tcase_add_test(tc, test_embedding_errors);
    tcase_add_test(tc, test_embedding_samples_numerically);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ops_layer_suite)
