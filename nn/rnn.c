/* rnn.c - PyTorch's one-layer RNN (tanh), GRU and LSTM, as a cell and as a
 * whole-sequence layer, composed from differentiable ops (linear, narrow,
 * sigmoid, tanh, mul, add; the LSTM's gates through the fused
 * lstm_cell_c / lstm_cell_h of ops/lstm.c), so the tape differentiates them
 * and the checker can check them node by node.
 *
 * Gates are stacked along the rows of the weights in PyTorch's order, so a
 * checkpoint of ours loads into torch.nn.LSTM / GRU / RNN and back:
 *   LSTM (G = 4): [i; f; g; o]    GRU (G = 3): [r; z; n]    RNN (G = 1).
 * Shapes: x [B, I], h and c [B, H], W_ih [G*H, I], W_hh [G*H, H], b [G*H]. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "../autograd/internal.h"

static const char *mode_name(nn_rnn_mode m) {
    return m == NN_RNN_LSTM ? "LSTM" : m == NN_RNN_GRU ? "GRU" : "RNN";
}

static int gates(nn_rnn_mode m) { return m == NN_RNN_LSTM ? 4 : m == NN_RNN_GRU ? 3 : 1; }

static tensor *add_param(nn_model *m, const char *prefix, const char *leaf, const char *suffix,
                         int ndim, const int64_t *shape) {
    char name[NN_NAME_MAX * 2];
    snprintf(name, sizeof name, "%s%s%s%s", prefix ? prefix : "", prefix && prefix[0] ? "." : "",
             leaf, suffix);
    tensor *t = tensor_new(m->dtype, ndim, shape);
    if (!t) return NULL;
    return nn_model_add_param(m, name, t);
}

static int init(nn_rnn *l, nn_model *m, const char *prefix, nn_rnn_mode mode, int64_t input,
                int64_t hidden, bool bias, bool batch_first, const char *what, const char *suffix) {
    if (!l || !m) {
        tg_error_set("%s: layer or model is NULL", what);
        return -1;
    }
    if (mode != NN_RNN_TANH && mode != NN_RNN_GRU && mode != NN_RNN_LSTM) {
        tg_error_set("%s: unknown mode %d", what, (int)mode);
        return -1;
    }
    if (input <= 0 || hidden <= 0) {
        tg_error_set("%s: %s: sizes must be positive, got input %lld, hidden %lld", what,
                  prefix ? prefix : "", (long long)input, (long long)hidden);
        return -1;
    }
    memset(l, 0, sizeof *l);
    l->model = m;
    l->mode = mode;
    l->input_size = input;
    l->hidden_size = hidden;
    l->batch_first = batch_first;
    int64_t gh = gates(mode) * hidden;
    l->weight_ih = add_param(m, prefix, "weight_ih", suffix, SHAPE(gh, input));
    if (!l->weight_ih) return -1;
    l->weight_hh = add_param(m, prefix, "weight_hh", suffix, SHAPE(gh, hidden));
    if (!l->weight_hh) return -1;
    if (bias) {
        l->bias_ih = add_param(m, prefix, "bias_ih", suffix, SHAPE(gh));
        if (!l->bias_ih) return -1;
        l->bias_hh = add_param(m, prefix, "bias_hh", suffix, SHAPE(gh));
        if (!l->bias_hh) return -1;
    }
    /* PyTorch's RNNBase.reset_parameters: every tensor U(-k, k), k = 1/sqrt(H),
     * in registration order. */
    double k = 1.0 / sqrt((double)hidden);
    tensor *ts[4] = {l->weight_ih, l->weight_hh, l->bias_ih, l->bias_hh};
    for (int i = 0; i < 4; i++)
        if (ts[i] && nn_init_uniform(ts[i], &m->rng, -k, k)) return -1;
    return 0;
}

int nn_rnn_cell_init(nn_rnn *l, nn_model *m, const char *prefix, nn_rnn_mode mode, int64_t input,
                     int64_t hidden, bool bias) {
    return init(l, m, prefix, mode, input, hidden, bias, false, "nn_rnn_cell_init", "");
}

