#!/usr/bin/env python
"""When does synthetic data help? Limited-data regimes with count-matched controls, and the knobs that matter more than FID.

    nice -n 5 python benchmarks/small_data.py --model /work/runs/teacher --output_dir /work/runs/study

One generator (``--model``) serves every row. Stages (each resumable; rerun the same command to finish or report):

1. ``pool``: 1,200 images per class, ``dpm-sde`` 20 steps (``downstream.sample_pool``) into ``OUTPUT/pool``.
2. ``regimes``: the experiment spec's ``regimes`` grid on PneumoniaMNIST (train / val / test splits): for every real
   fraction F in ``--fractions``, real-F, balanced-real-F (real-F oversampled to limited-F's class counts),
   reweighted-real-F, limited-F (+ the whole pool), pretrain-synth-F and mixed-F; ``--seeds`` paired seeds, seed-major
   (a cut-short run has complete seeds) into ``OUTPUT/regimes`` (``regimes.md``, ``plots/regimes_cnn.png``).
3. ``knobs``: pools of ``--knob_per_class`` per class: guidance scales ``--guidance`` (dpm-sde), the deterministic
   ``dpm`` sampler, and selections from the main pool by the real-trained classifier (real-f100, seed 0): ``confident``
   (right and most confident), ``hard`` (right and least confident), ``coverage`` (greedy coverage of the real training
   images' k-NN balls in the classifier's feature space); ``g1`` is the main pool's first images (a fresh sample).
4. ``quality``: for the main pool and every knob pool, FID / precision / recall (``synthxray.evaluate``, default
   protocol, n = 624 in the test class mix against the 624 test images), coverage (k = 5, classifier feature space),
   and label fidelity: the real-trained classifier's accuracy and mean confidence on the pool vs on the test set.
5. ``select``: every knob pool on the VALIDATION split (PneumoniaMNIST val scores; epochs chosen on 10% of train) at
   ``--select_fraction`` with limited-F / pretrain-synth-F and their controls, ``--select_seeds`` seeds. The knob and
   recipe with the best mean validation accuracy is chosen; the test set is not read.
6. ``confirm``: the chosen knob pool on test at ``--confirm_fractions``, ``--seeds`` seeds, against balanced-real-F.
7. ``report``: ``OUTPUT/report.md`` (printed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import downstream  # noqa: E402  (the pool and quality stages are downstream.py's)

FRACTIONS = [0.01, 0.05, 0.1, 0.25, 1.0]
KINDS = ["real", "balanced-real", "reweighted-real", "limited", "pretrain-synth", "mixed"]
STAGES = ["pool", "regimes", "knobs", "quality", "select", "confirm", "report"]
SELECTIONS = ["confident", "hard", "coverage"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(downstream.default_data()), help="PneumoniaMNIST .npz (train / val / test splits)")
    p.add_argument("--model", required=True, help="synthxray generator folder (one generator serves every row)")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--per_class", type=int, default=1200, help="main pool images per class")
    p.add_argument("--scheduler", default="dpm-sde")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--fractions", type=float, nargs="+", default=FRACTIONS)
    p.add_argument("--kinds", nargs="+", default=KINDS, help="regime recipe kinds (real and balanced-real are required)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--image_size", type=int, default=28)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--knob_per_class", type=int, default=400, help="knob pool images per class (>= 390: FID takes the 624 test images' class mix)")
    p.add_argument("--guidance", type=float, nargs="*", default=[1.5, 2.0, 3.0], help="guidance scales sampled (1 = the main pool's first images)")
    p.add_argument("--samplers", nargs="*", default=["dpm"], help="other samplers at guidance 1 (dpm: deterministic; the main pool is dpm-sde)")
    p.add_argument("--selections", nargs="*", default=SELECTIONS, choices=SELECTIONS)
    p.add_argument("--select_fraction", type=float, default=0.05)
    p.add_argument("--select_seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--select_kinds", nargs="+", default=["real", "balanced-real", "limited", "pretrain-synth"])
    p.add_argument("--confirm_fractions", type=float, nargs="+", default=[0.01, 0.05, 0.1])
    p.add_argument("--knob", default=None, help="skip the choice: confirm this knob pool")
    p.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES)
    p.add_argument("--no_fid", dest="fid", action="store_false", help="quality stage without Inception (coverage, confidence, accuracy only)")
    p.add_argument("--report", default=None, help="also copy the report to this markdown file")
    args = p.parse_args(argv)
    args.backbones, args.memorization_features, args.checkpoint = ["cnn"], False, None  # what downstream's helpers read
    return args


def _log(msg: str) -> None:
    print(f"[small_data {time.strftime('%H:%M:%S', time.gmtime())} UTC] {msg}", flush=True)


# ---- specs ----------------------------------------------------------------------------------------
def regime_spec(args, synthetic: str, output_dir: Path, fractions, kinds, seeds, select: bool = False) -> dict:
    """The experiment spec: on test (train / val / test splits), or for ``select`` on the validation split
    (val scores; the best epoch is chosen on a stratified 10% of train, so val is read once)."""
    d = args.data
    split = dict(val=None, test=d, test_split="val") if select else dict(val=d, val_split="val", test=d, test_split="test")
    return dict(real_train=d, real_train_split="train", **split, synthetic={"dataset": str(synthetic)}, output_dir=str(output_dir),
                backbones=[{"name": "cnn", "learning_rate": args.learning_rate}], regimes={"fractions": list(fractions), "recipes": list(kinds)},
                seeds=list(seeds), epochs=args.epochs, image_size=args.image_size, batch_size=args.batch_size, learning_rate=args.learning_rate,
                ratio_of="synthetic", balance="balanced", robustness=None, num_threads=args.threads, save_classifiers=True)


def run_seed_major(spec: dict):
    """Every recipe of the first seed, then of the first two, ... (finished runs are reused)."""
    from synthxray import run_experiment

    seeds, res = list(spec["seeds"]), None
    for k in range(1, len(seeds) + 1):
        res = run_experiment({**spec, "seeds": seeds[:k]})
        _log(f"{spec['output_dir']}: seeds {seeds[:k]} done")
    return res


def reference_classifier(out: Path) -> Path:
    """The real-trained classifier every pool is judged by: real-f100 (all real training images), seed 0."""
    path = out / "regimes" / "runs" / "cnn" / "real-f100" / "seed_0" / "classifier"
    if not path.is_dir():
        raise SystemExit(f"{path} is missing: run the regimes stage (real-f100, seed 0) first")
    return path


# ---- knob pools -----------------------------------------------------------------------------------
def knob_dir(out: Path, knob: str) -> Path:
    return out / "pool" if knob == "main" else out / "knobs" / knob


def knob_names(args) -> list[str]:
    return ["g1"] + [f"g{g:g}" for g in args.guidance] + list(args.samplers) + list(args.selections)


def _features_and_probs(clf, images):
    """The real-trained classifier's penultimate features (input of its last linear layer) and class probabilities."""
    import numpy as np
    import torch

    last = [m for m in clf.modules() if isinstance(m, torch.nn.Linear)][-1]
    feats = []
    hook = last.register_forward_hook(lambda mod, inp, outp: feats.append(inp[0].detach().float().cpu()))
    try:
        probs = clf.predict_proba(images, batch_size=256)
    finally:
        hook.remove()
    return torch.cat(feats).numpy().astype(np.float64), probs


