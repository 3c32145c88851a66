"""The fields every synthxray training script shares, and ``help_field`` for config dataclasses (``--help`` text).

A low module (no torch, no accelerate): ``checkpoints``, ``common`` and every other package's config import it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..configcheck import check_fields


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
    overwrite_output_dir: bool = help_field(
        False, "Replace the generator or the earlier run's checkpoints in output_dir, or write beside files synthxray "
        "did not write there (none of them is deleted); another kind of synthxray artefact is refused even so."
    )
    dataloader_num_workers: int = help_field(0, "DataLoader worker processes.")
    push_to_hub: bool = help_field(False, "Push the final model to the Hub (needs --hub_model_id or uses the folder name).")
    hub_model_id: str | None = help_field(None, "Hub repo id for --push_to_hub.")
    hub_token: str | None = help_field(None, "Hub token (default: the logged-in token / HF_TOKEN).")

    def __post_init__(self) -> None:
        check_fields(self)  # every field of the script's config strictly by type (a "false" string is not false)
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
