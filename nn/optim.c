/* optim.c - SGD, Adam and AdamW with PyTorch's update rules, gradient
 * clipping and learning-rate schedules.
 *
 * Updates run in a no-grad scope and write .data directly; the optimiser's
 * state (momentum, first and second moments) is float64 whatever the
 * parameters' dtype, and a parameter whose .grad is NULL is skipped (its
 * state and step count stay put), as torch.optim does. The arithmetic is
 * float64 too, except plain SGD (no momentum, no weight decay) on float32,
 * which is float32 as in PyTorch. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "../autograd/internal.h"

/* A moment decays every step its gradient is 0 (a dead unit: Adam's m by
 * beta1, SGD's momentum by mu) and falls below DBL_MIN after some 7,000 such
 * steps. Arithmetic on subnormal doubles takes microcode assists on x86: in a
 * 10,000-step LeNet-5 run (tests/test_soak.c) optim_step took 1.5 times as
 * long at the end as at the start. Flushed to 0 instead; the step it would
 * still have made is below lr * DBL_MIN / eps, under 1e-300, which no
 * parameter can register. */
static inline double flush_subnormal(double x) { return fabs(x) < DBL_MIN ? 0 : x; }

typedef struct slot {
    tensor *p;
    double *m, *v; /* SGD: momentum buffer in m; Adam: exp_avg, exp_avg_sq */
    int64_t step;  /* updates this parameter received */
} slot;

struct optim {
    optim_config c;
    int n;
    slot *s;
    int64_t steps;
};

optim_config optim_defaults(optim_kind kind) {
    optim_config c = {.kind = kind, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    if (kind == OPTIM_SGD) c.lr = 1e-2;
    if (kind == OPTIM_ADAMW) c.weight_decay = 1e-2;
    return c;
}

static int config_check(const optim_config *c) {
    const char *bad = NULL;
    if (c->kind != OPTIM_SGD && c->kind != OPTIM_ADAM && c->kind != OPTIM_ADAMW)
        bad = "unknown kind";
    else if (!(c->lr >= 0))
        bad = "lr must be >= 0";
    else if (!(c->weight_decay >= 0))
        bad = "weight_decay must be >= 0";
    else if (c->kind == OPTIM_SGD && !(c->momentum >= 0))
        bad = "momentum must be >= 0";
    else if (c->kind == OPTIM_SGD && c->nesterov && (c->momentum <= 0 || c->dampening != 0))
        bad = "nesterov needs momentum > 0 and dampening 0";
    else if (c->kind != OPTIM_SGD &&
             !(c->beta1 >= 0 && c->beta1 < 1 && c->beta2 >= 0 && c->beta2 < 1))
        bad = "betas must be in [0, 1)";
    else if (c->kind != OPTIM_SGD && !(c->eps >= 0))
        bad = "eps must be >= 0";
    if (bad) error_set("optim_new: %s", bad);
    return bad ? -1 : 0;
}

void optim_free(optim *o) {
    if (!o) return;
    for (int i = 0; i < o->n; i++) {
        mem_free(o->s[i].m);
        mem_free(o->s[i].v);
    }
    mem_free(o->s);
    mem_free(o);
}

optim *optim_new(const optim_config *c, tensor *const *params, int n) {
    if (!c || (n > 0 && !params) || n < 0) {
        error_set("optim_new: config or parameter list missing");
        return NULL;
    }
    if (config_check(c)) return NULL;
    for (int i = 0; i < n; i++)
        if (!params[i] || params[i]->dtype == DTYPE_I64 || params[i]->tape_owned) {
            error_set("optim_new: parameter %d is %s", i,
                      !params[i]              ? "NULL"
                      : params[i]->tape_owned ? "tape-owned"
                                              : "int64");
            return NULL;
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (params[j] == params[i]) {
                error_set("optim_new: parameters %d and %d are one tensor (tied?); it would be "
                          "stepped twice: pass each tensor once (nn_model_parameters)",
                          j, i);
                return NULL;
            }
    optim *o = mem_calloc(sizeof *o);
    if (!o) return NULL;
    o->c = *c;
    o->n = n;
    o->s = mem_calloc((size_t)(n ? n : 1) * sizeof *o->s);
    if (!o->s) goto fail;
    bool two = c->kind != OPTIM_SGD;
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)params[i]->size * sizeof(double);
        o->s[i].p = params[i];
        o->s[i].m = mem_calloc(bytes);
        o->s[i].v = two ? mem_calloc(bytes) : NULL;
        if (!o->s[i].m || (two && !o->s[i].v)) goto fail;
    }
    return o;
fail:
    optim_free(o);
    return NULL;
}

