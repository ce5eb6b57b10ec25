/* attention.c - scaled dot-product attention as one fused op: scores,
 * masked softmax, dropout on the weights and the weighted sum of values in
 * one forward, and its vjp written by hand beside it.
 *
 * Shapes: q [.., Tq, D], k [.., Tk, D], v [.., Tk, Dv], with the same batch
 * dims [..] (B of them in all, flattened) for the three; the output is
 * [.., Tq, Dv]. The mask is optional, of any dtype, nonzero meaning "excluded"
 * (as masked_fill reads it), and broadcasts to the scores [.., Tq, Tk].
 *
 * Composed from transpose, matmul, scaling, masked_fill, softmax, dropout
 * and matmul, attention records a node per step and keeps a [B, Tq, Tk]
 * tensor for most of them; here the forward keeps only the probabilities P
 * (and, with dropout, the mask and the dropped weights), and the backward
 * needs no recomputation (4x faster forward and backward at a GPT's shapes,
 * [16, 4, 64, 32] causal float32). The dropout mask is
 * drawn by the builder from the caller's generator, like tensor_dropout's,
 * so forward is pure and a replay by the checker reuses it.
 *
 * sdpa_heads is the same attention over heads packed along the last dim, as
 * a self-attention layer's projection gives them: qkv [.., T, 3E] holds
 * q | k | v, each of H heads of Dh = E / H side by side, and the output is
 * [.., T, E], the heads merged. The kernels read matrix (b, h) in place
 * (its columns h Dh .. h Dh + Dh - 1 of q, k or v, row stride 3E) and write
 * the output and the gradient of qkv in the same packed layout, so the
 * head split and merge (a reshape and a permute each way, which copy) are
 * never materialised. It is the same computation as split heads +
 * scaled_dot_product_attention + merge, matrix by matrix, with the same
 * dropout draws. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "act_kernels.h"
#include "blas.h"

extern const op_def tg_ops_attention[];
/* The attention family: index of each op in tg_ops_attention, its entry below. */
enum { SDPA, SDPA_HEADS, N_ATTENTION_OPS };
#define OP(i) (&tg_ops_attention[i])

/* The node's layout.
 *   in:    q, k, v, mask (or NULL); sdpa_heads: qkv, mask (or NULL)
 *   ip:    [0] causal, [1] B, [2] Tq, [3] Tk, [4] D, [5] Dv, [6] H for
 *          sdpa_heads (B = the batch's matrices times H, Tq = Tk = T,
 *          D = Dv = Dh), 0 for scaled_dot_product_attention
 *   fp:    [0] scale = 1 / sqrt(D), [1] dropout_p
 *   saved: [0] P [B, Tq, Tk] (q's dtype): the softmax weights, 0 where excluded
 *          [1] M [B, Tq, Tk] (float64) dropout mask, keep / (1 - p), or NULL
 *          [2] W [B, Tq, Tk] (q's dtype) = P * M, the weights used, or NULL
 *          [3] the mask's offsets: int64 [B] + strides [2] (mask given) or NULL */
enum { SAVED_P, SAVED_DROP, SAVED_W, SAVED_MASK };

/* The mask input, or NULL. */
static inline const tensor *sdpa_mask(const tape_node *n) { return n->in[n->ip[6] ? 1 : 3]; }

/* Where matrix b's operands are: element offsets of Q, K, V in the inputs
 * (and their gradients) iq, ik, iv, and of O in the output (and its
 * gradient), with their row strides. Unpacked, each is its own contiguous
 * matrix; packed, matrix b = (batch b / H, head b % H) is a column block of
 * qkv's and the output's rows. */
typedef struct {
    int64_t q, k, v, o, ldq, ldk, ldv, ldo;
    int iq, ik, iv;
} sdpa_at;
static inline sdpa_at sdpa_locate(const tape_node *n, int64_t b) {
    const int64_t H = n->ip[6], Tq = n->ip[2], Tk = n->ip[3], D = n->ip[4], Dv = n->ip[5];
    if (!H) return (sdpa_at){b * Tq * D, b * Tk * D, b * Tk * Dv, b * Tq * Dv, D, D, Dv, Dv, 0, 1, 2};
    const int64_t E = H * D, q = b / H * Tq * 3 * E + b % H * D;
    return (sdpa_at){q, q + E, q + 2 * E, b / H * Tq * E + b % H * D, 3 * E, 3 * E, 3 * E, E, 0, 0, 0};
}

/* Truth of element off of a mask of any dtype (nonzero, NaN included, excludes). */
static inline bool mask_truth(const tensor *t, int64_t off) {
    switch (t->dtype) {
    case DTYPE_F32: return ((const float *)t->data)[off] != 0;
    case DTYPE_F64: return ((const double *)t->data)[off] != 0;
    default: return ((const int64_t *)t->data)[off] != 0;
    }
}

/* The keys query i of matrix b may attend to: j < *end (causal: j <= i, the
 * top-left aligned triangle, as PyTorch's is_causal, so with Tq != Tk query
 * i still sees keys 0..i), and, with a mask, not excluded by it. Returns the
 * mask's row (offset and stride in *at, *step) or false without a mask. */
static inline bool sdpa_row(const tape_node *n, int64_t b, int64_t i, int64_t *end, int64_t *at,
                            int64_t *step) {
    const int64_t Tk = n->ip[3];
    *end = n->ip[0] && i + 1 < Tk ? i + 1 : Tk;
    if (!sdpa_mask(n)) return false;
    const int64_t *off = n->saved[SAVED_MASK]->data, B = n->ip[1];
    *at = off[b] + i * off[B];
    *step = off[B + 1];
    return true;
}

/* An unmasked row's row[j] = e^(s (row[j] - mx)) for j < end, and their sum
 * in double; float32 through the vectorised e^x of act_kernels.h. */
