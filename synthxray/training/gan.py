"""Train the GAN baselines: ``dcgan`` (seed 000), ``wgan-gp`` (seeds 002/003), ``cgan`` and ``acgan`` (seed 002).

The adversarial step (``AdversarialStep``) is the only loop logic here; ``training.common.train_loop``
runs it (``step_fn``) with the same step counting, checkpoints, resume, time budget and logging as the
DDPM. One step is one discriminator update; the generator is updated every ``n_critic`` steps.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..generators.gan import GAN_ARCHITECTURES, GANGenerator, gan_generator_class
from ..networks.gan import CONDITIONINGS, TORCHVISION_BACKBONES, ConvDiscriminator, ConvGenerator, TorchvisionDiscriminator
from ..networks.common import resolution_plan
from .common import TrainState, help_field, make_ema as common_make_ema, make_lr_scheduler, plan_steps, train_loop
from .diffaugment import diff_augment, parse_policy
from .image_data import finish, resume_and_track, save_sample_grid, start_run
from .oneshot import OneShotTrainingConfig, generator_info, load_training_data

logger = logging.getLogger("synthxray.training")

LOSSES = ("bce", "hinge", "wasserstein")
DISCRIMINATORS = ("cnn", *TORCHVISION_BACKBONES)
# per architecture: loss, discriminator conditioning, discriminator norm, Adam betas, critic steps, gradient penalty
ARCHITECTURE_DEFAULTS: dict[str, dict[str, Any]] = {
    "dcgan": dict(loss="bce", discriminator_conditioning="projection", discriminator_norm="batch", adam_beta1=0.5, adam_beta2=0.999, n_critic=1, gp_weight=0.0),
    "wgan-gp": dict(loss="wasserstein", discriminator_conditioning="projection", discriminator_norm="layer", adam_beta1=0.0, adam_beta2=0.9, n_critic=5, gp_weight=10.0),
    "cgan": dict(loss="bce", discriminator_conditioning="concat", discriminator_norm="batch", adam_beta1=0.5, adam_beta2=0.999, n_critic=1, gp_weight=0.0),
    "acgan": dict(loss="bce", discriminator_conditioning="none", discriminator_norm="batch", adam_beta1=0.5, adam_beta2=0.999, n_critic=1, gp_weight=0.0),
}


@dataclass
class GANTrainingConfig(OneShotTrainingConfig):
    """Flags of ``train_scripts/train_gan.py``. Unset (None) flags take the architecture's defaults:
    dcgan/cgan/acgan: BCE, Adam(2e-4, betas 0.5, 0.999) (seed 000); wgan-gp: Wasserstein loss, 5 critic steps,
    gradient penalty 10, Adam betas (0, 0.9) (Gulrajani et al. 2017; seed 003 used 3 steps and 5.0)."""

    architecture: str = help_field("dcgan", f"{' | '.join(GAN_ARCHITECTURES)}.")
    learning_rate: float = help_field(2e-4, "Generator Adam learning rate (seed 000: 2e-4).")
    discriminator_learning_rate: float | None = help_field(None, "Discriminator learning rate (default: --learning_rate; TTUR uses e.g. 4x).")
    adam_beta1: float | None = help_field(None, "Adam beta1 (default 0.5; wgan-gp 0.0).")
    adam_beta2: float | None = help_field(None, "Adam beta2 (default 0.999; wgan-gp 0.9).")
    latent_dim: int = help_field(100, "Latent size (seed 000: 100).")
    generator_channels: int = help_field(256, "Generator channels at its lowest resolution, halved per 2x block (seed 000: 512).")
    discriminator_channels: int = help_field(256, "CNN discriminator channels at its lowest resolution (mirrors the generator).")
    min_channels: int = help_field(32, "Channel floor at high resolution (for 128-256 px).")
    generator_norm: str = help_field("batch", "batch (DCGAN) | layer | none.")
    discriminator: str = help_field("cnn", f"Discriminator body: {' | '.join(DISCRIMINATORS)} (seed 002: ResNet, ViT-B/16, Swin-T).")
    discriminator_weights: str = help_field(
        "auto", "torchvision discriminators: auto (ImageNet weights when reachable, else random weights, announced) | none | a torchvision weights name | a .pth/.safetensors file.",
    )
    discriminator_input_size: int | None = help_field(None, "torchvision discriminators: resize images to this (default: ResNet the image size, ViT/Swin 224).")
    discriminator_norm: str | None = help_field(None, "CNN discriminator norm: batch | layer | none (default: batch; wgan-gp layer).")
    discriminator_conditioning: str | None = help_field(
        None, "How the discriminator sees the label: projection (dcgan, wgan-gp) | concat (cgan: one-hot planes; cnn only) | none (acgan: its class head instead).",
    )
    loss: str | None = help_field(None, "bce (non-saturating) | hinge | wasserstein (default: wasserstein for wgan-gp, else bce).")
    n_critic: int | None = help_field(None, "Discriminator updates per generator update (default 1; wgan-gp 5).")
    gp_weight: float | None = help_field(None, "Gradient-penalty weight on real/fake interpolates (default 0; wgan-gp 10).")
    r1_gamma: float = help_field(0.0, "R1 penalty gamma on real images (Mescheder et al. 2018; 0 disables).")
    aux_weight: float = help_field(1.0, "acgan: weight of the class cross-entropy terms.")
    spectral_norm: bool = help_field(False, "Spectral normalisation of the discriminator's layers.")
    generator_spectral_norm: bool = help_field(False, "Spectral normalisation of the generator's layers too.")
    diffaugment: str = help_field("", "DiffAugment policy for real and fake images, e.g. color,translation,cutout (empty: off).")
    use_ema: bool = help_field(False, "Keep an EMA of the generator weights and save it as the generator.")
    ema_max_decay: float = help_field(0.999, "EMA decay ceiling.")
    save_discriminator: bool = help_field(True, "Save the discriminator next to the generator (discriminator/).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.architecture not in GAN_ARCHITECTURES:
            raise ValueError(f"unknown --architecture {self.architecture!r}; choose one of {', '.join(GAN_ARCHITECTURES)}")
        for key, value in ARCHITECTURE_DEFAULTS[self.architecture].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.discriminator_learning_rate is None:
            self.discriminator_learning_rate = self.learning_rate
        if self.gradient_accumulation_steps != 1:
            raise ValueError("GAN training needs --gradient_accumulation_steps 1 (each step updates two networks)")
        if self.architecture in ("cgan", "acgan") and not self.conditional:
            raise ValueError(f"{self.architecture} is class-conditional by definition; drop --conditional false (or use dcgan)")
        if self.loss not in LOSSES:
            raise ValueError(f"--loss must be one of {LOSSES}, got {self.loss!r}")
        if self.discriminator not in DISCRIMINATORS:
            raise ValueError(f"unknown --discriminator {self.discriminator!r}; choose one of {', '.join(DISCRIMINATORS)}")
        if self.discriminator_conditioning not in CONDITIONINGS:
            raise ValueError(f"--discriminator_conditioning must be one of {CONDITIONINGS}, got {self.discriminator_conditioning!r}")
        if not self.conditional:
            self.discriminator_conditioning = "none"
        if self.discriminator != "cnn" and self.discriminator_conditioning == "concat":
            raise ValueError(f"--discriminator_conditioning concat needs --discriminator cnn ({self.discriminator} takes 3-channel images); use projection")
        if self.discriminator == "cnn" and self.discriminator_weights not in ("auto", "none"):
            raise ValueError("the cnn discriminator has no pretrained weights; drop --discriminator_weights")
        for name in ("generator_norm", "discriminator_norm"):
            if getattr(self, name) not in ("batch", "layer", "none"):
                raise ValueError(f"--{name} must be batch, layer or none, got {getattr(self, name)!r}")
        if self.n_critic < 1 or self.gp_weight < 0 or self.r1_gamma < 0 or self.aux_weight < 0:
            raise ValueError("n_critic must be >= 1 and gp_weight, r1_gamma, aux_weight >= 0")
        batch_norm_d = self.discriminator.startswith("resnet") or (self.discriminator == "cnn" and self.discriminator_norm == "batch")
        if (self.gp_weight > 0 or self.r1_gamma > 0) and batch_norm_d:
            raise ValueError(
                "a gradient penalty is per image, and batch norm mixes the images of a batch: use --discriminator_norm layer "
                "or none with the cnn discriminator, or vit_b_16 / swin_t"
            )
        parse_policy(self.diffaugment)
        resolution_plan(self.resolution, f"the {self.architecture} generator")
        if self.latent_dim < 1:
            raise ValueError("latent_dim must be >= 1")


def build_networks(cfg: GANTrainingConfig, num_classes: int, channels: int) -> tuple[ConvGenerator, torch.nn.Module, str]:
    """The generator, the discriminator and a note on the discriminator's weights (random or pretrained)."""
    k = num_classes if cfg.conditional else 0
    gen = ConvGenerator(latent_dim=cfg.latent_dim, num_classes=k, image_channels=channels, resolution=cfg.resolution,
                        base_channels=cfg.generator_channels, min_channels=cfg.min_channels, norm=cfg.generator_norm,
                        spectral_norm=cfg.generator_spectral_norm)
    aux = cfg.architecture == "acgan"
    if cfg.discriminator == "cnn":
        disc = ConvDiscriminator(image_channels=channels, resolution=cfg.resolution, num_classes=k, conditioning=cfg.discriminator_conditioning,
                                 aux_classifier=aux, base_channels=cfg.discriminator_channels, min_channels=cfg.min_channels,
                                 norm=cfg.discriminator_norm, spectral_norm=cfg.spectral_norm)
        return gen, disc, "trained from scratch (the cnn discriminator has no pretrained weights)"
    disc = TorchvisionDiscriminator(backbone=cfg.discriminator, image_channels=channels, resolution=cfg.resolution,
                                    input_size=cfg.discriminator_input_size, num_classes=k, conditioning=cfg.discriminator_conditioning,
                                    aux_classifier=aux, spectral_norm=cfg.spectral_norm)
    _, note = disc.load_pretrained_backbone(cfg.discriminator_weights)
    return gen, disc, note


