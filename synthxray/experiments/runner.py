"""Run a grid of (backbone, recipe, seed) classifier runs; each is saved as it finishes and skipped on re-run
while the content of its inputs is unchanged.

Layout of ``output_dir``::

    synthxray_experiment.json       marks the folder as an experiment's; lists the report files written last
    spec.json                       the resolved spec
    runs/<backbone>/<recipe>/seed_<s>/result.json   metrics, history, counts, input fingerprints (written last)
    runs/<backbone>/<recipe>/seed_<s>/classifier/   model.safetensors + classifier.json (load_classifier)
    synthetic/                      images sampled from a generator (when the spec names one)
    results.csv  results.json  results.md  plots/*.png

Under ``accelerate launch`` with several processes the runs are shared out between processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..manifest import EXPERIMENT_MARKER
from ..outputs import EXPERIMENT, check_output_dir
from .classifier import Classifier, load_classifier
from .data import (VAL_SPLIT_SEED, ExperimentData, check_plan, input_fingerprints, known_pool_counts,  # noqa: F401
                   prepare_data, prepare_synthetic, run_inputs)
from .recipes import SOURCE_REPEAT, SOURCE_SYNTHETIC, Recipe, augment, display_name
from .regimes import write_regime_report
from .report import aggregate, compute_metrics, counts_markdown, markdown_table, write_csv, write_json, write_plots
from .robustness import robustness
from .spec import BackboneSpec, ExperimentSpec, load_spec
from .train import predict_tensors, train_classifier

logger = logging.getLogger("synthxray.experiments")

RESULT_FILE = "result.json"


@dataclass
class ExperimentResults:
    """What :func:`run_experiment` returns: the summary rows, every run, and the files written."""

    rows: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    markdown: str
    output_dir: Path
    files: list[Path]

    def __str__(self) -> str:
        return self.markdown

    def to_dataframe(self):
        import pandas as pd

        return pd.read_csv(self.output_dir / "results.csv")


# ---- runs -------------------------------------------------------------------------------------------
def run_dir(out: Path, backbone_id: str, recipe: str, seed: int) -> Path:
    return out / "runs" / backbone_id / recipe / f"seed_{seed}"


def run_config(spec: ExperimentSpec, backbone: BackboneSpec, recipe: Recipe, seed: int) -> dict[str, Any]:
    """Everything that decides a run's outcome; a finished run is reused only when this matches."""
    s = spec.to_dict()
    return {
        "backbone": backbone.to_dict(), "recipe": asdict(recipe), "seed": seed,
        "training": asdict(spec.train_config(backbone)), "image_size": spec.image_size, "channels": spec.channels,
        "balance": recipe.balance or spec.balance, "ratio_of": recipe.ratio_of or spec.ratio_of, **({"strict_counts": True} if spec.strict_counts else {}), "val_fraction": spec.val_fraction if spec.val is None else None,
        "val_split": "datasets.train_test_split(stratify_by_column=label)" if spec.val is None else None,
        "max_real_train": spec.max_real_train, "positive_class": spec.positive_class,
        "data": {k: s[k] for k in ("real_train", "real_train_split", "val", "val_split", "test", "test_split")},
        "synthetic": s["synthetic"] if recipe.uses_synthetic else (_pool_size_config(s["synthetic"]) if recipe.needs_pool else None),
    }


def _pool_size_config(synthetic: dict[str, Any] | None) -> dict[str, Any] | None:
    """What decides the pool's class counts (all an oversampling recipe reads of it), not which generator drew it."""
    if synthetic is None:
        return None
    return {k: synthetic.get(k) for k in ("dataset", "split", "per_class", "pool_ratio")}


