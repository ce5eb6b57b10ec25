/* isa.h - the instruction-set variants the hot kernels are compiled for, and
 * the one this process runs.
 *
 * Kernel files named ops/NAME_kernels.c are compiled once per variant (the
 * Makefile's ISA_FLAGS) with TG_ISA set to its name, so each symbol they
 * export is spelt through ISA_SYM (tg_conv_kernels_v3, ...). The rest of the
 * library is built for the baseline, x86-64-v2, except the optimisers'
 * float32 update loops (nn/optim.c): a copy per variant by GCC's target
 * attribute, chosen by tg_isa_in_use() like the kernel files.
 *
 *   v2  x86-64-v2: SSE4.2, 16 x 16-byte vector registers
 *   v3  x86-64-v3: AVX2 + FMA, 16 x 32-byte registers
 *   v4  x86-64-v4: AVX-512 (F, BW, CD, DQ, VL), 32 x 64-byte registers
 *
 * The variant is chosen once, on first use: the best the CPU supports, or the
 * one TAPEGRAD_ISA names. A TAPEGRAD_ISA the CPU cannot run (or that names no
 * variant) is not replaced by another variant: tg_isa_current() then returns -1
 * with the reason set as the pending error, so every op with per-variant
 * kernels (conv2d) and tapegrad_isa() refuse to run, and nothing aborts. */
#ifndef TAPEGRAD_ISA_H
#define TAPEGRAD_ISA_H

#include "../autograd/internal.h"

typedef enum { ISA_V2, ISA_V3, ISA_V4, ISA_COUNT } isa_level;

#define ISA_CAT2(a, b) a##_##b
#define ISA_CAT(a, b) ISA_CAT2(a, b)
#define ISA_SYM(name) ISA_CAT(name, TG_ISA)

/* "v2", "v3", "v4" */
const char *tg_isa_name(isa_level v);
/* Whether this CPU can run variant v. */
bool tg_isa_supported(isa_level v);
/* The variant in use (chosen on the first call), or -1 with the error set
 * when TAPEGRAD_ISA names one this CPU cannot run. */
int tg_isa_current(void);
/* The same without setting the error: -1 quietly when refused. For kernels
 * that have a variant-free fallback (the small GEMMs of blas.c, which
 * OpenBLAS runs then). */
int tg_isa_in_use(void);
/* Chooses again, as on first use, from env (NULL: the best supported): 0, or
 * -1 with the error set (the variant in use is then none, as at start-up).
 * For tests that run several variants in one process. */
int tg_isa_select(const char *env);
/* The same for a CPU that runs the variants whose bits (1 << v) are in cpu:
 * a test's view of a CPU it does not have. */
int tg_isa_select_cpu(const char *env, unsigned cpu);

#endif
