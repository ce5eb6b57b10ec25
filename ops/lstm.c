/* lstm.c - the LSTM cell's elementwise part as two fused ops, so a time step
 * records two nodes instead of four gate narrows, four activations and five
 * products and sums (nn/rnn.c).
 *
 * gates [B, 4H] are the pre-activations x W_ih^T + h W_hh^T + biases, in
 * PyTorch's order i, f, g, o (each a block of H columns of a row):
 *   lstm_cell_c(gates, c_prev):  c = sigma(f) c_prev + sigma(i) tanh(g)      [B, H]
 *   lstm_cell_h(gates, c):       h = sigma(o) tanh(c)                        [B, H]
 * Backward, with si = sigma(i), sf = sigma(f), tg = tanh(g), so = sigma(o),
 * tc = tanh(c) and G the upstream gradient:
 *   cell_c:  d gates_i += G tg si (1 - si)     d gates_f += G c_prev sf (1 - sf)
 *            d gates_g += G si (1 - tg^2)      d c_prev += G sf       (o: none)
 *   cell_h:  d gates_o += G tc so (1 - so)     d c += G so (1 - tc^2) (i, f, g: none)
 * The forward keeps the activations in saved[0] (cell_c: [B, 3H] = si | sf |
 * tg per row; cell_h: [B, 2H] = so | tc), so each vjp is one pass over
 * contiguous rows. float32 runs the vectorised sigmoid and tanh of
 * act_kernels.c (the variant in use); float64 keeps libm, like activation.c.
 * lstm_seq runs a whole sequence of cells as one node (below). */
#include <limits.h>

#include "act_kernels.h"
#include "blas.h"
#include "elementwise.h"

/* sigma(x) = 1 / (1 + e^-x), with e^-|x| only, so nothing overflows */
static inline double lstm_sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* The activations of row b, written to its block of saved[0]. float32: the
 * variant's kernels; float64: libm. */
static void act_rows_float(const float *x, float *z, int64_t n, bool is_tanh) {
    const act_kernels *k = tg_act_kernels_run();
    (is_tanh ? k->tanh : k->sigmoid)(x, z, n);
}
static void act_rows_double(const double *x, double *z, int64_t n, bool is_tanh) {
    for (int64_t j = 0; j < n; j++) z[j] = is_tanh ? tanh(x[j]) : lstm_sigmoid(x[j]);
}

