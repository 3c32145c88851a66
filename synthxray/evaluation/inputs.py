"""What ``evaluate`` compares: which real split, at which resolution, in which class mix.

- **Split**: by default the real side is the source's ``test`` split when it has one (an npz with
  ``test_images``, a folder with ``test/``, a DatasetDict or saved dataset with ``test``, a MedMNIST
  name); otherwise its training images, with a warning that says so.
- **Resolution**: both sides are compared at one size. By default the real images are brought to the
  generator's resolution with the transform its training data went through (the data layer's
  ``image_transform``: short side resized, centre crop); ``match_resolution="real"`` brings the
  synthetic images to the real size instead; ``None`` compares as they are, with a warning when the
  sizes differ.
- **Class mix**: an overall row pools the classes, so the synthetic side is drawn in the real side's
  class proportions (``class_mix="real"``) unless asked not to.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..classes import proportional_counts, stratified_indices
from ..manifest import DATASET_MANIFEST, GENERATOR_CONFIG

logger = logging.getLogger("synthxray.evaluation")

MATCH_CHOICES = ("synthetic", "real", None)


def is_generator(obj: Any) -> bool:
    from ..generators.base import Generator

    return isinstance(obj, Generator)


def load_input(source: Any, split: str = "train", intensity: Any = "dataset"):
    """A ``datasets.Dataset`` from anything ``synthxray.data.load_dataset`` reads (``intensity``: its deep images' mapping)."""
    from ..data import load_dataset

    if is_generator(source):
        raise TypeError("a Generator is only accepted as the synthetic input")
    return load_dataset(source, split=split, intensity=intensity)


def synthetic_intensity(synthetic: Any) -> Any:
    """The pixel mapping of the data the synthetic images were trained on (a generator's ``synthxray.json``
    ``data.intensity``, a generated dataset's manifest), so 12/16-bit real images are mapped the same way;
    ``"dataset"`` when none is recorded."""
    from ..intensity import recorded_intensity

    path = Path(str(synthetic)).expanduser() if isinstance(synthetic, (str, Path)) else None
    if is_generator(synthetic) or (path is not None and (path / DATASET_MANIFEST).is_file()):
        return recorded_intensity(synthetic if path is None else path) or "dataset"
    return "dataset"


def loud(message: str) -> None:
    """A warning the user sees (``warnings``) that is also logged."""
    logger.warning(message)
    warnings.warn(message, UserWarning, stacklevel=3)


# ---- which split ---------------------------------------------------------------------------
def available_splits(source: Any) -> list[str] | None:
    """The splits ``source`` offers, or ``None`` when it has no splits (a plain folder, a Dataset)."""
    import datasets

    if isinstance(source, datasets.DatasetDict):
        return list(source)
    if isinstance(source, datasets.Dataset):
        return None
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix == ".npz":
        with np.load(path) as z:
            return [k[: -len("_images")] for k in z.files if k.endswith("_images")]
    if path.is_dir():
        if (path / "dataset_dict.json").is_file():
            return list(json.loads((path / "dataset_dict.json").read_text()).get("splits", []))
        if (path / "state.json").is_file():
            return None
        splits = [p.name for p in sorted(path.iterdir()) if p.is_dir() and p.name in ("train", "val", "validation", "test")]
        return splits or None
    from ..data import _medmnist_flags

    if text.lower() in _medmnist_flags():
        return ["train", "val", "test"]
    try:  # a Hub id (cached or reachable)
        return list(datasets.get_dataset_split_names(text))
    except Exception:  # noqa: BLE001 - unknown: load_dataset will report the real problem
        return None


def resolve_real_split(source: Any, split: str | None) -> tuple[str, str]:
    """The split to compare against and a note saying what it is (warned when it is training data)."""
    import datasets

    if isinstance(source, datasets.Dataset):
        return split or "train", "real side: the datasets.Dataset given"
    splits = available_splits(source)
    name = _describe_source(source)
    if split is None:
        if splits and "test" in splits:
            return "test", f"real side: the test split of {name}"
        split = "train"
        if splits:
            note = (f"real side: {name} has no test split (splits: {splits}); comparing against its '{split}' images. "
                    "If the generator was trained on them this FID is optimistic; pass a held-out set or real_split")
        else:
            note = (f"real side: {name} has no splits; comparing against all its images. If the generator was "
                    "trained on them this FID is optimistic; pass a held-out set")
        loud(note)
        return split, note
    if split == "train" and splits and len(splits) > 1:
        note = (f"real side: the TRAINING images of {name} (real_split='train'); a generator trained on them "
                "scores optimistically here. The test split is the default")
        loud(note)
        return split, note
    return split, f"real side: the '{split}' split of {name}" if splits else f"real side: {name}"


def _describe_source(source: Any) -> str:
    return str(source) if not hasattr(source, "features") and not hasattr(source, "column_names") else type(source).__name__


# ---- which resolution ----------------------------------------------------------------------
def image_sizes(ds, probe: int = 16) -> list[tuple[int, int]]:
    """Distinct (width, height) among up to ``probe`` evenly spaced images of ``ds``."""
    n = min(probe, len(ds))
    seen: list[tuple[int, int]] = []
    for i in np.linspace(0, len(ds) - 1, n).astype(int):
        size = tuple(ds[int(i)]["image"].size)
        if size not in seen:
            seen.append(size)
    return seen


def square_size(sizes: list[tuple[int, int]]) -> int | None:
    """The side when every probed image is the same square size, else ``None``."""
    return sizes[0][0] if len(sizes) == 1 and sizes[0][0] == sizes[0][1] else None


def synthetic_resolution(synthetic: Any, ds=None) -> tuple[int | None, str]:
    """The synthetic images' resolution and where it came from (generator config, manifest, image size)."""
    if is_generator(synthetic):
        res = getattr(synthetic.info, "resolution", None)
        if res:
            return int(res), "generator config"
    path = Path(str(synthetic)).expanduser() if isinstance(synthetic, (str, Path)) else None
    if path is not None and (path / DATASET_MANIFEST).is_file():
        manifest = json.loads((path / DATASET_MANIFEST).read_text())
        if manifest.get("resolution"):
            return int(manifest["resolution"]), "dataset manifest"
        gen_dir = Path(str(manifest.get("generator_path") or "")).expanduser()
        if str(gen_dir) and (gen_dir / GENERATOR_CONFIG).is_file():
            res = json.loads((gen_dir / GENERATOR_CONFIG).read_text()).get("resolution")
            if res:
                return int(res), "the manifest's generator config"
    if ds is not None:
        side = square_size(image_sizes(ds))
        if side:
            return side, "image size"
    return None, "unknown"


@dataclass
class ResolutionMatch:
    """The data layer's training transform (``image_transform``: short side resized, centre crop) to ``size``.

    Applied to one side's images before the FID protocol, so the real images look like what the
    generator learnt from (or the synthetic ones like the real ones).
    """

    size: int
    channels: int = 1

    @property
    def identity(self) -> str:
        return f"train-transform:{self.size}:{self.channels}"

    def __call__(self, image: Image.Image) -> Image.Image:
        from ..data import image_transform

        if getattr(self, "_tf", None) is None:
            self._tf = image_transform(self.size, self.channels, normalize=False)
        arr = (self._tf(image).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)  # exact: the transform is uint8 / 255
        return Image.fromarray(arr[0] if self.channels == 1 else arr.transpose(1, 2, 0), mode="L" if self.channels == 1 else "RGB")


def plan_resolution(real_ds, synth_res: int | None, synth_sizes: list[tuple[int, int]] | None, match: str | None,
                    channels: int) -> dict[str, Any]:
    """Decide the transform of each side and the compared size; warns when different sizes stay different."""
    if match not in MATCH_CHOICES:
        raise ValueError(f"match_resolution must be 'synthetic', 'real' or None, got {match!r}")
    real_sizes = image_sizes(real_ds)
    real_side = square_size(real_sizes)
    plan: dict[str, Any] = {"match_resolution": match, "real_native_size": _fmt_sizes(real_sizes),
                            "synthetic_native_size": synth_res if synth_res else _fmt_sizes(synth_sizes or []),
                            "real_transform": None, "synthetic_transform": None}
    if match == "synthetic" and synth_res:
        if real_side != synth_res:
            plan["real_transform"] = ResolutionMatch(int(synth_res), channels)
        plan["compared_size"] = int(synth_res)
    elif match == "real":
        if real_side is None:
            raise ValueError(f"match_resolution='real' needs real images of one square size; they are {_fmt_sizes(real_sizes)}. "
                             "Use match_resolution='synthetic' (the default) instead")
        if synth_res != real_side:
            plan["synthetic_transform"] = ResolutionMatch(int(real_side), channels)
        plan["compared_size"] = int(real_side)
    else:
        if match == "synthetic":
            loud("match_resolution='synthetic' but the synthetic resolution is unknown (images of several sizes); "
                 "comparing at native sizes")
        if real_side is not None and real_side == synth_res:
            plan["compared_size"] = int(real_side)
        else:
            plan["compared_size"] = f"native (real {plan['real_native_size']}, synthetic {plan['synthetic_native_size']})"
            loud(f"comparing real images of {plan['real_native_size']} px with synthetic images of "
                 f"{plan['synthetic_native_size']} px without matching their resolution: the FID then also measures "
                 "the resize. Use match_resolution='synthetic' (default) or 'real'")
    return plan


def _fmt_sizes(sizes: list[tuple[int, int]]) -> str | int:
    if len(sizes) == 1 and sizes[0][0] == sizes[0][1]:
        return sizes[0][0]
    if not sizes:
        return "unknown"
    shown = ", ".join(f"{w}x{h}" for w, h in sizes[:3])
    return f"various ({shown}{', ...' if len(sizes) > 3 else ''})"


# ---- which class mix -----------------------------------------------------------------------
def counts_in_mix(available: dict[int, int], target_mix: dict[int, int], total: int | None) -> dict[int, int]:
    """Per-class counts in ``target_mix`` proportions, as many as ``available`` allows (at most ``total``)."""
    classes = [c for c, k in target_mix.items() if k > 0]
    share = {c: target_mix[c] / sum(target_mix[c] for c in classes) for c in classes}
    most = min(int(available.get(c, 0) / share[c]) for c in classes) if classes else 0
    n = min(most, total) if total is not None else most
    while n > 0:
        want = proportional_counts({c: target_mix[c] for c in classes}, n)
        if all(want[c] <= available.get(c, 0) for c in classes):
            return want
        n -= 1
    return {c: 0 for c in classes}


def draw_counts(labels: np.ndarray, counts: dict[int, int], seed: int) -> np.ndarray:
    """Sorted row indices with ``counts[c]`` rows of class ``c``, drawn at random (``stratified_indices`` per class)."""
    picked = []
    for c, k in counts.items():
        rows = np.flatnonzero(labels == c)
        picked.append(rows[stratified_indices(np.zeros(len(rows), dtype=np.int64), int(k), seed=seed)])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
