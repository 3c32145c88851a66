#!/usr/bin/env python
"""Few-step generation in one run: a DDPM teacher at 20 and 10 steps, the training-free samplers at 1/2/4
steps on that teacher, and its consistency-distilled student at 1/2/4 network evaluations, each scored by
Inception FID (+ per class, precision, recall) under the default protocol at n = the test set, with
images/s; the distillation's wall and CPU minutes; and (``--phase extractor``) the FID extractor's speed
with channels_last, a frozen TorchScript graph, batch size and threads.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/fewstep.py --teacher runs/teacher --output runs/fewstep \
        --distill_minutes 20 --threads 1

Without ``--student`` the student is distilled here (``train_scripts/distill_consistency.py`` as a
subprocess, CPU time from ``getrusage``) into OUT/student; with it an existing one is scored. The real side
is the test split (all of it unless ``--num_real``), compared at the generator's resolution with the
training transform, as ``benchmarks/quality.py`` does; the floor is as many stratified train images vs it.
Results: OUT/fewstep.json and OUT/fewstep.md (a re-run resumes: rows already scored are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import rows_of, stratified  # noqa: E402  (benchmarks/quality.py's pieces)

# label: (which model, scheduler, evaluations); the teacher's rows use its own samplers, the student's its LCM sampler.
# The deterministic teacher rows (ddim 20: the solver the student is distilled from, one DDIM step per grid
# interval; dpm 20: the same ODE solved more exactly) are the ceiling a consistency student can reach.
TEACHER_ROWS = [("teacher", "dpm-sde", 20), ("teacher", "dpm-sde", 10), ("teacher", "ddim", 20), ("teacher", "dpm", 20)] + [
    ("teacher", s, n) for s in ("dpm", "dpm-sde", "unipc") for n in (1, 2, 4)]
STUDENT_ROWS = [("student", "lcm", n) for n in (1, 2, 4)]
# The distillation target itself: the teacher's ODE solved over the student's 20-point grid, one solver step per
# interval, from the same noise (ConsistencyObjective.solve). A perfect student returns these images in one
# evaluation, so each row is the ceiling of a student distilled with that --ode_solver. Evaluations: 20 or 40.
ODE_ROWS = [("teacher-ode", "ddim", 20), ("teacher-ode", "dpm-solver-2", 20)]


def ode_images(teacher, counts: dict[str, int], solver: str, num_solver_steps: int, batch_size: int):
    """A labelled ``datasets.Dataset`` of ``ConsistencyObjective.solve`` images from the initial noise that
    ``generate_dataset(seed=0)`` gives each image (``sample_seed``), cropped as the teacher's pipeline crops."""
    import datasets
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    from synthxray.synthesis import sample_seed
    from synthxray.training.consistency import ConsistencyObjective

    pipe, names = teacher.pipeline, list(counts)
    unet, sched = pipe.unet.eval(), pipe.scheduler
    objective = ConsistencyObjective(unet, unet, unet, sched.alphas_cumprod, num_solver_steps, sched.config.prediction_type,
                                     null_class=len(names), ode_solver=solver)
    size = unet.config.sample_size
    images, labels = [], []
    for c, name in enumerate(names):
        for start in range(0, counts[name], batch_size):
            # the pipeline's initial noise: one CPU generator per image, seeded as generate_dataset seeds it
            gens = [torch.Generator().manual_seed(sample_seed(0, c, i)) for i in range(start, min(start + batch_size, counts[name]))]
            noise = randn_tensor((len(gens), unet.config.in_channels, size, size), generator=gens)
            images += pipe.postprocess(objective.solve(noise, torch.full((len(gens),), c, dtype=torch.long)))
            labels += [c] * len(gens)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/medmnist/pneumoniamnist.npz"))
    p.add_argument("--teacher", required=True, help="the ddpm generator folder")
    p.add_argument("--student", default=None, help="an existing consistency generator (default: distil one into OUT/student)")
    p.add_argument("--distill_minutes", type=float, default=20.0, help="distillation wall-clock budget (--max_train_minutes)")
    p.add_argument("--output", default="runs/fewstep")
    p.add_argument("--num_real", type=int, default=None, help="real side: this many stratified test images (default: all)")
    p.add_argument("--protocol", default="torch-fidelity")
    p.add_argument("--extractor", default="inception")
    p.add_argument("--batch_size", type=int, default=64, help="sampling batch size")
    p.add_argument("--threads", type=int, default=None, help="torch threads here and OMP_NUM_THREADS for the distillation")
    p.add_argument("--phase", choices=["all", "distill", "fid", "extractor"], default="all")
    p.add_argument("--rows", nargs="*", default=None, help="only these rows (labels as in the table, e.g. 'student lcm 4')")
    p.add_argument("--extractor_images", type=int, default=128, help="test images timed per extractor variant")
    p.add_argument("--extractor_repeats", type=int, default=1,
                   help="rounds over all extractor variants (interleaved, so load drift hits each alike); median reported")
    p.add_argument("--extractor_variants", nargs="*", default=None, help="only the extractor variants whose names start so")
    p.add_argument("--distill_args", nargs=argparse.REMAINDER, default=[], help="extra flags for distill_consistency.py (last)")
    args = p.parse_args(argv)
    if args.extractor_repeats < 1:
        p.error(f"--extractor_repeats must be at least 1, got {args.extractor_repeats}")
    return args