#define LSTM_KERNELS(T)                                                                  \
    /* c = sf c_prev + si tg;  saved[0] row = si | sf | tg */                            \
    static void cell_c_fwd_##T(tape_node *n) {                                           \
        const int64_t B = n->out->shape[0], H = n->out->shape[1];                        \
        const T *X = n->in[0]->data, *CP = n->in[1]->data;                               \
        T *S = n->saved[0]->data, *C = n->out->data;                                     \
        TG_PAR_FOR(b, B, B * 4 * H, {                                                    \
            const T *x = X + b * 4 * H, *cp = CP + b * H;                                \
            T *s = S + b * 3 * H, *c = C + b * H;                                        \
            act_rows_##T(x, s, 2 * H, false);                                            \
            act_rows_##T(x + 2 * H, s + 2 * H, H, true);                                 \
            _Pragma("omp simd")                                                          \
            for (int64_t j = 0; j < H; j++) c[j] = s[H + j] * cp[j] + s[j] * s[2 * H + j]; \
        });                                                                              \
    }                                                                                    \
    static void cell_c_bwd_##T(tape_node *n, tensor *const *gin) {                       \
        const int64_t B = n->out->shape[0], H = n->out->shape[1];                        \
        const T *G = n->out->grad->data, *CP = n->in[1]->data, *S = n->saved[0]->data;   \
        T *DX = gin[0] ? gin[0]->data : NULL, *DC = gin[1] ? gin[1]->data : NULL;        \
        TG_PAR_FOR(b, B, B * 4 * H, {                                                    \
            const T *g = G + b * H, *cp = CP + b * H, *s = S + b * 3 * H;                \
            if (DX) {                                                                    \
                T *dx = DX + b * 4 * H;                                                  \
                _Pragma("omp simd")                                                      \
                for (int64_t j = 0; j < H; j++) {                                        \
                    const T si = s[j], sf = s[H + j], tg = s[2 * H + j];                 \
                    dx[j] += g[j] * tg * (si * (1 - si));                                \
                    dx[H + j] += g[j] * cp[j] * (sf * (1 - sf));                         \
                    dx[2 * H + j] += g[j] * si * (1 - tg * tg);                          \
                }                                                                        \
            }                                                                            \
            if (DC) {                                                                    \
                T *dc = DC + b * H;                                                      \
                _Pragma("omp simd")                                                      \
                for (int64_t j = 0; j < H; j++) dc[j] += g[j] * s[H + j];                \
            }                                                                            \
        });                                                                              \
    }                                                                                    \
    /* h = so tc;  saved[0] row = so | tc */                                             \
    static void cell_h_fwd_##T(tape_node *n) {                                           \
        const int64_t B = n->out->shape[0], H = n->out->shape[1];                        \
        const T *X = n->in[0]->data, *CC = n->in[1]->data;                               \
        T *S = n->saved[0]->data, *Y = n->out->data;                                     \
        TG_PAR_FOR(b, B, B * 2 * H, {                                                    \
            T *s = S + b * 2 * H, *y = Y + b * H;                                        \
            act_rows_##T(X + b * 4 * H + 3 * H, s, H, false);                            \
            act_rows_##T(CC + b * H, s + H, H, true);                                    \
            _Pragma("omp simd")                                                          \
            for (int64_t j = 0; j < H; j++) y[j] = s[j] * s[H + j];                      \
        });                                                                              \
    }                                                                                    \
    static void cell_h_bwd_##T(tape_node *n, tensor *const *gin) {                       \
        const int64_t B = n->out->shape[0], H = n->out->shape[1];                        \
        const T *G = n->out->grad->data, *S = n->saved[0]->data;                         \
        T *DX = gin[0] ? gin[0]->data : NULL, *DC = gin[1] ? gin[1]->data : NULL;        \
        TG_PAR_FOR(b, B, B * 2 * H, {                                                    \
            const T *g = G + b * H, *s = S + b * 2 * H;                                  \
            if (DX) {                                                                    \
                T *dx = DX + b * 4 * H + 3 * H;                                          \
                _Pragma("omp simd")                                                      \
                for (int64_t j = 0; j < H; j++)                                          \
                    dx[j] += g[j] * s[H + j] * (s[j] * (1 - s[j]));                      \
            }                                                                            \
            if (DC) {                                                                    \
                T *dc = DC + b * H;                                                      \
                _Pragma("omp simd")                                                      \
                for (int64_t j = 0; j < H; j++)                                          \
                    dc[j] += g[j] * s[j] * (1 - s[H + j] * s[H + j]);                    \
            }                                                                            \
        });                                                                              \
    }
LSTM_KERNELS(float)
LSTM_KERNELS(double)

static void cell_c_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32) cell_c_fwd_float(n);
    else cell_c_fwd_double(n);
}
static void cell_c_vjp(tape_node *n, tensor *const *gin) {
    if (n->out->dtype == DTYPE_F32) cell_c_bwd_float(n, gin);
    else cell_c_bwd_double(n, gin);
}
static void cell_h_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32) cell_h_fwd_float(n);
    else cell_h_fwd_double(n);
}
static void cell_h_vjp(tape_node *n, tensor *const *gin) {
    if (n->out->dtype == DTYPE_F32) cell_h_bwd_float(n, gin);
    else cell_h_bwd_double(n, gin);
}

/* ------------------------------------------------------------- lstm_seq
 * The whole sequence of a one-layer LSTM as one node, so that the weight
 * gradient of the recurrence is one GEMM over all steps instead of T
 * products of inner size B, and a step records nothing. With gi [T, B, 4H]
 * ([B, T, 4H] with batch_first, ip[0]) the input projections (biases
 * included), W = w_hh [4H, H], h_{-1} = h0, c_{-1} = c0 [B, H]:
 *   gates_t = gi_t + h_{t-1} W^T,   c_t = lstm_cell_c(gates_t, c_{t-1}),
 *   h_t = lstm_cell_h(gates_t, c_t),   y_t = h_t | c_t   (y [T, B, 2H] or [B, T, 2H])
 * Backward, from t = T-1 down, with dh, dc the gradients flowing back into
 * h_t, c_t from step t+1 (0 at the end) and G the upstream gradient:
 *   gh = G_h + dh,  gc = G_c + dc + gh so (1 - tc^2)
 *   dgates_t = [gc tg si(1-si) | gc c_{t-1} sf(1-sf) | gc si (1-tg^2) | gh tc so(1-so)]
 *   dc = gc sf,  dh = dgates_t W,  dgi_t += dgates_t
 * then dW += sum_t dgates_t^T h_{t-1} (one GEMM), dh0 += dh, dc0 += dc.
 * saved: [0] the activations si | sf | tg | so [T, B, 4H] (time-major),
 * [1] tanh c_t [T, B, H], [2] h_{t-1} [T, B, H], [3] c_{t-1} [T, B, H].
 * ip: [0] batch_first, [1] T, [2] B, [3] H. */
