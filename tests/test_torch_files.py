"""cnnfast.saving.torch_files: PyTorch .pth (zip) and .safetensors files read without torch and
without running pickle code; malicious, truncated and corrupted files refused with clear errors."""
from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from cnnfast.saving import load_torch_state_dict
from cnnfast.saving.torch_files import (RefusedPickleError, TorchFileError, read_pth, read_safetensors,
                                        read_torch_weights)


# -- hand-made files -------------------------------------------------------------------------------
def _ops(value) -> bytes:
    """The protocol-2 opcodes that push ``value`` (a str, int or tuple of ints), without PROTO/STOP."""
    return pickle.dumps(value, protocol=2)[2:-1]


def _tensor_ops(key, storage_type, numel, offset, size, stride) -> bytes:
    """What torch.save writes for one tensor: _rebuild_tensor_v2(persistent storage, offset, size,
    stride, requires_grad, OrderedDict())."""
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(("
            + _ops("storage") + f"ctorch\n{storage_type}\n".encode() + _ops(key) + _ops("cpu") + _ops(numel)
            + b"tQ" + _ops(offset) + _ops(tuple(size)) + _ops(tuple(stride))
            + b"\x89ccollections\nOrderedDict\n)Rt" + b"R")


def _state_dict_pickle(entries) -> bytes:
    """An OrderedDict {name: tensor} pickle; ``entries`` are (name, key, type, numel, offset, size, stride)."""
    body = b"".join(_ops(name) + _tensor_ops(*rest) for name, *rest in entries)
    return b"\x80\x02ccollections\nOrderedDict\n)R(" + body + b"u."


def _write_pth(path, data_pkl: bytes, records: dict, prefix="archive", byteorder=b"little"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{prefix}/data.pkl", data_pkl)
        if byteorder is not None:
            zf.writestr(f"{prefix}/byteorder", byteorder)
        for key, raw in records.items():
            zf.writestr(f"{prefix}/data/{key}", raw)
        zf.writestr(f"{prefix}/version", b"3\n")
    return str(path)


def _write_safetensors(path, tensors: dict, header_override=None, data_override=None):
    """A .safetensors file written by hand: {name: (dtype code, shape, raw bytes)}."""
    header, chunks, offset = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    if header_override is not None:
        header = header_override
    blob = json.dumps(header).encode()
    data = b"".join(chunks) if data_override is None else data_override
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob + data)
    return str(path)


# -- reading what torch writes ------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _torch_tensors(torch):
    """Every dtype a state dict holds, views with offsets and strides, shared storage, 0-d and empty."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    return {
        "f32": torch.randn(3, 5, generator=g),
        "f64": torch.randn(7, generator=g, dtype=torch.float64),
        "f16": torch.randn(2, 3, generator=g).half(),
        "bf16": torch.randn(2, 3, generator=g).bfloat16(),
        "i64": torch.arange(-5, 5),
        "i32": torch.arange(6, dtype=torch.int32).reshape(2, 3),
        "i16": torch.tensor([-3, 4], dtype=torch.int16),
        "i8": torch.tensor([-7, 9], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "transposed": base.t(),
        "sliced": base[1:3, 2:5],
        "shares_storage": base,
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
        "conv.num_batches_tracked": torch.tensor(17),
    }


def _expected(torch, t):
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.float().numpy()
    return t.numpy()


def test_reads_every_dtype_and_view_torch_writes(torch, tmp_path):
    tensors = _torch_tensors(torch)
    path = tmp_path / "weights.pth"
    torch.save(tensors, path)
    out = read_pth(path)
    assert list(out) == list(tensors)
    for name, t in tensors.items():
        ref = _expected(torch, t)
        assert out[name].dtype == (np.float32 if t.dtype in (torch.float16, torch.bfloat16) else ref.dtype), name
        assert out[name].shape == ref.shape, name
        np.testing.assert_array_equal(out[name], ref, err_msg=name)
        assert out[name].flags.writeable and out[name].flags.c_contiguous
    # tensors sharing a storage come back as separate arrays
    before = out["transposed"].copy()
    out["shares_storage"] += 1
    np.testing.assert_array_equal(out["transposed"], before)
    assert read_torch_weights(path).keys() == out.keys()


def test_reads_a_module_state_dict_and_parameters(torch, tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 5))
    torch.save(net.state_dict(), tmp_path / "sd.pth")        # an OrderedDict with _metadata
    torch.save(dict(net.named_parameters()), tmp_path / "params.pth")   # nn.Parameter objects
    sd = read_pth(tmp_path / "sd.pth")
    assert list(sd) == list(net.state_dict())
    params = read_pth(tmp_path / "params.pth")
    for name, p in net.named_parameters():
        np.testing.assert_array_equal(sd[name], p.detach().numpy())
        np.testing.assert_array_equal(params[name], p.detach().numpy())


def test_load_torch_state_dict_takes_pth_and_safetensors_paths(torch, tmp_path):
    from cnnfast import layers, models
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 5)).eval()
    model = models.Sequential([layers.Input((8, 8, 3)), layers.Conv2D(4, 3, activation="relu"),
                               layers.Flatten(), layers.Dense(5)])
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    torch.save(net.state_dict(), tmp_path / "w.pth")
    load_torch_state_dict(model, str(tmp_path / "w.pth"))
    np.testing.assert_allclose(model.predict(x, verbose=0), ref, rtol=1e-5, atol=1e-5)
    st = pytest.importorskip("safetensors.torch")
    st.save_file(net.state_dict(), str(tmp_path / "w.safetensors"))   # sorted: 0.bias before 0.weight
    with pytest.raises(ValueError, match="a .safetensors file does not keep the state dict's order"):
        load_torch_state_dict(model, tmp_path / "w.safetensors")
    named = models.Sequential([layers.Input((8, 8, 3)), layers.Conv2D(4, 3, activation="relu", name="0"),
                               layers.Flatten(), layers.Dense(5, name="3")])
    load_torch_state_dict(named, tmp_path / "w.safetensors", by_name=True)
    np.testing.assert_allclose(named.predict(x, verbose=0), ref, rtol=1e-5, atol=1e-5)


def test_wrong_architecture_files_name_the_key_and_layer(torch, tmp_path):
    from cnnfast import layers, models
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(),
                                   torch.nn.Linear(8 * 6 * 6, 5)).state_dict(), tmp_path / "other.pth")
    model = models.Sequential([layers.Input((8, 8, 3)), layers.Conv2D(4, 3, name="0"), layers.Flatten(),
                               layers.Dense(5, name="2")])
    with pytest.raises(ValueError, match=r"layer '0' \(Conv2D\) weight expects a tensor of shape \(4, 3, 3, 3\), "
                                         r"got '0.weight' with shape \(8, 3, 3, 3\)"):
        load_torch_state_dict(model, tmp_path / "other.pth")
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(144, 5),
                                   torch.nn.Linear(5, 2)).state_dict(), tmp_path / "longer.pth")
    with pytest.raises(ValueError, match=r"match no layer of model .* starting with '3.weight' \(the model has "
                                         r"no weighted layer '3'"):
        load_torch_state_dict(model, tmp_path / "longer.pth", by_name=True)
    with pytest.raises(ValueError, match=r"2 tensors of the state dict were not used, starting with '3.weight'"):
        load_torch_state_dict(model, tmp_path / "longer.pth")


def test_reader_works_where_torch_cannot_be_imported(torch, tmp_path):
    """In a process where ``import torch`` raises, the reader still reads both formats."""
    tensors = _torch_tensors(torch)
    torch.save(tensors, tmp_path / "w.pth")
    st = pytest.importorskip("safetensors.torch")
    plain = {k: v.contiguous() for k, v in tensors.items() if v.numel() and not k.startswith(("trans", "sl", "sh"))}
    st.save_file(plain, str(tmp_path / "w.safetensors"))
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('torch is blocked in this process')\n")
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        try:
            import torch
        except ImportError as e:
            assert 'blocked' in str(e)
        else:
            raise SystemExit('the fake torch was not used')
        from cnnfast.saving.torch_files import read_pth, read_safetensors
        np.savez({str(tmp_path / 'pth.npz')!r}, **read_pth({str(tmp_path / 'w.pth')!r}))
        np.savez({str(tmp_path / 'st.npz')!r}, **read_safetensors({str(tmp_path / 'w.safetensors')!r}))
        assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules if sys.modules[m] is not None)
        print('ok')
    """)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "fake") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
    with np.load(tmp_path / "pth.npz") as got:
        assert sorted(got.files) == sorted(tensors)
        for name, t in tensors.items():
            np.testing.assert_array_equal(got[name], _expected(torch, t), err_msg=name)
    with np.load(tmp_path / "st.npz") as got:
        assert sorted(got.files) == sorted(plain)
        for name, t in plain.items():
            np.testing.assert_array_equal(got[name], _expected(torch, t), err_msg=name)