static double row_exp_float(float *row, int64_t end, float mx, float s) {
    double l = 0;
    _Pragma("omp simd")
    for (int64_t j = 0; j < end; j++) row[j] = s * (row[j] - mx);
    tg_act_kernels_run()->exp(row, row, end);
    _Pragma("omp simd reduction(+ : l)")
    for (int64_t j = 0; j < end; j++) l += row[j];
    return l;
}
static double row_exp_double(double *row, int64_t end, double mx, double s) {
    double l = 0;
    for (int64_t j = 0; j < end; j++) l += row[j] = exp(s * (row[j] - mx));
    return l;
}

/* --------------------------------------------------------------------------
 * Per matrix b, with s = 1 / sqrt(D) and A the allowed (i, j):
 *
 *   forward                                     shapes
 *     S = s Q K^T                               [Tq, Tk]  (one GEMM, into P)
 *     P_ij = exp(S_ij - m_i) / l_i on A, else 0 [Tq, Tk]
 *            m_i = max_{j in A} S_ij, l_i = sum_{j in A} exp(S_ij - m_i)
 *     W = P * M   (M: dropout mask; W = P without dropout)
 *     O = W V                                   [Tq, Dv]  (one GEMM)
 *
 *   backward, G = dL/dO [Tq, Dv]
 *     dV += W^T G                               [Tk, Dv]
 *     dW  = G V^T                               [Tq, Tk]
 *     dP  = dW * M
 *     dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik)   (softmax's vjp, row by row)
 *     dQ += s dS K                              [Tq, D]
 *     dK += s dS^T Q                            [Tk, D]
 *
 * An excluded (i, j) has P_ij = 0, hence dS_ij = 0 and W_ij = 0: it passes
 * exactly nothing to q_i, k_j or v_j. A row with no allowed key (all of it
 * masked) has P = 0: its output is 0 and its gradients are 0 (PyTorch gives
 * NaN there); a NaN score still gives its row NaN. The softmax denominator
 * and the row sums of the backward run in float64 for both dtypes, the
 * exponentials in the dtype's own precision. Causal rows stop at their last
 * key: past it P = 0 is written, never computed. */
#define SDPA_KERNELS(T)                                                                     \
    /* The largest of row[0 .. end) but NaNs, -inf for none, in four independent chains     \
     * (an `omp simd` max reduction kept its partial maxima in memory, a store and a      \
     * load per step). Only a zero's sign can depend on the order, and it changes no     \
     * e^(s (x - mx)). */                                                                 \
    static inline T row_max_##T(const T *row, int64_t end) {                                \
        T m0 = -INFINITY, m1 = -INFINITY, m2 = -INFINITY, m3 = -INFINITY;                   \
        int64_t j = 0;                                                                      \
        for (; j + 4 <= end; j += 4) {                                                      \
            m0 = row[j] > m0 ? row[j] : m0;                                                 \
            m1 = row[j + 1] > m1 ? row[j + 1] : m1;                                         \
            m2 = row[j + 2] > m2 ? row[j + 2] : m2;                                         \
            m3 = row[j + 3] > m3 ? row[j + 3] : m3;                                         \
        }                                                                                   \
        for (; j < end; j++) m0 = row[j] > m0 ? row[j] : m0;                                \
        m0 = m1 > m0 ? m1 : m0;                                                             \
        m2 = m3 > m2 ? m3 : m2;                                                             \
        return m2 > m0 ? m2 : m0;                                                           \
    }                                                                                       \
    /* forward of matrix b: P_b, and O_b (W_b too, with dropout) */                         \
    static void sdpa_fwd_##T(tape_node *n, int64_t b) {                                     \
        const int64_t Tq = n->ip[2], Tk = n->ip[3], D = n->ip[4], Dv = n->ip[5];            \
        const sdpa_at a = sdpa_locate(n, b);                                                \
        const tensor *mask = sdpa_mask(n);                                                  \
        const T *Qb = (const T *)n->in[a.iq]->data + a.q;                                   \
        const T *Kb = (const T *)n->in[a.ik]->data + a.k;                                   \
        const T *Vb = (const T *)n->in[a.iv]->data + a.v;                                   \
        T *Pb = (T *)n->saved[SAVED_P]->data + b * Tq * Tk;                                 \
        const T s = (T)n->fp[0];                                                            \
        /* S (Tq, Tk) = Q (Tq, D) K^T (D, Tk), unscaled, into P */                          \
        blas_gemm_##T(false, true, Tq, Tk, D, Qb, a.ldq, Kb, a.ldk, 0, Pb, Tk);             \
        for (int64_t i = 0; i < Tq; i++) {                                                  \
            T *row = Pb + i * Tk;                                                           \
            int64_t end, at = 0, step = 0;                                                  \
            const bool masked = sdpa_row(n, b, i, &end, &at, &step);                        \
            T mx = -INFINITY; /* max of the allowed raw scores (s > 0 keeps the order) */   \
            bool any = false;                                                               \
            if (!masked) {                                                                  \
                any = end > 0;                                                              \
                mx = row_max_##T(row, end);                                                 \
            }                                                                               \
            for (int64_t j = 0; masked && j < end; j++) {                                   \
                if (mask_truth(mask, at + j * step)) continue;                              \
                any = true;                                                                 \
                if (row[j] > mx) mx = row[j];                                               \
            }                                                                               \
            double l = 0;                                                                   \
            if (!any) end = 0; /* nothing allowed (or Tk = 0): a zero row */                \
            if (!masked) l = row_exp_##T(row, end, mx, s);                                  \
            for (int64_t j = 0; masked && j < end; j++) {                                   \
                T e = mask_truth(mask, at + j * step) ? 0 : EXP_##T(s * (row[j] - mx));     \
                row[j] = e;                                                                 \
                l += e;                                                                     \
            }                                                                               \
            const T inv = end ? (T)(1 / l) : 0;                                             \
            _Pragma("omp simd")                                                             \
            for (int64_t j = 0; j < end; j++) row[j] *= inv;                                \
            for (int64_t j = end; j < Tk; j++) row[j] = 0;                                  \
        }                                                                                   \
        const T *Wb = Pb;                                                                   \
        if (n->saved[SAVED_DROP]) {                                                         \
            const double *Mb = (const double *)n->saved[SAVED_DROP]->data + b * Tq * Tk;    \
            T *Wd = (T *)n->saved[SAVED_W]->data + b * Tq * Tk;                             \
            for (int64_t e = 0; e < Tq * Tk; e++) Wd[e] = (T)(Pb[e] * Mb[e]);               \
            Wb = Wd;                                                                        \
        }                                                                                   \
        /* O (Tq, Dv) = W (Tq, Tk) V (Tk, Dv) */                                            \
        blas_gemm_##T(false, false, Tq, Dv, Tk, Wb, Tk, Vb, a.ldv, 0,                       \
                      (T *)n->out->data + a.o, a.ldo);                                      \
    }                                                                                       \
    /* backward of matrix b into its own rows of dQ, dK, dV; dS: a (Tq, Tk) scratch */      \
    static void sdpa_bwd_##T(tape_node *n, tensor *const *gin, int64_t b, T *dS) {          \
        const int64_t Tq = n->ip[2], Tk = n->ip[3], D = n->ip[4], Dv = n->ip[5];            \
        const sdpa_at a = sdpa_locate(n, b);                                                \
        const T *Qb = (const T *)n->in[a.iq]->data + a.q;                                   \
        const T *Kb = (const T *)n->in[a.ik]->data + a.k;                                   \
        const T *Vb = (const T *)n->in[a.iv]->data + a.v;                                   \
        const T *Pb = (const T *)n->saved[SAVED_P]->data + b * Tq * Tk;                     \
        const T *Gb = (const T *)n->out->grad->data + a.o;                                  \
        const double *Mb = n->saved[SAVED_DROP]                                             \
                               ? (const double *)n->saved[SAVED_DROP]->data + b * Tq * Tk   \
                               : NULL;                                                      \
        const T *Wb = Mb ? (const T *)n->saved[SAVED_W]->data + b * Tq * Tk : Pb;           \
        const T s = (T)n->fp[0];                                                            \
        if (gin[a.iv]) /* dV (Tk, Dv) += W^T (Tk, Tq) G (Tq, Dv) */                         \
            blas_gemm_##T(true, false, Tk, Dv, Tq, Wb, Tk, Gb, a.ldo, 1,                    \
                          (T *)gin[a.iv]->data + a.v, a.ldv);                               \
        if (!gin[a.iq] && !gin[a.ik]) return;                                               \
        /* dW (Tq, Tk) = G (Tq, Dv) V^T (Dv, Tk) */                                         \
        blas_gemm_##T(false, true, Tq, Tk, Dv, Gb, a.ldo, Vb, a.ldv, 0, dS, Tk);            \
        for (int64_t i = 0; i < Tq; i++) {                                                  \
            const T *p = Pb + i * Tk;                                                       \
            T *d = dS + i * Tk;                                                             \
            /* P = 0 past the causal end: dS = 0 there, nothing to compute */              \
            const int64_t end = n->ip[0] && i + 1 < Tk ? i + 1 : Tk;                        \
            if (Mb)                                                                         \
                for (int64_t j = 0; j < end; j++) d[j] = (T)(d[j] * Mb[i * Tk + j]);        \
            double dot = 0;                                                                 \
            _Pragma("omp simd reduction(+ : dot)")                                          \
            for (int64_t j = 0; j < end; j++) dot += (double)p[j] * d[j];                   \
            const T td = (T)dot;                                                            \
            _Pragma("omp simd") /* d, a scratch, does not overlap p */                      \
            for (int64_t j = 0; j < end; j++) d[j] = s * p[j] * (d[j] - td);               \
            for (int64_t j = end; j < Tk; j++) d[j] = 0;                                    \
        }                                                                                   \
        if (gin[a.iq]) /* dQ (Tq, D) += s dS (Tq, Tk) K (Tk, D), s already in dS */         \
            blas_gemm_##T(false, false, Tq, D, Tk, dS, Tk, Kb, a.ldk, 1,                    \
                          (T *)gin[a.iq]->data + a.q, a.ldq);                               \
        if (gin[a.ik]) /* dK (Tk, D) += s dS^T (Tk, Tq) Q (Tq, D) */                        \
            blas_gemm_##T(true, false, Tk, D, Tq, dS, Tk, Qb, a.ldq, 1,                     \
                          (T *)gin[a.ik]->data + a.k, a.ldk);                               \
    }
