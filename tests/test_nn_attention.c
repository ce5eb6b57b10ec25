/* test_nn_attention.c - the transformer layers (nn/attention.c): multi-head
 * attention, the pre-LN block and the position embeddings against a naive
 * reference written here in plain loops; PyTorch's parameter names; the
 * whole-graph float64 check of attention and the block (gradcheck_model);
 * gradient flow to every parameter; exactly zero gradient from the causal
 * future; the error paths. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../autograd/internal.h"
#include "check_main.h"

/* ------------------------------------------------------ naive reference
 * Plain loops in double over row-major arrays, sharing nothing with the
 * library but the parameter values. */

/* y [M, OUT] = x [M, IN] w^T + b, w [OUT, IN] */
static void ref_linear(const double *x, const double *w, const double *b, double *y, int M, int IN,
                       int OUT) {
    for (int m = 0; m < M; m++)
        for (int o = 0; o < OUT; o++) {
            double s = b ? b[o] : 0;
            for (int i = 0; i < IN; i++) s += x[m * IN + i] * w[o * IN + i];
            y[m * OUT + o] = s;
        }
}

/* Multi-head attention of xq [B, Tq, E] over xkv [B, Tk, E]: W [3E, E] and b
 * [3E] (q, k, v row blocks), Wo [E, E], bo [E]; excluded(b, i, j) from a
 * key-padding mask kp [B, Tk] (or NULL) and causal. */
static void ref_mha(const double *xq, const double *xkv, int B, int Tq, int Tk, int E, int H,
                    const double *W, const double *bias, const double *Wo, const double *bo,
                    const int *kp, bool causal, double *out) {
    int Dh = E / H;
    double *q = malloc(sizeof(double) * B * Tq * E), *k = malloc(sizeof(double) * B * Tk * E),
           *v = malloc(sizeof(double) * B * Tk * E), *y = malloc(sizeof(double) * B * Tq * E);
    ref_linear(xq, W, bias, q, B * Tq, E, E);
    ref_linear(xkv, W + E * E, bias + E, k, B * Tk, E, E);
    ref_linear(xkv, W + 2 * E * E, bias + 2 * E, v, B * Tk, E, E);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Tq; i++) {
                double s[64], mx = -INFINITY, sum = 0;
                for (int j = 0; j < Tk; j++) {
                    bool ex = (kp && kp[b * Tk + j]) || (causal && j > i);
                    double d = 0;
                    for (int c = 0; c < Dh; c++)
                        d += q[(b * Tq + i) * E + h * Dh + c] * k[(b * Tk + j) * E + h * Dh + c];
                    s[j] = ex ? -INFINITY : d / sqrt((double)Dh);
                    if (s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < Tk; j++) sum += s[j] = exp(s[j] - mx);
                for (int c = 0; c < Dh; c++) {
                    double acc = 0;
                    for (int j = 0; j < Tk; j++) acc += s[j] / sum * v[(b * Tk + j) * E + h * Dh + c];
                    y[(b * Tq + i) * E + h * Dh + c] = acc;
                }
            }
    ref_linear(y, Wo, bo, out, B * Tq, E, E);
    free(q), free(k), free(v), free(y);
}

static void ref_layernorm(const double *x, const double *w, const double *b, double *y, int M, int E) {
    for (int m = 0; m < M; m++) {
        double mu = 0, var = 0;
        for (int e = 0; e < E; e++) mu += x[m * E + e] / E;
        for (int e = 0; e < E; e++) var += (x[m * E + e] - mu) * (x[m * E + e] - mu) / E;
        for (int e = 0; e < E; e++) y[m * E + e] = (x[m * E + e] - mu) / sqrt(var + 1e-5) * w[e] + b[e];
    }
}

