"""The tutorial models for the whole-model benchmarks, in cnnfast, PyTorch, Keras 3 and plain NumPy.

Design. One description per model (:data:`MODELS`) gives the layers, the input, the epoch size
and, from the layer shapes, the FLOP counts; each framework builds the *same* network from it and
starts from the *same* weights (Keras ``glorot_uniform`` kernels and zero biases, drawn here from
a seeded NumPy generator and copied into every framework), so the frameworks do identical
arithmetic and their outputs agree to float32 rounding (``tests/test_benchmarks_smoke.py``
checks it). The cnnfast MNIST model is ``cnnfast.zoo.mnist_cnn()`` itself; the CIFAR model (the
issue's Conv 32 / 64 / 128 + Dense 128) is built from cnnfast layers here, as ``cnnfast.zoo`` has
no such model.

Every framework is driven the way its users drive it:

* cnnfast and Keras (torch backend): ``compile(optimizer="adam",
  loss="sparse_categorical_crossentropy", metrics=["accuracy"])``, ``fit(batch_size=64,
  shuffle=True, verbose=0)``, ``predict(batch_size=...)`` and ``predict_on_batch`` for batch 1;
* PyTorch: ``channels_last`` modules, logits + ``CrossEntropyLoss``, its own eager loop
  (``zero_grad(set_to_none=True)``, forward, loss, ``backward``, ``Adam.step``) over a shuffled
  index (``randperm``) gathering each batch, ``torch.inference_mode()`` for inference;
* NumPy: a plain implementation (im2col convolution from ``compare_conv2d.py``, reshape max-pool,
  ``@`` dense layers, softmax cross-entropy and Adam written out), the CNN-from-scratch baseline.

Adam everywhere: learning rate 1e-3, betas (0.9, 0.999), epsilon 1e-7 (Keras's default, also
given to PyTorch). Threads: ``cnnfast.set_num_threads(n)``, ``torch.set_num_threads(n)`` (also
Keras's), and the BLAS of NumPy through the environment of the worker process.

The module is also the worker that measures one framework in a fresh process
(``python benchmarks/_models.py '<json config>'`` prints one JSON line); ``compare.py`` and
``bench_memory.py`` start it, so each framework is timed and its peak RSS read (``ru_maxrss``)
without the others loaded.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import resource
import statistics
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent

__all__ = ["MODELS", "ModelSpec", "FRAMEWORKS", "Unavailable", "init_weights", "make_data",
           "make_harness", "available_frameworks", "measure_model", "measure_memory", "run_worker",
           "worker_command"]

FRAMEWORKS = ("cnnfast", "torch", "keras", "numpy")
LEARNING_RATE, BETA_1, BETA_2, EPSILON = 1e-3, 0.9, 0.999, 1e-7


class Unavailable(RuntimeError):
    """The framework is not installed (or cannot run the model) in this environment."""


# --------------------------------------------------------------------------------------------
# Model descriptions and FLOP counts


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A tutorial CNN: 3x3 'valid' ReLU convolutions, 2x2 max-pools, Flatten, ReLU dense layers,
    softmax output (logits + CrossEntropyLoss in PyTorch)."""

    name: str
    title: str
    input_shape: tuple          # (H, W, C)
    layers: tuple               # ("conv", filters) | ("pool",) | ("flatten",) | ("dense", units)
    classes: int
    samples_per_epoch: int      # the training set a tutorial epoch runs over

    def shapes(self):
        """[(kind, in_shape, out_shape)] per layer, batch axis left out."""
        out, shape = [], tuple(self.input_shape)
        for layer in self.layers:
            kind = layer[0]
            if kind == "conv":
                h, w, _ = shape
                new = (h - 2, w - 2, layer[1])
            elif kind == "pool":
                h, w, c = shape
                new = (h // 2, w // 2, c)
            elif kind == "flatten":
                new = (int(np.prod(shape)),)
            elif kind == "dense":
                new = (layer[1],)
            else:
                raise ValueError(f"unknown layer kind {kind!r}")
            out.append((kind, shape, new))
            shape = new
        return out

    def layer_flops(self):
        """[(kind, in_shape, out_shape, forward FLOPs per sample)]: 2 x multiply-adds of the
        convolutions (direct count) and dense layers; pooling and element-wise work count 0."""
        rows = []
        for kind, s_in, s_out in self.shapes():
            if kind == "conv":
                flops = 2 * s_out[0] * s_out[1] * s_out[2] * 9 * s_in[2]
            elif kind == "dense":
                flops = 2 * s_in[0] * s_out[0]
            else:
                flops = 0
            rows.append((kind, s_in, s_out, flops))
        return rows

    def forward_flops(self) -> float:
        """Forward FLOPs per sample."""
        return float(sum(r[3] for r in self.layer_flops()))

    def train_flops(self) -> float:
        """FLOPs per sample of one training step: forward, weight gradients, and input gradients
        of every weighted layer but the first (whose input is the data)."""
        total, first = 0.0, True
        for kind, _, _, flops in self.layer_flops():
            if flops:
                total += flops * (2 if first else 3)
                first = False
        return total

    def param_shapes(self):
        """Weight shapes in Keras layout (HWIO kernels, (in, out) dense kernels, then biases)."""
        shapes = []
        for kind, s_in, s_out in self.shapes():
            if kind == "conv":
                shapes += [(3, 3, s_in[2], s_out[2]), (s_out[2],)]
            elif kind == "dense":
                shapes += [(s_in[0], s_out[0]), (s_out[0],)]
        return shapes

    def n_params(self) -> int:
        return int(sum(np.prod(s) for s in self.param_shapes()))

    def steps_per_epoch(self, batch: int) -> int:
        return math.ceil(self.samples_per_epoch / batch)


_MNIST_LAYERS = (("conv", 32), ("pool",), ("conv", 64), ("pool",), ("conv", 64), ("flatten",),
                 ("dense", 64), ("dense", 10))
_CIFAR_LAYERS = (("conv", 32), ("pool",), ("conv", 64), ("pool",), ("conv", 128), ("flatten",),
                 ("dense", 128), ("dense", 10))

MODELS = {
    "mnist": ModelSpec("mnist", "MNIST tutorial CNN (cnnfast.zoo.mnist_cnn)", (28, 28, 1),
                       _MNIST_LAYERS, 10, 60_000),
    "cifar": ModelSpec("cifar", "CIFAR-10 CNN (Conv 32/64/128, Dense 128)", (32, 32, 3),
                       _CIFAR_LAYERS, 10, 50_000),
}


def init_weights(spec: ModelSpec, seed: int = 0):
    """Keras's default initial weights, reproducibly: glorot_uniform kernels, zero biases."""
    rng = np.random.default_rng(seed)
    weights = []
    for shape in spec.param_shapes():
        if len(shape) == 1:
            weights.append(np.zeros(shape, np.float32))
            continue
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        weights.append(rng.uniform(-limit, limit, shape).astype(np.float32))
    return weights


def make_data(spec: ModelSpec, n: int, seed: int = 1):
    """``n`` synthetic samples shaped like the data set: float32 NHWC images in [0, 1) (the
    tutorial's ``x / 255``) and int64 labels. Timings do not depend on the pixel values."""
    rng = np.random.default_rng(seed)
    x = rng.random((n,) + tuple(spec.input_shape), dtype=np.float32)
    y = rng.integers(0, spec.classes, n)
    return x, y


# --------------------------------------------------------------------------------------------
# One harness per framework: build, train (fit-like loop, per-step times), predict


def _step_timer(base):
    """A callback class (subclass of the framework's ``base``) recording each step's end time."""

    class StepTimer(base):
        def __init__(self):
            super().__init__()
            self.marks = []

        def on_train_batch_begin(self, batch, logs=None):
            if not self.marks:
                self.marks.append(time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            self.marks.append(time.perf_counter())

        def step_times(self):
            return list(np.diff(self.marks))

    return StepTimer


class CnnfastHarness:
    framework = "cnnfast"

    def __init__(self, spec: ModelSpec, weights, threads: int | None = None, batch: int = 64):
        import cnnfast

        if threads:
            cnnfast.set_num_threads(threads)
        self.spec, self.batch = spec, batch
        self.model = build_cnnfast(spec)
        self.model.set_weights(weights)
        self.model.compile(optimizer=cnnfast.optimizers.Adam(LEARNING_RATE, BETA_1, BETA_2, EPSILON),
                           loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        self._timer = _step_timer(cnnfast.callbacks.Callback)

    def prepare(self, x, y):
        return x, y

    def fit(self, data, seed: int = 0):
        """One epoch of ``model.fit`` over ``data``; returns the per-step seconds."""
        np.random.seed(seed)
        timer = self._timer()
        self.model.fit(data[0], data[1], batch_size=self.batch, epochs=1, shuffle=True, verbose=0,
                       callbacks=[timer])
        return timer.step_times()

    def train_step(self, data):
        self.model.train_on_batch(data[0], data[1])

    def predict(self, x):
        return self.model.predict(x, batch_size=len(x), verbose=0)

    def predict_on_batch(self, x):
        return self.model.predict_on_batch(x)

    def to_numpy(self, out):
        return np.asarray(out)


class KerasHarness(CnnfastHarness):
    framework = "keras"

    def __init__(self, spec: ModelSpec, weights, threads: int | None = None, batch: int = 64):
        keras, torch = import_keras()
        if threads:
            torch.set_num_threads(threads)
        self.spec, self.batch = spec, batch
        self.model = build_keras(spec)
        self.model.set_weights(weights)
        self.model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE, BETA_1, BETA_2, EPSILON),
                           loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        self._timer = _step_timer(keras.callbacks.Callback)

    def to_numpy(self, out):
        return out.detach().cpu().numpy() if hasattr(out, "detach") else np.asarray(out)


class TorchHarness:
    framework = "torch"

    def __init__(self, spec: ModelSpec, weights, threads: int | None = None, batch: int = 64):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.torch, self.spec, self.batch = torch, spec, batch
        self.net = build_torch(spec, weights)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=LEARNING_RATE, betas=(BETA_1, BETA_2),
                                    eps=EPSILON)
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def to_tensor(self, x):
        """NHWC float32 array -> NCHW tensor in channels_last memory (a view, no copy)."""
        return self.torch.from_numpy(np.ascontiguousarray(x, np.float32)).permute(0, 3, 1, 2)

    def prepare(self, x, y):
        return self.to_tensor(x), self.torch.from_numpy(np.asarray(y, np.int64))

    def _step(self, xb, yb):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.net(xb), yb)
        loss.backward()
        self.opt.step()
        return loss

    def fit(self, data, seed: int = 0):
        """One epoch of PyTorch's eager loop over shuffled batches; returns per-step seconds."""
        torch = self.torch
        x, y = data
        n = x.shape[0]
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        self.net.train()
        marks = [time.perf_counter()]
        for start in range(0, n, self.batch):
            idx = perm[start:start + self.batch]
            xb = x.index_select(0, idx).contiguous(memory_format=torch.channels_last)
            self._step(xb, y.index_select(0, idx))
            marks.append(time.perf_counter())
        return list(np.diff(marks))

    def train_step(self, data):
        self.net.train()
        self._step(*data)

    def predict(self, x):
        with self.torch.inference_mode():
            self.net.eval()
            return self.net(x)

    predict_on_batch = predict

    def to_numpy(self, out):
        return self.torch.softmax(out, dim=1).numpy()


