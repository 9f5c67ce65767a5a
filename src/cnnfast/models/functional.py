"""The functional ``Model``: a graph of layer calls, executed forward and backward.

``Model(inputs, outputs)`` walks back from the output tensors through the nodes recorded by layer
calls on symbolic tensors, checks every path reaches one of ``inputs``, and compiles the graph into
a flat *plan*: one entry per node, in creation order (a valid topological order), each naming the
value slots it reads and the slot it writes. Executing the plan is a loop over that list; the
backward pass walks it in reverse, adding the gradients of values used more than once (residual
branches). Nodes that need no gradient (nothing trainable upstream) are skipped, and the first
layer is told not to compute its input gradient.

Each node has its own ``ctx`` dict per mode (train / test / predict), kept between steps: layers
keep their output buffers and backward state there, so repeated steps reuse memory. A Model is
itself a Layer, so models nest.
"""
from __future__ import annotations

import numpy as np

from ..layers.base import (InputLayer, KerasTensor, Layer, note_weights_written, record_for_backward,
                           to_snake_case, unique_name)
from .serialization import functional_config, functional_from_config, register_model_class
from .training import Trainer, check_compatible
from . import inference as _inference

__all__ = ["Model", "Functional"]


def _flatten_tensors(structure, what):
    if isinstance(structure, KerasTensor):
        return [structure], False
    if isinstance(structure, dict):
        structure = list(structure.values())
    if isinstance(structure, (list, tuple)) and structure and all(isinstance(t, KerasTensor) for t in structure):
        return list(structure), True
    raise TypeError(f"Model: {what} must be a KerasTensor (from cnnfast.Input or a layer call) or a "
                    f"list of them, got {structure!r}")