def run_key(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_result(folder: Path) -> dict[str, Any] | None:
    path = folder / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # cut off mid-write by a kill: the run is redone


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def init_checksum(model: torch.nn.Module) -> str:
    """A short hash of a model's initial weights: runs of different recipes with the same seed must share it (paired)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """scikit-learn's "balanced" weights ``n / (k * n_c)`` (0 for a class with no image)."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    present = counts > 0
    w = torch.zeros(num_classes)
    w[present] = len(labels) / (int(present.sum()) * counts[present])
    return w


def train_one(spec: ExperimentSpec, data: ExperimentData, backbone: BackboneSpec, recipe: Recipe, seed: int, folder: Path, device: Any, autocast=None, prefix: str = "") -> dict[str, Any]:
    """Build the recipe's training set with :func:`augment`, train, test, optionally attack, save."""
    started = time.time()
    mixed = augment(data.real, data.synthetic if recipe.uses_synthetic else None, recipe=recipe, seed=seed, balance=spec.balance,
                    ratio_of=spec.ratio_of, synthetic_counts=data.pool_counts if recipe.needs_pool else None, strict=spec.strict_counts)
    source = np.asarray(mixed["source"])
    index = np.asarray(mixed["source_index"], dtype=int)
    labels = torch.as_tensor(np.asarray(mixed["label"], dtype=np.int64))
    is_synth = source == SOURCE_SYNTHETIC
    real_rows, synth_rows = index[~is_synth], index[is_synth]
    # augment lists real rows (then their oversampled repeats) first, then synthetic rows: the layout the per-batch sampler expects
    parts = [data.real_x[torch.from_numpy(real_rows)]]
    if len(synth_rows):
        parts.append(data.synth_x[torch.from_numpy(synth_rows)])
    train_x = torch.cat(parts)
    k = len(data.class_names)

    def per_class(mask: np.ndarray) -> dict[str, int]:
        return dict(zip(data.class_names, np.bincount(labels.numpy()[mask], minlength=k).tolist()))

    repeat = source == SOURCE_REPEAT
    counts = {
        "real": int((~is_synth & ~repeat).sum()), "real_repeats": int(repeat.sum()), "synthetic": int(len(synth_rows)),
        "real_per_class": per_class(~is_synth & ~repeat), "real_repeats_per_class": per_class(repeat), "synthetic_per_class": per_class(is_synth),
    }
    cfg = spec.train_config(backbone)
    torch.manual_seed(seed)
    model = Classifier(backbone.name, data.class_names, spec.image_size, data.channels, backbone.options)
    checksum = init_checksum(model)
    weight = class_weights(labels, k) if recipe.class_weight else None
    logger.info("%s%s on %s: %d real (+%d repeats) + %d synthetic images, %s", prefix, backbone.id, recipe.name, counts["real"], counts["real_repeats"],
                counts["synthetic"], model.weights_note)
    common = dict(seed=seed, device=device, autocast=autocast, class_weight=weight)
    if recipe.pretrain_synthetic:
        n_real = len(real_rows)
        pre = train_classifier(model, train_x[n_real:], labels[n_real:], data.val_x, data.val_y, cfg, log_prefix=prefix + "pretrain on synthetic: ", **common)
        history = [{**h, "stage": "pretrain-synthetic"} for h in pre]
        fine = train_classifier(model, train_x[:n_real], labels[:n_real], data.val_x, data.val_y, cfg, log_prefix=prefix + "fine-tune on real: ", **common)
        history += [{**h, "stage": "fine-tune-real", "epoch": h["epoch"] + len(pre)} for h in fine]
        # the reported best epoch is the fine-tuning stage's
        history = [{k2: v for k2, v in h.items() if not (k2 == "best" and h["stage"] == "pretrain-synthetic")} for h in history]
    else:
        history = train_classifier(model, train_x, labels, data.val_x, data.val_y, cfg, n_synthetic=len(synth_rows),
                                   batch_synthetic_fraction=recipe.batch_synthetic_fraction, log_prefix=prefix, **common)
    probs = predict_tensors(model, data.test_x, cfg.eval_batch_size, device)
    metrics = compute_metrics(data.test_y.numpy(), probs, data.class_names, data.positive)
    result: dict[str, Any] = {
        "backbone": backbone.id, "backbone_name": backbone.name, "recipe": recipe.name, "experiment": display_name(recipe.name),
        "recipe_description": recipe.describe(spec.ratio_of, spec.balance, spec.strict_counts), "seed": seed, "counts": counts, "metrics": metrics, "history": history,
        "init_checksum": checksum, "class_weight": None if weight is None else weight.tolist(),
        "best_epoch": next((h["epoch"] for h in reversed(history) if h.get("best")), None),
        "model": {"pretrained": model.pretrained, "weights_note": model.weights_note, "trainable": model.trainable,
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)},
    }
    if spec.robustness is not None:
        result["robustness"] = _attack(spec, data, model, seed, device)
    result["seconds"] = round(time.time() - started, 1)
    if spec.save_classifiers:
        model.metrics = metrics
        model.extra = {"recipe": recipe.name, "seed": seed, "counts": counts, "training": asdict(cfg)}
        tmp = folder / "classifier.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.cpu().save_pretrained(tmp)
        shutil.rmtree(folder / "classifier", ignore_errors=True)
        os.replace(tmp, folder / "classifier")
        result["classifier"] = str(folder / "classifier")
    return result


