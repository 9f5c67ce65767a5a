/*
 * cf_conv2d_generic.c — the convolution kernels in portable C for the baseline ISA.
 *
 * Vectors are GNU C vector-extension values of 4 floats (SSE2 on x86-64, NEON or scalar code
 * elsewhere); there is no FMA, so vfma is a multiply and an add. Tiles: 12 x 4, 6 x 8, 3 x 16.
 * Masked loads/stores for channel tails go lane by lane. The kernels are in
 * cf_conv2d_kernels.inc; this file supplies the vector vocabulary.
 */
#include <string.h>
#include "runtime/cf_internal.h"
#include "cf_conv_internal.h"

typedef float vec_t __attribute__((vector_size(16)));
typedef int32_t cf_vi4 __attribute__((vector_size(16)));
typedef int mask_t;
#define VLEN 4

static inline vec_t vzero(void) { return (vec_t){0.0f, 0.0f, 0.0f, 0.0f}; }
static inline vec_t vset1(float x) { return (vec_t){x, x, x, x}; }
static inline vec_t vload(const float *p) { vec_t v; memcpy(&v, p, sizeof v); return v; }
static inline void vstore(float *p, vec_t v) { memcpy(p, &v, sizeof v); }
static inline vec_t vload_m(const float *p, int n) {
    if (n == VLEN) return vload(p);
    vec_t v = vzero();
    for (int i = 0; i < n; i++) v[i] = p[i];
    return v;
}
static inline void vstore_m(float *p, int n, vec_t v) {
    for (int i = 0; i < n; i++) p[i] = v[i];
}
static inline vec_t vadd(vec_t a, vec_t b) { return a + b; }
static inline vec_t vsub(vec_t a, vec_t b) { return a - b; }
static inline vec_t vfma(vec_t a, vec_t b, vec_t c) { return a * b + c; }
/* Zero where v <= 0; NaN (unordered) passes through, as in ops.relu and PyTorch. */
static inline vec_t vmax0(vec_t v) { return (vec_t)((cf_vi4)v & ~(cf_vi4)(v <= vzero())); }
/* 6 where v > 6; NaN (unordered) passes through. */
static inline vec_t vcap6(vec_t v) {
    const cf_vi4 big = (cf_vi4)(v > vset1(6.0f));
    return (vec_t)(((cf_vi4)vset1(6.0f) & big) | ((cf_vi4)v & ~big));
}
#define vmask(n) (n)

static inline float vhsum(vec_t v) { return (v[0] + v[1]) + (v[2] + v[3]); }

#define DMAX1 12
#define DMAX2 6
#define DMAX3 4
#define DMAX4 3
#define RMAX1 12
#define RMAX2 6
#define RMAX4 3
#define CF_CONV_TABLE cf_conv_kernels_generic
#include "cf_conv2d_kernels.inc"
