#!/usr/bin/env python
"""The small-site scenario (issue 22, part 2), end to end with the product's own commands.

    nice -n 5 python benchmarks/small_sites.py --output_dir /work/runs/sites

1. **Sites**: PneumoniaMNIST train cut into ``--sites`` non-IID sites by the federated ``large-site`` partition
   (site 0: an IID draw of ``--large_fraction`` of the images; sites 1..K-1: equal majority-class sites with
   ``--majority_fraction`` of one class over the rest), saved as dataset folders (``OUT/data/site_K``).
2. **Generators** (the default DDPM of ``train_ddpm.py``, one torch thread each):
   (a) ``large``: ``accelerate launch train_scripts/train_ddpm.py`` on site 0 for ``--large_minutes``;
   (b) ``federated``: ``synthxray federated`` over all sites on Flower's simulation engine (the same partition),
       ``--rounds`` x ``--local_steps`` local steps at every site;
   (c) ``local_K``: ``train_ddpm.py`` on small site K alone for ``--local_minutes``.
3. **Hub**: the loopback Hub of the tests (``tests/hub/hub_server.py``) is started on 127.0.0.1; every generator is
   pushed with ``synthxray push generator`` and pulled back by repo id by ``synthxray generate --model REPO_ID``,
   which samples its pool (``--per_class`` per class, the generator's saved sampler: dpm-sde, 20 steps).
4. **Classifiers** at every small site (``run_experiment``; train = the site's images, val = PneumoniaMNIST val,
   test = the common 624-image test split): own-only (``baseline``), the balanced control (``balanced-real-100``:
   own images oversampled to the class counts own + pool gives), own + pool(a|b|c) (``synth-100``: the whole
   balanced pool) and pretrain on pool(a) then fine-tune (``pretrain-synth``). Seed-major, so a cut-short run has
   complete paired seeds; runs with the same seed share the validation split and the initial weights.
5. **Report**: per site and the mean over sites, paired Δ (95% t-interval over seeds) vs the site's balanced
   control and vs own-only; ``OUT/report.md`` (printed) and ``OUT/report.json``.

Every stage is resumable: rerun the same command and finished stages and runs are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "hub"))
HUB_USER, HUB_TOKEN = "sites", "hf_sites_write"
OWN, CONTROL = "own-only", "balanced control"


def default_data() -> Path:
    for candidate in (ROOT.parent / "shared" / "data" / "medmnist" / "pneumoniamnist.npz", Path("/work/shared/data/medmnist/pneumoniamnist.npz")):
        if candidate.is_file():
            return candidate.resolve()
    return ROOT.parent / "shared" / "data" / "medmnist" / "pneumoniamnist.npz"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(default_data()), help="PneumoniaMNIST .npz (train / val / test splits)")
    p.add_argument("--output_dir", default=str(ROOT / "runs" / "small_sites"))
    p.add_argument("--sites", type=int, default=4, help="sites: 1 large + (sites - 1) small")
    p.add_argument("--large_fraction", type=float, default=0.6, help="share of the images at the large site (IID draw)")
    p.add_argument("--majority_fraction", type=float, default=0.8, help="share of a small site's images from its majority class")
    p.add_argument("--partition_seed", type=int, default=0)
    p.add_argument("--large_minutes", type=float, default=12.0, help="(a) training budget at the large site")
    p.add_argument("--extra_large_steps", type=int, default=None, metavar="N",
                   help="also (a+): the large-site DDPM trained for N steps (not minutes), its pool and an own + pool(a+) row")
    p.add_argument("--rounds", type=int, default=4, help="(b) federated rounds")
    p.add_argument("--local_steps", type=int, default=10, help="(b) optimiser steps per site per round")
    p.add_argument("--local_minutes", type=float, default=4.0, help="(c) training budget at each small site")
    p.add_argument("--local_sites", type=int, nargs="*", default=None, help="(c) the small sites that train their own generator (default: all)")
    p.add_argument("--generator_args", type=shlex.split, default=[],
                   help='extra train_ddpm.py flags for every generator, one string: --generator_args="--resolution 16" (tests)')
    p.add_argument("--per_class", type=int, default=150, help="pool images per class (150: 6-7 min per pool at 1.3 s per image on the shared CPU)")
    p.add_argument("--gen_batch_size", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--backbone", default="cnn")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--image_size", type=int, default=28)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--pretrain", action=argparse.BooleanOptionalAction, default=True, help="also pretrain on pool(a), fine-tune on own")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a CPU shared with other jobs)")
    p.add_argument("--max_real_train", type=int, default=None, help="cap on the real images the sites share (tests)")
    p.add_argument("--names", nargs="+", default=None, metavar="NAME",
                   help="generators/pools stages: only these (a, b, c1, c2, ...), e.g. to sample a pool while another generator trains")
    p.add_argument("--stages", nargs="+", default=["generators", "pools", "classifiers", "report"],
                   choices=["generators", "pools", "classifiers", "report"])
    return p.parse_args(argv)


def _log(msg: str) -> None:
    print(f"[small_sites {time.strftime('%H:%M:%S', time.gmtime())} UTC] {msg}", flush=True)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def _run(cmd: list[str], log: Path, env: dict[str, str]) -> None:
    """Run one product command, its output into ``log``; a failure names the command and the log."""
    _log(" ".join(cmd) + f"  (log: {log})")
    t0 = time.time()
    with open(log, "a") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if rc:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{cmd[0:4]} failed (exit {rc}); log {log}:\n{tail}")
    _log(f"done in {time.time() - t0:.0f} s")


def _threads_env(args) -> dict[str, str]:
    n = str(args.threads)
    return _env(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, HF_HUB_OFFLINE="1")


# ---- 1. sites ---------------------------------------------------------------------------------------
def federated_config(args, out: Path) -> dict:
    cfg = {"dataset": str(args.data), "output_dir": str(out / "gen" / "federated"), "num_clients": args.sites,
           "partition": "large-site", "large_site_fraction": args.large_fraction, "majority_fraction": args.majority_fraction,
           "seed": args.partition_seed, "num_rounds": args.rounds, "local_steps": args.local_steps, "client_num_cpus": 2}
    if args.max_real_train:
        cfg["max_train_images"] = args.max_real_train
    cfg.update(generator_overrides(args))
    return cfg


def generator_overrides(args) -> dict:
    """``--generator_args`` as config fields (``--resolution 16`` -> ``{"resolution": 16}``), parsed by the DDPM config."""
    from synthxray.training.common import parse_config
    from synthxray.training.ddpm import DDPMTrainingConfig

    if not args.generator_args:
        return {}
    cfg = parse_config(DDPMTrainingConfig, ["--dataset", "x", "--output_dir", "x", *args.generator_args])
    names = {a.lstrip("-").split("=")[0] for a in args.generator_args if a.startswith("--")}
    return {k: getattr(cfg, k) for k in names}


def make_sites(args, out: Path) -> list[dict]:
    from synthxray.experiments.sites import partition_sites
    from synthxray.federated.config import FederatedConfig

    fed = FederatedConfig(**{**federated_config(args, out), "output_dir": str(out / "data")})
    sites = partition_sites(fed, out / "data")
    for s in sites:
        _log(f"site {s['site']}: {s['num_images']} images {s['class_counts']}")
    return sites


# ---- 2. generators ----------------------------------------------------------------------------------
def generators(args, out: Path, sites: list[dict]) -> dict[str, Path]:
    """Train every generator that is not there yet; returns name -> folder."""
    gen = out / "gen"
    gen.mkdir(parents=True, exist_ok=True)
    small = [s["site"] for s in sites[1:]] if args.local_sites is None else list(args.local_sites)
    env = _threads_env(args)
    ddpm = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "train_scripts/train_ddpm.py"]
    folders = {"a": gen / "large", "b": gen / "federated", **{f"c{k}": gen / f"local_{k}" for k in small}}
    jobs = [("a", sites[0]["path"], ["--max_train_minutes", str(args.large_minutes)])]
    jobs += [(f"c{k}", sites[k]["path"], ["--max_train_minutes", str(args.local_minutes)]) for k in small]
    if args.extra_large_steps:
        folders["a+"] = gen / f"large_{args.extra_large_steps}steps"
        jobs.append(("a+", sites[0]["path"], ["--max_train_steps", str(args.extra_large_steps)]))
    jobs = [j for j in jobs if args.names is None or j[0] in args.names]
    for name, data, budget in jobs:
        if not (folders[name] / "synthxray.json").is_file():
            _run(ddpm + ["--dataset", str(data), "--output_dir", str(folders[name]), *budget,
                         "--seed", "0", "--checkpoints_total_limit", "1", "--resume_from_checkpoint", "latest", *args.generator_args],
                 gen / f"{folders[name].name}.log", env)
    if not (folders["b"] / "synthxray.json").is_file() and (args.names is None or "b" in args.names):
        config = gen / "federated.json"
        config.write_text(json.dumps(federated_config(args, out), indent=1) + "\n")
        _run([sys.executable, "-m", "synthxray.cli", "federated", "--config", str(config)], gen / "federated.log", env)
    return folders


def train_steps(folder: Path) -> int | None:
    """Optimiser steps a generator was trained for (summed over sites for a federated one), from its metadata."""
    info = json.loads((folder / "synthxray.json").read_text())
    extra = info.get("extra", {})
    fed = extra.get("federation") or {}
    if fed:  # every site trains every round (fraction_train 1): rounds x local steps x sites
        return len(fed.get("rounds_done") or []) * int(fed.get("local_steps") or 0) * int(fed.get("sites") or 0)
    return extra.get("train_steps")


# ---- 3. hub + pools ---------------------------------------------------------------------------------
class LoopbackHub:
    """The tests' Hub server on 127.0.0.1 in a child process, and the environment that points clients at it."""

    def __enter__(self) -> "LoopbackHub":
        from hub_testing import hub_env

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "hub" / "hub_server.py"), "--port", str(port),
                                      "--token", f"{HUB_TOKEN}={HUB_USER}", "--minutes", "600"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            self.proc.kill()
            raise RuntimeError(f"the loopback hub did not start on port {port}")
        self.home = Path(tempfile.mkdtemp(prefix="small_sites_hf_home_"))  # the clients' cache; removed on exit
        self.env = hub_env(self.url, self.home)
        _log(f"loopback hub at {self.url}")
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.home, ignore_errors=True)