static inline int64_t seq_row(const tape_node *n, int64_t t, int64_t b) {
    return n->ip[0] ? b * n->ip[1] + t : t * n->ip[2] + b;
}

#define SEQ_KERNELS(T)                                                                   \
    static void seq_fwd_##T(tape_node *n) {                                              \
        const int64_t Tn = n->ip[1], B = n->ip[2], H = n->ip[3];                         \
        const T *GI = n->in[0]->data, *W = n->in[1]->data;                               \
        T *Y = n->out->data, *A = n->saved[0]->data, *TC = n->saved[1]->data;            \
        T *HP = n->saved[2]->data, *CP = n->saved[3]->data;                              \
        /* W^T [H, 4H] for the A B form of the recurrent product (tg_blas_rows_ab) */   \
        T *WT = n->saved[4] ? n->saved[4]->data : NULL;                                  \
        if (WT)                                                                          \
            for (int64_t r0 = 0; r0 < 4 * H; r0 += 16)                                   \
                for (int64_t j = 0; j < H; j++)                                          \
                    for (int64_t r = r0; r < r0 + 16 && r < 4 * H; r++)                  \
                        WT[j * 4 * H + r] = W[r * H + j];                                \
        memcpy(HP, n->in[2]->data, (size_t)(B * H) * sizeof(T));                         \
        memcpy(CP, n->in[3]->data, (size_t)(B * H) * sizeof(T));                         \
        for (int64_t t = 0; t < Tn; t++) {                                               \
            T *a = A + t * B * 4 * H;                                                    \
            for (int64_t b = 0; b < B; b++)                                              \
                memcpy(a + b * 4 * H, GI + seq_row(n, t, b) * 4 * H,                     \
                       (size_t)(4 * H) * sizeof(T));                                     \
            if (WT)                                                                      \
                blas_gemm_##T(false, false, B, 4 * H, H, HP + t * B * H, H, WT, 4 * H, 1, a, 4 * H); \
            else                                                                         \
                blas_gemm_##T(false, true, B, 4 * H, H, HP + t * B * H, H, W, H, 1, a, 4 * H); \
            for (int64_t b = 0; b < B; b++) {                                            \
                T *ab = a + b * 4 * H, *y = Y + seq_row(n, t, b) * 2 * H;                \
                T *tc = TC + (t * B + b) * H;                                            \
                const T *cp = CP + (t * B + b) * H;                                      \
                act_rows_##T(ab, ab, 2 * H, false);                                      \
                act_rows_##T(ab + 2 * H, ab + 2 * H, H, true);                           \
                act_rows_##T(ab + 3 * H, ab + 3 * H, H, false);                          \
                _Pragma("omp simd")                                                      \
                for (int64_t j = 0; j < H; j++)                                          \
                    y[H + j] = ab[H + j] * cp[j] + ab[j] * ab[2 * H + j];                \
                act_rows_##T(y + H, tc, H, true);                                        \
                _Pragma("omp simd")                                                      \
                for (int64_t j = 0; j < H; j++) y[j] = ab[3 * H + j] * tc[j];            \
                if (t + 1 < Tn) {                                                        \
                    memcpy(HP + ((t + 1) * B + b) * H, y, (size_t)H * sizeof(T));        \
                    memcpy(CP + ((t + 1) * B + b) * H, y + H, (size_t)H * sizeof(T));    \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    static void seq_bwd_##T(tape_node *n, tensor *const *gin) {                          \
        const int64_t Tn = n->ip[1], B = n->ip[2], H = n->ip[3];                         \
        const T *G = n->out->grad->data, *W = n->in[1]->data, *A = n->saved[0]->data;    \
        const T *TC = n->saved[1]->data, *HP = n->saved[2]->data, *CP = n->saved[3]->data; \
        T *DGI = gin[0] ? gin[0]->data : NULL, *DW = gin[1] ? gin[1]->data : NULL;       \
        T *DH0 = gin[2] ? gin[2]->data : NULL, *DC0 = gin[3] ? gin[3]->data : NULL;      \
        /* dgates of every step (each written before it is read), dh and dc */          \
        tensor *scratch = tg_tensor_tape_new(n->out->dtype, 1,                           \
                                             (int64_t[]){Tn * B * 4 * H + 2 * B * H});   \
        if (!scratch) return;                                                            \
        T *DG = scratch->data, *dh = DG + Tn * B * 4 * H, *dc = dh + B * H;              \
        memset(dh, 0, (size_t)(2 * B * H) * sizeof(T));                                  \
        /* fresh buffers (op_def.vjp_fresh) are written, not added to; each is taken  \
         * once, before its first write, so one tensor given twice (h0 = c0) adds */   \
        const bool wgi = DGI && tg_grad_take_fresh(gin[0]);                              \
        const T dw_beta = DW && tg_grad_take_fresh(gin[1]) ? 0 : 1;                      \
        const bool wh0 = DH0 && tg_grad_take_fresh(gin[2]);                              \
        const bool wc0 = DC0 && tg_grad_take_fresh(gin[3]);                              \
        for (int64_t t = Tn - 1; t >= 0; t--) {                                          \
            for (int64_t b = 0; b < B; b++) {                                            \
                const T *restrict a = A + (t * B + b) * 4 * H;                           \
                const T *restrict tc = TC + (t * B + b) * H;                             \
                const T *restrict cp = CP + (t * B + b) * H;                             \
                const T *restrict g = G + seq_row(n, t, b) * 2 * H;                      \
                T *restrict dg = DG + (t * B + b) * 4 * H;                               \
                const T *restrict dhb = dh + b * H;                                      \
                T *restrict dcb = dc + b * H;                                            \
                _Pragma("omp simd")                                                      \
                for (int64_t j = 0; j < H; j++) {                                        \
                    const T si = a[j], sf = a[H + j], tg = a[2 * H + j], so = a[3 * H + j]; \
                    const T gh = g[j] + dhb[j];                                          \
                    const T gc = g[H + j] + dcb[j] + gh * so * (1 - tc[j] * tc[j]);      \
                    dg[j] = gc * tg * (si * (1 - si));                                   \
                    dg[H + j] = gc * cp[j] * (sf * (1 - sf));                            \
                    dg[2 * H + j] = gc * si * (1 - tg * tg);                             \
                    dg[3 * H + j] = gh * tc[j] * (so * (1 - so));                        \
                    dcb[j] = gc * sf;                                                    \
                }                                                                        \
                if (DGI) {                                                               \
                    T *restrict d = DGI + seq_row(n, t, b) * 4 * H;                      \
                    if (wgi) {                                                           \
                        _Pragma("omp simd")                                              \
                        for (int64_t j = 0; j < 4 * H; j++) d[j] = dg[j];                \
                    } else {                                                             \
                        _Pragma("omp simd")                                              \
                        for (int64_t j = 0; j < 4 * H; j++) d[j] += dg[j];               \
                    }                                                                    \
                }                                                                        \
            }                                                                            \
            if (t > 0 || DH0)                                                            \
                blas_gemm_##T(false, false, B, H, 4 * H, DG + t * B * 4 * H, 4 * H, W, H, 0, dh, H); \
        }                                                                                \
        if (DW) blas_gemm_##T(true, false, 4 * H, H, Tn * B, DG, 4 * H, HP, H, dw_beta, DW, H); \
        for (int64_t i = 0; i < B * H; i++) {                                            \
            if (DH0) DH0[i] = wh0 ? dh[i] : DH0[i] + dh[i];                              \
            if (DC0) DC0[i] = wc0 ? dc[i] : DC0[i] + dc[i];                              \
        }                                                                                \
    }
SEQ_KERNELS(float)
SEQ_KERNELS(double)

static void seq_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32) seq_fwd_float(n);
    else seq_fwd_double(n);
}
static void seq_vjp(tape_node *n, tensor *const *gin) {
    if (n->out->dtype == DTYPE_F32) seq_bwd_float(n, gin);
    else seq_bwd_double(n, gin);
}

