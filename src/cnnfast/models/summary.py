"""``model.summary()``: Keras 3's table, reproduced without the ``rich`` dependency.

Layout (Keras ``utils/summary_utils.py``): 88 characters for sequential-like models with columns
"Layer (type)", "Output Shape", "Param #" at relative positions 0.45 / 0.80 / 1.0; 108 characters
and a fourth column "Connected to" (positions 0.3 / 0.56 / 0.74 / 1.0) for graphs with branches.
Like rich's table, each column gets one space of padding on both sides and the columns are shrunk
evenly until the table, with its box-drawing borders, fits the line length; long cells wrap at
spaces and words that still do not fit end in "…". Parameter counts use thousands separators;
sizes are float32 bytes in binary units ("879.04 KB"). Unlike Keras, the width does not depend on
the terminal size, so the output is the same everywhere (and plain text, without colours).
"""
from __future__ import annotations

import re
import sys

import numpy as np

from ..layers.base import InputLayer

__all__ = ["print_summary", "summary_text", "readable_memory_size"]


def readable_memory_size(num_bytes: float) -> str:
    units = ["B", "KB", "MB", "GB", "TB", "PB"]
    for unit in units:
        if num_bytes / 1024 < 1:
            return f"{num_bytes:.2f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.2f} {units[-1]}"


def _ratio_reduce(total, ratios, maximums, values):
    """rich's column shrinking: take ``total`` cells off, spread by ratio, rounding half to even."""
    ratios = [r if m else 0 for r, m in zip(ratios, maximums)]
    total_ratio = sum(ratios)
    if not total_ratio:
        return list(values)
    remaining, out = total, []
    for ratio, maximum, value in zip(ratios, maximums, values):
        if ratio and total_ratio > 0:
            d = min(maximum, round(ratio * remaining / total_ratio))
            out.append(value - d)
            remaining -= d
            total_ratio -= ratio
        else:
            out.append(value)
    return out


def _column_widths(line_length, positions):
    widths, current = [], 0
    for pos in positions:
        w = int(pos * line_length) - current
        if w < 4:
            raise ValueError("Insufficient console width to print summary.")
        widths.append(w)
        current += w
    cells = [w + 2 for w in widths]  # one space of padding each side
    excess = sum(cells) - (line_length - (len(widths) + 1))
    if excess > 0:
        cells = _ratio_reduce(excess, [1] * len(cells), cells, cells)
    return [c - 2 for c in cells]


def _wrap(text, width):
    lines = []
    for para in str(text).split("\n"):
        current = None
        for word in para.split(" "):
            if len(word) > width:
                if current:
                    lines.append(current)
                lines.append(word[:width - 1] + "…")
                current = None
            elif current is None or current == "":
                current = word
            elif len(current) + 1 + len(word) <= width:
                current += " " + word
            else:
                lines.append(current)
                current = word
        if current is not None:
            lines.append(current)
    return lines or [""]


def _justify(text, width, align):
    if align == "right":
        return text.rjust(width)
    if align == "center":
        return text.center(width)
    return text.ljust(width)


def _render_table(header, rows, widths, aligns):
    def bar(left, mid, right, fill):
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def lines_of(cells, edge):
        wrapped = [_wrap(c, w) for c, w in zip(cells, widths)]
        height = max(len(c) for c in wrapped)
        out = []
        for i in range(height):
            parts = [" " + _justify(c[i] if i < len(c) else "", w, a) + " "
                     for c, w, a in zip(wrapped, widths, aligns)]
            out.append(edge + edge.join(parts) + edge)
        return out

    out = [bar("┏", "┳", "┓", "━")]
    out += lines_of(header, "┃")
    out.append(bar("┡", "╇", "┩", "━"))
    for i, row in enumerate(rows):
        if i:
            out.append(bar("├", "┼", "┤", "─"))
        out += lines_of(row, "│")
    out.append(bar("└", "┴", "┘", "─"))
    return out


def _format_shape(shape):
    if isinstance(shape, list):
        return "[" + ", ".join(_format_shape(s) for s in shape) + "]"
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _model_nodes(model):
    return getattr(model, "_nodes", []) if model.built else []


def _output_shape(layer, model_nodes):
    own = [n for n in layer._inbound_nodes if any(n is m for m in model_nodes)]
    if isinstance(layer, InputLayer):
        return _format_shape(layer.batch_shape)
    if own:
        return _format_shape(own[-1].outputs[0].shape)
    if layer._inbound_nodes:
        return _format_shape(layer._inbound_nodes[-1].outputs[0].shape)
    if layer.built and layer._output_shape is not None:
        return _format_shape(layer._output_shape)
    return "?"


