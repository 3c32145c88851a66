"""Turn what users have (image or DICOM folders, file -> label tables, MedMNIST files, saved or Hub datasets) into one ``datasets.Dataset``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from .dicom import DICOM_EXTENSIONS
from .errors import DataError
from .imagefiles import (  # noqa: F401  (re-exported: synthxray.data is where users look)
    IMAGE_EXTENSIONS, LABEL_TABLE_EXTENSIONS, IntensityArg, class_folder_files, dataset_window, image_files, load_image_folder,
    load_label_table, read_image,
)
from .intensity import Intensity, array_window, intensity_of, map_deep_dataset, record_intensity, resolve_intensity  # noqa: F401
from .pixels import NonFinitePixels, check_window, is_gray_image, to_8bit, to_mode  # noqa: F401  (to_mode: public)

LOCAL_SUFFIXES = IMAGE_EXTENSIONS | DICOM_EXTENSIONS | LABEL_TABLE_EXTENSIONS | {".npz", ".arrow", ".parquet"}
MEDMNIST_SPLITS = ("train", "val", "test")


def load_dataset(
    source: Any,
    split: str = "train",
    verify: bool = True,
    revision: str | None = None,
    window: Sequence[float] | None = None,
    use_file_window: bool = True,
    invert: bool | None = None,
    intensity: IntensityArg = "dataset",
):
    """Load ``source`` as a ``datasets.Dataset`` with an ``image`` column and a ``label`` ClassLabel.

    ``source`` may be: a folder with one sub-folder per class (images, DICOM files or both), or with
    ``train/``, ``test/``... sub-folders of those; a CSV or JSON file mapping image/DICOM files to labels;
    a MedMNIST ``.npz`` file; a MedMNIST name such as ``"pneumoniamnist"`` (downloaded by the ``medmnist``
    package); a folder written by ``save_to_disk``; a Hub dataset id; or a ``datasets.Dataset`` (returned
    normalised). ``split`` picks the split where the source has several.

    DICOM files, and every file when ``window`` is given, are read once into 8-bit images by the
    pixel rule (:mod:`synthxray.pixels`, :mod:`synthxray.dicom`): ``window`` ``(low, high)``
    overrides the files' own VOI window, ``use_file_window=False`` ignores it (each image's min..max),
    ``invert`` overrides the MONOCHROME1 rule. Only pixels and labels are kept, never a header field
    or a file name. Other image files are decoded lazily and go through the same rule in the transforms.

    ``intensity`` says how deep (12/16-bit, float) images without a window become 8-bit, for every kind
    of source (:mod:`synthxray.intensity`): ``"dataset"`` (the default) maps them all with one window, the
    smallest to the largest value over the dataset, read once, so absolute intensity still separates
    images; a split other than ``train`` of a split folder or an ``.npz`` is mapped with the **train**
    split's window. ``"per-image"`` stretches each image from its own minimum to its maximum (the old rule).
    A recorded mapping (:func:`intensity_of` of another dataset) maps this one the same way. The mapping
    used is recorded in the dataset (:func:`intensity_of`).
    """
    import datasets

    resolve_intensity(intensity, "intensity (--intensity)")  # a bad value fails before anything is read
    pixels = {"window": check_window(window, "window"), "use_file_window": use_file_window, "invert": invert, "intensity": intensity}

    def no_file_options(what: str) -> None:
        if window is not None or not use_file_window or invert is not None:
            raise DataError(f"{source}: window/use_file_window/invert (--window, --ignore_file_window, --invert/--no_invert) "
                            f"apply to image or DICOM folders and file -> label tables, not to {what}; use intensity= there")

    def decoded(ds, where: str):
        return map_deep_dataset(_normalise(ds, where), intensity, where)

    if isinstance(source, (datasets.DatasetDict, datasets.Dataset)):
        no_file_options("a datasets.Dataset")
        if isinstance(source, datasets.DatasetDict):
            return decoded(_pick_split(source, split, "DatasetDict"), "DatasetDict")
        return decoded(source, "dataset")
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix == ".npz":
            no_file_options("an .npz file")
            return load_npz(path, split, intensity=intensity)
        if path.suffix.lower() in LABEL_TABLE_EXTENSIONS:
            return load_label_table(path, verify=verify, **pixels)
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; give a class-folder directory, a CSV/JSON file -> label table, "
            "an .npz or a dataset folder"
        )
    if path.is_dir():
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            no_file_options("a save_to_disk dataset folder")
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                loaded = _pick_split(loaded, split, str(path))
            return decoded(loaded, str(path))
        if (path / split).is_dir() and not image_files(path):
            class_root = path / split
            if all(p.is_dir() for p in class_root.iterdir()) and any(class_root.iterdir()):
                train = path / "train"  # the other splits are mapped with the train split's window
                range_from = train if split != "train" and intensity == "dataset" and train.is_dir() else None
                return load_image_folder(class_root, verify=verify, **pixels, range_from=range_from)
        return load_image_folder(path, verify=verify, **pixels)
    if text.lower() in _medmnist_flags():
        no_file_options("a MedMNIST dataset")
        return load_medmnist(text.lower(), split, intensity=intensity)
    if path.is_symlink():
        raise DataError(f"{text}: a symlink to {os.readlink(path)}, which does not exist")
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text or path.suffix.lower() in LOCAL_SUFFIXES:
        raise DataError(f"{text}: no such file or folder")
    no_file_options("a Hub dataset")
    return decoded(_load_hub(text, split, revision), text)


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


def load_npz(path: str | os.PathLike, split: str = "train", class_names: list[str] | None = None,
             intensity: IntensityArg = "dataset"):
    """A MedMNIST-style npz with ``{split}_images`` and ``{split}_labels`` arrays.

    Deep arrays (uint16, int, float) become 8-bit by ``intensity``: ``"dataset"`` is one window, the
    smallest to the largest value of the ``train_images`` array (of this split's when the file has no
    train split), so every split of the file is mapped alike; the mapping is recorded."""
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

    record = None  # deep arrays: one window for every split of the file (the train split's range), recorded
    if images.dtype not in (np.uint8, np.bool_):
        spec = resolve_intensity(intensity, "intensity (--intensity)")
        train = arrays["train_images"] if "train_images" in arrays.files and len(arrays["train_images"]) else images
        window = array_window([train]) if spec.mode == "dataset" and spec.window is None else spec.window
        record = Intensity(spec.mode, window)
    ds = datasets.Dataset.from_dict(
        {"image": [_npz_image(path, keys[0], i, im, record) for i, im in enumerate(images)],
         "label": labels.astype(int).tolist()},
        features=features,
    )
    return record_intensity(ds, record)


def _npz_image(path: Path, key: str, index: int, image: np.ndarray, record: Intensity | None) -> Image.Image:
    """One array of an .npz by the pixel rule; NaN / infinite pixels are an error naming the file and the image."""
    try:
        return to_8bit(image, record.window if record else None)
    except NonFinitePixels as exc:
        raise NonFinitePixels(f"{path}: {key}[{index}]: {exc}") from None


def load_medmnist(flag: str, split: str = "train", size: int | None = None, root: str | None = None,
                  intensity: IntensityArg = "dataset"):
    """Download (once) a MedMNIST dataset with the ``medmnist`` package and load one split."""
    import medmnist

    root = root or os.path.join(os.path.expanduser("~"), ".medmnist")
    os.makedirs(root, exist_ok=True)
    cls = getattr(medmnist, medmnist.INFO[flag]["python_class"])
    kwargs = {"size": size} if size else {}
    ds = cls(split=split, download=True, root=root, **kwargs)
    return load_npz(ds.npz_file if hasattr(ds, "npz_file") else Path(root) / f"{flag}.npz", split, intensity=intensity)


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
