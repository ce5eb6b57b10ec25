/* test_ops_attention.c - the attention family (scaled_dot_product_attention,
 * and sdpa_heads against split heads + scaled_dot_product_attention + merge):
 * values and gradients against a composition of the existing ops (the
 * oracle below), exact zeros where keys are excluded, the fully masked row,
 * dropout's determinism, the error paths, and a central-difference check of
 * every registry sample case. */
#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"
#include "ops_test.h"

/* ------------------------------------------------------------- the oracle
 * The same function from five ops: scores = q k^T / sqrt(D), excluded
 * positions filled with -inf (mask, or j > i when causal: eq(tril(1), 0)),
 * softmax over the keys, dropout with a generator seeded as the fused op's
 * (both draw one uniform per weight in [.., Tq, Tk] order and keep it when
 * u >= p, so they drop the same weights), then the weighted sum of v. */
static tensor *naive_sdpa(tensor *q, tensor *k, tensor *v, tensor *mask, bool causal, double p,
                          uint64_t seed) {
    int nd = q->ndim;
    int64_t Tq = q->shape[nd - 2], Tk = k->shape[nd - 2], D = q->shape[nd - 1];
    tensor *s = tensor_mul_scalar(tensor_matmul(q, tensor_transpose(k, -2, -1)), 1 / sqrt((double)D));
    tensor *excluded = mask;
    if (causal) {
        tensor *ones = tensor_ones(q->dtype, 2, (int64_t[]){Tq, Tk});
        tensor *zero = tensor_zeros(q->dtype, 0, NULL);
        tensor *future = tensor_eq(tensor_tril(ones, 0), zero);
        excluded = mask ? tensor_logical_or(mask, future) : future;
        tensor_free(ones);
        tensor_free(zero);
    }
    if (excluded) s = tensor_masked_fill(s, excluded, -INFINITY);
    tensor *w = tensor_softmax(s, -1);
    if (p > 0) {
        rng g;
        rng_seed(&g, seed, 1);
        w = tensor_dropout(w, p, true, &g);
    }
    return tensor_matmul(w, v);
}

static tensor *fused_sdpa(tensor *q, tensor *k, tensor *v, tensor *mask, bool causal, double p,
                          uint64_t seed) {
    rng g;
    rng_seed(&g, seed, 1);
    return tensor_scaled_dot_product_attention(q, k, v, mask, causal, p, &g);
}

static tensor *rand_leaf(uint64_t seed, int ndim, const int64_t *shape) {
    rng g;
    rng_seed(&g, seed, 7);
    tensor *t = tg_sample_tensor(&g, ndim, shape, -1.5, 1.5);
    tensor_set_requires_grad(t, true);
    return t;
}

/* y and the gradients of q, k, v under L = sum(y * w) of both versions agree
 * within 1e-12 (float64). */
static void check_against_oracle(int nd, const int64_t *qs, int64_t Tk, int64_t Dv, tensor *mask,
                                 bool causal, double p) {
    int64_t ks[8], vs[8];
    memcpy(ks, qs, sizeof(int64_t) * (size_t)nd);
    ks[nd - 2] = Tk;
    memcpy(vs, ks, sizeof(int64_t) * (size_t)nd);
    vs[nd - 1] = Dv;
    tensor *q = rand_leaf(1, nd, qs), *k = rand_leaf(2, nd, ks), *v = rand_leaf(3, nd, vs);
    int64_t os[8];
    memcpy(os, qs, sizeof(int64_t) * (size_t)nd);
    os[nd - 1] = Dv;
    tensor *w = rand_leaf(4, nd, os);
    tensor *grads[2][3];
    tensor *outs[2];
    for (int version = 0; version < 2; version++) {
        tensor *y = (version ? naive_sdpa : fused_sdpa)(q, k, v, mask, causal, p, 99);
        ck_assert_msg(y != NULL, "%s", tapegrad_error());
        outs[version] = tensor_clone(y);
        ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(y, w))), 0);
        tensor *in[3] = {q, k, v};
        for (int i = 0; i < 3; i++) {
            grads[version][i] = tensor_clone(in[i]->grad);
            tensor_zero_grad(in[i]);
        }
        tape_reset();
    }
    for (int64_t e = 0; e < outs[0]->size; e++) {
        ck_assert(isfinite(tensor_get(outs[0], e)));
        ck_assert_close(tensor_get(outs[0], e), tensor_get(outs[1], e), 1e-12);
    }
    for (int i = 0; i < 3; i++) {
        for (int64_t e = 0; e < grads[0][i]->size; e++)
            ck_assert_msg(fabs(tensor_get(grads[0][i], e) - tensor_get(grads[1][i], e)) <= 1e-12,
                          "input %d element %lld: fused %.15g, oracle %.15g", i, (long long)e,
                          tensor_get(grads[0][i], e), tensor_get(grads[1][i], e));
        tensor_free(grads[0][i]);
        tensor_free(grads[1][i]);
    }
    tensor_free(outs[0]);
    tensor_free(outs[1]);
    tensor_free(q), tensor_free(k), tensor_free(v), tensor_free(w);
}

START_TEST(test_sdpa_matches_oracle_plain) {
    check_against_oracle(2, (int64_t[]){3, 4}, 5, 3, NULL, false, 0); /* Tq != Tk, D != Dv */
    check_against_oracle(4, (int64_t[]){2, 3, 4, 8}, 4, 8, NULL, false, 0);
}
END_TEST

START_TEST(test_sdpa_matches_oracle_causal) {
    check_against_oracle(3, (int64_t[]){2, 5, 4}, 5, 3, NULL, true, 0);
    check_against_oracle(3, (int64_t[]){2, 3, 4}, 6, 2, NULL, true, 0); /* Tq < Tk: top-left */
    check_against_oracle(3, (int64_t[]){2, 6, 4}, 3, 2, NULL, true, 0); /* Tq > Tk */
}
END_TEST