def _is_sequential_like(model):
    if getattr(model, "_is_sequential", False):
        return True
    if len(getattr(model, "_inputs", [])) != 1:
        return False
    consumed, seen_layers = set(), set()
    for layer, ins, out, multi in model._plan:
        if multi or len(ins) != 1 or ins[0] in consumed or id(layer) in seen_layers:
            return False
        consumed.add(ins[0])
        seen_layers.add(id(layer))
    return True


def _connections(layer, model_nodes):
    parts = []
    for node in layer._inbound_nodes:
        if not any(node is m for m in model_nodes):
            continue
        for t in node.inputs:
            src, node_index, tensor_index = t._keras_history
            parts.append(f"{src.name}[{node_index}][{tensor_index}]")
    return ", ".join(parts) if parts else "-"


def _layer_rows(layer, model_nodes, sequential_like, show_trainable, expand_nested, level=0):
    prefix = ("   " * level + "└ ") if level else ""
    name = f"{prefix}{layer.name} ({type(layer).__name__})"
    params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
    row = [name, _output_shape(layer, model_nodes), params]
    if not sequential_like:
        row.append(_connections(layer, model_nodes))
    if show_trainable:
        row.append(("Y" if layer.trainable else "N") if layer.weights else "-")
    rows = [row]
    if expand_nested and hasattr(layer, "_plan") and layer.layers:
        inner_nodes = _model_nodes(layer)
        for sub in layer.layers:
            rows += _layer_rows(sub, inner_nodes, sequential_like, show_trainable, expand_nested, level + 1)
    return rows


def _layer_range(layers, layer_range):
    if layer_range is None:
        return 0, len(layers)
    if len(layer_range) != 2 or not all(isinstance(s, str) for s in layer_range):
        raise ValueError(f"layer_range must be a list or tuple of two layer names, got {layer_range!r}")
    lower = [i for i, l in enumerate(layers) if re.match(layer_range[0], l.name)]
    upper = [i for i, l in enumerate(layers) if re.match(layer_range[1], l.name)]
    if not lower or not upper:
        raise ValueError(f"Passed layer_names do not match the layer names in the model. Received: "
                         f"{layer_range}")
    if min(lower) > max(upper):
        return min(upper), max(lower) + 1
    return min(lower), max(upper) + 1


def summary_text(model, line_length=None, positions=None, expand_nested=False, show_trainable=False,
                 layer_range=None) -> str:
    sequential_like = _is_sequential_like(model)
    if sequential_like:
        default_length, default_positions = 88, [0.45, 0.80, 1.0]
        header, aligns = ["Layer (type)", "Output Shape", "Param #"], ["left", "left", "right"]
    else:
        default_length, default_positions = 108, [0.3, 0.56, 0.74, 1.0]
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        aligns = ["left", "left", "right", "left"]
    positions = list(positions or default_positions)
    if show_trainable:
        default_length += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header.append("Trainable")
        aligns.append("center")
    if positions[-1] > 1:  # absolute positions, as Keras also accepts
        positions = [p / positions[-1] for p in positions]
    line_length = line_length or default_length
    widths = _column_widths(line_length, positions)

    nodes = _model_nodes(model)
    layers = model.layers
    lo, hi = _layer_range(layers, layer_range)
    rows = []
    for layer in layers[lo:hi]:
        rows += _layer_rows(layer, nodes, sequential_like, show_trainable, expand_nested)

    trainable = model.trainable_weights
    trainable_ids = {id(v) for v in trainable}
    non_trainable = [v for v in model.weights if id(v) not in trainable_ids]
    t_count = int(sum(v.size for v in trainable))
    n_count = int(sum(v.size for v in non_trainable))
    lines = [f'Model: "{model.name}"']
    lines += _render_table(header, rows, widths, aligns)
    opt = getattr(model, "optimizer", None)
    opt_count = opt_bytes = 0
    opt_built = bool(getattr(model, "compiled", False) and opt is not None and opt.built)
    if opt_built:
        variables = opt.variables
        opt_count = int(sum(np.size(v) for v in variables))
        opt_bytes = int(sum(np.asarray(v).nbytes for v in variables))
    total = t_count + n_count + opt_count
    total_bytes = 4 * (t_count + n_count) + opt_bytes
    lines.append(f" Total params: {total:,} ({readable_memory_size(total_bytes)})")
    lines.append(f" Trainable params: {t_count:,} ({readable_memory_size(4 * t_count)})")
    lines.append(f" Non-trainable params: {n_count:,} ({readable_memory_size(4 * n_count)})")
    if opt_built:
        lines.append(f" Optimizer params: {opt_count:,} ({readable_memory_size(opt_bytes)})")
    return "\n".join(lines) + "\n"


def print_summary(model, line_length=None, positions=None, print_fn=None, expand_nested=False,
                  show_trainable=False, layer_range=None):
    text = summary_text(model, line_length=line_length, positions=positions, expand_nested=expand_nested,
                        show_trainable=show_trainable, layer_range=layer_range)
    if print_fn is not None:
        print_fn(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
