/*
 * elementwise.h - kernel generators for elementwise ops, shared by the
 * arithmetic, math and activation families.
 *
 * Each macro expands to plain loops over contiguous memory, one per dtype, so
 * the compiler vectorises them and no function pointer is called per element.
 * Expressions see:   x (first input), y (second input), z (the output),
 *                    g (upstream gradient), p0..p3 (the node's fp[0..3]).
 * Large tensors are split across OpenMP threads; each thread owns a disjoint
 * range, so results do not depend on the thread count.
 */
#ifndef TAPEGRAD_ELEMENTWISE_H
#define TAPEGRAD_ELEMENTWISE_H

#include <math.h>
#include <string.h>

#include "../autograd/internal.h"

#define EW_PARAMS(n)                                                   \
    const double p0 = (n)->fp[0], p1 = (n)->fp[1], p2 = (n)->fp[2],    \
                 p3 = (n)->fp[3];                                      \
    (void)p0; (void)p1; (void)p2; (void)p3

/* for (i = 0; i < cnt; i++) BODY, split across threads only when that
 * pays (parallel_pays). */
#define EW_FOR(i, cnt, ...)                                                      \
    do {                                                                         \
        if (parallel_pays(cnt)) {                                                \
            _Pragma("omp parallel for simd schedule(static)")                    \
            for (int64_t i = 0; i < (cnt); i++) __VA_ARGS__                      \
        } else {                                                                 \
            _Pragma("omp simd")                                                  \
            for (int64_t i = 0; i < (cnt); i++) __VA_ARGS__                      \
        }                                                                        \
    } while (0)

/* for (i = 0; i < count; i++) BODY, the iterations (rows, planes: each one
 * written by its own iteration alone, so the result does not depend on the
 * thread count) split across threads only when `work` elements pay. */
#define TG_PAR_FOR(i, count, work, ...)                                          \
    do {                                                                         \
        if (parallel_pays(work)) {                                               \
            _Pragma("omp parallel for schedule(static)")                         \
            for (int64_t i = 0; i < (count); i++) __VA_ARGS__                    \
        } else {                                                                 \
            for (int64_t i = 0; i < (count); i++) __VA_ARGS__                    \
        }                                                                        \
    } while (0)

/* y = f(x), same shape. */
#define EW_UNARY_FORWARD(name, EXPR)                                             \
    static void name##_forward(tape_node *n) {                                   \
        EW_PARAMS(n);                                                            \
        int64_t cnt = n->out->size;                                              \
        if (n->out->dtype == DTYPE_F32) {                                        \
            const float *X = n->in[0]->data;                                     \
            float *Z = n->out->data;                                             \
            EW_FOR(i, cnt, {                        \
                const float x = X[i];                                            \
                Z[i] = (float)(EXPR);                                            \
            });                                                                    \
        } else {                                                                 \
            const double *X = n->in[0]->data;                                    \
            double *Z = n->out->data;                                            \
            EW_FOR(i, cnt, {                        \
                const double x = X[i];                                           \
                Z[i] = (EXPR);                                                   \
            });                                                                    \
        }                                                                        \
    }

/* dx += DX(x, z, g), or dx = DX(x, z, g) into a fresh buffer (op_def.vjp_fresh). */
#define EW_UNARY_VJP_T(T, DX)                                                    \
    do {                                                                         \
        const T *X = n->in[0]->data, *Z = n->out->data, *G = n->out->grad->data; \
        T *D = gin[0]->data;                                                     \
        if (tg_grad_take_fresh(gin[0])) {                                        \
            EW_FOR(i, cnt, {                                                     \
                const T x = X[i], z = Z[i], g = G[i];                            \
                (void)x; (void)z;                                                \
                D[i] = (T)(DX);                                                  \
            });                                                                  \
        } else {                                                                 \
            EW_FOR(i, cnt, {                                                     \
                const T x = X[i], z = Z[i], g = G[i];                            \
                (void)x; (void)z;                                                \
                D[i] += (T)(DX);                                                 \
            });                                                                  \
        }                                                                        \
    } while (0)

#define EW_UNARY_VJP(name, DX)                                                   \
    static void name##_vjp(tape_node *n, tensor *const *gin) {                   \
        EW_PARAMS(n);                                                            \
        int64_t cnt = n->out->size;                                              \
        if (!gin[0]) return;                                                     \
        if (n->out->dtype == DTYPE_F32)                                          \
            EW_UNARY_VJP_T(float, DX);                                           \
        else                                                                     \
            EW_UNARY_VJP_T(double, DX);                                          \
    }

