/* test_nn_rnn.c - RNN, GRU and LSTM cells and layers: PyTorch's parameter
 * names and shapes, values against a plain-C oracle of PyTorch's equations
 * and against PyTorch's own outputs and gradients (tests/rnn_torch_ref.h),
 * bad input refused, float64 whole-graph gradient checks of every parameter,
 * the input and the initial states, a broken gate caught and localised,
 * gradient flow to every parameter, and a checkpoint round trip under
 * torch's names. */
#include <limits.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../autograd/internal.h"
#include "check_main.h"
#include "rnn_torch_ref.h"

enum { T = 3, B = 2, I = 3, H = 4 };

static double sig(double v) { return 1 / (1 + exp(-v)); }

/* W [G*H, n] row-major times v [n], row r. */
static double row(const tensor *w, int64_t r, const double *v, int64_t n) {
    double s = 0;
    for (int64_t k = 0; k < n; k++) s += tensor_get(w, r * n + k) * v[k];
    return s;
}

/* The oracle: PyTorch's documented equations, one batch row at a time, in
 * plain loops over the layer's own weights. x [T, B, I] time-major; writes
 * every h into out [T, B, H] and the last c into c_last [B, H]. */
static void oracle(const nn_rnn *l, const double *x, const double *h0, const double *c0,
                   double *out, double *c_last) {
    for (int b = 0; b < B; b++) {
        double h[H], c[H];
        for (int j = 0; j < H; j++) h[j] = h0 ? h0[b * H + j] : 0, c[j] = c0 ? c0[b * H + j] : 0;
        for (int t = 0; t < T; t++) {
            const double *xt = x + (t * B + b) * I;
            double gi[4 * H], gh[4 * H], hn[H], cn[H];
            int G = l->mode == NN_RNN_LSTM ? 4 : l->mode == NN_RNN_GRU ? 3 : 1;
            for (int r = 0; r < G * H; r++) {
                gi[r] = row(l->weight_ih, r, xt, I) + (l->bias_ih ? tensor_get(l->bias_ih, r) : 0);
                gh[r] = row(l->weight_hh, r, h, H) + (l->bias_hh ? tensor_get(l->bias_hh, r) : 0);
            }
            for (int j = 0; j < H; j++) {
                if (l->mode == NN_RNN_TANH) {
                    hn[j] = tanh(gi[j] + gh[j]);
                } else if (l->mode == NN_RNN_LSTM) {
                    double ig = sig(gi[j] + gh[j]), fg = sig(gi[H + j] + gh[H + j]);
                    double gg = tanh(gi[2 * H + j] + gh[2 * H + j]);
                    double og = sig(gi[3 * H + j] + gh[3 * H + j]);
                    cn[j] = fg * c[j] + ig * gg;
                    hn[j] = og * tanh(cn[j]);
                } else {
                    double r = sig(gi[j] + gh[j]), z = sig(gi[H + j] + gh[H + j]);
                    double n = tanh(gi[2 * H + j] + r * gh[2 * H + j]);
                    hn[j] = (1 - z) * n + z * h[j];
                }
            }
            for (int j = 0; j < H; j++) {
                h[j] = hn[j];
                if (l->mode == NN_RNN_LSTM) c[j] = cn[j];
                out[(t * B + b) * H + j] = h[j];
            }
        }
        for (int j = 0; j < H; j++) c_last[b * H + j] = c[j];
    }
}

static tensor *rand_t(uint64_t seed, int ndim, const int64_t *shape) {
    rng g;
    rng_seed(&g, seed, 7);
    return tensor_randn(&g, DTYPE_F64, ndim, shape, 0, 1);
}

static const nn_rnn_mode modes[3] = {NN_RNN_TANH, NN_RNN_GRU, NN_RNN_LSTM};

START_TEST(test_names_and_shapes) {
    nn_model *m = nn_model_new(DTYPE_F32, 1);
    nn_rnn lstm, gru, cell;
    ck_assert_int_eq(nn_rnn_init(&lstm, m, "lstm", NN_RNN_LSTM, 5, 7, true, false), 0);
    ck_assert_int_eq(nn_rnn_init(&gru, m, "gru", NN_RNN_GRU, 5, 7, true, true), 0);
    ck_assert_int_eq(nn_rnn_cell_init(&cell, m, "cell", NN_RNN_TANH, 5, 7, false), 0);
    const char *names[] = {"lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0",
                           "lstm.bias_hh_l0",   "gru.weight_ih_l0",  "gru.weight_hh_l0",
                           "gru.bias_ih_l0",    "gru.bias_hh_l0",    "cell.weight_ih",
                           "cell.weight_hh"};
    int64_t rows[] = {28, 28, 28, 28, 21, 21, 21, 21, 7, 7};
    int64_t cols[] = {5, 7, 0, 0, 5, 7, 0, 0, 5, 7};
    ck_assert_int_eq(nn_model_state_count(m), 10);
    for (int i = 0; i < 10; i++) {
        const char *name;
        tensor *t;
        ck_assert_int_eq(nn_model_state_at(m, i, &name, &t), 0);
        ck_assert_str_eq(name, names[i]);
        ck_assert_int_eq(t->ndim, cols[i] ? 2 : 1);
        ck_assert_int_eq(t->shape[0], rows[i]);
        if (cols[i]) ck_assert_int_eq(t->shape[1], cols[i]);
        /* U(-1/sqrt(7), 1/sqrt(7)), not all equal */
        double lo = 1e9, hi = -1e9;
        for (int64_t k = 0; k < t->size; k++) {
            double v = tensor_get(t, k);
            lo = fmin(lo, v);
            hi = fmax(hi, v);
        }
        ck_assert(lo >= -1 / sqrt(7.0) && hi <= 1 / sqrt(7.0) && hi - lo > 0.3);
    }
    ck_assert_ptr_null(cell.bias_ih);
    ck_assert_ptr_null(cell.bias_hh);
    nn_model_free(m);
}
END_TEST

