"""Image files and PIL images: Keras 3's ``load_img``, ``img_to_array``, ``array_to_img``, ``save_img``.

Pillow is an optional dependency (``pip install 'cnnfast[image]'``), imported by the first call
that needs it, so ``import cnnfast`` never pays for it. Every function follows
``keras/src/utils/image_utils.py`` (3.15.1): the same colour-mode conversions (grayscale keeps
8-, 16- and 32-bit grey images as they are), resampling filters, centre crop for
``keep_aspect_ratio``, min-max scaling in ``array_to_img``, and the RGBA-to-RGB conversion with a
warning when saving a JPEG. cnnfast has no global ``image_data_format``/``floatx`` settings:
``data_format=None`` is ``"channels_last"`` and ``dtype=None`` is ``"float32"``.
"""
from __future__ import annotations

import io
import os
import pathlib
import warnings

import numpy as np

__all__ = ["load_img", "img_to_array", "array_to_img", "save_img", "pil_image", "decode_image_file",
           "COLOR_MODES"]

INSTALL_HINT = "install Pillow: pip install 'cnnfast[image]' (or pip install Pillow)"
COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}
# PIL's resampling filters by Keras's names (load_img's `interpolation`)
_PIL_FILTERS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")
_DATA_FORMATS = ("channels_last", "channels_first")


def pil_image(caller: str):
    """``PIL.Image``, or an ImportError saying how to install it."""
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError(f"cnnfast.utils.{caller} reads and writes images with Pillow, which is not "
                          f"installed: {INSTALL_HINT}") from e
    return Image


def _data_format(data_format, caller: str) -> str:
    data_format = "channels_last" if data_format is None else data_format
    if data_format not in _DATA_FORMATS:
        raise ValueError(f"cnnfast.utils.{caller}: data_format must be 'channels_last', 'channels_first' or None, "
                         f"got {data_format!r}")
    return data_format


def _convert_mode(img, color_mode: str, caller: str):
    """``img`` in the mode ``color_mode`` asks for (Keras's rules)."""
    if color_mode == "grayscale":
        # an 8-, 16- or 32-bit grey image is kept; anything else becomes 8-bit grey
        return img if img.mode in ("L", "I;16", "I") else img.convert("L")
    if color_mode == "rgba":
        return img if img.mode == "RGBA" else img.convert("RGBA")
    if color_mode == "rgb":
        return img if img.mode == "RGB" else img.convert("RGB")
    raise ValueError(f'cnnfast.utils.{caller}: color_mode must be "grayscale", "rgb", or "rgba", got {color_mode!r}')


