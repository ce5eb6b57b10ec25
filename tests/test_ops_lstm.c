/* test_ops_lstm.c - the fused LSTM ops (lstm_cell_c, lstm_cell_h and the
 * whole-sequence lstm_seq): values and gradients against the same cell
 * composed from narrow, sigmoid, tanh, mul and add (and the sequence from
 * linear and the cell ops), in float64 and float32; the error paths; and a
 * central-difference check of every registry sample case. */
#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"
#include "ops_test.h"

OP_FAMILY(lstm)

/* Deterministic non-uniform values in about [-2.5, 2.5]. */
static void fill(double *v, int64_t n, double phase) {
    for (int64_t i = 0; i < n; i++) v[i] = 2.5 * sin(1.7 * (double)i + phase) * cos(0.3 * (double)i);
}

/* The cell from the ops the fused ones replace (nn/rnn.c before them):
 *   c = sigmoid(f) c_prev + sigmoid(i) tanh(g),  h = sigmoid(o) tanh(c). */
static tensor *gate(tensor *x, int k, int64_t H) { return tensor_narrow(x, 1, k * H, H); }
static void composed(tensor *x, tensor *cp, int64_t H, tensor **c, tensor **h) {
    *c = tensor_add(tensor_mul(tensor_sigmoid(gate(x, 1, H)), cp),
                    tensor_mul(tensor_sigmoid(gate(x, 0, H)), tensor_tanh(gate(x, 2, H))));
    *h = tensor_mul(tensor_sigmoid(gate(x, 3, H)), tensor_tanh(*c));
}

/* loss = sum(c * wc) + sum(h * wh): both outputs reach the loss, so the
 * gates get gradient from both ops and c_prev through c. Returns the values
 * of c, h and the gradients of gates and c_prev, concatenated. */
static void run(dtype dt, bool fused, int64_t B, int64_t H, double *out) {
    double xv[64], cv[16], wc[16], wh[16];
    fill(xv, B * 4 * H, 0.1);
    fill(cv, B * H, 1.3);
    fill(wc, B * H, 2.9);
    fill(wh, B * H, 4.1);
    tensor *x = leaf_dt(dt, SHAPE(B, 4 * H), xv), *cp = leaf_dt(dt, SHAPE(B, H), cv);
    tensor *tc = tensor_from_doubles(dt, SHAPE(B, H), wc), *th = tensor_from_doubles(dt, SHAPE(B, H), wh);
    tensor *c, *h;
    if (fused) {
        c = tensor_lstm_cell_c(x, cp);
        h = tensor_lstm_cell_h(x, c);
    } else {
        composed(x, cp, H, &c, &h);
    }
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(c->dtype, dt);
    ck_assert_int_eq(h->ndim, 2);
    ck_assert_int_eq(h->shape[0], B);
    ck_assert_int_eq(h->shape[1], H);
    tensor *loss = tensor_add(tensor_sum_all(tensor_mul(c, tc)), tensor_sum_all(tensor_mul(h, th)));
    ck_assert_int_eq(tensor_backward(loss), 0);
    int64_t k = 0;
    for (int64_t i = 0; i < B * H; i++) out[k++] = tensor_get(c, i);
    for (int64_t i = 0; i < B * H; i++) out[k++] = tensor_get(h, i);
    for (int64_t i = 0; i < B * 4 * H; i++) out[k++] = tensor_get(x->grad, i);
    for (int64_t i = 0; i < B * H; i++) out[k++] = tensor_get(cp->grad, i);
    tape_reset();
    tensor_free(x);
    tensor_free(cp);
    tensor_free(tc);
    tensor_free(th);
}

/* B = 3, H = 4: every value and gradient of the fused ops equals the
 * composition's, to float64 rounding (1e-14) and to a few float32 ulps
 * (the vectorised sigmoid and tanh against the same kernels through the
 * elementwise ops: 1e-6 on values of order 1). */
START_TEST(test_lstm_cell_matches_composition_f64_f32) {
    enum { B = 3, H = 4, N = B * H * 7 };
    double f[N], r[N];
    run(DTYPE_F64, true, B, H, f);
    run(DTYPE_F64, false, B, H, r);
    for (int i = 0; i < N; i++) ck_assert_close(f[i], r[i], 1e-14);
    run(DTYPE_F32, true, B, H, f);
    run(DTYPE_F32, false, B, H, r);
    for (int i = 0; i < N; i++) ck_assert_close(f[i], r[i], 1e-6 * (1 + fabs(r[i])));
}
END_TEST

