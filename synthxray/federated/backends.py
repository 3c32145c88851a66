"""The trainable backends a federation can train, each with the same three duties: the round-0 global weights,
one site's ``local_steps`` (the backend's own training pieces run by ``training.common.train_loop``), and the
generator the global weights make.

Every backend's weights travel in one flat ``ArrayRecord`` whose keys say which network they belong to:

- ``ddpm``: ``model.*`` (the UNet) and ``ema.*`` (its EMA shadow);
- ``dcgan``, ``wgan-gp``, ``cgan``, ``acgan``: ``generator.*``, ``discriminator.*`` and, with ``use_ema``, ``ema.*``
  (the generator's EMA shadow);
- ``vae``: ``vae.*``.

Flower's FedAvg / FedProx average every entry (weighted by each site's examples), so the generator, the
discriminator and the EMA are averaged together. Optimiser moments stay on the site and restart each round.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from ..registry import Registry
from .metrics import metrics_of

if TYPE_CHECKING:
    import datasets

    from ..generators.base import Generator
    from ..training.common import TrainingConfig
    from .config import FederatedConfig

FEDERATED_BACKENDS: Registry[type["FederatedBackend"]] = Registry("federated backend")

# the federation's own fields that a one-pass backend's training config takes from it (the data, its size and seed)
SHARED_FIELDS = ("dataset", "dataset_split", "resolution", "channels", "seed", "train_batch_size", "max_train_images",
                 "dataloader_num_workers", "mixed_precision", "random_flip", "num_validation_images")
# what the federation sets on every backend config itself
OWNED_FIELDS = ("output_dir", "max_train_steps", "max_train_minutes", "checkpointing_steps", "checkpoints_total_limit",
                "resume_from_checkpoint", "overwrite_output_dir", "save_images_steps", "logger", "push_to_hub", "hub_model_id",
                "hub_token", "num_epochs")

State = dict[str, torch.Tensor]
COUNTER = "num_batches_tracked"


def take(state: State, prefix: str) -> State:
    """The entries of a flat record under ``prefix.`` (prefix removed)."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in state.items() if k.startswith(prefix + ".")}


def put(prefix: str, tensors: dict[str, torch.Tensor]) -> State:
    """``tensors`` under ``prefix.`` as CPU copies (what a record carries). Batch-norm step counters stay home: they
    are integers (Flower's DP clipping scales updates in place, which integer arrays refuse), unused with a momentum,
    and would dominate the norm of an update that DP clips."""
    return {f"{prefix}.{k}": v.detach().cpu().clone() for k, v in tensors.items() if not k.endswith(COUNTER)}


def load(module: torch.nn.Module, tensors: State) -> None:
    """Load a record's weights into ``module``: every entry must match; only batch-norm counters may be missing."""
    missing, unexpected = module.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.endswith(COUNTER)]
    if missing or unexpected:
        raise ValueError(f"the global record does not fit this {type(module).__name__}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]} (was it written by another backend or network size?)")


def ema_tensors(model: torch.nn.Module, ema) -> dict[str, torch.Tensor]:
    """The EMA shadow of every parameter of ``model``, by parameter name."""
    return {name: shadow for (name, _), shadow in zip(model.named_parameters(), ema.shadow_params)}


def copy_shadow(model: torch.nn.Module, shadow: State) -> None:
    """Put the record's EMA weights (when it carries them) into ``model``'s parameters, for the saved generator."""
    with torch.no_grad():
        for name, p in model.named_parameters() if shadow else ():
            p.copy_(shadow[name])


def load_ema(model: torch.nn.Module, ema, shadow: State, optimization_step: int) -> None:
    """Set an ``EMAModel``'s shadow to the global record's and its warm-up counter to the steps done so far."""
    if shadow:
        ema.shadow_params = [shadow[name].clone() for name, _ in model.named_parameters()]
    ema.optimization_step = optimization_step


def offset_scheduler(optimizer: torch.optim.Optimizer, cfg: "TrainingConfig", offset: int, total: int):
    """``cfg.lr_scheduler`` over the federation's ``total`` steps, starting at step ``offset`` (earlier rounds'),
    so the schedule continues across rounds as in one centralised run."""
    from ..training.common import lr_factor

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda count: lr_factor(cfg.lr_scheduler, (count + offset) / total, count + offset, cfg.lr_warmup_steps)
    )


