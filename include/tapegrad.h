/*
 * tapegrad.h - the one public header of tapegrad, a tape-based reverse-mode
 * autograd engine in C.
 *
 * The idea in one paragraph: ops on tensors compute eagerly; every op with an
 * input that requires grad appends a node to the tape (op, inputs, output,
 * saved values). tensor_backward(loss) walks the tape in reverse, calls each
 * node's vjp and accumulates (+=) into the leaves' .grad.
 *
 * Ownership (stated once, holds everywhere):
 *   - Tensors made by tensor_new / tensor_zeros / tensor_from_data / ... are
 *     USER-OWNED: they live until tensor_free(). Parameters are user-owned.
 *   - Tensors returned by ops (tensor_add, tensor_conv2d, ...) are TAPE-OWNED:
 *     they live in the tape's arena until tape_reset(), which releases all of
 *     them at once. Never tensor_free() them; copy with tensor_clone() to keep.
 *   - A leaf's .grad is owned by the leaf and freed with it.
 *
 * Errors (the contract, see docs/design.md):
 *   - Functions returning tensor* return NULL on error; functions returning int
 *     return 0 on success and -1 on error. Nothing aborts or exits.
 *   - The first error's message is kept (tapegrad_error()) until
 *     tapegrad_error_clear(). An op given a NULL input while an error is
 *     pending returns NULL without a new message, so NULL propagates through a
 *     whole expression like a NaN and one check at the end suffices.
 *
 * Threads: the tape is process-global and not thread-safe; kernels use OpenMP
 * internally (tapegrad_set_threads()).
 */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden: what this header declares is
 * its whole exported interface, and nothing internal leaks into a program's
 * symbol namespace through the shared library. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define TENSOR_MAX_DIMS 8

typedef enum {
    DTYPE_F32 = 0, /* training */
    DTYPE_F64 = 1, /* checking */
    DTYPE_I64 = 2  /* labels and indices; never requires grad */
} dtype;

/* Shape literal helper: tensor_zeros(DTYPE_F32, SHAPE(2, 3)) expands to the
 * (ndim, shape) argument pair. */
#define SHAPE(...)                                                  \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),      \
        (const int64_t[]) { __VA_ARGS__ }

typedef struct tensor {
    dtype dtype;
    int ndim;                         /* 0 for a scalar */
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t size;                     /* number of elements */
    void *data;                       /* contiguous row-major, 64-byte aligned */
    struct tensor *grad;              /* same shape and dtype; NULL until reached */
    bool requires_grad;
    /* private to the library */
    bool tape_owned;
    bool is_grad;                     /* some tensor's .grad */
    bool fresh;                       /* a gradient buffer never written yet: garbage */
    uint32_t epoch;                   /* tape epoch of a tape-owned tensor (stale when old) */
    int32_t node;                     /* tape position of its producer, -1 for a leaf */
    int32_t mark;                     /* scratch for graph walks (checker) */
    const char *name;                 /* optional label used in reports; not owned */
} tensor;

/* ------------------------------------------------------------------ errors */
const char *tapegrad_error(void);      /* first pending message, or NULL */
void tapegrad_error_clear(void);

/* ------------------------------------------------------------------- rng */
/* PCG32 (O'Neill): 64-bit state, 32-bit output; the same seed gives the same
 * numbers on every machine. rng_normal uses Box-Muller. */
typedef struct rng {
    uint64_t state, inc;
} rng;
void rng_seed(rng *g, uint64_t seed, uint64_t stream);
uint32_t rng_next_u32(rng *g);
double rng_uniform(rng *g);                        /* [0, 1) with 53 bits */
double rng_normal(rng *g);                         /* N(0, 1) */
uint64_t rng_below(rng *g, uint64_t n);            /* uniform in [0, n) */

/* -------------------------------------------------- tensors (user-owned) */
/* All return a new USER-OWNED tensor (release with tensor_free) or NULL. */
tensor *tensor_new(dtype dt, int ndim, const int64_t *shape);      /* zeros */
tensor *tensor_zeros(dtype dt, int ndim, const int64_t *shape);
tensor *tensor_ones(dtype dt, int ndim, const int64_t *shape);
tensor *tensor_full(dtype dt, int ndim, const int64_t *shape, double value);
tensor *tensor_arange(dtype dt, double start, double stop, double step);
/* data holds size elements of type dt (float, double or int64_t); copied. */
tensor *tensor_from_data(dtype dt, int ndim, const int64_t *shape, const void *data);
/* values holds size doubles, converted to dt; handy in tests. */
tensor *tensor_from_doubles(dtype dt, int ndim, const int64_t *shape, const double *values);
tensor *tensor_rand(rng *g, dtype dt, int ndim, const int64_t *shape, double lo, double hi);
tensor *tensor_randn(rng *g, dtype dt, int ndim, const int64_t *shape, double mean, double std);
tensor *tensor_clone(const tensor *t);             /* data only; no grad, no tape link */
/* A USER-OWNED copy of t's values off the tape (no grad, no tape link, not
 * requiring grad), to carry a value across tape_reset(): a truncated-BPTT
 * state, a running metric. Release it with tensor_free. A tape-owned tensor
 * kept across a reset is stale and refused by every op and accessor. */
tensor *tensor_detach(const tensor *t);
tensor *tensor_to_dtype(const tensor *t, dtype dt);
void tensor_free(tensor *t);                       /* NULL is fine; tape-owned: ignored */

int tensor_set_requires_grad(tensor *t, bool on);  /* leaves only */
int tensor_zero_grad(tensor *t);                   /* sets .grad to zeros if present */
int tensor_copy_data(tensor *dst, const tensor *src); /* same shape; converts dtype */

/* Element access for tests and small programs (flat index or multi-index).
 * A stale tape tensor (computed before the last tape_reset) gives NaN / -1
 * and an error; so does tensor_item on a tensor of more than one element. */
double tensor_get(const tensor *t, int64_t flat);
int tensor_set(tensor *t, int64_t flat, double value);
double tensor_at(const tensor *t, const int64_t *index);
double tensor_item(const tensor *t);               /* the value of a 1-element tensor */
bool tensor_same_shape(const tensor *a, const tensor *b);
/* Writes "[2,3,4]" into buf; returns buf. */
char *tensor_shape_str(const tensor *t, char *buf, size_t len);
void tensor_print(FILE *f, const tensor *t, const char *label);

/* ------------------------------------------------------------- the tape */
void tape_reset(void);             /* releases every tape-owned tensor; keeps memory */
void tape_release(void);           /* tape_reset, then returns the tape's memory */
int64_t tape_size(void);           /* nodes recorded since the last reset */
void tape_no_grad_begin(void);     /* nests; nothing is recorded inside */
void tape_no_grad_end(void);
bool tape_is_recording(void);
/* Anomaly mode: check every forward output and every backward gradient for
 * NaN/Inf; the first one found becomes an error naming the node. */
void tape_set_anomaly(bool on);

/* Backward from a 1-element output (seed 1), or from any output with an
 * explicit upstream gradient of its shape. Accumulates into leaves' .grad. */
int tensor_backward(tensor *loss);
int tensor_backward_with(tensor *out, const tensor *grad_out);

/* ---------------------------------------------------------------- memory */
/* Bytes currently allocated by the process's allocator (jemalloc's
 * stats.allocated after flushing the calling thread's cache, so the figure
 * is exact; or the library's own count without jemalloc). */
int64_t tapegrad_allocated_bytes(void);
/* The ceiling on one allocation: a tensor (or arena chunk, at least 1 MiB)
 * larger than this is refused with "out of memory" naming the op, dtype and
 * shape, before the allocator is asked (under overcommit it would grant it
 * and the OOM killer would end the process when the pages are touched).
 * Default: the physical memory (sysconf). 0 restores the default. */
void tapegrad_set_alloc_limit(size_t bytes);
size_t tapegrad_alloc_limit(void);
void tapegrad_set_threads(int n);
int tapegrad_threads(void);
/* The instruction-set variant the hot kernels run: "v2" (x86-64-v2), "v3"
 * (AVX2 + FMA) or "v4" (AVX-512), the best this CPU supports unless the
 * environment variable TAPEGRAD_ISA names one. A TAPEGRAD_ISA the CPU cannot
 * run (or no variant) is refused, not replaced: then NULL with the reason as
 * the error (tapegrad_error()), and conv2d refuses to run with the same
 * message. Chosen once, on first use. */
const char *tapegrad_isa(void);

/* ================================================================== ops
 * Every op returns a TAPE-OWNED tensor, or NULL on error. Binary elementwise
 * ops broadcast like NumPy. Axes may be negative (counted from the end).
 * naxes == 0 with reductions means all elements. */

