/* test_ops_conv.c - conv2d against hand-computed values, against a naive
 * direct convolution written here (forward and all three gradients, for
 * stride, padding, dilation, groups, no bias and batches), against central
 * differences over the registry's sample cases, and every error path. */
#include <string.h>
#include <strings.h>
#include <omp.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../autograd/internal.h"
#include "../ops/conv.h"
#include "../ops/isa.h"
#include "check_main.h"
#include "ops_test.h"

static tensor *rand_leaf(rng *g, dtype dt, int ndim, const int64_t *shape) {
    tensor *t = tensor_rand(g, dt, ndim, shape, -1.0, 1.0);
    tensor_set_requires_grad(t, true);
    return t;
}

static conv2d_params params(int sh, int sw, int ph, int pw, int dh, int dw, int groups) {
    return (conv2d_params){{sh, sw}, {ph, pw}, {dh, dw}, groups};
}

/* ------------------------------------------------ naive direct reference */
/* The oracle every path of conv2d is held to: the convolution as plain loops
 * over every output pixel and tap, in float64 whatever the dtype under test,
 * forward and both gradients side by side (after llm.c's reference kernels).
 * With g = o / (OC/G) the group of output channel o, ci = g C/G + c,
 * ih = i sh - ph + u dh, iw = j sw - pw + v dw, and x = 0 in the padding:
 *
 *   y[b, o, i, j]   = bias[o] + sum_{c, u, v} w[o, c, u, v] x[b, ci, ih, iw]
 *   dx[b, ci, ih, iw] += w[o, c, u, v] gy[b, o, i, j]     over (o, i, j, u, v)
 *   dw[o, c, u, v]    += x[b, ci, ih, iw] gy[b, o, i, j]  over (b, i, j)
 *   db[o]             += gy[b, o, i, j]                   over (b, i, j)
 *
 * x (B, C, H, W), w (OC, C/G, KH, KW), y and gy (B, OC, OH, OW). */
typedef struct {
    int64_t B, C, H, W, OC, KH, KW, OH, OW, G;
    conv2d_params p;
} geom;

static geom geom_of(const tensor *x, const tensor *w, conv2d_params p) {
    geom q = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2],
              w->shape[3], 0, 0, p.groups, p};
    q.OH = (q.H + 2 * p.padding[0] - p.dilation[0] * (q.KH - 1) - 1) / p.stride[0] + 1;
    q.OW = (q.W + 2 * p.padding[1] - p.dilation[1] * (q.KW - 1) - 1) / p.stride[1] + 1;
    return q;
}

/* The index in x of tap (c, u, v) of output pixel (b, o, i, j), or -1 in
 * the padding. */
static int64_t naive_x_at(const geom *q, int64_t b, int64_t o, int64_t i, int64_t j, int64_t c,
                          int64_t u, int64_t v) {
    int64_t ci = o / (q->OC / q->G) * (q->C / q->G) + c;
    int64_t ih = i * q->p.stride[0] - q->p.padding[0] + u * q->p.dilation[0];
    int64_t iw = j * q->p.stride[1] - q->p.padding[1] + v * q->p.dilation[1];
    if (ih < 0 || ih >= q->H || iw < 0 || iw >= q->W) return -1;
    return ((b * q->C + ci) * q->H + ih) * q->W + iw;
}

/* y = x * w + bias (bias may be NULL) */
static void naive_conv2d_forward(const geom *q, const double *x, const double *w,
                                 const double *bias, double *y) {
    for (int64_t b = 0; b < q->B; b++)
        for (int64_t o = 0; o < q->OC; o++)
            for (int64_t i = 0; i < q->OH; i++)
                for (int64_t j = 0; j < q->OW; j++) {
                    double s = bias ? bias[o] : 0;
                    for (int64_t c = 0; c < q->C / q->G; c++)
                        for (int64_t u = 0; u < q->KH; u++)
                            for (int64_t v = 0; v < q->KW; v++) {
                                int64_t xi = naive_x_at(q, b, o, i, j, c, u, v);
                                if (xi >= 0) s += w[((o * (q->C / q->G) + c) * q->KH + u) * q->KW + v] * x[xi];
                            }
                    y[((b * q->OC + o) * q->OH + i) * q->OW + j] = s;
                }
}

/* dx, dw, db = the gradients of sum(y gy); each zeroed here */
static void naive_conv2d_backward(const geom *q, const double *x, const double *w,
                                  const double *gy, double *dx, double *dw, double *db) {
    memset(dx, 0, (size_t)(q->B * q->C * q->H * q->W) * sizeof *dx);
    memset(dw, 0, (size_t)(q->OC * (q->C / q->G) * q->KH * q->KW) * sizeof *dw);
    memset(db, 0, (size_t)q->OC * sizeof *db);
    for (int64_t b = 0; b < q->B; b++)
        for (int64_t o = 0; o < q->OC; o++)
            for (int64_t i = 0; i < q->OH; i++)
                for (int64_t j = 0; j < q->OW; j++) {
                    double g = gy[((b * q->OC + o) * q->OH + i) * q->OW + j];
                    db[o] += g;
                    for (int64_t c = 0; c < q->C / q->G; c++)
                        for (int64_t u = 0; u < q->KH; u++)
                            for (int64_t v = 0; v < q->KW; v++) {
                                int64_t xi = naive_x_at(q, b, o, i, j, c, u, v);
                                int64_t wi = ((o * (q->C / q->G) + c) * q->KH + u) * q->KW + v;
                                if (xi < 0) continue;
                                dx[xi] += w[wi] * g;
                                dw[wi] += x[xi] * g;
                            }
                }
}

/* A tensor's values in float64 (NULL for NULL); free() the result. */
static double *values(const tensor *t) {
    if (!t) return NULL;
    double *v = malloc((size_t)t->size * sizeof *v);
    for (int64_t i = 0; i < t->size; i++) v[i] = tensor_get(t, i);
    return v;
}

/* Checks forward and the three gradients of tensor_conv2d against the naive
 * loops, for a random upstream gradient. */
static void check_against_naive(dtype dt, const int64_t *xs, const int64_t *ws, bool bias,
                                conv2d_params p, double tol) {
    rng g;
    rng_seed(&g, 7, 1);
    tensor *x = rand_leaf(&g, dt, 4, xs), *w = rand_leaf(&g, dt, 4, ws);
    tensor *b = bias ? rand_leaf(&g, dt, 1, ws) : NULL;
    tensor *y = tensor_conv2d(x, w, b, p);
    ck_assert_msg(y != NULL, "conv2d failed: %s", tapegrad_error());
    geom q = geom_of(x, w, p);
    ck_assert_int_eq(y->shape[2], q.OH);
    ck_assert_int_eq(y->shape[3], q.OW);
    tensor *gy = tensor_rand(&g, dt, 4, y->shape, -1.0, 1.0);
    double *xv = values(x), *wv = values(w), *bv = values(b), *gv = values(gy);
    double *ey = malloc((size_t)y->size * sizeof *ey), *edx = malloc((size_t)x->size * sizeof *edx);
    double *edw = malloc((size_t)w->size * sizeof *edw), *edb = malloc((size_t)ws[0] * sizeof *edb);
    naive_conv2d_forward(&q, xv, wv, bv, ey);
    naive_conv2d_backward(&q, xv, wv, gv, edx, edw, edb);
    ck_assert_tensor(y, ey, tol);
    ck_assert_int_eq(tensor_backward_with(y, gy), 0);
    ck_assert_tensor(x->grad, edx, tol);
    ck_assert_tensor(w->grad, edw, tol);
    if (b) ck_assert_tensor(b->grad, edb, tol);
    free(xv), free(wv), free(bv), free(gv);
    free(ey), free(edx), free(edw), free(edb);
    tape_reset();
    tensor_free(x), tensor_free(w), tensor_free(b), tensor_free(gy);
}

/* ------------------------------------------------------ hand-computed */
/* x[i][j] = 4i + j + 1 (1..16), w = [[1, 2], [-1, 0.5]], b = 0.25:
 *   y[i][j] = x[i][j] + 2 x[i][j+1] - x[i+1][j] + 0.5 x[i+1][j+1] + 0.25
 *           = 2.5 (4i + j) + 3.25.
 * With upstream ones: dW[u][v] = sum of the 3x3 block of x at (u, v)
 *   = 9 (4u + v) + 54 -> [54, 63, 90, 99]; db = 9;
 * dx[p][q] = sum of the taps w[p-i][q-j] that touch it: corners are single
 * taps (1, 2, -1, 0.5), edges pairs (1+2, 1-1, 2+0.5, -1+0.5), inside all 2.5. */
