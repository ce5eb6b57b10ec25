/* rng.c - PCG32 (XSH-RR): the same seed gives the same stream everywhere,
 * because it is integer arithmetic only; doubles are built from its bits. */
#include <math.h>

#include "internal.h"

void rng_seed(rng *g, uint64_t seed, uint64_t stream) {
    if (tg_rng_watch) tg_rng_touch(g); /* a checkpoint notes the state it overwrites */
    g->state = 0;
    g->inc = (stream << 1u) | 1u;
    rng_next_u32(g);
    g->state += seed;
    rng_next_u32(g);
}

uint32_t rng_next_u32(rng *g) {
    if (tg_rng_watch) tg_rng_touch(g); /* inside a checkpoint: autograd/recompute.c */
    uint64_t old = g->state;
    g->state = old * 6364136223846793005ULL + g->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

double rng_uniform(rng *g) {
    uint64_t hi = rng_next_u32(g) >> 5, lo = rng_next_u32(g) >> 6; /* 27 + 26 bits */
    return ((double)hi * 67108864.0 + (double)lo) / 9007199254740992.0;
}

double rng_normal(rng *g) {
    /* Box-Muller; u1 in (0, 1] keeps log finite. */
    double u1 = 1.0 - rng_uniform(g), u2 = rng_uniform(g);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t rng_below(rng *g, uint64_t n) {
    if (n <= 1) return 0;
    /* Rejection keeps the draw exactly uniform. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t r = ((uint64_t)rng_next_u32(g) << 32) | rng_next_u32(g);
        if (r < limit) return r % n;
    }
}