/* Every mode against the oracle, with given h0 / c0 and with zeros. */
START_TEST(test_values_against_oracle) {
    nn_rnn_mode mode = modes[_i];
    nn_model *m = nn_model_new(DTYPE_F64, 3 + _i);
    nn_rnn l;
    ck_assert_int_eq(nn_rnn_init(&l, m, "rnn", mode, I, H, true, false), 0);
    tensor *x = rand_t(10, SHAPE(T, B, I)), *h0 = rand_t(11, SHAPE(1, B, H)),
           *c0 = rand_t(12, SHAPE(1, B, H));
    double want[T * B * H], want_c[B * H];
    for (int given = 0; given < 2; given++) {
        tensor *out, *hn, *cn = NULL;
        ck_assert_int_eq(nn_rnn_forward(&l, x, given ? h0 : NULL,
                                        given && mode == NN_RNN_LSTM ? c0 : NULL, &out, &hn, &cn),
                         0);
        oracle(&l, x->data, given ? h0->data : NULL, given ? c0->data : NULL, want, want_c);
        ck_assert_int_eq(out->ndim, 3);
        ck_assert_int_eq(out->shape[0], T);
        ck_assert_int_eq(out->shape[2], H);
        ck_assert_tensor(out, want, 1e-12);
        ck_assert_tensor(hn, want + (T - 1) * B * H, 1e-12);
        if (mode == NN_RNN_LSTM)
            ck_assert_tensor(cn, want_c, 1e-12);
        else
            ck_assert_ptr_null(cn);
        tape_reset();
    }
    /* batch_first gives the same numbers transposed; a cell equals one step */
    nn_rnn bf = l;
    bf.batch_first = true;
    tensor *out;
    tensor *xb = tensor_transpose(x, 0, 1);
    ck_assert_int_eq(nn_rnn_forward(&bf, xb, NULL, NULL, &out, NULL, NULL), 0);
    oracle(&l, x->data, NULL, NULL, want, want_c);
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++)
            for (int j = 0; j < H; j++)
                ck_assert_close(tensor_get(out, (b * T + t) * H + j), want[(t * B + b) * H + j],
                                1e-12);
    tape_reset();
    /* the cell, stepped by hand from h0 / c0 given as [B, H], is the layer */
    oracle(&l, x->data, h0->data, c0->data, want, want_c);
    tensor *h = tensor_reshape(h0, SHAPE(B, H)), *cs = mode == NN_RNN_LSTM ? tensor_reshape(c0, SHAPE(B, H)) : NULL;
    for (int t = 0; t < T; t++) {
        tensor *xt = tensor_reshape(tensor_narrow(x, 0, t, 1), SHAPE(B, I));
        tensor *h1, *c1 = (tensor *)1;
        ck_assert_int_eq(nn_rnn_cell_forward(&l, xt, h, cs, &h1, &c1), 0);
        ck_assert_int_eq(h1->ndim, 2);
        ck_assert_tensor(h1, want + t * B * H, 1e-12);
        if (mode == NN_RNN_LSTM)
            ck_assert_ptr_nonnull(c1);
        else
            ck_assert_ptr_null(c1);
        h = h1;
        cs = c1;
    }
    if (mode == NN_RNN_LSTM) ck_assert_tensor(cs, want_c, 1e-12);
    tape_reset();
    tensor_free(x);
    tensor_free(h0);
    tensor_free(c0);
    nn_model_free(m);
}
END_TEST

/* Against PyTorch itself (tests/rnn_torch_ref.h, written by
 * scripts/rnn_torch_ref.py from torch.nn.RNN / GRU / LSTM and their cells in
 * float64): our state_dict names are torch's, in torch's order; loaded with
 * torch's values, the layer and the cell give torch's outputs, and backward
 * gives torch's gradients for every parameter, the inputs and the states. */
static tensor *ref_leaf(const double *v, int ndim, const int64_t *shape) {
    tensor *t = tensor_from_doubles(DTYPE_F64, ndim, shape, v);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(tensor_set_requires_grad(t, true), 0);
    return t;
}

