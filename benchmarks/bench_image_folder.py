"""Training from a folder of image files: how much of each step waits for data.

    python benchmarks/bench_image_folder.py                       # 2,000 MNIST PNGs, 28 -> 32 px
    python benchmarks/bench_image_folder.py --images 4000 --threads 1 --workers 1
    python -m pytest benchmarks/bench_image_folder.py --benchmark-only

Method. ``--images`` MNIST training digits (from ``$CNNFAST_DATA`` / the shared data directory,
else ``cnnfast.datasets.mnist.load_data()``) are written as PNG files into a temporary folder, one
sub-folder per class. ``cnnfast.utils.image_dataset_from_directory`` reads them (grayscale,
resized to ``--size``, batches of ``--batch``), and the MNIST tutorial CNN (``zoo.mnist_cnn``'s
layers behind a ``Rescaling(1/255)``) is fitted on it for ``--epochs`` epochs after one warm-up
epoch. Batches are decoded and resized by the data set's ``--workers`` background threads while
the model trains. The time the training loop spends blocked waiting for the next batch is
measured around the loader's ``__next__`` (this process only; nothing in cnnfast is changed);
the figure reported is that wait as a fraction of the epoch's wall time (target: < 5 %). For
scale the script also reports the loading rate alone (images/s, every batch read once with no
training) and the same fit on the same images held in memory as an array.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _mnist_digits(count: int):
    from cnnfast.datasets import _idx, mnist
    try:
        from tests.conftest import shared_data_dir
        shared = shared_data_dir()
    except ImportError:
        shared = None
    if shared is not None:
        x = _idx.read_idx(shared / "mnist" / "train-images-idx3-ubyte.gz", 3)
        y = _idx.read_idx(shared / "mnist" / "train-labels-idx1-ubyte.gz", 1)
    else:
        (x, y), _ = mnist.load_data()
    return x[:count], y[:count]


def write_folder(root: pathlib.Path, count: int) -> pathlib.Path:
    """``count`` MNIST digits as ``root/<label>/<i>.png``."""
    from PIL import Image
    x, y = _mnist_digits(count)
    for label in range(10):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(x, y)):
        Image.fromarray(img).save(root / str(int(label)) / f"{i:05d}.png")
    return root


def make_model(size: int):
    from cnnfast import layers, models
    model = models.Sequential([
        layers.Input((size, size, 1)), layers.Rescaling(1 / 255),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.Flatten(),
        layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class WaitTimer:
    """Adds up the time the training loop spends inside the background loader's ``__next__``."""

    def __init__(self):
        from cnnfast.models import data_adapters
        self._cls = data_adapters._Prefetcher
        self._original = self._cls.__next__
        self.seconds = 0.0
        self.batches = 0

    def __enter__(self):
        original, timer = self._original, self

        def timed_next(loader):
            t0 = time.perf_counter()
            try:
                return original(loader)
            finally:
                timer.seconds += time.perf_counter() - t0
                timer.batches += 1
        self._cls.__next__ = timed_next
        return self

    def __exit__(self, *exc):
        self._cls.__next__ = self._original
        return False


def run(images=2000, size=32, batch=64, epochs=2, workers=None, threads=None, folder=None) -> dict:
    import cnnfast
    from cnnfast.utils import image_dataset_from_directory, set_random_seed

    if threads is not None:
        cnnfast.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(folder) if folder else write_folder(pathlib.Path(tmp) / "mnist", images)
        ds = image_dataset_from_directory(root, color_mode="grayscale", image_size=(size, size), batch_size=batch,
                                          seed=1, verbose=False)
        if workers is not None:
            ds.workers = workers

        t0 = time.perf_counter()
        x_mem, y_mem = map(np.concatenate, zip(*(ds[i] for i in range(len(ds)))))
        load_rate = len(x_mem) / (time.perf_counter() - t0)

        set_random_seed(0)
        model = make_model(size)
        model.fit(ds, epochs=1, verbose=0)  # warm-up: plans, workspaces, page cache
        wall, waits = [], []
        for _ in range(epochs):
            with WaitTimer() as timer:
                t0 = time.perf_counter()
                model.fit(ds, epochs=1, verbose=0)
                wall.append(time.perf_counter() - t0)
            waits.append(timer.seconds)

        set_random_seed(0)
        in_memory = make_model(size)
        in_memory.fit(x_mem, y_mem, batch_size=batch, epochs=1, verbose=0)
        t0 = time.perf_counter()
        in_memory.fit(x_mem, y_mem, batch_size=batch, epochs=epochs, verbose=0)
        array_epoch = (time.perf_counter() - t0) / epochs

    epoch = float(np.median(wall))
    return {"images": len(ds.file_paths), "size": size, "batch": batch, "batches": len(ds),
            "workers": ds.workers, "threads": cnnfast.get_num_threads(), "isa": cnnfast.get_isa(),
            "load_images_per_s": load_rate, "epoch_s": epoch,
            "wait_fraction": float(sum(waits) / sum(wall)), "wait_s_per_epoch": float(np.median(waits)),
            "step_ms": 1000 * epoch / len(ds), "array_epoch_s": array_epoch}


def _describe(r: dict) -> str:
    return (f"{r['images']} PNG files, {r['size']}x{r['size']}x1, batch {r['batch']} ({r['batches']} steps/epoch), "
            f"{r['workers']} loader threads, {r['threads']} kernel threads, isa={r['isa']}\n"
            f"  loading alone        {r['load_images_per_s']:9.0f} images/s\n"
            f"  epoch from the folder {r['epoch_s']:8.3f} s  ({r['step_ms']:.1f} ms/step)\n"
            f"  waiting for data     {100 * r['wait_fraction']:8.2f} % of the epoch "
            f"({1000 * r['wait_s_per_epoch']:.1f} ms)  [target < 5 %]\n"
            f"  same fit from arrays {r['array_epoch_s']:8.3f} s/epoch")


def test_image_folder_wait_fraction(benchmark):
    result = {}

    def once():
        result.update(run(images=2000, epochs=1))
    benchmark.group = "fit from an image folder: wait for data in extra_info"
    benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    assert 0 <= result["wait_fraction"] < 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--size", type=int, default=32, help="image_size (square); the PNGs are 28x28")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2, help="measured epochs (after one warm-up)")
    p.add_argument("--workers", type=int, default=None, help="loader threads (default: the data set's)")
    p.add_argument("--threads", type=int, default=None, help="cnnfast kernel threads (default: all)")
    p.add_argument("--folder", default=None, help="an existing image folder instead of MNIST PNGs")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args(argv)
    result = run(args.images, args.size, args.batch, args.epochs, args.workers, args.threads, args.folder)
    print(_describe(result))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
