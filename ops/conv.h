/* conv.h - what ops/conv.c (the op: builder, registry entry, dispatch) shares
 * with ops/conv_kernels.c (the kernels, compiled once per ISA variant: see
 * isa.h). The kernels of each variant choose their own paths and scratch
 * sizes, sized for that variant's vector registers, so the geometry comes
 * from the variant's table too. */
#ifndef TAPEGRAD_CONV_H
#define TAPEGRAD_CONV_H

#include "../autograd/internal.h"
#include "isa.h"

typedef struct {
    int64_t B, C, H, W, OC, KH, KW, OH, OW, G, OCg, K, P;
    int64_t sh, sw, ph, pw, dh, dw;
    bool wide, padded;   /* wide columns (stride 1); a padded copy of the image needed */
    bool tight;          /* stride 1, plain columns copied from the padded image by vectors */
    bool dw_t;           /* dW parts computed transposed, dW^T = cols @ G^T */
    bool direct;         /* forward by the direct kernel, no columns */
    bool dw_direct;      /* dW by the direct kernel, output channels in the lanes */
    bool fwd_cl;         /* forward by the direct kernel, output channels in the lanes */
    bool dw_wide;        /* dW by the direct kernel on the wide layout, pixels in the lanes */
    int64_t Hp, Wp, L;   /* padded image; columns per row of the GEMM (L = P if not wide) */
} conv_geom;

enum { CONV_CHUNK = 8 }; /* images per partial dW sum; fixed, not per thread */

/* One variant's kernels. fwd: y of node n on `threads` threads (n->saved[0]
 * holds that many scratch slots). bwd: the gradients gin[] wants, with
 * `scratch` threads' slots and `parts` zeroed (per CONV_CHUNK images: dW's
 * size, then OC) when dW or db is wanted. [0] float32, [1] float64. */
typedef struct {
    void (*geom)(const tape_node *n, conv_geom *q);
    int64_t (*slot)(const conv_geom *q); /* one thread's scratch, in elements */
    void (*fwd[2])(const tape_node *n, const conv_geom *q, int threads);
    void (*bwd[2])(const tape_node *n, const conv_geom *q, int threads, tensor *const *gin,
                   void *scratch, void *parts);
} conv_kernels;

extern const conv_kernels conv_kernels_v2, conv_kernels_v3, conv_kernels_v4;

#endif
