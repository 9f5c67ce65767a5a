/*
 * cf_cpu.c — CPU feature detection and the ISA the kernels dispatch on.
 *
 * Design: AVX2/AVX-512 need both the CPUID feature bits *and* the OS saving the wider register
 * state (XCR0, read with XGETBV), otherwise the first AVX-512 instruction faults. We check both,
 * the way NumPy's npy_cpu_features.c does: XCR0 & 0x6 (XMM|YMM) for AVX2, XCR0 & 0xE6
 * (plus opmask, ZMM_Hi256, Hi16_ZMM) for AVX-512. The result is computed once; cf_set_isa lets
 * tests and users force a lower path (CNNFAST_ISA), never a higher one.
 * On other targets (aarch64, ...) only the portable C kernels are built and this returns generic.
 */
#include "cnnfast/runtime.h"

#if defined(__x86_64__)  /* the AVX2/AVX-512 files are compiled for x86-64 targets only */
#include <cpuid.h>

static uint64_t read_xcr0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static cf_isa detect_best_isa(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return CF_ISA_GENERIC;
    const int has_osxsave = (ecx >> 27) & 1, has_avx = (ecx >> 28) & 1, has_fma = (ecx >> 12) & 1;
    if (!has_osxsave || !has_avx) return CF_ISA_GENERIC;
    const uint64_t xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return CF_ISA_GENERIC;
    if (__get_cpuid_max(0, 0) < 7) return CF_ISA_GENERIC;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    const int has_avx2 = (ebx >> 5) & 1;
    const int has_avx512f = (ebx >> 16) & 1, has_avx512dq = (ebx >> 17) & 1;
    const int has_avx512bw = (ebx >> 30) & 1, has_avx512vl = (ebx >> 31) & 1;
    if (!(has_avx2 && has_fma)) return CF_ISA_GENERIC;
    if (has_avx512f && has_avx512dq && has_avx512bw && has_avx512vl && (xcr0 & 0xE6) == 0xE6)
        return CF_ISA_AVX512;
    return CF_ISA_AVX2;
}

/* Sizes from CPUID's deterministic cache parameters: leaf 4 (Intel) or 0x8000001D (AMD, with
 * the topology extensions), the same layout in both. Size = ways * partitions * line * sets;
 * the L1d and L2 of one core, the L3 as a whole. Entries a (virtual) CPU leaves out stay 0. */
static void detect_cache_sizes(cf_cache_sizes *out) {
    unsigned int eax, ebx, ecx, edx, leaf = 4;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return;
    const int is_amd = ebx == 0x68747541u;  /* "Auth"enticAMD */
    if (is_amd) {
        if (__get_cpuid_max(0x80000000u, 0) < 0x8000001Du) return;
        __cpuid(0x80000001u, eax, ebx, ecx, edx);
        if (!((ecx >> 22) & 1)) return;
        leaf = 0x8000001Du;
    } else if (eax < 4) {
        return;
    }
    for (unsigned int sub = 0; sub < 16; ++sub) {
        __cpuid_count(leaf, sub, eax, ebx, ecx, edx);
        const unsigned int type = eax & 0x1f, level = (eax >> 5) & 0x7;
        if (type == 0) break;
        if (type == 2) continue;  /* instruction cache */
        const int64_t size = (int64_t)((ebx >> 22) + 1) * (((ebx >> 12) & 0x3ff) + 1) *
                             ((ebx & 0xfff) + 1) * ((int64_t)ecx + 1);
        if (level == 1) out->l1d = size;
        if (level == 2) out->l2 = size;
        if (level == 3) out->l3 = size;
    }
}
#else
static cf_isa detect_best_isa(void) { return CF_ISA_GENERIC; }
static void detect_cache_sizes(cf_cache_sizes *out) { (void)out; }
#endif

cf_cache_sizes cf_cpu_cache_sizes(void) {
    static cf_cache_sizes sizes = {0, 0, 0};
    static int known = 0;
    if (!__atomic_load_n(&known, __ATOMIC_ACQUIRE)) {
        cf_cache_sizes s = {0, 0, 0};
        detect_cache_sizes(&s);
        /* Implausible or missing entries: a common x86 core of the last decade. */
        if (s.l1d < (16 << 10) || s.l1d > (1 << 20)) s.l1d = 32 << 10;
        if (s.l2 < (128 << 10) || s.l2 > (64 << 20)) s.l2 = 512 << 10;
        if (s.l3 < s.l2) s.l3 = 8 << 20;
        sizes = s;  /* every thread computes the same values */
        __atomic_store_n(&known, 1, __ATOMIC_RELEASE);
    }
    return sizes;
}

static int best_isa = -1;
static int active_isa = -1;

cf_isa cf_cpu_best_isa(void) {
    if (best_isa < 0) best_isa = (int)detect_best_isa();
    return (cf_isa)best_isa;
}

cf_isa cf_get_isa(void) {
    if (active_isa < 0) active_isa = (int)cf_cpu_best_isa();
    return (cf_isa)active_isa;
}

cf_status cf_set_isa(int isa) {
    if (isa < 0 || isa >= CF_ISA_COUNT || isa > (int)cf_cpu_best_isa()) return CF_ERR_UNSUPPORTED;
    active_isa = isa;
    return CF_OK;
}

const char *cf_isa_name(int isa) {
    switch (isa) {
        case CF_ISA_GENERIC: return "generic";
        case CF_ISA_AVX2: return "avx2";
        case CF_ISA_AVX512: return "avx512";
        default: return "unknown";
    }
}

const char *cf_compiler_info(void) {
#ifdef CNNFAST_COMPILER
    return CNNFAST_COMPILER;
#else
    return "unknown";
#endif
}
