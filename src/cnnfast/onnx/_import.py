"""ONNX graph -> cnnfast functional Model.

Three passes over the graph, before anything runs:

1. **Read and check.** The file is parsed as protobuf (no code in it is ever executed), external
   data files are resolved inside the model's folder only, ``onnx.checker`` rejects dangling names
   and cycles, the opset must lie in ``[MIN_OPSET, MAX_OPSET]``, and every input dimension but the
   batch must be a number.
2. **Op check.** Every node whose operator (or attribute setting) has no cnnfast equivalent is
   collected, and one error lists them all.
3. **Build.** Nodes are visited in order. A value is either a NumPy constant (initializers,
   ``Constant`` and everything computed from constants only, e.g. exporters' shape arithmetic
   ``Shape -> Gather -> Concat -> Reshape``, which is folded here) or a symbolic tensor of the
   model being built.

Layout. ONNX's image operators are NCHW; cnnfast's are NHWC. A symbolic value keeps its *logical*
(ONNX) shape and a permutation saying on which physical axis each logical axis lies, so a
``Transpose`` node costs nothing, and a Conv on an NCHW value just reads it as NHWC. A real
``Permute`` layer is inserted only where an operator needs an axis order it does not have (the
graph's NCHW input before the first convolution; an NCHW output); ``Flatten`` feeding ``Gemm``
instead reorders the weight rows once at load time. Padding that Keras's ``'same'`` rule does not
produce becomes an explicit ``ZeroPadding2D`` (convolutions) or explicit pool padding.
"""
from __future__ import annotations

import math
import os
import re

import numpy as np

from . import MAX_OPSET, MIN_OPSET, require_onnx
from ._names import unique

__all__ = ["load_onnx_model", "OnnxImportError", "SUPPORTED_OPS"]


class OnnxImportError(ValueError):
    """An ONNX file that cnnfast cannot rebuild as a model (the message says what and where)."""


class _Batch:
    """The batch dimension inside folded shape arithmetic (its value is only known per call)."""

    def __repr__(self):
        return "batch"


BATCH = _Batch()


class _Sym:
    """A symbolic value: logical (ONNX) ``shape`` with None batch; logical axis i is physical axis
    ``perm[i]`` of the cnnfast tensor ``views[perm]``. A Flatten result may instead wait in
    ``flat_of`` (the 4-D value it flattens) until a consumer decides how to read it."""

    __slots__ = ("shape", "views", "perm", "flat_of")

    def __init__(self, tensor, perm, shape, flat_of=None):
        self.shape, self.perm, self.flat_of = tuple(shape), tuple(perm), flat_of
        self.views = {} if tensor is None else {self.perm: tensor}

    @property
    def rank(self):
        return len(self.shape)


def _axis_arg(perm, logical_axis):
    """The physical axis of ``logical_axis`` as a layer argument (-1 for the last, as Keras's)."""
    axis = int(perm[logical_axis])
    return -1 if axis == len(perm) - 1 else axis


def _identity(rank):
    return tuple(range(rank))


_NHWC = (0, 3, 1, 2)   # logical NCHW axis -> physical NHWC axis


# -- reading -------------------------------------------------------------------------------------
def _read(onnx, filepath):
    path = os.fspath(filepath)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"cnnfast.onnx.load_model: no such file: '{path}'")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends: the bytes are not a model
        raise OnnxImportError(f"cnnfast.onnx.load_model: '{path}' is not a readable ONNX model "
                              f"({type(e).__name__}: {e})") from None
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise OnnxImportError(f"cnnfast.onnx.load_model: '{path}' holds no ONNX graph (is it an "
                              "ONNX file?)")
    _load_external_data(onnx, model, path)
    try:   # the checker reads the file itself (in C++): no second copy of the weights in Python
        onnx.checker.check_model(path if not model.graph.initializer or
                                 not any(t.data_location == 1 for t in model.graph.initializer)
                                 else model)
    except Exception as e:
        raise OnnxImportError(f"cnnfast.onnx.load_model: '{path}' is not a valid ONNX model: "
                              f"{str(e).strip().splitlines()[0]}") from None
    return model


def _load_external_data(onnx, model, path):
    """Initializers stored beside the model: only files inside its folder, all present."""
    from onnx import external_data_helper as ext
    base = os.path.dirname(os.path.abspath(path))
    tensors = [t for t in ext._get_all_tensors(model) if ext.uses_external_data(t)]
    for t in tensors:
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        full = os.path.normpath(os.path.join(base, loc))
        if not loc or os.path.isabs(loc) or os.path.commonpath([base, full]) != base:
            raise OnnxImportError(f"cnnfast.onnx.load_model: tensor '{t.name}' points to external "
                                  f"data '{loc}' outside the model's folder; refusing to read it")
        if not os.path.isfile(full):
            raise OnnxImportError(f"cnnfast.onnx.load_model: tensor '{t.name}' needs the external "
                                  f"data file '{full}', which does not exist (keep it beside "
                                  f"'{os.path.basename(path)}')")
        need = int(info.get("offset", 0)) + int(info.get("length", 0))
        if need > os.path.getsize(full):
            raise OnnxImportError(f"cnnfast.onnx.load_model: external data file '{full}' is "
                                  f"shorter than tensor '{t.name}' needs ({need} bytes)")
    if tensors:
        ext.load_external_data_for_model(model, base)


def _opset(model, path):
    versions = {o.domain: o.version for o in model.opset_import}
    version = versions.get("", versions.get("ai.onnx"))
    if version is None:
        raise OnnxImportError(f"cnnfast.onnx.load_model: '{path}' imports no default ONNX opset")
    if not MIN_OPSET <= version <= MAX_OPSET:
        raise OnnxImportError(f"cnnfast.onnx.load_model: '{path}' uses opset {version}; cnnfast "
                              f"reads opsets {MIN_OPSET} to {MAX_OPSET} (re-export it, e.g. "
                              f"torch.onnx.export(..., opset_version=17), or convert it with "
                              f"onnx.version_converter)")
    return version


def _attrs(onnx, node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


# -- which nodes can be imported -----------------------------------------------------------------
_UNARY = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Softmax", "Elu",
          "Selu", "Softplus", "Softsign", "Exp", "Clip"}
_SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Constant",
              "ConstantOfShape", "Range", "Identity", "Reshape", "Transpose", "Flatten", "Expand",
              "Floor", "Ceil", "Sqrt", "Neg", "Equal", "Where", "Min", "Max", "ReduceProd"}
SUPPORTED_OPS = frozenset(_UNARY | _SHAPE_OPS | {
    "Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sum", "Sub", "Mul", "Div", "MaxPool",
    "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "Pad", "Resize",
    "Upsample", "Dropout", "ReduceMean"})


