"""Consistency distillation of a tiny DDPM teacher: the objective, resume, the saved student and its card."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from synthxray.generators import load_generator
from synthxray.training.common import list_checkpoints
from synthxray.training.consistency import ConsistencyDistillationConfig, ConsistencyObjective, train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def distil_config(tiny_ddpm_dir, tmp_path_factory):
    def build(**overrides):
        base = dict(teacher=str(tiny_ddpm_dir), output_dir=str(tmp_path_factory.mktemp("student")), num_solver_steps=5,
                    train_batch_size=8, max_train_steps=4, checkpointing_steps=0, save_images_steps=0, sample_steps=2,
                    seed=0, lr_warmup_steps=0)
        base.update(overrides)
        return ConsistencyDistillationConfig(**base)

    return build


@pytest.fixture(scope="module")
def student_dir(distil_config):
    return train(distil_config(max_train_steps=4))


def unet_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))


def tiny_objective(tiny_ddpm_dir, **kwargs):
    import copy

    teacher = load_generator(tiny_ddpm_dir, device="cpu")
    unet = teacher.pipeline.unet.eval().requires_grad_(False)
    student = copy.deepcopy(unet).requires_grad_(True)
    target = copy.deepcopy(unet)
    sched = teacher.pipeline.scheduler
    return ConsistencyObjective(student, unet, target, sched.alphas_cumprod, 5, sched.config.prediction_type,
                                null_class=2, huber_c=0.01, **kwargs), teacher


def test_defaults_come_from_the_teacher(distil_config, tiny_ddpm_dir, tiny_npz):
    cfg = distil_config()
    teacher = json.loads((tiny_ddpm_dir / "synthxray.json").read_text())
    assert cfg.dataset == teacher["data"]["source"] == str(tiny_npz) and cfg.resolution == teacher["resolution"] == 16


@pytest.mark.parametrize("flags,match", [
    ({"teacher": ""}, "--teacher is required"),
    ({"resolution": 32}, "differs from the teacher's 16"),
    ({"sample_steps": 6}, "--sample_steps must be in 1..--num_solver_steps"),
    ({"loss_type": "l1"}, "--loss_type"),
    ({"target_ema_decay": 1.0}, "--target_ema_decay"),
    ({"ema_max_decay": 1.0}, "--ema_max_decay"),
    ({"ode_solver": "heun"}, "--ode_solver"),
])
def test_config_validation(distil_config, flags, match):
    with pytest.raises(ValueError, match=match):
        distil_config(**flags)


def test_teacher_must_be_a_ddpm_generator(distil_config, student_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no synthxray.json"):
        distil_config(teacher=str(tmp_path))
    with pytest.raises(ValueError, match="is a 'consistency' generator"):
        distil_config(teacher=str(student_dir))


def test_boundary_condition_is_the_identity_at_t0(tiny_ddpm_dir):
    objective, _ = tiny_objective(tiny_ddpm_dir)
    x = torch.randn(3, 1, 16, 16)
    t = torch.zeros(3, dtype=torch.long)
    assert torch.allclose(objective.consistency(objective.student, x, t, torch.tensor([0, 1, 0])), x)
    assert objective.skip == 10 and objective.grid.tolist() == [9, 19, 29, 39, 49]


@pytest.mark.parametrize("ode_solver", ["ddim", "dpm-solver-2"])
def test_teacher_step_lands_on_the_clean_image_when_the_teacher_is_exact(tiny_ddpm_dir, ode_solver):
    """With a teacher that predicts the true v of a known clean image, one solver step moves x_t to x_s on the same
    noise: the solver is the exact ODE step of that image."""
    objective, teacher = tiny_objective(tiny_ddpm_dir, ode_solver=ode_solver)
    clean = torch.rand(2, 1, 16, 16) * 2 - 1
    noise = torch.randn_like(clean)
    sched = teacher.pipeline.scheduler
    t, s = torch.tensor([29, 49]), torch.tensor([19, 39])

    class Exact(torch.nn.Module):
        def forward(self, x, tt, class_labels=None):
            from types import SimpleNamespace

            return SimpleNamespace(sample=sched.get_velocity(clean, noise, tt))

    objective.teacher = Exact()
    got = objective.teacher_step(sched.add_noise(clean, noise, t), t, s, torch.tensor([0, 1]))
    assert torch.allclose(got, sched.add_noise(clean, noise, s), atol=1e-5)


def test_second_order_step_follows_the_exact_ode_of_gaussian_data(tiny_ddpm_dir):
    """Data ~ N(0, c^2) per pixel: the ideal teacher is linear and the probability-flow ODE keeps
    x_t / sqrt(alpha_t^2 c^2 + sigma_t^2) constant. DPM-Solver-2 lands far closer to that than DDIM, and
    ``solve`` over the whole grid (which the student learns to do in one evaluation) does too."""
    from types import SimpleNamespace

    c = 0.15  # small enough that the clipped teacher prediction is never clipped
    objective, teacher = tiny_objective(tiny_ddpm_dir)
    a_bar = teacher.pipeline.scheduler.alphas_cumprod.float()

    class Ideal(torch.nn.Module):
        def forward(self, x, tt, class_labels=None):
            a = a_bar[tt].view(-1, 1, 1, 1)
            alpha, sigma = a.sqrt(), (1 - a).sqrt()
            x0 = c**2 * alpha / (alpha**2 * c**2 + sigma**2) * x
            out = (alpha * x - x0) / sigma if objective.prediction_type == "v_prediction" else (x - alpha * x0) / sigma
            return SimpleNamespace(sample=out)

    def scale(t):
        a = a_bar[t].view(-1, 1, 1, 1)
        return (a * c**2 + 1 - a).sqrt()

    x_t, labels = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 0, 1])
    t, s = torch.full((4,), 29), torch.full((4,), 19)
    exact = x_t / scale(t) * scale(s)
    errors = {}
    for solver in ("ddim", "dpm-solver-2"):
        obj, _ = tiny_objective(tiny_ddpm_dir, ode_solver=solver)
        obj.teacher = Ideal()
        errors[solver] = (obj.teacher_step(x_t, t, s, labels) - exact).abs().max().item()
        noise = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        whole = (obj.solve(noise, labels) - noise / scale(torch.full((4,), 49)) * scale(torch.zeros(4, dtype=torch.long))).abs().max()
        errors[solver + " solve"] = whole.item()
    assert errors["dpm-solver-2"] < 0.3 * errors["ddim"], errors
    assert errors["dpm-solver-2 solve"] < 0.5 * errors["ddim solve"], errors


def test_loss_decreases_when_fitting_a_fixed_target(tiny_ddpm_dir):
    objective, _ = tiny_objective(tiny_ddpm_dir)
    batch = {"pixel_values": torch.rand(8, 1, 16, 16) * 2 - 1, "label": torch.tensor([0, 1] * 4)}
    opt = torch.optim.Adam(objective.student.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        torch.manual_seed(0)  # the same timesteps and noise every time
        loss = objective(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_guided_teacher_step_differs_and_needs_no_more_student_passes(tiny_ddpm_dir):
    objective, _ = tiny_objective(tiny_ddpm_dir, guidance_scale=3.0)
    plain, _ = tiny_objective(tiny_ddpm_dir)
    x, t, s, y = torch.randn(2, 1, 16, 16), torch.tensor([49, 29]), torch.tensor([39, 19]), torch.tensor([0, 1])
    assert not torch.allclose(objective.teacher_step(x, t, s, y), plain.teacher_step(x, t, s, y))


def test_student_saves_loads_and_names_its_teacher(student_dir, tiny_ddpm_dir):
    info = json.loads((student_dir / "synthxray.json").read_text())
    assert info["backend"] == "consistency" and info["base_model"] == str(tiny_ddpm_dir)
    assert info["extra"]["distillation"]["teacher"] == str(tiny_ddpm_dir) and info["extra"]["distillation"]["num_solver_steps"] == 5
    assert info["extra"]["train_steps"] == 4 and info["defaults"]["num_inference_steps"] == 2
    card = (student_dir / "README.md").read_text()
    assert "## Distillation" in card and f"Distilled from the teacher **`{tiny_ddpm_dir}`**" in card
    assert "pipeline_tag: unconditional-image-generation" in card  # a teacher is not a text-to-image base model
    # the student starts from the teacher's weights and moved away from them
    teacher_w, student_w = unet_weights(tiny_ddpm_dir), unet_weights(student_dir)
    assert teacher_w.keys() == student_w.keys() and any(not torch.equal(teacher_w[k], student_w[k]) for k in teacher_w)


@pytest.mark.parametrize("use_ema", [False, True])
def test_resume_continues_and_matches_uninterrupted_run(distil_config, tmp_path, monkeypatch, use_ema):
    from accelerate import Accelerator

    class Killed(Exception):
        pass

    straight = train(distil_config(output_dir=str(tmp_path / "straight"), max_train_steps=6, checkpointing_steps=3, use_ema=use_ema))
    original_save = Accelerator.save_state

    def save_then_die(self, *args, **kwargs):
        original_save(self, *args, **kwargs)
        raise Killed

    monkeypatch.setattr(Accelerator, "save_state", save_then_die)
    cfg = dict(output_dir=str(tmp_path / "resumed"), max_train_steps=6, checkpointing_steps=3, use_ema=use_ema)
    with pytest.raises(Killed):
        train(distil_config(**cfg))
    monkeypatch.setattr(Accelerator, "save_state", original_save)
    assert [p.name for p in list_checkpoints(tmp_path / "resumed")] == ["checkpoint_0"]
    resumed = train(distil_config(**cfg, resume_from_checkpoint="latest"))
    assert json.loads((resumed / "synthxray.json").read_text())["extra"]["train_steps"] == 6
    a, b = unet_weights(straight), unet_weights(resumed)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), "resumed run differs from the uninterrupted one"


def test_student_ema_is_what_is_saved(distil_config, student_dir, tiny_ddpm_dir, tmp_path):
    # decay 0 makes the EMA the student itself: the same weights as the run without one
    zero = train(distil_config(output_dir=str(tmp_path / "zero"), use_ema=True, ema_max_decay=0.0))
    raw, teacher_w = unet_weights(student_dir), unet_weights(tiny_ddpm_dir)
    assert all(torch.allclose(raw[k], w, atol=1e-6) for k, w in unet_weights(zero).items())
    # a slow EMA is saved instead of the student: it lags behind, between the teacher and the student
    slow_dir = train(distil_config(output_dir=str(tmp_path / "slow"), use_ema=True, ema_max_decay=0.999))
    slow = unet_weights(slow_dir)
    moved = lambda w: sum(float((w[k] - teacher_w[k]).abs().sum()) for k in teacher_w)  # noqa: E731
    assert 0 < moved(slow) < moved(raw)
    assert json.loads((slow_dir / "synthxray.json").read_text())["extra"]["distillation"]["student_ema_decay"] == 0.999


def test_data_with_other_classes_is_refused(distil_config, tmp_path):
    from synthxray.data import DataError

    rng = np.random.default_rng(0)
    arrays = {f"{split}_{kind}": (rng.integers(0, 255, (12, 28, 28)).astype(np.uint8) if kind == "images" else (np.arange(12) % 3)[:, None])
              for split in ("train", "val", "test") for kind in ("images", "labels")}
    np.savez(tmp_path / "three.npz", **arrays)
    with pytest.raises(DataError, match="the teacher"):
        train(distil_config(dataset=str(tmp_path / "three.npz"), output_dir=str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_accelerate_launch_script(tiny_ddpm_dir, tmp_path):
    out = tmp_path / "launched"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "train_scripts" / "distill_consistency.py"),
        "--teacher", str(tiny_ddpm_dir), "--output_dir", str(out), "--num_solver_steps", "5", "--train_batch_size", "8",
        "--max_train_steps", "2", "--checkpointing_steps", "1", "--save_images_steps", "0", "--sample_steps", "2",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(cmd, check=True, env=env, cwd=tmp_path, timeout=300)
    assert json.loads((out / "synthxray.json").read_text())["extra"]["train_steps"] == 2
    subprocess.run(cmd[:-10] + cmd[-10:] + ["--max_train_steps", "3", "--resume_from_checkpoint", "latest"], check=True, env=env,
                   cwd=tmp_path, timeout=300)
    assert json.loads((out / "synthxray.json").read_text())["extra"]["train_steps"] == 3
    assert len(load_generator(out).generate(2, class_label=1, seed=0, num_inference_steps=1)) == 2
