/* attention.c - the layers of a transformer: multi-head attention, the
 * pre-LayerNorm block, and learned and sinusoidal position embeddings.
 *
 * Inputs are batch-first, [B, T, E] (PyTorch's batch_first=True).
 * Self-attention is one projection to the packed [B, T, 3E] and the fused
 * sdpa_heads op, which reads the heads in place; cross-attention splits and
 * merges the heads with reshape and permute around the fused
 * scaled_dot_product_attention op. Either way the whole layer is a graph of
 * registered ops that the checker differentiates node by node. */
#include <math.h>
#include <string.h>

#include "internal.h"

/* A new user-owned tensor of the model's dtype registered as prefix.leaf. */
static tensor *add(nn_model *m, bool param, const char *prefix, const char *leaf, int ndim,
                   const int64_t *shape) {
    char name[NN_NAME_MAX * 2];
    snprintf(name, sizeof name, "%s%s%s", prefix ? prefix : "", prefix && prefix[0] ? "." : "",
             leaf);
    tensor *t = tensor_new(m->dtype, ndim, shape);
    if (!t) return NULL;
    return param ? nn_model_add_param(m, name, t) : nn_model_add_buffer(m, name, t);
}

static int need_model(const char *what, const void *l, const nn_model *m) {
    if (!l || !m) {
        tg_error_set("%s: layer or model is NULL", what);
        return -1;
    }
    return 0;
}

/* ----------------------------------------------------- multi-head attention
 * x_q [B, Tq, E], x_kv [B, Tk, E]; H heads of Dh = E / H; W = in_proj_weight
 * [3E, E] holds W_q, W_k, W_v as row blocks (b = in_proj_bias likewise):
 *   q = x_q W_q^T + b_q -> [B, Tq, H, Dh] -> [B, H, Tq, Dh]   (k, v from x_kv)
 *   y = sdpa(q, k, v, mask, causal, dropout)                  [B, H, Tq, Dh]
 *   out = merge(y) W_o^T + b_o,  merge: [B, H, Tq, Dh] -> [B, Tq, E]
 * Self-attention (query, key and value the same tensor) makes q, k and v in
 * one GEMM, x [B T, E] W^T [E, 3E] + b -> qkv [B, T, 3E], and sdpa_heads
 * attends over the heads packed in it and writes the merged [B, T, E]:
 *   out = sdpa_heads(x W^T + b, H, mask, causal, dropout) W_o^T + b_o
 * with the same values, gradients and dropout draws as the split path.
 * Cross-attention takes row blocks of W (narrow, a copy of E x E weights)
 * for its projections of different inputs. */

/* The tensors under their names: PyTorch's nn.MultiheadAttention's
 * (in_proj_weight, out_proj.weight, ...) or the block's (qkv.weight, ...). */
typedef struct {
    const char *in_w, *in_b, *out_w, *out_b;
} mha_names;
static const mha_names torch_mha_names = {"in_proj_weight", "in_proj_bias", "out_proj.weight",
                                          "out_proj.bias"};
