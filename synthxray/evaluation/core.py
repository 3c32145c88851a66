"""``evaluate(real, synthetic, ...)``: FID / KID / precision / recall overall and per class, over seeds."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..classes import match_class_names, proportional_counts, stratified_indices
from ..processes import broadcast, distributed_state, is_main_process
from .config import ALL_METRICS, DISTRIBUTION_METRICS, EXTRA_METRICS, EvaluationConfig  # noqa: F401  (re-exported)
from .extractors import get_extractor
from .fid import (
    Features,
    compute_features,
    fid_from_statistics,
    fid_statistics,
    kid_from_features,
    kid_subset_size_for,
    precision_recall_from_features,
)
from .inputs import (
    available_splits,
    counts_in_mix,
    draw_counts,
    image_sizes,
    is_generator,
    load_input,
    loud,
    plan_resolution,
    resolve_real_split,
    synthetic_intensity,
    synthetic_resolution,
)
from .protocols import get_protocol
from .report import evaluation_markdown

logger = logging.getLogger("synthxray.evaluation")

GENERATOR_SEED_STRIDE = 1_000_000_000  # seed k of a Generator samples with generate_dataset(seed=k * stride)
OVERALL = "overall"


# ---- result ------------------------------------------------------------------------------------
@dataclass
class EvaluationResult:
    """What ``evaluate`` returns: one row per class plus ``overall``, each metric as mean/std/values over seeds.

    ``protocol``, ``extractor``, ``compared_size`` (``settings["compared_size"]``) and each row's
    ``n_real`` / ``n_synthetic`` are what every number depends on; the markdown and JSON state them.
    """

    extractor: str
    metrics: list[str]
    seeds: list[int]
    rows: list[dict[str, Any]]
    protocol: str = ""
    real: dict[str, Any] = field(default_factory=dict)
    synthetic: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    memorization: dict[str, Any] | None = None
    label_fidelity: dict[str, Any] | None = None
    tsne: dict[str, Any] | None = None

    def __getitem__(self, class_name: str) -> dict[str, Any]:
        for row in self.rows:
            if row["class"] == class_name:
                return row
        raise KeyError(f"no row {class_name!r}; rows: {[r['class'] for r in self.rows]}")

    @property
    def compared_size(self) -> Any:
        """The side in px both sets were compared at (a description when they were not matched)."""
        return self.settings.get("compared_size")

    @property
    def overall(self) -> dict[str, Any]:
        return self[OVERALL]

    def value(self, metric: str, class_name: str = OVERALL) -> float:
        """Mean over seeds of ``metric`` in row ``class_name``."""
        return float(self[class_name][metric]["mean"])

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_markdown(self) -> str:
        return evaluation_markdown(self)

    def save(self, output_dir: str | os.PathLike) -> Path:
        """Write ``evaluation.json`` and ``evaluation.md`` into ``output_dir``."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "evaluation.json").write_text(self.to_json() + "\n")
        (out / "evaluation.md").write_text(self.to_markdown())
        return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)


