"""``plot_model`` and ``model_to_dot``: a model's layer graph as a Graphviz drawing, as Keras 3.

The graph is written as DOT text here, with Keras's node labels (an HTML-like table: name and
class, activation, input/output shapes, dtype, trainable) and its graph attributes, so nothing
but the model is needed to produce it. Then:

* ``model_to_dot`` returns a ``pydot.Dot`` (Keras's return type; ``pip install pydot``), parsed
  from that text;
* ``plot_model(model, "model.png")`` renders with Graphviz's ``dot`` program (any format it
  knows, from the file's extension), which must be installed (https://graphviz.org/download/);
  a file ending in ``.dot`` gets the DOT text itself and needs neither.
"""
from __future__ import annotations

import os
import shutil
import subprocess

__all__ = ["plot_model", "model_to_dot", "model_to_dot_source"]

_GRAPHVIZ_HINT = ("install Graphviz (https://graphviz.org/download/; e.g. `apt install graphviz` or "
                  "`brew install graphviz`) so that its `dot` program is on PATH, or write the graph "
                  "to a file ending in .dot")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _html(text) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _activation_name(layer):
    act = getattr(layer, "activation", None)
    return getattr(act, "name", None) or getattr(act, "__name__", None) or str(act)


def _io_shapes(layer, model_nodes):
    nodes = [n for n in getattr(layer, "_inbound_nodes", []) if any(n is m for m in model_nodes)] or \
        list(getattr(layer, "_inbound_nodes", []))
    if not nodes:
        return None, None
    node = nodes[0]
    shapes_in = [tuple(t.shape) for t in node.inputs]
    shapes_out = [tuple(t.shape) for t in node.outputs]
    pick = lambda shapes: None if not shapes else shapes[0] if len(shapes) == 1 else shapes
    return pick(shapes_in), pick(shapes_out)


def _layer_label(layer, model_nodes, show_shapes, show_dtype, show_layer_names, show_layer_activations,
                 show_trainable):
    """Keras's label: a table with the name/class header row, the activation, then one row of
    input shape, output shape, dtype and trainable cells."""
    class_name = type(layer).__name__
    colspan = max(1, int(show_dtype) + int(show_trainable) + (2 if show_shapes else 0))
    title = f"<b>{_html(layer.name)}</b> ({class_name})" if show_layer_names else f"<b>{class_name}</b>"
    table = ('<<table border="0" cellborder="1" bgcolor="black" cellpadding="10">'
             f'<tr><td colspan="{colspan}" bgcolor="black"><font point-size="16" color="white">{title}'
             '</font></td></tr>')
    if show_layer_activations and getattr(layer, "activation", None) is not None:
        table += (f'<tr><td bgcolor="white" colspan="{colspan}"><font point-size="14">'
                  f"Activation: <b>{_html(_activation_name(layer))}</b></font></td></tr>")
    cols = []
    if show_shapes:
        shape_in, shape_out = _io_shapes(layer, model_nodes)
        fmt = lambda s: "?" if s is None else _html(s)
        if class_name != "InputLayer":
            cols.append(f'<td bgcolor="white"><font point-size="14">Input shape: <b>{fmt(shape_in)}</b>'
                        "</font></td>")
        cols.append(f'<td bgcolor="white"><font point-size="14">Output shape: <b>{fmt(shape_out)}</b>'
                    "</font></td>")
    if show_dtype:
        cols.append('<td bgcolor="white"><font point-size="14">Output dtype: <b>float32</b></font></td>')
    if show_trainable and layer.weights:
        if layer.trainable:
            cols.append('<td bgcolor="forestgreen"><font point-size="14" color="white"><b>Trainable</b>'
                        "</font></td>")
        else:
            cols.append('<td bgcolor="firebrick"><font point-size="14" color="white"><b>Non-trainable</b>'
                        "</font></td>")
    if cols:
        table += f"<tr>{''.join(cols)}</tr>"
    return table + "</table>>"


def _is_graph(model):
    return bool(getattr(model, "_nodes", None))


# Models are told apart by their classes' names, not by importing cnnfast.models (which imports
# cnnfast.utils: the import would close a circle).
def _is_sequential(model):
    return any(klass.__name__ == "Sequential" for klass in type(model).__mro__)


def _is_model(layer):
    return any(klass.__name__ == "Model" and klass.__module__.startswith("cnnfast.")
               for klass in type(layer).__mro__)


def _model_layers(model):
    if _is_sequential(model):
        return list(model.layers), "sequential"
    if _is_graph(model):
        seen, layers = set(), []
        for node in model._nodes:
            if id(node.layer) not in seen:
                seen.add(id(node.layer))
                layers.append(node.layer)
        for layer in getattr(model, "_input_layers", []):
            if id(layer) not in seen:
                seen.add(id(layer))
                layers.insert(0, layer)
        return layers, "functional"
    return [model], "subclassed"


