"""float64 NumPy references for the conv ops: explicit zero padding, then a loop over the kernel
taps (and groups) with the channel contraction of each tap written as an einsum. Slow, obvious,
independent of the kernels' algorithms. Padding is given explicitly as ((top, bottom), (left,
right)); the helpers below turn the named modes into those numbers by their definitions.
"""
from __future__ import annotations

import math

import numpy as np


def same_pads(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow/Keras 'same': ceil(n/s) outputs, the odd extra pixel after."""
    dk = d * (k - 1) + 1
    out = math.ceil(n / s)
    total = max((out - 1) * s + dk - n, 0)
    return total // 2, total - total // 2


def pads_for(padding, x_shape, w_shape, strides, dilation):
    """((top, bottom), (left, right)) for a named or explicit padding."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        return (same_pads(x_shape[1], w_shape[0], strides[0], dilation[0]),
                same_pads(x_shape[2], w_shape[1], strides[1], dilation[1]))
    if padding == "full":
        ph = dilation[0] * (w_shape[0] - 1)
        pw = dilation[1] * (w_shape[1] - 1)
        return ((ph, ph), (pw, pw))
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    ph, pw = padding
    ph = (ph, ph) if isinstance(ph, int) else tuple(ph)
    pw = (pw, pw) if isinstance(pw, int) else tuple(pw)
    return (ph, pw)


def _tap_slices(i, j, ho, wo, strides, dilation):
    sh, sw = strides
    dh, dw = dilation
    return (slice(i * dh, i * dh + (ho - 1) * sh + 1, sh), slice(j * dw, j * dw + (wo - 1) * sw + 1, sw))


def _out_size(n, k, s, d, pb, pa):
    return (n + pb + pa - (d * (k - 1) + 1)) // s + 1


def conv2d(x, w, bias=None, strides=(1, 1), pads=((0, 0), (0, 0)), dilation=(1, 1), groups=1,
           relu=False):
    """y[n, oh, ow, o] = bias[o] + sum x_padded[n, oh*s + i*d, ow*s + j*d, g*cig + ci] w[i, j, ci, o]."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wd, c = x.shape
    kh, kw, cig, cout = w.shape
    (pt, pb), (pl, pr) = pads
    ho = _out_size(h, kh, strides[0], dilation[0], pt, pb)
    wo = _out_size(wd, kw, strides[1], dilation[1], pl, pr)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    cog = cout // groups
    y = np.zeros((n, ho, wo, cout))
    for i in range(kh):
        for j in range(kw):
            si, sj = _tap_slices(i, j, ho, wo, strides, dilation)
            patch = xp[:, si, sj, :]
            for g in range(groups):
                y[..., g * cog:(g + 1) * cog] += np.einsum(
                    "nhwc,co->nhwo", patch[..., g * cig:(g + 1) * cig], w[i, j, :, g * cog:(g + 1) * cog])
    if bias is not None:
        y += np.asarray(bias, np.float64)
    if relu:
        y = np.maximum(y, 0.0)
    return y


def conv2d_backward(dy, x, w, strides=(1, 1), pads=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    """(dx, dw, db) of conv2d by the chain rule, tap by tap."""
    dy = np.asarray(dy, np.float64)
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wd, c = x.shape
    kh, kw, cig, cout = w.shape
    (pt, pb), (pl, pr) = pads
    ho, wo = dy.shape[1], dy.shape[2]
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    cog = cout // groups
    for i in range(kh):
        for j in range(kw):
            si, sj = _tap_slices(i, j, ho, wo, strides, dilation)
            for g in range(groups):
                ci, co = slice(g * cig, (g + 1) * cig), slice(g * cog, (g + 1) * cog)
                dxp[:, si, sj, ci] += np.einsum("nhwo,co->nhwc", dy[..., co], w[i, j, :, co])
                dw[i, j, :, co] += np.einsum("nhwc,nhwo->co", xp[:, si, sj, ci], dy[..., co])
    dx = dxp[:, pt:pt + h, pl:pl + wd, :]
    return dx, dw, dy.sum(axis=(0, 1, 2))


def conv2d_naive(x, w, bias, strides, pads, dilation, groups):
    """Seven nested loops, for tiny shapes: checks the tap-loop reference itself."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wd, c = x.shape
    kh, kw, cig, cout = w.shape
    (pt, pb), (pl, pr) = pads
    ho = _out_size(h, kh, strides[0], dilation[0], pt, pb)
    wo = _out_size(wd, kw, strides[1], dilation[1], pl, pr)
    cog = cout // groups
    y = np.zeros((n, ho, wo, cout))
    for b in range(n):
        for oh in range(ho):
            for ow in range(wo):
                for o in range(cout):
                    g = o // cog
                    s = 0.0 if bias is None else float(bias[o])
                    for i in range(kh):
                        for j in range(kw):
                            ih = oh * strides[0] - pt + i * dilation[0]
                            iw = ow * strides[1] - pl + j * dilation[1]
                            if 0 <= ih < h and 0 <= iw < wd:
                                for ci in range(cig):
                                    s += x[b, ih, iw, g * cig + ci] * w[i, j, ci, o]
                    y[b, oh, ow, o] = s
    return y


def transpose_pads(k, s, d, padding, output_padding):
    """Keras 3 (JAX backend) padding of the lhs-dilated input for Conv2DTranspose
    (keras/src/backend/common/backend_utils.py), returned as (left, right)."""
    dk = (k - 1) * d + 1
    if padding == "valid":
        op = max(dk, s) - dk if output_padding is None else output_padding
        return dk - 1, dk - 1 + op
    pad_len = s + dk - 2 if output_padding is None else dk + dk % 2 - 2 + output_padding
    left = min(pad_len // 2 + pad_len % 2, dk - 1)
    return left, pad_len - left


def conv2d_transpose(x, w, bias=None, strides=(1, 1), padding="valid", output_padding=None,
                     dilation=(1, 1), relu=False):
    """Keras's definition: dilate x by the strides (zeros between pixels), pad it (left, right)
    per transpose_pads, and cross-correlate with the spatially flipped kernel, whose
    (filters, in_channels) axes are the (output, input) channels. w is (kh, kw, filters, in)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wd, c = x.shape
    kh, kw, filters, _ = w.shape
    ops = (None, None) if output_padding is None else output_padding
    (lt, rb) = transpose_pads(kh, strides[0], dilation[0], padding, ops[0])
    (ll, rr) = transpose_pads(kw, strides[1], dilation[1], padding, ops[1])
    hd, wdd = (h - 1) * strides[0] + 1, (wd - 1) * strides[1] + 1
    z = np.zeros((n, hd, wdd, c))
    z[:, ::strides[0], ::strides[1], :] = x
    # Negative padding crops.
    z = np.pad(z, ((0, 0), (max(lt, 0), max(rb, 0)), (max(ll, 0), max(rr, 0)), (0, 0)))
    z = z[:, max(-lt, 0):z.shape[1] - max(-rb, 0), max(-ll, 0):z.shape[2] - max(-rr, 0), :]
    wf = w[::-1, ::-1].transpose(0, 1, 3, 2)  # (kh, kw, in, filters), flipped
    return conv2d(z, wf, bias, (1, 1), ((0, 0), (0, 0)), dilation, 1, relu)


def correlate2d(image, kernel, pads, out_shape):
    """out[r, c] = sum image[r - pt + i, c - pl + j] kernel[i, j] with zeros outside the image."""
    image = np.asarray(image, np.float64)
    kernel = np.asarray(kernel, np.float64)
    out = np.zeros(out_shape)
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            for r in range(out_shape[0]):
                ir = r - pads[0] + i
                if not 0 <= ir < image.shape[0]:
                    continue
                for cc in range(out_shape[1]):
                    ic = cc - pads[1] + j
                    if 0 <= ic < image.shape[1]:
                        out[r, cc] += image[ir, ic] * kernel[i, j]
    return out
