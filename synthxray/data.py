"""Turn what users have (image or DICOM folders, file -> label tables, MedMNIST files, saved or Hub datasets) into one ``datasets.Dataset``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from .dicom import DICOM_EXTENSIONS, dicom_value_range, is_dicom_file, read_dicom
from .pixels import GRAY_DEEP_MODES, check_intensity, check_window, is_gray_image, to_8bit, to_mode  # noqa: F401  (to_mode: the transforms' public name)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
LABEL_TABLE_EXTENSIONS = {".csv", ".json"}
LOCAL_SUFFIXES = IMAGE_EXTENSIONS | DICOM_EXTENSIONS | LABEL_TABLE_EXTENSIONS | {".npz", ".arrow", ".parquet"}
FILE_COLUMNS = ("file", "path", "filename", "image")
LABEL_COLUMNS = ("label", "class", "class_name", "target")
MEDMNIST_SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """Input data that cannot be read; the message names the file, key or value."""


def load_dataset(
    source: Any,
    split: str = "train",
    verify: bool = True,
    revision: str | None = None,
    window: Sequence[float] | None = None,
    use_file_window: bool = True,
    invert: bool | None = None,
    intensity: str = "dataset",
):
    """Load ``source`` as a ``datasets.Dataset`` with an ``image`` column and a ``label`` ClassLabel.

    ``source`` may be: a folder with one sub-folder per class (images, DICOM files or both); a CSV or
    JSON file mapping image/DICOM files to labels; a MedMNIST ``.npz`` file; a MedMNIST name such as
    ``"pneumoniamnist"`` (downloaded by the ``medmnist`` package); a folder written by
    ``save_to_disk``; a Hub dataset id; or a ``datasets.Dataset`` (returned normalised).
    ``split`` picks the split where the source has several.

    DICOM files, and every file when ``window`` is given, are read once into 8-bit images by the
    pixel rule (:mod:`synthxray.pixels`, :mod:`synthxray.dicom`): ``window`` ``(low, high)``
    overrides the files' own VOI window, ``use_file_window=False`` ignores it (each image's min..max),
    ``invert`` overrides the MONOCHROME1 rule. Only pixels and labels are kept, never a header field
    or a file name. Other image files are decoded lazily and go through the same rule in the transforms.

    ``intensity`` says how deep (12/16-bit, float) images without a window become 8-bit: ``"dataset"``
    (the default) maps them all with one window, the smallest to the largest value over the whole
    dataset (:func:`dataset_window`, one pass before reading), so absolute intensity still separates
    images; ``"per-image"`` stretches each image from its own minimum to its maximum (the old rule).
    The mapping used is recorded in the dataset (:func:`intensity_of`); give the training split's
    ``window`` to map a test split the same way.
    """
    import datasets

    check_intensity(intensity, "intensity (--intensity)")
    pixels = {"window": check_window(window, "window"), "use_file_window": use_file_window, "invert": invert, "intensity": intensity}
    pixel_options = window is not None or not use_file_window or invert is not None or intensity != "dataset"

    def no_pixel_options(what: str) -> None:
        if pixel_options:
            raise DataError(f"{source}: window/use_file_window/invert/intensity (--window, --ignore_file_window, --invert/--no_invert, --intensity) "
                            f"apply to image or DICOM folders and file -> label tables, not to {what}")

    if isinstance(source, (datasets.DatasetDict, datasets.Dataset)):
        no_pixel_options("a datasets.Dataset")
        if isinstance(source, datasets.DatasetDict):
            return _normalise(_pick_split(source, split, "DatasetDict"), "DatasetDict")
        return _normalise(source, "dataset")
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix == ".npz":
            no_pixel_options("an .npz file")
            return load_npz(path, split)
        if path.suffix.lower() in LABEL_TABLE_EXTENSIONS:
            return load_label_table(path, verify=verify, **pixels)
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; give a class-folder directory, a CSV/JSON file -> label table, "
            "an .npz or a dataset folder"
        )
    if path.is_dir():
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            no_pixel_options("a save_to_disk dataset folder")
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                loaded = _pick_split(loaded, split, str(path))
            return _normalise(loaded, str(path))
        if (path / split).is_dir() and not _image_files(path):
            class_root = path / split
            if all(p.is_dir() for p in class_root.iterdir()) and any(class_root.iterdir()):
                return load_image_folder(class_root, verify=verify, **pixels)
        return load_image_folder(path, verify=verify, **pixels)
    if text.lower() in _medmnist_flags():
        no_pixel_options("a MedMNIST dataset")
        return load_medmnist(text.lower(), split)
    if path.is_symlink():
        raise DataError(f"{text}: a symlink to {os.readlink(path)}, which does not exist")
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text or path.suffix.lower() in LOCAL_SUFFIXES:
        raise DataError(f"{text}: no such file or folder")
    no_pixel_options("a Hub dataset")
    return _normalise(_load_hub(text, split, revision), text)


def _load_hub(repo_id: str, split: str, revision: str | None):
    """``datasets.load_dataset`` on a Hub id; a repo that is not there is one line, not a Hub traceback."""
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    try:
        return datasets.load_dataset(repo_id, split=split, revision=revision)
    except (DatasetNotFoundError, FileNotFoundError, ConnectionError) as exc:
        offline = datasets.config.HF_HUB_OFFLINE or "offline" in str(exc).lower()
        why = (" (offline: HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set, so only the local Hub cache was looked in)" if offline
               else " (or the Hub could not be reached)" if isinstance(exc, ConnectionError) else "")
        raise DataError(
            f"{repo_id}: no such folder, and no Hub repo of that name{why}; check the path, or give a Hub dataset id you can read"
        ) from None


# ---- image folders and label tables ----------------------------------------------------------
def _is_input_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and (path.suffix.lower() in IMAGE_EXTENSIONS or is_dicom_file(path))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if _is_input_file(p))


def load_image_folder(
    root: str | os.PathLike,
    verify: bool = True,
    window: Sequence[float] | None = None,
    use_file_window: bool = True,
    invert: bool | None = None,
    intensity: str = "dataset",
):
    """A folder with one sub-folder per class (sub-folder names are the class names, sorted).

    Files may be images (``IMAGE_EXTENSIONS``) or DICOM (``.dcm``, ``.dicom`` or the DICM preamble);
    ``window``/``use_file_window``/``invert``/``intensity`` as in :func:`load_dataset`.
    """
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class sub-folders; expected {root}/<class name>/<images or .dcm files>")
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = _image_files(root / name)
        if not found:
            raise DataError(
                f"{root / name}: class folder {name!r} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS | DICOM_EXTENSIONS))})"
            )
        files.extend(found)
        labels.extend([index] * len(found))
    return _files_dataset(files, labels, classes, verify, window, use_file_window, invert, intensity)


def load_label_table(
    path: str | os.PathLike,
    verify: bool = True,
    window: Sequence[float] | None = None,
    use_file_window: bool = True,
    invert: bool | None = None,
    intensity: str = "dataset",
):
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


def _files_dataset(files: list[Path], labels: list[int], classes: list[str], verify: bool,
                   window: Sequence[float] | None, use_file_window: bool, invert: bool | None, intensity: str = "dataset"):
    """Plain 8-bit images without a window: paths, decoded lazily. DICOM, deep images or any ``window``: read once
    into 8-bit PNGs, deep images without a window of their own by the dataset's one window (``intensity``)."""
    import datasets

    check_intensity(intensity, "intensity (--intensity)")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=classes)})
    default_window = dataset_window(files, use_file_window) if window is None and intensity == "dataset" else None
    if window is None and default_window is None and not any(is_dicom_file(f) for f in files):
        if verify:
            for f in files:
                _verify_image(f)
        ds = datasets.Dataset.from_dict({"image": [str(f) for f in files], "label": labels}, features=features)
        return _record_intensity(ds, "per-image" if intensity == "per-image" and _any_deep(files) else None, None)
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
    if window is not None:
        return _record_intensity(ds, "window", window)
    return _record_intensity(ds, intensity if default_window is not None or intensity != "dataset" else None, default_window)


