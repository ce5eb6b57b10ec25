/* act_kernels.c - float32 e^x, sigmoid, tanh, GELU (tanh form) and softmax
 * rows, compiled once per ISA variant (act_kernels.h, isa.h).
 *
 * libm's expf and tanhf are scalar calls (about 10-25 ns each here), and the
 * float path used to go through double exp/tanh/expm1: GELU alone was a
 * third of a GPT step and the gates' sigmoid and tanh a quarter of an LSTM
 * step. Here every function is a few multiply-adds and one division, written
 * per element in plain C with no branch and no call, inside `omp simd`
 * loops, so each variant's compiler turns a loop into 4, 8 or 16 lanes.
 *
 * e^x: n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split
 * in two parts so n ln 2 is exact to 32 bits), e^r = 1 + r + r^2 P(r) with
 * P of degree 4 (relative error 3e-9 on the interval, fitted for this
 * file), and 2^n put into the exponent bits. 2^n is applied as two factors
 * 2^(n/2) 2^(n - n/2), so results down into the subnormals are one rounding
 * of p 2^n, and the clamp of x to [-104, 88.8] gives 0 and +inf (and keeps
 * NaN, which no comparison lets through) without a select on the result.
 *
 * tanh: |x| < 0.625: x + x^3 Q(x^2) with Q of degree 4 (relative error
 * 4e-9); else sign(x) (1 - 2 / (e^(2|x|) + 1)), where the subtraction loses
 * at most a factor 0.8 of the quotient's error. Both are computed and one
 * is selected (a branch would stop the vectorisation).
 *
 * sigmoid: e = e^-|x|, z = (x >= 0 ? 1 : e) / (1 + e): no overflow, and no
 * cancellation on either side. Its derivative sigma (1 - sigma) is
 * e / (1 + e)^2 on both sides, which GELU's vjp uses.
 *
 * GELU, tanh form: (1 + tanh u) / 2 = sigma(2u), so z = x sigma(2u): the
 * same function with no cancellation where tanh u -> -1 (x << 0). */
#include <math.h>
#include <stdint.h>

#include "act_kernels.h"

#define ACT_SIMD _Pragma("omp simd")

/* float <-> its bits, as the lanes see them */
typedef union {
    float f;
    uint32_t u;
} fbits;

/* e^r - 1 - r = r^2 P(r) on [-ln2/2, ln2/2]: P's coefficients, a
 * near-minimax fit (Chebyshev nodes, reweighted least squares) in float64,
 * rounded to float */
#define EXP_P0 0.49999993451f
#define EXP_P1 0.16666520688f
#define EXP_P2 0.041668387409f
#define EXP_P3 0.0083687100353f
#define EXP_P4 0.0013814611002f
/* ln 2 = LN2_HI + LN2_LO, LN2_HI with 16 significant bits, so n LN2_HI is
 * exact for |n| < 2^8 */
#define LN2_HI 0.693145751953125f
#define LN2_LO 1.42860682030941723212e-6f
#define LOG2E 1.44269504088896340736f
/* 1.5 2^23: adding it rounds a float of magnitude below 2^22 to an integer
 * held in the low bits of the sum */
#define ROUND_SHIFT 12582912.0f

static inline __attribute__((always_inline)) float exp_one(float x) {
    /* the clamp keeps NaN (both comparisons false) */
    const float xc = x > 88.8f ? 88.8f : (x < -104.0f ? -104.0f : x);
    fbits t = {.f = xc * LOG2E + ROUND_SHIFT};
    const float nf = t.f - ROUND_SHIFT;
    float r = xc - nf * LN2_HI;
    r = r - nf * LN2_LO;
    const float p = 1.0f + r + r * r * (EXP_P0 + r * (EXP_P1 + r * (EXP_P2 + r * (EXP_P3 + r * EXP_P4))));
    /* n in [-150, 128] (any int for NaN, whose p is NaN), in the low bits of t */
    const int32_t n = (int32_t)(t.u - 0x4B400000u);
    const int32_t n1 = n / 2, n2 = n - n1;
    const fbits s1 = {.u = (uint32_t)(n1 + 127) << 23}, s2 = {.u = (uint32_t)(n2 + 127) << 23};
    return p * s1.f * s2.f;
}

/* tanh(x) = x + x^3 Q(x^2) for |x| < 0.625, fitted like P */
#define TANH_Q0 -0.33333281943f
#define TANH_Q1 0.13331442215f
#define TANH_Q2 -0.053739716264f
#define TANH_Q3 0.020639090614f
#define TANH_Q4 -0.0057049903664f
#define TANH_SMALL 0.625f

/* Both forms on |x|, then x's sign (so tanh(-0) = -0). */
static inline __attribute__((always_inline)) float tanh_one(float x) {
    const float a = fabsf(x), s = a * a;
    const float small = a + a * s * (TANH_Q0 + s * (TANH_Q1 + s * (TANH_Q2 + s * (TANH_Q3 + s * TANH_Q4))));
    const float big = 1.0f - 2.0f / (exp_one(2.0f * a) + 1.0f);
    return copysignf(a < TANH_SMALL ? small : big, x); /* NaN: big, which is NaN */
}

static inline __attribute__((always_inline)) float sigmoid_one(float x) {
    const float e = exp_one(-fabsf(x));
    return (x >= 0 ? 1.0f : e) / (1.0f + e);
}