static const mha_names block_names = {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"};

/* PyTorch's Linear init: U(+-1/sqrt(fan_in)) for weight and bias. */
static int linear_init(tensor *w, tensor *b, rng *g) {
    double bound = 1.0 / sqrt((double)w->shape[1]);
    if (nn_init_uniform(w, g, -bound, bound)) return -1;
    return b ? nn_init_uniform(b, g, -bound, bound) : 0;
}

/* torch_init: nn.MultiheadAttention's _reset_parameters (xavier_uniform
 * in_proj_weight, Linear's init for out_proj.weight, zero biases); else two
 * Linear layers' init, as a block written with nn.Linear has. */
static int mha_setup(nn_multihead_attention *l, nn_model *m, const char *prefix, int64_t embed_dim,
                     int64_t num_heads, bool causal, double dropout, const mha_names *names,
                     bool torch_init, const char *what) {
    if (need_model(what, l, m)) return -1;
    if (embed_dim <= 0 || num_heads <= 0 || embed_dim % num_heads) {
        tg_error_set("%s: %s: embed_dim %lld must be a positive multiple of num_heads %lld", what,
                  prefix ? prefix : "", (long long)embed_dim, (long long)num_heads);
        return -1;
    }
    if (!(dropout >= 0 && dropout < 1)) {
        tg_error_set("%s: %s: dropout must be in [0, 1), got %g", what, prefix ? prefix : "", dropout);
        return -1;
    }
    memset(l, 0, sizeof *l);
    l->model = m;
    l->embed_dim = embed_dim;
    l->num_heads = num_heads;
    l->causal = causal;
    l->dropout = dropout;
    const int64_t E = embed_dim;
    l->in_proj_weight = add(m, true, prefix, names->in_w, SHAPE(3 * E, E));
    l->in_proj_bias = add(m, true, prefix, names->in_b, SHAPE(3 * E));
    l->out_proj_weight = add(m, true, prefix, names->out_w, SHAPE(E, E));
    l->out_proj_bias = add(m, true, prefix, names->out_b, SHAPE(E));
    if (!l->in_proj_weight || !l->in_proj_bias || !l->out_proj_weight || !l->out_proj_bias)
        return -1;
    if (!torch_init)
        return linear_init(l->in_proj_weight, l->in_proj_bias, &m->rng) ||
                       linear_init(l->out_proj_weight, l->out_proj_bias, &m->rng)
                   ? -1
                   : 0;
    return nn_init_xavier_uniform(l->in_proj_weight, &m->rng, 1.0) ||
                   linear_init(l->out_proj_weight, NULL, &m->rng)
               ? -1
               : 0; /* the biases stay 0 */
}

int nn_multihead_attention_init(nn_multihead_attention *l, nn_model *m, const char *prefix,
                                int64_t embed_dim, int64_t num_heads, bool causal,
                                double dropout) {
    return mha_setup(l, m, prefix, embed_dim, num_heads, causal, dropout, &torch_mha_names, true,
                     "nn_multihead_attention_init");
}

/* x [B, T, E] -> the heads [B, H, T, Dh] of x W_i^T + b_i, W_i the i-th row
 * block of in_proj_weight. */
static tensor *project_heads(const nn_multihead_attention *l, tensor *x, int i) {
    const int64_t E = l->embed_dim, H = l->num_heads;
    tensor *w = tensor_narrow(l->in_proj_weight, 0, i * E, E);
    tensor *b = tensor_narrow(l->in_proj_bias, 0, i * E, E);
    tensor *y = tensor_linear(x, w, b);
    if (!y) return NULL;
    y = tensor_reshape(y, 4, (int64_t[]){x->shape[0], x->shape[1], H, E / H});
    return tensor_permute(y, (int[]){0, 2, 1, 3});
}

/* query [B, Tq, E] and key, value [B, Tk, E] (all [B, T, E] when forward
 * checks them). */
static int mha_check(const nn_multihead_attention *l, const tensor *query, const tensor *key,
                     const tensor *value) {
    const tensor *in[3] = {query, key, value};
    for (int i = 0; i < 3; i++) {
        if (!in[i]) {
            if (!tg_error_pending())
                tg_error_set("nn_multihead_attention_forward: %s is NULL",
                          i == 0 ? "query" : i == 1 ? "key" : "value");
            return -1;
        }
    }
    char sq[96], sk[96], sv[96];
    const int64_t E = l->embed_dim;
    bool ok = query->ndim == 3 && key->ndim == 3 && value->ndim == 3 && query->shape[2] == E &&
              key->shape[2] == E && value->shape[2] == E && key->shape[0] == query->shape[0] &&
              value->shape[0] == query->shape[0] && key->shape[1] == value->shape[1];
    if (!ok) {
        tg_error_set("nn_multihead_attention_forward: query [B, Tq, E], key and value [B, Tk, E] with "
                  "E = %lld expected, got query %s, key %s, value %s",
                  (long long)E, tensor_shape_str(query, sq, sizeof sq),
                  tensor_shape_str(key, sk, sizeof sk), tensor_shape_str(value, sv, sizeof sv));
        return -1;
    }
    return 0;
}

tensor *nn_multihead_attention_forward(const nn_multihead_attention *l, tensor *query, tensor *key,
                                       tensor *value, tensor *mask) {
    if (!l || !l->model) {
        tg_error_set("%s: layer is NULL or not initialised", "nn_multihead_attention_forward");
        return NULL;
    }
    if (mha_check(l, query, key, value)) return NULL;
    const int64_t B = query->shape[0], Tq = query->shape[1], E = l->embed_dim;
    const double p = l->model->training ? l->dropout : 0.0;
    tensor *y;
    if (query == key && key == value) {
        tensor *qkv = tensor_linear(query, l->in_proj_weight, l->in_proj_bias);
        y = tensor_sdpa_heads(qkv, l->num_heads, mask, l->causal, p, &l->model->rng);
    } else {
        tensor *q = project_heads(l, query, 0), *k = project_heads(l, key, 1),
               *v = project_heads(l, value, 2);
        y = tensor_scaled_dot_product_attention(q, k, v, mask, l->causal, p, &l->model->rng);
        y = tensor_reshape(tensor_permute(y, (int[]){0, 2, 1, 3}), 3, (int64_t[]){B, Tq, E});
    }
    return tensor_linear(y, l->out_proj_weight, l->out_proj_bias);
}

/* ------------------------------------------------------ transformer block
 * Pre-LayerNorm (GPT-2):  x = x + attn(ln1(x));  x = x + out(gelu(fc(ln2(x))))
 * with fc [4E, E] and out [E, 4E]. */
int nn_transformer_block_init(nn_transformer_block *l, nn_model *m, const char *prefix,
                              int64_t embed_dim, int64_t num_heads, bool causal, double dropout) {
    const char *what = "nn_transformer_block_init";
    if (need_model(what, l, m)) return -1;
    memset(l, 0, sizeof *l);
    l->model = m;
    l->gelu_tanh = true;
    char name[NN_NAME_MAX * 2];
#define SUB(leaf) \
    (snprintf(name, sizeof name, "%s%s%s", prefix ? prefix : "", prefix && prefix[0] ? "." : "", leaf), name)
    const int64_t E = embed_dim;
    if (E <= 0) { /* the layer norms would say "normalized shape"; name the block's argument */
        tg_error_set("%s: %s: embed_dim must be positive, got %lld", what, prefix ? prefix : "",
                  (long long)E);
        return -1;
    }
    /* in the order of a block written with nn.Linear: ln1, ln2, qkv, proj, fc, out */
    if (nn_layernorm_init(&l->ln1, m, SUB("ln1"), 1, (int64_t[]){E}) ||
        nn_layernorm_init(&l->ln2, m, SUB("ln2"), 1, (int64_t[]){E}) ||
        mha_setup(&l->attn, m, prefix, E, num_heads, causal, dropout, &block_names, false, what) ||
        nn_linear_init(&l->fc, m, SUB("fc"), E, 4 * E, true) ||
        nn_linear_init(&l->out, m, SUB("out"), 4 * E, E, true))
        return -1;
#undef SUB
    return 0;
}

tensor *nn_transformer_block_forward(const nn_transformer_block *l, tensor *x, tensor *mask) {
    if (!l || !l->model) {
        tg_error_set("%s: layer is NULL or not initialised", "nn_transformer_block_forward");
        return NULL;
    }
    tensor *h = nn_layernorm_forward(&l->ln1, x);
    x = tensor_add(x, nn_multihead_attention_forward(&l->attn, h, h, h, mask));
    h = tensor_gelu(nn_linear_forward(&l->fc, nn_layernorm_forward(&l->ln2, x)), l->gelu_tanh);
    return tensor_add(x, nn_linear_forward(&l->out, h));
}

/* ---------------------------------------------------- position embeddings
 * y = x + P[0:T], x [.., T, E], P [max_len, E]: learned (a parameter, N(0, 1)
 * as nn.Embedding) or sinusoidal (a buffer, no gradient):
 *   P[t, 2i] = sin(t / 10000^(2i / E)),  P[t, 2i + 1] = cos(t / 10000^(2i / E)) */
int nn_pos_embedding_init(nn_pos_embedding *l, nn_model *m, const char *prefix, int64_t max_len,
                          int64_t dim, bool sinusoidal) {
    if (need_model("nn_pos_embedding_init", l, m)) return -1;
    if (max_len <= 0 || dim <= 0) {
        tg_error_set("nn_pos_embedding_init: sizes must be positive, got max_len %lld, dim %lld",
                  (long long)max_len, (long long)dim);
        return -1;
    }
    memset(l, 0, sizeof *l);
    l->model = m;
    l->sinusoidal = sinusoidal;
    l->weight = add(m, !sinusoidal, prefix, sinusoidal ? "pe" : "weight", SHAPE(max_len, dim));
    if (!l->weight) return -1;
    if (!sinusoidal) return nn_init_normal(l->weight, &m->rng, 0, 1);
    for (int64_t t = 0; t < max_len; t++)
        for (int64_t c = 0; c < dim; c++) {
            double freq = pow(10000.0, -(double)(c - c % 2) / (double)dim);
            tensor_set(l->weight, t * dim + c, c % 2 ? cos((double)t * freq) : sin((double)t * freq));
        }
    return 0;
}

tensor *nn_pos_embedding_forward(const nn_pos_embedding *l, tensor *x) {
    if (!l || !l->weight) {
        tg_error_set("%s: layer is NULL or not initialised", "nn_pos_embedding_forward");
        return NULL;
    }
    if (!x) {
        if (!tg_error_pending()) tg_error_set("nn_pos_embedding_forward: x is NULL");
        return NULL;
    }
    const int64_t max_len = l->weight->shape[0], E = l->weight->shape[1];
    char sx[96];
    if (x->ndim < 2 || x->shape[x->ndim - 1] != E || x->shape[x->ndim - 2] > max_len) {
        tg_error_set("nn_pos_embedding_forward: x must be [.., T, %lld] with T <= max_len %lld, got %s",
                  (long long)E, (long long)max_len, tensor_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    return tensor_add(x, tensor_narrow(l->weight, 0, 0, x->shape[x->ndim - 2]));
}
