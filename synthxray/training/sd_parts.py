"""The base Stable Diffusion model: find it, check it has every part, load the parts; tokenise prompts."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..generators.base import _hub_commit
from ..generators.stable_diffusion import dtype_kwargs

logger = logging.getLogger("synthxray.training")

# sub-folder -> files that must be there (any one of them); weights are checked for local folders only
SD_PARTS: dict[str, tuple[str, ...]] = {
    "unet": ("config.json",),
    "vae": ("config.json",),
    "text_encoder": ("config.json",),
    "tokenizer": ("tokenizer.json", "vocab.json", "tokenizer_config.json"),
    "scheduler": ("scheduler_config.json",),
}
WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass
class BaseModel:
    """Where the base model comes from: ``source`` for ``from_pretrained``, ``revision`` pinned."""

    name: str
    source: str
    revision: str | None
    folder: Path  # local folder, or the Hub snapshot holding its config files
    is_local: bool

    def load_kwargs(self) -> dict[str, Any]:
        return {} if self.is_local else {"revision": self.revision}


def check_base_model(name: str, revision: str | None = None) -> BaseModel:
    """Find the base model and check it has every Stable Diffusion part, before anything is loaded.

    Hub models are checked from their config files (fetched alone); the commit is recorded.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        base = BaseModel(name, str(path.resolve()), None, path, True)
    else:
        if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
            raise FileNotFoundError(f"base model {name}: no such folder (give a Stable Diffusion folder or a Hub id)")
        from huggingface_hub import snapshot_download

        try:
            snap = Path(snapshot_download(repo_id=name, revision=revision, allow_patterns=["model_index.json", "*/*.json", "*/*.txt"]))
        except Exception as exc:  # offline, unknown repo or revision, gated
            raise FileNotFoundError(f"base model {name!r} is not a local folder and could not be fetched from the Hub: {exc}") from None
        base = BaseModel(name, name, _hub_commit(snap) or revision, snap, False)
    missing = []
    if not (base.folder / "model_index.json").is_file():
        missing.append("model_index.json")
    for part, files in SD_PARTS.items():
        sub = base.folder / part
        if not sub.is_dir():
            missing.append(f"{part}/")
        elif not any((sub / f).is_file() for f in files):
            missing.append(f"{part}/{files[0]}")
        elif base.is_local and part in ("unet", "vae", "text_encoder") and not any(p.name.endswith(WEIGHT_SUFFIXES) for p in sub.iterdir()):
            missing.append(f"{part}/ weights (*.safetensors or *.bin)")
    if missing:
        raise FileNotFoundError(
            f"base model {name} is missing {', '.join(missing)}: a Stable Diffusion model has model_index.json and the "
            f"parts {', '.join(SD_PARTS)} (as StableDiffusionPipeline.save_pretrained writes them)"
        )
    return base


def check_resolution(base: BaseModel, resolution: int) -> None:
    """The VAE and UNet must be able to take ``resolution`` (read from their configs, no weights loaded)."""
    vae = json.loads((base.folder / "vae" / "config.json").read_text())
    unet = json.loads((base.folder / "unet" / "config.json").read_text())
    factor = 2 ** (len(vae.get("block_out_channels", [0] * 4)) - 1) * 2 ** (len(unet.get("down_block_types", [0] * 4)) - 1)
    if resolution % factor:
        raise ValueError(f"--resolution {resolution} is not a multiple of {factor}, which this base model needs")


@dataclass
class Parts:
    tokenizer: Any
    text_encoder: torch.nn.Module
    vae: torch.nn.Module
    unet: torch.nn.Module
    noise_scheduler: Any


def load_parts(base: BaseModel, variant: str | None = None, dtypes: dict[str, torch.dtype] | None = None) -> Parts:
    """Load tokenizer, text encoder, VAE, UNet and the training noise scheduler of the base model.

    ``dtypes`` maps "text_encoder", "vae" and "unet" to the dtype each is loaded in (default fp32).
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    kw = base.load_kwargs()
    dt = {part: (dtypes or {}).get(part, torch.float32) for part in ("text_encoder", "vae", "unet")}
    loaders = {
        "tokenizer": lambda: AutoTokenizer.from_pretrained(base.source, subfolder="tokenizer", **kw),
        "text_encoder": lambda: CLIPTextModel.from_pretrained(base.source, subfolder="text_encoder", variant=variant, **_transformers_dtype(dt["text_encoder"]), **kw),
        "vae": lambda: AutoencoderKL.from_pretrained(base.source, subfolder="vae", variant=variant, **dtype_kwargs(dt["vae"]), **kw),
        "unet": lambda: UNet2DConditionModel.from_pretrained(base.source, subfolder="unet", variant=variant, **dtype_kwargs(dt["unet"]), **kw),
        "noise_scheduler": lambda: DDPMScheduler.from_pretrained(base.source, subfolder="scheduler", **kw),
    }
    loaded = {}
    for part, load in loaders.items():
        try:
            loaded[part] = load()
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(f"could not load the {part} of base model {base.name}: {exc}") from exc
    return Parts(**loaded)


def _transformers_dtype(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """transformers names it ``dtype`` since 4.56 (``torch_dtype`` is deprecated there)."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def tokenize(tokenizer, prompts: Sequence[str]) -> torch.Tensor:
    """Token ids (P, model_max_length); a prompt cut short is logged."""
    full = tokenizer(list(prompts), truncation=False).input_ids
    for p, ids in zip(prompts, full):
        if len(ids) > tokenizer.model_max_length:
            logger.warning("prompt %r has %d tokens; the text encoder sees the first %d", p, len(ids), tokenizer.model_max_length)
    return tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids
