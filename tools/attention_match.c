/* attention_match - runs the transformer layers on tensors written by
 * PyTorch, for scripts/torch_match_attention.py (make check-torch).
 *
 *   attention_match MODEL.safetensors DATA.safetensors OUT.safetensors
 *
 * MODEL holds, under PyTorch's state_dict names, a multi-head attention
 * "mha" (E = 16, 4 heads) and a pre-LN block "blk" (E = 128, 4 heads); DATA
 * holds x, w [2, 5, 16], pad (int64 [2, 1, 1, 5], nonzero = excluded key),
 * xb, wb [2, 64, 128]. Everything runs in float64. OUT gets
 *   y1 = mha(x) causal, and for L1 = sum(y1 * w): dx1, d_in_proj_weight1;
 *   y2 = mha(x) with the key-padding mask, not causal;
 *   y3 = blk(xb) (causal), and for L3 = sum(y3 * wb): dxb3, d_qkv_weight3.
 * Uses the public header only. */
#include <stdio.h>
#include <string.h>

#include "tapegrad.h"

static int fail(const char *what) {
    fprintf(stderr, "attention_match: %s: %s\n", what, tapegrad_error() ? tapegrad_error() : "");
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: attention_match MODEL.safetensors DATA.safetensors OUT.safetensors\n");
        return 2;
    }
    nn_model *m = nn_model_new(DTYPE_F64, 1);
    nn_multihead_attention mha;
    nn_transformer_block blk;
    if (!m || nn_multihead_attention_init(&mha, m, "mha", 16, 4, true, 0) ||
        nn_transformer_block_init(&blk, m, "blk", 128, 4, true, 0) || nn_model_load(m, argv[1]))
        return fail("model");
    const char *names[5] = {"x", "w", "pad", "xb", "wb"};
    tensor *in[5] = {tensor_zeros(DTYPE_F64, SHAPE(2, 5, 16)), tensor_zeros(DTYPE_F64, SHAPE(2, 5, 16)),
                     tensor_zeros(DTYPE_I64, SHAPE(2, 1, 1, 5)),
                     tensor_zeros(DTYPE_F64, SHAPE(2, 64, 128)),
                     tensor_zeros(DTYPE_F64, SHAPE(2, 64, 128))};
    if (nn_safetensors_load(argv[2], names, in, 5)) return fail("data");
    tensor *x = in[0], *xb = in[3];
    tensor_set_requires_grad(x, true);
    tensor_set_requires_grad(xb, true);

    tensor *y1 = nn_multihead_attention_forward(&mha, x, x, x, NULL);
    if (!y1 || tensor_backward(tensor_sum_all(tensor_mul(y1, in[1])))) return fail("mha causal");
    tensor *out[7];
    out[0] = tensor_clone(y1);
    out[1] = tensor_clone(x->grad);
    out[2] = tensor_clone(mha.in_proj_weight->grad);
    tape_reset();

    nn_multihead_attention open = mha; /* the same tensors, not causal */
    open.causal = false;
    tensor *y2 = nn_multihead_attention_forward(&open, x, x, x, in[2]);
    if (!y2) return fail("mha padded");
    out[3] = tensor_clone(y2);
    tape_reset();

    tensor *y3 = nn_transformer_block_forward(&blk, xb, NULL);
    if (!y3 || tensor_backward(tensor_sum_all(tensor_mul(y3, in[4])))) return fail("block");
    out[4] = tensor_clone(y3);
    out[5] = tensor_clone(xb->grad);
    out[6] = tensor_clone(blk.attn.in_proj_weight->grad);
    tape_reset();

    const char *out_names[7] = {"y1", "dx1", "d_in_proj_weight1", "y2", "y3", "dxb3", "d_qkv_weight3"};
    int rc = nn_safetensors_save(argv[3], out_names, out, 7) ? fail("save") : 0;
    for (int i = 0; i < 7; i++) tensor_free(out[i]);
    for (int i = 0; i < 5; i++) tensor_free(in[i]);
    nn_model_free(m);
    tape_release();
    return rc;
}