class NumpyHarness:
    """The network in plain NumPy: im2col + BLAS convolutions (``compare_conv2d``'s), reshape
    max-pooling with an argmax (first maximum) per window, dense layers with ``@``, softmax cross-entropy and the
    Keras Adam update written out."""

    framework = "numpy"

    def __init__(self, spec: ModelSpec, weights, threads: int | None = None, batch: int = 64):
        if threads and "_peak" not in sys.modules:
            try:
                sys.path.insert(0, str(HERE))
                from _peak import set_blas_threads
                set_blas_threads(threads)
            except Exception:  # the environment of the worker pins the BLAS already
                pass
        self.cc = _compare_conv2d()
        self.spec, self.batch = spec, batch
        self.params = [np.array(w, np.float32) for w in weights]
        self.m = [np.zeros_like(w) for w in self.params]
        self.v = [np.zeros_like(w) for w in self.params]
        self.t = 0

    def prepare(self, x, y):
        return x, np.asarray(y, np.int64)

    def _forward(self, x, keep):
        cache, p = [], 0
        for kind, _, _ in self.spec.shapes():
            if kind == "conv":
                w, b = self.params[p], self.params[p + 1]
                y, cols = self.cc.numpy_forward(x, w, b, "valid")
                y = np.maximum(y, 0, out=y)  # numpy_forward is the plain convolution + bias
                cache.append((kind, p, x, y, cols if keep else None))
                x, p = y, p + 2
            elif kind == "pool":
                n, h, w_, c = x.shape
                win = x[:, : h // 2 * 2, : w_ // 2 * 2].reshape(n, h // 2, 2, w_ // 2, 2, c)
                if keep:  # windows as a last axis of 4: argmax = first maximum, as the frameworks
                    win = win.transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w_ // 2, c, 4)
                    am = win.argmax(axis=-1)[..., None]
                    y = np.take_along_axis(win, am, axis=-1)[..., 0]
                else:
                    y, am = win.max(axis=(2, 4)), None
                cache.append((kind, x.shape, am, None, None))
                x = y
            elif kind == "flatten":
                cache.append((kind, x.shape, None, None, None))
                x = x.reshape(x.shape[0], -1)
            else:
                w, b = self.params[p], self.params[p + 1]
                last = p + 2 == len(self.params)
                y = x @ w + b
                if not last:
                    np.maximum(y, 0, out=y)
                cache.append((kind, p, x, y, last))
                x, p = y, p + 2
        return x, cache

    def _backward(self, dz, cache):
        grads = [None] * len(self.params)
        g = dz
        for i in range(len(cache) - 1, -1, -1):
            kind, a, b, c, d = cache[i]
            if kind == "dense":
                p, x, y, last = a, b, c, d
                if not last:
                    g = g * (y > 0)
                grads[p], grads[p + 1] = x.T @ g, g.sum(axis=0)
                g = g @ self.params[p].T
            elif kind == "flatten":
                g = g.reshape(a)
            elif kind == "pool":
                shape, am = a, b
                n, h2, w2, ch = g.shape
                dwin = np.zeros((n, h2, w2, ch, 4), np.float32)
                np.put_along_axis(dwin, am, g[..., None], axis=-1)
                dx = np.zeros(shape, np.float32)
                dx[:, : h2 * 2, : w2 * 2] = (dwin.reshape(n, h2, w2, ch, 2, 2).transpose(0, 1, 4, 2, 5, 3)
                                             .reshape(n, h2 * 2, w2 * 2, ch))
                g = dx
            else:
                p, x, y, cols = a, b, c, d
                dx, grads[p], grads[p + 1] = self.cc.numpy_backward(g * (y > 0), cols, x, self.params[p],
                                                                    "valid", i > 0)
                g = dx
        return grads

    def _adam(self, grads):
        self.t += 1
        alpha = LEARNING_RATE * math.sqrt(1 - BETA_2 ** self.t) / (1 - BETA_1 ** self.t)
        for w, g, m, v in zip(self.params, grads, self.m, self.v):
            m += (g - m) * np.float32(1 - BETA_1)
            v += (g * g - v) * np.float32(1 - BETA_2)
            w -= np.float32(alpha) * m / (np.sqrt(v) + np.float32(EPSILON))

    def _step(self, x, y):
        z, cache = self._forward(x, True)
        zmax = z.max(axis=1, keepdims=True)
        e = np.exp(z - zmax)
        probs = e / e.sum(axis=1, keepdims=True)
        n = z.shape[0]
        loss = float(-np.mean(np.log(probs[np.arange(n), y] + 1e-30)))
        probs[np.arange(n), y] -= 1.0
        self._adam(self._backward(probs / n, cache))
        return loss

    def fit(self, data, seed: int = 0):
        x, y = data
        perm = np.random.default_rng(seed).permutation(x.shape[0])
        marks = [time.perf_counter()]
        for start in range(0, x.shape[0], self.batch):
            idx = perm[start:start + self.batch]
            self._step(x[idx], y[idx])
            marks.append(time.perf_counter())
        return list(np.diff(marks))

    def train_step(self, data):
        self._step(*data)

    def predict(self, x):
        z = self._forward(x, False)[0]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    predict_on_batch = predict

    def to_numpy(self, out):
        return out


def _compare_conv2d():
    """``benchmarks/compare_conv2d.py`` (its NumPy im2col convolution), imported without
    loading PyTorch into a process that does not otherwise use it."""
    if "compare_conv2d" in sys.modules:
        return sys.modules["compare_conv2d"]
    sys.path.insert(0, str(HERE))
    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None  # `import torch` raises ImportError inside compare_conv2d
    try:
        import compare_conv2d
    finally:
        if blocked:
            del sys.modules["torch"]
    return compare_conv2d


def build_cnnfast(spec: ModelSpec):
    """The cnnfast model: ``cnnfast.zoo.mnist_cnn()`` for MNIST, else Sequential from the spec."""
    from cnnfast import layers, models, zoo

    if spec.name == "mnist":
        return zoo.mnist_cnn(spec.input_shape, spec.classes)
    stack = [layers.Input(shape=spec.input_shape)]
    dense = [l for l in spec.layers if l[0] == "dense"]
    for layer in spec.layers:
        if layer[0] == "conv":
            stack.append(layers.Conv2D(layer[1], (3, 3), activation="relu"))
        elif layer[0] == "pool":
            stack.append(layers.MaxPooling2D((2, 2)))
        elif layer[0] == "flatten":
            stack.append(layers.Flatten())
        else:
            stack.append(layers.Dense(layer[1], activation="softmax" if layer is dense[-1] else "relu"))
    return models.Sequential(stack, name=f"{spec.name}_cnn")


def import_keras():
    """Keras 3 on the torch backend, or :class:`Unavailable`."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"
    try:
        import warnings

        import keras
        import torch
        # Keras's torch backend converts with np.array(tensor) (a NumPy 2 DeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"keras\.")
    except Exception as e:  # not installed, or broken
        raise Unavailable(f"Keras 3 with the torch backend is not installed ({type(e).__name__}: {e})")
    backend = keras.backend.backend()
    if backend != "torch":
        raise Unavailable(f"Keras was already imported with the {backend!r} backend; the benchmarks "
                          "run it on torch (KERAS_BACKEND=torch)")
    return keras, torch


def build_keras(spec: ModelSpec):
    keras, _ = import_keras()
    L = keras.layers
    stack = [keras.Input(shape=spec.input_shape)]
    dense = [l for l in spec.layers if l[0] == "dense"]
    for layer in spec.layers:
        if layer[0] == "conv":
            stack.append(L.Conv2D(layer[1], (3, 3), activation="relu"))
        elif layer[0] == "pool":
            stack.append(L.MaxPooling2D((2, 2)))
        elif layer[0] == "flatten":
            stack.append(L.Flatten())
        else:
            stack.append(L.Dense(layer[1], activation="softmax" if layer is dense[-1] else "relu"))
    return keras.Sequential(stack)


def build_torch(spec: ModelSpec, weights=None):
    """The PyTorch module (logits out), channels_last, with ``weights`` (Keras layout) copied in.
    The first Linear after Flatten gets its rows reordered from Keras's H,W,C flattening to
    PyTorch's C,H,W."""
    import torch

    nn = torch.nn
    mods, shapes, pending = [], spec.shapes(), []
    dense = [l for l in spec.layers if l[0] == "dense"]
    flat_from = None
    for (kind, s_in, s_out), layer in zip(shapes, spec.layers):
        if kind == "conv":
            mods += [nn.Conv2d(s_in[2], s_out[2], 3), nn.ReLU()]
            pending.append(("conv", mods[-2], None))
        elif kind == "pool":
            mods.append(nn.MaxPool2d(2))
        elif kind == "flatten":
            mods.append(nn.Flatten())
            flat_from = s_in
        else:
            mods.append(nn.Linear(s_in[0], s_out[0]))
            pending.append(("dense", mods[-1], flat_from))
            flat_from = None
            if layer is not dense[-1]:
                mods.append(nn.ReLU())
    net = nn.Sequential(*mods)
    if weights is not None:
        with torch.no_grad():
            for (kind, mod, chw), (kernel, bias) in zip(pending, zip(weights[0::2], weights[1::2])):
                if kind == "conv":
                    w = kernel.transpose(3, 2, 0, 1)                        # HWIO -> OIHW
                else:
                    w = kernel.T                                            # (in, out) -> (out, in)
                    if chw is not None:                                     # rows H,W,C -> C,H,W
                        h, w_, c = chw
                        w = w.reshape(-1, h, w_, c).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
                mod.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
                mod.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias)))
    return net.to(memory_format=torch.channels_last)


