"""Did the generator copy its training images? Nearest training image of every synthetic image.

Two spaces: pixels (RMSE of 64 px images in [0, 1]) and extractor features (cosine distance).
A distance means little alone, so each is set against a reference: how close a training image
is to its nearest *other* training image (leave-one-out, on up to ``reference_size`` images), or,
when a ``holdout`` set is given, how close unseen real images are to the training set. The
threshold is a low quantile of that reference (default 1%): a synthetic set whose fraction under
it is far above 1% is closer to its training images than real images are to each other.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..processes import broadcast, distributed_state, is_main_process
from .extractors import SynthXrayExtractor, get_extractor, to_uint8_rgb
from .fid import Features, compute_features


def pixel_matrix(ds, size: int = 64, batch_size: int = 256) -> np.ndarray:
    """(N, 3*size*size) float32 pixels in [0, 1], grayscale repeated (so RGB and L compare)."""
    out = []
    for batch in ds.select_columns(["image"]).iter(batch_size=batch_size):
        out.append(np.stack([to_uint8_rgb(im, size) for im in batch["image"]]).reshape(len(batch["image"]), -1))
    return np.concatenate(out).astype(np.float32) / 255.0


def nearest(query: np.ndarray, base: np.ndarray, metric: str = "rmse", exclude_self: bool = False,
            block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Distance to, and index of, the nearest row of ``base`` for each row of ``query`` (blocked, bounded memory).

    ``metric``: ``rmse`` (Euclidean / sqrt(dim)) or ``cosine`` (1 - cosine similarity).
    ``exclude_self``: query row i is base row i (leave-one-out).
    """
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
    b = torch.from_numpy(np.ascontiguousarray(base, dtype=np.float32))
    if metric == "cosine":
        q = torch.nn.functional.normalize(q, dim=1)
        b = torch.nn.functional.normalize(b, dim=1)
    elif metric != "rmse":
        raise ValueError("metric must be rmse or cosine")
    dists, idxs = [], []
    for start in range(0, len(q), block):
        qb = q[start:start + block]
        if metric == "cosine":
            d = 1.0 - qb @ b.T
        else:
            d = torch.cdist(qb, b) / (q.shape[1] ** 0.5)
        if exclude_self:
            rows = torch.arange(len(qb))
            d[rows, rows + start] = float("inf")
        v, i = d.min(dim=1)
        if metric == "rmse":  # exact distance to the chosen neighbour (the matmul form loses digits near 0)
            v = (qb - b[i]).pow(2).mean(dim=1).sqrt()
        dists.append(v.clamp_min(0))
        idxs.append(i)
    return torch.cat(dists).numpy(), torch.cat(idxs).numpy()


def _describe(d: np.ndarray) -> dict[str, float]:
    return {"min": float(d.min()), "p01": float(np.quantile(d, 0.01)), "p05": float(np.quantile(d, 0.05)),
            "median": float(np.median(d)), "mean": float(d.mean()), "max": float(d.max())}


