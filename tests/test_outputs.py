"""Issue 31: one rule for output folders (synthxray/outputs.py) and the commands that follow it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from synthxray import outputs
from synthxray.cli import main
from synthxray.outputs import OutputDirError, artefact_kind, check_output_dir


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and its content's hash."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def teacher(tiny_ddpm_dir, tmp_path) -> Path:
    """A copy of the tiny DDPM: a test that fails must not damage the session's generator."""
    return Path(shutil.copytree(tiny_ddpm_dir, tmp_path / "teacher"))


# ---- the rule itself ---------------------------------------------------------------------------------
def test_kinds_are_recognised_by_their_marker(tmp_path):
    assert artefact_kind(tmp_path / "missing") == "" and artefact_kind(tmp_path) == ""
    for kind, marker in outputs.MARKERS.items():
        (tmp_path / kind).mkdir()
        (tmp_path / kind / marker).write_text("{}")
        assert artefact_kind(tmp_path / kind) == kind
    (tmp_path / "legacy" / "runs").mkdir(parents=True)  # an experiment written before its marker existed
    (tmp_path / "legacy" / "spec.json").write_text("{}")
    assert artefact_kind(tmp_path / "legacy") == outputs.EXPERIMENT
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "spec.json").write_text("{}")  # a user's spec.json alone is not an experiment
    assert artefact_kind(tmp_path / "mine") is None


def test_rule_refuses_files_links_foreign_folders_and_other_kinds(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputDirError, match="is a file"):
        check_output_dir(tmp_path / "file", outputs.EXPERIMENT, overwrite=True)
    with pytest.raises(OutputDirError, match="inside .*file, which is a file"):
        check_output_dir(tmp_path / "file" / "sub", outputs.EVALUATION)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="symlink to .*nowhere, which does not exist"):
        check_output_dir(tmp_path / "dangling", outputs.GENERATOR)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match=r"foreign already exists and holds files synthxray did not write "
                                             r".*notes\.txt.*--overwrite_output_dir"):
        check_output_dir(foreign, outputs.EXPERIMENT)
    assert check_output_dir(foreign, outputs.EXPERIMENT, overwrite=True) == foreign
    with pytest.raises(OutputDirError, match="--overwrite only replaces a synthxray dataset"):
        check_output_dir(foreign, outputs.DATASET, overwrite=True, flag="--overwrite", beside_foreign=False)
    with pytest.raises(OutputDirError, match="already exists and is not empty .*choose a new or empty folder"):
        check_output_dir(foreign, outputs.DATASET, flag=None)
    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "synthxray.json").write_text("{}")
    # an evaluation may go into the generator folder it scores (the generator's card reads evaluation.json there)
    assert check_output_dir(gen, outputs.EVALUATION) == gen
    for kind in (outputs.DATASET, outputs.EXPERIMENT):
        with pytest.raises(OutputDirError, match="holds a synthxray generator .*never replaces another kind"):
            check_output_dir(gen, kind, overwrite=True)
    with pytest.raises(OutputDirError, match="already exists .a synthxray generator.*pass --overwrite_output_dir"):
        check_output_dir(gen, outputs.GENERATOR, replace_needs_flag=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "file", "foreign", "gen"]
    assert (foreign / "notes.txt").read_text() == "mine"


# ---- 1: training into a finished generator, distilling into the teacher ------------------------------
def test_1_distilling_into_the_teacher_is_refused_before_anything_is_written(teacher, capsys):
    before = snapshot(teacher)
    rc = main(["train", "consistency", "--teacher", str(teacher), "--output_dir", str(teacher),
               "--max_train_steps", "2", "--num_solver_steps", "4"])
    err = capsys.readouterr().err
    assert rc == 2 and "teacher's folder" in err and str(teacher) in err
    rc = main(["train", "consistency", "--teacher", str(teacher), "--output_dir", str(teacher / "student"),
               "--max_train_steps", "2", "--num_solver_steps", "4"])
    assert rc == 2 and "teacher's folder" in capsys.readouterr().err
    (teacher / "checkpoints" / "checkpoint_0").mkdir(parents=True)  # the teacher's own checkpoints: no resume into it
    rc = main(["train", "consistency", "--teacher", str(teacher), "--output_dir", str(teacher),
               "--max_train_steps", "2", "--num_solver_steps", "4", "--resume_from_checkpoint", "latest"])
    assert rc == 2 and "teacher's folder" in capsys.readouterr().err
    shutil.rmtree(teacher / "checkpoints")
    assert snapshot(teacher) == before


def test_1_training_into_a_finished_generator_needs_the_flag(teacher, tiny_ddpm_config):
    from synthxray.training.ddpm import train

    before = snapshot(teacher)
    with pytest.raises(OutputDirError, match="already holds a synthxray generator .*--overwrite_output_dir"):
        train(tiny_ddpm_config(output_dir=str(teacher), max_train_steps=1))
    with pytest.raises(OutputDirError, match="already holds a synthxray generator"):  # nothing to resume
        train(tiny_ddpm_config(output_dir=str(teacher), max_train_steps=1, resume_from_checkpoint="latest"))
    assert snapshot(teacher) == before
    dataset = teacher.parent / "data"
    dataset.mkdir()
    (dataset / "synthxray_dataset.json").write_text("{}")
    with pytest.raises(OutputDirError, match="holds a synthxray dataset .*never replaces"):  # another kind, even so
        train(tiny_ddpm_config(output_dir=str(dataset), max_train_steps=1, overwrite_output_dir=True))
    assert [p.name for p in dataset.iterdir()] == ["synthxray_dataset.json"]
    train(tiny_ddpm_config(output_dir=str(teacher), max_train_steps=1, overwrite_output_dir=True))
    assert snapshot(teacher) != before  # with the flag, the generator is replaced


def test_1_resuming_another_trainers_run_is_refused(teacher, tiny_ddpm_dir, tmp_path, capsys):
    (teacher / "checkpoints" / "checkpoint_0").mkdir(parents=True)  # a ddpm run's checkpoint
    before = snapshot(teacher)
    rc = main(["train", "consistency", "--teacher", str(tiny_ddpm_dir), "--output_dir", str(teacher),
               "--max_train_steps", "2", "--num_solver_steps", "4", "--resume_from_checkpoint", "latest"])
    err = capsys.readouterr().err
    assert rc == 2 and "a run of another trainer" in err and "Traceback" not in err
    assert snapshot(teacher) == before


# ---- 2: prepare never deletes a .partial it did not write ---------------------------------------------
def test_2_prepare_keeps_a_foreign_partial_folder(tiny_npz, tmp_path, capsys):
    partial = tmp_path / "out.partial"
    partial.mkdir()
    (partial / "thesis.tex").write_text("mine")
    rc = main(["prepare", "--input", str(tiny_npz), "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and str(partial) in err and "did not write" in err
    assert (partial / "thesis.tex").read_text() == "mine" and not (tmp_path / "out").exists()
    (partial / "thesis.tex").unlink()
    (partial / "synthxray_prepare.json").write_text("{}")  # an interrupted prepare's own: replaced
    (partial / "dataset").mkdir()
    assert main(["prepare", "--input", str(tiny_npz), "--output_dir", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ---- 9: an output_dir that is a file --------------------------------------------------------------------
def test_9_evaluate_refuses_a_file_before_any_feature(tiny_npz, tmp_path, capsys, monkeypatch):
    from synthxray.evaluation import core, evaluate

    def no_features(*args, **kwargs):
        raise AssertionError("features computed before the output folder was checked")

    monkeypatch.setattr(core, "compute_features", no_features)
    (tmp_path / "report").write_text("x")
    with pytest.raises(OutputDirError, match="is a file"):
        evaluate(str(tiny_npz), str(tiny_npz), synthetic_split="val", extractor="random",
                 output_dir=str(tmp_path / "report"))
    rc = main(["evaluate", "--real", str(tiny_npz), "--synthetic", str(tiny_npz), "--synthetic_split", "val",
               "--extractor", "random", "--no_progress", "--output_dir", str(tmp_path / "report")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "is a file" in err and "Traceback" not in err and len(err.splitlines()) == 1
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.md").write_text("mine")
    with pytest.raises(OutputDirError, match="did not write .*--overwrite_output_dir"):
        evaluate(str(tiny_npz), str(tiny_npz), synthetic_split="val", extractor="random", output_dir=str(foreign))
    assert (tmp_path / "report").read_text() == "x" and [p.name for p in foreign.iterdir()] == ["notes.md"]


# ---- 12: --num_solver_steps above the teacher's timesteps ---------------------------------------------
def test_12_too_many_solver_steps_is_refused_before_anything_is_written(teacher, tmp_path, capsys):
    out = tmp_path / "student"
    rc = main(["train", "consistency", "--teacher", str(teacher), "--output_dir", str(out), "--max_train_steps", "2",
               "--num_solver_steps", "5000"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--num_solver_steps 5000" in err and "50 training timesteps" in err and "Traceback" not in err
    rc = main(["train", "consistency", "--teacher", str(teacher), "--output_dir", str(out), "--max_train_steps", "2",
               "--num_solver_steps", "30", "--ode_solver", "dpm-solver-2"])
    assert rc == 2 and "dpm-solver-2" in capsys.readouterr().err
    assert not out.exists()