START_TEST(test_conv2d_forward_and_grad_4x4_kernel_2x2) {
    double xv[16];
    for (int k = 0; k < 16; k++) xv[k] = k + 1;
    tensor *x = leaf( SHAPE(1, 1, 4, 4), xv);
    tensor *w = leaf( SHAPE(1, 1, 2, 2), (double[]){1, 2, -1, 0.5});
    tensor *b = leaf( SHAPE(1), (double[]){0.25});
    tensor *y = tensor_conv2d(x, w, b, CONV2D_DEFAULT);
    ck_assert_int_eq(y->ndim, 4);
    ck_assert_int_eq(y->shape[2], 3);
    ck_assert_int_eq(y->shape[3], 3);
    ck_assert_tensor(y, ((double[]){3.25, 5.75, 8.25, 13.25, 15.75, 18.25, 23.25, 25.75, 28.25}),
                     1e-12);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(w->grad, ((double[]){54, 63, 90, 99}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){9}), 1e-12);
    ck_assert_tensor(x->grad, ((double[]){1, 3, 3, 2, 0, 2.5, 2.5, 2.5, 0, 2.5, 2.5, 2.5, -1, -0.5,
                                          -0.5, 0.5}),
                     1e-12);
    tape_reset();
    tensor_free(x), tensor_free(w), tensor_free(b);
}
END_TEST

/* x = [[1, 2], [3, 4]], w[u][v] = 3u + v + 1 (1..9), padding 1, no bias:
 *   y[i][j] = sum_{u,v} w[u][v] x[i-1+u][j-1+v]
 *   y = [[5+12+24+36, 4+10+21+32], [2+6+15+24, 1+4+12+20]] = [[77, 67], [47, 37]].
 * Upstream ones: dx[p][q] = sum_{i,j} w[p-i+1][q-j+1]
 *   = [[w11+w10+w01+w00, w12+w11+w02+w01], [w21+w20+w11+w10, w22+w21+w12+w11]]
 *   = [[12, 16], [24, 28]];
 * dW[u][v] = sum of x over rows R(u), cols R(v), R(0) = {0}, R(1) = {0,1}, R(2) = {1}
 *   = [[1, 3, 2], [4, 10, 6], [3, 7, 4]]. */
