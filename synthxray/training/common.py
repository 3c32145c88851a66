"""Training pieces every script shares: config parsing, accelerator setup, resume, the step loop."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import torch

logger = logging.getLogger("synthxray.training")

C = TypeVar("C")
CONFIG_FILE = "training_config.json"


def help_field(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with ``--help`` text (read by HfArgumentParser; ``%`` is escaped for argparse)."""
    help = help.replace("%", "%%")
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kwargs})
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class TrainingConfig:
    """Fields every synthxray training script shares (diffusers' flag names)."""

    output_dir: str = help_field("", "Where checkpoints, samples and the final model are written.")
    seed: int = help_field(0, "Random seed for weights, data order and noise.")
    train_batch_size: int = help_field(16, "Batch size per device.")
    max_train_steps: int | None = help_field(None, "Total optimiser steps; overrides the epoch count when set.")
    max_train_minutes: float | None = help_field(
        None,
        "Wall-clock training budget. The learning-rate schedule is planned over it (it anneals as the time runs "
        "out, not only as the steps do); at the end a checkpoint and the model are saved. Resumed runs count the time already spent.",
    )
    gradient_accumulation_steps: int = help_field(1, "Micro-batches accumulated per optimiser step.")
    learning_rate: float = help_field(1e-4, "Peak learning rate.")
    lr_scheduler: str = help_field("cosine", "constant | constant_with_warmup | linear | cosine | onecycle.")
    lr_warmup_steps: int = help_field(0, "Linear warm-up steps (onecycle has its own: the first 30% of the run).")
    adam_weight_decay: float = help_field(1e-2, "AdamW weight decay.")
    max_grad_norm: float = help_field(1.0, "Gradient clipping norm (0 disables).")
    mixed_precision: str = help_field("no", "no | fp16 | bf16 (fp16 needs a GPU).")
    checkpointing_steps: int = help_field(500, "Save a resumable checkpoint every N steps (0 disables).")
    checkpoints_total_limit: int | None = help_field(None, "Keep at most this many checkpoints.")
    resume_from_checkpoint: str | None = help_field(None, "'latest' or a checkpoint folder to continue from.")
    overwrite_output_dir: bool = help_field(False, "Allow writing into an output_dir that holds another run.")
    dataloader_num_workers: int = help_field(0, "DataLoader worker processes.")
    push_to_hub: bool = help_field(False, "Push the final model to the Hub (needs --hub_model_id or uses the folder name).")
    hub_model_id: str | None = help_field(None, "Hub repo id for --push_to_hub.")
    hub_token: str | None = help_field(None, "Hub token (default: the logged-in token / HF_TOKEN).")

    def __post_init__(self) -> None:
        if not self.output_dir:
            raise ValueError("output_dir is required")
        if self.train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("train_batch_size and gradient_accumulation_steps must be >= 1")
        if self.max_train_steps is not None and self.max_train_steps < 1:
            raise ValueError("max_train_steps must be >= 1")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        if self.max_train_minutes is not None and self.max_train_minutes <= 0:
            raise ValueError("max_train_minutes must be > 0")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(f"lr_scheduler must be one of {LR_SCHEDULERS}, got {self.lr_scheduler!r}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("hub_token", None)
        return out


LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "onecycle")


def parse_config(config_cls: type[C], argv: Sequence[str] | None = None, prog: str | None = None) -> C:
    """Parse flags (or one ``.yaml``/``.json`` file as the only argument) into ``config_cls``.

    Unknown flags or keys are errors. ``prog`` names the command in ``--help`` and usage errors.
    """
    from transformers import HfArgumentParser

    parser = HfArgumentParser(config_cls, prog=prog)
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(argv[0], allow_extra_keys=False)[0]
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(argv[0], allow_extra_keys=False)[0]
    return parser.parse_args_into_dataclasses(args=argv)[0]


def prepare_output_dir(cfg: TrainingConfig) -> Path:
    """Create ``output_dir``, refusing to mix runs: another run's folder needs --overwrite_output_dir."""
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output_dir {out} is a file")
    if out.is_dir() and any(out.iterdir()):
        ours = (out / CONFIG_FILE).is_file()
        if not ours and not cfg.overwrite_output_dir:
            raise FileExistsError(
                f"output_dir {out} already holds files that are not a synthxray run; choose an empty folder "
                "or pass --overwrite_output_dir"
            )
        if ours and not cfg.resume_from_checkpoint and not cfg.overwrite_output_dir and list_checkpoints(out):
            raise FileExistsError(
                f"output_dir {out} holds checkpoints of an earlier run; pass --resume_from_checkpoint latest to continue "
                "it or --overwrite_output_dir to start again"
            )
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_config(cfg: Any, out: Path) -> None:
    data = cfg.to_dict() if hasattr(cfg, "to_dict") else dataclasses.asdict(cfg)
    (out / CONFIG_FILE).write_text(json.dumps(data, indent=2, default=str) + "\n")


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Checkpoints written by ``accelerator.save_state`` with automatic naming, oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"checkpoint_\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


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


class TrainState:
    """Step, epoch and training-seconds counters, saved inside every checkpoint.

    ``seconds`` is the wall-clock time spent in the step loop over all runs so far (resumed runs
    add to it), which is what ``--max_train_minutes`` budgets.
    """

    def __init__(self) -> None:
        self.step = 0
        self.epoch = 0
        self.seconds = 0.0
        self._clock: float | None = None

    def start_clock(self) -> None:
        """Start counting this run's time on top of the seconds already in the state."""
        self._base, self._clock = self.seconds, time.monotonic()

    def elapsed(self) -> float:
        """Training seconds so far, this run included."""
        return self.seconds if self._clock is None else self._base + time.monotonic() - self._clock

    def state_dict(self) -> dict[str, float]:
        return {"step": self.step, "epoch": self.epoch, "seconds": self.elapsed()}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.seconds = float(state.get("seconds", 0.0))
        if self._clock is not None:
            self.start_clock()