def pools(args, out: Path, folders: dict[str, Path]) -> dict[str, Path]:
    """Push every generator to the loopback hub and pull it back by repo id to sample its pool (missing pools only)."""
    pool_dir = out / "pools"
    pool_dir.mkdir(parents=True, exist_ok=True)
    targets = {name: pool_dir / name for name in folders}
    todo = [n for n in folders if not (targets[n] / "synthxray_dataset.json").is_file() and (args.names is None or n in args.names)]
    if not todo:
        return targets
    with LoopbackHub() as hub:
        env = {**_threads_env(args), **hub.env}
        env = {k: v for k, v in env.items() if not k.startswith("HF_TOKEN")}
        for name in todo:
            repo = f"{HUB_USER}/pneumonia-ddpm-{folders[name].name.replace('_', '-')}"
            _run([sys.executable, "-m", "synthxray.cli", "push", "generator", str(folders[name]), repo, "--token", HUB_TOKEN],
                 pool_dir / f"{name}.log", env)
            _run([sys.executable, "-m", "synthxray.cli", "generate", "--model", repo, "--output_dir", str(targets[name]),
                  "--per_class", str(args.per_class), "--seed", "0", "--batch_size", str(args.gen_batch_size), "--device", "cpu"],
                 pool_dir / f"{name}.log", env)
    return targets


