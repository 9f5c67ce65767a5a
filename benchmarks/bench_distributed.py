"""Data-parallel training step: time per step and share spent in communication, 1 and 2 ranks.

The workload is the MNIST tutorial CNN (``cnnfast.zoo.mnist_cnn``, 93,322 parameters, so
373 KB of gradients per step) with Adam, 64 samples per rank per step, on MNIST-shaped inputs.
Each case runs ``mpirun -n RANKS`` of this file in worker mode, which times steps of the real
``cnnfast.distributed.fit`` (warm-up steps first, then the median of the timed steps) and the
same step in PyTorch (DistributedDataParallel over gloo, channels_last, the same model, inputs,
threads and batch); on 1 rank the table adds the plain ``Model.fit`` loop, to show what the
distributed machinery costs when there is nothing to communicate. Three ways of using a 2-core
machine are compared: 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x 1 thread. Each rank
is bound to its own cores (``--map-by slot:PE=<threads> --bind-to core``), idle OpenMP threads
sleep (``OMP_WAIT_POLICY=passive`` unless set), and the cases are interleaved across repeats.

Per case the worker reports, from rank 0:

* ``step_ms``: median wall time of one training step (all ranks step together);
* ``allreduce_ms``: median time inside the gradient all-reduce per step (cnnfast), which includes
  waiting for the slower rank; ``comm_share`` = allreduce_ms / step_ms;
* ``metrics_sync_ms``: median time per step in the small all-reduce of the metric states;
* ``allreduce_alone_ms``: a bare ``MPI_Allreduce`` of a NumPy buffer of the gradient's size
  after a barrier (the transport's cost without waiting: the "NumPy + mpi4py" baseline);
* ``samples_per_s`` (global) and GFLOP/s of the whole step (FLOPs counted from layer shapes);
* the 10th percentile of the step time (best of the runs): what a step costs when no other job
  took a core from a rank, the better guide to a dedicated machine when this one is shared.

    pytest benchmarks/bench_distributed.py --benchmark-only     # one pytest-benchmark entry per case
    python benchmarks/bench_distributed.py                      # the comparison table (markdown)
    python benchmarks/bench_distributed.py --steps 60 --repeats 3

The pytest-benchmark time of an entry is the wall time of the whole ``mpirun`` (start-up
included); the per-step figures are in its ``extra_info``. Needs ``mpirun`` and ``mpi4py``
(skipped otherwise); PyTorch cases are skipped when torch is not installed. As root, the
launcher adds ``--allow-run-as-root``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.abspath(__file__)
PER_RANK_BATCH = 64
CASES = [(1, 1), (1, 2), (2, 1)]  # (ranks, threads per rank) on a 2-core machine


# -- FLOPs of one training step of the MNIST CNN ----------------------------------------------------
def mnist_cnn_train_flops(batch: int) -> float:
    """Multiply-adds x 2 of forward + backward (data and weights) of zoo.mnist_cnn; the first
    convolution needs no input gradient. Pooling, activations and the loss are not counted."""
    convs = [(26, 26, 3 * 3 * 1, 32), (11, 11, 3 * 3 * 32, 64), (3, 3, 3 * 3 * 64, 64)]  # (Ho, Wo, K, Cout)
    dense = [(576, 64), (64, 10)]
    fwd = [2 * h * w * k * c for h, w, k, c in convs] + [2 * i * o for i, o in dense]
    total = sum(3 * f for f in fwd) - fwd[0]
    return float(total * batch)


# -- worker (runs under mpirun) -----------------------------------------------------------------------
def _inputs(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n)


def _allreduce_alone(comm, nbytes, repeats=30):
    from mpi4py import MPI
    buf = np.ones(nbytes // 4, np.float32)
    times = []
    for _ in range(repeats + 3):
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[3:])


def worker_cnnfast(args):
    import cnnfast
    from cnnfast import callbacks, distributed as dist, zoo

    group = dist.init(threads=args.threads)
    size = group.size
    total = args.warmup + args.steps
    x, y = _inputs(total * PER_RANK_BATCH * size)
    cnnfast.utils.set_random_seed(0)
    model = zoo.mnist_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stamps = []  # (time, seconds in the gradient all-reduce, seconds in other collectives) at each step start

    def begin(batch, logs):
        c = dist.comm_stats()
        stamps.append((time.perf_counter(), c["gradients"]["seconds"], c["other"]["seconds"]))

    def end(batch, logs):
        if batch == total - 1:
            begin(batch, logs)

    timer = callbacks.LambdaCallback(on_train_batch_begin=begin, on_train_batch_end=end)
    if args.framework == "cnnfast-model.fit":  # the plain single-process loop, for the overhead of dist.fit
        model.fit(x, y, batch_size=PER_RANK_BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
    else:
        dist.fit(model, x, y, batch_size=PER_RANK_BATCH * size, epochs=1, shuffle=False, verbose=0,
                 callbacks=[timer])
    d = np.diff(np.array(stamps), axis=0)[args.warmup:]
    n_params = model.count_params()
    alone = _allreduce_alone(group.comm, 4 * n_params) if size > 1 else 0.0
    return dict(step_s=float(np.median(d[:, 0])), step_p10_s=float(np.percentile(d[:, 0], 10)),
                allreduce_s=float(np.median(d[:, 1])), allreduce_p10_s=float(np.percentile(d[:, 1], 10)),
                metrics_sync_s=float(np.median(d[:, 2])), allreduce_alone_s=alone,
                gradient_bytes=4 * n_params, threads=cnnfast.get_num_threads(), isa=cnnfast.get_isa())


def worker_torch(args):
    import torch
    import torch.distributed as tdist
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if size > 1:
        import socket
        port = None
        if rank == 0:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        port = comm.bcast(port, root=0)
        tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(), nn.Linear(576, 64),
                          nn.ReLU(), nn.Linear(64, 10)).to(memory_format=torch.channels_last)
    if size > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    total = args.warmup + args.steps
    x, y = _inputs(total * PER_RANK_BATCH * size)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=torch.channels_last)
    yt = torch.from_numpy(y)
    stamps = []
    for step in range(total):
        lo = (step * size + rank) * PER_RANK_BATCH
        stamps.append(time.perf_counter())
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt[lo:lo + PER_RANK_BATCH]), yt[lo:lo + PER_RANK_BATCH])
        loss.backward()
        opt.step()
        if size > 1:  # the logged loss averaged over ranks, as cnnfast's progress bar shows it
            tdist.all_reduce(loss.detach(), op=tdist.ReduceOp.SUM)
    stamps.append(time.perf_counter())
    n_params = sum(p.numel() for p in model.parameters())
    if size > 1:
        tdist.destroy_process_group()
    steps = np.diff(stamps)[args.warmup:]
    return dict(step_s=float(np.median(steps)), step_p10_s=float(np.percentile(steps, 10)), allreduce_s=None,
                allreduce_p10_s=None, metrics_sync_s=None,
                allreduce_alone_s=None, gradient_bytes=4 * n_params, threads=torch.get_num_threads(), isa=None)


def worker_main(args):
    from mpi4py import MPI
    result = (worker_torch if args.framework == "torch" else worker_cnnfast)(args)
    if MPI.COMM_WORLD.Get_rank() == 0:
        result.update(framework=args.framework, ranks=MPI.COMM_WORLD.Get_size(), steps=args.steps)
        with open(args.out, "w") as f:
            json.dump(result, f)


# -- launcher -------------------------------------------------------------------------------------------
def mpi_available() -> bool:
    import importlib.util
    return shutil.which("mpirun") is not None and importlib.util.find_spec("mpi4py") is not None


def torch_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def run_case(framework, ranks, threads, steps=40, warmup=5, timeout=900):
    """Launch one case under mpirun; returns the worker's result dict (rank 0) with derived figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        env = dict(os.environ, CNNFAST_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        # idle OpenMP workers sleep instead of spinning (unless the caller chose): on a machine shared
        # with other jobs a spinning worker loses its core and every barrier waits for a time slice
        env.setdefault("OMP_WAIT_POLICY", "passive")
        # each rank bound to its own `threads` cores: unbound ranks can share a core and wait for each
        # other's time slices inside every collective
        cmd = ["mpirun", "--oversubscribe", "--map-by", f"slot:PE={threads}", "--bind-to", "core", "-n", str(ranks)]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.insert(1, "--allow-run-as-root")
        cmd += [sys.executable, HERE, "worker", "--framework", framework, "--threads", str(threads),
                "--steps", str(steps), "--warmup", str(warmup), "--out", out]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        if proc.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n"
                               f"{proc.stderr[-2000:]}")
        with open(out) as f:
            r = json.load(f)
    global_batch = PER_RANK_BATCH * ranks
    r.update(threads_per_rank=threads, global_batch=global_batch,
             samples_per_s=global_batch / r["step_s"], gflops=mnist_cnn_train_flops(global_batch) / r["step_s"] / 1e9)
    if r["allreduce_s"] is not None and ranks > 1:
        r["comm_share"] = r["allreduce_s"] / r["step_s"]
    return r


