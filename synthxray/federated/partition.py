"""Sites' data in simulation: flwr-datasets partitioners over the ``datasets.Dataset`` the data layer returns."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner, Partitioner

from ..classes import proportional_counts

if TYPE_CHECKING:
    import datasets

    from .config import FederatedConfig

logger = logging.getLogger("synthxray.federated")
PARTITIONS_FILE = "partitions.json"


class MajorityClassPartitioner(Partitioner):
    """Equal-sized sites, each holding ``fraction`` of its images from one majority class (seed 002's non-IID split).

    Majority classes are handed out in proportion to the classes' sizes (``largest_remainder``), so a 1:3 dataset
    over 4 sites gives 1 site with a majority of the small class and 3 of the large one. A site's other images
    come from the other classes in their proportions. The site size is the largest that the class counts allow;
    images beyond ``num_partitions`` x that size are left out (logged, and counted in ``unused``).
    """

    def __init__(self, num_partitions: int, partition_by: str = "label", fraction: float = 0.8, seed: int = 42) -> None:
        super().__init__()
        if not 0.5 < fraction < 1:
            raise ValueError(f"fraction must be in (0.5, 1), got {fraction}")
        self._num_partitions, self._partition_by, self._fraction, self._seed = num_partitions, partition_by, fraction, seed
        self._indices: list[np.ndarray] | None = None
        self.majority: list[int] = []
        self.unused = 0

    @property
    def num_partitions(self) -> int:
        return self._num_partitions

    def site_counts(self, class_counts: Sequence[int]) -> tuple[list[int], list[dict[int, int]]]:
        """(majority class per site, per-site class counts) for a dataset with ``class_counts``; raises when none fit."""
        from ..classes import largest_remainder

        counts = [int(c) for c in class_counts]
        k, sites = len(counts), self._num_partitions
        majority = [c for c, m in enumerate(largest_remainder(sites, counts)) for _ in range(m)]

        def plan(n: int) -> list[dict[int, int]]:
            rows = []
            for c in majority:
                own = round(self._fraction * n)
                others = {j: counts[j] for j in range(k) if j != c}
                rest = proportional_counts(others, n - own) if sum(others.values()) else {}
                rows.append({c: own, **rest})
            return rows

        def fits(rows: list[dict[int, int]]) -> bool:
            return all(sum(r.get(j, 0) for r in rows) <= counts[j] for j in range(k))

        n = sum(counts) // sites
        while n > 0 and not fits(plan(n)):
            n -= 1
        rows = plan(n) if n > 0 else []
        # every site needs its majority class and at least one other image, or it is single-class, not "majority"
        if not rows or any(r[c] < 1 or n - r[c] < 1 for r, c in zip(rows, majority)):
            raise ValueError(
                f"majority partition: {sites} sites with {self._fraction:.0%} of one class do not fit class counts "
                f"{counts} (site size {n}); use fewer num_clients"
            )
        return majority, rows

    def _determine(self) -> None:
        if self._indices is not None:
            return
        labels = np.asarray(self.dataset[self._partition_by])
        k = int(labels.max()) + 1 if len(labels) else 0
        counts = np.bincount(labels, minlength=k)
        self.majority, rows = self.site_counts(counts.tolist())
        rng = np.random.default_rng(self._seed)
        pools = {j: list(rng.permutation(np.flatnonzero(labels == j))) for j in range(k)}
        self._indices = []
        for row in rows:
            take = [idx for j, n in sorted(row.items()) for idx in (pools[j].pop() for _ in range(n))]
            self._indices.append(np.sort(np.asarray(take, dtype=int)))
        self.unused = int(len(labels) - sum(len(i) for i in self._indices))
        if self.unused:
            logger.warning("majority partition leaves %d of %d images unused (equal-sized sites, class counts %s)",
                           self.unused, len(labels), counts.tolist())

    def load_partition(self, partition_id: int) -> "datasets.Dataset":
        self._determine()
        assert self._indices is not None
        return self.dataset.select(self._indices[partition_id])


class LargeSitePartitioner(Partitioner):
    """One large site and ``num_partitions - 1`` small non-IID ones (the small-site scenario of issue 22).

    Partition 0, the large site, is an IID draw of ``large_fraction`` of the images; the rest are shared out among
    the small sites by :class:`MajorityClassPartitioner` (equal sizes, ``fraction`` of each from one majority class;
    images it cannot place are left out and counted in ``unused``).
    """

    def __init__(self, num_partitions: int, large_fraction: float = 0.6, partition_by: str = "label",
                 fraction: float = 0.8, seed: int = 42) -> None:
        super().__init__()
        if num_partitions < 2:
            raise ValueError(f"a large-site partition needs at least 2 sites (1 large + small ones), got {num_partitions}")
        if not 0 < large_fraction < 1:
            raise ValueError(f"large_site_fraction must be in (0, 1), got {large_fraction}")
        self._num_partitions, self._large, self._partition_by, self._seed = num_partitions, large_fraction, partition_by, seed
        self._small = MajorityClassPartitioner(num_partitions - 1, partition_by, fraction, seed=seed)
        self._indices: list[np.ndarray] | None = None
        self.unused = 0

    @property
    def num_partitions(self) -> int:
        return self._num_partitions

    @property
    def majority(self) -> list[int]:
        """Majority class of each small site (partition 1, 2, ...)."""
        self._determine()
        return self._small.majority

    def _determine(self) -> None:
        if self._indices is not None:
            return
        n = len(self.dataset)
        order = np.random.default_rng(self._seed).permutation(n)
        cut = int(round(self._large * n))
        large, rest = np.sort(order[:cut]), np.sort(order[cut:])
        self._small.dataset = self.dataset.select(rest)
        self._small._determine()
        assert self._small._indices is not None
        self._indices = [large] + [rest[i] for i in self._small._indices]
        self.unused = self._small.unused

    def load_partition(self, partition_id: int) -> "datasets.Dataset":
        self._determine()
        assert self._indices is not None
        return self.dataset.select(self._indices[partition_id])


def make_partitioner(cfg: "FederatedConfig", num_images: int) -> Partitioner:
    """The flwr-datasets partitioner ``cfg.partition`` names."""
    if cfg.partition == "iid":
        return IidPartitioner(num_partitions=cfg.num_clients)
    if cfg.partition == "dirichlet":
        return DirichletPartitioner(
            num_partitions=cfg.num_clients, partition_by="label", alpha=cfg.dirichlet_alpha,
            min_partition_size=min(10, max(1, num_images // (2 * cfg.num_clients))), self_balancing=True, seed=cfg.seed,
        )
    if cfg.partition == "majority":
        return MajorityClassPartitioner(cfg.num_clients, "label", cfg.majority_fraction, seed=cfg.seed)
    if cfg.partition == "large-site":
        return LargeSitePartitioner(cfg.num_clients, cfg.large_site_fraction, "label", cfg.majority_fraction, seed=cfg.seed)
    raise ValueError(f"partition {cfg.partition!r} has no simulated partitioner (supernode: each site reads its own data)")


def load_training_set(cfg: "FederatedConfig") -> "datasets.Dataset":
    """The whole training set the simulated sites share out (``max_train_images`` applied)."""
    from ..data import load_dataset

    ds = load_dataset(cfg.dataset, split=cfg.dataset_split)
    if cfg.max_train_images:
        ds = ds.select(range(min(cfg.max_train_images, len(ds))))
    return ds


def check_partition(cfg: "FederatedConfig", ds: "datasets.Dataset", names: Sequence[str]) -> None:
    """Fail before training when the sites cannot each be given an image of every class."""
    counts = np.bincount(np.asarray(ds["label"]), minlength=len(names))
    smallest = int(counts.min()) if len(counts) else 0
    if cfg.num_clients > smallest:
        worst = names[int(counts.argmin())]
        raise ValueError(
            f"num_clients={cfg.num_clients} is more than the {smallest} images of class {worst!r} in {cfg.dataset} "
            f"(class counts {dict(zip(names, counts.tolist()))}); use at most {smallest} clients"
        )
    if cfg.partition == "majority":
        MajorityClassPartitioner(cfg.num_clients, "label", cfg.majority_fraction).site_counts(counts.tolist())
    if cfg.partition == "large-site":  # the small sites' share, in the whole set's class mix (the exact draw may differ by a few)
        rest = proportional_counts(dict(enumerate(counts.tolist())), len(ds) - int(round(cfg.large_site_fraction * len(ds))))
        MajorityClassPartitioner(cfg.num_clients - 1, "label", cfg.majority_fraction).site_counts([rest[j] for j in range(len(counts))])


def partition_dataset(cfg: "FederatedConfig", ds: "datasets.Dataset") -> list["datasets.Dataset"]:
    """``cfg.num_clients`` partitions of ``ds`` (shuffled with ``cfg.seed`` first: IidPartitioner shards contiguously)."""
    partitioner = make_partitioner(cfg, len(ds))
    partitioner.dataset = ds.shuffle(seed=cfg.seed).flatten_indices()
    return [partitioner.load_partition(i) for i in range(cfg.num_clients)]


@functools.lru_cache(maxsize=2)
def cached_partition(config_json: str, partition_id: int) -> "datasets.Dataset":
    """One simulated site's partition, cached per process (a Ray actor serves many rounds)."""
    from .config import FederatedConfig

    cfg = FederatedConfig.from_json(config_json)
    return partition_dataset(cfg, load_training_set(cfg))[partition_id]


def class_counts(parts: Sequence["datasets.Dataset"], names: Sequence[str]) -> list[dict[str, int]]:
    """Images per class of every site."""
    return [dict(zip(names, np.bincount(np.asarray(p["label"], dtype=int), minlength=len(names)).tolist())) for p in parts]


def format_counts(counts: Sequence[dict[str, int]]) -> str:
    """A plain-text table: one row per site, one column per class, and each site's majority share."""
    names = list(counts[0]) if counts else []
    width = max([len(n) for n in names] + [6])
    lines = ["site  " + "  ".join(f"{n:>{width}}" for n in names) + f"  {'total':>7}  majority"]
    for i, row in enumerate(counts):
        total = sum(row.values())
        share = max(row.values()) / total if total else 0.0
        lines.append(f"{i:>4}  " + "  ".join(f"{row[n]:>{width}}" for n in names) + f"  {total:>7}  {share:7.0%}")
    return "\n".join(lines)


def write_partitions(out: Path, cfg: "FederatedConfig", counts: Sequence[dict[str, int]], unused: int = 0) -> Path:
    """``partitions.json``: the partition scheme and each site's class counts."""
    path = Path(out) / PARTITIONS_FILE
    data = {
        "partition": cfg.partition, "num_clients": cfg.num_clients, "seed": cfg.seed,
        "dirichlet_alpha": cfg.dirichlet_alpha if cfg.partition == "dirichlet" else None,
        "majority_fraction": cfg.majority_fraction if cfg.partition in ("majority", "large-site") else None,
        "large_site_fraction": cfg.large_site_fraction if cfg.partition == "large-site" else None,
        "unused_images": unused, "class_counts": list(counts),
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
