/* model.c - the named-tensor container every model is built on, and the
 * initialisers of torch.nn.init, all drawing from the model's seeded rng.
 *
 * Names follow PyTorch's state_dict ("c1.weight"), so a checkpoint and a
 * gradient report read the same in both worlds. */
#include <math.h>
#include <string.h>

#include "internal.h"

nn_model *nn_model_new(dtype dt, uint64_t seed) {
    if (dt != DTYPE_F32 && dt != DTYPE_F64) {
        tg_error_set("nn_model_new: parameters must be float32 or float64, not %s", tg_dtype_name(dt));
        return NULL;
    }
    nn_model *m = tg_mem_calloc(sizeof *m);
    if (!m) return NULL;
    m->dtype = dt;
    m->training = true;
    rng_seed(&m->rng, seed, 0x6e6e); /* stream "nn": apart from the samples' streams */
    return m;
}

void nn_model_free(nn_model *m) {
    if (!m) return;
    /* unique, not params: a tied parameter is freed once */
    for (int i = 0; i < m->n_unique; i++) tensor_free(m->unique[i]);
    for (int i = 0; i < m->n_buffers; i++) {
        int j = 0;
        while (j < i && m->buffers[j] != m->buffers[i]) j++;
        if (j == i) tensor_free(m->buffers[i]);
    }
    tg_mem_free(m->params);
    tg_mem_free(m->param_names);
    tg_mem_free(m->unique);
    tg_mem_free(m->buffers);
    tg_mem_free(m->buffer_names);
    tg_mem_free(m);
}

/* a, an array of n elements of size elem, able to hold one more (grown by
 * doubling *cap); NULL when out of memory, a unchanged. */
static void *grow(void *a, int n, int *cap, size_t elem) {
    if (n < *cap) return a;
    int c = *cap ? *cap * 2 : 16;
    void *na = tg_mem_alloc((size_t)c * elem);
    if (!na) return NULL;
    if (n) memcpy(na, a, (size_t)n * elem);
    tg_mem_free(a);
    *cap = c;
    return na;
}

/* Appends (name, t) to one of the model's two lists. */
static int list_push(tensor ***ts, char (**names)[NN_NAME_MAX], int *n, int *cap, const char *name,
                     tensor *t) {
    int name_cap = *cap, ts_cap = *cap;
    char(*nn)[NN_NAME_MAX] = grow(*names, *n, &name_cap, sizeof **names);
    if (!nn) return -1;
    *names = nn; /* grown or not, the names stay valid: a later retry grows it again */
    tensor **nt = grow(*ts, *n, &ts_cap, sizeof **ts);
    if (!nt) return -1;
    *ts = nt;
    *cap = ts_cap < name_cap ? ts_cap : name_cap;
    (*ts)[*n] = t;
    snprintf((*names)[*n], NN_NAME_MAX, "%s", name);
    (*n)++;
    return 0;
}

/* 1 when t is one of the model's parameters, 2 one of its buffers, else 0. */
static int holds(const nn_model *m, const tensor *t) {
    for (int i = 0; i < m->n_unique; i++)
        if (m->unique[i] == t) return 1;
    for (int i = 0; i < m->n_buffers; i++)
        if (m->buffers[i] == t) return 2;
    return 0;
}

/* Every refusal frees t, as the contract says, unless the model already
 * holds t: then freeing it would leave the model a dangling pointer. */
static tensor *refuse(const nn_model *m, tensor *t) {
    if (t && !t->tape_owned && (!m || !holds(m, t))) tensor_free(t);
    return NULL;
}

