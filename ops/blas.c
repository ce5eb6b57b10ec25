/* blas.c - see blas.h. */
#include "blas.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>

#include "isa.h"

static const gemm_kernels *const gemm_variants[ISA_COUNT] = {&tg_gemm_kernels_v2, &tg_gemm_kernels_v3,
                                                             &tg_gemm_kernels_v4};

/* oneDNN's sgemm picks its kernels from the CPU; it is held to the vector
 * unit of the variant in use when it is first called (v2 SSE4.1, v3 AVX2, v4
 * AVX-512), since its limit can be set once only, before its first use. A
 * later variant (tests select several in one process) keeps OpenBLAS, and so
 * does every variant when oneDNN was already running past its unit (another
 * part of the program used it first). */
static const dnnl_cpu_isa_t dnnl_isa[ISA_COUNT] = {dnnl_cpu_isa_sse41, dnnl_cpu_isa_avx2,
                                                  dnnl_cpu_isa_avx512_core};
static int dnnl_variant = -1;
static pthread_once_t dnnl_once = PTHREAD_ONCE_INIT;

static void dnnl_pin(void) {
    int v = tg_isa_in_use();
    if (v < 0) return;
    dnnl_set_max_cpu_isa(dnnl_isa[v]); /* refused when already used: checked below */
    dnnl_cpu_isa_t e = dnnl_get_effective_cpu_isa();
    if ((e & dnnl_isa[v]) == e) dnnl_variant = v; /* the ISA masks nest */
}

/* The vector unit of the kernels OpenBLAS runs, as a variant (isa.h), or -1
 * below v2. Its DYNAMIC_ARCH build picks them from the CPU's model number when
 * it loads, not from the CPU's features: a model newer than the installed
 * OpenBLAS gets its generic SSE3 kernels, "Prescott". OpenBLAS 0.3.21 does so
 * on an Intel Xeon of family 6 model 207 (AVX-512 and AMX), where LeNet-5's
 * conv2 forward plus backward took 3.7 ms against 1.65 ms with its SkylakeX
 * kernels (OPENBLAS_CORETYPE=SkylakeX; interleaved runs, one thread). The
 * names are those OpenBLAS 0.3 reports on x86-64 (openblas_get_corename). */
int tg_blas_core_level(const char *core) {
    static const char *const v4[] = {"SkylakeX", "Cooperlake", "SapphireRapids"},
                             *const v3[] = {"Haswell", "Zen"},
                             *const v2[] = {"Nehalem", "Sandybridge", "Bulldozer", "Piledriver",
                                            "Steamroller", "Excavator"};
    if (!core) return -1;
    for (size_t i = 0; i < sizeof v4 / sizeof *v4; i++)
        if (!strcmp(core, v4[i])) return ISA_V4;
    for (size_t i = 0; i < sizeof v3 / sizeof *v3; i++)
        if (!strcmp(core, v3[i])) return ISA_V3;
    for (size_t i = 0; i < sizeof v2 / sizeof *v2; i++)
        if (!strcmp(core, v2[i])) return ISA_V2;
    return -1;
}
static int blas_level = -1;
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_level_read(void) { blas_level = tg_blas_core_level(openblas_get_corename()); }
int tg_blas_openblas_level(void) {
    pthread_once(&blas_once, blas_level_read);
    return blas_level;
}