START_TEST(test_against_torch) {
    const rnn_ref *ref = rnn_refs[_i];
    nn_rnn_mode mode = modes[_i];
    bool lstm = mode == NN_RNN_LSTM;
    nn_model *m = nn_model_new(DTYPE_F64, 9);
    nn_rnn seq, cell;
    ck_assert_int_eq(nn_rnn_init(&seq, m, "seq", mode, REF_I, REF_H, true, false), 0);
    ck_assert_int_eq(nn_rnn_cell_init(&cell, m, "cell", mode, REF_I, REF_H, true), 0);
    ck_assert_int_eq(nn_model_state_count(m), ref->n_params);
    for (int p = 0; p < ref->n_params; p++) {
        const char *name;
        tensor *t;
        ck_assert_int_eq(nn_model_state_at(m, p, &name, &t), 0);
        ck_assert_str_eq(name, ref->names[p]);
        memcpy(t->data, ref->params[p], (size_t)t->size * sizeof(double));
    }
    tensor *x = ref_leaf(ref->x, SHAPE(REF_T, REF_B, REF_I));
    tensor *h0 = ref_leaf(ref->h0, SHAPE(1, REF_B, REF_H));
    tensor *c0 = lstm ? ref_leaf(ref->c0, SHAPE(1, REF_B, REF_H)) : NULL;
    tensor *cx = ref_leaf(ref->cx, SHAPE(REF_B, REF_I)), *ch = ref_leaf(ref->ch, SHAPE(REF_B, REF_H));
    tensor *cc = lstm ? ref_leaf(ref->cc, SHAPE(REF_B, REF_H)) : NULL;
    tensor *out, *hn, *cn, *h1, *c1;
    ck_assert_int_eq(nn_rnn_forward(&seq, x, h0, c0, &out, &hn, &cn), 0);
    ck_assert_int_eq(nn_rnn_cell_forward(&cell, cx, ch, cc, &h1, &c1), 0);
    const double tol = 1e-12;
    ck_assert_tensor(out, ref->out, tol);
    ck_assert_tensor(hn, ref->h_n, tol);
    ck_assert_tensor(h1, ref->ch1, tol);
    if (lstm) {
        ck_assert_tensor(cn, ref->c_n, tol);
        ck_assert_tensor(c1, ref->cc1, tol);
    }
    /* the script's loss */
    tensor *loss = tensor_add(tensor_sum_all(tensor_mul(out, tensor_tanh(out))),
                              tensor_sum_all(tensor_square(hn)));
    loss = tensor_add(loss, tensor_sum_all(tensor_mul(h1, tensor_tanh(h1))));
    if (lstm)
        loss = tensor_add(loss, tensor_add(tensor_sum_all(tensor_square(cn)),
                                           tensor_sum_all(tensor_square(c1))));
    ck_assert_int_eq(tensor_backward(loss), 0);
    for (int p = 0; p < ref->n_params; p++) {
        ck_assert_msg(m->params[p]->grad != NULL, "%s", ref->names[p]);
        ck_assert_tensor(m->params[p]->grad, ref->grads[p], tol);
    }
    ck_assert_tensor(x->grad, ref->gx, tol);
    ck_assert_tensor(h0->grad, ref->gh0, tol);
    ck_assert_tensor(cx->grad, ref->gcx, tol);
    ck_assert_tensor(ch->grad, ref->gch, tol);
    if (lstm) {
        ck_assert_tensor(c0->grad, ref->gc0, tol);
        ck_assert_tensor(cc->grad, ref->gcc, tol);
    }
    tape_reset();
    tensor *leaves[] = {x, h0, c0, cx, ch, cc};
    for (int i = 0; i < 6; i++) tensor_free(leaves[i]);
    nn_model_free(m);
}
END_TEST

/* Bad input is refused with a message naming the layer and the shapes,
 * and nothing is recorded as a result. */
#define REFUSED(call, msg)                        \
    do {                                          \
        tapegrad_error_clear();                   \
        ck_assert_int_eq((call), -1);             \
        ck_assert_error_is(msg);                  \
    } while (0)

