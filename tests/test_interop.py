"""cnnfast beside the other native libraries of a scientific Python process.

* ``import cnnfast`` before or after ``import torch``, beside SciPy's/NumPy's OpenBLAS, and beside
  scikit-learn (its own vendored libgomp and OpenBLAS): no crash, and every library still
  computes the right thing.
* threadpoolctl sees cnnfast's OpenMP runtime, and ``threadpool_limits`` lowers the thread count
  cnnfast's kernels use (``cnnfast.get_num_threads()`` honours it), then restores it; under a
  limit of 1 no pool in the process (cnnfast's, OpenBLAS's, scikit-learn's, PyTorch's) keeps more
  than one thread.

Each scenario runs in a fresh interpreter: the import order is the point, and the test process has
usually imported torch already while collecting the other test files.
"""
from __future__ import annotations

import importlib.util

import pytest

from _hardening import describe, run_python

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_THREADPOOLCTL = importlib.util.find_spec("threadpoolctl") is not None
HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None

CHECK_CNNFAST = """
import numpy as np, cnnfast
from cnnfast import ops
rng = np.random.default_rng(0)
x = rng.standard_normal((4, 12, 12, 8)).astype(np.float32)
w = rng.standard_normal((3, 3, 8, 16)).astype(np.float32)
y = ops.conv2d(x, w, padding="same")
ref = np.zeros((4, 12, 12, 16))
xp = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
for i in range(3):
    for j in range(3):
        ref += np.einsum("nhwc,co->nhwo", xp[:, i:i + 12, j:j + 12], w[i, j])
assert np.abs(y - ref).max() < 1e-4, np.abs(y - ref).max()
"""

TORCH_PART = """
import torch
t = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(w).permute(3, 2, 0, 1),
                               padding=1).permute(0, 2, 3, 1).numpy()
assert np.abs(t - y).max() < 1e-4
assert torch.get_num_threads() >= 1
"""


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
@pytest.mark.parametrize("order", ["torch-first", "cnnfast-first"])
def test_cnnfast_beside_torch(order):
    first = "import torch\n" if order == "torch-first" else "import cnnfast\n"
    proc = run_python(first + CHECK_CNNFAST + TORCH_PART + CHECK_CNNFAST + "print('ok')", timeout=180, threads=2)
    assert proc.returncode == 0 and "ok" in proc.stdout, describe(proc)


@pytest.mark.parametrize("order", ["blas-first", "cnnfast-first"])
def test_cnnfast_beside_openblas(order):
    blas = """
import numpy as np, scipy.linalg
a = np.random.default_rng(1).standard_normal((300, 300)) + 300 * np.eye(300)
assert np.allclose(scipy.linalg.inv(a) @ a, np.eye(300), atol=1e-8)
assert np.allclose(np.linalg.solve(a, a), np.eye(300), atol=1e-8)
"""
    if HAS_SKLEARN:
        blas += "from sklearn.linear_model import Ridge; Ridge().fit(a, a[:, 0])\n"
    code = (blas + CHECK_CNNFAST) if order == "blas-first" else (CHECK_CNNFAST + blas + CHECK_CNNFAST)
    proc = run_python(code + "print('ok')", timeout=180, threads=2)
    assert proc.returncode == 0 and "ok" in proc.stdout, describe(proc)


SKLEARN_PART = """
from sklearn.cluster import KMeans
from sklearn.linear_model import Ridge
pts = np.concatenate([np.random.default_rng(2).standard_normal((200, 4)) + c for c in (-6.0, 0.0, 6.0)])
km = KMeans(n_clusters=3, n_init=3, random_state=0).fit(pts)  # OpenMP (scikit-learn's libgomp)
assert sorted(np.bincount(km.labels_).tolist()) == [200, 200, 200], np.bincount(km.labels_)
coef = Ridge(alpha=1e-9).fit(pts, pts @ np.arange(1.0, 5.0)).coef_  # BLAS/LAPACK
assert np.allclose(coef, np.arange(1.0, 5.0), atol=1e-6), coef
"""