def make_ema(cfg: GANTrainingConfig, gen: ConvGenerator):
    """The EMA of the generator's parameters (``--use_ema``, ``common.make_ema``), stepped on generator updates."""
    return common_make_ema(gen, cfg.ema_max_decay)


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if kind == "bce":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return fake.mean() - real.mean()


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake).mean() if kind == "bce" else -fake.mean()


def gradient_penalty(disc, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Gulrajani et al.: ``(||grad D(x_hat)|| - 1)^2`` on random interpolates of real and fake images."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out, _ = disc(mixed, labels)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


class AdversarialStep:
    """One training step: a discriminator update, and every ``n_critic`` steps a generator update."""

    def __init__(self, cfg: GANTrainingConfig, accelerator, state: TrainState, gen, disc, opt_g, opt_d, sched_g, sched_d) -> None:
        self.cfg, self.accelerator, self.state = cfg, accelerator, state
        self.gen, self.disc, self.opt_g, self.opt_d, self.sched_g, self.sched_d = gen, disc, opt_g, opt_d, sched_g, sched_d
        self.policy = parse_policy(cfg.diffaugment)
        self.last: dict[str, float] = {}

    def updates_generator(self, step: int) -> bool:
        """Whether step ``step`` (counted from 1) updates the generator."""
        return step % self.cfg.n_critic == 0

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.policy) if self.policy else x

    def _clip(self, model) -> None:
        if self.cfg.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(model.parameters(), self.cfg.max_grad_norm)

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg, acc = self.cfg, self.accelerator
        real = batch["pixel_values"]
        labels = batch["label"] if cfg.conditional else None
        d_labels = labels if cfg.discriminator_conditioning != "none" else None
        update_g = self.updates_generator(self.state.step + 1)
        z = torch.randn(real.shape[0], cfg.latent_dim, device=real.device, dtype=real.dtype)
        with contextlib.nullcontext() if update_g else torch.no_grad():
            fake = self.gen(z, labels)  # the same class mix as the real batch

        self.disc.requires_grad_(True)
        real_in = self._aug(real)
        if cfg.r1_gamma > 0:
            real_in = real_in.detach().requires_grad_(True)
        out_real, aux_real = self.disc(real_in, d_labels)
        out_fake, aux_fake = self.disc(self._aug(fake.detach()), d_labels)
        loss_d = discriminator_loss(cfg.loss, out_real, out_fake)
        logs = {"loss_d_adv": loss_d.item()}
        if cfg.gp_weight > 0:
            gp = gradient_penalty(self.disc, real, fake.detach(), d_labels)
            loss_d = loss_d + cfg.gp_weight * gp
            logs["gp"] = gp.item()
        if cfg.r1_gamma > 0:
            (grad,) = torch.autograd.grad(out_real.sum(), real_in, create_graph=True)
            r1 = grad.pow(2).flatten(1).sum(1).mean()
            loss_d = loss_d + cfg.r1_gamma / 2 * r1
            logs["r1"] = r1.item()
        if aux_real is not None:
            aux = F.cross_entropy(aux_real, labels) + F.cross_entropy(aux_fake, labels)
            loss_d = loss_d + cfg.aux_weight * aux
            logs["loss_d_aux"] = aux.item()
            logs["aux_acc_real"] = (aux_real.argmax(1) == labels).float().mean().item()
        self.opt_d.zero_grad(set_to_none=True)
        acc.backward(loss_d)
        self._clip(self.disc)
        self.opt_d.step()
        self.sched_d.step()
        logs.update(loss_d=loss_d.item(), lr_d=self.sched_d.get_last_lr()[0])

        if update_g:
            self.disc.requires_grad_(False)
            out, aux_out = self.disc(self._aug(fake), d_labels)
            loss_g = generator_loss(cfg.loss, out)
            if aux_out is not None:
                loss_g = loss_g + cfg.aux_weight * F.cross_entropy(aux_out, labels)
            self.opt_g.zero_grad(set_to_none=True)
            acc.backward(loss_g)
            self._clip(self.gen)
            self.opt_g.step()
            self.sched_g.step()
            self.disc.requires_grad_(True)
            logs.update(loss_g=loss_g.item(), lr_g=self.sched_g.get_last_lr()[0])
        self.last.update(logs)
        return logs


