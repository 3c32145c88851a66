"""The experiment spec: one YAML/JSON file (or dict) that names data, backbones, recipes, seeds and settings.

Unknown keys are errors at every level, so a typo never silently falls back to a default, and every value is checked
strictly against its field's type (``synthxray.configcheck``): ``"false"`` is not a boolean, ``'28'`` not an integer.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..configcheck import check_fields, check_keys, read_mapping
from .backbones import BACKBONES
from .recipes import BALANCES, DEFAULT_RATIO_OF, RATIO_OF, Recipe, parse_recipe
from .regimes import RegimeSpec
from .robustness import ATTACKS
from .train import MONITORS, SCHEDULES, TrainConfig


def _check_keys(cls, data: Mapping[str, Any], where: str) -> None:
    check_keys(cls, data, where)


@dataclass
class SyntheticSpec:
    """Synthetic images: a dataset (anything ``load_dataset`` reads) or a generator to sample from."""

    dataset: Any = None
    generator: str | None = None
    split: str = "train"
    per_class: int | None = None  # generator only; default: what the recipes need ("all" = as many as the real set)
    pool_ratio: float = 1.0  # generator only, without per_class: size of the "all synthetic" pool vs the real count
    seed: int = 0
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    scheduler: str | None = None
    batch_size: int = 64
    revision: str | None = None
    output_dir: str | None = None  # where sampled images are kept; default <output_dir>/synthetic

    def __post_init__(self) -> None:
        check_fields(self, "synthetic.")
        if (self.dataset is None) == (self.generator is None):
            raise ValueError("synthetic: give exactly one of dataset (a synthetic dataset) or generator (a generator folder or Hub id)")
        if self.per_class is not None and self.per_class < 1:
            raise ValueError("synthetic.per_class must be >= 1")
        if self.pool_ratio <= 0:
            raise ValueError("synthetic.pool_ratio must be > 0")
        if self.dataset is not None and (self.per_class is not None or self.num_inference_steps is not None):
            raise ValueError("synthetic: per_class and sampler settings apply to a generator, not to a dataset")

    @classmethod
    def parse(cls, value: Any) -> "SyntheticSpec | None":
        if value is None or isinstance(value, SyntheticSpec):
            return value
        if isinstance(value, Mapping):
            _check_keys(cls, value, "synthetic")
            return cls(**value)
        if isinstance(value, (str, os.PathLike)) and (Path(value) / "synthxray.json").is_file():
            return cls(generator=str(value))
        return cls(dataset=value)


@dataclass
class RobustnessSpec:
    epsilon: float = 8 / 255
    attacks: list[str] = field(default_factory=lambda: list(ATTACKS))
    max_images: int | None = None

    def __post_init__(self) -> None:
        check_fields(self, "robustness.")
        if not 0 < self.epsilon < 1:
            raise ValueError("robustness.epsilon must be in (0, 1) (pixel scale; 8/255 = 0.0314)")
        unknown = set(self.attacks) - set(ATTACKS)
        if unknown or not self.attacks:
            raise ValueError(f"robustness.attacks must be a non-empty subset of {list(ATTACKS)}, got {self.attacks}")

    @classmethod
    def parse(cls, value: Any) -> "RobustnessSpec | None":
        if value in (None, False):
            return None
        if value is True:
            return cls()
        if isinstance(value, RobustnessSpec):
            return value
        if isinstance(value, Mapping):
            _check_keys(cls, value, "robustness")
            return cls(**value)
        raise ValueError(f"robustness must be true/false or a mapping, got {value!r}")


BACKBONE_RUN_KEYS = ("name", "id", "learning_rate", "batch_size", "epochs")


@dataclass
class BackboneSpec:
    """``name`` in the registry, an ``id`` for tables and folders, per-backbone training overrides, builder options."""

    name: str
    id: str = ""
    learning_rate: float | None = None
    batch_size: int | None = None
    epochs: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(self, f"backbone {self.id or self.name!r}: ")
        builder = BACKBONES.get(self.name)  # KeyError lists the known backbones
        self.id = self.id or self.name
        for key in ("epochs", "batch_size", "learning_rate"):  # 0 is not "unset": say so instead of using the top level
            value = getattr(self, key)
            if value is not None and (value <= 0 if key == "learning_rate" else value < 1):
                bound = "> 0" if key == "learning_rate" else ">= 1"
                raise ValueError(f"backbone {self.id!r}: {key}: {value!r} must be {bound}; "
                                 f"leave the key out to use the top-level {key}")
        params = inspect.signature(builder).parameters
        allowed = [p for p in params if p not in ("num_classes", "in_channels", "image_size")]
        unknown = set(self.options) - set(allowed)
        if unknown:
            raise ValueError(f"backbone {self.name!r}: unknown option(s) {sorted(unknown)}; options: {allowed + list(BACKBONE_RUN_KEYS[1:])}")

    @classmethod
    def parse(cls, value: Any) -> "BackboneSpec":
        if isinstance(value, BackboneSpec):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            if "name" not in value:
                raise ValueError(f"backbone {dict(value)}: 'name' is required")
            top = {k: value[k] for k in BACKBONE_RUN_KEYS if k in value}
            options = {k: v for k, v in value.items() if k not in BACKBONE_RUN_KEYS}
            if "options" in options and isinstance(options["options"], Mapping):
                options = {**options.pop("options"), **options}
            return cls(**top, options=options)
        raise ValueError(f"a backbone is a name or a mapping with 'name', got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


DEFAULT_RECIPES = ("baseline", "synth-25", "synth-50", "synth-100", "limited-10", "limited-25", "synth-only")


@dataclass
class ExperimentSpec:
    """Everything one experiment needs. See ``docs`` in the README for an example file."""

    real_train: Any
    test: Any
    output_dir: str
    real_train_split: str = "train"
    val: Any = None
    val_split: str = "val"
    val_fraction: float = 0.1  # of the real training set, when no val is given (never from test)
    test_split: str = "test"
    synthetic: Any = None
    backbones: list[Any] = field(default_factory=lambda: ["densenet121"])
    recipes: list[Any] = field(default_factory=lambda: list(DEFAULT_RECIPES))
    regimes: Any = None  # {fractions: [...], recipes: [real, balanced-real, limited, ...]}: the limited-data grid (experiments/regimes.py)
    seeds: list[int] = field(default_factory=lambda: [0])
    baseline: str | None = None  # recipe the deltas are taken against; default baseline or real-only when present
    compare_to: str | list[str] | None = None  # recipes deltas are taken against; default baseline + balanced-real*
    balance: str = "balanced"  # synthetic class mix: balanced | real | pool
    ratio_of: str = DEFAULT_RATIO_OF  # synth-N counts N% of the synthetic pool (synthetic: seed 004) or of the real set (real)
    strict_counts: bool = False  # true: refuse a recipe whose exact class split the pool cannot serve (default: a short class gives all it holds)
    epochs: int = 20
    image_size: int = 224
    channels: int | None = None  # 1 or 3; default: 1 for grayscale data
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    lr_scheduler: str = "cosine"
    hflip: bool = True
    rotation: float = 10.0
    color_jitter: float = 0.2
    early_stopping_patience: int | None = None
    early_stopping_monitor: str = "val_loss"
    max_real_train: int | None = None  # keep a stratified subset of the real training set (quick runs)
    positive_class: str | None = None  # two classes: whose F1/precision/recall/AUC; default the second class
    robustness: Any = None
    save_classifiers: bool = True
    plots: bool = True
    mixed_precision: str = "no"
    device: str | None = None
    num_threads: int | None = None  # torch CPU threads; 1 is fastest on a CPU shared with other jobs

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.output_dir:
            raise ValueError("output_dir is required")
        if self.real_train is None or self.test is None:
            raise ValueError("real_train and test are required")
        self.synthetic = SyntheticSpec.parse(self.synthetic)
        self.robustness = RobustnessSpec.parse(self.robustness)
        self.regimes = RegimeSpec.parse(self.regimes)
        if self.regimes is not None:
            # the grid first; recipes listed beside it (other than the default list) are added after it, and a grid recipe
            # already listed (a spec written by to_dict) is not added twice
            extra = [] if list(self.recipes) == list(DEFAULT_RECIPES) else list(self.recipes)
            listed = {r.name if isinstance(r, Recipe) else (r.get("name") if isinstance(r, Mapping) else str(r)) for r in extra}
            self.recipes = [r for r in self.regimes.expand() if r.name not in listed] + extra
            if self.compare_to is None:
                self.compare_to = []  # the regime report pairs every row with its own fraction's controls
        if not self.backbones or not self.recipes or not self.seeds:
            raise ValueError("backbones, recipes and seeds must each list at least one entry")
        self.backbones = [BackboneSpec.parse(b) for b in self.backbones]
        ids = [b.id for b in self.backbones]
        if len(set(ids)) != len(ids):
            raise ValueError(f"backbone ids repeat: {ids}; give repeated backbones distinct 'id's")
        self.recipes = [parse_recipe(r) for r in self.recipes]
        names = [r.name for r in self.recipes]
        if len(set(names)) != len(names):
            raise ValueError(f"recipe names repeat: {names}")
        if any(r.uses_synthetic for r in self.recipes) and self.synthetic is None:
            used = [r.name for r in self.recipes if r.uses_synthetic]
            raise ValueError(f"recipes {used} use synthetic images: set 'synthetic' to a dataset or a generator")
        bad = [s for s in self.seeds if not 0 <= s < 2**32]
        if bad:
            raise ValueError(f"seeds: {bad} out of range; seeds are integers from 0 to 2**32 - 1")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat: {self.seeds}; list each seed once")
        if self.baseline is None:
            self.baseline = next((n for n in ("baseline", "real-only", "real") if n in names), None)
        elif self.baseline not in names:
            raise ValueError(f"baseline {self.baseline!r} is not one of the recipes {names}")
        if self.compare_to is None:
            self.compare_to = ([self.baseline] if self.baseline else []) + [n for n in names if n.startswith("balanced-real")]
        else:
            self.compare_to = [str(c) for c in ([self.compare_to] if isinstance(self.compare_to, str) else self.compare_to)]
            missing = [c for c in self.compare_to if c not in names]
            if missing:
                raise ValueError(f"compare_to {missing} are not among the recipes {names}")
        needs_pool = [r.name for r in self.recipes if r.needs_pool and not r.uses_synthetic]
        if needs_pool and self.synthetic is None and any((self.recipe(n).ratio_of or self.ratio_of) == "synthetic" for n in needs_pool):
            raise ValueError(f"recipes {needs_pool} copy the class counts of a share of the synthetic pool (ratio_of: synthetic): set 'synthetic', "
                             "or ratio_of: real to count a share of the real set")
        if self.balance not in BALANCES:
            raise ValueError(f"balance must be one of {BALANCES}, got {self.balance!r}")
        if self.ratio_of not in RATIO_OF:
            raise ValueError(f"ratio_of must be one of {RATIO_OF}, got {self.ratio_of!r}")
        for r in self.recipes:
            r.check(self.ratio_of)  # a share of the pool above 100% is rejected here, not mid-run
        if not 0 < self.val_fraction < 1:
            raise ValueError("val_fraction must be in (0, 1)")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError(f"epochs ({self.epochs}) and batch_size ({self.batch_size}) must be >= 1 and "
                             f"learning_rate ({self.learning_rate}) > 0")
        if self.image_size < 8:
            raise ValueError("image_size must be >= 8")
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError("mixed_precision must be no or bf16")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError("num_threads must be >= 1")
        if self.max_real_train is not None and self.max_real_train < 2:
            raise ValueError("max_real_train must be >= 2")
        if self.lr_scheduler not in SCHEDULES or self.early_stopping_monitor not in MONITORS:
            raise ValueError(f"lr_scheduler must be one of {SCHEDULES} and early_stopping_monitor one of {MONITORS}")
        for b in self.backbones:
            self.train_config(b)  # validate the per-backbone settings now

    def train_config(self, backbone: BackboneSpec) -> TrainConfig:
        return TrainConfig(
            epochs=_unless_none(backbone.epochs, self.epochs),
            batch_size=_unless_none(backbone.batch_size, self.batch_size),
            learning_rate=_unless_none(backbone.learning_rate, self.learning_rate), weight_decay=self.weight_decay,
            lr_scheduler=self.lr_scheduler, hflip=self.hflip, rotation=self.rotation, color_jitter=self.color_jitter,
            early_stopping_patience=self.early_stopping_patience, early_stopping_monitor=self.early_stopping_monitor,
        )

    def backbone(self, backbone_id: str) -> BackboneSpec:
        return next(b for b in self.backbones if b.id == backbone_id)

    def recipe(self, name: str) -> Recipe:
        return next(r for r in self.recipes if r.name == name)

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "backbones":
                v = [b.to_dict() for b in v]
            elif f.name == "recipes":
                v = [dataclasses.asdict(r) for r in v]
            elif dataclasses.is_dataclass(v):
                v = dataclasses.asdict(v)
            out[f.name] = v
        return json.loads(json.dumps(out, default=_describe))


def _unless_none(value: Any, default: Any) -> Any:
    """A backbone's own setting where it has one (0 is a value, not "unset"), else the top-level one."""
    return default if value is None else value