def proximal(model: torch.nn.Module, global_params: Sequence[torch.Tensor], mu: float) -> torch.Tensor:
    """FedProx's ``mu / 2 * ||w - w_global||^2``."""
    return mu / 2 * sum(((p - g.to(p.device)) ** 2).sum() for p, g in zip(model.parameters(), global_params))


class FederatedBackend:
    """What the client and server apps ask of a backend; ``cfg`` is the validated federation config."""

    name = ""

    def __init__(self, cfg: "FederatedConfig") -> None:
        self.cfg = cfg

    def check(self) -> None:
        """Raise ``ValueError`` before any training when the federation cannot train this backend as configured."""

    def initial_state(self, num_classes: int, channels: int) -> State:
        raise NotImplementedError

    def local_train(self, state: State, ds: "datasets.Dataset", num_classes: int, channels: int, server_round: int,
                    partition_id: int = 0, proximal_mu: float = 0.0) -> tuple[State, dict[str, float]]:
        raise NotImplementedError

    def build_generator(self, state: State, names: Sequence[str], channels: int, federation: dict[str, Any],
                        data: dict[str, Any] | None = None) -> "Generator":
        raise NotImplementedError

    def _rounds(self, server_round: int) -> tuple[int, int]:
        """(steps before this round, the federation's total steps) of a site that trains every round."""
        return (server_round - 1) * self.cfg.local_steps, self.cfg.total_steps

    def _run(self, accelerator, local: "TrainingConfig", models: list, dataloader, offset: int, loss_fn=None, optimizer=None,
             lr_scheduler=None, on_step: Callable[[int], None] | None = None, step_fn=None, state=None) -> None:
        """``train_loop`` for this round's ``local_steps``, its steps numbered on from ``offset`` (earlier rounds')."""
        from ..training.common import TrainState, train_loop

        state = state if state is not None else TrainState()
        state.step = offset
        train_loop(accelerator, local, state, models, optimizer, lr_scheduler, dataloader, loss_fn,
                   offset + self.cfg.local_steps, on_step=on_step, step_fn=step_fn)


def get_backend(cfg: "FederatedConfig") -> FederatedBackend:
    """The backend ``cfg.backend`` names, checked against ``cfg`` (:meth:`FederatedBackend.check`): an unknown
    backend or a bad ``backend_args`` is a ``ValueError`` here. ``run_federated`` calls it before reading any data."""
    if cfg.backend not in FEDERATED_BACKENDS:
        from ..generators import GENERATORS  # the package registers every built-in backend

        why = ("is a generator backend that cannot be trained from scratch by a federation (fine-tuning a pretrained "
               "Stable Diffusion is not offered federated)" if cfg.backend in GENERATORS else "is not a synthxray backend")
        raise ValueError(f"backend {cfg.backend!r} {why}; federated training supports {', '.join(FEDERATED_BACKENDS.names())}")
    backend = FEDERATED_BACKENDS.get(cfg.backend)(cfg)
    backend.check()
    return backend


# ---- the class-conditional DDPM --------------------------------------------------------------------------------
@FEDERATED_BACKENDS.register("ddpm")
class DDPMBackend(FederatedBackend):
    """``train_ddpm.py``'s UNet, loss and EMA; its flags are the federation config's own (top-level) fields."""

    name = "ddpm"

    def check(self) -> None:
        if self.cfg.backend_args:
            raise ValueError("backend ddpm takes its flags at the top level of the federation config; drop backend_args")

    def initial_state(self, num_classes: int, channels: int) -> State:
        from accelerate.utils import set_seed

        from ..training.ddpm import build_model, make_ema

        set_seed(self.cfg.seed)
        unet, _ = build_model(self.cfg, num_classes, channels)
        return self._join(unet, make_ema(self.cfg, unet) if self.cfg.use_ema else None)

    @staticmethod
    def _join(unet: torch.nn.Module, ema) -> State:
        return {**put("model", unet.state_dict()), **(put("ema", ema_tensors(unet, ema)) if ema is not None else {})}

    def local_train(self, state, ds, num_classes, channels, server_round, partition_id=0, proximal_mu=0.0):
        from ..training.common import make_accelerator
        from ..training.ddpm import build_model, make_dataloader, make_ema, make_loss_fn

        cfg = self.cfg
        with tempfile.TemporaryDirectory(prefix="synthxray-client-") as scratch:
            local = replace(cfg, output_dir=scratch, seed=cfg.seed + 1000 * server_round + partition_id, checkpointing_steps=0,
                            resume_from_checkpoint=None, logger="none")
            accelerator = make_accelerator(local)
            unet, noise_scheduler = build_model(local, num_classes, channels)
            load(unet, take(state, "model"))
            offset, total = self._rounds(server_round)
            ema = None
            if cfg.use_ema:
                ema = make_ema(local, unet)
                load_ema(unet, ema, take(state, "ema"), offset)
            global_params = [p.detach().clone() for p in unet.parameters()] if proximal_mu > 0 else []
            optimizer = torch.optim.AdamW(unet.parameters(), lr=local.learning_rate, weight_decay=local.adam_weight_decay)
            lr_scheduler = offset_scheduler(optimizer, local, offset, total)
            unet, optimizer, dataloader, lr_scheduler = accelerator.prepare(
                unet, optimizer, make_dataloader(local, ds, channels), lr_scheduler)
            if ema is not None:
                ema.to(accelerator.device)
            denoise = make_loss_fn(local, unet, noise_scheduler, null_class=num_classes)
            losses: list[float] = []

            def loss_fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
                loss = denoise(batch)
                losses.append(float(loss.detach()))
                return loss + proximal(accelerator.unwrap_model(unet), global_params, proximal_mu) if proximal_mu > 0 else loss

            def on_step(step: int) -> None:
                if ema is not None:
                    ema.step(accelerator.unwrap_model(unet).parameters())

            start = time.time()
            self._run(accelerator, local, [unet], dataloader, offset, loss_fn, optimizer, lr_scheduler, on_step=on_step)
            new_state = self._join(accelerator.unwrap_model(unet), ema)
            accelerator.free_memory()
        return new_state, metrics_of(losses, len(ds), time.time() - start, partition_id, cfg.local_steps)

    def build_generator(self, state, names, channels, federation, data=None):
        """A ``DDPMGenerator``: the EMA weights when the run keeps EMA, else the model's."""
        from diffusers import DDPMScheduler

        from ..generators.base import GeneratorInfo
        from ..generators.ddpm import ClassConditionalDDPMPipeline, DDPMGenerator
        from ..training.ddpm import build_model

        cfg = self.cfg
        unet, noise_scheduler = build_model(cfg, len(names), channels)
        load(unet, take(state, "model"))
        if cfg.use_ema:
            copy_shadow(unet, take(state, "ema"))
        unet.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        pad = cfg.unet_resolution - cfg.resolution  # a 28 px run trains a 32 px UNet on padded images; crop them back
        pipe = ClassConditionalDDPMPipeline(
            unet=unet, scheduler=DDPMScheduler.from_config(noise_scheduler.config), image_size=cfg.resolution if pad else None
        )
        pipe.set_progress_bar_config(disable=True)
        info = GeneratorInfo(
            backend="ddpm", class_names=list(names), channels=channels, resolution=cfg.resolution,
            data=data or {"source": str(cfg.dataset), "split": cfg.dataset_split},
            defaults={"scheduler": cfg.sample_scheduler, "num_inference_steps": cfg.sample_steps, "guidance_scale": cfg.guidance_scale},
            extra={"train_steps": cfg.local_steps * len(federation.get("rounds_done", [])) or None, "train_config": cfg.to_dict(),
                   "federation": federation},
        )
        return DDPMGenerator(pipe, info)


# ---- the one-pass backends: GANs and the VAE ------------------------------------------------------------------
class OneShotBackend(FederatedBackend):
    """A backend trained by ``train_gan.py`` / ``train_vae.py``: its flags come from ``backend_args`` (that script's
    flags; their defaults otherwise), the data and its size from the federation config."""

    def config_class(self) -> type:
        raise NotImplementedError

    def trainer_config(self, **overrides: Any):
        """The backend's own training config for this federation (validated by its ``__post_init__``)."""
        cls, cfg = self.config_class(), self.cfg
        args = dict(cfg.backend_args or {})
        names = {f.name for f in fields(cls)}
        misplaced = sorted(k for k in args if k in SHARED_FIELDS or k in OWNED_FIELDS)
        if misplaced:
            raise ValueError(f"backend_args {misplaced} are federation fields: set them at the top level of the config "
                             "(max_train_steps etc. are num_rounds x local_steps)")
        unknown = sorted(k for k in args if k not in names)
        if unknown:
            raise ValueError(f"backend_args {unknown} are not flags of the {self.name} trainer; known: "
                             f"{', '.join(sorted(names - set(SHARED_FIELDS) - set(OWNED_FIELDS)))}")
        shared = {k: getattr(cfg, k) for k in SHARED_FIELDS if k in names}
        owned = dict(output_dir=cfg.output_dir, max_train_steps=cfg.total_steps, checkpointing_steps=0, save_images_steps=0,
                     resume_from_checkpoint=None, logger="none")
        return cls(**{**shared, **args, **owned, **overrides})

    def _local(self, server_round: int, partition_id: int, scratch: str, **overrides: Any):
        return self.trainer_config(output_dir=scratch, seed=self.cfg.seed + 1000 * server_round + partition_id, **overrides)

    def check(self) -> None:
        cfg = self.cfg
        defaults = type(cfg).__dataclass_fields__  # the FederatedConfig's own defaults
        ddpm_only = [f.name for f in fields(cfg) if f.name in _ddpm_field_names() and f.name not in SHARED_FIELDS
                     and f.name not in OWNED_FIELDS and getattr(cfg, f.name) != _default(defaults[f.name])]
        if ddpm_only:
            raise ValueError(f"{ddpm_only} are DDPM flags and do nothing for backend {self.name!r}; set the {self.name} "
                             f"trainer's flags under backend_args (e.g. backend_args: {{learning_rate: 0.0002}})")
        if not self.trainer_config().conditional and cfg.fid_every_rounds:
            raise ValueError("fid_every_rounds scores the global model per class against the held-out set; an unconditional "
                             "(conditional: false) generator has no classes to match: drop fid_every_rounds, or keep labels")

    def generator_info(self, backend_cfg, names: Sequence[str], channels: int, federation: dict[str, Any],
                       data: dict[str, Any] | None, extra: dict[str, Any]):
        """``synthxray.json`` of the federated one-pass generator (one network evaluation per image)."""
        from ..generators.base import GeneratorInfo
        from ..generators.oneshot import UNCONDITIONAL_CLASS

        cfg = self.cfg
        more = {} if backend_cfg.conditional else {"trained_on_classes": list(names)}
        return GeneratorInfo(
            backend=self.name, class_names=list(names) if backend_cfg.conditional else [UNCONDITIONAL_CLASS], channels=channels,
            resolution=cfg.resolution, data=data or {"source": str(cfg.dataset), "split": cfg.dataset_split},
            defaults={"num_inference_steps": 1},
            extra={"train_steps": cfg.local_steps * len(federation.get("rounds_done", [])) or None, "network_evaluations_per_image": 1,
                   **more, **extra, "train_config": cfg.to_dict(), "backend_config": backend_cfg.to_dict(), "federation": federation},
        )


def _default(f) -> Any:
    from dataclasses import MISSING

    return f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default


def _ddpm_field_names() -> set[str]:
    from ..training.ddpm import DDPMTrainingConfig

    return {f.name for f in fields(DDPMTrainingConfig)}


class GANBackend(OneShotBackend):
    """``train_gan.py``'s networks and ``AdversarialStep`` (one discriminator update per step, the generator every
    ``n_critic``), run by ``train_loop``'s ``step_fn`` hook."""

    def config_class(self) -> type:
        from ..training.gan import GANTrainingConfig

        return GANTrainingConfig

    def trainer_config(self, **overrides: Any):
        if "architecture" in (self.cfg.backend_args or {}):
            raise ValueError(f"backend {self.name!r} is the architecture; drop architecture from backend_args")
        return super().trainer_config(architecture=self.name, **overrides)

    def check(self) -> None:
        super().check()
        if self.cfg.strategy == "fedprox":
            raise ValueError(f"strategy fedprox adds its proximal term to the loss, and the {self.name} trainer's adversarial "
                             "step (two losses, two optimisers) has no place for it; use strategy: fedavg")

    def _networks(self, num_classes: int, channels: int, local=None):
        from ..training.gan import build_networks

        return build_networks(local or self.trainer_config(), num_classes, channels)

    @staticmethod
    def _join(gen, disc, ema) -> State:
        return {**put("generator", gen.state_dict()), **put("discriminator", disc.state_dict()),
                **(put("ema", ema_tensors(gen, ema)) if ema is not None else {})}

    def initial_state(self, num_classes, channels):
        from accelerate.utils import set_seed

        from ..training.gan import make_ema

        backend_cfg = self.trainer_config()
        set_seed(self.cfg.seed)
        gen, disc, _ = self._networks(num_classes, channels, backend_cfg)  # pretrained discriminator weights load here
        return self._join(gen, disc, make_ema(backend_cfg, gen) if backend_cfg.use_ema else None)

    def local_train(self, state, ds, num_classes, channels, server_round, partition_id=0, proximal_mu=0.0):
        from ..training.common import TrainState, make_accelerator
        from ..training.gan import AdversarialStep, make_ema
        from ..training.image_data import image_dataloader

        with tempfile.TemporaryDirectory(prefix="synthxray-client-") as scratch:
            # the global record holds the discriminator's weights: no pretrained backbone to load on a site
            local = self._local(server_round, partition_id, scratch, discriminator_weights="none")
            accelerator = make_accelerator(local)
            gen, disc, _ = self._networks(num_classes, channels, local)
            load(gen, take(state, "generator"))
            load(disc, take(state, "discriminator"))
            offset, total = self._rounds(server_round)
            g_offset, g_total = offset // local.n_critic, math.ceil(total / local.n_critic)
            betas = (local.adam_beta1, local.adam_beta2)
            opt_g = torch.optim.Adam(gen.parameters(), lr=local.learning_rate, betas=betas, weight_decay=local.adam_weight_decay)
            opt_d = torch.optim.Adam(disc.parameters(), lr=local.discriminator_learning_rate, betas=betas,
                                     weight_decay=local.adam_weight_decay)
            sched_g, sched_d = offset_scheduler(opt_g, local, g_offset, g_total), offset_scheduler(opt_d, local, offset, total)
            gen, disc, opt_g, opt_d, dataloader, sched_g, sched_d = accelerator.prepare(
                gen, disc, opt_g, opt_d, image_dataloader(local, ds, channels), sched_g, sched_d)
            ema = None
            if local.use_ema:
                ema = make_ema(local, accelerator.unwrap_model(gen))
                load_ema(accelerator.unwrap_model(gen), ema, take(state, "ema"), g_offset)
                ema.to(accelerator.device)
            train_state = TrainState()
            adversarial = AdversarialStep(local, accelerator, train_state, gen, disc, opt_g, opt_d, sched_g, sched_d)
            d_losses: list[float] = []
            g_losses: list[float] = []

            def step_fn(batch: dict[str, torch.Tensor]) -> dict[str, float]:
                logs = adversarial(batch)
                d_losses.append(logs["loss_d"])
                if "loss_g" in logs:
                    g_losses.append(logs["loss_g"])
                return logs

            def on_step(step: int) -> None:
                if ema is not None and adversarial.updates_generator(step):
                    ema.step(accelerator.unwrap_model(gen).parameters())

            start = time.time()
            self._run(accelerator, local, [gen, disc], dataloader, offset, on_step=on_step, step_fn=step_fn, state=train_state)
            new_state = self._join(accelerator.unwrap_model(gen), accelerator.unwrap_model(disc), ema)
            accelerator.free_memory()
        more = {"train-loss-g": sum(g_losses) / len(g_losses)} if g_losses else {}
        return new_state, metrics_of(d_losses, len(ds), time.time() - start, partition_id, self.cfg.local_steps, **more)

    def build_generator(self, state, names, channels, federation, data=None):
        """The GAN generator (the EMA weights with ``use_ema``; batch-norm statistics from the averaged generator) and
        its averaged discriminator, saved as ``discriminator/`` like ``train_gan.py`` does."""
        from ..generators.gan import gan_generator_class

        backend_cfg = self.trainer_config(discriminator_weights="none")
        gen, disc, _ = self._networks(len(names), channels, backend_cfg)
        load(gen, take(state, "generator"))
        load(disc, take(state, "discriminator"))
        if backend_cfg.use_ema:
            copy_shadow(gen, take(state, "ema"))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        info = self.generator_info(backend_cfg, names, channels, federation, data, {
            "architecture": self.name, "discriminator": backend_cfg.discriminator, "ema": backend_cfg.use_ema,
            "generator_steps": (self.cfg.local_steps * len(federation.get("rounds_done", []))) // backend_cfg.n_critic or None,
            "losses": {"objective": backend_cfg.loss, "gp_weight": backend_cfg.gp_weight, "r1_gamma": backend_cfg.r1_gamma},
            "parameters": {"generator": sum(p.numel() for p in gen.parameters()), "discriminator": sum(p.numel() for p in disc.parameters())},
        })
        extra = {"discriminator": disc.eval()} if backend_cfg.save_discriminator else {}
        return gan_generator_class(self.name)(gen.to(device), info, extra_networks=extra)


for _arch in ("dcgan", "wgan-gp", "cgan", "acgan"):
    FEDERATED_BACKENDS.register(_arch, type(f"{_arch.title().replace('-', '')}Backend", (GANBackend,), {"name": _arch}))


@FEDERATED_BACKENDS.register("vae")
class VAEBackend(OneShotBackend):
    """``train_vae.py``'s VAE and loss (MSE + KL), run by ``train_loop``."""

    name = "vae"

    def config_class(self) -> type:
        from ..training.vae import VAETrainingConfig

        return VAETrainingConfig

    def initial_state(self, num_classes, channels):
        from accelerate.utils import set_seed

        from ..training.vae import build_vae

        set_seed(self.cfg.seed)
        return put("vae", build_vae(self.trainer_config(), num_classes, channels).state_dict())

    def local_train(self, state, ds, num_classes, channels, server_round, partition_id=0, proximal_mu=0.0):
        from ..training.common import make_accelerator
        from ..training.image_data import image_dataloader
        from ..training.vae import build_vae, make_loss_fn

        with tempfile.TemporaryDirectory(prefix="synthxray-client-") as scratch:
            local = self._local(server_round, partition_id, scratch)
            accelerator = make_accelerator(local)
            vae = build_vae(local, num_classes, channels)
            load(vae, take(state, "vae"))
            global_params = [p.detach().clone() for p in vae.parameters()] if proximal_mu > 0 else []
            offset, total = self._rounds(server_round)
            optimizer = torch.optim.Adam(vae.parameters(), lr=local.learning_rate, weight_decay=local.adam_weight_decay)
            lr_scheduler = offset_scheduler(optimizer, local, offset, total)
            vae, optimizer, dataloader, lr_scheduler = accelerator.prepare(vae, optimizer, image_dataloader(local, ds, channels), lr_scheduler)
            terms: dict[str, float] = {}
            vae_loss = make_loss_fn(local, vae, terms)
            losses: list[float] = []

            def loss_fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
                loss = vae_loss(batch)
                losses.append(float(loss.detach()))
                return loss + proximal(accelerator.unwrap_model(vae), global_params, proximal_mu) if proximal_mu > 0 else loss

            start = time.time()
            self._run(accelerator, local, [vae], dataloader, offset, loss_fn, optimizer, lr_scheduler)
            new_state = put("vae", accelerator.unwrap_model(vae).state_dict())
            accelerator.free_memory()
        return new_state, metrics_of(losses, len(ds), time.time() - start, partition_id, self.cfg.local_steps)

    def build_generator(self, state, names, channels, federation, data=None):
        from ..generators.vae import VAEGenerator
        from ..training.vae import build_vae

        backend_cfg = self.trainer_config()
        vae = build_vae(backend_cfg, len(names), channels)
        load(vae, take(state, "vae"))
        info = self.generator_info(backend_cfg, names, channels, federation, data, {
            "architecture": "vae", "losses": {"objective": f"mse_sum + {backend_cfg.kl_weight} * kl"},
            "parameters": {"vae": sum(p.numel() for p in vae.parameters())},
        })
        return VAEGenerator(vae.to("cuda" if torch.cuda.is_available() else "cpu"), info)