def _attack(spec: ExperimentSpec, data: ExperimentData, model: Classifier, seed: int, device: Any) -> dict[str, float]:
    r = spec.robustness
    model.to(device)
    return robustness(model, data.test_x, data.test_y, r.epsilon, r.attacks, device=device, seed=seed, max_images=r.max_images)


def _setup_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    logger.setLevel(logging.INFO)


def run_experiment(spec_or_path: Any, overwrite_output_dir: bool = False, **overrides: Any) -> ExperimentResults:
    """Run (or finish) every (backbone, recipe, seed) of a spec and write the results files.

    ``spec_or_path``: a ``.yaml``/``.json`` file, a mapping, or an :class:`ExperimentSpec`; keyword
    arguments override its keys. Finished runs in ``output_dir`` are reused when the content of their
    inputs (real train / validation / test images and labels, the synthetic pool) is unchanged, so a
    killed experiment picks up where it stopped; a run whose inputs changed is run again (the log
    names them); a finished run made with different settings is an error. An ``output_dir``
    holding files synthxray did not write is refused before any work unless ``overwrite_output_dir``
    (``--overwrite_output_dir``: the experiment's files are then written beside them, none deleted);
    another kind of synthxray artefact is always refused (:func:`synthxray.outputs.check_output_dir`).
    """
    _setup_logging()
    spec = load_spec(spec_or_path, **overrides)
    check_output_dir(spec.output_dir, EXPERIMENT, overwrite_output_dir)
    threads = torch.get_num_threads()
    if spec.num_threads:
        torch.set_num_threads(spec.num_threads)
    try:
        return _run(spec)
    finally:
        torch.set_num_threads(threads)


