"""Tiny structured 'X-ray-like' datasets for the evaluation tests (built in memory, offline)."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

# never write the feature cache into the user's home from tests
os.environ.setdefault("SYNTHXRAY_CACHE", tempfile.mkdtemp(prefix="synthxray-test-cache-"))
from PIL import Image, ImageFilter


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


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread in this area's tests: on a shared, oversubscribed 2-core machine two
    spinning OpenMP threads make the CNN and Inception passes 2-6x slower; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def real_ds():
    return xray_like(64, seed=0)


@pytest.fixture(scope="session")
def other_real_ds():
    return xray_like(48, seed=1)


@pytest.fixture(scope="session")
def random_extractor():
    from synthxray.evaluation import get_extractor

    return get_extractor("random", device="cpu")
