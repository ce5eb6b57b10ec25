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

#include "internal.h"
#include "../ops/isa.h"

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
    tensor *m, *v; /* float64, owned here. SGD: momentum buffer in m; Adam: exp_avg, exp_avg_sq */
    int64_t step;  /* updates this parameter received */
    int g;         /* its parameter group */
} slot;

/* Parameter groups as in torch.optim: one kind per optimiser, the
 * hyperparameters per group (groups[g].kind is the optimiser's). */
struct optim {
    optim_kind kind;
    int n, cap, n_groups, cap_groups;
    slot *s;
    optim_config *groups;
    int64_t steps;
};

optim_config optim_defaults(optim_kind kind) {
    optim_config c = {.kind = kind, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    if (kind == OPTIM_SGD) c.lr = 1e-2;
    if (kind == OPTIM_ADAMW) c.weight_decay = 1e-2;
    return c;
}

static const char *kind_name(optim_kind k) {
    return k == OPTIM_SGD ? "sgd" : k == OPTIM_ADAM ? "adam" : k == OPTIM_ADAMW ? "adamw" : "unknown";
}

/* NULL when c is a valid configuration, else what is wrong with it. */
static const char *config_fault(const optim_config *c) {
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
    return bad;
}

void optim_free(optim *o) {
    if (!o) return;
    for (int i = 0; i < o->n; i++) {
        tensor_free(o->s[i].m);
        tensor_free(o->s[i].v);
    }
    tg_mem_free(o->s);
    tg_mem_free(o->groups);
    tg_mem_free(o);
}

/* a with room for n + more elements of size elem (cap grown by doubling);
 * NULL when out of memory, a unchanged. */
static void *room(void *a, int n, int more, int *cap, size_t elem) {
    if (n + more <= *cap) return a;
    int c = *cap ? *cap : 4;
    while (c < n + more) c *= 2;
    void *na = tg_mem_calloc((size_t)c * elem);
    if (!na) return NULL;
    if (n) memcpy(na, a, (size_t)n * elem);
    tg_mem_free(a);
    *cap = c;
    return na;
}

/* Appends a group of n parameters with configuration c; what names the
 * caller in messages. Refuses a tensor the optimiser already steps (in this
 * list or an earlier group): it would be updated twice a step. */
static int add_group(optim *o, const char *what, const optim_config *c, tensor *const *params,
                     int n) {
    if (!c || (n > 0 && !params) || n < 0) {
        tg_error_set("%s: config or parameter list missing", what);
        return -1;
    }
    const char *bad = config_fault(c);
    if (bad) {
        tg_error_set("%s: %s", what, bad);
        return -1;
    }
    if (c->kind != o->kind) {
        tg_error_set("%s: a group of an %s optimiser cannot be %s", what, kind_name(o->kind),
                  kind_name(c->kind));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!params[i] || params[i]->dtype == DTYPE_I64 || params[i]->tape_owned) {
            tg_error_set("%s: parameter %d is %s", what, o->n + i,
                      !params[i]              ? "NULL"
                      : params[i]->tape_owned ? "tape-owned"
                                              : "int64");
            return -1;
        }
        for (int j = 0; j < o->n + i; j++)
            if ((j < o->n ? o->s[j].p : params[j - o->n]) == params[i]) {
                tg_error_set("%s: parameters %d and %d are one tensor (tied?); it would be stepped "
                          "twice: pass each tensor once (nn_model_parameters)",
                          what, j, o->n + i);
                return -1;
            }
    }
    slot *s = room(o->s, o->n, n, &o->cap, sizeof *o->s);
    if (!s) return -1;
    o->s = s;
    optim_config *g = room(o->groups, o->n_groups, 1, &o->cap_groups, sizeof *o->groups);
    if (!g) return -1;
    o->groups = g;
    bool two = c->kind != OPTIM_SGD;
    for (int i = 0; i < n; i++) {
        slot *t = &o->s[o->n + i];
        *t = (slot){.p = params[i], .g = o->n_groups};
        t->m = tensor_zeros(DTYPE_F64, params[i]->ndim, params[i]->shape);
        t->v = two ? tensor_zeros(DTYPE_F64, params[i]->ndim, params[i]->shape) : NULL;
        if (!t->m || (two && !t->v)) {
            for (int k = 0; k <= i; k++) {
                tensor_free(o->s[o->n + k].m);
                tensor_free(o->s[o->n + k].v);
            }
            return -1;
        }
    }
    o->n += n;
    o->groups[o->n_groups++] = *c;
    return o->n_groups - 1;
}