/* ---------------------------------------------------------------- samples */

/* gates [B, 4H] in [-2.5, 2.5) (both tails of sigmoid and tanh) and the
 * state [B, H] in [-2, 2); ip[0] = H for the name. */
static int cell_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int64_t B, H;
    } cases[] = {{2, 3}, {1, 1}, {3, 2}, {1, 5}};
    if (k >= 4) return 1;
    s->n_inputs = 2;
    s->inputs[0] = tg_sample_tensor(g, 2, (int64_t[]){cases[k].B, 4 * cases[k].H}, -2.5, 2.5);
    s->inputs[1] = tg_sample_tensor(g, 2, (int64_t[]){cases[k].B, cases[k].H}, -2.0, 2.0);
    if (!s->inputs[0] || !s->inputs[1]) return -1;
    char sx[64], sc[64];
    tg_sample_name(s, "gates %s, state %s", tensor_shape_str(s->inputs[0], sx, sizeof sx),
                   tensor_shape_str(s->inputs[1], sc, sizeof sc));
    return 0;
}

/* lstm_seq: gi [T, B, 4H] (or [B, T, 4H], ip[0] batch_first) in [-2, 2),
 * w_hh [4H, H], h0, c0 [B, H] in [-1, 1). */
static int seq_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int64_t T, B, H, bf;
    } cases[] = {{3, 2, 2, 0}, {2, 1, 3, 1}, {1, 3, 1, 0}, {4, 2, 1, 1},
                 {2, 8, 2, 1}}; /* 8 rows: the A (W^T) form on v4 in float32 (blas.h) */
    if (k >= 5) return 1;
    int64_t T = cases[k].T, B = cases[k].B, H = cases[k].H;
    bool bf = cases[k].bf;
    s->n_inputs = 4;
    s->ip[0] = bf;
    s->inputs[0] = tg_sample_tensor(g, 3, (int64_t[]){bf ? B : T, bf ? T : B, 4 * H}, -2.0, 2.0);
    s->inputs[1] = tg_sample_tensor(g, 2, (int64_t[]){4 * H, H}, -1.0, 1.0);
    s->inputs[2] = tg_sample_tensor(g, 2, (int64_t[]){B, H}, -1.0, 1.0);
    s->inputs[3] = tg_sample_tensor(g, 2, (int64_t[]){B, H}, -1.0, 1.0);
    for (int i = 0; i < 4; i++)
        if (!s->inputs[i]) return -1;
    char sx[64];
    tg_sample_name(s, "gi %s%s, H %lld", tensor_shape_str(s->inputs[0], sx, sizeof sx),
                   bf ? " batch_first" : "", (long long)H);
    return 0;
}
static tensor *seq_build(tensor *const *in, const op_sample *s) {
    return tensor_lstm_seq(in[0], in[1], in[2], in[3], s->ip[0]);
}