/* arithmetic */
tensor *tensor_add(tensor *a, tensor *b);
tensor *tensor_sub(tensor *a, tensor *b);
tensor *tensor_mul(tensor *a, tensor *b);
tensor *tensor_div(tensor *a, tensor *b);
tensor *tensor_neg(tensor *a);
tensor *tensor_add_scalar(tensor *a, double s);
tensor *tensor_mul_scalar(tensor *a, double s);

/* elementwise math */
tensor *tensor_exp(tensor *a);
tensor *tensor_log(tensor *a);
tensor *tensor_log2(tensor *a);
tensor *tensor_log10(tensor *a);
tensor *tensor_sqrt(tensor *a);
tensor *tensor_abs(tensor *a);
tensor *tensor_sign(tensor *a);
tensor *tensor_square(tensor *a);
tensor *tensor_reciprocal(tensor *a);
tensor *tensor_pow_scalar(tensor *a, double p);
tensor *tensor_pow(tensor *a, tensor *b);
tensor *tensor_clamp(tensor *a, double lo, double hi);
tensor *tensor_maximum(tensor *a, tensor *b);
tensor *tensor_minimum(tensor *a, tensor *b);
tensor *tensor_floor_divide(tensor *a, tensor *b);
tensor *tensor_remainder(tensor *a, tensor *b);
/* cond: any dtype, nonzero means true; broadcasts with a and b. */
tensor *tensor_where(tensor *cond, tensor *a, tensor *b);
/* 1-D tensor of the elements of a where mask (same shape) is nonzero. */
tensor *tensor_masked_select(tensor *a, tensor *mask);

/* masks. A mask is int64 0/1 (never requires grad); ops reading a mask take
 * any dtype, nonzero meaning true. Comparisons need a and b of one dtype
 * (int64 included) and broadcast; NaN compares unequal to everything. */
tensor *tensor_eq(tensor *a, tensor *b);
tensor *tensor_ne(tensor *a, tensor *b);
tensor *tensor_lt(tensor *a, tensor *b);
tensor *tensor_le(tensor *a, tensor *b);
tensor *tensor_gt(tensor *a, tensor *b);
tensor *tensor_ge(tensor *a, tensor *b);
tensor *tensor_logical_and(tensor *a, tensor *b);
tensor *tensor_logical_or(tensor *a, tensor *b);
tensor *tensor_logical_not(tensor *a);
/* x with value where mask (broadcast to x's shape) is true; no gradient there. */
tensor *tensor_masked_fill(tensor *x, tensor *mask, double value);

/* sequence ops: sin and cos, triangles of the last two dims (diagonal 0 is
 * the main one, > 0 above it), a running sum along an axis, and one-hot
 * encoding of an int64 index (values in [0, n)) as float32 or float64. */
tensor *tensor_sin(tensor *a);
tensor *tensor_cos(tensor *a);
tensor *tensor_tril(tensor *a, int64_t diagonal);
tensor *tensor_triu(tensor *a, int64_t diagonal);
tensor *tensor_cumsum(tensor *a, int axis);
tensor *tensor_one_hot(tensor *index, int64_t n, dtype dt); /* index's shape + [n] */
/* Values in order along axis (stable; NaN largest), with their positions in
 * *indices (int64, TAPE-OWNED) when indices is not NULL; gradient to the
 * values' origins. topk: the k largest (largest first) or smallest. */
tensor *tensor_sort(tensor *a, int axis, bool descending, tensor **indices);
tensor *tensor_topk(tensor *a, int64_t k, int axis, bool largest, tensor **indices);
/* n categories drawn from each row of probs ([C] or [R, C]; weights >= 0,
 * normalised by their sum) with uniforms from g: int64 [n] or [R, n]. */
tensor *tensor_multinomial(tensor *probs, int64_t n, bool replacement, rng *g);
/* The LSTM cell's elementwise part (ops/lstm.c): gates [B, 4H] are the
 * pre-activations in torch's order i, f, g, o; both results are [B, H].
 * lstm_cell_c: c = sigmoid(f) c_prev + sigmoid(i) tanh(g);
 * lstm_cell_h: h = sigmoid(o) tanh(c), c the new cell state. */
tensor *tensor_lstm_cell_c(tensor *gates, tensor *c_prev);
tensor *tensor_lstm_cell_h(tensor *gates, tensor *c);
/* The whole recurrence of a one-layer LSTM as one node: gi [T, B, 4H] ([B, T,
 * 4H] with batch_first) the input projections with both biases, w_hh
 * [4H, H], h0 and c0 [B, H]; per step gates = gi_t + h w_hh^T and the two
 * cell ops. Returns y [T, B, 2H] ([B, T, 2H]): h_t | c_t along the last dim. */
tensor *tensor_lstm_seq(tensor *gi, tensor *w_hh, tensor *h0, tensor *c0, bool batch_first);

/* activations */
tensor *tensor_relu(tensor *a);
tensor *tensor_leaky_relu(tensor *a, double slope);
tensor *tensor_prelu(tensor *a, tensor *slope); /* slope [C] or [1], C = axis 1 */
tensor *tensor_sigmoid(tensor *a);
tensor *tensor_tanh(tensor *a);
tensor *tensor_softmax(tensor *a, int axis);
tensor *tensor_log_softmax(tensor *a, int axis);
tensor *tensor_gelu(tensor *a, bool tanh_approx);
tensor *tensor_silu(tensor *a);
tensor *tensor_mish(tensor *a);
tensor *tensor_elu(tensor *a, double alpha);
tensor *tensor_selu(tensor *a);
tensor *tensor_softplus(tensor *a, double beta, double threshold);
tensor *tensor_hardtanh(tensor *a, double lo, double hi);

/* reductions */
tensor *tensor_sum(tensor *a, const int *axes, int naxes, bool keepdim);
tensor *tensor_mean(tensor *a, const int *axes, int naxes, bool keepdim);
tensor *tensor_max(tensor *a, const int *axes, int naxes, bool keepdim);
tensor *tensor_min(tensor *a, const int *axes, int naxes, bool keepdim);
tensor *tensor_var(tensor *a, const int *axes, int naxes, int correction, bool keepdim);
tensor *tensor_std(tensor *a, const int *axes, int naxes, int correction, bool keepdim);
tensor *tensor_logsumexp(tensor *a, const int *axes, int naxes, bool keepdim);
tensor *tensor_argmax(tensor *a, int axis, bool keepdim); /* DTYPE_I64, no grad */
tensor *tensor_sum_all(tensor *a);
tensor *tensor_mean_all(tensor *a);

/* shape and matrix */
tensor *tensor_matmul(tensor *a, tensor *b);   /* 2-D and batched, batch dims broadcast */
tensor *tensor_transpose(tensor *a, int d0, int d1);
tensor *tensor_permute(tensor *a, const int *perm);
tensor *tensor_reshape(tensor *a, int ndim, const int64_t *shape); /* one -1 allowed */
tensor *tensor_flatten(tensor *a, int start_dim, int end_dim);
tensor *tensor_concat(tensor *const *ts, int n, int axis);
tensor *tensor_stack(tensor *const *ts, int n, int axis);
tensor *tensor_narrow(tensor *a, int axis, int64_t start, int64_t length);
tensor *tensor_slice(tensor *a, int axis, int64_t start, int64_t stop, int64_t step);
tensor *tensor_index_select(tensor *a, int axis, tensor *index); /* index: I64 1-D */
tensor *tensor_gather(tensor *a, int axis, tensor *index);       /* index: I64, a's ndim */
/* pads: 2*ndim values, (before, after) per dim from dim 0; constant value. */
tensor *tensor_pad(tensor *a, const int64_t *pads, double value);
tensor *tensor_expand(tensor *a, int ndim, const int64_t *shape);
tensor *tensor_dot(tensor *a, tensor *b);      /* 1-D . 1-D -> scalar */
tensor *tensor_outer(tensor *a, tensor *b);    /* [M] x [N] -> [M,N] */