static double ref_gelu_tanh(double x) {
    return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

static const double *data(const tensor *t) { return t->data; }

/* --------------------------------------------------------------- helpers */
static tensor *rand_input(uint64_t seed, int ndim, const int64_t *shape) {
    rng g;
    rng_seed(&g, seed, 3);
    return tensor_rand(&g, DTYPE_F64, ndim, shape, -1.5, 1.5);
}

/* Every parameter of m random (biases too: zero biases would hide errors). */
static void randomise(nn_model *m, uint64_t seed) {
    rng g;
    rng_seed(&g, seed, 4);
    for (int i = 0; i < m->n_params; i++) nn_init_uniform(m->params[i], &g, -0.6, 0.6);
}

static void assert_names(const nn_model *m, const char *const *names, const int64_t (*shapes)[2],
                         int n) {
    ck_assert_int_eq(m->n_params, n);
    for (int i = 0; i < n; i++) {
        ck_assert_str_eq(m->param_names[i], names[i]);
        const tensor *t = m->params[i];
        ck_assert_int_eq(t->shape[0], shapes[i][0]);
        if (shapes[i][1]) ck_assert_int_eq(t->shape[1], shapes[i][1]);
        else ck_assert_int_eq(t->ndim, 1);
    }
}

/* ------------------------------------------------- multi-head attention */

/* PyTorch's names and shapes, its init: in_proj_weight within xavier's
 * bound sqrt(6 / (E + 3E)), zero biases, out_proj.weight within 1/sqrt(E). */
START_TEST(test_mha_names_shapes_and_init) {
    nn_model *m = nn_model_new(DTYPE_F32, 1);
    nn_multihead_attention a;
    ck_assert_int_eq(nn_multihead_attention_init(&a, m, "attn", 16, 4, false, 0), 0);
    static const char *names[] = {"attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
                                  "attn.out_proj.bias"};
    static const int64_t shapes[][2] = {{48, 16}, {48, 0}, {16, 16}, {16, 0}};
    assert_names(m, names, shapes, 4);
    double xb = sqrt(6.0 / 64), lb = 1 / sqrt(16.0), wmax = 0;
    for (int64_t e = 0; e < a.in_proj_weight->size; e++) {
        double w = fabs(tensor_get(a.in_proj_weight, e));
        ck_assert(w <= xb);
        if (w > wmax) wmax = w;
    }
    ck_assert(wmax > 0.8 * xb); /* drawn over the whole range */
    for (int64_t e = 0; e < a.out_proj_weight->size; e++) ck_assert(fabs(tensor_get(a.out_proj_weight, e)) <= lb);
    for (int64_t e = 0; e < 48; e++) ck_assert(tensor_get(a.in_proj_bias, e) == 0);
    for (int64_t e = 0; e < 16; e++) ck_assert(tensor_get(a.out_proj_bias, e) == 0);
    nn_model_free(m);
}
END_TEST

/* Self-attention, causal or not, with a key-padding mask, and
 * cross-attention with Tq != Tk: the reference's values within 1e-12. */
static void check_mha_values(bool causal, bool cross, bool padded) {
    const int B = 2, Tq = 4, Tk = cross ? 6 : 4, E = 8, H = 2;
    nn_model *m = nn_model_new(DTYPE_F64, 2);
    nn_multihead_attention a;
    ck_assert_int_eq(nn_multihead_attention_init(&a, m, "mha", E, H, causal, 0), 0);
    randomise(m, 5);
    tensor *xq = rand_input(6, SHAPE(B, Tq, E)), *xkv = cross ? rand_input(7, SHAPE(B, Tk, E)) : xq;
    int kp[12] = {0};
    tensor *mask = NULL;
    if (padded) { /* batch 0 hides its last key, batch 1 its key 2 */
        kp[Tk - 1] = 1, kp[Tk + 2] = 1;
        mask = tensor_zeros(DTYPE_I64, SHAPE(B, 1, 1, Tk));
        for (int e = 0; e < B * Tk; e++) tensor_set(mask, e, kp[e]);
    }
    tensor *y = nn_multihead_attention_forward(&a, xq, xkv, xkv, mask);
    ck_assert_msg(y != NULL, "%s", tapegrad_error());
    ck_assert_int_eq(y->ndim, 3);
    ck_assert_int_eq(y->shape[0], B);
    ck_assert_int_eq(y->shape[1], Tq);
    ck_assert_int_eq(y->shape[2], E);
    double ref[2 * 4 * 8];
    ref_mha(data(xq), data(xkv), B, Tq, Tk, E, H, data(a.in_proj_weight), data(a.in_proj_bias),
            data(a.out_proj_weight), data(a.out_proj_bias), padded ? kp : NULL, causal, ref);
    ck_assert_tensor(y, ref, 1e-12);
    tape_reset();
    if (cross) tensor_free(xkv);
    tensor_free(xq), tensor_free(mask);
    nn_model_free(m);
}

START_TEST(test_mha_matches_reference) {
    check_mha_values(false, false, false);
    check_mha_values(true, false, false);
    check_mha_values(false, true, false);
    check_mha_values(true, false, true);
    check_mha_values(false, true, true);
}
END_TEST

/* Dropout acts in train mode only: eval gives the p = 0 output, train with
 * one seed gives one output, and another one with the rng moved on. */
START_TEST(test_mha_dropout_train_only) {
    nn_model *m = nn_model_new(DTYPE_F64, 3);
    nn_multihead_attention a, a0;
    ck_assert_int_eq(nn_multihead_attention_init(&a, m, "a", 8, 2, true, 0.5), 0);
    a0 = a;
    a0.dropout = 0;
    tensor *x = rand_input(8, SHAPE(2, 5, 8));
    tensor *plain = tensor_clone(nn_multihead_attention_forward(&a0, x, x, x, NULL));
    nn_model_train(m, false);
    tensor *eval = nn_multihead_attention_forward(&a, x, x, x, NULL);
    for (int64_t e = 0; e < plain->size; e++) ck_assert(tensor_get(eval, e) == tensor_get(plain, e));
    nn_model_train(m, true);
    rng before = m->rng;
    tensor *t1 = tensor_clone(nn_multihead_attention_forward(&a, x, x, x, NULL));
    tensor *t2 = nn_multihead_attention_forward(&a, x, x, x, NULL); /* the rng moved on */
    m->rng = before;
    tensor *t3 = nn_multihead_attention_forward(&a, x, x, x, NULL); /* the same draws again */
    bool d12 = false, d1p = false;
    for (int64_t e = 0; e < plain->size; e++) {
        d12 |= tensor_get(t1, e) != tensor_get(t2, e);
        d1p |= tensor_get(t1, e) != tensor_get(plain, e);
        ck_assert(tensor_get(t1, e) == tensor_get(t3, e));
    }
    ck_assert(d12 && d1p);
    tape_reset();
    tensor_free(plain), tensor_free(t1), tensor_free(x);
    nn_model_free(m);
}
END_TEST

/* Self-attention (query, key and value one tensor: one [3E, E] projection
 * and sdpa_heads on the packed heads) against the split path the layer takes
 * for distinct tensors of the same values (three projections, split heads,
 * scaled_dot_product_attention, merge): the same output and the same
 * gradient of every parameter and of x within 1e-12, causal with a
 * key-padding mask and dropout in train mode (the same rng state, the same
 * draws). */
START_TEST(test_mha_self_attention_packed_matches_split_path) {
    nn_model *m = nn_model_new(DTYPE_F64, 12);
    nn_multihead_attention a;
    ck_assert_int_eq(nn_multihead_attention_init(&a, m, "mha", 12, 3, true, 0.25), 0);
    randomise(m, 13);
    nn_model_train(m, true);
    tensor *x = rand_input(14, SHAPE(2, 5, 12)), *w = rand_input(15, SHAPE(2, 5, 12));
    tensor *xs[2] = {x, tensor_clone(x)}, *mask = tensor_zeros(DTYPE_I64, SHAPE(2, 1, 1, 5));
    tensor_set(mask, 3, 1), tensor_set(mask, 5 + 1, 1);
    tensor_set_requires_grad(x, true), tensor_set_requires_grad(xs[1], true);
    tensor *out[2], *grads[2][5];
    const rng start = m->rng;
    for (int v = 0; v < 2; v++) {
        m->rng = start;
        tensor *y = nn_multihead_attention_forward(&a, x, xs[v], xs[v], mask);
        ck_assert_msg(y != NULL, "%s", tapegrad_error());
        ck_assert_str_eq(tg_tape_node_at(tg_tape_node_count() - 2)->op->name,
                         v ? "reshape" : "sdpa_heads");
        out[v] = tensor_clone(y);
        ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(y, w))), 0);
        for (int i = 0; i < 4; i++) {
            grads[v][i] = tensor_clone(m->params[i]->grad);
            tensor_zero_grad(m->params[i]);
        }
        /* dx: the sum of its uses (query, and key and value through xs[1]) */
        grads[v][4] = tensor_clone(x->grad);
        for (int64_t e = 0; v && e < x->size; e++)
            tensor_set(grads[v][4], e, tensor_get(grads[v][4], e) + tensor_get(xs[1]->grad, e));
        tensor_zero_grad(x), tensor_zero_grad(xs[1]);
        tape_reset();
    }
    for (int64_t e = 0; e < out[0]->size; e++)
        ck_assert_close(tensor_get(out[0], e), tensor_get(out[1], e), 1e-12);
    for (int i = 0; i < 5; i++) {
        for (int64_t e = 0; e < grads[0][i]->size; e++)
            ck_assert_msg(fabs(tensor_get(grads[0][i], e) - tensor_get(grads[1][i], e)) <= 1e-12,
                          "gradient %d element %lld: packed %.15g, split %.15g", i, (long long)e,
                          tensor_get(grads[0][i], e), tensor_get(grads[1][i], e));
        tensor_free(grads[0][i]), tensor_free(grads[1][i]);
    }
    tensor_free(out[0]), tensor_free(out[1]), tensor_free(xs[1]), tensor_free(x), tensor_free(w),
        tensor_free(mask);
    nn_model_free(m);
}
END_TEST

