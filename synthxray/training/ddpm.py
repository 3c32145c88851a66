"""Train a class-conditional UNet2D DDPM from scratch (seed 001's recipe, with modern options)."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from diffusers import DDPMScheduler, UNet2DModel

from ..data import intensity_of
from ..generators.base import GeneratorInfo
from ..samplers import SCHEDULERS
from ..generators.ddpm import ClassConditionalDDPMPipeline, DDPMGenerator, build_unet, padded_resolution
from .common import TrainState, hardware_summary, make_ema as common_make_ema, help_field, make_lr_scheduler, plan_steps, train_loop, training_layout
from .image_data import ImageDataConfig, finish, image_dataloader, load_image_dataset, resume_and_track, save_sample_grid, start_run
from .diffusion import WEIGHTING_SCHEMES, add_noise, diffusion_loss, diffusion_target

logger = logging.getLogger("synthxray.training")


@dataclass
class DDPMTrainingConfig(ImageDataConfig):
    """Flags of ``train_scripts/train_ddpm.py``. Defaults: seed 001's recipe (T=1000, AdamW, OneCycle, EMA) with
    the settings that gave the best FID for a 24-minute CPU budget in ``benchmarks/ddpm_sweep.py``
    (4-level 1.1M UNet, cosine betas, v-prediction, lr 2e-3, no min-SNR, logit-normal(-2, 1.5) timesteps)."""

    resolution: int = help_field(
        32,
        "Square image size, e.g. 28 for MedMNIST's native files. A size the UNet cannot halve len(block_out_channels)-1 "
        "times (28 with the default 4 levels) is padded (edge pixels repeated) to the next multiple of 2**(levels-1) "
        "for the UNet (28 -> 32) and generated images are cropped back to it, so the default model works at any size.",
    )
    learning_rate: float = help_field(
        2e-3, "Peak learning rate (seed 001: 2e-4; 2e-3 trains this small UNet fastest on a short budget, benchmarks/RESULTS.md)."
    )
    lr_scheduler: str = help_field("onecycle", "onecycle (seed 001) | cosine | constant | linear | constant_with_warmup.")
    adam_weight_decay: float = help_field(1e-4, "AdamW weight decay.")
    train_batch_size: int = help_field(64, "Batch size per device.")
    block_out_channels: list[int] = help_field(
        [16, 32, 64, 64],
        "UNet width per level (1.1M parameters: narrow at full resolution, so a CPU step is cheap; "
        "seed 001 used 64 128 128 with 2 layers).",
    )
    layers_per_block: int = help_field(1, "ResNet blocks per UNet level.")
    attention: bool = help_field(True, "Self-attention at the lowest-resolution level.")
    mid_block_attention: bool = help_field(True, "Self-attention in the UNet's middle block.")
    attention_head_dim: int | None = help_field(None, "Channels per attention head (default: one head per block).")
    num_train_timesteps: int = help_field(1000, "Diffusion steps T.")
    beta_schedule: str = help_field(
        "squaredcos_cap_v2", "squaredcos_cap_v2 (cosine, Nichol & Dhariwal 2021) | linear (1e-4..0.02, seed 001)."
    )
    prediction_type: str = help_field(
        "v_prediction",
        "v_prediction | epsilon. v is the default: with epsilon, a short run's x0 estimate at high noise is worse "
        "than the data mean and deterministic samplers return noise (benchmarks/RESULTS.md).",
    )
    snr_gamma: float | None = help_field(
        None, "Min-SNR loss weighting gamma (Hang et al. 2023), e.g. 5; off by default (it raised FID on CPU budgets)."
    )
    weighting_scheme: str = help_field(
        "logit_normal",
        "Training timestep density: none (uniform t) | logit_normal | mode (diffusers' SD3 flags). The default "
        "logit-normal(-2, 1.5) on t/T puts most draws at low noise, where the fine detail is learnt (median "
        "t ~ 120 of 1000; 3% of draws above t = 700). On the 24-minute CPU budget, EDM's density on the "
        "cosine schedule, logit-normal(-1.5, 1.5), cut FID from 83.3 to 65.2, and (-2, 1.5) with lr 2e-3 "
        "to 53.7 (benchmarks/RESULTS.md).",
    )
    logit_mean: float = help_field(-2.0, "Mean of the logit-normal timestep density (t/T = sigmoid(N(mean, std))).")
    logit_std: float = help_field(1.5, "Std of the logit-normal timestep density.")
    mode_scale: float = help_field(1.29, "Scale of the 'mode' timestep density.")
    class_dropout_prob: float = help_field(0.1, "Probability of dropping the label to the null class (classifier-free guidance).")
    use_ema: bool = help_field(True, "Keep EMA weights and save them as the final model.")
    ema_max_decay: float = help_field(0.9999, "EMA decay ceiling.")
    ema_inv_gamma: float = help_field(1.0, "EMA warm-up inverse gamma.")
    ema_power: float = help_field(0.75, "EMA warm-up power.")
    sample_scheduler: str = help_field(
        "dpm-sde", "Default sampler saved with the model: ddpm | ddim | dpm | dpm-sde | unipc (dpm-sde: best FID at 10 and 20 steps)."
    )
    sample_steps: int = help_field(20, "Default sampling steps saved with the model.")
    guidance_scale: float = help_field(1.0, "Default guidance scale saved with the model (1.0 = no guidance).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta_schedule not in ("linear", "squaredcos_cap_v2", "scaled_linear"):
            raise ValueError(f"beta_schedule must be linear or squaredcos_cap_v2, got {self.beta_schedule!r}")
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type must be epsilon or v_prediction, got {self.prediction_type!r}")
        if not 0 <= self.class_dropout_prob < 1:
            raise ValueError("class_dropout_prob must be in [0, 1)")
        if self.sample_scheduler not in SCHEDULERS:
            raise ValueError(f"--sample_scheduler must be one of {SCHEDULERS}, got {self.sample_scheduler!r}")
        if self.weighting_scheme not in WEIGHTING_SCHEMES:
            raise ValueError(f"--weighting_scheme must be one of {WEIGHTING_SCHEMES}, got {self.weighting_scheme!r}")
        if self.logit_std <= 0:
            raise ValueError("--logit_std must be > 0")
        if not self.block_out_channels or min(self.block_out_channels) < 1:
            raise ValueError(f"--block_out_channels must be positive widths, got {self.block_out_channels}")
        # fail before any data is read if the UNet cannot be built
        build_unet(2, self.unet_resolution, 1, self.block_out_channels, 1, norm_num_groups=min(self.block_out_channels))

    @property
    def unet_resolution(self) -> int:
        """The size the UNet runs at: ``resolution`` padded up to a multiple of ``2**(levels-1)``."""
        return padded_resolution(self.resolution, len(self.block_out_channels))


def build_model(cfg: DDPMTrainingConfig, num_classes: int, channels: int) -> tuple[UNet2DModel, DDPMScheduler]:
    """The UNet (random weights) and noise scheduler ``cfg`` describes."""
    unet = build_unet(
        num_classes, cfg.unet_resolution, channels, cfg.block_out_channels, cfg.layers_per_block,
        attention_levels=[False] * (len(cfg.block_out_channels) - 1) + [cfg.attention],
        attention_head_dim=cfg.attention_head_dim, mid_block_attention=cfg.mid_block_attention,
    )
    noise_scheduler = DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule, beta_start=1e-4, beta_end=0.02,
        prediction_type=cfg.prediction_type, clip_sample=True,
    )
    return unet, noise_scheduler


def load_training_data(cfg: DDPMTrainingConfig):
    """``(dataset, class names, channels)``, checked: every problem found here stops the run before
    anything is written. One class trains (a one-class generator is a valid aim) but is warned about."""
    ds, names, channels = load_image_dataset(cfg)
    if len(names) == 1:
        logger.warning(
            "--dataset %s has one class (%r): the class-conditional model learns it alone, its labels carry no "
            "information and --guidance_scale has no effect. If the data has one sub-folder per class, point "
            "--dataset at their parent folder.", cfg.dataset, names[0],
        )
    return ds, names, channels


def make_dataloader(cfg: DDPMTrainingConfig, ds, channels: int) -> torch.utils.data.DataLoader:
    """Shuffled batches of ``{"pixel_values", "label"}`` from a ``datasets.Dataset`` (``--random_flip`` applied),
    edge-padded to ``cfg.unet_resolution`` when ``--resolution`` is not a size the UNet takes (28 -> 32);
    generation crops the padding off again."""
    return image_dataloader(cfg, ds, channels, pad_to=cfg.unet_resolution)


def make_ema(cfg: DDPMTrainingConfig, unet: UNet2DModel):
    """The EMA of ``unet``'s parameters with the config's warm-up decay (``common.make_ema``)."""
    return common_make_ema(unet, cfg.ema_max_decay, inv_gamma=cfg.ema_inv_gamma, power=cfg.ema_power)


def make_loss_fn(
    cfg: DDPMTrainingConfig, unet: torch.nn.Module, noise_scheduler: DDPMScheduler, null_class: int
) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """The class-conditional denoising loss of one batch (label dropout to ``null_class`` for guidance)."""

    def loss_fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        clean, labels = batch["pixel_values"], batch["label"]
        if cfg.class_dropout_prob > 0:
            drop = torch.rand(labels.shape, device=labels.device) < cfg.class_dropout_prob
            labels = torch.where(drop, torch.full_like(labels, null_class), labels)
        noisy, noise, timesteps = add_noise(
            noise_scheduler, clean, weighting_scheme=cfg.weighting_scheme, logit_mean=cfg.logit_mean,
            logit_std=cfg.logit_std, mode_scale=cfg.mode_scale,
        )
        pred = unet(noisy, timesteps, class_labels=labels).sample
        target = diffusion_target(noise_scheduler, clean, noise, timesteps)
        return diffusion_loss(noise_scheduler, pred, target, timesteps, cfg.snr_gamma)

    return loss_fn


def build_generator(cfg: DDPMTrainingConfig, model: UNet2DModel, ema, noise_scheduler: DDPMScheduler,
                    names: list[str], channels: int, ds, step: int, extra: dict | None = None) -> DDPMGenerator:
    """The generator a run saves: ``model`` with the EMA's weights (when there is one) in a fresh copy, the
    run's sampling defaults, and the data record (source, split, count, intensity mapping)."""
    if ema is not None:
        device = next(model.parameters()).device
        model = type(model).from_config(model.config)
        ema.copy_to(model.parameters())
        model.to(device)
    model.eval()
    pad = cfg.unet_resolution - cfg.resolution
    pipe = ClassConditionalDDPMPipeline(unet=model, scheduler=DDPMScheduler.from_config(noise_scheduler.config),
                                        image_size=cfg.resolution if pad else None)
    pipe.set_progress_bar_config(disable=True)
    info = GeneratorInfo(
        backend="ddpm", class_names=names, channels=channels, resolution=cfg.resolution,
        data={"source": str(cfg.dataset), "split": cfg.dataset_split, "num_images": len(ds),
              "intensity": intensity_of(ds)},
        defaults={"scheduler": cfg.sample_scheduler, "num_inference_steps": cfg.sample_steps,
                  "guidance_scale": cfg.guidance_scale},
        extra={"train_steps": step, "train_config": cfg.to_dict(), **(extra or {})},
    )
    return DDPMGenerator(pipe, info)


