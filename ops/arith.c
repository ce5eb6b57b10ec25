/* arith.c - add, sub, mul, div, neg and their scalar forms.
 * Gradients of broadcast operands are summed over the broadcast dimensions. */
#include "elementwise.h"

/* z = x + y;  dx = g, dy = g */
EW_BINARY_FORWARD(add, x + y)
EW_BINARY_VJP(add, g, g)
/* z = x - y;  dx = g, dy = -g */
EW_BINARY_FORWARD(sub, x - y)
EW_BINARY_VJP(sub, g, -g)
/* z = x * y;  dx = g y, dy = g x */
EW_BINARY_FORWARD(mul, x * y)
EW_BINARY_VJP(mul, g * y, g * x)
/* z = x / y;  dx = g / y, dy = -g x / y^2 */
EW_BINARY_FORWARD(div, x / y)
EW_BINARY_VJP(div, g / y, -g * x / (y * y))
/* z = -x;  dx = -g */
EW_UNARY_FORWARD(neg, -x)
EW_UNARY_VJP(neg, -g)
/* z = x + s;  dx = g */
EW_UNARY_FORWARD(add_scalar, x + p0)
EW_UNARY_VJP(add_scalar, g)
/* z = x * s;  dx = g s */
EW_UNARY_FORWARD(mul_scalar, x * p0)
EW_UNARY_VJP(mul_scalar, g * p0)

/* The same vjps built from ops (op_def.vjp_graph), so that create_graph
 * records them: g is the upstream gradient, unbroadcast is tg_sum_to_shape. */
#define A (n->in[0])
#define B (n->in[1])
/* da = g, db = g */
static int add_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    if (want[0]) gin[0] = tg_sum_to_shape(g, A);
    if (want[1]) gin[1] = tg_sum_to_shape(g, B);
    return tg_graph_vjp_done(n, want, gin);
}
/* da = g, db = -g */
static int sub_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    if (want[0]) gin[0] = tg_sum_to_shape(g, A);
    if (want[1]) gin[1] = tg_sum_to_shape(tensor_neg(g), B);
    return tg_graph_vjp_done(n, want, gin);
}
/* da = g b, db = g a */
static int mul_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    if (want[0]) gin[0] = tg_sum_to_shape(tensor_mul(g, B), A);
    if (want[1]) gin[1] = tg_sum_to_shape(tensor_mul(g, A), B);
    return tg_graph_vjp_done(n, want, gin);
}
/* da = g / b, db = -g z / b (z = a / b, the output: its node carries the
 * dependence on a and b) */
static int div_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    if (want[0]) gin[0] = tg_sum_to_shape(tensor_div(g, B), A);
    if (want[1]) gin[1] = tg_sum_to_shape(tensor_neg(tensor_div(tensor_mul(g, n->out), B)), B);
    return tg_graph_vjp_done(n, want, gin);
}
static int neg_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    gin[0] = tensor_neg(g);
    return tg_graph_vjp_done(n, want, gin);
}
static int add_scalar_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    gin[0] = g;
    return tg_graph_vjp_done(n, want, gin);
}
static int mul_scalar_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    gin[0] = tensor_mul_scalar(g, n->fp[0]);
    return tg_graph_vjp_done(n, want, gin);
}
#undef A
#undef B

static const double div_avoid[] = {0.0};
static int binary_sample(int k, rng *g, op_sample *s) {
    return tg_ew_binary_sample(k, g, s, -2.0, 2.0, NULL, 0, 0);
}
static int div_sample(int k, rng *g, op_sample *s) {
    /* keeps both operands (so the divisor) at least 0.25 from the pole at 0 */
    return tg_ew_binary_sample(k, g, s, -2.0, 2.0, div_avoid, 1, 0.25);
}
static int unary_sample(int k, rng *g, op_sample *s) {
    int r = tg_ew_unary_sample(k, g, s, -2.0, 2.0, NULL, 0, 0);
    s->fp[0] = 0.75; /* the scalar of add_scalar / mul_scalar */
    return r;
}