static tensor *model_add(nn_model *m, const char *name, tensor *t, bool param) {
    const char *what = param ? "nn_model_add_param" : "nn_model_add_buffer";
    if (!m || !name || !t) {
        if (!tg_error_pending()) tg_error_set("%s: model, name or tensor is NULL", what);
        return refuse(m, t);
    }
    const char *fault = tg_nn_name_fault(name, NN_NAME_MAX);
    if (fault) {
        tg_error_set("%s: name refused, %s (a checkpoint could not hold it): \"%s\"", what, fault,
                  name);
        return refuse(m, t);
    }
    const tensor *named = nn_model_find(m, name);
    if (named) {
        tg_error_set(named == t ? "%s: \"%s\" is already registered under that name"
                             : "%s: the model already has a tensor named \"%s\"",
                  what, name);
        return refuse(m, t);
    }
    int held = holds(m, t);
    if (held && held != (param ? 1 : 2)) {
        tg_error_set("%s: the tensor for \"%s\" is already one of the model's %s; a tensor is a "
                  "parameter or a buffer, not both",
                  what, name, held == 1 ? "parameters" : "buffers");
        return NULL;
    }
    if (t->tape_owned) {
        tg_error_set("%s: \"%s\" is tape-owned; a model keeps user-owned tensors only", what, name);
        return NULL;
    }
    if (param && t->dtype == DTYPE_I64) {
        tg_error_set("%s: \"%s\" is int64; a parameter is float32 or float64 (int64 state is a "
                  "buffer)",
                  what, name);
        return refuse(m, t);
    }
    /* before taking t: a tensor that cannot be marked (another's .grad, say)
     * is not the model's to free either */
    if (param && !held && !t->requires_grad && tensor_set_requires_grad(t, true)) return NULL;
    if (param && !held) {
        tensor **u = grow(m->unique, m->n_unique, &m->cap_unique, sizeof *m->unique);
        if (!u) return refuse(m, t);
        m->unique = u;
        m->unique[m->n_unique++] = t;
    }
    int rc =
        param ? list_push(&m->params, &m->param_names, &m->n_params, &m->cap_params, name, t)
              : list_push(&m->buffers, &m->buffer_names, &m->n_buffers, &m->cap_buffers, name, t);
    if (rc) {
        if (param && !held) m->n_unique--;
        return refuse(m, t);
    }
    return t;
}

tensor *nn_model_add_param(nn_model *m, const char *name, tensor *t) {
    return model_add(m, name, t, true);
}
tensor *nn_model_add_buffer(nn_model *m, const char *name, tensor *t) {
    return model_add(m, name, t, false);
}

tensor *const *nn_model_parameters(const nn_model *m, int *n) {
    if (n) *n = m ? m->n_unique : 0;
    return m ? m->unique : NULL;
}

tensor *nn_model_find(const nn_model *m, const char *name) {
    if (!m || !name) return NULL;
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->param_names[i], name)) return m->params[i];
    for (int i = 0; i < m->n_buffers; i++)
        if (!strcmp(m->buffer_names[i], name)) return m->buffers[i];
    return NULL;
}

void nn_model_train(nn_model *m, bool on) {
    if (m) m->training = on;
}

int64_t nn_model_numel(const nn_model *m) {
    int64_t n = 0;
    for (int i = 0; m && i < m->n_unique; i++) n += m->unique[i]->size;
    return n;
}

int nn_model_state_count(const nn_model *m) { return m ? m->n_params + m->n_buffers : 0; }

int nn_model_state_at(const nn_model *m, int i, const char **name, tensor **t) {
    if (!m || i < 0 || i >= m->n_params + m->n_buffers) return -1;
    bool p = i < m->n_params;
    int k = p ? i : i - m->n_params;
    if (name) *name = p ? m->param_names[k] : m->buffer_names[k];
    if (t) *t = p ? m->params[k] : m->buffers[k];
    return 0;
}

/* ------------------------------------------------------- initialisers */

static int init_check(const char *what, const tensor *t, const rng *g, bool needs_rng) {
    if (!t || (needs_rng && !g)) {
        if (!tg_error_pending()) tg_error_set("%s: tensor or generator is NULL", what);
        return -1;
    }
    if (t->dtype == DTYPE_I64) {
        tg_error_set("%s: tensor is int64; initialisers fill float tensors", what);
        return -1;
    }
    return tg_tensor_check_fresh(what, "tensor", t);
}