int nn_rnn_init(nn_rnn *l, nn_model *m, const char *prefix, nn_rnn_mode mode, int64_t input,
                int64_t hidden, bool bias, bool batch_first) {
    return init(l, m, prefix, mode, input, hidden, bias, batch_first, "nn_rnn_init", "_l0");
}

/* Rows [k*H, (k+1)*H) of the gate pre-activations g [B, G*H]: gate k. */
static tensor *gate(tensor *g, int k, int64_t H) { return tensor_narrow(g, 1, k * H, H); }

/* The bias of the input projection: b_ih, or for the LSTM b_ih + b_hh, so
 * that the step adds no bias of its own (both parameters keep their names;
 * the sum's vjp gives each the gates' gradient summed over the batch, as
 * torch's). NULL without biases (no error then). */
static tensor *in_bias(const nn_rnn *l) {
    if (l->mode != NN_RNN_LSTM || !l->bias_ih) return l->bias_ih;
    return tensor_add(l->bias_ih, l->bias_hh);
}

/* One step from gi = x W_ih^T + b_ih [B, G*H] (+ b_hh for the LSTM; computed
 * by the caller with in_bias, for the whole sequence at once in a layer) and
 * the state h, c [B, H].
 *   gh = h W_hh^T + b_hh             (LSTM: h W_hh^T, b_hh is in gi)
 *   RNN:  h' = tanh(gi + gh)
 *   LSTM: i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (gi + gh) by gate
 *         c' = f * c + i * g,  h' = o * tanh(c')   (lstm_cell_c, lstm_cell_h)
 *   GRU:  r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z)
 *         n = tanh(gi_n + r * gh_n)      (r applies to W_hn h + b_hn)
 *         h' = (1 - z) * n + z * h = n + z * (h - n)
 * Backward is the tape's: every piece is an op with its own vjp. */
static int step(const nn_rnn *l, tensor *gi, tensor *h, tensor *c, tensor **h_out,
                tensor **c_out) {
    int64_t H = l->hidden_size;
    tensor *gh = tensor_linear(h, l->weight_hh, l->mode == NN_RNN_LSTM ? NULL : l->bias_hh);
    if (!gh) return -1;
    if (l->mode == NN_RNN_TANH) {
        *h_out = tensor_tanh(tensor_add(gi, gh));
        return *h_out ? 0 : -1;
    }
    if (l->mode == NN_RNN_LSTM) {
        tensor *s = tensor_add(gi, gh);
        tensor *c2 = tensor_lstm_cell_c(s, c);
        tensor *h2 = tensor_lstm_cell_h(s, c2);
        if (!h2) return -1;
        *h_out = h2;
        *c_out = c2;
        return 0;
    }
    tensor *r = tensor_sigmoid(tensor_add(gate(gi, 0, H), gate(gh, 0, H)));
    tensor *z = tensor_sigmoid(tensor_add(gate(gi, 1, H), gate(gh, 1, H)));
    tensor *n = tensor_tanh(tensor_add(gate(gi, 2, H), tensor_mul(r, gate(gh, 2, H))));
    tensor *h2 = tensor_add(n, tensor_mul(z, tensor_sub(h, n)));
    if (!h2) return -1;
    *h_out = h2;
    return 0;
}

static int need(const char *what, const nn_rnn *l) {
    if (!l || !l->model || !l->weight_ih) {
        tg_error_set("%s: layer is NULL or not initialised", what);
        return -1;
    }
    return 0;
}

/* x must be fresh, of the weights' dtype; `expect` is its shape in words
 * for the message. */
static int check_x(const char *what, const nn_rnn *l, const tensor *x, int ndim,
                   const char *expect) {
    char buf[64];
    if (tg_tensor_check_fresh(what, "x", x)) return -1;
    if (x->dtype != l->weight_ih->dtype) {
        tg_error_set("%s: %s: x is %s %s; it must have the weights' dtype (%s)", what,
                  mode_name(l->mode), tg_dtype_name(x->dtype), tensor_shape_str(x, buf, sizeof buf),
                  tg_dtype_name(l->weight_ih->dtype));
        return -1;
    }
    bool empty = false;
    for (int d = 0; d < x->ndim && x->ndim == ndim; d++) empty |= x->shape[d] == 0;
    if (x->ndim != ndim || x->shape[ndim - 1] != l->input_size || empty) {
        tg_error_set("%s: %s with input size %lld needs x %s with every size > 0, got %s", what,
                  mode_name(l->mode), (long long)l->input_size, expect,
                  tensor_shape_str(x, buf, sizeof buf));
        return -1;
    }
    return 0;
}