/* A hand-computed cell, B = 1, H = 1: gates [i, f, g, o] = [0, 0, 0, 0],
 * c_prev = 2: sigma(0) = 1/2, tanh 0 = 0, so c = 1/2 * 2 + 1/2 * 0 = 1 and
 * h = 1/2 tanh 1. With upstream G = 1 on c alone:
 *   d i = G tg si (1 - si) = 0,  d f = G c_prev sf (1 - sf) = 2/4 = 1/2,
 *   d g = G si (1 - tg^2) = 1/2, d o = 0,  d c_prev = G sf = 1/2. */
START_TEST(test_lstm_cell_c_hand_computed) {
    tensor *x = leaf(SHAPE(1, 4), (double[]){0, 0, 0, 0});
    tensor *cp = leaf(SHAPE(1, 1), (double[]){2});
    tensor *c = tensor_lstm_cell_c(x, cp);
    ck_assert_tensor(c, ((double[]){1}), 1e-15);
    ck_assert_tensor(tensor_lstm_cell_h(x, c), ((double[]){0.5 * tanh(1.0)}), 1e-15);
    backward_g(c, (double[]){1});
    ck_assert_tensor(x->grad, ((double[]){0, 0.5, 0.5, 0}), 1e-15);
    ck_assert_tensor(cp->grad, ((double[]){0.5}), 1e-15);
    tape_reset();
    tensor_free(x);
    tensor_free(cp);
}
END_TEST

/* The same cell through tensor_grad with create_graph: the graph vjps give
 * the kernel vjps' numbers and can be differentiated again. */
START_TEST(test_lstm_cell_second_order_matches_composition) {
    double xv[8], cv[2];
    fill(xv, 8, 0.7);
    fill(cv, 2, 2.2);
    double fused[10], ref[10];
    for (int pass = 0; pass < 2; pass++) {
        tensor *x = leaf(SHAPE(1, 8), xv), *cp = leaf(SHAPE(1, 2), cv);
        tensor *c, *h;
        if (pass == 0) {
            c = tensor_lstm_cell_c(x, cp);
            h = tensor_lstm_cell_h(x, c);
        } else {
            composed(x, cp, 2, &c, &h);
        }
        tensor *y = tensor_sum_all(tensor_mul(h, h));
        tensor *in[2] = {x, cp}, *gr[2];
        ck_assert_int_eq(tensor_grad(y, NULL, in, 2, true, gr), 0);
        /* d/dx of sum(grad_x^2) + sum(grad_c^2): a second derivative */
        tensor *z = tensor_add(tensor_sum_all(tensor_square(gr[0])), tensor_sum_all(tensor_square(gr[1])));
        ck_assert_int_eq(tensor_backward(z), 0);
        double *dst = pass == 0 ? fused : ref;
        for (int i = 0; i < 8; i++) dst[i] = tensor_get(x->grad, i);
        for (int i = 0; i < 2; i++) dst[8 + i] = tensor_get(cp->grad, i);
        tape_reset();
        tensor_free(x);
        tensor_free(cp);
    }
    for (int i = 0; i < 10; i++) ck_assert_close(fused[i], ref[i], 1e-12);
}
END_TEST

/* lstm_seq against its steps written out: gates_t = gi_t + h w^T, the two
 * cell ops, y_t = h_t | c_t, stacked along the time axis. loss = sum(y * wy);
 * returns y and the gradients of gi, w, h0 and c0, concatenated. */
