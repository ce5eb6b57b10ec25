/* lenet5.c - LeNet-5 as ../shared/peers/lenet5_torch.py defines it:
 *   x [B,1,28,28] -> conv 1->6 5x5 pad 2 -> relu -> maxpool 2   [B,6,14,14]
 *                 -> conv 6->16 5x5     -> relu -> maxpool 2   [B,16,5,5]
 *                 -> flatten [B,400] -> linear 120 -> relu -> linear 84
 *                 -> relu -> linear 10                          [B,10]
 * The graph is one function of (params, x), so the training model and the
 * gradient checker (float64 copies of the parameters) run the same code.
 *
 * Each relu runs after its max-pool, on a quarter of the elements: relu is
 * monotone, so max(relu(a)) = relu(max(a)) and the two orders are the same
 * function; the gradient is the same too (a window whose maximum is <= 0
 * passes no gradient either way, and otherwise both pick the same first
 * maximum). tests/test_nn_lenet5.c checks that bit for bit. Each conv, its
 * pool and its relu are one node (tensor_conv2d_max_pool2d_relu: the same
 * bits as the three ops, without storing the convolution's whole output or
 * making a pass of its own for the relu). */
#include <string.h>

#include "../autograd/internal.h"

enum { C1W, C1B, C2W, C2B, F1W, F1B, F2W, F2B, F3W, F3B };

tensor *nn_lenet5_forward_with(tensor *const *p, tensor *x) {
    if (!p) {
        tg_error_set("nn_lenet5_forward_with: parameter list is NULL");
        return NULL;
    }
    conv2d_params pad2 = CONV2D_DEFAULT;
    pad2.padding[0] = pad2.padding[1] = 2;
    pool2d_params pool = nn_pool2d_make(2, 2, 0).p;
    tensor *h = tensor_conv2d_max_pool2d_relu(x, p[C1W], p[C1B], pad2, pool);
    h = tensor_conv2d_max_pool2d_relu(h, p[C2W], p[C2B], CONV2D_DEFAULT, pool);
    h = tensor_flatten(h, 1, -1); /* [B,16,5,5] -> [B,400], also for B = 0 */
    h = tensor_relu(tensor_linear(h, p[F1W], p[F1B]));
    h = tensor_relu(tensor_linear(h, p[F2W], p[F2B]));
    return tensor_linear(h, p[F3W], p[F3B]);
}

tensor *nn_lenet5_loss_with(tensor *const *params, tensor *x, tensor *labels) {
    return tensor_cross_entropy(nn_lenet5_forward_with(params, x), labels, NULL, 0.0,
                                REDUCTION_MEAN);
}

nn_lenet5 *nn_lenet5_new(dtype dt, uint64_t seed) {
    nn_lenet5 *net = tg_mem_calloc(sizeof *net);
    if (!net) return NULL;
    net->model = nn_model_new(dt, seed);
    conv2d_params pad2 = CONV2D_DEFAULT;
    pad2.padding[0] = pad2.padding[1] = 2;
    nn_model *m = net->model;
    if (!m || nn_conv2d_init(&net->c1, m, "c1", 1, 6, 5, pad2, true) ||
        nn_conv2d_init(&net->c2, m, "c2", 6, 16, 5, CONV2D_DEFAULT, true) ||
        nn_linear_init(&net->f1, m, "f1", 400, 120, true) ||
        nn_linear_init(&net->f2, m, "f2", 120, 84, true) ||
        nn_linear_init(&net->f3, m, "f3", 84, 10, true)) {
        nn_lenet5_free(net);
        return NULL;
    }
    return net;
}

void nn_lenet5_free(nn_lenet5 *net) {
    if (!net) return;
    nn_model_free(net->model);
    tg_mem_free(net);
}

tensor *nn_lenet5_forward(const nn_lenet5 *net, tensor *x) {
    if (!net || !net->model) {
        tg_error_set("%s: model is NULL", "nn_lenet5_forward");
        return NULL;
    }
    return nn_lenet5_forward_with(net->model->params, x);
}

tensor *nn_lenet5_loss(const nn_lenet5 *net, tensor *x, tensor *labels) {
    if (!net || !net->model) {
        tg_error_set("%s: model is NULL", "nn_lenet5_loss");
        return NULL;
    }
    return nn_lenet5_loss_with(net->model->params, x, labels);
}