def _kth_radius(x, k: int = 5):
    from sklearn.metrics import pairwise_distances
    import numpy as np

    d = pairwise_distances(x, x)
    return np.sort(d, axis=1)[:, min(k, len(x) - 1)]


def coverage(real_feats, synth_feats, k: int = 5) -> float:
    """Naeem et al. (2020) coverage: the share of real images whose k-NN ball (among real) holds a synthetic image."""
    from sklearn.metrics import pairwise_distances

    radius = _kth_radius(real_feats, k)
    return float((pairwise_distances(real_feats, synth_feats).min(axis=1) < radius).mean())


def greedy_coverage(real_feats, synth_feats, n: int, k: int = 5):
    """Pick ``n`` synthetic rows that cover the most real k-NN balls (greedy set cover), then the farthest from those picked."""
    import numpy as np
    from sklearn.metrics import pairwise_distances

    radius = _kth_radius(real_feats, k)
    covers = pairwise_distances(real_feats, synth_feats) < radius[:, None]  # (real, synthetic)
    uncovered = np.ones(len(real_feats), dtype=bool)
    chosen: list[int] = []
    free = np.ones(len(synth_feats), dtype=bool)
    while len(chosen) < n and uncovered.any():
        gain = np.where(free, covers[uncovered].sum(axis=0), -1)
        j = int(gain.argmax())
        if gain[j] <= 0:
            break
        chosen.append(j)
        free[j] = False
        uncovered &= ~covers[:, j]
    if len(chosen) < n:  # everything reachable is covered: k-center on the rest (diversity)
        d = pairwise_distances(synth_feats, synth_feats[chosen]).min(axis=1) if chosen else np.full(len(synth_feats), np.inf)
        while len(chosen) < n:
            j = int(np.where(free, d, -1).argmax())
            chosen.append(j)
            free[j] = False
            d = np.minimum(d, pairwise_distances(synth_feats, synth_feats[j : j + 1])[:, 0])
    return np.asarray(sorted(chosen))


