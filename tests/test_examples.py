"""The tutorial scripts in examples/ run, each in its own interpreter, as a user would start them.

Only the fast ones run in full (bundled digits, NumPy-level demos); MNIST and CIFAR-10 run one
short epoch on a subset (MNIST from the shared data directory, skipped when it is absent;
CIFAR-10 on random images of its shape, since the real archive is not available offline).
"""
from __future__ import annotations

import os
import pathlib
import re
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, shared_data_dir

EXAMPLES = REPO_ROOT / "examples"
SHARED = shared_data_dir()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_example(name: str, *args, cwd, data=None, timeout=300) -> subprocess.CompletedProcess:
    env = dict(os.environ, CNNFAST_NUM_THREADS="1", MPLBACKEND="Agg",
               CNNFAST_DATASETS_MIRROR=f"http://127.0.0.1:{_closed_port()}",
               CNNFAST_DATA=str(data if data is not None else pathlib.Path(cwd) / "no-data"))
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr
    return proc


def _accuracy(out: str) -> float:
    m = re.search(r"Test accuracy: ([0-9.]+)", out)
    assert m, out
    return float(m.group(1))


def test_every_example_is_tested():
    tested = {"digits_quickstart.py", "training_curves.py", "numpy_convolution.py", "numpy_pooling.py",
              "padding_strides_pooling.py", "mnist_cnn.py", "cifar10_cnn.py", "transfer_learning.py",
              "unet_segmentation.py", "text_cnn.py", "image_folder_augmentation.py",
              "distributed_mnist.py"}  # run by tests/test_distributed.py under mpirun
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_numpy_convolution_demo(tmp_path):
    out = run_example("numpy_convolution.py", cwd=tmp_path).stdout
    assert "correlate2d" in out and "convolve2d" in out and "All results match the NumPy loops." in out
    assert "36" in out  # the Sobel response at the bright-to-dark edge: 9 * (1 + 2 + 1)


def test_numpy_pooling_demo(tmp_path):
    out = run_example("numpy_pooling.py", cwd=tmp_path).stdout
    assert "[[6. 5.]\n [3. 7.]]" in out and "[[3.5 2. ]\n [1.5 3.5]]" in out
    assert "All results match NumPy." in out


def test_padding_strides_pooling_summaries(tmp_path):
    out = run_example("padding_strides_pooling.py", cwd=tmp_path).stdout
    assert out.count("Total params") == 6
    table = out[out.rindex("variant"):]
    # feature maps follow the Keras output-size rules: valid 26, same 28, stride 2 -> 13 / 14, pool -> 13
    for title, fmap, dense in [("valid, stride 1", "(26, 26, 32)", 26 * 26 * 32 * 10 + 10),
                               ("same, stride 1", "(28, 28, 32)", 28 * 28 * 32 * 10 + 10),
                               ("valid, stride 2", "(13, 13, 32)", 13 * 13 * 32 * 10 + 10),
                               ("same, stride 2", "(14, 14, 32)", 14 * 14 * 32 * 10 + 10),
                               ("valid + MaxPooling2D(2)", "(13, 13, 32)", 13 * 13 * 32 * 10 + 10),
                               ("valid + AveragePooling2D(2)", "(13, 13, 32)", 13 * 13 * 32 * 10 + 10)]:
        row = next(line for line in table.splitlines() if line.startswith(title + " "))
        assert fmap in row and f"{dense:,}" in row and f"{dense + 320:,}" in row


def test_digits_quickstart(tmp_path):
    out = run_example("digits_quickstart.py", cwd=tmp_path).stdout
    assert _accuracy(out) > 0.9
    assert "identical predictions: True" in out