optim *optim_new(const optim_config *c, tensor *const *params, int n) {
    optim *o = tg_mem_calloc(sizeof *o);
    if (!o) return NULL;
    o->kind = c ? c->kind : OPTIM_SGD;
    if (add_group(o, "optim_new", c, params, n) < 0) {
        optim_free(o);
        return NULL;
    }
    return o;
}

int optim_add_group(optim *o, const optim_config *c, tensor *const *params, int n) {
    if (!o) {
        tg_error_set("optim_add_group: optimiser is NULL");
        return -1;
    }
    return add_group(o, "optim_add_group", c, params, n);
}

int optim_group_count(const optim *o) { return o ? o->n_groups : 0; }

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

/* P += neg_lr G with one fused multiply-add per element (fmaf: exact, so every
 * variant gives the same bits). The library is built for x86-64-v2, which has
 * no FMA instruction: there fmaf is a libm call per element (29 % of a
 * LeNet-5 batch-1 step), so v2 computes it in float64 (sgd_f32_v2); the
 * copies for v3/v4 inline and vectorise the instruction. The copy that runs
 * is the variant in use (ops/isa.h), so TAPEGRAD_ISA governs it as it does
 * the ops' kernels (GCC's target_clones picked by the CPU alone, and a forced
 * v2 or v3 still ran the v4 loop). */
#define SGD_F32(name, target, fma)                                                  \
    target static void name(float *P, const float *G, float neg_lr, int64_t cnt) {   \
        _Pragma("omp simd") for (int64_t i = 0; i < cnt; i++) P[i] = fma(neg_lr, G[i], P[i]); \
    }
/* fmaf(a, b, c) without an FMA instruction, and exactly: a b is exact in
 * float64 (24 + 24 bits of 53); s = a b + c rounds once in float64 and TwoSum
 * recovers its error e exactly; s is then made the sum rounded to odd (an
 * even s with e != 0 steps one ulp towards a b + c), and rounding that to
 * float32, 29 bits shorter, gives the correctly rounded a b + c (rounding to
 * odd first is innocuous when at least 2 bits are dropped after it). With
 * e = 0 or a NaN or infinite operand, s itself. Vectorises on the baseline's
 * SSE4.2: the v2 batch-1 LeNet-5 step spent 0.15 ms in libm's fmaf. */
static inline float fmaf_by_double(float a, float b, float c) {
    const double p = (double)a * b, x = c, s = p + x;
    const double bb = s - p, e = (p - (s - bb)) + (x - bb);
    int64_t bits;
    memcpy(&bits, &s, sizeof bits);
    const int64_t step = (e > 0) == (s > 0) ? 1 : -1; /* towards a b + c */
    bits += e != 0 && e == e && !(bits & 1) ? step : 0;
    double r;
    memcpy(&r, &bits, sizeof r);
    return (float)r;
}
SGD_F32(sgd_f32_v4, __attribute__((target("arch=x86-64-v4"))), fmaf)
SGD_F32(sgd_f32_v3, __attribute__((target("arch=x86-64-v3"))), fmaf)
#undef SGD_F32
/* v2: a b + c rounded to float64 and then to float32 is the correctly
 * rounded result unless the float64 sum s lands exactly on a midpoint
 * between two floats (the exact sum may lie on either side; float32's
 * midpoints are float64 numbers, so a float64 rounding cannot cross one).
 * The bit pattern below finds the midpoints of normal floats; a result r in
 * the subnormal range or at the smallest normal, 2^-126 (whose lower
 * midpoint has a subnormal's spacing), is taken as a possible case too. So a
 * block is rounded twice, the cheap way, and redone by fmaf_by_double when
 * one of its sums may be such a case: the TwoSum and the rounding to odd, on
 * every element, had the v2 batch-1 LeNet-5 step spend half its time in the
 * update. */