#define EXP_float expf
#define EXP_double exp
SDPA_KERNELS(float)
SDPA_KERNELS(double)

/* The B matrices are independent in both directions (q, k and v share their
 * batch dims, so matrix b writes only its own rows of every gradient, or with
 * packed heads its own column block of them): large
 * nodes split them across threads in static blocks, each thread with its own
 * scratch, and the result does not depend on the thread count. OpenBLAS stays
 * on one thread meanwhile. */
static int sdpa_threads(const tape_node *n) {
    const int64_t B = n->ip[1], work = B * n->ip[3] * (n->ip[2] + n->ip[4] + n->ip[5]);
    int t = parallel_pays(work) ? tapegrad_threads() : 1;
    return t > B ? (int)(B > 0 ? B : 1) : t;
}
static int blas_hold(int threads) {
    int was = openblas_get_num_threads();
    if (threads > 1 && was > 1) openblas_set_num_threads(1);
    return was;
}
static void blas_release(int threads, int was) {
    if (threads > 1 && was > 1) openblas_set_num_threads(was);
}

static void sdpa_forward(tape_node *n) {
    const int64_t B = n->ip[1];
    const bool f32 = n->out->dtype == DTYPE_F32;
    const int threads = sdpa_threads(n);
    if (threads == 1) {
        for (int64_t b = 0; b < B; b++) f32 ? sdpa_fwd_float(n, b) : sdpa_fwd_double(n, b);
        return;
    }
    const int was = blas_hold(threads);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < B; b++) f32 ? sdpa_fwd_float(n, b) : sdpa_fwd_double(n, b);
    blas_release(threads, was);
}

