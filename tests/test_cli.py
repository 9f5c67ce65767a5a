"""The ``cnnfast`` command line: train / bench / info, usage errors and exit codes.

In-process calls of ``cnnfast.__main__.main(argv)`` check exit codes and messages; a few runs go
through ``python -m cnnfast`` and the installed console script, as a user would type them.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cnnfast
from cnnfast.__main__ import main
from tests.conftest import shared_data_dir

SHARED = shared_data_dir()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def offline_data(tmp_path, monkeypatch):
    """An empty data directory and a mirror that refuses connections: no test reaches the network."""
    monkeypatch.setenv("CNNFAST_DATA", str(tmp_path / "data-home"))
    monkeypatch.setenv("CNNFAST_DATASETS_MIRROR", f"http://127.0.0.1:{_closed_port()}")
    previous = cnnfast.get_num_threads()
    yield
    cnnfast.set_num_threads(previous)


def run_cli(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnfast", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=dict(os.environ))


# -------------------------------------------------------------------------------- usage


def test_help_lists_the_subcommands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("train", "bench", "info"):
        assert word in out
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--dataset", "--model", "--epochs", "--batch-size", "--threads", "--seed",
                   "--validation-split", "--save", "mnist_cnn", "cifar10_cnn", "digits_cnn", "fashion_mnist"):
        assert option in out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert cnnfast.__version__ in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    ([], "required"),
    (["fly"], "invalid choice"),
    (["train", "--dataset", "imagenet"], "invalid choice"),
    (["train", "--model", "resnet50"], "invalid choice"),
    (["train", "--epochs", "0"], "positive integer"),
    (["train", "--epochs", "two"], "positive integer"),
    (["train", "--batch-size", "-3"], "positive integer"),
    (["train", "--threads", "0"], "positive integer"),
    (["train", "--seed", "-1"], "integer >= 0"),
    (["train", "--validation-split", "1"], "[0, 1)"),
    (["train", "--validation-split", "abc"], "[0, 1)"),
    (["train", "--verbose", "3"], "invalid choice"),
    (["train", "--no-such-option"], "unrecognized arguments"),
    (["train", "--dataset", "digits", "--data-dir", "/tmp"], "--data-dir does not apply"),
    (["train", "--limit", "1", "--validation-split", "0.5"], "leaves 0 training"),
    (["bench", "--repeats", "0"], "positive integer"),
    (["bench", "--source", "/nonexistent/dir"], "no benchmarks/compare.py"),
    (["info", "extra"], "unrecognized arguments"),
])
def test_usage_errors_exit_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: cnnfast" in err and "error:" in err and message in err
    assert "Traceback" not in err


def test_usage_error_from_the_shell_has_no_traceback():
    proc = run_cli("train", "--epochs", "-1")
    assert proc.returncode == 2
    assert "error: argument --epochs" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("dataset, subdir", [("mnist", "mnist"), ("fashion_mnist", "fashion-mnist"),
                                             ("cifar10", "cifar-10")])
def test_missing_data_set_exits_1_with_put_files_here(dataset, subdir, tmp_path, capsys):
    assert main(["train", "--dataset", dataset]) == 1
    err = capsys.readouterr().err
    assert "Put these files" in err and str(tmp_path / "data-home" / subdir) in err
    assert "Traceback" not in err


def test_missing_data_set_with_data_dir(tmp_path, capsys):
    target = tmp_path / "elsewhere"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(target)]) == 1
    assert f"in {target}" in capsys.readouterr().err


# --------------------------------------------------------------------------------- info


def test_info_prints_the_configuration(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"version: " + re.escape(cnnfast.__version__), out)
    assert f"isa: {cnnfast.get_isa()}" in out and "num_threads" in out


def test_console_script_is_installed():
    exe = shutil.which("cnnfast", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        pytest.skip("the cnnfast console script is not on PATH (package not installed with pip?)")
    proc = subprocess.run([exe, "info"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "isa:" in proc.stdout


# -------------------------------------------------------------------------------- train


def _accuracy(out: str) -> float:
    m = re.search(r"Test accuracy: ([0-9.]+)", out)
    assert m, out
    return float(m.group(1))


def test_train_on_bundled_digits_reaches_90_percent(tmp_path):
    """The default `cnnfast train`: offline, seconds, sensible accuracy, speed reported, model saved."""
    saved = tmp_path / "digits.keras"
    proc = run_cli("train", "--threads", "1", "--save", str(saved))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "digits_cnn" in out and "on digits" in out
    assert _accuracy(out) > 0.90
    assert re.search(r"Time per epoch: [0-9.]+ s", out) and "samples/s" in out
    assert "Epoch 12/12" in out  # the progress display of every epoch
    assert saved.is_file()
    model = cnnfast.models.load_model(str(saved))
    (_, _), (x_test, y_test) = cnnfast.datasets.digits.load_data()
    probs = model.predict(x_test[..., None].astype(np.float32) / 16, verbose=0)
    assert abs(float(np.mean(probs.argmax(1) == y_test)) - _accuracy(out)) < 1e-3


def test_train_is_reproducible_for_a_seed(capsys):
    argv = ["train", "--epochs", "2", "--limit", "400", "--seed", "3", "--threads", "1", "--verbose", "0"]
    assert main(argv) == 0
    first = _accuracy(capsys.readouterr().out)
    assert main(argv) == 0
    assert _accuracy(capsys.readouterr().out) == first


def test_train_options_are_applied(capsys):
    assert main(["train", "--epochs", "1", "--batch-size", "50", "--threads", "1", "--limit", "300",
                 "--validation-split", "0.2", "--verbose", "2", "--summary"]) == 0
    out = capsys.readouterr().out
    assert "240 training, 60 validation, 300 test images" in out
    assert "1 thread(s), 1 epoch(s), batch size 50" in out
    assert "5/5" in out  # 240 samples in batches of 50: 5 steps
    assert "Total params" in out  # --summary
    assert cnnfast.get_num_threads() == 1


def test_model_that_does_not_fit_the_data_set_is_a_usage_error(capsys):
    assert main(["train", "--model", "mnist_cnn", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "--model mnist_cnn does not fit digits images of shape 8x8x1" in err


@pytest.mark.skipif(SHARED is None, reason="MNIST not in the shared data directory")
def test_train_mnist_subset_from_shared_data(monkeypatch, capsys):
    monkeypatch.setenv("CNNFAST_DATA", str(SHARED))
    assert main(["train", "--dataset", "mnist", "--epochs", "1", "--limit", "1000", "--verbose", "0",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "mnist_cnn" in out and "800 training, 200 validation, 1,000 test images of 28x28x1" in out
    assert _accuracy(out) > 0.5


# -------------------------------------------------------------------------------- bench


def test_bench_builtin_table_measures(capfd):
    assert main(["bench", "--builtin", "--repeats", "1", "--threads", "1"]) == 0
    out = capfd.readouterr().out  # the table is measured in a child process
    assert "BLAS limited to 1 thread(s)" in out
    assert "GFLOP/s" in out and "matmul 512x512 @ 512x512" in out
    rows = [line for line in out.splitlines() if line.startswith("matmul")]
    assert len(rows) == 3
    for row in rows:  # name padded to 38 columns, then: cnnfast ms, GFLOP/s, NumPy ms, PyTorch ms, ratio
        cnnfast_ms, gflops, numpy_ms = row[38:].split()[:3]
        assert float(cnnfast_ms) > 0 and float(gflops) > 0 and float(numpy_ms) > 0


def _fake_source(root, code=3):
    (root / "benchmarks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'cnnfast'\n")
    (root / "benchmarks" / "compare.py").write_text(textwrap.dedent(f"""
        import os, sys
        with open(os.path.join(os.path.dirname(__file__), "called.txt"), "w") as f:
            f.write(" ".join(sys.argv[1:]) + "|" + os.environ["CNNFAST_NUM_THREADS"] + "|" + os.getcwd())
        sys.exit({code})
    """))
    return root / "benchmarks" / "called.txt"


def test_bench_runs_compare_py_from_source_and_forwards_arguments(tmp_path):
    called = _fake_source(tmp_path / "src")
    assert main(["bench", "--source", str(tmp_path / "src"), "--threads", "1", "--", "--quick", "x"]) == 3
    args, threads, cwd = called.read_text().split("|")
    assert args == "--threads 1 --quick x" and threads == "1" and os.path.samefile(cwd, tmp_path / "src")


def test_bench_finds_compare_py_from_the_current_directory(tmp_path, monkeypatch):
    called = _fake_source(tmp_path / "tree", code=0)
    (tmp_path / "tree" / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "tree" / "deep" / "er")
    assert main(["bench"]) == 0
    assert called.read_text().startswith("|")


def test_bench_extra_arguments_need_compare_py(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--", "--quick"]) == 2
    assert "compare.py" in capsys.readouterr().err