/* ------------------------------------------------------ transformer block */

static const char *block_names[] = {"h.0.ln1.weight",  "h.0.ln1.bias",  "h.0.ln2.weight",
                                    "h.0.ln2.bias",    "h.0.qkv.weight", "h.0.qkv.bias",
                                    "h.0.proj.weight", "h.0.proj.bias", "h.0.fc.weight",
                                    "h.0.fc.bias",     "h.0.out.weight", "h.0.out.bias"};

START_TEST(test_block_names_and_shapes) {
    nn_model *m = nn_model_new(DTYPE_F32, 1);
    nn_transformer_block blk;
    ck_assert_int_eq(nn_transformer_block_init(&blk, m, "h.0", 8, 2, true, 0), 0);
    static const int64_t shapes[][2] = {{8, 0},  {8, 0}, {8, 0}, {8, 0},  {24, 8}, {24, 0},
                                        {8, 8},  {8, 0}, {32, 8}, {32, 0}, {8, 32}, {8, 0}};
    assert_names(m, block_names, shapes, 12);
    ck_assert(blk.gelu_tanh);
    ck_assert(tensor_get(blk.ln1.weight, 3) == 1 && tensor_get(blk.ln1.bias, 3) == 0);
    nn_model_free(m);
}
END_TEST

/* x + attn(ln1(x)), then + out(gelu(fc(ln2(x)))): the reference within 1e-12,
 * tanh GELU and exact GELU. */
START_TEST(test_block_matches_reference) {
    const int B = 2, T = 4, E = 8, H = 2, M = B * T;
    for (int exact = 0; exact < 2; exact++) {
        nn_model *m = nn_model_new(DTYPE_F64, 4);
        nn_transformer_block blk;
        ck_assert_int_eq(nn_transformer_block_init(&blk, m, "blk", E, H, true, 0), 0);
        blk.gelu_tanh = !exact;
        randomise(m, 9);
        tensor *x = rand_input(10, SHAPE(B, T, E));
        tensor *y = nn_transformer_block_forward(&blk, x, NULL);
        ck_assert_msg(y != NULL, "%s", tapegrad_error());
        double h[64], a[64], x1[64], f[256], o[64];
        ref_layernorm(data(x), data(blk.ln1.weight), data(blk.ln1.bias), h, M, E);
        ref_mha(h, h, B, T, T, E, H, data(blk.attn.in_proj_weight), data(blk.attn.in_proj_bias),
                data(blk.attn.out_proj_weight), data(blk.attn.out_proj_bias), NULL, true, a);
        for (int e = 0; e < M * E; e++) x1[e] = data(x)[e] + a[e];
        ref_layernorm(x1, data(blk.ln2.weight), data(blk.ln2.bias), h, M, E);
        ref_linear(h, data(blk.fc.weight), data(blk.fc.bias), f, M, E, 4 * E);
        for (int e = 0; e < M * 4 * E; e++)
            f[e] = exact ? 0.5 * f[e] * (1 + erf(f[e] / sqrt(2.0))) : ref_gelu_tanh(f[e]);
        ref_linear(f, data(blk.out.weight), data(blk.out.bias), o, M, 4 * E, E);
        for (int e = 0; e < M * E; e++) x1[e] += o[e];
        ck_assert_tensor(y, x1, 1e-12);
        tape_reset();
        tensor_free(x);
        nn_model_free(m);
    }
}
END_TEST

/* ------------------------------------------------- position embeddings */

/* Learned: x + W[0:T]; dW rows 0..T-1 get the batch's sum of g, the rows
 * past T nothing. Sinusoidal: a buffer "pe" (no parameter, no gradient) with
 * pe[t, 2i] = sin(t / 10000^(2i/E)), pe[t, 2i+1] = cos(...). */
START_TEST(test_pos_embedding_learned) {
    nn_model *m = nn_model_new(DTYPE_F64, 5);
    nn_pos_embedding pos;
    ck_assert_int_eq(nn_pos_embedding_init(&pos, m, "pos", 6, 4, false), 0);
    ck_assert_int_eq(m->n_params, 1);
    ck_assert_str_eq(m->param_names[0], "pos.weight");
    tensor *x = rand_input(11, SHAPE(2, 3, 4));
    tensor *y = nn_pos_embedding_forward(&pos, x);
    ck_assert_ptr_nonnull(y);
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 3; t++)
            for (int e = 0; e < 4; e++) {
                int i = (b * 3 + t) * 4 + e;
                ck_assert(tensor_get(y, i) == tensor_get(x, i) + tensor_get(pos.weight, t * 4 + e));
            }
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    for (int64_t e = 0; e < 24; e++) ck_assert(tensor_get(pos.weight->grad, e) == (e < 12 ? 2 : 0));
    tape_reset();
    tensor_free(x);
    nn_model_free(m);
}
END_TEST