INTENSITY_KEY = "synthxray_intensity"  # the JSON line in a dataset's info.description that records its pixel mapping


def _is_deep_image(path: Path) -> bool:
    if is_dicom_file(path):
        return False
    try:
        with Image.open(path) as im:
            return im.mode in GRAY_DEEP_MODES
    except (UnidentifiedImageError, OSError):
        return False


def _any_deep(files: Sequence[Path]) -> bool:
    return any(_is_deep_image(f) for f in files)


def dataset_window(files: Sequence[str | os.PathLike], use_file_window: bool = True) -> tuple[float, float] | None:
    """The dataset's one window for its deep images: ``(smallest, largest)`` value over every 12/16-bit or float
    image file, and every DICOM file that has no VOI window of its own (or all of them with
    ``use_file_window=False``), in modality units. ``None`` when no file needs one (8-bit images, files
    with their own window). Reads each such file once (a progress bar from 200 files on)."""
    from tqdm.auto import tqdm

    low, high = np.inf, -np.inf
    for f in tqdm(list(files), desc="intensity range", unit="file", disable=len(files) < 200):
        path = Path(f)
        if is_dicom_file(path):
            found = dicom_value_range(path, use_file_window)
        elif _is_deep_image(path):
            with Image.open(path) as im:
                arr = np.asarray(im, dtype=np.float64)
            finite = arr[np.isfinite(arr)]
            found = (float(finite.min()), float(finite.max())) if finite.size else None
        else:
            found = None
        if found is not None:
            low, high = min(low, found[0]), max(high, found[1])
    if not np.isfinite(low):
        return None
    return (low, high) if high > low else (low, low + 1.0)