START_TEST(test_conv2d_forward_and_grad_padding_1_no_bias) {
    tensor *x = leaf( SHAPE(1, 1, 2, 2), (double[]){1, 2, 3, 4});
    tensor *w = leaf( SHAPE(1, 1, 3, 3), (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
    tensor *y = tensor_conv2d(x, w, NULL, params(1, 1, 1, 1, 1, 1, 1));
    ck_assert_tensor(y, ((double[]){77, 67, 47, 37}), 1e-12);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(x->grad, ((double[]){12, 16, 24, 28}), 1e-12);
    ck_assert_tensor(w->grad, ((double[]){1, 3, 2, 4, 10, 6, 3, 7, 4}), 1e-12);
    tape_reset();
    tensor_free(x), tensor_free(w);
}
END_TEST

/* Same x and w, stride 2: only y[0][0] = 77 survives; its taps touch
 * dx = [[w11, w12], [w21, w22]] = [[5, 6], [8, 9]] and dW = x placed at
 * (1..2, 1..2) of a zero 3x3. */
START_TEST(test_conv2d_forward_and_grad_stride2_padding_1) {
    tensor *x = leaf( SHAPE(1, 1, 2, 2), (double[]){1, 2, 3, 4});
    tensor *w = leaf( SHAPE(1, 1, 3, 3), (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
    tensor *y = tensor_conv2d(x, w, NULL, params(2, 2, 1, 1, 1, 1, 1));
    ck_assert_int_eq(y->size, 1);
    ck_assert_tensor(y, ((double[]){77}), 1e-12);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(x->grad, ((double[]){5, 6, 8, 9}), 1e-12);
    ck_assert_tensor(w->grad, ((double[]){0, 0, 0, 0, 1, 2, 0, 3, 4}), 1e-12);
    tape_reset();
    tensor_free(x), tensor_free(w);
}
END_TEST

/* ------------------------------------------------------ against naive */
START_TEST(test_conv2d_matches_naive_batch_nonsquare) {
    check_against_naive(DTYPE_F64, (int64_t[]){3, 2, 7, 5}, (int64_t[]){4, 2, 3, 2}, true,
                        CONV2D_DEFAULT, 1e-12);
}
END_TEST

START_TEST(test_conv2d_matches_naive_stride2) {
    check_against_naive(DTYPE_F64, (int64_t[]){2, 3, 9, 8}, (int64_t[]){2, 3, 3, 3}, true,
                        params(2, 2, 0, 0, 1, 1, 1), 1e-12);
}
END_TEST

START_TEST(test_conv2d_matches_naive_stride_3x1_padding_2x1) {
    check_against_naive(DTYPE_F64, (int64_t[]){2, 2, 8, 6}, (int64_t[]){3, 2, 4, 3}, true,
                        params(3, 1, 2, 1, 1, 1, 1), 1e-12);
}
END_TEST

START_TEST(test_conv2d_matches_naive_dilation2) {
    check_against_naive(DTYPE_F64, (int64_t[]){2, 2, 9, 10}, (int64_t[]){3, 2, 3, 3}, true,
                        params(1, 1, 1, 2, 2, 2, 1), 1e-12);
}
END_TEST

START_TEST(test_conv2d_matches_naive_groups2) {
    check_against_naive(DTYPE_F64, (int64_t[]){2, 4, 6, 6}, (int64_t[]){6, 2, 3, 3}, true,
                        params(1, 1, 1, 1, 1, 1, 2), 1e-12);
}
END_TEST

START_TEST(test_conv2d_matches_naive_depthwise_stride2_dilation2) {
    check_against_naive(DTYPE_F64, (int64_t[]){2, 3, 9, 9}, (int64_t[]){3, 1, 2, 3}, false,
                        params(2, 2, 1, 1, 2, 2, 3), 1e-12);
}
END_TEST

START_TEST(test_conv2d_matches_naive_no_bias) {
    check_against_naive(DTYPE_F64, (int64_t[]){1, 3, 5, 6}, (int64_t[]){2, 3, 2, 3}, false,
                        params(2, 1, 0, 1, 1, 1, 1), 1e-12);
}
END_TEST

/* Rows much wider than the kernel take the wide-column path (the LeNet case
 * of the narrow rows above takes the tight one): unpadded through SGEMM, and
 * with a contraction short enough for the direct forward and weight
 * gradient, padded and unpadded (where the last, partial vector of the
 * weight gradient's sum ends at the input's last element: L = 2 * 40 + 38 =
 * 118, not a multiple of the vector). OC 4 and 5 and K 18 leave blocks of
 * output channels and taps with remainders. */
START_TEST(test_conv2d_matches_naive_wide_rows) {
    check_against_naive(DTYPE_F64, (int64_t[]){2, 4, 9, 30}, (int64_t[]){3, 4, 3, 3}, true,
                        CONV2D_DEFAULT, 1e-12);
    check_against_naive(DTYPE_F64, (int64_t[]){2, 2, 6, 30}, (int64_t[]){5, 2, 3, 3}, true,
                        params(1, 1, 1, 1, 1, 1, 1), 1e-12);
    check_against_naive(DTYPE_F64, (int64_t[]){2, 2, 5, 40}, (int64_t[]){4, 2, 3, 3}, true,
                        CONV2D_DEFAULT, 1e-12);
    check_against_naive(DTYPE_F32, (int64_t[]){2, 2, 5, 40}, (int64_t[]){4, 2, 3, 3}, false,
                        CONV2D_DEFAULT, 1e-4);
}
END_TEST

/* The direct forward stores its output row by row from blocks of 16 (float64)
 * or 32 (float32) wide pixels. 1x1 kernels keep rows shorter than half a
 * block on that path (OW 6 and 10): every row goes through the buffer, and
 * the blocks of the later rows are shifted back to end at L = 5 * 6 + 6 = 36
 * and 5 * 10 + 10 = 60 (the direct path needs L >= 32). OW 14 of 16 (float64)
 * stores whole blocks that spill into the next row; with OC 5, blocks of
 * output channels with remainders. */
START_TEST(test_conv2d_matches_naive_direct_short_rows) {
    check_against_naive(DTYPE_F64, (int64_t[]){2, 3, 6, 6}, (int64_t[]){4, 3, 1, 1}, true,
                        CONV2D_DEFAULT, 1e-12);
    check_against_naive(DTYPE_F32, (int64_t[]){2, 2, 6, 10}, (int64_t[]){3, 2, 1, 1}, true,
                        CONV2D_DEFAULT, 1e-4);
    check_against_naive(DTYPE_F64, (int64_t[]){2, 2, 5, 16}, (int64_t[]){5, 2, 2, 3}, true,
                        CONV2D_DEFAULT, 1e-12);
}
END_TEST

/* Whole vectors of output channels per group (8 in float64) take the direct
 * weight gradient; here with groups, padding and dilation. */
START_TEST(test_conv2d_matches_naive_direct_weight_grad) {
    check_against_naive(DTYPE_F64, (int64_t[]){2, 4, 7, 6}, (int64_t[]){16, 2, 3, 2}, true,
                        params(1, 1, 1, 0, 1, 2, 2), 1e-12);
    check_against_naive(DTYPE_F64, (int64_t[]){3, 3, 6, 6}, (int64_t[]){8, 3, 3, 3}, false,
                        params(1, 1, 1, 1, 1, 1, 1), 1e-12);
}
END_TEST

/* The LeNet shapes at a small batch, in float32 (large enough for the
 * parallel loops when threads are on). */
START_TEST(test_conv2d_matches_naive_lenet_f32) {
    check_against_naive(DTYPE_F32, (int64_t[]){2, 1, 28, 28}, (int64_t[]){6, 1, 5, 5}, true,
                        params(1, 1, 2, 2, 1, 1, 1), 1e-4);
    check_against_naive(DTYPE_F32, (int64_t[]){2, 6, 14, 14}, (int64_t[]){16, 6, 5, 5}, true,
                        CONV2D_DEFAULT, 1e-4);
}
END_TEST

/* 2 threads give the same bits as 1 thread, forward and backward: batch 16
 * is two chunks of the dW sum. */
static void run_threads(int threads, const int64_t *xs, const int64_t *ws, conv2d_params p,
                        tensor **res) {
    tapegrad_set_threads(threads);
    rng g;
    rng_seed(&g, 3, 0);
    tensor *x = rand_leaf(&g, DTYPE_F32, 4, xs);
    tensor *w = rand_leaf(&g, DTYPE_F32, 4, ws);
    tensor *b = rand_leaf(&g, DTYPE_F32, 1, ws);
    tensor *y = tensor_conv2d(x, w, b, p);
    tensor *gy = tensor_rand(&g, DTYPE_F32, 4, y->shape, -1, 1);
    ck_assert_int_eq(tensor_backward_with(y, gy), 0);
    res[0] = tensor_clone(y), res[1] = tensor_clone(x->grad);
    res[2] = tensor_clone(w->grad), res[3] = tensor_clone(b->grad);
    tape_reset();
    tensor_free(x), tensor_free(w), tensor_free(b), tensor_free(gy);
}

static void check_threads(const int64_t *xs, const int64_t *ws, conv2d_params p) {
    tensor *one[4], *two[4];
    run_threads(1, xs, ws, p, one);
    run_threads(2, xs, ws, p, two);
    tapegrad_set_threads(1);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(one[i]->size, two[i]->size);
        ck_assert_msg(memcmp(one[i]->data, two[i]->data, (size_t)one[i]->size * 4) == 0,
                      "result %d differs between 1 and 2 threads", i);
        tensor_free(one[i]), tensor_free(two[i]);
    }
}

START_TEST(test_conv2d_threads_bit_identical) {
    /* LeNet conv2 (wide columns, transposed dW), conv1 (padded), and strided */
    check_threads((int64_t[]){16, 6, 14, 14}, (int64_t[]){16, 6, 5, 5}, CONV2D_DEFAULT);
    check_threads((int64_t[]){16, 1, 28, 28}, (int64_t[]){6, 1, 5, 5}, params(1, 1, 2, 2, 1, 1, 1));
    check_threads((int64_t[]){16, 4, 15, 15}, (int64_t[]){8, 2, 3, 3}, params(2, 2, 1, 1, 1, 1, 2));
}
END_TEST

/* One thread unless asked (issue: 2 spinning threads ran a step 5x slower
 * than one on a busy machine): without OMP_NUM_THREADS the library starts
 * on one thread, and conv2d's images are not split. */
START_TEST(test_threads_default_one) {
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && *env) return; /* the user's choice is honoured instead */
    ck_assert_int_eq(tapegrad_threads(), 1);
}
END_TEST

/* The threshold for a parallel region follows how the threads wait: spinning
 * threads make a region cheap (PARALLEL_MIN_ELEMS), sleeping ones
 * (OMP_WAIT_POLICY=passive) cost a wake-up each (PARALLEL_MIN_PASSIVE); the
 * threshold in force is the one for this process's environment. */
START_TEST(test_parallel_threshold_follows_wait_policy) {
    ck_assert_int_eq(tg_parallel_min_for(NULL), PARALLEL_MIN_ELEMS);
    ck_assert_int_eq(tg_parallel_min_for(""), PARALLEL_MIN_ELEMS);
    ck_assert_int_eq(tg_parallel_min_for("active"), PARALLEL_MIN_ELEMS);
    ck_assert_int_eq(tg_parallel_min_for("passive"), PARALLEL_MIN_PASSIVE);
    ck_assert_int_eq(tg_parallel_min_for("PASSIVE"), PARALLEL_MIN_PASSIVE);
    ck_assert(PARALLEL_MIN_PASSIVE > PARALLEL_MIN_ELEMS);
    const char *policy = getenv("OMP_WAIT_POLICY");
    ck_assert_int_eq(tg_parallel_min(), tg_parallel_min_for(policy));
    /* and so does how the convolutions share images (dynamic when sleeping) */
    ck_assert_int_eq(tg_threads_sleep(), policy && strcasecmp(policy, "passive") == 0);
}
END_TEST

/* tg_par_items, the convolutions' threads under passive waiting: every item
 * runs exactly once, on a slot below the thread count, with the body flag
 * set; a call from inside a body runs its items in order on that thread. Runs
 * back to back find the workers spinning, runs 300 us apart asleep (past
 * TG_PAR_SPIN_US), and the team shrinks and grows between runs. */
typedef struct {
    int count[70];
    int slot_bad, flag_bad, nested_bad;
    int threads;
} par_probe;

static void par_nested(void *ctx, int64_t i, int slot) {
    int *order = ctx;
    if (slot != 0 || order[0] != i) order[1] = 1; /* in order, on the caller */
    order[0]++;
}

static void par_count(void *ctx, int64_t i, int slot) {
    par_probe *p = ctx;
    __atomic_add_fetch(&p->count[i], 1, __ATOMIC_RELAXED);
    if (slot < 0 || slot >= p->threads) __atomic_store_n(&p->slot_bad, 1, __ATOMIC_RELAXED);
    if (!tg_par_in_body()) __atomic_store_n(&p->flag_bad, 1, __ATOMIC_RELAXED);
    if (i == 1) { /* a nested call */
        int order[2] = {0, 0};
        tg_par_items(5, p->threads, par_nested, order);
        if (order[0] != 5 || order[1]) __atomic_store_n(&p->nested_bad, 1, __ATOMIC_RELAXED);
    }
    for (volatile int k = 0; k < 2000; k++) {} /* some work, so both threads take items */
}

static void par_run_checked(int threads, int64_t n) {
    par_probe p = {.threads = threads};
    tg_par_items(n, threads, par_count, &p);
    for (int64_t i = 0; i < n; i++) ck_assert_int_eq(p.count[i], 1);
    for (int64_t i = n; i < 70; i++) ck_assert_int_eq(p.count[i], 0);
    ck_assert(!p.slot_bad && !p.flag_bad && !p.nested_bad);
    ck_assert(!tg_par_in_body());
}

START_TEST(test_par_items_each_item_once) {
    const int64_t sizes[] = {0, 1, 2, 3, 7, 64, 70};
    for (int round = 0; round < 40; round++)
        for (int threads = 1; threads <= 4; threads++)
            for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
                par_run_checked(threads, sizes[k]);
                if (round % 4 == 3) {
                    struct timespec t = {0, 300 * 1000};
                    nanosleep(&t, NULL);
                }
            }
}
END_TEST

/* From OpenMP's threads, two runs at once would share the workers: each
 * runs on its own thread instead. */
START_TEST(test_par_items_inside_openmp_region) {
    for (int round = 0; round < 30; round++) {
        par_probe p[2] = {{.threads = 2}, {.threads = 2}};
        int ran[2] = {0, 0};
#pragma omp parallel num_threads(2)
        {
            int t = omp_get_thread_num();
#pragma omp barrier
            if (t < 2) { /* both at once */
                tg_par_items(64, 2, par_count, &p[t]);
                ran[t] = 1;
            }
        }
        for (int t = 0; t < 2; t++) {
            if (!ran[t]) continue; /* a team of one (OMP_THREAD_LIMIT) */
            for (int i = 0; i < 64; i++) ck_assert_int_eq(p[t].count[i], 1);
            ck_assert(!p[t].slot_bad && !p[t].flag_bad && !p[t].nested_bad);
        }
        ck_assert(ran[0]);
    }
}
END_TEST

/* A forked child has none of its parent's workers: it starts its own. */
START_TEST(test_par_items_after_fork) {
    par_run_checked(2, 64); /* the parent's workers are running */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        par_probe p = {.threads = 3};
        tg_par_items(64, 3, par_count, &p);
        int ok = !p.slot_bad && !p.flag_bad && !p.nested_bad;
        for (int i = 0; i < 64; i++) ok = ok && p.count[i] == 1;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    par_run_checked(2, 64); /* and the parent's still answer */
}
END_TEST

/* An empty batch gives an empty output and no work. */
START_TEST(test_conv2d_empty_batch) {
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(0, 2, 6, 6));
    tensor *w = tensor_zeros(DTYPE_F32, SHAPE(3, 2, 3, 3));
    tensor_set_requires_grad(w, true);
    tensor *y = tensor_conv2d(x, w, NULL, CONV2D_DEFAULT);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->size, 0);
    ck_assert_int_eq(y->shape[1], 3);
    tape_reset();
    tensor_free(x), tensor_free(w);
}
END_TEST