START_TEST(test_pos_embedding_sinusoidal_is_a_buffer) {
    nn_model *m = nn_model_new(DTYPE_F64, 5);
    nn_pos_embedding pos;
    ck_assert_int_eq(nn_pos_embedding_init(&pos, m, "pos", 10, 6, true), 0);
    ck_assert_int_eq(m->n_params, 0);
    ck_assert_int_eq(m->n_buffers, 1);
    ck_assert_str_eq(m->buffer_names[0], "pos.pe");
    ck_assert(!pos.weight->requires_grad);
    /* t = 3: [sin 3, cos 3, sin(3 / 10000^(2/6)), cos(..), sin(3 / 10000^(4/6)), cos(..)] */
    for (int i = 0; i < 3; i++) {
        double w = 3 / pow(10000.0, 2.0 * i / 6);
        ck_assert_close(tensor_get(pos.weight, 3 * 6 + 2 * i), sin(w), 1e-15);
        ck_assert_close(tensor_get(pos.weight, 3 * 6 + 2 * i + 1), cos(w), 1e-15);
    }
    tensor *x = rand_input(12, SHAPE(2, 4, 6));
    tensor_set_requires_grad(x, true);
    tensor *y = nn_pos_embedding_forward(&pos, x);
    ck_assert_close(tensor_get(y, 6 + 1), tensor_get(x, 6 + 1) + cos(1.0), 1e-15);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_ptr_null(pos.weight->grad);
    for (int64_t e = 0; e < x->size; e++) ck_assert(tensor_get(x->grad, e) == 1);
    tape_reset();
    /* an odd dim ends with a sine */
    nn_pos_embedding odd;
    ck_assert_int_eq(nn_pos_embedding_init(&odd, m, "odd", 4, 5, true), 0);
    ck_assert_close(tensor_get(odd.weight, 2 * 5 + 4), sin(2 / pow(10000.0, 4.0 / 5)), 1e-15);
    tensor_free(x);
    nn_model_free(m);
}
END_TEST

/* --------------------------------------------------- whole-graph checks */

typedef struct {
    nn_multihead_attention *mha;
    nn_transformer_block *blk;
    nn_pos_embedding *pos;
    tensor *mask;
} net;

/* L = sum(f(x) * w), f the layer (after the position embedding when given). */
static tensor *net_loss(tensor *const *batch, int n, void *ctx) {
    (void)n;
    const net *c = ctx;
    tensor *x = c->pos ? nn_pos_embedding_forward(c->pos, batch[0]) : batch[0];
    tensor *y = c->blk ? nn_transformer_block_forward(c->blk, x, c->mask)
                       : nn_multihead_attention_forward(c->mha, x, x, x, c->mask);
    return tensor_sum_all(tensor_mul(y, batch[1]));
}

/* Every parameter and the input checked in float64 at gradcheck's defaults,
 * on a float32 model (the check swaps it to float64 and back). */
static void check_whole(nn_model *m, net *c, int T, int E) {
    tensor *batch[2] = {rand_input(20, SHAPE(2, T, E)), rand_input(21, SHAPE(2, T, E))};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck_model(m, net_loss, c, batch, 2, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    for (int i = 0; i < m->n_params; i++)
        ck_assert_msg(r.input[i].checked && r.input[i].passed && !r.input[i].vacuous, "%s: %s",
                      m->param_names[i], r.message);
    ck_assert(r.input[m->n_params + m->n_buffers].checked); /* x */
    gradcheck_report_free(&r);
    tensor_free(batch[0]), tensor_free(batch[1]);
}

START_TEST(test_mha_whole_graph_gradcheck) {
    nn_model *m = nn_model_new(DTYPE_F32, 6);
    nn_multihead_attention a;
    ck_assert_int_eq(nn_multihead_attention_init(&a, m, "attn", 8, 2, true, 0), 0);
    randomise(m, 13);
    tensor *mask = tensor_from_doubles(DTYPE_I64, SHAPE(2, 1, 1, 5), (double[]){0, 0, 0, 1, 0, 0, 0, 1, 0, 0});
    net c = {.mha = &a, .mask = mask};
    check_whole(m, &c, 5, 8);
    tensor_free(mask);
    nn_model_free(m);
    tape_release();
}
END_TEST

/* The block after a learned position embedding: 13 parameters and x. */
START_TEST(test_block_whole_graph_gradcheck) {
    nn_model *m = nn_model_new(DTYPE_F32, 7);
    nn_pos_embedding pos;
    nn_transformer_block blk;
    ck_assert_int_eq(nn_pos_embedding_init(&pos, m, "pos", 6, 8, false), 0);
    ck_assert_int_eq(nn_transformer_block_init(&blk, m, "h.0", 8, 2, true, 0), 0);
    randomise(m, 14);
    net c = {.blk = &blk, .pos = &pos};
    check_whole(m, &c, 5, 8);
    nn_model_free(m);
    tape_release();
}
END_TEST

/* A deliberately broken attention vjp (its gradients 1.001 times too large)
 * inside the block, behind the position embedding: the whole-graph check of
 * the model fails and names the attention node. */
static int param_index(const nn_model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->param_names[i], name) == 0) return i;
    ck_abort_msg("no parameter %s", name);
    return -1;
}