def export_checkpoint(checkpoint: str | os.PathLike, output_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """A generator folder from one checkpoint of a :func:`train` run: the weights it saves at that step (the EMA's
    when the run keeps one), with the run's own ``training_config.json``, class names and data record.

    Checkpoints span a run's quality; this makes each one a generator that ``load_generator``, ``generate`` and
    ``evaluate`` take like a finished run's. ``output_dir`` follows :func:`synthxray.outputs.check_output_dir`:
    an existing folder is replaced only with ``overwrite`` and only when it holds a generator.
    """
    import dataclasses
    import json
    import shutil

    from safetensors.torch import load_file

    from ..outputs import GENERATOR, check_output_dir
    from .checkpoints import CONFIG_FILE, checkpoint_step, registered_states

    checkpoint = Path(checkpoint)
    run = checkpoint.parent.parent
    if not (checkpoint / "model.safetensors").is_file() or not (run / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{checkpoint} is not a checkpoint of a synthxray training run (it needs "
                                f"model.safetensors, and {run / CONFIG_FILE} two folders up)")
    # the one output-folder rule; the export replaces the whole folder, so never beside other files
    target = check_output_dir(output_dir, GENERATOR, overwrite, "--overwrite", replace_needs_flag=True,
                              beside_foreign=False)
    raw = json.loads((run / CONFIG_FILE).read_text())
    known = {f.name for f in dataclasses.fields(DDPMTrainingConfig)}
    cfg = DDPMTrainingConfig(**{k: v for k, v in raw.items() if k in known})
    ds, names, channels = load_training_data(cfg)
    unet, noise_scheduler = build_model(cfg, len(names), channels)
    unet.load_state_dict(load_file(str(checkpoint / "model.safetensors")))
    ema = None
    if cfg.use_ema:  # registered first, before the TrainState (resume_and_track)
        ema = make_ema(cfg, unet)
        ema.load_state_dict(torch.load(registered_states(checkpoint)[0], map_location="cpu", weights_only=False))
    step = checkpoint_step(checkpoint)
    gen = build_generator(cfg, unet, ema, noise_scheduler, names, channels, ds, step,
                          {"exported_from_checkpoint": f"{run.name}/checkpoints/{checkpoint.name}"})
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    gen.save_pretrained(staging)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    logger.info("exported step %d of %s (%s weights) to %s", step, run, "EMA" if ema is not None else "raw", target)
    return target


def train(cfg: DDPMTrainingConfig) -> Path:
    """Train, checkpoint, and save the EMA pipeline to ``cfg.output_dir``; returns that folder.

    Data-parallel on N processes (``accelerate launch``): ``--num_epochs`` counts passes over the data
    in total and every count (steps, checkpoints, schedule, budget) is the same as on one process.
    """
    from accelerate.utils import set_seed

    out, accelerator, (ds, names, channels) = start_run(cfg, lambda: load_training_data(cfg))
    dataloader = make_dataloader(cfg, ds, channels)
    set_seed(cfg.seed)
    unet, noise_scheduler = build_model(cfg, len(names), channels)

    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.learning_rate, weight_decay=cfg.adam_weight_decay)
    unet, optimizer, dataloader = accelerator.prepare(unet, optimizer, dataloader)
    max_steps, num_epochs = plan_steps(cfg, cfg.num_epochs, dataloader, accelerator)  # per process, after sharding
    state = TrainState()
    lr_scheduler = accelerator.prepare(make_lr_scheduler(cfg, optimizer, max_steps, accelerator.num_processes, state=state))

    ema = make_ema(cfg, accelerator.unwrap_model(unet)) if cfg.use_ema else None
    if ema is not None:
        ema.to(accelerator.device)
    resume_and_track(accelerator, cfg, state, "train_ddpm", ema)

    loss_fn = make_loss_fn(cfg, unet, noise_scheduler, null_class=len(names))

    def make_generator() -> DDPMGenerator:
        extra = {"hardware": hardware_summary(accelerator), **training_layout(accelerator, cfg)}
        return build_generator(cfg, accelerator.unwrap_model(unet), ema, noise_scheduler, names, channels, ds,
                               state.step, extra)

    def on_step(step: int) -> None:
        if ema is not None:
            ema.step(accelerator.unwrap_model(unet).parameters())
        if cfg.save_images_steps and step % cfg.save_images_steps == 0 and accelerator.is_main_process:
            save_sample_grid(make_generator(), cfg, out, step, accelerator)
            unet.train()

    logger.info(
        "training %d classes %s at %dpx (UNet %dpx), %d channel(s), %d images, %d steps (%d epochs)",
        len(names), names, cfg.resolution, cfg.unet_resolution, channels, len(ds), max_steps, num_epochs,
    )
    started, first_step, seconds_before = time.time(), state.step, state.seconds
    train_loop(accelerator, cfg, state, [unet], optimizer, lr_scheduler, dataloader, loss_fn, max_steps, on_step=on_step)
    accelerator.wait_for_everyone()
    summary_extra = {"epochs": round(state.step / math.ceil(len(dataloader) / cfg.gradient_accumulation_steps), 3),
                     **training_layout(accelerator, cfg)}
    finish(cfg, out, make_generator, state, accelerator, started, first_step, seconds_before, summary_extra=summary_extra)
    accelerator.end_training()
    return out
