"""Training pieces every script shares: config parsing, accelerator setup, the schedules, the step loop.

The shared config fields (``config``), the step/time counters (``state``) and the output folder and checkpoint
helpers (``checkpoints``) live in lower modules and stay importable from here."""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import torch

from .checkpoints import CONFIG_FILE, check_output_dir, list_checkpoints, prepare_output_dir, resume, write_config  # noqa: F401  (re-exported)
from .config import LR_SCHEDULERS, TrainingConfig, help_field  # noqa: F401  (re-exported)
from .state import TrainState  # noqa: F401  (re-exported)

logger = logging.getLogger("synthxray.training")

C = TypeVar("C")


def parse_config(config_cls: type[C], argv: Sequence[str] | None = None, prog: str | None = None) -> C:
    """Parse flags into ``config_cls``: ``--config FILE`` (or a ``.yaml``/``.json`` file as the first argument) gives
    values, flags beside it override them (``synthxray.configcheck.parse_config``).

    Unknown flags or keys are errors, file values are checked strictly by type, and errors name the file.
    ``prog`` names the command in ``--help`` and usage errors.
    """
    from ..configcheck import parse_config as parse

    return parse(config_cls, argv, prog=prog)


def make_accelerator(cfg: TrainingConfig, log_with: str | None = None):
    """An Accelerator whose checkpoints rotate via ProjectConfiguration and whose data order is seedable."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed

    project = ProjectConfiguration(
        project_dir=cfg.output_dir,
        logging_dir=os.path.join(cfg.output_dir, "logs"),
        automatic_checkpoint_naming=True,
        total_limit=cfg.checkpoints_total_limit,
    )
    log_with = None if log_with in (None, "", "none") else log_with
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=cfg.mixed_precision,
        log_with=log_with,
        project_config=project,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(cfg.seed)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    return accelerator


def hardware_summary(accelerator) -> str:
    """E.g. ``"1 x NVIDIA H100 80GB HBM3"`` or ``"cpu (2 cores)"``, recorded in model cards."""
    if torch.cuda.is_available():
        return f"{accelerator.num_processes} x {torch.cuda.get_device_name(0)}"
    return f"cpu ({os.cpu_count()} cores) x {accelerator.num_processes} process(es)"


def training_layout(accelerator, cfg: TrainingConfig) -> dict[str, Any]:
    """How the run was spread: processes and the examples one optimiser step sees (recorded with the model)."""
    return {
        "num_processes": accelerator.num_processes,
        "distributed_type": str(getattr(accelerator.distributed_type, "value", accelerator.distributed_type)),
        "total_batch_size": accelerator.num_processes * cfg.train_batch_size * cfg.gradient_accumulation_steps,
    }


def progress(cfg: TrainingConfig, state: TrainState, max_steps: int) -> float:
    """How far the run is through its plan, 0..1: steps over ``max_steps`` or, with
    ``--max_train_minutes``, time over the budget, whichever is further."""
    return min(max(state.step / max(max_steps, 1), budget_fraction(cfg, state)), 1.0)


def budget_fraction(cfg: TrainingConfig, state: TrainState) -> float:
    """Training time over ``--max_train_minutes`` (0 without a budget)."""
    return state.budget_seconds() / (60.0 * cfg.max_train_minutes) if cfg.max_train_minutes else 0.0


def onecycle_factor(progress: float) -> float:
    """torch's OneCycleLR shape (seed 001) as a fraction of the peak, ``progress`` (0..1) through the run:
    cosine rise from peak/25 over the first 30%, cosine fall to peak/25e4 (the learning rate only; betas
    are not cycled)."""
    p = min(max(progress, 0.0), 1.0)
    start, peak, end, rise = 1 / 25, 1.0, 1 / 25 / 1e4, 0.3

    def anneal(a: float, b: float, frac: float) -> float:
        return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * frac))

    return anneal(start, peak, p / rise) if p < rise else anneal(peak, end, (p - rise) / (1 - rise))


_SCHEDULE_GRID = 1_000_000  # steps over which lr_factor reads diffusers' schedules


@functools.lru_cache(maxsize=None)
def _library_schedule(name: str) -> Callable[[float], float]:
    """diffusers' ``get_scheduler(name)`` over ``_SCHEDULE_GRID`` steps without warm-up, as step -> factor."""
    from diffusers.optimization import get_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return get_scheduler(name, optimizer, num_warmup_steps=0, num_training_steps=_SCHEDULE_GRID).lr_lambdas[0]


