"""Turn what users have (image folders, MedMNIST files, saved or Hub datasets) into one ``datasets.Dataset``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
MEDMNIST_SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """Input data that cannot be read; the message names the file, key or value."""


def load_dataset(source: Any, split: str = "train", verify: bool = True, revision: str | None = None):
    """Load ``source`` as a ``datasets.Dataset`` with an ``image`` column and a ``label`` ClassLabel.

    ``source`` may be: a folder with one sub-folder per class; a MedMNIST ``.npz`` file; a MedMNIST
    name such as ``"pneumoniamnist"`` (downloaded by the ``medmnist`` package); a folder written by
    ``save_to_disk``; a Hub dataset id; or a ``datasets.Dataset`` (returned normalised).
    ``split`` picks the split where the source has several.
    """
    import datasets

    if isinstance(source, datasets.DatasetDict):
        return _normalise(_pick_split(source, split, "DatasetDict"), "DatasetDict")
    if isinstance(source, datasets.Dataset):
        return _normalise(source, "dataset")
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix == ".npz":
            return load_npz(path, split)
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; give a class-folder directory, an .npz or a dataset folder")
    if path.is_dir():
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                loaded = _pick_split(loaded, split, str(path))
            return _normalise(loaded, str(path))
        if (path / split).is_dir() and not _image_files(path):
            class_root = path / split
            if all(p.is_dir() for p in class_root.iterdir()) and any(class_root.iterdir()):
                return load_image_folder(class_root, verify=verify)
        return load_image_folder(path, verify=verify)
    if text.lower() in _medmnist_flags():
        return load_medmnist(text.lower(), split)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise DataError(f"{text}: no such file or folder")
    loaded = datasets.load_dataset(text, split=split, revision=revision)
    return _normalise(loaded, text)


# ---- image folders --------------------------------------------------------------------------
def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def load_image_folder(root: str | os.PathLike, verify: bool = True):
    """A folder with one sub-folder per class (sub-folder names are the class names, sorted)."""
    import datasets

    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class sub-folders; expected {root}/<class name>/<images>")
    files: list[str] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = _image_files(root / name)
        if not found:
            raise DataError(f"{root / name}: class folder {name!r} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        for f in found:
            if verify:
                _verify_image(f)
            files.append(str(f))
            labels.append(index)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=classes)})
    return datasets.Dataset.from_dict({"image": files, "label": labels}, features=features)


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
    num_classes = int(max(int(arrays[k].max()) for k in arrays.files if k.endswith("_labels")) + 1)
    flag = path.stem.split("_")[0].lower()
    names = class_names or medmnist_class_names(flag, num_classes)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})

    return datasets.Dataset.from_dict(
        {"image": [Image.fromarray(i.astype(np.uint8)) for i in images], "label": labels.astype(int).tolist()},
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
    """True when the images are mode L or RGB with equal channels (e.g. X-rays stored as RGB JPEG)."""
    n = min(probe, len(ds))
    if n == 0:
        raise DataError("the dataset is empty")
    for i in np.linspace(0, len(ds) - 1, n).astype(int):
        im = ds[int(i)]["image"]
        if im.mode in ("L", "I", "I;16", "F", "1"):
            continue
        arr = np.asarray(im.convert("RGB"), dtype=np.int16)
        if np.abs(arr[..., 0] - arr[..., 1]).max() > 2 or np.abs(arr[..., 1] - arr[..., 2]).max() > 2:
            return False
    return True


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the short side to ``size`` (antialiased) and centre-crop a square: no distortion."""
    w, h = image.size
    scale = size / min(w, h)
    if (w, h) != (size, size):
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        image = image.resize((nw, nh), Image.Resampling.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return image


def to_mode(image: Image.Image, channels: int) -> Image.Image:
    if channels == 1:
        return image.convert("L")
    if channels == 3:
        return image.convert("RGB")
    raise ValueError(f"channels must be 1 or 3, got {channels}")


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