START_TEST(test_bad_input_refused) {
    nn_model *m = nn_model_new(DTYPE_F64, 1);
    nn_rnn l, gru;
    ck_assert_int_eq(nn_rnn_init(&l, m, "lstm", NN_RNN_LSTM, I, H, true, false), 0);
    ck_assert_int_eq(nn_rnn_init(&gru, m, "gru", NN_RNN_GRU, I, H, true, false), 0);
    tensor *x = tensor_zeros(DTYPE_F64, SHAPE(T, B, I)), *out = NULL, *h1 = NULL;
    tensor *wide = tensor_zeros(DTYPE_F64, SHAPE(T, B, I + 1));
    tensor *empty = tensor_zeros(DTYPE_F64, SHAPE(0, B, I));
    tensor *x32 = tensor_zeros(DTYPE_F32, SHAPE(T, B, I));
    tensor *h3 = tensor_zeros(DTYPE_F64, SHAPE(2, B, H)), *h32 = tensor_zeros(DTYPE_F32, SHAPE(B, H));
    tensor *hb = tensor_zeros(DTYPE_F64, SHAPE(1, B + 1, H)), *c0 = tensor_zeros(DTYPE_F64, SHAPE(1, B, H));

    REFUSED(nn_rnn_forward(&l, wide, NULL, NULL, &out, NULL, NULL),
            "nn_rnn_forward: LSTM with input size 3 needs x [T, B, I] with every size > 0, got [3,2,4]");
    REFUSED(nn_rnn_forward(&l, empty, NULL, NULL, &out, NULL, NULL),
            "nn_rnn_forward: LSTM with input size 3 needs x [T, B, I] with every size > 0, got [0,2,3]");
    REFUSED(nn_rnn_forward(&l, h32, NULL, NULL, &out, NULL, NULL),
            "nn_rnn_forward: LSTM: x is float32 [2,4]; it must have the weights' dtype (float64)");
    REFUSED(nn_rnn_forward(&l, x32, NULL, NULL, &out, NULL, NULL),
            "nn_rnn_forward: LSTM: x is float32 [3,2,3]; it must have the weights' dtype (float64)");
    REFUSED(nn_rnn_forward(&l, NULL, NULL, NULL, &out, NULL, NULL), "nn_rnn_forward: x is NULL");
    REFUSED(nn_rnn_forward(&l, x, NULL, NULL, NULL, NULL, NULL), "nn_rnn_forward: out is NULL");
    REFUSED(nn_rnn_forward(NULL, x, NULL, NULL, &out, NULL, NULL),
            "nn_rnn_forward: layer is NULL or not initialised");
    REFUSED(nn_rnn_forward(&l, x, h3, NULL, &out, NULL, NULL),
            "nn_rnn_forward: LSTM with batch 2 and hidden size 4 needs h0 [1, 2, 4] or [2, 4], got [2,2,4]");
    REFUSED(nn_rnn_forward(&l, x, NULL, hb, &out, NULL, NULL),
            "nn_rnn_forward: LSTM with batch 2 and hidden size 4 needs c0 [1, 2, 4] or [2, 4], got [1,3,4]");
    REFUSED(nn_rnn_forward(&l, x, NULL, h32, &out, NULL, NULL),
            "nn_rnn_forward: LSTM: c0 is float32; it must have the dtype of x (float64)");
    REFUSED(nn_rnn_forward(&gru, x, NULL, c0, &out, NULL, NULL),
            "nn_rnn_forward: GRU has no cell state; c0 must be NULL, got [1,2,4]");
    /* more steps than tensor_stack counts: refused from the shape alone, so a
     * header with no data stands for the 2^31-step input */
    tensor big = {.dtype = DTYPE_F64, .ndim = 3, .shape = {(int64_t)INT_MAX + 1, 1, I},
                  .size = ((int64_t)INT_MAX + 1) * I, .node = -1};
    REFUSED(nn_rnn_forward(&l, &big, NULL, NULL, &out, NULL, NULL),
            "nn_rnn_forward: LSTM: a sequence of 2147483648 steps is longer than 2147483647");
    ck_assert_ptr_null(out);

    tensor *x2 = tensor_zeros(DTYPE_F64, SHAPE(B, I));
    REFUSED(nn_rnn_cell_forward(&l, NULL, NULL, NULL, &h1, NULL), "nn_rnn_cell_forward: x is NULL");
    REFUSED(nn_rnn_cell_forward(&l, x2, NULL, NULL, NULL, NULL), "nn_rnn_cell_forward: h_out is NULL");
    REFUSED(nn_rnn_cell_forward(&l, x, NULL, NULL, &h1, NULL),
            "nn_rnn_cell_forward: LSTM with input size 3 needs x [B, I] with every size > 0, got [3,2,3]");
    REFUSED(nn_rnn_cell_forward(&l, x2, c0, NULL, &h1, NULL),
            "nn_rnn_cell_forward: LSTM cell with batch 2 and hidden size 4 needs h [2, 4], got [1,2,4]");
    REFUSED(nn_rnn_cell_forward(&gru, x2, NULL, h32, &h1, NULL),
            "nn_rnn_cell_forward: GRU has no cell state; c must be NULL, got [2,4]");
    ck_assert_ptr_null(h1);

    /* a NULL state from a failed op is that failure, not zeros */
    tapegrad_error_clear();
    tensor *bad_h0 = tensor_add(h3, hb);
    ck_assert_ptr_null(bad_h0);
    ck_assert_int_eq(nn_rnn_forward(&l, x, bad_h0, NULL, &out, NULL, NULL), -1);
    ck_assert_ptr_nonnull(tapegrad_error());
    ck_assert_msg(strncmp(tapegrad_error(), "add", 3) == 0, "%s", tapegrad_error());
    tapegrad_error_clear();
    ck_assert_ptr_null(out);

    /* a state from before a tape reset is refused by name */
    tensor *stale = tensor_mul(c0, c0);
    ck_assert_ptr_nonnull(stale);
    tape_reset();
    tapegrad_error_clear();
    ck_assert_int_eq(nn_rnn_forward(&l, x, stale, NULL, &out, NULL, NULL), -1);
    ck_assert_ptr_nonnull(tapegrad_error());
    ck_assert_msg(strstr(tapegrad_error(), "nn_rnn_forward: h0 [1,2,4] is stale"), "%s",
                  tapegrad_error());
    tapegrad_error_clear();

    nn_rnn bad;
    REFUSED(nn_rnn_cell_init(&bad, m, "bad", (nn_rnn_mode)7, I, H, true),
            "nn_rnn_cell_init: unknown mode 7");
    REFUSED(nn_rnn_init(&bad, m, "bad", NN_RNN_GRU, 0, H, true, false),
            "nn_rnn_init: bad: sizes must be positive, got input 0, hidden 4");
    REFUSED(nn_rnn_init(&bad, NULL, "bad", NN_RNN_GRU, I, H, true, false),
            "nn_rnn_init: layer or model is NULL");
    /* the refused inits registered nothing */
    ck_assert_int_eq(nn_model_state_count(m), 8);
    tape_reset();
    tensor *frees[] = {x, wide, empty, x32, h3, h32, hb, c0, x2};
    for (size_t i = 0; i < sizeof frees / sizeof *frees; i++) tensor_free(frees[i]);
    nn_model_free(m);
}
END_TEST