def _record_intensity(ds, mode: str | None, window: Sequence[float] | None):
    """Write the pixel mapping into ``ds.info.description`` (kept by ``save_to_disk``), read back by :func:`intensity_of`."""
    import json

    if mode is None:
        return ds
    ds.info.description = json.dumps({INTENSITY_KEY: {"mode": mode, "window": [float(v) for v in window] if window is not None else None}})
    return ds


def intensity_of(ds) -> dict[str, Any] | None:
    """How a dataset's deep images were mapped to 8-bit: ``{"mode": "dataset"|"per-image"|"window", "window": [low, high]}``
    (``window`` None for per-image), or ``None`` when it held no deep image (or came from elsewhere)."""
    import json

    try:
        return json.loads(getattr(ds.info, "description", "") or "{}").get(INTENSITY_KEY)
    except (ValueError, AttributeError):
        return None


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
        return read_dicom(path, window=window, use_file_window=use_file_window, invert=invert, default_window=default_window)
    _verify_image(path)
    with Image.open(path) as im:
        im.load()
        deep_default = default_window if window is None and im.mode in GRAY_DEEP_MODES else None
        return to_8bit(im, window if window is not None else deep_default, invert=bool(invert))


def _verify_image(path: Path) -> None:
    try:
        with Image.open(path) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{path}: unreadable image ({exc}); remove or replace the file") from None


# ---- MedMNIST ---------------------------------------------------------------------------------
def _medmnist_flags() -> set[str]:
    try:
        from medmnist import INFO
    except ImportError:  # pragma: no cover - medmnist is a dependency
        return set()
    return {k for k, v in INFO.items() if len(v.get("n_samples", {})) and "3d" not in k}


def medmnist_class_names(flag: str, num_classes: int) -> list[str]:
    """Class names from the medmnist package's INFO table, else ``"0".."n-1"``."""
    try:
        from medmnist import INFO

        labels = INFO[flag]["label"]
        names = [labels[str(i)] for i in range(len(labels))]
        if len(names) == num_classes:
            return names
    except (ImportError, KeyError):
        pass
    return [str(i) for i in range(num_classes)]


def load_npz(path: str | os.PathLike, split: str = "train", class_names: list[str] | None = None):
    """A MedMNIST-style npz with ``{split}_images`` and ``{split}_labels`` arrays."""
    import datasets

    path = Path(path)
    try:
        arrays = np.load(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot read as .npz ({exc})") from None
    keys = (f"{split}_images", f"{split}_labels")
    missing = [k for k in keys if k not in arrays.files]
    if missing:
        raise DataError(f"{path}: missing key(s) {missing}; the file has {sorted(arrays.files)} (MedMNIST files have train_/val_/test_ images and labels)")
    images, labels = arrays[keys[0]], arrays[keys[1]]
    if labels.ndim == 2:
        if labels.shape[1] != 1:
            raise DataError(f"{path}: {keys[1]} has shape {labels.shape}; multi-label files are not supported")
        labels = labels[:, 0]
    if len(images) != len(labels):
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels in split {split!r}")
    if images.ndim not in (3, 4):
        raise DataError(f"{path}: {keys[0]} has shape {images.shape}; expected (N, H, W) or (N, H, W, C)")
    if len(images) == 0:
        splits = sorted(k[: -len("_images")] for k in arrays.files if k.endswith("_images") and len(arrays[k]))
        raise DataError(f"{path}: split {split!r} holds no images ({keys[0]} has shape {images.shape}); "
                        f"splits with images: {splits or 'none'}")
    num_classes = int(max(int(arrays[k].max()) for k in arrays.files if k.endswith("_labels") and arrays[k].size) + 1)
    flag = path.stem.split("_")[0].lower()
    names = class_names or medmnist_class_names(flag, num_classes)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})

    return datasets.Dataset.from_dict(
        {"image": [to_8bit(i) for i in images], "label": labels.astype(int).tolist()},
        features=features,
    )