def _static_problem(node, a):
    """Why ``node`` cannot be imported whatever its inputs are, or None."""
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        return f"operator domain '{node.domain}' is not the standard ONNX one"
    if op not in SUPPORTED_OPS:
        return "no cnnfast equivalent"
    if op in ("MaxPool", "AveragePool", "Conv", "ConvTranspose") and len(a.get("kernel_shape", [0, 0])) != 2:
        return "only 2-D (NCHW) kernels are supported"
    if op == "MaxPool":
        if any(d != 1 for d in a.get("dilations", [])):
            return "dilated pooling is not supported"
        if len(node.output) > 1 and node.output[1]:
            return "the Indices output is not supported"
    if op == "ConvTranspose" and a.get("group", 1) != 1:
        return "grouped transposed convolution is not supported"
    if op == "BatchNormalization" and (a.get("training_mode", 0) or len(node.output) > 1):
        return "training-mode BatchNormalization (with statistics outputs) is not supported"
    if op == "Dropout" and len(node.output) > 1 and node.output[1]:
        return "the mask output is not supported"
    if op == "Pad" and a.get("mode", b"constant") not in (b"constant", "constant"):
        return f"padding mode '{_s(a['mode'])}' is not supported (only constant zeros)"
    if op in ("Resize", "Upsample"):
        mode = _s(a.get("mode", "nearest"))
        ctm = _s(a.get("coordinate_transformation_mode", "half_pixel" if op == "Resize" else "asymmetric"))
        if mode == "linear" and op == "Resize":   # UpSampling2D(interpolation="bilinear")'s geometry
            if ctm in ("half_pixel", "pytorch_half_pixel"):
                return None
            return (f"linear resizing with coordinate_transformation_mode '{ctm}' is not supported "
                    "(half_pixel / pytorch_half_pixel, PyTorch's align_corners=False, are)")
        if mode != "nearest":
            return f"mode '{mode}' is not supported (nearest or, for Resize, linear)"
        # integer-factor nearest upsampling repeats pixels only with these rounding rules
        nearest = _s(a.get("nearest_mode", "round_prefer_floor" if op == "Resize" else "floor"))
        if op == "Upsample":
            ctm, nearest = "asymmetric", "floor"
        ok = {"asymmetric": ("floor",), "half_pixel": ("round_prefer_floor", "round_prefer_ceil"),
              "pytorch_half_pixel": ("round_prefer_floor", "round_prefer_ceil")}
        if nearest not in ok.get(ctm, ()):
            return (f"coordinate_transformation_mode '{ctm}' with nearest_mode '{nearest}' is not "
                    "supported (PyTorch's nearest upsampling is)")
    return None


def _s(v):
    return v.decode() if isinstance(v, bytes) else str(v)


