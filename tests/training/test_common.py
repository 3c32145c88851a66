"""Learning-rate schedules driven by progress, and the --max_train_minutes budget."""

from __future__ import annotations

import json

import pytest
import torch

from synthxray.training.common import LR_SCHEDULERS, TrainState, lr_factor, make_lr_scheduler, onecycle_factor, progress
from synthxray.training.ddpm import DDPMTrainingConfig


def _lrs(scheduler, optimizer, n: int) -> list[float]:
    out = []
    for _ in range(n):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def _config(**kw) -> DDPMTrainingConfig:
    return DDPMTrainingConfig(dataset="x.npz", output_dir="unused", **kw)


def test_onecycle_follows_torch_onecycle_learning_rate():
    total, peak = 200, 2e-3
    p1 = torch.nn.Parameter(torch.zeros(1))
    opt_torch = torch.optim.AdamW([p1], lr=peak)
    ref = _lrs(torch.optim.lr_scheduler.OneCycleLR(opt_torch, max_lr=peak, total_steps=total), opt_torch, total)
    p2 = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p2], lr=peak)
    ours = _lrs(make_lr_scheduler(_config(learning_rate=peak, lr_scheduler="onecycle"), opt, total), opt, total)
    assert ours[0] == pytest.approx(peak / 25)
    assert max(ours) == pytest.approx(peak, rel=1e-3)
    assert ours[-1] < peak / 1000
    # torch spreads the phases over total-1 steps, ours over total: within one step of each other
    assert max(abs(a - b) for a, b in zip(ours, ref)) < peak * 2 / total * 3.2


@pytest.mark.parametrize("name", [n for n in LR_SCHEDULERS if n != "onecycle"])
@pytest.mark.parametrize("warmup", [0, 10])
def test_standard_schedules_are_diffusers_get_scheduler(name, warmup):
    """constant / constant_with_warmup / linear / cosine are diffusers' get_scheduler, steps scaled per process."""
    from diffusers.optimization import get_scheduler

    total, processes = 60, 2
    opt_ref = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    ref = _lrs(get_scheduler(name, opt_ref, num_warmup_steps=warmup * processes, num_training_steps=total * processes), opt_ref, total * processes)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    ours = _lrs(make_lr_scheduler(_config(learning_rate=1e-3, lr_scheduler=name, lr_warmup_steps=warmup), opt, total, processes), opt, total * processes)
    assert ours == pytest.approx(ref)
    if name in ("linear", "cosine"):
        assert ours[-1] < 1e-3 * 0.02
    if warmup and name != "constant":
        assert ours[0] == 0.0


def test_onecycle_ends_where_documented():
    assert onecycle_factor(0.0) == pytest.approx(1 / 25)
    assert onecycle_factor(0.3) == pytest.approx(1.0)
    assert onecycle_factor(1.0) == pytest.approx(1 / 25 / 1e4)
    cfg = _config()  # a config refuses an unknown name; the builder does too
    cfg.lr_scheduler = "triangle"
    with pytest.raises(ValueError, match="lr_scheduler"):
        make_lr_scheduler(cfg, torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 10)


@pytest.mark.parametrize("name", LR_SCHEDULERS)
def test_lr_factor_starts_and_ends_where_documented(name):
    """lr_factor (for loops that build their own LambdaLR) reads the same schedules by progress."""
    assert lr_factor(name, 0.0, step=0) == pytest.approx({"onecycle": 1 / 25}.get(name, 1.0))
    end = lr_factor(name, 1.0, step=10_000)
    assert end == pytest.approx({"constant": 1.0, "constant_with_warmup": 1.0, "onecycle": 1 / 25 / 1e4}.get(name, 0.0))
    assert lr_factor("cosine", 0.5) == pytest.approx(0.5)
    assert lr_factor("linear", 0.25) == pytest.approx(0.75)
    assert lr_factor("cosine", 0.0, step=5, warmup_steps=10) == pytest.approx(0.5)
    assert lr_factor("constant", 0.3, step=1, warmup_steps=10) == 1.0  # diffusers' "constant" has no warm-up
    with pytest.raises(ValueError, match="lr_scheduler"):
        lr_factor("triangle", 0.5)


def test_time_budget_drives_the_schedule():
    """With --max_train_minutes the schedule follows time, so a run its budget stops has annealed."""
    cfg = _config(learning_rate=1.0, lr_scheduler="cosine", max_train_minutes=1.0)
    state = TrainState()
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_lr_scheduler(cfg, opt, total_steps=1000, state=state)
    state.seconds = 30.0  # half the budget spent, 1 step of 1000 taken
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    assert progress(cfg, state, 1000) == pytest.approx(0.5)
    state.step = 900  # now steps are further along than time
    assert progress(cfg, state, 1000) == pytest.approx(0.9)
    state.seconds = 90.0
    assert progress(cfg, state, 1000) == 1.0


def test_train_state_counts_time_across_resumes():
    state = TrainState()
    state.load_state_dict({"step": 3, "epoch": 0, "seconds": 12.5})
    assert state.elapsed() == 12.5
    state.start_clock()
    assert 12.5 <= state.elapsed() < 13.5
    assert state.state_dict()["seconds"] >= 12.5
    old = TrainState()
    old.load_state_dict({"step": 3, "epoch": 1})  # checkpoints written before the seconds counter
    assert old.seconds == 0.0


def test_bad_budget_is_refused():
    with pytest.raises(ValueError, match="max_train_minutes"):
        _config(max_train_minutes=0)


def test_training_stops_at_its_time_budget_with_the_schedule_annealed(tiny_ddpm_config, tmp_path):
    from synthxray.training.ddpm import train

    budget_minutes = 0.1  # 6 s, against 10,000 planned steps
    out = train(tiny_ddpm_config(output_dir=str(tmp_path / "budget"), max_train_steps=10_000, max_train_minutes=budget_minutes,
                                 lr_scheduler="cosine", logger="tensorboard"))
    summary = json.loads((out / "train_summary.json").read_text())
    assert 1 <= summary["steps"] < 10_000
    assert summary["train_seconds"] >= 60 * budget_minutes
    assert summary["seconds_per_step_this_run"] > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = EventAccumulator(str(next((out / "logs").rglob("events.out.tfevents.*")).parent))
    logs.Reload()
    lrs = [e.value for e in logs.Scalars("lr")]
    assert lrs[0] > 0.5 * 2e-3 and lrs[-1] < 0.05 * lrs[0]  # annealed by time, though only a few of 10,000 steps ran


@pytest.mark.parametrize("module,name", [("ddpm", "DDPMTrainingConfig"), ("dreambooth", "DreamBoothConfig"), ("lora", "LoRAConfig")])
def test_every_training_script_has_working_help(module, name):
    """argparse formats help with %: a literal % in a flag's text must not break --help."""
    import importlib

    from transformers import HfArgumentParser

    cls = getattr(importlib.import_module(f"synthxray.training.{module}"), name)
    text = HfArgumentParser(cls).format_help()
    assert "--output_dir" in text and "--max_train_minutes" in text
    if module == "ddpm":
        assert "30% of the run" in text
