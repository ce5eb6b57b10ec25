/* gradflow.c - after a backward pass, did every parameter get a gradient,
 * of its own shape, of a sensible size?
 *
 * A parameter cut off from the loss (a layer left out of forward, a detached
 * branch) keeps grad NULL or all zero; a dying or saturating net shows
 * vanishing norms layer by layer; a diverging one exploding norms. The
 * report names each parameter the way the model's state_dict does. */
#include <math.h>
#include <string.h>

#include "../autograd/internal.h"

void nn_gradflow_free(nn_gradflow *r) {
    if (!r) return;
    tg_mem_free(r->entries);
    r->entries = NULL;
    r->n = 0;
}

static void gradflow_entry(nn_gradflow_entry *e, const char *name, const tensor *p, double vanish,
                           double explode) {
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name ? name : "?");
    const tensor *g = p->grad;
    e->has_grad = g != NULL;
    e->shape_ok = g && tensor_same_shape(p, g) && g->dtype == p->dtype;
    e->finite = true;
    if (!e->shape_ok) return;
    double ss = 0, mx = 0;
    for (int64_t i = 0; i < g->size; i++) {
        double v = tensor_get(g, i);
        if (!isfinite(v)) e->finite = false;
        ss += v * v;
        if (fabs(v) > mx) mx = fabs(v);
    }
    e->norm = sqrt(ss);
    e->max_abs = mx;
    e->all_zero = mx == 0;
    e->vanishing = !e->all_zero && e->norm < vanish;
    e->exploding = e->norm > explode || !e->finite;
}

static bool entry_bad(const nn_gradflow_entry *e) {
    return !e->has_grad || !e->shape_ok || !e->finite || e->all_zero || e->vanishing ||
           e->exploding;
}

int nn_gradflow_check(const char *const *names, tensor *const *params, int n, double vanish,
                      double explode, nn_gradflow *r) {
    if (!r || n < 0 || (n > 0 && !params)) {
        tg_error_set("nn_gradflow_check: report or parameter list missing");
        return -1;
    }
    memset(r, 0, sizeof *r);
    for (int i = 0; i < n; i++)
        if (!params[i]) {
            tg_error_set("nn_gradflow_check: parameter %d is NULL", i);
            return -1;
        }
    r->entries = tg_mem_calloc((size_t)(n ? n : 1) * sizeof *r->entries);
    if (!r->entries) return -1;
    r->n = n;
    r->vanish = vanish;
    r->explode = explode;
    for (int i = 0; i < n; i++) {
        char fallback[32];
        snprintf(fallback, sizeof fallback, "param%d", i);
        gradflow_entry(&r->entries[i], names ? names[i] : fallback, params[i], vanish, explode);
        r->n_problems += entry_bad(&r->entries[i]);
    }
    return 0;
}

int nn_gradflow_model(const nn_model *m, double vanish, double explode, nn_gradflow *r) {
    if (!m) {
        tg_error_set("%s: model is NULL", "nn_gradflow_model");
        return -1;
    }
    const char **names = tg_mem_alloc((size_t)(m->n_params ? m->n_params : 1) * sizeof *names);
    if (!names) return -1;
    for (int i = 0; i < m->n_params; i++) names[i] = m->param_names[i];
    int rc = nn_gradflow_check(names, m->params, m->n_params, vanish, explode, r);
    tg_mem_free(names);
    return rc;
}

void nn_gradflow_print(FILE *f, const nn_gradflow *r) {
    if (!f || !r) return;
    fprintf(f, "gradient flow: %d parameters, %d with problems (vanishing < %g, exploding > %g)\n",
            r->n, r->n_problems, r->vanish, r->explode);
    fprintf(f, "  %-24s %12s %12s  %s\n", "parameter", "grad norm", "max |grad|", "status");
    for (int i = 0; i < r->n; i++) {
        const nn_gradflow_entry *e = &r->entries[i];
        const char *st = !e->has_grad   ? "NO GRADIENT"
                         : !e->shape_ok ? "WRONG SHAPE"
                         : !e->finite   ? "NOT FINITE"
                         : e->all_zero  ? "ALL ZERO"
                         : e->vanishing ? "VANISHING"
                         : e->exploding ? "EXPLODING"
                                        : "ok";
        fprintf(f, "  %-24s %12.4e %12.4e  %s\n", e->name, e->norm, e->max_abs, st);
    }
}