/* layers as functions. x is (B, C, H, W) for 2-D layers. */
tensor *tensor_linear(tensor *x, tensor *w, tensor *b); /* x [.., IN], w [OUT, IN], b [OUT] or NULL */
typedef struct conv2d_params {
    int stride[2], padding[2], dilation[2], groups;
} conv2d_params;
#define CONV2D_DEFAULT ((conv2d_params){{1, 1}, {0, 0}, {1, 1}, 1})
tensor *tensor_conv2d(tensor *x, tensor *w, tensor *b, conv2d_params p); /* w [OC, C/groups, KH, KW] */
/* conv2d's two gradients as ops (torch.nn.grad.conv2d_input / conv2d_weight):
 * for y = conv2d(x, w, b, p) and an upstream gradient g of y's shape
 * (B, OC, OH, OW), the gradient of x, (B, C, in_h, in_w) with C = w's dim 1
 * times groups, and of w, (OC, C/groups, kh, kw). Each is linear in both its
 * inputs and differentiable again (its gradients are conv2d and the other),
 * so higher-order gradients through conv2d run conv2d's own kernels.
 * in_h, in_w (kh, kw) name the size of x (w) among those conv2d maps to g's. */
tensor *tensor_conv2d_input_grad(tensor *g, tensor *w, int64_t in_h, int64_t in_w, conv2d_params p);
tensor *tensor_conv2d_weight_grad(tensor *x, tensor *g, int64_t kh, int64_t kw, conv2d_params p);
typedef struct pool2d_params {
    int kernel[2], stride[2], padding[2];
    bool count_include_pad; /* avg_pool2d only */
} pool2d_params;
tensor *tensor_max_pool2d(tensor *x, pool2d_params p);
tensor *tensor_avg_pool2d(tensor *x, pool2d_params p);
/* tensor_max_pool2d(tensor_conv2d(x, w, b, cp), pp): the same values and
 * gradients, bit for bit. For a 2x2 stride-2 unpadded pool (LeNet's) it is one
 * node that pools each image's convolution output while it is in cache and
 * never stores the whole; any other pool is the two ops. */
tensor *tensor_conv2d_max_pool2d(tensor *x, tensor *w, tensor *b, conv2d_params cp, pool2d_params pp);
/* tensor_relu(tensor_conv2d_max_pool2d(x, w, b, cp, pp)), bit for bit: for a
 * 2x2 stride-2 unpadded pool one node that applies the relu to each image's
 * pooled output as it is written (LeNet-5's layers); any other pool is the
 * three ops. */
tensor *tensor_conv2d_max_pool2d_relu(tensor *x, tensor *w, tensor *b, conv2d_params cp,
                                      pool2d_params pp);
/* Resampling and the convolutions beside conv2d, with PyTorch's shapes,
 * parameters and index formulas (docs/ops.md has the formulas).
 * adaptive_avg_pool2d: x (B, C, H, W) -> (B, C, out_h, out_w), output cell
 * (i, j) the mean of rows floor(i H / out_h) .. ceil((i + 1) H / out_h) - 1,
 * likewise columns (F.adaptive_avg_pool2d(x, (out_h, out_w))). */
tensor *tensor_adaptive_avg_pool2d(tensor *x, int64_t out_h, int64_t out_w);
typedef enum { UPSAMPLE_NEAREST = 0, UPSAMPLE_BILINEAR = 1 } upsample_mode;
/* F.interpolate(x, size, scale_factor, mode, align_corners) on (B, C, H, W):
 * either size (both > 0) with scale_factor {0, 0}, or, with size {0, 0},
 * scale_factor (both > 0; out = floor(H scale_factor[0]), likewise W, and the
 * source coordinates use 1 / scale_factor as PyTorch does when
 * recompute_scale_factor is not set). Bilinear supports both align_corners
 * settings: true maps the corner pixels' centres onto each other (source row
 * i (H - 1) / (out_h - 1)), false (PyTorch's default) maps pixel areas
 * (source row (i + 0.5) s - 0.5, clipped at 0; s = 1 / scale_factor[0] when
 * given, else H / out_h, likewise columns). Nearest is PyTorch's
 * 'nearest' (source row floor(i s)), not 'nearest-exact'; align_corners must
 * be false for it (PyTorch refuses it too). The results are tape-owned. */
typedef struct upsample_params {
    int64_t size[2];
    double scale_factor[2];
    upsample_mode mode;
    bool align_corners;
} upsample_params;
tensor *tensor_upsample(tensor *x, upsample_params p);
/* conv1d: x (B, C, L), w (OC, C/groups, K), b (OC) or NULL -> (B, OC, OL),
 * OL = (L + 2 padding - dilation (K - 1) - 1) / stride + 1 (F.conv1d). */
typedef struct conv1d_params {
    int stride, padding, dilation, groups;
} conv1d_params;
#define CONV1D_DEFAULT ((conv1d_params){1, 0, 1, 1})
tensor *tensor_conv1d(tensor *x, tensor *w, tensor *b, conv1d_params p);
/* conv_transpose2d (F.conv_transpose2d, the input gradient of conv2d):
 * x (B, C, H, W), w (C, OC/groups, KH, KW), b (OC) or NULL -> (B, OC, OH, OW),
 * OH = (H - 1) stride - 2 padding + dilation (KH - 1) + output_padding + 1,
 * likewise OW; output_padding must be below the stride or the dilation. */
typedef struct conv_transpose2d_params {
    int stride[2], padding[2], output_padding[2], dilation[2], groups;
} conv_transpose2d_params;
#define CONV_TRANSPOSE2D_DEFAULT ((conv_transpose2d_params){{1, 1}, {0, 0}, {0, 0}, {1, 1}, 1})
tensor *tensor_conv_transpose2d(tensor *x, tensor *w, tensor *b, conv_transpose2d_params p);
/* Inverted dropout: kept values scaled by 1/(1-p); the mask is drawn from g
 * and saved for backward. training == false returns x unchanged (copy). */
tensor *tensor_dropout(tensor *x, double p, bool training, rng *g);
tensor *tensor_dropout2d(tensor *x, double p, bool training, rng *g); /* whole channels */
/* training: batch statistics, and running_mean / running_var (user-owned,
 * [C], may be NULL) are updated in place with momentum (no grad).
 * eval: normalises with the running statistics. weight / bias may be NULL. */
tensor *tensor_batch_norm(tensor *x, tensor *weight, tensor *bias, tensor *running_mean,
                          tensor *running_var, bool training, double momentum, double eps);
/* Normalises over the last normalized_ndim dims; weight/bias of that shape or NULL. */
tensor *tensor_layer_norm(tensor *x, int normalized_ndim, tensor *weight, tensor *bias, double eps);
tensor *tensor_embedding(tensor *index, tensor *weight); /* index I64 any shape, weight [N, D] */
/* Scaled dot-product attention, one fused op: softmax(q k^T / sqrt(D)) v
 * over the allowed keys, q [.., Tq, D], k [.., Tk, D], v [.., Tk, Dv] with the
 * same batch dims -> [.., Tq, Dv]. mask (NULL or any dtype, nonzero =
 * excluded) broadcasts to [.., Tq, Tk]; causal excludes key j > query i
 * (top-left aligned, as PyTorch's is_causal). dropout_p in [0, 1) drops
 * attention weights with a mask drawn from g (NULL allowed when dropout_p is
 * 0). A query with no allowed key gets a zero row and zero gradients. */
tensor *tensor_scaled_dot_product_attention(tensor *q, tensor *k, tensor *v, tensor *mask,
                                            bool causal, double dropout_p, rng *g);
/* Multi-head self-attention on heads packed along the last dim, as a
 * [.., T, E] x [E, 3E] projection gives them: qkv [.., T, 3E] = q | k | v,
 * each of n_heads heads of Dh = E / n_heads side by side -> [.., T, E], the
 * heads merged. The same values and gradients as splitting the heads
 * ([.., H, T, Dh]), scaled_dot_product_attention and merging them, without
 * the copies; mask broadcasts to the scores [.., H, T, T]; causal, dropout_p
 * and g as there. */
tensor *tensor_sdpa_heads(tensor *qkv, int64_t n_heads, tensor *mask, bool causal, double dropout_p,
                          rng *g);

/* losses */
typedef enum { REDUCTION_MEAN = 0, REDUCTION_SUM = 1, REDUCTION_NONE = 2 } reduction;
tensor *tensor_mse_loss(tensor *pred, tensor *target, reduction r);
tensor *tensor_l1_loss(tensor *pred, tensor *target, reduction r);
tensor *tensor_huber_loss(tensor *pred, tensor *target, double delta, reduction r);
tensor *tensor_smooth_l1_loss(tensor *pred, tensor *target, double beta, reduction r);
tensor *tensor_bce_loss(tensor *prob, tensor *target, tensor *weight, reduction r);
tensor *tensor_bce_with_logits(tensor *logits, tensor *target, tensor *pos_weight, reduction r);
/* logits [N, C] (or [N, C, d...]), labels I64 [N] (or [N, d...]); weight [C] or NULL. */
tensor *tensor_cross_entropy(tensor *logits, tensor *labels, tensor *weight,
                             double label_smoothing, reduction r);