/* Which library runs a float32 GEMM on variant v (measured on an AMD EPYC,
 * Zen 5, one thread, in BENCHMARKS.md): oneDNN beat OpenBLAS 0.3.21 (its
 * Haswell kernels there, as the environment's OPENBLAS_CORETYPE set them;
 * told nothing it picks Cooperlake on that CPU) on v4 for every shape of the GPT and
 * the LSTM (1.35-2.7x) and of LeNet-5's linear layers (1.1-2.1x), and by
 * 3-38 % on v2; on v3 its AVX2 kernels win by 1-17 % except for A^T B with
 * a long inner dimension or many rows (a weight gradient over a batch of 1024 rows:
 * 1.07-1.57x slower), which stays on OpenBLAS. A contraction of 16 or fewer
 * (LeNet-5's conv2 input gradient, W^T (150, 16) @ G (16, 100) per image)
 * stays on OpenBLAS on every variant: on an AMD EPYC Zen 4 it took 4.9 us
 * against oneDNN's 5.5-5.8, and conv2's forward plus backward at batch 64
 * 1.194 -> 1.105 ms (v4), 1.164 -> 1.105 ms (v3); that product, A^T B, now
 * runs on gemm_atb unless OpenBLAS has AVX-512 kernels (tg_blas_short_atb,
 * before this rule in tg_blas_gemm). Those exceptions were
 * measured against OpenBLAS's AVX2 or AVX-512 kernels (its SSE kernels on
 * v2); when OpenBLAS runs kernels below that (blas_level, `level` here),
 * oneDNN, which reads the CPU's features, takes every float32 GEMM. */
enum { DNNL_MIN_K = 17 };
bool tg_blas_dnnl_rule(int v, int level, bool ta, int64_t M, int64_t K) {
    if (v < 0) return false;
    if (level < (v < ISA_V3 ? v : ISA_V3)) return true;
    if (K < DNNL_MIN_K) return false;
    return !(v == ISA_V3 && ta && (K >= 256 || M >= 512));
}
bool tg_blas_uses_dnnl(int v, bool ta, int64_t M, int64_t K) {
    if (v < 0) return false;
    pthread_once(&dnnl_once, dnnl_pin);
    if (v != dnnl_variant) return false;
    return tg_blas_dnnl_rule(v, tg_blas_openblas_level(), ta, M, K);
}

/* The few-row A B kernel against oneDNN on an AMD EPYC Zen 4, one thread,
 * v4, us a call: 16 x [256, 1024] 78.5 against 91.5 (and 115 for the same
 * product as A W^T, the form an LSTM's recurrence has), 16 x [1024, 256] 73.4
 * against 77.1; at 1-4 rows oneDNN was level or faster (2.3 against 2.8 us
 * for 1 x [384, 128]), and on v3 the AVX2 tile of then (4 x 2) ran 16 x
 * [256, 1024] in 132-142 us against oneDNN's 98 for A W^T. */
bool tg_blas_rows_ab(int v, dtype dt, int64_t M) {
    return v == ISA_V4 && dt == DTYPE_F32 && M >= GEMM_AB_MIN_M && M <= GEMM_AB_M;
}

/* The short-contraction A^T B kernel (gemm_atb) against the libraries on an
 * Intel Xeon (family 6 model 207), one thread, medians of 61 rounds of 100
 * calls interleaved in one process, us a call, ours / oneDNN / OpenBLAS on
 * kernels of the variant's unit:
 *   op(A) x B               v4 (SkylakeX)          v3 (Haswell)          v2 (Nehalem)
 *   [150, 16] x [16, 100]   4.48 / 4.37 / 3.58     6.65 / 7.03 / 8.23    18.1 / 19.3 / 24.8
 *   [27, 16] x [16, 1024]   10.5 / 12.6 / 9.05     19.7 / 19.0 / 27.6
 *   [400, 8] x [8, 64]      5.38 / 6.61 / 3.96     10.1 / 9.27 / 13.4
 *   [72, 6] x [6, 196]      3.58 / 3.89 / 2.71     3.40 / 2.81 / 3.95
 * (the first is LeNet-5's conv2 input gradient, per image; v3 with the 4 x 2
 * tile it had then, 4 x 3 since: gemm_kernels.c). It beats
 * OpenBLAS's AVX2 and SSE kernels by 14-29 % of their time and takes 0.81-1.21
 * times oneDNN's; OpenBLAS's AVX-512 kernels take 14-26 % less, so on v4 it runs
 * only while OpenBLAS runs kernels below AVX-512 (`level`). Float32 only: the
 * float64 kernel is held to the same loops by the tests but not measured. */