/* The loss the checks differentiate: out and, for LSTM, the last cell
 * state, weighted so every element counts differently. */
typedef struct {
    nn_rnn *l;
} ctx_t;
static tensor *seq_loss(tensor *const *in, int n, void *vctx) {
    ctx_t *c = vctx;
    tensor *out, *hn, *cn = NULL;
    if (nn_rnn_forward(c->l, in[0], n > 1 ? in[1] : NULL, n > 2 ? in[2] : NULL, &out, &hn, &cn))
        return NULL;
    tensor *loss = tensor_sum_all(tensor_mul(out, tensor_tanh(out)));
    if (cn) loss = tensor_add(loss, tensor_sum_all(tensor_square(cn)));
    return loss;
}

/* Whole-graph float64 check of every parameter and the input, T = 16 for
 * the LSTM as the issue asks, and of h0 / c0 through plain gradcheck. */
START_TEST(test_gradcheck_whole_layer) {
    nn_rnn_mode mode = modes[_i];
    nn_model *m = nn_model_new(DTYPE_F32, 20 + _i);
    nn_rnn l;
    ck_assert_int_eq(nn_rnn_init(&l, m, "rnn", mode, I, H, true, false), 0);
    int64_t steps = mode == NN_RNN_LSTM ? 16 : T;
    tensor *x = rand_t(30, SHAPE(steps, B, I));
    ctx_t c = {&l};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck_model(m, seq_loss, &c, &x, 1, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    ck_assert_int_eq(r.n_inputs, 5);
    for (int i = 0; i < 5; i++) ck_assert(r.input[i].checked && !r.input[i].vacuous);
    gradcheck_report_free(&r);
    ck_assert_int_eq(m->params[0]->dtype, DTYPE_F32); /* restored */
    tensor_free(x);
    nn_model_free(m);
}
END_TEST

/* Initial states get their gradient too: h0 (and c0) checked as inputs of
 * a float64 model. */
START_TEST(test_gradcheck_initial_state) {
    nn_rnn_mode mode = modes[_i];
    nn_model *m = nn_model_new(DTYPE_F64, 40 + _i);
    nn_rnn l;
    ck_assert_int_eq(nn_rnn_init(&l, m, "rnn", mode, I, H, true, true), 0);
    tensor *in[3] = {rand_t(41, SHAPE(B, T, I)), rand_t(42, SHAPE(1, B, H)),
                     rand_t(43, SHAPE(B, H))};
    int n = mode == NN_RNN_LSTM ? 3 : 2;
    ctx_t c = {&l};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(seq_loss, &c, in, n, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    for (int i = 0; i < n; i++) ck_assert(r.input[i].checked && !r.input[i].vacuous);
    gradcheck_report_free(&r);
    for (int i = 0; i < 3; i++) tensor_free(in[i]);
    nn_model_free(m);
}
END_TEST

/* A broken LSTM inside a T = 16 layer: the whole-layer check must fail and
 * name the node. The layer records its recurrence as one lstm_seq node
 * (ops/lstm.c), so both mistakes are in that node's vjp, wrapped around the
 * real one: the gates' gradient (into the input projection) 10 % short, and
 * the recurrent weight's gradient with its first element doubled. */
static void (*real_seq_vjp)(tape_node *, tensor *const *);
/* gin[k] = before + s (after - before), element `only` alone when >= 0 */
static void seq_vjp_scaled(tape_node *n, tensor *const *gin, int k, double s, int64_t only) {
    tensor *t = gin[k];
    double *before = t ? malloc((size_t)t->size * sizeof *before) : NULL;
    for (int64_t i = 0; t && i < t->size; i++) before[i] = ((double *)t->data)[i];
    real_seq_vjp(n, gin);
    for (int64_t i = 0; t && i < t->size; i++)
        if (only < 0 || i == only)
            ((double *)t->data)[i] = before[i] + s * (((double *)t->data)[i] - before[i]);
    free(before);
}
static void seq_vjp_gates_short(tape_node *n, tensor *const *gin) { seq_vjp_scaled(n, gin, 0, 0.9, -1); }
static void seq_vjp_w_hh_doubled(tape_node *n, tensor *const *gin) { seq_vjp_scaled(n, gin, 1, 2.0, 0); }
static const struct {
    const char *op;
    int nth;
    void (*vjp)(tape_node *, tensor *const *);
} breaks[2] = {{"lstm_seq", 1, seq_vjp_gates_short}, {"lstm_seq", 1, seq_vjp_w_hh_doubled}};
enum { BROKEN_T = 16 };
static op_def bad_op;
static int which_break;
static int64_t broken_at;
static tensor *broken_loss(tensor *const *in, int n, void *vctx) {
    int64_t first = tg_tape_node_count();
    tensor *loss = seq_loss(in, n, vctx);
    int seen = 0;
    for (int64_t k = first; k < tg_tape_node_count(); k++) {
        tape_node *nd = tg_tape_node_at(k);
        if (strcmp(op_name(nd->op), breaks[which_break].op) == 0 &&
            ++seen == breaks[which_break].nth) {
            nd->op = &bad_op;
            if (broken_at < 0) broken_at = k; /* the recording; re-runs append */
            break;
        }
    }
    return loss;
}

START_TEST(test_broken_gate_localised) {
    which_break = _i;
    bad_op = *op_find(breaks[_i].op);
    real_seq_vjp = bad_op.vjp;
    bad_op.vjp = breaks[_i].vjp;
    nn_model *m = nn_model_new(DTYPE_F64, 5);
    nn_rnn l;
    ck_assert_int_eq(nn_rnn_init(&l, m, "lstm", NN_RNN_LSTM, I, H, true, false), 0);
    tensor *x = rand_t(50, SHAPE(BROKEN_T, B, I));
    ctx_t c = {&l};
    gradcheck_report r;
    broken_at = -1;
    ck_assert_int_eq(gradcheck_model(m, broken_loss, &c, &x, 1, NULL, &r), 0);
    ck_assert_int_ge(broken_at, 0);
    ck_assert_msg(!r.passed, "a broken %s (node %lld) passed: %s", breaks[_i].op,
                  (long long)broken_at, r.message);
    for (int i = 0; i < r.n_inputs; i++) ck_assert_msg(!r.input[i].vacuous, "%s", r.message);
    ck_assert_msg(r.localized, "not localised: %s", r.message);
    ck_assert_int_eq(r.bad_node, broken_at);
    ck_assert_msg(strncmp(r.bad_node_desc, breaks[_i].op, strlen(breaks[_i].op)) == 0, "%s",
                  r.bad_node_desc);
    gradcheck_report_free(&r);
    /* the same check with the real op passes: the failure is the gate's */
    ck_assert_int_eq(gradcheck_model(m, seq_loss, &c, &x, 1, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    gradcheck_report_free(&r);
    tensor_free(x);
    nn_model_free(m);
}
END_TEST

/* Every parameter of a layer and of a cell gets a finite, non-zero
 * gradient of its shape (the cell from a given h: from zeros W_hh would
 * rightly get none at the first step). */
static void assert_flow(const nn_model *m) {
    for (int p = 0; p < m->n_params; p++) {
        tensor *t = m->params[p], *gr = t->grad;
        ck_assert_msg(gr != NULL, "%s has no gradient", m->param_names[p]);
        ck_assert_int_eq(gr->ndim, t->ndim);
        for (int d = 0; d < t->ndim; d++) ck_assert_int_eq(gr->shape[d], t->shape[d]);
        double norm = 0;
        for (int64_t k = 0; k < gr->size; k++) {
            double v = tensor_get(gr, k);
            ck_assert_msg(isfinite(v), "%s[%lld] = %g", m->param_names[p], (long long)k, v);
            norm += v * v;
        }
        ck_assert_msg(norm > 0, "%s has a zero gradient", m->param_names[p]);
    }
    nn_gradflow r;
    ck_assert_int_eq(nn_gradflow_model(m, 1e-7, 1e3, &r), 0);
    ck_assert_int_eq(r.n, m->n_params);
    ck_assert_int_eq(r.n_problems, 0);
    nn_gradflow_free(&r);
}

START_TEST(test_gradient_flow) {
    nn_rnn_mode mode = modes[_i];
    nn_model *m = nn_model_new(DTYPE_F32, 60 + _i);
    nn_rnn l, cell;
    ck_assert_int_eq(nn_rnn_init(&l, m, "rnn", mode, I, H, true, false), 0);
    ck_assert_int_eq(nn_rnn_cell_init(&cell, m, "cell", mode, H, H, true), 0);
    rng g;
    rng_seed(&g, 61, 1);
    tensor *x = tensor_randn(&g, DTYPE_F32, SHAPE(T, B, I), 0, 1);
    tensor *out, *hn, *cn = NULL, *h2, *c2 = NULL;
    ck_assert_int_eq(nn_rnn_forward(&l, x, NULL, NULL, &out, &hn, &cn), 0);
    /* the cell reads the layer's last output as input and its state as h, c */
    tensor *x2 = tensor_reshape(tensor_narrow(out, 0, T - 1, 1), SHAPE(B, H));
    ck_assert_int_eq(nn_rnn_cell_forward(&cell, tensor_tanh(x2), tensor_reshape(hn, SHAPE(B, H)),
                                         cn ? tensor_reshape(cn, SHAPE(B, H)) : NULL, &h2, &c2),
                     0);
    tensor *loss = tensor_sum_all(tensor_mul(out, tensor_tanh(out)));
    loss = tensor_add(loss, tensor_sum_all(tensor_square(h2)));
    if (c2) loss = tensor_add(loss, tensor_sum_all(tensor_square(c2)));
    ck_assert_int_eq(tensor_backward(loss), 0);
    assert_flow(m);
    tape_reset();
    tensor_free(x);
    nn_model_free(m);
}
END_TEST

/* Save, load into a model of another seed: same parameters, same output.
 * The file holds exactly the tensors torch's module of the reference
 * (tests/rnn_torch_ref.h) has, under its names and with its shapes, which
 * is what torch's load_state_dict(strict=True) asks: loading it strictly
 * by torch's names and shapes succeeds. */
START_TEST(test_checkpoint_round_trip) {
    nn_rnn_mode mode = modes[_i];
    const rnn_ref *ref = rnn_refs[_i];
    char dir[] = "/tmp/tapegrad_rnn_XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/rnn.safetensors", dir);
    nn_model *a = nn_model_new(DTYPE_F32, 1), *b = nn_model_new(DTYPE_F32, 2);
    nn_rnn la, lb, ca, cb;
    ck_assert_int_eq(nn_rnn_init(&la, a, "seq", mode, REF_I, REF_H, true, false), 0);
    ck_assert_int_eq(nn_rnn_cell_init(&ca, a, "cell", mode, REF_I, REF_H, true), 0);
    ck_assert_int_eq(nn_rnn_init(&lb, b, "seq", mode, REF_I, REF_H, true, false), 0);
    ck_assert_int_eq(nn_rnn_cell_init(&cb, b, "cell", mode, REF_I, REF_H, true), 0);
    ck_assert(tensor_get(la.weight_ih, 0) != tensor_get(lb.weight_ih, 0));
    ck_assert_int_eq(nn_model_save(a, path), 0);

    /* torch's names, torch's shapes ([G*H, I], [G*H, H], [G*H], [G*H] twice) */
    int64_t gh = (mode == NN_RNN_LSTM ? 4 : mode == NN_RNN_GRU ? 3 : 1) * REF_H;
    tensor *theirs[8];
    for (int p = 0; p < 8; p++) {
        int64_t cols = p % 4 == 0 ? REF_I : p % 4 == 1 ? REF_H : 0;
        theirs[p] = cols ? tensor_zeros(DTYPE_F32, SHAPE(gh, cols)) : tensor_zeros(DTYPE_F32, SHAPE(gh));
    }
    ck_assert_int_eq(ref->n_params, 8);
    ck_assert_msg(nn_safetensors_load(path, ref->names, theirs, 8) == 0, "%s", tapegrad_error());
    for (int p = 0; p < 8; p++) {
        ck_assert_int_eq(memcmp(theirs[p]->data, a->params[p]->data,
                                (size_t)a->params[p]->size * sizeof(float)),
                         0);
        tensor_free(theirs[p]);
    }

    ck_assert_int_eq(nn_model_load(b, path), 0);
    for (int p = 0; p < a->n_params; p++)
        ck_assert_int_eq(memcmp(a->params[p]->data, b->params[p]->data,
                                (size_t)a->params[p]->size * sizeof(float)),
                         0);
    rng g;
    rng_seed(&g, 3, 1);
    tensor *x = tensor_randn(&g, DTYPE_F32, SHAPE(T, B, REF_I), 0, 1);
    tensor *oa, *ob;
    ck_assert_int_eq(nn_rnn_forward(&la, x, NULL, NULL, &oa, NULL, NULL), 0);
    ck_assert_int_eq(nn_rnn_forward(&lb, x, NULL, NULL, &ob, NULL, NULL), 0);
    ck_assert_int_eq(memcmp(oa->data, ob->data, (size_t)oa->size * sizeof(float)), 0);
    tape_reset();
    tensor_free(x);
    nn_model_free(a);
    nn_model_free(b);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* examples/charlstm, beside this test binary's folder (build/examples/);
 * NULL (and the test does nothing) in a build without examples (check-asan). */
static const char *charlstm(void) {
    static char p[4096];
    ssize_t n = readlink("/proc/self/exe", p, sizeof p - 32);
    ck_assert_int_gt(n, 0);
    p[n] = '\0';
    char *slash = strrchr(p, '/');
    *slash = '\0';
    slash = strrchr(p, '/');
    snprintf(slash, 32, "/examples/charlstm");
    if (access(p, X_OK)) {
        fprintf(stderr, "test_nn_rnn: %s not built; its test does nothing here\n", p);
        return NULL;
    }
    return p;
}

static int run_cmd(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp_text(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The example on a small corpus of its own: a few steps train, the
 * validation line has its format, the checkpoint holds the peer's names
 * (loaded strictly into a model built here), loading it again gives the same
 * validation loss, and bad options or a missing corpus are refused. */
START_TEST(test_charlstm_example) {
    const char *exe = charlstm();
    if (!exe) return;
    char dir[] = "/tmp/tapegrad_charlstm_XXXXXX", path[128], cmd[8192], logf[128], ckpt[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    /* two text files and one with an extension the corpus leaves out */
    const char *files[3] = {"b", "a", "a.dat"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        for (int k = 0; k < 40; k++)
            fprintf(f, "%s fortune number %d: the quick brown fox.\n%%\n", files[i], k);
        fclose(f);
    }
    snprintf(logf, sizeof logf, "%s/log", dir);
    snprintf(ckpt, sizeof ckpt, "%s/m.st", dir);
    snprintf(cmd, sizeof cmd, "'%s' --data '%s' --steps 3 --batch 2 --save '%s' --sample 20 >'%s' 2>&1",
             exe, dir, ckpt, logf);
    ck_assert_int_eq(run_cmd(cmd), 0);
    char *out = slurp_text(logf);
    ck_assert_msg(strstr(out, "charlstm: 493824 parameters"), "%s", out);
    char *val = strstr(out, "steps=3 val_loss=");
    ck_assert_msg(val != NULL, "%s", out);
    double vl = 0, bpb = 0;
    ck_assert_int_eq(sscanf(val, "steps=3 val_loss=%lf val_bpb=%lf", &vl, &bpb), 2);
    ck_assert(vl > 0 && vl < 10);
    ck_assert_double_eq_tol(bpb, vl / log(2.0), 1e-3);
    char want_val[64];
    snprintf(want_val, sizeof want_val, "val_loss=%.4f", vl);

    /* the peer's state_dict: emb, rnn (LSTM 128 -> 256, batch_first), head */
    nn_model *m = nn_model_new(DTYPE_F32, 1);
    nn_embedding emb;
    nn_rnn rnn;
    nn_linear head;
    ck_assert_int_eq(nn_embedding_init(&emb, m, "emb", 256, 128), 0);
    ck_assert_int_eq(nn_rnn_init(&rnn, m, "rnn", NN_RNN_LSTM, 128, 256, true, true), 0);
    ck_assert_int_eq(nn_linear_init(&head, m, "head", 256, 256, true), 0);
    ck_assert_msg(nn_model_load(m, ckpt) == 0, "%s", tapegrad_error());
    nn_model_free(m);

    /* --load with no training evaluates the same model to the same loss */
    snprintf(cmd, sizeof cmd, "'%s' --data '%s' --steps 0 --load '%s' >'%s' 2>&1", exe, dir, ckpt,
             logf);
    ck_assert_int_eq(run_cmd(cmd), 0);
    out = slurp_text(logf);
    ck_assert_msg(strstr(out, want_val), "%s lacks %s", out, want_val);

    snprintf(cmd, sizeof cmd, "'%s' --data '%s' --temperature 0 >'%s' 2>&1", exe, dir, logf);
    ck_assert_int_eq(run_cmd(cmd), 2);
    ck_assert(strstr(slurp_text(logf), "--temperature needs a finite number above 0, not \"0\""));
    snprintf(cmd, sizeof cmd, "'%s' --data '%s/none' >'%s' 2>&1", exe, dir, logf);
    ck_assert_int_eq(run_cmd(cmd), 1);
    ck_assert(strstr(slurp_text(logf), "/none: No such file or directory"));

    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    unlink(logf);
    unlink(ckpt);
    rmdir(dir);
}
END_TEST

Suite *nn_rnn_suite(void) {
    Suite *s = suite_create("nn_rnn");
    TCase *tc = tcase_create("nn_rnn");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_names_and_shapes);
    tcase_add_loop_test(tc, test_values_against_oracle, 0, 3);
    tcase_add_loop_test(tc, test_against_torch, 0, 3);
    tcase_add_test(tc, test_bad_input_refused);
    tcase_add_loop_test(tc, test_gradcheck_whole_layer, 0, 3);
    tcase_add_loop_test(tc, test_gradcheck_initial_state, 0, 3);
    tcase_add_loop_test(tc, test_broken_gate_localised, 0, 2);
    tcase_add_loop_test(tc, test_gradient_flow, 0, 3);
    tcase_add_loop_test(tc, test_checkpoint_round_trip, 0, 3);
    tcase_add_test(tc, test_charlstm_example);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(nn_rnn_suite)
