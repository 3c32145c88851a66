"""An experiment's data: real train / validation / test decoded once, and the synthetic pool (loaded or sampled).

The validation split, when the spec gives none, is ``Dataset.train_test_split(stratify_by_column="label")``
with a fixed seed: the same rows for every run, so runs with the same seed are paired.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..classes import match_class_names, stratified_indices
from .recipes import Recipe, kept_real_counts, recipe_counts, synthetic_needed
from .spec import ExperimentSpec
from .train import encode_images

logger = logging.getLogger("synthxray.experiments")

VAL_SPLIT_SEED = 12345  # the validation split is the same for every run of an experiment


@dataclass
class ExperimentData:
    class_names: list[str]
    channels: int
    positive: int | None
    real: Any  # datasets.Dataset: the real training rows recipes draw from
    real_x: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    synthetic: Any = None
    synth_x: torch.Tensor | None = None
    pool_counts: list[int] | None = None  # synthetic images per real class (known before sampling for a generator)
    notes: dict[str, Any] = field(default_factory=dict)


# ---- data -------------------------------------------------------------------------------------------
def _relabel(ds, names: list[str], what: str):
    """``ds`` with its labels re-numbered to the real class order (names matched ignoring case)."""
    import datasets

    mapping = match_class_names(names, ds.features["label"].names, what)
    if mapping == list(range(len(names))) and len(ds.features["label"].names) == len(names):
        return ds
    labels = np.asarray(mapping)[np.asarray(ds["label"], dtype=int)].tolist()
    ds = ds.remove_columns("label").add_column("label", labels)
    return ds.cast_column("label", datasets.ClassLabel(names=names))


def prepare_data(spec: ExperimentSpec) -> ExperimentData:
    """Load real train / val / test, match class names, split validation from train when needed, decode pixels."""
    from ..data import DataError, intensity_of, is_grayscale, load_dataset

    real = load_dataset(spec.real_train, split=spec.real_train_split)
    names = list(real.features["label"].names)
    notes: dict[str, Any] = {}
    mapping = intensity_of(real)  # test and validation: deep images mapped as the training split was
    if mapping:
        notes["intensity"] = mapping
    mapping = mapping or "dataset"
    test = _relabel(load_dataset(spec.test, split=spec.test_split, intensity=mapping), names, "test")
    if spec.val is not None:
        val = _relabel(load_dataset(spec.val, split=spec.val_split, intensity=mapping), names, "validation")
        notes["val"] = "given"
    else:
        try:  # the same rows for every run of the experiment, so runs with the same seed are paired
            split = real.train_test_split(test_size=spec.val_fraction, stratify_by_column="label", seed=VAL_SPLIT_SEED)
        except ValueError as exc:
            raise DataError(f"real_train: cannot hold out a stratified {spec.val_fraction:.0%} validation split ({exc}); give 'val' or change val_fraction") from None
        real, val = split["train"], split["test"]
        notes["val"] = f"{len(val)} images (a stratified {spec.val_fraction:.0%}) held out of real_train"
    if spec.max_real_train is not None and spec.max_real_train < len(real):
        rows = stratified_indices(np.asarray(real["label"], dtype=int), spec.max_real_train, VAL_SPLIT_SEED + 1)
        real = real.select(rows.tolist())
        notes["max_real_train"] = len(real)
    if len(real) == 0 or len(val) == 0 or len(test) == 0:
        raise DataError(f"empty split: {len(real)} train, {len(val)} validation, {len(test)} test images")
    channels = spec.channels or (1 if is_grayscale(real) else 3)
    positive = None
    if spec.positive_class is not None:
        positive = match_class_names(names, [spec.positive_class], "positive_class")[0]
        if len(names) != 2:
            raise ValueError("positive_class applies to two-class data only")
    started = time.time()
    real_x, _ = encode_images(real, spec.image_size, channels)
    val_x, val_y = encode_images(val, spec.image_size, channels)
    test_x, test_y = encode_images(test, spec.image_size, channels)
    counts = np.bincount(np.asarray(real["label"], dtype=int), minlength=len(names)).tolist()
    logger.info("data: classes %s, %d channel(s), %d px; real train %s, validation %d, test %d (decoded in %.1fs)",
                names, channels, spec.image_size, dict(zip(names, counts)), len(val), len(test), time.time() - started)
    return ExperimentData(names, channels, positive, real, real_x, val_x, val_y, test_x, test_y, notes=notes)


def prepare_synthetic(spec: ExperimentSpec, data: ExperimentData, out: Path, recipes: list[Recipe]) -> None:
    """Load the synthetic dataset, or sample one from the generator into ``out/synthetic`` (resumable)."""
    from ..data import load_dataset

    syn = spec.synthetic
    if syn.dataset is not None:
        ds = load_dataset(syn.dataset, split=syn.split)
    else:
        ds = _sample_generator(spec, data, out, recipes)
    ds = _relabel(ds, data.class_names, "synthetic")
    started = time.time()
    data.synth_x, _ = encode_images(ds, spec.image_size, data.channels)
    data.synthetic = ds
    counts = np.bincount(np.asarray(ds["label"], dtype=int), minlength=len(data.class_names)).tolist()
    data.pool_counts = counts
    logger.info("synthetic pool: %s (decoded in %.1fs)", dict(zip(data.class_names, counts)), time.time() - started)


def known_pool_counts(spec: ExperimentSpec, data: ExperimentData, out: Path, recipes: list[Recipe]) -> list[int]:
    """Synthetic images per real class, without decoding or sampling any (oversampling recipes need only these)."""
    import datasets

    from ..data import load_dataset

    if data.pool_counts is not None:
        return data.pool_counts
    syn = spec.synthetic
    folder = Path(syn.output_dir) if syn.output_dir else out / "synthetic"
    if syn.dataset is not None or folder.is_dir():
        ds = load_dataset(syn.dataset, split=syn.split) if syn.dataset is not None else datasets.load_from_disk(str(folder))
        mapping = match_class_names(data.class_names, ds.features["label"].names, "synthetic")
        labels = np.asarray(mapping)[np.asarray(ds["label"], dtype=int)]
        return np.bincount(labels, minlength=len(data.class_names)).tolist()
    if syn.per_class is not None:
        return [syn.per_class] * len(data.class_names)
    real_counts = np.bincount(np.asarray(data.real["label"], dtype=int), minlength=len(data.class_names)).tolist()
    return synthetic_needed(real_counts, recipes, spec.balance, syn.pool_ratio, spec.ratio_of)


def check_plan(spec: ExperimentSpec, data: ExperimentData, recipes: list[Recipe]) -> None:
    """Every recipe's counts can be built from this real set and pool, at the counts each run really uses: every class
    keeps a real image at the recipe's real fraction, and the regime fractions keep distinct numbers of real images.
    One error listing every problem, before any run trains."""
    names = data.class_names
    real_counts = np.bincount(np.asarray(data.real["label"], dtype=int), minlength=len(names)).tolist()
    problems = []
    for r in recipes:
        kept = kept_real_counts(real_counts, r.real_fraction)
        lost = [(c, n) for c, n, k in zip(names, real_counts, kept) if n > 0 and k == 0 and r.real_fraction > 0]
        if lost:
            need = max(0.5 / n for _, n in lost)
            problems.append(f"recipe {r.name!r}: real fraction {r.real_fraction:g} keeps 0 images of class "
                            + ", ".join(f"{c!r} (round({r.real_fraction:g} x {n}) = 0)" for c, n in lost)
                            + f"; use a fraction of at least {need:.3g}, or more real images of that class")
            continue
        try:
            recipe_counts(real_counts, data.pool_counts if r.needs_pool else None, r, spec.balance, spec.ratio_of, spec.strict_counts)
        except ValueError as exc:
            problems.append(str(exc))
    if spec.regimes is not None:  # the worth curve needs one point per real-image count
        by_total: dict[int, list[float]] = {}
        for f in spec.regimes.fractions:
            by_total.setdefault(sum(kept_real_counts(real_counts, f)), []).append(f)
        for total, fs in by_total.items():
            if len(fs) > 1:
                problems.append(f"regimes.fractions {fs} all keep {total} real images of {sum(real_counts)}; "
                                "keep one of them or choose fractions further apart")
    if problems:
        raise ValueError(f"{len(problems)} problem(s) with the plan for {dict(zip(names, real_counts))} real and "
                         f"{dict(zip(names, data.pool_counts or []))} synthetic images:\n  " + "\n  ".join(problems))


# ---- what a finished run was made from --------------------------------------------------------------
def _digest(*arrays: Any) -> str:
    h = hashlib.blake2b(digest_size=12)
    for a in arrays:
        arr = np.ascontiguousarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a))
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(arr)
    return h.hexdigest()


def input_fingerprints(data: ExperimentData) -> dict[str, Any]:
    """Content hashes of the decoded images and labels runs train and test on (one pass over the tensors), and the
    pool's class counts: what :func:`run_inputs` compares with a finished run's."""
    fp: dict[str, Any] = {
        "real_train": _digest(data.real_x, np.asarray(data.real["label"], dtype=np.int64)),
        "val": _digest(data.val_x, data.val_y), "test": _digest(data.test_x, data.test_y),
    }
    if data.synth_x is not None:
        fp["synthetic"] = _digest(data.synth_x, np.asarray(data.synthetic["label"], dtype=np.int64))
    if data.pool_counts is not None:
        fp["synthetic_pool_counts"] = [int(c) for c in data.pool_counts]
    return fp


def run_inputs(fingerprints: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    """The fingerprints of the inputs one recipe reads: real train / validation / test, the synthetic pool's images
    when it trains on them, its class counts when it only oversamples to them."""
    keys = ["real_train", "val", "test"]
    keys += ["synthetic"] if recipe.uses_synthetic else (["synthetic_pool_counts"] if recipe.needs_pool else [])
    return {k: fingerprints.get(k) for k in keys}


def _sample_generator(spec: ExperimentSpec, data: ExperimentData, out: Path, recipes: list[Recipe]):
    import datasets

    from ..generators import load_generator
    from ..synthesis import generate_dataset

    syn = spec.synthetic
    gen = load_generator(syn.generator, revision=syn.revision)
    mapping = match_class_names(data.class_names, gen.class_names, "generator")
    real_counts = np.bincount(np.asarray(data.real["label"], dtype=int), minlength=len(data.class_names)).tolist()
    if syn.per_class is not None:
        need = [syn.per_class] * len(data.class_names)
    else:
        need = synthetic_needed(real_counts, recipes, spec.balance, syn.pool_ratio, spec.ratio_of)
    wanted = {gen.class_names[i]: need[mapping[i]] for i in range(len(gen.class_names))}
    folder = Path(syn.output_dir) if syn.output_dir else out / "synthetic"
    if folder.exists():
        ds = datasets.load_from_disk(str(folder))
        have = {n: int(c) for n, c in zip(ds.features["label"].names, np.bincount(np.asarray(ds["label"], dtype=int), minlength=len(ds.features["label"].names)))}
        short = {n: (wanted[n], have.get(n, 0)) for n in wanted if have.get(n, 0) < wanted[n]}
        if short:
            raise FileExistsError(f"{folder} holds fewer synthetic images than this experiment needs ({short} needed, have); delete it to sample again")
        logger.info("reusing %d synthetic images in %s", len(ds), folder)
        return ds
    logger.info("sampling %s synthetic images from %s into %s", wanted, syn.generator, folder)
    return generate_dataset(
        gen, images_per_class=wanted, seed=syn.seed, output_dir=folder, batch_size=syn.batch_size,
        num_inference_steps=syn.num_inference_steps, guidance_scale=syn.guidance_scale, scheduler=syn.scheduler,
    )