static void sdpa_vjp(tape_node *n, tensor *const *gin) {
    if (n->ip[6] ? !gin[0] : !gin[0] && !gin[1] && !gin[2]) return;
    const int64_t B = n->ip[1], S = n->ip[2] * n->ip[3];
    const bool f32 = n->out->dtype == DTYPE_F32;
    const int threads = sdpa_threads(n);
    /* one (Tq, Tk) scratch per thread for dW, then dS, reused matrix after matrix */
    tensor *scratch = tg_tensor_tape_new(n->out->dtype, 1, (int64_t[]){threads * S});
    if (!scratch) return;
    if (threads == 1) {
        for (int64_t b = 0; b < B; b++)
            f32 ? sdpa_bwd_float(n, gin, b, scratch->data) : sdpa_bwd_double(n, gin, b, scratch->data);
        return;
    }
    const int was = blas_hold(threads);
#pragma omp parallel num_threads(threads)
    {
        const int64_t t = omp_get_thread_num();
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; b++)
            f32 ? sdpa_bwd_float(n, gin, b, (float *)scratch->data + t * S)
                : sdpa_bwd_double(n, gin, b, (double *)scratch->data + t * S);
    }
    blas_release(threads, was);
}

/* ------------------------------------------------------------- graph vjp */
/* The differentiable vjp: the kernel's backward written with differentiable
 * ops on q, k and v viewed [B, T, D], with P rebuilt from them,
 *   S = s q k^T, excluded (i, j) filled with -inf, P = softmax(S) * R,
 *   W = P * M, dv = W^T g, dP = (g v^T) * M,
 *   dS = s P * (dP - rowsum(P * dP)), dq = dS k, dk = dS^T q,
 * with three constants of the node: the excluded positions E (the causal
 * triangle and the mask, read by sdpa_row as the kernel reads them), the
 * dropout mask M drawn when the op was built (saved[SAVED_DROP], so a replay
 * drops the same weights), and R [B, Tq, 1], 0 on a row with no allowed key
 * and 1 elsewhere. Such a row is left unfilled in E (its softmax stays
 * finite) and R zeroes it: a zero output and exactly zero gradients, as the
 * kernel defines it; R is applied only when some row needs it. Written out
 * rather than by decomposition (tensor_grad of the rebuilt forward), whose
 * walk from q would also follow any path from q to k or v outside the op. */
/* The graph vjp of the node's B matrices given as q3 [B, Tq, D], k3 [B, Tk, D],
 * v3 [B, Tk, Dv] and g3 [B, Tq, Dv]: *dq, *dk, *dv (those asked for, the
 * others left alone) in the same [B, T, .] layout. */
static int sdpa_graph_core(const tape_node *n, tensor *q3, tensor *k3, tensor *v3, tensor *g3,
                           tensor **dq, tensor **dk, tensor **dv) {
    const int64_t B = n->ip[1], Tq = n->ip[2], Tk = n->ip[3];
    const dtype dt = n->out->dtype;
    int64_t bqk[3] = {B, Tq, Tk}, bq1[3] = {B, Tq, 1};
    tensor *E = tg_tensor_tape_zeros(DTYPE_I64, 3, bqk), *R = tg_tensor_tape_new(dt, 3, bq1);
    if (!E || !R) return -1;
    int64_t *e = E->data;
    bool empty_row = false;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < Tq; i++) {
            int64_t end, at = 0, step = 0, *row = e + (b * Tq + i) * Tk;
            const bool masked = sdpa_row(n, b, i, &end, &at, &step);
            bool any = false;
            for (int64_t j = 0; j < Tk; j++) {
                row[j] = j >= end || (masked && mask_truth(sdpa_mask(n), at + j * step));
                any = any || !row[j];
            }
            if (!any) memset(row, 0, sizeof *row * (size_t)Tk);
            tensor_set(R, b * Tq + i, any);
            empty_row = empty_row || !any;
        }
    tensor *S = tensor_matmul(q3, tensor_transpose(k3, 1, 2));
    tensor *P = tensor_softmax(tensor_masked_fill(tensor_mul_scalar(S, n->fp[0]), E, -INFINITY), -1);
    if (empty_row) P = tensor_mul(P, R);
    tensor *M = NULL, *W = P;
    if (n->saved[SAVED_DROP]) {
        M = tg_tensor_tape_new(dt, 3, bqk);
        if (!M) return -1;
        const double *m = n->saved[SAVED_DROP]->data;
        for (int64_t t = 0; t < B * Tq * Tk; t++) tensor_set(M, t, m[t]);
        W = tensor_mul(P, M);
    }
    if (dv) *dv = tensor_matmul(tensor_transpose(W, 1, 2), g3);
    if (dq || dk) {
        tensor *dP = tensor_matmul(g3, tensor_transpose(v3, 1, 2));
        if (M) dP = tensor_mul(dP, M);
        int ax = -1;
        tensor *dot = tensor_sum(tensor_mul(P, dP), &ax, 1, true);
        tensor *dS = tensor_mul_scalar(tensor_mul(P, tensor_sub(dP, dot)), n->fp[0]);
        if (dq) *dq = tensor_matmul(dS, k3);
        if (dk) *dk = tensor_matmul(tensor_transpose(dS, 1, 2), q3);
    }
    return 0;
}

static int sdpa_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
    const int64_t B = n->ip[1], Tq = n->ip[2], Tk = n->ip[3], D = n->ip[4], Dv = n->ip[5];
    tensor *q3 = tensor_reshape(q, 3, (int64_t[]){B, Tq, D});
    tensor *k3 = tensor_reshape(k, 3, (int64_t[]){B, Tk, D});
    tensor *v3 = tensor_reshape(v, 3, (int64_t[]){B, Tk, Dv});
    tensor *g3 = tensor_reshape(g, 3, (int64_t[]){B, Tq, Dv});
    tensor *d[3] = {NULL, NULL, NULL};
    if (sdpa_graph_core(n, q3, k3, v3, g3, want[0] ? &d[0] : NULL, want[1] ? &d[1] : NULL,
                        want[2] ? &d[2] : NULL))
        return -1;
    for (int i = 0; i < 3; i++)
        if (want[i]) gin[i] = tensor_reshape(d[i], n->in[i]->ndim, n->in[i]->shape);
    return tg_graph_vjp_done(n, want, gin);
}