def train(cfg: GANTrainingConfig) -> Path:
    """Train, checkpoint, and save the GAN generator (and discriminator) to ``cfg.output_dir``; returns it."""
    from accelerate.utils import set_seed

    out, accelerator, data = start_run(cfg, lambda: load_training_data(cfg))
    set_seed(cfg.seed)
    gen, disc, weights_note = build_networks(cfg, len(data.class_names), data.channels)
    betas = (cfg.adam_beta1, cfg.adam_beta2)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.learning_rate, betas=betas, weight_decay=cfg.adam_weight_decay)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.discriminator_learning_rate, betas=betas, weight_decay=cfg.adam_weight_decay)
    max_steps, _ = plan_steps(cfg, cfg.num_epochs, data.dataloader, accelerator)  # per process
    state = TrainState()
    n = accelerator.num_processes
    sched_g = make_lr_scheduler(cfg, opt_g, math.ceil(max_steps / cfg.n_critic), n, state=state)
    sched_d = make_lr_scheduler(cfg, opt_d, max_steps, n, state=state)
    gen, disc, opt_g, opt_d, dataloader, sched_g, sched_d = accelerator.prepare(gen, disc, opt_g, opt_d, data.dataloader, sched_g, sched_d)
    ema = None
    if cfg.use_ema:
        ema = make_ema(cfg, accelerator.unwrap_model(gen))
        ema.to(accelerator.device)
    resume_and_track(accelerator, cfg, state, "train_gan", ema)
    step_fn = AdversarialStep(cfg, accelerator, state, gen, disc, opt_g, opt_d, sched_g, sched_d)
    cls = gan_generator_class(cfg.architecture)

    def generator_weights() -> ConvGenerator:
        live = accelerator.unwrap_model(gen)
        if ema is None:
            return live
        model = ConvGenerator.from_config(live.config)
        model.load_state_dict(live.state_dict())  # batch-norm statistics come from the live generator
        ema.copy_to(model.parameters())
        return model.to(accelerator.device)

    def make_generator(final: bool = False) -> GANGenerator:
        g, d = generator_weights(), accelerator.unwrap_model(disc)
        info = generator_info(cfg, cfg.architecture, data, state, accelerator, extra={
            "architecture": cfg.architecture, "discriminator": cfg.discriminator, "discriminator_weights": weights_note,
            "generator_steps": state.step // cfg.n_critic, "ema": cfg.use_ema,
            "losses": {"objective": cfg.loss, "gp_weight": cfg.gp_weight, "r1_gamma": cfg.r1_gamma,
                       "aux_weight": cfg.aux_weight if cfg.architecture == "acgan" else None,
                       **{k: round(v, 4) for k, v in step_fn.last.items() if not k.startswith("lr")}},
            "parameters": {"generator": sum(p.numel() for p in g.parameters()), "discriminator": sum(p.numel() for p in d.parameters())},
        })
        extra = {"discriminator": d} if final and cfg.save_discriminator else {}
        return cls(g, info, extra_networks=extra)

    def on_step(step: int) -> None:
        if ema is not None and step_fn.updates_generator(step):
            ema.step(accelerator.unwrap_model(gen).parameters())
        if cfg.save_images_steps and step % cfg.save_images_steps == 0 and accelerator.is_main_process:
            save_sample_grid(make_generator(), cfg, out, step, accelerator)
            gen.train()

    logger.info("training %s (%s discriminator, %s loss) on %d classes %s at %dpx, %d channel(s), %d images, %d steps",
                cfg.architecture, cfg.discriminator, cfg.loss, len(data.class_names), data.class_names, cfg.resolution,
                data.channels, len(data.dataset), max_steps)
    started, first_step, seconds_before = time.time(), state.step, state.seconds
    train_loop(accelerator, cfg, state, [gen, disc], None, None, dataloader, None, max_steps, on_step=on_step, step_fn=step_fn)
    accelerator.wait_for_everyone()
    finish(cfg, out, lambda: make_generator(final=True), state, accelerator, started, first_step, seconds_before,
           summary_extra={"generator_steps": state.step // cfg.n_critic})
    accelerator.end_training()
    return out