# ---- 4. classifiers ---------------------------------------------------------------------------------
def experiments(args, out: Path, sites: list[dict], pool_paths: dict[str, Path]) -> dict[int, list[tuple[str, list[str], dict[str, str]]]]:
    """Per small site: (pool name, recipes, recipe -> row name) for each experiment (one per pool)."""
    plan = {}
    for s in sites[1:]:
        k = s["site"]
        first = ["baseline", "balanced-real-100", "synth-100"] + (["pretrain-synth"] if args.pretrain else [])
        names = {"baseline": OWN, "balanced-real-100": CONTROL, "synth-100": "own + pool(a)", "pretrain-synth": "pretrain pool(a) → own"}
        rows = [("a", first, names), ("b", ["synth-100"], {"synth-100": "own + pool(b)"})]
        if f"c{k}" in pool_paths:
            rows.append((f"c{k}", ["synth-100"], {"synth-100": "own + pool(c)"}))
        if "a+" in pool_paths:
            rows.append(("a+", ["synth-100"], {"synth-100": "own + pool(a+)"}))
        plan[k] = rows
    return plan


def spec_for(args, out: Path, site: dict, pool: Path, recipes: list[str], seeds: list[int], name: str) -> dict:
    from synthxray.experiments.sites import site_spec

    return site_spec(site["path"], {"dataset": str(pool)}, recipes, out / "classifiers" / f"site_{site['site']}" / name,
                     test=str(args.data), test_split="test", val=str(args.data), val_split="val", seeds=seeds,
                     backbones=[{"name": args.backbone, "learning_rate": args.learning_rate}], epochs=args.epochs,
                     image_size=args.image_size, batch_size=args.batch_size, learning_rate=args.learning_rate,
                     ratio_of="synthetic", balance="balanced", robustness=None, num_threads=args.threads,
                     save_classifiers=False, plots=False)


