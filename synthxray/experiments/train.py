"""One classifier run: decode pixels once, train with seed 004's defaults, keep the best epoch on validation.

Images are decoded, resized and centre-cropped once into uint8 tensors (:func:`encode_images`);
augmentation (flip, rotation, colour jitter) runs on whole batches of tensors, so an epoch costs
only the network's forward and backward passes.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .classifier import Classifier

logger = logging.getLogger("synthxray.experiments")

SCHEDULES = ("cosine", "constant")
MONITORS = ("val_loss", "val_accuracy")


@dataclass
class TrainConfig:
    """Optimiser and augmentation settings of one run (seed 004's defaults)."""

    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    lr_scheduler: str = "cosine"
    hflip: bool = True
    rotation: float = 10.0  # degrees, uniform in [-rotation, rotation]
    color_jitter: float = 0.2  # brightness and contrast factors in [1 - j, 1 + j]
    early_stopping_patience: int | None = None  # seed 001 used 3
    early_stopping_monitor: str = "val_loss"
    max_grad_norm: float = 0.0
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("epochs, batch_size and eval_batch_size must be >= 1")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError("learning_rate must be > 0 and weight_decay >= 0")
        if self.lr_scheduler not in SCHEDULES:
            raise ValueError(f"lr_scheduler must be one of {SCHEDULES}, got {self.lr_scheduler!r}")
        if not 0 <= self.rotation <= 180 or not 0 <= self.color_jitter < 1:
            raise ValueError("rotation must be in [0, 180] degrees and color_jitter in [0, 1)")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError("early_stopping_patience must be >= 1 (or unset)")
        if self.early_stopping_monitor not in MONITORS:
            raise ValueError(f"early_stopping_monitor must be one of {MONITORS}")


# ---- pixels ------------------------------------------------------------------------------------
def encode_images(ds, size: int, channels: int, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, channels, size, size), int64 labels) of a dataset with ``image``/``label`` columns."""
    from tqdm.auto import tqdm

    from ..data import resize_center_crop, to_mode

    n = len(ds)
    images = torch.empty((n, channels, size, size), dtype=torch.uint8)
    labels = torch.as_tensor(np.asarray(ds["label"], dtype=np.int64))
    col = ds.select_columns(["image"])
    for i, row in enumerate(tqdm(col, total=n, desc="decode", unit="img", disable=not progress)):
        arr = np.array(to_mode(resize_center_crop(row["image"], size), channels), dtype=np.uint8)
        images[i] = torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy())
    return images, labels


def to_float(images: torch.Tensor, device: Any) -> torch.Tensor:
    return images.to(device, non_blocking=True).float().div_(255.0)


def augment_batch(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Per-image random horizontal flip, rotation (degrees) and brightness/contrast jitter on [0, 1] tensors."""
    n = x.shape[0]
    dev = x.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return (torch.rand(n, generator=gen) * (hi - lo) + lo).to(dev)

    if cfg.hflip:
        flip = (torch.rand(n, generator=gen) < 0.5).to(dev)
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    if cfg.rotation > 0:
        angle = uniform(-cfg.rotation, cfg.rotation) * math.pi / 180
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], 1), torch.stack([sin, cos, torch.zeros_like(cos)], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.color_jitter > 0:
        j = cfg.color_jitter
        x = x * uniform(1 - j, 1 + j).view(-1, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * uniform(1 - j, 1 + j).view(-1, 1, 1, 1) + mean
        x = x.clamp_(0, 1)
    return x


# ---- batches -------------------------------------------------------------------------------------
def epoch_batches(n_real: int, n_synth: int, batch_size: int, synth_fraction: float | None, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices (real rows first, then synthetic rows) for one epoch.

    Without ``synth_fraction`` all rows are shuffled together. With it, every batch holds
    ``round(batch_size * synth_fraction)`` synthetic rows and the rest real rows, each drawn without
    replacement from its own shuffled stream (restarted when used up); the epoch has as many batches
    as a plain epoch over all rows would.
    """
    total = n_real + n_synth
    if total == 0:
        raise ValueError("no training images")
    num_batches = max(1, math.ceil(total / batch_size))
    if not synth_fraction:
        order = rng.permutation(total)
        out = [order[i * batch_size : (i + 1) * batch_size] for i in range(num_batches)]
    else:
        k = min(batch_size - 1, max(1, int(round(batch_size * synth_fraction))))
        streams = {"real": (np.arange(n_real), batch_size - k), "synth": (np.arange(n_real, total), k)}
        pos = {key: [rng.permutation(rows), 0] for key, (rows, _) in streams.items()}
        out = []
        for _ in range(num_batches):
            parts = []
            for key, (rows, take) in streams.items():
                got: list[np.ndarray] = []
                while take > 0:
                    perm, p = pos[key]
                    if p >= len(perm):
                        perm, p = rng.permutation(rows), 0
                    chunk = perm[p : p + take]
                    got.append(chunk)
                    take -= len(chunk)
                    pos[key] = [perm, p + len(chunk)]
                parts.append(np.concatenate(got))
            out.append(rng.permutation(np.concatenate(parts)))
    # a batch of one breaks batch norm in training mode
    if len(out) > 1 and len(out[-1]) == 1:
        out = out[:-1]
    return out


# ---- evaluation -------------------------------------------------------------------------------------
@torch.no_grad()
def predict_tensors(model: Classifier, images: torch.Tensor, batch_size: int = 256, device: Any = "cpu") -> np.ndarray:
    """Softmax probabilities for uint8 image tensors."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        logits = model(to_float(images[start : start + batch_size], device))
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.num_classes), dtype=np.float32)


def _val_stats(model: Classifier, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig, device: Any) -> tuple[float, float]:
    probs = predict_tensors(model, images, cfg.eval_batch_size, device)
    y = labels.numpy()
    loss = float(F.nll_loss(torch.log(torch.from_numpy(probs).clamp_min(1e-12)), torch.from_numpy(y)).item())
    return loss, float((probs.argmax(1) == y).mean())


# ---- training -------------------------------------------------------------------------------------
def train_classifier(
    model: Classifier,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    val_images: torch.Tensor,
    val_labels: torch.Tensor,
    cfg: TrainConfig,
    seed: int = 0,
    n_synthetic: int = 0,
    batch_synthetic_fraction: float | None = None,
    device: Any = "cpu",
    autocast: Callable[[], Any] | None = None,
    log_prefix: str = "",
    class_weight: torch.Tensor | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place with AdamW + schedule; load the epoch with the best validation accuracy.

    The last ``n_synthetic`` rows of ``train_images`` are synthetic (used by the per-batch ratio);
    ``class_weight`` (one weight per class) weights the training loss.
    Returns one record per epoch (train loss/accuracy, validation loss/accuracy, learning rate, seconds).
    """
    import contextlib

    torch.manual_seed(seed)
    rng = np.random.default_rng([int(seed), 11])
    gen = torch.Generator().manual_seed(int(seed))
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{model.backbone}: no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    n_real = len(train_images) - n_synthetic
    steps_per_epoch = len(epoch_batches(n_real, n_synthetic, cfg.batch_size, batch_synthetic_fraction, np.random.default_rng(0)))
    total = steps_per_epoch * cfg.epochs
    if cfg.lr_scheduler == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total, 1))
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    autocast = autocast or contextlib.nullcontext
    weight = None if class_weight is None else class_weight.to(device, torch.float32)
    history: list[dict[str, float]] = []
    best: tuple[float, float] | None = None  # (val accuracy, -val loss)
    best_state = None
    monitor_best, waited = None, 0
    for epoch in range(1, cfg.epochs + 1):
        started = time.time()
        model.train()
        seen, loss_sum, correct = 0, 0.0, 0
        for idx in epoch_batches(n_real, n_synthetic, cfg.batch_size, batch_synthetic_fraction, rng):
            idx_t = torch.from_numpy(idx)
            x = augment_batch(to_float(train_images[idx_t], device), cfg, gen)
            y = train_labels[idx_t].to(device)
            with autocast():
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, weight=weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            seen += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        val_loss, val_acc = _val_stats(model, val_images, val_labels, cfg, device)
        record = {
            "epoch": epoch, "train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
            "val_loss": val_loss, "val_accuracy": val_acc, "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(time.time() - started, 2),
        }
        history.append(record)
        logger.info("%sepoch %d/%d: train loss %.4f acc %.3f | val loss %.4f acc %.3f (%.1fs)", log_prefix, epoch, cfg.epochs,
                    record["train_loss"], record["train_accuracy"], val_loss, val_acc, record["seconds"])
        key = (val_acc, -val_loss)
        if best is None or key > best:
            best, best_state = key, copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            record["best"] = True
        if cfg.early_stopping_patience:
            value = val_loss if cfg.early_stopping_monitor == "val_loss" else -val_acc
            if monitor_best is None or value < monitor_best - 1e-6:
                monitor_best, waited = value, 0
            else:
                waited += 1
                if waited >= cfg.early_stopping_patience:
                    logger.info("%searly stopping after epoch %d (%s did not improve for %d epochs)", log_prefix, epoch, cfg.early_stopping_monitor, waited)
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history