/* Key padding [2,1,1,5] (batch 0 hides keys 3, 4; batch 1 hides key 1) and a
 * full mask [3,5] of int64 and float64 dtypes, with and without causal. */
START_TEST(test_sdpa_matches_oracle_masked) {
    tensor *pad = tensor_from_doubles(DTYPE_I64, 4, (int64_t[]){2, 1, 1, 5},
                                      (double[]){0, 0, 0, 1, 1, 0, 1, 0, 0, 0});
    check_against_oracle(4, (int64_t[]){2, 2, 3, 4}, 5, 3, pad, false, 0);
    double m[15] = {0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1};
    tensor *full = tensor_from_doubles(DTYPE_F64, 2, (int64_t[]){3, 5}, m);
    check_against_oracle(3, (int64_t[]){2, 3, 4}, 5, 2, full, false, 0);
    check_against_oracle(3, (int64_t[]){2, 3, 4}, 5, 2, full, true, 0);
    tensor_free(pad);
    tensor_free(full);
}
END_TEST

/* Dropout draws the mask tensor_dropout would draw from the same seed, so
 * the oracle's dropout(softmax) gives the same function. */
START_TEST(test_sdpa_matches_oracle_dropout) {
    check_against_oracle(3, (int64_t[]){2, 4, 3}, 5, 2, NULL, false, 0.3);
    tensor *pad = tensor_from_doubles(DTYPE_I64, 1, (int64_t[]){4}, (double[]){0, 1, 0, 0});
    check_against_oracle(4, (int64_t[]){2, 2, 4, 3}, 4, 3, pad, true, 0.5);
    tensor_free(pad);
}
END_TEST

/* A hand-computed case: q = [[1, 0]], k = [[1, 0], [0, 1]], v = [[1, 2], [3, 4]]
 * (D = 2): scores = [1, 0] / sqrt 2, p = softmax = [e^a, 1] / (e^a + 1) with
 * a = 1/sqrt 2, y = p0 [1, 2] + p1 [3, 4]. */
START_TEST(test_sdpa_hand_computed) {
    tensor *q = leaf(SHAPE(1, 2), (double[]){1, 0});
    tensor *k = leaf(SHAPE(2, 2), (double[]){1, 0, 0, 1});
    tensor *v = leaf(SHAPE(2, 2), (double[]){1, 2, 3, 4});
    tensor *y = tensor_scaled_dot_product_attention(q, k, v, NULL, false, 0, NULL);
    double a = 1 / sqrt(2.0), p0 = exp(a) / (exp(a) + 1), p1 = 1 - p0;
    ck_assert_tensor(y, ((double[]){p0 + 3 * p1, 2 * p0 + 4 * p1}), 1e-14);
    /* dv = p^T g with g = 1: rows p0 and p1 */
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(v->grad, ((double[]){p0, p0, p1, p1}), 1e-14);
    tape_reset();
    tensor_free(q), tensor_free(k), tensor_free(v);
}
END_TEST

/* ----------------------------------------------------------- exact zeros */

/* Keys 1 and 3 masked for every query: their rows of dk and dv are exactly
 * 0, and changing their values changes nothing. */
START_TEST(test_sdpa_masked_keys_get_exactly_zero_gradient) {
    tensor *q = rand_leaf(11, SHAPE(2, 3, 4)), *k = rand_leaf(12, SHAPE(2, 5, 4)),
           *v = rand_leaf(13, SHAPE(2, 5, 3)), *w = rand_leaf(14, SHAPE(2, 3, 3));
    tensor *mask = tensor_from_doubles(DTYPE_I64, 1, (int64_t[]){5}, (double[]){0, 1, 0, 1, 0});
    tensor *y = tensor_scaled_dot_product_attention(q, k, v, mask, false, 0, NULL);
    tensor *y0 = tensor_clone(y);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(y, w))), 0);
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < 5; j++) {
            bool masked = j == 1 || j == 3;
            for (int d = 0; d < 4; d++) {
                double gk = tensor_get(k->grad, (b * 5 + j) * 4 + d);
                ck_assert_msg(masked ? gk == 0.0 : gk != 0.0, "dk[%d,%d,%d] = %g", b, j, d, gk);
            }
            for (int d = 0; d < 3; d++) {
                double gv = tensor_get(v->grad, (b * 5 + j) * 3 + d);
                ck_assert_msg(masked ? gv == 0.0 : gv != 0.0, "dv[%d,%d,%d] = %g", b, j, d, gv);
            }
        }
    tape_reset();
    /* the masked keys' values do not matter at all */
    tensor_set(k, 1 * 4, 1e6);
    tensor_set(v, 3 * 3 + 2, -1e6);
    tensor *y1 = tensor_scaled_dot_product_attention(q, k, v, mask, false, 0, NULL);
    for (int64_t e = 0; e < y1->size; e++) ck_assert(tensor_get(y1, e) == tensor_get(y0, e));
    tape_reset();
    tensor_free(y0), tensor_free(mask);
    tensor_free(q), tensor_free(k), tensor_free(v), tensor_free(w);
}
END_TEST

/* Causal, loss on query 1 only: keys 2.. are its future, so dk and dv rows
 * 2.. are exactly 0, as are dq rows other than 1. */
