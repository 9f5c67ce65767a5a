/*
 * portable_check.c — runs the portable C kernels (as built for a non-x86 target) against naive
 * double-precision loops: SGEMM in all four transpose cases with alpha/beta/bias/ReLU, and conv2d
 * forward (implicit GEMM, Winograd, depthwise, strided/dilated/grouped) on odd sizes, on 1 and 2
 * threads. Exits 0 and prints "N passed, 0 failed" when every case agrees; 1 otherwise.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "cnnfast.h"

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;
static float uniform(void) { /* xorshift64*, in [-1, 1) */
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return (float)((rng_state * 2685821657736338717ull) >> 40) / (float)(1 << 23) - 1.0f;
}
static float *random_array(int64_t n) {
    float *a = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; ++i) a[i] = uniform();
    return a;
}

static int passed, failed;
static void report(const char *what, double err, double tol) {
    if (err <= tol) { ++passed; return; }
    ++failed;
    printf("FAIL %s: max abs error %.3g > %.3g\n", what, err, tol);
}

static void check_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                        int use_bias, int relu) {
    const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
    float *A = random_array((ta ? K : M) * lda), *B = random_array((tb ? N : K) * ldb);
    float *C = random_array(M * ldc), *bias = use_bias ? random_array(N) : NULL;
    double *ref = malloc((size_t)(M * N > 0 ? M * N : 1) * sizeof(double));
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            double s = 0.0;
            for (int64_t k = 0; k < K; ++k)
                s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
            double v = alpha * s + (beta != 0.0f ? beta * (double)C[i * ldc + j] : 0.0) + (bias ? bias[j] : 0.0);
            ref[i * N + j] = relu && v < 0.0 ? 0.0 : v;
        }
    const cf_status st = cf_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, relu);
    double err = st == CF_OK ? 0.0 : INFINITY;
    for (int64_t i = 0; st == CF_OK && i < M; ++i)
        for (int64_t j = 0; j < N; ++j) err = fmax(err, fabs(C[i * ldc + j] - ref[i * N + j]));
    char what[160];
    snprintf(what, sizeof what, "sgemm ta=%d tb=%d M=%lld N=%lld K=%lld", ta, tb, (long long)M,
             (long long)N, (long long)K);
    report(what, err, 1e-4 * (double)(K + 1));
    free(A); free(B); free(C); free(bias); free(ref);
}

static void check_conv(int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw, int64_t cout,
                       int64_t stride, int64_t dil, int64_t pad, int64_t groups, int algo) {
    cf_conv2d_params p = {0};
    p.n = n; p.h = h; p.w = w; p.c = c; p.kh = kh; p.kw = kw; p.cout = cout;
    p.stride_h = p.stride_w = stride; p.dilation_h = p.dilation_w = dil;
    p.pad_top = p.pad_left = pad; p.groups = groups; p.algo = algo;
    p.ho = (h + 2 * pad - dil * (kh - 1) - 1) / stride + 1;
    p.wo = (w + 2 * pad - dil * (kw - 1) - 1) / stride + 1;
    const int64_t cg = c / groups, og = cout / groups;
    float *x = random_array(n * h * w * c), *wt = random_array(kh * kw * cg * cout);
    float *bias = random_array(cout), *y = random_array(n * p.ho * p.wo * cout);
    double err = 0.0;
    const cf_status st = cf_conv2d_fwd(&p, x, wt, bias, CF_CONV_ACT_NONE, y);
    if (st != CF_OK) err = INFINITY;
    for (int64_t b = 0; st == CF_OK && b < n; ++b)
        for (int64_t oy = 0; oy < p.ho; ++oy)
            for (int64_t ox = 0; ox < p.wo; ++ox)
                for (int64_t o = 0; o < cout; ++o) {
                    const int64_t g = o / og;
                    double s = bias[o];
                    for (int64_t i = 0; i < kh; ++i)
                        for (int64_t j = 0; j < kw; ++j) {
                            const int64_t iy = oy * stride - pad + i * dil, ix = ox * stride - pad + j * dil;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            for (int64_t q = 0; q < cg; ++q)
                                s += (double)x[((b * h + iy) * w + ix) * c + g * cg + q] *
                                     wt[((i * kw + j) * cg + q) * cout + o];
                        }
                    err = fmax(err, fabs(y[((b * p.ho + oy) * p.wo + ox) * cout + o] - s));
                }
    char what[200];
    snprintf(what, sizeof what, "conv2d n=%lld %lldx%lldx%lld k=%lldx%lld cout=%lld s=%lld d=%lld g=%lld algo=%d",
             (long long)n, (long long)h, (long long)w, (long long)c, (long long)kh, (long long)kw,
             (long long)cout, (long long)stride, (long long)dil, (long long)groups, algo);
    report(what, err, 1e-4 * (double)(kh * kw * cg + 1));
    free(x); free(wt); free(bias); free(y);
}

int main(void) {
    printf("cnnfast portable check: isa %s, compiler %s\n", cf_isa_name(cf_get_isa()), cf_compiler_info());
    for (int threads = 1; threads <= 2; ++threads) {
        cf_set_num_threads(threads);
        for (int ta = 0; ta < 2; ++ta)
            for (int tb = 0; tb < 2; ++tb) {
                check_sgemm(ta, tb, 1, 1, 1, 1.0f, 0.0f, 0, 0);
                check_sgemm(ta, tb, 37, 29, 53, 1.0f, 0.0f, 1, 1);
                check_sgemm(ta, tb, 130, 67, 301, 0.5f, 2.0f, 1, 0);
                check_sgemm(ta, tb, 7, 0, 5, 1.0f, 0.0f, 0, 0);
            }
        check_conv(2, 13, 11, 5, 3, 3, 7, 1, 1, 1, 1, CF_CONV_ALGO_AUTO);
        check_conv(1, 12, 12, 8, 3, 3, 16, 1, 1, 1, 1, CF_CONV_ALGO_WINOGRAD);
        check_conv(3, 9, 10, 6, 3, 3, 6, 1, 1, 1, 6, CF_CONV_ALGO_DEPTHWISE);
        check_conv(2, 17, 15, 4, 5, 3, 6, 2, 2, 2, 2, CF_CONV_ALGO_IGEMM);
        check_conv(1, 7, 7, 3, 1, 1, 5, 1, 1, 0, 1, CF_CONV_ALGO_AUTO);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
