/* gradcheck_model.c - the gradient checker on a model as it is.
 *
 * The user's loss code runs unchanged on the model's own tensors: each
 * parameter and buffer keeps its tensor struct (its layers hold pointers to
 * it) and has its dtype and data swapped for a float64 copy (int64 buffers
 * for a copy of their own, so that a re-run's counter updates do not stick).
 * The checker then perturbs those tensors in place (tg_gradcheck_in_place) and
 * calls the loss code through ctx. Afterwards every struct is copied back
 * from its saved image and the copies are freed: the model is bit-identical,
 * including its rng, which dropout draws from. A tied parameter (one tensor
 * registered under two names) is swapped and restored once; the checker
 * sees it under both numbers, each with the gradient of all its uses. */
#include <string.h>

#include "../autograd/internal.h"

typedef struct {
    gradcheck_fn fn;
    void *ctx;
    int n_state, n_batch;
} model_call;

/* The checker's inputs are [state..., batch...]; the loss code sees the batch. */
static tensor *model_loss(tensor *const *in, int n, void *ctx) {
    (void)n;
    const model_call *mc = ctx;
    return mc->fn(in + mc->n_state, mc->n_batch, mc->ctx);
}

static int model_args(const nn_model *m, gradcheck_fn fn, tensor *const *batch, int n_batch,
                      gradcheck_report *report) {
    if (!m || !fn || !report || (n_batch > 0 && !batch)) {
        tg_error_set("gradcheck_model: %s is NULL",
                  !m ? "model" : !fn ? "fn" : !report ? "report" : "batch");
        return -1;
    }
    const int total = m->n_params + m->n_buffers + n_batch;
    if (n_batch < 0 || total > GRADCHECK_MAX_INPUTS) {
        tg_error_set("gradcheck_model: %d parameters, %d buffers and %d batch tensors: %d inputs (at"
                  " most %d)",
                  m->n_params, m->n_buffers, n_batch, total, GRADCHECK_MAX_INPUTS);
        return -1;
    }
    for (int b = 0; b < n_batch; b++) {
        if (batch[b] && batch[b]->tape_owned) {
            tg_error_set("gradcheck_model: batch[%d] is tape-owned (an op output); the check resets"
                      " the tape, which would release it: pass a user-owned tensor"
                      " (tensor_clone)",
                      b);
            return -1;
        }
    }
    return 0;
}

/* Swaps t's data for a copy (float64 for a float tensor); *saved keeps the
 * struct as it was. */
static int swap_in(tensor *t, tensor *saved) {
    *saved = *t;
    const dtype dt = t->dtype == DTYPE_I64 ? DTYPE_I64 : DTYPE_F64;
    double *data = tg_mem_alloc((size_t)t->size * 8);
    if (!data) return -1;
    for (int64_t i = 0; i < t->size; i++) {
        if (dt == DTYPE_I64)
            ((int64_t *)data)[i] = ((const int64_t *)t->data)[i];
        else
            data[i] = tensor_get(t, i);
    }
    t->dtype = dt;
    t->data = data;
    t->grad = NULL;
    t->requires_grad = false;
    return 0;
}

/* The first position of in[i] among in[0..i]: a tied parameter (one tensor
 * under two names) is swapped, and restored, once. */
static int first_of(tensor *const *in, int i) {
    int j = 0;
    while (in[j] != in[i]) j++;
    return j;
}

static void swap_out(tensor *t, const tensor *saved) {
    if (t->grad != saved->grad) tensor_free(t->grad); /* made by the check's backward */
    if (t->data != saved->data) tg_mem_free(t->data);
    *t = *saved;
}

int gradcheck_model(nn_model *m, gradcheck_fn fn, void *ctx, tensor *const *batch, int n_batch,
                    const gradcheck_options *opt, gradcheck_report *report) {
    if (report) memset(report, 0, sizeof *report);
    if (model_args(m, fn, batch, n_batch, report)) return -1;
    const int n_state = m->n_params + m->n_buffers, n = n_state + n_batch;
    tensor *in[GRADCHECK_MAX_INPUTS] = {0}, saved[GRADCHECK_MAX_INPUTS];
    int swapped = 0, converted = 0, rc = 0;
    const rng rng_before = m->rng;
    for (; swapped < n_state && rc == 0; swapped++) {
        in[swapped] = swapped < m->n_params ? m->params[swapped]
                                            : m->buffers[swapped - m->n_params];
        if (first_of(in, swapped) == swapped) rc = swap_in(in[swapped], &saved[swapped]);
    }
    if (rc) swapped--; /* the failed one kept its struct */
    for (int b = 0; b < n_batch && rc == 0; b++, converted++) {
        const tensor *t = batch[b];
        in[n_state + b] = t && t->dtype != DTYPE_I64 ? tensor_to_dtype(t, DTYPE_F64) : (tensor *)t;
        if (t && !in[n_state + b]) rc = -1;
    }
    if (rc == 0) {
        gradcheck_options o = opt ? *opt : gradcheck_defaults();
        if (o.check_mask == 0) {
            for (int i = 0; i < m->n_params; i++) o.check_mask |= 1u << i;
            if (n_batch > 0) o.check_mask |= 1u << n_state;
        }
        /* a tied tensor is one leaf under several numbers: checked under all
         * of them or none (each number then sees the sum of every use) */
        for (int i = 0; i < n_state; i++) {
            int f = first_of(in, i);
            if (f != i && ((o.check_mask >> i | o.check_mask >> f) & 1))
                o.check_mask |= 1u << i | 1u << f;
        }
        model_call mc = {fn, ctx, n_state, n_batch};
        rc = tg_gradcheck_in_place(model_loss, &mc, in, n, &o, report);
    }
    for (int b = 0; b < converted; b++)
        if (in[n_state + b] != batch[b]) tensor_free(in[n_state + b]);
    for (int i = 0; i < swapped; i++)
        if (first_of(in, i) == i) swap_out(in[i], &saved[i]);
    m->rng = rng_before;
    return rc;
}
