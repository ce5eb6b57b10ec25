/* internal.h - what the files of nn/ share with each other and nobody else. */
#ifndef TAPEGRAD_NN_INTERNAL_H
#define TAPEGRAD_NN_INTERNAL_H

#include "../autograd/internal.h"

/* NULL when a checkpoint can store name and read it back: non-empty, shorter
 * than max bytes, UTF-8 and not "__metadata__"; else why not ("empty",
 * "not UTF-8", ...). */
const char *tg_nn_name_fault(const char *name, size_t max);

/* A list of named tensors to save or to load into: the state of a model, an
 * optimiser, a loader, under a common prefix ("optim.state.0.exp_avg"). A
 * tensor put with own is the list's and freed with it; others are borrowed. */
typedef struct nn_state {
    int n, cap;
    char **names;
    tensor **ts;
    bool *own;
} nn_state;
/* Puts prefix + name; on failure (out of memory) frees t if own, returns -1. */
int tg_nn_state_put(nn_state *s, const char *prefix, const char *name, tensor *t, bool own);
/* An owned int64 scalar holding v, or a float64 one. */
int tg_nn_state_put_i64(nn_state *s, const char *prefix, const char *name, int64_t v);
int tg_nn_state_put_f64(nn_state *s, const char *prefix, const char *name, double v);
tensor *tg_nn_state_find(const nn_state *s, const char *prefix, const char *name);
void tg_nn_state_free(nn_state *s);

/* The optimiser's state under prefix (torch's optimizer.state_dict(),
 * flattened): "kind", "steps", per parameter K "state.K.step" and its
 * moments, per group G "param_groups.G.params" and its hyperparameters.
 * Export borrows the moments. Import reads the same names from loaded (a
 * list that nn_safetensors_load filled) and checks them against o; with
 * commit it writes them into o. path is for messages. */
int tg_optim_state_export(const optim *o, nn_state *s, const char *prefix);
int tg_optim_state_import(optim *o, const nn_state *loaded, const char *prefix, const char *path,
                       bool commit);

/* The loader's position, for checkpoints (nn/idx.c): its permutation of the
 * n images, its shuffle generator and the index of the next image. */
void tg_nn_loader_state(nn_loader *l, int64_t *n, int64_t **order, rng **g, int64_t **pos);

#endif