/* db = sum over (b, i, j) of the upstream gradient when the bias is the only
 * input that wants a gradient (the vjp then computes no dW, and db is summed
 * image by image into the chunk parts without dW), and when only the input
 * and the bias do. Batch 11: two chunks, the second partial. LeNet's conv1
 * (direct, padded) and conv2 (output channels in the lanes). */
static void check_bias_grad_alone(const int64_t *xs, const int64_t *ws, conv2d_params p,
                                  bool x_grad) {
    rng g;
    rng_seed(&g, 13, 0);
    tensor *x = tensor_rand(&g, DTYPE_F32, 4, xs, -1.0, 1.0);
    tensor *w = tensor_rand(&g, DTYPE_F32, 4, ws, -1.0, 1.0);
    tensor *b = rand_leaf(&g, DTYPE_F32, 1, ws);
    tensor_set_requires_grad(x, x_grad);
    tensor *y = tensor_conv2d(x, w, b, p);
    ck_assert_msg(y != NULL, "%s", tapegrad_error());
    tensor *gy = tensor_rand(&g, DTYPE_F32, 4, y->shape, -1.0, 1.0);
    ck_assert_int_eq(tensor_backward_with(y, gy), 0);
    ck_assert_ptr_null(w->grad);
    double *edb = calloc((size_t)ws[0], sizeof *edb);
    int64_t P = y->shape[2] * y->shape[3];
    for (int64_t k = 0; k < y->size; k++) edb[k / P % ws[0]] += tensor_get(gy, k);
    ck_assert_tensor(b->grad, edb, 1e-4);
    free(edb);
    tape_reset();
    tensor_free(x), tensor_free(w), tensor_free(b), tensor_free(gy);
}

START_TEST(test_conv2d_bias_grad_alone) {
    for (int x_grad = 0; x_grad < 2; x_grad++) {
        check_bias_grad_alone((int64_t[]){11, 1, 28, 28}, (int64_t[]){6, 1, 5, 5},
                              params(1, 1, 2, 2, 1, 1, 1), x_grad);
        check_bias_grad_alone((int64_t[]){11, 6, 14, 14}, (int64_t[]){16, 6, 5, 5},
                              CONV2D_DEFAULT, x_grad);
    }
}
END_TEST

/* Running backward twice accumulates exactly twice the gradient (the vjp
 * must not consume its saved columns). */
START_TEST(test_conv2d_backward_twice_accumulates) {
    rng g;
    rng_seed(&g, 11, 0);
    tensor *x = rand_leaf(&g, DTYPE_F64, SHAPE(2, 2, 5, 5));
    tensor *w = rand_leaf(&g, DTYPE_F64, SHAPE(3, 2, 3, 3));
    tensor *y = tensor_sum_all(tensor_conv2d(x, w, NULL, params(1, 1, 1, 1, 1, 1, 1)));
    ck_assert_int_eq(tensor_backward(y), 0);
    tensor *dx1 = tensor_clone(x->grad), *dw1 = tensor_clone(w->grad);
    ck_assert_int_eq(tensor_backward(y), 0);
    for (int64_t i = 0; i < x->size; i++)
        ck_assert_close(tensor_get(x->grad, i), 2 * tensor_get(dx1, i), 1e-12);
    for (int64_t i = 0; i < w->size; i++)
        ck_assert_close(tensor_get(w->grad, i), 2 * tensor_get(dw1, i), 1e-12);
    tape_reset();
    tensor_free(x), tensor_free(w), tensor_free(dx1), tensor_free(dw1);
}
END_TEST

/* ------------------------------------- central differences, registry cases */
/* Every registry sample of conv2d, two seeds: central differences on every
 * input (and the vacuity check), pure forward, float32 against float64. */
START_TEST(test_conv2d_grad_central_differences_all_samples) {
    ck_assert_int_ge(numeric_check_op("conv2d", 100, 2, CHECK_ALL), 12);
}
END_TEST

/* ------------------------------------------------------ ISA variants */
/* make check runs this file once per variant the CPU has, with
 * TAPEGRAD_ISA set: the variant in use is the one asked for (so the forced
 * runs test what they claim), or without it the best the CPU supports. */
START_TEST(test_isa_follows_tapegrad_isa) {
    const char *env = getenv("TAPEGRAD_ISA"), *got = tapegrad_isa();
    ck_assert_msg(got != NULL, "tapegrad_isa: %s", tapegrad_error());
    if (env && *env) {
        ck_assert_str_eq(got, env);
    } else {
        int best = ISA_V2;
        while (best + 1 < ISA_COUNT && tg_isa_supported(best + 1)) best++;
        ck_assert_str_eq(got, tg_isa_name(best));
    }
}
END_TEST

/* x * w with params p takes the kernels with the output channels in the
 * lanes, both ways, on v3. */
static void expect_lanes(dtype dt, const int64_t *xs, const int64_t *ws, conv2d_params p) {
    tensor *x = tensor_zeros(dt, 4, xs), *w = tensor_zeros(dt, 4, ws);
    conv_paths c;
    ck_assert_int_eq(tg_conv2d_paths(x, w, p, ISA_V3, &c), 0);
    ck_assert_int_eq(c.fwd, CONV_FWD_LANES);
    ck_assert_int_eq(c.dw, CONV_DW_LANES);
    tensor_free(x), tensor_free(w);
}

/* Every variant the CPU runs computes what the naive loops compute, on the
 * shapes that reach each path: LeNet's conv1 (direct forward, direct wide
 * weight gradient) and conv2 (channels in the lanes both ways), wide and
 * tight columns through SGEMM, strided plain columns. */