START_TEST(test_sdpa_causal_future_gets_exactly_zero_gradient) {
    tensor *q = rand_leaf(21, SHAPE(4, 3)), *k = rand_leaf(22, SHAPE(4, 3)),
           *v = rand_leaf(23, SHAPE(4, 2));
    tensor *y = tensor_scaled_dot_product_attention(q, k, v, NULL, true, 0, NULL);
    tensor *row1 = tensor_narrow(y, 0, 1, 1);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(row1)), 0);
    for (int j = 0; j < 4; j++)
        for (int d = 0; d < 3; d++) {
            double gk = tensor_get(k->grad, j * 3 + d), gq = tensor_get(q->grad, j * 3 + d);
            ck_assert_msg(j <= 1 ? gk != 0.0 : gk == 0.0, "dk[%d,%d] = %g", j, d, gk);
            ck_assert_msg(j == 1 ? gq != 0.0 : gq == 0.0, "dq[%d,%d] = %g", j, d, gq);
        }
    for (int j = 0; j < 4; j++)
        for (int d = 0; d < 2; d++) {
            double gv = tensor_get(v->grad, j * 2 + d);
            ck_assert_msg(j <= 1 ? gv != 0.0 : gv == 0.0, "dv[%d,%d] = %g", j, d, gv);
        }
    /* query 0 sees key 0 only: its output is v[0] exactly */
    ck_assert(tensor_get(y, 0) == tensor_get(v, 0) && tensor_get(y, 1) == tensor_get(v, 1));
    tape_reset();
    tensor_free(q), tensor_free(k), tensor_free(v);
}
END_TEST

/* Query 1 has every key masked: its output row is 0 (not NaN), its dq row is
 * 0, and it adds nothing to dk, dv; the other rows are the oracle's. */
START_TEST(test_sdpa_fully_masked_row_is_zero) {
    tensor *q = rand_leaf(31, SHAPE(3, 4)), *k = rand_leaf(32, SHAPE(4, 4)),
           *v = rand_leaf(33, SHAPE(4, 2));
    tensor *mask = tensor_from_doubles(DTYPE_I64, 2, (int64_t[]){3, 4},
                                       (double[]){0, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1});
    tensor *y = tensor_scaled_dot_product_attention(q, k, v, mask, false, 0, NULL);
    ck_assert_ptr_nonnull(y);
    tensor *kept = tensor_clone(y);
    ck_assert(tensor_get(y, 2) == 0.0 && tensor_get(y, 3) == 0.0);
    for (int64_t e = 0; e < y->size; e++) ck_assert(isfinite(tensor_get(y, e)));
    /* loss on row 1 only: every gradient is exactly 0 */
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_narrow(y, 0, 1, 1))), 0);
    tensor *in[3] = {q, k, v};
    for (int i = 0; i < 3; i++)
        for (int64_t e = 0; e < in[i]->size; e++) ck_assert(tensor_get(in[i]->grad, e) == 0.0);
    tape_reset();
    /* rows 0 and 2 agree with the oracle on those rows */
    tensor *ref = naive_sdpa(q, k, v, mask, false, 0, 0);
    for (int r = 0; r < 3; r += 2)
        for (int d = 0; d < 2; d++)
            ck_assert_close(tensor_get(kept, r * 2 + d), tensor_get(ref, r * 2 + d), 1e-14);
    tape_reset();
    tensor_free(mask), tensor_free(kept);
    tensor_free(q), tensor_free(k), tensor_free(v);
}
END_TEST

/* Tk = 0: every row is fully masked; Tq = 0: an empty output. */
START_TEST(test_sdpa_empty_keys_and_queries) {
    tensor *q = rand_leaf(41, SHAPE(2, 3)), *k = tensor_zeros(DTYPE_F64, SHAPE(0, 3)),
           *v = tensor_zeros(DTYPE_F64, SHAPE(0, 4));
    tensor *y = tensor_scaled_dot_product_attention(q, k, v, NULL, false, 0, NULL);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->shape[0], 2);
    ck_assert_int_eq(y->shape[1], 4);
    for (int64_t e = 0; e < y->size; e++) ck_assert(tensor_get(y, e) == 0.0);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    for (int64_t e = 0; e < q->size; e++) ck_assert(tensor_get(q->grad, e) == 0.0);
    tape_reset();
    tensor *q0 = tensor_zeros(DTYPE_F64, SHAPE(0, 3)), *k1 = rand_leaf(42, SHAPE(2, 3)),
           *v1 = rand_leaf(43, SHAPE(2, 4));
    y = tensor_scaled_dot_product_attention(q0, k1, v1, NULL, true, 0, NULL);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->size, 0);
    tape_reset();
    tensor_free(q), tensor_free(k), tensor_free(v), tensor_free(q0), tensor_free(k1),
        tensor_free(v1);
}
END_TEST

/* ---------------------------------------------------------------- dropout */

/* Same seed, same output; another seed, another; p = 0 with a NULL rng is
 * attention without dropout; kept weights are scaled by 1 / (1 - p). */
START_TEST(test_sdpa_dropout_deterministic_and_scaled) {
    tensor *q = rand_leaf(51, SHAPE(2, 4, 3)), *k = rand_leaf(52, SHAPE(2, 6, 3)),
           *v = rand_leaf(53, SHAPE(2, 6, 5));
    tensor *a = tensor_clone(fused_sdpa(q, k, v, NULL, false, 0.4, 7));
    tensor *b = tensor_clone(fused_sdpa(q, k, v, NULL, false, 0.4, 7));
    tensor *c = tensor_clone(fused_sdpa(q, k, v, NULL, false, 0.4, 8));
    tensor *plain = tensor_clone(tensor_scaled_dot_product_attention(q, k, v, NULL, false, 0, NULL));
    bool differs = false;
    for (int64_t e = 0; e < a->size; e++) {
        ck_assert(tensor_get(a, e) == tensor_get(b, e));
        differs |= tensor_get(a, e) != tensor_get(c, e);
    }
    ck_assert(differs);
    /* v = identity-like: with v's rows one-hot the output is the weights,
     * so each weight is 0 or p_ij / (1 - p) */
    tape_reset();
    tensor *eye = tensor_zeros(DTYPE_F64, SHAPE(2, 6, 6));
    for (int b2 = 0; b2 < 2; b2++)
        for (int j = 0; j < 6; j++) tensor_set(eye, (b2 * 6 + j) * 6 + j, 1);
    tensor *pw = tensor_clone(tensor_scaled_dot_product_attention(q, k, eye, NULL, false, 0, NULL));
    tensor *dw = fused_sdpa(q, k, eye, NULL, false, 0.4, 7);
    int kept = 0, dropped = 0;
    for (int64_t e = 0; e < dw->size; e++) {
        double x = tensor_get(dw, e), p = tensor_get(pw, e);
        if (x == 0) dropped++;
        else {
            kept++;
            ck_assert_close(x, p / 0.6, 1e-14);
        }
    }
    ck_assert(kept > 0 && dropped > 0);
    tape_reset();
    tensor_free(a), tensor_free(b), tensor_free(c), tensor_free(plain), tensor_free(eye),
        tensor_free(pw);
    tensor_free(q), tensor_free(k), tensor_free(v);
}
END_TEST