def _describe(o: Any) -> Any:
    """Datasets given in Python are recorded by their fingerprint, not their contents."""
    fp = getattr(o, "_fingerprint", None)
    if fp is not None:
        return f"<datasets.Dataset {len(o)} rows, fingerprint {fp}>"
    return str(o)


def load_spec(source: Any, **overrides: Any) -> ExperimentSpec:
    """An :class:`ExperimentSpec` from a ``.yaml``/``.yml``/``.json`` file, a mapping or a spec; ``overrides`` replace keys."""
    if isinstance(source, ExperimentSpec):
        if not overrides:
            return source
        data = {f.name: getattr(source, f.name) for f in dataclasses.fields(source)}
        data["synthetic"] = source.synthetic
        data["robustness"] = source.robustness
        data["regimes"] = source.regimes
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        path = Path(source)
        data = read_mapping(path, "experiment config")  # missing or malformed: an error naming the file
        # relative data paths are relative to the config file
        data = _relative_to(data, path.parent)
        try:
            return _build({**data, **overrides})
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return _build({**data, **overrides})


def _build(data: dict[str, Any]) -> ExperimentSpec:
    _check_keys(ExperimentSpec, data, "experiment config")
    missing = [f.name for f in dataclasses.fields(ExperimentSpec)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in data]
    if missing:
        raise ValueError(f"experiment config: missing required key(s) {missing}")
    return ExperimentSpec(**data)


def _relative_to(data: dict[str, Any], base: Path) -> dict[str, Any]:
    def fix(v: Any) -> Any:
        if isinstance(v, str) and v.startswith(("./", "../")) and (base / v).exists():
            return str((base / v).resolve())
        return v

    out = dict(data)
    for key in ("real_train", "val", "test"):
        if key in out:
            out[key] = fix(out[key])
    if isinstance(out.get("synthetic"), dict):
        out["synthetic"] = {k: fix(v) if k in ("dataset", "generator", "output_dir") else v for k, v in out["synthetic"].items()}
    elif "synthetic" in out:
        out["synthetic"] = fix(out["synthetic"])
    return out