def make_knob_pools(args, out: Path) -> None:
    import numpy as np

    from synthxray import generate_dataset, load_classifier, load_dataset, load_generator

    n = args.knob_per_class
    gen = None  # the sampled pools first: they do not need the main pool
    for knob, kw in [(f"g{g:g}", {"guidance_scale": g, "scheduler": args.scheduler}) for g in args.guidance] + [
            (s, {"guidance_scale": 1.0, "scheduler": s}) for s in args.samplers]:
        folder = knob_dir(out, knob)
        if folder.is_dir():
            continue
        gen = gen or load_generator(args.model)
        _log(f"{knob}: sampling {n} per class ({kw}, {args.steps} steps) into {folder}")
        t0 = time.time()
        generate_dataset(gen, per_class=n, seed=0, output_dir=folder, batch_size=64, num_inference_steps=args.steps, **kw)
        downstream._timing(out, f"knob_{knob}_s", time.time() - t0)
    main = load_dataset(str(out / "pool"))
    labels = np.asarray(main["label"])
    names = main.features["label"].names

    def save(rows, knob: str, note: dict) -> None:
        folder = knob_dir(out, knob)
        if folder.is_dir():
            return
        tmp = folder.with_name(folder.name + ".partial")
        main.select([int(i) for i in rows]).save_to_disk(str(tmp))
        (tmp / "knob.json").write_text(json.dumps(note, indent=2) + "\n")
        os.replace(tmp, folder)
        _log(f"{knob}: {len(rows)} images of the main pool into {folder}")

    # g1: the first images of each class (generate_dataset's per-image seeds make them a fresh sample's first images)
    save(np.concatenate([np.flatnonzero(labels == c)[:n] for c in range(len(names))]), "g1",
         {"knob": "g1", "how": f"the main pool's first {n} per class (guidance 1, {args.scheduler}, {args.steps} steps)"})
    if not args.selections or all(knob_dir(out, s).is_dir() for s in args.selections):
        return
    clf = load_classifier(reference_classifier(out))
    feats, probs = _features_and_probs(clf, list(main["image"]))
    mapping = np.asarray([clf.class_names.index(next(c for c in clf.class_names if c.lower() == nm.lower())) for nm in names])
    y = mapping[labels]
    right = probs.argmax(1) == y
    conf = probs[np.arange(len(y)), y]
    train = load_dataset(args.data, split="train")
    train_feats, _ = _features_and_probs(clf, list(train["image"]))
    train_y = np.asarray(train["label"])
    for sel in args.selections:
        rows = []
        for c in range(len(names)):
            idx = np.flatnonzero(labels == c)
            ok = idx[right[idx]]
            if sel == "confident":
                rows.append(ok[np.argsort(-conf[ok])][:n])
            elif sel == "hard":
                rows.append(ok[np.argsort(conf[ok])][:n])
            else:
                real_c = train_feats[train_y == mapping[c]]
                rows.append(idx[greedy_coverage(real_c, feats[idx], n)])
            if len(rows[-1]) < n:
                _log(f"{sel}: class {names[c]} has only {len(rows[-1])} images the classifier labels right")
        note = {"knob": sel, "classifier": str(reference_classifier(out)), "pool_right": float(right.mean()),
                "how": {"confident": "right and most confident", "hard": "right and least confident",
                        "coverage": "greedy cover of the real training images' 5-NN balls (classifier features), then k-center"}[sel]}
        save(np.concatenate(rows), sel, note)