/* float32 agrees with float64 to float32 rounding, values and gradients. */
START_TEST(test_sdpa_float32_matches_float64) {
    tensor *q = rand_leaf(61, SHAPE(2, 5, 8)), *k = rand_leaf(62, SHAPE(2, 7, 8)),
           *v = rand_leaf(63, SHAPE(2, 7, 4));
    tensor *q32 = tensor_to_dtype(q, DTYPE_F32), *k32 = tensor_to_dtype(k, DTYPE_F32),
           *v32 = tensor_to_dtype(v, DTYPE_F32);
    tensor_set_requires_grad(q32, true), tensor_set_requires_grad(k32, true),
        tensor_set_requires_grad(v32, true);
    tensor *y64 = tensor_scaled_dot_product_attention(q, k, v, NULL, true, 0, NULL);
    tensor *y32 = tensor_scaled_dot_product_attention(q32, k32, v32, NULL, true, 0, NULL);
    ck_assert_int_eq(y32->dtype, DTYPE_F32);
    for (int64_t e = 0; e < y64->size; e++)
        ck_assert_close(tensor_get(y32, e), tensor_get(y64, e), 1e-5);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(y64, y64))), 0);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(y32, y32))), 0);
    tensor *a[3] = {q, k, v}, *b[3] = {q32, k32, v32};
    for (int i = 0; i < 3; i++)
        for (int64_t e = 0; e < a[i]->size; e++)
            ck_assert_close(tensor_get(b[i]->grad, e), tensor_get(a[i]->grad, e), 1e-5);
    tape_reset();
    for (int i = 0; i < 3; i++) tensor_free(a[i]), tensor_free(b[i]);
}
END_TEST

/* A node large enough to split its matrices across threads gives the same
 * bits on 2 threads as on 1 (each matrix writes its own rows; no sums are
 * split), with dropout and a key-padding mask, float32 and float64. */
START_TEST(test_sdpa_threads_give_the_same_bits) {
    for (int f32 = 0; f32 < 2; f32++) {
        dtype dt = f32 ? DTYPE_F32 : DTYPE_F64;
        tensor *in[3] = {rand_leaf(81, SHAPE(8, 4, 32, 16)), rand_leaf(82, SHAPE(8, 4, 40, 16)),
                         rand_leaf(83, SHAPE(8, 4, 40, 16))};
        for (int i = 0; i < 3; i++) {
            tensor *c = tensor_to_dtype(in[i], dt);
            tensor_free(in[i]);
            in[i] = c;
            tensor_set_requires_grad(in[i], true);
        }
        tensor *mask = tensor_zeros(DTYPE_I64, SHAPE(8, 1, 1, 40));
        for (int e = 0; e < 320; e += 7) tensor_set(mask, e, 1);
        tensor *out[2], *grads[2][3];
        for (int t = 0; t < 2; t++) {
            tapegrad_set_threads(t + 1);
            tensor *y = fused_sdpa(in[0], in[1], in[2], mask, true, 0.2, 5);
            ck_assert_ptr_nonnull(y);
            out[t] = tensor_clone(y);
            ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(y, y))), 0);
            for (int i = 0; i < 3; i++) {
                grads[t][i] = tensor_clone(in[i]->grad);
                tensor_zero_grad(in[i]);
            }
            tape_reset();
        }
        tapegrad_set_threads(1);
        ck_assert(memcmp(out[0]->data, out[1]->data, (size_t)out[0]->size * tg_dtype_size(dt)) == 0);
        for (int i = 0; i < 3; i++) {
            ck_assert_msg(memcmp(grads[0][i]->data, grads[1][i]->data,
                                 (size_t)grads[0][i]->size * tg_dtype_size(dt)) == 0,
                          "input %d differs with 2 threads", i);
            tensor_free(grads[0][i]), tensor_free(grads[1][i]), tensor_free(in[i]);
        }
        tensor_free(out[0]), tensor_free(out[1]), tensor_free(mask);
    }
}
END_TEST

/* ----------------------------------------------------------------- errors */

