/*
 * cf_philox.h — Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11), the counter-based generator behind dropout masks.
 *
 * A counter-based generator is a keyed pure function: out = philox(counter, key). Nothing is
 * stored between calls, any element can be generated independently, so masks are identical
 * for every thread count and ISA path and the backward pass regenerates the forward mask.
 *
 * Mapping used by cnnfast (fixed: part of the reproducibility contract, and mirrored by the
 * NumPy reference in tests/reference/eltwise.py). Element i of an array belongs to group
 * g = i / 64; inside it, j = i % 64 selects output word w = j / 16 of Philox block
 * b = 16 g + j % 16. Block b uses counter (b mod 2^32, b >> 32, step mod 2^32, step >> 32) and
 * key (seed mod 2^32, seed >> 32). Sixteen consecutive blocks therefore yield 64 consecutive
 * elements as four runs of 16, which a 16- or 8-lane vector produces without any shuffle.
 *
 * Include after cf_simd.h (the vector version works on cfvi of any width).
 */
#ifndef CF_PHILOX_H
#define CF_PHILOX_H

#include <stdint.h>

#define CF_PHILOX_M0 0xD2511F53u
#define CF_PHILOX_M1 0xCD9E8D57u
#define CF_PHILOX_W0 0x9E3779B9u
#define CF_PHILOX_W1 0xBB67AE85u
#define CF_PHILOX_GROUP 64  /* elements per group of 16 blocks */

/* Philox4x32-10 on CFV_N independent counters at once (lane l holds block b_l). The key is
 * shared by all lanes. ctr[0..3] are replaced by the four output words. */
static inline void cf_philox4x32_10_vec(cfvi ctr[4], uint32_t k0, uint32_t k1) {
    for (int round = 0; round < 10; round++) {
        cfvi hi0, lo0, hi1, lo1;
        cfvi_mulhilo_u32(ctr[0], CF_PHILOX_M0, &hi0, &lo0);
        cfvi_mulhilo_u32(ctr[2], CF_PHILOX_M1, &hi1, &lo1);
        const cfvi c1 = ctr[1], c3 = ctr[3];
        ctr[0] = cfvi_xor(cfvi_xor(hi1, c1), cfvi_set1((int32_t)k0));
        ctr[1] = lo1;
        ctr[2] = cfvi_xor(cfvi_xor(hi0, c3), cfvi_set1((int32_t)k1));
        ctr[3] = lo0;
        k0 += CF_PHILOX_W0;
        k1 += CF_PHILOX_W1;
    }
}

#endif /* CF_PHILOX_H */