/* The update loops are written once per (parameter, gradient) dtype pair so
 * that they vectorise (omp simd: -O2 alone leaves them scalar); the
 * arithmetic is float64 whatever the dtypes. A parameter, its gradient and
 * its state are distinct buffers, so the iterations are independent. */
#define DTYPE_DISPATCH(LOOP, p, g)                                  \
    do {                                                            \
        if ((p)->dtype == DTYPE_F32 && (g)->dtype == DTYPE_F32)     \
            LOOP(float, float);                                     \
        else if ((p)->dtype == DTYPE_F32)                           \
            LOOP(float, double);                                    \
        else if ((g)->dtype == DTYPE_F32)                           \
            LOOP(double, float);                                    \
        else                                                        \
            LOOP(double, double);                                   \
    } while (0)

/* torch.optim.SGD: d = g + wd p; b = d on the first step, else
 * b = mu b + (1 - dampening) d; d = nesterov ? d + mu b : b; p -= lr d. */
#define SGD_LOOP(TP, TG)                                                            \
    do {                                                                            \
        TP *P = p->data;                                                            \
        const TG *G = p->grad->data;                                                \
        if (mu == 0) {                                                              \
            _Pragma("omp simd")                                                     \
            for (int64_t i = 0; i < cnt; i++) {                                     \
                double w = P[i], d = G[i] + wd * w;                                 \
                P[i] = (TP)(w - lr * d);                                            \
            }                                                                       \
        } else {                                                                    \
            _Pragma("omp simd")                                                     \
            for (int64_t i = 0; i < cnt; i++) {                                     \
                double w = P[i], d = G[i] + wd * w;                                 \
                M[i] = first ? d : flush_subnormal(mu * M[i] + (1 - damp) * d);     \
                d = nesterov ? d + mu * M[i] : M[i];                                \
                P[i] = (TP)(w - lr * d);                                            \
            }                                                                       \
        }                                                                           \
    } while (0)

static void sgd_update(const optim_config *c, slot *s) {
    tensor *p = s->p;
    const int64_t cnt = p->size;
    const double wd = c->weight_decay, mu = c->momentum, damp = c->dampening, lr = c->lr;
    const bool first = s->step == 1, nesterov = c->nesterov;
    double *M = s->m;
    if (mu == 0 && wd == 0 && p->dtype == DTYPE_F32 && p->grad->dtype == DTYPE_F32) {
        /* Plain SGD on float32 is PyTorch's p.add_(g, alpha=-lr) in float32:
         * one fused multiply-add with lr rounded to float. No conversions
         * and twice the lanes: LeNet-5's batch-1 step spent 12 us in the
         * float64 loop, 3 us here. */
        float *P = p->data;
        const float *G = p->grad->data, neg_lr = (float)-lr;
        _Pragma("omp simd")
        for (int64_t i = 0; i < cnt; i++) P[i] = fmaf(neg_lr, G[i], P[i]);
        return;
    }
    DTYPE_DISPATCH(SGD_LOOP, p, p->grad);
}

