/*
 * cf_simd.h — a tiny float32 SIMD vocabulary shared by the pooling, element-wise and optimiser
 * kernels, so each kernel is written once (in a .inc template) and compiled per ISA.
 *
 * Design: the including translation unit defines exactly one of CF_SIMD_AVX512 / CF_SIMD_AVX2
 * (or neither, for the portable path) before including this header. It then gets
 *   cfv   a vector of CFV_N floats      (__m512 / __m256 / float)
 *   cfvi  a vector of CFV_N int32       (__m512i / __m256i / int32_t)
 *   cfvm  a lane mask                   (__mmask16 / __m256 / int)
 * and `static inline` operations on them. Everything here is static: an AVX-512 copy of a helper
 * can never be merged into baseline code by the linker. Without either define, the portable
 * path uses SSE2 (4 lanes; part of baseline x86-64) when the compiler targets it, and plain
 * scalar C (CFV_N = 1) otherwise or when CF_SIMD_SCALAR is defined.
 *
 * Conventions:
 *   - `_n` variants touch only the first n lanes (1 <= n <= CFV_N): loads fill the rest with 0
 *     (cfv_load_n_or: with a given value), stores leave memory past n untouched. They handle
 *     the channel tail without a scalar loop.
 *   - cfv_max(a, b) / cfv_min(a, b) follow the x86 MAXPS/MINPS rule: if either operand is NaN the
 *     *second* operand is returned. Call them as cfv_max(bound, x) to let a NaN in x through.
 *   - cfv_blend(m, a, b) = m ? b : a, lane by lane.
 *   - cfv_exp_nonpos(x) is exp(x) for x <= 0 (Cephes expf polynomial, ~1 ulp; exp(x) = 0 below
 *     -87.33, where the result would be denormal; NaN propagates). Every exponential in cnnfast's
 *     kernels has a non-positive argument (softmax shifts by the row max, sigmoid and tanh use
 *     -|x|), so no overflow handling is needed.
 */
#ifndef CF_SIMD_H
#define CF_SIMD_H

#include <stdint.h>
#include <string.h>
#include <math.h>

#if defined(CF_SIMD_AVX512) && defined(CF_SIMD_AVX2)
#error "define at most one of CF_SIMD_AVX512 and CF_SIMD_AVX2"
#endif

/* ---------------------------------------------------------------------------------------------
 * AVX-512 (F, BW, VL): 16 lanes, k-register masks.
 * ------------------------------------------------------------------------------------------- */
#if defined(CF_SIMD_AVX512)
#include <immintrin.h>
#define CFV_N 16
#define CFV_ISA_SUFFIX avx512
typedef __m512 cfv;
typedef __m512i cfvi;
typedef __mmask16 cfvm;

static inline __mmask16 cfv_tailmask_(int64_t n) { return (__mmask16)((1u << n) - 1u); }