# -- pytest-benchmark entries -----------------------------------------------------------------------------
try:
    import pytest
except ImportError:  # the table printer does not need pytest
    pytest = None

if pytest is not None:
    @pytest.mark.skipif(not mpi_available(), reason="needs mpirun and mpi4py")
    @pytest.mark.parametrize("framework", ["cnnfast", "torch"])
    @pytest.mark.parametrize("ranks,threads", CASES, ids=[f"{r}rank-x{t}thr" for r, t in CASES])
    def test_train_step(benchmark, framework, ranks, threads):
        if framework == "torch" and not torch_available():
            pytest.skip("PyTorch is not installed")
        benchmark.group = f"mnist_cnn data-parallel step: {ranks} rank(s) x {threads} thread(s), " \
                          f"{PER_RANK_BATCH}/rank"
        holder = {}

        def launch():
            holder["r"] = run_case(framework, ranks, threads)

        benchmark.pedantic(launch, rounds=1, iterations=1)
        r = holder["r"]
        benchmark.extra_info.update(
            step_ms=round(1e3 * r["step_s"], 2), samples_per_s=round(r["samples_per_s"], 1),
            gflops=round(r["gflops"], 2), gradient_bytes=r["gradient_bytes"],
            allreduce_ms=None if r["allreduce_s"] is None else round(1e3 * r["allreduce_s"], 3),
            allreduce_alone_ms=None if r["allreduce_alone_s"] is None else round(1e3 * r["allreduce_alone_s"], 3),
            metrics_sync_ms=None if r["metrics_sync_s"] is None else round(1e3 * r["metrics_sync_s"], 3),
            comm_share=None if "comm_share" not in r else round(r["comm_share"], 4),
            step_p10_ms=round(1e3 * r["step_p10_s"], 2),
            wall_time_note="the timed value is the whole mpirun, start-up included")


