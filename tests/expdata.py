"""Tiny labelled datasets for the experiment tests: a uniquely named module (not a conftest), so any test imports it."""

from __future__ import annotations

import numpy as np
from PIL import Image

SIZE = 16


def _image(label: int, rng: np.random.Generator, rgb: bool = False) -> Image.Image:
    """Class 0: a bright disc; class 1: a bright horizontal bar (easy to tell apart), plus noise."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    if label == 0:
        base = ((yy - 8) ** 2 + (xx - 8) ** 2 < 20).astype(float)
    else:
        base = (abs(yy - 8) < 3).astype(float)
    arr = np.clip(base * 180 + 40 + rng.normal(0, 15, base.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr, mode="L")
    return im.convert("RGB") if rgb else im


def make_dataset(counts: dict[str, int], seed: int, rgb: bool = False, provenance: bool = False):
    """A datasets.Dataset with ``counts[name]`` images of each class (classes in the given order)."""
    import datasets

    rng = np.random.default_rng(seed)
    names = list(counts)
    images, labels = [], []
    for i, name in enumerate(names):
        for _ in range(counts[name]):
            images.append(_image(i, rng, rgb))
            labels.append(i)
    cols = {"image": images, "label": labels}
    feats = {"image": datasets.Image(), "label": datasets.ClassLabel(names=names)}
    if provenance:  # what synthxray.generate_dataset adds
        cols["class_name"] = [names[l] for l in labels]
        cols["generator"] = ["ddpm"] * len(labels)
        feats["class_name"] = datasets.Value("string")
        feats["generator"] = datasets.Value("string")
    return datasets.Dataset.from_dict(cols, features=datasets.Features(feats))