START_TEST(test_conv2d_every_variant_matches_naive) {
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported(v)) continue;
        ck_assert_int_eq(tg_isa_select(tg_isa_name(v)), 0);
        ck_assert_str_eq(tapegrad_isa(), tg_isa_name(v));
        check_against_naive(DTYPE_F32, (int64_t[]){2, 1, 28, 28}, (int64_t[]){6, 1, 5, 5}, true,
                            params(1, 1, 2, 2, 1, 1, 1), 1e-4);
        check_against_naive(DTYPE_F32, (int64_t[]){2, 6, 14, 14}, (int64_t[]){16, 6, 5, 5}, true,
                            CONV2D_DEFAULT, 1e-4);
        check_against_naive(DTYPE_F64, (int64_t[]){2, 4, 9, 30}, (int64_t[]){3, 4, 3, 3}, true,
                            CONV2D_DEFAULT, 1e-12);
        check_against_naive(DTYPE_F64, (int64_t[]){2, 3, 8, 8}, (int64_t[]){5, 3, 5, 5}, true,
                            CONV2D_DEFAULT, 1e-12);
        check_against_naive(DTYPE_F64, (int64_t[]){2, 3, 9, 8}, (int64_t[]){2, 3, 3, 3}, true,
                            params(2, 2, 0, 0, 1, 1, 1), 1e-12);
        /* the register blocks' edges with the output channels in the lanes, in both
         * dtypes: 24 channels (an odd vector left over where two vectors make a
         * block), 7 taps a row (more than a block: split 4 + 3), 14 pixels a row
         * (blocks of 5 or 7, the last shifted back); 8 channels a group and
         * dilated taps (the kernels' one-vector, one-tap form) */
        for (int d = 0; d < 2; d++) {
            dtype dt = d ? DTYPE_F32 : DTYPE_F64;
            double tol = d ? 1e-4 : 1e-12;
            if (v == ISA_V3) { /* these shapes do reach the lanes kernels there */
                expect_lanes(dt, (int64_t[]){2, 3, 9, 20}, (int64_t[]){24, 3, 3, 7}, CONV2D_DEFAULT);
                expect_lanes(dt, (int64_t[]){2, 4, 8, 12}, (int64_t[]){16, 2, 3, 3},
                             params(1, 1, 1, 1, 2, 2, 2));
                expect_lanes(dt, (int64_t[]){1, 2, 7, 9}, (int64_t[]){8, 2, 2, 3},
                             params(1, 1, 0, 2, 1, 1, 1));
            }
            check_against_naive(dt, (int64_t[]){2, 3, 9, 20}, (int64_t[]){24, 3, 3, 7}, true,
                                CONV2D_DEFAULT, tol);
            check_against_naive(dt, (int64_t[]){2, 4, 8, 12}, (int64_t[]){16, 2, 3, 3}, true,
                                params(1, 1, 1, 1, 2, 2, 2), tol);
            check_against_naive(dt, (int64_t[]){1, 2, 7, 9}, (int64_t[]){8, 2, 2, 3}, false,
                                params(1, 1, 0, 2, 1, 1, 1), tol);
            /* tight columns with 10 taps a kernel row: the gather takes kw in
             * passes of at most 8 (CONV_GATHER_KW), so a second pass adds into
             * dx; 3 columns of padding each side */
            {
                tensor *x = tensor_zeros(dt, 4, (int64_t[]){2, 2, 5, 16});
                tensor *w = tensor_zeros(dt, 4, (int64_t[]){3, 2, 2, 10});
                conv_paths c;
                conv2d_params p = params(1, 1, 0, 3, 1, 1, 1);
                ck_assert_int_eq(tg_conv2d_paths(x, w, p, v, &c), 0);
                ck_assert_int_eq(c.dx, CONV_DX_TIGHT);
                tensor_free(x), tensor_free(w);
                check_against_naive(dt, (int64_t[]){2, 2, 5, 16}, (int64_t[]){3, 2, 2, 10}, true, p,
                                    tol);
            }
        }
    }
    ck_assert_int_eq(tg_isa_select(getenv("TAPEGRAD_ISA")), 0);
}
END_TEST

/* Every path of every direction, on every variant the CPU runs, in float32
 * and float64, computes what the naive loops compute: the registry's sample
 * cases reach every path (the test below), with stride, padding, dilation,
 * groups and no bias among them; each runs here against the oracle, and
 * the paths each variant and dtype took are counted, so a case list that
 * stops reaching one fails here too. */
START_TEST(test_conv2d_every_path_on_every_variant_matches_naive) {
    const op_def *op = op_find("conv2d");
    ck_assert_ptr_nonnull(op);
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported(v)) continue;
        ck_assert_int_eq(tg_isa_select(tg_isa_name(v)), 0);
        for (int d = 0; d < 2; d++) {
            dtype dt = d ? DTYPE_F32 : DTYPE_F64;
            int fwd[CONV_FWD_PATHS] = {0}, dw[CONV_DW_PATHS] = {0}, dx[CONV_DX_PATHS] = {0};
            for (int k = 0;; k++) {
                op_sample smp;
                memset(&smp, 0, sizeof smp);
                rng g;
                rng_seed(&g, 1, (uint64_t)k);
                int rc = op->sample(k, &g, &smp);
                if (rc == 1) break;
                ck_assert_int_eq(rc, 0);
                const tensor *x = smp.inputs[0], *w = smp.inputs[1];
                conv2d_params p = {{(int)smp.ip[0], (int)smp.ip[1]}, {(int)smp.ip[2], (int)smp.ip[3]},
                                   {(int)smp.ip[4], (int)smp.ip[5]}, (int)smp.ip[6]};
                tensor *xt = tensor_to_dtype(x, dt), *wt = tensor_to_dtype(w, dt);
                conv_paths c;
                ck_assert_int_eq(tg_conv2d_paths(xt, wt, p, v, &c), 0);
                fwd[c.fwd]++, dw[c.dw]++, dx[c.dx]++;
                check_against_naive(dt, x->shape, w->shape, smp.n_inputs > 2, p,
                                    dt == DTYPE_F32 ? 1e-4 : 1e-12);
                tensor_free(xt), tensor_free(wt);
                for (int i = 0; i < smp.n_inputs; i++) tensor_free(smp.inputs[i]);
            }
            for (int i = 0; i < CONV_FWD_PATHS; i++)
                ck_assert_msg(fwd[i], "%s %s: forward path %d not checked", tg_isa_name(v), tg_dtype_name(dt), i);
            for (int i = 0; i < CONV_DW_PATHS; i++)
                ck_assert_msg(dw[i], "%s %s: weight-gradient path %d not checked", tg_isa_name(v),
                              tg_dtype_name(dt), i);
            for (int i = 0; i < CONV_DX_PATHS; i++)
                ck_assert_msg(dx[i], "%s %s: input-gradient path %d not checked", tg_isa_name(v),
                              tg_dtype_name(dt), i);
        }
    }
    ck_assert_int_eq(tg_isa_select(getenv("TAPEGRAD_ISA")), 0);
}
END_TEST

/* The registry's sample cases (which the gradient checks run, in float64
 * and again in float32) reach every path of every direction on every
 * variant, in both dtypes: the paths depend on the variant's vector width,
 * so a case list that covers one variant's paths may miss another's. */
START_TEST(test_conv2d_samples_reach_every_path_on_every_variant) {
    const op_def *op = op_find("conv2d");
    ck_assert_ptr_nonnull(op);
    for (int v = 0; v < ISA_COUNT; v++)
        for (int d = 0; d < 2; d++) {
            dtype dt = d ? DTYPE_F32 : DTYPE_F64;
            bool fwd[CONV_FWD_PATHS] = {0}, dw[CONV_DW_PATHS] = {0}, dx[CONV_DX_PATHS] = {0};
            for (int k = 0;; k++) {
                op_sample smp;
                memset(&smp, 0, sizeof smp);
                rng g;
                rng_seed(&g, 1, (uint64_t)k);
                int rc = op->sample(k, &g, &smp);
                if (rc == 1) break;
                ck_assert_int_eq(rc, 0);
                tensor *x = tensor_to_dtype(smp.inputs[0], dt), *w = tensor_to_dtype(smp.inputs[1], dt);
                conv2d_params p = {{(int)smp.ip[0], (int)smp.ip[1]}, {(int)smp.ip[2], (int)smp.ip[3]},
                                   {(int)smp.ip[4], (int)smp.ip[5]}, (int)smp.ip[6]};
                conv_paths c;
                ck_assert_int_eq(tg_conv2d_paths(x, w, p, v, &c), 0);
                fwd[c.fwd] = dw[c.dw] = dx[c.dx] = true;
                tensor_free(x), tensor_free(w);
                for (int i = 0; i < smp.n_inputs; i++) tensor_free(smp.inputs[i]);
            }
            for (int i = 0; i < CONV_FWD_PATHS; i++)
                ck_assert_msg(fwd[i], "%s %s: no sample takes forward path %d", tg_isa_name(v), tg_dtype_name(dt), i);
            for (int i = 0; i < CONV_DW_PATHS; i++)
                ck_assert_msg(dw[i], "%s %s: no sample takes weight-gradient path %d", tg_isa_name(v),
                              tg_dtype_name(dt), i);
            for (int i = 0; i < CONV_DX_PATHS; i++)
                ck_assert_msg(dx[i], "%s %s: no sample takes input-gradient path %d", tg_isa_name(v),
                              tg_dtype_name(dt), i);
        }
}
END_TEST

