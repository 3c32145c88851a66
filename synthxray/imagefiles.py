"""Image and DICOM files -> ``datasets.Dataset``: class folders, file -> label tables, one file at a time.

Every file is opened once before the dataset is built (:func:`_scan`: readable? deep? its value range when
the dataset's window is measured); 8-bit images are then decoded lazily in the transforms, while DICOM
files, deep images and any ``window`` are read once more, into 8-bit PNGs, by the pixel rule
(:mod:`synthxray.pixels`, :mod:`synthxray.dicom`) and the intensity mapping (:mod:`synthxray.intensity`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from .dicom import DICOM_EXTENSIONS, dicom_value_range, is_dicom_file, read_dicom
from .errors import DataError
from .intensity import Intensity, array_window, record_intensity, resolve_intensity
from .pixels import GRAY_DEEP_MODES, NonFinitePixels, Window, to_8bit

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
LABEL_TABLE_EXTENSIONS = {".csv", ".json"}
FILE_COLUMNS = ("file", "path", "filename", "image")
LABEL_COLUMNS = ("label", "class", "class_name", "target")
IntensityArg = str | Mapping[str, Any] | Intensity


def is_input_file(path: Path) -> bool:
    """An image (:data:`IMAGE_EXTENSIONS`) or DICOM file, not hidden."""
    return path.is_file() and not path.name.startswith(".") and (path.suffix.lower() in IMAGE_EXTENSIONS or is_dicom_file(path))


def image_files(folder: Path) -> list[Path]:
    """The image and DICOM files directly in ``folder``, sorted."""
    return sorted(p for p in folder.iterdir() if is_input_file(p))


def class_folder_files(root: str | os.PathLike) -> tuple[list[str], list[Path], list[int]]:
    """``(class names, files, labels)`` of a folder with one sub-folder per class (names sorted)."""
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class sub-folders; expected {root}/<class name>/<images or .dcm files>")
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = image_files(root / name)
        if not found:
            raise DataError(
                f"{root / name}: class folder {name!r} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS | DICOM_EXTENSIONS))})"
            )
        files.extend(found)
        labels.extend([index] * len(found))
    return classes, files, labels


def load_image_folder(root: str | os.PathLike, verify: bool = True, window: Sequence[float] | None = None,
                      use_file_window: bool = True, invert: bool | None = None, intensity: IntensityArg = "dataset",
                      range_from: str | os.PathLike | None = None):
    """A folder with one sub-folder per class (sub-folder names are the class names, sorted).

    Files may be images (``IMAGE_EXTENSIONS``) or DICOM (``.dcm``, ``.dicom`` or the DICM preamble);
    ``window``/``use_file_window``/``invert``/``intensity`` as in :func:`synthxray.data.load_dataset`;
    ``range_from``: another class folder whose files give the dataset window (a split folder's train split),
    read only when this folder holds images that need it.
    """
    classes, files, labels = class_folder_files(root)
    window_files = class_folder_files(range_from)[1] if range_from is not None else None
    return _files_dataset(files, labels, classes, verify, window, use_file_window, invert, intensity, window_files)


def load_label_table(path: str | os.PathLike, verify: bool = True, window: Sequence[float] | None = None,
                     use_file_window: bool = True, invert: bool | None = None, intensity: IntensityArg = "dataset"):
    """A CSV (columns ``file`` and ``label``) or JSON (``{file: label}`` or ``[{"file", "label"}]``) table.

    Relative file paths are read from the table's folder; class names are the distinct labels, sorted
    (numerically when all are integers).
    """
    path = Path(path)
    try:
        rows = _read_table(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the file -> label table ({exc})") from None
    if not rows:
        raise DataError(f"{path}: the table lists no files")
    files = [p if p.is_absolute() else path.parent / p for p in (Path(f).expanduser() for f, _ in rows)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{path}: {len(missing)} listed file(s) do not exist, e.g. {missing[0]}; fix the table or the paths")
    names = sorted({lab for _, lab in rows}, key=lambda s: (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s))
    index = {n: i for i, n in enumerate(names)}
    return _files_dataset(files, [index[lab] for _, lab in rows], names, verify, window, use_file_window, invert, intensity)


def _read_table(path: Path) -> list[tuple[str, str]]:
    import csv
    import json

    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
            fcol = next((cols[c] for c in FILE_COLUMNS if c in cols), None)
            lcol = next((cols[c] for c in LABEL_COLUMNS if c in cols), None)
            if fcol is None or lcol is None:
                raise ValueError(f"needs a file column ({'/'.join(FILE_COLUMNS)}) and a label column ({'/'.join(LABEL_COLUMNS)}); "
                                 f"the header is {reader.fieldnames}")
            return [(r[fcol].strip(), str(r[lcol]).strip()) for r in reader if (r.get(fcol) or "").strip()]
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        return [(str(k), str(v)) for k, v in data.items()]
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        out = []
        for r in data:
            fk = next((k for k in r if k.lower() in FILE_COLUMNS), None)
            lk = next((k for k in r if k.lower() in LABEL_COLUMNS), None)
            if fk is None or lk is None:
                raise ValueError(f"each entry needs a file key ({'/'.join(FILE_COLUMNS)}) and a label key; got {sorted(r)}")
            out.append((str(r[fk]), str(r[lk])))
        return out
    raise ValueError('expected {"file": "label", ...} or [{"file": ..., "label": ...}, ...]')


def _scan(files: Sequence[Path], use_file_window: bool, verify: bool, measure: bool) -> tuple[Window | None, bool]:
    """One open per file: ``(the value range of the files that need the dataset's window, when measure; any
    deep image file?)``. Checks every image is readable when ``verify`` (a deep one by decoding it)."""
    from tqdm.auto import tqdm

    ranges, any_deep = [], False
    for path in tqdm(files, desc="intensity range" if measure else "checking files", unit="file", disable=len(files) < 200):
        if is_dicom_file(path):
            found = dicom_value_range(path, use_file_window) if measure else None
            if found is not None:
                ranges.append(np.asarray(found))
            continue
        try:
            with Image.open(path) as im:
                deep = im.mode in GRAY_DEEP_MODES
                any_deep |= deep
                if deep and measure:
                    ranges.append(np.asarray(im))
                elif verify:
                    im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DataError(f"{path}: unreadable image ({exc}); remove or replace the file") from None
    return array_window(ranges), any_deep  # the one range rule (synthxray.intensity)


def dataset_window(files: Sequence[str | os.PathLike], use_file_window: bool = True) -> Window | None:
    """The dataset's one window for its deep images: ``(smallest, largest)`` value over every 12/16-bit or float
    image file, and every DICOM file that has no VOI window of its own (or all of them with
    ``use_file_window=False``), in modality units. ``None`` when no file needs one (8-bit images, files
    with their own window). Reads each such file once (a progress bar from 200 files on)."""
    return _scan([Path(f) for f in files], use_file_window, verify=False, measure=True)[0]


def _files_dataset(files: list[Path], labels: list[int], classes: list[str], verify: bool, window: Sequence[float] | None,
                  use_file_window: bool, invert: bool | None, intensity: IntensityArg = "dataset",
                  window_files: Sequence[Path] | None = None):
    """Plain 8-bit images without a window: paths, decoded lazily. DICOM, deep images or any ``window``: read once
    into 8-bit PNGs, deep images without a window of their own by ``intensity``; the mapping is recorded.
    ``window_files``: measure the dataset window over these instead (only when these files need one)."""
    import datasets

    spec = resolve_intensity(intensity)
    if window is None and spec.mode == "window":
        window = spec.window
    measure = window is None and spec.mode == "dataset" and spec.window is None
    measured, any_deep = _scan(files, use_file_window, verify, measure and window_files is None)
    any_dicom = any(is_dicom_file(f) for f in files)
    if measure and window_files is not None and (any_deep or any_dicom):
        measured = dataset_window(window_files, use_file_window)
    default_window = (measured if measure else spec.window if spec.mode == "dataset" and (any_deep or any_dicom) else None)
    if window is not None:
        record: Intensity | None = Intensity("window", tuple(window))
    elif default_window is not None:
        record = Intensity("dataset", default_window)
    else:
        record = Intensity("per-image") if spec.mode == "per-image" and any_deep else None
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=classes)})
    if window is None and default_window is None and not any_dicom:
        ds = datasets.Dataset.from_dict({"image": [str(f) for f in files], "label": labels}, features=features)
        return record_intensity(ds, record)
    # a tuple, not a list: datasets would shard a list into one job per file; the stamps re-key the cache when a file changes
    rows = tuple((str(f), *_stamp(f), label) for f, label in zip(files, labels))
    kwargs = {"rows": rows, "window": window, "use_file_window": use_file_window, "invert": invert, "default_window": default_window}
    try:
        ds = datasets.Dataset.from_generator(_read_rows, features=features, gen_kwargs=kwargs)
    except datasets.exceptions.DatasetGenerationError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ValueError):
            raise DataError(str(cause)) from None
        raise
    return record_intensity(ds, record)


def _read_rows(rows: tuple, window, use_file_window: bool, invert: bool | None, default_window=None):
    import io

    for file, _mtime, _size, label in rows:
        image = read_image(file, window=window, use_file_window=use_file_window, invert=invert, default_window=default_window)
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=1)
        yield {"image": {"bytes": buf.getvalue(), "path": None}, "label": label}


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def read_image(path: str | os.PathLike, window: Sequence[float] | None = None, use_file_window: bool = True,
               invert: bool | None = None, default_window: Sequence[float] | None = None) -> Image.Image:
    """One image or DICOM file -> 8-bit L/RGB image by the pixel rule (DICOM: :func:`synthxray.dicom.read_dicom`);
    ``default_window`` maps a deep image that has no window of its own (the dataset's, :func:`dataset_window`)."""
    path = Path(path)
    if is_dicom_file(path):
        try:
            return read_dicom(path, window=window, use_file_window=use_file_window, invert=invert,
                              default_window=default_window)
        except NonFinitePixels as exc:
            raise NonFinitePixels(f"{path}: {exc}") from None
    try:
        with Image.open(path) as im:
            im.load()
            deep_default = default_window if window is None and im.mode in GRAY_DEEP_MODES else None
            return to_8bit(im, window if window is not None else deep_default, invert=bool(invert))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{path}: unreadable image ({exc}); remove or replace the file") from None