def classifiers(args, out: Path, sites: list[dict], pool_paths: dict[str, Path]) -> dict[str, list[dict]]:
    """Seed-major over (site, pool); returns site -> runs with row names as recipes."""
    from synthxray import run_experiment
    from synthxray.experiments.sites import relabel

    plan = experiments(args, out, sites, pool_paths)
    runs: dict[str, list[dict]] = {}
    for k in range(1, len(args.seeds) + 1):
        runs = {}
        for s in sites[1:]:
            for pool, recipes, names in plan[s["site"]]:
                res = run_experiment(spec_for(args, out, s, pool_paths[pool], recipes, args.seeds[:k], pool))
                runs.setdefault(f"site {s['site']}", []).extend(relabel(res.runs, names))
        _log(f"classifiers: seeds {args.seeds[:k]} done")
    return runs


# ---- 5. report --------------------------------------------------------------------------------------
def report(args, out: Path, sites: list[dict], folders: dict[str, Path], pool_paths: dict[str, Path], runs: dict[str, list[dict]]) -> str:
    from synthxray.experiments.sites import site_markdown, site_table

    rows_order = [OWN, CONTROL, "own + pool(a)", "own + pool(b)", "own + pool(c)", "own + pool(a+)", "pretrain pool(a) → own"]
    refs = [CONTROL, OWN]
    rows = site_table(runs, args.backbone, rows_order, refs)
    gens = {n: {"folder": str(f), "train_steps": train_steps(f)} for n, f in folders.items() if (f / "synthxray.json").is_file()}
    lines = [f"# Small sites: PneumoniaMNIST, {args.sites} sites (1 large IID {args.large_fraction:.0%} + "
             f"{args.sites - 1} small majority-{args.majority_fraction:.0%}), {args.backbone} {args.image_size} px, "
             f"{args.epochs} epochs, seeds {args.seeds}", "",
             "Sites: " + "; ".join(f"{s['site']}: {s['num_images']} {s['class_counts']}" for s in sites), "",
             "Generators: " + "; ".join(f"{n}: {g['train_steps']} steps ({Path(g['folder']).name})" for n, g in gens.items()), "",
             f"Pools: {args.per_class} per class each, pulled from the loopback hub by repo id.", "",
             site_markdown(rows, refs)]
    text = "\n".join(lines)
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps({"args": vars(args), "sites": sites, "generators": gens, "rows": rows}, indent=1, default=str) + "\n")
    return text


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    sites = make_sites(args, out)
    folders = generators(args, out, sites) if "generators" in args.stages else {
        n: p for n, p in {"a": out / "gen" / "large", "b": out / "gen" / "federated",
                          **{f"c{s['site']}": out / "gen" / f"local_{s['site']}" for s in sites[1:]},
                          **({"a+": out / "gen" / f"large_{args.extra_large_steps}steps"} if args.extra_large_steps else {})}.items()
        if (p / "synthxray.json").is_file()}
    pool_paths = pools(args, out, folders) if "pools" in args.stages else {
        n: out / "pools" / n for n in folders if (out / "pools" / n / "synthxray_dataset.json").is_file()}
    if ("classifiers" in args.stages or "report" in args.stages) and args.names is None:
        runs = classifiers(args, out, sites, pool_paths)
        print(report(args, out, sites, folders, pool_paths, runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
