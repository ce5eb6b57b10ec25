/* conv.h - what ops/conv.c (the op: builder, registry entry, dispatch) shares
 * with ops/conv_kernels.c (the kernels, compiled once per ISA variant: see
 * isa.h; their bodies, plain C per element type, are in conv_kernels_t.h).
 * The kernels of each variant choose their own paths and scratch sizes,
 * sized for that variant's vector registers, so the geometry comes from the
 * variant's table too. */
#ifndef TAPEGRAD_CONV_H
#define TAPEGRAD_CONV_H

#include "../autograd/internal.h"
#include "isa.h"

/* The column layouts of stride 1 (conv_kernels.c explains them), and the
 * path of each direction: one enum per direction, chosen per shape by the
 * variant's geometry. The GEMM paths share the layout's numbering. */
typedef enum { CONV_PLAIN, CONV_WIDE, CONV_TIGHT } conv_layout;
typedef enum {
    CONV_FWD_PLAIN = CONV_PLAIN, /* im2col + SGEMM */
    CONV_FWD_WIDE = CONV_WIDE,   /* wide columns (long copies, im2col_wide) + SGEMM */
    CONV_FWD_TIGHT = CONV_TIGHT, /* tight columns (vector copies, im2col_tight) + SGEMM */
    CONV_FWD_DIRECT,             /* direct_fwd: pixels in the lanes (short contractions) */
    CONV_FWD_LANES,              /* fwd_cl: direct, output channels in the lanes */
} conv_fwd_path;
typedef enum {
    CONV_DW_PLAIN = CONV_PLAIN, /* SGEMM on the columns, the same three layouts */
    CONV_DW_WIDE = CONV_WIDE,
    CONV_DW_TIGHT = CONV_TIGHT,
    CONV_DW_DIRECT,             /* dw_wide: direct on the wide layout, pixels in the lanes */
    CONV_DW_LANES,              /* dw_direct: direct, output channels in the lanes */
} conv_dw_path;
typedef enum {
    CONV_DX_PLAIN = CONV_PLAIN, /* SGEMM, then the layout's col2im (col2im, _wide, _tight) */
    CONV_DX_WIDE = CONV_WIDE,
    CONV_DX_TIGHT = CONV_TIGHT,
} conv_dx_path;
enum { CONV_FWD_PATHS = CONV_FWD_LANES + 1, CONV_DW_PATHS = CONV_DW_LANES + 1,
       CONV_DX_PATHS = CONV_DX_TIGHT + 1 };

typedef struct {
    int64_t B, C, H, W, OC, KH, KW, OH, OW, G, OCg, K, P;
    int64_t sh, sw, ph, pw, dh, dw;
    bool wide, padded;   /* wide columns (stride 1); a padded copy of the image needed */
    bool tight;          /* stride 1, plain columns copied from the padded image by vectors */
    conv_fwd_path fwd;
    conv_dw_path dwp;
    conv_dx_path dx;
    bool dw_t;           /* dW parts computed transposed, dW^T (K, OC/G) */
    int64_t Hp, Wp, L;   /* padded image; columns per row of the GEMM (L = P if not wide) */
    /* conv2d_max_pool2d (pool): each image's (OC, OH, OW) output, in the
     * thread's scratch only, max-pooled 2x2 stride 2 to (OC, POH, POW); the
     * node's out is the pooled output and saved[1] the argmax taps */
    bool pool;
    int64_t POH, POW;
    /* conv2d_max_pool2d_relu (pool and relu): the pooled output through relu,
     * y < 0 -> 0, and the tap of each window whose pooled value is not > 0
     * (relu's gradient 0 there) CONV_TAP_DEAD */
    bool relu;
} conv_geom;

enum { CONV_CHUNK = 8 }; /* images per partial dW sum; fixed, not per thread */
enum { CONV_TAP_DEAD = 4 }; /* a window that takes no gradient (the unpool writes 0) */

/* One variant's kernels. fwd: y of node n on `threads` threads (n->saved[0]
 * holds that many scratch slots; with q->pool, y is pooled and n->saved[1]
 * takes the argmax taps, int32, which bwd reads to unpool n's gradient).
 * bwd: the gradients gin[] wants, with `scratch` threads' slots and `parts`
 * zeroed (per CONV_CHUNK images: dW's size, then OC) when dW or db is
 * wanted. [0] float32, [1] float64. */
typedef struct {
    /* x * w -> (B, OC, OH, OW); ip: stride, padding, dilation, groups */
    void (*geom)(const tensor *x, const tensor *w, int64_t OH, int64_t OW, const int64_t *ip,
                 conv_geom *q);
    int64_t (*slot)(const conv_geom *q); /* one thread's scratch, in elements */
    void (*fwd[2])(const tape_node *n, const conv_geom *q, int threads);
    void (*bwd[2])(const tape_node *n, const conv_geom *q, int threads, tensor *const *gin,
                   void *scratch, void *parts);
} conv_kernels;

extern const conv_kernels tg_conv_kernels_v2, tg_conv_kernels_v3, tg_conv_kernels_v4;

/* For tests: the paths conv2d takes for x * w with params p on variant v
 * (what the builder would choose); -1 with the error set for inputs conv2d
 * refuses. */
typedef struct {
    conv_fwd_path fwd;
    conv_dw_path dw;
    conv_dx_path dx;
} conv_paths;
int tg_conv2d_paths(const tensor *x, const tensor *w, conv2d_params p, isa_level v, conv_paths *out);

/* What conv.c shares with conv_grad.c (conv2d's two gradients as ops, run
 * on the same kernels): the variant by its number (a node's ip[8]), the
 * thread count of a loop over the images, OpenBLAS held to one thread while
 * they run, and conv2d's checks of x, w, b and p (0, or -1 with the error
 * set; *oh, *ow the output size). */
const conv_kernels *tg_conv_variant(int64_t v);
int tg_conv_threads(const conv_geom *q);
int tg_conv_blas_hold(int threads);
void tg_conv_blas_release(int threads, int was);
int tg_conv2d_validate(const tensor *x, const tensor *w, const tensor *b, conv2d_params p,
                       int64_t *oh, int64_t *ow);

#endif