enum { SGD_BLOCK = 16 };
static void sgd_f32_v2(float *P, const float *G, float neg_lr, int64_t cnt) {
    int64_t i = 0;
    for (; i + SGD_BLOCK <= cnt; i += SGD_BLOCK) {
        float r[SGD_BLOCK];
        int64_t mid = 0;
        int32_t tiny = 0; /* float32 lanes: twice as many per instruction */
        _Pragma("omp simd reduction(|:mid, tiny)") for (int k = 0; k < SGD_BLOCK; k++) {
            const double s = (double)neg_lr * G[i + k] + P[i + k];
            int64_t bits;
            memcpy(&bits, &s, sizeof bits);
            mid |= (int64_t)((bits & 0x1fffffff) == 0x10000000);
            r[k] = (float)s;
            tiny |= (int32_t)(fabsf(r[k]) <= 0x1p-126f);
        }
        if (!(mid | tiny)) {
            memcpy(P + i, r, sizeof r);
            continue;
        }
        for (int k = 0; k < SGD_BLOCK; k++) P[i + k] = fmaf_by_double(neg_lr, G[i + k], P[i + k]);
    }
    for (; i < cnt; i++) P[i] = fmaf_by_double(neg_lr, G[i], P[i]);
}
static void sgd_f32(float *P, const float *G, float neg_lr, int64_t cnt) {
    switch (tg_isa_in_use()) { /* -1 (TAPEGRAD_ISA refused): the baseline */
    case ISA_V4: sgd_f32_v4(P, G, neg_lr, cnt); break;
    case ISA_V3: sgd_f32_v3(P, G, neg_lr, cnt); break;
    default: sgd_f32_v2(P, G, neg_lr, cnt); break;
    }
}

static void sgd_update(const optim_config *c, slot *s) {
    tensor *p = s->p;
    const int64_t cnt = p->size;
    const double wd = c->weight_decay, mu = c->momentum, damp = c->dampening, lr = c->lr;
    const bool first = s->step == 1, nesterov = c->nesterov;
    double *M = s->m->data;
    if (mu == 0 && wd == 0 && p->dtype == DTYPE_F32 && p->grad->dtype == DTYPE_F32) {
        /* Plain SGD on float32 is PyTorch's p.add_(g, alpha=-lr) in float32:
         * one fused multiply-add with lr rounded to float. No conversions
         * and twice the lanes: LeNet-5's batch-1 step spent 12 us in the
         * float64 loop, 3 us here. */
        sgd_f32(p->data, p->grad->data, (float)-lr, cnt);
        return;
    }
    DTYPE_DISPATCH(SGD_LOOP, p, p->grad);
}

/* torch.optim.Adam / AdamW at step t:
 *   Adam: g += wd p          AdamW: p *= 1 - lr wd
 *   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
/* One loop per form (DECOUPLED a constant), and optim.o is built with
 * -fno-trapping-math, so the loop has no branch and vectorises (it did not,
 * and AdamW was 3.6% of a GPT step); each element's arithmetic is the same. */
#define ADAM_LOOP_FORM(TP, TG, DECOUPLED)                                           \
    do {                                                                            \
        TP *P = p->data;                                                            \
        const TG *G = p->grad->data;                                                \
        _Pragma("omp simd")                                                         \
        for (int64_t i = 0; i < cnt; i++) {                                         \
            double w = P[i], g = G[i];                                              \
            if (DECOUPLED)                                                          \
                w *= 1 - lr * wd;                                                   \
            else                                                                    \
                g += wd * w;                                                        \
            M[i] = flush_subnormal(b1 * M[i] + (1 - b1) * g);                       \
            V[i] = flush_subnormal(b2 * V[i] + (1 - b2) * g * g);                   \
            P[i] = (TP)(w - step_size * M[i] / (sqrt(V[i]) / bc2_sqrt + eps));      \
        }                                                                           \
    } while (0)

#define ADAM_LOOP(TP, TG) ADAM_LOOP_FORM(TP, TG, false)
#define ADAMW_LOOP(TP, TG) ADAM_LOOP_FORM(TP, TG, true)