_HARNESSES = {"cnnfast": CnnfastHarness, "torch": TorchHarness, "keras": KerasHarness,
              "numpy": NumpyHarness}


def make_harness(framework: str, spec: ModelSpec, threads: int | None = None, batch: int = 64,
                 seed: int = 0):
    """The harness of ``framework`` for ``spec`` starting from :func:`init_weights`; raises
    :class:`Unavailable` when the framework is not installed."""
    if framework not in _HARNESSES:
        raise ValueError(f"unknown framework {framework!r}; expected one of {FRAMEWORKS}")
    if framework == "torch":
        try:
            import torch  # noqa: F401
        except Exception as e:
            raise Unavailable(f"PyTorch is not installed ({type(e).__name__}: {e})")
    return _HARNESSES[framework](spec, init_weights(spec, seed), threads=threads, batch=batch)


def available_frameworks(requested=FRAMEWORKS):
    """({framework: None}, {framework: reason}) for the frameworks importable here (no import)."""
    import importlib.util

    ok, missing = [], {}
    for fw in requested:
        mod = {"cnnfast": "cnnfast", "torch": "torch", "keras": "keras", "numpy": "numpy"}[fw]
        if importlib.util.find_spec(mod) is None:
            missing[fw] = f"{mod} is not installed"
        elif fw == "keras" and importlib.util.find_spec("torch") is None:
            missing[fw] = "Keras runs on the torch backend here, and torch is not installed"
        else:
            ok.append(fw)
    return ok, missing


