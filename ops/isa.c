/* isa.c - chooses the instruction-set variant of the hot kernels from the CPU
 * (cpuid, through __builtin_cpu_supports) or TAPEGRAD_ISA; see isa.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isa.h"

static const char *const names[ISA_COUNT] = {"v2", "v3", "v4"};
static const char *const needs[ISA_COUNT] = {"x86-64-v2 (SSE4.2, POPCNT)", "x86-64-v3 (AVX2, FMA)",
                                             "x86-64-v4 (AVX-512)"};

/* -2 not chosen yet, -1 refused (why: refused_env names no variant, or one
 * the CPU lacks), else the variant */
static int chosen = -2;
static char refused_env[33];

const char *tg_isa_name(isa_level v) { return v >= 0 && v < ISA_COUNT ? names[v] : "?"; }

bool tg_isa_supported(isa_level v) {
    __builtin_cpu_init();
    /* Feature by feature: the level names ("x86-64-v3") are newer than
     * clang 14, which refuses them, and so did not build `make fuzz`. The
     * features left out (CX16, LAHF; F16C, LZCNT, MOVBE, XSAVE) come with
     * these in every CPU that has them. The runtime also checks that the OS
     * saves the AVX and AVX-512 registers. */
    bool v2 = __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("ssse3") &&
              __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("sse4.2");
    bool v3 = v2 && __builtin_cpu_supports("avx") && __builtin_cpu_supports("avx2") &&
              __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
              __builtin_cpu_supports("bmi2");
    bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
              __builtin_cpu_supports("avx512vl");
    switch (v) {
    case ISA_V2: return v2;
    case ISA_V3: return v3;
    case ISA_V4: return v4;
    default: return false;
    }
}

static unsigned cpu_variants(void) {
    unsigned m = 0;
    for (int v = 0; v < ISA_COUNT; v++)
        if (tg_isa_supported(v)) m |= 1u << v;
    return m;
}

/* The variants of the last choice's CPU (a test may pretend to another). */
static unsigned cpu_seen;

static int best_of(unsigned cpu) {
    int best = ISA_V2;
    for (int v = ISA_COUNT - 1; v > ISA_V2; v--)
        if (cpu & (1u << v)) return v;
    return best;
}

/* The reason for a refusal, as the pending error. */
static void refusal_set(void) {
    int v = 0;
    while (v < ISA_COUNT && strcmp(refused_env, names[v])) v++;
    if (v == ISA_COUNT)
        tg_error_set("TAPEGRAD_ISA=%s names no kernel variant (v2, v3 or v4)", refused_env);
    else
        tg_error_set("TAPEGRAD_ISA=%s: this CPU lacks %s; it runs up to %s", refused_env, needs[v],
                  names[best_of(cpu_seen)]);
}

/* The choice, without the refusal's error. */
static int choose(const char *env, unsigned cpu) {
    cpu_seen = cpu;
    if (!env || !*env) {
        chosen = best_of(cpu);
        return 0;
    }
    int v = 0;
    while (v < ISA_COUNT && strcmp(env, names[v])) v++;
    if (v < ISA_COUNT && (cpu & (1u << v))) {
        chosen = v;
        return 0;
    }
    snprintf(refused_env, sizeof refused_env, "%s", env);
    chosen = -1;
    return -1;
}

int tg_isa_select_cpu(const char *env, unsigned cpu) {
    if (choose(env, cpu)) refusal_set();
    return chosen < 0 ? -1 : 0;
}

int tg_isa_select(const char *env) { return tg_isa_select_cpu(env, cpu_variants()); }

int tg_isa_in_use(void) {
    if (chosen == -2) choose(getenv("TAPEGRAD_ISA"), cpu_variants());
    return chosen;
}

int tg_isa_current(void) {
    if (chosen == -2) tg_isa_select(getenv("TAPEGRAD_ISA"));
    if (chosen == -1) refusal_set();
    return chosen;
}

const char *tapegrad_isa(void) {
    int v = tg_isa_current();
    return v < 0 ? NULL : names[v];
}
