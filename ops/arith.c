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
     "unbroadcast(g) sums g over the dimensions that were broadcast"},
    [SUB] = {"sub", 2, 0, sub_forward, sub_vjp, binary_sample, sub_build, "tensor_sub(a, b)",
     "y = a - b (broadcast)", "da = unbroadcast(g), db = -unbroadcast(g)", ""},
    [MUL] = {"mul", 2, 0, mul_forward, mul_vjp, binary_sample, mul_build, "tensor_mul(a, b)",
     "y = a * b (broadcast)", "da = unbroadcast(g * b), db = unbroadcast(g * a)", ""},
    [DIV] = {"div", 2, 0, div_forward, div_vjp, div_sample, div_build, "tensor_div(a, b)",
     "y = a / b (broadcast)", "da = unbroadcast(g / b), db = unbroadcast(-g * a / b^2)",
     "undefined at b = 0; samples keep |b| >= 0.25"},
    [NEG] = {"neg", 1, 0, neg_forward, neg_vjp, unary_sample, neg_build, "tensor_neg(a)", "y = -a",
     "da = -g", ""},
    [ADD_SCALAR] = {"add_scalar", 1, 0, add_scalar_forward, add_scalar_vjp, unary_sample, add_scalar_build,
     "tensor_add_scalar(a, s)", "y = a + s", "da = g", ""},
    [MUL_SCALAR] = {"mul_scalar", 1, 0, mul_scalar_forward, mul_scalar_vjp, unary_sample, mul_scalar_build,
     "tensor_mul_scalar(a, s)", "y = a * s", "da = g * s", ""},
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