static op_def bad_sdpa;
static void (*real_sdpa_vjp)(tape_node *, tensor *const *);
static void sdpa_vjp_1001(tape_node *n, tensor *const *gin) {
    tensor *scratch[4] = {NULL};
    for (int j = 0; j < n->op->arity; j++)
        if (gin[j]) scratch[j] = tg_tensor_tape_zeros(gin[j]->dtype, gin[j]->ndim, gin[j]->shape);
    real_sdpa_vjp(n, scratch);
    for (int j = 0; j < n->op->arity; j++)
        for (int64_t e = 0; scratch[j] && e < scratch[j]->size; e++)
            tensor_set(gin[j], e, tensor_get(gin[j], e) + 1.001 * tensor_get(scratch[j], e));
}
static int64_t sdpa_node;
static tensor *broken_net_loss(tensor *const *batch, int n, void *ctx) {
    tensor *loss = net_loss(batch, n, ctx);
    for (int64_t j = 0; loss && j < tg_tape_node_count(); j++)
        if (strcmp(tg_tape_node_at(j)->op->name, "sdpa_heads") == 0) {
            tg_tape_node_at(j)->op = &bad_sdpa;
            if (sdpa_node < 0) sdpa_node = j; /* the recording (later calls append) */
        }
    return loss;
}

START_TEST(test_block_broken_attention_vjp_localised) {
    real_sdpa_vjp = op_find("sdpa_heads")->vjp; /* the block's self-attention */
    bad_sdpa = *op_find("sdpa_heads");
    bad_sdpa.vjp = sdpa_vjp_1001;
    nn_model *m = nn_model_new(DTYPE_F64, 7);
    nn_pos_embedding pos;
    nn_transformer_block blk;
    ck_assert_int_eq(nn_pos_embedding_init(&pos, m, "pos", 6, 8, false), 0);
    ck_assert_int_eq(nn_transformer_block_init(&blk, m, "h.0", 8, 2, true, 0), 0);
    randomise(m, 14);
    net c = {.blk = &blk, .pos = &pos};
    tensor *batch[2] = {rand_input(22, SHAPE(2, 5, 8)), rand_input(23, SHAPE(2, 5, 8))};
    gradcheck_options o = gradcheck_defaults();
    tg_op_tight_tolerances(&bad_sdpa, &o.atol, &o.rtol);
    gradcheck_report r;
    sdpa_node = -1;
    ck_assert_int_eq(gradcheck_model(m, broken_net_loss, &c, batch, 2, &o, &r), 0);
    ck_assert_int_gt(sdpa_node, 0);
    ck_assert_msg(!r.passed, "a broken attention vjp passed: %s", r.message);
    ck_assert_msg(r.localized && r.bad_node == sdpa_node, "%s", r.message);
    ck_assert_str_eq(r.bad_node_desc, "sdpa_heads [2,5,24]");
    /* the parameters before the attention node are wrong, those after it right */
    static const char *wrong[] = {"pos.weight", "h.0.ln1.weight", "h.0.qkv.weight", "h.0.qkv.bias"};
    static const char *right[] = {"h.0.proj.weight", "h.0.ln2.weight", "h.0.fc.weight", "h.0.out.bias"};
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(!r.input[param_index(m, wrong[i])].passed, "%s passed", wrong[i]);
        ck_assert_msg(r.input[param_index(m, right[i])].passed, "%s failed", right[i]);
    }
    gradcheck_report_free(&r);
    /* the same check of the real op passes */
    ck_assert_int_eq(gradcheck_model(m, net_loss, &c, batch, 2, &o, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    gradcheck_report_free(&r);
    tensor_free(batch[0]), tensor_free(batch[1]);
    nn_model_free(m);
    tape_release();
}
END_TEST

/* ------------------------------------------------------- gradient flow */

/* One backward of a float32 block behind a learned position embedding:
 * every parameter gets a finite, non-zero gradient of its shape. */
START_TEST(test_block_gradient_flow) {
    nn_model *m = nn_model_new(DTYPE_F32, 8);
    nn_pos_embedding pos;
    nn_transformer_block blk;
    ck_assert_int_eq(nn_pos_embedding_init(&pos, m, "pos", 8, 16, false), 0);
    ck_assert_int_eq(nn_transformer_block_init(&blk, m, "h.0", 16, 4, true, 0.1), 0);
    rng g;
    rng_seed(&g, 8, 1);
    tensor *x = tensor_rand(&g, DTYPE_F32, SHAPE(3, 8, 16), -1, 1);
    tensor *w = tensor_rand(&g, DTYPE_F32, SHAPE(3, 8, 16), -1, 1);
    net c = {.blk = &blk, .pos = &pos};
    ck_assert_int_eq(tensor_backward(net_loss((tensor *[]){x, w}, 2, &c)), 0);
    nn_gradflow r;
    ck_assert_int_eq(nn_gradflow_model(m, 1e-8, 1e3, &r), 0);
    ck_assert_int_eq(r.n, 13);
    for (int i = 0; i < r.n; i++) {
        const nn_gradflow_entry *e = &r.entries[i];
        ck_assert_msg(e->has_grad && e->shape_ok && e->finite && !e->all_zero, "%s", e->name);
    }
    ck_assert_int_eq(r.n_problems, 0);
    nn_gradflow_free(&r);
    tape_reset();
    tensor_free(x), tensor_free(w);
    nn_model_free(m);
}
END_TEST

/* Causal: the loss on position 2 alone gives exactly zero gradient to the
 * input at positions 3.. (attention, and the whole block, whose norms and
 * MLP act per position), and a non-zero one at 0..2. */
static void check_future_zero(net *c, int T, int E) {
    tensor *x = rand_input(30, SHAPE(2, T, E));
    tensor_set_requires_grad(x, true);
    tensor *y = c->blk ? nn_transformer_block_forward(c->blk, x, NULL)
                       : nn_multihead_attention_forward(c->mha, x, x, x, NULL);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_narrow(y, 1, 2, 1))), 0);
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < T; t++) {
            double norm = 0;
            for (int e = 0; e < E; e++) norm += fabs(tensor_get(x->grad, (b * T + t) * E + e));
            ck_assert_msg(t <= 2 ? norm > 0 : norm == 0, "batch %d position %d: |dx| = %g", b, t, norm);
        }
    tape_reset();
    tensor_free(x);
}

START_TEST(test_causal_future_gets_zero_gradient) {
    nn_model *m = nn_model_new(DTYPE_F64, 9);
    nn_multihead_attention a;
    nn_transformer_block blk;
    ck_assert_int_eq(nn_multihead_attention_init(&a, m, "attn", 8, 2, true, 0), 0);
    ck_assert_int_eq(nn_transformer_block_init(&blk, m, "blk", 8, 4, true, 0), 0);
    randomise(m, 15);
    net c1 = {.mha = &a}, c2 = {.blk = &blk};
    check_future_zero(&c1, 6, 8);
    check_future_zero(&c2, 6, 8);
    nn_model_free(m);
}
END_TEST