static tensor *cell_c_build(tensor *const *in, const op_sample *s) {
    (void)s;
    return tensor_lstm_cell_c(in[0], in[1]);
}
static tensor *cell_h_build(tensor *const *in, const op_sample *s) {
    (void)s;
    return tensor_lstm_cell_h(in[0], in[1]);
}

/* ------------------------------------------------------ graph vjps
 * By decomposition: the forward rebuilt from narrow, sigmoid, tanh, mul and
 * add, differentiated with create_graph (tg_vjp_graph_by_decomposition). */
static tensor *gate_of(tensor *gates, int k) {
    int64_t H = gates->shape[1] / 4;
    return tensor_narrow(gates, 1, k * H, H);
}
static int cell_c_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *x = n->in[0], *cp = n->in[1];
    tensor *c = tensor_add(tensor_mul(tensor_sigmoid(gate_of(x, 1)), cp),
                           tensor_mul(tensor_sigmoid(gate_of(x, 0)), tensor_tanh(gate_of(x, 2))));
    return tg_vjp_graph_by_decomposition(n, c, g, want, gin);
}
static int cell_h_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *x = n->in[0], *c = n->in[1];
    tensor *h = tensor_mul(tensor_sigmoid(gate_of(x, 3)), tensor_tanh(c));
    return tg_vjp_graph_by_decomposition(n, h, g, want, gin);
}

/* lstm_seq: the steps rebuilt from narrow, reshape, linear, add, the two
 * cell ops, concat and stack */
