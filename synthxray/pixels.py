"""The one pixel rule: every image synthxray reads (PNG, TIFF, JPEG, DICOM) becomes 8-bit L or RGB here.

Training, generation, evaluation and the experiments all call :func:`to_8bit` (through
``synthxray.data``'s transforms), so a 16-bit radiograph looks the same to all of them:

- 8-bit images (L, RGB, palette, ...) keep their values; alpha is dropped.
- Deeper images (16-bit ``I;16``, 32-bit ``I``, float ``F``, numpy arrays of any other dtype) are
  rescaled to 0..255 linearly from ``low`` to ``high`` of a ``window`` ``(low, high)``, values outside
  clipped. Without a window, from the image's own minimum to its maximum (a constant image becomes
  black): that is the ``"per-image"`` intensity mode, which loses the absolute value. Datasets read
  through :func:`synthxray.data.load_dataset` default to ``intensity="dataset"``: one window for the
  whole dataset (the smallest and largest value over all its deep images, read once), so the contrast
  between images is kept (:data:`INTENSITIES`).
- Grayscale stays grayscale (mode L); colour stays RGB.
- A deep image with NaN or infinite pixels is refused (:class:`NonFinitePixels`, naming the file when the
  image has one): there is no truthful grey level for them.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np
from PIL import Image

from .errors import DataError

Window = Tuple[float, float]
INTENSITIES = ("dataset", "per-image")  # how deep images without a window become 8-bit: one mapping for the dataset, or each its own


def check_intensity(value: str, what: str = "intensity") -> str:
    """``value`` if it is one of :data:`INTENSITIES`, else a ``ValueError`` naming ``what`` and the choices."""
    if value not in INTENSITIES:
        raise ValueError(f"{what} must be one of {list(INTENSITIES)}, got {value!r}")
    return value
GRAY_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
GRAY_MODES = ("1", "L", "LA", "La") + GRAY_DEEP_MODES


def check_window(window: Sequence[float] | None, what: str = "window") -> Window | None:
    """``(low, high)`` as floats, or ``None``; anything else is a ``ValueError`` naming ``what``."""
    if window is None:
        return None
    try:
        low, high = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be two numbers LOW,HIGH, got {window!r}") from None
    if not np.isfinite([low, high]).all() or not high > low:
        raise ValueError(f"{what} must be two finite numbers with LOW < HIGH, got {low:g},{high:g}")
    return low, high


def parse_window(text: str | None, what: str = "--window") -> Window | None:
    """``"LOW,HIGH"`` (e.g. ``"0,4095"``) -> ``(low, high)``."""
    if text is None or str(text).strip() == "":
        return None
    parts = str(text).replace(":", ",").split(",")
    if len(parts) != 2:
        raise ValueError(f"{what} expects LOW,HIGH (e.g. 0,4095), got {text!r}")
    return check_window(parts, what)


def window_from_center_width(center: float, width: float) -> Window:
    """The DICOM linear VOI window (PS3.3 C.11.2.1.2): values below ``low`` are black, above ``high`` white."""
    if not width >= 1:
        raise ValueError(f"window width must be >= 1, got {width:g}")
    return center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2


class NonFinitePixels(DataError):
    """An image with NaN or infinite pixels; callers that know the file (or the row) put it in front of the message."""


def check_finite(arr: np.ndarray) -> None:
    """Raise :class:`NonFinitePixels` (how many NaN / inf pixels) unless every value of ``arr`` is finite."""
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        nan, inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
        raise NonFinitePixels(f"{nan} NaN and {inf} infinite pixel(s) of {arr.size}; "
                              "replace them with finite values (e.g. numpy.nan_to_num) or remove the image")


def rescale(values: np.ndarray, window: Sequence[float] | None = None) -> np.ndarray:
    """Any numeric array -> uint8: ``window`` ``(low, high)`` mapped to 0..255 (clipped), else min..max.

    NaN / infinite values are an error (:func:`check_finite`)."""
    arr = np.asarray(values, dtype=np.float64)
    check_finite(arr)
    if window is not None:
        low, high = check_window(window)  # type: ignore[misc]
    else:
        if arr.size == 0:
            return np.zeros(arr.shape, dtype=np.uint8)
        low, high = float(arr.min()), float(arr.max())
        if high <= low:
            return np.zeros(arr.shape, dtype=np.uint8)
    out = (arr - low) * (255.0 / (high - low))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def to_8bit(image: Union[Image.Image, np.ndarray], window: Sequence[float] | None = None, invert: bool = False) -> Image.Image:
    """The pixel rule (see the module docstring): any image or array -> 8-bit PIL image, mode L or RGB.

    ``window`` ``(low, high)`` maps those values to black and white (also for 8-bit images);
    ``invert`` makes white black (DICOM MONOCHROME1). NaN / infinite pixels: :class:`NonFinitePixels`,
    naming the file of a PIL image opened from one.
    """
    try:
        return _to_8bit(image, window, invert)
    except NonFinitePixels as exc:
        name = getattr(image, "filename", None)
        if name:
            raise NonFinitePixels(f"{name}: {exc}") from None
        raise


def _to_8bit(image: Union[Image.Image, np.ndarray], window: Sequence[float] | None, invert: bool) -> Image.Image:
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim == 3 and arr.shape[-1] == 4:
            arr = arr[..., :3]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
            raise ValueError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {arr.shape}")
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8) * 255
        out = arr if (arr.dtype == np.uint8 and window is None) else rescale(arr, window)
        mode = "L" if out.ndim == 2 else "RGB"
    else:
        mode = image.mode
        if mode in GRAY_DEEP_MODES:
            out = rescale(np.asarray(image), window)
            mode = "L"
        else:
            if mode not in ("L", "RGB"):
                image = image.convert("L" if mode in GRAY_MODES else "RGB")
                mode = image.mode
            if window is None and not invert:
                return image
            out = np.asarray(image)
            if window is not None:
                out = rescale(out, window)
    if invert:
        out = 255 - out
    return Image.fromarray(np.ascontiguousarray(out, dtype=np.uint8), mode=mode)


def is_gray_image(image: Image.Image, tolerance: int = 2) -> bool:
    """True for a single-channel image, or RGB whose channels agree within ``tolerance`` (X-rays saved as RGB)."""
    if image.mode in GRAY_MODES:
        return True
    arr = np.asarray(to_8bit(image).convert("RGB"), dtype=np.int16)
    return bool(np.abs(arr[..., 0] - arr[..., 1]).max() <= tolerance and np.abs(arr[..., 1] - arr[..., 2]).max() <= tolerance)


def to_mode(image: Image.Image, channels: int) -> Image.Image:
    """:func:`to_8bit`, then 1 channel (L) or 3 (RGB; grayscale repeated)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    image = to_8bit(image)
    return image.convert("L" if channels == 1 else "RGB")