/* Whether t broadcasts to out by repeating it whole: its dims past leading
 * 1s equal out's trailing dims (a bias [E], a position table [T, E] against
 * [B, T, E]), so element i of out reads t[i % t->size]. */
static inline bool ew_bcast_suffix(const tensor *t, const tensor *out) {
    int d = 0, off = out->ndim - t->ndim;
    if (t->size == 0 || off < 0) return false;
    while (d < t->ndim && t->shape[d] == 1) d++;
    for (; d < t->ndim; d++)
        if (t->shape[d] != out->shape[off + d]) return false;
    return true;
}

/* z = f(x, y) with NumPy broadcasting. Fast paths: equal sizes, a scalar
 * operand, and a trailing-suffix operand (bias-like, a block loop instead of
 * an index computation per element: the GPT's position add was 4 % of a
 * step on the general path). */
/* The two whole-repeat (suffix) broadcasts of a binary op, forward and vjp
 * alike: operand b (nb elements) repeats over a of the output's cnt, or a over
 * b; BODY runs per output element i with the operands' indices ia and ib, in
 * blocks of the repeated operand's length. An `if ... else if ...` that the
 * caller continues with `else`. */
#define EW_SUFFIX_BLOCKS(...)                                                         \
    if (na == cnt && ew_bcast_suffix(n->in[1], n->out)) {                             \
        for (int64_t o = 0; o < cnt; o += nb)                                         \
            _Pragma("omp simd") for (int64_t j = 0; j < nb; j++) {                    \
                const int64_t i = o + j, ia = i, ib = j;                              \
                __VA_ARGS__                                                           \
            }                                                                         \
    } else if (nb == cnt && ew_bcast_suffix(n->in[0], n->out)) {                      \
        for (int64_t o = 0; o < cnt; o += na)                                         \
            _Pragma("omp simd") for (int64_t j = 0; j < na; j++) {                    \
                const int64_t i = o + j, ia = j, ib = i;                              \
                __VA_ARGS__                                                           \
            }                                                                         \
    }

#define EW_BINARY_LOOP_T(T, EXPR)                                                     \
    do {                                                                              \
        const T *A = n->in[0]->data, *B = n->in[1]->data;                             \
        T *Z = n->out->data;                                                          \
        int64_t na = n->in[0]->size, nb = n->in[1]->size;                             \
        if (na == cnt && nb == cnt) {                                                 \
            EW_FOR(i, cnt, {                                                          \
                const T x = A[i], y = B[i];                                           \
                Z[i] = (T)(EXPR);                                                     \
            });                                                                        \
        } else if (na == cnt && nb == 1) {                                            \
            const T y = B[0];                                                         \
            EW_FOR(i, cnt, {                                                          \
                const T x = A[i];                                                     \
                Z[i] = (T)(EXPR);                                                     \
            });                                                                        \
        } else if (na == 1 && nb == cnt) {                                            \
            const T x = A[0];                                                         \
            EW_FOR(i, cnt, {                                                          \
                const T y = B[i];                                                     \
                Z[i] = (T)(EXPR);                                                     \
            });                                                                        \
        } else EW_SUFFIX_BLOCKS({                                                     \
            const T x = A[ia], y = B[ib];                                             \
            Z[i] = (T)(EXPR);                                                         \
        }) else {                                                                     \
            int64_t sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS];                         \
            tg_broadcast_strides(n->in[0], n->out->ndim, n->out->shape, sa);             \
            tg_broadcast_strides(n->in[1], n->out->ndim, n->out->shape, sb);             \
            for (int64_t i = 0; i < cnt; i++) {                                       \
                const T x = A[bcast_offset(i, n->out->ndim, n->out->shape, sa)];      \
                const T y = B[bcast_offset(i, n->out->ndim, n->out->shape, sb)];      \
                Z[i] = (T)(EXPR);                                                     \
            }                                                                         \
        }                                                                             \
    } while (0)

#define EW_BINARY_FORWARD(name, EXPR)                                            \
    static void name##_forward(tape_node *n) {                                   \
        EW_PARAMS(n);                                                            \
        int64_t cnt = n->out->size;                                              \
        if (n->out->dtype == DTYPE_F32)                                          \
            EW_BINARY_LOOP_T(float, EXPR);                                       \
        else                                                                     \
            EW_BINARY_LOOP_T(double, EXPR);                                      \
    }