START_TEST(test_sdpa_errors) {
    tensor *q = rand_leaf(71, SHAPE(2, 3, 4)), *k = rand_leaf(72, SHAPE(2, 5, 4)),
           *v = rand_leaf(73, SHAPE(2, 5, 6));
    tensor *q1 = tensor_zeros(DTYPE_F64, SHAPE(4)), *k3 = tensor_zeros(DTYPE_F64, SHAPE(3, 5, 4));
    tensor *kd = tensor_zeros(DTYPE_F64, SHAPE(2, 5, 3)), *vt = tensor_zeros(DTYPE_F64, SHAPE(2, 4, 6));
    tensor *q32 = tensor_zeros(DTYPE_F32, SHAPE(2, 3, 4)), *qi = tensor_zeros(DTYPE_I64, SHAPE(2, 3, 4));
    tensor *q0 = tensor_zeros(DTYPE_F64, SHAPE(2, 3, 0)), *k0 = tensor_zeros(DTYPE_F64, SHAPE(2, 5, 0));
    tensor *bad_mask = tensor_zeros(DTYPE_I64, SHAPE(3, 4));
    tensor *big_mask = tensor_zeros(DTYPE_I64, SHAPE(1, 2, 3, 5));
    const char *op = "scaled_dot_product_attention";
    char msg[256];
    ck_assert_fails_with(tensor_scaled_dot_product_attention(q1, k, v, NULL, false, 0, NULL),
                         "scaled_dot_product_attention: q [.., Tq, D], k [.., Tk, D] and v [.., Tk, "
                         "Dv] need one rank of at least 2: q [4], k [2,5,4], v [2,5,6]");
    ck_assert_fails_with(tensor_scaled_dot_product_attention(q, k3, v, NULL, false, 0, NULL),
                         "scaled_dot_product_attention: batch dims differ (dim 0): q [2,3,4], k "
                         "[3,5,4], v [2,5,6]");
    ck_assert_fails_with(tensor_scaled_dot_product_attention(q, kd, v, NULL, false, 0, NULL),
                         "scaled_dot_product_attention: q [.., Tq, D] and k [.., Tk, D] differ in D: "
                         "q [2,3,4], k [2,5,3], v [2,5,6]");
    ck_assert_fails_with(tensor_scaled_dot_product_attention(q, k, vt, NULL, false, 0, NULL),
                         "scaled_dot_product_attention: k [.., Tk, D] and v [.., Tk, Dv] differ in "
                         "Tk: q [2,3,4], k [2,5,4], v [2,4,6]");
    ck_assert_fails_with(tensor_scaled_dot_product_attention(q0, k0, v, NULL, false, 0, NULL),
                         "scaled_dot_product_attention: D = 0 "
                         "(q [2,3,0]): the scale 1/sqrt(D) needs D >= 1");
    ck_assert_fails_with(tensor_scaled_dot_product_attention(q32, k, v, NULL, false, 0, NULL),
                         "scaled_dot_product_attention: dtype mismatch: float32 vs float64");
    ck_assert_fails_with(tensor_scaled_dot_product_attention(qi, k, v, NULL, false, 0, NULL),
                         "scaled_dot_product_attention: input 0 is int64; this op needs float32 or "
                         "float64");
    ck_assert_fails_with(tensor_scaled_dot_product_attention(q, k, v, bad_mask, false, 0, NULL),
                         "scaled_dot_product_attention: mask [3,4] does not broadcast to the scores "
                         "[.., Tq, Tk] = [2,3,5]");
    ck_assert_fails_with(tensor_scaled_dot_product_attention(q, k, v, big_mask, false, 0, NULL),
                         "scaled_dot_product_attention: mask [1,2,3,5] does not broadcast to the "
                         "scores [.., Tq, Tk] = [2,3,5]");
    rng g;
    rng_seed(&g, 1, 1);
    ck_assert_fails_with(tensor_scaled_dot_product_attention(q, k, v, NULL, false, 1.0, &g),
                         "scaled_dot_product_attention: dropout_p must be in [0, 1), got 1");
    ck_assert_fails_with(tensor_scaled_dot_product_attention(q, k, v, NULL, false, -0.1, &g),
                         "scaled_dot_product_attention: dropout_p must be in [0, 1), got -0.1");
    ck_assert_fails_with(tensor_scaled_dot_product_attention(q, k, v, NULL, false, NAN, &g),
                         "scaled_dot_product_attention: dropout_p must be in [0, 1), got nan");
    ck_assert_fails_with(tensor_scaled_dot_product_attention(q, k, v, NULL, false, 0.2, NULL),
                         "scaled_dot_product_attention: dropout_p = 0.2 needs a generator, got NULL");
    snprintf(msg, sizeof msg, "%s: input 1 is NULL", op);
    ck_assert_fails_with(tensor_scaled_dot_product_attention(q, NULL, v, NULL, false, 0, NULL), msg);
    /* a NULL mask while an error is pending is a failed upstream result */
    ck_assert_ptr_null(tensor_masked_fill(q, big_mask, 0)); /* sets an error */
    ck_assert_ptr_null(tensor_scaled_dot_product_attention(q, k, v, NULL, false, 0, NULL));
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "masked_fill"));
    tapegrad_error_clear();
    ck_assert_int_eq(tg_tape_node_count(), 0);
    tensor_free(q), tensor_free(k), tensor_free(v), tensor_free(q1), tensor_free(k3),
        tensor_free(kd), tensor_free(vt), tensor_free(q32), tensor_free(qi), tensor_free(q0),
        tensor_free(k0), tensor_free(bad_mask), tensor_free(big_mask);
}
END_TEST

/* Every registry case: pure forward, vjp against central differences,
 * float32 against float64. */
START_TEST(test_sdpa_registry_cases_numeric) {
    ck_assert_int_ge(numeric_check_op("scaled_dot_product_attention", 1, 3, CHECK_ALL), 24);
}
END_TEST

/* ------------------------------------------------------------ sdpa_heads
 * The reference: the heads split out of qkv [B, T, 3E] with narrow, reshape
 * and permute ([B, H, T, Dh]), scaled_dot_product_attention, and merged back
 * (permute, reshape [B, T, E]): the layer's path before sdpa_heads. */
static tensor *split_heads(tensor *qkv, int i, int64_t H) {
    const int64_t B = qkv->shape[0], T = qkv->shape[1], E = qkv->shape[2] / 3;
    tensor *x = tensor_narrow(qkv, 2, i * E, E);
    return tensor_permute(tensor_reshape(x, 4, (int64_t[]){B, T, H, E / H}), (int[]){0, 2, 1, 3});
}

