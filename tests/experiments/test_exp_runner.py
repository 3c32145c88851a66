"""The experiment runner: results files and plots, resume after a kill, specs, generator-sampled synthetic data."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from synthxray import load_classifier, run_experiment
from synthxray.experiments import runner as runner_mod
from synthxray.experiments.spec import load_spec


def tiny_spec(real_train, real_test, synthetic, out, **kw):
    spec = dict(
        real_train=real_train, test=real_test, synthetic=synthetic, output_dir=str(out),
        backbones=[{"name": "cnn", "widths": [4, 8]}], recipes=["baseline", "synth-50", "limited-25", "mixed"],
        seeds=[0, 1], epochs=2, image_size=16, batch_size=16, learning_rate=3e-3,
    )
    spec.update(kw)
    return spec


def test_experiment_writes_results_and_plots(tmp_path, real_train, real_test, synthetic):
    res = run_experiment(tiny_spec(real_train, real_test, synthetic, tmp_path / "exp"))
    out = tmp_path / "exp"
    for name in ("results.csv", "results.json", "results.md", "spec.json"):
        assert (out / name).is_file(), name
    for name in ("accuracy_comparison.png", "training_curves.png", "confusion_matrices.png", "metrics_heatmap.png"):
        assert (out / "plots" / name).stat().st_size > 1000, name
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["recipe"] for r in rows] == ["baseline", "synth-50", "limited-25", "mixed"]
    for col in ("accuracy_mean", "accuracy_std", "accuracy_ci95_low", "f1_mean", "auc_mean", "precision_mean", "recall_mean", "delta_accuracy"):
        assert col in rows[0]
    assert rows[0]["n_seeds"] == "2" and rows[0]["n_real"] == "72"  # 80 real minus the 10% validation split
    assert rows[1]["n_synthetic"] == "40"  # 50% of the 80-image pool (seed 004), balanced 20 + 20
    data = json.loads((out / "results.json").read_text())
    assert len(data["runs"]) == 8 and data["random_weights_backbones"] == ["cnn"]
    assert "| Synth-50 |" in res.markdown and "Δ vs Baseline" in res.markdown
    # every run saved a classifier that loads with the shared protocol
    clf = load_classifier(out / "runs" / "cnn" / "synth-50" / "seed_1" / "classifier")
    assert clf.class_names == ["NORMAL", "PNEUMONIA"]
    assert clf.predict_proba([real_test[0]["image"]]).shape == (1, 2)
    run = json.loads((out / "runs" / "cnn" / "limited-25" / "seed_0" / "result.json").read_text())
    assert run["counts"]["real_per_class"] == {"NORMAL": 7, "PNEUMONIA": 11}  # 25% of 27 / 45
    assert run["counts"]["synthetic_per_class"] == {"NORMAL": 40, "PNEUMONIA": 40}
    assert len(run["history"]) == 2 and run["model"]["pretrained"] is False


def test_killed_experiment_restarts_and_skips_finished_runs(tmp_path, real_train, real_test, synthetic, monkeypatch):
    spec = tiny_spec(real_train, real_test, synthetic, tmp_path / "exp", recipes=["baseline", "synth-25"], seeds=[0, 1], epochs=1)
    real_train_one = runner_mod.train_one
    calls = []

    def dies_on_third(*args, **kwargs):
        calls.append(args[3].name)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real_train_one(*args, **kwargs)

    monkeypatch.setattr(runner_mod, "train_one", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(spec)
    assert len(list((tmp_path / "exp" / "runs").glob("*/*/*/result.json"))) == 2
    calls.clear()
    monkeypatch.setattr(runner_mod, "train_one", lambda *a, **k: (calls.append(a[3].name), real_train_one(*a, **k))[1])
    res = run_experiment(spec)
    assert calls == ["synth-25", "synth-25"]  # only the two unfinished runs
    assert len(res.runs) == 4
    calls.clear()
    run_experiment(spec)  # everything done: nothing trains, the report is rewritten
    assert calls == []
    # adding a seed trains only the new runs
    run_experiment({**spec, "seeds": [0, 1, 2]})
    assert calls == ["baseline", "synth-25"]
    # changed settings for finished runs are refused, not silently mixed
    with pytest.raises(FileExistsError, match="other settings"):
        run_experiment({**spec, "epochs": 2})


def test_finished_runs_are_rerun_when_the_synthetic_pool_changes(tmp_path, real_train, real_test, synthetic,
                                                                  monkeypatch):
    """Reuse is keyed by the content of the inputs, not their paths: images added to the pool folder rerun its runs."""
    pool = tmp_path / "pool"

    def write_pool(start, n):
        for cls in ("normal", "pneumonia"):
            (pool / cls).mkdir(parents=True, exist_ok=True)
            rows = [r for r in synthetic if synthetic.features["label"].names[r["label"]] == cls]
            for i in range(start, start + n):
                rows[i]["image"].save(pool / cls / f"{i}.png")

    write_pool(0, 10)
    spec = tiny_spec(real_train, real_test, str(pool), tmp_path / "exp", recipes=["baseline", "synth-100"], seeds=[0],
                     epochs=1, plots=False)
    first = run_experiment(spec)
    assert [r["counts"]["synthetic"] for r in first.runs] == [0, 20]
    real_train_one = runner_mod.train_one
    calls = []
    monkeypatch.setattr(runner_mod, "train_one", lambda *a, **k: (calls.append(a[3].name), real_train_one(*a, **k))[1])
    write_pool(10, 5)  # same path, 30 images now
    res = run_experiment(spec)
    assert calls == ["synth-100"]  # the baseline reads no synthetic image: reused
    assert [r["counts"]["synthetic"] for r in res.runs] == [0, 30]
    rows = list(csv.DictReader(open(tmp_path / "exp" / "results.csv")))
    assert rows[1]["n_synthetic"] == "30"
    calls.clear()
    run_experiment(spec)  # nothing changed: nothing trains
    assert calls == []


def test_robustness_stage(tmp_path, real_train, real_test, synthetic):
    spec = tiny_spec(real_train, real_test, synthetic, tmp_path / "exp", recipes=["baseline"], seeds=[0], epochs=1)
    run_experiment(spec)
    res = run_experiment({**spec, "robustness": {"max_images": 8}})  # added to the finished run from its saved classifier
    rob = res.runs[0]["robustness"]
    assert set(rob) == {"noise", "fgsm", "bim", "epsilon"} and rob["epsilon"] == pytest.approx(8 / 255)
    assert all(0 <= rob[a] <= 1 for a in ("noise", "fgsm", "bim"))
    assert "Acc. under fgsm" in res.markdown
    assert (tmp_path / "exp" / "plots" / "robustness.png").is_file()


def test_fgsm_and_bim_stay_within_epsilon():
    import torch

    from synthxray.experiments.classifier import Classifier
    from synthxray.experiments.robustness import perturb

    torch.manual_seed(0)
    model = Classifier("cnn", ["a", "b"], 16, 1, {"widths": [4, 8]}).eval()
    x, y = torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 0, 1])
    for attack in ("noise", "fgsm", "bim"):
        adv = perturb(model, x, y, attack, 8 / 255, gen=torch.Generator().manual_seed(0))
        assert (adv - x).abs().max() <= 8 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    loss = torch.nn.functional.cross_entropy
    assert loss(model(perturb(model, x, y, "bim", 8 / 255)), y) > loss(model(x), y)


def test_spec_validation(tmp_path, data_folders):
    base = {"real_train": str(data_folders / "train"), "test": str(data_folders / "test"), "output_dir": str(tmp_path / "o")}
    with pytest.raises(ValueError, match="unknown key"):
        load_spec({**base, "epochz": 3})
    with pytest.raises(ValueError, match="unknown option"):
        load_spec({**base, "backbones": [{"name": "cnn", "widthz": [4]}]})
    with pytest.raises(KeyError, match="known backbones"):
        load_spec({**base, "backbones": ["vgg"]})
    with pytest.raises(ValueError, match="use synthetic images"):
        load_spec({**base, "recipes": ["synth-50"]})
    with pytest.raises(ValueError, match="unknown key"):
        load_spec({**base, "synthetic": {"dataset": "x", "count": 3}, "recipes": ["synth-50"]})
    spec = load_spec({**base, "synthetic": str(data_folders / "synthetic")})
    assert spec.synthetic.dataset and [r.name for r in spec.recipes][:3] == ["baseline", "synth-25", "synth-50"]
    assert spec.backbones[0].name == "densenet121" and spec.epochs == 20 and spec.learning_rate == 1e-4


def test_yaml_spec_through_the_cli(tmp_path, data_folders, capsys):
    from synthxray.cli import main

    cfg = {
        "real_train": str(data_folders / "train"), "test": str(data_folders / "test"), "synthetic": str(data_folders / "synthetic"),
        "output_dir": str(tmp_path / "cli"), "backbones": [{"name": "cnn", "widths": [4, 8]}], "recipes": ["baseline", "synth-only"],
        "seeds": [0], "epochs": 1, "image_size": 16, "batch_size": 32, "plots": False,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["experiment", "--config", str(path)]) == 0
    assert "Synth-Only" in capsys.readouterr().out
    assert (tmp_path / "cli" / "results.md").is_file()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**cfg, "recipe": ["baseline"]}))
    assert main(["experiment", "--config", str(bad)]) == 2
    assert "unknown key" in capsys.readouterr().err


def test_synthetic_sampled_from_a_generator(tmp_path, real_train, real_test, tiny_generator):
    spec = tiny_spec(real_train, real_test, {"generator": str(tiny_generator), "batch_size": 64},
                     tmp_path / "exp", recipes=["synth-25", "limited-10"], seeds=[0], epochs=1, image_size=8, plots=False)
    res = run_experiment(spec)
    pool = tmp_path / "exp" / "synthetic"
    assert pool.is_dir()  # kept, so a re-run or a crash does not sample again
    import datasets

    ds = datasets.load_from_disk(str(pool))
    assert sorted(ds["class_name"]) == ["normal"] * 36 + ["pneumonia"] * 36  # "all" pool = as many as the 72 real, balanced
    by = {r["recipe"]: r for r in res.runs}
    assert by["synth-25"]["counts"]["synthetic"] == 18 and by["limited-10"]["counts"]["synthetic"] == 72


@pytest.mark.slow
def test_accelerate_launch_script(tmp_path, data_folders):
    cfg = {
        "real_train": str(data_folders / "train"), "test": str(data_folders / "test"), "output_dir": str(tmp_path / "acc"),
        "backbones": [{"name": "cnn", "widths": [4, 8]}], "recipes": ["baseline"], "seeds": [0], "epochs": 1, "image_size": 16, "plots": False,
    }
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(cfg))
    script = Path(__file__).resolve().parents[2] / "train_scripts" / "run_experiment.py"
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu", str(script), "--config", str(path)],
                          capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "acc" / "results.csv").is_file()


def test_seed_004_recipes_run_at_defaults_on_a_200_image_pool(tmp_path, real_train, real_test, pool200):
    recipes = ["baseline", "synth-25", "synth-50", "synth-100", "limited-10", "limited-25", "synth-only"]
    res = run_experiment(tiny_spec(real_train, real_test, pool200, tmp_path / "exp", recipes=recipes, seeds=[0], epochs=1, plots=False))
    by = {r["recipe"]: r for r in res.runs}
    assert [by[n]["counts"]["synthetic"] for n in recipes] == [0, 50, 100, 200, 200, 200, 200]
    assert by["synth-50"]["recipe_description"] == "all real + 50% of the synthetic pool (equal per class as far as the pool allows)"


def test_seed_004_recipes_run_at_defaults_on_an_unequal_pool(tmp_path, real_train, real_test, pool_unequal):
    # a pool made in the real class mix (30 normal / 90 pneumonia): the balanced split of synth-100 (60 + 60) and
    # synth-50 (30 + 30) fits neither class exactly; at the defaults a short class gives all it holds
    pool = pool_unequal
    recipes = ["baseline", "synth-50", "synth-100", "balanced-real-100", "limited-25", "synth-only"]
    res = run_experiment(tiny_spec(real_train, real_test, pool, tmp_path / "exp", recipes=recipes, seeds=[0], epochs=1, plots=False))
    by = {r["recipe"]: r["counts"] for r in res.runs}
    assert by["synth-100"]["synthetic_per_class"] == {"NORMAL": 30, "PNEUMONIA": 90}  # seed 004's Synth-100: the whole pool
    assert by["synth-50"]["synthetic_per_class"] == {"NORMAL": 30, "PNEUMONIA": 30}  # half the pool, as equal as it allows
    assert by["balanced-real-100"]["real_repeats_per_class"] == by["synth-100"]["synthetic_per_class"]  # the control copies the counts
    assert by["synth-only"]["synthetic"] == 120
    md = (tmp_path / "exp" / "results.md").read_text()
    assert "How the counts were drawn" in md and "as far as the pool allows" in md
    assert "- Synth-50: all real + 50% of the synthetic pool" in md and "synthetic {'NORMAL': 30, 'PNEUMONIA': 30}" in md
    # the strict rule is still there as an option, and names the recipe and the class before anything trains
    with pytest.raises(ValueError, match="recipe 'synth-100'.*class 0: needs 60, pool has 30.*strict_counts: false"):
        run_experiment(tiny_spec(real_train, real_test, pool, tmp_path / "strict", recipes=recipes, seeds=[0], epochs=1, plots=False, strict_counts=True))
    with pytest.raises(ValueError, match="strict_counts: 'yes'.*true or false"):
        load_spec(tiny_spec(real_train, real_test, pool, tmp_path / "bad", strict_counts="yes"))


def test_impossible_recipe_is_named_before_any_run_trains(tmp_path, real_train, real_test, synthetic, monkeypatch):
    calls = []
    monkeypatch.setattr(runner_mod, "train_one", lambda *a, **k: calls.append(a[3].name))
    # ratio_of: real, 72 real images: synth-150 needs 108 synthetic, 54 per class, from a 40 + 40 pool
    spec = tiny_spec(real_train, real_test, synthetic, tmp_path / "exp", recipes=["baseline", "synth-150"], ratio_of="real", seeds=[0])
    with pytest.raises(ValueError, match="recipe 'synth-150'.*more synthetic images than the pool"):
        run_experiment(spec)
    assert calls == []
    # under the default convention the same ratio is rejected when the spec is read
    with pytest.raises(ValueError, match="recipe 'synth-150' asks for 150% of the synthetic pool"):
        load_spec({**spec, "ratio_of": "synthetic"})


def test_controls_are_paired_with_the_baseline(tmp_path, real_train, real_test, synthetic):
    recipes = ["baseline", "balanced-real", "reweighted-real", "synth-50", "pretrain-synth"]
    res = run_experiment(tiny_spec(real_train, real_test, synthetic, tmp_path / "exp", recipes=recipes, seeds=[0, 1], epochs=2, plots=False))
    runs = {(r["recipe"], r["seed"]): r for r in res.runs}
    # same seed: same initial weights and validation split across recipes; another seed: other weights
    for s in (0, 1):
        assert len({runs[(n, s)]["init_checksum"] for n in recipes}) == 1
    assert runs[("baseline", 0)]["init_checksum"] != runs[("baseline", 1)]["init_checksum"]
    # balanced-real: the class counts of synth-50, all from real images
    bal, syn = runs[("balanced-real", 0)]["counts"], runs[("synth-50", 0)]["counts"]
    assert bal["synthetic"] == 0 and bal["real_repeats_per_class"] == syn["synthetic_per_class"] == {"NORMAL": 20, "PNEUMONIA": 20}
    assert bal["real_per_class"] == syn["real_per_class"]
    w = runs[("reweighted-real", 0)]["class_weight"]
    assert w[0] > 1 > w[1]  # NORMAL is the minority class
    stages = [h["stage"] for h in runs[("pretrain-synth", 0)]["history"]]
    assert stages == ["pretrain-synthetic"] * 2 + ["fine-tune-real"] * 2
    assert runs[("pretrain-synth", 0)]["best_epoch"] in (3, 4)
    # paired deltas vs the baseline and vs balanced-real, with a t-interval over the two seeds
    rows = {r["recipe"]: r for r in res.rows}
    p = rows["synth-50"]["paired"]
    assert set(p) == {"baseline", "balanced-real"} and p["baseline"]["seeds"] == [0, 1] and p["baseline"]["shared_init"] is True
    diffs = [runs[("synth-50", s)]["metrics"]["accuracy"] - runs[("balanced-real", s)]["metrics"]["accuracy"] for s in (0, 1)]
    assert p["balanced-real"]["accuracy"]["mean"] == pytest.approx(sum(diffs) / 2)
    assert p["balanced-real"]["accuracy"]["ci95_low"] <= p["balanced-real"]["accuracy"]["mean"] <= p["balanced-real"]["accuracy"]["ci95_high"]
    assert "Δ vs Balanced-Real" in res.markdown and "paired by seed" in res.markdown
    header = open(tmp_path / "exp" / "results.csv").readline()
    assert "paired_delta_accuracy_vs_balanced-real_ci95_low" in header