tensor *tensor_nll_loss(tensor *logp, tensor *labels, tensor *weight, reduction r);
tensor *tensor_kl_div(tensor *logp, tensor *target, reduction r); /* target: probabilities */
/* mean/sum of max(0, margin - y * x), y in {-1, +1}. */
tensor *tensor_hinge_loss(tensor *x, tensor *y, double margin, reduction r);
/* sigmoid focal loss from logits (Lin et al.): alpha < 0 disables weighting. */
tensor *tensor_focal_loss(tensor *logits, tensor *target, double alpha, double gamma, reduction r);
/* x1, x2 [N, D], y [N] in {-1, +1}. */
tensor *tensor_cosine_embedding_loss(tensor *x1, tensor *x2, tensor *y, double margin, reduction r);

/* ============================================================ registry
 * Every op is one entry: enumerate with op_count()/op_at(), look up by name.
 * The entry's layout is private (autograd/registry.h); these accessors are
 * what users and tools need. */
typedef struct op_def op_def;
int op_count(void);
const op_def *op_at(int i);
const op_def *op_find(const char *name);
const char *op_name(const op_def *op);
int op_arity(const op_def *op);
const char *op_signature(const op_def *op);
const char *op_formula_forward(const op_def *op);
const char *op_formula_gradient(const op_def *op);
const char *op_notes(const op_def *op);

/* ------------------------------------------------------------ custom ops
 * An op of the user's own records on the tape like a built-in one and joins
 * the registry: op_count/op_at/op_find enumerate it after the built-ins, so
 * the registry-wide checks, the docs generator and the checker's
 * localisation see it. docs/custom_ops.md has a worked example
 * (examples/custom_op.c).
 *
 * forward and vjp see plain tensors (contiguous, of one float dtype: float64
 * when checked, float32 when training, so both must be handled; tensor_get
 * and tensor_set do). forward must be pure: the checker replays it on
 * perturbed inputs, and a replay must compute the same function. vjp must
 * ADD (+=) J_i^T gout into every non-NULL gin[i] (NULL: input i wants no
 * gradient) and write nothing else. gradcheck_op() checks all of that. */
#define OP_MAX_INPUTS 8
#define OP_MAX_PARAMS 4

/* One sample case for the checker. The inputs are float64 (or int64 for
 * inputs declared without gradient) tensors the case OWNS: the checker frees
 * them. Values must be seeded from the rng given, non-uniform, and keep a
 * margin from every kink and domain edge. */
typedef struct op_case {
    char name[96];                    /* "x[3,4]" */
    int n_inputs;
    tensor *inputs[OP_MAX_INPUTS];
    uint32_t no_grad_mask;            /* inputs not to differentiate in this case */
    double params[OP_MAX_PARAMS];     /* passed to tensor_apply */
} op_case;

typedef struct op_spec {
    const char *name;                 /* unique in the registry (copied) */
    int arity;                        /* 1..OP_MAX_INPUTS tensor inputs */
    uint32_t no_grad_inputs;          /* bit i: input i never gets a gradient (may be int64) */
    int n_params;                     /* 0..OP_MAX_PARAMS scalars given to tensor_apply */
    /* The output's shape (NULL: the shape of input 0); 0, or -1 to refuse
     * the inputs (tensor_apply then fails naming the op). */
    int (*shape)(tensor *const *in, int n, const double *params, int *ndim, int64_t *shape);
    void (*forward)(tensor *const *in, int n, const double *params, tensor *out);
    void (*vjp)(tensor *const *in, int n, const double *params, const tensor *out,
                const tensor *gout, tensor *const *gin);
    /* Case k (0, 1, ...): fill c and return 0; 1 when there is no case k;
     * -1 on error. At least one case is needed by gradcheck_op. */
    int (*sample)(int k, rng *g, op_case *c);
    /* For the docs and reports; pointers kept, so literals or storage that
     * outlives the process's use of the op. */
    const char *signature, *formula_forward, *formula_gradient, *notes;
    /* Optional: the vjp once more, written with the library's differentiable
     * ops, for tensor_grad with create_graph (gradients of gradients,
     * tensor_hvp, gradgradcheck). For each input i with want[i], set gin[i]
     * to the gradient of input i (its shape and dtype) computed by ops from
     * g (the upstream gradient, a tape tensor of the output's shape), the
     * inputs and out (the node's output, itself on the tape: use it to
     * reuse the forward's value), so that the result is recorded and can be
     * differentiated again. gin[i] is a new value (not accumulated);
     * params as for forward. Returns 0, or -1 (an op's error pending, or
     * none: the caller names the op). NULL: the op is first order only, and
     * create_graph through it is refused naming it. */
    int (*vjp_graph)(tensor *const *in, int n, const double *params, tensor *out, tensor *g,
                     const bool *want, tensor **gin);
} op_spec;

/* Registers spec (copied) and returns its handle, valid until the process
 * ends (the registry owns it); NULL with an error for a NULL or incomplete
 * spec or a name already taken. */
const op_def *op_register(const op_spec *spec);
/* Applies a registered custom op: returns its output, TAPE-OWNED like every
 * op's, recorded when an input requires grad. params: op's n_params values
 * (NULL when it has none). NULL with an error naming the op on bad input. */
tensor *tensor_apply(const op_def *op, tensor *const *inputs, int n, const double *params);

/* What gradcheck_op found: passed, or the first failure in one sentence.
 * The message belongs to the report: release it with op_check_report_free()
 * (also before reusing the report). */
typedef struct op_check_report {
    bool passed;
    int cases;                        /* sample cases run */
    int nodes;                        /* tg_op_check_contract: nodes whose vjp was checked */
    double f32_worst;                 /* float32 check: largest error / its bound */
    char *message;                    /* the first failure, whole; NULL when passed */
} op_check_report;
/* Frees the report's message and sets it to NULL; NULL and a zeroed or
 * already freed report are fine. */
void op_check_report_free(op_check_report *r);

/* Checks one op (built-in or custom) the way the test suite checks the
 * built-ins, and more, on each of its sample cases: the primal equals a
 * re-run (a replay of its node and a fresh call); the vjp matches central
 * differences (gradcheck with opt, NULL for its defaults); declared no-grad
 * inputs get no gradient; and the vjp contract: it accumulates (+=, twice
 * gives twice), writes nothing but gradient buffers, is deterministic, and
 * gives an input the same gradient alone as with the others (float64 and
 * float32); and float32 agrees with float64 on the same values. Returns 0
 * when the checks ran (verdict in report), -1 on error. */
struct gradcheck_options;
int gradcheck_op(const op_def *op, const struct gradcheck_options *opt, op_check_report *report);
/* (The report is overwritten without being read; on -1 it holds no message.) */

/* ============================================================ checker
 * Central differences in float64 against the tape's vjp (docs/checker.md). */
typedef tensor *(*gradcheck_fn)(tensor *const *inputs, int n, void *ctx);

/* How a perturbation is evaluated. Replay re-runs only the recorded nodes
 * downstream of the perturbed input; it is exact only when fn depends on its
 * inputs through the tape alone (no no-grad scope, tensor_item, tensor_get or
 * edited data carrying an input's value). */
typedef enum {
    GRADCHECK_REPLAY_AUTO = 0,   /* verify replay against fresh calls of fn at a few
                                    perturbed points; an input where they disagree is
                                    checked by calling fn for every perturbation */
    GRADCHECK_REPLAY_ALWAYS = 1, /* trust replay without verifying it */
    GRADCHECK_REPLAY_NEVER = 2   /* call fn for every perturbation */
} gradcheck_replay;

/* The difference formula, with h = eps. */
typedef enum {
    GRADCHECK_CENTRAL = 0,       /* (L(x+h) - L(x-h)) / 2h: error h^2 f'''/6, 2 evaluations */
    GRADCHECK_FIVE_POINT = 1     /* (8(L(x+h) - L(x-h)) - (L(x+2h) - L(x-2h))) / 12h:
                                    error h^4 f'''''/30, 4 evaluations */
} gradcheck_stencil;

typedef struct gradcheck_options {
    double eps, atol, rtol;      /* defaults 1e-6, 1e-5, 1e-3 */
    uint64_t seed;               /* upstream gradient and all probes */
    bool fast;                   /* u^T J v probes instead of every element */
    int probes;                  /* probes per input: fast mode, localisation and replay
                                    verification (default 3) */
    uint32_t check_mask;         /* bit i: check input i (default all: 0 means all) */
    bool localize;               /* on failure name the first wrong node */
    gradcheck_replay replay;     /* default GRADCHECK_REPLAY_AUTO */
    gradcheck_stencil stencil;   /* default GRADCHECK_CENTRAL */
} gradcheck_options;
gradcheck_options gradcheck_defaults(void);