def lr_factor(name: str, progress: float, step: int = 0, warmup_steps: int = 0) -> float:
    """The learning rate as a fraction of its peak, ``progress`` (0..1) through the run, for loops that
    build their own ``LambdaLR`` (the federated clients number their steps across rounds).

    The decay is diffusers' schedule of that name read at ``progress`` (onecycle: :func:`onecycle_factor`);
    ``warmup_steps`` multiply it by a linear ramp over the first steps (not "constant", nor "onecycle",
    which has its own). :func:`make_lr_scheduler` is the scheduler the training scripts use.
    """
    if name not in LR_SCHEDULERS:
        raise ValueError(f"lr_scheduler must be one of {LR_SCHEDULERS}, got {name!r}")
    p = min(max(progress, 0.0), 1.0)
    if name == "onecycle":
        return onecycle_factor(p)
    warm = min(1.0, step / warmup_steps) if warmup_steps and name != "constant" else 1.0
    decay = 1.0 if name in ("constant", "constant_with_warmup") else _library_schedule(name)(p * _SCHEDULE_GRID)
    return warm * decay


def make_lr_scheduler(
    cfg: TrainingConfig, optimizer: torch.optim.Optimizer, total_steps: int, num_processes: int = 1,
    state: TrainState | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate schedule named by ``cfg.lr_scheduler`` over ``total_steps`` optimiser steps.

    constant, constant_with_warmup, linear and cosine are ``diffusers.optimization.get_scheduler``'s
    (warm-up over ``--lr_warmup_steps``, then the decay over the remaining steps); onecycle is
    :func:`onecycle_factor`. With ``--max_train_minutes`` (and ``state``, whose clock the train loop
    runs) the schedule is read at the further of the step count and the time spent, as a share of
    ``total_steps``, so a run stopped by its budget has still annealed. ``num_processes``: an
    accelerate-prepared scheduler steps once per process for every optimiser step (diffusers' scripts
    scale the same way).
    """
    from diffusers.optimization import get_scheduler

    steps = max(total_steps * num_processes, 1)
    if cfg.lr_scheduler == "onecycle":
        base: Callable[[float], float] = lambda count: onecycle_factor(count / steps)  # noqa: E731
    elif cfg.lr_scheduler in LR_SCHEDULERS:
        library = get_scheduler(
            cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.lr_warmup_steps * num_processes, num_training_steps=steps
        )
        if state is None or not cfg.max_train_minutes:
            return library
        base = library.lr_lambdas[0]
    else:
        raise ValueError(f"lr_scheduler must be one of {LR_SCHEDULERS}, got {cfg.lr_scheduler!r}")

    def factor(count: int) -> float:
        if state is not None and cfg.max_train_minutes:
            return base(max(count, budget_fraction(cfg, state) * steps))
        return base(count)

    for group in optimizer.param_groups:  # a second LambdaLR on this optimiser starts from the same peak
        group["lr"] = group.get("initial_lr", group["lr"])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_ema(module: torch.nn.Module, max_decay: float, inv_gamma: float = 1.0, power: float = 0.75):
    """diffusers' ``EMAModel`` over ``module``'s parameters with the warm-up decay ``1 - (1 + step / inv_gamma) ** -power``
    capped at ``max_decay``; saves and loads with ``accelerator.save_state`` once registered for checkpointing."""
    from diffusers.training_utils import EMAModel

    return EMAModel(module.parameters(), decay=max_decay, use_ema_warmup=True, inv_gamma=inv_gamma, power=power,
                    model_cls=type(module), model_config=getattr(module, "config", None))


def is_prepared(dataloader) -> bool:
    """Whether ``dataloader`` went through ``accelerator.prepare`` (it then yields this process's share)."""
    from accelerate.data_loader import DataLoaderDispatcher, DataLoaderShard

    return isinstance(dataloader, (DataLoaderShard, DataLoaderDispatcher))


def steps_and_epochs(cfg: TrainingConfig, num_epochs: int | None, batches_per_epoch: int) -> tuple[int, int]:
    """Resolve (max_steps, num_epochs) from either max_train_steps or an epoch count, for
    ``batches_per_epoch`` batches per process (see :func:`plan_steps`)."""
    updates_per_epoch = max(1, math.ceil(batches_per_epoch / cfg.gradient_accumulation_steps))
    if cfg.max_train_steps:
        return cfg.max_train_steps, math.ceil(cfg.max_train_steps / updates_per_epoch)
    if not num_epochs:
        raise ValueError("set max_train_steps or an epoch count")
    return num_epochs * updates_per_epoch, num_epochs


def plan_steps(cfg: TrainingConfig, num_epochs: int | None, dataloader, accelerator=None) -> tuple[int, int]:
    """(max_steps, num_epochs) for training on ``dataloader`` with ``accelerator``'s processes.

    ``num_epochs`` is passes over the data in total, not per process: on N processes each rank sees
    1/N of the batches, so an epoch is ``len(prepared dataloader)`` optimiser steps. Give the prepared
    dataloader, or the plain one with the accelerator (its batches are then split by N here).
    """
    batches = len(dataloader)
    if accelerator is not None and accelerator.num_processes > 1 and not is_prepared(dataloader):
        batches = math.ceil(batches / accelerator.num_processes)
    return steps_and_epochs(cfg, num_epochs, batches)


def train_loop(
    accelerator,
    cfg: TrainingConfig,
    state: TrainState,
    models: Sequence[torch.nn.Module],
    optimizer,
    lr_scheduler,
    dataloader,
    loss_fn: Callable[[Any], torch.Tensor],
    max_steps: int,
    params_to_clip: Iterable[torch.nn.Parameter] | None = None,
    on_step: Callable[[int], None] | None = None,
    step_fn: Callable[[Any], dict[str, float]] | None = None,
) -> None:
    """Run optimiser steps until ``max_steps``: accumulation, clipping, logging, checkpoints, resume.

    ``loss_fn(batch)`` returns the scalar loss; ``on_step(step)`` runs on every process after every
    optimiser step (EMA updates; sample grids guarded by ``accelerator.is_main_process``) and before
    the checkpoint for that step is written. On N processes, ``dataloader`` must be the prepared one
    and ``max_steps`` come from :func:`plan_steps`; every rank calls ``save_state`` (accelerate writes
    the weights once, from the main process, and one RNG file per rank) and the time budget is judged
    on the main process's clock, so all ranks stop at the same step. ``step_fn(batch)`` replaces the
    loss/backward/clip/optimiser part for objectives with several optimisers (GANs): it does its own
    updates and returns the numbers to log (``loss_fn``, ``optimizer`` and ``lr_scheduler`` may then be
    None); step counting, resume, checkpoints and the time budget stay here.
    """
    from tqdm.auto import tqdm

    if accelerator.num_processes > 1 and not is_prepared(dataloader):
        raise ValueError("train_loop on several processes needs the dataloader returned by accelerator.prepare")
    params_to_clip = list(params_to_clip) if params_to_clip is not None else [p for m in models for p in m.parameters() if p.requires_grad]
    updates_per_epoch = max(1, math.ceil(len(dataloader) / cfg.gradient_accumulation_steps))
    logger.info(
        "%d process(es) x batch %d x accumulation %d = %d examples per step; %d steps per epoch, %d steps (%.3g epochs)",
        accelerator.num_processes, cfg.train_batch_size, cfg.gradient_accumulation_steps,
        accelerator.num_processes * cfg.train_batch_size * cfg.gradient_accumulation_steps,
        updates_per_epoch, max_steps, max_steps / updates_per_epoch,
    )
    state.start_clock()
    bar = tqdm(total=max_steps, initial=state.step, desc="train", disable=not accelerator.is_local_main_process)
    for m in models:
        m.train()
    while state.step < max_steps:
        epoch = state.step // updates_per_epoch
        state.epoch = epoch
        if hasattr(dataloader, "set_epoch"):
            dataloader.set_epoch(epoch)
        done_in_epoch = (state.step - epoch * updates_per_epoch) * cfg.gradient_accumulation_steps
        loader = accelerator.skip_first_batches(dataloader, done_in_epoch) if done_in_epoch else dataloader
        for batch in loader:
            with accelerator.accumulate(*models):
                if accelerator.sync_gradients and cfg.max_train_minutes:
                    state.sync_clock(accelerator)  # the schedule and the stop read one clock on all ranks
                if step_fn is not None:
                    logs = step_fn(batch)
                else:
                    loss = loss_fn(batch)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(params_to_clip, cfg.max_grad_norm)
                    optimizer.step()
                    lr_scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            bar.update(1)
            if step_fn is None:
                logs = {"loss": loss.detach().item(), "lr": lr_scheduler.get_last_lr()[0]}
            bar.set_postfix(**{k: f"{v:.4g}" for k, v in logs.items()})
            accelerator.log(logs, step=state.step)
            if on_step is not None:
                on_step(state.step)
            if cfg.checkpointing_steps and state.step % cfg.checkpointing_steps == 0:
                state.epoch = state.step // updates_per_epoch
                accelerator.save_state()
                logger.info("saved checkpoint at step %d", state.step)
            if state.step < max_steps and progress(cfg, state, max_steps) >= 1.0:
                logger.info("max_train_minutes (%s) reached at step %d; saving", cfg.max_train_minutes, state.step)
                if cfg.checkpointing_steps and state.step % cfg.checkpointing_steps:
                    state.epoch = state.step // updates_per_epoch
                    accelerator.save_state()
                max_steps = state.step
            if state.step >= max_steps:
                break
    state.epoch = state.step // updates_per_epoch
    bar.close()


def finish_model_folder(cfg: TrainingConfig, folder: str | os.PathLike, kind: str = "generator") -> None:
    """After the final save: write the model card locally, then push when ``--push_to_hub`` is set."""
    from .. import hub

    try:
        hub.write_generator_card(folder) if kind == "generator" else hub.write_classifier_card(folder)
    except (OSError, ValueError) as exc:  # the model is saved; a missing template must not lose the run
        logger.warning("model card not written for %s: %s", folder, exc)
    hub.push_to_hub_if_requested(cfg, folder, kind=kind)


def run_script(
    config_cls: type[C], train_fn: Callable[[C], Any], argv: Sequence[str] | None = None, prog: str | None = None
) -> int:
    """The ``main`` of every ``train_scripts/*.py``, of ``synthxray train`` and ``python -m synthxray.training``:
    parse flags into ``config_cls`` and train.

    The project's own input errors (bad flags, files or data, caught by our validation) become one
    ``PROG: error: ...`` line and exit code 2; unexpected exceptions keep their full traceback
    (``synthxray.errors.is_input_error`` draws the line).
    """
    from ..errors import is_input_error, message

    name = prog or Path(sys.argv[0]).name
    try:
        cfg = parse_config(config_cls, argv, prog=prog)
        out = train_fn(cfg)
    except Exception as exc:
        if not is_input_error(exc):
            raise
        print(f"{name}: error: {message(exc)}", file=sys.stderr)
        return 2
    print(f"saved to {out}")
    return 0