# ---- quality --------------------------------------------------------------------------------------
def pool_quality(args, out: Path, knob: str) -> dict:
    """downstream's quality (FID / precision / recall at n = 624 in the test class mix, label fidelity) + coverage and confidence."""
    import numpy as np

    from synthxray import load_classifier, load_dataset

    path = out / "quality" / (f"{knob}.json" if args.fid else f"{knob}.hardness.json")
    if path.is_file() and "coverage" in json.loads(path.read_text()):
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    clf_dir = reference_classifier(out)
    if args.fid:
        q = downstream.measure_quality(args, out, pool_dir=knob_dir(out, knob), classifier=clf_dir, path=path, memorization_check=(knob == "main"))
    else:  # no Inception: coverage, confidence and the classifier's accuracy only
        q = {"rows": [{"class": "overall"}], "label_fidelity": None}
    clf = load_classifier(clf_dir)
    test = load_dataset(args.data, split="test")
    pool = load_dataset(str(knob_dir(out, knob)))
    tf, tp = _features_and_probs(clf, list(test["image"]))
    pf, pp = _features_and_probs(clf, list(pool["image"]))
    ty = np.asarray(test["label"])
    names = [n.lower() for n in clf.class_names]
    py = np.asarray([names.index(n.lower()) for n in pool.features["label"].names])[np.asarray(pool["label"])]
    rng = np.random.default_rng(0)
    sub = rng.permutation(len(pf))[: len(tf)]  # as many pool images as test images
    q["coverage"] = coverage(tf, pf[sub])
    q["coverage_space"] = f"penultimate features of {clf_dir} (k = 5; {len(tf)} test vs {len(sub)} pool images)"
    q["confidence"] = {"test": float(tp[np.arange(len(ty)), ty].mean()), "pool": float(pp[np.arange(len(py)), py].mean())}
    q["accuracy"] = {"test": float((tp.argmax(1) == ty).mean()), "pool": float((pp.argmax(1) == py).mean())}
    q["knob"] = knob
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(q, indent=2, default=str) + "\n")
    tmp.replace(path)
    return q