def memorization(
    train,
    synthetic,
    extractor: SynthXrayExtractor | str | None = "inception",
    pixel_size: int = 64,
    quantile: float = 0.01,
    threshold: dict[str, float] | None = None,
    holdout=None,
    reference_size: int = 500,
    top_k: int = 16,
    train_features: Features | None = None,
    synthetic_features: Features | None = None,
    batch_size: int = 32,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
    progress: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Nearest training neighbour of each synthetic image, in pixel and feature space.

    Returns, per space (``pixel``, ``feature``): the distances' summary, the reference distances'
    summary, the threshold and where it came from, the fraction of synthetic images under it (and of
    reference images, about ``quantile`` by construction), and the ``top_k`` closest pairs
    (synthetic index, training index, distance). With ``output_dir``, writes a grid of the closest
    pairs per space (synthetic left, its nearest training image right), a histogram, and the
    per-image distances as JSON. ``extractor=None`` skips the feature space.
    """
    from ..data import load_dataset

    train = load_dataset(train)
    synthetic = load_dataset(synthetic)
    rng = np.random.default_rng(seed)
    ref_idx = np.sort(rng.choice(len(train), min(reference_size, len(train)), replace=False))
    # the feature extractions are collective on N processes (sharded); the pixel matrices, the nearest-neighbour
    # search and the files are the main process's alone, and its report goes to the others
    features: dict[str, np.ndarray] = {}
    if extractor is not None:
        ext = extractor if isinstance(extractor, SynthXrayExtractor) else get_extractor(extractor)
        tf = train_features or compute_features(train, ext, batch_size=batch_size, progress=progress, cache=cache,
                                                cache_dir=cache_dir, desc="train features")
        sf = synthetic_features or compute_features(synthetic, ext, batch_size=batch_size, progress=progress,
                                                    desc="synthetic features")
        features.update(synthetic=sf.features, train=tf.features)
    if holdout is not None:
        holdout = load_dataset(holdout)
        if features:
            features["holdout"] = compute_features(holdout, ext, batch_size=batch_size, progress=progress,
                                                   cache=cache, cache_dir=cache_dir, desc="holdout features").features
    state = distributed_state()
    report = None
    if is_main_process(state):
        spaces: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
        spaces["pixel"] = (pixel_matrix(synthetic, pixel_size), pixel_matrix(train, pixel_size), "rmse")
        if features:
            spaces["feature"] = (features["synthetic"], features["train"], "cosine")
        holdout_space: dict[str, np.ndarray] = {}
        if holdout is not None:
            holdout_space["pixel"] = pixel_matrix(holdout, pixel_size)
            if "holdout" in features:
                holdout_space["feature"] = features["holdout"]
        description = getattr(ext, "description", "") if features else ""
        report = _report(train, synthetic, spaces, holdout_space, ref_idx, quantile, threshold, top_k, pixel_size,
                         description, output_dir)
    return broadcast(report, state)


def _report(train, synthetic, spaces: dict, holdout_space: dict, ref_idx: np.ndarray, quantile: float,
            threshold: dict[str, float] | None, top_k: int, pixel_size: int, description: str,
            output_dir: str | os.PathLike | None) -> dict[str, Any]:
    """Distances, thresholds and closest pairs per space; with ``output_dir``, the grids, histogram and distances."""
    report: dict[str, Any] = {"num_train": len(train), "num_synthetic": len(synthetic), "quantile": quantile,
                              "pixel_size": pixel_size, "spaces": {}}
    per_image: dict[str, Any] = {}
    for name, (s, t, metric) in spaces.items():
        d, j = nearest(s, t, metric)
        if name in holdout_space:
            ref, _ = nearest(holdout_space[name], t, metric)
            origin = f"{quantile:.0%} quantile of held-out real images' nearest-training distances"
        else:
            ref, _ = _leave_one_out(t, ref_idx, metric)
            origin = f"{quantile:.0%} quantile of training images' nearest-other-training distances (leave-one-out, n={len(ref_idx)})"
        thr = float(threshold[name]) if threshold and name in threshold else float(np.quantile(ref, quantile))
        if threshold and name in threshold:
            origin = "given"
        order = np.argsort(d)[:top_k]
        report["spaces"][name] = {
            "metric": "RMSE of [0,1] pixels" if metric == "rmse" else f"cosine distance of {description} features",
            "synthetic_to_train": _describe(d),
            "reference": _describe(ref),
            "threshold": thr,
            "threshold_from": origin,
            "fraction_below": float((d < thr).mean()),
            "reference_fraction_below": float((ref < thr).mean()),
            "closest_pairs": [(int(i), int(j[i]), float(d[i])) for i in order],
        }
        per_image[name] = {"distance": d.tolist(), "nearest_train_index": j.tolist(), "reference": ref.tolist()}
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "memorization_distances.json").write_text(json.dumps(per_image) + "\n")
        for name, sec in report["spaces"].items():
            path = out / f"memorization_{name}_pairs.png"
            pairs_grid(train, synthetic, sec["closest_pairs"]).save(path)
            sec["grid"] = str(path)
        report["histogram"] = str(_histogram(per_image, report, out / "memorization_hist.png"))
    return report


def _leave_one_out(t: np.ndarray, ref_idx: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Nearest *other* training image for the training rows ``ref_idx``."""
    q = t[ref_idx]
    dists, idxs = [], []
    for start in range(0, len(q), 256):
        rows = ref_idx[start:start + 256]
        d, j = _nearest_excluding(q[start:start + 256], t, rows, metric)
        dists.append(d)
        idxs.append(j)
    return np.concatenate(dists), np.concatenate(idxs)


def _nearest_excluding(q: np.ndarray, t: np.ndarray, rows: np.ndarray, metric: str):
    qt = torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32))
    tt = torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32))
    if metric == "cosine":
        qt, tt = torch.nn.functional.normalize(qt, dim=1), torch.nn.functional.normalize(tt, dim=1)
        d = 1.0 - qt @ tt.T
    else:
        d = torch.cdist(qt, tt) / (tt.shape[1] ** 0.5)
    d[torch.arange(len(rows)), torch.from_numpy(rows)] = float("inf")
    v, i = d.min(dim=1)
    if metric != "cosine":
        v = (qt - tt[i]).pow(2).mean(dim=1).sqrt()
    return v.clamp_min(0).numpy(), i.numpy()


def pairs_grid(train, synthetic, pairs, size: int = 96, pairs_per_row: int = 4):
    """Closest pairs side by side: synthetic image, then its nearest training image. Images keep their
    colour by the pixel rule (``synthxray.pixels.to_8bit``): the grid is grayscale only when they all are."""
    from ..images import image_grid
    from ..pixels import to_8bit

    ims = []
    for i, j, _ in pairs:
        ims.append(to_8bit(synthetic[int(i)]["image"]).resize((size, size)))
        ims.append(to_8bit(train[int(j)]["image"]).resize((size, size)))
    return image_grid(ims, ncols=2 * min(pairs_per_row, max(1, len(pairs))))


def _histogram(per_image: dict, report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(per_image), figsize=(5 * len(per_image), 3.5), squeeze=False)
    for ax, (name, v) in zip(axes[0], per_image.items()):
        ax.hist(v["reference"], bins=40, alpha=0.6, density=True, label="reference (real)")
        ax.hist(v["distance"], bins=40, alpha=0.6, density=True, label="synthetic -> train")
        ax.axvline(report["spaces"][name]["threshold"], color="k", ls="--", lw=1, label="threshold")
        ax.set_title(f"{name}: {report['spaces'][name]['metric'][:40]}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

