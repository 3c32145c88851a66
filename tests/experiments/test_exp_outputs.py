"""Issue 31: the experiment's output folder follows the one rule (synthxray/outputs.py)."""

from __future__ import annotations

import json

import pytest

from synthxray import run_experiment
from synthxray.cli import main
from synthxray.experiments import runner as runner_mod
from synthxray.outputs import OutputDirError


def small_spec(real_train, real_test, out, **kw):
    spec = dict(real_train=real_train, test=real_test, output_dir=str(out),
                backbones=[{"name": "cnn", "widths": [4, 8]}],
                recipes=["baseline"], seeds=[0], epochs=1, image_size=16, batch_size=16, learning_rate=3e-3,
                plots=False)
    spec.update(kw)
    return spec


def no_data(*args, **kwargs):
    raise AssertionError("the experiment read its data before the output folder was checked")


def test_3_foreign_folder_is_refused_and_kept(tmp_path, real_train, real_test, monkeypatch):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.md").write_text("my results")
    (out / "spec.json").write_text('{"mine": true}')
    monkeypatch.setattr(runner_mod, "prepare_data", no_data)
    with pytest.raises(OutputDirError, match=r"mine already exists and holds files synthxray did not write "
                                             r".*results\.md.*--overwrite_output_dir"):
        run_experiment(small_spec(real_train, real_test, out))
    assert sorted(p.name for p in out.iterdir()) == ["results.md", "spec.json"]
    assert (out / "results.md").read_text() == "my results"
    assert json.loads((out / "spec.json").read_text()) == {"mine": True}
    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "synthxray.json").write_text("{}")
    with pytest.raises(OutputDirError, match="holds a synthxray generator"):  # another kind: even with the flag
        run_experiment(small_spec(real_train, real_test, gen), overwrite_output_dir=True)
    assert [p.name for p in gen.iterdir()] == ["synthxray.json"]


def test_3_with_the_flag_user_files_stay_and_stale_regime_files_go(tmp_path, real_train, real_test, synthetic):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    regimes = {"fractions": [1.0], "recipes": ["real", "balanced-real"]}
    run_experiment(small_spec(real_train, real_test, out, synthetic=synthetic, recipes=[], regimes=regimes),
                   overwrite_output_dir=True)
    assert (out / "regimes.md").is_file() and (out / "synthxray_experiment.json").is_file()
    (out / "plots").mkdir(exist_ok=True)
    (out / "plots" / "mine.png").write_bytes(b"mine")
    run_experiment(small_spec(real_train, real_test, out, recipes=["baseline"]))  # a rerun without regimes: no flag
    names = sorted(p.name for p in out.iterdir())
    assert not any(n.startswith("regimes") for n in names), names
    assert (out / "notes.txt").read_text() == "mine" and (out / "plots" / "mine.png").read_bytes() == b"mine"
    assert "regimes.md" not in json.loads((out / "synthxray_experiment.json").read_text())["files"]


def test_9_experiment_output_dir_that_is_a_file(tmp_path, real_train, real_test, data_folders, monkeypatch, capsys):
    (tmp_path / "exp").write_text("x")
    monkeypatch.setattr(runner_mod, "prepare_data", no_data)
    with pytest.raises(OutputDirError, match="is a file"):
        run_experiment(small_spec(real_train, real_test, tmp_path / "exp"))
    spec = small_spec(str(data_folders / "train"), str(data_folders / "test"), tmp_path / "exp")
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    rc = main(["experiment", "--config", str(tmp_path / "spec.json")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "is a file" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert (tmp_path / "exp").read_text() == "x"