# -- the builder ---------------------------------------------------------------------------------
class _Builder:
    def __init__(self, onnx, model, opset, path):
        self.onnx, self.graph, self.opset, self.path = onnx, model.graph, opset, path
        from .. import layers
        self.L = layers
        self.values = {}
        self.absorbed = set()
        self._names = set()
        self.static_batch = None
        self.consumers, self.producer = {}, {}
        for i, node in enumerate(self.graph.node):
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(i)
            for name in node.output:
                if name:
                    self.producer[name] = i
        self.outputs = {o.name for o in self.graph.output}

    # -- errors and names ------------------------------------------------------------------------
    def fail(self, node, why):
        raise OnnxImportError(f"cnnfast.onnx.load_model: node '{node.name or node.op_type}' "
                              f"({node.op_type}, opset {self.opset}): {why}")

    def uname(self, base):
        base = re.sub(r"[^A-Za-z0-9_]+", "_", base).strip("_") or "layer"
        if not base[0].isalpha():
            base = "n_" + base
        return unique(base, self._names)

    def layer(self, cls, node, x, suffix="", weights=None, **kwargs):
        """Calls a new cnnfast layer (named after the node) on ``x``; sets its weights."""
        if weights is not None:   # the file's weights replace them: skip drawing random ones
            key = "depthwise_initializer" if cls is self.L.DepthwiseConv2D else "kernel_initializer"
            if cls in (self.L.Conv2D, self.L.DepthwiseConv2D, self.L.Conv2DTranspose, self.L.Dense):
                kwargs[key] = "zeros"
        base = "output" if node is None else (node.name or node.op_type)
        try:
            layer = cls(name=self.uname(base + suffix), **kwargs)
            y = layer(x)
        except (ValueError, TypeError) as e:
            if node is None:
                raise
            self.fail(node, f"no cnnfast {cls.__name__} for it: {e}")
        if weights is not None:
            layer.set_weights([np.ascontiguousarray(w, np.float32) for w in weights])
        return y

    # -- values ----------------------------------------------------------------------------------
    def view(self, v, perm, node=None, suffix="_permute"):
        """``v``'s cnnfast tensor with logical axis i on physical axis ``perm[i]``."""
        perm = tuple(perm)
        if v.flat_of is not None and not v.views:
            src = self.view(v.flat_of, _identity(v.flat_of.rank), node)
            v.views[(0, 1)] = self.layer(self.L.Flatten, node, src, "_flatten")
            v.perm = (0, 1)
        if perm in v.views:
            return v.views[perm]
        have, x = next(iter(v.views.items()))
        # output physical axis j holds logical axis l with perm[l] == j, read at have[l]
        inv = np.argsort(perm)
        dims = tuple(int(have[l]) for l in inv)
        in_size = {int(have[l]): v.shape[l] for l in range(len(perm))}
        big = [dims[j] for j in range(1, len(perm)) if in_size[dims[j]] != 1]
        if big == sorted(big):   # only size-1 axes move: the element order stays, reshape it
            phys = tuple(v.shape[l] for l in inv)[1:]
            y = self.layer(self.L.Reshape, node, x, "_reshape", target_shape=phys)
        else:
            y = self.layer(self.L.Permute, node, x, suffix, dims=dims[1:])
        v.views[perm] = y
        return y

    def any_view(self, v, node=None):
        if v.flat_of is not None and not v.views:
            self.view(v, (0, 1), node)
        perm, x = next(iter(v.views.items()))
        return perm, x

    def sym(self, tensor, perm, shape):
        return _Sym(tensor, perm, shape)

    def sole_consumer(self, name, op_types):
        """The one node reading ``name`` if it is of ``op_types`` and ``name`` is no output."""
        users = self.consumers.get(name, [])
        if len(users) != 1 or name in self.outputs:
            return None
        node = self.graph.node[users[0]]
        return users[0] if node.op_type in op_types else None

    def const(self, node, i, what):
        v = self.inp(node, i)
        if not isinstance(v, np.ndarray):
            self.fail(node, f"{what} must be a constant (an initializer), not a computed tensor")
        return v

    def inp(self, node, i):
        if i >= len(node.input) or not node.input[i]:
            return None
        return self.values[node.input[i]]

    # -- inputs and outputs ----------------------------------------------------------------------
    def make_inputs(self):
        from ..layers import Input
        inits = {t.name for t in self.graph.initializer}
        for t in self.graph.initializer:
            self.values[t.name] = self.onnx.numpy_helper.to_array(t)
        inputs = []
        for vi in self.graph.input:
            if vi.name in inits:
                continue
            tt = vi.type.tensor_type
            if tt.elem_type not in (1, 11, 10):   # float, double, float16
                raise OnnxImportError(f"cnnfast.onnx.load_model: input '{vi.name}' has element "
                                      f"type {tt.elem_type}; cnnfast models take float inputs")
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                    for d in tt.shape.dim]
            if not dims:
                raise OnnxImportError(f"cnnfast.onnx.load_model: input '{vi.name}' has no batch "
                                      "dimension (rank 0)")
            bad = [f"dim {i} = '{d}'" for i, d in enumerate(dims[1:], 1) if not isinstance(d, int) or d < 1]
            if bad:
                raise OnnxImportError(f"cnnfast.onnx.load_model: input '{vi.name}' has symbolic "
                                      f"non-batch dimensions ({', '.join(bad)}); cnnfast needs "
                                      "every dimension but the first fixed (re-export with a "
                                      "fixed image size)")
            if isinstance(dims[0], int) and dims[0] > 0:
                self.static_batch = dims[0]
            x = Input(shape=tuple(dims[1:]), name=self.uname(vi.name))
            self.values[vi.name] = self.sym(x, _identity(len(dims)), (None,) + tuple(dims[1:]))
            inputs.append(x)
        if not inputs:
            raise OnnxImportError("cnnfast.onnx.load_model: the graph has no (non-initializer) inputs")
        return inputs

    def make_outputs(self):
        outs = []
        for o in self.graph.output:
            v = self.values[o.name]
            if isinstance(v, np.ndarray):
                raise OnnxImportError(f"cnnfast.onnx.load_model: output '{o.name}' is a constant "
                                      "that does not depend on the inputs")
            outs.append(self.view(v, _identity(v.rank)))
        return outs

    # -- the walk --------------------------------------------------------------------------------
    def build(self):
        from ..models import Model
        inputs = self.make_inputs()
        for i, node in enumerate(self.graph.node):
            if i in self.absorbed:
                continue
            a = _attrs(self.onnx, node)
            ins = [self.inp(node, k) for k in range(len(node.input))]
            real = [v for v in ins if v is not None]
            if all(isinstance(v, np.ndarray) for v in real) and node.op_type != "Shape":
                outs = self.fold(node, ins, a)
            else:
                handler = getattr(self, "op_" + node.op_type, None)
                if handler is None:
                    self.fail(node, "cannot be applied to a computed tensor")
                outs = handler(node, ins, a)
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            for name, v in zip(node.output, outs):
                if name:
                    self.values[name] = v
        outputs = self.make_outputs()
        name = re.sub(r"[^A-Za-z0-9_]", "_", self.graph.name or "") or \
            re.sub(r"[^A-Za-z0-9_]", "_", os.path.splitext(os.path.basename(self.path))[0]) or "onnx_model"
        return Model(inputs[0] if len(inputs) == 1 else inputs,
                     outputs[0] if len(outputs) == 1 else outputs, name=name)

    # -- constant folding ------------------------------------------------------------------------
    def fold(self, node, ins, a):
        op = node.op_type
        fn = _FOLD.get(op)
        if fn is None:
            self.fail(node, "cannot be computed at load time")
        try:
            out = fn(ins, a, self.opset)
            if not isinstance(out, np.ndarray):   # e.g. Gather of one element of a shape
                out = np.array(out, dtype=object if out is BATCH else None)
        except OnnxImportError:
            raise
        except Exception as e:
            self.fail(node, f"could not fold its constant inputs ({type(e).__name__}: {e})")
        return out

    def op_Shape(self, node, ins, a):
        v = ins[0]
        shape = [BATCH if self.static_batch is None else self.static_batch] + list(v.shape[1:]) \
            if isinstance(v, _Sym) else list(np.shape(v))
        start, end = a.get("start", 0), a.get("end", None)
        dims = shape[start:end]
        if all(isinstance(d, (int, np.integer)) for d in dims):
            return np.array(dims, np.int64)
        return np.array(dims, dtype=object)   # holds BATCH: only shape arithmetic may read it

    # -- pass-through ----------------------------------------------------------------------------
    def op_Identity(self, node, ins, a):
        return ins[0]

    op_Dropout = op_Identity

    def op_Cast(self, node, ins, a):
        if a.get("to") not in (1, 10, 11):
            self.fail(node, "a computed tensor can only be cast to a float type")
        return ins[0]

    # -- layout ----------------------------------------------------------------------------------
    def op_Transpose(self, node, ins, a):
        v = ins[0]
        t = list(a.get("perm", reversed(range(v.rank))))
        if t[0] != 0:
            self.fail(node, f"perm {t} moves the batch axis")
        perm, x = self.any_view(v, node)
        return _Sym(x, [perm[i] for i in t], [v.shape[i] for i in t])

    def op_Flatten(self, node, ins, a):
        v = ins[0]
        axis = a.get("axis", 1)
        axis = axis + v.rank if axis < 0 else axis
        if axis != 1:
            self.fail(node, f"Flatten(axis={a.get('axis')}) mixes the batch axis into features")
        return self.flatten(v)

    def flatten(self, v):
        if v.rank == 2:
            return v
        return _Sym(None, (0, 1), (None, math.prod(v.shape[1:])), flat_of=v)

    def reshape_to(self, node, v, rest):
        """``v`` reshaped to ``(batch,) + rest``, all of ``rest`` known."""
        rest = tuple(int(s) for s in rest)
        if rest == tuple(v.shape[1:]):
            return v
        if len(rest) == 1 and v.rank > 2:
            return self.flatten(v)
        x = self.view(v, _identity(v.rank), node)
        return _Sym(self.layer(self.L.Reshape, node, x, target_shape=rest),
                    _identity(len(rest) + 1), (None,) + rest)

    def op_Reshape(self, node, ins, a):
        v, target = ins[0], list(self.const(node, 1, "the target shape"))
        allowzero = a.get("allowzero", 0)
        feat = math.prod(v.shape[1:])
        resolved = []
        for i, s in enumerate(target):
            if s is BATCH:
                resolved.append(BATCH)
            elif int(s) == 0 and not allowzero:
                resolved.append(BATCH if i == 0 else v.shape[i])
            else:
                resolved.append(int(s))
        head, rest = resolved[0], resolved[1:]
        if any(r is BATCH for r in rest):
            self.fail(node, f"target shape {target} moves the batch axis")
        if -1 in rest:
            known = math.prod(r for r in rest if r != -1)
            if head == -1 or known == 0 or feat % known:
                self.fail(node, f"cannot reshape {v.shape} to {target}")
            rest[rest.index(-1)] = feat // known
        ok_head = head is BATCH or head == -1 or (self.static_batch is not None and head == self.static_batch)
        if not ok_head or math.prod(rest) != feat:
            self.fail(node, f"reshaping {v.shape} to {target} mixes the batch axis into other axes; "
                      "cnnfast keeps the first axis as the batch")
        return self.reshape_to(node, v, rest)

    def _axes(self, node, ins, a, rank):
        axes = a.get("axes")
        if axes is None and len(ins) > 1 and ins[1] is not None:
            axes = [int(i) for i in self.const(node, 1, "axes")]
        return None if axes is None else sorted(x + rank if x < 0 else x for x in axes)

    def op_Squeeze(self, node, ins, a):
        v = ins[0]
        axes = self._axes(node, ins, a, v.rank)
        if axes is None:
            axes = [i for i, s in enumerate(v.shape) if s == 1 and i > 0]
        if 0 in axes or any(v.shape[i] != 1 for i in axes):
            self.fail(node, f"cannot squeeze axes {axes} of a tensor of shape {v.shape}")
        return self.reshape_to(node, v, [s for i, s in enumerate(v.shape) if i not in axes][1:])

    def op_Unsqueeze(self, node, ins, a):
        v = ins[0]
        out_rank = v.rank + len(self._axes(node, ins, a, 0) or [])
        axes = self._axes(node, ins, a, out_rank)
        if 0 in axes:
            self.fail(node, "unsqueezing axis 0 moves the batch axis")
        shape = list(v.shape)
        for ax in axes:
            shape.insert(ax, 1)
        return self.reshape_to(node, v, shape[1:])

    # -- convolutions and dense ------------------------------------------------------------------
    def fused_activation(self, node, kinds=("Relu", "Clip"), output=None):
        """'relu'/'relu6'/'softmax' when the node's only reader is such an activation (absorbed
        here): a fused activation runs in the kernel's epilogue, and a Dense ending in softmax
        keeps a model on the inference plan's path. ``output``: the value whose reader is looked
        at (by default the node's own output)."""
        j = self.sole_consumer(output or node.output[0], kinds)
        if j is None:
            return None
        nxt = self.graph.node[j]
        act = None
        if nxt.op_type == "Relu":
            act = "relu"
        elif nxt.op_type == "Clip":
            lo, hi = self.clip_bounds(nxt)
            if lo == 0.0 and hi == 6.0:
                act = "relu6"
        elif nxt.op_type == "Softmax":   # only offered for rank-2 results: axis 1 is the last
            if _attrs(self.onnx, nxt).get("axis", -1 if self.opset >= 13 else 1) in (1, -1):
                act = "softmax"
        if act is not None:
            self.absorbed.add(j)
            self.absorbed_out = nxt.output[0]
        return act

    def finish(self, node, y, perm, shape, act, also=None):
        """The node's result; also the value of an absorbed activation's output and of ``also``
        (the output of a folded BatchNormalization)."""
        out = _Sym(y, perm, shape)
        if act is not None:
            self.values[self.absorbed_out] = out
        if also is not None:
            self.values[also] = out
        return out

    def fold_batch_norm(self, node, w, b):
        """(w, b, BN output) with an inference BatchNormalization that alone reads this Conv's
        output folded into the weights (scale / sqrt(var + eps) per output channel, as ONNX
        Runtime and torch's exporter do), or (w, b, None). The model then has no BN layer to
        fine-tune: a BN kept in the file (a training-mode export) would stay a layer."""
        j = self.sole_consumer(node.output[0], ("BatchNormalization",))
        if j is None:
            return w, b, None
        bn = self.graph.node[j]
        a = _attrs(self.onnx, bn)
        if a.get("training_mode", 0) or len([o for o in bn.output if o]) != 1:
            return w, b, None
        params = [self.static_value(n) if n else None for n in bn.input[1:5]]
        if len(params) != 4 or any(p is None or p.shape != (w.shape[0],) for p in params):
            return w, b, None
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        scale = gamma / np.sqrt(var + float(a.get("epsilon", 1e-5)))
        w = (w.astype(np.float64) * scale.reshape(-1, 1, 1, 1)).astype(np.float32)
        b0 = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
        b = ((b0 - mean) * scale + beta).astype(np.float32)
        self.absorbed.add(j)
        return w, b, bn.output[0]

    def conv_padding(self, node, a, in_hw, kernel, strides, dilations):
        """('same' | 'valid' | None, explicit ((t, b), (l, r)))."""
        auto = _s(a.get("auto_pad", "NOTSET"))
        same = []
        for n, k, s, d in zip(in_hw, kernel, strides, dilations):
            total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
            same.append((total // 2, total - total // 2))
        if auto == "VALID":
            return "valid", ((0, 0), (0, 0))
        if auto == "SAME_UPPER":
            return "same", tuple(same)
        if auto == "SAME_LOWER":
            pads = tuple((b, t) for t, b in same)
        else:
            p = list(a.get("pads", [0, 0, 0, 0]))
            pads = ((p[0], p[2]), (p[1], p[3]))
        if any(q < 0 for pair in pads for q in pair):
            self.fail(node, f"negative pads {a.get('pads')} are not supported")
        if pads == ((0, 0), (0, 0)):
            return "valid", pads
        if pads == tuple(same):
            return "same", pads
        return None, pads

    def op_Conv(self, node, ins, a):
        v, w = ins[0], self.const(node, 1, "the weight W")
        b = None if len(ins) < 3 or ins[2] is None else self.const(node, 2, "the bias B")
        w, b, bn_out = self.fold_batch_norm(node, w, b)
        if v.rank != 4:
            self.fail(node, f"only 2-D convolutions (NCHW input) are supported, got rank {v.rank}")
        m, cg, kh, kw = w.shape
        c = v.shape[1]
        g = a.get("group", 1)
        strides = tuple(a.get("strides", [1, 1]))
        dil = tuple(a.get("dilations", [1, 1]))
        if cg * g != c or m % g:
            self.fail(node, f"weights {w.shape} with group={g} do not fit {c} input channels")
        mode, pads = self.conv_padding(node, a, v.shape[2:], (kh, kw), strides, dil)
        x = self.view(v, _NHWC, node)
        if mode is None:   # not a Keras mode: the layer takes the pads themselves (read as zeros)
            mode = pads
        act = self.fused_activation(node, output=bn_out)
        common = dict(strides=strides, padding=mode, dilation_rate=dil, use_bias=b is not None,
                      activation=act)
        if g == 1:
            kernel = w.transpose(2, 3, 1, 0)
            y = self.layer(self.L.Conv2D, node, x, filters=m, kernel_size=(kh, kw),
                           weights=[kernel] + ([b] if b is not None else []), **common)
        elif g == c and cg == 1:
            kernel = w.reshape(c, m // c, kh, kw).transpose(2, 3, 0, 1)
            y = self.layer(self.L.DepthwiseConv2D, node, x, kernel_size=(kh, kw),
                           depth_multiplier=m // c,
                           weights=[kernel] + ([b] if b is not None else []), **common)
        else:
            kernel = w.transpose(2, 3, 1, 0)
            y = self.layer(self.L.Conv2D, node, x, filters=m, kernel_size=(kh, kw), groups=g,
                           weights=[kernel] + ([b] if b is not None else []), **common)
        return self.finish(node, y, _NHWC, (None, m) + tuple(y.shape[1:3]), act, also=bn_out)

    def op_ConvTranspose(self, node, ins, a):
        v, w = ins[0], self.const(node, 1, "the weight W")
        b = None if len(ins) < 3 or ins[2] is None else self.const(node, 2, "the bias B")
        if v.rank != 4:
            self.fail(node, f"only 2-D transposed convolutions are supported, got rank {v.rank}")
        cin, m, kh, kw = w.shape
        strides = tuple(a.get("strides", [1, 1]))
        dil = tuple(a.get("dilations", [1, 1]))
        opad = tuple(a.get("output_padding", [0, 0]))
        n_hw = v.shape[2:]
        full = [(n - 1) * s + (k - 1) * d + 1 + op for n, s, k, d, op in
                zip(n_hw, strides, (kh, kw), dil, opad)]
        auto = _s(a.get("auto_pad", "NOTSET"))
        if "output_shape" in a:
            want = list(a["output_shape"])[-2:]
            totals = [f - o for f, o in zip(full, want)]
            auto = auto if auto != "NOTSET" else "SAME_UPPER"
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            totals = [f - n * s for f, n, s in zip(full, n_hw, strides)]
        else:
            totals = None
        if totals is not None:
            if any(t < 0 for t in totals):
                self.fail(node, "output_shape larger than the full transposed convolution")
            # ONNX: SAME_UPPER puts the larger half of the crop at the start
            crop = tuple(((t - t // 2, t // 2) if auto == "SAME_UPPER" else (t // 2, t - t // 2))
                         for t in totals)
        elif auto == "VALID":
            crop = ((0, 0), (0, 0))
        else:
            p = list(a.get("pads", [0, 0, 0, 0]))
            crop = ((p[0], p[2]), (p[1], p[3]))
        if any(s <= o for s, o in zip(strides, opad)) and any(opad):
            self.fail(node, f"output_padding {opad} must be smaller than strides {strides}")
        x = self.view(v, _NHWC, node)
        kernel = w.transpose(2, 3, 1, 0)
        act = None if any(q for pair in crop for q in pair) else self.fused_activation(node)
        y = self.layer(self.L.Conv2DTranspose, node, x, filters=m, kernel_size=(kh, kw),
                       strides=strides, padding="valid", dilation_rate=dil,
                       output_padding=opad if any(opad) else None, use_bias=b is not None,
                       activation=act, weights=[kernel] + ([b] if b is not None else []))
        if any(q for pair in crop for q in pair):
            y = self.layer(self.L.Cropping2D, node, y, "_crop", cropping=crop)
        return self.finish(node, y, _NHWC, (None, m) + tuple(y.shape[1:3]), act)

    def dense(self, node, v, kernel, bias, extra_absorb=None):
        """Dense(kernel (K, M)) on ``v`` (rank >= 2, last logical axis K)."""
        if v.flat_of is not None and not v.views:
            # Flatten -> Dense: flatten the physical layout, reorder the kernel's rows to match
            src = v.flat_of
            perm, x = self.any_view(src, node)
            inv = np.argsort(perm)
            order = np.arange(kernel.shape[0]).reshape(src.shape[1:])
            order = order.transpose([int(l) - 1 for l in inv[1:]]).ravel()
            kernel = np.ascontiguousarray(kernel)[order]   # row gather on rows, not columns
            x = self.layer(self.L.Flatten, node, x, "_flatten")
        else:
            x = self.view(v, _identity(v.rank), node)
        kinds = ("Relu", "Softmax") if v.rank == 2 else ("Relu",)
        act = self.fused_activation(node, kinds) if extra_absorb is None else None
        y = self.layer(self.L.Dense, node, x, units=kernel.shape[1], use_bias=bias is not None,
                       activation=act, weights=[kernel] + ([bias] if bias is not None else []))
        return self.finish(node, y, _identity(v.rank), v.shape[:-1] + (kernel.shape[1],), act)

    def op_Gemm(self, node, ins, a):
        v = ins[0]
        if not isinstance(v, _Sym) or a.get("transA", 0):
            self.fail(node, "Gemm must compute A @ B with A the computed tensor")
        w = self.const(node, 1, "B").astype(np.float32, copy=False)
        w = w.T if a.get("transB", 0) else w
        if a.get("alpha", 1.0) != 1.0:
            w = w * np.float32(a["alpha"])
        c = None if len(ins) < 3 or ins[2] is None else self.const(node, 2, "C")
        bias = None
        if c is not None:
            if c.size not in (1, w.shape[1]) or (c.ndim == 2 and c.shape[0] != 1):
                self.fail(node, f"bias C of shape {c.shape} must broadcast over rows")
            bias = np.broadcast_to(c.reshape(-1), (w.shape[1],)) * np.float32(a.get("beta", 1.0))
        if v.rank != 2:
            self.fail(node, f"A must be 2-D, got shape {v.shape}")
        return self.dense(node, v, w, bias)

    def op_MatMul(self, node, ins, a):
        v, w = ins
        if not isinstance(v, _Sym) or not isinstance(w, np.ndarray) or w.ndim != 2:
            self.fail(node, "MatMul must be (computed tensor) @ (2-D constant)")
        bias = None
        j = self.sole_consumer(node.output[0], ("Add",))
        if j is not None:   # MatMul + Add(bias) as PyTorch writes Linear on 3-D inputs
            add = self.graph.node[j]
            other = [n for n in add.input if n != node.output[0]]
            cb = self.values.get(other[0]) if len(other) == 1 else None
            if isinstance(cb, np.ndarray) and cb.size == w.shape[1] and cb.shape[-1] == w.shape[1] \
                    and cb.ndim <= v.rank:
                bias = cb.reshape(-1)
                self.absorbed.add(j)
        out = self.dense(node, v, w.astype(np.float32), bias, extra_absorb=bias)
        if bias is not None:
            self.values[self.graph.node[j].output[0]] = out
        return out

    # -- pools and normalization -----------------------------------------------------------------
    def pool_padding(self, node, a, v, kernel, strides):
        auto = _s(a.get("auto_pad", "NOTSET"))
        mode, pads = self.conv_padding(node, a, v.shape[2:], kernel, strides, (1, 1))
        if a.get("ceil_mode", 0) and auto in ("NOTSET", "VALID"):
            pads = [list(p) for p in pads]
            for i, (n, k, s) in enumerate(zip(v.shape[2:], kernel, strides)):
                lo, hi = pads[i]
                floor_out = (n + lo + hi - k) // s + 1
                ceil_out = -(-(n + lo + hi - k) // s) + 1
                if (ceil_out - 1) * s >= n + lo:   # ONNX/PyTorch: the last window starts inside
                    ceil_out -= 1
                if ceil_out > floor_out:   # pad the end just enough for the last window
                    pads[i][1] += (ceil_out - 1) * s + k - (n + lo + hi)
            pads = tuple(tuple(p) for p in pads)
            mode = "valid" if pads == ((0, 0), (0, 0)) else None
        return mode, pads

    def _pool(self, node, ins, a, cls):
        v = ins[0]
        if v.rank != 4:
            self.fail(node, f"only 2-D pooling (NCHW input) is supported, got rank {v.rank}")
        kernel = tuple(a["kernel_shape"])
        strides = tuple(a.get("strides", [1, 1]))
        mode, pads = self.pool_padding(node, a, v, kernel, strides)
        x = self.view(v, _NHWC, node)
        if cls is self.L.AveragePooling2D and a.get("count_include_pad", 0) and mode != "valid":
            if a.get("ceil_mode", 0):
                self.fail(node, "ceil_mode with count_include_pad=1 is not supported")
            x = self.layer(self.L.ZeroPadding2D, node, x, "_pad", padding=pads)
            mode = "valid"
        y = self.layer(cls, node, x, pool_size=kernel, strides=strides,
                       padding=pads if mode is None else mode)
        return _Sym(y, _NHWC, (None, v.shape[1]) + tuple(y.shape[1:3]))

    def op_MaxPool(self, node, ins, a):
        return self._pool(node, ins, a, self.L.MaxPooling2D)

    def op_AveragePool(self, node, ins, a):
        return self._pool(node, ins, a, self.L.AveragePooling2D)

    def _global(self, node, v, cls):
        if v.rank != 4:
            self.fail(node, f"only NCHW input is supported, got rank {v.rank}")
        x = self.view(v, _NHWC, node)
        y = self.layer(cls, node, x, keepdims=True)
        return _Sym(y, _NHWC, (None, v.shape[1], 1, 1))

    def op_GlobalAveragePool(self, node, ins, a):
        return self._global(node, ins[0], self.L.GlobalAveragePooling2D)

    def op_GlobalMaxPool(self, node, ins, a):
        return self._global(node, ins[0], self.L.GlobalMaxPooling2D)

    def op_ReduceMean(self, node, ins, a):
        v = ins[0]
        axes = self._axes(node, ins, a, v.rank)
        if v.rank != 4 or axes != [2, 3]:
            self.fail(node, f"only the mean over the spatial axes of an NCHW tensor is supported "
                      f"(axes={axes}, shape {v.shape})")
        out = self._global(node, v, self.L.GlobalAveragePooling2D)
        return out if a.get("keepdims", 1) else self.reshape_to(node, out, [v.shape[1]])

    def op_BatchNormalization(self, node, ins, a):
        v = ins[0]
        gamma, beta, mean, var = (self.const(node, k, n) for k, n in
                                  enumerate(("scale", "B", "input_mean", "input_var"), 1))
        perm, x = self.any_view(v, node) if v.rank != 4 else (_NHWC, self.view(v, _NHWC, node))
        y = self.layer(self.L.BatchNormalization, node, x, axis=_axis_arg(perm, 1),
                       momentum=float(a.get("momentum", 0.9)), epsilon=float(a.get("epsilon", 1e-5)),
                       weights=[gamma, beta, mean, var])
        return _Sym(y, perm, v.shape)

    # -- activations -----------------------------------------------------------------------------
    def static_value(self, name):
        """The load-time value of ``name`` (an array), even when the nodes computing it come later
        in the file than the node asking (exporters put a Clip's bound Constants right before the
        Clip, after the Conv that wants to absorb it); None when it depends on an input."""
        if name in self.values:
            v = self.values[name]
            return v if isinstance(v, np.ndarray) else None
        i = self.producer.get(name)
        if i is None or i in self.absorbed:
            return None
        node = self.graph.node[i]
        ins = [self.static_value(n) if n else None for n in node.input]
        if any(n and v is None for n, v in zip(node.input, ins)) or node.op_type not in _FOLD:
            return None
        outs = self.fold(node, ins, _attrs(self.onnx, node))
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for n, v in zip(node.output, outs):
            if n:
                self.values[n] = v
        v = self.values.get(name)
        return v if isinstance(v, np.ndarray) and v.dtype != object else None

    def clip_bounds(self, node):
        a = _attrs(self.onnx, node)
        lo, hi = a.get("min"), a.get("max")
        for k in (1, 2):
            if k < len(node.input) and node.input[k]:
                val = self.static_value(node.input[k])
                if not isinstance(val, np.ndarray):
                    return None, None
                if k == 1:
                    lo = float(val)
                else:
                    hi = float(val)
        return (None if lo is None else float(lo)), (None if hi is None else float(hi))

    def unary(self, node, v, cls, suffix="", **kwargs):
        perm, x = self.any_view(v, node)
        return _Sym(self.layer(cls, node, x, suffix, **kwargs), perm, v.shape)

    def op_Relu(self, node, ins, a):
        return self.unary(node, ins[0], self.L.ReLU)

    def op_LeakyRelu(self, node, ins, a):
        return self.unary(node, ins[0], self.L.LeakyReLU, negative_slope=float(a.get("alpha", 0.01)))

    def _act(name):
        def op(self, node, ins, a):
            return self.unary(node, ins[0], self.L.Activation, activation=name)
        return op

    op_Sigmoid, op_Tanh, op_Softplus, op_Softsign, op_Exp = (
        _act("sigmoid"), _act("tanh"), _act("softplus"), _act("softsign"), _act("exponential"))

    def op_Selu(self, node, ins, a):
        if abs(a.get("alpha", 1.67326319217681884765625) - 1.6732632) > 1e-6 or \
                abs(a.get("gamma", 1.05070102214813232421875) - 1.0507010) > 1e-6:
            self.fail(node, "only the standard SELU constants are supported")
        return self.unary(node, ins[0], self.L.Activation, activation="selu")

    def op_Elu(self, node, ins, a):
        if a.get("alpha", 1.0) != 1.0:
            self.fail(node, f"Elu alpha={a['alpha']} is not supported (only 1.0)")
        return self.unary(node, ins[0], self.L.Activation, activation="elu")

    def op_Softmax(self, node, ins, a):
        v = ins[0]
        axis = a.get("axis", -1)
        axis = axis + v.rank if axis < 0 else axis
        if axis == 0:
            self.fail(node, "softmax over the batch axis is not supported")
        perm, x = self.any_view(v, node)
        return _Sym(self.layer(self.L.Softmax, node, x, axis=_axis_arg(perm, axis)), perm, v.shape)

    def op_Clip(self, node, ins, a):
        lo, hi = self.clip_bounds(node)
        v = ins[0]
        if lo is None and hi is None and len([n for n in node.input[1:] if n]):
            self.fail(node, "min and max must be constants")
        if lo is None and hi is None:
            return v
        lo = -np.inf if lo is None else lo
        if lo == 0.0:
            return self.unary(node, v, self.L.ReLU, max_value=hi)
        if not np.isfinite(lo) or hi is None:
            self.fail(node, f"Clip(min={lo}, max={hi}) is not supported (only a finite range or min=0)")
        # clip(x, lo, hi) = relu(x - lo, max=hi - lo) + lo
        s = self.unary(node, v, self.L.Rescaling, "_shift", scale=1.0, offset=-lo)
        s = self.unary(node, s, self.L.ReLU, max_value=hi - lo)
        return self.unary(node, s, self.L.Rescaling, "_unshift", scale=1.0, offset=lo)

    def op_HardSigmoid(self, node, ins, a):
        alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
        s = self.unary(node, ins[0], self.L.Rescaling, "_affine", scale=alpha, offset=beta)
        return self.unary(node, s, self.L.ReLU, max_value=1.0)

    def op_HardSwish(self, node, ins, a):
        v = ins[0]
        gate = self.op_HardSigmoid(node, [v], {"alpha": 1 / 6, "beta": 0.5})
        perm, x = self.any_view(v, node)
        return _Sym(self.layer(self.L.Multiply, node, [x, self.view(gate, perm, node)], "_mul"),
                    perm, v.shape)

    # -- element-wise binary ---------------------------------------------------------------------
    def _binary(self, node, ins, kind):
        x, y = ins
        if isinstance(x, _Sym) and isinstance(y, _Sym):
            if x.shape != y.shape:
                self.fail(node, f"broadcasting between two computed tensors ({x.shape} and "
                          f"{y.shape}) is not supported")
            if kind == "Div":
                self.fail(node, "dividing by a computed tensor is not supported")
            cls = {"Add": self.L.Add, "Sub": self.L.Subtract, "Mul": self.L.Multiply}[kind]
            perm, tx = self.any_view(x, node)
            return _Sym(self.layer(cls, node, [tx, self.view(y, perm, node)]), perm, x.shape)
        sym_first = isinstance(x, _Sym)
        v, c = (x, y) if sym_first else (y, x)
        c = np.asarray(c, np.float64)
        if c.size != 1:
            self.fail(node, f"{kind} with a constant of shape {c.shape} is not supported "
                      "(only scalar constants)")
        c = float(c.reshape(()))
        if kind == "Add":
            scale, offset = 1.0, c
        elif kind == "Mul":
            scale, offset = c, 0.0
        elif kind == "Sub":
            scale, offset = (1.0, -c) if sym_first else (-1.0, c)
        else:
            if not sym_first:
                self.fail(node, "dividing a constant by a computed tensor is not supported")
            scale, offset = 1.0 / c, 0.0
        if scale == 1.0 and offset == 0.0:
            return v
        return self.unary(node, v, self.L.Rescaling, scale=scale, offset=offset)

    def op_Add(self, node, ins, a):
        return self._binary(node, ins, "Add")

    def op_Sum(self, node, ins, a):
        if len(ins) == 1:
            return ins[0]
        if not all(isinstance(v, _Sym) and v.shape == ins[0].shape for v in ins):
            self.fail(node, "Sum needs computed tensors of one shape")
        perm, x = self.any_view(ins[0], node)
        return _Sym(self.layer(self.L.Add, node, [x] + [self.view(v, perm, node) for v in ins[1:]]),
                    perm, ins[0].shape)

    def op_Sub(self, node, ins, a):
        return self._binary(node, ins, "Sub")

    def op_Mul(self, node, ins, a):
        return self._binary(node, ins, "Mul")

    def op_Div(self, node, ins, a):
        return self._binary(node, ins, "Div")

    # -- merging, padding, resizing --------------------------------------------------------------
    def op_Concat(self, node, ins, a):
        if not all(isinstance(v, _Sym) for v in ins):
            self.fail(node, "concatenating computed tensors with constants is not supported")
        first = ins[0]
        axis = a["axis"] + first.rank if a["axis"] < 0 else a["axis"]
        if axis == 0:
            self.fail(node, "concatenation along the batch axis is not supported")
        perm, x = self.any_view(first, node)
        xs = [x] + [self.view(v, perm, node) for v in ins[1:]]
        y = self.layer(self.L.Concatenate, node, xs, axis=_axis_arg(perm, axis))
        shape = list(first.shape)
        shape[axis] = sum(v.shape[axis] for v in ins)
        return _Sym(y, perm, shape)

    def op_Pad(self, node, ins, a):
        v = ins[0]
        pads = [int(p) for p in self.const(node, 1, "pads")]
        if len(ins) > 2 and ins[2] is not None and float(np.asarray(ins[2]).reshape(-1)[0]) != 0.0:
            self.fail(node, "only zero padding is supported")
        r = v.rank
        axes = list(range(r))
        if len(ins) > 3 and ins[3] is not None:
            axes = [int(x) + r if x < 0 else int(x) for x in self.const(node, 3, "axes")]
        full = [0] * (2 * r)
        for k, ax in enumerate(axes):
            full[ax], full[ax + r] = pads[k], pads[k + len(axes)]
        if r != 4 or full[0] or full[1] or full[4] or full[5]:
            self.fail(node, f"only spatial padding of an NCHW tensor is supported (pads {pads})")
        spatial = ((full[2], full[6]), (full[3], full[7]))
        x = self.view(v, _NHWC, node)
        if all(p >= 0 for pair in spatial for p in pair):
            y = self.layer(self.L.ZeroPadding2D, node, x, padding=spatial)
        elif all(p <= 0 for pair in spatial for p in pair):
            y = self.layer(self.L.Cropping2D, node, x, cropping=tuple((-t, -b) for t, b in spatial))
        else:
            self.fail(node, f"mixed positive and negative pads {pads} are not supported")
        return _Sym(y, _NHWC, (None, v.shape[1]) + tuple(y.shape[1:3]))

    def op_Slice(self, node, ins, a):
        """A spatial crop of an NCHW tensor (step 1 on H and W) is a Cropping2D."""
        v = ins[0]
        starts, ends = (list(map(int, self.const(node, k, n))) for k, n in ((1, "starts"), (2, "ends")))
        axes = list(map(int, self.const(node, 3, "axes"))) if len(ins) > 3 and ins[3] is not None \
            else list(range(len(starts)))
        steps = list(map(int, self.const(node, 4, "steps"))) if len(ins) > 4 and ins[4] is not None \
            else [1] * len(starts)
        crop = {2: [0, 0], 3: [0, 0]}
        for st, en, ax, step in zip(starts, ends, axes, steps):
            ax = ax + v.rank if ax < 0 else ax
            n = v.shape[ax] if ax else None
            if v.rank != 4 or ax not in (2, 3) or step != 1:
                if ax != 0 and (st, step) == (0, 1) and en >= (n or 0):
                    continue   # the whole axis
                self.fail(node, f"only spatial crops of an NCHW tensor are supported (axes {axes}, "
                          f"steps {steps})")
            lo = max(st + n if st < 0 else st, 0)
            hi = min(en + n if en < 0 else en, n)
            if hi <= lo:
                self.fail(node, f"an empty slice of axis {ax}")
            crop[ax] = [lo, n - hi]
        if crop == {2: [0, 0], 3: [0, 0]}:
            return v
        x = self.view(v, _NHWC, node)
        y = self.layer(self.L.Cropping2D, node, x, cropping=(tuple(crop[2]), tuple(crop[3])))
        return _Sym(y, _NHWC, (None, v.shape[1]) + tuple(y.shape[1:3]))

    def op_Resize(self, node, ins, a):
        v = ins[0]
        if v.rank != 4:
            self.fail(node, f"only NCHW images can be resized, got rank {v.rank}")
        scales = sizes = None
        if node.op_type == "Upsample" or len(ins) == 2:
            scales = self.const(node, 1, "scales")
        else:
            if len(ins) > 2 and ins[2] is not None and np.size(ins[2]):
                scales = self.const(node, 2, "scales")
            if len(ins) > 3 and ins[3] is not None:
                sizes = self.const(node, 3, "sizes")
        if sizes is not None:
            sizes = [int(s) for s in sizes]
            factors = [sizes[2] / v.shape[2], sizes[3] / v.shape[3]]
            head = sizes[:2]
        elif scales is not None:
            factors = [float(scales[2]), float(scales[3])]
            head = [None, v.shape[1]] if float(scales[0]) == 1 and float(scales[1]) == 1 else None
        else:
            self.fail(node, "needs scales or sizes")
        if head is None or (sizes is not None and head[1] != v.shape[1]) or \
                any(f != int(f) or f < 1 for f in factors):
            self.fail(node, f"only integer upsampling of H and W is supported (factors {factors})")
        interpolation = self.resize_interpolation(node, a)
        x = self.view(v, _NHWC, node)
        size = tuple(int(f) for f in factors)
        if size == (1, 1):
            return v
        y = self.layer(self.L.UpSampling2D, node, x, size=size, interpolation=interpolation)
        return _Sym(y, _NHWC, (None, v.shape[1]) + tuple(y.shape[1:3]))

    op_Upsample = op_Resize

    @staticmethod
    def resize_interpolation(node, a):
        """UpSampling2D's interpolation for a Resize / Upsample the support check let through."""
        return "bilinear" if _s(a.get("mode", "nearest")) == "linear" else "nearest"


# -- folding constants (exporters' shape arithmetic) -----------------------------------------------
def _np(x):
    return x if isinstance(x, np.ndarray) else np.asarray(x)


def _int_axes(ins, a, k=1):
    axes = a.get("axes")
    if axes is None and len(ins) > k and ins[k] is not None:
        axes = [int(i) for i in ins[k]]
    return axes


def _no_batch(*xs):
    for x in xs:
        if isinstance(x, np.ndarray) and x.dtype == object and any(e is BATCH for e in x.ravel()):
            raise OnnxImportError("arithmetic on the batch size is not supported (export with a "
                                  "fixed batch size or with torch.onnx.export(..., dynamo=False))")
    return xs


def _fold_unsqueeze(ins, a, opset):
    x = _np(ins[0])
    axes = _int_axes(ins, a)
    rank = x.ndim + len(axes)
    for ax in sorted(ax + rank if ax < 0 else ax for ax in axes):
        x = np.expand_dims(x, ax)
    return x


def _fold_squeeze(ins, a, opset):
    x = _np(ins[0])
    axes = _int_axes(ins, a)
    return np.squeeze(x, axis=None if axes is None else tuple(axes))


def _fold_slice(ins, a, opset):
    x = _np(ins[0])
    starts, ends = [int(s) for s in ins[1]], [int(e) for e in ins[2]]
    axes = [int(i) for i in ins[3]] if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
    steps = [int(s) for s in ins[4]] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        index[ax] = slice(s, e, st)
    return x[tuple(index)]


_ONNX_TO_NP = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64,
               9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


def _fold_cast(ins, a, opset):
    x = _np(ins[0])
    if x.dtype == object:
        return x
    return x.astype(_ONNX_TO_NP[a["to"]])


def _fold_constant(ins, a, opset):
    import onnx
    if "value" in a:
        return onnx.numpy_helper.to_array(a["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in a:
            return np.array(a[key], dtype)
    raise OnnxImportError("Constant without a supported value attribute")


def _fold_constant_of_shape(ins, a, opset):
    import onnx
    value = onnx.numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
    _no_batch(ins[0])
    return np.full([int(s) for s in ins[0]], value.reshape(-1)[0], value.dtype)


def _fold_reshape(ins, a, opset):
    x, shape = _no_batch(_np(ins[0]), _np(ins[1]))
    shape = [x.shape[i] if int(s) == 0 and not a.get("allowzero", 0) else int(s)
             for i, s in enumerate(shape)]
    return x.reshape(shape)


def _fold_flatten(ins, a, opset):
    x = _np(ins[0])
    axis = a.get("axis", 1)
    return x.reshape(math.prod(x.shape[:axis]), -1)


def _fold_binary(fn):
    def fold(ins, a, opset):
        x, y = _no_batch(_np(ins[0]), _np(ins[1]))
        out = fn(x, y)
        return out.astype(np.result_type(x.dtype, y.dtype)) if x.dtype.kind == y.dtype.kind else out
    return fold


def _int_div(x, y):
    if x.dtype.kind in "iu" and y.dtype.kind in "iu":
        return np.trunc(x / y).astype(x.dtype)   # ONNX integer Div truncates
    return x / y


def _fold_elementwise(fn):
    def fold(ins, a, opset):
        (x,) = _no_batch(_np(ins[0]))
        return fn(x)
    return fold


_FOLD = {
    "Identity": lambda ins, a, o: ins[0],
    "Dropout": lambda ins, a, o: ins[0],
    "Constant": _fold_constant,
    "ConstantOfShape": _fold_constant_of_shape,
    "Gather": lambda ins, a, o: np.take(_np(ins[0]), _np(ins[1]).astype(np.int64), axis=a.get("axis", 0)),
    "Unsqueeze": _fold_unsqueeze,
    "Squeeze": _fold_squeeze,
    "Concat": lambda ins, a, o: np.concatenate([np.atleast_1d(_np(x)) for x in ins if x is not None],
                                               axis=a["axis"]),
    "Slice": _fold_slice,
    "Cast": _fold_cast,
    "Reshape": _fold_reshape,
    "Flatten": _fold_flatten,
    "Transpose": lambda ins, a, o: np.transpose(_np(ins[0]), a.get("perm")),
    "Expand": lambda ins, a, o: _np(ins[0]) * np.ones([int(s) for s in _no_batch(_np(ins[1]))[0]],
                                                      _np(ins[0]).dtype),
    "Range": lambda ins, a, o: np.arange(*_no_batch(*[_np(x).reshape(()) for x in ins])),
    "Add": _fold_binary(np.add), "Sub": _fold_binary(np.subtract), "Mul": _fold_binary(np.multiply),
    "Div": _fold_binary(_int_div), "Equal": _fold_binary(np.equal),
    "Min": lambda ins, a, o: np.minimum.reduce(_no_batch(*[_np(x) for x in ins])),
    "Max": lambda ins, a, o: np.maximum.reduce(_no_batch(*[_np(x) for x in ins])),
    "Where": lambda ins, a, o: np.where(*_no_batch(*[_np(x) for x in ins])),
    "Floor": _fold_elementwise(np.floor), "Ceil": _fold_elementwise(np.ceil),
    "Sqrt": _fold_elementwise(np.sqrt), "Neg": _fold_elementwise(np.negative),
    "ReduceProd": lambda ins, a, o: np.prod(_no_batch(_np(ins[0]))[0], keepdims=bool(a.get("keepdims", 1))),
}


# -- entry point ----------------------------------------------------------------------------------
def load_onnx_model(filepath):
    onnx = require_onnx("cnnfast.onnx.load_model")
    path = os.fspath(filepath)
    model = _read(onnx, path)
    opset = _opset(model, path)
    problems = []
    for i, node in enumerate(model.graph.node):
        why = _static_problem(node, _attrs(onnx, node))
        if why:
            problems.append(f"  {node.op_type} '{node.name or f'#{i}'}' (opset {opset}): {why}")
    if problems:
        raise OnnxImportError(f"cnnfast.onnx.load_model: '{path}' has {len(problems)} node(s) "
                              "cnnfast cannot import:\n" + "\n".join(problems) +
                              f"\nSupported operators: {', '.join(sorted(SUPPORTED_OPS))}")
    return _Builder(onnx, model, opset, path).build()
