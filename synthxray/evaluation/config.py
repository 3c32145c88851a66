"""``EvaluationConfig``: every option of :func:`synthxray.evaluation.evaluate`, one dataclass that ``synthxray evaluate``
parses (HfArgumentParser, like the trainers' configs: flags or one ``.yaml``/``.json`` file) and ``evaluate`` takes.

No torch or extractor import here, so the CLI's ``--help`` and the validation stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..configcheck import check_fields
from ..training.config import help_field

DISTRIBUTION_METRICS = ("fid", "kid", "precision", "recall")
EXTRA_METRICS = ("memorization", "label_fidelity", "tsne")
ALL_METRICS = DISTRIBUTION_METRICS + EXTRA_METRICS
MATCH_RESOLUTIONS = ("synthetic", "real", "none")
CLASS_MIXES = ("real", "synthetic")
GENERATOR_SETTINGS = ("scheduler", "num_inference_steps", "guidance_scale")  # generator input only


@dataclass
class EvaluationConfig:
    """What to compare and how. From Python, ``real``/``synthetic`` may also be a ``datasets.Dataset`` (and
    ``synthetic`` a ``synthxray.Generator``), ``extractor`` a torch module and ``seeds`` a list of seeds."""

    # ``str | object | None``: the CLI parses a path or id (str); Python may pass any object (see the class docstring)
    real: str | object | None = help_field(None, "Real images: class-folder directory, .npz, MedMNIST name, save_to_disk folder or Hub id.",
                                           required=True)
    synthetic: str | object | None = help_field(
        None, "Synthetic images (same kinds as --real), or a generator folder / Hub repo (a folder with synthxray.json), "
        "sampled on the fly.", required=True)
    metrics: list[str] = help_field(list(DISTRIBUTION_METRICS), "fid kid precision recall, plus memorization label_fidelity tsne.")
    extractor: str | object | None = help_field(
        "inception", "inception | dinov2 | dinov2:PATH_OR_HUB_ID | random | a DINOv2 folder | a TorchScript/pickled module file.")
    by_class: bool = help_field(True, "Add one row per class (matched by class name) to the overall row (--no_by_class: overall only).")
    seeds: int | str | list[int] = help_field(1, "Number of seeds K (seeds 0..K-1; a new synthetic sample or subset per seed): mean ± std reported.")
    num_samples: int | None = help_field(
        None, "Images per side (random stratified subset; a generator makes this many in the real class proportions).")
    num_per_class: int | None = help_field(None, "Generator input: images per class instead of the real proportions.")
    real_split: str | None = help_field(
        None, "Split of --real (default: test when the source has one, else its training images, with a warning).")
    synthetic_split: str = help_field("train", "Split of --synthetic (a dataset).")
    protocol: str = help_field(
        "torch-fidelity", "How images are resized to the network's input: torch-fidelity (TF1 bilinear on the whole image, as "
        "torch-fidelity), clean (clean-fid's PIL bicubic on float), pytorch-fid (torch bilinear), legacy (synthxray < 0.3: "
        "PIL bicubic + centre crop + uint8; matches no library).")
    match_resolution: str | None = help_field(
        "synthetic", "Compare at one size: synthetic brings the real images to the generator's resolution with its training "
        "transform; real brings the synthetic images to the real size; none compares native sizes (warned when they differ).",
        choices=list(MATCH_RESOLUTIONS))
    class_mix: str = help_field(
        "real", "Synthetic dataset input: draw it in the real class mix, or keep its own mix (synthetic).", choices=list(CLASS_MIXES))
    train: str | object | None = help_field(None, "The generator's training set, for memorization and the label-fidelity classifier (default: --real).")
    train_split: str = help_field("train", "Split of --train.")
    batch_size: int = help_field(32, "Images per feature-extraction batch (and per generator batch from the CLI).")
    device: str | None = help_field(None, "cpu, cuda, ... (default: cuda when available).")
    cache: bool = help_field(True, "Read and write the real-feature cache (--no_cache: neither).")
    cache_synthetic: bool = help_field(False, "Cache a synthetic dataset's features the same way.")
    cache_dir: str | None = help_field(None, "Where features are cached (default ~/.cache/synthxray/features).")
    kid_subset_size: int | None = help_field(None, "KID subset size (default: torch-fidelity's, capped by the set sizes).")
    kid_subsets: int = help_field(100, "KID subsets.")
    prc_neighborhood: int = help_field(3, "k of the k-NN precision/recall manifolds.")
    scheduler: str | None = help_field(None, "Generator input: sampler (default: the generator's saved default).")
    num_inference_steps: int | None = help_field(None, "Generator input: sampling steps (default: the generator's).")
    guidance_scale: float | None = help_field(None, "Generator input: guidance scale (default: the generator's).")
    output_dir: str | None = help_field(None, "Folder for evaluation.json / evaluation.md and the plots (the CLI needs it).")
    overwrite_output_dir: bool = help_field(
        False, "Write into an output_dir that holds files synthxray did not write (they are kept; evaluation.json/.md "
        "and the plots are replaced); another kind of synthxray artefact is refused even so.")
    progress: bool = help_field(True, "Progress bars (--no_progress: none).")

    # the types values are checked against (configcheck), where the CLI parser needs the annotation spelled loosely
    _strict_types = {"seeds": int | list[int], "metrics": str | list[str]}

    def __post_init__(self) -> None:
        check_fields(self)  # strictly typed: by_class: "false" or batch_size: "8" is an error naming the key
        if self.real is None or self.synthetic is None:
            raise ValueError("evaluate needs real and synthetic (--real, --synthetic, or keys of the --config file)")
        self.metrics = [m.lower() for m in ([self.metrics] if isinstance(self.metrics, str) else self.metrics)]
        unknown = [m for m in self.metrics if m not in ALL_METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown} (--metrics); choose from {list(ALL_METRICS)}")
        if isinstance(self.seeds, int) and self.seeds < 1 or not isinstance(self.seeds, int) and not self.seeds:
            raise ValueError(f"seeds (--seeds) must be >= 1 or a non-empty list, got {self.seeds!r}")
        if isinstance(self.seeds, list):
            if any(not 0 <= s < 2**32 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
                raise ValueError(f"seeds: {self.seeds} must be distinct integers from 0 to 2**32 - 1 (a repeated seed "
                                 "repeats the same draw and shrinks the reported std)")
        if self.num_samples is not None and self.num_samples < 2:
            raise ValueError(f"num_samples (--num_samples) must be >= 2, got {self.num_samples}")
        if self.num_per_class is not None and self.num_per_class < 1:
            raise ValueError(f"num_per_class (--num_per_class) must be >= 1, got {self.num_per_class}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size (--batch_size) must be >= 1, got {self.batch_size}")
        minimums = (("kid_subsets", 1), ("prc_neighborhood", 1), ("kid_subset_size", 2), ("num_inference_steps", 1))
        for key, minimum in minimums:
            value = getattr(self, key)  # 0 is not "unset": an optional key is left out instead
            if value is not None and value < minimum:
                raise ValueError(f"{key} (--{key}) must be >= {minimum}, got {value}")
        if "tsne" in self.metrics and self.output_dir is None:
            raise ValueError("the tsne plot needs output_dir (--output_dir)")
        if self.match_resolution in ("none", "None", ""):
            self.match_resolution = None
        if self.match_resolution not in ("synthetic", "real", None):
            raise ValueError(f"match_resolution must be one of {MATCH_RESOLUTIONS}, got {self.match_resolution!r}")
        if self.class_mix not in CLASS_MIXES:
            raise ValueError(f"class_mix must be one of {CLASS_MIXES}, got {self.class_mix!r}")

    @property
    def generator_settings(self) -> dict[str, Any]:
        """``scheduler`` / ``num_inference_steps`` / ``guidance_scale`` where set (for ``generate_dataset``)."""
        return {k: getattr(self, k) for k in GENERATOR_SETTINGS if getattr(self, k) is not None}