/* A TAPEGRAD_ISA that names no variant, or one the CPU lacks (a CPU with v2
 * and v3 only, as a Zen 2), is refused, not replaced: tapegrad_isa() gives
 * NULL and conv2d refuses to run, both with the reason. */
static void expect_isa_refusal(const char *msg) {
    tapegrad_error_clear();
    ck_assert_ptr_null(tapegrad_isa());
    ck_assert_str_eq(tapegrad_error(), msg);
    tapegrad_error_clear();
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(1, 1, 4, 4)), *w = tensor_zeros(DTYPE_F32, SHAPE(1, 1, 2, 2));
    ck_assert_ptr_null(tensor_conv2d(x, w, NULL, CONV2D_DEFAULT));
    ck_assert_str_eq(tapegrad_error(), msg);
    tapegrad_error_clear();
    tensor_free(x), tensor_free(w);
}

START_TEST(test_isa_refuses_unknown_variant) {
    ck_assert_int_eq(tg_isa_select("avx2"), -1);
    expect_isa_refusal("TAPEGRAD_ISA=avx2 names no kernel variant (v2, v3 or v4)");
    ck_assert_int_eq(tg_isa_select(getenv("TAPEGRAD_ISA")), 0);
    ck_assert_ptr_nonnull(tapegrad_isa());
}
END_TEST

START_TEST(test_isa_refuses_variant_the_cpu_lacks) {
    unsigned zen2 = 1u << ISA_V2 | 1u << ISA_V3;
    ck_assert_int_eq(tg_isa_select_cpu("v4", zen2), -1);
    expect_isa_refusal("TAPEGRAD_ISA=v4: this CPU lacks x86-64-v4 (AVX-512); it runs up to v3");
    ck_assert_int_eq(tg_isa_select_cpu("v3", zen2), 0);
    ck_assert_str_eq(tapegrad_isa(), "v3");
    ck_assert_int_eq(tg_isa_select_cpu(NULL, zen2), 0);
    ck_assert_str_eq(tapegrad_isa(), "v3");
    ck_assert_int_eq(tg_isa_select(getenv("TAPEGRAD_ISA")), 0);
}
END_TEST

/* ------------------------------------ conv2d then max pooling, one node */
static const pool2d_params pool2 = {{2, 2}, {2, 2}, {0, 0}, false};

/* y and the gradients of x, w (and b) for the upstream gradient gy seeded
 * by seed, of the fused node (fused) or of max_pool2d(conv2d(...)), with
 * relu: of conv2d_max_pool2d_relu or relu(max_pool2d(conv2d(...))), on
 * `threads` threads; in[] are cast to dt. */
static void pool_run(bool fused, bool relu, int threads, dtype dt, tensor *const *in, int n_in,
                     conv2d_params p, tensor **res) {
    tapegrad_set_threads(threads);
    tensor *t[3] = {NULL, NULL, NULL};
    for (int i = 0; i < n_in; i++) {
        t[i] = tensor_to_dtype(in[i], dt);
        tensor_set_requires_grad(t[i], true);
    }
    tensor *y = fused ? (relu ? tensor_conv2d_max_pool2d_relu : tensor_conv2d_max_pool2d)(
                            t[0], t[1], t[2], p, pool2)
                      : tensor_max_pool2d(tensor_conv2d(t[0], t[1], t[2], p), pool2);
    if (relu && !fused) y = tensor_relu(y);
    ck_assert_msg(y != NULL, "%s", tapegrad_error());
    /* the fused form is one node, the ops one each */
    ck_assert_int_eq(tg_tape_node_count(), fused ? 1 : relu ? 3 : 2);
    ck_assert_str_eq(tg_tape_node_at(tg_tape_node_count() - 1)->op->name,
                     fused ? (relu ? "conv2d_max_pool2d_relu" : "conv2d_max_pool2d")
                           : (relu ? "relu" : "max_pool2d"));
    rng g;
    rng_seed(&g, 5, 2);
    tensor *gy = tensor_rand(&g, dt, 4, y->shape, -1.0, 1.0);
    ck_assert_int_eq(tensor_backward_with(y, gy), 0);
    res[0] = tensor_clone(y);
    for (int i = 0; i < 3; i++) res[i + 1] = t[i] ? tensor_clone(t[i]->grad) : NULL;
    tape_reset();
    for (int i = 0; i < 3; i++) tensor_free(t[i]);
    tensor_free(gy);
    tapegrad_set_threads(1);
}

/* The fused results of the case equal the two ops' bit for bit (one thread),
 * and the fused ones on two threads equal them too; with relu, the relu
 * form's equal relu of the two ops'. */
static void expect_pool_bits(const char *what, bool relu, dtype dt, tensor *const *in, int n_in,
                             conv2d_params p) {
    tensor *two_ops[4], *fused[4], *fused2[4];
    pool_run(false, relu, 1, dt, in, n_in, p, two_ops);
    pool_run(true, relu, 1, dt, in, n_in, p, fused);
    pool_run(true, relu, 2, dt, in, n_in, p, fused2);
    static const char *const names[4] = {"y", "dx", "dw", "db"};
    for (int i = 0; i < 4; i++) {
        ck_assert_msg((two_ops[i] == NULL) == (fused[i] == NULL), "%s: %s", what, names[i]);
        if (!two_ops[i]) continue;
        const size_t bytes = (size_t)two_ops[i]->size * tg_dtype_size(dt);
        ck_assert_int_eq(fused[i]->size, two_ops[i]->size);
        ck_assert_msg(memcmp(fused[i]->data, two_ops[i]->data, bytes) == 0, "%s %s %s%s: %s differs from the ops'",
                      tapegrad_isa(), tg_dtype_name(dt), what, relu ? " (relu)" : "", names[i]);
        ck_assert_msg(memcmp(fused2[i]->data, two_ops[i]->data, bytes) == 0,
                      "%s %s %s%s: %s on two threads differs", tapegrad_isa(), tg_dtype_name(dt), what,
                      relu ? " (relu)" : "", names[i]);
        tensor_free(two_ops[i]), tensor_free(fused[i]), tensor_free(fused2[i]);
    }
}

/* Every sample case of conv2d_max_pool2d (conv2d's, reaching each of its
 * paths on some variant; odd outputs among them) and LeNet-5's two layers,
 * on every variant the CPU runs, in float32 and float64: the fused node's
 * output and its three gradients are those of max_pool2d(conv2d(...)), and
 * the relu form's those of relu(max_pool2d(conv2d(...))) (about half its
 * windows dead: their gradient 0). */
START_TEST(test_conv2d_max_pool2d_equals_the_two_ops_every_variant) {
    const op_def *op = op_find("conv2d_max_pool2d");
    ck_assert_ptr_nonnull(op);
    rng g;
    rng_seed(&g, 9, 4);
    tensor *lenet[2][3] = {
        {tensor_rand(&g, DTYPE_F64, SHAPE(9, 1, 28, 28), -1, 1), tensor_rand(&g, DTYPE_F64, SHAPE(6, 1, 5, 5), -1, 1),
         tensor_rand(&g, DTYPE_F64, SHAPE(6), -1, 1)},
        {tensor_rand(&g, DTYPE_F64, SHAPE(9, 6, 14, 14), -1, 1), tensor_rand(&g, DTYPE_F64, SHAPE(16, 6, 5, 5), -1, 1),
         tensor_rand(&g, DTYPE_F64, SHAPE(16), -1, 1)},
    };
    int cases = 0;
    for (int v = 0; v < ISA_COUNT; v++) {
        if (!tg_isa_supported(v)) continue;
        ck_assert_int_eq(tg_isa_select(tg_isa_name(v)), 0);
        for (int d = 0; d < 2; d++) {
            dtype dt = d ? DTYPE_F32 : DTYPE_F64;
            for (int relu = 0; relu < 2; relu++) {
                expect_pool_bits("LeNet-5 conv1", relu, dt, lenet[0], 3, params(1, 1, 2, 2, 1, 1, 1));
                expect_pool_bits("LeNet-5 conv2", relu, dt, lenet[1], 3, CONV2D_DEFAULT);
            }
            for (int k = 0;; k++) {
                op_sample smp;
                memset(&smp, 0, sizeof smp);
                rng_seed(&g, 1, (uint64_t)k);
                int rc = op->sample(k, &g, &smp);
                if (rc == 1) break;
                ck_assert_int_eq(rc, 0);
                conv2d_params p = {{(int)smp.ip[0], (int)smp.ip[1]}, {(int)smp.ip[2], (int)smp.ip[3]},
                                   {(int)smp.ip[4], (int)smp.ip[5]}, (int)smp.ip[6]};
                expect_pool_bits(smp.name, false, dt, smp.inputs, smp.n_inputs, p);
                expect_pool_bits(smp.name, true, dt, smp.inputs, smp.n_inputs, p);
                for (int i = 0; i < smp.n_inputs; i++) tensor_free(smp.inputs[i]);
                cases++;
            }
        }
    }
    ck_assert_int_ge(cases, 18);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) tensor_free(lenet[i][j]);
    ck_assert_int_eq(tg_isa_select(getenv("TAPEGRAD_ISA")), 0);
}
END_TEST