def progress(cfg: TrainingConfig, state: TrainState, max_steps: int) -> float:
    """How far the run is through its plan, 0..1: steps over ``max_steps`` or, with
    ``--max_train_minutes``, time over the budget, whichever is further."""
    return min(max(state.step / max(max_steps, 1), budget_fraction(cfg, state)), 1.0)


def budget_fraction(cfg: TrainingConfig, state: TrainState) -> float:
    """Training time over ``--max_train_minutes`` (0 without a budget)."""
    return state.elapsed() / (60.0 * cfg.max_train_minutes) if cfg.max_train_minutes else 0.0


def resume(accelerator, cfg: TrainingConfig, state: TrainState) -> bool:
    """Load the checkpoint named by ``resume_from_checkpoint``; returns whether one was loaded."""
    if not cfg.resume_from_checkpoint:
        return False
    found = list_checkpoints(cfg.output_dir)
    if cfg.resume_from_checkpoint == "latest":
        if not found:
            logger.warning("no checkpoint in %s/checkpoints; starting from scratch", cfg.output_dir)
            return False
        path = found[-1]
    else:
        path = Path(cfg.resume_from_checkpoint)
        if not path.is_dir():
            path = Path(cfg.output_dir) / "checkpoints" / cfg.resume_from_checkpoint
        if not path.is_dir():
            raise FileNotFoundError(f"checkpoint {cfg.resume_from_checkpoint} not found; available: {[p.name for p in found]}")
    accelerator.load_state(str(path))
    # accelerate does not advance its checkpoint counter on load; without this the next save collides
    numbers = [int(p.name.split("_")[1]) for p in found] or [0]
    accelerator.project_configuration.iteration = max(numbers) + 1
    logger.info("resumed from %s at step %d (epoch %d)", path, state.step, state.epoch)
    return True


def lr_factor(name: str, progress: float, step: int = 0, warmup_steps: int = 0) -> float:
    """The learning rate as a fraction of its peak, ``progress`` (0..1) through the run.

    ``onecycle`` is torch's OneCycleLR shape (seed 001): cosine rise from peak/25 over the first 30%,
    cosine fall to peak/25e4 (the learning rate only; betas are not cycled). ``linear`` and ``cosine``
    decay to 0; ``*_with_warmup`` and ``lr_warmup_steps`` multiply by a linear ramp over the first steps.
    """
    p = min(max(progress, 0.0), 1.0)
    warm = min(1.0, step / warmup_steps) if warmup_steps and name != "onecycle" else 1.0
    if name == "constant":
        return 1.0
    if name == "constant_with_warmup":
        return warm
    if name == "linear":
        return warm * (1.0 - p)
    if name == "cosine":
        return warm * 0.5 * (1.0 + math.cos(math.pi * p))
    if name == "onecycle":
        start, peak, end, rise = 1 / 25, 1.0, 1 / 25 / 1e4, 0.3

        def anneal(a: float, b: float, frac: float) -> float:
            return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * frac))

        return anneal(start, peak, p / rise) if p < rise else anneal(peak, end, (p - rise) / (1 - rise))
    raise ValueError(f"lr_scheduler must be one of {LR_SCHEDULERS}, got {name!r}")


def make_lr_scheduler(
    cfg: TrainingConfig, optimizer: torch.optim.Optimizer, total_steps: int, num_processes: int = 1,
    state: TrainState | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate schedule named by ``cfg.lr_scheduler``, driven by the run's progress.

    Progress is steps over ``total_steps``; with ``--max_train_minutes`` (and ``state``, whose clock
    the train loop runs) it is the further of that and time over the budget, so a run stopped by
    its budget has still annealed.
    """
    steps = max(total_steps * num_processes, 1)  # an accelerate-prepared scheduler steps once per process
    warmup = cfg.lr_warmup_steps * num_processes

    def factor(count: int) -> float:
        done = count / steps if state is None else max(count / steps, budget_fraction(cfg, state))
        return lr_factor(cfg.lr_scheduler, done, count, warmup)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def steps_and_epochs(cfg: TrainingConfig, num_epochs: int | None, batches_per_epoch: int) -> tuple[int, int]:
    """Resolve (max_steps, num_epochs) from either max_train_steps or an epoch count."""
    updates_per_epoch = max(1, math.ceil(batches_per_epoch / cfg.gradient_accumulation_steps))
    if cfg.max_train_steps:
        return cfg.max_train_steps, math.ceil(cfg.max_train_steps / updates_per_epoch)
    if not num_epochs:
        raise ValueError("set max_train_steps or an epoch count")
    return num_epochs * updates_per_epoch, num_epochs


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
) -> None:
    """Run optimiser steps until ``max_steps``: accumulation, clipping, logging, checkpoints, resume.

    ``loss_fn(batch)`` returns the scalar loss; ``on_step(step)`` runs after every optimiser step
    (EMA updates, sample grids) and before the checkpoint for that step is written.
    """
    from tqdm.auto import tqdm

    params_to_clip = list(params_to_clip) if params_to_clip is not None else [p for m in models for p in m.parameters() if p.requires_grad]
    updates_per_epoch = max(1, math.ceil(len(dataloader) / cfg.gradient_accumulation_steps))
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