def distil(args, out: Path) -> dict:
    """Run the distillation script; wall seconds and the child's CPU seconds (user + system)."""
    student = out / "student"
    cmd = [sys.executable, str(ROOT / "train_scripts/distill_consistency.py"), "--teacher", args.teacher, "--output_dir", str(student),
           "--max_train_minutes", str(args.distill_minutes), "--max_train_steps", "100000", "--checkpointing_steps", "100",
           "--save_images_steps", "200", *args.distill_args]
    if (student / "checkpoints").is_dir():
        cmd += ["--resume_from_checkpoint", "latest"]
    print("distilling:", " ".join(cmd), flush=True)
    env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    with open(out / "distill.log", "a") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"distill_consistency.py failed ({proc.returncode}); see {out / 'distill.log'}")
    summary = json.loads((student / "train_summary.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"command": " ".join(cmd[1:]), "wall_minutes": round(wall / 60, 2), "cpu_minutes": round(cpu / 60, 2),
            "train_minutes": round(summary["train_seconds"] / 60, 2), "steps": summary["steps"],
            "seconds_per_step": summary.get("seconds_per_step_this_run"), "threads": args.threads}


def extractor_speed(args, report: dict, save) -> None:
    """Images/s of the Inception extractor's forward on the same test images, per variant, and each variant's
    largest feature difference from the current code path (batch 32, inference mode, the threads given)."""
    import torch

    from synthxray import load_dataset
    from synthxray.evaluation import get_extractor
    from synthxray.evaluation.extractors import to_uint8_rgb
    from synthxray.evaluation.protocols import get_protocol

    test = stratified(load_dataset(args.data, split="test"), args.extractor_images, seed=0)
    ext = get_extractor(args.extractor)
    proto = get_protocol(args.protocol)
    x = proto.batch([to_uint8_rgb(im, None) for im in test["image"]], ext.input_size)
    base_threads = torch.get_num_threads()

    def run(fn, batch: int, threads: int) -> tuple[float, np.ndarray]:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            fn(x[:batch])  # warm-up (a frozen graph optimises on its first calls)
            fn(x[:batch])
            t0 = time.perf_counter()
            feats = [fn(x[i:i + batch]) for i in range(0, len(x), batch)]
            seconds = time.perf_counter() - t0
        torch.set_num_threads(base_threads)
        return len(x) / seconds, torch.cat(feats).float().numpy()

    plain = lambda b: ext(b)[0]  # noqa: E731  what compute_features calls
    variants = {"current (batch 32)": (plain, 32, base_threads), "batch 8": (plain, 8, base_threads),
                "batch 64": (plain, 64, base_threads)}
    if getattr(ext, "net_ts", None) is not None:  # the TorchScript Inception only: the other extractors are timed as they are
        import copy

        def with_net(make_net, channels_last: bool):
            net = None

            def fn(b):  # the network is built on first use: a variant left out costs nothing
                nonlocal net
                if net is None:
                    with torch.inference_mode(False):  # built outside the timed loop's inference mode
                        net = make_net()
                from synthxray.evaluation.protocols import tf1_bilinear

                b = tf1_bilinear(b, ext.input_size)
                b = (b.float() - 128.0) / 128.0
                if channels_last:
                    b = b.contiguous(memory_format=torch.channels_last)
                return net(b).flatten(1)
            return fn

        frozen = lambda: torch.jit.optimize_for_inference(torch.jit.freeze(copy.deepcopy(ext.net_ts).eval()))  # noqa: E731
        cl = lambda: copy.deepcopy(ext.net_ts).to(memory_format=torch.channels_last)  # noqa: E731
        variants["channels_last (batch 32)"] = (with_net(cl, True), 32, base_threads)
        variants["frozen + optimize_for_inference (batch 32)"] = (with_net(frozen, False), 32, base_threads)
        variants["frozen + optimize_for_inference + channels_last (batch 32)"] = (with_net(frozen, True), 32, base_threads)
    if os.cpu_count() and os.cpu_count() > base_threads:
        variants[f"current, {os.cpu_count()} threads"] = (plain, 32, os.cpu_count())
    if args.extractor_variants:  # the current path stays: it is the reference for speed and features
        variants = {k: v for i, (k, v) in enumerate(variants.items()) if i == 0 or k.startswith(tuple(args.extractor_variants))}
    rows, reference, speeds = {}, None, {name: [] for name in variants}
    for round_ in range(args.extractor_repeats):
        for name, (fn, batch, threads) in variants.items():
            ips, feats = run(fn, batch, threads)
            speeds[name].append(ips)
            reference = feats if reference is None else reference
            rows[name] = {"images_per_s": round(float(np.median(speeds[name])), 2), "batch": batch, "threads": threads,
                          "runs": [round(v, 2) for v in speeds[name]],
                          "max_abs_diff": float(np.abs(feats - reference).max()), "feature_scale": float(np.abs(reference).max())}
            print(f"extractor round {round_ + 1} {name}: {ips:.2f} img/s, max |diff| {rows[name]['max_abs_diff']:.2e}", flush=True)
    base = speeds[next(iter(variants))]
    for name in variants:  # per-round ratio to the current path: paired, so shared load cancels
        ratios = [a / b for a, b in zip(speeds[name], base)]
        rows[name]["ratio_median"] = round(float(np.median(ratios)), 3)
        rows[name]["ratio_range"] = [round(min(ratios), 3), round(max(ratios), 3)]
    report["extractor_speed"] = {"images": len(x), "extractor": ext.description, "repeats": args.extractor_repeats,
                                 "rows": rows}
    save()


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from synthxray import load_dataset, load_generator
    from synthxray.classes import proportional_counts
    from synthxray.evaluation import ResolutionMatch, compute_features, evaluate, fid_from_features, get_extractor
    from synthxray.synthesis import generate_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "fewstep.json"
    report: dict = json.loads(results.read_text()) if results.is_file() else {}
    report.update(data=args.data, teacher=args.teacher, threads=torch.get_num_threads(), protocol=args.protocol)
    report.setdefault("dates", []).append(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))

    def save():
        tmp = results.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        os.replace(tmp, results)
        (out / "fewstep.md").write_text(markdown(report))

    if args.phase == "extractor":
        extractor_speed(args, report, save)
        return 0
    student_dir = Path(args.student) if args.student else out / "student"
    if args.phase in ("all", "distill") and not args.student:
        report["distillation"] = distil(args, out)
        print(f"distilled: {report['distillation']}", flush=True)
        save()
    if args.phase == "distill":
        return 0
    report["student"] = str(student_dir)

    test = load_dataset(args.data, split="test")
    if args.num_real:
        test = stratified(test, args.num_real, seed=0)
    ext = get_extractor(args.extractor)
    teacher = load_generator(args.teacher, device="cpu")
    match = ResolutionMatch(int(teacher.info.resolution or 32), 1)
    report.update(extractor=ext.description, compared_size=match.size, n_real=len(test))
    names = list(test.features["label"].names)
    test_feats = compute_features(test, ext, cache=True, desc="test features", protocol=args.protocol, transform=match)
    train_sub = stratified(load_dataset(args.data, split="train"), len(test), seed=0)
    train_feats = compute_features(train_sub, ext, cache=True, desc="train features", protocol=args.protocol, transform=match)
    floor = {"overall": {"fid": fid_from_features(test_feats.features, train_feats.features)}}
    for i, name in enumerate(names):
        floor[name] = {"fid": fid_from_features(test_feats.of_class(i), train_feats.of_class(i))}
    report["floor"] = floor
    save()

    counts = proportional_counts({n: int(c) for n, c in zip(names, np.bincount(test["label"]))}, len(test))
    models = {"teacher": teacher, "student": load_generator(student_dir, device="cpu")}
    report.setdefault("rows", {})
    for which, scheduler, steps in TEACHER_ROWS + STUDENT_ROWS + ODE_ROWS:
        label = f"{which} {scheduler} {steps}"
        if (args.rows and label not in args.rows) or label in report["rows"]:
            continue
        t0 = time.time()
        if which == "teacher-ode":
            ds = ode_images(teacher, counts, scheduler, steps, args.batch_size)
            steps *= 2 if scheduler == "dpm-solver-2" else 1
        else:
            ds = generate_dataset(models[which], images_per_class=counts, seed=0, batch_size=args.batch_size,
                                  scheduler=scheduler, num_inference_steps=steps, progress=True)
        seconds = time.time() - t0
        res = evaluate(test, ds, metrics=("fid", "precision", "recall"), extractor=ext, by_class=True, progress=True,
                       protocol=args.protocol)
        report["rows"][label] = {"model": which, "scheduler": scheduler, "evaluations": steps, "images": len(ds),
                                 "seconds": round(seconds, 1), "images_per_s": round(len(ds) / seconds, 2),
                                 "precision": res.value("precision"), "recall": res.value("recall"), "fid": rows_of(res)}
        print(f"{label}: FID {res.value('fid'):.1f}, P {res.value('precision'):.3f} R {res.value('recall'):.3f}, "
              f"{len(ds) / seconds:.1f} img/s", flush=True)
        save()
    print(markdown(report))
    return 0


