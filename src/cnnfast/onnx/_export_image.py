"""ONNX export of the image preprocessing layers: the random augmentation layers are identities
at inference; Resizing, CenterCrop and RandomCrop (its inference form) are a Slice of the
window they keep, then a resize to the target size.

The resize: bilinear is ONNX's ``Resize`` (linear, half_pixel: Keras's rule, edges clamped) to
the target size taken from the input's runtime shape, so the batch stays dynamic; nearest is a
``Gather`` of the rows and then of the columns Keras picks, ``floor((i + 0.5) * n_in / n_out)``,
exact in any opset. Sizes must be known; antialiasing and padding to the aspect ratio are not
exported (a clear error names the layer).
"""
from __future__ import annotations

import numpy as np

from ..layers.resizing import _crop_window
from ..ops.image import _nearest_indices
from ._export import ExportError, _elementwise, _identity_layer


def _axes(layer):
    return (2, 3) if getattr(layer, "data_format", "channels_last") == "channels_first" else (1, 2)


def _image_size(w, layer, x):
    shape = w.shape(x)
    hw = tuple(shape[a] for a in _axes(layer))
    if any(n is None for n in hw):
        raise ExportError(f"cnnfast.onnx.export: layer '{layer.name}' ({type(layer).__name__}) needs "
                          f"known image height and width, got {shape}")
    return hw


def _slice(w, layer, y, box):
    top, left, h, wd = box
    ins = [y, w.const(np.array([top, left], np.int64), f"{layer.name}.starts", np.int64),
           w.const(np.array([top + h, left + wd], np.int64), f"{layer.name}.ends", np.int64),
           w.const(np.array(_axes(layer), np.int64), f"{layer.name}.axes", np.int64)]
    return w.node("Slice", ins, f"{layer.name}_window")


def _resize(w, layer, y, size_in, size_out, interpolation):
    if tuple(size_in) == tuple(size_out):
        return y
    ah, aw = _axes(layer)
    if interpolation == "nearest":
        for axis, n_in, n_out in ((ah, size_in[0], size_out[0]), (aw, size_in[1], size_out[1])):
            if n_in != n_out:
                idx = w.const(_nearest_indices(n_in, n_out), f"{layer.name}.rows{axis}", np.int64)
                y = w.node("Gather", [y, idx], f"{layer.name}_nearest{axis}", axis=axis)
        return y
    if interpolation != "bilinear":
        raise ExportError(f"cnnfast.onnx.export: layer '{layer.name}' ({type(layer).__name__}): "
                          f"interpolation {interpolation!r} is not exported (bilinear and nearest are)")
    # sizes = the input's own shape with the two image axes replaced
    shape = w.node("Shape", [y], f"{layer.name}_shape")
    keep = lambda a, b, tag: w.node("Slice", [shape, w.const(np.array([a], np.int64), f"{layer.name}.{tag}0", np.int64),
                                              w.const(np.array([b], np.int64), f"{layer.name}.{tag}1", np.int64)],
                                     f"{layer.name}_{tag}")
    hw = w.const(np.array(size_out, np.int64), f"{layer.name}.size", np.int64)
    parts = [keep(0, ah, "lead"), hw] + ([keep(aw + 1, 4, "tail")] if aw + 1 < 4 else [])
    sizes = w.node("Concat", parts, f"{layer.name}_sizes", axis=0)
    return w.node("Resize", [y, "", "", sizes], f"{layer.name}_resize", mode="linear",
                  coordinate_transformation_mode="half_pixel")


def _resizing(w, layer, x, out):
    if layer.antialias or layer.pad_to_aspect_ratio:
        raise ExportError(f"cnnfast.onnx.export: layer '{layer.name}' (Resizing): antialias and "
                          f"pad_to_aspect_ratio are not exported")
    h, wd = _image_size(w, layer, x)
    y = w.get(x, "nhwc")
    if layer.crop_to_aspect_ratio:
        box = _crop_window(h, wd, layer.height, layer.width)
        y, (h, wd) = _slice(w, layer, y, box), box[2:]
    y = _resize(w, layer, y, (h, wd), (layer.height, layer.width), layer.interpolation)
    w.set(out, y, "nhwc", out.shape)


def _center_crop(w, layer, x, out):
    h, wd = _image_size(w, layer, x)
    y = w.get(x, "nhwc")
    if h >= layer.height and wd >= layer.width:
        y = _slice(w, layer, y, ((h - layer.height) // 2, (wd - layer.width) // 2, layer.height, layer.width))
    else:   # a smaller image: the aspect-ratio window, resized (Keras's smart_resize)
        box = _crop_window(h, wd, layer.height, layer.width)
        y = _resize(w, layer, _slice(w, layer, y, box), box[2:], (layer.height, layer.width), "bilinear")
    w.set(out, y, "nhwc", out.shape)


def _random_crop(w, layer, x, out):
    h, wd = _image_size(w, layer, x)
    box = _crop_window(h, wd, layer.height, layer.width)
    y = _resize(w, layer, _slice(w, layer, w.get(x, "nhwc"), box), box[2:], (layer.height, layer.width), "bilinear")
    w.set(out, y, "nhwc", out.shape)


HANDLERS_IMAGE = {"Resizing": _resizing, "CenterCrop": _center_crop, "RandomCrop": _random_crop}
HANDLERS_IMAGE.update({name: _elementwise(_identity_layer) for name in (
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness")})