# -- expected scaling on K machines ---------------------------------------------------------------------
NETWORKS = [("1 GbE", 0.117e9, 50e-6), ("10 GbE", 1.17e9, 20e-6), ("100 Gb/s IB", 11.7e9, 3e-6)]


def ring_allreduce_seconds(nbytes: float, ranks: int, bandwidth: float, latency: float) -> float:
    """Bandwidth-optimal (ring) all-reduce: each rank sends and receives 2 (K-1)/K of the buffer in
    2 (K-1) messages (reduce-scatter then all-gather); the model behind Horovod's and NCCL's rings."""
    if ranks <= 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + 2 * (ranks - 1) * latency


def print_scaling(compute_s: float, nbytes: int, ranks=(2, 4, 8, 16, 64)):
    """Expected efficiency T_c / (T_c + T_comm) and speed-up K x efficiency of data-parallel training
    on K machines with a fixed per-machine batch, from a measured per-machine step time T_c (no
    overlap of communication with the backward pass, as in cnnfast)."""
    print(f"\nExpected scaling on K machines: per-machine step {1e3 * compute_s:.1f} ms (measured above), "
          f"gradient {nbytes / 1e3:.0f} KB per step, ring all-reduce\n")
    print("| network | " + " | ".join(f"K={k}" for k in ranks) + " |")
    print("|---|" + "---|" * len(ranks))
    for name, bw, lat in NETWORKS:
        cells = []
        for k in ranks:
            # the gradient ring all-reduce + the per-step metric reduction (a few doubles: log2 K latencies)
            t = ring_allreduce_seconds(nbytes, k, bw, lat) + math.ceil(math.log2(k)) * lat
            eff = compute_s / (compute_s + t)
            cells.append(f"{1e3 * t:.2f} ms, {100 * eff:.0f}%, {k * eff:.1f}x")
        print(f"| {name} | " + " | ".join(cells) + " |")