def markdown(r: dict) -> str:
    lines = []
    d = r.get("distillation")
    if d:
        lines += [f"Distillation: `{d['command']}` — {d['steps']} steps, {d['train_minutes']} training minutes, "
                  f"{d['wall_minutes']} wall minutes, **{d['cpu_minutes']} CPU minutes** (user + system), "
                  f"{d['seconds_per_step']} s/step, OMP threads {d['threads']}.", ""]
    floor = r.get("floor", {})
    names = [k for k in floor if k != "overall"]
    if r.get("rows") or floor:  # an extractor-only or distill-only run has no FID table
        lines += [f"FID protocol **{r.get('protocol')}**; features {r.get('extractor')}; compared at {r.get('compared_size')} px "
                  f"(real test images brought to it with the training transform); real side = {r.get('n_real')} test images; "
                  f"synthetic = as many in the test class mix, seed 0. Teacher `{r.get('teacher')}`, student `{r.get('student')}`.", "",
                  "| model | sampler | evaluations | img/s | FID | " + " | ".join(f"FID {n}" for n in names) + " | precision | recall |",
                  "|---|---|---:|---:|---:|" + "---:|" * len(names) + "---:|---:|"]
    for label, e in (r.get("rows") or {}).items():
        cells = [f"{e['fid'][n]['fid']:.1f}" if n in e["fid"] else "" for n in ["overall", *names]]
        lines.append(f"| {e['model']} | {e['scheduler']} | {e['evaluations']} | {e['images_per_s']} | " + " | ".join(cells)
                     + f" | {e['precision']:.3f} | {e['recall']:.3f} |")
    if floor:
        lines.append("| real train vs test (floor) | | | | " + " | ".join(f"{floor[n]['fid']:.1f}" for n in ["overall", *names]) + " | | |")
    x = r.get("extractor_speed")
    if x:
        lines += ["", f"FID extractor speed ({x['extractor']}, {x['images']} test images, forward only, "
                      f"median of {x.get('repeats', 1)} interleaved rounds):", "",
                  "| variant | batch | threads | img/s | x current (per-round range) | max abs feature diff vs current | max abs feature |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {k} | {v['batch']} | {v['threads']} | {v['images_per_s']} | "
                  f"{v.get('ratio_median', '')} ({', '.join(map(str, v.get('ratio_range', [])))}) | "
                  f"{v['max_abs_diff']:.2e} | {v['feature_scale']:.3g} |" for k, v in x["rows"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