typedef struct gradcheck_input_report {
    bool checked, passed, vacuous;
    double max_abs_err, max_rel_err;
    int64_t worst_index;           /* flat index of the worst element */
    double worst_analytic, worst_numeric;
    bool rerun;                    /* checked by calling fn for every perturbation */
    bool off_tape;                 /* replay verification found that fn depends on this
                                      input off the tape */
    int off_tape_node;             /* where the off-tape value enters (tape position), or -1 */
} gradcheck_input_report;

#define GRADCHECK_MAX_INPUTS 32
/* Filled by gradcheck(). The two strings belong to the report: release them
 * with gradcheck_report_free() (also before reusing the report for another
 * check). */
typedef struct gradcheck_report {
    bool passed;
    int n_inputs;
    gradcheck_input_report input[GRADCHECK_MAX_INPUTS];
    double max_abs_err, max_rel_err;
    double seconds;
    int64_t evaluations;           /* evaluations of the loss for differences (replays or re-runs) */
    int64_t fn_calls;              /* calls of fn: recording, replay verification, re-runs */
    bool fn_nondeterministic;      /* fn called twice at the same inputs gave different outputs */
    /* localisation (when options.localize and the check failed) */
    bool localized;
    int bad_node;                  /* tape position */
    char *bad_node_desc;           /* "conv2d [2,6,14,14] * [16,6,5,5]"; NULL unless localized */
    char *message;                 /* the whole verdict, never cut: settings, causes, notes */
} gradcheck_report;

/* Returns 0 when the check ran (see report->passed), -1 on error (then the
 * report holds no strings). The inputs are copied to float64; the caller keeps
 * ownership of inputs. The report is overwritten without being read: free a
 * previous report's strings first. */
int gradcheck(gradcheck_fn fn, void *ctx, tensor *const *inputs, int n,
              const gradcheck_options *opt, gradcheck_report *report);
/* Frees the report's strings and sets them to NULL; NULL and a zeroed or
 * already freed report are fine. */
void gradcheck_report_free(gradcheck_report *r);
void gradcheck_report_print(FILE *f, const gradcheck_report *r);

/* A model checked as it is (nn/gradcheck_model.c). Its parameters and
 * buffers are swapped in place for float64 copies (its layers keep pointing
 * at the same tensors), fn - the user's own loss code, reaching the model
 * through ctx - is called with float64 copies of the batch, every parameter
 * and batch[0] (the input) are checked, and the model is restored bit for
 * bit afterwards (dtype, data, grad, requires_grad, its rng). The report
 * numbers its inputs: parameters in registration order, then buffers, then
 * the batch; opt->check_mask selects in that numbering (0: every parameter
 * and batch[0]). Float batch tensors after batch[0] (targets, masks) are
 * converted to float64 and not checked; int64 ones are passed as they are.
 * Refused with a message: a NULL model or fn, more than GRADCHECK_MAX_INPUTS
 * tensors in all, a tape-owned batch tensor (the check resets the tape). The
 * caller keeps ownership of everything; free the report's strings as for
 * gradcheck(). Returns 0 when the check ran, -1 on error. */
struct nn_model;
int gradcheck_model(struct nn_model *m, gradcheck_fn fn, void *ctx, tensor *const *batch,
                    int n_batch, const gradcheck_options *opt, gradcheck_report *report);

/* ========================================================== higher order
 * Gradients as values (docs/design.md, "Gradients of gradients").
 *
 * tensor_grad: the gradients of out with respect to inputs[0..n), written to
 * grads[0..n) as TAPE-OWNED tensors (released by tape_reset, like any op
 * output). grad_out is the upstream gradient, of out's shape and dtype; NULL
 * means 1 for a 1-element out, as tensor_backward. No .grad is changed: not
 * the inputs', not other leaves', not the intermediates' (tensor_backward's
 * accumulation into .grad stays what an optimiser reads). An input may be a
 * leaf or an intermediate result; each must require grad and be in out's
 * graph.
 *   create_graph false: the kernel vjps, the numbers tensor_backward would
 *     accumulate; the results are constants (they do not require grad).
 *   create_graph true: every node's vjp is built from differentiable ops and
 *     recorded, so the results require grad (where they depend on an input)
 *     and any function of them can be differentiated again, to any order. An
 *     op without a differentiable vjp is refused up front, naming it. Inside
 *     a no-grad scope nothing can be recorded: create_graph is then ignored
 *     and the kernel vjps give the (same) numbers.
 * Returns 0, or -1 with an error (grads all NULL). */
int tensor_grad(tensor *out, const tensor *grad_out, tensor *const *inputs, int n,
                bool create_graph, tensor **grads);
/* Hessian-vector products of a 1-element out: hv[k] = sum_j H_kj v[j], where
 * H_kj = d^2 out / d inputs[k] d inputs[j], v[k] of inputs[k]'s shape and
 * dtype. By double backward: the gradient is recorded (create_graph), then
 * its inner product with v differentiated. hv[k] are tape-owned constants.
 * Returns 0 or -1 with an error. */
int tensor_hvp(tensor *out, tensor *const *inputs, int n, tensor *const *v, tensor **hv);
/* Whether op has a differentiable vjp (create_graph goes through it). */
bool op_differentiable_twice(const op_def *op);
/* The checker one order up (docs/checker.md): fn's first-order gradients
 * (for a non-scalar output, against a seeded random upstream gradient) are
 * taken with create_graph and flattened into one vector, and gradcheck
 * checks that vector's vjp - the second-order vjp, by backpropagation
 * through the recorded gradients - against central differences of the
 * first-order gradients, in float64, with the options and report of
 * gradcheck. On failure each node of fn's graph has its differentiable vjp
 * compared with its kernel vjp, and the first that disagrees is named
 * (report->localized, bad_node, bad_node_desc). A function linear in every
 * checked input has constant gradients: nothing to check, reported as
 * vacuous. Returns 0 when the check ran, -1 on error. */
int gradgradcheck(gradcheck_fn fn, void *ctx, tensor *const *inputs, int n,
                  const gradcheck_options *opt, gradcheck_report *report);
/* For each sample case of op, its differentiable vjp against its kernel vjp
 * (float64, random upstream gradient, the registry's tight tolerances).
 * Returns 0 when the check ran (verdict in report), -1 on error (op without
 * a differentiable vjp, a failing sample). */
int gradcheck_op_graph_vjp(const op_def *op, uint64_t seed, op_check_report *report);

/* ======================================================= recomputation
 * Gradient checkpointing (docs/design.md, "Recomputation"): memory for
 * compute. tape_checkpoint(fn, ctx, inputs, n) calls fn(ctx, inputs, n)
 * with the tape recording, keeps its result and drops everything else the
 * segment made (its intermediates and saved tensors go back to the arena),
 * and records ONE node for the whole segment. When backward reaches that
 * node it calls fn again on the same inputs, recording, backpropagates the
 * upstream gradient through what fn recorded, into the inputs and into every
 * tensor fn reads from elsewhere (parameters through ctx: their .grad
 * accumulates as usual), and drops the recomputed intermediates again. The
 * gradients are bit-identical to the plain call's: the same kernels add into
 * the same buffers in the same order. The generators fn draws from
 * (dropout's) are noted when it first runs and rewound when it runs again,
 * then put back, so a recomputed dropout draws the same mask and the draws
 * after the step are the plain run's.
 *
 * A function, not a begin/end pair: recomputing means running the segment's
 * code again, which only a function the library can call allows.
 *
 * fn must compute the same graph from the same values each call: no
 * tape_reset, no edits of the data it reads. ctx, what fn reads through it
 * and the generators it draws from must outlive the step (a generator fn
 * seeds itself on its own stack is fine). It must return a tensor it
 * computed (not one of its inputs); a result that does not require grad
 * makes the call a plain one.
 * In a no-grad scope tape_checkpoint is fn(ctx, inputs, n). Checkpoints
 * nest; tensor_grad with create_graph goes through them (the segment is
 * recomputed and stays on the tape, as its gradient's graph needs it). The
 * result is TAPE-OWNED. The gradient of a checkpoint's output (its .grad) is
 * released once backward has gone through the segment: read gradients of
 * the output with tensor_grad. Intermediates fn made are stale after the
 * call. Returns NULL with an error naming tape_checkpoint on bad arguments or
 * when fn fails (the tape is left as it was before the call); a failure
 * while recomputing is tensor_backward's error, naming the checkpoint. */
