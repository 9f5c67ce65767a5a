"""The ``weights=`` argument of the torchvision architectures: torchvision's published ImageNet
weights by name (downloaded once with :func:`cnnfast.utils.get_file`), a ``state_dict`` file
(``.pth`` zip, ``.safetensors``, ``.npz``) or a mapping of names to arrays.

torchvision names its files ``<arch>-<h>.pth`` where ``<h>`` is the first hex digits of the
file's SHA-256 (what ``torch.hub`` checks). ``get_file`` verifies only full hashes, so the prefix
is checked here after the download.
"""
from __future__ import annotations

import hashlib
import os

_BASE = "https://download.pytorch.org/models/"

# torchvision 0.28's Weights enums (torchvision/models/<arch>.py): name -> file.
PUBLISHED = {
    "resnet18": {"IMAGENET1K_V1": "resnet18-f37072fd.pth"},
    "resnet34": {"IMAGENET1K_V1": "resnet34-b627a593.pth"},
    "resnet50": {"IMAGENET1K_V1": "resnet50-0676ba61.pth", "IMAGENET1K_V2": "resnet50-11ad3fa6.pth"},
    "mobilenet_v2": {"IMAGENET1K_V1": "mobilenet_v2-b0353104.pth", "IMAGENET1K_V2": "mobilenet_v2-7ebf99e0.pth"},
    "vgg16": {"IMAGENET1K_V1": "vgg16-397923af.pth"},
    "efficientnet_b0": {"IMAGENET1K_V1": "efficientnet_b0_rwightman-7f5810bc.pth"},
}
# torchvision's ``DEFAULT`` (its best published weights); "imagenet" (Keras's word) means the same.
DEFAULT = {"resnet18": "IMAGENET1K_V1", "resnet34": "IMAGENET1K_V1", "resnet50": "IMAGENET1K_V2",
           "mobilenet_v2": "IMAGENET1K_V2", "vgg16": "IMAGENET1K_V1", "efficientnet_b0": "IMAGENET1K_V1"}


def resolve_weights(fn, weights):
    """None, ("url", name, file), ("file", path) or ("mapping", dict) for ``weights``."""
    if weights is None:
        return None
    if hasattr(weights, "items") and not isinstance(weights, (str, bytes)):
        return ("mapping", weights)
    if isinstance(weights, str):
        name = DEFAULT[fn] if weights in ("imagenet", "DEFAULT") else weights
        if name in PUBLISHED[fn]:
            return ("url", name, PUBLISHED[fn][name])
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if os.path.isfile(path):
            return ("file", path)
        names = ", ".join(repr(n) for n in ["imagenet", "DEFAULT", *PUBLISHED[fn]])
        raise ValueError(f"{fn}: weights must be None, one of {names}, or the path of a .pth / "
                         f".safetensors / .npz state dict; {weights!r} is neither a name nor an existing file")
    raise TypeError(f"{fn}: weights must be None, a weight name, a file path or a mapping of names to "
                    f"arrays, got {type(weights).__name__}")


def sha256_prefix_matches(path, prefix) -> bool:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest().startswith(prefix)


def fetch_published(fn, name, fname):
    """The local path of torchvision's ``fname``, downloaded into the ``models`` cache if needed and
    checked against the SHA-256 prefix in its name."""
    from ...utils.file_utils import get_file  # only when downloading
    path = get_file(fname, _BASE + fname, cache_subdir="models")
    prefix = os.path.splitext(fname)[0].rsplit("-", 1)[1]
    if not sha256_prefix_matches(path, prefix):
        os.remove(path)  # so that the next call downloads it again
        raise ValueError(f"{fn}: the downloaded {name} weights {fname} do not match their published SHA-256 "
                         f"prefix {prefix}; the file was removed, try again")
    return path


def load_torchvision_weights(fn, model, source, drop_prefixes=None):
    """Copy the state dict ``source`` into ``model`` by layer name; the keys starting with one of
    ``drop_prefixes`` (the classifier, for a headless model) are left out first."""
    from ...saving.torch_files import read_torch_weights
    from ...saving.torch_import import load_torch_state_dict
    kind = source[0]
    if kind == "mapping":
        state = dict(source[1])
    else:
        path = fetch_published(fn, source[1], source[2]) if kind == "url" else source[1]
        if path.endswith(".npz"):
            from ...models.archive import read_npz
            with open(path, "rb") as f:
                state = read_npz(f.read(), path)
        else:
            state = read_torch_weights(path)
    if drop_prefixes:
        state = {k: v for k, v in state.items() if not k.startswith(drop_prefixes)}
    try:
        load_torch_state_dict(model, state, by_name=True)
    except ValueError as e:
        raise ValueError(f"{fn}: {e}") from None