# --------------------------------------------------------------------------------------------
# Measurements (run in a fresh worker process per framework)


def _rss_now_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return float("nan")


def _maxrss_mb() -> float:
    """Peak resident set of this process so far (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 2**10


def _median_call(fn, min_calls: int, seconds: float, max_calls: int = 100_000):
    """Median seconds per call over at least ``min_calls`` calls and about ``seconds``."""
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_calls or (time.perf_counter() < deadline and len(times) < max_calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def measure_model(cfg: dict) -> dict:
    """Time one framework on one model: training steps (fit-like epoch loop), optionally a full
    epoch, batch inference throughput, batch-1 latency. ``cfg`` keys: framework, model, threads,
    batch, steps, warmup, full, infer_batch, infer_repeats, latency_seconds, seed."""
    spec = MODELS[cfg["model"]]
    fw, batch, threads = cfg["framework"], int(cfg.get("batch", 64)), int(cfg["threads"])
    t0 = time.perf_counter()
    h = make_harness(fw, spec, threads=threads, batch=batch, seed=int(cfg.get("seed", 0)))
    setup_s = time.perf_counter() - t0
    steps, warmup = int(cfg.get("steps", 30)), int(cfg.get("warmup", 3))
    x, y = make_data(spec, max(steps, warmup) * batch, seed=1)
    out = {"framework": fw, "model": spec.name, "threads": threads, "batch": batch, "setup_s": setup_s}

    # training: a warm-up fit (first-call costs: buffers, Keras tracing), then the timed steps
    h.fit(h.prepare(x[: warmup * batch], y[: warmup * batch]), seed=0)
    t0 = time.perf_counter()
    step_s = h.fit(h.prepare(x[: steps * batch], y[: steps * batch]), seed=1)
    wall = time.perf_counter() - t0
    med = statistics.median(step_s)
    spe = spec.steps_per_epoch(batch)
    out["train"] = {
        "steps_timed": len(step_s), "step_ms_median": med * 1e3, "step_ms_mean": wall / len(step_s) * 1e3,
        "step_ms_min": min(step_s) * 1e3, "steps_per_epoch": spe, "epoch_s": med * spe,
        "epoch_method": f"extrapolated: median of {len(step_s)} steps x {spe} steps",
        "samples_per_s": batch / med, "gflops": spec.train_flops() * batch / med / 1e9,
    }
    if cfg.get("full"):
        xf, yf = make_data(spec, spec.samples_per_epoch, seed=2)
        data = h.prepare(xf, yf)
        t0 = time.perf_counter()
        h.fit(data, seed=2)
        epoch = time.perf_counter() - t0
        out["train"].update(epoch_s=epoch, epoch_method=f"measured: one full epoch of "
                                                        f"{spec.samples_per_epoch} samples")
        del xf, yf, data

    # inference: throughput at a large batch, then latency at batch 1
    nb = int(cfg.get("infer_batch", 1024))
    xi = make_data(spec, nb, seed=3)[0]
    xi_t = h.prepare(xi, np.zeros(nb, np.int64))[0]
    h.predict(xi_t)
    ms, calls = _median_call(lambda: h.predict(xi_t), int(cfg.get("infer_repeats", 5)),
                             float(cfg.get("infer_seconds", 2.0)))
    out["infer"] = {"batch": nb, "ms_median": ms * 1e3, "samples_per_s": nb / ms, "calls": calls,
                    "gflops": spec.forward_flops() * nb / ms / 1e9}
    x1 = h.prepare(xi[:1], np.zeros(1, np.int64))[0]
    for _ in range(5):
        h.predict_on_batch(x1)
    s, calls = _median_call(lambda: h.predict_on_batch(x1), int(cfg.get("latency_calls", 50)),
                            float(cfg.get("latency_seconds", 1.0)))
    out["latency"] = {"us_median": s * 1e6, "calls": calls, "floor_flops": spec.forward_flops()}
    return out


def measure_memory(cfg: dict) -> dict:
    """Peak RSS of a training run: import the framework, build and compile the model, train
    ``steps`` steps of ``batch`` on a ``steps * batch`` sample array. Run in a fresh process."""
    spec = MODELS[cfg["model"]]
    fw, batch, threads = cfg["framework"], int(cfg.get("batch", 64)), int(cfg["threads"])
    steps = int(cfg.get("steps", 50))
    base = _maxrss_mb()  # the interpreter and NumPy
    t0 = time.perf_counter()
    if fw == "cnnfast":
        import cnnfast  # noqa: F401
    elif fw == "torch":
        try:
            import torch  # noqa: F401
        except Exception as e:
            raise Unavailable(f"PyTorch is not installed ({e})")
    elif fw == "keras":
        import_keras()
    import_s = time.perf_counter() - t0
    after_import = _rss_now_mb()
    x, y = make_data(spec, steps * batch, seed=1)
    h = make_harness(fw, spec, threads=threads, batch=batch)
    step_s = h.fit(h.prepare(x, y), seed=0)
    return {"framework": fw, "model": spec.name, "threads": threads, "batch": batch, "steps": len(step_s),
            "baseline_mb": base, "import_rss_mb": after_import, "peak_rss_mb": _maxrss_mb(),
            "data_mb": (x.nbytes + y.nbytes) / 2**20, "import_s": import_s}


def run_worker(cfg: dict) -> dict:
    kind = cfg.get("kind", "model")
    try:
        if kind == "model":
            return measure_model(cfg)
        if kind == "memory":
            return measure_memory(cfg)
        raise ValueError(f"unknown worker kind {kind!r}")
    except Unavailable as e:
        return {"framework": cfg.get("framework"), "model": cfg.get("model"),
                "threads": cfg.get("threads"), "unavailable": str(e)}


def worker_command(cfg: dict) -> list:
    """The command line that runs :func:`run_worker` on ``cfg`` in a fresh interpreter."""
    return [sys.executable, str(HERE / "_models.py"), json.dumps(cfg)]


def worker_env(threads: int, base=None) -> dict:
    """Environment for a worker: every threading runtime pinned to ``threads`` from start-up."""
    env = dict(os.environ if base is None else base)
    for key in ("CNNFAST_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = str(threads)
    env["KERAS_BACKEND"] = "torch"
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    return env


if __name__ == "__main__":
    result = run_worker(json.loads(sys.argv[1]))
    sys.stdout.write("\n" + json.dumps(result) + "\n")