/* sdpa_heads' graph vjp: the same formulas on the heads split out of qkv
 * [Bq, T, 3E] by differentiable ops (narrow to q, k or v, reshape
 * [Bq, T, H, Dh], permute to [Bq, H, T, Dh]), and the three gradients
 * merged back (the inverse permute, reshape [Bq, T, E], concat along the
 * last dim): the copies the kernel avoids, which a second-order gradient
 * may spend. */
static int sdpa_heads_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    if (!want[0]) return tg_graph_vjp_done(n, want, gin);
    tensor *qkv = n->in[0];
    const int64_t H = n->ip[6], B = n->ip[1], Bq = B / H, T = n->ip[2], Dh = n->ip[4], E = H * Dh;
    const int split[4] = {0, 2, 1, 3};
    tensor *x = tensor_reshape(qkv, 3, (int64_t[]){Bq, T, 3 * E});
    tensor *part[3];
    for (int i = 0; i < 3; i++)
        part[i] = tensor_reshape(tensor_permute(tensor_reshape(tensor_narrow(x, 2, i * E, E), 4,
                                                               (int64_t[]){Bq, T, H, Dh}),
                                                split),
                                 3, (int64_t[]){B, T, Dh});
    tensor *g3 = tensor_reshape(
        tensor_permute(tensor_reshape(g, 4, (int64_t[]){Bq, T, H, Dh}), split), 3,
        (int64_t[]){B, T, Dh});
    tensor *d[3] = {NULL, NULL, NULL};
    if (sdpa_graph_core(n, part[0], part[1], part[2], g3, &d[0], &d[1], &d[2])) return -1;
    for (int i = 0; i < 3; i++) /* [B, T, Dh] -> [Bq, H, T, Dh] -> [Bq, T, H, Dh] -> [Bq, T, E] */
        d[i] = tensor_reshape(
            tensor_permute(tensor_reshape(d[i], 4, (int64_t[]){Bq, H, T, Dh}), split), 3,
            (int64_t[]){Bq, T, E});
    gin[0] = tensor_reshape(tensor_concat(d, 3, 2), qkv->ndim, qkv->shape);
    return tg_graph_vjp_done(n, want, gin);
}

/* ---------------------------------------------------------------- builder */