static int seq_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    const int64_t Tn = n->ip[1], B = n->ip[2], H = n->ip[3];
    const int ta = n->ip[0] ? 1 : 0;
    tensor *gi = n->in[0], *w = n->in[1], *h = n->in[2], *c = n->in[3];
    tensor **ys = tg_mem_alloc((size_t)Tn * sizeof *ys);
    if (!ys) return -1;
    for (int64_t t = 0; t < Tn; t++) {
        tensor *gates = tensor_add(tensor_reshape(tensor_narrow(gi, ta, t, 1), 2, (int64_t[]){B, 4 * H}),
                                   tensor_linear(h, w, NULL));
        c = tensor_lstm_cell_c(gates, c);
        h = tensor_lstm_cell_h(gates, c);
        ys[t] = tensor_concat((tensor *[]){h, c}, 2, 1);
    }
    tensor *y = tensor_stack(ys, (int)Tn, ta);
    tg_mem_free(ys);
    return tg_vjp_graph_by_decomposition(n, y, g, want, gin);
}

/* ---------------------------------------------------------- registry */

/* The lstm family: index of each op in tg_ops_lstm, its entry below. */
enum { LSTM_CELL_C, LSTM_CELL_H, LSTM_SEQ, N_LSTM_OPS };
#define OP(i) (&tg_ops_lstm[i])

const op_def tg_ops_lstm[] = {
    [LSTM_CELL_C] = {"lstm_cell_c", 2, 0, cell_c_forward, cell_c_vjp, cell_sample, cell_c_build,
     "tensor_lstm_cell_c(gates, c_prev)",
     "c = sigmoid(f) * c_prev + sigmoid(i) * tanh(g), where i, f, g, o are the blocks of H "
     "columns of gates [B, 4H] in that order; c [B, H]",
     "d gates_i = G * tanh(g) * si (1 - si), d gates_f = G * c_prev * sf (1 - sf), "
     "d gates_g = G * si * (1 - tanh(g)^2), d gates_o = 0 (si = sigmoid(i), sf = sigmoid(f)); "
     "d c_prev = G * sf",
     "the LSTM cell state update of torch.nn.LSTM (gate order i, f, g, o); gates are the "
     "pre-activations x W_ih^T + h W_hh^T + biases",
     .vjp_graph = cell_c_vjp_graph},
    [LSTM_CELL_H] = {"lstm_cell_h", 2, 0, cell_h_forward, cell_h_vjp, cell_sample, cell_h_build,
     "tensor_lstm_cell_h(gates, c)",
     "h = sigmoid(o) * tanh(c), where o is the last block of H columns of gates [B, 4H]; h [B, H]",
     "d gates_o = G * tanh(c) * so (1 - so), d gates_i = d gates_f = d gates_g = 0 "
     "(so = sigmoid(o)); d c = G * so * (1 - tanh(c)^2)",
     "the LSTM hidden state of torch.nn.LSTM; c is the new cell state (lstm_cell_c)",
     .vjp_graph = cell_h_vjp_graph},
    [LSTM_SEQ] = {"lstm_seq", 4, 0, seq_forward, seq_vjp, seq_sample, seq_build,
     "tensor_lstm_seq(gi, w_hh, h0, c0, batch_first)",
     "for t = 0..T-1: gates_t = gi_t + h_{t-1} w_hh^T, c_t = lstm_cell_c(gates_t, c_{t-1}), "
     "h_t = lstm_cell_h(gates_t, c_t) (h_{-1} = h0, c_{-1} = c0 [B, H]); y_t = h_t | c_t, "
     "y [T, B, 2H] ([B, T, 2H] with batch_first, like gi [T, B, 4H] / [B, T, 4H])",
     "backpropagation through time: per step (t down from T-1) the cell ops' gradients of "
     "gates_t with gh = G_h + dh, gc = G_c + dc + gh so (1 - tanh(c_t)^2); dgi_t = dgates_t, "
     "dh = dgates_t w_hh, dc = gc sf; then d w_hh = sum_t dgates_t^T h_{t-1} (one product), "
     "d h0 = dh, d c0 = dc",
     "torch.nn.LSTM's recurrence with the input projections (and both biases) already in gi: "
     "one node for the whole sequence",
     .vjp_graph = seq_vjp_graph, .vjp_fresh = true},
};
const int tg_ops_lstm_count = N_LSTM_OPS;
_Static_assert(sizeof tg_ops_lstm / sizeof tg_ops_lstm[0] == N_LSTM_OPS,
               "tg_ops_lstm: one entry per op of its enum");

/* ---------------------------------------------------------- builders */

/* gates [B, 4H] and a state [B, H] of one float dtype; the output [B, H]
 * with saved[0] [B, width H] for the activations. */
