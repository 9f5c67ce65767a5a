"""Image augmentation layers: cnnfast vs torchvision.transforms.v2 on batched tensors; prints a
table of median milliseconds per batch, images per second and the throughput ratio.

    python benchmarks/bench_augmentation.py [--threads 1 2] [--batch 64] [--size 224] [--repeats 9] [--eager]

Method: the same float32 batch, NHWC (cnnfast's layout) and NCHW (torchvision's); each timing is
the median of ``--repeats`` calls after one warm-up, cnnfast and torchvision interleaved call by
call so a noisy neighbour slows both alike. Thread counts are pinned for both libraries
(``cnnfast.set_num_threads``, ``torch.set_num_threads``). cnnfast's layers run as ``fit`` runs
them (``layer.forward(x, training=True, ctx)`` with the call site's ``ctx`` kept, so the output
buffer is reused from step to step); ``--eager`` times ``layer(x, training=True)`` instead, which
allocates a new output each call, as torchvision's transforms do.

The pairs do the same work per pixel, with one difference of principle: torchvision's v2
transforms draw one set of parameters for the whole batch (one angle, one zoom, one flip
decision), cnnfast's layers one per image, as Keras's do. Details:
  * flip: cnnfast RandomFlip("horizontal") flips about half the images (and copies the rest);
    torchvision RandomHorizontalFlip(p=1) always flips the batch (its p=0.5 would skip half the
    calls);
  * rotation / zoom / translation: bilinear, constant fill on both sides (torchvision has no
    reflect fill; cnnfast's default reflect costs the same inside the image);
  * contrast: torchvision ColorJitter(contrast) blends with the grey-level mean, cnnfast with
    each channel's mean (Keras's formula); both clip to [0, 1];
  * resize: bilinear, no antialiasing, 224 -> 160.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import cnnfast
from cnnfast import layers


def import_torchvision_v2():
    """``torchvision.transforms.v2`` or None. torchvision's compiled ops need CUDA libraries that
    the CPU build of torch lacks; its transforms are Python on torch ops, so registering those
    ops' fake kernels is made a no-op while it imports."""
    try:
        import torch
    except ImportError:
        return None, None
    original = torch.library.register_fake
    torch.library.register_fake = lambda *args, **kwargs: (lambda fn: fn)
    try:
        import torchvision.transforms.v2 as v2
    except Exception:  # not installed, or an incompatible build
        return torch, None
    finally:
        torch.library.register_fake = original
    return torch, v2


def cases(v2, size):
    """(name, cnnfast layer, torchvision transform or None)."""
    bilinear = v2.InterpolationMode.BILINEAR if v2 else None
    out = int(round(size * 160 / 224))
    return [
        ("RandomFlip", layers.RandomFlip("horizontal", seed=1), v2 and v2.RandomHorizontalFlip(p=1.0)),
        ("RandomRotation", layers.RandomRotation(0.1, fill_mode="constant", seed=1),
         v2 and v2.RandomRotation(36, interpolation=bilinear, fill=0)),
        ("RandomZoom", layers.RandomZoom(0.2, fill_mode="constant", seed=1),
         v2 and v2.RandomAffine(degrees=0, scale=(0.8, 1.2), interpolation=bilinear, fill=0)),
        ("RandomTranslation", layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=1),
         v2 and v2.RandomAffine(degrees=0, translate=(0.1, 0.1), interpolation=bilinear, fill=0)),
        ("RandomContrast", layers.RandomContrast((0.2, 0.2), value_range=(0, 1), seed=1),
         v2 and v2.ColorJitter(contrast=(0.8, 1.2))),
        (f"Resizing {size}->{out}", layers.Resizing(out, out),
         v2 and v2.Resize((out, out), interpolation=bilinear, antialias=False)),
    ]


def timed(fn, repeats, clock=time.perf_counter):
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--eager", action="store_true", help="time layer(x) calls (a new output each call)")
    args = parser.parse_args(argv)

    torch, v2 = import_torchvision_v2()
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, args.size, args.size, 3), dtype=np.float32)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))) if torch is not None else None
    print(f"{args.batch} images of {args.size}x{args.size}x3 float32, median of {args.repeats}; "
          f"cnnfast ISA {cnnfast.get_isa()}, {'eager calls' if args.eager else 'as in fit'}"
          + ("" if v2 else "; torchvision not available"))
    header = f"{'layer':<22}{'threads':>8}{'cnnfast ms':>12}{'img/s':>9}{'tv2 ms':>10}{'img/s':>9}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for threads in args.threads:
        cnnfast.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        for name, layer, transform in cases(v2, args.size):
            ctx = {}
            ours = (lambda: layer(x, training=True)) if args.eager else (lambda: layer.forward(x, True, ctx))  # noqa: E731
            theirs = (lambda: transform(xt)) if transform is not None else None   # noqa: E731
            ours()
            if theirs:
                theirs()
            t_ours, t_theirs = [], []
            for _ in range(args.repeats):   # interleaved, one call each
                t_ours += timed(ours, 1)
                if theirs:
                    t_theirs += timed(theirs, 1)
            ms = 1e3 * statistics.median(t_ours)
            row = f"{name:<22}{threads:>8}{ms:>12.2f}{args.batch / ms * 1e3:>9.0f}"
            if theirs:
                ms_tv = 1e3 * statistics.median(t_theirs)
                row += f"{ms_tv:>10.2f}{args.batch / ms_tv * 1e3:>9.0f}{ms_tv / ms:>7.2f}x"
            print(row, flush=True)


if __name__ == "__main__":
    main()