# -- malicious files ---------------------------------------------------------------------------------
class _RunsCode:
    """An object whose pickle calls ``os.system`` when plain ``pickle.load`` reads it."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _WritesFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.mark.parametrize("payload", ["system", "open", "eval_inside_tensor"])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, payload):
    marker = tmp_path / "pwned"
    if payload == "system":
        data = pickle.dumps({"w": _RunsCode(f"touch {marker}")}, protocol=2)
        global_name = f"{os.system.__module__}.system"
    elif payload == "open":
        data = pickle.dumps({"w": _WritesFile(str(marker))}, protocol=4)
        global_name = "io.open"
    else:  # a legitimate-looking tensor whose stride comes from builtins.eval
        good = _state_dict_pickle([("w", "0", "FloatStorage", 4, 0, (4,), (1,))])
        evil = b"cbuiltins\neval\n" + _ops(f"open({str(marker)!r}, 'w')") + b"\x85R"
        data = good.replace(_ops((1,)), evil, 1)
        global_name = "builtins.eval"
    path = _write_pth(tmp_path / "evil.pth", data, {"0": np.zeros(4, np.float32).tobytes()})
    with pytest.raises(RefusedPickleError, match=rf"read_pth: refused global {global_name} in "):
        read_pth(path)
    assert not marker.exists()
    with pytest.raises(RefusedPickleError):
        load_torch_state_dict(None, path)
    assert not marker.exists()


def test_forged_persistent_ids_and_views_are_refused(tmp_path):
    record = {"0": np.arange(4, dtype=np.float32).tobytes()}
    beyond = _write_pth(tmp_path / "beyond.pth",
                        _state_dict_pickle([("w", "0", "FloatStorage", 4, 1, (2, 2), (2, 1))]), record)
    with pytest.raises(TorchFileError, match=r"tensor 'w' \(size \(2, 2\), stride \(2, 1\), offset 1\) reaches "
                                             r"element 4 of a storage of 4"):
        read_pth(beyond)
    too_big = _write_pth(tmp_path / "numel.pth",
                         _state_dict_pickle([("w", "0", "FloatStorage", 8, 0, (8,), (1,))]), record)
    with pytest.raises(TorchFileError, match=r"record 'archive/data/0' holds 16 bytes, but its FloatStorage "
                                             r"of 8 elements needs 32"):
        read_pth(too_big)
    missing = _write_pth(tmp_path / "missing.pth",
                         _state_dict_pickle([("w", "1", "FloatStorage", 4, 0, (4,), (1,))]), record)
    with pytest.raises(TorchFileError, match=r"no record 'archive/data/1' .* truncated or corrupted"):
        read_pth(missing)
    negative = _write_pth(tmp_path / "negative.pth",
                          _state_dict_pickle([("w", "0", "FloatStorage", 4, 0, (4,), (-1,))]), record)
    with pytest.raises(RefusedPickleError, match="stride must be a tuple of non-negative ints"):
        read_pth(negative)
    bad_pid = _write_pth(tmp_path / "pid.pth", b"\x80\x02" + _ops("storage") + b"Q.", record)
    with pytest.raises(RefusedPickleError, match="refused persistent id 'storage'"):
        read_pth(bad_pid)
    unknown_storage = _write_pth(tmp_path / "st.pth",
                                 _state_dict_pickle([("w", "0", "ComplexFloatStorage", 2, 0, (2,), (1,))]), record)
    with pytest.raises(RefusedPickleError, match="refused global torch.ComplexFloatStorage"):
        read_pth(unknown_storage)


def test_pickle_cannot_rewrite_a_checked_tensor_record(tmp_path):
    """BUILD with a slot state would set a tensor's stride after _rebuild_tensor_v2 checked it."""
    record = {"0": np.arange(4, dtype=np.float32).tobytes()}
    good = _state_dict_pickle([("w", "0", "FloatStorage", 4, 0, (4,), (1,))])
    tensor_end = good.rindex(b"Ru.") + 1
    evil = good[:tensor_end] + b"N}" + _ops("stride") + _ops((-100000,)) + b"s\x86b" + good[tensor_end:]
    path = _write_pth(tmp_path / "rewrite.pth", evil, record)
    with pytest.raises(RefusedPickleError, match="refused attempt to set the state of a Tensor record"):
        read_pth(path)


