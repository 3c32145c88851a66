#!/usr/bin/env python
"""Does synthetic data help? The downstream study on matched data (PneumoniaMNIST), in one command.

    nice -n 10 python benchmarks/downstream.py --model /work/runs/study/model --output_dir runs/downstream

1. **Generator**: ``--model`` (a synthxray generator folder), else the default DDPM is trained on
   PneumoniaMNIST *train* for ``--budget_minutes`` (24) into ``OUTPUT/model``.
2. **Pool**: 1,200 images per class with ``dpm-sde``, 20 steps (``synthxray.generate_dataset``,
   resumable) into ``OUTPUT/pool``.
3. **Classifiers** on PneumoniaMNIST (train: its train split; validation: its val split; test: its
   624 test images) for every recipe: baseline, the controls balanced-real (real images oversampled
   to synth-50's class counts) and reweighted-real (class-weighted loss), seed 004's synth-25/50/100,
   limited-10/25, synth-only, plus pretrain-synth and mixed-50; ``--seeds`` seeds, seed-major (every
   recipe of seed 0, then of seed 1, ...) so a cut-short run still has complete paired seeds. Runs
   of different recipes with the same seed share the validation split and the initial weights.
4. **Generator quality** (``synthxray.evaluate``, its default protocol): FID overall and per class,
   precision/recall against the 624 test images, with 624 pool images drawn in the test class mix
   (234 NORMAL / 390 PNEUMONIA); label fidelity under the study's baseline classifier; memorization
   (``synthxray.memorization``: nearest training image of each, pixel space; ``--memorization_features``
   adds the Inception space, 4,708 more network passes).
5. **Report**: ``OUTPUT/report.md`` (printed) with seed 004's row next to ours, paired Δs vs baseline
   and vs balanced-real (95% t-intervals over seeds), the class-balance mechanism (NORMAL recall vs
   the training set's NORMAL share), and plots in ``OUTPUT/plots``.

Everything is resumable: rerun the same command and finished stages and runs are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# in the order they run for each seed: the comparisons that answer the question first
RECIPES = ["baseline", "balanced-real", "synth-50", "synth-100", "synth-25", "limited-10", "limited-25", "synth-only",
           "reweighted-real", "pretrain-synth", "mixed-50"]
# seed 004 (DenseNet-121 pretrained, 224 px, Kermany train, 20 epochs, one run each): accuracy %, F1, AUC
SEED_004 = {
    "baseline": (88.0, 0.912, 0.967), "synth-25": (89.4, 0.922, 0.975), "synth-50": (90.2, 0.927, 0.973),
    "synth-100": (89.7, 0.924, 0.976), "limited-10": (88.6, 0.915, 0.961), "limited-25": (87.7, 0.910, 0.965),
    "synth-only": (70.7, 0.809, 0.904),
}
LEARNING_RATE = {"cnn": 1e-3}  # seed 001's CNN rate; the others: 1e-3 too from random weights here (see --learning_rate)


def default_data() -> Path:
    for candidate in (ROOT.parent / "shared" / "data" / "medmnist" / "pneumoniamnist.npz", Path("/work/shared/data/medmnist/pneumoniamnist.npz")):
        if candidate.is_file():
            return candidate.resolve()
    return ROOT.parent / "shared" / "data" / "medmnist" / "pneumoniamnist.npz"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(default_data()), help="PneumoniaMNIST .npz (train / val / test splits)")
    p.add_argument("--model", default=None, help="synthxray generator folder; default: train the default DDPM into OUTPUT/model")
    p.add_argument("--budget_minutes", type=float, default=24.0, help="training budget when --model is not given")
    p.add_argument("--checkpoint", default=None,
                   help="a train_ddpm.py checkpoint folder (OUTPUT_DIR/checkpoints/checkpoint_K) whose EMA weights are exported into --model "
                        "when that training run has not finished (the report then names the step)")
    p.add_argument("--output_dir", default=str(ROOT / "runs" / "downstream"))
    p.add_argument("--per_class", type=int, default=1200, help="pool images per class (seed 004: 1,200)")
    p.add_argument("--scheduler", default="dpm-sde")
    p.add_argument("--steps", type=int, default=20, help="sampler steps per pool image")
    p.add_argument("--backbones", nargs="+", default=["cnn", "resnet18"], help="in order; quality is measured after the first")
    p.add_argument("--recipes", nargs="+", default=RECIPES)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--backbone_seeds", nargs="*", default=[], metavar="NAME=N",
                   help="run only the first N seeds for a backbone (e.g. resnet18=1 where the CPU has no time for more)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--image_size", type=int, default=28, help="28 (PneumoniaMNIST's own size) or 32 (the generator's)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a CPU shared with other jobs)")
    p.add_argument("--stages", nargs="+", default=["pool", "classifiers", "quality", "report"], choices=["pool", "classifiers", "quality", "report"])
    p.add_argument("--memorization_features", action="store_true", help="memorization in Inception feature space too (slow on CPU)")
    p.add_argument("--report", default=None, help="also copy the report to this markdown file")
    return p.parse_args(argv)


# ---- stages ---------------------------------------------------------------------------------------
def _log(msg: str) -> None:
    print(f"[downstream {time.strftime('%H:%M:%S', time.gmtime())} UTC] {msg}", flush=True)


def _timing(out: Path, key: str, seconds: float) -> None:
    path = out / "timings.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = round(data.get(key, 0.0) + seconds, 1)
    path.write_text(json.dumps(data, indent=2) + "\n")


def export_checkpoint(checkpoint: Path, target: Path) -> Path:
    """A generator folder from a ``train_ddpm.py`` checkpoint (``synthxray export``), reused once exported."""
    from synthxray.training.ddpm import export_checkpoint as export

    if (target / "synthxray.json").is_file():
        return target
    export(checkpoint, target)
    _log(f"exported {checkpoint} into {target}")
    return target


def model_dir(args, out: Path) -> Path:
    """``--model``, or the default DDPM trained on PneumoniaMNIST train for the time budget (reused once trained)."""
    if args.checkpoint:
        if not args.model:
            raise SystemExit("--checkpoint needs --model: the folder to export the checkpoint's generator into")
        export_checkpoint(Path(args.checkpoint), Path(args.model))
    if args.model:
        path = Path(args.model)
        if not (path / "synthxray.json").is_file():
            raise SystemExit(f"--model {path}: no synthxray.json there (not a synthxray generator folder, or its training has not finished)")
        return path
    path = out / "model"
    if (path / "synthxray.json").is_file():
        return path
    cmd = [sys.executable, str(ROOT / "train_scripts/train_ddpm.py"), "--dataset", args.data, "--output_dir", str(path),
           "--max_train_minutes", str(args.budget_minutes), "--overwrite_output_dir"]
    _log("training the default DDPM: " + " ".join(cmd))
    t0 = time.time()
    with open(out / "train.log", "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"train_ddpm.py failed ({proc.returncode}); see {out / 'train.log'}")
    _timing(out, "train_s", time.time() - t0)
    return path


def synthetic_spec(args, out: Path) -> dict:
    """The pool as the experiment spec names it: the same mapping in every invocation, so finished runs are reused."""
    model = args.model or str(out / "model")
    return {"generator": str(model), "per_class": args.per_class, "scheduler": args.scheduler, "num_inference_steps": args.steps,
            "seed": 0, "batch_size": 64, "output_dir": str(out / "pool")}


def sample_pool(args, out: Path) -> Path:
    from synthxray import generate_dataset, load_generator

    folder = out / "pool"
    if folder.is_dir():
        _log(f"reusing the pool in {folder}")
        return folder
    syn = synthetic_spec(args, out)
    gen = load_generator(model_dir(args, out))
    _log(f"sampling {args.per_class} images per class of {gen.class_names} with {args.scheduler}, {args.steps} steps into {folder}")
    t0 = time.time()
    generate_dataset(gen, per_class=args.per_class, seed=syn["seed"], output_dir=folder, batch_size=syn["batch_size"],
                     num_inference_steps=args.steps, scheduler=args.scheduler)
    _timing(out, "pool_s", time.time() - t0)
    return folder


def experiment_spec(args, out: Path, backbone: str, seeds: list[int]) -> dict:
    return dict(
        real_train=args.data, real_train_split="train", val=args.data, val_split="val", test=args.data, test_split="test",
        synthetic=synthetic_spec(args, out), output_dir=str(out / backbone),
        backbones=[{"name": backbone, "learning_rate": LEARNING_RATE.get(backbone, args.learning_rate)}], recipes=list(args.recipes),
        seeds=seeds, epochs=args.epochs, image_size=args.image_size, batch_size=args.batch_size, learning_rate=args.learning_rate,
        ratio_of="synthetic", balance="balanced", robustness=None, num_threads=args.threads, save_classifiers=True,
    )


def run_classifiers(args, out: Path, backbone: str):
    """Seed-major: every recipe of the first seed, then of the first two, ... (finished runs are reused)."""
    from synthxray import run_experiment

    limit = dict(x.split("=") for x in args.backbone_seeds).get(backbone)
    seeds = args.seeds[: int(limit)] if limit else list(args.seeds)
    results = None
    for k in range(1, len(seeds) + 1):
        t0 = time.time()
        results = run_experiment(experiment_spec(args, out, backbone, seeds[:k]))
        _timing(out, f"classifiers_{backbone}_s", time.time() - t0)
        _log(f"{backbone}: seeds {seeds[:k]} done")
    return results


def measure_quality(args, out: Path, pool_dir: Path | None = None, classifier: Path | None = None, path: Path | None = None,
                    memorization_check: bool = True) -> dict:
    """FID / precision / recall in the test class mix, label fidelity, memorization (public synthxray API).

    Defaults: ``OUTPUT/pool`` scored with the study's seed-0 baseline classifier into ``OUTPUT/quality.json``.
    """
    import numpy as np

    from synthxray import evaluate, label_fidelity, load_classifier, load_dataset, memorization
    from synthxray.classes import match_class_names, proportional_counts

    path = path or out / "quality.json"
    if path.is_file():
        return json.loads(path.read_text())
    t0 = time.time()
    test = load_dataset(args.data, split="test")
    pool_dir = pool_dir or out / "pool"
    pool = load_dataset(str(pool_dir))
    names = list(test.features["label"].names)
    test_counts = dict(zip(names, np.bincount(np.asarray(test["label"]), minlength=len(names)).tolist()))
    want = proportional_counts(test_counts, len(test))  # the test class mix at n = len(test)
    mapping = match_class_names(names, pool.features["label"].names, "pool")
    pool_labels = np.asarray(mapping)[np.asarray(pool["label"])]
    # the first images of each class: generate_dataset's per-image seeds make these the pool's (and a fresh sample's) first images
    rows = np.concatenate([np.flatnonzero(pool_labels == names.index(n))[: want[n]] for n in names])
    subset = pool.select(rows.tolist())
    res = evaluate(args.data, subset, metrics=["fid", "precision", "recall"], real_split="test", by_class=True, output_dir=str(path.with_suffix("")))
    baseline = classifier or out / args.backbones[0] / "runs" / args.backbones[0] / "baseline" / "seed_0" / "classifier"
    fidelity = label_fidelity(pool, classifier=load_classifier(baseline), real_test=test) if baseline.is_dir() else None
    mem = memorization(load_dataset(args.data, split="train"), subset, extractor="inception" if args.memorization_features else None,
                       output_dir=str(path.with_suffix("") / "memorization"), progress=False) if memorization_check else {"spaces": {}}
    settings = dict(getattr(res, "settings", {}) or {})
    quality = {
        "n_real": len(test), "n_synthetic": len(subset), "synthetic_per_class": {n: want[n] for n in names},
        "extractor": res.extractor, "protocol": settings.get("protocol") or settings.get("preprocessing"), "settings": settings,
        "rows": res.rows, "label_fidelity": fidelity, "label_fidelity_classifier": str(baseline) if fidelity else None,
        "memorization": {space: {k: v for k, v in d.items() if k != "closest_pairs"} for space, d in mem["spaces"].items()},
        "memorization_num_train": mem.get("num_train"), "memorization_num_synthetic": mem.get("num_synthetic"),
    }
    path.write_text(json.dumps(quality, indent=2, default=str) + "\n")
    _timing(out, "quality_s", time.time() - t0)
    return quality


# ---- report ---------------------------------------------------------------------------------------
def _pct(x, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


def _paired(p: dict | None) -> str:
    from synthxray.experiments.report import paired_cell

    return paired_cell(p) or "–"


def _normal_share(run: dict) -> float:
    c = run["counts"]
    n = sum(c["real_per_class"].values()) + sum(c.get("real_repeats_per_class", {}).values()) + sum(c["synthetic_per_class"].values())
    first = next(iter(c["real_per_class"]))
    return (c["real_per_class"][first] + c.get("real_repeats_per_class", {}).get(first, 0) + c["synthetic_per_class"][first]) / n


def classifier_section(backbone: str, res) -> list[str]:
    from synthxray.experiments.recipes import display_name

    refs = sorted(dict.fromkeys(ref for r in res.rows for ref in r["paired"]), key=lambda ref: (ref != "baseline", ref))
    lines = [f"#### {backbone}{'' if all(r['pretrained'] for r in res.rows) else ' (random initial weights)'}", "",
             "| Experiment | Real | Synthetic | Seeds | Accuracy % (mean ± std) | F1 | AUC | "
             + " | ".join(f"Δ vs {display_name(ref)}, paired (95% CI)" for ref in refs) + " | Seed 004: accuracy % | F1 | AUC | Δ |",
             "|" + "---|" * (11 + len(refs))]
    for r in res.rows:
        acc = r["accuracy"]
        std = f" ± {100 * acc['std']:.1f}" if acc["std"] is not None else ""
        s = SEED_004.get(r["recipe"])
        seed = [f"{s[0]:.1f}", f"{s[1]:.3f}", f"{s[2]:.3f}", "" if r["recipe"] == "baseline" else f"{s[0] - SEED_004['baseline'][0]:+.1f}"] if s else ["–"] * 4
        real = str(r["n_real"]) + (f" + {r['n_real_repeats']} repeats" if r.get("n_real_repeats") else "")
        lines.append(f"| {display_name(r['recipe'])} | {real} | {r['n_synthetic']} | {len(r['seeds'])} | {_pct(acc['mean'])}{std} | "
                     f"{r['f1']['mean']:.3f} | {r['auc']['mean']:.3f} | " + " | ".join(_paired(r["paired"].get(ref)) for ref in refs) + " | "
                     + " | ".join(seed) + " |")
    cm0 = res.rows[0]["confusion_matrix"]
    n0, n1 = round(sum(cm0[0])), round(sum(cm0[1]))
    lines += ["", "Class balance, the mechanism seed 004 named: the share of NORMAL images the classifier trained on, and the test images it got right "
              f"(mean over seeds; the test set has {n0} NORMAL, {n1} PNEUMONIA).", "",
              f"| Experiment | NORMAL share in training | NORMAL right (of {n0}) | PNEUMONIA right (of {n1}) | predicted NORMAL (of {n0 + n1}) |", "|---|---|---|---|---|"]
    for r in res.rows:
        runs = [x for x in res.runs if x["recipe"] == r["recipe"]]
        cm = r["confusion_matrix"]
        lines.append(f"| {display_name(r['recipe'])} | {100 * sum(_normal_share(x) for x in runs) / len(runs):.1f}% | {cm[0][0]:.1f} | {cm[1][1]:.1f} | "
                     f"{cm[0][0] + cm[1][0]:.1f} |")
    return lines + [""]


def quality_section(q: dict) -> list[str]:
    lines = [f"Against the {q['n_real']} PneumoniaMNIST test images, {q['n_synthetic']} pool images in the test class mix {q['synthetic_per_class']}; "
             f"extractor {q['extractor']}; protocol: {q['protocol']}.", "",
             "| Class | n real | n synthetic | FID | precision | recall |", "|---|---|---|---|---|---|"]
    for row in q["rows"]:
        get = lambda m: "–" if row.get(m) is None or row[m].get("mean") is None else f"{row[m]['mean']:.3f}" if m != "fid" else f"{row[m]['mean']:.1f}"  # noqa: E731
        lines.append(f"| {row['class']} | {row['n_real']} | {row['n_synthetic']} | {get('fid')} | {get('precision')} | {get('recall')} |")
    lf = q.get("label_fidelity")
    if lf:
        names = lf["class_names"]
        lines += ["", f"Label fidelity: the study's real-trained baseline classifier (seed 0, `{q['label_fidelity_classifier']}`) on the whole pool "
                  "and on the real test set:", "", "| set | accuracy | macro F1 | " + " | ".join(f"F1 {n}" for n in names) + " |",
                  "|---|---|---|" + "---|" * len(names)]
        for key, title in (("real_test", f"real test ({q['n_real']})"), ("synthetic", "synthetic pool")):
            if key in lf:
                sc = lf[key]
                lines.append(f"| {title} | {sc['accuracy']:.3f} | {sc['macro_f1']:.3f} | " + " | ".join(f"{sc['per_class'][n]['f1']:.3f}" for n in names) + " |")
    for space, d in q.get("memorization", {}).items():
        s2t = d["synthetic_to_train"]
        lines += ["", f"Memorization ({space} space, {d['metric']}): each of the {q['memorization_num_synthetic']} pool images' nearest of the "
                  f"{q['memorization_num_train']} training images; {100 * d['fraction_below']:.1f}% are closer than the threshold {d['threshold']:.4f} "
                  f"({d['threshold_from']}; {100 * d['reference_fraction_below']:.1f}% of the reference by construction); "
                  f"synthetic-to-train distances {json.dumps({k: round(v, 4) for k, v in s2t.items()})}."]
    return lines + [""]


def write_plots(results: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from synthxray.experiments.recipes import display_name

    paths = []
    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    for backbone, res in results.items():
        rows = [r for r in res.rows if r["recipe"] != "baseline"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.8), sharey=True)
        for ax, ref in zip(axes, ("baseline", "balanced-real")):
            for i, r in enumerate(rows):
                p = r["paired"].get(ref)
                if not p or p["accuracy"]["mean"] is None:
                    continue
                m = 100 * p["accuracy"]["mean"]
                lo = 100 * p["accuracy"]["ci95_low"] if p["accuracy"]["ci95_low"] is not None else m
                hi = 100 * p["accuracy"]["ci95_high"] if p["accuracy"]["ci95_high"] is not None else m
                ax.errorbar(m, i, xerr=[[m - lo], [hi - m]], fmt="o", capsize=3, color="tab:green" if lo > 0 else "tab:red" if hi < 0 else "tab:gray")
            ax.axvline(0, color="black", lw=0.8)
            ax.set_title(f"{backbone}: Δ accuracy vs {display_name(ref)} (paired 95% CI)", fontsize=9)
            ax.set_xlabel("points")
        axes[0].set_yticks(range(len(rows)), [display_name(r["recipe"]) for r in rows])
        fig.tight_layout()
        path = folder / f"paired_deltas_{backbone}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for r in res.rows:
            for x in (x for x in res.runs if x["recipe"] == r["recipe"]):
                cm = x["metrics"]["confusion_matrix"]
                ax.scatter(100 * _normal_share(x), 100 * cm[0][0] / max(1, sum(cm[0])), s=14, alpha=0.6,
                           marker="s" if x["counts"]["synthetic"] else "o", label=display_name(r["recipe"]) if x["seed"] == r["seeds"][0] else None)
        ax.set_xlabel("NORMAL share of the training images (%)")
        ax.set_ylabel("NORMAL test images right (%)")
        ax.set_title(f"{backbone}: class balance vs NORMAL recall (squares: with synthetic images)", fontsize=9)
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        path = folder / f"class_balance_{backbone}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def report(args, out: Path, results: dict, quality: dict | None) -> str:
    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").is_file() else {}
    lines = ["### Downstream study (benchmarks/downstream.py)", "",
             f"Command: `nice -n 10 python benchmarks/downstream.py {' '.join(sys.argv[1:])}`", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs (timings indicative), no GPU; "
             f"torch threads {args.threads}; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
             f"Wall time by stage (s): {json.dumps(timings)}.", "",
             f"Classifiers: PneumoniaMNIST train / val / test splits (all images) at {args.image_size} px, {args.epochs} epochs, batch {args.batch_size}, "
             f"AdamW + cosine, best validation epoch kept; pool {args.per_class} per class ({args.scheduler}, {args.steps} steps) from {synthetic_spec(args, out)['generator']}; "
             "synth-N adds N% of the pool (seed 004's convention, the default).", ""]
    if quality:
        lines += ["#### Generator quality", ""] + quality_section(quality)
    for backbone, res in results.items():
        lines += classifier_section(backbone, res)
    lines += ["Seed 004's columns: its own single runs (DenseNet-121 pretrained, 224 px, Kermany chest X-rays, Stable Diffusion pool): a different "
              "classifier, resolution, data set and generator, shown for the recipe names only.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not Path(args.data).is_file():
        raise SystemExit(f"--data {args.data}: PneumoniaMNIST .npz not found")
    if "pool" in args.stages:
        sample_pool(args, out)
    results, quality = {}, None
    for i, backbone in enumerate(args.backbones):
        if "classifiers" in args.stages:
            results[backbone] = run_classifiers(args, out, backbone)
        if i == 0 and "quality" in args.stages and (out / "pool").is_dir():
            quality = measure_quality(args, out)
    if quality is None and (out / "quality.json").is_file():
        quality = json.loads((out / "quality.json").read_text())
    if "report" in args.stages:
        if not results:  # report from what finished, without training anything
            from synthxray.experiments.runner import write_report
            from synthxray.experiments.spec import load_spec

            for backbone in args.backbones:
                folder = out / backbone
                if (folder / "runs").is_dir():  # every finished run of the requested seeds (a cut-short seed counts where it ran)
                    results[backbone] = write_report(load_spec(experiment_spec(args, out, backbone, list(args.seeds))), folder)
        text = report(args, out, results, quality)
        write_plots(results, out)
        (out / "report.md").write_text(text)
        if args.report:
            Path(args.report).write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