/* "[2,3,4,5]" from a shape array. */
static char *dims_str(int nd, const int64_t *shape, char *buf, size_t len) {
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < nd && k < len; d++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", d ? "," : "", (long long)shape[d]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}

/* 0 when mask (or NULL) broadcasts to the scores [.., Tq, Tk] (nd dims) and
 * dropout_p and g are valid, else -1 with the error. */
static int sdpa_check_mask_dropout(const op_def *op, const tensor *mask, int nd,
                                   const int64_t *scores, double dropout_p, const rng *g) {
    char sm[96], ss[160];
    if (mask) {
        bool fits = mask->ndim <= nd;
        for (int d = 0; fits && d < mask->ndim; d++) {
            int64_t md = mask->shape[mask->ndim - 1 - d];
            fits = md == 1 || md == scores[nd - 1 - d];
        }
        if (!fits) {
            tg_error_set("%s: mask %s does not broadcast to the scores %s = %s", op->name,
                         tensor_shape_str(mask, sm, sizeof sm),
                         op == OP(SDPA_HEADS) ? "[.., H, T, T]" : "[.., Tq, Tk]",
                         dims_str(nd, scores, ss, sizeof ss));
            return -1;
        }
    }
    if (!(dropout_p >= 0.0 && dropout_p < 1.0)) {
        tg_error_set("%s: dropout_p must be in [0, 1), got %g", op->name, dropout_p);
        return -1;
    }
    if (dropout_p > 0.0 && !g) {
        tg_error_set("%s: dropout_p = %g needs a generator, got NULL", op->name, dropout_p);
        return -1;
    }
    return 0;
}

/* The node's saved tensors (ip[] and fp[] aside from the scale and p set by
 * the caller): P, the mask's offsets for its nd-dim scores, the dropout mask
 * drawn from g in the scores' order; then the forward. */
static tensor *sdpa_node_finish(tape_node *n, const tensor *mask, int nd, const int64_t *scores,
                                double dropout_p, rng *g) {
    const int64_t B = n->ip[1], Tq = n->ip[2], Tk = n->ip[3], S = B * Tq * Tk;
    const dtype dt = n->out->dtype;
    n->fp[0] = 1.0 / sqrt((double)n->ip[4]);
    n->fp[1] = dropout_p;
    int64_t bqk[3] = {B, Tq, Tk};
    if (!(n->saved[SAVED_P] = tg_tensor_tape_new(dt, 3, bqk))) return NULL;
    if (mask) {
        /* the mask's offset for each matrix b and its strides along i and j */
        int64_t st[TENSOR_MAX_DIMS];
        tg_broadcast_strides(mask, nd, scores, st);
        if (!(n->saved[SAVED_MASK] = tg_tensor_tape_new(DTYPE_I64, 1, (int64_t[]){B + 2}))) return NULL;
        int64_t *off = n->saved[SAVED_MASK]->data;
        for (int64_t b = 0; b < B; b++) off[b] = bcast_offset(b * Tq * Tk, nd, scores, st);
        off[B] = st[nd - 2], off[B + 1] = st[nd - 1];
    }
    if (dropout_p > 0.0) {
        n->saved[SAVED_DROP] = tg_tensor_tape_new(DTYPE_F64, 3, bqk);
        n->saved[SAVED_W] = tg_tensor_tape_new(dt, 3, bqk);
        if (!n->saved[SAVED_DROP] || !n->saved[SAVED_W]) return NULL;
        /* kept with probability 1 - p (uniform >= p), then worth 1 / (1 - p) */
        double keep = 1.0 / (1.0 - dropout_p), *M = n->saved[SAVED_DROP]->data;
        for (int64_t e = 0; e < S; e++) M[e] = rng_uniform(g) >= dropout_p ? keep : 0.0;
    }
    return tg_node_finish(n);
}

tensor *tensor_scaled_dot_product_attention(tensor *q, tensor *k, tensor *v, tensor *mask,
                                            bool causal, double dropout_p, rng *g) {
    const op_def *op = OP(SDPA);
    tensor *qkv[3] = {q, k, v};
    if (tg_op_check_inputs(op, qkv, 3, 0) || op_check_optional_null(mask) || tg_act_variant_check(q))
        return NULL;
    char sq[96], sk[96], sv[96];
#define SQKV tensor_shape_str(q, sq, sizeof sq), tensor_shape_str(k, sk, sizeof sk), \
             tensor_shape_str(v, sv, sizeof sv)
    const int nd = q->ndim;
    if (nd < 2 || k->ndim != nd || v->ndim != nd) {
        tg_error_set("%s: q [.., Tq, D], k [.., Tk, D] and v [.., Tk, Dv] need one rank of at least 2: "
                  "q %s, k %s, v %s", op->name, SQKV);
        return NULL;
    }
    for (int d = 0; d < nd - 2; d++) {
        if (k->shape[d] != q->shape[d] || v->shape[d] != q->shape[d]) {
            tg_error_set("%s: batch dims differ (dim %d): q %s, k %s, v %s", op->name, d, SQKV);
            return NULL;
        }
    }
    const int64_t Tq = q->shape[nd - 2], D = q->shape[nd - 1], Tk = k->shape[nd - 2],
                  Dv = v->shape[nd - 1];
    if (k->shape[nd - 1] != D) {
        tg_error_set("%s: q [.., Tq, D] and k [.., Tk, D] differ in D: q %s, k %s, v %s", op->name,
                  SQKV);
        return NULL;
    }
    if (v->shape[nd - 2] != Tk) {
        tg_error_set("%s: k [.., Tk, D] and v [.., Tk, Dv] differ in Tk: q %s, k %s, v %s", op->name,
                  SQKV);
        return NULL;
    }
    if (D < 1) {
        tg_error_set("%s: D = 0 (q %s): the scale 1/sqrt(D) needs D >= 1", op->name,
                  tensor_shape_str(q, sq, sizeof sq));
        return NULL;
    }
#undef SQKV
    /* the scores' shape [.., Tq, Tk], which the mask broadcasts to */
    int64_t scores[TENSOR_MAX_DIMS];
    memcpy(scores, q->shape, sizeof(int64_t) * (size_t)nd);
    scores[nd - 1] = Tk;
    if (sdpa_check_mask_dropout(op, mask, nd, scores, dropout_p, g)) return NULL;
    int64_t out_shape[TENSOR_MAX_DIMS];
    memcpy(out_shape, q->shape, sizeof(int64_t) * (size_t)nd);
    out_shape[nd - 1] = Dv;
    tensor *in[4] = {q, k, v, mask};
    tape_node *n = tg_node_begin(op, in, 4, q->dtype, nd, out_shape);
    if (!n) return NULL;
    n->ip[0] = causal;
    n->ip[1] = tg_shape_numel(nd - 2, q->shape), n->ip[2] = Tq, n->ip[3] = Tk, n->ip[4] = D,
    n->ip[5] = Dv;
    return sdpa_node_finish(n, mask, nd, scores, dropout_p, g);
}

/* qkv [.., T, 3E] (heads packed: q | k | v, each H heads of Dh side by side)
 * -> [.., T, E]; the scores are [.., H, T, T]. */
tensor *tensor_sdpa_heads(tensor *qkv, int64_t n_heads, tensor *mask, bool causal, double dropout_p,
                          rng *g) {
    const op_def *op = OP(SDPA_HEADS);
    if (tg_op_check_inputs(op, &qkv, 1, 0) || op_check_optional_null(mask) || tg_act_variant_check(qkv))
        return NULL;
    char sq[96];
    const int nd = qkv->ndim;
    if (nd < 2 || nd + 1 > TENSOR_MAX_DIMS) {
        tg_error_set("%s: qkv [.., T, 3E] needs a rank from 2 to %d (its scores [.., H, T, T] have "
                     "one dim more): qkv %s",
                     op->name, TENSOR_MAX_DIMS - 1, tensor_shape_str(qkv, sq, sizeof sq));
        return NULL;
    }
    const int64_t T = qkv->shape[nd - 2], C = qkv->shape[nd - 1];
    if (n_heads < 1 || C < 3 || C % 3 || C / 3 % n_heads) {
        tg_error_set("%s: qkv %s must be [.., T, 3E] with E = n_heads * head_dim, head_dim >= 1: "
                     "its last dim %lld is not 3 * %lld * head_dim",
                     op->name, tensor_shape_str(qkv, sq, sizeof sq), (long long)C, (long long)n_heads);
        return NULL;
    }
    const int64_t E = C / 3, Dh = E / n_heads;
    int64_t scores[TENSOR_MAX_DIMS];
    memcpy(scores, qkv->shape, sizeof(int64_t) * (size_t)(nd - 2));
    scores[nd - 2] = n_heads, scores[nd - 1] = T, scores[nd] = T;
    if (sdpa_check_mask_dropout(op, mask, nd + 1, scores, dropout_p, g)) return NULL;
    int64_t out_shape[TENSOR_MAX_DIMS];
    memcpy(out_shape, qkv->shape, sizeof(int64_t) * (size_t)nd);
    out_shape[nd - 1] = E;
    tensor *in[2] = {qkv, mask};
    tape_node *n = tg_node_begin(op, in, 2, qkv->dtype, nd, out_shape);
    if (!n) return NULL;
    n->ip[0] = causal;
    n->ip[1] = tg_shape_numel(nd - 2, qkv->shape) * n_heads, n->ip[2] = T, n->ip[3] = T;
    n->ip[4] = Dh, n->ip[5] = Dh, n->ip[6] = n_heads;
    return sdpa_node_finish(n, mask, nd + 1, scores, dropout_p, g);
}

/* ---------------------------------------------------------------- samples */

/* True when the dropout mask that seed draws (as the builder does) keeps
 * some of its n values and drops some. */
static bool sdpa_seed_mixed(uint64_t seed, int64_t cnt, double p) {
    rng r;
    rng_seed(&r, seed, 1);
    int64_t kept = 0;
    for (int64_t i = 0; i < cnt; i++) kept += rng_uniform(&r) >= p;
    return kept > 0 && kept < cnt;
}

/* A sample mask of shape ms (float64 or int64): about a third masked, then
 * keys 0 and 1 unmasked in every row it holds: every query keeps a key (with
 * causal, key 0 is the one all see), and the queries past the first keep
 * two, so that no case's softmax is constant (a vacuous gradient for q and
 * k). NULL when out of memory. */
static tensor *sample_mask(rng *g, int mnd, const int64_t *ms, bool float_mask) {
    tensor *m = tensor_zeros(float_mask ? DTYPE_F64 : DTYPE_I64, mnd, ms);
    if (!m) return NULL;
    for (int64_t e = 0; e < m->size; e++) tensor_set(m, e, rng_below(g, 3) == 0);
    const int64_t cols = ms[mnd - 1];
    for (int64_t e = 0; e < m->size; e += cols) {
        tensor_set(m, e, 0);
        if (cols > 1) tensor_set(m, e + 1, 0);
    }
    return m;
}

/* Cases: batch dims, Tq != Tk, D != Dv, a mask broadcast over heads and
 * queries (key padding) and a full one, causal (square and Tq != Tk), an
 * int64 and a float64 mask, and dropout with a fixed seed. Inputs q, k, v
 * and the mask when there is one. ip: [0] causal, [1] has mask, [2] the
 * dropout mask's seed; fp[0] dropout_p. The masks leave every row at least
 * one key (a fully masked row is tested by hand: its gradient is 0). */
static int sdpa_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int nd;
        int64_t q[4], tk, dv;
        int mnd;
        int64_t m[4];
        bool causal, float_mask;
        double p;
    } cases[] = {
        {2, {3, 4}, 5, 3, 0, {0}, false, false, 0},                    /* no batch, Tq != Tk */
        {3, {2, 4, 3}, 4, 2, 0, {0}, true, false, 0},                  /* causal, square */
        {4, {2, 2, 3, 4}, 5, 3, 4, {2, 1, 1, 5}, false, false, 0},     /* key padding */
        {3, {2, 4, 2}, 4, 3, 2, {4, 4}, true, true, 0},                /* causal + float mask */
        {3, {2, 5, 3}, 3, 2, 0, {0}, true, false, 0},                  /* causal, Tq > Tk */
        {4, {1, 2, 3, 4}, 4, 4, 4, {1, 2, 3, 4}, false, false, 0},     /* a mask per head */
        {3, {2, 3, 4}, 5, 3, 0, {0}, false, false, 0.3},               /* dropout */
        {3, {2, 4, 3}, 4, 2, 1, {4}, true, false, 0.25},               /* dropout + causal + mask */
    };
    if (k >= (int)(sizeof cases / sizeof cases[0])) return 1;
    const int nd = cases[k].nd;
    int64_t qs[4], ks[4], vs[4];
    memcpy(qs, cases[k].q, sizeof qs);
    memcpy(ks, qs, sizeof ks);
    ks[nd - 2] = cases[k].tk;
    memcpy(vs, ks, sizeof vs);
    vs[nd - 1] = cases[k].dv;
    const bool has_mask = cases[k].mnd > 0;
    s->n_inputs = has_mask ? 4 : 3;
    s->no_grad_mask = 8u;
    s->inputs[0] = tg_sample_tensor(g, nd, qs, -1.5, 1.5);
    s->inputs[1] = tg_sample_tensor(g, nd, ks, -1.5, 1.5);
    s->inputs[2] = tg_sample_tensor(g, nd, vs, -1.5, 1.5);
    if (has_mask && !(s->inputs[3] = sample_mask(g, cases[k].mnd, cases[k].m, cases[k].float_mask))) return -1;
    s->ip[0] = cases[k].causal;
    s->ip[1] = has_mask;
    s->fp[0] = cases[k].p;
    const int64_t n_drop = tg_shape_numel(nd - 1, qs) * cases[k].tk;
    do
        s->ip[2] = rng_next_u32(g);
    while (cases[k].p > 0 && !sdpa_seed_mixed((uint64_t)s->ip[2], n_drop, cases[k].p));
    char a[64], b[64], c[64], d[64];
    tg_sample_name(s, "q%s k%s v%s%s%s%s%s", tensor_shape_str(s->inputs[0], a, sizeof a),
                tensor_shape_str(s->inputs[1], b, sizeof b),
                tensor_shape_str(s->inputs[2], c, sizeof c), has_mask ? " mask" : "",
                has_mask ? tensor_shape_str(s->inputs[3], d, sizeof d) : "",
                cases[k].causal ? " causal" : "", cases[k].p > 0 ? " dropout" : "");
    for (int i = 0; i < s->n_inputs; i++)
        if (!s->inputs[i]) return -1;
    return 0;
}

