"""cnnfast.saving — save/load models and weights (no pickle, ever), import PyTorch weights.

* ``save_model(model, "m.keras")`` / ``load_model("m.keras")``: architecture, weights, compile
  settings and optimizer state in one zip.
* ``save_weights(model, "w.weights.npz")`` / ``load_weights(model, path)``; also Keras's HDF5
  files (``.weights.h5`` both ways, legacy ``.h5`` read; h5py, ``cnnfast[h5]``).
* ``load_torch_state_dict(model, state_dict_or_path)``: weights of the same architecture
  exported from PyTorch (see ``torch_import.py``); ``read_pth`` / ``read_safetensors`` read
  ``torch.save`` and safetensors files into NumPy arrays without torch and without running pickle
  code (``torch_files.py``).

The cnnfast file formats are implemented next to the model classes, in ``cnnfast.models``
(``persistence.py``, the format in ``archive.py``, configs in ``serialization.py``), because
``Model.save`` and ``cnnfast.models.load_model`` need them as much as this module does. This
package sits above ``cnnfast.models``: it gathers the saving API under its Keras name and adds
readers of other libraries' weights; its ``archive`` and ``serialization`` submodules re-export
those two modules under their ``cnnfast.saving`` names.
"""
from __future__ import annotations

from ..models.archive import InvalidFileError
from ..models.persistence import load_model, load_weights, save_model, save_weights, weight_names
from ..models.serialization import ConfigError
from .torch_files import TorchFileError, read_pth, read_safetensors
from .torch_import import load_torch_state_dict

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "load_torch_state_dict",
           "read_pth", "read_safetensors", "TorchFileError", "weight_names", "InvalidFileError", "ConfigError"]