def test_big_endian_archives_and_other_prefixes(tmp_path):
    values = np.array([1.5, -2.0, 3.25], dtype=">f4")
    path = _write_pth(tmp_path / "be.pth", _state_dict_pickle([("w", "0", "FloatStorage", 3, 0, (3,), (1,))]),
                      {"0": values.tobytes()}, prefix="my_model", byteorder=b"big")
    out = read_pth(path)["w"]
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, [1.5, -2.0, 3.25])


def test_non_tensor_entries_are_named(tmp_path):
    data = b"\x80\x02}(" + _ops("epoch") + _ops(3) + b"u."
    with pytest.raises(TorchFileError, match=r"entry 'epoch' is a int, not a tensor"):
        read_pth(_write_pth(tmp_path / "ckpt.pth", data, {}))
    nested = b"\x80\x02}(" + _ops("state_dict") + b"}u."
    with pytest.raises(TorchFileError, match="training checkpoint"):
        read_pth(_write_pth(tmp_path / "nested.pth", nested, {}))


# -- damaged and foreign files ---------------------------------------------------------------------------
def test_truncated_and_corrupted_pth_files(torch, tmp_path):
    torch.save({"w": torch.randn(64, 64)}, tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "half.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(TorchFileError, match="not a readable zip file .* truncated or corrupted"):
        read_pth(tmp_path / "half.pth")
    (tmp_path / "short.pth").write_bytes(data[:3])
    with pytest.raises(TorchFileError, match="does not start with a zip header"):
        read_pth(tmp_path / "short.pth")
    with zipfile.ZipFile(tmp_path / "good.pth") as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("data/0"))
    flipped = bytearray(data)
    flipped[info.header_offset + 30 + len(info.filename) + len(info.extra) + 100] ^= 0xFF
    (tmp_path / "flipped.pth").write_bytes(bytes(flipped))
    with pytest.raises(TorchFileError, match=r"cannot read record '.*data/0' .*truncated or corrupted"):
        read_pth(tmp_path / "flipped.pth")
    garbage = _write_pth(tmp_path / "garbage.pth", b"\x80\x02\xff\xfe not a pickle", {})
    with pytest.raises(TorchFileError, match="data.pkl is not a valid pickle"):
        read_pth(garbage)
    with zipfile.ZipFile(tmp_path / "foreign.zip", "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(TorchFileError, match="zip file but not a PyTorch one"):
        read_pth(tmp_path / "foreign.zip")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit's own deprecation notice
def test_legacy_and_torchscript_files_are_refused_with_a_hint(torch, tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(TorchFileError, match=r"legacy \(pre-1.6\) pickle format.*re-save"):
        read_pth(tmp_path / "legacy.pth")
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "scripted.pt"))
    with pytest.raises(TorchFileError, match="TorchScript archive"):
        read_pth(tmp_path / "scripted.pt")