def _run(spec: ExperimentSpec) -> ExperimentResults:
    from accelerate import Accelerator

    out = Path(spec.output_dir)
    accelerator = Accelerator(mixed_precision=spec.mixed_precision, cpu=spec.device == "cpu")
    device = torch.device(spec.device) if spec.device else accelerator.device
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(out / EXPERIMENT_MARKER, {"files": _report_files(out)})  # the folder is an experiment's
        _write_json_atomic(out / "spec.json", spec.to_dict())

    plan = [(b, r, s) for b in spec.backbones for r in spec.recipes for s in spec.seeds]
    # the inputs are loaded (and the pool sampled, if missing) every time: a finished run is reused only when the
    # content of what it read (images and labels, not paths) is unchanged
    data = prepare_data(spec)
    if any(r.uses_synthetic for r in spec.recipes):
        if accelerator.is_main_process:
            prepare_synthetic(spec, data, out, spec.recipes)
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            prepare_synthetic(spec, data, out, spec.recipes)
    elif spec.synthetic is not None and any(r.needs_pool for r in spec.recipes):
        data.pool_counts = known_pool_counts(spec, data, out, spec.recipes)
    fingerprints = input_fingerprints(data)
    data.notes["inputs"] = fingerprints
    todo, done = [], 0
    for b, r, s in plan:
        folder = run_dir(out, b.id, r.name, s)
        key = run_key(run_config(spec, b, r, s))
        found = read_result(folder)
        if found is None:
            todo.append((b, r, s))
        elif found.get("run_key") != key:
            raise FileExistsError(
                f"{folder} holds a finished run made with other settings (backbone options, recipe, training, data or image size differ); "
                "use a new output_dir or delete that run folder to redo it"
            )
        elif found.get("inputs") != run_inputs(fingerprints, r):
            was = found.get("inputs") or {}
            changed = [k for k, v in run_inputs(fingerprints, r).items() if was.get(k) != v]
            logger.info("%s: %s changed since it finished; running it again", folder,
                        ", ".join(changed) if was else "inputs not recorded (made by an older synthxray)")
            todo.append((b, r, s))
        else:
            done += 1
    if done:
        logger.info("%d of %d runs already finished in %s with the same inputs; skipping them", done, len(plan), out)
    check_plan(spec, data, list(dict.fromkeys(r for _, r, _ in todo)))

    mine = todo[accelerator.process_index :: accelerator.num_processes]
    started = time.time()
    for i, (b, r, s) in enumerate(mine, 1):
        folder = run_dir(out, b.id, r.name, s)
        folder.mkdir(parents=True, exist_ok=True)
        prefix = f"[{i}/{len(mine)}] {b.id} · {r.name} · seed {s}: "
        result = train_one(spec, data, b, r, s, folder, device, accelerator.autocast, prefix)
        config = run_config(spec, b, r, s)
        result["run_key"], result["run_config"], result["inputs"] = run_key(config), config, run_inputs(fingerprints, r)
        _write_json_atomic(folder / RESULT_FILE, result)
        elapsed = time.time() - started
        eta = elapsed / i * (len(mine) - i)
        logger.info("%stest accuracy %.4f, F1 %.4f, AUC %s (%.0fs; about %.0fs left)", prefix, result["metrics"]["accuracy"], result["metrics"]["f1"],
                    "n/a" if result["metrics"]["auc"] is None else f"{result['metrics']['auc']:.4f}", result["seconds"], eta)

    accelerator.wait_for_everyone()
    if spec.robustness is not None and accelerator.is_main_process:
        _add_missing_robustness(spec, data, out, device)
    if not accelerator.is_main_process:
        return ExperimentResults([], [], "", out, [])
    return write_report(spec, out, data.class_names, data.notes)


def _add_missing_robustness(spec: ExperimentSpec, data: ExperimentData, out: Path, device: Any) -> None:
    """Runs finished before robustness was switched on get it from their saved classifier."""
    for b in spec.backbones:
        for r in spec.recipes:
            for s in spec.seeds:
                folder = run_dir(out, b.id, r.name, s)
                result = read_result(folder)
                if result is None or result.get("robustness") or not (folder / "classifier").is_dir():
                    continue
                model = load_classifier(folder / "classifier", device=device)
                result["robustness"] = _attack(spec, data, model, s, device)
                _write_json_atomic(folder / RESULT_FILE, result)
                logger.info("added robustness results to %s", folder)


def collect_runs(spec: ExperimentSpec, out: Path) -> list[dict[str, Any]]:
    runs = []
    for b in spec.backbones:
        for r in spec.recipes:
            for s in spec.seeds:
                found = read_result(run_dir(out, b.id, r.name, s))
                if found is not None:
                    runs.append(found)
    return runs


