"""Run data-parallel training scenarios under mpirun and save what every rank ends with.

    mpirun -n 2 python tests/mpi_scripts/train_worker.py SCENARIOS.json OUT_DIR

SCENARIOS.json is a list of dicts (see tests/test_distributed.py). For each scenario every rank
writes OUT_DIR/<name>.rank<r>.npz (final weights) and OUT_DIR/<name>.rank<r>.json (history and
counters). Models are built with seed 1000 + rank, so the ranks start from different weights and
only the broadcast from rank 0 makes them agree.
"""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

import cnnfast
from cnnfast import callbacks as cbs
from cnnfast import distributed as dist

from common import make_data, make_model


def save(out, name, model, **info):
    r = dist.rank()
    np.savez(out / f"{name}.rank{r}.npz", *model.get_weights())
    info.setdefault("iterations", int(model.optimizer.iterations))
    (out / f"{name}.rank{r}.json").write_text(json.dumps(info))


def run_fit(spec, out):
    x, y = make_data(spec["n"])
    model = make_model(1000 + dist.rank(), spec.get("optimizer", "adam"), spec.get("batchnorm", False),
                       dropout=spec.get("dropout", False))
    kwargs = {k: spec[k] for k in ("batch_size", "epochs", "validation_split", "shuffle", "seed",
                                   "steps_per_epoch", "validation_freq", "validation_batch_size",
                                   "validation_steps", "initial_epoch") if k in spec}
    if spec.get("sample_weight"):
        kwargs["sample_weight"] = np.linspace(0.2, 2.0, len(x))
    if spec.get("class_weight"):
        kwargs["class_weight"] = {0: 2.0, 1: 0.5, 2: 1.0, 3: 1.5}
    if "validation_n" in spec:
        xv, yv = make_data(spec["validation_n"], seed=99)
        kwargs["validation_data"] = (xv, yv)
    history = dist.fit(model, x, y, verbose=0, **kwargs)
    save(out, spec["name"], model, history=history.history, epochs=history.epoch)


def run_horovod(spec, out):
    """The Horovod recipe with plain Model.fit: own shard per rank, wrapped optimizer, callbacks."""
    x, y = make_data(spec["n"])
    model = make_model(1000 + dist.rank(), spec.get("optimizer", "adam"))
    model.compile(optimizer=dist.DistributedOptimizer(model.optimizer), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    plan = dist.shard_plan(len(x), spec["batch_size"], rank=dist.rank(), size=dist.size(), shuffle=False)
    history = model.fit(x[plan.indices], y[plan.indices], batch_size=plan.batch_size, epochs=spec["epochs"],
                        shuffle=False, verbose=0,
                        callbacks=[dist.BroadcastGlobalVariablesCallback(0), dist.MetricAverageCallback()])
    save(out, spec["name"], model, history=history.history)


class _StopOnRank(cbs.Callback):
    """Requests a stop on one rank only: after a batch or at the end of an epoch."""

    def __init__(self, rank, batch=None, epoch=None):
        super().__init__()
        self.rank, self.batch, self.epoch = rank, batch, epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.batch is not None and dist.rank() == self.rank and batch == self.batch:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.epoch is not None and dist.rank() == self.rank and epoch == self.epoch:
            self.model.stop_training = True


def run_stop(spec, out):
    x, y = make_data(spec["n"])
    model = make_model(1000 + dist.rank())
    stop = _StopOnRank(spec["stop_rank"], spec.get("stop_batch"), spec.get("stop_epoch"))
    history = dist.fit(model, x, y, batch_size=spec["batch_size"], epochs=spec["epochs"], verbose=0,
                       callbacks=[stop], seed=3)
    save(out, spec["name"], model, history=history.history, epochs=history.epoch)


def run_warmup(spec, out):
    x, y = make_data(spec["n"])
    model = make_model(1000 + dist.rank(), "sgd")
    lrs = []
    record = cbs.LambdaCallback(on_train_batch_begin=lambda batch, logs: lrs.append(model.optimizer.learning_rate))
    warm = dist.LearningRateWarmupCallback(initial_lr=0.08, warmup_epochs=spec["warmup_epochs"])
    dist.fit(model, x, y, batch_size=spec["batch_size"], epochs=spec["epochs"], verbose=0, seed=1,
             callbacks=[warm, record])
    save(out, spec["name"], model, lrs=lrs)


def run_evaluate(spec, out):
    x, y = make_data(spec["n"], seed=5)
    model = make_model(1000 + dist.rank(), metrics=("accuracy", "sparse_categorical_crossentropy"))
    dist.broadcast_weights(model)
    result = dist.evaluate(model, x, y, batch_size=spec["batch_size"], verbose=0, return_dict=True)
    save(out, spec["name"], model, result=result)


def run_fail(spec, out):
    """Rank ``fail_rank`` raises inside fit (a callback) or at top level, after ``after`` steps."""
    x, y = make_data(64)
    model = make_model(1000 + dist.rank())
    if spec["where"] == "script":
        if dist.rank() == spec["fail_rank"]:
            raise RuntimeError("deliberate failure outside fit on this rank")
        dist.barrier()  # the other ranks wait here for a rank that will never come

    def boom(batch, logs):
        if dist.rank() == spec["fail_rank"] and batch == spec["after"]:
            raise ValueError("deliberate failure inside fit on this rank")

    dist.fit(model, x, y, batch_size=8, epochs=50, verbose=0, callbacks=[cbs.LambdaCallback(on_train_batch_end=boom)])


def run_mismatch(spec, out):
    """Rank 1 passes a different data set (its own part, as in a Horovod script): a clear error."""
    x, y = make_data(64, seed=7 + dist.rank())
    dist.fit(make_model(1000), x, y, batch_size=8, verbose=0)


RUNNERS = {"fit": run_fit, "horovod": run_horovod, "stop": run_stop, "warmup": run_warmup,
           "evaluate": run_evaluate, "fail": run_fail, "mismatch": run_mismatch}


def main():
    specs = json.loads(pathlib.Path(sys.argv[1]).read_text())
    out = pathlib.Path(sys.argv[2])
    group = dist.init()
    assert cnnfast.get_num_threads() == 1, cnnfast.get_num_threads()
    for spec in specs:
        RUNNERS[spec.get("kind", "fit")](spec, out)
    if group.rank == 0:
        (out / "done").write_text(json.dumps({"size": group.size, "backend": group.backend,
                                              "cpu_sharing": group.cpu_sharing}))


if __name__ == "__main__":
    main()