static tensor *cell_apply(const op_def *op, tensor *gates, tensor *state, const char *state_name,
                          int64_t width) {
    tensor *in[2] = {gates, state};
    if (tg_op_check_inputs(op, in, 2, 0) || tg_act_variant_check(gates)) return NULL;
    char sg[96], ss[96];
    if (gates->ndim != 2 || gates->shape[1] % 4 != 0 || state->ndim != 2 ||
        state->shape[0] != gates->shape[0] || state->shape[1] * 4 != gates->shape[1]) {
        tg_error_set("%s: needs gates [B, 4H] and %s [B, H], got gates %s and %s %s", op->name,
                     state_name, tensor_shape_str(gates, sg, sizeof sg), state_name,
                     tensor_shape_str(state, ss, sizeof ss));
        return NULL;
    }
    int64_t B = state->shape[0], H = state->shape[1];
    tape_node *n = tg_node_begin(op, in, 2, gates->dtype, 2, (int64_t[]){B, H});
    if (!n) return NULL;
    n->saved[0] = tg_tensor_tape_new(gates->dtype, 2, (int64_t[]){B, width * H});
    if (!n->saved[0]) return NULL;
    return tg_node_finish(n);
}

tensor *tensor_lstm_cell_c(tensor *gates, tensor *c_prev) {
    return cell_apply(OP(LSTM_CELL_C), gates, c_prev, "c_prev", 3);
}
tensor *tensor_lstm_cell_h(tensor *gates, tensor *c) {
    return cell_apply(OP(LSTM_CELL_H), gates, c, "c", 2);
}

tensor *tensor_lstm_seq(tensor *gi, tensor *w_hh, tensor *h0, tensor *c0, bool batch_first) {
    const op_def *op = OP(LSTM_SEQ);
    tensor *in[4] = {gi, w_hh, h0, c0};
    if (tg_op_check_inputs(op, in, 4, 0) || tg_act_variant_check(gi)) return NULL;
    int64_t T = 0, B = 0, H = 0;
    if (gi->ndim == 3) {
        T = gi->shape[batch_first ? 1 : 0];
        B = gi->shape[batch_first ? 0 : 1];
        H = gi->shape[2] / 4;
    }
    if (gi->ndim != 3 || T <= 0 || B <= 0 || H <= 0 || gi->shape[2] != 4 * H || T > INT_MAX ||
        w_hh->ndim != 2 || w_hh->shape[0] != 4 * H || w_hh->shape[1] != H || h0->ndim != 2 ||
        h0->shape[0] != B || h0->shape[1] != H || c0->ndim != 2 || c0->shape[0] != B ||
        c0->shape[1] != H) {
        char sg[96], sw[96], sh[96], sc[96];
        tg_error_set("lstm_seq: needs gi %s with every size > 0, w_hh [4H, H], h0 and c0 [B, H]; "
                     "got gi %s, w_hh %s, h0 %s, c0 %s",
                     batch_first ? "[B, T, 4H]" : "[T, B, 4H]", tensor_shape_str(gi, sg, sizeof sg),
                     tensor_shape_str(w_hh, sw, sizeof sw), tensor_shape_str(h0, sh, sizeof sh),
                     tensor_shape_str(c0, sc, sizeof sc));
        return NULL;
    }
    int64_t shape[3] = {gi->shape[0], gi->shape[1], 2 * H};
    tape_node *n = tg_node_begin(op, in, 4, gi->dtype, 3, shape);
    if (!n) return NULL;
    n->ip[0] = batch_first;
    n->ip[1] = T;
    n->ip[2] = B;
    n->ip[3] = H;
    n->saved[0] = tg_tensor_tape_new(gi->dtype, 3, (int64_t[]){T, B, 4 * H});
    for (int i = 1; i < 4; i++) {
        if (!n->saved[i - 1]) return NULL;
        n->saved[i] = tg_tensor_tape_new(gi->dtype, 3, (int64_t[]){T, B, H});
    }
    if (!n->saved[3]) return NULL;
    /* the recurrent product as h W^T, or as h (W^T) with W^T kept here where
     * the variant runs that form faster (blas.h) */
    if (tg_blas_rows_ab(tg_isa_in_use(), gi->dtype, B)) {
        n->saved[4] = tg_tensor_tape_new(gi->dtype, 2, (int64_t[]){H, 4 * H});
        if (!n->saved[4]) return NULL;
    }
    return tg_node_finish(n);
}
