"""Read one DICOM file into an 8-bit image with ``pydicom``: pixels only, never a header value.

Order (DICOM PS3.3 C.11): the modality LUT (rescale slope/intercept, or a Modality LUT Sequence),
then the VOI transform (a ``window`` you give; else the file's VOI LUT Sequence or window
centre/width, unless ``use_file_window=False``; else the image's own min..max), then MONOCHROME1 is
inverted so bone is white. The result goes through :func:`synthxray.pixels.to_8bit`. Multi-frame
files are refused; compressed pixel data that needs a decoder that is not installed is an error that
names the package to install. No header field (names, IDs, dates, institution) is returned, logged
or put in an error message: messages name the file, the transfer syntax and the pixel attributes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .pixels import check_window, rescale, to_8bit, window_from_center_width

DICOM_EXTENSIONS = {".dcm", ".dicom"}

# transfer syntax UID prefix -> what to pip install for pydicom to decode it
_DECODERS = {
    "1.2.840.10008.1.2.4.5": "pylibjpeg pylibjpeg-libjpeg",  # JPEG baseline / extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.8": "pylibjpeg pylibjpeg-libjpeg",  # JPEG-LS
    "1.2.840.10008.1.2.4.9": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.4.20": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K
}


class DicomError(ValueError):
    """A DICOM file that cannot be turned into an image; the message names the file and what to do."""


def is_dicom_file(path: str | os.PathLike) -> bool:
    """``.dcm``/``.dicom``, or an extension-less file with the ``DICM`` preamble."""
    path = Path(path)
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    if path.suffix or not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def decoder_hint(transfer_syntax: str) -> str:
    """The pip command that lets pydicom decode ``transfer_syntax``."""
    for prefix, packages in _DECODERS.items():
        if str(transfer_syntax).startswith(prefix):
            return f"pip install {packages}"
    return "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg (or python-gdcm)"


def read_dicom(
    path: str | os.PathLike,
    window: Sequence[float] | None = None,
    use_file_window: bool = True,
    invert: bool | None = None,
    default_window: Sequence[float] | None = None,
) -> Image.Image:
    """One single-frame DICOM file -> 8-bit PIL image (L for grayscale, RGB for colour).

    ``window`` ``(low, high)`` is in modality units (after rescale slope/intercept, e.g. Hounsfield
    units for CT) and overrides the file's own VOI; ``use_file_window=False`` ignores the file's VOI
    and rescales each image from its minimum to its maximum, or by ``default_window`` when given (the dataset's
    one mapping, :func:`synthxray.data.dataset_window`); ``invert`` overrides the MONOCHROME1 rule.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    path = Path(path)
    window = check_window(window)
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError) as exc:
        raise DicomError(f"{path}: not a readable DICOM file ({type(exc).__name__}); remove or replace it") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicomError(f"{path}: the DICOM file holds no pixel data (a report or structured document?); remove it")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DicomError(f"{path}: multi-frame DICOM ({frames} frames) is not supported; export single-frame images (one file per frame)")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises RuntimeError/NotImplementedError/ValueError per plugin
        if syntax is not None and getattr(syntax, "is_compressed", False):
            raise DicomError(
                f"{path}: pixel data is compressed ({syntax.name}) and no installed decoder reads it; {decoder_hint(syntax)}"
            ) from None
        raise DicomError(f"{path}: cannot decode the pixel data ({type(exc).__name__}: {_first_line(exc)})") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):  # colour (pydicom converts YBR to RGB)
        return to_8bit(arr, window)
    if arr.ndim != 2:
        raise DicomError(f"{path}: pixel array of shape {arr.shape} is not a single 2-D image")
    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    if window is not None:
        out = rescale(values, window)
    elif use_file_window and "VOILUTSequence" in ds:
        lut = ds.VOILUTSequence[0]
        bits = int(lut.LUTDescriptor[2]) if "LUTDescriptor" in lut else 16
        looked_up = apply_voi_lut(np.rint(values).astype(np.int64), ds, index=0, prefer_lut=True)  # a LUT is indexed by integers
        out = rescale(np.asarray(looked_up, dtype=np.float64), (0, 2**bits - 1))
    elif use_file_window and "WindowCenter" in ds and "WindowWidth" in ds:
        out = _window(values, _first(ds.WindowCenter), _first(ds.WindowWidth), str(ds.get("VOILUTFunction", "LINEAR")).upper())
    else:
        out = rescale(values, check_window(default_window, "default_window"))
    if invert if invert is not None else photometric == "MONOCHROME1":
        out = 255 - out
    return Image.fromarray(out, mode="L")


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    if function == "SIGMOID":
        return np.clip(255.0 / (1.0 + np.exp(-4.0 * (values - center) / max(width, 1e-6))) + 0.5, 0, 255).astype(np.uint8)
    if function == "LINEAR_EXACT":
        return rescale(values, (center - width / 2, center + width / 2))
    return rescale(values, window_from_center_width(center, width))


def _first(value) -> float:
    """WindowCenter/WindowWidth may hold several values (several windows): the first is the default."""
    if isinstance(value, (list, tuple)) or hasattr(value, "__getitem__") and not isinstance(value, (str, bytes)):
        value = value[0]
    return float(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def dicom_value_range(path: str | os.PathLike, use_file_window: bool = True) -> tuple[float, float] | None:
    """``(min, max)`` of a grayscale DICOM file's modality values when :func:`read_dicom` would map it without a
    window of its own (no VOI in the file, or ``use_file_window=False``); ``None`` when the file's VOI applies
    or the image is colour. One pass of :func:`synthxray.data.dataset_window`."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
        if use_file_window and ("VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)):
            return None
        arr = ds.pixel_array
    except Exception as exc:  # read_dicom, which runs next on the same file, raises the error that says what to do
        raise DicomError(f"{path}: cannot read the DICOM file ({type(exc).__name__}: {_first_line(exc)})") from None
    if arr.ndim != 2:
        return None
    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else None