/* da += reduce_bcast(DA(x, y, z, g)), db likewise (= into a fresh buffer,
 * op_def.vjp_fresh). When an operand has the output's shape its gradient is
 * written or accumulated in place; otherwise the full gradient goes to an
 * arena buffer and is summed over the broadcast dims. */
#define EW_BINARY_VJP_LOOP(T, DEXPR, OPEQ)                                            \
    do {                                                                              \
        if (na == cnt && nb == cnt) {                                                 \
            EW_FOR(i, cnt, {                                                          \
                const T x = A[i], y = B[i], z = Z[i], g = G[i];                       \
                (void)x; (void)y; (void)z;                                            \
                D[i] OPEQ (T)(DEXPR);                                                 \
            });                                                                        \
        } else EW_SUFFIX_BLOCKS({ /* a position table's add was a scalar loop */    \
            const T x = A[ia], y = B[ib], z = Z[i], g = G[i];                         \
            (void)x; (void)y; (void)z;                                                \
            D[i] OPEQ (T)(DEXPR);                                                     \
        }) else {                                                                     \
            int64_t sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS];                         \
            tg_broadcast_strides(n->in[0], n->out->ndim, n->out->shape, sa);             \
            tg_broadcast_strides(n->in[1], n->out->ndim, n->out->shape, sb);             \
            for (int64_t i = 0; i < cnt; i++) {                                       \
                const T x = A[bcast_offset(i, n->out->ndim, n->out->shape, sa)];      \
                const T y = B[bcast_offset(i, n->out->ndim, n->out->shape, sb)];      \
                const T z = Z[i], g = G[i];                                           \
                (void)x; (void)y; (void)z;                                            \
                D[i] OPEQ (T)(DEXPR);                                                 \
            }                                                                         \
        }                                                                             \
    } while (0)

#define EW_BINARY_VJP_T(T, which, DEXPR)                                              \
    do {                                                                              \
        tensor *dst = gin[which];                                                     \
        /* the full-shape buffer of a broadcast operand is written, not added to */  \
        tensor *full = dst->size == cnt ? dst                                          \
                                        : tg_tensor_tape_new(dst->dtype, n->out->ndim, \
                                                             n->out->shape);         \
        if (!full) return;                                                            \
        const T *A = n->in[0]->data, *B = n->in[1]->data, *Z = n->out->data,          \
                *G = n->out->grad->data;                                              \
        T *D = full->data;                                                            \
        int64_t na = n->in[0]->size, nb = n->in[1]->size;                             \
        if (full != dst || tg_grad_take_fresh(dst))                                   \
            EW_BINARY_VJP_LOOP(T, DEXPR, =);                                          \
        else                                                                          \
            EW_BINARY_VJP_LOOP(T, DEXPR, +=);                                         \
        if (full != dst) tg_reduce_to_shape_grad(dst, full);                           \
    } while (0)

#define EW_BINARY_VJP(name, DA, DB)                                              \
    static void name##_vjp(tape_node *n, tensor *const *gin) {                   \
        EW_PARAMS(n);                                                            \
        int64_t cnt = n->out->size;                                              \
        for (int w = 0; w < 2; w++) {                                            \
            if (!gin[w]) continue;                                               \
            if (n->out->dtype == DTYPE_F32) {                                    \
                if (w == 0) EW_BINARY_VJP_T(float, 0, DA);                       \
                else EW_BINARY_VJP_T(float, 1, DB);                              \
            } else {                                                             \
                if (w == 0) EW_BINARY_VJP_T(double, 0, DA);                      \
                else EW_BINARY_VJP_T(double, 1, DB);                             \
            }                                                                    \
        }                                                                        \
    }

/* Builders shared by elementwise ops. */
tensor *tg_ew_unary_apply(const op_def *op, tensor *a, const double *fp, int nfp);
tensor *tg_ew_binary_apply(const op_def *op, tensor *a, tensor *b, const double *fp, int nfp);

/* Sample-case helpers for elementwise ops: unary over a few shapes, binary
 * over equal shapes and the broadcasting variants [3] + [2,3], [2,1,4] * [3,1]
 * and scalar operands. Values in [lo, hi), at least margin from each listed point. */
int tg_ew_unary_sample(int k, rng *g, op_sample *s, double lo, double hi, const double *avoid,
                    int n_avoid, double margin);
int tg_ew_binary_sample(int k, rng *g, op_sample *s, double lo, double hi, const double *avoid,
                     int n_avoid, double margin);

#endif
