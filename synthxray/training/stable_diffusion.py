"""What DreamBooth and LoRA fine-tuning of Stable Diffusion share: the run.

The pieces live along their seams: the flags in ``sd_config``, the base model's parts in
``sd_parts``, concepts and examples in ``sd_data``, class images for prior preservation in
``sd_prior`` and validation grids in ``sd_validation``; this module holds the run (the noise/loss
step with prior preservation, the final ``synthxray.json``). ``dreambooth.py`` and ``lora.py`` only
say what is trained and how it is saved (a :class:`FineTuneMethod`); the step loop, checkpoints and
resume are ``common.train_loop``. The names of the pieces stay importable from here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from ..generators.base import GeneratorInfo
from ..generators.stable_diffusion import sub_info
from .checkpoints import list_checkpoints, prepare_output_dir, resume, write_config
from .common import (
    TrainState,
    finish_model_folder,
    hardware_summary,
    make_accelerator,
    make_lr_scheduler,
    plan_steps,
    train_loop,
    training_layout,
)
from .diffusion import add_noise, diffusion_loss, diffusion_target
from .sd_config import PRECISIONS, REPORT_TO, StableDiffusionTrainingConfig, check_prompt_template
from .sd_data import (
    RESERVED_FOLDERS,
    Concept,
    ExampleDataset,
    class_folder_names,
    collate,
    files_dataset,
    image_files,
    load_concepts,
    pixel_transform,
)
from .sd_parts import SD_PARTS, WEIGHT_SUFFIXES, BaseModel, Parts, check_base_model, check_resolution, load_parts, tokenize
from .sd_prior import ensure_class_images, generate_class_images
from .sd_validation import save_validation_grid, validation_prompts

__all__ = [
    "PRECISIONS", "REPORT_TO", "RESERVED_FOLDERS", "SD_PARTS", "SUMMARY_FILE", "WEIGHT_SUFFIXES", "BaseModel", "Concept",
    "ExampleDataset", "FineTuneMethod", "Parts", "StableDiffusionTrainingConfig", "check_base_model", "check_prompt_template",
    "check_resolution", "class_folder_names", "collate", "ensure_class_images", "files_dataset", "generate_class_images",
    "image_files", "load_concepts", "load_parts", "pixel_transform", "save_validation_grid", "tokenize",
    "train_stable_diffusion", "validation_prompts",
]

logger = logging.getLogger("synthxray.training")
SUMMARY_FILE = "train_summary.json"


class FineTuneMethod:
    """What is trained and how it is saved; everything else is shared."""

    backend: str = ""

    def part_dtypes(self, cfg: StableDiffusionTrainingConfig, weight_dtype: torch.dtype) -> dict[str, torch.dtype]:
        """The dtype each model part is loaded in: trained weights fp32, frozen ones ``weight_dtype``."""
        raise NotImplementedError

    def trainable_parameters(self, cfg: StableDiffusionTrainingConfig, parts: Parts) -> list[torch.nn.Parameter]:
        """Freeze what is not trained and add adapters; return the parameters to optimise."""
        raise NotImplementedError

    def register_checkpoint_hooks(self, accelerator, cfg: StableDiffusionTrainingConfig, unet, text_encoder) -> None:
        """Optional accelerate save/load hooks (LoRA checkpoints hold only the adapters)."""

    def save(self, cfg: StableDiffusionTrainingConfig, base: BaseModel, unet, text_encoder, out: Path) -> None:
        """Write the trained model (unwrapped modules) to ``out`` in plain diffusers format."""
        raise NotImplementedError


# ---- the run --------------------------------------------------------------------------------------
def train_stable_diffusion(cfg: StableDiffusionTrainingConfig, method: FineTuneMethod) -> Path:
    """Check the inputs, then train one model, or one model per class, and save a generator."""
    base = check_base_model(cfg.pretrained_model_name_or_path, cfg.revision)
    check_resolution(base, cfg.resolution)
    concepts, data, grayscale = load_concepts(cfg)
    folders = class_folder_names([c.name for c in concepts]) if cfg.one_model_per_class else {}
    if cfg.use_8bit_adam:
        _bitsandbytes_adam()
    stale = [f for f in folders.values() if list_checkpoints(Path(cfg.output_dir) / f)]
    if stale and not cfg.resume_from_checkpoint and not cfg.overwrite_output_dir:
        raise FileExistsError(
            f"{cfg.output_dir} holds checkpoints of an earlier run in {stale}; pass --resume_from_checkpoint latest to "
            "continue it or --overwrite_output_dir to start again"
        )
    # every check passed: only now is anything written
    out = prepare_output_dir(cfg)
    info = GeneratorInfo(
        backend=method.backend,
        class_names=[c.name for c in concepts],
        channels=1 if grayscale else 3,
        resolution=cfg.resolution,
        prompts={c.name: c.prompt for c in concepts},
        base_model=base.source if base.is_local else base.name,
        base_model_revision=base.revision,
        data=data,
        defaults={
            "scheduler": cfg.sample_scheduler, "num_inference_steps": cfg.sample_steps, "guidance_scale": cfg.guidance_scale,
            **({"negative_prompt": cfg.negative_prompt} if cfg.negative_prompt else {}),
        },
        extra={
            "method": method.backend, "train_text_encoder": cfg.train_text_encoder,
            "prior_preservation": cfg.with_prior_preservation, "train_config": cfg.to_dict(),
        },
    )
    if not folders:
        if _train_model(cfg, method, base, concepts, info)["is_main_process"]:
            finish_model_folder(cfg, out)
        return out
    from accelerate import PartialState

    main_process = PartialState().is_main_process
    if main_process:
        write_config(cfg, out)  # marks the folder as this run's before the per-class folders appear
    steps = {}
    for concept in concepts:
        sub_cfg = dataclasses.replace(cfg, output_dir=str(out / folders[concept.name]))
        steps[concept.name] = _train_model(sub_cfg, method, base, [concept], sub_info(info, concept.name))["steps"]
    info.extra.update(models=folders, train_steps=steps)
    if main_process:
        info.save(out)
        finish_model_folder(cfg, out)
    return out


def check_fsdp(cfg: StableDiffusionTrainingConfig, accelerator) -> bool:
    """True under FSDP (``configs/accelerate/fsdp.yaml``), after refusing what it cannot run here."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type != DistributedType.FSDP:
        return False
    if cfg.train_text_encoder:
        raise ValueError("FSDP shards one model per run here (the UNet): drop --train_text_encoder, "
                         "or use configs/accelerate/multi_gpu.yaml to train the text encoder too")
    if cfg.validation_prompt:
        raise ValueError("under FSDP the weights are sharded, so the main process cannot sample validation grids alone: "
                         "drop --validation_prompt (sample the saved model afterwards with synthxray generate)")
    return True