# -- safetensors ----------------------------------------------------------------------------------------------
def test_safetensors_dtypes_and_layout(tmp_path):
    f32 = np.arange(6, dtype="<f4").reshape(2, 3)
    f16 = np.array([0.5, -1.25], dtype="<f2")
    bf16_of = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
    bf16 = (bf16_of.view(np.uint32) >> 16).astype("<u2")
    i64 = np.array([-(2 ** 40), 7], dtype="<i8")
    path = _write_safetensors(tmp_path / "w.safetensors", {
        "a.f32": ("F32", f32.shape, f32.tobytes()), "b.f16": ("F16", f16.shape, f16.tobytes()),
        "c.bf16": ("BF16", (3,), bf16.tobytes()), "d.i64": ("I64", (2,), i64.tobytes()),
        "e.bool": ("BOOL", (2,), b"\x01\x00"), "f.empty": ("F32", (0, 3), b"")})
    out = read_safetensors(path)
    assert list(out) == ["a.f32", "b.f16", "c.bf16", "d.i64", "e.bool", "f.empty"]
    np.testing.assert_array_equal(out["a.f32"], f32)
    assert out["b.f16"].dtype == np.float32 and out["c.bf16"].dtype == np.float32
    np.testing.assert_array_equal(out["b.f16"], [0.5, -1.25])
    np.testing.assert_array_equal(out["c.bf16"], bf16_of)
    np.testing.assert_array_equal(out["d.i64"], i64)
    np.testing.assert_array_equal(out["e.bool"], [True, False])
    assert out["f.empty"].shape == (0, 3)
    assert read_torch_weights(path).keys() == out.keys()


