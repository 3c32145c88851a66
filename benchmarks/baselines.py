#!/usr/bin/env python
"""GAN and VAE baselines next to the default DDPM: is diffusion worth its sampling cost here?

Every one-pass backend (vae, dcgan, wgan-gp, cgan, acgan) and the default DDPM are trained with their
defaults for the same wall-clock budget (``--max_train_minutes``), then each generator (the DDPM at 20
and 10 network evaluations per image; ``--ddpm DIR`` adds one trained elsewhere) makes the test set's class mix (624 images on PneumoniaMNIST), scored against the real test
images with ``synthxray.evaluate``: FID overall and per class, precision / recall (mode collapse shows as
low recall), label fidelity (a small CNN trained once on the real train split), images/s at sampling
and parameters.

    nice -n 10 python benchmarks/baselines.py --data ../shared/data/medmnist/pneumoniamnist.npz \
        --budget_minutes 24 --ddpm runs/quality/model --output runs/baselines

Finished models are reused (delete OUT/<backend> to retrain). Results: OUT/baselines.json and .md.
On a machine with more cores than one training uses, ``--train_only`` with a part of ``--backends`` in each
of several processes trains them side by side into the same OUT; a last run without it scores them all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("vae", "dcgan", "wgan-gp", "cgan", "acgan")
SCRIPTS = {"vae": "train_vae.py", "ddpm": "train_ddpm.py"}  # the GANs: train_gan.py --architecture NAME


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/medmnist/pneumoniamnist.npz"))
    p.add_argument("--budget_minutes", type=float, default=24.0, help="training budget of every one-pass backend")
    p.add_argument("--backends", nargs="*", default=[*BACKENDS, "ddpm"], choices=[*BACKENDS, "ddpm"],
                   help="backends trained for the budget (ddpm: train_ddpm.py's defaults, scored at --ddpm_steps); none: only score --ddpm")
    p.add_argument("--resolution", type=int, default=32, help="training resolution (the default DDPM's)")
    p.add_argument("--ddpm", default=None, help="also score this trained DDPM folder (e.g. one trained for a longer budget)")
    p.add_argument("--ddpm_steps", type=int, nargs="*", default=[20, 10], help="DDPM network evaluations per image")
    p.add_argument("--output", default="runs/baselines")
    p.add_argument("--extractor", default="inception")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train_only", action="store_true",
                   help="train the --backends into OUTPUT and stop: no scoring, no report (for parallel training)")
    p.add_argument("--train_args", nargs=argparse.REMAINDER, default=[], help="extra flags for every training script")
    return p.parse_args(argv)


def train(args, backend: str, out: Path) -> dict:
    """Train one backend through its script (a fresh process), unless a finished model is there."""
    model_dir = out / backend
    if (model_dir / "synthxray.json").is_file():
        print(f"{backend}: reusing {model_dir}", flush=True)
    else:
        script = SCRIPTS.get(backend, "train_gan.py")
        arch = [] if backend in SCRIPTS else ["--architecture", backend]
        cmd = [sys.executable, str(ROOT / "train_scripts" / script), *arch, "--dataset", args.data, "--output_dir", str(model_dir),
               "--resolution", str(args.resolution), "--max_train_minutes", str(args.budget_minutes), "--seed", str(args.seed),
               "--checkpointing_steps", "500", "--checkpoints_total_limit", "1", "--save_images_steps", "100000",
               "--overwrite_output_dir", "true", *args.train_args]
        print("training:", " ".join(cmd[1:]), flush=True)
        with open(out / f"{backend}.train.log", "w") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f"{script} failed for {backend}; see {out / f'{backend}.train.log'}")
    info = json.loads((model_dir / "synthxray.json").read_text())
    summary = json.loads((model_dir / "train_summary.json").read_text())
    extra = info["extra"]
    return {"model": str(model_dir), "steps": summary["steps"], "generator_steps": summary.get("generator_steps"),
            "train_seconds": summary["train_seconds"], "parameters": extra.get("parameters"),
            "command": f"train_scripts/{SCRIPTS.get(backend, 'train_gan.py --architecture ' + backend)} "
                       f"--max_train_minutes {args.budget_minutes} --resolution {args.resolution} (defaults otherwise)"}


def sample(gen, counts: dict[str, int], seed: int, batch_size: int, **settings):
    """The class mix as an in-memory ``datasets.Dataset``, and the seconds the generator took."""
    import datasets

    from synthxray.synthesis import sample_seed

    images, labels, seconds = [], [], 0.0
    for name, n in counts.items():
        c = gen.class_names.index(name)
        t0 = time.time()
        images += gen.generate(n, class_label=c, seed=[sample_seed(seed, c, i) for i in range(n)], batch_size=batch_size, **settings)
        seconds += time.time() - t0
        labels += [c] * n
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=gen.class_names)})
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features), seconds


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if Path(args.data).exists():
        args.data = str(Path(args.data).resolve())  # the training scripts run from the repository root
    import torch

    from synthxray import load_dataset, load_generator
    from synthxray.classes import match_class_names
    from synthxray.evaluation import SimpleCNNClassifier, evaluate, get_extractor, label_fidelity

    out = Path(args.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.train_only:  # the report is left to the scoring run, so parallel trainers never race on it
        for backend in args.backends:
            train(args, backend, out)
        return 0
    report_file = out / "baselines.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    report.update(data=args.data, budget_minutes=args.budget_minutes, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  threads=torch.get_num_threads(), resolution=args.resolution)
    report.setdefault("runs", {})

    def save() -> None:
        report_file.write_text(json.dumps(report, indent=2) + "\n")
        (out / "baselines.md").write_text(markdown(report))

    for backend in args.backends:
        report["runs"].setdefault(backend, {})["training"] = train(args, backend, out)
        save()

    test = load_dataset(args.data, split="test")
    names = list(test.features["label"].names)
    counts = {n: int(c) for n, c in zip(names, np.bincount(test["label"], minlength=len(names)))}
    ext = get_extractor(args.extractor)
    sets: dict = {}  # label -> the sampled dataset, kept for label fidelity at the end

    def score(label: str, gen, **settings) -> None:
        mapping = match_class_names(gen.class_names, names, "real test")
        gen_counts = {g: counts[names[m]] for g, m in zip(gen.class_names, mapping)}
        ds, seconds = sample(gen, gen_counts, args.seed, args.batch_size, **settings)
        res = evaluate(test, ds, metrics=("fid", "precision", "recall"), extractor=ext, by_class=True, real_split="test", progress=False)
        result = res.to_dict()
        sets[label] = ds
        run = report["runs"].setdefault(label, {})
        run.update(images=len(ds), sampling_seconds=round(seconds, 1), images_per_s=round(len(ds) / seconds, 1),
                   rows={r["class"]: r for r in result["rows"]},
                   protocol={"extractor": result["extractor"], "n_real": result["real"]["num_images"], **result["settings"]},
                   network_evaluations=settings.get("num_inference_steps", 1))
        print(f"{label}: FID {res.value('fid'):.1f}, precision {res.value('precision'):.2f}, recall {res.value('recall'):.2f}, "
              f"{len(ds) / seconds:.1f} img/s", flush=True)
        save()

    def score_ddpm(folder: Path, name: str, training: dict) -> None:
        ddpm = load_generator(folder, device="cpu")
        training = {**training, "parameters": {"unet": sum(p.numel() for p in ddpm.pipeline.unet.parameters())}}
        for steps in args.ddpm_steps:
            report["runs"].setdefault(f"{name}-{steps}", {})["training"] = training
            score(f"{name}-{steps}", ddpm, num_inference_steps=steps)

    for backend in args.backends:
        if backend == "ddpm":
            score_ddpm(out / "ddpm", "ddpm", report["runs"].pop("ddpm")["training"])
        else:
            score(backend, load_generator(out / backend, device="cpu"))
    if args.ddpm:
        info = json.loads((Path(args.ddpm) / "synthxray.json").read_text())
        summary_file = Path(args.ddpm) / "train_summary.json"
        seconds = json.loads(summary_file.read_text())["train_seconds"] if summary_file.is_file() else None
        score_ddpm(Path(args.ddpm), f"ddpm[{Path(args.ddpm).name}]",
                   {"model": str(args.ddpm), "steps": info["extra"].get("train_steps"), "train_seconds": seconds})
    # label fidelity last (its classifier is the slowest piece on a busy CPU): FIDs are saved before it
    t0 = time.time()
    clf = SimpleCNNClassifier(names, channels=1, seed=0).fit(load_dataset(args.data, split="train"))
    real_scores = label_fidelity(test, classifier=clf)["synthetic"]
    report["label_classifier"] = {"what": "SimpleCNN (synthxray.evaluation), 8 epochs at 64 px on the real train split",
                                  "real_test_accuracy": real_scores["accuracy"], "real_test_macro_f1": real_scores.get("macro_f1"),
                                  "seconds": round(time.time() - t0, 1)}
    print(f"label classifier: real test accuracy {real_scores['accuracy']:.3f}", flush=True)
    for label, ds in sets.items():
        fidelity = label_fidelity(ds, classifier=clf)["synthetic"]
        report["runs"][label]["label_fidelity"] = {"accuracy": fidelity["accuracy"], "macro_f1": fidelity.get("macro_f1")}
        print(f"{label}: label accuracy {fidelity['accuracy']:.2f}", flush=True)
        save()
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    """One table: a row per generator, FID overall and per class, P/R, label accuracy, speed, size, training."""
    runs = report.get("runs", {})
    classes = sorted({k for r in runs.values() for k in r.get("rows", {}) if k != "overall"})
    head = ["generator", "evals/img", "FID", *[f"FID {c}" for c in classes], "precision", "recall", "label acc", "img/s",
            "sampling params", "train steps", "train min"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, r in runs.items():
        rows = r.get("rows", {})
        overall = rows.get("overall", {})

        def v(row: dict, key: str, fmt: str = "{:.1f}") -> str:
            x = row.get(key)
            x = x.get("mean") if isinstance(x, dict) else x
            return fmt.format(x) if isinstance(x, (int, float)) else "-"

        t = r.get("training", {})
        params = t.get("parameters") or {}
        sampling = params.get("generator") or params.get("decoder") or params.get("unet")
        lines.append("| " + " | ".join([
            label, str(r.get("network_evaluations", "-")), v(overall, "fid"), *[v(rows.get(c, {}), "fid") for c in classes],
            v(overall, "precision", "{:.2f}"), v(overall, "recall", "{:.2f}"),
            v(r.get("label_fidelity", {}), "accuracy", "{:.2f}"), str(r.get("images_per_s", "-")),
            f"{sampling / 1e6:.2f}M" if sampling else "-", str(t.get("steps", "-")),
            f"{t['train_seconds'] / 60:.1f}" if isinstance(t.get("train_seconds"), (int, float)) else "-",
        ]) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