enum { ST = 5, SB = 2, SH = 3, SEQ_N = ST * SB * 2 * SH + ST * SB * 4 * SH + 4 * SH * SH + 2 * SB * SH };
static void run_seq(dtype dt, bool fused, bool bf, double *out) {
    double gv[ST * SB * 4 * SH], wv[4 * SH * SH], hv[SB * SH], cv[SB * SH], yw[ST * SB * 2 * SH];
    fill(gv, ST * SB * 4 * SH, 0.2);
    fill(wv, 4 * SH * SH, 1.1);
    for (int i = 0; i < 4 * SH * SH; i++) wv[i] *= 0.3;
    fill(hv, SB * SH, 2.3);
    fill(cv, SB * SH, 3.7);
    fill(yw, ST * SB * 2 * SH, 5.3);
    int64_t d0 = bf ? SB : ST, d1 = bf ? ST : SB;
    tensor *gi = leaf_dt(dt, SHAPE(d0, d1, 4 * SH), gv), *w = leaf_dt(dt, SHAPE(4 * SH, SH), wv);
    tensor *h0 = leaf_dt(dt, SHAPE(SB, SH), hv), *c0 = leaf_dt(dt, SHAPE(SB, SH), cv);
    tensor *wy = tensor_from_doubles(dt, SHAPE(d0, d1, 2 * SH), yw);
    tensor *y;
    if (fused) {
        y = tensor_lstm_seq(gi, w, h0, c0, bf);
    } else {
        tensor *ys[ST], *h = h0, *c = c0;
        for (int t = 0; t < ST; t++) {
            tensor *g = tensor_add(tensor_reshape(tensor_narrow(gi, bf, t, 1), SHAPE(SB, 4 * SH)),
                                   tensor_linear(h, w, NULL));
            tensor *c2, *h2;
            composed(g, c, SH, &c2, &h2);
            h = h2;
            c = c2;
            ys[t] = tensor_concat((tensor *[]){h, c}, 2, 1);
        }
        y = tensor_stack(ys, ST, bf);
    }
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->ndim, 3);
    ck_assert_int_eq(y->shape[0], d0);
    ck_assert_int_eq(y->shape[1], d1);
    ck_assert_int_eq(y->shape[2], 2 * SH);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(y, wy))), 0);
    int64_t k = 0;
    for (int64_t i = 0; i < y->size; i++) out[k++] = tensor_get(y, i);
    tensor *ins[4] = {gi, w, h0, c0};
    for (int j = 0; j < 4; j++)
        for (int64_t i = 0; i < ins[j]->size; i++) out[k++] = tensor_get(ins[j]->grad, i);
    ck_assert_int_eq(k, SEQ_N);
    tape_reset();
    for (int j = 0; j < 4; j++) tensor_free(ins[j]);
    tensor_free(wy);
}

/* T = 5, B = 2, H = 3, both layouts: the sequence op equals its steps to
 * float64 rounding and to float32 rounding through the recurrence. */
START_TEST(test_lstm_seq_matches_steps_f64_f32) {
    static double f[SEQ_N], r[SEQ_N];
    for (int bf = 0; bf < 2; bf++) {
        run_seq(DTYPE_F64, true, bf, f);
        run_seq(DTYPE_F64, false, bf, r);
        for (int i = 0; i < SEQ_N; i++) ck_assert_close(f[i], r[i], 1e-13 * (1 + fabs(r[i])));
        run_seq(DTYPE_F32, true, bf, f);
        run_seq(DTYPE_F32, false, bf, r);
        for (int i = 0; i < SEQ_N; i++) ck_assert_close(f[i], r[i], 1e-5 * (1 + fabs(r[i])));
    }
}
END_TEST

START_TEST(test_lstm_seq_errors) {
    tapegrad_error_clear();
    tensor *gi = tensor_ones(DTYPE_F64, SHAPE(3, 2, 8)), *w = tensor_ones(DTYPE_F64, SHAPE(8, 2));
    tensor *hc = tensor_ones(DTYPE_F64, SHAPE(2, 2)), *w3 = tensor_ones(DTYPE_F64, SHAPE(8, 3));
    tensor *gi2 = tensor_ones(DTYPE_F64, SHAPE(6, 8)), *gi0 = tensor_ones(DTYPE_F64, SHAPE(0, 2, 8));
    tensor *f32 = tensor_ones(DTYPE_F32, SHAPE(2, 2));
    ck_assert_fails_with(tensor_lstm_seq(NULL, w, hc, hc, false), "lstm_seq: input 0 is NULL");
    ck_assert_fails_with(tensor_lstm_seq(gi, w3, hc, hc, false),
                         "lstm_seq: needs gi [T, B, 4H] with every size > 0, w_hh [4H, H], h0 and c0 "
                         "[B, H]; got gi [3,2,8], w_hh [8,3], h0 [2,2], c0 [2,2]");
    ck_assert_fails_with(tensor_lstm_seq(gi, w, hc, hc, true),
                         "lstm_seq: needs gi [B, T, 4H] with every size > 0, w_hh [4H, H], h0 and c0 "
                         "[B, H]; got gi [3,2,8], w_hh [8,2], h0 [2,2], c0 [2,2]");
    ck_assert_fails_with(tensor_lstm_seq(gi2, w, hc, hc, false),
                         "lstm_seq: needs gi [T, B, 4H] with every size > 0, w_hh [4H, H], h0 and c0 "
                         "[B, H]; got gi [6,8], w_hh [8,2], h0 [2,2], c0 [2,2]");
    ck_assert_fails_with(tensor_lstm_seq(gi0, w, hc, hc, false),
                         "lstm_seq: needs gi [T, B, 4H] with every size > 0, w_hh [4H, H], h0 and c0 "
                         "[B, H]; got gi [0,2,8], w_hh [8,2], h0 [2,2], c0 [2,2]");
    ck_assert_fails(tensor_lstm_seq(gi, w, hc, f32, false), "lstm_seq");
    tensor_free(gi);
    tensor_free(w);
    tensor_free(hc);
    tensor_free(w3);
    tensor_free(gi2);
    tensor_free(gi0);
    tensor_free(f32);
}
END_TEST