def test_safetensors_matches_the_reference_writer(torch, tmp_path):
    st = pytest.importorskip("safetensors.torch")
    tensors = {k: v.contiguous() for k, v in _torch_tensors(torch).items()}
    st.save_file(tensors, str(tmp_path / "ref.safetensors"))
    out = read_safetensors(tmp_path / "ref.safetensors")
    for name, t in tensors.items():
        np.testing.assert_array_equal(out[name], _expected(torch, t), err_msg=name)


@pytest.mark.parametrize("damage, message", [
    ("truncated_data", r"data_offsets \[0, 24\] fall outside the 10 data bytes"),
    ("header_too_long", "header length .* does not fit a file"),
    ("not_json", "the header is not valid JSON"),
    ("not_object", "the header is not a JSON object"),
    ("unknown_dtype", "unsupported dtype 'C64'"),
    ("bad_shape", r"shape must be a list of non-negative ints, got \[-1, 6\]"),
    ("size_mismatch", r"24 data bytes for shape \[2, 2\] of F32 \(needs 16\)"),
    ("missing_field", r"expected \{'dtype', 'shape', 'data_offsets'\}"),
    ("tiny", "too short for a header"),
])
def test_damaged_safetensors_files(tmp_path, damage, message):
    raw = np.arange(6, dtype="<f4").tobytes()
    good = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
    path = tmp_path / "bad.safetensors"
    if damage == "truncated_data":
        _write_safetensors(path, {}, header_override=good, data_override=raw[:10])
    elif damage == "header_too_long":
        path.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    elif damage == "not_json":
        path.write_bytes(struct.pack("<Q", 5) + b"{abc}" + raw)
    elif damage == "not_object":
        path.write_bytes(struct.pack("<Q", 2) + b"[]" + raw)
    elif damage == "tiny":
        path.write_bytes(b"\x01\x02")
    else:
        entry = dict(good["w"])
        if damage == "unknown_dtype":
            entry["dtype"] = "C64"
        elif damage == "bad_shape":
            entry["shape"] = [-1, 6]
        elif damage == "size_mismatch":
            entry["shape"] = [2, 2]
        else:
            del entry["shape"]
        _write_safetensors(path, {}, header_override={"w": entry}, data_override=raw)
    with pytest.raises(TorchFileError, match=message):
        read_safetensors(path)
