/* test_ops_pool.c - max_pool2d and avg_pool2d against hand-computed values,
 * against naive loops written here, against central differences over the
 * registry's sample cases, and every error path. */
#include <string.h>

#include "../autograd/internal.h"
#include "../ops/pool_kernels.h"
#include "check_main.h"
#include "ops_test.h"

static pool2d_params pp(int kh, int kw, int sh, int sw, int ph, int pw, bool include_pad) {
    return (pool2d_params){{kh, kw}, {sh, sw}, {ph, pw}, include_pad};
}

/* y = op(x); backward with upstream g; x's gradient. */
static void backward_with_values(tensor *y, const double *g) {
    tensor *gy = tensor_from_doubles(y->dtype, y->ndim, y->shape, g);
    ck_assert_int_eq(tensor_backward_with(y, gy), 0);
    tensor_free(gy);
}

static const double X44[16] = {1, 5, 2, 0, 3, -1, 7, 4, 6, 2, -3, 8, 0, 9, 1, 5};

/* ---------------------------------------------------------------- max */
/* x = [[1, 5, 2, 0], [3, -1, 7, 4], [6, 2, -3, 8], [0, 9, 1, 5]], 2x2 stride 2:
 * windows {1,5,3,-1} {2,0,7,4} {6,2,0,9} {-3,8,1,5} -> y = [5, 7, 9, 8], at
 * flat offsets 1, 6, 13, 11. Upstream [1, 2, 3, 4] lands on exactly those. */
