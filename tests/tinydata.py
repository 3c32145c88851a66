"""Tiny synthetic data builders shared by the tests (importable as ``tinydata``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


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