def write_report(spec: ExperimentSpec, out: Path, class_names: list[str] | None = None, notes: dict[str, Any] | None = None) -> ExperimentResults:
    """results.csv / results.json / results.md and the plots, from every finished run of the spec."""
    runs = collect_runs(spec, out)
    backbones = [b.id for b in spec.backbones]
    recipes = [r.name for r in spec.recipes]
    rows = aggregate(runs, backbones, recipes, spec.baseline, spec.compare_to)
    if class_names is None and runs:
        class_names = list(runs[0]["counts"]["real_per_class"])
    md = markdown_table(rows, spec.baseline) + counts_markdown(runs, recipes)
    files = [out / "results.csv", out / "results.json", out / "results.md"]
    write_csv(rows, files[0])
    random_init = sorted({r["backbone"] for r in runs if not r["model"]["pretrained"]})
    meta = {
        "spec": spec.to_dict(), "class_names": class_names, "baseline": spec.baseline, "data_notes": notes or {},
        "random_weights_backbones": random_init,
        "warning": (f"backbones {random_init} were trained from RANDOM initial weights, not pretrained ones" if random_init else None),
    }
    write_json(rows, runs, meta, files[1])
    files[2].write_text(md)
    if spec.plots and rows:
        files += write_plots(rows, runs, [b for b in backbones if any(r["backbone"] == b for r in rows)],
                             [r for r in recipes if any(x["recipe"] == r for x in rows)], class_names or [], out / "plots")
    if spec.regimes is not None:  # the limited-data table, plot and worth in real images (experiments/regimes.py)
        regime_md, regime_files = write_regime_report(spec.regimes, runs, backbones, out, plots=spec.plots)
        md, files = md + "\n" + regime_md, files + regime_files
    _forget_stale_report_files(out, files)
    logger.info("results in %s:\n%s", out, md)
    return ExperimentResults(rows, runs, md, out, files)


def _report_files(out: Path) -> list[str]:
    """The report files an earlier run recorded in the experiment's marker (paths relative to ``out``)."""
    try:
        return [str(f) for f in json.loads((out / EXPERIMENT_MARKER).read_text()).get("files", [])]
    except (OSError, ValueError, AttributeError):
        return []


def _forget_stale_report_files(out: Path, files: list[Path]) -> None:
    """Delete the report files an earlier run of this experiment wrote and this one did not (a regime table after
    ``regimes:`` was dropped, a plot of a dropped backbone), then record this run's; no other file is touched."""
    now = sorted({str(Path(f).relative_to(out)) for f in files})
    for rel in set(_report_files(out)) - set(now):
        path = out / rel
        if ".." not in Path(rel).parts and path.is_file() and not path.is_symlink():
            path.unlink()
            logger.info("removed %s: an earlier run's report file this spec no longer makes", path)
    _write_json_atomic(out / EXPERIMENT_MARKER, {"files": now})


def demo_spec(synthetic: Any, output_dir: str | os.PathLike, real: Any = None, test: Any = None, val: Any = None,
              epochs: int = 3, seeds: tuple[int, ...] = (0,), max_real_train: int | None = 1000,
              num_threads: int | None = 1, **overrides: Any) -> dict[str, Any]:
    """The experiment spec of ``synthxray demo``: seed 001's CNN on baseline / synth-50 / synth-only.

    ``synthetic`` is a synthetic dataset (or a generator folder); ``real``/``test``/``val`` default
    to PneumoniaMNIST's train/test/val splits (the ``pneumoniamnist`` MedMNIST name, or a path to
    its ``.npz``). Runs at 28 px on a stratified 1,000-image subset of the real training set
    (``max_real_train``; None for all of it); synth-50 adds half of the synthetic pool
    (``ratio_of="synthetic"``), so any pool size works. One torch thread by default: on a small CPU
    shared with other work it is several times faster than two. With path arguments the spec is plain
    data (``synthxray experiment --config`` runs it as the demo does).
    """
    real = real if real is not None else "pneumoniamnist"
    if val is None and isinstance(real, (str, os.PathLike)) and test is None:
        val = real
    spec = dict(
        real_train=real, test=test if test is not None else real, val=val, synthetic=synthetic,
        output_dir=str(output_dir), backbones=[{"name": "cnn"}], recipes=["baseline", "synth-50", "synth-only"],
        seeds=list(seeds), epochs=epochs, image_size=28, batch_size=64, learning_rate=1e-3, ratio_of="synthetic",
        robustness=None, max_real_train=max_real_train, num_threads=num_threads,
    )
    spec.update(overrides)
    return spec


def demo_experiment(synthetic: Any, output_dir: str | os.PathLike, **kwargs: Any) -> ExperimentResults:
    """Run :func:`demo_spec`'s experiment (same arguments)."""
    return run_experiment(demo_spec(synthetic, output_dir, **kwargs))