/* A state given as [B, H] or (layer) [1, B, H], as [B, H]. NULL: zeros of
 * x's dtype, a constant on the tape, unless an error is pending (then the
 * NULL is a failed upstream result, and propagates). A state the mode has
 * no use for (c for RNN and GRU) is refused rather than ignored. */
static tensor *state(const char *what, const nn_rnn *l, const char *name, tensor *s, int64_t B,
                     dtype dt, bool layer) {
    int64_t H = l->hidden_size;
    bool wanted = name[0] == 'h' || l->mode == NN_RNN_LSTM;
    if (!s) {
        if (tg_error_pending()) return NULL;
        return wanted ? tg_tensor_tape_zeros(dt, SHAPE(B, H)) : NULL;
    }
    char buf[64];
    if (!wanted) {
        tg_error_set("%s: %s has no cell state; %s must be NULL, got %s", what, mode_name(l->mode),
                  name, tensor_shape_str(s, buf, sizeof buf));
        return NULL;
    }
    if (tg_tensor_check_fresh(what, name, s)) return NULL;
    if (s->dtype != dt) {
        tg_error_set("%s: %s: %s is %s; it must have the dtype of x (%s)", what, mode_name(l->mode),
                  name, tg_dtype_name(s->dtype), tg_dtype_name(dt));
        return NULL;
    }
    if (s->ndim == 2 && s->shape[0] == B && s->shape[1] == H) return s;
    if (layer && s->ndim == 3 && s->shape[0] == 1 && s->shape[1] == B && s->shape[2] == H)
        return tensor_reshape(s, SHAPE(B, H));
    if (layer)
        tg_error_set("%s: %s with batch %lld and hidden size %lld needs %s [1, %lld, %lld] or "
                  "[%lld, %lld], got %s",
                  what, mode_name(l->mode), (long long)B, (long long)H, name, (long long)B,
                  (long long)H, (long long)B, (long long)H, tensor_shape_str(s, buf, sizeof buf));
    else
        tg_error_set("%s: %s cell with batch %lld and hidden size %lld needs %s [%lld, %lld], got %s",
                  what, mode_name(l->mode), (long long)B, (long long)H, name, (long long)B,
                  (long long)H, tensor_shape_str(s, buf, sizeof buf));
    return NULL;
}

int nn_rnn_cell_forward(const nn_rnn *l, tensor *x, tensor *h, tensor *c, tensor **h_out,
                        tensor **c_out) {
    const char *what = "nn_rnn_cell_forward";
    if (need(what, l)) return -1;
    if (!x || !h_out) {
        if (!tg_error_pending()) tg_error_set("%s: %s is NULL", what, !x ? "x" : "h_out");
        return -1;
    }
    if (check_x(what, l, x, 2, "[B, I]")) return -1;
    int64_t B = x->shape[0];
    tensor *h0 = state(what, l, "h", h, B, x->dtype, false);
    if (!h0) return -1;
    tensor *c0 = state(what, l, "c", c, B, x->dtype, false);
    if (!c0 && (l->mode == NN_RNN_LSTM || c)) return -1;
    tensor *b = in_bias(l);
    if (!b && l->bias_ih) return -1;
    tensor *gi = tensor_linear(x, l->weight_ih, b);
    tensor *h1 = NULL, *c1 = NULL;
    if (!gi || step(l, gi, h0, c0, &h1, &c1)) return -1;
    *h_out = h1;
    if (c_out) *c_out = c1;
    return 0;
}

/* The LSTM layer after its input projection gi_all: the recurrence is one
 * lstm_seq node (ops/lstm.c), whose y [T, B, 2H] ([B, T, 2H]) holds h_t | c_t;
 * out is its h half, h_n and c_n the halves of its last step. */
