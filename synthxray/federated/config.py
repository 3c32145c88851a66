"""The federated run's config: the backend (DDPM flags at the top level, a GAN's or the VAE's under ``backend_args``)
plus the federation's own fields (sites, partition, rounds, strategy, privacy)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from ..training.config import help_field
from ..training.ddpm import DDPMTrainingConfig

PARTITIONS = ("iid", "dirichlet", "majority", "large-site", "supernode")
STRATEGIES = ("fedavg", "fedprox")

# fields a resumed run must share with the run that wrote the checkpoints (the rest may change between runs)
RESUME_KEYS = (
    "num_clients", "partition", "dirichlet_alpha", "majority_fraction", "large_site_fraction", "local_steps", "strategy", "seed", "resolution",
    "channels", "block_out_channels", "layers_per_block", "attention", "mid_block_attention", "num_train_timesteps",
    "beta_schedule", "prediction_type", "dataset", "dataset_split", "backend", "backend_args",
)


@dataclass
class FederatedConfig(DDPMTrainingConfig):
    """``synthxray federated --config fed.yaml``: one generator trained with Flower over simulated or real sites.

    ``backend`` picks what is trained: the class-conditional DDPM (default; its flags are this config's top-level
    fields, ``train_ddpm.py``'s) or a one-pass backend (``vae``, ``dcgan``, ``wgan-gp``, ``cgan``, ``acgan``; its flags,
    ``train_vae.py``'s / ``train_gan.py``'s, go under ``backend_args``). Every client runs that trainer's optimiser steps
    (``local_steps`` per round); learning-rate schedules and EMA warm-ups are planned over ``num_rounds * local_steps``
    steps, so a federated run and a centralised run of the same total steps anneal alike.
    """

    backend: str = help_field(
        "ddpm", "ddpm (default) | vae | dcgan | wgan-gp | cgan | acgan: the trainable backend the sites train together."
    )
    backend_args: dict | str | None = help_field(
        None,
        "Flags of the vae/GAN trainer (train_vae.py / train_gan.py names, e.g. {latent_dim: 64, learning_rate: 0.0002}); "
        "a mapping in YAML, JSON on the command line. The data, resolution, seed and batch size are this config's.",
    )

    num_clients: int = help_field(4, "Sites (Flower SuperNodes); in simulation each gets one partition of the dataset.")
    partition: str = help_field(
        "iid",
        "iid | dirichlet (per-class Dirichlet(alpha) shares, flwr-datasets' DirichletPartitioner) | majority (each site "
        "holds majority_fraction of one class) | large-site (site 0 an IID draw of large_site_fraction of the images, the "
        "others majority sites over the rest) | supernode (deployment: each SuperNode reads its own data-path).",
    )
    dirichlet_alpha: float = help_field(0.5, "Concentration of the Dirichlet partition (smaller: more skewed).")
    majority_fraction: float = help_field(0.8, "Share of each site's images from its majority class (0.6-0.9 in seed 002).")
    large_site_fraction: float = help_field(0.6, "partition: large-site: share of the images (an IID draw) at site 0.")
    num_rounds: int = help_field(10, "Federated rounds.")
    local_steps: int = help_field(50, "Optimiser steps each sampled client runs per round.")
    fraction_train: float = help_field(1.0, "Fraction of sites sampled each round, in (0, 1].")
    min_train_clients: int = help_field(1, "Fewest sites a round trains on (Flower's min_train_nodes).")
    strategy: str = help_field("fedavg", "fedavg (weighted by each site's examples) | fedprox.")
    proximal_mu: float = help_field(0.01, "FedProx proximal term weight mu (strategy: fedprox).")
    dp_noise_multiplier: float | None = help_field(
        None,
        "Client-side differential privacy with fixed clipping (Flower's DifferentialPrivacyClientSideFixedClipping + "
        "fixedclipping_mod): Gaussian noise multiplier on the aggregated update. Off when unset.",
    )
    secure_aggregation: bool = help_field(
        False, "SecAgg+ (Flower's SecAggPlusWorkflow + secaggplus_mod): the server sees only the sum of the sites' "
        "masked updates. Runs on Flower's legacy server loop (synthxray.federated.secagg); not with dp_noise_multiplier.",
    )
    secagg_num_shares: float = help_field(
        1.0, "SecAgg+ key shares per site: <= 1 a fraction of the sampled sites, > 1 a count (>= 3).")
    secagg_reconstruction_threshold: float = help_field(
        0.5, "SecAgg+ shares needed to rebuild a dropped site's key: <= 1 a fraction of num_shares, > 1 a count (>= 2). "
        "Higher: more privacy, fewer dropouts survived.")
    secagg_clipping_range: float = help_field(
        8.0, "SecAgg+ clips every weight to [-range, range] before quantising it to 2**22 levels (Flower's default 8).")
    secagg_max_weight: float | None = help_field(
        None, "SecAgg+'s largest site weight (image count); default: the largest simulated site. Needed with partition: supernode.")
    dp_clipping_norm: float = help_field(10.0, "L2 norm each client's model update is clipped to (with dp_noise_multiplier).")
    class_names: list[str] | None = help_field(
        None, "Class names (needed with partition: supernode, where the server holds no data; label i = class_names[i])."
    )
    fid_every_rounds: int = help_field(0, "Compute FID of the global model against fid_dataset every K rounds (0: never).")
    fid_dataset: str | None = help_field(None, "Held-out server-side set for FID (default: dataset's test split).")
    fid_split: str = help_field("test", "Split of fid_dataset.")
    fid_num_images: int = help_field(200, "Synthetic and real images per FID (default protocol of synthxray.evaluate).")
    client_num_cpus: float = help_field(1.0, "CPUs each simulated client reserves in Ray (2 on a 2-core machine: one client at a time).")
    client_num_gpus: float = help_field(0.0, "GPUs each simulated client reserves (e.g. 0.25 to run 4 on one GPU).")
    round_timeout: float = help_field(3600.0, "Seconds the server waits for a round's replies; a site that misses it is dropped from the round.")
    inject_failures: list[str] = help_field(
        [], "Testing the failure path: 'partition:round' pairs whose client raises in that round (e.g. 1:2)."
    )
    resume_from_checkpoint: str | None = help_field(
        "latest", "'latest' (default: a re-run continues after the last completed round) or none to refuse an old run."
    )
    checkpointing_steps: int = help_field(0, "Unused by federated runs: the server checkpoints the global model every round.")
    save_images_steps: int = help_field(0, "Unused by federated runs (a sample grid is saved at the end).")

    def __post_init__(self) -> None:
        if self.resume_from_checkpoint in ("none", "None", ""):
            self.resume_from_checkpoint = None
        if self.partition == "supernode" and not self.dataset:
            if not self.class_names:
                raise ValueError("partition: supernode needs class_names (the server holds no data to read them from)")
            self.dataset = "supernode"
        super().__post_init__()
        if self.partition not in PARTITIONS:
            raise ValueError(f"partition must be one of {PARTITIONS}, got {self.partition!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.num_clients < 1:
            raise ValueError(f"num_clients must be >= 1, got {self.num_clients}")
        if not 0 < self.fraction_train <= 1:
            raise ValueError(f"fraction_train must be in (0, 1], got {self.fraction_train}")
        if not 1 <= self.min_train_clients <= self.num_clients:
            raise ValueError(f"min_train_clients must be in [1, num_clients={self.num_clients}], got {self.min_train_clients}")
        if self.partition in ("majority", "large-site") and not 0.5 < self.majority_fraction < 1:
            raise ValueError(f"majority_fraction must be in (0.5, 1) (seed 002 used 0.6-0.9), got {self.majority_fraction}")
        if self.partition == "large-site" and (self.num_clients < 2 or not 0 < self.large_site_fraction < 1):
            raise ValueError(f"partition: large-site needs num_clients >= 2 and large_site_fraction in (0, 1), got "
                             f"{self.num_clients} and {self.large_site_fraction}")
        if self.partition == "dirichlet" and self.dirichlet_alpha <= 0:
            raise ValueError(f"dirichlet_alpha must be > 0, got {self.dirichlet_alpha}")
        if self.num_rounds < 1 or self.local_steps < 1:
            raise ValueError("num_rounds and local_steps must be >= 1")
        if self.max_train_steps is not None or self.max_train_minutes is not None:
            raise ValueError("federated runs are sized by num_rounds * local_steps; leave max_train_steps/max_train_minutes unset")
        if self.strategy == "fedprox" and self.proximal_mu < 0:
            raise ValueError("proximal_mu must be >= 0")
        if self.dp_noise_multiplier is not None and (self.dp_noise_multiplier < 0 or self.dp_clipping_norm <= 0):
            raise ValueError("dp_noise_multiplier must be >= 0 and dp_clipping_norm > 0")
        if self.fid_every_rounds < 0 or self.fid_num_images < 2:
            raise ValueError("fid_every_rounds must be >= 0 and fid_num_images >= 2")
        for item in self.inject_failures:
            parts = str(item).split(":")
            if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
                raise ValueError(f"inject_failures entries are 'partition:round', got {item!r}")
        if self.secure_aggregation:
            self._check_secagg()
        self.backend_args = parse_backend_args(self.backend_args)
        # the backend and its backend_args are checked by federated.backends.get_backend (run_federated calls it before
        # reading any data): the backends sit above this config, which imports none of them

    def _check_secagg(self) -> None:
        sampled = self.sites_per_round
        if sampled < 2:
            raise ValueError(f"secure_aggregation needs at least 2 sites per round, got {sampled} "
                             f"(num_clients={self.num_clients}, fraction_train={self.fraction_train})")
        if self.dp_noise_multiplier is not None:
            raise ValueError("secure_aggregation runs on Flower's legacy server loop, which synthxray does not pair with the "
                             "Message-API DP wrapper; use either secure_aggregation or dp_noise_multiplier")
        for name in ("secagg_num_shares", "secagg_reconstruction_threshold"):
            v = getattr(self, name)
            if v > 1 and v != int(v):
                raise ValueError(f"{name} above 1 is a count and must be a whole number, got {v}")
        shares, threshold = secagg_counts(self)
        if isinstance(shares, int) and not 3 <= shares <= sampled:
            raise ValueError(f"secagg_num_shares as a count must be in [3, sites per round={sampled}], got {shares}")
        if isinstance(threshold, int) and (threshold < 2 or (isinstance(shares, int) and threshold >= shares)):
            raise ValueError(f"secagg_reconstruction_threshold as a count must be >= 2 and < secagg_num_shares, got {threshold}")
        if shares <= 0 or threshold <= 0:
            raise ValueError("secagg_num_shares and secagg_reconstruction_threshold must be > 0")
        if self.secagg_clipping_range <= 0 or (self.secagg_max_weight is not None and self.secagg_max_weight <= 0):
            raise ValueError("secagg_clipping_range and secagg_max_weight must be > 0")
        if self.partition == "supernode" and not self.secagg_max_weight:
            raise ValueError("secure_aggregation with partition: supernode needs secagg_max_weight (at least the largest "
                             "site's image count: the server cannot see the sites' data)")

    @property
    def sites_per_round(self) -> int:
        """Sites each round trains on: ``fraction_train`` of ``num_clients``, at least ``min_train_clients`` (the plain
        and SecAgg+ strategies ask for this many outright, and DP's noise is scaled by it)."""
        return max(self.min_train_clients, int(self.num_clients * self.fraction_train))

    @property
    def total_steps(self) -> int:
        """Optimiser steps a site that trains every round runs over the whole federation."""
        return self.num_rounds * self.local_steps

    def to_json(self) -> str:
        """The config as JSON (what the server sends to every client in its ConfigRecord)."""
        return json.dumps(self.to_dict(), default=str)

    @classmethod
    def from_json(cls, text: str) -> "FederatedConfig":
        data: dict[str, Any] = json.loads(text)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def failures(self) -> set[tuple[int, int]]:
        """``inject_failures`` as (partition, round) pairs."""
        return {tuple(int(p) for p in str(item).split(":")) for item in self.inject_failures}  # type: ignore[misc]


def secagg_counts(cfg: FederatedConfig) -> tuple[int | float, int | float]:
    """(num_shares, reconstruction_threshold) as Flower's SecAggPlusWorkflow reads them: a float is a fraction, an
    int a count."""
    def flower(v: float) -> int | float:
        return int(v) if v > 1 else float(v)

    return flower(cfg.secagg_num_shares), flower(cfg.secagg_reconstruction_threshold)


def parse_backend_args(value: Any) -> dict[str, Any]:
    """``backend_args`` as a dict: a mapping (YAML, Python), JSON text (a command-line flag) or nothing."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"backend_args must be a mapping (JSON on the command line), got {value!r}: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"backend_args must be a mapping of trainer flags, got {type(value).__name__} {value!r}")
    return dict(value)