#define GELU_2K0 1.5957691216057308f          /* 2 sqrt(2 / pi) */
#define GELU_2K0K1 0.071354816272919f         /* 2 sqrt(2 / pi) 0.044715 */
#define GELU_6K0K1 0.214064448818757f         /* 6 sqrt(2 / pi) 0.044715 */

/* x sigma(2u), 2u = x (2 k0 + 2 k0 k1 x^2) */
static inline __attribute__((always_inline)) float gelu_tanh_one(float x) {
    return x * sigmoid_one(x * (GELU_2K0 + GELU_2K0K1 * x * x));
}

/* d/dx x sigma(2u) = sigma + x sigma (1 - sigma) 2u',  2u' = 2 k0 (1 + 3 k1 x^2),
 * sigma (1 - sigma) = e / (1 + e)^2, e = e^-|2u|. The second term is taken
 * at x clamped to +-16 (where it is 0 in float already), so that x^2 cannot
 * overflow into 0 * inf. */
static inline __attribute__((always_inline)) float gelu_tanh_grad_one(float x) {
    const float u2 = x * (GELU_2K0 + GELU_2K0K1 * x * x);
    const float e = exp_one(-fabsf(u2)), q = 1.0f / (1.0f + e);
    const float sig = (u2 >= 0 ? 1.0f : e) * q;
    const float xc = x > 16.0f ? 16.0f : (x < -16.0f ? -16.0f : x);
    return sig + xc * (e * q * q) * (GELU_2K0 + GELU_6K0K1 * xc * xc);
}

static void exp_n(const float *x, float *z, int64_t n) {
    ACT_SIMD
    for (int64_t i = 0; i < n; i++) z[i] = exp_one(x[i]);
}
static void sigmoid_n(const float *x, float *z, int64_t n) {
    ACT_SIMD
    for (int64_t i = 0; i < n; i++) z[i] = sigmoid_one(x[i]);
}
static void tanh_n(const float *x, float *z, int64_t n) {
    ACT_SIMD
    for (int64_t i = 0; i < n; i++) z[i] = tanh_one(x[i]);
}
static void gelu_tanh_n(const float *x, float *z, int64_t n) {
    ACT_SIMD
    for (int64_t i = 0; i < n; i++) z[i] = gelu_tanh_one(x[i]);
}
static void gelu_tanh_vjp_n(const float *x, const float *g, float *dx, int64_t n, bool write) {
    if (write) {
        ACT_SIMD
        for (int64_t i = 0; i < n; i++) dx[i] = g[i] * gelu_tanh_grad_one(x[i]);
        return;
    }
    ACT_SIMD
    for (int64_t i = 0; i < n; i++) dx[i] += g[i] * gelu_tanh_grad_one(x[i]);
}

/* e^(x - m) with x - m = hi + lo exactly (two-sum): a float difference
 * would round the argument, and e^ multiplies that rounding by |x - m|
 * (20 ulps at x - m = -20); e^(hi + lo) = e^hi (1 + lo) to float precision. */
static inline __attribute__((always_inline)) float exp_diff(float x, float m) {
    const float hi = x - m, xb = hi + m, mb = hi - xb;
    const float lo = (x - xb) - (m + mb);
    const float e = exp_one(hi);
    return lo == lo ? e + e * lo : e; /* hi infinite (x = -inf, a masked position): lo is NaN */
}

/* The row's maximum, NaN when any element is NaN (as the float64 path). */
static inline float row_max(const float *x, int64_t D) {
    float m = -INFINITY;
    int nan = 0;
    _Pragma("omp simd reduction(max : m) reduction(| : nan)")
    for (int64_t d = 0; d < D; d++) {
        m = x[d] > m ? x[d] : m;
        nan |= x[d] != x[d];
    }
    return nan ? NAN : m;
}

static void softmax_row(const float *x, float *z, int64_t D, bool log_form) {
    const float m = row_max(x, D);
    double s = 0;
    if (log_form) {
        /* z is written twice: e^(x - m) for the sum, then x - lse */
        _Pragma("omp simd reduction(+ : s)")
        for (int64_t d = 0; d < D; d++) s += exp_diff(x[d], m);
        /* x - m is exact in double; m + ln s would round ln s to m's ulp */
        const double ls = log(s);
        ACT_SIMD
        for (int64_t d = 0; d < D; d++) z[d] = (float)(((double)x[d] - m) - ls);
        return;
    }
    _Pragma("omp simd reduction(+ : s)")
    for (int64_t d = 0; d < D; d++) {
        z[d] = exp_diff(x[d], m);
        s += z[d];
    }
    const float inv = (float)(1.0 / s);
    ACT_SIMD
    for (int64_t d = 0; d < D; d++) z[d] *= inv;
}

static void log_softmax_row_vjp(const float *z, const float *g, float *dx, int64_t D) {
    double acc = 0;
    _Pragma("omp simd reduction(+ : acc)")
    for (int64_t d = 0; d < D; d++) acc += g[d];
    const float a = (float)acc;
    ACT_SIMD
    for (int64_t d = 0; d < D; d++) dx[d] += g[d] - exp_one(z[d]) * a;
}

const act_kernels ISA_SYM(tg_act_kernels) = {
    .exp = exp_n,
    .sigmoid = sigmoid_n,
    .tanh = tanh_n,
    .gelu_tanh = gelu_tanh_n,
    .gelu_tanh_vjp = gelu_tanh_vjp_n,
    .softmax_row = softmax_row,
    .log_softmax_row_vjp = log_softmax_row_vjp,
};
