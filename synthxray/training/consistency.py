"""Consistency distillation of a class-conditional DDPM into a few-step generator (Song et al. 2023; the
discrete-time, skipping-step form of LCM, Luo et al. 2023, as in diffusers' LCM distillation scripts).

Each step draws a real image ``x0`` and a point ``t_n`` of an N-point grid on the teacher's T training
steps (``k = T // N`` apart), noises ``x0`` to ``x_t``, takes one DDIM step of the teacher's probability-flow
ODE to ``t_{n-1} = t_n - k`` and asks the student at ``(x_t, t_n)`` to agree with an EMA "target" copy of the
student at ``(x_{t-k}, t_{n-1})``. Both are read through the boundary-condition form
``f(x, t) = c_skip(t) x + c_out(t) x0_pred(x, t)`` that ``LCMScheduler`` samples with, so ``f(x, 0) = x``.
The student and target start from the teacher's (EMA) weights; the teacher's guidance can be folded in.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..data import DataError
from ..generators.base import GeneratorInfo, load_generator, resolve_pretrained_dir
from ..generators.consistency import ConsistencyGenerator, boundary_scalings, make_consistency_scheduler
from ..generators.ddpm import ClassConditionalDDPMPipeline, DDPMGenerator
from .common import TrainState, hardware_summary, help_field, make_lr_scheduler, plan_steps, train_loop, training_layout
from .image_data import ImageDataConfig, finish, image_dataloader, load_image_dataset, resume_and_track, start_run

logger = logging.getLogger("synthxray.training")

LOSS_TYPES = ("huber", "l2")


@dataclass
class ConsistencyDistillationConfig(ImageDataConfig):
    """Flags of ``train_scripts/distill_consistency.py``. ``--dataset`` and ``--resolution`` default to the teacher's."""

    teacher: str = help_field("", "The DDPM to distil: a synthxray ddpm generator folder or Hub repo id.")
    teacher_revision: str | None = help_field(None, "Hub revision (branch, tag or commit) of --teacher.")
    dataset: str = help_field("", "Training images (default: the teacher's recorded --dataset).")
    resolution: int = help_field(0, "Image size (default 0: the teacher's; another size is an error).")
    num_solver_steps: int = help_field(
        20, "N: points of the solver grid on the teacher's T steps (skip k = T // N). The student samples in 1..N "
        "evaluations. Fewer, larger ODE steps carry the t = 0 boundary condition to t = T in fewer updates "
        "(what a short budget needs) at the cost of more solver error; LCM used 50.",
    )
    guidance_scale: float = help_field(
        1.0, "Teacher classifier-free guidance folded into the ODE step (1.0: off, one teacher pass per step; "
        "the teacher needs a trained null class)."
    )
    target_ema_decay: float = help_field(0.95, "EMA decay of the target network (LCM: 0.95).")
    loss_type: str = help_field("huber", "huber (pseudo-Huber, Song & Dhariwal 2023) | l2.")
    huber_c: float | None = help_field(None, "Pseudo-Huber c (default 0.00054 * sqrt(pixels x channels)).")
    learning_rate: float = help_field(1e-4, "Peak learning rate.")
    lr_scheduler: str = help_field("cosine", "cosine | constant | constant_with_warmup | linear | onecycle.")
    lr_warmup_steps: int = help_field(20, "Linear warm-up steps.")
    adam_weight_decay: float = help_field(0.0, "AdamW weight decay.")
    train_batch_size: int = help_field(32, "Batch size per device.")
    sample_steps: int = help_field(4, "Default network evaluations per image saved with the model.")
    num_epochs: int = help_field(5, "Passes over the training data, used when max_train_steps is not set.")

    def __post_init__(self) -> None:
        if not self.teacher:
            raise ValueError("--teacher is required: the ddpm generator folder or Hub repo id to distil")
        info = teacher_info(self.teacher, self.teacher_revision)
        if not self.dataset:
            self.dataset = str(info.data.get("source") or "")
            if not self.dataset:
                raise ValueError(f"--teacher {self.teacher} records no training dataset; pass --dataset")
        if not self.resolution:
            self.resolution = int(info.resolution or 0) or 32
        elif info.resolution and self.resolution != info.resolution:
            raise ValueError(f"--resolution {self.resolution} differs from the teacher's {info.resolution}; drop --resolution")
        super().__post_init__()
        if self.num_solver_steps < 1:
            raise ValueError(f"--num_solver_steps must be >= 1, got {self.num_solver_steps}")
        if not 1 <= self.sample_steps <= self.num_solver_steps:
            raise ValueError(f"--sample_steps must be in 1..--num_solver_steps ({self.num_solver_steps}), got {self.sample_steps}")
        if not 0 <= self.target_ema_decay < 1:
            raise ValueError(f"--target_ema_decay must be in [0, 1), got {self.target_ema_decay}")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"--loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if self.huber_c is not None and self.huber_c <= 0:
            raise ValueError(f"--huber_c must be > 0, got {self.huber_c}")
        if self.guidance_scale < 1:
            raise ValueError(f"--guidance_scale must be >= 1 (1 = off), got {self.guidance_scale}")