/* ------------------------------------------------------------ a tiny GPT
 * Token embedding, learned positions, two causal blocks, a final LayerNorm
 * and a head tied to the token embedding (GPT-2's layout), with mean
 * cross-entropy on the next token: 28 distinct parameters, 29 names. */
typedef struct {
    nn_model *m;
    nn_embedding tok;
    nn_pos_embedding pos;
    nn_transformer_block h[2];
    nn_layernorm ln;
    tensor *head;   /* the head's weight: tok.weight itself, or a separate copy */
} gpt;

static void gpt_init(gpt *g, dtype dt, bool tied) {
    g->m = nn_model_new(dt, 17);
    ck_assert_int_eq(nn_embedding_init(&g->tok, g->m, "tok", 11, 8), 0);
    ck_assert_int_eq(nn_pos_embedding_init(&g->pos, g->m, "pos", 5, 8, false), 0);
    ck_assert_int_eq(nn_transformer_block_init(&g->h[0], g->m, "h.0", 8, 2, true, 0), 0);
    ck_assert_int_eq(nn_transformer_block_init(&g->h[1], g->m, "h.1", 8, 2, true, 0), 0);
    ck_assert_int_eq(nn_layernorm_init(&g->ln, g->m, "ln", 1, (int64_t[]){8}), 0);
    randomise(g->m, 18);
    g->head = tied ? nn_model_add_param(g->m, "head.weight", g->tok.weight)
                   : nn_model_add_param(g->m, "head.weight", tensor_clone(g->tok.weight));
    ck_assert_ptr_nonnull(g->head);
}

/* batch[0]: tokens int64 [2, 5], batch[1]: the next tokens */
static tensor *gpt_loss(tensor *const *batch, int n, void *ctx) {
    (void)n;
    const gpt *g = ctx;
    tensor *x = nn_pos_embedding_forward(&g->pos, nn_embedding_forward(&g->tok, batch[0]));
    for (int b = 0; b < 2; b++) x = nn_transformer_block_forward(&g->h[b], x, NULL);
    tensor *logits = tensor_linear(nn_layernorm_forward(&g->ln, x), g->head, NULL);
    return tensor_cross_entropy(tensor_reshape(logits, 2, (int64_t[]){10, 11}),
                                tensor_reshape(batch[1], 1, (int64_t[]){10}), NULL, 0,
                                REDUCTION_MEAN);
}

static void gpt_batch(tensor **batch) {
    double tok[10] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3}, next[10] = {1, 4, 1, 5, 9, 2, 6, 5, 3, 5};
    batch[0] = tensor_from_doubles(DTYPE_I64, SHAPE(2, 5), tok);
    batch[1] = tensor_from_doubles(DTYPE_I64, SHAPE(2, 5), next);
}

/* The whole float32 model checked in float64, every parameter (the tied
 * one under both names, each with the sum of both uses) and restored bit
 * for bit, the tied tensor included. */
