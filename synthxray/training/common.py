"""Training pieces every script shares: config parsing, accelerator setup, resume, the step loop."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import torch

logger = logging.getLogger("synthxray.training")

C = TypeVar("C")
CONFIG_FILE = "training_config.json"


def help_field(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with ``--help`` text (read by HfArgumentParser)."""
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
        None, "Stop after this much wall-clock time in this run (a checkpoint and the model are still saved)."
    )
    gradient_accumulation_steps: int = help_field(1, "Micro-batches accumulated per optimiser step.")
    learning_rate: float = help_field(1e-4, "Peak learning rate.")
    lr_scheduler: str = help_field("cosine", "constant | constant_with_warmup | linear | cosine | onecycle.")
    lr_warmup_steps: int = help_field(0, "Linear warm-up steps (not used by onecycle).")
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
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(f"lr_scheduler must be one of {LR_SCHEDULERS}, got {self.lr_scheduler!r}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("hub_token", None)
        return out


LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "onecycle")


def parse_config(config_cls: type[C], argv: Sequence[str] | None = None) -> C:
    """Parse flags (or one ``.yaml``/``.json`` file as the only argument) into ``config_cls``.

    Unknown flags or keys are errors.
    """
    from transformers import HfArgumentParser

    parser = HfArgumentParser(config_cls)
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
    """Step and epoch counters, saved inside every checkpoint."""

    def __init__(self) -> None:
        self.step = 0
        self.epoch = 0

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step, self.epoch = int(state["step"]), int(state["epoch"])


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


def make_lr_scheduler(cfg: TrainingConfig, optimizer: torch.optim.Optimizer, total_steps: int, num_processes: int = 1):
    """Learning-rate schedule by name; ``onecycle`` is torch's OneCycleLR (seed 001)."""
    from diffusers.optimization import get_scheduler

    steps = total_steps * num_processes
    if cfg.lr_scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.learning_rate, total_steps=max(steps, 2))
    return get_scheduler(
        cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.lr_warmup_steps * num_processes, num_training_steps=steps
    )


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
    import time

    deadline = time.monotonic() + 60 * cfg.max_train_minutes if cfg.max_train_minutes else None
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
            if deadline is not None and time.monotonic() > deadline:
                logger.info("max_train_minutes reached at step %d; saving", state.step)
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


def run_script(config_cls: type[C], train_fn: Callable[[C], Any], argv: Sequence[str] | None = None) -> int:
    """The ``main`` of every ``train_scripts/*.py``: parse flags into ``config_cls``, train, and turn
    bad input into one ``error:`` line and exit code 2 instead of a traceback."""
    name = Path(sys.argv[0]).name
    try:
        cfg = parse_config(config_cls, argv)
        out = train_fn(cfg)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    print(f"saved to {out}")
    return 0