static tensor *heads_reference(tensor *qkv, int64_t H, tensor *mask, bool causal, double p,
                               uint64_t seed) {
    rng g;
    rng_seed(&g, seed, 1);
    const int64_t B = qkv->shape[0], T = qkv->shape[1], E = qkv->shape[2] / 3;
    tensor *y = tensor_scaled_dot_product_attention(split_heads(qkv, 0, H), split_heads(qkv, 1, H),
                                                    split_heads(qkv, 2, H), mask, causal, p, &g);
    return tensor_reshape(tensor_permute(y, (int[]){0, 2, 1, 3}), 3, (int64_t[]){B, T, E});
}

static tensor *heads_fused(tensor *qkv, int64_t H, tensor *mask, bool causal, double p,
                           uint64_t seed) {
    rng g;
    rng_seed(&g, seed, 1);
    return tensor_sdpa_heads(qkv, H, mask, causal, p, &g);
}

/* y and dqkv under L = sum(y * w) of sdpa_heads and of the reference agree:
 * within 1e-12 in float64, 1e-5 in float32 (the same kernels on the same
 * numbers; only the GEMMs' row strides differ). */
static void check_heads_against_reference(dtype dt, int64_t B, int64_t T, int64_t E, int64_t H,
                                          tensor *mask, bool causal, double p) {
    const double tol = dt == DTYPE_F64 ? 1e-12 : 1e-5;
    tensor *x64 = rand_leaf(31, SHAPE(B, T, 3 * E)), *w64 = rand_leaf(32, SHAPE(B, T, E));
    tensor *qkv = tensor_to_dtype(x64, dt), *w = tensor_to_dtype(w64, dt);
    tensor_set_requires_grad(qkv, true);
    tensor *outs[2], *grads[2];
    for (int version = 0; version < 2; version++) {
        tensor *y = (version ? heads_reference : heads_fused)(qkv, H, mask, causal, p, 77);
        ck_assert_msg(y != NULL, "%s", tapegrad_error());
        ck_assert_int_eq(y->dtype, dt);
        ck_assert_int_eq(y->ndim, 3);
        ck_assert_int_eq(y->shape[2], E);
        outs[version] = tensor_clone(y);
        ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(y, w))), 0);
        grads[version] = tensor_clone(qkv->grad);
        tensor_zero_grad(qkv);
        tape_reset();
    }
    for (int64_t e = 0; e < outs[0]->size; e++) {
        ck_assert(isfinite(tensor_get(outs[0], e)));
        ck_assert_close(tensor_get(outs[0], e), tensor_get(outs[1], e), tol);
    }
    for (int64_t e = 0; e < grads[0]->size; e++)
        ck_assert_msg(fabs(tensor_get(grads[0], e) - tensor_get(grads[1], e)) <= tol,
                      "dqkv element %lld: sdpa_heads %.15g, reference %.15g", (long long)e,
                      tensor_get(grads[0], e), tensor_get(grads[1], e));
    tensor_free(outs[0]), tensor_free(outs[1]), tensor_free(grads[0]), tensor_free(grads[1]);
    tensor_free(x64), tensor_free(w64), tensor_free(qkv), tensor_free(w);
}

START_TEST(test_sdpa_heads_matches_split_heads) {
    for (int f = 0; f < 2; f++) {
        dtype dt = f ? DTYPE_F32 : DTYPE_F64;
        check_heads_against_reference(dt, 2, 5, 12, 3, NULL, false, 0);
        check_heads_against_reference(dt, 2, 6, 16, 4, NULL, true, 0);
        check_heads_against_reference(dt, 3, 4, 8, 1, NULL, true, 0); /* one head */
        check_heads_against_reference(dt, 2, 64, 128, 4, NULL, true, 0); /* the GPT's head shape */
    }
}
END_TEST

/* Key padding [2,1,1,5], a mask per head [2,3,5,5] (float64) and a [5,5]
 * one with causal, then dropout (the same draws as the reference's). */
START_TEST(test_sdpa_heads_matches_split_heads_masked_and_dropout) {
    tensor *pad = tensor_from_doubles(DTYPE_I64, 4, (int64_t[]){2, 1, 1, 5},
                                      (double[]){0, 0, 0, 1, 1, 0, 1, 0, 0, 0});
    tensor *per_head = tensor_zeros(DTYPE_F64, SHAPE(2, 3, 5, 5));
    for (int64_t e = 0; e < per_head->size; e++) tensor_set(per_head, e, e % 5 > 1 && e % 3 == 0);
    tensor *square = tensor_zeros(DTYPE_I64, SHAPE(5, 5));
    for (int64_t e = 0; e < 25; e++) tensor_set(square, e, e % 5 > 1 && e % 2 == 0);
    for (int f = 0; f < 2; f++) {
        dtype dt = f ? DTYPE_F32 : DTYPE_F64;
        check_heads_against_reference(dt, 2, 5, 12, 3, pad, false, 0);
        check_heads_against_reference(dt, 2, 5, 12, 3, per_head, false, 0);
        check_heads_against_reference(dt, 2, 5, 12, 3, square, true, 0);
        check_heads_against_reference(dt, 2, 5, 12, 3, NULL, false, 0.3);
        check_heads_against_reference(dt, 2, 5, 12, 3, pad, true, 0.2);
    }
    tensor_free(pad), tensor_free(per_head), tensor_free(square);
}
END_TEST

/* Key padding hides keys 1 and 3 of batch 0: the k and v columns of those
 * rows of dqkv are exactly 0 in every head (and nonzero elsewhere), batch 1
 * (no key hidden) gets gradient everywhere; causal with the loss on query 1
 * only: keys 2.. are its future, so their k and v columns are exactly 0. */