typedef tensor *(*tape_checkpoint_fn)(void *ctx, tensor *const *inputs, int n);
tensor *tape_checkpoint(tape_checkpoint_fn fn, void *ctx, tensor *const *inputs, int n);
/* A segment of several results: fn sets outputs[0..m) and returns 0, or
 * returns -1 with an error. The results must share one float dtype and be
 * distinct; the node's output is their elements end to end, and each
 * outputs[i] (TAPE-OWNED, of the result's shape) is a reshaped narrow of
 * it. Returns 0, or -1 with an error naming tape_checkpoint_multi (outputs
 * all NULL). */
#define TAPE_CHECKPOINT_MAX_OUTPUTS 64
typedef int (*tape_checkpoint_multi_fn)(void *ctx, tensor *const *inputs, int n, tensor **outputs,
                                        int m);
int tape_checkpoint_multi(tape_checkpoint_multi_fn fn, void *ctx, tensor *const *inputs, int n,
                          tensor **outputs, int m);
/* The most bytes the tape held at once since the last tape_reset(): its
 * arena (op outputs, saved tensors, gradients of intermediates) and the
 * checkpoints' gradient buffers. Read it before the reset that ends a step. */
int64_t tapegrad_tape_peak_bytes(void);

/* ==== nn ==== */
/* Layers, models, initialisers, optimisers, data, checkpoints and
 * gradient-flow reports, built on the ops above (nn/). Prefixes: nn_ for
 * models, layers, data and checkpoints; optim_ for optimisers. */

/* ------------------------------------------------------------ models
 * An nn_model holds named tensors in PyTorch state_dict order: parameters
 * (requires_grad, updated by optimisers) and buffers (running statistics).
 * The model OWNS every tensor added to it and frees them in nn_model_free.
 * Layers keep borrowed pointers into their model. */
#define NN_NAME_MAX 64
typedef struct nn_model {
    int n_params, n_buffers;
    tensor **params;        /* n_params parameters, in registration order */
    char (*param_names)[NN_NAME_MAX];
    tensor **buffers;       /* n_buffers buffers (not trained) */
    char (*buffer_names)[NN_NAME_MAX];
    int cap_params, cap_buffers;
    tensor **unique;        /* the n_unique distinct parameters: a tied one once */
    int n_unique, cap_unique;
    bool training;          /* train mode (default) or eval mode */
    dtype dtype;            /* dtype of new parameters */
    rng rng;                /* initialisers and dropout masks draw from it */
} nn_model;

/* Returns a new model (release with nn_model_free) or NULL. */
nn_model *nn_model_new(dtype dt, uint64_t seed);
void nn_model_free(nn_model *m);
/* Takes ownership of t (also on error, when t is freed, unless the model
 * already holds t or t cannot be owned: tape-owned, or refused by
 * tensor_set_requires_grad); sets requires_grad. Returns t or NULL.
 * Names must be unique, non-empty, under NN_NAME_MAX bytes, UTF-8 and not
 * "__metadata__" (what a checkpoint can store and read back); a parameter is
 * float32 or float64. Tied (shared) tensors: adding a tensor the model
 * already holds under a new name registers one tensor under two names (a
 * head tied to an embedding): it stays one parameter, freed once, counted
 * once by nn_model_numel and listed once by nn_model_parameters, while the
 * state_dict (nn_model_state_at, checkpoints) has both names. A tensor cannot
 * be both a parameter and a buffer. */
tensor *nn_model_add_param(nn_model *m, const char *name, tensor *t);
tensor *nn_model_add_buffer(nn_model *m, const char *name, tensor *t);
tensor *nn_model_find(const nn_model *m, const char *name); /* param or buffer */
void nn_model_train(nn_model *m, bool on);                  /* false: eval mode */
int64_t nn_model_numel(const nn_model *m);                  /* distinct parameters' elements */
/* The distinct parameters in registration order, a tied one once: what
 * optim_new takes (m->params lists a tied tensor under each of its names).
 * *n gets the count; the array is borrowed, valid until the next add. */
tensor *const *nn_model_parameters(const nn_model *m, int *n);
/* state_dict: parameters then buffers, n_params + n_buffers entries; the
 * i-th name and tensor (borrowed). Returns -1 when i is out of range. */
int nn_model_state_count(const nn_model *m);
int nn_model_state_at(const nn_model *m, int i, const char **name, tensor **t);

/* ------------------------------------------------------- initialisers
 * fan_in = size(1) * receptive field, fan_out = size(0) * receptive field,
 * as torch.nn.init computes them. All return 0 or -1. */
typedef enum { NN_FAN_IN = 0, NN_FAN_OUT = 1 } nn_fan_mode;
int nn_fans(const tensor *t, int64_t *fan_in, int64_t *fan_out);
int nn_init_constant(tensor *t, double v);
int nn_init_uniform(tensor *t, rng *g, double lo, double hi);
int nn_init_normal(tensor *t, rng *g, double mean, double std);
/* gain sqrt(2 / (1 + a^2)) (leaky_relu with slope a; a = 0 is relu). */
int nn_init_kaiming_uniform(tensor *t, rng *g, double a, nn_fan_mode mode);
int nn_init_kaiming_normal(tensor *t, rng *g, double a, nn_fan_mode mode);
int nn_init_xavier_uniform(tensor *t, rng *g, double gain);
int nn_init_xavier_normal(tensor *t, rng *g, double gain);

/* ------------------------------------------------------------ layers
 * nn_xxx_init registers the layer's tensors in m under prefix ("c1" gives
 * "c1.weight", "c1.bias") with PyTorch's default initialisation, drawn from
 * m->rng; returns 0 or -1. Forward functions return TAPE-OWNED tensors. */
typedef struct nn_linear {
    nn_model *model;
    tensor *weight, *bias;  /* [OUT, IN], [OUT] or NULL */
} nn_linear;
int nn_linear_init(nn_linear *l, nn_model *m, const char *prefix, int64_t in, int64_t out,
                   bool bias);
tensor *nn_linear_forward(const nn_linear *l, tensor *x);

typedef struct nn_conv2d {
    nn_model *model;
    tensor *weight, *bias;  /* [OC, C/groups, KH, KW], [OC] or NULL */
    conv2d_params p;
} nn_conv2d;
int nn_conv2d_init(nn_conv2d *l, nn_model *m, const char *prefix, int64_t in_ch, int64_t out_ch,
                   int kernel, conv2d_params p, bool bias);
tensor *nn_conv2d_forward(const nn_conv2d *l, tensor *x);

typedef struct nn_pool2d {
    pool2d_params p;
} nn_pool2d;
/* stride 0 means stride = kernel, as in PyTorch. */
nn_pool2d nn_pool2d_make(int kernel, int stride, int padding);
tensor *nn_max_pool2d_forward(const nn_pool2d *l, tensor *x);
tensor *nn_avg_pool2d_forward(const nn_pool2d *l, tensor *x);

typedef struct nn_batchnorm2d {
    nn_model *model;
    tensor *weight, *bias;                 /* [C]: ones, zeros */
    tensor *running_mean, *running_var;    /* buffers [C]: zeros, ones */
    tensor *num_batches_tracked;           /* buffer, int64 scalar */
    double momentum, eps;                  /* 0.1, 1e-5 */
} nn_batchnorm2d;
/* BatchNorm2d takes x [B, C, H, W]; BatchNorm1d is the same layer (same
 * names, init and statistics) on x [B, C] or [B, C, L]. Train mode uses the
 * batch's statistics and updates the running ones; eval mode uses those. */
int nn_batchnorm2d_init(nn_batchnorm2d *l, nn_model *m, const char *prefix, int64_t channels);
tensor *nn_batchnorm2d_forward(nn_batchnorm2d *l, tensor *x);
typedef nn_batchnorm2d nn_batchnorm1d;
int nn_batchnorm1d_init(nn_batchnorm1d *l, nn_model *m, const char *prefix, int64_t channels);
tensor *nn_batchnorm1d_forward(nn_batchnorm1d *l, tensor *x);

typedef struct nn_layernorm {
    nn_model *model;
    tensor *weight, *bias;  /* normalized shape: ones, zeros */
    int normalized_ndim;
    double eps;             /* 1e-5 */
} nn_layernorm;
int nn_layernorm_init(nn_layernorm *l, nn_model *m, const char *prefix, int ndim,
                      const int64_t *normalized_shape);
tensor *nn_layernorm_forward(const nn_layernorm *l, tensor *x);

typedef struct nn_dropout {
    nn_model *model;        /* training flag and rng */
    double p;
} nn_dropout;
int nn_dropout_init(nn_dropout *l, nn_model *m, double p);
tensor *nn_dropout_forward(const nn_dropout *l, tensor *x);