START_TEST(test_max_pool2d_forward_and_grad_2x2_stride2) {
    tensor *x = leaf(SHAPE(1, 1, 4, 4), X44);
    tensor *y = tensor_max_pool2d(x, pp(2, 2, 2, 2, 0, 0, false));
    ck_assert_int_eq(y->shape[2], 2);
    ck_assert_tensor(y, ((double[]){5, 7, 9, 8}), 0);
    backward_with_values(y, (double[]){1, 2, 3, 4});
    ck_assert_tensor(x->grad, ((double[]){0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 4, 0, 3, 0, 0}), 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* x = [[1, 4, 2], [3, 0, 5], [6, 2, 1]], 2x2 stride 1 (overlapping):
 * windows {1,4,3,0} {4,2,0,5} {3,0,6,2} {0,5,2,1} -> y = [4, 5, 6, 5]; the 5 at
 * offset 5 is the max of two windows, so with upstream ones it gets 2. */
START_TEST(test_max_pool2d_grad_overlapping_windows_accumulate) {
    tensor *x = leaf(SHAPE(1, 1, 3, 3), (double[]){1, 4, 2, 3, 0, 5, 6, 2, 1});
    tensor *y = tensor_max_pool2d(x, pp(2, 2, 1, 1, 0, 0, false));
    ck_assert_tensor(y, ((double[]){4, 5, 6, 5}), 0);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(x->grad, ((double[]){0, 1, 0, 0, 0, 2, 1, 0, 0}), 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* All-negative x with padding 1, 2x2 stride 2: the padding counts as -inf, so
 * the corner window {pad, pad, pad, -1} gives -1 (not 0). Windows: {-1},
 * {-2,-3}, {-4,-7}, {-5,-6,-8,-9} -> y = [-1, -2, -4, -5]. */
START_TEST(test_max_pool2d_padding_is_minus_infinity) {
    tensor *x = leaf(SHAPE(1, 1, 3, 3), (double[]){-1, -2, -3, -4, -5, -6, -7, -8, -9});
    tensor *y = tensor_max_pool2d(x, pp(2, 2, 2, 2, 1, 1, false));
    ck_assert_int_eq(y->shape[2], 2);
    ck_assert_int_eq(y->shape[3], 2);
    ck_assert_tensor(y, ((double[]){-1, -2, -4, -5}), 0);
    backward_with_values(y, (double[]){1, 2, 3, 4});
    ck_assert_tensor(x->grad, ((double[]){1, 2, 0, 3, 4, 0, 0, 0, 0}), 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* Ties: the first maximum in window order (row by row) takes the gradient.
 * [[1, 3], [3, 0]] -> offset 1; [[2, 2], [2, 2]] -> offset 0. */
START_TEST(test_max_pool2d_tie_goes_to_first_in_window_order) {
    tensor *x = leaf(SHAPE(2, 1, 2, 2), (double[]){1, 3, 3, 0, 2, 2, 2, 2});
    tensor *y = tensor_max_pool2d(x, pp(2, 2, 2, 2, 0, 0, false));
    ck_assert_tensor(y, ((double[]){3, 2}), 0);
    backward_with_values(y, (double[]){5, 7});
    ck_assert_tensor(x->grad, ((double[]){0, 5, 0, 0, 7, 0, 0, 0}), 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* Ties and NaNs on 2x2 stride-2 rows 2, 5 and 10 windows wide, which cover
 * every way the unpadded kernel splits a row: one output at a time, chunks
 * of 4 and of 8, the last chunk overlapping the one before. Window j holds
 * pattern j % 8 as (top-left, top-right, bottom-left, bottom-right); the
 * winner is the first NaN in window order, else the first maximum. */
START_TEST(test_max_pool2d_2x2_rows_ties_and_nan) {
    static const double pat[8][4] = {{2, 2, 2, 2}, {1, 3, 3, 0},   {0, 1, 4, 4},   {1, 2, 3, NAN},
                                     {1, NAN, NAN, 0}, {NAN, 5, 1, NAN}, {-1, -2, -3, 5}, {0, 0, 0, 0}};
    static const int win[8] = {0, 1, 2, 3, 1, 0, 3, 0};
    const int64_t widths[3] = {2, 5, 10};
    for (int d = 0; d < 2; d++)
        for (int w = 0; w < 3; w++) {
            int64_t OW = widths[w], W = 2 * OW;
            double xv[40], gv[10], edx[40] = {0};
            for (int64_t j = 0; j < OW; j++) {
                for (int t = 0; t < 4; t++) xv[(t / 2) * W + 2 * j + t % 2] = pat[j % 8][t];
                gv[j] = (double)(j + 1);
                edx[(win[j % 8] / 2) * W + 2 * j + win[j % 8] % 2] = gv[j];
            }
            tensor *x = tensor_from_doubles(d ? DTYPE_F64 : DTYPE_F32, SHAPE(1, 1, 2, W), xv);
            tensor_set_requires_grad(x, true);
            tensor *y = tensor_max_pool2d(x, pp(2, 2, 2, 2, 0, 0, false));
            ck_assert_int_eq(y->size, OW);
            for (int64_t j = 0; j < OW; j++) {
                double want = pat[j % 8][win[j % 8]], got = tensor_get(y, j);
                ck_assert_msg(isnan(want) ? isnan(got) : got == want,
                              "width %lld window %lld: got %g, want %g", (long long)OW,
                              (long long)j, got, want);
            }
            backward_with_values(y, gv);
            ck_assert_tensor(x->grad, edx, 0);
            tape_reset();
            tensor_free(x);
        }
}
END_TEST

/* A NaN in a window wins over numbers, before or after them, on both the
 * unpadded and the padded kernels. */
START_TEST(test_max_pool2d_nan_propagates) {
    tensor *x = tensor_from_doubles(DTYPE_F32, SHAPE(1, 1, 2, 4),
                                    (double[]){1, NAN, NAN, 5, 3, 0, 2, 4});
    tensor *y = tensor_max_pool2d(x, pp(2, 2, 2, 2, 0, 0, false));
    ck_assert(isnan(tensor_get(y, 0)) && isnan(tensor_get(y, 1)));
    /* padded: output row 0 sees input row 0 only, in column pairs {0}, {1,2}, {3}:
     * [1, NaN, 5]; output row 1 sees row 1: [3, max(0, 2), 4] */
    tensor *yp = tensor_max_pool2d(x, pp(2, 2, 2, 2, 1, 1, false));
    ck_assert_int_eq(yp->size, 6);
    ck_assert(isnan(tensor_get(yp, 1)));
    tensor_set(yp, 1, 0);
    ck_assert_tensor(yp, ((double[]){1, 0, 5, 3, 2, 4}), 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* ---------------------------------------------------------------- avg */
/* Same x as the max case, 2x2 stride 2: y = [8/4, 13/4, 17/4, 11/4]; each
 * element gets its window's upstream / 4. */
START_TEST(test_avg_pool2d_forward_and_grad_2x2_stride2) {
    tensor *x = leaf(SHAPE(1, 1, 4, 4), X44);
    tensor *y = tensor_avg_pool2d(x, pp(2, 2, 2, 2, 0, 0, false));
    ck_assert_tensor(y, ((double[]){2, 3.25, 4.25, 2.75}), 1e-12);
    backward_with_values(y, (double[]){1, 2, 3, 4});
    ck_assert_tensor(x->grad, ((double[]){.25, .25, .5, .5, .25, .25, .5, .5, .75, .75, 1, 1, .75,
                                          .75, 1, 1}),
                     1e-12);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* x = 1..9 as 3x3, 2x2 stride 1: y = [12/4, 16/4, 24/4, 28/4]; with upstream
 * ones each element gets (windows holding it) / 4: corners 1, edges 2, centre 4. */
START_TEST(test_avg_pool2d_grad_overlapping_windows) {
    tensor *x = leaf(SHAPE(1, 1, 3, 3), (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
    tensor *y = tensor_avg_pool2d(x, pp(2, 2, 1, 1, 0, 0, false));
    ck_assert_tensor(y, ((double[]){3, 4, 6, 7}), 1e-12);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(x->grad, ((double[]){.25, .5, .25, .5, 1, .5, .25, .5, .25}), 1e-12);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* x = 1..9 as 3x3, 2x2 stride 2 padding 1: windows {1}, {2,3}, {4,7}, {5,6,8,9}.
 * count_include_pad: divide by 4 -> [0.25, 1.25, 2.75, 7]; every element sits in
 * one window, so upstream ones give 1/4 everywhere.
 * excluding the padding: divide by 1, 2, 2, 4 -> [1, 2.5, 5.5, 7] and the
 * gradient is 1 / (its window's count). */
START_TEST(test_avg_pool2d_padding_count_include_pad_both_ways) {
    const double xv[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    tensor *x = leaf(SHAPE(1, 1, 3, 3), xv);
    tensor *y = tensor_avg_pool2d(x, pp(2, 2, 2, 2, 1, 1, true));
    ck_assert_tensor(y, ((double[]){0.25, 1.25, 2.75, 7}), 1e-12);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(x->grad, ((double[]){.25, .25, .25, .25, .25, .25, .25, .25, .25}), 1e-12);
    tape_reset();
    tensor_free(x);

    x = leaf(SHAPE(1, 1, 3, 3), xv);
    y = tensor_avg_pool2d(x, pp(2, 2, 2, 2, 1, 1, false));
    ck_assert_tensor(y, ((double[]){1, 2.5, 5.5, 7}), 1e-12);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(x->grad, ((double[]){1, .5, .5, .5, .25, .25, .5, .25, .25}), 1e-12);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* ------------------------------------------------------ against naive */
/* Naive max and avg pooling (forward and gradient for upstream gy) straight
 * from the definitions, compared with the ops for one parameter set. */
static void check_against_naive(bool is_max, dtype dt, const int64_t *xs, pool2d_params p,
                                double tol) {
    rng g;
    rng_seed(&g, 5, 2);
    /* distinct values spread over [-2, 2): no ties, float32-friendly magnitudes */
    tensor *x64 = tg_sample_tensor_distinct(&g, 4, xs, -2, 4.0 / (double)(xs[0] * xs[1] * xs[2] * xs[3]));
    tensor *x = tensor_to_dtype(x64, dt);
    tensor_set_requires_grad(x, true);
    tensor *y = is_max ? tensor_max_pool2d(x, p) : tensor_avg_pool2d(x, p);
    ck_assert_msg(y != NULL, "%s", tapegrad_error());
    int64_t H = xs[2], W = xs[3], OH = y->shape[2], OW = y->shape[3];
    ck_assert_int_eq(OH, (H + 2 * p.padding[0] - p.kernel[0]) / p.stride[0] + 1);
    ck_assert_int_eq(OW, (W + 2 * p.padding[1] - p.kernel[1]) / p.stride[1] + 1);
    tensor *gy = tensor_rand(&g, dt, 4, y->shape, -1, 1);
    double *ey = calloc((size_t)y->size, sizeof *ey), *edx = calloc((size_t)x->size, sizeof *edx);
    for (int64_t pl = 0; pl < xs[0] * xs[1]; pl++)
        for (int64_t i = 0; i < OH; i++)
            for (int64_t j = 0; j < OW; j++) {
                int64_t o = (pl * OH + i) * OW + j, best = -1, cnt = 0;
                double acc = 0;
                for (int64_t u = 0; u < p.kernel[0]; u++)
                    for (int64_t v = 0; v < p.kernel[1]; v++) {
                        int64_t r = i * p.stride[0] - p.padding[0] + u;
                        int64_t c = j * p.stride[1] - p.padding[1] + v;
                        if (r < 0 || r >= H || c < 0 || c >= W) continue;
                        int64_t at = (pl * H + r) * W + c;
                        if (best < 0 || tensor_get(x, at) > tensor_get(x, best)) best = at;
                        acc += tensor_get(x, at), cnt++;
                    }
                if (is_max) {
                    ey[o] = tensor_get(x, best);
                    edx[best] += tensor_get(gy, o);
                    continue;
                }
                double n = p.count_include_pad ? p.kernel[0] * p.kernel[1] : (double)cnt;
                ey[o] = acc / n;
                for (int64_t u = 0; u < p.kernel[0]; u++)
                    for (int64_t v = 0; v < p.kernel[1]; v++) {
                        int64_t r = i * p.stride[0] - p.padding[0] + u;
                        int64_t c = j * p.stride[1] - p.padding[1] + v;
                        if (r >= 0 && r < H && c >= 0 && c < W)
                            edx[(pl * H + r) * W + c] += tensor_get(gy, o) / n;
                    }
            }
    ck_assert_tensor(y, ey, tol);
    ck_assert_int_eq(tensor_backward_with(y, gy), 0);
    ck_assert_tensor(x->grad, edx, tol);
    free(ey), free(edx);
    tape_reset();
    tensor_free(x64), tensor_free(x), tensor_free(gy);
}

START_TEST(test_max_pool2d_matches_naive) {
    check_against_naive(true, DTYPE_F64, (int64_t[]){2, 3, 7, 9}, pp(3, 2, 2, 3, 1, 1, false), 1e-12);
    check_against_naive(true, DTYPE_F64, (int64_t[]){1, 2, 8, 8}, pp(3, 3, 1, 1, 1, 1, false), 1e-12);
    check_against_naive(true, DTYPE_F64, (int64_t[]){3, 2, 5, 6}, pp(2, 2, 3, 2, 0, 1, false), 1e-12);
    /* LeNet's pool, float32, large enough for the parallel loop */
    check_against_naive(true, DTYPE_F32, (int64_t[]){16, 6, 28, 28}, pp(2, 2, 2, 2, 0, 0, false), 1e-5);
    /* 2x2 stride 2 on odd sizes: the last row and column are in no window */
    check_against_naive(true, DTYPE_F64, (int64_t[]){2, 3, 9, 11}, pp(2, 2, 2, 2, 0, 0, false), 1e-12);
    check_against_naive(true, DTYPE_F64, (int64_t[]){1, 2, 5, 19}, pp(2, 2, 2, 2, 0, 0, false), 1e-12);
}
END_TEST

START_TEST(test_avg_pool2d_matches_naive) {
    check_against_naive(false, DTYPE_F64, (int64_t[]){2, 3, 7, 9}, pp(3, 2, 2, 3, 1, 1, false), 1e-12);
    check_against_naive(false, DTYPE_F64, (int64_t[]){2, 3, 7, 9}, pp(3, 2, 2, 3, 1, 1, true), 1e-12);
    check_against_naive(false, DTYPE_F64, (int64_t[]){1, 2, 8, 8}, pp(3, 3, 1, 1, 1, 1, true), 1e-12);
    check_against_naive(false, DTYPE_F64, (int64_t[]){3, 2, 5, 6}, pp(2, 2, 3, 2, 0, 1, false), 1e-12);
    check_against_naive(false, DTYPE_F32, (int64_t[]){16, 6, 28, 28}, pp(2, 2, 2, 2, 0, 0, true), 1e-5);
}
END_TEST

/* 2 threads give the same bits as 1 thread (planes are split whole). */
static void pool_run(int threads, bool is_max, pool2d_params p, tensor **res) {
    tapegrad_set_threads(threads);
    rng g;
    rng_seed(&g, 9, 0);
    tensor *x = tensor_rand(&g, DTYPE_F32, SHAPE(16, 6, 28, 28), -1, 1);
    tensor_set_requires_grad(x, true);
    tensor *y = is_max ? tensor_max_pool2d(x, p) : tensor_avg_pool2d(x, p);
    tensor *gy = tensor_rand(&g, DTYPE_F32, 4, y->shape, -1, 1);
    ck_assert_int_eq(tensor_backward_with(y, gy), 0);
    res[0] = tensor_clone(y), res[1] = tensor_clone(x->grad);
    tape_reset();
    tensor_free(x), tensor_free(gy);
}

START_TEST(test_pool2d_threads_bit_identical) {
    const pool2d_params ps[2] = {pp(2, 2, 2, 2, 0, 0, false), pp(3, 3, 2, 2, 1, 1, false)};
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < 2; k++) {
            tensor *one[2], *two[2];
            pool_run(1, m, ps[k], one);
            pool_run(2, m, ps[k], two);
            for (int i = 0; i < 2; i++) {
                ck_assert_msg(memcmp(one[i]->data, two[i]->data, (size_t)one[i]->size * 4) == 0,
                              "%s case %d result %d differs between 1 and 2 threads",
                              m ? "max" : "avg", k, i);
                tensor_free(one[i]), tensor_free(two[i]);
            }
        }
    tapegrad_set_threads(1);
}
END_TEST

/* ------------------------------------- central differences, registry cases */
/* Every registry sample, two seeds: central differences on the input (and
 * the vacuity check), pure forward, float32 against float64. */
START_TEST(test_max_pool2d_grad_central_differences_all_samples) {
    ck_assert_int_ge(numeric_check_op("max_pool2d", 200, 2, CHECK_ALL), 8);
}
END_TEST

START_TEST(test_avg_pool2d_grad_central_differences_all_samples) {
    ck_assert_int_ge(numeric_check_op("avg_pool2d", 200, 2, CHECK_ALL), 12);
}
END_TEST

/* ----------------------------------------------------------- errors */
static void expect_error(tensor *x, pool2d_params p, const char *msg) {
    tensor *(*fns[2])(tensor *, pool2d_params) = {tensor_max_pool2d, tensor_avg_pool2d};
    const char *names[2] = {"max_pool2d", "avg_pool2d"};
    for (int f = 0; f < 2; f++) {
        tapegrad_error_clear();
        ck_assert_ptr_null(fns[f](x, p));
        ck_assert_ptr_nonnull(tapegrad_error());
        char want[512];
        snprintf(want, sizeof want, "%s: %s", names[f], msg);
        ck_assert_str_eq(tapegrad_error(), want);
    }
    tapegrad_error_clear();
}

START_TEST(test_pool2d_error_not_4d) {
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(6, 28, 28));
    expect_error(x, pp(2, 2, 2, 2, 0, 0, false), "input must be 4-D (B, C, H, W), got [6,28,28]");
    tensor_free(x);
}
END_TEST

START_TEST(test_pool2d_error_bad_kernel_or_stride) {
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(1, 1, 6, 6));
    expect_error(x, pp(0, 2, 2, 2, 0, 0, false), "kernel [0,2] and stride [2,2] must be >= 1");
    expect_error(x, pp(2, 2, 2, 0, 0, 0, false), "kernel [2,2] and stride [2,0] must be >= 1");
    tensor_free(x);
}
END_TEST

START_TEST(test_pool2d_error_bad_padding) {
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(1, 1, 6, 6));
    expect_error(x, pp(3, 3, 1, 1, 2, 1, false),
                 "padding [2,1] must be >= 0 and at most half the kernel [3,3]");
    expect_error(x, pp(2, 2, 1, 1, 0, -1, false),
                 "padding [0,-1] must be >= 0 and at most half the kernel [2,2]");
    tensor_free(x);
}
END_TEST

START_TEST(test_pool2d_error_kernel_larger_than_padded_input) {
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(1, 1, 3, 8));
    expect_error(x, pp(6, 2, 1, 1, 1, 0, false),
                 "kernel [6,2] larger than padded input 5x8 (input [1,1,3,8], padding [1,0])");
    tensor_free(x);
}
END_TEST

START_TEST(test_pool2d_error_int64_and_null_input) {
    tensor *x = tensor_zeros(DTYPE_I64, SHAPE(1, 1, 4, 4));
    expect_error(x, pp(2, 2, 2, 2, 0, 0, false), "input 0 is int64; this op needs float32 or float64");
    expect_error(NULL, pp(2, 2, 2, 2, 0, 0, false), "input 0 is NULL");
    tensor_free(x);
}
END_TEST

/* Every variant's 2x2 stride-2 max kernel (ops/pool_kernels.c) against the
 * naive one, in both dtypes, on planes 2..35 wide (rows of 1..17 outputs, so
 * the chunks of 8, 4 and 1 and the shifted last chunk all run, plus an odd
 * last column in no window) whose values are drawn from {-2..2} with NaNs
 * sprinkled in: ties and NaNs at every tap position. The values and the
 * argmax offsets must agree exactly; an output the kernel skipped keeps the
 * sentinel and fails. */
START_TEST(test_max_pool2d_2x2_kernels_match_naive_every_variant) {
    rng g;
    rng_seed(&g, 7, 3);
    enum { HMAX = 7, WMAX = 35 };
    float xf[HMAX * WMAX], yf[HMAX * WMAX], nf[HMAX * WMAX];
    double xd[HMAX * WMAX], yd[HMAX * WMAX], nd[HMAX * WMAX];
    int64_t idx[HMAX * WMAX], nidx[HMAX * WMAX];
    int variants = 0;
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported((isa_level)v)) continue;
        variants++;
        const pool_kernels *k = tg_pool_kernels_of((isa_level)v);
        for (int64_t W = 2; W <= WMAX; W++) {
            for (int64_t H = 2; H <= HMAX; H++) {
                int64_t OH = H / 2, OW = W / 2;
                for (int64_t i = 0; i < H * W; i++) {
                    uint32_t r = rng_below(&g, 23);
                    xd[i] = r < 3 ? NAN : (double)(r % 5) - 2.0 + (r % 7 == 0 ? 0.5 : 0.0);
                    xf[i] = (float)xd[i];
                }
                for (int64_t i = 0; i < OH * OW; i++) yf[i] = 99.f, yd[i] = 99.0, idx[i] = -7;
                k->max_2x2_float(xf, W, OH, OW, yf, idx);
                tg_pool_max_2x2_naive_float(xf, W, OH, OW, nf, nidx);
                for (int64_t i = 0; i < OH * OW; i++) {
                    ck_assert_msg(idx[i] == nidx[i], "%s float %lldx%lld output %lld: at %lld, naive %lld",
                                  tg_isa_name((isa_level)v), (long long)H, (long long)W, (long long)i,
                                  (long long)idx[i], (long long)nidx[i]);
                    ck_assert(memcmp(&yf[i], &nf[i], sizeof(float)) == 0);
                }
                for (int64_t i = 0; i < OH * OW; i++) idx[i] = -7;
                k->max_2x2_double(xd, W, OH, OW, yd, idx);
                tg_pool_max_2x2_naive_double(xd, W, OH, OW, nd, nidx);
                for (int64_t i = 0; i < OH * OW; i++) {
                    ck_assert_msg(idx[i] == nidx[i], "%s double %lldx%lld output %lld: at %lld, naive %lld",
                                  tg_isa_name((isa_level)v), (long long)H, (long long)W, (long long)i,
                                  (long long)idx[i], (long long)nidx[i]);
                    ck_assert(memcmp(&yd[i], &nd[i], sizeof(double)) == 0);
                }
            }
        }
    }
    ck_assert_int_ge(variants, 1);
}
END_TEST

/* The tap form of every variant's kernel (conv2d_max_pool2d's) and its
 * adjoint, on the same planes as above: each tap names the naive kernel's
 * argmax, (2 i + t / 2) W + 2 j + t % 2, with the same maxima; the adjoint,
 * into a plane filled with a NaN sentinel first, writes every element: g at
 * the naive argmax, 0 everywhere else (the odd last row and column too),
 * bit for bit; with rows 3 further apart than W, it writes 0 in each row's
 * gap but the last's, and nothing past the plane's end; a dead tap (4) gets
 * its window four zeros. g's bits pass unchanged, -0 and NaN among them, in
 * the vector form and in the scalar one (rows of 1-3 outputs, the last row). */
START_TEST(test_max_pool2d_2x2_taps_and_adjoint_every_variant) {
    rng g;
    rng_seed(&g, 8, 5);
    enum { HMAX = 7, WMAX = 35, GAP = 3 };
    double xd[HMAX * WMAX], yd[HMAX * WMAX], nd[HMAX * WMAX], gd[HMAX * WMAX];
    float xf[HMAX * WMAX], yf[HMAX * WMAX], nf[HMAX * WMAX], gf[HMAX * WMAX];
    double dd[HMAX * (WMAX + GAP)];
    float df[HMAX * (WMAX + GAP)];
    int64_t nidx[HMAX * WMAX];
    int32_t code[HMAX * WMAX];
    int variants = 0;
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported((isa_level)v)) continue;
        variants++;
        const pool_kernels *k = tg_pool_kernels_of((isa_level)v);
        for (int64_t W = 2; W <= WMAX; W++)
            for (int64_t H = 2; H <= HMAX; H++) {
                const int64_t OH = H / 2, OW = W / 2;
                for (int64_t i = 0; i < H * W; i++) {
                    uint32_t r = rng_below(&g, 23);
                    xd[i] = r < 3 ? NAN : (double)(r % 5) - 2.0 + (r % 7 == 0 ? 0.5 : 0.0);
                    xf[i] = (float)xd[i];
                }
                for (int64_t i = 0; i < OH * OW; i++) {
                    gd[i] = i % 7 == 3 ? -0.0 : i % 11 == 5 ? -NAN : 1.0 + rng_uniform(&g);
                    gf[i] = (float)gd[i];
                }
                for (int d = 0; d < 2; d++) {
                    for (int64_t i = 0; i < OH * OW; i++) code[i] = -1;
                    if (d) {
                        k->max_2x2_code_float(xf, W, OH, OW, yf, code);
                        tg_pool_max_2x2_naive_float(xf, W, OH, OW, nf, nidx);
                    } else {
                        k->max_2x2_code_double(xd, W, OH, OW, yd, code);
                        tg_pool_max_2x2_naive_double(xd, W, OH, OW, nd, nidx);
                    }
                    for (int64_t i = 0; i < OH * OW; i++) {
                        const int64_t oi = i / OW, oj = i % OW, t = code[i];
                        ck_assert_msg(t >= 0 && t < 4 && (2 * oi + t / 2) * W + 2 * oj + t % 2 == nidx[i],
                                      "%s %s %lldx%lld output %lld: tap %lld, naive offset %lld",
                                      tg_isa_name((isa_level)v), d ? "float" : "double", (long long)H,
                                      (long long)W, (long long)i, (long long)t, (long long)nidx[i]);
                        ck_assert(d ? memcmp(&yf[i], &nf[i], sizeof(float)) == 0
                                    : memcmp(&yd[i], &nd[i], sizeof(double)) == 0);
                    }
                    /* every fifth window dead (conv.h's CONV_TAP_DEAD, 4: the
                     * relu form's), its four elements 0 */
                    for (int64_t i = 2; i < OH * OW; i += 5) code[i] = 4;
                    /* rows W apart, and GAP apart (the wide layout: zeros in
                     * each row's gap but the last's; nothing written past) */
                    for (int64_t ld = W; ld <= W + GAP; ld += GAP) {
                        const int64_t n = (H - 1) * ld + W;
                        for (int64_t i = 0; i < n + GAP; i++) dd[i] = NAN, df[i] = NAN;
                        if (d)
                            k->unpool_2x2_code_float(gf, code, OH, OW, H, W, ld, df);
                        else
                            k->unpool_2x2_code_double(gd, code, OH, OW, H, W, ld, dd);
                        for (int64_t e = 0; e < n + GAP; e++) {
                            const int64_t r = e / ld, c = e % ld, i = r * W + c;
                            double want = e >= n ? NAN : 0;
                            for (int64_t o = 0; c < W && e < n && o < OH * OW; o++)
                                if (nidx[o] == i && code[o] != 4) want = d ? (double)gf[o] : gd[o];
                            const double got = d ? (double)df[e] : dd[e];
                            ck_assert_msg(e >= n ? isnan(got) : memcmp(&got, &want, sizeof got) == 0,
                                          "%s %s %lldx%lld, rows %lld apart, adjoint element %lld: "
                                          "%g, want %g",
                                          tg_isa_name((isa_level)v), d ? "float" : "double",
                                          (long long)H, (long long)W, (long long)ld, (long long)e,
                                          got, want);
                        }
                    }
                }
            }
    }
    ck_assert_int_ge(variants, 1);
}
END_TEST

/* The naive kernel itself, on one hand-checked plane (4 x 5, OW = 2):
 * window (0,0) = {1, 3 | 3, 0}: the tie goes to the first 3, offset 1;
 * window (0,1) = {2, NaN | NaN, 9}: the first NaN, offset 3;
 * window (1,0) = {-1, -4 | 5, 5}: the first 5, offset 15;
 * window (1,1) = {0, 0 | 0, 0}: offset 12. */
START_TEST(test_max_pool2d_2x2_naive_hand_checked) {
    const float x[20] = {1, 3, 2, NAN, 8, 3, 0, NAN, 9, 8, -1, -4, 0, 0, 8, 5, 5, 0, 0, 8};
    float y[4];
    int64_t idx[4];
    tg_pool_max_2x2_naive_float(x, 5, 2, 2, y, idx);
    const int64_t want[4] = {1, 3, 15, 12};
    for (int i = 0; i < 4; i++) ck_assert_int_eq(idx[i], want[i]);
    ck_assert(y[0] == 3.f && isnan(y[1]) && y[2] == 5.f && y[3] == 0.f);
}
END_TEST

Suite *pool_suite(void) {
    Suite *s = suite_create("ops_pool");
    TCase *tc = tcase_create("pool2d");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_max_pool2d_forward_and_grad_2x2_stride2);
    tcase_add_test(tc, test_max_pool2d_2x2_taps_and_adjoint_every_variant);
    tcase_add_test(tc, test_max_pool2d_grad_overlapping_windows_accumulate);
    tcase_add_test(tc, test_max_pool2d_padding_is_minus_infinity);
    tcase_add_test(tc, test_max_pool2d_2x2_rows_ties_and_nan);
    tcase_add_test(tc, test_max_pool2d_tie_goes_to_first_in_window_order);
    tcase_add_test(tc, test_max_pool2d_nan_propagates);
    tcase_add_test(tc, test_avg_pool2d_forward_and_grad_2x2_stride2);
    tcase_add_test(tc, test_avg_pool2d_grad_overlapping_windows);
    tcase_add_test(tc, test_avg_pool2d_padding_count_include_pad_both_ways);
    tcase_add_test(tc, test_max_pool2d_matches_naive);
    tcase_add_test(tc, test_max_pool2d_2x2_kernels_match_naive_every_variant);
    tcase_add_test(tc, test_max_pool2d_2x2_naive_hand_checked);
    tcase_add_test(tc, test_avg_pool2d_matches_naive);
    tcase_add_test(tc, test_pool2d_threads_bit_identical);
    tcase_add_test(tc, test_max_pool2d_grad_central_differences_all_samples);
    tcase_add_test(tc, test_avg_pool2d_grad_central_differences_all_samples);
    tcase_add_test(tc, test_pool2d_error_not_4d);
    tcase_add_test(tc, test_pool2d_error_bad_kernel_or_stride);
    tcase_add_test(tc, test_pool2d_error_bad_padding);
    tcase_add_test(tc, test_pool2d_error_kernel_larger_than_padded_input);
    tcase_add_test(tc, test_pool2d_error_int64_and_null_input);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(pool_suite)
