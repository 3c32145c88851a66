"""The run's folder on disk: checking and creating ``--output_dir``, ``training_config.json``, and the
checkpoints ``accelerator.save_state`` writes there (listing them, resuming from one)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import outputs
from ..manifest import TRAINING_CONFIG

if TYPE_CHECKING:
    from .config import TrainingConfig
    from .state import TrainState

logger = logging.getLogger("synthxray.training")

CONFIG_FILE = TRAINING_CONFIG


def check_output_dir(cfg: TrainingConfig) -> Path:
    """Check ``--output_dir`` can take this run, writing nothing (:func:`synthxray.outputs.check_output_dir`'s rule):
    a generator there needs --overwrite_output_dir (or, with checkpoints, --resume_from_checkpoint to train it on),
    an earlier run's checkpoints need either; another kind of artefact is refused."""
    out = outputs.check_output_dir(cfg.output_dir, outputs.GENERATOR, cfg.overwrite_output_dir)
    found = outputs.artefact_kind(out)
    if cfg.overwrite_output_dir or found not in (outputs.GENERATOR, outputs.TRAINING_RUN):
        return out
    checkpoints = list_checkpoints(out)
    if checkpoints and not cfg.resume_from_checkpoint:
        raise outputs.OutputDirError(
            f"output_dir {out} holds checkpoints of an earlier run; pass --resume_from_checkpoint latest to continue "
            "it or --overwrite_output_dir to start again"
        )
    foreign = _other_trainer_fields(out, cfg) if cfg.resume_from_checkpoint else []
    if foreign:  # its checkpoints would not load (state_dict mismatch), after this run had rewritten its config
        raise outputs.OutputDirError(
            f"--output_dir {out} holds a run of another trainer (its {CONFIG_FILE} has {', '.join(foreign[:3])}, "
            "which this trainer does not take); it cannot be resumed by this one: choose another folder"
        )
    per_class = [p for p in out.iterdir() if p.is_dir() and list_checkpoints(p)]  # one model per class (SD)
    if found == outputs.GENERATOR and not (checkpoints or per_class and cfg.resume_from_checkpoint):
        # nothing to resume: the run would replace the generator
        raise outputs.OutputDirError(
            f"--output_dir {out} already holds {outputs.KIND_TEXT[found]} (no checkpoint to resume); choose a new "
            "folder or pass --overwrite_output_dir to replace it"
        )
    return out


def _other_trainer_fields(out: Path, cfg: Any) -> list[str]:
    """The fields of ``out``'s recorded run that ``cfg``'s trainer does not have (another trainer's run), if any."""
    try:
        old = json.loads((out / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(old, dict) or not dataclasses.is_dataclass(cfg):
        return []
    return sorted(set(old) - {f.name for f in dataclasses.fields(cfg)})


def prepare_output_dir(cfg: TrainingConfig) -> Path:
    """:func:`check_output_dir`, then create the folder. Call it once every input has been checked."""
    out = check_output_dir(cfg)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileExistsError(f"--output_dir {cfg.output_dir}: cannot create it ({exc.strerror or exc})") from None
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


def registered_states(checkpoint: str | os.PathLike) -> list[Path]:
    """The pickled objects a checkpoint holds (``custom_checkpoint_N.pkl``), in the order they were registered for
    checkpointing: a run's extra state (an EMA) first, its :class:`TrainState` last (``resume_and_track``)."""
    found = Path(checkpoint).glob("custom_checkpoint_*.pkl")
    return sorted(found, key=lambda p: int(p.stem.rsplit("_", 1)[1]))


def checkpoint_step(checkpoint: str | os.PathLike) -> int:
    """The optimiser step a checkpoint was saved at (its :class:`TrainState`), whatever its folder's number."""
    import torch

    from .state import TrainState

    states = registered_states(checkpoint)
    if not states:
        raise FileNotFoundError(f"{checkpoint} holds no training state (custom_checkpoint_*.pkl): not a checkpoint "
                                "of a synthxray training run")
    state = TrainState()
    state.load_state_dict(torch.load(states[-1], map_location="cpu", weights_only=False))  # the run's own file
    return int(state.step)


def checkpoints_by_step(output_dir: str | os.PathLike) -> dict[int, Path]:
    """Every checkpoint of a run, keyed by the step it was saved at (numbers shift with resumes and budgets)."""
    return {checkpoint_step(p): p for p in list_checkpoints(output_dir)}


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