class Model(Trainer, Layer):
    """A model: the functional ``Model(inputs, outputs)``, or the base of ``Sequential``.

    Training API (``compile``/``fit``/``evaluate``/``predict``...) comes from :class:`Trainer`.
    """

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if inputs is None or outputs is None:
            if not getattr(self, "_is_sequential", False):
                raise NotImplementedError(
                    "cnnfast supports Sequential models and functional models built as "
                    "Model(inputs, outputs); subclassing Model with a custom call() is not supported "
                    "(cnnfast differentiates each layer explicitly)")
        Layer.__init__(self, name=name or unique_name("functional" if type(self) in (Model, Functional)
                                                      else to_snake_case(type(self).__name__)),
                       trainable=trainable, **kwargs)
        Trainer.__init__(self)
        self._plan = []
        self._node_training = []
        self._layers = []
        self._ctxs = {}
        self._casts = self._masking = None
        if inputs is not None:
            self._init_graph(inputs, outputs)

    # -- graph --------------------------------------------------------------------------------
    def _init_graph(self, inputs, outputs):
        ins, self._nested_inputs = _flatten_tensors(inputs, "inputs")
        outs, self._nested_outputs = _flatten_tensors(outputs, "outputs")
        input_layers = []
        for t in ins:
            layer = t._keras_history[0] if t._keras_history else None
            if not isinstance(layer, InputLayer):
                raise ValueError(f"Model '{self.name}': inputs must be tensors returned by "
                                 f"cnnfast.Input(), got {t!r}")
            input_layers.append(layer)
        if len(set(map(id, ins))) != len(ins):
            raise ValueError(f"Model '{self.name}': the same input tensor is listed twice")
        input_ids = {id(t) for t in ins}

        nodes, seen, stack = [], set(), [(t, None) for t in outs]
        while stack:
            tensor, consumer = stack.pop()
            layer, node_index, _ = tensor._keras_history
            node = layer._inbound_nodes[node_index]
            if isinstance(layer, InputLayer):
                if id(tensor) not in input_ids:
                    where = f" at layer '{consumer.name}'" if consumer is not None else ""
                    raise ValueError(f"Model '{self.name}': graph disconnected: cannot obtain the value "
                                     f"of tensor {tensor!r}{where}; it comes from Input layer "
                                     f"'{layer.name}', which is not in the model's inputs")
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            nodes.append(node)
            stack.extend((t, layer) for t in node.inputs)
        nodes.sort(key=lambda n: n.uid)

        layers, layer_ids = list(input_layers), {id(l) for l in input_layers}
        for node in nodes:
            if id(node.layer) not in layer_ids:
                layer_ids.add(id(node.layer))
                layers.append(node.layer)
        names = [l.name for l in layers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"Model '{self.name}': all layer names should be unique; duplicated: {dupes}")

        slots = {id(t): i for i, t in enumerate(ins)}
        plan = []
        for node in nodes:
            in_slots = tuple(slots[id(t)] for t in node.inputs)
            out_slot = slots[id(node.outputs[0])] = len(slots)
            plan.append((node.layer, in_slots, out_slot, node.multi_input))
        self._inputs, self._outputs = ins, outs
        self._input_layers = input_layers
        self._nodes = nodes
        self._plan = plan
        # the ``training`` given in each call, None where the model's mode decides
        self._node_training = [node.training for node in nodes]
        self._layers = layers
        self._n_slots = len(slots)
        self._output_slots = tuple(slots[id(t)] for t in outs)
        self._init_dtypes_and_masks(ins, nodes, slots)
        self._ctxs = {}
        self._grad_plans = {}
        self._multi_input = len(ins) > 1
        in_shapes = [t.shape for t in ins]
        out_shapes = [t.shape for t in outs]
        self._build_input_shape = in_shapes if len(ins) > 1 else in_shapes[0]
        self._output_shape = out_shapes if len(outs) > 1 else out_shapes[0]
        self.built = True
        self._invalidate_training()

    def _init_dtypes_and_masks(self, ins, nodes, slots):
        """What a graph of float32 values without masks does not need, decided once here so
        such graphs run the plain loop: per node, the input positions holding integers that a
        float-only layer takes as float32 (``_casts``); the slots that carry a mask and, per
        node, whether its layer takes the input mask in ``forward`` and computes its own."""
        casts, has_mask = [], {slots[id(t)] for t in ins if t._keras_mask is not None}
        masking = []
        for node in nodes:
            layer = node.layer
            casts.append(tuple(i for i, t in enumerate(node.inputs)
                               if t.dtype in ("int32", "int64") and t.dtype not in layer._input_dtypes))
            out = node.outputs[0]
            if out._keras_mask is not None:
                has_mask.add(slots[id(out)])
            takes = layer._consumes_mask and any(slots[id(t)] in has_mask for t in node.inputs)
            masking.append((takes, out._keras_mask is not None))
        self._casts = casts if any(casts) else None
        self._masking = masking if any(t or p for t, p in masking) else None

    @property
    def _plain_float_graph(self):
        """True when every value is float32 and no mask flows: the inference plans apply."""
        return self._casts is None and self._masking is None and \
            all(t.dtype == "float32" for t in self._inputs)

    @property
    def inputs(self):
        return list(self._inputs)

    @property
    def outputs(self):
        return list(self._outputs)

    @property
    def input_names(self):
        return [l.name for l in self._input_layers]

    @property
    def output_names(self):
        return [t._keras_history[0].name for t in self._outputs]

    @property
    def layers(self):
        return list(self._layers)

    def get_layer(self, name=None, index=None):
        """A layer by ``name`` or by position ``index`` in ``model.layers``."""
        if index is not None and name is not None:
            raise ValueError("get_layer: provide only one of name and index")
        if index is not None:
            layers = self.layers
            if isinstance(index, bool) or not isinstance(index, int):
                raise TypeError(f"get_layer: index must be an int, got {index!r}")
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"get_layer: was asked to retrieve layer at index {index} but the model "
                                 f"'{self.name}' only has {len(layers)} layers")
            return layers[index]
        if isinstance(name, int) and not isinstance(name, bool):  # get_layer(3) as a convenience
            return self.get_layer(index=name)
        if name is None:
            raise ValueError("get_layer: provide a layer name or an index")
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"get_layer: no such layer: {name!r}. Existing layers are: "
                         f"{[l.name for l in self.layers]}")

    # -- weights --------------------------------------------------------------------------------
    def _unique(self, attr):
        out, seen = [], set()
        for layer in self.layers:
            for v in getattr(layer, attr):
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    @property
    def weights(self):
        return self._unique("weights")

    variables = weights

    @property
    def trainable_weights(self):
        return self._unique("trainable_weights") if self._trainable else []

    @property
    def non_trainable_weights(self):
        trainable = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in trainable]

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for layer in self.layers:
            layer.trainable = value

    def count_params(self):
        if not self.built:
            raise ValueError(f"You tried to call count_params on model '{self.name}', but the model "
                             "isn't built. Give it an input shape (Input(...) or input_shape=) or call "
                             "it on data first.")
        return int(sum(v.size for v in self.weights))

    # -- execution ------------------------------------------------------------------------------
    def _contexts(self, mode):
        ctxs = self._ctxs.get(mode)
        if ctxs is None:
            ctxs = self._ctxs[mode] = [{"node_index": i} for i in range(len(self._plan))]
            self._mark_pool_fusions(ctxs)
        return ctxs

    def _mark_pool_fusions(self, ctxs):
        """Fuse a layer whose output feeds nothing but a max-pool with that pool.

        * ReLU derivative: the gradient reaching the pool's argmax cell is kept iff the pooled
          value is > 0 (the pooled value *is* that cell's ReLU output), so the pool masks ``dy``
          on a quarter of the elements (2x2 pools) and the layer skips its full-size ReLU
          backward (``relu_grad_premasked`` / ``mask_relu_grad``).
        * Conv2D -> MaxPooling2D forward: the conv layer runs ``ops.conv2d_max_pool2d`` and hands
          the pooled output and argmax to the pool (``fuse_pool``), so the full-size activation
          is never stored. Its ReLU (if any) then must be differentiated on the pooled side, which
          the first rule guarantees for the same pair."""
        consumers = {}
        for j, (_, ins, _, _) in enumerate(self._plan):
            for s in ins:
                consumers.setdefault(s, []).append(j)
        producer = {out: i for i, (_, _, out, _) in enumerate(self._plan)}
        for j, (layer, ins, _, multi) in enumerate(self._plan):
            if multi or not getattr(layer, "_masks_relu_grad", False):
                continue
            i = producer.get(ins[0])
            if i is None or consumers[ins[0]] != [j] or ins[0] in self._output_slots:
                continue
            producer_layer = self._plan[i][0]
            act = getattr(producer_layer, "_act_name", None)
            if act == "relu" and hasattr(producer_layer, "_activation_backward"):
                ctxs[i]["relu_grad_premasked"] = True
                ctxs[j]["mask_relu_grad"] = True
            if getattr(producer_layer, "_fuses_max_pool", False) and act in ("relu", "linear"):
                ctxs[i]["fuse_pool"] = (layer, ctxs[j])

    def _run_forward(self, xs, training, ctxs):
        """The graph on ``xs``. A call given ``training=`` when the graph was built runs in that
        mode whatever ``training`` says; when a backward pass follows (``training`` True here or
        in a model around this one) every layer keeps its backward state all the same."""
        vals = [None] * self._n_slots
        vals[:len(xs)] = xs
        if training or True in self._node_training:  # batch-norm statistics move
            note_weights_written()
        with record_for_backward(training):
            if self._casts is None and self._masking is None:
                for (layer, ins, out, multi), ctx, fixed in zip(self._plan, ctxs, self._node_training):
                    vals[out] = layer.forward([vals[i] for i in ins] if multi else vals[ins[0]],
                                              training if fixed is None else fixed, ctx)
            else:
                self._run_forward_general(vals, training, ctxs)
        return [vals[s] for s in self._output_slots]

    def _run_forward_general(self, vals, training, ctxs, masks=None):
        """The forward loop for graphs with integer values reaching float layers (cast here, as
        Keras casts) or with masks: ``masks[slot]`` holds each value's mask (a bool array) or
        None; a layer that takes masks gets its input's as ``mask=``, and a masking layer's
        ``compute_mask`` gives the mask of its output."""
        casts = self._casts or [()] * len(self._plan)
        masking = self._masking
        if masking is not None and masks is None:
            masks = [None] * self._n_slots
        for i, ((layer, ins, out, multi), ctx, fixed) in enumerate(zip(self._plan, ctxs, self._node_training)):
            xs = [vals[s] for s in ins]
            for k in casts[i]:
                xs[k] = np.ascontiguousarray(xs[k], dtype=np.float32)
            x = xs if multi else xs[0]
            mode = training if fixed is None else fixed
            if masking is not None and masking[i][0]:
                mask = [masks[s] for s in ins] if multi else masks[ins[0]]
                vals[out] = layer.forward(x, mode, ctx, mask=mask)
            else:
                vals[out] = layer.forward(x, mode, ctx)
            if masking is not None and masking[i][1]:
                masks[out] = layer.compute_mask(x, [masks[s] for s in ins] if multi else masks[ins[0]])
        return masks

    def compute_mask(self, inputs, mask=None):
        """The masks of the model's outputs for ``inputs`` (arrays), as Keras attaches them to
        the outputs of a call: a bool array per output, or None where no mask reaches it."""
        if isinstance(inputs, KerasTensor) or (isinstance(inputs, (list, tuple)) and inputs and
                                               isinstance(inputs[0], KerasTensor)):
            outs = [t._keras_mask for t in self._outputs]
            return outs[0] if len(outs) == 1 else outs
        xs = self._standardize_x(inputs, "inputs")
        vals = [None] * self._n_slots
        vals[:len(xs)] = xs
        masks = [None] * self._n_slots
        if mask is not None:
            given = mask if self._multi_input else [mask]
            masks[:len(given)] = [None if m is None else np.asarray(m, bool) for m in given]
        if self._masking is None and self._casts is None:
            return None if len(self._outputs) == 1 else [None] * len(self._outputs)
        ctxs = [{"node_index": i} for i in range(len(self._plan))]
        with record_for_backward(False):
            masks = self._run_forward_general(vals, False, ctxs, masks) if self._masking is not None \
                else [None] * self._n_slots
        outs = [masks[s] for s in self._output_slots]
        return outs[0] if len(outs) == 1 else outs

    def _grad_plan(self, inputs_need_grad):
        """Per node: (run backward?, compute input gradient?) — cached, recomputed when the set of
        trainable layers changes."""
        key = (inputs_need_grad, tuple(l._trainable for l in self._layers))
        plan = self._grad_plans.get(key)
        if plan is not None:
            return plan
        needs = [inputs_need_grad] * len(self._inputs) + [False] * (self._n_slots - len(self._inputs))
        flags = []
        for layer, ins, out, _ in self._plan:
            need_dx = any(needs[i] for i in ins)
            has_params = bool(layer.trainable_weights)
            needs[out] = need_dx or has_params
            flags.append((need_dx or has_params, need_dx))
        self._grad_plans[key] = flags
        return flags

    def _run_backward(self, dys, ctxs, inputs_need_grad=False):
        grads = [None] * self._n_slots
        for slot, dy in zip(self._output_slots, dys):
            grads[slot] = dy if grads[slot] is None else grads[slot] + dy
        flags = self._grad_plan(inputs_need_grad)
        for i in range(len(self._plan) - 1, -1, -1):
            layer, ins, out, multi = self._plan[i]
            g = grads[out]
            run, need_dx = flags[i]
            if g is None or not run:
                continue
            grads[out] = None
            dx = layer.backward(g, ctxs[i], need_dx)
            if need_dx:
                for slot, d in zip(ins, dx if multi else (dx,)):
                    if d is not None:
                        grads[slot] = d if grads[slot] is None else grads[slot] + d
        return [grads[i] for i in range(len(self._inputs))] if inputs_need_grad else None

    # -- as a layer (nested models) -----------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        return self._output_shape

    @property
    def _input_dtypes(self):
        return ("float32",) + tuple(t.dtype for t in getattr(self, "_inputs", ()))

    def _output_dtype(self, input_dtype):
        dtypes = [t.dtype for t in self._outputs]
        return dtypes[0] if len(dtypes) == 1 else dtypes

    def _check_input_shape(self, shape):
        shapes = shape if self._multi_input else [shape]
        for t, s in zip(self._inputs, shapes):
            check_compatible(self, t.shape, s)

    def forward(self, x, training, ctx):
        ctxs = ctx.get("nodes")
        if ctxs is None:
            ctxs = ctx["nodes"] = [{"node_index": i} for i in range(len(self._plan))]
        outs = self._run_forward(list(x) if self._multi_input else [x], training, ctxs)
        return outs[0] if len(outs) == 1 else outs

    def backward(self, dy, ctx, need_dx):
        dxs = self._run_backward(dy if len(self._outputs) > 1 else [dy], ctx["nodes"], need_dx)
        if not need_dx:
            return None
        return dxs if self._multi_input else dxs[0]

    def _call_eager(self, inputs, training):
        xs = self._standardize_x(inputs, "inputs")
        if not training and len(xs) == 1:
            # ``model(x)`` in inference mode runs the same compiled plan as predict_on_batch
            plan = self._inference_plan(xs[0].shape)
            if plan is not None:
                return _inference.run(plan, xs[0]).copy()
        outs = self._run_forward(xs, bool(training), [{"node_index": i} for i in range(len(self._plan))])
        return outs[0] if len(outs) == 1 else outs

    def _output_activation(self):
        return None

    # -- export ---------------------------------------------------------------------------------------
    def export(self, filepath, format="onnx", verbose=None, input_signature=None, **kwargs):
        """Keras 3's ``export``: ``format="onnx"`` writes an ONNX model (needs ``cnnfast[onnx]``);
        ``opset_version=`` picks the opset. Other formats are TensorFlow's and not available."""
        if format != "onnx":
            raise ValueError(f"Model.export: cnnfast exports format='onnx' only, got format={format!r}")
        if input_signature is not None:
            raise ValueError("Model.export: input_signature is not used by cnnfast (the graph takes the "
                             "model's input shapes with a dynamic batch axis)")
        opset = kwargs.pop("opset_version", None)
        if kwargs:
            raise TypeError(f"Model.export: unexpected arguments {sorted(kwargs)}")
        from .. import onnx as _onnx
        return _onnx.export(self, filepath, opset=_onnx.DEFAULT_OPSET if opset is None else opset,
                            verbose=bool(verbose))

    # -- config ---------------------------------------------------------------------------------------
    def get_config(self):
        return functional_config(self)

    @classmethod
    def from_config(cls, config):
        return functional_from_config(config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


Functional = Model
register_model_class(Model, "Functional", aliases=("Model",))
