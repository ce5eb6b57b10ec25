/* registry.c - the op registry: the concatenation of the family tables that
 * live next to their kernels in ops/. Enumerated by the checker, the docs
 * generator and the tests, so an op cannot be forgotten by any of them. */
#include <string.h>

#include "internal.h"

OP_FAMILY(arith)
OP_FAMILY(math)
OP_FAMILY(activation)
OP_FAMILY(reduce)
OP_FAMILY(shape)
OP_FAMILY(matmul)
OP_FAMILY(layer)
OP_FAMILY(conv)
OP_FAMILY(pool)
OP_FAMILY(norm)
OP_FAMILY(loss)
OP_FAMILY(compare)
OP_FAMILY(sequence)

typedef struct {
    const op_def *table;
    const int *count;
} family;

static const family families[] = {
    {ops_arith, &ops_arith_count},   {ops_math, &ops_math_count},
    {ops_activation, &ops_activation_count}, {ops_reduce, &ops_reduce_count},
    {ops_shape, &ops_shape_count},   {ops_matmul, &ops_matmul_count},
    {ops_layer, &ops_layer_count},   {ops_conv, &ops_conv_count},
    {ops_pool, &ops_pool_count},     {ops_norm, &ops_norm_count},
    {ops_loss, &ops_loss_count},
    {ops_compare, &ops_compare_count},
    {ops_sequence, &ops_sequence_count},
};
#define N_FAMILIES (int)(sizeof families / sizeof families[0])

int op_count(void) {
    int n = 0;
    for (int f = 0; f < N_FAMILIES; f++) n += *families[f].count;
    return n;
}

const op_def *op_at(int i) {
    if (i < 0) return NULL;
    for (int f = 0; f < N_FAMILIES; f++) {
        if (i < *families[f].count) return &families[f].table[i];
        i -= *families[f].count;
    }
    return NULL;
}

const op_def *op_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0, n = op_count(); i < n; i++)
        if (strcmp(op_at(i)->name, name) == 0) return op_at(i);
    return NULL;
}

const char *op_name(const op_def *op) { return op ? op->name : NULL; }
int op_arity(const op_def *op) { return op ? op->arity : 0; }
const char *op_signature(const op_def *op) { return op ? op->signature : NULL; }
const char *op_formula_forward(const op_def *op) { return op ? op->formula_forward : NULL; }
const char *op_formula_gradient(const op_def *op) { return op ? op->formula_gradient : NULL; }
const char *op_notes(const op_def *op) { return op ? op->notes : NULL; }