/* torch.nn.init._calculate_fan_in_and_fan_out: dims 0 and 1 are the output
 * and input features, the rest the receptive field. */
int nn_fans(const tensor *t, int64_t *fan_in, int64_t *fan_out) {
    if (!t) {
        if (!tg_error_pending()) tg_error_set("nn_fans: tensor is NULL");
        return -1;
    }
    if (t->ndim < 2) {
        char s[96];
        tg_error_set("nn_fans: fan in and fan out need at least 2 dimensions, got %s",
                  tensor_shape_str(t, s, sizeof s));
        return -1;
    }
    int64_t rf = 1;
    for (int d = 2; d < t->ndim; d++) rf *= t->shape[d];
    if (fan_in) *fan_in = t->shape[1] * rf;
    if (fan_out) *fan_out = t->shape[0] * rf;
    return 0;
}

int nn_init_constant(tensor *t, double v) {
    if (init_check("nn_init_constant", t, NULL, false)) return -1;
    for (int64_t i = 0; i < t->size; i++) tensor_set(t, i, v);
    return 0;
}

int nn_init_uniform(tensor *t, rng *g, double lo, double hi) {
    if (init_check("nn_init_uniform", t, g, true)) return -1;
    for (int64_t i = 0; i < t->size; i++) tensor_set(t, i, lo + (hi - lo) * rng_uniform(g));
    return 0;
}

int nn_init_normal(tensor *t, rng *g, double mean, double std) {
    if (init_check("nn_init_normal", t, g, true)) return -1;
    for (int64_t i = 0; i < t->size; i++) tensor_set(t, i, mean + std * rng_normal(g));
    return 0;
}

/* Kaiming (He et al.): std = gain / sqrt(fan), gain = sqrt(2 / (1 + a^2));
 * the uniform bound sqrt(3) * std has the same variance. */
static int kaiming_std(const char *what, const tensor *t, double a, nn_fan_mode mode, double *std) {
    int64_t fi, fo;
    if (init_check(what, t, NULL, false) || nn_fans(t, &fi, &fo)) return -1;
    int64_t fan = mode == NN_FAN_OUT ? fo : fi;
    if (fan <= 0) {
        tg_error_set("%s: fan is 0 for an empty tensor", what);
        return -1;
    }
    *std = sqrt(2.0 / (1.0 + a * a)) / sqrt((double)fan);
    return 0;
}

int nn_init_kaiming_uniform(tensor *t, rng *g, double a, nn_fan_mode mode) {
    double std;
    if (kaiming_std("nn_init_kaiming_uniform", t, a, mode, &std)) return -1;
    return nn_init_uniform(t, g, -sqrt(3.0) * std, sqrt(3.0) * std);
}

int nn_init_kaiming_normal(tensor *t, rng *g, double a, nn_fan_mode mode) {
    double std;
    if (kaiming_std("nn_init_kaiming_normal", t, a, mode, &std)) return -1;
    return nn_init_normal(t, g, 0.0, std);
}

/* Xavier (Glorot & Bengio): std = gain * sqrt(2 / (fan_in + fan_out)). */
static int xavier_std(const char *what, const tensor *t, double gain, double *std) {
    int64_t fi, fo;
    if (init_check(what, t, NULL, false) || nn_fans(t, &fi, &fo)) return -1;
    if (fi + fo <= 0) {
        tg_error_set("%s: fan is 0 for an empty tensor", what);
        return -1;
    }
    *std = gain * sqrt(2.0 / (double)(fi + fo));
    return 0;
}

int nn_init_xavier_uniform(tensor *t, rng *g, double gain) {
    double std;
    if (xavier_std("nn_init_xavier_uniform", t, gain, &std)) return -1;
    return nn_init_uniform(t, g, -sqrt(3.0) * std, sqrt(3.0) * std);
}

int nn_init_xavier_normal(tensor *t, rng *g, double gain) {
    double std;
    if (xavier_std("nn_init_xavier_normal", t, gain, &std)) return -1;
    return nn_init_normal(t, g, 0.0, std);
}