START_TEST(test_conv2d_max_pool2d_grad_central_differences_all_samples) {
    ck_assert_int_ge(numeric_check_op("conv2d_max_pool2d", 300, 2, CHECK_ALL), 12);
    ck_assert_int_ge(numeric_check_op("conv2d_max_pool2d_relu", 300, 2, CHECK_ALL), 12);
}
END_TEST

/* Any other pool is the two ops (their nodes, their errors); the fused op's
 * own errors name it. */
START_TEST(test_conv2d_max_pool2d_other_pools_and_errors) {
    rng g;
    rng_seed(&g, 2, 2);
    tensor *x = rand_leaf(&g, DTYPE_F64, SHAPE(2, 3, 9, 9)), *w = rand_leaf(&g, DTYPE_F64, SHAPE(4, 3, 3, 3));
    const pool2d_params p3 = {{3, 3}, {2, 2}, {1, 1}, false};
    tensor *y = tensor_conv2d_max_pool2d(x, w, NULL, CONV2D_DEFAULT, p3);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(tg_tape_node_count(), 2);
    ck_assert_str_eq(tg_tape_node_at(1)->op->name, "max_pool2d");
    tensor *ref = tensor_max_pool2d(tensor_conv2d(x, w, NULL, CONV2D_DEFAULT), p3);
    ck_assert_int_eq(memcmp(y->data, ref->data, (size_t)y->size * sizeof(double)), 0);
    tape_reset();
    /* the relu form: the three ops */
    y = tensor_conv2d_max_pool2d_relu(x, w, NULL, CONV2D_DEFAULT, p3);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(tg_tape_node_count(), 3);
    ck_assert_str_eq(tg_tape_node_at(2)->op->name, "relu");
    ref = tensor_relu(tensor_max_pool2d(tensor_conv2d(x, w, NULL, CONV2D_DEFAULT), p3));
    ck_assert_int_eq(memcmp(y->data, ref->data, (size_t)y->size * sizeof(double)), 0);
    tape_reset();
    /* a 1-row output has no 2x2 window: max_pool2d's own refusal */
    tensor *w9 = rand_leaf(&g, DTYPE_F64, SHAPE(4, 3, 9, 3));
    tapegrad_error_clear();
    ck_assert_ptr_null(tensor_conv2d_max_pool2d(x, w9, NULL, CONV2D_DEFAULT, pool2));
    ck_assert_str_eq(tapegrad_error(), "max_pool2d: kernel [2,2] larger than padded input 1x7 "
                                       "(input [2,4,1,7], padding [0,0])");
    tape_reset();
    /* the relu form's: max_pool2d's refusal passes through its relu unchanged */
    tapegrad_error_clear();
    ck_assert_ptr_null(tensor_conv2d_max_pool2d_relu(x, w9, NULL, CONV2D_DEFAULT, pool2));
    ck_assert_str_eq(tapegrad_error(), "max_pool2d: kernel [2,2] larger than padded input 1x7 "
                                       "(input [2,4,1,7], padding [0,0])");
    ck_assert_int_eq(tg_tape_node_count(), 1); /* the conv2d node only */
    tape_reset();
    /* conv2d's checks, named as the fused op's */
    tensor *w6 = rand_leaf(&g, DTYPE_F64, SHAPE(16, 6, 5, 5));
    tapegrad_error_clear();
    ck_assert_ptr_null(tensor_conv2d_max_pool2d(x, w6, NULL, CONV2D_DEFAULT, pool2));
    ck_assert_str_eq(tapegrad_error(),
                     "conv2d_max_pool2d: conv2d: input channels 3 do not match weight [16,6,5,5] (groups 1)");
    tapegrad_error_clear();
    ck_assert_ptr_null(tensor_conv2d_max_pool2d_relu(x, w6, NULL, CONV2D_DEFAULT, pool2));
    ck_assert_str_eq(tapegrad_error(), "conv2d_max_pool2d_relu: conv2d: input channels 3 do not match "
                                       "weight [16,6,5,5] (groups 1)");
    tapegrad_error_clear();
    ck_assert_ptr_null(tensor_conv2d_max_pool2d(NULL, w, NULL, CONV2D_DEFAULT, pool2));
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "conv2d_max_pool2d: "));
    tensor *b5 = rand_leaf(&g, DTYPE_F64, SHAPE(5));
    tapegrad_error_clear();
    ck_assert_ptr_null(tensor_conv2d_max_pool2d(x, w, b5, CONV2D_DEFAULT, pool2));
    ck_assert_str_eq(tapegrad_error(), "conv2d_max_pool2d: conv2d: bias must be [4] for weight [4,3,3,3], got [5]");
    tapegrad_error_clear();
    tape_reset();
    /* an empty batch: an empty pooled output, and a backward through it */
    tensor *x0 = rand_leaf(&g, DTYPE_F64, SHAPE(0, 3, 9, 9));
    tensor *y0 = tensor_conv2d_max_pool2d(x0, w, NULL, CONV2D_DEFAULT, pool2);
    ck_assert_ptr_nonnull(y0);
    ck_assert_int_eq(y0->ndim, 4);
    ck_assert_int_eq(y0->shape[0], 0);
    ck_assert_int_eq(y0->shape[1], 4);
    ck_assert_int_eq(y0->shape[2], 3);
    ck_assert_int_eq(y0->shape[3], 3);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y0)), 0);
    ck_assert_double_eq(tensor_get(w->grad, 0), 0.0);
    tape_reset();
    tensor_free(x), tensor_free(w), tensor_free(w9), tensor_free(w6), tensor_free(b5), tensor_free(x0);
}
END_TEST

/* ----------------------------------------------------------- errors */
static void expect_error(tensor *x, tensor *w, tensor *b, conv2d_params p, const char *msg) {
    tapegrad_error_clear();
    ck_assert_ptr_null(tensor_conv2d(x, w, b, p));
    ck_assert_ptr_nonnull(tapegrad_error());
    ck_assert_str_eq(tapegrad_error(), msg);
    tapegrad_error_clear();
}

START_TEST(test_conv2d_error_channel_mismatch) {
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(2, 3, 14, 14));
    tensor *w = tensor_zeros(DTYPE_F32, SHAPE(16, 6, 5, 5));
    expect_error(x, w, NULL, CONV2D_DEFAULT,
                 "conv2d: input channels 3 do not match weight [16,6,5,5] (groups 1)");
    tensor_free(x), tensor_free(w);
}
END_TEST

START_TEST(test_conv2d_error_groups_do_not_divide) {
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(1, 3, 8, 8));
    tensor *w = tensor_zeros(DTYPE_F32, SHAPE(4, 1, 3, 3));
    expect_error(x, w, NULL, params(1, 1, 0, 0, 1, 1, 2),
                 "conv2d: groups 2 must divide input channels 3 and output channels 4 "
                 "(input [1,3,8,8], weight [4,1,3,3])");
    tensor *x4 = tensor_zeros(DTYPE_F32, SHAPE(1, 4, 8, 8));
    tensor *w3 = tensor_zeros(DTYPE_F32, SHAPE(3, 2, 3, 3));
    expect_error(x4, w3, NULL, params(1, 1, 0, 0, 1, 1, 2),
                 "conv2d: groups 2 must divide input channels 4 and output channels 3 "
                 "(input [1,4,8,8], weight [3,2,3,3])");
    tensor_free(x), tensor_free(w), tensor_free(x4), tensor_free(w3);
}
END_TEST