START_TEST(test_sdpa_heads_excluded_keys_get_exactly_zero_gradient) {
    const int64_t B = 2, T = 5, E = 6, H = 2;
    tensor *qkv = rand_leaf(41, SHAPE(B, T, 3 * E)), *w = rand_leaf(42, SHAPE(B, T, E));
    tensor *pad = tensor_from_doubles(DTYPE_I64, 4, (int64_t[]){2, 1, 1, 5},
                                      (double[]){0, 1, 0, 1, 0, 0, 0, 0, 0, 0});
    tensor *y = tensor_sdpa_heads(qkv, H, pad, false, 0, NULL);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(y, w))), 0);
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < T; j++)
            for (int64_t c = E; c < 3 * E; c++) { /* the k and v columns */
                bool hidden = b == 0 && (j == 1 || j == 3);
                double gk = tensor_get(qkv->grad, (b * T + j) * 3 * E + c);
                ck_assert_msg(hidden ? gk == 0.0 : gk != 0.0, "dqkv[%lld,%lld,%lld] = %g",
                              (long long)b, (long long)j, (long long)c, gk);
            }
    tape_reset();
    tensor_zero_grad(qkv);
    y = tensor_sdpa_heads(qkv, H, NULL, true, 0, NULL);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_narrow(y, 1, 1, 1))), 0);
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < T; j++)
            for (int64_t c = 0; c < 3 * E; c++) {
                bool zero = c < E ? j != 1 : j > 1; /* dq: only query 1; dk, dv: keys 0, 1 */
                double gv = tensor_get(qkv->grad, (b * T + j) * 3 * E + c);
                ck_assert_msg(zero ? gv == 0.0 : gv != 0.0, "causal dqkv[%lld,%lld,%lld] = %g",
                              (long long)b, (long long)j, (long long)c, gv);
            }
    tape_reset();
    tensor_free(qkv), tensor_free(w), tensor_free(pad);
}
END_TEST

/* Two threads give the bits of one (each (batch, head) matrix writes its own
 * column block of y and dqkv). */
START_TEST(test_sdpa_heads_threads_give_the_same_bits) {
    for (int f32 = 0; f32 < 2; f32++) {
        dtype dt = f32 ? DTYPE_F32 : DTYPE_F64;
        tensor *x64 = rand_leaf(51, SHAPE(8, 40, 96));
        tensor *qkv = tensor_to_dtype(x64, dt);
        tensor_set_requires_grad(qkv, true);
        tensor *out[2], *grads[2];
        for (int t = 0; t < 2; t++) {
            tapegrad_set_threads(t + 1);
            tensor *y = heads_fused(qkv, 4, NULL, true, 0.1, 5);
            ck_assert_ptr_nonnull(y);
            out[t] = tensor_clone(y);
            ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(y, y))), 0);
            grads[t] = tensor_clone(qkv->grad);
            tensor_zero_grad(qkv);
            tape_reset();
        }
        tapegrad_set_threads(1);
        ck_assert(memcmp(out[0]->data, out[1]->data, (size_t)out[0]->size * tg_dtype_size(dt)) == 0);
        ck_assert(memcmp(grads[0]->data, grads[1]->data, (size_t)grads[0]->size * tg_dtype_size(dt)) == 0);
        tensor_free(out[0]), tensor_free(out[1]), tensor_free(grads[0]), tensor_free(grads[1]);
        tensor_free(x64), tensor_free(qkv);
    }
}
END_TEST

START_TEST(test_sdpa_heads_errors) {
    tensor *qkv = rand_leaf(61, SHAPE(2, 5, 12)), *x1 = tensor_zeros(DTYPE_F64, SHAPE(12));
    tensor *x8 = tensor_zeros(DTYPE_F64, 8, (int64_t[]){1, 1, 1, 1, 1, 1, 2, 6});
    tensor *odd = tensor_zeros(DTYPE_F64, SHAPE(2, 5, 13)), *empty = tensor_zeros(DTYPE_F64, SHAPE(2, 5, 0));
    tensor *xi = tensor_zeros(DTYPE_I64, SHAPE(2, 5, 12)), *bad_mask = tensor_zeros(DTYPE_I64, SHAPE(4, 5));
    ck_assert_fails_with(tensor_sdpa_heads(x1, 2, NULL, false, 0, NULL),
                         "sdpa_heads: qkv [.., T, 3E] needs a rank from 2 to 7 (its scores "
                         "[.., H, T, T] have one dim more): qkv [12]");
    ck_assert_fails_with(tensor_sdpa_heads(x8, 1, NULL, false, 0, NULL),
                         "sdpa_heads: qkv [.., T, 3E] needs a rank from 2 to 7 (its scores "
                         "[.., H, T, T] have one dim more): qkv [1,1,1,1,1,1,2,6]");
    ck_assert_fails_with(tensor_sdpa_heads(qkv, 3, NULL, false, 0, NULL),
                         "sdpa_heads: qkv [2,5,12] must be [.., T, 3E] with E = n_heads * "
                         "head_dim, head_dim >= 1: its last dim 12 is not 3 * 3 * head_dim");
    ck_assert_fails_with(tensor_sdpa_heads(qkv, 0, NULL, false, 0, NULL),
                         "sdpa_heads: qkv [2,5,12] must be [.., T, 3E] with E = n_heads * "
                         "head_dim, head_dim >= 1: its last dim 12 is not 3 * 0 * head_dim");
    ck_assert_fails_with(tensor_sdpa_heads(qkv, 8, NULL, false, 0, NULL),
                         "sdpa_heads: qkv [2,5,12] must be [.., T, 3E] with E = n_heads * "
                         "head_dim, head_dim >= 1: its last dim 12 is not 3 * 8 * head_dim");
    ck_assert_fails_with(tensor_sdpa_heads(odd, 1, NULL, false, 0, NULL),
                         "sdpa_heads: qkv [2,5,13] must be [.., T, 3E] with E = n_heads * "
                         "head_dim, head_dim >= 1: its last dim 13 is not 3 * 1 * head_dim");
    ck_assert_fails_with(tensor_sdpa_heads(empty, 1, NULL, false, 0, NULL),
                         "sdpa_heads: qkv [2,5,0] must be [.., T, 3E] with E = n_heads * "
                         "head_dim, head_dim >= 1: its last dim 0 is not 3 * 1 * head_dim");
    ck_assert_fails_with(tensor_sdpa_heads(qkv, 2, bad_mask, false, 0, NULL),
                         "sdpa_heads: mask [4,5] does not broadcast to the scores [.., H, T, T] = "
                         "[2,2,5,5]");
    ck_assert_fails_with(tensor_sdpa_heads(xi, 2, NULL, false, 0, NULL),
                         "sdpa_heads: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_sdpa_heads(NULL, 2, NULL, false, 0, NULL),
                         "sdpa_heads: input 0 is NULL");
    rng g;
    rng_seed(&g, 1, 1);
    ck_assert_fails_with(tensor_sdpa_heads(qkv, 2, NULL, false, 1.0, &g),
                         "sdpa_heads: dropout_p must be in [0, 1), got 1");
    ck_assert_fails_with(tensor_sdpa_heads(qkv, 2, NULL, false, 0.5, NULL),
                         "sdpa_heads: dropout_p = 0.5 needs a generator, got NULL");
    ck_assert_int_eq(tg_tape_node_count(), 0);
    tensor_free(qkv), tensor_free(x1), tensor_free(x8), tensor_free(odd), tensor_free(empty),
        tensor_free(xi), tensor_free(bad_mask);
}
END_TEST