typedef struct nn_embedding {
    nn_model *model;
    tensor *weight;         /* [N, D], N(0, 1) */
} nn_embedding;
int nn_embedding_init(nn_embedding *l, nn_model *m, const char *prefix, int64_t num, int64_t dim);
tensor *nn_embedding_forward(const nn_embedding *l, tensor *index);

/* Recurrent layers (nn/rnn.c): PyTorch's RNN (tanh), GRU and LSTM, one
 * layer, one direction. Gates stacked in PyTorch's order along the rows of
 * the weights: LSTM i, f, g, o (G = 4); GRU r, z, n (G = 3) with
 * n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); RNN G = 1. Weights
 * W_ih [G*H, I], W_hh [G*H, H], biases [G*H], all U(-1/sqrt(H), 1/sqrt(H))
 * from the model's generator. A cell (nn_rnn_cell_init) registers
 * prefix.weight_ih, .weight_hh, .bias_ih, .bias_hh (torch's RNNCell,
 * GRUCell, LSTMCell); a layer (nn_rnn_init) adds torch's "_l0"
 * (prefix.weight_ih_l0, ...), so checkpoints load into torch's modules. */
typedef enum { NN_RNN_TANH = 0, NN_RNN_GRU = 1, NN_RNN_LSTM = 2 } nn_rnn_mode;
typedef struct nn_rnn {
    nn_model *model;
    nn_rnn_mode mode;
    int64_t input_size, hidden_size;
    bool batch_first;       /* layer input [B, T, I] and output [B, T, H] */
    tensor *weight_ih, *weight_hh, *bias_ih, *bias_hh; /* biases NULL without bias */
} nn_rnn;
int nn_rnn_cell_init(nn_rnn *l, nn_model *m, const char *prefix, nn_rnn_mode mode, int64_t input,
                     int64_t hidden, bool bias);
int nn_rnn_init(nn_rnn *l, nn_model *m, const char *prefix, nn_rnn_mode mode, int64_t input,
                int64_t hidden, bool bias, bool batch_first);
/* One step: x [B, I], h [B, H] (NULL: zeros), c [B, H] for LSTM (NULL:
 * zeros; must be NULL for RNN and GRU). Sets *h_out and, if c_out is not
 * NULL, *c_out (LSTM's new cell state, else NULL), TAPE-OWNED [B, H].
 * Returns 0, or -1 with a message naming the layer and the shapes. */
int nn_rnn_cell_forward(const nn_rnn *l, tensor *x, tensor *h, tensor *c, tensor **h_out,
                        tensor **c_out);
/* A whole sequence: x [T, B, I] ([B, T, I] with batch_first), h0 and c0
 * [1, B, H] or [B, H] (NULL: zeros; c0 only for LSTM). Sets *out, the
 * hidden state of every step, [T, B, H] ([B, T, H]), and when not NULL
 * *h_n and *c_n, the last states [1, B, H] (*c_n NULL but for LSTM); all
 * TAPE-OWNED. Returns 0, or -1 with a message. */
int nn_rnn_forward(const nn_rnn *l, tensor *x, tensor *h0, tensor *c0, tensor **out,
                   tensor **h_n, tensor **c_n);

/* Transformer layers (nn/attention.c). Inputs are batch-first [B, T, E];
 * masks are NULL or broadcast to the scores [B, H, Tq, Tk], nonzero meaning
 * "excluded" (PyTorch's boolean attn_mask convention for MultiheadAttention).
 * Multi-head attention: PyTorch's nn.MultiheadAttention parameters
 * prefix.in_proj_weight [3E, E] (rows W_q, W_k, W_v), prefix.in_proj_bias
 * [3E], prefix.out_proj.weight [E, E], prefix.out_proj.bias [E], with its
 * init (xavier_uniform in_proj_weight, zero biases). dropout applies to the
 * attention weights in train mode, drawn from the model's rng. */
typedef struct nn_multihead_attention {
    nn_model *model;
    tensor *in_proj_weight, *in_proj_bias, *out_proj_weight, *out_proj_bias;
    int64_t embed_dim, num_heads;   /* head dim embed_dim / num_heads */
    bool causal;
    double dropout;
} nn_multihead_attention;
int nn_multihead_attention_init(nn_multihead_attention *l, nn_model *m, const char *prefix,
                                int64_t embed_dim, int64_t num_heads, bool causal, double dropout);
/* query [B, Tq, E], key and value [B, Tk, E] (self-attention: x three times). */
tensor *nn_multihead_attention_forward(const nn_multihead_attention *l, tensor *query, tensor *key,
                                       tensor *value, tensor *mask);
/* Pre-LayerNorm block (GPT-2): x + attn(ln1(x)), then x + out(gelu(fc(ln2(x)))),
 * fc [4E, E], out [E, 4E]. Parameters prefix.ln1.weight/bias, prefix.ln2.*,
 * prefix.qkv.weight [3E, E] / .bias (attention's in_proj), prefix.proj.weight /
 * .bias (its out_proj), prefix.fc.*, prefix.out.*, all with nn.Linear's and
 * nn.LayerNorm's init. gelu_tanh (default true) selects GELU's tanh form. */
typedef struct nn_transformer_block {
    nn_model *model;
    nn_layernorm ln1, ln2;
    nn_multihead_attention attn;
    nn_linear fc, out;
    bool gelu_tanh;
} nn_transformer_block;
int nn_transformer_block_init(nn_transformer_block *l, nn_model *m, const char *prefix,
                              int64_t embed_dim, int64_t num_heads, bool causal, double dropout);
tensor *nn_transformer_block_forward(const nn_transformer_block *l, tensor *x, tensor *mask);
/* Position embedding: y = x + P[0:T] for x [.., T, dim], T <= max_len.
 * Learned: parameter prefix.weight [max_len, dim], N(0, 1) (nn.Embedding's).
 * Sinusoidal: buffer prefix.pe [max_len, dim], P[t, 2i] = sin(t w_i),
 * P[t, 2i+1] = cos(t w_i), w_i = 10000^(-2i/dim); no gradient. */
typedef struct nn_pos_embedding {
    nn_model *model;
    tensor *weight;         /* the parameter or the buffer */
    bool sinusoidal;
} nn_pos_embedding;
int nn_pos_embedding_init(nn_pos_embedding *l, nn_model *m, const char *prefix, int64_t max_len,
                          int64_t dim, bool sinusoidal);
tensor *nn_pos_embedding_forward(const nn_pos_embedding *l, tensor *x);

/* ------------------------------------------------------------ LeNet-5
 * conv(1->6, 5x5, pad 2) relu maxpool2, conv(6->16, 5x5) relu maxpool2,
 * flatten, linear 400->120 relu, 120->84 relu, 84->10. Input [B, 1, 28, 28].
 * Parameters c1.weight, c1.bias, c2.weight, c2.bias, f1.*, f2.*, f3.*. */
#define NN_LENET5_NPARAMS 10
typedef struct nn_lenet5 {
    nn_model *model;        /* owns the parameters */
    nn_conv2d c1, c2;
    nn_linear f1, f2, f3;
} nn_lenet5;
/* Returns a new model with PyTorch's default init from seed (release with
 * nn_lenet5_free) or NULL. */
nn_lenet5 *nn_lenet5_new(dtype dt, uint64_t seed);
void nn_lenet5_free(nn_lenet5 *net);
tensor *nn_lenet5_forward(const nn_lenet5 *net, tensor *x);            /* logits [B, 10] */
tensor *nn_lenet5_loss(const nn_lenet5 *net, tensor *x, tensor *labels); /* mean CE */
/* The same graph on externally given parameters (state_dict order, any one
 * float dtype): what the gradient checker differentiates. */
tensor *nn_lenet5_forward_with(tensor *const *params, tensor *x);
tensor *nn_lenet5_loss_with(tensor *const *params, tensor *x, tensor *labels);

/* -------------------------------------------------------- optimisers
 * PyTorch's update formulas (torch.optim.SGD, Adam, AdamW, non-amsgrad).
 * Steps run outside the tape and write .data; parameters without a .grad
 * are skipped, as in PyTorch. */
typedef enum { OPTIM_SGD = 0, OPTIM_ADAM = 1, OPTIM_ADAMW = 2 } optim_kind;
typedef struct optim_config {
    optim_kind kind;
    double lr;
    double momentum, dampening; /* SGD */
    bool nesterov;              /* SGD: needs momentum > 0 and dampening 0 */
    double weight_decay;        /* SGD, Adam: L2 added to grad; AdamW: decoupled */
    double beta1, beta2, eps;   /* Adam, AdamW */
} optim_config;
/* PyTorch's defaults: SGD lr 1e-2 (PyTorch has none), Adam lr 1e-3,
 * betas (0.9, 0.999), eps 1e-8, AdamW weight decay 1e-2. */
