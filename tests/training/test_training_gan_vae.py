"""GAN / VAE training: config errors before any writing, the adversarial step, kill + resume, scripts, cards."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from script_loader import load_script

from synthxray.training.common import list_checkpoints
from synthxray.training.diffaugment import diff_augment, parse_policy
from tiny_oneshot import gan_config, train_gan, train_vae, vae_config

ROOT = Path(__file__).resolve().parents[2]


class Killed(Exception):
    pass


def weights(folder: Path, sub: str) -> dict[str, torch.Tensor]:
    return load_file(str(folder / sub / "diffusion_pytorch_model.safetensors"))


@pytest.mark.parametrize("overrides, message", [
    (dict(architecture="stylegan"), "unknown --architecture 'stylegan'; choose one of dcgan, wgan-gp, cgan, acgan"),
    (dict(resolution=30), "resolution 30 cannot be made"),
    (dict(architecture="wgan-gp", discriminator_norm="batch"), "batch norm mixes the images"),
    (dict(architecture="dcgan", r1_gamma=1.0), "batch norm mixes the images"),
    (dict(architecture="cgan", discriminator="resnet18"), "concat needs --discriminator cnn"),
    (dict(architecture="acgan", conditional=False), "class-conditional by definition"),
    (dict(discriminator="vgg16"), "unknown --discriminator 'vgg16'"),
    (dict(diffaugment="color,flip"), "unknown DiffAugment part"),
    (dict(loss="lsgan"), "--loss must be one of"),
    (dict(gradient_accumulation_steps=2), "gradient_accumulation_steps 1"),
])
def test_bad_gan_config_is_refused_before_writing(tiny_npz, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        gan_config(tiny_npz, tmp_path / "out", **overrides)
    assert not (tmp_path / "out").exists()


def test_architecture_defaults_are_resolved_and_recorded(tiny_npz, tmp_path):
    w = gan_config(tiny_npz, tmp_path / "w", architecture="wgan-gp")
    assert (w.loss, w.n_critic, w.gp_weight, w.discriminator_norm, w.adam_beta1) == ("wasserstein", 5, 10.0, "layer", 0.0)
    c = gan_config(tiny_npz, tmp_path / "c", architecture="cgan", discriminator_learning_rate=4e-4)
    assert (c.loss, c.discriminator_conditioning, c.discriminator_learning_rate, c.learning_rate) == ("bce", "concat", 4e-4, 2e-4)
    with pytest.raises(ValueError, match="kl_weight"):
        vae_config(tiny_npz, tmp_path / "v", kl_weight=-1)


def test_wgan_gp_updates_the_generator_every_n_critic_steps(tiny_npz, tmp_path):
    out = train_gan(tiny_npz, tmp_path / "w", architecture="wgan-gp", n_critic=2, max_train_steps=4, save_images_steps=2)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 4 and summary["generator_steps"] == 2
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    info = json.loads((out / "synthxray.json").read_text())
    assert info["extra"]["losses"]["objective"] == "wasserstein" and "gp" in info["extra"]["losses"]


def test_stabilisers_train(tiny_npz, tmp_path):
    out = train_gan(tiny_npz, tmp_path / "s", architecture="dcgan", loss="hinge", spectral_norm=True, generator_spectral_norm=True,
                    discriminator_norm="none", r1_gamma=0.5, diffaugment="color,translation,cutout", use_ema=True,
                    discriminator_learning_rate=4e-4, max_train_steps=3)
    info = json.loads((out / "synthxray.json").read_text())
    assert info["extra"]["ema"] is True and "r1" in info["extra"]["losses"]
    assert all(torch.isfinite(v).all() for v in weights(out, "generator").values())


def test_diffaugment_keeps_shape_and_gradients():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    y = diff_augment(x * 2 - 1, parse_policy("color,translation,cutout"))
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert parse_policy("") == []


@pytest.mark.parametrize("kind", ["acgan", "vae"])
def test_kill_and_resume_matches_uninterrupted_run(tiny_npz, tmp_path, monkeypatch, kind):
    from accelerate import Accelerator

    train = train_vae if kind == "vae" else (lambda npz, out, **kw: train_gan(npz, out, architecture="acgan", use_ema=True, **kw))
    sub = "vae" if kind == "vae" else "generator"
    cfg = dict(max_train_steps=6, checkpointing_steps=3)
    straight = train(tiny_npz, tmp_path / "straight", **cfg)
    original_save = Accelerator.save_state

    def save_then_die(self, *args, **kwargs):
        original_save(self, *args, **kwargs)
        raise Killed  # the process dies right after its first checkpoint

    monkeypatch.setattr(Accelerator, "save_state", save_then_die)
    with pytest.raises(Killed):
        train(tiny_npz, tmp_path / "resumed", **cfg)
    monkeypatch.setattr(Accelerator, "save_state", original_save)
    assert [p.name for p in list_checkpoints(tmp_path / "resumed")] == ["checkpoint_0"]
    assert not (tmp_path / "resumed" / "synthxray.json").exists()
    resumed = train(tiny_npz, tmp_path / "resumed", resume_from_checkpoint="latest", **cfg)
    assert json.loads((resumed / "synthxray.json").read_text())["extra"]["train_steps"] == 6
    a, b = weights(straight, sub), weights(resumed, sub)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), "resumed run differs"


def test_card_names_backend_architecture_losses_steps(tiny_npz, tmp_path):
    out = train_gan(tiny_npz, tmp_path / "card", architecture="wgan-gp", max_train_steps=2)
    card = (out / "README.md").read_text()
    assert "backend: wgan-gp" in card and "| architecture | wgan-gp |" in card
    assert "| loss | wasserstein |" in card and "| gp_weight | 10.0 |" in card and "**Steps:** 2" in card
    vae_card = (train_vae(tiny_npz, tmp_path / "vcard", max_train_steps=2) / "README.md").read_text()
    assert "backend: vae" in vae_card and "| kl_weight | 1.0 |" in vae_card


def _script(name: str):
    return load_script(f"train_scripts/{name}.py")


def test_scripts_bad_input_is_one_line_error(tmp_path, capsys, tiny_npz):
    gan = _script("train_gan")
    assert gan.main(["--architecture", "biggan", "--dataset", str(tiny_npz), "--output_dir", str(tmp_path / "o")]) == 2
    assert gan.main(["--dataset", str(tiny_npz), "--output_dir", str(tmp_path / "o"), "--resolution", "100"]) == 2
    assert _script("train_vae").main(["--dataset", str(tiny_npz), "--output_dir", str(tmp_path / "o"), "--resolution", "30"]) == 2
    err = capsys.readouterr().err
    assert "error: unknown --architecture 'biggan'" in err and "resolution 100 cannot be made" in err
    assert "resolution 30 cannot be made" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.parametrize("script, extra", [("train_gan", ["--architecture", "dcgan", "--generator_channels", "16", "--discriminator_channels", "16",
                                                          "--min_channels", "8", "--latent_dim", "8"]),
                                           ("train_vae", ["--base_channels", "8", "--latent_dim", "4"])])
def test_accelerate_launch_and_resume(tiny_npz, tmp_path, script, extra):
    out = tmp_path / "launched"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "train_scripts" / f"{script}.py"), *extra,
        "--dataset", str(tiny_npz), "--output_dir", str(out), "--resolution", "16", "--train_batch_size", "8",
        "--max_train_steps", "3", "--checkpointing_steps", "2", "--save_images_steps", "0", "--logger", "tensorboard",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, env=env, cwd=tmp_path, timeout=300)
    assert (out / "synthxray.json").is_file() and (out / "logs").is_dir()
    subprocess.run(cmd + ["--max_train_steps", "4", "--resume_from_checkpoint", "latest"], check=True, env=env, cwd=tmp_path, timeout=300)
    assert json.loads((out / "synthxray.json").read_text())["extra"]["train_steps"] == 4
