"""utils.plot_model / model_to_dot: the layer graph as DOT text with Keras 3's node labels (checked
against Keras's own label function), edges that follow the model's connections, nested models as
clusters, and clear errors when Graphviz or pydot is missing."""
import os
import re
import shutil

import numpy as np
import pytest

import cnnfast
from cnnfast import layers
from cnnfast.utils import model_to_dot, plot_model
from cnnfast.utils.model_visualization import model_to_dot_source


def _residual(lib):
    inputs = lib.Input(shape=(8, 8, 3), name="image")
    x = lib.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(inputs)
    y = lib.layers.Conv2D(4, 3, padding="same", name="conv_b")(x)
    s = lib.layers.Add(name="skip")([x, y])
    z = lib.layers.GlobalAveragePooling2D(name="pool")(s)
    return lib.Model(inputs, lib.layers.Dense(2, activation="softmax", name="head")(z), name="residual")


def _nodes_and_edges(source):
    ids = dict(re.findall(r'^(\d+) \[label=<<table.*?<b>([^<]+)</b>', source, re.M))
    edges = {(ids[a], ids[b]) for a, b in re.findall(r"^(\d+) -> (\d+)", source, re.M)}
    return sorted(ids.values()), edges


def test_functional_graph_nodes_and_edges():
    source = model_to_dot_source(_residual(cnnfast))
    names, edges = _nodes_and_edges(source)
    assert names == sorted(["image", "conv_a", "conv_b", "skip", "pool", "head"])
    assert edges == {("image", "conv_a"), ("conv_a", "conv_b"), ("conv_a", "skip"), ("conv_b", "skip"),
                     ("skip", "pool"), ("pool", "head")}
    assert source.startswith("digraph G {\nrankdir=TB;") and "splines=ortho;" in source and "dpi=200;" in source


def test_sequential_is_a_chain_and_nested_models_become_clusters():
    inner = cnnfast.Sequential([cnnfast.Input((6,)), layers.Dense(5, name="d1"), layers.Dense(4, name="d2")],
                               name="inner")
    outer = cnnfast.Sequential([cnnfast.Input((6,)), inner, layers.Dense(3, name="out")], name="outer")
    names, edges = _nodes_and_edges(model_to_dot_source(outer))
    assert set(names) == {"inner", "out"} and edges == {("inner", "out")}
    nested = model_to_dot_source(outer, expand_nested=True)
    assert "subgraph cluster_1 {" in nested and 'label="inner"' in nested
    names, edges = _nodes_and_edges(nested)
    assert set(names) == {"d1", "d2", "out"} and edges == {("d1", "d2"), ("d2", "out")}


@pytest.mark.parametrize("options", [dict(), dict(show_shapes=True), dict(show_shapes=True, show_dtype=True,
                                                                           show_layer_activations=True,
                                                                           show_trainable=True),
                                     dict(show_layer_names=False, show_trainable=True)])
def test_labels_are_keras_labels(options, keras):
    from keras.src.utils.model_visualization import make_layer_label
    ours, theirs = _residual(cnnfast), _residual(keras)
    ours.get_layer("conv_b").trainable = False
    theirs.get_layer("conv_b").trainable = False
    full = dict(show_shapes=False, show_dtype=False, show_layer_names=True, show_layer_activations=False,
                show_trainable=False)
    full.update(options)
    source = model_to_dot_source(ours, **full)
    for name in ("conv_a", "conv_b", "skip", "pool", "head"):
        expected = make_layer_label(theirs.get_layer(name), **full)
        layer_id = id(ours.get_layer(name))
        assert f"{layer_id} [label={expected}," in source, name


def test_writes_dot_files_and_renders_with_graphviz(tmp_path):
    model = _residual(cnnfast)
    path = plot_model(model, to_file=tmp_path / "model.dot", show_shapes=True, rankdir="LR")
    text = open(path).read()
    assert "rankdir=LR;" in text and "Output shape: <b>(None, 8, 8, 4)</b>" in text
    png = tmp_path / "model.png"
    if shutil.which("dot") is None:
        with pytest.raises(ImportError, match="needs Graphviz: install Graphviz"):
            plot_model(model, to_file=png)
        assert not png.exists()
    else:
        assert plot_model(model, to_file=png) == str(png)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_to_dot_and_errors():
    model = _residual(cnnfast)
    try:
        import pydot  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install pydot"):
            model_to_dot(model)
    else:
        dot = model_to_dot(model, show_shapes=True)
        assert len(dot.get_nodes()) >= 6 and len(dot.get_edges()) == 6
    with pytest.raises(ValueError, match="not yet been built"):
        plot_model(cnnfast.Sequential([layers.Dense(2)]), to_file="never.dot")
    with pytest.raises(ValueError, match="no longer supported"):
        plot_model(model, to_file="never.dot", layer_range=["a", "b"])
    with pytest.raises(ValueError, match="rankdir must be"):
        plot_model(model, to_file="never.dot", rankdir="BT")
    assert not os.path.exists("never.dot")
