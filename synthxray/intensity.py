"""How a dataset's deep (12/16-bit, float) images become 8-bit, and the record of it.

Three ways, named by ``intensity`` in :func:`synthxray.data.load_dataset` (and ``synthxray prepare --intensity``):

- ``"dataset"`` (the default): one window for the whole dataset, its smallest to its largest value, read
  once; so the absolute value (density, HU) still separates images.
- ``"per-image"``: each image from its own minimum to its maximum (absolute intensity lost).
- a **recorded mapping**, ``{"mode": ..., "window": [low, high]}`` as :func:`intensity_of` returns it for
  a dataset (or a generator's ``synthxray.json`` holds in ``data.intensity``): that same mapping again, so
  a test split, a new site's folder or a deep ``.npz`` split is mapped exactly as the training data was.
  Mode ``"dataset"`` is a default window (DICOM files with their own VOI window keep it); mode ``"window"``
  is a window the user gave, which overrides the files' own.

The mapping used is written as JSON into ``ds.info.description`` (kept by ``save_to_disk`` and
``push_to_hub``), read back by :func:`intensity_of`, and copied into generators' ``synthxray.json``,
generated datasets' ``synthxray_dataset.json`` and both cards (:func:`recorded_intensity` reads any of them).
Imports only the leaves :mod:`synthxray.errors`, :mod:`synthxray.manifest` and :mod:`synthxray.pixels`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .errors import DataError
from .manifest import DATASET_MANIFEST, GENERATOR_CONFIG
from .pixels import GRAY_DEEP_MODES, NonFinitePixels, Window, check_intensity, check_window, to_8bit

INTENSITY_KEY = "synthxray_intensity"  # the JSON key in a dataset's info.description that records its pixel mapping
RECORD_MODES = ("dataset", "per-image", "window")


@dataclass(frozen=True)
class Intensity:
    """One pixel mapping: ``mode`` (:data:`RECORD_MODES`) and its ``window`` (``None``: per-image, or a dataset
    window still to be measured)."""

    mode: str
    window: Window | None = None

    def record(self) -> dict[str, Any]:
        """The JSON form stored in datasets, ``synthxray.json`` and manifests."""
        return {"mode": self.mode, "window": [float(v) for v in self.window] if self.window is not None else None}


def resolve_intensity(value: str | Mapping[str, Any] | Intensity, what: str = "intensity") -> Intensity:
    """``"dataset"``, ``"per-image"``, a recorded mapping (a dict as :func:`intensity_of` returns) or an
    :class:`Intensity` -> :class:`Intensity`; anything else is a ``DataError`` naming ``what``."""
    if isinstance(value, Intensity):
        return value
    if isinstance(value, str):
        return Intensity(check_intensity(value, what))
    if not isinstance(value, Mapping):
        raise DataError(f"{what} must be 'dataset', 'per-image' or a recorded mapping {{'mode': ..., 'window': [low, high]}}, got {value!r}")
    mode = value.get("mode")
    if mode not in RECORD_MODES:
        raise DataError(f"{what}: a recorded mapping's 'mode' must be one of {list(RECORD_MODES)}, got {mode!r}")
    window = value.get("window")
    if mode == "per-image":
        return Intensity("per-image")
    if window is None:
        if mode == "window":
            raise DataError(f"{what}: a recorded mapping with mode 'window' needs its 'window' [low, high]")
        return Intensity("dataset")
    try:
        return Intensity(mode, check_window(window, f"{what} window"))
    except ValueError as exc:
        raise DataError(str(exc)) from None


def record_intensity(ds: Any, intensity: Intensity | None) -> Any:
    """Write ``intensity`` into ``ds.info.description`` (nothing when ``None``); returns ``ds``."""
    if intensity is not None:
        ds.info.description = json.dumps({INTENSITY_KEY: intensity.record()})
    return ds


def intensity_of(ds: Any) -> dict[str, Any] | None:
    """How a dataset's deep images were mapped to 8-bit: ``{"mode": "dataset"|"per-image"|"window", "window": [low, high]}``
    (``window`` None for per-image), or ``None`` when it held no deep image (or came from elsewhere). Give it
    back as ``intensity=`` to map another split the same way."""
    try:
        return json.loads(getattr(ds.info, "description", "") or "{}").get(INTENSITY_KEY)
    except (ValueError, AttributeError):
        return None


def recorded_intensity(folder: Any) -> dict[str, Any] | None:
    """The mapping recorded in a loaded generator (its ``info.data``) or a folder synthxray wrote: a generator
    (``synthxray.json`` ``data.intensity``), a generated dataset (``synthxray_dataset.json``) or a ``save_to_disk`` /
    ``synthxray prepare`` dataset (``dataset_info.json``); ``None`` when none is recorded. A folder that is none of
    these is a ``DataError``."""
    data = getattr(getattr(folder, "info", None), "data", None)
    if isinstance(data, Mapping):  # a loaded Generator: GeneratorInfo.data is synthxray.json's "data"
        return data.get("intensity")
    path = Path(folder).expanduser()
    sources = [(path / GENERATOR_CONFIG, lambda d: (d.get("data") or {}).get("intensity")),
               (path / DATASET_MANIFEST, lambda d: d.get("intensity")),
               (path / "dataset_info.json", lambda d: json.loads(d.get("description") or "{}").get(INTENSITY_KEY))]
    found = [(f, get) for f, get in sources if f.is_file()]
    if not found:
        raise DataError(f"{path}: no synthxray.json, synthxray_dataset.json or dataset_info.json here to read a recorded "
                        "pixel mapping from; give a generator folder or a dataset folder synthxray wrote")
    for f, get in found:
        try:
            record = get(json.loads(f.read_text()))
        except (ValueError, AttributeError) as exc:
            raise DataError(f"{f}: cannot read the recorded pixel mapping ({exc})") from None
        if record:
            return record
    return None


def array_window(arrays: Iterable[np.ndarray]) -> Window | None:
    """``(smallest, largest)`` finite value over ``arrays`` (``None`` when there is none); a constant set
    gets a window one unit wide, so it maps to black rather than failing."""
    low, high = np.inf, -np.inf
    for arr in arrays:
        values = np.asarray(arr, dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size:
            low, high = min(low, float(finite.min())), max(high, float(finite.max()))
    if not np.isfinite(low):
        return None
    return (low, high) if high > low else (low, low + 1.0)


def _is_deep(image: Any) -> bool:
    return getattr(image, "mode", None) in GRAY_DEEP_MODES


def map_deep_dataset(ds: Any, intensity: str | Mapping[str, Any] | Intensity = "dataset", where: str = "dataset",
                     probe: int = 16, progress: bool = True) -> Any:
    """A ``datasets.Dataset`` whose images are already decoded objects (a saved, Hub or in-memory dataset)
    with its deep images mapped to 8-bit PNGs by ``intensity``, and the mapping recorded.

    ``probe`` evenly spaced rows are looked at first: when none is deep, ``ds`` comes back unchanged (an
    8-bit dataset, such as one synthxray wrote, costs nothing). ``"per-image"`` only records the rule (the
    transforms stretch each image); ``"dataset"`` reads every image once for the range, then maps them;
    a recorded window is applied as it is. 8-bit images are left as they are.
    """
    spec = resolve_intensity(intensity)
    n = len(ds)
    rows = np.unique(np.linspace(0, n - 1, min(probe, n)).astype(int)) if n else []
    if not any(_is_deep(ds[int(i)]["image"]) for i in rows):
        return ds
    if spec.mode == "per-image":
        return record_intensity(ds, spec)
    window = spec.window
    if window is None:
        from tqdm.auto import tqdm

        images = ds.select_columns(["image"])
        window = array_window(
            np.asarray(im) for batch in tqdm(images.iter(batch_size=64), total=(n + 63) // 64, desc=f"intensity range ({where})",
                                             unit="batch", disable=not progress) for im in batch["image"] if _is_deep(im))
    def to_8bit_rows(batch: dict, rows: list[int]) -> dict:
        out = []
        for row, im in zip(rows, batch["image"]):
            try:
                out.append(to_8bit(im, window) if _is_deep(im) else im)
            except NonFinitePixels as exc:
                raise NonFinitePixels(f"{where}: row {row}: {exc}") from None
        return {"image": out}

    mapped = ds.map(to_8bit_rows, with_indices=True, batched=True, batch_size=64, desc="8-bit" if progress else None)
    return record_intensity(mapped, Intensity(spec.mode, window))
