"""Tiny synthetic data builders shared by the tests (importable as ``tinydata``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


class Interrupt(RuntimeError):
    """What ``fail_at_batch`` raises: a generation run killed mid-way."""


def fail_at_batch(gen, at: int) -> dict:
    """Make ``gen``'s ``at``-th batch raise ``Interrupt``, as a kill would. Returns the batch counter: set its "n"
    past ``at`` to stop failing; it keeps counting the batches later runs make."""
    original, calls = gen._generate_batch, {"n": 0}

    def batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at:
            raise Interrupt(f"killed at batch {at}")
        return original(*args, **kwargs)

    gen._generate_batch = batch
    return calls


def make_npz(path: Path, n: int = 24, size: int = 28, seed: int = 0) -> Path:
    """A MedMNIST-style npz: two classes, class 1 brighter so a model can tell them apart."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, count in (("train", n), ("val", n // 4), ("test", n // 4)):
        labels = np.arange(count) % 2
        base = rng.integers(0, 120, (count, size, size))
        images = np.clip(base + labels[:, None, None] * 120, 0, 255).astype(np.uint8)
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels[:, None]
    np.savez(path, **out)
    return path


def make_image_folder(root: Path, classes=("NORMAL", "PNEUMONIA"), per_class: int = 4, size=(40, 30), rgb=True) -> Path:
    """Class sub-folders of small JPEGs; RGB with grayscale content, like the Kermany X-rays."""
    rng = np.random.default_rng(1)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)
            im = Image.fromarray(arr, mode="L")
            (im.convert("RGB") if rgb else im).save(root / name / f"{name.lower()}_{i}.jpeg")
    return root


def xray_like(n: int, size: int = 32, seed: int = 0, names=("normal", "pneumonia")):
    """Two dark lung fields on a brighter body with fine texture; class 1 has a bright opacity in one lung."""
    import datasets

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images, labels = [], []
    for i in range(n):
        label = i % 2
        img = 150 + 20 * rng.standard_normal()
        arr = np.full((size, size), img)
        for cx in (0.3, 0.7):
            cx += 0.03 * rng.standard_normal()
            lung = ((xx - cx) / 0.15) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1
            arr[lung] -= 70 + 10 * rng.standard_normal()
        if label:
            ox, oy = rng.choice([0.3, 0.7]), 0.5 + 0.05 * rng.standard_normal()
            arr += 80 * np.exp(-(((xx - ox) ** 2 + (yy - oy) ** 2) / 0.02))
        arr += 12 * rng.standard_normal((size, size))  # fine texture: what blur removes
        images.append(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L"))
        labels.append(label)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(names))})
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)


def transformed(ds, fn):
    """A copy of ``ds`` with ``fn`` applied to every image (labels and class names kept)."""
    import datasets

    return datasets.Dataset.from_dict({"image": [fn(im) for im in ds["image"]], "label": ds["label"]}, features=ds.features)


def blur(im: Image.Image, sigma: float = 1.0) -> Image.Image:
    return im.filter(ImageFilter.GaussianBlur(sigma))


def noise_like(im: Image.Image, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed + sum(im.tobytes()[:64]))
    return Image.fromarray(rng.integers(0, 256, (im.height, im.width), dtype=np.uint8), mode="L")