def _summary(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    mean = float(finite.mean()) if len(finite) else float("nan")
    std = float(finite.std(ddof=1)) if len(finite) > 1 else 0.0 if len(finite) else float("nan")
    return {"mean": mean, "std": std, "values": [float(v) for v in arr]}


# ---- the entry point ---------------------------------------------------------------------------
def _config(real: Any, synthetic: Any, config: EvaluationConfig | None, options: dict[str, Any]) -> EvaluationConfig:
    """``config`` with ``real``/``synthetic``/``options`` laid over it (or built from them), validated."""
    if "per_class" in options:
        raise ValueError("evaluate(per_class=...) is now by_class=... (CLI: --by_class / --no_by_class); per_class is "
                         "generate_dataset's images-per-class count")
    names = {f.name for f in dataclasses.fields(EvaluationConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(f"evaluate got unknown option(s) {unknown}; the options are EvaluationConfig's fields: {sorted(names)}")
    given = {**({"real": real} if real is not None else {}), **({"synthetic": synthetic} if synthetic is not None else {}), **options}
    if config is None:
        return EvaluationConfig(**given)
    return dataclasses.replace(config, **given) if given else config


def evaluate(
    real: Any = None,
    synthetic: Any = None,
    *,
    config: EvaluationConfig | None = None,
    classifier: Any = None,
    generate_kwargs: Mapping[str, Any] | None = None,
    extractor_kwargs: Mapping[str, Any] | None = None,
    **options: Any,
) -> EvaluationResult:
    """Compare a synthetic image set with a real one.

    The options are :class:`~synthxray.evaluation.config.EvaluationConfig`'s fields (what ``synthxray evaluate``
    parses): pass ``config=EvaluationConfig(...)``, or ``real``, ``synthetic`` and the fields as keywords
    (``evaluate(real, synthetic, metrics=("fid",), by_class=False)``); keywords override a given ``config``.
    ``classifier`` (label fidelity), ``generate_kwargs`` and ``extractor_kwargs`` are Python objects, not options.

    ``real``: anything ``synthxray.load_dataset`` reads (image folder, .npz, MedMNIST name,
    ``save_to_disk`` folder, Hub id) or a ``datasets.Dataset``; ``real_split`` picks the split,
    by default ``test`` when the source has one (else its training images, with a warning).
    ``synthetic``: the same kinds, or a ``synthxray.Generator`` sampled on the fly with
    ``generate_dataset`` — ``num_per_class`` images per class, else the real set's class proportions
    with ``num_samples`` (default: as many as the real set) images, one fresh set per seed.
    Synthetic classes are matched to real classes by name.

    ``protocol``: how images reach the network's input size: ``torch-fidelity`` (default), ``clean``,
    ``pytorch-fid`` or ``legacy`` (see ``synthxray.evaluation.protocols``). ``match_resolution``:
    ``"synthetic"`` (default) brings the real images to the generator's resolution (its config, the
    dataset manifest, or the synthetic images' size) with the training transform; ``"real"`` brings
    the synthetic images to the real size; ``None`` compares native sizes (warned when they differ).
    ``class_mix``: ``"real"`` (default) draws a synthetic *dataset* in the real side's class
    proportions (as many images as its classes allow, at most ``num_samples``), so the overall row
    compares like with like; ``"synthetic"`` keeps its own mix (said in the report).

    ``metrics``: any of ``fid``, ``kid``, ``precision``, ``recall`` (per class and overall), plus
    ``memorization`` (nearest training image of each synthetic one, against ``train``, else the
    real source's train split, else ``real``), ``label_fidelity`` (``classifier`` or a small CNN trained
    on that set) and ``tsne`` (plot written to ``output_dir``). ``extractor``: ``inception``,
    ``dinov2``, ``dinov2:PATH_OR_ID``, ``random``, a module file, or a torch module. ``seeds``: a count
    K (seeds 0..K-1) or a list; each seed draws a new synthetic set (Generator) or a new subset
    (dataset), against a fixed real subset, and rows report mean and std over seeds. Real features
    are cached on disk (``cache_dir``, default ``~/.cache/synthxray/features``) keyed by image
    content, extractor, protocol and resolution match; ``cache_synthetic=True`` caches a synthetic
    *dataset*'s features the same way.

    Launched on N processes (``ACCELERATE_USE_CPU=1 torchrun --nproc_per_node N`` on CPU, ``accelerate
    launch --num_processes N`` on GPUs), every feature extraction is split between the processes
    and gathered (``compute_features``), a Generator's sets are generated sharded into a scratch
    folder inside ``output_dir``, every process returns the same metrics, and only the main process
    writes files (the report, memorization grids, the t-SNE plot, the feature cache).
    """
    started = time.time()
    cfg = _config(real, synthetic, config, options)
    real, synthetic, metrics, extractor, by_class = cfg.real, cfg.synthetic, cfg.metrics, cfg.extractor, cfg.by_class
    num_samples, num_per_class, real_split, synthetic_split = cfg.num_samples, cfg.num_per_class, cfg.real_split, cfg.synthetic_split
    protocol, match_resolution, class_mix, train, train_split = cfg.protocol, cfg.match_resolution, cfg.class_mix, cfg.train, cfg.train_split
    batch_size, device, cache, cache_synthetic, cache_dir = cfg.batch_size, cfg.device, cfg.cache, cfg.cache_synthetic, cfg.cache_dir
    kid_subset_size, kid_subsets, prc_neighborhood = cfg.kid_subset_size, cfg.kid_subsets, cfg.prc_neighborhood
    output_dir, progress = cfg.output_dir, cfg.progress
    if output_dir is not None:  # before any feature is computed: a refused folder costs nothing
        from ..outputs import EVALUATION, check_output_dir

        check_output_dir(output_dir, EVALUATION, cfg.overwrite_output_dir)
    seed_list = list(range(int(cfg.seeds))) if isinstance(cfg.seeds, (int, np.integer)) else [int(s) for s in cfg.seeds]
    if cfg.generator_settings:
        if not is_generator(synthetic):
            raise ValueError("scheduler/num_inference_steps/guidance_scale (--scheduler, ...) apply only when synthetic is a generator")
        generate_kwargs = {**cfg.generator_settings, **dict(generate_kwargs or {})}
    proto = get_protocol(protocol)
    timings: dict[str, float] = {}
    state, scratch = distributed_state(), None

    real_split, split_note = resolve_real_split(real, real_split)
    real_ds = load_input(real, real_split, intensity=synthetic_intensity(synthetic))  # 12/16-bit: as the generator's data
    real_names = list(real_ds.features["label"].names)
    ext = get_extractor(extractor, device=device, **dict(extractor_kwargs or {}))

    # one resolution for both sides
    synth_ds = None
    if is_generator(synthetic):
        match_class_names(real_names, synthetic.class_names, "generator")
        synth_res, res_from = synthetic_resolution(synthetic)
        synth_sizes = None
        channels = int(getattr(synthetic.info, "channels", 1) or 1)
    else:
        if num_per_class is not None:
            raise ValueError("num_per_class applies to a Generator; use num_samples to subsample a synthetic dataset")
        synth_ds = load_input(synthetic, synthetic_split)
        match_class_names(real_names, synth_ds.features["label"].names)
        synth_res, res_from = synthetic_resolution(synthetic, synth_ds)
        synth_sizes = image_sizes(synth_ds)
        from ..data import is_grayscale

        channels = 1 if is_grayscale(real_ds) and is_grayscale(synth_ds) else 3
    plan = plan_resolution(real_ds, synth_res, synth_sizes, match_resolution, channels)
    resolution_note = _resolution_note(plan, res_from, ext.input_size)

    # real side: a fixed (stratified, seed 0) subset when num_samples is smaller than the set
    real_labels = np.asarray(real_ds["label"], dtype=np.int64)
    real_idx = stratified_indices(real_labels, num_samples, seed=0) if num_samples else np.arange(len(real_ds))
    real_sel = real_ds if len(real_idx) == len(real_ds) else real_ds.select(real_idx.tolist())
    feature_kwargs = dict(batch_size=batch_size, progress=progress, protocol=proto)
    t0 = time.time()
    real_feats = compute_features(real_sel, ext, cache=cache, cache_dir=cache_dir, desc="real features",
                                  transform=plan["real_transform"], **feature_kwargs)
    timings["real_features_s"] = time.time() - t0
    real_counts = {n: int((real_feats.labels == i).sum()) for i, n in enumerate(real_names)}

    # synthetic side: one Features per seed, labels mapped to the real class indices
    synth_per_seed: list[Features] = []
    synth_datasets: list[Any] = []
    gen_settings: dict[str, Any] = {}
    synth_transform = plan["synthetic_transform"]
    if synth_ds is None:
        from ..synthesis import generate_dataset

        gen = synthetic
        mapping = match_class_names(real_names, gen.class_names, "generator")
        if num_per_class is not None:
            counts = {n: int(num_per_class) for n in gen.class_names}
            mix_note = (f"generator sampled with {num_per_class} images per class, not in the real mix {real_counts}: "
                        "the overall row pools different class proportions")
        else:
            total = int(num_samples or len(real_feats))
            by_real = proportional_counts(real_counts, total)
            counts = {n: by_real[real_names[mapping[i]]] for i, n in enumerate(gen.class_names)}
            mix_note = f"generator sampled in the real class mix ({counts})"
        kwargs = dict(generate_kwargs or {})
        gen_settings = {"generator": repr(gen), "images_per_class": counts, **{k: str(v) for k, v in kwargs.items()}}
        synth_source = f"generator {gen.provenance.get('generator_path') or gen.backend}"
        gen_seconds = 0.0
        scratch = _shared_scratch(state, output_dir)
        for s in seed_list:
            t0 = time.time()
            ds = generate_dataset(gen, images_per_class=counts, seed=s * GENERATOR_SEED_STRIDE,
                                  output_dir=None if scratch is None else scratch / f"seed_{s}", progress=progress, **kwargs)
            gen_seconds += time.time() - t0
            synth_datasets.append(ds)
            synth_per_seed.append(_remapped(compute_features(ds, ext, desc=f"synthetic features (seed {s})",
                                                             transform=synth_transform, **feature_kwargs), real_names))
        timings["generate_s"] = gen_seconds
        timings["generate_images_per_s"] = sum(counts.values()) * len(seed_list) / max(gen_seconds, 1e-9)
    else:
        synth_source = str(synthetic) if not hasattr(synthetic, "features") else "datasets.Dataset"
        mapping = np.asarray(match_class_names(real_names, synth_ds.features["label"].names), dtype=np.int64)
        synth_labels = mapping[np.asarray(synth_ds["label"], dtype=np.int64)]
        subsets, mix_note = _synthetic_subsets(synth_labels, real_labels[real_idx], real_names, seed_list,
                                               num_samples, class_mix)
        union = np.unique(np.concatenate(subsets))
        sel = synth_ds if len(union) == len(synth_ds) else synth_ds.select(union.tolist())
        t0 = time.time()
        all_feats = _remapped(compute_features(sel, ext, cache=cache and cache_synthetic, cache_dir=cache_dir,
                                               desc="synthetic features", transform=synth_transform, **feature_kwargs),
                              real_names)
        timings["synthetic_features_s"] = time.time() - t0
        position = {int(j): i for i, j in enumerate(union)}
        for sub in subsets:
            synth_per_seed.append(all_feats.subset([position[int(j)] for j in sub]))
        synth_datasets = [synth_ds.select(subsets[0].tolist()) if len(subsets[0]) < len(synth_ds) else synth_ds]

    rows = _metric_rows(real_feats, synth_per_seed, seed_list, real_names, by_class, metrics,
                        kid_subset_size, kid_subsets, prc_neighborhood, timings)
    settings = {
        "protocol": proto.name, "protocol_description": proto.description, "compared_size": plan["compared_size"],
        "match_resolution": match_resolution, "real_native_size": plan["real_native_size"],
        "synthetic_native_size": plan["synthetic_native_size"], "synthetic_resolution_from": res_from,
        "resolution_note": resolution_note, "class_mix": class_mix, "class_mix_note": mix_note,
        "extractor_identity": ext.identity, "feature_dim": int(real_feats.features.shape[1]),
        "input_size": ext.input_size, "by_class": by_class, "num_samples": num_samples,
        "kid_subsets": kid_subsets, "prc_neighborhood": prc_neighborhood,
    }
    result = EvaluationResult(
        extractor=ext.description, metrics=metrics, seeds=seed_list, rows=rows, protocol=proto.name,
        real={"source": str(real) if not hasattr(real, "features") else "datasets.Dataset", "split": real_split,
              "split_note": split_note, "num_images": len(real_feats), "class_counts": real_counts,
              "features_cached": real_feats.cached},
        synthetic={"source": synth_source, "split": synthetic_split,
                   "num_images": [len(f) for f in synth_per_seed], **gen_settings},
        settings=settings, timings=timings,
    )
    writes = output_dir if is_main_process(state) else None  # files: the main process's alone
    _extras(result, metrics, real, real_split, real_ds, real_feats, train, train_split, classifier, synth_datasets,
            synth_per_seed, ext, batch_size, cache, cache_dir, writes, progress)
    timings["total_s"] = time.time() - started
    if state is not None:
        result.settings["num_processes"] = state.num_processes
        state.wait_for_everyone()  # every process is done with the scratch sets
    if scratch is not None and is_main_process(state):
        shutil.rmtree(scratch, ignore_errors=True)
    if writes is not None:
        result.save(writes)
    return result


def _shared_scratch(state, output_dir: str | os.PathLike | None) -> Path | None:
    """On N processes, a folder they all see for the generated sets (inside ``output_dir`` when given:
    a multi-node run needs a shared filesystem there); ``None`` under one process (sets stay in memory)."""
    if state is None:
        return None
    path = None
    if state.is_main_process:
        parent = Path(output_dir) if output_dir is not None else None
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        path = tempfile.mkdtemp(prefix=".synthetic-", dir=parent)
    return Path(broadcast(path, state))


def _resolution_note(plan: dict[str, Any], res_from: str, input_size: int) -> str:
    size = plan["compared_size"]
    if plan["real_transform"] is not None:
        how = (f"real images ({plan['real_native_size']} px) brought to the synthetic {size} px ({res_from}) with "
               "the training transform (short side resized, centre crop)")
    elif plan["synthetic_transform"] is not None:
        how = (f"synthetic images ({plan['synthetic_native_size']} px) brought to the real {size} px with the "
               "training transform (short side resized, centre crop)")
    elif isinstance(size, int):
        how = f"both sides already {size} px"
    else:
        return f"NOT matched: {size}"
    return f"{how}; then the protocol resizes {size} → {input_size} px for the network"


def _synthetic_subsets(labels: np.ndarray, real_labels: np.ndarray, real_names: list[str], seed_list: list[int],
                       num_samples: int | None, class_mix: str) -> tuple[list[np.ndarray], str]:
    """Per seed, the rows of a synthetic dataset to compare (labels already in real class indices)."""
    k = len(real_names)
    have = {c: int((labels == c).sum()) for c in range(k)}
    real_mix = {c: int((real_labels == c).sum()) for c in range(k)}
    named = lambda d: {real_names[c]: v for c, v in d.items()}  # noqa: E731
    if class_mix == "synthetic" or k == 1:
        subsets = [stratified_indices(labels, num_samples, seed=s) if num_samples else np.arange(len(labels))
                   for s in seed_list]
        own = {c: int((labels[subsets[0]] == c).sum()) for c in range(k)}
        note = (f"synthetic side in its own class mix {named(own)} (class_mix='synthetic'); real mix {named(real_mix)}"
                + ("" if _same_mix(own, real_mix) else ": the overall row pools different class proportions"))
        return subsets, note
    counts = counts_in_mix(have, real_mix, num_samples)
    total = sum(counts.values())
    if total < 2:
        raise ValueError(f"the synthetic set {named(have)} cannot be drawn in the real class mix {named(real_mix)}: "
                         "a class it needs is (nearly) empty; pass class_mix='synthetic' to compare its own mix")
    subsets = [draw_counts(labels, counts, seed=s) for s in seed_list]
    note = f"synthetic side drawn in the real class mix: {named(counts)} of {named(have)} (real {named(real_mix)})"
    if num_samples and total < num_samples:
        loud(f"only {total} synthetic images (not num_samples={num_samples}) can be drawn in the real class mix "
             f"{named(real_mix)} from {named(have)}")
    return subsets, note


def _same_mix(a: dict[int, int], b: dict[int, int]) -> bool:
    ta, tb = sum(a.values()) or 1, sum(b.values()) or 1
    return all(abs(a[c] / ta - b[c] / tb) < 0.01 for c in a)


def _metric_rows(real_feats: Features, synth_per_seed: list[Features], seed_list: list[int], real_names: list[str],
                 by_class: bool, metrics: list[str], kid_subset_size: int | None, kid_subsets: int,
                 prc_neighborhood: int, timings: dict[str, float]) -> list[dict[str, Any]]:
    t0 = time.time()
    row_names = [OVERALL] + (real_names if by_class else [])
    real_stats: dict[str, Any] = {}
    values: dict[str, dict[str, list[float]]] = {r: {m: [] for m in metrics if m in DISTRIBUTION_METRICS} for r in row_names}
    n_synth: dict[str, list[int]] = {r: [] for r in row_names}
    for s, feats in zip(seed_list, synth_per_seed):
        for r in row_names:
            ci = None if r == OVERALL else real_names.index(r)
            a = real_feats.features if ci is None else real_feats.of_class(ci)
            b = feats.features if ci is None else feats.of_class(ci)
            n_synth[r].append(len(b))
            if "fid" in metrics:
                if len(a) < 2 or len(b) < 2:
                    values[r]["fid"].append(float("nan"))
                else:
                    if r not in real_stats:
                        real_stats[r] = fid_statistics(a)
                    values[r]["fid"].append(fid_from_statistics(real_stats[r], fid_statistics(b)))
            if "kid" in metrics:
                values[r]["kid"].append(kid_from_features(a, b, kid_subset_size, kid_subsets, seed=s)[0])
            if "precision" in metrics or "recall" in metrics:
                p, rc = precision_recall_from_features(a, b, prc_neighborhood)
                if "precision" in metrics:
                    values[r]["precision"].append(p)
                if "recall" in metrics:
                    values[r]["recall"].append(rc)
    timings["metrics_s"] = time.time() - t0
    rows = []
    for r in row_names:
        ci = None if r == OVERALL else real_names.index(r)
        n_real = len(real_feats) if ci is None else int((real_feats.labels == ci).sum())
        ns = n_synth[r]
        row: dict[str, Any] = {"class": r, "n_real": n_real, "n_synthetic": int(ns[0]) if len(set(ns)) == 1 else ns}
        for m, vals in values[r].items():
            row[m] = _summary(vals)
        if "kid" in metrics:
            row["kid_subset_size"] = kid_subset_size_for(n_real, min(ns), kid_subset_size)
        rows.append(row)
    return rows


def _extras(result: EvaluationResult, metrics: list[str], real: Any, real_split: str, real_ds, real_feats: Features,
            train: Any, train_split: str, classifier: Any, synth_datasets: list, synth_per_seed: list[Features], ext,
            batch_size: int, cache: bool, cache_dir, writes, progress: bool) -> None:
    """Memorization, label fidelity and the embedding plot, on the first seed's synthetic set.

    ``writes`` is ``output_dir`` on the process that writes files (the main one), else ``None``:
    every process takes part in the feature extraction; the main one alone searches nearest neighbours, trains
    the label-fidelity classifier and writes grids and plots, and the others receive its results."""
    timings = result.timings
    if "memorization" in metrics or "label_fidelity" in metrics:
        if train is not None:
            train_ds, against = load_input(train, train_split), f"train ({train_split} split of {train})"
        elif real_split != "train" and "train" in (available_splits(real) or []):
            train_ds, against = load_input(real, "train"), "the real source's train split"
        else:
            train_ds, against = real_ds, "real (no train set given)"
    if "memorization" in metrics:
        from .memorization import memorization as run_memorization

        t0 = time.time()
        same = train_ds is real_ds and len(real_feats) == len(real_ds) and not real_feats.extra.get("transform")
        result.memorization = run_memorization(
            train_ds, synth_datasets[0], extractor=ext, batch_size=batch_size, cache=cache, cache_dir=cache_dir,
            train_features=real_feats if same else None,
            synthetic_features=synth_per_seed[0] if len(synth_datasets[0]) == len(synth_per_seed[0]) else None,
            output_dir=writes, progress=progress,
        )
        result.memorization["against"] = against
        timings["memorization_s"] = time.time() - t0
    if "label_fidelity" in metrics:
        from .fidelity import label_fidelity

        t0 = time.time()
        state = distributed_state()  # one classifier, trained and applied on the main process, its scores shared
        scores = label_fidelity(synth_datasets[0], classifier=classifier, train=train_ds, progress=progress) \
            if is_main_process(state) else None
        result.label_fidelity = broadcast(scores, state)
        timings["label_fidelity_s"] = time.time() - t0
    if "tsne" in metrics and writes is not None:  # a plot: the main process's work alone
        from .embed import embedding_plot

        t0 = time.time()
        result.tsne = embedding_plot(real_feats, synth_per_seed[0], output=Path(writes) / "embedding.png")
        timings["tsne_s"] = time.time() - t0


def _remapped(feats: Features, real_names: list[str]) -> Features:
    """Relabel ``feats`` with the real set's class indices (matched by name)."""
    mapping = np.asarray(match_class_names(real_names, feats.class_names), dtype=np.int64)
    return Features(feats.features, mapping[feats.labels], list(real_names), feats.extractor, feats.identity,
                    feats.seconds, feats.cached, dict(feats.extra))
