"""Progress output of fit/evaluate/predict: Keras's line format, redrawn in place only on a terminal
or in a notebook, one plain line per epoch otherwise, verbose 0/1/2."""
import io
import re
import sys

import numpy as np
import pytest

from cnnfast import layers, models
from cnnfast.utils import Progbar
from cnnfast.utils.progbar import format_duration, format_time_per_unit, format_value

NUM = r"\d+\.\d{4}"
BAR_LINE = re.compile(rf"^4/4 ━{{20}} \d+s \d+(ms|us|s)/step - accuracy: {NUM} - loss: {NUM}"
                      rf" - val_accuracy: {NUM} - val_loss: {NUM}$")


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def model(rng):
    m = models.Sequential([layers.Input((6,)), layers.Dense(8, activation="relu"),
                           layers.Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


@pytest.fixture
def data(rng):
    return rng.standard_normal((40, 6)).astype(np.float32), rng.integers(0, 3, 40)


def test_one_plain_line_per_epoch_when_piped(model, data, capsys):
    x, y = data
    model.fit(x, y, epochs=2, batch_size=8, validation_split=0.2)
    out = capsys.readouterr().out
    assert "\r" not in out and "\b" not in out and "\x1b" not in out
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    for line in (lines[1], lines[3]):
        assert BAR_LINE.match(line), line


def test_verbose_two_and_zero(model, data, capsys):
    x, y = data
    model.fit(x, y, epochs=1, batch_size=10, verbose=2)
    out = capsys.readouterr().out
    assert re.fullmatch(rf"4/4 - \d+s - \d+(ms|us|s)/step - accuracy: {NUM} - loss: {NUM}\n", out), out
    model.fit(x, y, epochs=3, batch_size=10, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="verbose must be 'auto', 0, 1 or 2"):
        model.fit(x, y, verbose=3)


def test_redraws_in_place_on_a_terminal(model, data, monkeypatch):
    x, y = data
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    model.fit(x, y, epochs=1, batch_size=10)
    out = tty.getvalue()
    assert out.count("\r") >= 1 and "\x1b[1m4/4\x1b[0m" in out and "\x1b[32m━" in out
    assert out.endswith("\n") and "Epoch" not in out
    final = out.split("\r")[-1]
    assert re.search(rf"accuracy: {NUM} - loss: {NUM}", final)


def test_notebook_counts_as_dynamic(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    buf = io.StringIO()
    bar = Progbar(3, stream=buf, interval=0)
    bar.update(1, [("loss", 1.0)])
    bar.update(3, [("loss", 0.5)])
    assert buf.getvalue().startswith("\r") and buf.getvalue().endswith("\n")


def test_evaluate_and_predict_print_one_line(model, data, capsys):
    x, y = data
    model.evaluate(x, y, batch_size=16)
    model.predict(x, batch_size=16)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(rf"3/3 ━{{20}} \d+s \d+(ms|us|s)/step - accuracy: {NUM} - loss: {NUM}", lines[0])
    assert re.fullmatch(r"3/3 ━{20} \d+s \d+(ms|us|s)/step", lines[1])


def test_progbar_formatting_and_averaging():
    assert format_duration(12.7) == "12s" and format_duration(65) == "1:05" and format_duration(3723) == "1:02:03"
    assert format_time_per_unit(0.0061, "step") == "6ms/step"
    assert format_time_per_unit(2.4e-5, "step") == "24us/step"
    assert format_time_per_unit(1.6, "step") == "2s/step"
    assert format_value(0.12345) == "0.1235" and format_value(2e-4) == "2.0000e-04"
    buf = io.StringIO()
    bar = Progbar(4, verbose=1, stream=buf, stateful_metrics=["acc"])
    bar.update(1, [("loss", 1.0), ("acc", 0.5)])
    bar.update(3, [("loss", 2.0), ("acc", 0.7)])
    assert buf.getvalue() == ""  # not a terminal: nothing until the end
    bar.update(4, [("loss", 4.0), ("acc", 0.9)], finalize=False)
    bar.update(4, [("loss", 3.0), ("acc", 0.8)])
    assert buf.getvalue().endswith(" - loss: 3.0000 - acc: 0.8000\n")
    avg = Progbar(4, verbose=1, stream=FakeTTY(), interval=0)
    avg.update(1, [("loss", 1.0)])
    avg.update(3, [("loss", 2.0)])  # (1*1 + 2*2) / 3 steps
    assert avg.stream.getvalue().endswith(" - loss: 1.6667")
    unknown = Progbar(None, stream=io.StringIO())
    unknown.update(5, finalize=True)
    assert unknown.stream.getvalue().startswith("      5/Unknown")