static tensor *add_build(tensor *const *in, const op_sample *s) { (void)s; return tensor_add(in[0], in[1]); }
static tensor *sub_build(tensor *const *in, const op_sample *s) { (void)s; return tensor_sub(in[0], in[1]); }
static tensor *mul_build(tensor *const *in, const op_sample *s) { (void)s; return tensor_mul(in[0], in[1]); }
static tensor *div_build(tensor *const *in, const op_sample *s) { (void)s; return tensor_div(in[0], in[1]); }
static tensor *neg_build(tensor *const *in, const op_sample *s) { (void)s; return tensor_neg(in[0]); }
static tensor *add_scalar_build(tensor *const *in, const op_sample *s) { return tensor_add_scalar(in[0], s->fp[0]); }
static tensor *mul_scalar_build(tensor *const *in, const op_sample *s) { return tensor_mul_scalar(in[0], s->fp[0]); }

/* The arith family: index of each op in tg_ops_arith, its entry below. */
enum { ADD, SUB, MUL, DIV, NEG, ADD_SCALAR, MUL_SCALAR, N_ARITH_OPS };

const op_def tg_ops_arith[] = {
    [ADD] = {"add", 2, 0, add_forward, add_vjp, binary_sample, add_build, "tensor_add(a, b)",
     "y = a + b (broadcast)", "da = unbroadcast(g), db = unbroadcast(g)",
     "unbroadcast(g) sums g over the dimensions that were broadcast",
     .vjp_graph = add_vjp_graph, .vjp_fresh = true},
    [SUB] = {"sub", 2, 0, sub_forward, sub_vjp, binary_sample, sub_build, "tensor_sub(a, b)",
     "y = a - b (broadcast)", "da = unbroadcast(g), db = -unbroadcast(g)", "",
     .vjp_graph = sub_vjp_graph, .vjp_fresh = true},
    [MUL] = {"mul", 2, 0, mul_forward, mul_vjp, binary_sample, mul_build, "tensor_mul(a, b)",
     "y = a * b (broadcast)", "da = unbroadcast(g * b), db = unbroadcast(g * a)", "",
     .vjp_graph = mul_vjp_graph, .vjp_fresh = true},
    [DIV] = {"div", 2, 0, div_forward, div_vjp, div_sample, div_build, "tensor_div(a, b)",
     "y = a / b (broadcast)", "da = unbroadcast(g / b), db = unbroadcast(-g * a / b^2)",
     "undefined at b = 0; samples keep |b| >= 0.25",
     .vjp_graph = div_vjp_graph, .vjp_fresh = true},
    [NEG] = {"neg", 1, 0, neg_forward, neg_vjp, unary_sample, neg_build, "tensor_neg(a)", "y = -a",
     "da = -g", "",
     .vjp_graph = neg_vjp_graph, .vjp_fresh = true},
    [ADD_SCALAR] = {"add_scalar", 1, 0, add_scalar_forward, add_scalar_vjp, unary_sample, add_scalar_build,
     "tensor_add_scalar(a, s)", "y = a + s", "da = g", "",
     .vjp_graph = add_scalar_vjp_graph, .vjp_fresh = true},
    [MUL_SCALAR] = {"mul_scalar", 1, 0, mul_scalar_forward, mul_scalar_vjp, unary_sample, mul_scalar_build,
     "tensor_mul_scalar(a, s)", "y = a * s", "da = g * s", "",
     .vjp_graph = mul_scalar_vjp_graph, .vjp_fresh = true},
};
const int tg_ops_arith_count = N_ARITH_OPS;
_Static_assert(sizeof tg_ops_arith / sizeof tg_ops_arith[0] == N_ARITH_OPS,
               "tg_ops_arith: one entry per op of its enum");

#define OP(name) (&tg_ops_arith[name])
tensor *tensor_add(tensor *a, tensor *b) { return tg_ew_binary_apply(OP(ADD), a, b, NULL, 0); }
tensor *tensor_sub(tensor *a, tensor *b) { return tg_ew_binary_apply(OP(SUB), a, b, NULL, 0); }
tensor *tensor_mul(tensor *a, tensor *b) { return tg_ew_binary_apply(OP(MUL), a, b, NULL, 0); }
tensor *tensor_div(tensor *a, tensor *b) { return tg_ew_binary_apply(OP(DIV), a, b, NULL, 0); }
tensor *tensor_neg(tensor *a) { return tg_ew_unary_apply(OP(NEG), a, NULL, 0); }
tensor *tensor_add_scalar(tensor *a, double s) { return tg_ew_unary_apply(OP(ADD_SCALAR), a, &s, 1); }
tensor *tensor_mul_scalar(tensor *a, double s) { return tg_ew_unary_apply(OP(MUL_SCALAR), a, &s, 1); }