static int lstm_layer(const nn_rnn *l, tensor *gi_all, tensor *h, tensor *c, int64_t T, int64_t B,
                      tensor **out, tensor **h_n, tensor **c_n) {
    int64_t H = l->hidden_size;
    int ta = l->batch_first ? 1 : 0;
    tensor *y = tensor_lstm_seq(gi_all, l->weight_hh, h, c, l->batch_first);
    tensor *o = tensor_narrow(y, 2, 0, H);
    tensor *last = h_n || c_n ? tensor_reshape(tensor_narrow(y, ta, T - 1, 1), SHAPE(B, 2 * H)) : NULL;
    tensor *hn = h_n ? tensor_reshape(tensor_narrow(last, 1, 0, H), SHAPE(1, B, H)) : NULL;
    tensor *cn = c_n ? tensor_reshape(tensor_narrow(last, 1, H, H), SHAPE(1, B, H)) : NULL;
    if (!o || (h_n && !hn) || (c_n && !cn)) return -1;
    *out = o;
    if (h_n) *h_n = hn;
    if (c_n) *c_n = cn;
    return 0;
}

int nn_rnn_forward(const nn_rnn *l, tensor *x, tensor *h0, tensor *c0, tensor **out,
                   tensor **h_n, tensor **c_n) {
    const char *what = "nn_rnn_forward";
    if (need(what, l)) return -1;
    if (!x || !out) {
        if (!tg_error_pending()) tg_error_set("%s: %s is NULL", what, !x ? "x" : "out");
        return -1;
    }
    if (check_x(what, l, x, 3, l->batch_first ? "[B, T, I]" : "[T, B, I]")) return -1;
    int64_t T = x->shape[l->batch_first ? 1 : 0], B = x->shape[l->batch_first ? 0 : 1];
    int64_t H = l->hidden_size, GH = gates(l->mode) * H;
    if (T > INT_MAX) { /* tensor_stack takes an int count */
        tg_error_set("%s: %s: a sequence of %lld steps is longer than %d", what, mode_name(l->mode),
                  (long long)T, INT_MAX);
        return -1;
    }
    tensor *h = state(what, l, "h0", h0, B, x->dtype, true);
    if (!h) return -1;
    tensor *c = state(what, l, "c0", c0, B, x->dtype, true);
    if (!c && (l->mode == NN_RNN_LSTM || c0)) return -1;
    /* The input projections of all steps in one product: [T, B, G*H] ([B, T,
     * G*H] with batch_first: no transpose, step t is read along axis ta). */
    int ta = l->batch_first ? 1 : 0;
    tensor *b = in_bias(l);
    if (!b && l->bias_ih) return -1;
    tensor *gi_all = tensor_linear(x, l->weight_ih, b);
    if (!gi_all) return -1;
    if (l->mode == NN_RNN_LSTM) return lstm_layer(l, gi_all, h, c, T, B, out, h_n, c_n);
    tensor **hs = tg_mem_alloc((size_t)T * sizeof *hs);
    if (!hs) return -1;
    int rc = -1;
    for (int64_t t = 0; t < T; t++) {
        tensor *gi = tensor_reshape(tensor_narrow(gi_all, ta, t, 1), SHAPE(B, GH));
        tensor *c2 = NULL;
        if (!gi || step(l, gi, h, c, &hs[t], &c2)) goto done;
        h = hs[t];
        c = c2;
    }
    tensor *o = tensor_stack(hs, (int)T, ta); /* [T, B, H] or [B, T, H] */
    if (!o) goto done;
    tensor *hn = h_n ? tensor_reshape(h, SHAPE(1, B, H)) : NULL;
    tensor *cn = c_n && c ? tensor_reshape(c, SHAPE(1, B, H)) : NULL;
    if ((h_n && !hn) || (c_n && c && !cn)) goto done;
    *out = o;
    if (h_n) *h_n = hn;
    if (c_n) *c_n = cn;
    rc = 0;
done:
    tg_mem_free(hs);
    return rc;
}