static tensor *sdpa_build(tensor *const *in, const op_sample *s) {
    rng g;
    rng_seed(&g, (uint64_t)s->ip[2], 1);
    return tensor_scaled_dot_product_attention(in[0], in[1], in[2], s->ip[1] ? in[3] : NULL,
                                               s->ip[0], s->fp[0], &g);
}

/* sdpa_heads' cases, as sdpa's: no batch dims, causal, key padding [B,1,1,T],
 * causal with a float mask over two batch dims, a mask per head, dropout,
 * and dropout with causal and a mask. Inputs qkv and the mask when there
 * is one. ip: [0] causal, [1] has mask, [2] the dropout mask's seed, [3]
 * n_heads; fp[0] dropout_p. Every row keeps a key, the queries past the
 * first two (see sdpa_sample). */
static int sdpa_heads_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int nd;
        int64_t x[4], heads;
        int mnd;
        int64_t m[4];
        bool causal, float_mask;
        double p;
    } cases[] = {
        {2, {4, 12}, 2, 0, {0}, false, false, 0},                  /* no batch, Dh 2 */
        {3, {2, 4, 18}, 3, 0, {0}, true, false, 0},                /* causal, 3 heads */
        {3, {2, 5, 12}, 2, 4, {2, 1, 1, 5}, false, false, 0},      /* key padding */
        {4, {2, 1, 3, 12}, 2, 2, {3, 3}, true, true, 0},           /* causal + float mask */
        {3, {1, 3, 18}, 3, 4, {1, 3, 3, 3}, false, false, 0},      /* a mask per head */
        {3, {2, 3, 12}, 2, 0, {0}, false, false, 0.3},             /* dropout */
        {3, {2, 4, 12}, 2, 1, {4}, true, false, 0.25},             /* dropout + causal + mask */
        {3, {2, 3, 9}, 1, 0, {0}, false, false, 0},                /* one head */
    };
    if (k >= (int)(sizeof cases / sizeof cases[0])) return 1;
    const int nd = cases[k].nd;
    const bool has_mask = cases[k].mnd > 0;
    s->n_inputs = has_mask ? 2 : 1;
    s->no_grad_mask = 2u;
    s->inputs[0] = tg_sample_tensor(g, nd, cases[k].x, -1.5, 1.5);
    if (!s->inputs[0]) return -1;
    if (has_mask && !(s->inputs[1] = sample_mask(g, cases[k].mnd, cases[k].m, cases[k].float_mask))) return -1;
    s->ip[0] = cases[k].causal;
    s->ip[1] = has_mask;
    s->ip[3] = cases[k].heads;
    s->fp[0] = cases[k].p;
    const int64_t T = cases[k].x[nd - 2];
    const int64_t n_drop = tg_shape_numel(nd - 2, cases[k].x) * cases[k].heads * T * T;
    do
        s->ip[2] = rng_next_u32(g);
    while (cases[k].p > 0 && !sdpa_seed_mixed((uint64_t)s->ip[2], n_drop, cases[k].p));
    char a[64], d[64];
    tg_sample_name(s, "qkv%s heads %lld%s%s%s%s", tensor_shape_str(s->inputs[0], a, sizeof a),
                   (long long)cases[k].heads, has_mask ? " mask" : "",
                   has_mask ? tensor_shape_str(s->inputs[1], d, sizeof d) : "",
                   cases[k].causal ? " causal" : "", cases[k].p > 0 ? " dropout" : "");
    return 0;
}