/* The float32 parameter and gradient case (training) of the loops above, one
 * copy per variant like sgd_f32 and picked the same way: the per-element sqrt
 * and division in float64 ran two lanes wide on the x86-64-v2 baseline (AdamW
 * was 5 % of an LSTM step). optim.c is built with -ffp-contract=off, so no
 * copy fuses a multiply and an add the baseline does not: every variant gives
 * the baseline's bits (tests/test_nn_optim.c). */
#define ADAM_F32(name, target)                                                       \
    target static void name(tensor *p, double *M, double *V, int64_t cnt, bool decoupled, \
                            double lr, double wd, double b1, double b2, double step_size, \
                            double bc2_sqrt, double eps) {                           \
        if (decoupled)                                                               \
            ADAMW_LOOP(float, float);                                                \
        else                                                                         \
            ADAM_LOOP(float, float);                                                 \
    }
ADAM_F32(adam_f32_v4, __attribute__((target("arch=x86-64-v4"))))
ADAM_F32(adam_f32_v3, __attribute__((target("arch=x86-64-v3"))))
ADAM_F32(adam_f32_v2, )
#undef ADAM_F32
static void adam_f32(tensor *p, double *M, double *V, int64_t cnt, bool decoupled, double lr,
                     double wd, double b1, double b2, double step_size, double bc2_sqrt,
                     double eps) {
    switch (tg_isa_in_use()) { /* -1 (TAPEGRAD_ISA refused): the baseline */
    case ISA_V4: adam_f32_v4(p, M, V, cnt, decoupled, lr, wd, b1, b2, step_size, bc2_sqrt, eps); break;
    case ISA_V3: adam_f32_v3(p, M, V, cnt, decoupled, lr, wd, b1, b2, step_size, bc2_sqrt, eps); break;
    default: adam_f32_v2(p, M, V, cnt, decoupled, lr, wd, b1, b2, step_size, bc2_sqrt, eps); break;
    }
}

static void adam_update(const optim_config *c, slot *s) {
    tensor *p = s->p;
    const int64_t cnt = p->size;
    const double b1 = c->beta1, b2 = c->beta2, lr = c->lr, wd = c->weight_decay, eps = c->eps;
    const double bc1 = 1 - pow(b1, (double)s->step), bc2 = 1 - pow(b2, (double)s->step);
    const double step_size = lr / bc1, bc2_sqrt = sqrt(bc2);
    double *M = s->m->data, *V = s->v->data;
    if (p->dtype == DTYPE_F32 && p->grad->dtype == DTYPE_F32)
        adam_f32(p, M, V, cnt, c->kind == OPTIM_ADAMW, lr, wd, b1, b2, step_size,
                 bc2_sqrt, eps);
    else if (c->kind == OPTIM_ADAMW)
        DTYPE_DISPATCH(ADAMW_LOOP, p, p->grad);
    else
        DTYPE_DISPATCH(ADAM_LOOP, p, p->grad);
}

int optim_step(optim *o) {
    if (!o) {
        tg_error_set("optim_step: optimiser is NULL");
        return -1;
    }
    for (int i = 0; i < o->n; i++) {
        const tensor *p = o->s[i].p, *g = p->grad;
        if (g && (!tensor_same_shape(p, g) || g->dtype == DTYPE_I64)) {
            char a[96], b[96];
            tg_error_set("optim_step: parameter %d %s has a gradient of shape %s", i,
                      tensor_shape_str(p, a, sizeof a), tensor_shape_str(g, b, sizeof b));
            return -1;
        }
    }
    tape_no_grad_begin();
    for (int i = 0; i < o->n; i++) {
        slot *s = &o->s[i];
        if (!s->p->grad) continue;
        s->step++;
        if (o->kind == OPTIM_SGD)
            sgd_update(&o->groups[s->g], s);
        else
            adam_update(&o->groups[s->g], s);
    }
    tape_no_grad_end();
    o->steps++;
    return 0;
}

void optim_zero_grad(optim *o) {
    for (int i = 0; o && i < o->n; i++)
        if (o->s[i].p->grad)
            memset(o->s[i].p->grad->data, 0,
                   (size_t)o->s[i].p->grad->size * tg_dtype_size(o->s[i].p->grad->dtype));
}

