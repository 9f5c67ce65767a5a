"""Embedding benchmarks: cnnfast's gather + scatter-add against PyTorch's nn.Embedding.

The case is a text classifier's first layer: a vocabulary of 20 000 tokens embedded in 128
dimensions, a batch of 32 sequences of 400 token ids (Zipf-distributed, as word ids are, so many
ids repeat), forward alone and forward + backward (the dense gradient of the whole table, which
both libraries zero and scatter into). Both libraries are pinned to 1, then 2 threads.

    python -m pytest benchmarks/bench_embedding.py --benchmark-only
"""
from __future__ import annotations

import numpy as np
import pytest

from cnnfast import ops

VOCAB, DIM, BATCH, LENGTH = 20000, 128, 32, 400


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    ids = np.minimum(rng.zipf(1.2, (BATCH, LENGTH)) - 1, VOCAB - 1).astype(np.int64)
    table = rng.uniform(-0.05, 0.05, (VOCAB, DIM)).astype(np.float32)
    dy = rng.standard_normal((BATCH, LENGTH, DIM)).astype(np.float32)
    return ids, table, dy


@pytest.mark.benchmark(group="embedding fwd 20000x128, 32x400 ids")
def test_embedding_fwd_cnnfast(benchmark, data, bench_threads):
    ids, table, _ = data
    out = np.empty((BATCH, LENGTH, DIM), np.float32)
    benchmark(ops.embedding, ids, table, out=out)


@pytest.mark.benchmark(group="embedding fwd 20000x128, 32x400 ids")
def test_embedding_fwd_torch(benchmark, data, bench_threads):
    torch = pytest.importorskip("torch")
    ids, table, _ = data
    ids_t, weight = torch.from_numpy(ids), torch.from_numpy(table)

    def run():
        with torch.no_grad():
            return torch.nn.functional.embedding(ids_t, weight)
    benchmark(run)


@pytest.mark.benchmark(group="embedding fwd+bwd 20000x128, 32x400 ids")
def test_embedding_fwd_bwd_cnnfast(benchmark, data, bench_threads):
    ids, table, dy = data
    out = np.empty((BATCH, LENGTH, DIM), np.float32)
    grad = np.empty_like(table)

    def run():
        ops.embedding(ids, table, out=out)
        return ops.embedding_backward(ids, dy, VOCAB, out=grad)
    benchmark(run)


@pytest.mark.benchmark(group="embedding fwd+bwd 20000x128, 32x400 ids")
def test_embedding_fwd_bwd_torch(benchmark, data, bench_threads):
    torch = pytest.importorskip("torch")
    ids, table, dy = data
    emb = torch.nn.Embedding(VOCAB, DIM)
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(table))
    ids_t, dy_t = torch.from_numpy(ids), torch.from_numpy(dy)

    def run():
        emb.weight.grad = None
        emb(ids_t).backward(dy_t)
        return emb.weight.grad
    benchmark(run)


def test_same_results_as_torch(data):
    """Both sides compute the same thing (the benchmark compares like with like)."""
    torch = pytest.importorskip("torch")
    ids, table, dy = data
    weight = torch.from_numpy(table.copy()).requires_grad_()
    torch.nn.functional.embedding(torch.from_numpy(ids), weight).backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(ops.embedding(ids, table), table[ids])
    np.testing.assert_allclose(ops.embedding_backward(ids, dy, VOCAB), weight.grad.numpy(), rtol=1e-4, atol=1e-3)