START_TEST(test_conv2d_error_kernel_larger_than_padded_input) {
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(1, 1, 4, 4));
    tensor *w = tensor_zeros(DTYPE_F32, SHAPE(1, 1, 5, 5));
    expect_error(x, w, NULL, CONV2D_DEFAULT,
                 "conv2d: kernel [1,1,5,5] (dilated 5x5) larger than padded input 4x4 "
                 "(input [1,1,4,4], padding [0,0])");
    /* padding 1 makes room; dilation 2 takes it away again */
    tensor *w3 = tensor_zeros(DTYPE_F32, SHAPE(1, 1, 3, 3));
    expect_error(x, w3, NULL, params(1, 1, 0, 0, 3, 1, 1),
                 "conv2d: kernel [1,1,3,3] (dilated 7x3) larger than padded input 4x4 "
                 "(input [1,1,4,4], padding [0,0])");
    tensor_free(x), tensor_free(w), tensor_free(w3);
}
END_TEST

START_TEST(test_conv2d_error_bad_stride_dilation_padding_groups) {
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(1, 2, 6, 6));
    tensor *w = tensor_zeros(DTYPE_F32, SHAPE(2, 2, 3, 3));
    expect_error(x, w, NULL, params(0, 1, 0, 0, 1, 1, 1),
                 "conv2d: bad params: stride [0,1] and dilation [1,1] must be >= 1, "
                 "padding [0,0] >= 0, groups 1 >= 1");
    expect_error(x, w, NULL, params(1, 1, 0, 0, 1, 0, 1),
                 "conv2d: bad params: stride [1,1] and dilation [1,0] must be >= 1, "
                 "padding [0,0] >= 0, groups 1 >= 1");
    expect_error(x, w, NULL, params(1, 1, -1, 0, 1, 1, 1),
                 "conv2d: bad params: stride [1,1] and dilation [1,1] must be >= 1, "
                 "padding [-1,0] >= 0, groups 1 >= 1");
    expect_error(x, w, NULL, params(1, 1, 0, 0, 1, 1, 0),
                 "conv2d: bad params: stride [1,1] and dilation [1,1] must be >= 1, "
                 "padding [0,0] >= 0, groups 0 >= 1");
    tensor_free(x), tensor_free(w);
}
END_TEST

START_TEST(test_conv2d_error_bias_wrong_size) {
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(1, 2, 6, 6));
    tensor *w = tensor_zeros(DTYPE_F32, SHAPE(4, 2, 3, 3));
    tensor *b = tensor_zeros(DTYPE_F32, SHAPE(3));
    expect_error(x, w, b, CONV2D_DEFAULT,
                 "conv2d: bias must be [4] for weight [4,2,3,3], got [3]");
    tensor *b2 = tensor_zeros(DTYPE_F32, SHAPE(1, 4));
    expect_error(x, w, b2, CONV2D_DEFAULT,
                 "conv2d: bias must be [4] for weight [4,2,3,3], got [1,4]");
    tensor_free(x), tensor_free(w), tensor_free(b), tensor_free(b2);
}
END_TEST

START_TEST(test_conv2d_error_weight_without_channels) {
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(1, 0, 6, 6));
    tensor *w = tensor_zeros(DTYPE_F32, SHAPE(4, 0, 3, 3));
    expect_error(x, w, NULL, CONV2D_DEFAULT, "conv2d: weight [4,0,3,3] has no channels");
    tensor_free(x), tensor_free(w);
}
END_TEST

START_TEST(test_conv2d_error_not_4d) {
    tensor *x3 = tensor_zeros(DTYPE_F32, SHAPE(2, 6, 6));
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(1, 2, 6, 6));
    tensor *w = tensor_zeros(DTYPE_F32, SHAPE(4, 2, 3, 3));
    tensor *w3 = tensor_zeros(DTYPE_F32, SHAPE(4, 2, 3));
    expect_error(x3, w, NULL, CONV2D_DEFAULT, "conv2d: input must be 4-D (B, C, H, W), got [2,6,6]");
    expect_error(x, w3, NULL, CONV2D_DEFAULT,
                 "conv2d: weight must be 4-D (OC, C/groups, KH, KW), got [4,2,3]");
    tensor_free(x3), tensor_free(x), tensor_free(w), tensor_free(w3);
}
END_TEST

START_TEST(test_conv2d_error_dtype_mismatch_and_null) {
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(1, 2, 6, 6));
    tensor *w = tensor_zeros(DTYPE_F64, SHAPE(4, 2, 3, 3));
    expect_error(x, w, NULL, CONV2D_DEFAULT, "conv2d: dtype mismatch: float32 vs float64");
    expect_error(NULL, w, NULL, CONV2D_DEFAULT, "conv2d: input 0 is NULL");
    tensor_free(x), tensor_free(w);
}
END_TEST

Suite *conv_suite(void) {
    Suite *s = suite_create("ops_conv");
    TCase *tc = tcase_create("conv2d");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_conv2d_forward_and_grad_4x4_kernel_2x2);
    tcase_add_test(tc, test_conv2d_max_pool2d_equals_the_two_ops_every_variant);
    tcase_add_test(tc, test_conv2d_max_pool2d_grad_central_differences_all_samples);
    tcase_add_test(tc, test_conv2d_max_pool2d_other_pools_and_errors);
    tcase_add_test(tc, test_conv2d_forward_and_grad_padding_1_no_bias);
    tcase_add_test(tc, test_conv2d_forward_and_grad_stride2_padding_1);
    tcase_add_test(tc, test_conv2d_matches_naive_batch_nonsquare);
    tcase_add_test(tc, test_conv2d_matches_naive_stride2);
    tcase_add_test(tc, test_conv2d_matches_naive_stride_3x1_padding_2x1);
    tcase_add_test(tc, test_conv2d_matches_naive_dilation2);
    tcase_add_test(tc, test_conv2d_matches_naive_groups2);
    tcase_add_test(tc, test_conv2d_matches_naive_depthwise_stride2_dilation2);
    tcase_add_test(tc, test_conv2d_matches_naive_no_bias);
    tcase_add_test(tc, test_conv2d_matches_naive_wide_rows);
    tcase_add_test(tc, test_conv2d_matches_naive_direct_short_rows);
    tcase_add_test(tc, test_conv2d_bias_grad_alone);
    tcase_add_test(tc, test_conv2d_matches_naive_direct_weight_grad);
    tcase_add_test(tc, test_conv2d_matches_naive_lenet_f32);
    tcase_add_test(tc, test_conv2d_threads_bit_identical);
    tcase_add_test(tc, test_threads_default_one);
    tcase_add_test(tc, test_parallel_threshold_follows_wait_policy);
    tcase_add_test(tc, test_par_items_each_item_once);
    tcase_add_test(tc, test_par_items_after_fork);
    tcase_add_test(tc, test_par_items_inside_openmp_region);
    tcase_add_test(tc, test_conv2d_empty_batch);
    tcase_add_test(tc, test_conv2d_backward_twice_accumulates);
    tcase_add_test(tc, test_conv2d_grad_central_differences_all_samples);
    tcase_add_test(tc, test_conv2d_error_channel_mismatch);
    tcase_add_test(tc, test_conv2d_error_groups_do_not_divide);
    tcase_add_test(tc, test_conv2d_error_kernel_larger_than_padded_input);
    tcase_add_test(tc, test_conv2d_error_bad_stride_dilation_padding_groups);
    tcase_add_test(tc, test_conv2d_error_bias_wrong_size);
    tcase_add_test(tc, test_conv2d_error_weight_without_channels);
    tcase_add_test(tc, test_conv2d_error_not_4d);
    tcase_add_test(tc, test_conv2d_error_dtype_mismatch_and_null);
    tcase_add_test(tc, test_isa_follows_tapegrad_isa);
    tcase_add_test(tc, test_conv2d_every_variant_matches_naive);
    tcase_add_test(tc, test_conv2d_every_path_on_every_variant_matches_naive);
    tcase_add_test(tc, test_conv2d_samples_reach_every_path_on_every_variant);
    tcase_add_test(tc, test_isa_refuses_unknown_variant);
    tcase_add_test(tc, test_isa_refuses_variant_the_cpu_lacks);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(conv_suite)
