/* layers.c - the usual layers as small structs over a model's tensors, with
 * PyTorch's default initialisation, and forward functions over the ops.
 *
 * A layer registers its tensors in the model under "prefix.weight" etc., so
 * the model enumerates, saves and optimises them; the layer keeps borrowed
 * pointers. Mode (train / eval) and dropout's generator come from the model. */
#include <math.h>
#include <string.h>

#include "../autograd/internal.h"

/* A new user-owned tensor of the model's dtype registered as name. */
static tensor *add(nn_model *m, bool param, const char *prefix, const char *leaf, dtype dt,
                   int ndim, const int64_t *shape) {
    char name[NN_NAME_MAX * 2];
    snprintf(name, sizeof name, "%s%s%s", prefix ? prefix : "", prefix && prefix[0] ? "." : "",
             leaf);
    tensor *t = tensor_new(dt, ndim, shape);
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

/* PyTorch's reset_parameters of Linear and Conv2d: kaiming_uniform with
 * a = sqrt(5), which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias
 * from the same range. */
static int torch_default_init(tensor *w, tensor *b, rng *g) {
    int64_t fan_in;
    if (nn_init_kaiming_uniform(w, g, sqrt(5.0), NN_FAN_IN) || nn_fans(w, &fan_in, NULL)) return -1;
    double bound = fan_in > 0 ? 1.0 / sqrt((double)fan_in) : 0;
    return b ? nn_init_uniform(b, g, -bound, bound) : 0;
}

int nn_linear_init(nn_linear *l, nn_model *m, const char *prefix, int64_t in, int64_t out,
                   bool bias) {
    if (need_model("nn_linear_init", l, m)) return -1;
    if (in <= 0 || out <= 0) {
        tg_error_set("nn_linear_init: %s: features must be positive, got in %lld, out %lld",
                  prefix ? prefix : "", (long long)in, (long long)out);
        return -1;
    }
    memset(l, 0, sizeof *l);
    l->model = m;
    l->weight = add(m, true, prefix, "weight", m->dtype, SHAPE(out, in));
    if (bias) l->bias = add(m, true, prefix, "bias", m->dtype, SHAPE(out));
    if (!l->weight || (bias && !l->bias)) return -1;
    return torch_default_init(l->weight, l->bias, &m->rng);
}

tensor *nn_linear_forward(const nn_linear *l, tensor *x) {
    if (!l) {
        tg_error_set("%s: layer is NULL or not initialised", "nn_linear_forward");
        return NULL;
    }
    return tensor_linear(x, l->weight, l->bias);
}

int nn_conv2d_init(nn_conv2d *l, nn_model *m, const char *prefix, int64_t in_ch, int64_t out_ch,
                   int kernel, conv2d_params p, bool bias) {
    if (need_model("nn_conv2d_init", l, m)) return -1;
    int groups = p.groups > 0 ? p.groups : 1;
    if (in_ch <= 0 || out_ch <= 0 || kernel <= 0 || in_ch % groups || out_ch % groups) {
        tg_error_set("nn_conv2d_init: %s: bad sizes: in %lld, out %lld, kernel %d, groups %d",
                  prefix ? prefix : "", (long long)in_ch, (long long)out_ch, kernel, groups);
        return -1;
    }
    memset(l, 0, sizeof *l);
    l->model = m;
    l->p = p;
    l->p.groups = groups;
    l->weight =
        add(m, true, prefix, "weight", m->dtype, SHAPE(out_ch, in_ch / groups, kernel, kernel));
    if (bias) l->bias = add(m, true, prefix, "bias", m->dtype, SHAPE(out_ch));
    if (!l->weight || (bias && !l->bias)) return -1;
    return torch_default_init(l->weight, l->bias, &m->rng);
}

tensor *nn_conv2d_forward(const nn_conv2d *l, tensor *x) {
    if (!l) {
        tg_error_set("%s: layer is NULL or not initialised", "nn_conv2d_forward");
        return NULL;
    }
    return tensor_conv2d(x, l->weight, l->bias, l->p);
}

nn_pool2d nn_pool2d_make(int kernel, int stride, int padding) {
    int s = stride > 0 ? stride : kernel;
    return (nn_pool2d){{{kernel, kernel}, {s, s}, {padding, padding}, true}};
}

tensor *nn_max_pool2d_forward(const nn_pool2d *l, tensor *x) {
    if (!l) {
        tg_error_set("%s: layer is NULL or not initialised", "nn_max_pool2d_forward");
        return NULL;
    }
    return tensor_max_pool2d(x, l->p);
}

tensor *nn_avg_pool2d_forward(const nn_pool2d *l, tensor *x) {
    if (!l) {
        tg_error_set("%s: layer is NULL or not initialised", "nn_avg_pool2d_forward");
        return NULL;
    }
    return tensor_avg_pool2d(x, l->p);
}

/* BatchNorm1d and BatchNorm2d are one layer (PyTorch's _BatchNorm): the
 * same parameters, buffers and op; they differ in the input rank they take. */
static int batchnorm_init(const char *fn, nn_batchnorm2d *l, nn_model *m, const char *prefix,
                          int64_t channels) {
    if (need_model(fn, l, m)) return -1;
    if (channels <= 0) {
        tg_error_set("%s: channels must be positive, got %lld", fn, (long long)channels);
        return -1;
    }
    memset(l, 0, sizeof *l);
    l->model = m;
    l->momentum = 0.1;
    l->eps = 1e-5;
    l->weight = add(m, true, prefix, "weight", m->dtype, SHAPE(channels));
    l->bias = add(m, true, prefix, "bias", m->dtype, SHAPE(channels));
    l->running_mean = add(m, false, prefix, "running_mean", m->dtype, SHAPE(channels));
    l->running_var = add(m, false, prefix, "running_var", m->dtype, SHAPE(channels));
    l->num_batches_tracked = add(m, false, prefix, "num_batches_tracked", DTYPE_I64, 0, NULL);
    if (!l->weight || !l->bias || !l->running_mean || !l->running_var || !l->num_batches_tracked)
        return -1;
    nn_init_constant(l->weight, 1);
    nn_init_constant(l->running_var, 1);
    return 0;
}

int nn_batchnorm2d_init(nn_batchnorm2d *l, nn_model *m, const char *prefix, int64_t channels) {
    return batchnorm_init("nn_batchnorm2d_init", l, m, prefix, channels);
}

int nn_batchnorm1d_init(nn_batchnorm1d *l, nn_model *m, const char *prefix, int64_t channels) {
    return batchnorm_init("nn_batchnorm1d_init", l, m, prefix, channels);
}

static tensor *batchnorm_forward(const char *fn, int min_ndim, int max_ndim, nn_batchnorm2d *l,
                                 tensor *x) {
    if (!l || !l->model) {
        tg_error_set("%s: layer is NULL or not initialised", fn);
        return NULL;
    }
    if (x && tg_tensor_check_fresh(fn, "x", x)) return NULL;
    if (x && (x->ndim < min_ndim || x->ndim > max_ndim)) {
        char sx[96];
        if (min_ndim == max_ndim)
            tg_error_set("%s: x %s must have %d dimensions [B, C, H, W]", fn,
                         tensor_shape_str(x, sx, sizeof sx), min_ndim);
        else
            tg_error_set("%s: x %s must have %d or %d dimensions ([B, C] or [B, C, L])", fn,
                         tensor_shape_str(x, sx, sizeof sx), min_ndim, max_ndim);
        return NULL;
    }
    bool train = l->model->training;
    tensor *y = tensor_batch_norm(x, l->weight, l->bias, l->running_mean, l->running_var, train,
                                  l->momentum, l->eps);
    if (y && train) ((int64_t *)l->num_batches_tracked->data)[0]++;
    return y;
}

tensor *nn_batchnorm2d_forward(nn_batchnorm2d *l, tensor *x) {
    return batchnorm_forward("nn_batchnorm2d_forward", 4, 4, l, x);
}

tensor *nn_batchnorm1d_forward(nn_batchnorm1d *l, tensor *x) {
    return batchnorm_forward("nn_batchnorm1d_forward", 2, 3, l, x);
}

int nn_layernorm_init(nn_layernorm *l, nn_model *m, const char *prefix, int ndim,
                      const int64_t *normalized_shape) {
    if (need_model("nn_layernorm_init", l, m)) return -1;
    if (ndim < 1 || ndim > TENSOR_MAX_DIMS || !normalized_shape) {
        tg_error_set("nn_layernorm_init: normalized shape needs 1 to %d dimensions", TENSOR_MAX_DIMS);
        return -1;
    }
    memset(l, 0, sizeof *l);
    l->model = m;
    l->normalized_ndim = ndim;
    l->eps = 1e-5;
    l->weight = add(m, true, prefix, "weight", m->dtype, ndim, normalized_shape);
    l->bias = add(m, true, prefix, "bias", m->dtype, ndim, normalized_shape);
    if (!l->weight || !l->bias) return -1;
    return nn_init_constant(l->weight, 1);
}

tensor *nn_layernorm_forward(const nn_layernorm *l, tensor *x) {
    if (!l) {
        tg_error_set("%s: layer is NULL or not initialised", "nn_layernorm_forward");
        return NULL;
    }
    return tensor_layer_norm(x, l->normalized_ndim, l->weight, l->bias, l->eps);
}

int nn_dropout_init(nn_dropout *l, nn_model *m, double p) {
    if (need_model("nn_dropout_init", l, m)) return -1;
    if (!(p >= 0 && p < 1)) {
        tg_error_set("nn_dropout_init: p must be in [0, 1), got %g", p);
        return -1;
    }
    l->model = m;
    l->p = p;
    return 0;
}

tensor *nn_dropout_forward(const nn_dropout *l, tensor *x) {
    if (!l || !l->model) {
        tg_error_set("%s: layer is NULL or not initialised", "nn_dropout_forward");
        return NULL;
    }
    return tensor_dropout(x, l->p, l->model->training, &l->model->rng);
}

int nn_embedding_init(nn_embedding *l, nn_model *m, const char *prefix, int64_t num, int64_t dim) {
    if (need_model("nn_embedding_init", l, m)) return -1;
    if (num <= 0 || dim <= 0) {
        tg_error_set("nn_embedding_init: sizes must be positive, got %lld x %lld", (long long)num,
                  (long long)dim);
        return -1;
    }
    l->model = m;
    l->weight = add(m, true, prefix, "weight", m->dtype, SHAPE(num, dim));
    return l->weight ? nn_init_normal(l->weight, &m->rng, 0, 1) : -1;
}

tensor *nn_embedding_forward(const nn_embedding *l, tensor *index) {
    if (!l) {
        tg_error_set("%s: layer is NULL or not initialised", "nn_embedding_forward");
        return NULL;
    }
    return tensor_embedding(index, l->weight);
}
