"""2-D embedding (t-SNE, or PCA) of real and synthetic features, coloured by class, marked by source."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .fid import Features


def embed_2d(x: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) with PCA to 50 dims first (t-SNE) or PCA alone (``method="pca"``)."""
    from sklearn.decomposition import PCA

    x = np.asarray(x, dtype=np.float32)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method != "tsne":
        raise ValueError("method must be tsne or pca")
    from sklearn.manifold import TSNE

    if x.shape[1] > 50 and len(x) > 50:
        x = PCA(n_components=50, random_state=seed).fit_transform(x)
    perplexity = float(max(2.0, min(30.0, (len(x) - 1) / 3.0)))
    exact = len(x) <= 600  # exact gradients are faster than Barnes-Hut on small sets
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                method="exact" if exact else "barnes_hut").fit_transform(x)


def embedding_plot(real: Features, synthetic: Features, output: str | os.PathLike | None = None,
                   method: str = "tsne", max_points: int = 2000, seed: int = 0, title: str | None = None) -> dict[str, Any]:
    """Plot real (circles) and synthetic (crosses) features, one colour per class.

    At most ``max_points`` per source (random subset). Returns the method, the 2-D coordinates and
    the path of the PNG when ``output`` is given.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    pick_r = np.sort(rng.choice(len(real), min(max_points, len(real)), replace=False))
    pick_s = np.sort(rng.choice(len(synthetic), min(max_points, len(synthetic)), replace=False))
    xy = embed_2d(np.concatenate([real.features[pick_r], synthetic.features[pick_s]]), method, seed)
    xy_r, xy_s = xy[: len(pick_r)], xy[len(pick_r):]
    names = real.class_names
    result: dict[str, Any] = {"method": method, "n_real": int(len(pick_r)), "n_synthetic": int(len(pick_s)),
                              "extractor": real.extractor, "path": None}
    if output is not None:
        fig, ax = plt.subplots(figsize=(6.5, 5.5))
        colours = plt.get_cmap("tab10")
        for ci, name in enumerate(names):
            r = real.labels[pick_r] == ci
            s = synthetic.labels[pick_s] == ci
            ax.scatter(xy_r[r, 0], xy_r[r, 1], s=10, marker="o", color=colours(ci % 10), alpha=0.5, label=f"real {name}")
            ax.scatter(xy_s[s, 0], xy_s[s, 1], s=14, marker="x", color=colours(ci % 10), alpha=0.8, label=f"synthetic {name}")
        ax.set_title(title or f"{method.upper()} of features: {real.extractor[:60]}", fontsize=9)
        ax.legend(fontsize=7, markerscale=1.5)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.tight_layout()
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        result["path"] = str(path)
    result["coordinates"] = {"real": xy_r.round(3).tolist(), "synthetic": xy_s.round(3).tolist(),
                             "real_labels": real.labels[pick_r].tolist(), "synthetic_labels": synthetic.labels[pick_s].tolist()}
    return result