static inline cfv cfv_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void cfv_store(float *p, cfv v) { _mm512_storeu_ps(p, v); }
static inline cfv cfv_load_n(const float *p, int64_t n) { return _mm512_maskz_loadu_ps(cfv_tailmask_(n), p); }
static inline void cfv_store_n(float *p, cfv v, int64_t n) { _mm512_mask_storeu_ps(p, cfv_tailmask_(n), v); }
static inline cfv cfv_load_n_or(const float *p, int64_t n, cfv fill) { return _mm512_mask_loadu_ps(fill, cfv_tailmask_(n), p); }
static inline cfv cfv_set1(float a) { return _mm512_set1_ps(a); }
static inline cfv cfv_zero(void) { return _mm512_setzero_ps(); }
static inline cfv cfv_add(cfv a, cfv b) { return _mm512_add_ps(a, b); }
static inline cfv cfv_sub(cfv a, cfv b) { return _mm512_sub_ps(a, b); }
static inline cfv cfv_mul(cfv a, cfv b) { return _mm512_mul_ps(a, b); }
static inline cfv cfv_div(cfv a, cfv b) { return _mm512_div_ps(a, b); }
static inline cfv cfv_max(cfv a, cfv b) { return _mm512_max_ps(a, b); }
static inline cfv cfv_min(cfv a, cfv b) { return _mm512_min_ps(a, b); }
static inline cfv cfv_sqrt(cfv a) { return _mm512_sqrt_ps(a); }
static inline cfv cfv_abs(cfv a) { return _mm512_abs_ps(a); }
static inline cfv cfv_fmadd(cfv a, cfv b, cfv c) { return _mm512_fmadd_ps(a, b, c); }   /* a*b + c */
static inline cfv cfv_fnmadd(cfv a, cfv b, cfv c) { return _mm512_fnmadd_ps(a, b, c); } /* c - a*b */
static inline cfv cfv_round(cfv a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline cfvm cfv_cmp_gt(cfv a, cfv b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
static inline cfvm cfv_cmp_ge(cfv a, cfv b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
static inline cfvm cfv_cmp_lt(cfv a, cfv b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static inline cfvm cfv_isnan(cfv a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
static inline cfvm cfvm_or(cfvm a, cfvm b) { return (cfvm)(a | b); }
static inline cfv cfv_blend(cfvm m, cfv a, cfv b) { return _mm512_mask_blend_ps(m, a, b); }
static inline cfv cfv_maskz(cfvm m, cfv a) { return _mm512_maskz_mov_ps(m, a); }  /* m ? a : 0 */
static inline cfv cfv_copysign(cfv mag, cfv sgn) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(sign, _mm512_castps_si512(sgn),
                                                         _mm512_castps_si512(mag), 0xCA));  /* sign ? sgn : mag, bitwise */
}
static inline float cfv_hsum(cfv a) { return _mm512_reduce_add_ps(a); }
static inline float cfv_hmax(cfv a) { return _mm512_reduce_max_ps(a); }
/* 2^n for integral n in [-126, 127], as a float vector */
static inline cfv cfv_pow2i_(cfv n) {
    __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}

static inline cfvi cfvi_set1(int32_t a) { return _mm512_set1_epi32(a); }
static inline cfvi cfvi_blend(cfvm m, cfvi a, cfvi b) { return _mm512_mask_blend_epi32(m, a, b); }
static inline cfvi cfvi_add(cfvi a, cfvi b) { return _mm512_add_epi32(a, b); }
static inline cfvm cfvi_cmpeq(cfvi a, cfvi b) { return _mm512_cmpeq_epi32_mask(a, b); }
static inline cfvi cfvi_load_u8(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }
static inline cfvi cfvi_load_u8_n(const uint8_t *p, int64_t n) { return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(cfv_tailmask_(n), p)); }
static inline void cfvi_store_u8(uint8_t *p, cfvi v) { _mm_storeu_si128((__m128i *)p, _mm512_cvtepi32_epi8(v)); }
static inline void cfvi_store_u8_n(uint8_t *p, cfvi v, int64_t n) { _mm512_mask_cvtepi32_storeu_epi8(p, cfv_tailmask_(n), v); }
static inline cfvi cfvi_load_i32(const int32_t *p) { return _mm512_loadu_si512(p); }
static inline cfvi cfvi_load_i32_n(const int32_t *p, int64_t n) { return _mm512_maskz_loadu_epi32(cfv_tailmask_(n), p); }
static inline void cfvi_store_i32(int32_t *p, cfvi v) { _mm512_storeu_si512(p, v); }
static inline void cfvi_store_i32_n(int32_t *p, cfvi v, int64_t n) { _mm512_mask_storeu_epi32(p, cfv_tailmask_(n), v); }
/* Reinterpret uint32 lanes: `u >= threshold` as a mask (unsigned compare). */
static inline cfvm cfvi_cmpge_u32(cfvi a, cfvi b) { return _mm512_cmp_epu32_mask(a, b, _MM_CMPINT_NLT); }
static inline cfvi cfvi_xor(cfvi a, cfvi b) { return _mm512_xor_si512(a, b); }
static inline cfvi cfvi_iota(void) { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
/* Full 32x32 -> 64-bit products of the uint32 lanes of a with m: high and low halves. */
static inline void cfvi_mulhilo_u32(cfvi a, uint32_t m, cfvi *hi, cfvi *lo) {
    const __m512i mv = _mm512_set1_epi32((int)m);
    const __m512i even = _mm512_mul_epu32(a, mv), odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), mv);
    *hi = _mm512_mask_blend_epi32((__mmask16)0xAAAA, _mm512_srli_epi64(even, 32), odd);
    *lo = _mm512_mullo_epi32(a, mv);
}

/* ---------------------------------------------------------------------------------------------
 * AVX2 + FMA: 8 lanes, masks are all-ones/all-zeros float lanes.
 * ------------------------------------------------------------------------------------------- */
#elif defined(CF_SIMD_AVX2)
#include <immintrin.h>
#define CFV_N 8
#define CFV_ISA_SUFFIX avx2
typedef __m256 cfv;
typedef __m256i cfvi;
typedef __m256 cfvm;

/* 8 x -1 followed by 8 x 0: loading 8 ints at offset 8-n gives a mask of n leading lanes. */
static const int32_t cfv_tail_table_[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
static inline __m256i cfv_tailmask_(int64_t n) { return _mm256_loadu_si256((const __m256i *)(cfv_tail_table_ + 8 - n)); }

static inline cfv cfv_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void cfv_store(float *p, cfv v) { _mm256_storeu_ps(p, v); }
static inline cfv cfv_load_n(const float *p, int64_t n) { return _mm256_maskload_ps(p, cfv_tailmask_(n)); }
static inline void cfv_store_n(float *p, cfv v, int64_t n) { _mm256_maskstore_ps(p, cfv_tailmask_(n), v); }
static inline cfv cfv_load_n_or(const float *p, int64_t n, cfv fill) {
    const __m256i m = cfv_tailmask_(n);
    return _mm256_blendv_ps(fill, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
static inline cfv cfv_set1(float a) { return _mm256_set1_ps(a); }
static inline cfv cfv_zero(void) { return _mm256_setzero_ps(); }
static inline cfv cfv_add(cfv a, cfv b) { return _mm256_add_ps(a, b); }
static inline cfv cfv_sub(cfv a, cfv b) { return _mm256_sub_ps(a, b); }
static inline cfv cfv_mul(cfv a, cfv b) { return _mm256_mul_ps(a, b); }
static inline cfv cfv_div(cfv a, cfv b) { return _mm256_div_ps(a, b); }
static inline cfv cfv_max(cfv a, cfv b) { return _mm256_max_ps(a, b); }
static inline cfv cfv_min(cfv a, cfv b) { return _mm256_min_ps(a, b); }
static inline cfv cfv_sqrt(cfv a) { return _mm256_sqrt_ps(a); }
static inline cfv cfv_abs(cfv a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
static inline cfv cfv_fmadd(cfv a, cfv b, cfv c) { return _mm256_fmadd_ps(a, b, c); }
static inline cfv cfv_fnmadd(cfv a, cfv b, cfv c) { return _mm256_fnmadd_ps(a, b, c); }
static inline cfv cfv_round(cfv a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline cfvm cfv_cmp_gt(cfv a, cfv b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
static inline cfvm cfv_cmp_ge(cfv a, cfv b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
static inline cfvm cfv_cmp_lt(cfv a, cfv b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static inline cfvm cfv_isnan(cfv a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
static inline cfvm cfvm_or(cfvm a, cfvm b) { return _mm256_or_ps(a, b); }
static inline cfv cfv_blend(cfvm m, cfv a, cfv b) { return _mm256_blendv_ps(a, b, m); }
static inline cfv cfv_maskz(cfvm m, cfv a) { return _mm256_and_ps(m, a); }
static inline cfv cfv_copysign(cfv mag, cfv sgn) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(sign, mag), _mm256_and_ps(sign, sgn));
}
static inline float cfv_hsum(cfv a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float cfv_hmax(cfv a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline cfv cfv_pow2i_(cfv n) {
    __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}

static inline cfvi cfvi_set1(int32_t a) { return _mm256_set1_epi32(a); }
static inline cfvi cfvi_blend(cfvm m, cfvi a, cfvi b) {
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), m));
}
static inline cfvi cfvi_add(cfvi a, cfvi b) { return _mm256_add_epi32(a, b); }
static inline cfvm cfvi_cmpeq(cfvi a, cfvi b) { return _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b)); }
static inline cfvi cfvi_load_u8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
static inline cfvi cfvi_load_u8_n(const uint8_t *p, int64_t n) {
    uint8_t tmp[8] = {0};
    memcpy(tmp, p, (size_t)n);
    return cfvi_load_u8(tmp);
}
static inline __m128i cfvi_pack_u8_(cfvi v) {  /* 8 int32 in [0, 255] -> 8 bytes in the low half */
    __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_packus_epi16(w, w);
}
static inline void cfvi_store_u8(uint8_t *p, cfvi v) { _mm_storel_epi64((__m128i *)p, cfvi_pack_u8_(v)); }
static inline void cfvi_store_u8_n(uint8_t *p, cfvi v, int64_t n) {
    uint8_t tmp[16];
    _mm_storeu_si128((__m128i *)tmp, cfvi_pack_u8_(v));
    memcpy(p, tmp, (size_t)n);
}
static inline cfvi cfvi_load_i32(const int32_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline cfvi cfvi_load_i32_n(const int32_t *p, int64_t n) { return _mm256_maskload_epi32((const int *)p, cfv_tailmask_(n)); }
static inline void cfvi_store_i32(int32_t *p, cfvi v) { _mm256_storeu_si256((__m256i *)p, v); }
static inline void cfvi_store_i32_n(int32_t *p, cfvi v, int64_t n) { _mm256_maskstore_epi32((int *)p, cfv_tailmask_(n), v); }
static inline cfvm cfvi_cmpge_u32(cfvi a, cfvi b) {  /* a >= b unsigned  <=>  max_u32(a, b) == a */
    return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_max_epu32(a, b), a));
}
static inline cfvi cfvi_xor(cfvi a, cfvi b) { return _mm256_xor_si256(a, b); }
static inline cfvi cfvi_iota(void) { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
static inline void cfvi_mulhilo_u32(cfvi a, uint32_t m, cfvi *hi, cfvi *lo) {
    const __m256i mv = _mm256_set1_epi32((int)m);
    const __m256i even = _mm256_mul_epu32(a, mv), odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), mv);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
    *lo = _mm256_mullo_epi32(a, mv);
}

/* ---------------------------------------------------------------------------------------------
 * SSE2 (baseline x86-64, the "generic" path there): 4 lanes, masks are all-ones float lanes.
 * SSE4.1 operations (blendv, round, packus_epi32, mullo_epi32, max_epu32) are built from SSE2.
 * ------------------------------------------------------------------------------------------- */
#elif defined(__SSE2__) && !defined(CF_SIMD_SCALAR)
#include <emmintrin.h>
#define CFV_N 4
#define CFV_ISA_SUFFIX generic
typedef __m128 cfv;
typedef __m128i cfvi;
typedef __m128 cfvm;

static inline cfv cfv_load(const float *p) { return _mm_loadu_ps(p); }
static inline void cfv_store(float *p, cfv v) { _mm_storeu_ps(p, v); }
static inline cfv cfv_load_n(const float *p, int64_t n) {
    float tmp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    memcpy(tmp, p, (size_t)n * sizeof(float));
    return _mm_loadu_ps(tmp);
}
static inline void cfv_store_n(float *p, cfv v, int64_t n) {
    float tmp[4];
    _mm_storeu_ps(tmp, v);
    memcpy(p, tmp, (size_t)n * sizeof(float));
}
static inline cfv cfv_load_n_or(const float *p, int64_t n, cfv fill) {
    float tmp[4];
    _mm_storeu_ps(tmp, fill);
    memcpy(tmp, p, (size_t)n * sizeof(float));
    return _mm_loadu_ps(tmp);
}
static inline cfv cfv_set1(float a) { return _mm_set1_ps(a); }
static inline cfv cfv_zero(void) { return _mm_setzero_ps(); }
static inline cfv cfv_add(cfv a, cfv b) { return _mm_add_ps(a, b); }
static inline cfv cfv_sub(cfv a, cfv b) { return _mm_sub_ps(a, b); }
static inline cfv cfv_mul(cfv a, cfv b) { return _mm_mul_ps(a, b); }
static inline cfv cfv_div(cfv a, cfv b) { return _mm_div_ps(a, b); }
static inline cfv cfv_max(cfv a, cfv b) { return _mm_max_ps(a, b); }
static inline cfv cfv_min(cfv a, cfv b) { return _mm_min_ps(a, b); }
static inline cfv cfv_sqrt(cfv a) { return _mm_sqrt_ps(a); }
static inline cfv cfv_abs(cfv a) { return _mm_andnot_ps(_mm_set1_ps(-0.0f), a); }
static inline cfv cfv_fmadd(cfv a, cfv b, cfv c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
static inline cfv cfv_fnmadd(cfv a, cfv b, cfv c) { return _mm_sub_ps(c, _mm_mul_ps(a, b)); }
/* round to nearest even through int32 (MXCSR default rounding); exact for |a| < 2^31 */
static inline cfv cfv_round(cfv a) { return _mm_cvtepi32_ps(_mm_cvtps_epi32(a)); }
static inline cfvm cfv_cmp_gt(cfv a, cfv b) { return _mm_cmpgt_ps(a, b); }
static inline cfvm cfv_cmp_ge(cfv a, cfv b) { return _mm_cmpge_ps(a, b); }
static inline cfvm cfv_cmp_lt(cfv a, cfv b) { return _mm_cmplt_ps(a, b); }
static inline cfvm cfv_isnan(cfv a) { return _mm_cmpunord_ps(a, a); }
static inline cfvm cfvm_or(cfvm a, cfvm b) { return _mm_or_ps(a, b); }
static inline cfv cfv_blend(cfvm m, cfv a, cfv b) { return _mm_or_ps(_mm_and_ps(m, b), _mm_andnot_ps(m, a)); }
static inline cfv cfv_maskz(cfvm m, cfv a) { return _mm_and_ps(m, a); }
static inline cfv cfv_copysign(cfv mag, cfv sgn) {
    const __m128 sign = _mm_set1_ps(-0.0f);
    return _mm_or_ps(_mm_andnot_ps(sign, mag), _mm_and_ps(sign, sgn));
}
static inline float cfv_hsum(cfv a) {
    __m128 s = _mm_add_ps(a, _mm_movehl_ps(a, a));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static inline float cfv_hmax(cfv a) {
    __m128 s = _mm_max_ps(a, _mm_movehl_ps(a, a));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static inline cfv cfv_pow2i_(cfv n) {
    __m128i e = _mm_add_epi32(_mm_cvtps_epi32(n), _mm_set1_epi32(127));
    return _mm_castsi128_ps(_mm_slli_epi32(e, 23));
}

static inline cfvi cfvi_set1(int32_t a) { return _mm_set1_epi32(a); }
static inline cfvi cfvi_blend(cfvm m, cfvi a, cfvi b) {
    const __m128i mi = _mm_castps_si128(m);
    return _mm_or_si128(_mm_and_si128(mi, b), _mm_andnot_si128(mi, a));
}
static inline cfvi cfvi_add(cfvi a, cfvi b) { return _mm_add_epi32(a, b); }
static inline cfvm cfvi_cmpeq(cfvi a, cfvi b) { return _mm_castsi128_ps(_mm_cmpeq_epi32(a, b)); }
static inline cfvi cfvi_load_u8(const uint8_t *p) {
    int32_t word;
    memcpy(&word, p, 4);
    const __m128i z = _mm_setzero_si128();
    return _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(word), z), z);
}
static inline cfvi cfvi_load_u8_n(const uint8_t *p, int64_t n) {
    uint8_t tmp[4] = {0, 0, 0, 0};
    memcpy(tmp, p, (size_t)n);
    return cfvi_load_u8(tmp);
}
static inline int32_t cfvi_pack_u8_(cfvi v) {  /* 4 int32 in [0, 255] -> 4 bytes */
    const __m128i w = _mm_packs_epi32(v, v);
    return _mm_cvtsi128_si32(_mm_packus_epi16(w, w));
}
static inline void cfvi_store_u8(uint8_t *p, cfvi v) { const int32_t w = cfvi_pack_u8_(v); memcpy(p, &w, 4); }
static inline void cfvi_store_u8_n(uint8_t *p, cfvi v, int64_t n) { const int32_t w = cfvi_pack_u8_(v); memcpy(p, &w, (size_t)n); }
static inline cfvi cfvi_load_i32(const int32_t *p) { return _mm_loadu_si128((const __m128i *)p); }
static inline cfvi cfvi_load_i32_n(const int32_t *p, int64_t n) {
    int32_t tmp[4] = {0, 0, 0, 0};
    memcpy(tmp, p, (size_t)n * sizeof(int32_t));
    return cfvi_load_i32(tmp);
}
static inline void cfvi_store_i32(int32_t *p, cfvi v) { _mm_storeu_si128((__m128i *)p, v); }
static inline void cfvi_store_i32_n(int32_t *p, cfvi v, int64_t n) {
    int32_t tmp[4];
    _mm_storeu_si128((__m128i *)tmp, v);
    memcpy(p, tmp, (size_t)n * sizeof(int32_t));
}
static inline cfvm cfvi_cmpge_u32(cfvi a, cfvi b) {  /* a >= b unsigned <=> !(b > a) signed after flipping the top bit */
    const __m128i flip = _mm_set1_epi32((int)0x80000000u);
    const __m128i gt = _mm_cmpgt_epi32(_mm_xor_si128(b, flip), _mm_xor_si128(a, flip));
    return _mm_castsi128_ps(_mm_xor_si128(gt, _mm_set1_epi32(-1)));
}
static inline cfvi cfvi_xor(cfvi a, cfvi b) { return _mm_xor_si128(a, b); }
static inline cfvi cfvi_iota(void) { return _mm_setr_epi32(0, 1, 2, 3); }
static inline void cfvi_mulhilo_u32(cfvi a, uint32_t m, cfvi *hi, cfvi *lo) {
    const __m128i mv = _mm_set1_epi32((int)m);
    const __m128i even = _mm_mul_epu32(a, mv), odd = _mm_mul_epu32(_mm_srli_epi64(a, 32), mv);
    /* even = [lo0 hi0 lo2 hi2], odd = [lo1 hi1 lo3 hi3] as 32-bit lanes */
    const __m128i lo02 = _mm_shuffle_epi32(even, _MM_SHUFFLE(2, 2, 2, 0)), hi02 = _mm_shuffle_epi32(even, _MM_SHUFFLE(3, 3, 3, 1));
    const __m128i lo13 = _mm_shuffle_epi32(odd, _MM_SHUFFLE(2, 2, 2, 0)), hi13 = _mm_shuffle_epi32(odd, _MM_SHUFFLE(3, 3, 3, 1));
    *lo = _mm_unpacklo_epi32(lo02, lo13);
    *hi = _mm_unpacklo_epi32(hi02, hi13);
}

/* ---------------------------------------------------------------------------------------------
 * Portable C: one lane.
 * ------------------------------------------------------------------------------------------- */
#else
#define CFV_N 1
#define CFV_ISA_SUFFIX generic
typedef float cfv;
typedef int32_t cfvi;
typedef int cfvm;

static inline cfv cfv_load(const float *p) { return *p; }
static inline void cfv_store(float *p, cfv v) { *p = v; }
static inline cfv cfv_load_n(const float *p, int64_t n) { return n > 0 ? *p : 0.0f; }
static inline void cfv_store_n(float *p, cfv v, int64_t n) { if (n > 0) *p = v; }
static inline cfv cfv_load_n_or(const float *p, int64_t n, cfv fill) { return n > 0 ? *p : fill; }
static inline cfv cfv_set1(float a) { return a; }
static inline cfv cfv_zero(void) { return 0.0f; }
static inline cfv cfv_add(cfv a, cfv b) { return a + b; }
static inline cfv cfv_sub(cfv a, cfv b) { return a - b; }
static inline cfv cfv_mul(cfv a, cfv b) { return a * b; }
static inline cfv cfv_div(cfv a, cfv b) { return a / b; }
static inline cfv cfv_max(cfv a, cfv b) { return a > b ? a : b; }
static inline cfv cfv_min(cfv a, cfv b) { return a < b ? a : b; }
static inline cfv cfv_sqrt(cfv a) { return sqrtf(a); }
static inline cfv cfv_abs(cfv a) { return fabsf(a); }
static inline cfv cfv_fmadd(cfv a, cfv b, cfv c) { return a * b + c; }
static inline cfv cfv_fnmadd(cfv a, cfv b, cfv c) { return c - a * b; }
static inline cfv cfv_round(cfv a) { return rintf(a); }
static inline cfvm cfv_cmp_gt(cfv a, cfv b) { return a > b; }
static inline cfvm cfv_cmp_ge(cfv a, cfv b) { return a >= b; }
static inline cfvm cfv_cmp_lt(cfv a, cfv b) { return a < b; }
static inline cfvm cfv_isnan(cfv a) { return a != a; }
static inline cfvm cfvm_or(cfvm a, cfvm b) { return a | b; }
static inline cfv cfv_blend(cfvm m, cfv a, cfv b) { return m ? b : a; }
static inline cfv cfv_maskz(cfvm m, cfv a) { return m ? a : 0.0f; }
static inline cfv cfv_copysign(cfv mag, cfv sgn) { return copysignf(mag, sgn); }
static inline float cfv_hsum(cfv a) { return a; }
static inline float cfv_hmax(cfv a) { return a; }
static inline cfv cfv_pow2i_(cfv n) {
    int32_t e = ((int32_t)n + 127) << 23;
    float f;
    memcpy(&f, &e, sizeof f);
    return f;
}

static inline cfvi cfvi_set1(int32_t a) { return a; }
static inline cfvi cfvi_blend(cfvm m, cfvi a, cfvi b) { return m ? b : a; }
static inline cfvi cfvi_add(cfvi a, cfvi b) { return a + b; }
static inline cfvm cfvi_cmpeq(cfvi a, cfvi b) { return a == b; }
static inline cfvi cfvi_load_u8(const uint8_t *p) { return *p; }
static inline cfvi cfvi_load_u8_n(const uint8_t *p, int64_t n) { return n > 0 ? *p : 0; }
static inline void cfvi_store_u8(uint8_t *p, cfvi v) { *p = (uint8_t)v; }
static inline void cfvi_store_u8_n(uint8_t *p, cfvi v, int64_t n) { if (n > 0) *p = (uint8_t)v; }
static inline cfvi cfvi_load_i32(const int32_t *p) { return *p; }
static inline cfvi cfvi_load_i32_n(const int32_t *p, int64_t n) { return n > 0 ? *p : 0; }
static inline void cfvi_store_i32(int32_t *p, cfvi v) { *p = v; }
static inline void cfvi_store_i32_n(int32_t *p, cfvi v, int64_t n) { if (n > 0) *p = v; }
static inline cfvm cfvi_cmpge_u32(cfvi a, cfvi b) { return (uint32_t)a >= (uint32_t)b; }
static inline cfvi cfvi_xor(cfvi a, cfvi b) { return a ^ b; }
static inline cfvi cfvi_iota(void) { return 0; }
static inline void cfvi_mulhilo_u32(cfvi a, uint32_t m, cfvi *hi, cfvi *lo) {
    const uint64_t p = (uint64_t)(uint32_t)a * m;
    *hi = (cfvi)(uint32_t)(p >> 32);
    *lo = (cfvi)(uint32_t)p;
}
#endif

/* ---------------------------------------------------------------------------------------------
 * Composite operations, written once on top of the primitives above.
 * ------------------------------------------------------------------------------------------- */

/* exp(x) for x <= 0. Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then the Cephes
 * expf degree-6 polynomial; max error about 1 ulp against exp in float64. */
static inline cfv cfv_exp_nonpos(cfv x) {
    const cfv lo = cfv_set1(-87.33654475f);          /* log(FLT_MIN): below it the result is 0 */
    cfv xc = cfv_min(cfv_set1(0.0f), cfv_max(lo, x)); /* NaN in x passes through both */
    cfv n = cfv_round(cfv_mul(xc, cfv_set1(1.44269504088896341f)));
    cfv r = cfv_fnmadd(n, cfv_set1(0.693359375f), xc);
    r = cfv_fnmadd(n, cfv_set1(-2.12194440e-4f), r);
    cfv p = cfv_set1(1.9875691500e-4f);
    p = cfv_fmadd(p, r, cfv_set1(1.3981999507e-3f));
    p = cfv_fmadd(p, r, cfv_set1(8.3334519073e-3f));
    p = cfv_fmadd(p, r, cfv_set1(4.1665795894e-2f));
    p = cfv_fmadd(p, r, cfv_set1(1.6666665459e-1f));
    p = cfv_fmadd(p, r, cfv_set1(5.0000001201e-1f));
    p = cfv_fmadd(p, cfv_mul(r, r), cfv_add(r, cfv_set1(1.0f)));
    cfv y = cfv_mul(p, cfv_pow2i_(n));
    return cfv_blend(cfv_cmp_lt(x, lo), y, cfv_zero());
}

/* 1 / (1 + exp(-x)), without overflow: with e = exp(-|x|), s = 1/(1+e) for x >= 0, e*s otherwise. */
static inline cfv cfv_sigmoid(cfv x) {
    cfv e = cfv_exp_nonpos(cfv_sub(cfv_zero(), cfv_abs(x)));
    cfv s = cfv_div(cfv_set1(1.0f), cfv_add(cfv_set1(1.0f), e));
    return cfv_blend(cfv_cmp_lt(x, cfv_zero()), s, cfv_mul(e, s));
}

/* tanh(x): an odd minimax polynomial (Cephes tanhf) for |x| < 0.625, where 1 - exp(-2|x|) would
 * cancel, else sign(x) (1 - e) / (1 + e) with e = exp(-2|x|). About 2 ulp. */
static inline cfv cfv_tanh(cfv x) {
    cfv ax = cfv_abs(x);
    cfv z = cfv_mul(x, x);
    cfv p = cfv_set1(-5.70498872745e-3f);
    p = cfv_fmadd(p, z, cfv_set1(2.06390887954e-2f));
    p = cfv_fmadd(p, z, cfv_set1(-5.37397155531e-2f));
    p = cfv_fmadd(p, z, cfv_set1(1.33314422036e-1f));
    p = cfv_fmadd(p, z, cfv_set1(-3.33332819422e-1f));
    cfv small = cfv_fmadd(cfv_mul(p, z), x, x);
    cfv e = cfv_exp_nonpos(cfv_mul(cfv_set1(-2.0f), ax));
    cfv big = cfv_div(cfv_sub(cfv_set1(1.0f), e), cfv_add(cfv_set1(1.0f), e));
    big = cfv_copysign(big, x);
    return cfv_blend(cfv_cmp_ge(ax, cfv_set1(0.625f)), small, big);
}

#endif /* CF_SIMD_H */