/* torch.optim.Adam / AdamW at step t:
 *   Adam: g += wd p          AdamW: p *= 1 - lr wd
 *   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
#define ADAM_LOOP(TP, TG)                                                           \
    do {                                                                            \
        TP *P = p->data;                                                            \
        const TG *G = p->grad->data;                                                \
        _Pragma("omp simd")                                                         \
        for (int64_t i = 0; i < cnt; i++) {                                         \
            double w = P[i], g = G[i];                                              \
            if (decoupled)                                                          \
                w *= 1 - lr * wd;                                                   \
            else                                                                    \
                g += wd * w;                                                        \
            M[i] = flush_subnormal(b1 * M[i] + (1 - b1) * g);                       \
            V[i] = flush_subnormal(b2 * V[i] + (1 - b2) * g * g);                   \
            P[i] = (TP)(w - step_size * M[i] / (sqrt(V[i]) / bc2_sqrt + eps));      \
        }                                                                           \
    } while (0)

static void adam_update(const optim_config *c, slot *s) {
    tensor *p = s->p;
    const int64_t cnt = p->size;
    const double b1 = c->beta1, b2 = c->beta2, lr = c->lr, wd = c->weight_decay, eps = c->eps;
    const double bc1 = 1 - pow(b1, (double)s->step), bc2 = 1 - pow(b2, (double)s->step);
    const double step_size = lr / bc1, bc2_sqrt = sqrt(bc2);
    const bool decoupled = c->kind == OPTIM_ADAMW;
    double *M = s->m, *V = s->v;
    DTYPE_DISPATCH(ADAM_LOOP, p, p->grad);
}

int optim_step(optim *o) {
    if (!o) {
        error_set("optim_step: optimiser is NULL");
        return -1;
    }
    for (int i = 0; i < o->n; i++) {
        const tensor *p = o->s[i].p, *g = p->grad;
        if (g && (!tensor_same_shape(p, g) || g->dtype == DTYPE_I64)) {
            char a[96], b[96];
            error_set("optim_step: parameter %d %s has a gradient of shape %s", i,
                      tensor_shape_str(p, a, sizeof a), tensor_shape_str(g, b, sizeof b));
            return -1;
        }
    }
    tape_no_grad_begin();
    for (int i = 0; i < o->n; i++) {
        slot *s = &o->s[i];
        if (!s->p->grad) continue;
        s->step++;
        if (o->c.kind == OPTIM_SGD)
            sgd_update(&o->c, s);
        else
            adam_update(&o->c, s);
    }
    tape_no_grad_end();
    o->steps++;
    return 0;
}

void optim_zero_grad(optim *o) {
    for (int i = 0; o && i < o->n; i++)
        if (o->s[i].p->grad)
            memset(o->s[i].p->grad->data, 0,
                   (size_t)o->s[i].p->grad->size * dtype_size(o->s[i].p->grad->dtype));
}

void optim_set_lr(optim *o, double lr) {
    if (o) o->c.lr = lr;
}
double optim_get_lr(const optim *o) { return o ? o->c.lr : 0; }
int64_t optim_steps(const optim *o) { return o ? o->steps : 0; }

/* torch.nn.utils.clip_grad_norm_: total = sqrt(sum of squares of all
 * grads); when total > max_norm every grad is scaled by
 * max_norm / (total + 1e-6). */
double optim_clip_grad_norm(tensor *const *params, int n, double max_norm) {
    if ((n > 0 && !params) || n < 0 || !(max_norm >= 0)) {
        error_set("optim_clip_grad_norm: bad parameter list or max_norm");
        return -1;
    }
    double ss = 0;
    for (int i = 0; i < n; i++) {
        const tensor *g = params[i] ? params[i]->grad : NULL;
        for (int64_t k = 0; g && k < g->size; k++) ss += tensor_get(g, k) * tensor_get(g, k);
    }
    double total = sqrt(ss), coef = max_norm / (total + 1e-6);
    if (coef < 1)
        for (int i = 0; i < n; i++) {
            tensor *g = params[i] ? params[i]->grad : NULL;
            for (int64_t k = 0; g && k < g->size; k++) tensor_set(g, k, tensor_get(g, k) * coef);
        }
    return total;
}

int optim_clip_grad_value(tensor *const *params, int n, double clip) {
    if ((n > 0 && !params) || n < 0 || !(clip >= 0)) {
        error_set("optim_clip_grad_value: bad parameter list or clip value");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        tensor *g = params[i] ? params[i]->grad : NULL;
        for (int64_t k = 0; g && k < g->size; k++) {
            double v = tensor_get(g, k);
            tensor_set(g, k, v > clip ? clip : v < -clip ? -clip : v);
        }
    }
    return 0;
}

double optim_lr_step(double base, int64_t t, int64_t step_size, double gamma) {
    if (step_size <= 0 || t < 0) return base;
    return base * pow(gamma, (double)(t / step_size));
}

double optim_lr_cosine(double base, double eta_min, int64_t t, int64_t t_max) {
    if (t_max <= 0) return base;
    if (t > t_max) t = t_max;
    return eta_min + (base - eta_min) * (1 + cos(M_PI * (double)t / (double)t_max)) / 2;
}