def _graph_lines(model, options, expand_nested, lines, edges, cluster_index):
    """Adds the nodes of ``model`` (and of nested models, as clusters) to ``lines`` and its
    connections to ``edges``; returns (entry node ids, exit node ids) for edges from outside."""
    layers, kind = _model_layers(model)
    model_nodes = getattr(model, "_nodes", [])
    ends = {}   # id(layer) -> (ids an incoming edge goes to, ids an outgoing edge leaves from)
    for layer in layers:
        nested = expand_nested and layer is not model and _is_model(layer) and \
            _model_layers(layer)[1] != "subclassed"
        if nested:
            cluster_index[0] += 1
            lines.append(f"subgraph cluster_{cluster_index[0]} {{")
            lines.append(f"style=dashed; label={_quote(layer.name)}; labeljust=l;")
            ends[id(layer)] = _graph_lines(layer, options, expand_nested, lines, edges, cluster_index)
            lines.append("}")
        else:
            label = _layer_label(layer, model_nodes, **options)
            lines.append(f'{id(layer)} [label={label}, fontname=Helvetica, border=0, margin=0];')
            ends[id(layer)] = ([str(id(layer))], [str(id(layer))])
    if kind == "subclassed":
        return ends[id(model)]
    if kind == "sequential":
        chain = [l for l in layers if type(l).__name__ != "InputLayer" or not expand_nested]
        for a, b in zip(chain, chain[1:]):
            for src in ends[id(a)][1]:
                for dst in ends[id(b)][0]:
                    edges.append((src, dst))
        return (ends[id(chain[0])][0] if chain else [], ends[id(chain[-1])][1] if chain else [])
    for node in model._nodes:
        for tensor in node.inputs:
            src_layer = tensor._keras_history[0]
            if id(src_layer) not in ends:
                continue
            for src in ends[id(src_layer)][1]:
                for dst in ends[id(node.layer)][0]:
                    edges.append((src, dst))
    entries = [i for layer in getattr(model, "_input_layers", []) if id(layer) in ends for i in ends[id(layer)][0]]
    exits = []
    for tensor in getattr(model, "_outputs", []):
        layer = tensor._keras_history[0]
        if id(layer) in ends:
            exits += ends[id(layer)][1]
    return entries, exits


def model_to_dot_source(model, show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
                        expand_nested=False, dpi=200, show_layer_activations=False, show_trainable=False,
                        splines="ortho"):
    """The DOT text of the drawing (what ``model_to_dot`` and ``plot_model`` render)."""
    if not getattr(model, "built", False):
        raise ValueError("This model has not yet been built. Build the model first by calling `build()` "
                         "or by calling the model on a batch of data.")
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"plot_model: rankdir must be 'TB' or 'LR', got {rankdir!r}")
    options = dict(show_shapes=show_shapes, show_dtype=show_dtype, show_layer_names=show_layer_names,
                   show_layer_activations=show_layer_activations, show_trainable=show_trainable)
    lines, edges = [], []
    _graph_lines(model, options, expand_nested, lines, edges, [0])
    out = ["digraph G {", f"rankdir={rankdir};", "concentrate=True;", f"dpi={dpi};", f"splines={splines};",
           "node [shape=record];"] + lines
    seen = set()
    for src, dst in edges:
        if (src, dst) not in seen:
            seen.add((src, dst))
            out.append(f"{src} -> {dst} [penwidth=2];")
    out.append("}")
    return "\n".join(out) + "\n"


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
                 expand_nested=False, dpi=200, subgraph=False, show_layer_activations=False,
                 show_trainable=False, splines="ortho", **kwargs):
    """The drawing as a ``pydot.Dot`` (Keras 3's ``model_to_dot``; needs ``pip install pydot``)."""
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported.")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
    if subgraph:
        raise ValueError("model_to_dot: subgraph=True is not supported; use expand_nested=True to draw "
                         "nested models as clusters")
    try:
        import pydot
    except ImportError:
        raise ImportError("You must install pydot (`pip install pydot`) for model_to_dot to work "
                          "(plot_model writes .dot files without it).") from None
    source = model_to_dot_source(model, show_shapes, show_dtype, show_layer_names, rankdir, expand_nested,
                                 dpi, show_layer_activations, show_trainable, splines)
    graphs = pydot.graph_from_dot_data(source)
    return graphs[0]


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=False,
               rankdir="TB", expand_nested=False, dpi=200, show_layer_activations=False,
               show_trainable=False, splines="ortho", **kwargs):
    """Draws the model's layer graph into ``to_file`` (format from its extension: png, svg, pdf,
    ... through Graphviz's ``dot``; ``.dot`` writes the graph text). Returns the file's path
    (Keras returns an IPython image in notebooks; cnnfast leaves display to the caller)."""
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported.")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
    source = model_to_dot_source(model, show_shapes, show_dtype, show_layer_names, rankdir, expand_nested,
                                 dpi, show_layer_activations, show_trainable, splines)
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1].lower().lstrip(".") or "png"
    if extension == "dot":
        with open(to_file, "w", encoding="utf-8") as f:
            f.write(source)
        return to_file
    dot = shutil.which("dot")
    if dot is None:
        raise ImportError(f"plot_model: drawing to .{extension} needs Graphviz: {_GRAPHVIZ_HINT}.")
    proc = subprocess.run([dot, f"-T{extension}", "-o", to_file], input=source.encode(), capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"plot_model: Graphviz's dot could not write {to_file!r} as {extension}: "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    return to_file