def teacher_info(teacher: str, revision: str | None = None) -> GeneratorInfo:
    """The teacher's ``synthxray.json``; anything but a ddpm generator is an error that says what to pass."""
    info = GeneratorInfo.load(resolve_pretrained_dir(teacher, revision=revision))
    if info.backend != DDPMGenerator.backend:
        raise ValueError(f"--teacher {teacher} is a {info.backend!r} generator; consistency distillation needs a 'ddpm' one")
    return info


class ConsistencyObjective:
    """The consistency-distillation loss of one batch: ``student``, ``teacher`` and ``target`` UNets on the
    teacher's noise schedule (``alphas_cumprod``) and an N-point solver grid."""

    def __init__(self, student, teacher, target, alphas_cumprod: torch.Tensor, num_solver_steps: int, prediction_type: str,
                 null_class: int, guidance_scale: float = 1.0, loss_type: str = "huber", huber_c: float = 0.01,
                 timestep_scaling: float = 10.0) -> None:
        if prediction_type not in ("v_prediction", "epsilon"):
            raise ValueError(f"the teacher's prediction_type {prediction_type!r} is not supported (v_prediction or epsilon)")
        self.student, self.teacher, self.target = student, teacher, target
        self.alphas_cumprod = alphas_cumprod.float()
        T = len(alphas_cumprod)
        self.skip = T // num_solver_steps
        # LCM's grid: k-1, 2k-1, ..., N*k-1 (its last point is T-1 when N divides T)
        self.grid = torch.arange(1, num_solver_steps + 1) * self.skip - 1
        self.prediction_type, self.null_class, self.guidance_scale = prediction_type, null_class, guidance_scale
        self.loss_type, self.huber_c, self.timestep_scaling = loss_type, huber_c, timestep_scaling

    def _coefficients(self, t: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.alphas_cumprod.to(device)[t].view(-1, 1, 1, 1)
        return a.sqrt(), (1 - a).sqrt()

    def _x0_eps(self, out: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.prediction_type == "v_prediction":
            return alpha * x - sigma * out, sigma * x + alpha * out
        return (x - sigma * out) / alpha, out

    def consistency(self, net, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``f(x, t) = c_skip x + c_out x0_pred``: what ``LCMScheduler`` makes of ``net``'s output (unclipped)."""
        alpha, sigma = self._coefficients(t, x.device)
        x0, _ = self._x0_eps(net(x, t, class_labels=labels).sample, x, alpha, sigma)
        c_skip, c_out = boundary_scalings(t, self.timestep_scaling)
        return c_skip * x + c_out * x0

    @torch.no_grad()
    def teacher_step(self, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One DDIM step of the teacher's ODE from ``t`` to ``s`` (guided when ``guidance_scale != 1``; x0 clipped)."""
        alpha, sigma = self._coefficients(t, x.device)
        if self.guidance_scale != 1.0:
            both = self.teacher(torch.cat([x, x]), torch.cat([t, t]),
                                class_labels=torch.cat([labels, torch.full_like(labels, self.null_class)])).sample
            cond, uncond = both.chunk(2)
            out = uncond + self.guidance_scale * (cond - uncond)
        else:
            out = self.teacher(x, t, class_labels=labels).sample
        x0, _ = self._x0_eps(out, x, alpha, sigma)
        x0 = x0.clamp(-1, 1)
        eps = (x - alpha * x0) / sigma
        alpha_s, sigma_s = self._coefficients(s, x.device)
        return alpha_s * x0 + sigma_s * eps

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        clean, labels = batch["pixel_values"], batch["label"]
        n = clean.shape[0]
        index = torch.randint(0, len(self.grid), (n,))
        t = self.grid[index].to(clean.device)
        s = (t - self.skip).clamp(min=0)
        noise = torch.randn_like(clean)
        alpha, sigma = self._coefficients(t, clean.device)
        noisy = alpha * clean + sigma * noise
        pred = self.consistency(self.student, noisy, t, labels)
        with torch.no_grad():
            target = self.consistency(self.target, self.teacher_step(noisy, t, s, labels), s, labels)
        if self.loss_type == "l2":
            return F.mse_loss(pred.float(), target.float())
        return (torch.sqrt((pred.float() - target.float()) ** 2 + self.huber_c**2) - self.huber_c).mean()


@torch.no_grad()
def update_target(target: torch.nn.Module, student: torch.nn.Module, decay: float) -> None:
    """``target = decay * target + (1 - decay) * student``, parameter by parameter."""
    for t, s in zip(target.parameters(), student.parameters()):
        t.lerp_(s.detach().to(t.dtype), 1.0 - decay)


def load_teacher(cfg: ConsistencyDistillationConfig) -> tuple[DDPMGenerator, Any, list[str], int]:
    """``(teacher, dataset, class names, channels)``; the data's classes must be the teacher's, in its order."""
    teacher = load_generator(cfg.teacher, revision=cfg.teacher_revision, device="cpu")  # revision: the commit it resolved to
    if not isinstance(teacher, DDPMGenerator):
        raise ValueError(f"--teacher {cfg.teacher} is a {teacher.backend!r} generator; consistency distillation needs a 'ddpm' one")
    ds, names, channels = load_image_dataset(cfg)
    if names != teacher.class_names:
        raise DataError(f"--dataset {cfg.dataset} has classes {names}; the teacher {cfg.teacher} was trained on {teacher.class_names}")
    if channels != teacher.info.channels:
        raise DataError(f"--dataset {cfg.dataset} gives {channels}-channel images; the teacher {cfg.teacher} makes {teacher.info.channels}")
    return teacher, ds, names, channels


def train(cfg: ConsistencyDistillationConfig) -> Path:
    """Distil ``cfg.teacher``, checkpoint, and save the student (a ``consistency`` generator) to ``cfg.output_dir``."""
    from accelerate.utils import set_seed

    out, accelerator, (teacher, ds, names, channels) = start_run(cfg, lambda: load_teacher(cfg))
    teacher_unet = teacher.pipeline.unet.eval().requires_grad_(False)
    size = teacher_unet.config.sample_size
    size = size if isinstance(size, int) else size[0]
    dataloader = image_dataloader(cfg, ds, channels, pad_to=size)
    set_seed(cfg.seed)
    student = copy.deepcopy(teacher_unet).requires_grad_(True).train()
    target = copy.deepcopy(teacher_unet)  # registered for checkpointing: a resumed run continues the same target

    optimizer = torch.optim.AdamW(student.parameters(), lr=cfg.learning_rate, weight_decay=cfg.adam_weight_decay)
    student, optimizer, dataloader = accelerator.prepare(student, optimizer, dataloader)
    teacher_unet.to(accelerator.device)
    target.to(accelerator.device)
    max_steps, num_epochs = plan_steps(cfg, cfg.num_epochs, dataloader, accelerator)
    state = TrainState()
    lr_scheduler = accelerator.prepare(make_lr_scheduler(cfg, optimizer, max_steps, accelerator.num_processes, state=state))
    resume_and_track(accelerator, cfg, state, "distill_consistency", target)

    teacher_scheduler = teacher.pipeline.scheduler.config
    pixels = channels * size * size
    objective = ConsistencyObjective(
        student, teacher_unet, target, teacher.pipeline.scheduler.alphas_cumprod, cfg.num_solver_steps,
        teacher_scheduler.prediction_type, null_class=len(names), guidance_scale=cfg.guidance_scale,
        loss_type=cfg.loss_type, huber_c=cfg.huber_c or 0.00054 * math.sqrt(pixels),
    )
    crop = getattr(teacher.pipeline.config, "image_size", None)

    def make_generator() -> ConsistencyGenerator:
        model = type(teacher_unet).from_config(teacher_unet.config)
        model.load_state_dict(accelerator.unwrap_model(student).state_dict())
        pipe = ClassConditionalDDPMPipeline(unet=model.eval(), scheduler=make_consistency_scheduler(teacher_scheduler, cfg.num_solver_steps),
                                            image_size=crop)
        pipe.set_progress_bar_config(disable=True)
        return ConsistencyGenerator(pipe, info())

    def info() -> GeneratorInfo:
        return GeneratorInfo(
            backend=ConsistencyGenerator.backend, class_names=names, channels=channels, resolution=cfg.resolution,
            base_model=cfg.teacher, base_model_revision=teacher.revision or cfg.teacher_revision,
            data={"source": str(cfg.dataset), "split": cfg.dataset_split, "num_images": len(ds)},
            defaults={"scheduler": "lcm", "num_inference_steps": cfg.sample_steps},
            extra={
                "distillation": {
                    "method": "consistency distillation (LCM-style, DDIM solver, skipping step)",
                    "teacher": cfg.teacher, "teacher_revision": teacher.revision or cfg.teacher_revision,
                    "teacher_backend": teacher.backend, "teacher_train_steps": teacher.info.extra.get("train_steps"),
                    "num_solver_steps": cfg.num_solver_steps, "skip": objective.skip, "guidance_scale": cfg.guidance_scale,
                    "loss_type": cfg.loss_type, "target_ema_decay": cfg.target_ema_decay,
                },
                "train_steps": state.step, "train_seconds": round(state.elapsed(), 1), "train_config": cfg.to_dict(),
                "hardware": hardware_summary(accelerator), **training_layout(accelerator, cfg),
            },
        )

    def on_step(step: int) -> None:
        update_target(target, accelerator.unwrap_model(student), cfg.target_ema_decay)
        if cfg.save_images_steps and step % cfg.save_images_steps == 0 and accelerator.is_main_process:
            from .image_data import save_sample_grid

            save_sample_grid(make_generator(), cfg, out, step, accelerator)
            student.train()

    logger.info("distilling %s into a %d-point consistency model: %d images, %d steps (%d epochs)",
                cfg.teacher, cfg.num_solver_steps, len(ds), max_steps, num_epochs)
    started, first_step, seconds_before = time.time(), state.step, state.seconds
    train_loop(accelerator, cfg, state, [student], optimizer, lr_scheduler, dataloader, objective, max_steps, on_step=on_step)
    accelerator.wait_for_everyone()
    finish(cfg, out, make_generator, state, accelerator, started, first_step, seconds_before,
           summary_extra={"teacher": cfg.teacher, **training_layout(accelerator, cfg)})
    accelerator.end_training()
    return out
