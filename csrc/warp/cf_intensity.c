/*
 * cf_intensity.c — per-image, per-channel affine intensity maps of NHWC images, clipped
 * (cnnfast/warp.h): the contrast and brightness augmentations, one pass over the batch.
 *
 * An image is a flat run of hw * c floats whose shift repeats with period c. The shifts of
 * eight pixels are laid out once per image (8 * c floats, a multiple of every SIMD width), so
 * the inner loop is a plain multiply-add-clamp over aligned runs that the compiler vectorises
 * whatever the channel count. Threads split the n * hw pixels statically, or, when the shift
 * includes the image's own channel means (contrast), whole images: each image is summed and then
 * mapped by one thread while it is still in that core's cache.
 */
#include "cnnfast/warp.h"
#include "runtime/cf_internal.h"

#define CF_SHIFT_PIXELS 8
#define CF_SHIFT_MAX_CHANNELS 64   /* wider images run channel by channel (already SIMD-wide) */

static inline float clamp(float v, float lo, float hi) {
    return v < lo ? lo : (v > hi ? hi : v);   /* NaN passes through, as a clip does */
}

/* Pixels [p0, p1) of one image: y = clamp(x * s + shift[k]). */
static void map_pixels(const float *x, float *y, int64_t p0, int64_t p1, int64_t c, float s,
                       const float *shift, float lo, float hi) {
    if (c > CF_SHIFT_MAX_CHANNELS) {
        for (int64_t p = p0; p < p1; p++)
            for (int64_t k = 0; k < c; k++) y[p * c + k] = clamp(x[p * c + k] * s + shift[k], lo, hi);
        return;
    }
    float pattern[CF_SHIFT_PIXELS * CF_SHIFT_MAX_CHANNELS];
    const int64_t period = CF_SHIFT_PIXELS * c;
    for (int64_t m = 0; m < period; m++) pattern[m] = shift[m % c];
    const float *xs = x + p0 * c;
    float *ys = y + p0 * c;
    const int64_t total = (p1 - p0) * c;
    int64_t j = 0;
    for (; j + period <= total; j += period)
        for (int64_t m = 0; m < period; m++) ys[j + m] = clamp(xs[j + m] * s + pattern[m], lo, hi);
    for (int64_t m = 0; j + m < total; m++) ys[j + m] = clamp(xs[j + m] * s + pattern[m], lo, hi);
}

/* Per-channel means of one image of hw pixels into mean[c]: double sums, accumulated in the
 * same eight-pixel layout as map_pixels so the loop vectorises. */
static void channel_means(const float *x, int64_t hw, int64_t c, double *mean) {
    for (int64_t k0 = 0; k0 < c; k0 += CF_SHIFT_MAX_CHANNELS) {   /* chunks of channels */
        const int64_t kc = CF_MIN(c - k0, CF_SHIFT_MAX_CHANNELS);
        double acc[CF_SHIFT_PIXELS * CF_SHIFT_MAX_CHANNELS] = {0};
        if (kc == c) {
            const int64_t period = CF_SHIFT_PIXELS * c, total = hw * c;
            int64_t j = 0;
            for (; j + period <= total; j += period)
                for (int64_t m = 0; m < period; m++) acc[m] += x[j + m];
            for (int64_t m = 0; j + m < total; m++) acc[m] += x[j + m];
            for (int64_t m = c; m < period; m++) acc[m % c] += acc[m];
        } else {
            for (int64_t p = 0; p < hw; p++)
                for (int64_t k = 0; k < kc; k++) acc[k] += x[p * c + k0 + k];
        }
        for (int64_t k = 0; k < kc; k++) mean[k0 + k] = acc[k] / (double)hw;
    }
}

cf_status cf_image_scale_shift(const float *x, int64_t n, int64_t hw, int64_t c, const float *scale,
                               const float *shift, const float *mean_coef, float lo, float hi, float *y) {
    if (n < 0 || hw < 0 || c < 0) return CF_ERR_ARGUMENT;
    if (n * hw * c == 0) return CF_OK;
    if (x == NULL || y == NULL || scale == NULL || shift == NULL) return CF_ERR_ARGUMENT;
    const int64_t pixels = n * hw;
    const int64_t bytes = (int64_t)sizeof(float) * pixels * c * 2;
    if (mean_coef != NULL) {
        /* The means need the whole image before its first output: threads take whole images, so
         * the map re-reads an image from cache rather than from memory. */
        double *means = (double *)cf_workspace(0, (size_t)(n * c) * sizeof(double));
        float *shifts = (float *)cf_workspace(1, (size_t)(n * c) * sizeof(float));
        if (means == NULL || shifts == NULL) return CF_ERR_NOMEM;
        const int nt = bytes < cf_get_parallel_min_bytes() ? 1 : cf_threads_for(n);
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
        {
            CF_FTZ_BEGIN;
            const cf_range rg = cf_split(n, cf_thread_id(), cf_thread_count());
            for (int64_t b = rg.begin; b < rg.end; b++) {
                const int64_t base = b * hw * c;
                channel_means(x + base, hw, c, means + b * c);
                for (int64_t k = 0; k < c; k++)
                    shifts[b * c + k] = (float)(shift[b * c + k] + (double)mean_coef[b] * means[b * c + k]);
                map_pixels(x + base, y + base, 0, hw, c, scale[b], shifts + b * c, lo, hi);
            }
            CF_FTZ_END;
        }
        return CF_OK;
    }
    const int nt = bytes < cf_get_parallel_min_bytes() ? 1 : cf_threads_for(pixels);
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_FTZ_BEGIN;
        const cf_range rg = cf_split(pixels, cf_thread_id(), cf_thread_count());
        for (int64_t p = rg.begin; p < rg.end;) {   /* the range cut at image boundaries */
            const int64_t b = p / hw, end = CF_MIN(rg.end, (b + 1) * hw);
            const int64_t base = b * hw * c;
            map_pixels(x + base, y + base, p - b * hw, end - b * hw, c, scale[b], shift + b * c, lo, hi);
            p = end;
        }
        CF_FTZ_END;
    }
    return CF_OK;
}
