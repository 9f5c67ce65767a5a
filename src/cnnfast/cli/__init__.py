"""The ``cnnfast`` command line: ``train``, ``bench`` and ``info`` sub-commands (argparse).

Exit codes: 0 success, 1 a run-time failure with a clear message (e.g. a data set that is not
on this machine and cannot be downloaded), 2 a usage error (bad or contradictory arguments).
Errors never print a traceback; ``main(argv)`` returns the code instead of exiting, so it can
be called from Python.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
MODELS = ("mnist_cnn", "cifar10_cnn", "digits_cnn")  # cnnfast.zoo.MODELS, listed here so --help stays fast


class UsageError(Exception):
    """Arguments that parse but do not make sense together (exit code 2)."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="cnnfast",
        description="Fast CPU convolutional networks with the Keras API: train the tutorial models, "
                    "run the benchmarks, show the configuration.")
    parser.add_argument("--version", action="version", version=f"cnnfast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,bench,info}")
    sub.required = True

    train = sub.add_parser(
        "train", help="train a tutorial CNN (default: the bundled 8x8 digits, offline, a few seconds)",
        description="Train a tutorial CNN and report test accuracy, time per epoch and samples/s. "
                    "Defaults depend on the data set (digits: 12 epochs, batch 32, validation 0.1; "
                    "mnist/fashion_mnist: 5 epochs, batch 64, validation 0.2; cifar10: 10 epochs, "
                    "batch 64, validation 0.2).")
    train.add_argument("--dataset", choices=DATASETS, default="digits",
                       help="data set (default: digits, bundled; the others are read from $CNNFAST_DATA "
                            "or ~/.cache/cnnfast/datasets and downloaded when missing)")
    train.add_argument("--model", choices=MODELS, default=None,
                       help="architecture from cnnfast.zoo (default: mnist_cnn for mnist and fashion_mnist, "
                            "cifar10_cnn for cifar10, digits_cnn for digits)")
    train.add_argument("--epochs", type=_positive_int, default=None, metavar="N")
    train.add_argument("--batch-size", type=_positive_int, default=None, metavar="N")
    train.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                       help="kernel threads (default: cnnfast's default, see `cnnfast info`)")
    train.add_argument("--seed", type=_non_negative_int, default=0, metavar="N",
                       help="random seed for weights, shuffling and dropout (default: 0)")
    train.add_argument("--validation-split", type=_fraction, default=None, metavar="F",
                       help="fraction of the training set held out for validation, as in Keras fit "
                            "(the last samples, before shuffling)")
    train.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                       help="use only the first N training and the first N test samples (quick runs)")
    train.add_argument("--data-dir", default=None, metavar="DIR",
                       help="directory holding the data-set files (default: $CNNFAST_DATA, else "
                            "~/.cache/cnnfast/datasets)")
    train.add_argument("--save", default=None, metavar="PATH", help="save the trained model to PATH")
    train.add_argument("--summary", action="store_true", help="print the model summary before training")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                       help="fit's progress display: 0 silent, 1 progress bar, 2 one line per epoch")
    train.add_argument("--distributed", action="store_true",
                       help="train data-parallel on every process started by mpirun "
                            "(`mpirun -n 4 python -m cnnfast train --distributed ...`; needs mpi4py: "
                            "pip install cnnfast[mpi]); --batch-size is then per process, the learning "
                            "rate is scaled by the number of processes with a 1-epoch warm-up, and only "
                            "rank 0 prints and saves")

    bench = sub.add_parser(
        "bench", help="run the comparison benchmarks (cnnfast vs NumPy and PyTorch)",
        description="Run benchmarks/compare.py from the source tree when it is available, else a "
                    "built-in table timing cnnfast's kernels and a training step against NumPy and "
                    "PyTorch (if installed). Extra arguments after `--` go to compare.py.")
    bench.add_argument("--builtin", action="store_true", help="always use the built-in table")
    bench.add_argument("--source", default=None, metavar="DIR",
                       help="cnnfast source tree holding benchmarks/compare.py (default: search from "
                            "the current directory upwards)")
    bench.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                       help="threads for cnnfast and PyTorch (default: cnnfast's default)")
    bench.add_argument("--repeats", type=_positive_int, default=7, metavar="N",
                       help="timed repeats per case; the median is reported (default: 7)")
    bench.add_argument("extra", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    info = sub.add_parser("info", help="print cnnfast's configuration (version, SIMD path, threads, compiler)",
                          description="Print cnnfast.show_config().")
    for p in (train, bench, info):
        p.set_defaults(subparser=p)
    return parser


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed by argparse
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    command = args.command
    try:
        if command == "train":
            from .train import run as run_train
            return run_train(args)
        if command == "bench":
            from .bench import run as run_bench
            return run_bench(args)
        if command == "info":
            import cnnfast
            cnnfast.show_config()
            return 0
    except UsageError as e:
        try:
            args.subparser.error(str(e))  # prints usage and "cnnfast CMD: error: ..." like argparse
        except SystemExit as exit_:
            return exit_.code
    except KeyboardInterrupt:
        print(f"cnnfast {command}: interrupted", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {command!r}")  # argparse only allows the three above
