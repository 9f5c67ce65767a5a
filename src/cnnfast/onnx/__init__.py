"""cnnfast.onnx — models in and out through ONNX.

    cnnfast.onnx.export(model, "model.onnx")        # or model.export("model.onnx", format="onnx")
    model = cnnfast.onnx.load_model("resnet18.onnx")

Both directions need the ``onnx`` package (``pip install 'cnnfast[onnx]'``); ``import cnnfast``
does not. Export writes NHWC-input graphs with a dynamic batch axis (the layout the Keras-style
model takes); import builds a cnnfast functional ``Model`` that takes the inputs the graph
declares (NCHW for graphs from PyTorch) and runs NHWC inside.
"""
from __future__ import annotations

import importlib

__all__ = ["export", "load_model", "MIN_OPSET", "MAX_OPSET", "DEFAULT_OPSET"]

#: opsets this module writes and reads (Softmax on any axis, Resize and Pad with inputs: 13+)
MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 13, 21, 17


def require_onnx(what: str):
    """The ``onnx`` module, or an ImportError that says how to install it."""
    try:
        return importlib.import_module("onnx")
    except ImportError:
        raise ImportError(f"{what} needs the 'onnx' package: pip install 'cnnfast[onnx]' "
                          "(or pip install onnx)") from None


def export(model, filepath, opset: int = DEFAULT_OPSET, verbose: bool = False):
    """Write ``model`` (Sequential or functional) to ``filepath`` as an ONNX model; returns the path."""
    from ._export import export_model
    return export_model(model, filepath, opset=opset, verbose=verbose)


def load_model(filepath):
    """A cnnfast functional ``Model`` built from the ONNX file ``filepath`` (see the module doc)."""
    from ._import import load_onnx_model
    return load_onnx_model(filepath)