START_TEST(test_tiny_gpt_tied_head_whole_graph_gradcheck) {
    gpt g;
    gpt_init(&g, DTYPE_F32, true);
    ck_assert_int_eq(g.m->n_params, 29);
    tensor *batch[2];
    gpt_batch(batch);
    tensor *before[32];
    for (int i = 0; i < g.m->n_params; i++) before[i] = tensor_clone(g.m->params[i]);
    gradcheck_report r;
    ck_assert_int_eq(gradcheck_model(g.m, gpt_loss, &g, batch, 2, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    for (int i = 0; i < g.m->n_params; i++)
        ck_assert_msg(r.input[i].checked && r.input[i].passed && !r.input[i].vacuous, "%s: %s",
                      g.m->param_names[i], r.message);
    gradcheck_report_free(&r);
    for (int i = 0; i < g.m->n_params; i++) {
        const tensor *t = g.m->params[i];
        ck_assert_int_eq(t->dtype, DTYPE_F32);
        ck_assert_msg(memcmp(t->data, before[i]->data, (size_t)t->size * sizeof(float)) == 0,
                      "%s changed", g.m->param_names[i]);
        tensor_free(before[i]);
    }
    ck_assert_ptr_eq(g.head, g.tok.weight);
    tensor_free(batch[0]), tensor_free(batch[1]);
    nn_model_free(g.m);
    tape_release();
}
END_TEST

/* The tied weight's gradient is the sum of its two uses: the untied model
 * (the head a copy of the embedding) gives tok.weight and head.weight
 * gradients that add up to the tied model's one. */
START_TEST(test_tiny_gpt_tied_gradient_is_sum_of_uses) {
    gpt tied, untied;
    gpt_init(&tied, DTYPE_F64, true);
    gpt_init(&untied, DTYPE_F64, false);
    tensor *batch[2];
    gpt_batch(batch);
    ck_assert_int_eq(tensor_backward(gpt_loss(batch, 2, &tied)), 0);
    tape_reset();
    ck_assert_int_eq(tensor_backward(gpt_loss(batch, 2, &untied)), 0);
    tape_reset();
    const tensor *gt = tied.tok.weight->grad, *ge = untied.tok.weight->grad, *gh = untied.head->grad;
    double head_norm = 0;
    for (int64_t e = 0; e < gt->size; e++) {
        ck_assert_close(tensor_get(gt, e), tensor_get(ge, e) + tensor_get(gh, e), 1e-14);
        head_norm += fabs(tensor_get(gh, e));
    }
    ck_assert(head_norm > 0); /* both uses contribute */
    tensor_free(batch[0]), tensor_free(batch[1]);
    nn_model_free(tied.m);
    nn_model_free(untied.m);
}
END_TEST

/* A training step of the tiny GPT (tied head, dropout in the attention,
 * AdamW) allocates nothing once warm: the arena and the optimiser's state are
 * reused, so the allocated bytes are the same after 200 more steps, and the
 * loss went down. */
START_TEST(test_tiny_gpt_training_memory_flat) {
    tapegrad_set_threads(1);
    gpt g;
    gpt_init(&g, DTYPE_F32, true);
    for (int b = 0; b < 2; b++) g.h[b].attn.dropout = 0.1;
    int n;
    tensor *const *params = nn_model_parameters(g.m, &n);
    ck_assert_int_eq(n, 28);
    optim_config c = optim_defaults(OPTIM_ADAMW);
    optim *o = optim_new(&c, params, n);
    ck_assert_ptr_nonnull(o);
    tensor *batch[2];
    gpt_batch(batch);
    double first = 0, last = 0;
    int64_t warm = 0;
    for (int step = 0; step < 220; step++) {
        if (step == 20) warm = tapegrad_allocated_bytes();
        optim_zero_grad(o);
        tensor *loss = gpt_loss(batch, 2, &g);
        ck_assert_ptr_nonnull(loss);
        last = tensor_item(loss);
        if (step == 0) first = last;
        ck_assert_int_eq(tensor_backward(loss), 0);
        ck_assert_int_eq(optim_step(o), 0);
        tape_reset();
    }
    ck_assert_msg(tapegrad_allocated_bytes() == warm, "allocated bytes changed from %lld to %lld",
                  (long long)warm, (long long)tapegrad_allocated_bytes());
    ck_assert_msg(last < 0.5 * first, "loss %g -> %g", first, last);
    optim_free(o);
    tensor_free(batch[0]), tensor_free(batch[1]);
    nn_model_free(g.m);
    tape_release();
}
END_TEST

/* --------------------------------------------------------- checkpoints */

/* A model of every layer here, its parameters drawn from seed. */
typedef struct {
    nn_model *m;
    nn_pos_embedding sin_pos, pos;
    nn_multihead_attention mha;
    nn_transformer_block blk;
} every_layer;

static void every_layer_init(every_layer *e, uint64_t seed) {
    e->m = nn_model_new(DTYPE_F32, seed);
    ck_assert_int_eq(nn_pos_embedding_init(&e->sin_pos, e->m, "sin", 6, 8, true), 0);
    ck_assert_int_eq(nn_pos_embedding_init(&e->pos, e->m, "pos", 6, 8, false), 0);
    ck_assert_int_eq(nn_multihead_attention_init(&e->mha, e->m, "attn", 8, 2, false, 0), 0);
    ck_assert_int_eq(nn_transformer_block_init(&e->blk, e->m, "h.0", 8, 2, true, 0), 0);
    randomise(e->m, seed);
}

static tensor *every_layer_forward(const every_layer *e, tensor *x) {
    x = nn_pos_embedding_forward(&e->pos, nn_pos_embedding_forward(&e->sin_pos, x));
    return nn_transformer_block_forward(&e->blk, nn_multihead_attention_forward(&e->mha, x, x, x, NULL),
                                        NULL);
}

/* Saved and loaded into a model drawn from another seed: every name (the
 * sinusoidal buffer too) comes back bit for bit, and so does the output. */
START_TEST(test_checkpoint_round_trip) {
    char dir[] = "/tmp/tapegrad-attn-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    every_layer a, b;
    every_layer_init(&a, 31);
    every_layer_init(&b, 32);
    ck_assert_int_eq(nn_model_state_count(a.m), 18); /* 17 parameters, the buffer sin.pe */
    ck_assert_int_eq(nn_model_save(a.m, path), 0);
    ck_assert_int_eq(nn_model_load(b.m, path), 0);
    for (int i = 0; i < nn_model_state_count(a.m); i++) {
        const char *na, *nb;
        tensor *ta, *tb;
        nn_model_state_at(a.m, i, &na, &ta);
        nn_model_state_at(b.m, i, &nb, &tb);
        ck_assert_str_eq(na, nb);
        ck_assert(memcmp(ta->data, tb->data, (size_t)ta->size * sizeof(float)) == 0);
    }
    rng g;
    rng_seed(&g, 33, 1);
    tensor *x = tensor_rand(&g, DTYPE_F32, SHAPE(2, 6, 8), -1, 1);
    tensor *ya = tensor_clone(every_layer_forward(&a, x));
    tensor *yb = every_layer_forward(&b, x);
    ck_assert(memcmp(ya->data, yb->data, (size_t)ya->size * sizeof(float)) == 0);
    tape_reset();
    tensor_free(x), tensor_free(ya);
    nn_model_free(a.m);
    nn_model_free(b.m);
    remove(path);
    rmdir(dir);
}
END_TEST

/* -------------------------------------------------------------- errors */

START_TEST(test_attention_layer_errors) {
    nn_model *m = nn_model_new(DTYPE_F64, 1);
    nn_multihead_attention a;
    nn_transformer_block blk;
    nn_pos_embedding pos;
    ck_assert_int_eq(nn_multihead_attention_init(&a, m, "a", 10, 4, false, 0), -1);
    ck_assert_error_is("nn_multihead_attention_init: a: embed_dim 10 must be a positive multiple of "
                       "num_heads 4");
    ck_assert_int_eq(nn_multihead_attention_init(&a, m, "a", 8, 0, false, 0), -1);
    ck_assert_error_is("nn_multihead_attention_init: a: embed_dim 8 must be a positive multiple of "
                       "num_heads 0");
    ck_assert_int_eq(nn_multihead_attention_init(&a, m, "a", 8, 2, false, 1.0), -1);
    ck_assert_error_is("nn_multihead_attention_init: a: dropout must be in [0, 1), got 1");
    ck_assert_int_eq(nn_multihead_attention_init(NULL, m, "a", 8, 2, false, 0), -1);
    ck_assert_error_is("nn_multihead_attention_init: layer or model is NULL");
    ck_assert_int_eq(nn_transformer_block_init(&blk, m, "b", 0, 2, false, 0), -1);
    ck_assert_error_is("nn_transformer_block_init: b: embed_dim must be positive, got 0");
    ck_assert_int_eq(nn_transformer_block_init(&blk, m, "b", 6, 4, false, 0), -1);
    ck_assert_error_is("nn_transformer_block_init: b: embed_dim 6 must be a positive multiple of "
                       "num_heads 4");
    ck_assert_int_eq(nn_transformer_block_init(&blk, NULL, "b", 8, 2, false, 0), -1);
    ck_assert_error_is("nn_transformer_block_init: layer or model is NULL");
    ck_assert_int_eq(nn_pos_embedding_init(&pos, m, "p", 0, 4, true), -1);
    ck_assert_error_is("nn_pos_embedding_init: sizes must be positive, got max_len 0, dim 4");
    ck_assert_int_eq(nn_pos_embedding_init(&pos, NULL, "p", 4, 4, true), -1);
    ck_assert_error_is("nn_pos_embedding_init: layer or model is NULL");

    nn_model *m2 = nn_model_new(DTYPE_F64, 2);
    ck_assert_int_eq(nn_multihead_attention_init(&a, m2, "a", 8, 2, false, 0), 0);
    ck_assert_int_eq(nn_transformer_block_init(&blk, m2, "b", 8, 2, false, 0), 0);
    ck_assert_int_eq(nn_pos_embedding_init(&pos, m2, "p", 4, 8, false), 0);
    tensor *x = rand_input(40, SHAPE(2, 3, 8)), *x6 = rand_input(41, SHAPE(2, 3, 6)),
           *kv = rand_input(42, SHAPE(3, 5, 8)), *x2 = rand_input(43, SHAPE(3, 8)),
           *long_x = rand_input(44, SHAPE(1, 5, 8));
    ck_assert_fails_with(nn_multihead_attention_forward(&a, x6, x6, x6, NULL),
                         "nn_multihead_attention_forward: query [B, Tq, E], key and value [B, Tk, E] "
                         "with E = 8 expected, got query [2,3,6], key [2,3,6], value [2,3,6]");
    ck_assert_fails_with(nn_multihead_attention_forward(&a, x, kv, kv, NULL),
                         "nn_multihead_attention_forward: query [B, Tq, E], key and value [B, Tk, E] "
                         "with E = 8 expected, got query [2,3,8], key [3,5,8], value [3,5,8]");
    ck_assert_fails_with(nn_multihead_attention_forward(&a, x2, x2, x2, NULL),
                         "nn_multihead_attention_forward: query [B, Tq, E], key and value [B, Tk, E] "
                         "with E = 8 expected, got query [3,8], key [3,8], value [3,8]");
    ck_assert_fails_with(nn_multihead_attention_forward(&a, x, NULL, x, NULL),
                         "nn_multihead_attention_forward: key is NULL");
    ck_assert_fails_with(nn_multihead_attention_forward(NULL, x, x, x, NULL),
                         "nn_multihead_attention_forward: layer is NULL or not initialised");
    ck_assert_fails_with(nn_transformer_block_forward(NULL, x, NULL),
                         "nn_transformer_block_forward: layer is NULL or not initialised");
    /* the block reports the first failing op: its layer norm */
    ck_assert_fails(nn_transformer_block_forward(&blk, x6, NULL), "layer_norm");
    /* a mask that does not fit the scores is the attention op's error:
     * sdpa_heads' for self-attention, scaled_dot_product_attention's for
     * cross-attention */
    tensor *bad = tensor_zeros(DTYPE_I64, SHAPE(4, 4));
    ck_assert_fails(nn_multihead_attention_forward(&a, x, x, x, bad),
                    "sdpa_heads: mask [4,4] does not broadcast to the scores [.., H, T, T] = [2,2,3,3]");
    tensor *xc = tensor_clone(x);
    ck_assert_fails(nn_multihead_attention_forward(&a, x, xc, xc, bad),
                    "scaled_dot_product_attention: mask [4,4] does not broadcast");
    tensor_free(xc);
    ck_assert_fails_with(nn_pos_embedding_forward(&pos, long_x),
                         "nn_pos_embedding_forward: x must be [.., T, 8] with T <= max_len 4, got "
                         "[1,5,8]");
    ck_assert_fails_with(nn_pos_embedding_forward(&pos, x6),
                         "nn_pos_embedding_forward: x must be [.., T, 8] with T <= max_len 4, got "
                         "[2,3,6]");
    ck_assert_fails_with(nn_pos_embedding_forward(&pos, NULL), "nn_pos_embedding_forward: x is NULL");
    ck_assert_fails_with(nn_pos_embedding_forward(NULL, x),
                         "nn_pos_embedding_forward: layer is NULL or not initialised");
    tape_reset();
    tensor_free(x), tensor_free(x6), tensor_free(kv), tensor_free(x2), tensor_free(long_x),
        tensor_free(bad);
    nn_model_free(m);
    nn_model_free(m2);
}
END_TEST

Suite *nn_attention_suite(void) {
    Suite *s = suite_create("nn_attention");
    TCase *tc = tcase_create("attention");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_mha_names_shapes_and_init);
    tcase_add_test(tc, test_mha_matches_reference);
    tcase_add_test(tc, test_mha_dropout_train_only);
    tcase_add_test(tc, test_mha_self_attention_packed_matches_split_path);
    tcase_add_test(tc, test_block_names_and_shapes);
    tcase_add_test(tc, test_block_matches_reference);
    tcase_add_test(tc, test_pos_embedding_learned);
    tcase_add_test(tc, test_pos_embedding_sinusoidal_is_a_buffer);
    tcase_add_test(tc, test_mha_whole_graph_gradcheck);
    tcase_add_test(tc, test_block_whole_graph_gradcheck);
    tcase_add_test(tc, test_block_broken_attention_vjp_localised);
    tcase_add_test(tc, test_tiny_gpt_tied_head_whole_graph_gradcheck);
    tcase_add_test(tc, test_tiny_gpt_tied_gradient_is_sum_of_uses);
    tcase_add_test(tc, test_tiny_gpt_training_memory_flat);
    tcase_add_test(tc, test_checkpoint_round_trip);
    tcase_add_test(tc, test_block_gradient_flow);
    tcase_add_test(tc, test_causal_future_gets_zero_gradient);
    tcase_add_test(tc, test_attention_layer_errors);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(nn_attention_suite)