/* Second order: the Hessian-vector product of f = sum(c * y^2) through
 * sdpa_heads (its graph vjp) equals the one through the split reference,
 * causal with a key-padding mask and dropout, within 1e-10 (float64). */
START_TEST(test_sdpa_heads_hvp_matches_split_heads) {
    tensor *qkv = rand_leaf(71, SHAPE(2, 4, 12)), *v = rand_leaf(72, SHAPE(2, 4, 12));
    tensor *c = rand_leaf(73, SHAPE(2, 4, 4));
    tensor *pad = tensor_from_doubles(DTYPE_I64, 4, (int64_t[]){2, 1, 1, 4},
                                      (double[]){0, 0, 1, 0, 0, 0, 0, 1});
    tensor *hv[2];
    for (int version = 0; version < 2; version++) {
        tensor *y = (version ? heads_reference : heads_fused)(qkv, 2, pad, true, 0.2, 9);
        tensor *f = tensor_sum_all(tensor_mul(tensor_square(y), c));
        tensor *h = NULL;
        ck_assert_msg(tensor_hvp(f, &qkv, 1, &v, &h) == 0, "%s", tapegrad_error());
        hv[version] = tensor_clone(h);
        tape_reset();
    }
    bool nonzero = false;
    for (int64_t e = 0; e < hv[0]->size; e++) {
        ck_assert_msg(fabs(tensor_get(hv[0], e) - tensor_get(hv[1], e)) <= 1e-10,
                      "hv element %lld: sdpa_heads %.15g, reference %.15g", (long long)e,
                      tensor_get(hv[0], e), tensor_get(hv[1], e));
        nonzero |= tensor_get(hv[0], e) != 0;
    }
    ck_assert(nonzero);
    tensor_free(hv[0]), tensor_free(hv[1]), tensor_free(qkv), tensor_free(v), tensor_free(c),
        tensor_free(pad);
}
END_TEST

START_TEST(test_sdpa_heads_registry_cases_numeric) {
    ck_assert_int_ge(numeric_check_op("sdpa_heads", 1, 3, CHECK_ALL), 24);
}
END_TEST

Suite *ops_attention_suite(void) {
    Suite *s = suite_create("ops_attention");
    TCase *tc = tcase_create("attention");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sdpa_hand_computed);
    tcase_add_test(tc, test_sdpa_matches_oracle_plain);
    tcase_add_test(tc, test_sdpa_matches_oracle_causal);
    tcase_add_test(tc, test_sdpa_matches_oracle_masked);
    tcase_add_test(tc, test_sdpa_matches_oracle_dropout);
    tcase_add_test(tc, test_sdpa_masked_keys_get_exactly_zero_gradient);
    tcase_add_test(tc, test_sdpa_causal_future_gets_exactly_zero_gradient);
    tcase_add_test(tc, test_sdpa_fully_masked_row_is_zero);
    tcase_add_test(tc, test_sdpa_empty_keys_and_queries);
    tcase_add_test(tc, test_sdpa_dropout_deterministic_and_scaled);
    tcase_add_test(tc, test_sdpa_float32_matches_float64);
    tcase_add_test(tc, test_sdpa_threads_give_the_same_bits);
    tcase_add_test(tc, test_sdpa_errors);
    tcase_add_test(tc, test_sdpa_registry_cases_numeric);
    tcase_add_test(tc, test_sdpa_heads_matches_split_heads);
    tcase_add_test(tc, test_sdpa_heads_matches_split_heads_masked_and_dropout);
    tcase_add_test(tc, test_sdpa_heads_excluded_keys_get_exactly_zero_gradient);
    tcase_add_test(tc, test_sdpa_heads_threads_give_the_same_bits);
    tcase_add_test(tc, test_sdpa_heads_errors);
    tcase_add_test(tc, test_sdpa_heads_hvp_matches_split_heads);
    tcase_add_test(tc, test_sdpa_heads_registry_cases_numeric);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ops_attention_suite)