# ---- choosing on the validation split -------------------------------------------------------------
def choose_knob(args, out: Path) -> dict:
    """The knob pool and synthetic recipe with the best mean validation accuracy at ``--select_fraction``."""
    from synthxray.experiments.regimes import regime_name

    table = []
    for knob in knob_names(args):
        rows_path = out / "select" / knob / "regimes.json"
        if not rows_path.is_file():
            continue
        rows = {r["recipe"]: r for r in json.loads(rows_path.read_text())["rows"]}
        for kind in ("limited", "pretrain-synth"):
            r = rows.get(regime_name(kind, args.select_fraction))
            if r is None:
                continue
            p = r["paired"].get("balanced-real", {}).get("accuracy", {})
            table.append({"knob": knob, "kind": kind, "val_accuracy": r["accuracy"]["mean"], "val_accuracy_std": r["accuracy"]["std"],
                          "seeds": r["seeds"], "delta_vs_balanced_real": p.get("mean"), "ci95": [p.get("ci95_low"), p.get("ci95_high")]})
    if not table:
        raise SystemExit("no finished select runs: run the select stage first")
    best = max(table, key=lambda t: t["val_accuracy"])
    choice = {"knob": args.knob or best["knob"], "kind": best["kind"], "best": best, "table": table,
              "rule": f"highest mean validation accuracy over limited-F / pretrain-synth-F at F = {args.select_fraction}"}
    (out / "select" / "choice.json").write_text(json.dumps(choice, indent=2) + "\n")
    return choice


# ---- report ---------------------------------------------------------------------------------------
def _f(x, fmt="{:.3f}"):
    return "–" if x is None else fmt.format(x)


def quality_table(qs: dict[str, dict]) -> list[str]:
    lines = ["| Pool | FID | precision | recall | coverage | real-trained classifier: accuracy on pool (on test) | mean confidence on pool (on test) |",
             "|---|---|---|---|---|---|---|"]
    for knob, q in qs.items():
        row = next(r for r in q["rows"] if r["class"] == "overall")
        get = lambda m: row.get(m, {}).get("mean") if row.get(m) else None  # noqa: E731
        a = q.get("accuracy") or {}
        acc = f"{_f(a.get('pool'))} ({_f(a.get('test'))})"
        conf = q.get("confidence", {})
        lines.append(f"| {knob} | {_f(get('fid'), '{:.1f}')} | {_f(get('precision'))} | {_f(get('recall'))} | {_f(q.get('coverage'))} | {acc} | "
                     f"{_f(conf.get('pool'))} ({_f(conf.get('test'))}) |")
    return lines