bool tg_blas_short_atb(int v, int level, dtype dt, int64_t K) {
    return v >= 0 && dt == DTYPE_F32 && K >= 1 && K <= GEMM_ATB_K &&
           !(v == ISA_V4 && level >= ISA_V4);
}

void tg_blas_gemm(dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A,
               int64_t lda, const void *B, int64_t ldb, double beta, void *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    int v = tg_isa_in_use(); /* -1: TAPEGRAD_ISA was refused; OpenBLAS does all */
    if (K == 1 && (!tb || N == 1) && v >= 0) {
        /* C = a b^T + beta C, a rank-one update (gemm_kernels.c): what the
         * weight gradient G^T X of a linear layer is at batch 1. OpenBLAS
         * pays its GEMM set-up for it; the plain loop streams each row of C
         * once (1.0 -> 0.6 us on LeNet-5's [84,120] gradient alone). op(A)[m][0]
         * is A[m] when transposed (a row of length M), else A[m * lda];
         * op(B)[0][n] is B[n] (with tb, only N = 1 is contiguous). */
        gemm_variants[v]->outer[dt == DTYPE_F32 ? 0 : 1](M, N, A, ta ? 1 : lda, B, beta, C, ldc);
        return;
    }
    /* a few rows times B^T (gemm_kernels.c): B read once, not packed; the
     * variant in use, or OpenBLAS when TAPEGRAD_ISA was refused */
    if (!ta && tb && M <= GEMM_SMALL_M && K > 0 && v >= 0) {
        gemm_variants[v]->abt[dt == DTYPE_F32 ? 0 : 1](M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (ta && !tb && v >= 0 &&
        tg_blas_short_atb(v, tg_blas_openblas_level(), dt, K)) {
        gemm_variants[v]->atb[dt == DTYPE_F32 ? 0 : 1](M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (!ta && !tb && K > 0 && v >= 0 && tg_blas_rows_ab(v, dt, M)) {
        gemm_variants[v]->ab[0](M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    lda = lda > 1 ? lda : 1, ldb = ldb > 1 ? ldb : 1, ldc = ldc > 1 ? ldc : 1;
    bool small = (double)M * (double)N * (double)K < GEMM_ONE_THREAD_MACS;
    /* inside an OpenMP region or a tg_par_items body (the convolutions) */
    bool in_region = omp_in_parallel() || tg_par_in_body();
    if (dt == DTYPE_F32 && tg_blas_uses_dnnl(v, ta, M, K)) {
        /* oneDNN runs omp_get_max_threads() threads (one inside a parallel
         * region): the library's setting, or one for a small product as
         * below. Its split of the work depends on the count alone, so the
         * bits repeat run to run. */
        int want = small || in_region ? 1 : tapegrad_threads(), had = omp_get_max_threads();
        if (had != want) omp_set_num_threads(want);
        dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb,
                                      (float)beta, C, ldc);
        if (had != want) omp_set_num_threads(had);
        if (st == dnnl_success) return;
    }
    enum CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
    /* A small GEMM stays on this thread: OpenBLAS splits any product past
     * 2^18 multiply-adds, and waking its threads and waiting for them costs
     * more than the split saves below GEMM_ONE_THREAD_MACS (LeNet-5's linear
     * layers at batch 64: 0.6-3 M). Not inside our own parallel regions,
     * which hold OpenBLAS to one thread themselves (the setting is global). */
    int was = 1;
    if (small && !in_region) {
        was = openblas_get_num_threads();
        if (was > 1) openblas_set_num_threads(1);
    }
    if (dt == DTYPE_F32)
        cblas_sgemm(CblasRowMajor, opa, opb, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb,
                    (float)beta, C, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, opa, opb, (int)M, (int)N, (int)K, 1.0, A, (int)lda, B, (int)ldb,
                    beta, C, (int)ldc);
    if (was > 1) openblas_set_num_threads(was);
}
