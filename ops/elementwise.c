/* elementwise.c - builders and sample cases shared by elementwise ops. */
#include "elementwise.h"

tensor *tg_ew_unary_apply(const op_def *op, tensor *a, const double *fp, int nfp) {
    tensor *in[1] = {a};
    if (tg_op_check_inputs(op, in, 1, 0)) return NULL;
    tape_node *n = tg_node_begin(op, in, 1, a->dtype, a->ndim, a->shape);
    if (!n) return NULL;
    for (int i = 0; i < nfp; i++) n->fp[i] = fp[i];
    return tg_node_finish(n);
}

tensor *tg_ew_binary_apply(const op_def *op, tensor *a, tensor *b, const double *fp, int nfp) {
    tensor *in[2] = {a, b};
    if (tg_op_check_inputs(op, in, 2, 0)) return NULL;
    int nd;
    int64_t shape[TENSOR_MAX_DIMS];
    if (tg_broadcast_shapes(op->name, a, b, &nd, shape)) return NULL;
    tape_node *n = tg_node_begin(op, in, 2, a->dtype, nd, shape);
    if (!n) return NULL;
    for (int i = 0; i < nfp; i++) n->fp[i] = fp[i];
    return tg_node_finish(n);
}

int tg_ew_unary_sample(int k, rng *g, op_sample *s, double lo, double hi, const double *avoid,
                    int n_avoid, double margin) {
    static const int64_t shapes[][3] = {{7, 0, 0}, {3, 4, 0}, {2, 3, 5}};
    static const int ndims[] = {1, 2, 3};
    if (k >= 3) return 1;
    s->n_inputs = 1;
    s->inputs[0] = tg_sample_tensor_avoiding(g, ndims[k], shapes[k], lo, hi, avoid, n_avoid, margin);
    char sh[64];
    tg_sample_name(s, "x%s", tensor_shape_str(s->inputs[0], sh, sizeof sh));
    return s->inputs[0] ? 0 : -1;
}

int tg_ew_binary_sample(int k, rng *g, op_sample *s, double lo, double hi, const double *avoid,
                     int n_avoid, double margin) {
    /* (a shape, b shape): equal, [3]+[2,3], [2,1,4]*[3,1], scalar each side. */
    static const struct {
        int na, nb;
        int64_t a[3], b[3];
    } cases[] = {
        {2, 2, {3, 4}, {3, 4}},    {1, 2, {3}, {2, 3}},   {3, 2, {2, 1, 4}, {3, 1}},
        {2, 0, {2, 3}, {0}},       {0, 2, {0}, {2, 3}},   {2, 1, {4, 3}, {3}},
    };
    if (k >= (int)(sizeof cases / sizeof cases[0])) return 1;
    s->n_inputs = 2;
    s->inputs[0] = tg_sample_tensor_avoiding(g, cases[k].na, cases[k].a, lo, hi, avoid, n_avoid, margin);
    s->inputs[1] = tg_sample_tensor_avoiding(g, cases[k].nb, cases[k].b, lo, hi, avoid, n_avoid, margin);
    char sa[64], sb[64];
    tg_sample_name(s, "%s, %s", tensor_shape_str(s->inputs[0], sa, sizeof sa),
                tensor_shape_str(s->inputs[1], sb, sizeof sb));
    return s->inputs[0] && s->inputs[1] ? 0 : -1;
}