START_TEST(test_lstm_cell_errors) {
    tapegrad_error_clear();
    tensor *g8 = tensor_ones(DTYPE_F64, SHAPE(2, 8));
    tensor *g7 = tensor_ones(DTYPE_F64, SHAPE(2, 7));
    tensor *g3d = tensor_ones(DTYPE_F64, SHAPE(1, 2, 8));
    tensor *c2 = tensor_ones(DTYPE_F64, SHAPE(2, 2));
    tensor *c3 = tensor_ones(DTYPE_F64, SHAPE(2, 3));
    tensor *c12 = tensor_ones(DTYPE_F64, SHAPE(1, 2));
    tensor *f32 = tensor_ones(DTYPE_F32, SHAPE(2, 2));
    tensor *i64 = tensor_zeros(DTYPE_I64, SHAPE(2, 8));
    ck_assert_fails_with(tensor_lstm_cell_c(NULL, c2), "lstm_cell_c: input 0 is NULL");
    ck_assert_fails_with(tensor_lstm_cell_h(g8, NULL), "lstm_cell_h: input 1 is NULL");
    ck_assert_fails_with(tensor_lstm_cell_c(g7, c2),
                         "lstm_cell_c: needs gates [B, 4H] and c_prev [B, H], got gates [2,7] and c_prev [2,2]");
    ck_assert_fails_with(tensor_lstm_cell_c(g8, c3),
                         "lstm_cell_c: needs gates [B, 4H] and c_prev [B, H], got gates [2,8] and c_prev [2,3]");
    ck_assert_fails_with(tensor_lstm_cell_h(g8, c12),
                         "lstm_cell_h: needs gates [B, 4H] and c [B, H], got gates [2,8] and c [1,2]");
    ck_assert_fails_with(tensor_lstm_cell_h(g3d, c2),
                         "lstm_cell_h: needs gates [B, 4H] and c [B, H], got gates [1,2,8] and c [2,2]");
    ck_assert_fails(tensor_lstm_cell_c(g8, f32), "lstm_cell_c");
    ck_assert_fails(tensor_lstm_cell_h(i64, c2), "lstm_cell_h: input 0 is int64");
    /* NULL propagates: the first cause is kept */
    ck_assert_fails_with(tensor_lstm_cell_h(g8, tensor_lstm_cell_c(g7, c2)),
                         "lstm_cell_c: needs gates [B, 4H] and c_prev [B, H], got gates [2,7] and c_prev [2,2]");
    tensor_free(g8);
    tensor_free(g7);
    tensor_free(g3d);
    tensor_free(c2);
    tensor_free(c3);
    tensor_free(c12);
    tensor_free(f32);
    tensor_free(i64);
}
END_TEST

/* Every op of the family, every sample case, four seeds: see tests/ops_test.h. */
START_TEST(test_lstm_samples_match_central_differences) {
    ck_assert_int_eq(tg_ops_lstm_count, 3);
    ck_assert_int_ge(numeric_check_family(tg_ops_lstm, tg_ops_lstm_count, 1, 4, CHECK_ALL), 48);
}
END_TEST

Suite *ops_lstm_suite(void) {
    Suite *s = suite_create("ops_lstm");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_lstm_cell_matches_composition_f64_f32);
    tcase_add_test(tc, test_lstm_cell_c_hand_computed);
    tcase_add_test(tc, test_lstm_cell_second_order_matches_composition);
    tcase_add_test(tc, test_lstm_cell_errors);
    tcase_add_test(tc, test_lstm_seq_matches_steps_f64_f32);
    tcase_add_test(tc, test_lstm_seq_errors);
    tcase_add_test(tc, test_lstm_samples_match_central_differences);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ops_lstm_suite)