def load_medmnist(flag: str, split: str = "train", size: int | None = None, root: str | None = None):
    """Download (once) a MedMNIST dataset with the ``medmnist`` package and load one split."""
    import medmnist

    root = root or os.path.join(os.path.expanduser("~"), ".medmnist")
    os.makedirs(root, exist_ok=True)
    cls = getattr(medmnist, medmnist.INFO[flag]["python_class"])
    kwargs = {"size": size} if size else {}
    ds = cls(split=split, download=True, root=root, **kwargs)
    return load_npz(ds.npz_file if hasattr(ds, "npz_file") else Path(root) / f"{flag}.npz", split)


# ---- other datasets ---------------------------------------------------------------------------
def _pick_split(dd, split: str, where: str):
    if split in dd:
        return dd[split]
    raise DataError(f"{where}: no split {split!r}; available splits: {list(dd)}")


def _normalise(ds, where: str):
    """Rename the image and label columns to ``image``/``label`` and make sure label is a ClassLabel."""
    import datasets

    feats = ds.features
    image_col = "image" if "image" in feats else next((k for k, v in feats.items() if isinstance(v, datasets.Image)), None)
    if image_col is None:
        raise DataError(f"{where}: no image column; columns are {list(feats)}")
    label_col = "label" if "label" in feats else next(
        (k for k, v in feats.items() if isinstance(v, datasets.ClassLabel)),
        next((k for k in ("labels", "class", "target") if k in feats), None),
    )
    if label_col is None:
        raise DataError(f"{where}: no label column; columns are {list(feats)} (expected 'label' or a ClassLabel)")
    if image_col != "image":
        ds = ds.rename_column(image_col, "image")
    if label_col != "label":
        ds = ds.rename_column(label_col, "label")
    if not isinstance(ds.features["label"], datasets.ClassLabel):
        ds = ds.class_encode_column("label")
    return ds


def class_names(ds) -> list[str]:
    return list(ds.features["label"].names)


# ---- pixels ------------------------------------------------------------------------------------
def is_grayscale(ds, probe: int = 8) -> bool:
    """True when the images are single-channel (8/16-bit, float) or RGB with equal channels (X-rays saved as RGB JPEG)."""
    n = min(probe, len(ds))
    if n == 0:
        raise DataError("the dataset is empty")
    return all(is_gray_image(ds[int(i)]["image"]) for i in np.linspace(0, len(ds) - 1, n).astype(int))


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """The pixel rule (:func:`synthxray.pixels.to_8bit`), then resize the short side to ``size``
    (antialiased) and centre-crop a square: no distortion."""
    image = to_8bit(image)
    w, h = image.size
    scale = size / min(w, h)
    if (w, h) != (size, size):
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        image = image.resize((nw, nh), Image.Resampling.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return image


def image_transform(size: int, channels: int, augment: Callable | None = None, normalize: bool = True):
    """PIL -> float tensor (C, size, size), in [-1, 1] when ``normalize``, else [0, 1]."""
    import torch

    def apply(image: Image.Image):
        image = to_mode(resize_center_crop(image, size), channels)
        if augment is not None:
            image = augment(image)
        arr = np.asarray(image, dtype=np.float32) / 255.0
        if arr.ndim == 2:
            arr = arr[None]
        else:
            arr = arr.transpose(2, 0, 1)
        t = torch.from_numpy(np.ascontiguousarray(arr))
        return t * 2 - 1 if normalize else t

    return apply


def with_image_transform(ds, size: int, channels: int, augment: Callable | None = None, normalize: bool = True):
    """A view of ``ds`` yielding ``{"pixel_values": tensor, "label": int}``, decoded lazily."""
    tf = image_transform(size, channels, augment, normalize)

    def batch(examples: dict) -> dict:
        return {"pixel_values": [tf(im) for im in examples["image"]], "label": examples["label"]}

    return ds.with_transform(batch)