def test_training_curves(tmp_path):
    png = tmp_path / "curves.png"
    out = run_example("training_curves.py", "--epochs", "4", "--output", str(png), cwd=tmp_path).stdout
    assert len(re.findall(r"^\s+[1-4] +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+$", out, re.M)) == 4
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed: skipping the plot" in out and not png.exists()
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_curves_without_matplotlib(tmp_path):
    """Hide matplotlib (a None entry in sys.modules makes its import fail) and check the skip path."""
    png = tmp_path / "none.png"
    script = EXAMPLES / "training_curves.py"
    code = (f"import runpy, sys; sys.modules['matplotlib'] = None; "
            f"sys.argv = [{str(script)!r}, '--epochs', '1', '--output', {str(png)!r}]; "
            f"runpy.run_path({str(script)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300, env=dict(os.environ, CNNFAST_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "matplotlib is not installed: skipping the plot" in proc.stdout and not png.exists()


@pytest.mark.skipif(SHARED is None, reason="MNIST not in the shared data directory")
@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_mnist_cnn_one_short_epoch(dataset, tmp_path):
    out = run_example("mnist_cnn.py", "--dataset", dataset, "--epochs", "1", "--limit", "1500",
                      cwd=tmp_path, data=SHARED).stdout
    assert "x_train (1500, 28, 28, 1)" in out and "Total params: 93,322" in out
    assert _accuracy(out) > 0.3  # one epoch on 1,200 images: far above the 0.1 of chance


@pytest.mark.skipif(SHARED is None, reason="MNIST not in the shared data directory")
def test_transfer_learning_short_run(tmp_path):
    out = run_example("transfer_learning.py", "--pretrain-limit", "6000", "--pretrain-epochs", "1",
                      "--epochs", "10", "--scratch-epochs", "4", cwd=tmp_path, data=SHARED).stdout
    assert "pretraining on 6000 images of digits 0-4; 100 labelled images of 5-9" in out
    assert "saved and reloaded: predictions equal" in out
    m = re.search(r"Transfer accuracy: ([0-9.]+)  Scratch accuracy: ([0-9.]+)", out)
    assert m, out
    assert float(m.group(1)) > 0.4  # 5 classes: chance is 0.2; a frozen base that moved would fail earlier


@pytest.mark.skipif(SHARED is None, reason="MNIST not in the shared data directory")
def test_unet_segmentation_short_run(tmp_path):
    out = run_example("unet_segmentation.py", "--limit", "1200", "--epochs", "1", "--test-scenes", "300",
                      cwd=tmp_path, data=SHARED).stdout
    assert "1200 training scenes (48, 48, 1), 300 test scenes" in out and "Total params: 481,915" in out
    pixel = float(re.search(r"Pixel accuracy: ([0-9.]+)", out).group(1))
    mean_iou = float(re.search(r"Test mean IoU: ([0-9.]+)", out).group(1))
    iou_bg = float(re.search(r"bg: ([0-9.]+)", out).group(1))
    # One short epoch already separates strokes from background; the digit classes need the full run.
    assert pixel > 0.8 and iou_bg > 0.8 and 0.05 < mean_iou <= 1.0


def _review_folder(root):
    """A small two-class text folder in aclImdb's layout: reviews of filler words with a few
    words of their sentiment."""
    import numpy as np
    rng = np.random.default_rng(0)
    filler = "the movie film story plot actor scene it was this and a of with director time".split()
    words = {"pos": "wonderful best great excellent loved brilliant superb enjoyable".split(),
             "neg": "boring worst awful dull waste terrible bad poorly".split()}
    for split, count in (("train", 300), ("test", 60)):
        for label in ("neg", "pos"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                tokens = list(rng.choice(filler, rng.integers(20, 60))) + list(rng.choice(words[label], 3))
                rng.shuffle(tokens)
                (folder / f"{i}.txt").write_text(" ".join(tokens).capitalize() + ".")


def test_text_cnn_from_a_text_folder_end_to_end(tmp_path):
    _review_folder(tmp_path / "reviews")
    out = run_example("text_cnn.py", "--text-dir", str(tmp_path / "reviews"), "--epochs", "8", "--length", "100",
                      "--vocabulary", "1000", cwd=tmp_path).stdout
    assert "Found 600 files belonging to 2 classes." in out and "x_train (600, 100)" in out
    assert _accuracy(out) > 0.9
    scores = re.findall(r"^([0-9.]+) \((neg|pos)\): ", out, re.M)
    assert [label for _, label in scores] == ["pos", "neg"]   # the reloaded string model


def test_text_cnn_without_imdb_says_where_to_put_it(tmp_path):
    env = dict(os.environ, CNNFAST_DATA=str(tmp_path / "empty"),
               CNNFAST_DATASETS_MIRROR=f"http://127.0.0.1:{_closed_port()}")
    proc = subprocess.run([sys.executable, str(EXAMPLES / "text_cnn.py")], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 1
    assert "imdb.npz" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(SHARED is None, reason="MNIST not in the shared data directory")
def test_image_folder_augmentation_short_run(tmp_path):
    pytest.importorskip("PIL")
    out = run_example("image_folder_augmentation.py", "--limit", "1500", "--test-images", "300", "--epochs", "1",
                      cwd=tmp_path, data=SHARED).stdout
    assert "wrote 1800 PNG files" in out and "Found 1500 files belonging to 10 classes." in out
    assert "Using 1200 files for training." in out and "Total params: 34,826" in out
    assert _accuracy(out) > 0.3   # one augmented epoch on 1,200 images: far above chance


def test_mnist_cnn_without_data_says_where_to_put_it(tmp_path):
    env = dict(os.environ, CNNFAST_DATA=str(tmp_path / "empty"),
               CNNFAST_DATASETS_MIRROR=f"http://127.0.0.1:{_closed_port()}")
    proc = subprocess.run([sys.executable, str(EXAMPLES / "mnist_cnn.py")], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 1
    assert "Put these files" in proc.stderr and "Traceback" not in proc.stderr


def test_cifar10_cnn_pipeline_on_fake_data(tmp_path):
    out = run_example("cifar10_cnn.py", "--fake-data", "--epochs", "1", "--limit", "128", cwd=tmp_path).stdout
    assert "y_train (128, 10) (one-hot)" in out and "Total params: 1,250,858" in out
    assert 0.0 <= _accuracy(out) <= 1.0 and "images/s" in out