def gathered_model(accelerator, model, fsdp: bool):
    """The trained module with whole weights, on the main process: under FSDP the shards gathered from every
    process (``accelerator.get_state_dict``, a collective) into a fresh copy; otherwise the unwrapped module."""
    unwrapped = accelerator.unwrap_model(model)
    if not fsdp:
        return unwrapped
    state_dict = accelerator.get_state_dict(model)  # every process; whole on the main process
    if not accelerator.is_main_process:
        return None
    whole = type(unwrapped).from_config(unwrapped.config)
    whole.load_state_dict(state_dict)
    return whole


def _train_model(cfg: StableDiffusionTrainingConfig, method: FineTuneMethod, base: BaseModel, concepts: list[Concept], info: GeneratorInfo) -> dict[str, Any]:
    """Train one model on ``concepts`` (one prompt each) into ``cfg.output_dir``; returns its summary."""
    accelerator = make_accelerator(cfg, log_with=cfg.report_to)
    fsdp = check_fsdp(cfg, accelerator)
    out = prepare_output_dir(cfg) if accelerator.is_main_process else Path(cfg.output_dir)
    if accelerator.is_main_process:
        write_config(cfg, out)
    accelerator.wait_for_everyone()
    if cfg.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
    device = accelerator.device
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)

    # data (class images first: generating them needs the base model, loaded and freed before training)
    prompts = [c.prompt for c in concepts]
    instance = [(c.images, r, i) for i, c in enumerate(concepts) for r in c.rows]
    prior = None
    if cfg.with_prior_preservation:
        class_images = files_dataset(ensure_class_images(cfg, base, accelerator))
        prior = [(class_images, r, len(prompts)) for r in range(len(class_images))]
        prompts.append(cfg.class_prompt or "")
    dataset = ExampleDataset(instance, prior, pixel_transform(cfg.resolution, cfg.center_crop))
    dataloader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.train_batch_size, shuffle=True, collate_fn=collate, num_workers=cfg.dataloader_num_workers,
    )
    max_steps, _ = plan_steps(cfg, cfg.num_train_epochs, dataloader, accelerator)  # this process's share of the batches
    done = _read_summary(out)
    if cfg.resume_from_checkpoint and done and done["steps"] >= max_steps and (out / "synthxray.json").is_file():
        logger.info("%s is already trained for %d steps; skipping", out, done["steps"])
        accelerator.end_training()
        return {**done, "is_main_process": accelerator.is_main_process}

    setup_start = time.perf_counter()
    parts = load_parts(base, cfg.variant, {"vae": weight_dtype, **method.part_dtypes(cfg, weight_dtype)})
    unet, text_encoder, vae, noise_scheduler = parts.unet, parts.text_encoder, parts.vae, parts.noise_scheduler
    vae.requires_grad_(False)
    vae.to(device)
    params = method.trainable_parameters(cfg, parts)
    unet.to(device)
    text_encoder.to(device)
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        if cfg.train_text_encoder:  # transformers 5 renamed it (the old name warns there)
            (getattr(text_encoder, "activation_checkpointing_enable", None) or text_encoder.gradient_checkpointing_enable)()

    token_ids = tokenize(parts.tokenizer, prompts).to(device)
    cached_text = None
    if not cfg.train_text_encoder:  # frozen: every prompt is encoded once, for the whole run
        with torch.no_grad():
            cached_text = text_encoder(token_ids)[0]
    if cfg.cache_latents:
        dataset.cache_latents(vae, device, weight_dtype, cfg.train_batch_size)
    _offload_frozen(cfg, vae, text_encoder)

    optimizer = _make_optimizer(cfg, params)
    if cfg.train_text_encoder:
        unet, text_encoder, optimizer, dataloader = accelerator.prepare(unet, text_encoder, optimizer, dataloader)
        models = [unet, text_encoder]
    else:
        unet, optimizer, dataloader = accelerator.prepare(unet, optimizer, dataloader)
        models = [unet]
        if fsdp:  # FSDP replaced the parameters with sharded ones: clip those
            params = [p for p in unet.parameters() if p.requires_grad]
    max_steps, _ = plan_steps(cfg, cfg.num_train_epochs, dataloader, accelerator)
    state = TrainState()
    lr_scheduler = accelerator.prepare(make_lr_scheduler(cfg, optimizer, max_steps, accelerator.num_processes, state=state))
    method.register_checkpoint_hooks(accelerator, cfg, unet, text_encoder)
    accelerator.register_for_checkpointing(state)
    resume(accelerator, cfg, state)
    if accelerator.is_main_process:
        accelerator.init_trackers(method.backend, config={k: str(v) for k, v in cfg.to_dict().items()})

    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    scaling = vae.config.scaling_factor
    shift = getattr(vae.config, "shift_factor", None) or 0.0

    def loss_fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = batch["inputs"]
        if dataset.cache is not None:  # a fresh latent sample from each cached posterior
            latents = DiagonalGaussianDistribution(inputs).sample()
        else:
            with torch.no_grad():
                latents = vae.encode(inputs.to(dtype=weight_dtype)).latent_dist.sample()
        latents = (latents - shift) * scaling
        noisy, noise, timesteps = add_noise(noise_scheduler, latents)
        if cached_text is not None:
            text = cached_text[batch["prompt"]]
        else:
            text = text_encoder(token_ids[batch["prompt"]])[0]
        pred = unet(noisy, timesteps, text, return_dict=False)[0]
        target = diffusion_target(noise_scheduler, latents, noise, timesteps)
        if prior is None:
            return diffusion_loss(noise_scheduler, pred, target, timesteps, cfg.snr_gamma)
        per_sample = diffusion_loss(noise_scheduler, pred, target, timesteps, cfg.snr_gamma, reduce=False)
        ours, theirs = per_sample.chunk(2)
        return ours.mean() + cfg.prior_loss_weight * theirs.mean()

    validation = validation_prompts(cfg, concepts)
    step_times: list[float] = []
    validation_seconds: dict[int, float] = {}

    def validate(step: int) -> None:
        modules = {"unet": accelerator.unwrap_model(unet), "text_encoder": accelerator.unwrap_model(text_encoder), "vae": vae}
        save_validation_grid(cfg, modules, parts.tokenizer, noise_scheduler, validation, info.channels == 1, out / "samples", step, accelerator)
        _offload_frozen(cfg, vae, text_encoder)

    def on_step(step: int) -> None:
        step_times.append(time.perf_counter())
        if validation and step % cfg.validation_steps == 0 and accelerator.is_main_process:
            validate(step)
            validation_seconds[step] = time.perf_counter() - step_times[-1]

    setup_seconds = time.perf_counter() - setup_start
    start_step = state.step
    logger.info("training %s on %d images of %s (%d prompts) for %d steps", method.backend, len(instance), [c.name for c in concepts], len(prompts), max_steps)
    memory_before = _reset_peak_memory(device)
    train_loop(accelerator, cfg, state, models, optimizer, lr_scheduler, dataloader, loss_fn, max_steps, params_to_clip=params, on_step=on_step)
    peak = _peak_memory_mb(device)
    accelerator.wait_for_everyone()
    trained_unet = gathered_model(accelerator, unet, fsdp)  # under FSDP a collective: every process takes part
    summary = {
        "steps": state.step, "steps_this_run": state.step - start_step, "classes": [c.name for c in concepts], "prompts": prompts,
        "trainable_parameters": sum(p.numel() for p in params),
        "seconds_per_step": _seconds_per_step(step_times, validation_seconds, state.step), "setup_seconds": round(setup_seconds, 2),
        "memory_before_loop_mb": memory_before, "peak_memory_mb": peak, "peak_memory_kind": "cuda_max_allocated" if device.type == "cuda" else "process_peak_rss",
        **training_layout(accelerator, cfg),
    }
    if accelerator.is_main_process:
        if validation and state.step % cfg.validation_steps and state.step > start_step:
            validate(state.step)
        method.save(cfg, base, trained_unet, accelerator.unwrap_model(text_encoder), out)
        info.extra.update(train_steps=state.step, hardware=hardware_summary(accelerator), **training_layout(accelerator, cfg))
        info.save(out)
        (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        logger.info("saved %s to %s (%d steps)", method.backend, out, state.step)
    accelerator.end_training()
    if device.type == "cuda":  # the next class's model needs the memory back
        accelerator.free_memory()
    return {**summary, "is_main_process": accelerator.is_main_process}


def _read_summary(out: Path) -> dict[str, Any] | None:
    path = out / SUMMARY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _offload_frozen(cfg: StableDiffusionTrainingConfig, vae, text_encoder) -> None:
    """Frozen encoders whose outputs are cached wait on the CPU (validation brings them back)."""
    if cfg.cache_latents:
        vae.to("cpu")
    if not cfg.train_text_encoder:
        text_encoder.to("cpu")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _bitsandbytes_adam():
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise ValueError("--use_8bit_adam needs bitsandbytes: pip install bitsandbytes") from None
    return bnb.optim.AdamW8bit


def _make_optimizer(cfg: StableDiffusionTrainingConfig, params: list[torch.nn.Parameter]):
    cls = _bitsandbytes_adam() if cfg.use_8bit_adam else torch.optim.AdamW
    return cls(params, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.adam_weight_decay, eps=cfg.adam_epsilon)


# ---- measurements ---------------------------------------------------------------------------------------
def _seconds_per_step(times: list[float], validation_seconds: dict[int, float], last_step: int) -> float | None:
    """Mean seconds per optimiser step after the first (which pays for warm-up), validation excluded."""
    if len(times) < 2:
        return None
    paused = sum(sec for step, sec in validation_seconds.items() if step < last_step)
    return round((times[-1] - times[0] - paused) / (len(times) - 1), 5)


def _reset_peak_memory(device: torch.device) -> float | None:
    """Start measuring the peak from here; returns the memory in use now (MB)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return round(torch.cuda.memory_allocated(device) / 2**20, 1)
    try:  # Linux: reset the process's peak resident set size (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")
        return _proc_status_mb("VmRSS")
    except OSError:
        return None


def _proc_status_mb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _peak_memory_mb(device: torch.device) -> float | None:
    """CUDA: peak allocated; CPU: the process's peak resident memory (since the last reset on Linux)."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except ImportError:
        return None