def report(args, out: Path) -> str:
    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").is_file() else {}
    lines = ["### Limited-data regimes and knobs (benchmarks/small_data.py)", "",
             f"Command: `nice -n 5 python benchmarks/small_data.py {' '.join(sys.argv[1:])}`", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs, no GPU; torch threads {args.threads}; "
             f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Wall time by stage (s): {json.dumps(timings)}.", "",
             f"Generator {args.model}; main pool {args.per_class} per class ({args.scheduler}, {args.steps} steps) in {out / 'pool'}. Classifiers: cnn "
             f"from scratch, {args.image_size} px, {args.epochs} epochs, batch {args.batch_size}, lr {args.learning_rate}, best validation epoch kept.", ""]
    qs = {}
    for k in ["main"] + knob_names(args):  # with FID where it was measured, else the hardness figures alone
        for name in (f"{k}.json", f"{k}.hardness.json"):
            if (out / "quality" / name).is_file() and "coverage" in json.loads((out / "quality" / name).read_text()):
                qs[k] = json.loads((out / "quality" / name).read_text())
                break
    if qs:
        q0 = next((q for q in qs.values() if q.get("extractor")), {"extractor": "–", "protocol": "–", "n_synthetic": "–", "synthetic_per_class": "–", "n_real": 624})
        q0 = {**next(iter(qs.values())), **q0}
        lines += ["#### Pool quality and hardness", "",
                  f"FID / precision / recall: {q0['extractor']}, protocol {q0['protocol']}, n = {q0['n_synthetic']} pool images in the test class mix "
                  f"{q0['synthetic_per_class']} vs the {q0['n_real']} test images. Coverage: {q0.get('coverage_space', '–')}. Label fidelity: the "
                  "real-trained classifier on the whole pool (in brackets: on the real test set); a pool as hard as real data would score as low.", ""]
        lines += quality_table(qs) + [""]
    md = out / "regimes" / "regimes.md"
    if md.is_file():
        lines += [f"#### Regimes: main pool, test set, seeds {args.seeds}", "", md.read_text(), f"Plot: `{out / 'regimes' / 'plots' / 'regimes_cnn.png'}`.", ""]
    choice_path = out / "select" / "choice.json"
    if choice_path.is_file():
        c = json.loads(choice_path.read_text())
        lines += [f"#### Knob choice on the validation split (F = {args.select_fraction}, seeds {args.select_seeds})", "",
                  "| Pool | Recipe | val accuracy % (mean ± sd) | Δ vs balanced-real-F (val, paired 95% CI) |", "|---|---|---|---|"]
        for t in c["table"]:
            ci = "" if t["ci95"][0] is None else f" ({100 * t['ci95'][0]:+.1f}, {100 * t['ci95'][1]:+.1f})"
            d = "–" if t["delta_vs_balanced_real"] is None else f"{100 * t['delta_vs_balanced_real']:+.1f}{ci}"
            sd = "" if t["val_accuracy_std"] is None else f" ± {100 * t['val_accuracy_std']:.1f}"
            lines.append(f"| {t['knob']} | {t['kind']} | {100 * t['val_accuracy']:.1f}{sd} | {d} |")
        lines += ["", f"Chosen ({c['rule']}): **{c['knob']}** with {c['kind']}.", ""]
        cmd = out / "confirm" / c["knob"] / "regimes.md"
        if cmd.is_file():
            lines += [f"#### The chosen knob ({c['knob']}) on the test set, seeds {args.seeds}", "", cmd.read_text()]
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
        downstream.sample_pool(args, out)
    if "regimes" in args.stages:
        t0 = time.time()
        run_seed_major(regime_spec(args, out / "pool", out / "regimes", args.fractions, args.kinds, args.seeds))
        downstream._timing(out, "regimes_s", time.time() - t0)
    if "knobs" in args.stages:
        make_knob_pools(args, out)
    if "quality" in args.stages:
        for knob in ["main"] + knob_names(args):
            if knob_dir(out, knob).is_dir():
                t0 = time.time()
                q = pool_quality(args, out, knob)
                downstream._timing(out, f"quality_{knob}_s", time.time() - t0)
                _log(f"quality {knob}: " + "\n".join(quality_table({knob: q})[2:]))
    if "select" in args.stages:
        for knob in knob_names(args):
            if knob_dir(out, knob).is_dir():
                t0 = time.time()
                run_seed_major(regime_spec(args, knob_dir(out, knob), out / "select" / knob, [args.select_fraction], args.select_kinds,
                                           args.select_seeds, select=True))
                downstream._timing(out, f"select_{knob}_s", time.time() - t0)
        choice = choose_knob(args, out)
        _log(f"chosen on validation: {choice['knob']} ({choice['kind']}), val accuracy {choice['best']['val_accuracy']:.4f}")
    if "confirm" in args.stages:
        knob = args.knob or choose_knob(args, out)["knob"]
        t0 = time.time()
        run_seed_major(regime_spec(args, knob_dir(out, knob), out / "confirm" / knob, args.confirm_fractions,
                                   ["real", "balanced-real", "limited", "pretrain-synth"], args.seeds))
        downstream._timing(out, "confirm_s", time.time() - t0)
    if "report" in args.stages:
        from synthxray.experiments.runner import write_report
        from synthxray.experiments.spec import load_spec

        for folder, fractions, kinds in [(out / "regimes", args.fractions, args.kinds)] + [
                (d, args.confirm_fractions, ["real", "balanced-real", "limited", "pretrain-synth"]) for d in sorted((out / "confirm").glob("*"))]:
            if (folder / "runs").is_dir():  # the tables from every finished run (a cut-short grid reports what it has)
                pool = out / "pool" if folder.name == "regimes" else knob_dir(out, folder.name)
                write_report(load_spec(regime_spec(args, pool, folder, fractions, kinds, args.seeds)), folder)
        text = report(args, out)
        (out / "report.md").write_text(text)
        if args.report:
            Path(args.report).write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
