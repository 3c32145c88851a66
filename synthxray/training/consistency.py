"""Consistency distillation of a class-conditional DDPM into a few-step generator (Song et al. 2023; the
discrete-time, skipping-step form of LCM, Luo et al. 2023, as in diffusers' LCM distillation scripts).

Each step draws a real image ``x0`` and a point ``t_n`` of an N-point grid on the teacher's T training
steps (``k = T // N`` apart), noises ``x0`` to ``x_t``, takes one DDIM (or DPM-Solver-2) step of the teacher's
probability-flow ODE to ``t_{n-1} = t_n - k`` and asks the student at ``(x_t, t_n)`` to agree with an EMA "target" copy of the
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
from ..outputs import OutputDirError, inside
from ..generators.base import GeneratorInfo, load_generator, resolve_pretrained_dir
from ..generators.consistency import ConsistencyGenerator, boundary_scalings, make_consistency_scheduler
from ..generators.ddpm import ClassConditionalDDPMPipeline, DDPMGenerator
from .common import TrainState, hardware_summary, help_field, make_ema, make_lr_scheduler, plan_steps, train_loop, training_layout
from .image_data import ImageDataConfig, finish, image_dataloader, load_image_dataset, resume_and_track, start_run

logger = logging.getLogger("synthxray.training")

LOSS_TYPES = ("huber", "l2")
ODE_SOLVERS = ("ddim", "dpm-solver-2")


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
    ode_solver: str = help_field(
        "ddim", "The teacher's ODE step between grid points: ddim (first order, LCM's) | dpm-solver-2 (second order, "
        "two teacher passes; the original consistency distillation used a second-order Heun step)."
    )
    target_ema_decay: float = help_field(0.95, "EMA decay of the target network (LCM: 0.95).")
    use_ema: bool = help_field(
        False, "Also keep a slow EMA of the student and save it as the model (consistency models sample from one; "
        "the target network above is a separate, fast EMA)."
    )
    ema_max_decay: float = help_field(0.999, "Student EMA decay ceiling (warm-up 1 - (1 + step) ** -0.75 below it).")
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
        steps = teacher_timesteps(self.teacher, self.teacher_revision)
        most = steps // 2 if self.ode_solver == "dpm-solver-2" else steps
        if steps and self.num_solver_steps > most:
            why = " (dpm-solver-2 needs >= 2 steps between grid points)" if self.ode_solver == "dpm-solver-2" else ""
            raise ValueError(f"--num_solver_steps {self.num_solver_steps} is more than the {most} the teacher's "
                             f"{steps} training timesteps allow{why}; choose 1..{most}")
        teacher_dir = Path(self.teacher).expanduser()
        if teacher_dir.is_dir() and inside(self.output_dir, teacher_dir):
            raise OutputDirError(f"--output_dir {self.output_dir} is the teacher's folder {self.teacher} (or inside "
                                 "it): the student would overwrite its teacher; choose another folder")
        if not 1 <= self.sample_steps <= self.num_solver_steps:
            raise ValueError(f"--sample_steps must be in 1..--num_solver_steps ({self.num_solver_steps}), got {self.sample_steps}")
        if not 0 <= self.target_ema_decay < 1:
            raise ValueError(f"--target_ema_decay must be in [0, 1), got {self.target_ema_decay}")
        if not 0 <= self.ema_max_decay < 1:
            raise ValueError(f"--ema_max_decay must be in [0, 1), got {self.ema_max_decay}")
        if self.ode_solver not in ODE_SOLVERS:
            raise ValueError(f"--ode_solver must be one of {ODE_SOLVERS}, got {self.ode_solver!r}")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"--loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if self.huber_c is not None and self.huber_c <= 0:
            raise ValueError(f"--huber_c must be > 0, got {self.huber_c}")
        if self.guidance_scale < 1:
            raise ValueError(f"--guidance_scale must be >= 1 (1 = off), got {self.guidance_scale}")


def teacher_timesteps(teacher: str, revision: str | None = None) -> int:
    """The teacher's number of training timesteps T (its ``scheduler_config.json``; 0 when not recorded)."""
    import json

    path = resolve_pretrained_dir(teacher, revision=revision) / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        return 0
    return int(json.loads(path.read_text()).get("num_train_timesteps") or 0)


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
                 timestep_scaling: float = 10.0, ode_solver: str = "ddim") -> None:
        if prediction_type not in ("v_prediction", "epsilon"):
            raise ValueError(f"the teacher's prediction_type {prediction_type!r} is not supported (v_prediction or epsilon)")
        self.student, self.teacher, self.target = student, teacher, target
        self.alphas_cumprod = alphas_cumprod.float()
        T = len(alphas_cumprod)
        self.skip = T // num_solver_steps
        # LCM's grid: k-1, 2k-1, ..., N*k-1 (its last point is T-1 when N divides T)
        self.grid = torch.arange(1, num_solver_steps + 1) * self.skip - 1
        if ode_solver not in ODE_SOLVERS:
            raise ValueError(f"ode_solver must be one of {ODE_SOLVERS}, got {ode_solver!r}")
        if ode_solver == "dpm-solver-2" and self.skip < 2:
            raise ValueError(f"dpm-solver-2 needs a grid interval of >= 2 steps; {num_solver_steps} points on {T} steps give {self.skip}")
        self.ode_solver = ode_solver
        a = self.alphas_cumprod.double()
        self.log_snr = (0.5 * torch.log(a / (1 - a))).float()  # lambda(t), decreasing in t
        # per grid point t: the training step strictly inside (t - k, t) nearest the log-SNR midpoint with t - k
        self.midpoint = torch.zeros(T, dtype=torch.long)
        for t_n in self.grid.tolist():
            s_n = int(self.previous(torch.tensor(t_n)))
            inner = torch.arange(s_n + 1, t_n)
            if len(inner):
                target = 0.5 * (self.log_snr[t_n] + self.log_snr[s_n])
                self.midpoint[t_n] = inner[(self.log_snr[inner] - target).abs().argmin()]
        self.prediction_type, self.null_class, self.guidance_scale = prediction_type, null_class, guidance_scale
        self.loss_type, self.huber_c, self.timestep_scaling = loss_type, huber_c, timestep_scaling

    def previous(self, t: torch.Tensor) -> torch.Tensor:
        """The grid point before ``t``: ``t - k``, or 0 for the first one (``k - 1``)."""
        return (t - self.skip).clamp(min=0)

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

    def _teacher_x0(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The teacher's clean-image prediction at ``(x, t)`` (guided when ``guidance_scale != 1``), clipped to [-1, 1]."""
        alpha, sigma = self._coefficients(t, x.device)
        if self.guidance_scale != 1.0:
            both = self.teacher(torch.cat([x, x]), torch.cat([t, t]),
                                class_labels=torch.cat([labels, torch.full_like(labels, self.null_class)])).sample
            cond, uncond = both.chunk(2)
            out = uncond + self.guidance_scale * (cond - uncond)
        else:
            out = self.teacher(x, t, class_labels=labels).sample
        return self._x0_eps(out, x, alpha, sigma)[0].clamp(-1, 1)

    def _ddim(self, x: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        alpha, sigma = self._coefficients(t, x.device)
        alpha_s, sigma_s = self._coefficients(s, x.device)
        return alpha_s * x0 + sigma_s * (x - alpha * x0) / sigma

    @torch.no_grad()
    def teacher_step(self, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One step of the teacher's probability-flow ODE from ``t`` to ``s``: DDIM (first order, one teacher
        pass) or DPM-Solver-2 (DPM-Solver++(2S), Lu et al. 2022: a second pass at the log-SNR midpoint)."""
        x0 = self._teacher_x0(x, t, labels)
        if self.ode_solver == "dpm-solver-2":
            mid = self.midpoint.to(t.device)[t]
            x0_mid = self._teacher_x0(self._ddim(x, x0, t, mid), mid, labels)
            lam = self.log_snr.to(x.device)
            r = ((lam[mid] - lam[t]) / (lam[s] - lam[t])).view(-1, 1, 1, 1)
            x0 = (1 - 0.5 / r) * x0 + (0.5 / r) * x0_mid
        return self._ddim(x, x0, t, s)

    @torch.no_grad()
    def solve(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The teacher's ODE from pure noise at the grid's last point to t = 0, one ``teacher_step`` per grid
        interval: the image a perfect student would return from ``noise`` in one evaluation."""
        x = noise
        for t_n in self.grid.flip(0).tolist():
            t = torch.full((len(x),), t_n, dtype=torch.long, device=x.device)
            x = self.teacher_step(x, t, self.previous(t), labels)
        return x

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        clean, labels = batch["pixel_values"], batch["label"]
        n = clean.shape[0]
        index = torch.randint(0, len(self.grid), (n,))
        t = self.grid[index].to(clean.device)
        s = self.previous(t)
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
    ema = make_ema(accelerator.unwrap_model(student), cfg.ema_max_decay) if cfg.use_ema else None
    if ema is not None:
        ema.to(accelerator.device)
    resume_and_track(accelerator, cfg, state, "distill_consistency", target, ema)

    teacher_scheduler = teacher.pipeline.scheduler.config
    pixels = channels * size * size
    objective = ConsistencyObjective(
        student, teacher_unet, target, teacher.pipeline.scheduler.alphas_cumprod, cfg.num_solver_steps,
        teacher_scheduler.prediction_type, null_class=len(names), guidance_scale=cfg.guidance_scale,
        loss_type=cfg.loss_type, huber_c=cfg.huber_c or 0.00054 * math.sqrt(pixels), ode_solver=cfg.ode_solver,
    )
    crop = getattr(teacher.pipeline.config, "image_size", None)

    def make_generator() -> ConsistencyGenerator:
        model = type(teacher_unet).from_config(teacher_unet.config)
        model.load_state_dict(accelerator.unwrap_model(student).state_dict())
        if ema is not None:
            ema.copy_to(model.parameters())
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
                    "method": "consistency distillation (LCM-style, skipping step)", "ode_solver": cfg.ode_solver,
                    "teacher": cfg.teacher, "teacher_revision": teacher.revision or cfg.teacher_revision,
                    "teacher_backend": teacher.backend, "teacher_train_steps": teacher.info.extra.get("train_steps"),
                    "num_solver_steps": cfg.num_solver_steps, "skip": objective.skip, "guidance_scale": cfg.guidance_scale,
                    "loss_type": cfg.loss_type, "target_ema_decay": cfg.target_ema_decay,
                    "student_ema_decay": cfg.ema_max_decay if cfg.use_ema else None,
                },
                "train_steps": state.step, "train_seconds": round(state.elapsed(), 1), "train_config": cfg.to_dict(),
                "hardware": hardware_summary(accelerator), **training_layout(accelerator, cfg),
            },
        )

    def on_step(step: int) -> None:
        update_target(target, accelerator.unwrap_model(student), cfg.target_ema_decay)
        if ema is not None:
            ema.step(accelerator.unwrap_model(student).parameters())
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