@pytest.mark.skipif(not HAS_SKLEARN, reason="scikit-learn not installed (pip install scikit-learn)")
@pytest.mark.parametrize("order", ["sklearn-first", "cnnfast-first"])
def test_cnnfast_beside_sklearn(order):
    sk = "import numpy as np\n" + SKLEARN_PART
    code = (sk + CHECK_CNNFAST + sk) if order == "sklearn-first" else (CHECK_CNNFAST + sk + CHECK_CNNFAST)
    proc = run_python(code + "print('ok')", timeout=180, threads=2)
    assert proc.returncode == 0 and "ok" in proc.stdout, describe(proc)


THREADPOOLCTL_CODE = """
import os, re, numpy as np
import cnnfast
from cnnfast import ops
# The OpenMP runtime cnnfast's extension loaded (libgomp, or the copy auditwheel vendors).
with open("/proc/self/maps") as f:
    omp = {os.path.realpath(line.split()[-1]) for line in f if re.search(r"/lib(g|i)?omp[^/]*\\.so", line)}
assert omp, "no OpenMP runtime mapped after import cnnfast"
{extra_imports}
import threadpoolctl
info = threadpoolctl.threadpool_info()
seen = {os.path.realpath(i["filepath"]) for i in info if i["user_api"] == "openmp"}
assert omp <= seen, (omp, info)
assert cnnfast.get_num_threads() == 2

rng = np.random.default_rng(0)
x = rng.standard_normal((16, 20, 20, 16)).astype(np.float32)
w = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
dy = rng.standard_normal((16, 18, 18, 16)).astype(np.float32)
cnnfast.set_num_threads(1)
one = ops.conv2d_backward(dy, x, w)[1]
cnnfast.set_num_threads(2)
two = ops.conv2d_backward(dy, x, w)[1]

with threadpoolctl.threadpool_limits(1):
    assert cnnfast.get_num_threads() == 1
    # no oversubscription: every pool in the process (OpenMP and BLAS alike) is down to one thread
    over = [(i["filepath"], i["num_threads"]) for i in threadpoolctl.threadpool_info() if i["num_threads"] != 1]
    assert not over, over
    assert ops.conv2d_backward(dy, x, w)[1].tobytes() == one.tobytes()  # really on one thread
with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
    assert cnnfast.get_num_threads() == 1
assert cnnfast.get_num_threads() == 2
assert ops.conv2d_backward(dy, x, w)[1].tobytes() == two.tobytes()
controller = threadpoolctl.ThreadpoolController()
with controller.limit(limits=1, user_api="openmp"):
    assert cnnfast.get_num_threads() == 1
assert cnnfast.get_num_threads() == 2
print("ok", len(info))
"""


@pytest.mark.skipif(not HAS_THREADPOOLCTL, reason="threadpoolctl not installed (pip install threadpoolctl)")
@pytest.mark.parametrize("beside", ["alone", "scipy", "torch", "sklearn"])
def test_threadpoolctl_sees_and_limits_cnnfast(beside):
    if beside == "torch" and not HAS_TORCH:
        pytest.skip("torch not installed")
    if beside == "sklearn" and not HAS_SKLEARN:
        pytest.skip("scikit-learn not installed (pip install scikit-learn)")
    extra = {"alone": "", "scipy": "import scipy.linalg", "torch": "import torch",
             "sklearn": "import sklearn.cluster, sklearn.linear_model"}[beside]
    proc = run_python(THREADPOOLCTL_CODE.replace("{extra_imports}", extra), timeout=180, threads=2)
    assert proc.returncode == 0 and "ok" in proc.stdout, describe(proc)


def test_omp_num_threads_and_cnnfast_num_threads_are_honoured():
    code = "import cnnfast; print('threads', cnnfast.get_num_threads())"
    for env, expected in (({"OMP_NUM_THREADS": "1"}, 1), ({"CNNFAST_NUM_THREADS": "1", "OMP_NUM_THREADS": "2"}, 1),
                          ({"CNNFAST_NUM_THREADS": "2"}, 2), ({"CNNFAST_NUM_THREADS": "lots"}, None)):
        proc = run_python(code, timeout=60, env={"OMP_NUM_THREADS": "", "CNNFAST_NUM_THREADS": "", **env})
        assert proc.returncode == 0, describe(proc)
        got = int(proc.stdout.split()[-1])
        if expected is None:
            assert got >= 1 and "ignoring CNNFAST_NUM_THREADS" in proc.stderr
        else:
            assert got == expected, (env, got)