# -- the comparison table -----------------------------------------------------------------------------------
def print_table(steps, repeats):
    rows = []
    frameworks = ["cnnfast"] + (["torch"] if torch_available() else [])
    cases = [(fw, ranks, threads) for ranks, threads in CASES
             for fw in frameworks + (["cnnfast-model.fit"] if (ranks, threads) == (1, 1) else [])]
    results = {case: [] for case in cases}
    for rep in range(repeats):  # interleaved, so that a change of the machine's load hits every case
        for case in cases:
            results[case].append(run_case(*case, steps=steps))
        print(f"done: round {rep + 1}/{repeats}", file=sys.stderr, flush=True)
    for case in cases:
        runs = results[case]
        med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
        row = dict(runs[0], step_s=med("step_s"), step_p10_s=min(r["step_p10_s"] for r in runs))
        row["samples_per_s"] = row["global_batch"] / row["step_s"]
        row["gflops"] = mnist_cnn_train_flops(row["global_batch"]) / row["step_s"] / 1e9
        if runs[0]["allreduce_s"] is not None:
            for key in ("allreduce_s", "metrics_sync_s", "allreduce_alone_s"):
                row[key] = med(key)
            row["allreduce_p10_s"] = min(r["allreduce_p10_s"] for r in runs)
        rows.append(row)
    base = {r["framework"]: r["samples_per_s"] for r in rows if (r["ranks"], r["threads_per_rank"]) == (1, 1)}
    print(f"\nmnist_cnn, Adam, {PER_RANK_BATCH} samples per rank per step, medians of {steps} steps "
          f"(x{repeats} runs); gradient {rows[0]['gradient_bytes'] / 1e3:.0f} KB/step\n")
    print("| framework | ranks x threads | global batch | ms/step | samples/s | GFLOP/s | throughput vs 1x1 "
          "| gradient all-reduce ms (share) | metrics sync ms | bare all-reduce ms | quiet-step ms (p10) "
          "| quiet samples/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        speed = r["samples_per_s"] / base["torch" if r["framework"] == "torch" else "cnnfast"]
        multi = r["ranks"] > 1 and r["allreduce_s"] is not None
        ar = f"{1e3 * r['allreduce_s']:.2f} ({100 * r['allreduce_s'] / r['step_s']:.1f}%)" if multi else "-"
        sync = f"{1e3 * r['metrics_sync_s']:.3f}" if multi else "-"
        alone = f"{1e3 * r['allreduce_alone_s']:.3f}" if multi else "-"
        print(f"| {r['framework']} | {r['ranks']} x {r['threads_per_rank']} | {r['global_batch']} | "
              f"{1e3 * r['step_s']:.1f} | {r['samples_per_s']:.0f} | {r['gflops']:.1f} | {speed:.2f}x | "
              f"{ar} | {sync} | {alone} | {1e3 * r['step_p10_s']:.1f} | {r['global_batch'] / r['step_p10_s']:.0f} |")
    # one machine's step: the faster of its 1-rank configurations
    one_machine = min(r["step_s"] for r in rows if r["framework"] == "cnnfast" and r["ranks"] == 1)
    print_scaling(one_machine, rows[0]["gradient_bytes"])


def main(argv=None):
    parser = argparse.ArgumentParser(description="cnnfast.distributed step benchmark")
    sub = parser.add_subparsers(dest="mode")
    w = sub.add_parser("worker")
    w.add_argument("--framework", choices=("cnnfast", "cnnfast-model.fit", "torch"), required=True)
    w.add_argument("--threads", type=int, default=1)
    w.add_argument("--steps", type=int, default=40)
    w.add_argument("--warmup", type=int, default=5)
    w.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run (default 40)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the median is shown (default 3)")
    args = parser.parse_args(argv)
    if args.mode == "worker":
        worker_main(args)
        return 0
    if not mpi_available():
        print("bench_distributed: needs mpirun and mpi4py", file=sys.stderr)
        return 1
    print_table(args.steps, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