def decode_image_file(path, color_mode: str = "rgb") -> np.ndarray:
    """The pixels of the image file at ``path`` as a ``(height, width, channels)`` array (uint8,
    or the grey image's own integer type), converted as ``load_img`` converts them; animated
    images give their first frame. Raises whatever Pillow raises for a file it cannot decode."""
    Image = pil_image("image_dataset_from_directory")
    with Image.open(path) as img:
        pixels = np.asarray(_convert_mode(img, color_mode, "image_dataset_from_directory"))
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False):
    """Load an image file into a PIL image (Keras's ``keras.utils.load_img``).

    Args:
        path: path of the image file (str, bytes or ``pathlib.Path``), or an ``io.BytesIO``.
        color_mode: ``"grayscale"``, ``"rgb"`` or ``"rgba"``.
        target_size: None (the file's size) or ``(height, width)``.
        interpolation: PIL filter used when resizing: ``"nearest"``, ``"bilinear"``,
            ``"bicubic"``, ``"hamming"``, ``"box"`` or ``"lanczos"``.
        keep_aspect_ratio: resize without distortion: the largest centred crop of the target
            aspect ratio is resized.

    Returns:
        A ``PIL.Image.Image``.

    Example:
        >>> img = load_img("cat.jpg", target_size=(224, 224))
        >>> x = img_to_array(img)[None]   # a batch of one (1, 224, 224, 3) float32 image
    """
    Image = pil_image("load_img")
    if isinstance(path, io.BytesIO):
        img = Image.open(path)
    elif isinstance(path, (pathlib.Path, bytes, str)):
        if isinstance(path, pathlib.Path):
            path = str(path.resolve())
        with open(path, "rb") as f:  # read whole, so no file handle stays open behind the image
            img = Image.open(io.BytesIO(f.read()))
    else:
        raise TypeError(f"cnnfast.utils.load_img: path should be path-like or io.BytesIO, not {type(path)}")
    img = _convert_mode(img, color_mode, "load_img")
    if target_size is None:
        return img
    try:
        target_height, target_width = (int(s) for s in target_size)
    except (TypeError, ValueError):
        raise ValueError(f"cnnfast.utils.load_img: target_size must be None or (height, width), "
                         f"got {target_size!r}") from None
    if img.size == (target_width, target_height):
        return img
    if interpolation not in _PIL_FILTERS:
        raise ValueError(f"cnnfast.utils.load_img: Invalid interpolation method {interpolation} specified. "
                         f"Supported methods are {', '.join(_PIL_FILTERS)}")
    resample = getattr(Image.Resampling, interpolation.upper())
    if not keep_aspect_ratio:
        return img.resize((target_width, target_height), resample)
    width, height = img.size
    crop_height = min(height, (width * target_height) // target_width)
    crop_width = min(width, (height * target_width) // target_height)
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return img.resize((target_width, target_height), resample,
                      box=(left, top, left + crop_width, top + crop_height))


def img_to_array(img, data_format=None, dtype=None):
    """A PIL image as a 3-D array: ``(height, width, channels)`` (``channels_first``:
    ``(channels, height, width)``), float32 unless ``dtype`` says otherwise."""
    data_format = _data_format(data_format, "img_to_array")
    x = np.asarray(img, dtype="float32" if dtype is None else dtype)
    if x.ndim == 3:
        return x.transpose(2, 0, 1) if data_format == "channels_first" else x
    if x.ndim == 2:
        return x[None] if data_format == "channels_first" else x[:, :, None]
    raise ValueError(f"cnnfast.utils.img_to_array: Unsupported image shape: {x.shape}")


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A 3-D array as a PIL image (Keras's ``keras.utils.array_to_img``).

    With ``scale`` (default) the values are shifted and stretched so that the minimum is 0 and
    the maximum 255; otherwise they are cast to uint8 as they are. 4, 3 and 1 channels give RGBA,
    RGB and grey ("L", or 32-bit "I" when a grey value exceeds 255) images.
    """
    data_format = _data_format(data_format, "array_to_img")
    Image = pil_image("array_to_img")
    x = np.array(x, dtype="float32" if dtype is None else dtype)
    if x.ndim != 3:
        raise ValueError(f"cnnfast.utils.array_to_img: Expected image array to have rank 3 (single image). "
                         f"Got array with shape: {x.shape}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        x_max = np.max(x)
        if x_max != 0:
            x /= x_max
        x *= 255
    channels = x.shape[2]
    if channels == 4:
        return Image.fromarray(x.astype("uint8"), "RGBA")
    if channels == 3:
        return Image.fromarray(x.astype("uint8"), "RGB")
    if channels == 1:
        if np.max(x) > 255:  # 32-bit signed grey
            return Image.fromarray(x[:, :, 0].astype("int32"), "I")
        return Image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"cnnfast.utils.array_to_img: Unsupported channel number: {channels}")


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Save an image array to ``path`` (a path or a file object), as ``array_to_img`` converts it.

    ``file_format`` defaults to the file name's extension (``"jpg"`` means JPEG) and is needed for
    a file object; an RGBA image saved as JPEG becomes RGB, with a warning. ``kwargs`` go to
    ``PIL.Image.Image.save``.
    """
    data_format = _data_format(data_format, "save_img")
    if file_format is None and isinstance(path, (str, pathlib.Path)):
        file_format = pathlib.Path(path).suffix[1:].lower()
    if file_format and file_format.lower() == "jpg":
        file_format = "jpeg"
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and file_format == "jpeg":
        warnings.warn("The JPEG format does not support RGBA images, converting to RGB.", stacklevel=2)
        img = img.convert("RGB")
    img.save(os.fspath(path) if isinstance(path, pathlib.Path) else path, format=file_format, **kwargs)
