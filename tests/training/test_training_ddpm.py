import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from script_loader import load_script

from synthxray.generators import load_generator
from synthxray.training.common import list_checkpoints, parse_config
from synthxray.training.ddpm import DDPMTrainingConfig, train

ROOT = Path(__file__).resolve().parents[2]


def unet_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))


def test_train_writes_pipeline_config_and_grids(tiny_ddpm_config, tmp_path):
    out = train(tiny_ddpm_config(output_dir=str(tmp_path / "run"), max_train_steps=4, save_images_steps=2, num_validation_images=2))
    for name in ("model_index.json", "synthxray.json", "training_config.json", "unet", "scheduler", "README.md"):
        assert (out / name).exists(), name
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    info = json.loads((out / "synthxray.json").read_text())
    assert info["backend"] == "ddpm" and info["channels"] == 1 and info["extra"]["train_steps"] == 4


class Killed(Exception):
    pass


def test_resume_continues_and_matches_uninterrupted_run(tiny_ddpm_config, tmp_path, monkeypatch):
    from accelerate import Accelerator

    straight = train(tiny_ddpm_config(output_dir=str(tmp_path / "straight"), max_train_steps=6, checkpointing_steps=3))
    original_save = Accelerator.save_state

    def save_then_die(self, *args, **kwargs):
        original_save(self, *args, **kwargs)
        raise Killed  # the process dies right after its first checkpoint

    monkeypatch.setattr(Accelerator, "save_state", save_then_die)
    cfg = dict(output_dir=str(tmp_path / "resumed"), max_train_steps=6, checkpointing_steps=3)
    with pytest.raises(Killed):
        train(tiny_ddpm_config(**cfg))
    monkeypatch.setattr(Accelerator, "save_state", original_save)
    assert [p.name for p in list_checkpoints(tmp_path / "resumed")] == ["checkpoint_0"]
    assert not (tmp_path / "resumed" / "synthxray.json").exists()
    resumed = train(tiny_ddpm_config(**cfg, resume_from_checkpoint="latest"))
    assert json.loads((resumed / "synthxray.json").read_text())["extra"]["train_steps"] == 6
    assert [p.name for p in list_checkpoints(resumed)] == ["checkpoint_0", "checkpoint_1"]
    a, b = unet_weights(straight), unet_weights(resumed)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), "resumed run differs from the uninterrupted one"


def test_checkpoints_total_limit_rotates(tiny_ddpm_config, tmp_path):
    out = train(tiny_ddpm_config(output_dir=str(tmp_path / "rot"), max_train_steps=6, checkpointing_steps=2, checkpoints_total_limit=2))
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint_1", "checkpoint_2"]


def test_foreign_output_dir_is_refused(tiny_ddpm_config, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="files synthxray did not write .*--overwrite_output_dir"):
        train(tiny_ddpm_config(output_dir=str(tmp_path / "busy")))
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"


def test_rerun_without_resume_is_refused(tiny_ddpm_config, tmp_path):
    train(tiny_ddpm_config(output_dir=str(tmp_path / "r"), max_train_steps=2, checkpointing_steps=2))
    with pytest.raises(FileExistsError, match="--resume_from_checkpoint latest"):
        train(tiny_ddpm_config(output_dir=str(tmp_path / "r"), max_train_steps=2, checkpointing_steps=2))


def test_config_validation(tiny_npz):
    for bad in (0, -32):
        with pytest.raises(ValueError, match="--resolution must be a positive number of pixels"):
            DDPMTrainingConfig(dataset=str(tiny_npz), output_dir="x", resolution=bad)
    with pytest.raises(ValueError, match="--num_epochs"):
        DDPMTrainingConfig(dataset=str(tiny_npz), output_dir="x", num_epochs=0)
    with pytest.raises(ValueError, match="prediction_type"):
        DDPMTrainingConfig(dataset=str(tiny_npz), output_dir="x", prediction_type="noise")
    with pytest.raises(ValueError, match="dataset is required"):
        DDPMTrainingConfig(output_dir="x")


def test_parse_config_flags_and_yaml(tmp_path):
    cfg = parse_config(DDPMTrainingConfig, ["--dataset", "d.npz", "--output_dir", "o", "--block_out_channels", "16", "32", "--snr_gamma", "0"])
    assert cfg.block_out_channels == [16, 32] and cfg.snr_gamma == 0
    (tmp_path / "c.yaml").write_text("dataset: d.npz\noutput_dir: o\nresolution: 64\n")
    assert parse_config(DDPMTrainingConfig, [str(tmp_path / "c.yaml")]).resolution == 64
    (tmp_path / "bad.yaml").write_text("dataset: d.npz\noutput_dir: o\nresolutoin: 64\n")
    with pytest.raises(ValueError, match="resolutoin"):
        parse_config(DDPMTrainingConfig, [str(tmp_path / "bad.yaml")])


def test_v_prediction_and_cosine_schedule_train(tiny_ddpm_config, tmp_path):
    out = train(tiny_ddpm_config(output_dir=str(tmp_path / "v"), prediction_type="v_prediction", beta_schedule="squaredcos_cap_v2", max_train_steps=2, lr_scheduler="cosine"))
    assert len(load_generator(out).generate(1, class_label=0, seed=0, num_inference_steps=2)) == 1


@pytest.mark.slow
def test_accelerate_launch_script(tiny_npz, tmp_path):
    out = tmp_path / "launched"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "train_scripts" / "train_ddpm.py"),
        "--dataset", str(tiny_npz), "--output_dir", str(out), "--resolution", "16", "--block_out_channels", "8", "16",
        "--train_batch_size", "8", "--max_train_steps", "3", "--checkpointing_steps", "2", "--save_images_steps", "0",
        "--num_train_timesteps", "50", "--logger", "tensorboard",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(cmd, check=True, env=env, cwd=tmp_path, timeout=300)
    assert (out / "synthxray.json").is_file() and (out / "logs").is_dir()
    subprocess.run(cmd + ["--max_train_steps", "4", "--resume_from_checkpoint", "latest"], check=True, env=env, cwd=tmp_path, timeout=300)
    assert json.loads((out / "synthxray.json").read_text())["extra"]["train_steps"] == 4


def test_script_bad_input_is_one_line_error(tmp_path, capsys, tiny_npz):
    script = load_script("train_scripts/train_ddpm.py")
    assert script.main(["--dataset", str(tiny_npz), "--output_dir", str(tmp_path / "o"), "--resolution", "0"]) == 2
    err = capsys.readouterr().err
    assert "error: --resolution must be a positive number of pixels, got 0" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def _script():
    return load_script("train_scripts/train_ddpm.py")


def test_28px_trains_and_generates_28px_at_the_default_model(tiny_npz, tmp_path):
    """MedMNIST's native 28 px: the default 4-level UNet runs on edge-padded 32 px and generation crops back."""
    cfg = DDPMTrainingConfig(
        dataset=str(tiny_npz), output_dir=str(tmp_path / "r28"), resolution=28, train_batch_size=8, max_train_steps=2,
        checkpointing_steps=0, save_images_steps=2, num_validation_images=2, num_train_timesteps=50, sample_steps=2,
    )
    assert cfg.unet_resolution == 32 and cfg.block_out_channels == [16, 32, 64, 64]
    out = train(cfg)
    gen = load_generator(out)
    assert gen.info.resolution == 28
    assert json.loads((out / "unet" / "config.json").read_text())["sample_size"] == 32
    assert json.loads((out / "model_index.json").read_text())["image_size"] == 28  # plain diffusers loading crops too
    images = gen.generate(3, class_label=1, seed=0, num_inference_steps=2)
    assert [im.size for im in images] == [(28, 28)] * 3
    assert gen.generate(1, class_label=1, seed=0, num_inference_steps=2)[0].tobytes() == images[0].tobytes()
    grid = __import__("PIL.Image", fromlist=["Image"]).open(out / "samples" / "step_000002.png")
    assert grid.height < 2 * 32 + 3 * 2  # two rows of 28 px tiles, not 32


def test_rejected_runs_write_nothing(tiny_npz, tmp_path, capsys):
    script = _script()
    out = tmp_path / "never"
    assert script.main(["--dataset", str(tmp_path / "missing.npz"), "--output_dir", str(out)]) == 2
    assert "error:" in capsys.readouterr().err
    assert not out.exists(), "a rejected run left files behind"
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not an npz")
    assert script.main(["--dataset", str(bad), "--output_dir", str(out)]) == 2
    assert not out.exists()
    out.mkdir()  # an empty folder given by the user stays empty
    assert script.main(["--dataset", str(tiny_npz), "--output_dir", str(out), "--resolution", "-32"]) == 2
    assert list(out.iterdir()) == []


def test_dangling_symlink_output_dir_is_one_line_error(tiny_npz, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    script = _script()
    for target in (link, link / "run"):
        assert script.main(["--dataset", str(tiny_npz), "--output_dir", str(target), "--max_train_steps", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert "--output_dir" in err and "does not exist" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert link.is_symlink() and not (tmp_path / "gone").exists()


def test_one_class_dataset_warns(tiny_ddpm_config, tmp_path, caplog):
    import numpy as np

    data = dict(np.load(tiny_ddpm_config().dataset))
    for split in ("train", "val", "test"):
        data[f"{split}_labels"] = np.zeros_like(data[f"{split}_labels"])
    one = tmp_path / "oneclass.npz"
    np.savez(one, **data)
    with caplog.at_level("WARNING", logger="synthxray.training"):
        out = train(tiny_ddpm_config(dataset=str(one), output_dir=str(tmp_path / "one"), max_train_steps=1))
    assert "has one class" in caplog.text and "--guidance_scale has no effect" in caplog.text
    assert load_generator(out).class_names == json.loads((out / "synthxray.json").read_text())["class_names"]


@pytest.mark.parametrize("use_ema", [True, False])
def test_export_checkpoint_is_the_generator_the_run_saves(tiny_ddpm_config, tmp_path, capsys, use_ema):
    """A checkpoint at the last step exports to the same weights, data record and images as the run's own save."""
    from synthxray.cli import main

    from synthxray.training.checkpoints import checkpoints_by_step

    run = train(tiny_ddpm_config(max_train_steps=4, checkpointing_steps=2, use_ema=use_ema))
    assert {k: p.name for k, p in checkpoints_by_step(run).items()} == {2: "checkpoint_0", 4: "checkpoint_1"}
    checkpoint = run / "checkpoints" / "checkpoint_1"
    assert main(["export", "--checkpoint", str(checkpoint), "--output_dir", str(tmp_path / "step4")]) == 0
    assert "exported step 4" in capsys.readouterr().out
    saved, exported = load_generator(run), load_generator(tmp_path / "step4")
    assert exported.info.data == saved.info.data and exported.info.extra["train_steps"] == 4
    assert exported.info.extra["exported_from_checkpoint"].endswith("checkpoints/checkpoint_1")
    a, b = saved.pipeline.unet.state_dict(), exported.pipeline.unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    first = saved.generate(2, class_label=0, seed=1, num_inference_steps=2)
    again = exported.generate(2, class_label=0, seed=1, num_inference_steps=2)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(first, again))
    # a folder of other files is never replaced, with or without --overwrite
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    assert main(["export", "--checkpoint", str(checkpoint), "--output_dir", str(tmp_path / "mine"), "--overwrite"]) == 2
    assert (tmp_path / "mine" / "notes.txt").read_text() == "x"
    assert main(["export", "--checkpoint", str(tmp_path), "--output_dir", str(tmp_path / "x")]) == 2
    assert "is not a checkpoint" in capsys.readouterr().err
