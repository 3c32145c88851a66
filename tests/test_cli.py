import json

import pytest

from synthxray.cli import build_parser, main


def test_every_command_builds():
    parser = build_parser()
    assert {"demo", "generate"} <= set(parser._subparsers._group_actions[0].choices)


def test_sampler_names_are_written_once_and_every_diffusion_backend_builds_each():
    from diffusers import DDPMScheduler

    from synthxray.generators.ddpm import make_scheduler
    from synthxray.generators.stable_diffusion import make_sd_scheduler
    from synthxray.samplers import SCHEDULERS

    generate = next(a for a in build_parser()._subparsers._group_actions[0].choices["generate"]._actions if a.dest == "scheduler")
    assert tuple(generate.choices) == SCHEDULERS
    config = DDPMScheduler(num_train_timesteps=50).config
    for name in SCHEDULERS:
        assert make_scheduler(name, config) is not None and make_sd_scheduler(name, config) is not None
    for make in (make_scheduler, make_sd_scheduler):
        with pytest.raises(ValueError, match="choose one of"):
            make("euler", config)


def test_generate_command(tiny_ddpm_dir, tmp_path, capsys):
    out = tmp_path / "syn"
    rc = main(["generate", "--model", str(tiny_ddpm_dir), "--per_class", "2", "--output_dir", str(out),
               "--num_inference_steps", "2", "--scheduler", "ddim", "--image_folder", "--seed", "3"])
    assert rc == 0 and "wrote 4 images" in capsys.readouterr().out
    assert len(list((out / "image_folder").rglob("*.png"))) == 4


def test_generate_counts_and_errors(tiny_ddpm_dir, tmp_path, capsys):
    rc = main(["generate", "--model", str(tiny_ddpm_dir), "--images_per_class", "0=1,1=2", "--output_dir", str(tmp_path / "a"), "--num_inference_steps", "2"])
    assert rc == 0
    rc = main(["generate", "--model", str(tiny_ddpm_dir), "--images_per_class", "cat=1", "--output_dir", str(tmp_path / "b")])
    assert rc == 2 and "unknown class 'cat'" in capsys.readouterr().err
    rc = main(["generate", "--model", str(tiny_ddpm_dir), "--per_class", "1", "--output_dir", str(tmp_path / "a")])
    assert rc == 2 and "already exists" in capsys.readouterr().err


def test_demo_refuses_non_empty_output(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("x")
    assert main(["demo", "--output_dir", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs_small(tiny_npz, tmp_path):
    from tinydata import make_npz

    data = make_npz(tmp_path / "pneumoniamnist.npz", n=40, size=28)
    rc = main(["demo", "--data", str(data), "--output_dir", str(tmp_path / "demo"), "--max_train_steps", "2", "--per_class", "2"])
    assert rc == 0
    assert (tmp_path / "demo" / "summary.md").is_file()
    assert (tmp_path / "demo" / "grids" / "synthetic_normal.png").is_file()
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    peaks = summary["peak_memory_mb"]  # measured per stage (issue 35), and the process's peak is the largest
    assert set(peaks) == {"train", "generate", "evaluate", "experiment", "process"}
    assert all(v > 100 for v in peaks.values()) and peaks["process"] == max(peaks.values())
    assert "peak memory: train " in (tmp_path / "demo" / "summary.md").read_text()
