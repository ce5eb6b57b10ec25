/* grad_ops.h - first-order vjps that are ops of their own (grad_ops.c), so
 * that a differentiable vjp (op_def.vjp_graph, tensor_grad with
 * create_graph) records one node where a composition of comparisons, masks
 * and products recorded several, and the next order differentiates that one
 * node. Internal: the callers are relu's and max_pool2d's graph vjps. Each
 * returns NULL with an error set on bad input. */
#ifndef TAPEGRAD_GRAD_OPS_H
#define TAPEGRAD_GRAD_OPS_H

#include "../autograd/internal.h"

/* relu's vjp: y = x > 0 ? g : 0, g and x of one shape and float dtype; no
 * gradient for x (the mask is constant away from x = 0). */
tensor *tg_relu_input_grad(tensor *g, tensor *x);

/* max_pool2d's vjp: g [B,C,OH,OW] scattered into a zero [B,C,H,W] at the
 * argmax offsets idx (int64, g's shape, each in [0, H W) of its plane):
 * y[b,c].flat[idx[b,c,o]] += g[b,c,o]. No gradient for idx. */
tensor *tg_max_pool2d_input_grad(tensor *g, tensor *idx, int64_t H, int64_t W);

/* Its adjoint: y[b,c,o] = u[b,c].flat[idx[b,c,o]], u [B,C,H,W] -> idx's shape. */
tensor *tg_max_pool2d_gather(tensor *u, tensor *idx);

#endif