optim_config optim_defaults(optim_kind kind);
typedef struct optim optim;
/* Returns a new optimiser over the n parameters (borrowed; they must outlive
 * it), release with optim_free; NULL on a bad config. Each tensor once: a
 * tied parameter listed twice would be stepped twice and is refused (take
 * the list from nn_model_parameters). The parameters are group 0. */
optim *optim_new(const optim_config *c, tensor *const *params, int n);
/* Parameter groups (torch.optim's param_groups): n more parameters stepped
 * with c's lr, weight decay, betas, ...; c->kind must be the optimiser's.
 * Returns the group's index or -1. */
int optim_add_group(optim *o, const optim_config *c, tensor *const *params, int n);
int optim_group_count(const optim *o);
void optim_free(optim *o);
int optim_step(optim *o);
void optim_zero_grad(optim *o);    /* zeroes existing grads in place */
void optim_set_lr(optim *o, double lr);               /* every group's */
int optim_set_group_lr(optim *o, int group, double lr);
double optim_get_lr(const optim *o);                  /* group 0's */
double optim_get_group_lr(const optim *o, int group);
int64_t optim_steps(const optim *o);
/* The optimiser's state in safetensors, as torch's optimizer.state_dict()
 * holds it, flattened: "kind", "steps", per parameter K (in the optimiser's
 * order) "state.K.step" (int64) and float64 "state.K.exp_avg",
 * "state.K.exp_avg_sq" (Adam, AdamW) or "state.K.momentum_buffer" (SGD), per
 * group G "param_groups.G.params" (int64 indices K) and float64
 * "param_groups.G.lr", ".momentum", ".dampening", ".nesterov",
 * ".weight_decay", ".beta1", ".beta2", ".eps". Loading needs the same kind,
 * parameters and groups, restores the hyperparameters (lr included) and
 * checks the whole file before writing anything. 0 or -1. */
int optim_save(const optim *o, const char *path);
int optim_load(optim *o, const char *path);
/* Scales all grads so that their global L2 norm is at most max_norm;
 * returns the norm before clipping (-1 on error). A tensor listed more than
 * once (a tied weight under both names) counts, and is scaled, once. */
double optim_clip_grad_norm(tensor *const *params, int n, double max_norm);
int optim_clip_grad_value(tensor *const *params, int n, double clip);
/* Learning-rate schedules as functions of the epoch (or step) t:
 * StepLR: base * gamma^floor(t / step_size); CosineAnnealingLR:
 * eta_min + (base - eta_min) * (1 + cos(pi * t / t_max)) / 2. */
double optim_lr_step(double base, int64_t t, int64_t step_size, double gamma);
double optim_lr_cosine(double base, double eta_min, int64_t t, int64_t t_max);

/* --------------------------------------------------------------- data
 * IDX files (MNIST, EMNIST, Fashion-MNIST), raw or gzip, element type
 * unsigned byte. A malformed file gives an error naming it and the fault. */
#define NN_DATA_DIR_DEFAULT "/usr/share/datasets/fashion-mnist"
#define NN_FASHION_MEAN 0.2860
#define NN_FASHION_STD 0.3530
typedef struct nn_idx {
    int ndim;
    int64_t dims[4];
    int64_t size;       /* product of dims */
    uint8_t *data;
} nn_idx;
nn_idx *nn_idx_load(const char *path);  /* release with nn_idx_free; NULL on error */
void nn_idx_free(nn_idx *a);

/* An image set with its labels, kept as bytes. */
typedef struct nn_dataset {
    int64_t n;              /* images in use (nn_dataset_truncate lowers it) */
    int64_t rows, cols;
    int64_t n_classes;      /* max label + 1 */
    uint8_t *images;        /* n * rows * cols */
    uint8_t *labels;        /* n */
    nn_idx *img_file, *lbl_file;
} nn_dataset;
nn_dataset *nn_dataset_load(const char *images_path, const char *labels_path);
/* split "train" or "t10k": DIR/split-images-idx3-ubyte[.gz] and labels. */
nn_dataset *nn_dataset_load_dir(const char *dir, const char *split);
void nn_dataset_truncate(nn_dataset *d, int64_t n); /* keep the first n */
void nn_dataset_free(nn_dataset *d);

/* Batches [B, 1, rows, cols] (pixels / 255, then (x - mean) / std) and
 * labels int64 [B]; the last batch may be smaller. */
typedef struct nn_loader nn_loader;
/* The dataset is borrowed. shuffle: a new permutation every epoch from seed. */
nn_loader *nn_loader_new(const nn_dataset *d, int64_t batch, bool shuffle, uint64_t seed);
void nn_loader_free(nn_loader *l);
void nn_loader_set_normalize(nn_loader *l, double mean, double std);
void nn_loader_set_dtype(nn_loader *l, dtype dt);    /* DTYPE_F32 (default) or F64 */
int64_t nn_loader_batches(const nn_loader *l);       /* per epoch */
void nn_loader_rewind(nn_loader *l);                  /* next epoch: new order */
/* Data-parallel sharding (as torch's DistributedSampler): the loader gives
 * positions shard, shard + shards, shard + 2 shards, ... of each epoch's
 * order, floor(n / shards) images, so loaders built with the same seed on
 * shards 0..shards-1 see every image once per epoch when shards divides n
 * (the last n mod shards positions are skipped otherwise). Restarts the
 * epoch; nn_loader_batches counts the shard's batches. 0 or -1. */
int nn_loader_set_shard(nn_loader *l, int shard, int shards);
/* Fills *x and *y with TAPE-OWNED tensors (valid until tape_reset) and
 * returns 1; returns 0 at the end of the epoch, -1 on error. */
int nn_loader_next(nn_loader *l, tensor **x, tensor **y);

/* -------------------------------------------------------- checkpoints
 * safetensors: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}
 * padded with spaces, then the raw little-endian data. Saved through a
 * temporary file, fsync and rename, so a crash leaves the old file or the
 * new one, never half of one. Loading is strict: every name present with
 * its shape, nothing extra; F32 and F64 convert to the tensor's dtype, and
 * BOOL (PyTorch's torch.bool, one byte, 0 or 1: masks) loads as 0 and 1
 * into a tensor of any dtype. */
int nn_safetensors_save(const char *path, const char *const *names, tensor *const *ts, int n);
int nn_safetensors_load(const char *path, const char *const *names, tensor *const *ts, int n);
int nn_model_save(const nn_model *m, const char *path);   /* params and buffers */
int nn_model_load(nn_model *m, const char *path);
/* A training checkpoint: one file, written atomically, holding all a run
 * needs to continue bit for bit: the model's state_dict under "model."
 * ("model.c1.weight"), the model's generator "rng.model" (dropout), the
 * optimiser's state under "optim." (as optim_save names it) and the
 * loader's permutation, generator and position ("loader.order",
 * "loader.rng", "loader.pos"). o and l may be NULL (not saved, not loaded);
 * loading needs the same parts as saving, checks the whole file and writes
 * nothing on an error. The loader must be built on the same data, as the
 * model on the same layers. */
int nn_checkpoint_save(const char *path, const nn_model *m, const optim *o, const nn_loader *l);
int nn_checkpoint_load(const char *path, nn_model *m, optim *o, nn_loader *l);

/* ---------------------------------------------------- gradient flow
 * After a backward pass: per parameter, did it get a gradient of its own
 * shape, its L2 norm, and flags. */
typedef struct nn_gradflow_entry {
    char name[NN_NAME_MAX];
    bool has_grad, shape_ok, finite;
    double norm, max_abs;
    bool all_zero, vanishing, exploding;
} nn_gradflow_entry;
typedef struct nn_gradflow {
    int n;
    nn_gradflow_entry *entries;
    double vanish, explode;   /* thresholds used on the norm */
    int n_problems;           /* entries that are missing, misshapen, zero, vanishing, exploding or not finite */
} nn_gradflow;
/* Fills r (release with nn_gradflow_free); 0 or -1. */
int nn_gradflow_check(const char *const *names, tensor *const *params, int n, double vanish,
                      double explode, nn_gradflow *r);
int nn_gradflow_model(const nn_model *m, double vanish, double explode, nn_gradflow *r);
void nn_gradflow_print(FILE *f, const nn_gradflow *r);
void nn_gradflow_free(nn_gradflow *r);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif
