"""Float64 NumPy references for the model API tests: layers, losses, optimizer updates, a tiny IDX
reader for MNIST, and finite differences. Plain, obviously-correct code; speed is irrelevant."""
from __future__ import annotations

import gzip
import math
import pathlib
import struct

import numpy as np


# --------------------------------------------------------------------------------------------
# data
def read_idx(path) -> np.ndarray:
    """A gzip-compressed IDX file (MNIST format: big-endian magic, dims, then uint8 data)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != math.prod(dims):
        raise ValueError(f"{path}: truncated ({arr.size} values for shape {dims})")
    return arr.reshape(dims)


def load_mnist(directory):
    d = pathlib.Path(directory)
    return ((read_idx(d / "train-images-idx3-ubyte.gz"), read_idx(d / "train-labels-idx1-ubyte.gz")),
            (read_idx(d / "t10k-images-idx3-ubyte.gz"), read_idx(d / "t10k-labels-idx1-ubyte.gz")))


# --------------------------------------------------------------------------------------------
# finite differences
def fd_grad(f, x, eps=1e-6):
    """Central-difference gradient of the scalar function ``f`` at ``x`` (float64, every entry)."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        hi = f(x)
        flat[i] = old - eps
        lo = f(x)
        flat[i] = old
        gf[i] = (hi - lo) / (2 * eps)
    return g


# --------------------------------------------------------------------------------------------
# geometry (TensorFlow/Keras rules)
def same_pads(n, k, s, d=1):
    eff = d * (k - 1) + 1
    out = -(-n // s)
    total = max((out - 1) * s + eff - n, 0)
    return total // 2, total - total // 2


def upsample_bilinear(x, size):
    """Half-pixel bilinear upsampling by integer factors (Keras 3, torch align_corners=False)."""
    x = np.asarray(x, np.float64)

    def axis_matrix(n, m):
        a = np.zeros((m, n))
        for o in range(m):
            s = max((o + 0.5) * n / m - 0.5, 0.0)
            i0 = min(int(np.floor(s)), n - 1)
            a[o, i0] += 1 - (s - i0)
            a[o, min(i0 + 1, n - 1)] += s - i0
        return a
    return np.einsum("ph,qw,nhwc->npqc", axis_matrix(x.shape[1], x.shape[1] * size[0]),
                     axis_matrix(x.shape[2], x.shape[2] * size[1]), x)


def conv_out(n, k, s, d, padding):
    eff = d * (k - 1) + 1
    return -(-n // s) if padding == "same" else (n - eff) // s + 1


# --------------------------------------------------------------------------------------------
# layers
def dense(x, w, b=None):
    y = np.asarray(x, np.float64) @ np.asarray(w, np.float64)
    return y if b is None else y + b


def conv2d(x, w, b=None, strides=(1, 1), padding="valid", dilation=(1, 1), groups=1):
    """NHWC x, HWIO w (kh, kw, cin/groups, cout): a loop over taps and groups."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wd, c = x.shape
    kh, kw, cg, cout = w.shape
    (sh, sw), (dh, dw) = strides, dilation
    if padding == "same":
        (pt, pb), (pl, pr) = same_pads(h, kh, sh, dh), same_pads(wd, kw, sw, dw)
    elif padding == "valid":
        pt = pb = pl = pr = 0
    else:   # explicit ((top, bottom), (left, right))
        (pt, pb), (pl, pr) = padding
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    if isinstance(padding, str):
        ho, wo = conv_out(h, kh, sh, dh, padding), conv_out(wd, kw, sw, dw, padding)
    else:
        ho, wo = conv_out(h + pt + pb, kh, sh, dh, "valid"), conv_out(wd + pl + pr, kw, sw, dw, "valid")
    y = np.zeros((n, ho, wo, cout))
    og = cout // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, i * dh: i * dh + (ho - 1) * sh + 1: sh, j * dw: j * dw + (wo - 1) * sw + 1: sw,
                           g * cg:(g + 1) * cg]
                y[..., g * og:(g + 1) * og] += patch @ w[i, j, :, g * og:(g + 1) * og]
    return y if b is None else y + b


def deconv_len(n, k, s, d, padding, output_padding):
    eff = d * (k - 1) + 1
    if output_padding is None:
        return n * s + max(eff - s, 0) if padding == "valid" else n * s
    pad = eff // 2 if padding == "same" else 0
    return (n - 1) * s + eff - 2 * pad + output_padding


def conv2d_transpose(x, w, b=None, strides=(1, 1), padding="valid", output_padding=None, dilation=(1, 1)):
    """Keras Conv2DTranspose: the adjoint of the convolution that maps the (Keras-sized) output back
    onto x with TensorFlow padding; kernel (kh, kw, filters, cin)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wd, c = x.shape
    kh, kw, f, _ = w.shape
    (sh, sw), (dh, dw) = strides, dilation
    op = output_padding or (None, None)
    oh = deconv_len(h, kh, sh, dh, padding, op[0])
    ow = deconv_len(wd, kw, sw, dw, padding, op[1])
    pt = max((h - 1) * sh + dh * (kh - 1) + 1 - oh, 0) // 2 if padding == "same" else 0
    pl = max((wd - 1) * sw + dw * (kw - 1) + 1 - ow, 0) // 2 if padding == "same" else 0
    full = np.zeros((n, (h - 1) * sh + dh * (kh - 1) + 1 + oh, (wd - 1) * sw + dw * (kw - 1) + 1 + ow, f))
    for i in range(kh):
        for j in range(kw):
            full[:, i * dh: i * dh + (h - 1) * sh + 1: sh, j * dw: j * dw + (wd - 1) * sw + 1: sw, :] += \
                x @ w[i, j].T
    y = full[:, pt:pt + oh, pl:pl + ow, :]
    return y if b is None else y + b


def _pool_windows(x, pool, strides, padding, fill):
    n, h, w, c = x.shape
    (ph, pw), (sh, sw) = pool, strides
    if padding == "same":
        (pt, pb), (pl, pr) = same_pads(h, ph, sh), same_pads(w, pw, sw)
        ho, wo = -(-h // sh), -(-w // sw)
    else:
        pt = pb = pl = pr = 0
        ho, wo = (h - ph) // sh + 1, (w - pw) // sw + 1
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    mask = np.pad(np.ones((1, h, w, 1)), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    wins = np.empty((n, ho, wo, ph * pw, c))
    cnt = np.empty((1, ho, wo, ph * pw, 1))
    for i in range(ph):
        for j in range(pw):
            wins[:, :, :, i * pw + j] = xp[:, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw]
            cnt[:, :, :, i * pw + j] = mask[:, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw]
    return wins, cnt


def max_pool2d(x, pool, strides=None, padding="valid"):
    wins, _ = _pool_windows(x, pool, strides or pool, padding, -np.inf)
    return wins.max(axis=3)


def avg_pool2d(x, pool, strides=None, padding="valid"):
    wins, cnt = _pool_windows(x, pool, strides or pool, padding, 0.0)
    return wins.sum(axis=3) / cnt.sum(axis=3)


def batch_norm(x, gamma, beta, mean, var, eps):
    return (np.asarray(x, np.float64) - mean) / np.sqrt(var + eps) * gamma + beta


def softmax(z, axis=-1):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def upsample_nearest(x, size):
    return np.repeat(np.repeat(np.asarray(x, np.float64), size[0], axis=1), size[1], axis=2)


ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "softmax": softmax,
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "selu": lambda z: 1.0507009873554805 * np.where(z > 0, z, 1.6732632423543772 * np.expm1(np.minimum(z, 0))),
    "softplus": lambda z: np.logaddexp(0, z),
    "softsign": lambda z: z / (1 + np.abs(z)),
    "silu": lambda z: z / (1 + np.exp(-z)),
    "exponential": np.exp,
    "relu6": lambda z: np.clip(z, 0, 6),
    "hard_sigmoid": lambda z: np.clip(z / 6 + 0.5, 0, 1),
    "leaky_relu": lambda z: np.where(z >= 0, z, 0.2 * z),
}


# --------------------------------------------------------------------------------------------
# losses (Keras semantics)
def sparse_ce(labels, probs, from_logits=False):
    p = softmax(probs) if from_logits else np.clip(probs / probs.sum(-1, keepdims=True), 1e-7, 1 - 1e-7)
    return -np.log(p[np.arange(len(labels)), np.asarray(labels).reshape(-1)])


def categorical_ce(t, probs, from_logits=False):
    p = softmax(probs) if from_logits else np.clip(probs / probs.sum(-1, keepdims=True), 1e-7, 1 - 1e-7)
    return -(t * np.log(p)).sum(-1)


def binary_ce(t, p, from_logits=False):
    if from_logits:
        p = 1 / (1 + np.exp(-p))
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(-1)


# --------------------------------------------------------------------------------------------
# optimizer updates (Keras 3 formulas), float64
def keras_adam(params, grads_seq, lr=0.001, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False, weight_decay=None):
    w = np.array(params, np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    vhat = np.zeros_like(w)
    for t, g in enumerate(grads_seq, start=1):
        if weight_decay:
            w = w - w * weight_decay * lr
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        vv = v
        if amsgrad:
            vhat = np.maximum(vhat, v)
            vv = vhat
        w = w - alpha * m / (np.sqrt(vv) + eps)
    return w


def keras_sgd(params, grads_seq, lr=0.01, momentum=0.0, nesterov=False, weight_decay=None):
    w = np.array(params, np.float64)
    vel = np.zeros_like(w)
    for g in grads_seq:
        if weight_decay:
            w = w - w * weight_decay * lr
        if momentum:
            vel = momentum * vel - lr * g
            w = w + (momentum * vel - lr * g if nesterov else vel)
        else:
            w = w - lr * g
    return w


def keras_rmsprop(params, grads_seq, lr=0.001, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
    w = np.array(params, np.float64)
    v = np.zeros_like(w)
    a = np.zeros_like(w)
    mom = np.zeros_like(w)
    for g in grads_seq:
        v = rho * v + (1 - rho) * g * g
        if centered:
            a = rho * a + (1 - rho) * g
            denom = v - a * a
        else:
            denom = v
        inc = lr * g / np.sqrt(denom + eps)
        if momentum:
            mom = momentum * mom + inc
            w = w - mom
        else:
            w = w - inc
    return w


# --------------------------------------------------------------------------------------------
# whole models, layer by layer in float64 (for the model gradient check)
def layer_forward(layer, x, training=False):
    """Float64 forward of one built cnnfast layer (no Dropout randomness: identity)."""
    kind = type(layer).__name__
    if kind == "InputLayer":
        return x
    if hasattr(layer, "_plan"):  # a nested model
        return model_forward(layer, x, training)
    if kind in ("Dense", "Conv2D", "DepthwiseConv2D", "Conv2DTranspose"):
        w = np.asarray(layer.kernel.value, np.float64)
        b = None if layer.bias is None else np.asarray(layer.bias.value, np.float64)
        if kind == "Dense":
            z = dense(x, w, b)
        elif kind == "Conv2D":
            z = conv2d(x, w, b, layer.strides, layer.padding, layer.dilation_rate, layer.groups)
        elif kind == "DepthwiseConv2D":
            kh, kw, c, m = w.shape
            z = conv2d(x, w.reshape(kh, kw, 1, c * m), b, layer.strides, layer.padding, layer.dilation_rate, c)
        else:
            z = conv2d_transpose(x, w, b, layer.strides, layer.padding, layer.output_padding, layer.dilation_rate)
        return ACTIVATIONS[layer._act_name](z)
    if kind == "SeparableConv2D":
        dw = np.asarray(layer.depthwise_kernel.value, np.float64)
        kh, kw, c, m = dw.shape
        mid = conv2d(x, dw.reshape(kh, kw, 1, c * m), None, layer.strides, layer.padding,
                     layer.dilation_rate, c)
        b = None if layer.bias is None else np.asarray(layer.bias.value, np.float64)
        z = conv2d(mid, np.asarray(layer.pointwise_kernel.value, np.float64), b, (1, 1), "valid", (1, 1), 1)
        return ACTIVATIONS[layer._act_name](z)
    if kind == "Activation":
        return ACTIVATIONS[layer._act_name](x)
    if kind == "MaxPooling2D":
        return max_pool2d(x, layer.pool_size, layer.strides, layer.padding)
    if kind == "AveragePooling2D":
        return avg_pool2d(x, layer.pool_size, layer.strides, layer.padding)
    if kind == "GlobalAveragePooling2D":
        return x.mean(axis=(1, 2), keepdims=layer.keepdims)
    if kind == "GlobalMaxPooling2D":
        return x.max(axis=(1, 2), keepdims=layer.keepdims)
    if kind == "Flatten":
        return x.reshape(x.shape[0], -1)
    if kind == "Reshape":
        return x.reshape((x.shape[0],) + layer.target_shape)
    if kind == "Dropout":
        return x
    if kind == "BatchNormalization":
        g = np.ones(x.shape[-1]) if layer.gamma is None else layer.gamma.value
        b = np.zeros(x.shape[-1]) if layer.beta is None else layer.beta.value
        if training and layer.trainable:
            axes = tuple(range(x.ndim - 1))
            return batch_norm(x, g, b, x.mean(axis=axes), x.var(axis=axes), layer.epsilon)
        return batch_norm(x, g, b, layer.moving_mean.value, layer.moving_variance.value, layer.epsilon)
    if kind == "ReLU":
        y = np.where(x >= layer.threshold, x, layer.negative_slope * (x - layer.threshold))
        return y if layer.max_value is None else np.minimum(y, layer.max_value)
    if kind == "LeakyReLU":
        return np.where(x >= 0, x, layer.negative_slope * x)
    if kind == "Softmax":
        return softmax(x, layer.axis)
    if kind == "UpSampling2D":
        if layer.interpolation == "bilinear":
            return upsample_bilinear(x, layer.size)
        return upsample_nearest(x, layer.size)
    if kind == "ZeroPadding2D":
        (t, b), (l, r) = layer.padding
        return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    raise NotImplementedError(kind)


def model_forward(model, x, training=False):
    """Float64 forward of a functional or Sequential cnnfast model, following its graph plan."""
    vals = {0: np.asarray(x, np.float64)}
    for layer, ins, out, multi in model._plan:
        if multi:
            xs = [vals[i] for i in ins]
            kind = type(layer).__name__
            if kind == "Add":
                vals[out] = sum(xs)
            elif kind == "Concatenate":
                vals[out] = np.concatenate(xs, axis=layer.axis)
            elif kind == "Multiply":
                vals[out] = np.prod(xs, axis=0)
            elif kind == "Average":
                vals[out] = sum(xs) / len(xs)
            else:
                vals[out] = xs[0] - xs[1]
        else:
            vals[out] = layer_forward(layer, vals[ins[0]], training)
    return vals[model._output_slots[0]]


# --------------------------------------------------------------------------------------------
# checking one layer's forward and backward against the float64 reference
def layer_ref(layer, x, weights, training=False):
    """``layer_forward`` with the layer's trainable weights temporarily replaced by ``weights``."""
    vars_ = layer.trainable_weights
    saved = [v.value for v in vars_]
    try:
        for v, w in zip(vars_, weights):
            v.value = w
        return layer_forward(layer, x, training)
    finally:
        for v, s in zip(vars_, saved):
            v.value = s


def check_layer(layer, x, rng, training=True, rtol=2e-4, atol=2e-5, fd=True):
    """Run ``layer`` forward and backward on ``x`` (float32) and compare the output, the input
    gradient and every weight gradient with the float64 reference and finite differences."""
    from cnnfast.layers import base

    x = np.asarray(x, np.float32)
    layer._maybe_build((None,) + x.shape[1:])
    ctx = {}
    y = layer.forward(x, training, ctx)
    x64 = x.astype(np.float64)
    ws = [np.asarray(v.value, np.float64) for v in layer.trainable_weights]
    ref = layer_ref(layer, x64, ws, training)
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(y, ref, rtol=rtol, atol=atol * scale, err_msg="forward")
    dy = rng.standard_normal(y.shape)
    base.new_grad_generation()
    dx = layer.backward(dy.astype(np.float32), ctx, True)
    grads = [v.grad.copy() for v in layer.trainable_weights]
    if not fd:
        return y, dx, grads
    loss_x = lambda xx: float(np.sum(layer_ref(layer, xx, ws, training) * dy))
    gx = fd_grad(loss_x, x64)
    np.testing.assert_allclose(dx, gx, rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(gx).max())),
                               err_msg="input gradient")
    for i, var in enumerate(layer.trainable_weights):
        def loss_w(wi, i=i):
            w2 = list(ws)
            w2[i] = wi
            return float(np.sum(layer_ref(layer, x64, w2, training) * dy))
        gw = fd_grad(loss_w, ws[i])
        np.testing.assert_allclose(grads[i], gw, rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(gw).max())),
                                   err_msg=f"gradient of {var.path}")
    return y, dx, grads
