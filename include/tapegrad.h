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
    uint32_t epoch;                   /* tape epoch of a tape-owned tensor */
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
tensor *tensor_to_dtype(const tensor *t, dtype dt);
void tensor_free(tensor *t);                       /* NULL is fine; tape-owned: ignored */

int tensor_set_requires_grad(tensor *t, bool on);  /* leaves only */
int tensor_zero_grad(tensor *t);                   /* sets .grad to zeros if present */
int tensor_copy_data(tensor *dst, const tensor *src); /* same shape; converts dtype */

/* Element access for tests and small programs (flat index or multi-index). */
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
 * stats.allocated, or the library's own count without jemalloc). */
int64_t tapegrad_allocated_bytes(void);
void tapegrad_set_threads(int n);
int tapegrad_threads(void);

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
typedef struct pool2d_params {
    int kernel[2], stride[2], padding[2];
    bool count_include_pad; /* avg_pool2d only */
} pool2d_params;
tensor *tensor_max_pool2d(tensor *x, pool2d_params p);
tensor *tensor_avg_pool2d(tensor *x, pool2d_params p);
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

/* ============================================================ checker
 * Central differences in float64 against the tape's vjp. */
typedef tensor *(*gradcheck_fn)(tensor *const *inputs, int n, void *ctx);

typedef struct gradcheck_options {
    double eps, atol, rtol;      /* defaults 1e-6, 1e-5, 1e-3 */
    uint64_t seed;               /* upstream gradient and fast-mode probes */
    bool fast;                   /* u^T J v probes instead of every element */
    int probes;                  /* fast mode: probes per input (default 3) */
    uint32_t check_mask;         /* bit i: check input i (default all: 0 means all) */
    bool localize;               /* on failure name the first wrong node */
} gradcheck_options;
gradcheck_options gradcheck_defaults(void);

typedef struct gradcheck_input_report {
    bool checked, passed, vacuous;
    double max_abs_err, max_rel_err;
    int64_t worst_index;           /* flat index of the worst element */
    double worst_analytic, worst_numeric;
} gradcheck_input_report;

#define GRADCHECK_MAX_INPUTS 32
typedef struct gradcheck_report {
    bool passed;
    int n_inputs;
    gradcheck_input_report input[GRADCHECK_MAX_INPUTS];
    double max_abs_err, max_rel_err;
    double seconds;
    int64_t evaluations;           /* forward replays performed */
    /* localisation (when options.localize and the check failed) */
    bool localized;
    int bad_node;                  /* tape position */
    char bad_node_desc[256];       /* "conv2d [2,6,14,14] * [16,6,5,5]" */
    char message[512];             /* one-paragraph summary */
} gradcheck_report;

/* Returns 0 when the check ran (see report->passed), -1 on error. The inputs
 * are copied to float64; the caller keeps ownership of inputs. */
int gradcheck(gradcheck_fn fn, void *ctx, tensor *const *inputs, int n,
              const gradcheck_options *opt, gradcheck_report *report);
void gradcheck_report_print(FILE *f, const gradcheck_report *r);

#ifdef __cplusplus
}
#endif
#endif