static tensor *sdpa_heads_build(tensor *const *in, const op_sample *s) {
    rng g;
    rng_seed(&g, (uint64_t)s->ip[2], 1);
    return tensor_sdpa_heads(in[0], s->ip[3], s->ip[1] ? in[1] : NULL, s->ip[0], s->fp[0], &g);
}

/* ---------------------------------------------------------------- registry */

const op_def tg_ops_attention[] = {
    [SDPA] = {"scaled_dot_product_attention", 4, 8u, sdpa_forward, sdpa_vjp, sdpa_sample, sdpa_build,
     "tensor_scaled_dot_product_attention(q, k, v, mask, causal, dropout_p, rng)",
     "y = (P * M) v, P = softmax over the allowed keys of q k^T / sqrt(D) (0 elsewhere); "
     "q [.., Tq, D], k [.., Tk, D], v [.., Tk, Dv], y [.., Tq, Dv]; M the dropout mask "
     "(keep / (1 - dropout_p), or 1)",
     "dv = (P * M)^T g; dP = (g v^T) * M; dS = P * (dP - rowsum(P * dP)); "
     "dq = dS k / sqrt(D), dk = dS^T q / sqrt(D)",
     "one fused kernel (GEMMs through ops/blas.c); saves P (and M, P * M with dropout). Key j is "
     "excluded for query i where the mask (any dtype, nonzero = excluded, broadcast to "
     "[.., Tq, Tk]; a float mask is read as truth, not added) is set, or j > i when causal "
     "(top-left aligned, as PyTorch's is_causal). Excluded positions get exactly zero weight and "
     "pass exactly zero gradient; a query with no allowed key gives a zero output row and zero "
     "gradients (PyTorch gives NaN). q, k and v share their batch dims (no broadcasting); "
     "dropout_p in [0, 1), its mask drawn from rng when the op is built (rng may be NULL when "
     "dropout_p = 0). Samples: inputs q, k, v[, mask]",
     .vjp_graph = sdpa_vjp_graph},
    [SDPA_HEADS] = {"sdpa_heads", 2, 2u, sdpa_forward, sdpa_vjp, sdpa_heads_sample, sdpa_heads_build,
     "tensor_sdpa_heads(qkv, n_heads, mask, causal, dropout_p, rng)",
     "y[.., :, h] = scaled_dot_product_attention(q_h, k_h, v_h) for each head h: qkv [.., T, 3E] = "
     "q | k | v along the last dim, each of n_heads heads of Dh = E / n_heads side by side "
     "(q_h = q[.., :, h Dh : (h + 1) Dh]); y [.., T, E] the heads merged in the same order",
     "per head, as scaled_dot_product_attention's: dv_h = (P * M)^T g_h; dP = (g_h v_h^T) * M; "
     "dS = P * (dP - rowsum(P * dP)); dq_h = dS k_h / sqrt(Dh), dk_h = dS^T q_h / sqrt(Dh); "
     "dqkv = dq | dk | dv, packed as qkv",
     "self-attention on a packed [.., T, 3E] projection (PyTorch's in_proj layout) without "
     "materialising the head split and merge: the kernel of scaled_dot_product_attention reads "
     "each head's columns of qkv in place and writes y and dqkv in the packed layout. The mask "
     "(any dtype, nonzero = excluded) broadcasts to the scores [.., H, T, T]; causal, dropout "
     "(drawn in the scores' order, as split heads + scaled_dot_product_attention draw it), fully "
     "masked rows and exact zeros as scaled_dot_product_attention. The graph vjp splits the heads "
     "with narrow, reshape and permute. Samples: inputs qkv[, mask]",
     .vjp_graph = sdpa_heads_vjp_graph},
};
const int tg_ops_attention_count = N_ATTENTION_OPS;
_Static_assert(sizeof tg_ops_attention / sizeof tg_ops_attention[0] == N_ATTENTION_OPS,
               "tg_ops_attention: one entry per op of its enum");