void optim_set_lr(optim *o, double lr) {
    for (int g = 0; o && g < o->n_groups; g++) o->groups[g].lr = lr;
}
int optim_set_group_lr(optim *o, int g, double lr) {
    if (!o || g < 0 || g >= o->n_groups || !(lr >= 0)) {
        tg_error_set("optim_set_group_lr: no group %d, or lr %g is not >= 0", g, lr);
        return -1;
    }
    o->groups[g].lr = lr;
    return 0;
}
double optim_get_lr(const optim *o) { return o && o->n_groups ? o->groups[0].lr : 0; }
double optim_get_group_lr(const optim *o, int g) {
    return o && g >= 0 && g < o->n_groups ? o->groups[g].lr : 0;
}
int64_t optim_steps(const optim *o) { return o ? o->steps : 0; }

/* torch.nn.utils.clip_grad_norm_: total = sqrt(sum of squares of all
 * grads); when total > max_norm every grad is scaled by
 * max_norm / (total + 1e-6). */
static bool listed_before(tensor *const *params, int i) {
    for (int j = 0; j < i; j++)
        if (params[j] == params[i]) return true;
    return false;
}

double optim_clip_grad_norm(tensor *const *params, int n, double max_norm) {
    if (n > 0 && !params) {
        tg_error_set("optim_clip_grad_norm: the parameter list is NULL (n = %d)", n);
        return -1;
    }
    if (n < 0 || !(max_norm >= 0)) {
        tg_error_set("optim_clip_grad_norm: n = %d and max_norm %g must not be negative (nor NaN)", n, max_norm);
        return -1;
    }
    /* a tensor listed twice (a tied weight under both names) is one
     * parameter: counted once in the norm and scaled once */
    double ss = 0;
    for (int i = 0; i < n; i++) {
        const tensor *g = params[i] && !listed_before(params, i) ? params[i]->grad : NULL;
        for (int64_t k = 0; g && k < g->size; k++) ss += tensor_get(g, k) * tensor_get(g, k);
    }
    double total = sqrt(ss), coef = max_norm / (total + 1e-6);
    if (coef < 1)
        for (int i = 0; i < n; i++) {
            tensor *g = params[i] && !listed_before(params, i) ? params[i]->grad : NULL;
            for (int64_t k = 0; g && k < g->size; k++) tensor_set(g, k, tensor_get(g, k) * coef);
        }
    return total;
}

int optim_clip_grad_value(tensor *const *params, int n, double clip) {
    if (n > 0 && !params) {
        tg_error_set("optim_clip_grad_value: the parameter list is NULL (n = %d)", n);
        return -1;
    }
    if (n < 0 || !(clip >= 0)) {
        tg_error_set("optim_clip_grad_value: n = %d and clip %g must not be negative (nor NaN)", n, clip);
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

/* ------------------------------------------------------ checkpoints */

static const char *const hyper_names[8] = {"lr",    "momentum", "dampening", "nesterov",
                                           "weight_decay", "beta1", "beta2",     "eps"};

static double *hyper(optim_config *c, int i) {
    double *f[8] = {&c->lr, &c->momentum, &c->dampening, NULL, &c->weight_decay,
                    &c->beta1, &c->beta2, &c->eps};
    return f[i];
}

int tg_optim_state_export(const optim *o, nn_state *s, const char *prefix) {
    char name[64];
    int rc = tg_nn_state_put_i64(s, prefix, "kind", o->kind);
    rc = rc ? rc : tg_nn_state_put_i64(s, prefix, "steps", o->steps);
    for (int i = 0; i < o->n && !rc; i++) {
        const slot *t = &o->s[i];
        snprintf(name, sizeof name, "state.%d.step", i);
        rc = tg_nn_state_put_i64(s, prefix, name, t->step);
        snprintf(name, sizeof name, "state.%d.%s", i,
                 o->kind == OPTIM_SGD ? "momentum_buffer" : "exp_avg");
        rc = rc ? rc : tg_nn_state_put(s, prefix, name, t->m, false);
        snprintf(name, sizeof name, "state.%d.exp_avg_sq", i);
        if (t->v && !rc) rc = tg_nn_state_put(s, prefix, name, t->v, false);
    }
    for (int g = 0; g < o->n_groups && !rc; g++) {
        int64_t k = 0;
        for (int i = 0; i < o->n; i++) k += o->s[i].g == g;
        tensor *ids = tensor_zeros(DTYPE_I64, 1, (int64_t[]){k});
        if (!ids) return -1;
        k = 0;
        for (int i = 0; i < o->n; i++)
            if (o->s[i].g == g) ((int64_t *)ids->data)[k++] = i;
        snprintf(name, sizeof name, "param_groups.%d.params", g);
        rc = tg_nn_state_put(s, prefix, name, ids, true);
        optim_config c = o->groups[g];
        for (int h = 0; h < 8 && !rc; h++) {
            snprintf(name, sizeof name, "param_groups.%d.%s", g, hyper_names[h]);
            rc = tg_nn_state_put_f64(s, prefix, name, h == 3 ? (double)c.nesterov : *hyper(&c, h));
        }
    }
    return rc;
}

static int64_t get_i64(const nn_state *s, const char *prefix, const char *name) {
    return ((const int64_t *)tg_nn_state_find(s, prefix, name)->data)[0];
}

int tg_optim_state_import(optim *o, const nn_state *loaded, const char *prefix, const char *path,
                       bool commit) {
    char name[64];
    int64_t kind = get_i64(loaded, prefix, "kind");
    if (kind != o->kind) {
        tg_error_set("%s: the file holds the state of an optimiser of kind %lld, this one is %s",
                  path, (long long)kind, kind_name(o->kind));
        return -1;
    }
    int64_t steps = get_i64(loaded, prefix, "steps");
    for (int i = -1; i < o->n; i++) {
        if (i >= 0) snprintf(name, sizeof name, "state.%d.step", i);
        int64_t v = i < 0 ? steps : get_i64(loaded, prefix, name);
        if (v < 0 || v > steps) {
            tg_error_set("%s: optimiser step count %lld of \"%s%s\" is negative or more than the %lld "
                      "steps taken",
                      path, (long long)v, prefix, i < 0 ? "steps" : name, (long long)steps);
            return -1;
        }
    }
    optim_config *cs = tg_mem_alloc((size_t)(o->n_groups ? o->n_groups : 1) * sizeof *cs);
    if (!cs) return -1;
    for (int g = 0; g < o->n_groups; g++) {
        snprintf(name, sizeof name, "param_groups.%d.params", g);
        const tensor *ids = tg_nn_state_find(loaded, prefix, name);
        int64_t k = 0;
        bool same = true;
        for (int i = 0; i < o->n && same; i++)
            if (o->s[i].g == g) same = k < ids->size && ((int64_t *)ids->data)[k++] == i;
        if (!same || k != ids->size) {
            tg_error_set("%s: parameter group %d in the file holds other parameters than the "
                      "optimiser's group %d",
                      path, g, g);
            tg_mem_free(cs);
            return -1;
        }
        cs[g] = o->groups[g];
        for (int h = 0; h < 8; h++) {
            snprintf(name, sizeof name, "param_groups.%d.%s", g, hyper_names[h]);
            double v = ((const double *)tg_nn_state_find(loaded, prefix, name)->data)[0];
            if (h == 3)
                cs[g].nesterov = v != 0;
            else
                *hyper(&cs[g], h) = v;
        }
        const char *bad = config_fault(&cs[g]);
        if (bad) {
            tg_error_set("%s: parameter group %d in the file: %s", path, g, bad);
            tg_mem_free(cs);
            return -1;
        }
    }
    if (commit) {
        o->steps = steps;
        memcpy(o->groups, cs, (size_t)o->n_groups * sizeof *cs);
        for (int i = 0; i < o->n; i++) {
            slot *t = &o->s[i];
            snprintf(name, sizeof name, "state.%d.step", i);
            t->step = get_i64(loaded, prefix, name);
            snprintf(name, sizeof name, "state.%d.%s", i,
                     o->kind == OPTIM_SGD ? "momentum_buffer" : "exp_avg");
            memcpy(t->m->data, tg_nn_state_find(loaded, prefix, name)->data,
                   (size_t)t->m->size * sizeof(double));
            snprintf(name, sizeof name, "state.%d.exp_avg_sq", i);
            if (t->v)
                memcpy(t->v->data, tg_nn_state_find(loaded, prefix, name)->data,
                       (size_t)t->v->size * sizeof(double));
        }
    }
    tg_mem_free(cs);
    return 0;
}
