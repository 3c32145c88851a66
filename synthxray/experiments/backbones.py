"""Classifier backbones (one registry) and the saved-classifier format every other part reads.

A backbone builder takes ``num_classes``, ``in_channels``, ``image_size`` and its own options and
returns a :class:`Built` network. :class:`Classifier` wraps it so that its input is always a float
tensor in ``[0, 1]`` with the *data's* channels (1 for grayscale): it repeats grayscale to three
channels for backbones that need RGB and applies the backbone's normalisation inside ``forward``, so
attacks and ``predict_proba`` work in pixel space.

Pretrained weights are used when they can be had (torchvision weights, a Hub id, a local path);
when none is reachable the backbone starts from random weights and says so: a warning in the log,
``pretrained: false`` plus a ``weights_note`` in every result, and a mark in the results table.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..registry import Registry

logger = logging.getLogger("synthxray.experiments")

BACKBONES: Registry[Callable[..., "Built"]] = Registry("backbone")
CLASSIFIER_CONFIG = "classifier.json"
CLASSIFIER_WEIGHTS = "model.safetensors"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
RANDOM_WEIGHTS = ("none", "random", None, False)


@dataclass
class Built:
    """A backbone network plus what the wrapper needs to feed it."""

    net: nn.Module
    in_channels: int  # channels the network takes (3 for pretrained backbones)
    mean: Sequence[float]
    std: Sequence[float]
    pretrained: bool
    weights_note: str
    config: dict[str, Any] = field(default_factory=dict)  # options that rebuild this exact architecture offline
    trainable: str = "all"


def list_backbones() -> list[str]:
    """Names of the registered classifier backbones."""
    return BACKBONES.names()


# options that make each backbone tiny (a few thousand parameters, random weights): for tests and smoke runs
TINY_OPTIONS: dict[str, dict[str, Any]] = {
    "cnn": {"widths": [4, 8]},
    "densenet121": {"growth_rate": 4, "block_config": [1, 1], "num_init_features": 8, "hidden": 8, "weights": None},
    "resnet18": {"width": 8, "weights": None},
    "dinov2": {"tiny": True},
    "clip": {"tiny": True},
}


# ---- pretrained weights ----------------------------------------------------------------------
_FAILED: dict[str, str] = {}  # weight sources that could not be loaded in this process: tried once


def _announce_random(backbone: str, source: str, reason: str) -> str:
    note = f"RANDOM WEIGHTS: pretrained weights {source!r} for {backbone} could not be loaded ({reason}); training starts from random initialisation"
    if source not in _FAILED:
        banner = "!" * 100
        logger.warning("\n%s\n%s\n%s", banner, note, banner)
    _FAILED[source] = reason
    return note


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text[:160]}"


def _torchvision_weights(backbone: str, builder: Callable, weights: Any, default: str):
    """Build a torchvision model with weights: an enum name, 'default', a local file, or none."""
    if weights in RANDOM_WEIGHTS:
        return builder(weights=None), False, "random initialisation (weights: none requested)"
    source = default if weights in ("default", "auto", True) else str(weights)
    if source in _FAILED:
        return builder(weights=None), False, _announce_random(backbone, source, _FAILED[source])
    try:
        if Path(source).expanduser().is_file():
            model = builder(weights=None)
            state = _read_state(Path(source).expanduser())
            model.load_state_dict(state)
            return model, True, f"pretrained weights from {source}"
        return builder(weights=source), True, f"pretrained torchvision weights {source}"
    except Exception as exc:  # no network, no cache, bad file
        return builder(weights=None), False, _announce_random(backbone, source, _short(exc))


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(str(path), map_location="cpu", weights_only=True)


def _hf_model(backbone: str, model_cls, config_cls, weights: Any, default_id: str, hf_config: dict | None, default_config: dict):
    """A transformers model from a Hub id / local folder, else from a saved or default config with random weights."""
    if hf_config is not None:  # rebuilding a saved classifier: architecture from its config, weights loaded after
        return model_cls(config_cls(**hf_config)), False, "architecture rebuilt from saved config"
    if weights in RANDOM_WEIGHTS:
        return model_cls(config_cls(**default_config)), False, "random initialisation (weights: none requested)"
    source = default_id if weights in ("default", "auto", True) else str(weights)
    if source in _FAILED:
        return model_cls(config_cls(**default_config)), False, _announce_random(backbone, source, _FAILED[source])
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    errors = []
    for local_only in ((True,) if offline else (True, False)):
        try:
            model = model_cls.from_pretrained(source, local_files_only=local_only)
            return model, True, f"pretrained weights {source}"
        except Exception as exc:
            errors.append(_short(exc))
    return model_cls(config_cls(**default_config)), False, _announce_random(backbone, source, errors[-1])


def _freeze(module: nn.Module, trainable: Callable[[str], bool]) -> None:
    for name, p in module.named_parameters():
        p.requires_grad_(trainable(name))


def _resolve_freeze(freeze: Any, pretrained: bool, backbone: str) -> bool:
    """``freeze: auto`` freezes only when pretrained weights were loaded: frozen random features teach nothing."""
    if freeze == "auto":
        if not pretrained:
            logger.warning("%s: random weights, so the layers that would be frozen are trained too (freeze: auto)", backbone)
        return pretrained
    return bool(freeze)


# ---- the backbones -------------------------------------------------------------------------------
class SmallCNN(nn.Module):
    """Seed 001's CNN: two conv blocks (conv, batch norm, ReLU, max-pool, dropout), then a linear layer."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, widths: Sequence[int] = (32, 64), dropout: float = 0.25):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for w in widths:
            layers += [nn.Conv2d(prev, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(dropout)]
            prev = w
        self.features = nn.Sequential(*layers)
        side = image_size // (2 ** len(widths))
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for {len(widths)} pooling steps")
        self.classifier = nn.Linear(prev * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@BACKBONES.register("cnn")
def build_cnn(num_classes: int, in_channels: int, image_size: int, widths: Sequence[int] = (32, 64), dropout: float = 0.25, weights: Any = None) -> Built:
    """Small CNN from scratch; takes 1-channel input directly. ``widths=[4, 8]`` is the tiny config."""
    if weights not in RANDOM_WEIGHTS:
        raise ValueError("the cnn backbone has no pretrained weights; drop the weights option")
    net = SmallCNN(num_classes, in_channels, image_size, tuple(widths), dropout)
    return Built(net, in_channels, [0.5] * in_channels, [0.5] * in_channels, False, "trained from scratch (no pretrained weights exist)",
                 {"widths": list(widths), "dropout": dropout})


class DenseNetClassifier(nn.Module):
    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int, hidden: int, dropout: float):
        super().__init__()
        self.features = features
        self.head = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.relu(self.features(x))
        f = torch.flatten(nn.functional.adaptive_avg_pool2d(f, 1), 1)
        return self.head(f)


@BACKBONES.register("densenet121")
def build_densenet121(
    num_classes: int, in_channels: int, image_size: int, weights: Any = "auto", hidden: int = 512, dropout: float = 0.5,
    growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16), num_init_features: int = 64,
) -> Built:
    """torchvision DenseNet-121 with seed 004's head (features -> 512, ReLU, dropout 0.5 -> classes), all layers trained.

    Tiny config: ``growth_rate=4, block_config=[1, 1], num_init_features=8, hidden=8`` (random weights).
    """
    from torchvision import models

    factor = 4 * 2 ** (len(block_config) - 1)
    if image_size < factor:
        raise ValueError(f"densenet121 needs image_size >= {factor} (it downsamples {factor}x), got {image_size}")
    standard = (growth_rate, tuple(block_config), num_init_features) == (32, (6, 12, 24, 16), 64)
    if standard:
        model, pretrained, note = _torchvision_weights("densenet121", models.densenet121, weights, "IMAGENET1K_V1")
    else:
        if weights not in RANDOM_WEIGHTS and weights != "auto":
            raise ValueError("pretrained weights exist only for the standard DenseNet-121 configuration")
        model, pretrained, note = models.DenseNet(growth_rate, tuple(block_config), num_init_features), False, "random initialisation (custom DenseNet size)"
    net = DenseNetClassifier(model.features, model.classifier.in_features, num_classes, hidden, dropout)
    cfg = {"hidden": hidden, "dropout": dropout, "growth_rate": growth_rate, "block_config": list(block_config), "num_init_features": num_init_features}
    return Built(net, 3, IMAGENET_MEAN, IMAGENET_STD, pretrained, note, cfg)


@BACKBONES.register("resnet18")
def build_resnet18(num_classes: int, in_channels: int, image_size: int, weights: Any = "auto", freeze: Any = "auto", width: int = 64) -> Built:
    """torchvision ResNet-18; with pretrained weights all but ``layer4`` and the head are frozen (seed 001).

    ``width`` (default 64) scales every stage; ``width=8`` is the tiny config (random weights).
    """
    from torchvision import models
    from torchvision.models.resnet import BasicBlock, ResNet

    if width == 64:
        model, pretrained, note = _torchvision_weights("resnet18", models.resnet18, weights, "IMAGENET1K_V1")
    else:
        model, pretrained, note = ResNet(BasicBlock, [2, 2, 2, 2]), False, "random initialisation (custom ResNet width)"
        _rescale_resnet(model, width)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    frozen = _resolve_freeze(freeze, pretrained, "resnet18")
    if frozen:
        _freeze(model, lambda n: n.startswith(("layer4.", "fc.")))
    cfg = {"freeze": frozen, "width": width}
    return Built(model, 3, IMAGENET_MEAN, IMAGENET_STD, pretrained, note, cfg, "layer4 + head" if frozen else "all")


def _rescale_resnet(model: nn.Module, width: int) -> None:
    """Rebuild a torchvision ResNet-18 with stage widths (w, 2w, 4w, 8w)."""
    from torchvision.models.resnet import BasicBlock

    model.inplanes = width
    model.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
    model.bn1 = nn.BatchNorm2d(width)
    model.layer1 = model._make_layer(BasicBlock, width, 2)
    model.layer2 = model._make_layer(BasicBlock, width * 2, 2, stride=2)
    model.layer3 = model._make_layer(BasicBlock, width * 4, 2, stride=2)
    model.layer4 = model._make_layer(BasicBlock, width * 8, 2, stride=2)
    model.fc = nn.Linear(width * 8, 1)


class _PooledHead(nn.Module):
    """A transformer vision encoder plus a linear head on its pooled (CLS) output."""

    def __init__(self, encoder: nn.Module, dim: int, num_classes: int, projection: nn.Module | None = None, interpolate: bool = False):
        super().__init__()
        self.encoder = encoder
        self.projection = projection
        self.head = nn.Linear(dim, num_classes)
        self.interpolate = interpolate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kwargs = {"interpolate_pos_encoding": True} if self.interpolate else {}
        pooled = self.encoder(pixel_values=x, **kwargs).pooler_output
        if self.projection is not None:
            pooled = self.projection(pooled)
        return self.head(pooled)


DINOV2_DEFAULT = {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "mlp_ratio": 4, "patch_size": 14, "image_size": 518}  # dinov2-small
DINOV2_TINY = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2, "patch_size": 4, "image_size": 32}


@BACKBONES.register("dinov2")
def build_dinov2(
    num_classes: int, in_channels: int, image_size: int, weights: Any = "facebook/dinov2-small", freeze: Any = "auto",
    unfreeze_last_block: bool = True, tiny: bool = False, hf_config: dict | None = None,
) -> Built:
    """transformers DINOv2 used frozen with a linear head on the CLS token (seed 001), optionally unfreezing the last block."""
    from transformers import Dinov2Config, Dinov2Model

    default_cfg = DINOV2_TINY if tiny else DINOV2_DEFAULT
    weights = None if tiny else weights
    model, pretrained, note = _hf_model("dinov2", Dinov2Model, Dinov2Config, weights, "facebook/dinov2-small", hf_config, default_cfg)
    if hf_config is not None:
        pretrained = False
    frozen = hf_config.get("_synthxray_frozen", False) if hf_config else _resolve_freeze(freeze, pretrained, "dinov2")
    last = model.config.num_hidden_layers - 1
    if frozen:
        keep = (f"encoder.layer.{last}.", "layernorm.") if unfreeze_last_block else ("layernorm.",)
        _freeze(model, lambda n: n.startswith(keep))
    net = _PooledHead(model, model.config.hidden_size, num_classes)
    config = {"hf_config": _hf_config_dict(model.config, frozen), "unfreeze_last_block": unfreeze_last_block}
    trainable = ("last block + head" if unfreeze_last_block else "head") if frozen else "all"
    return Built(net, 3, IMAGENET_MEAN, IMAGENET_STD, pretrained, note, config, trainable)


CLIP_DEFAULT = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "patch_size": 32, "image_size": 224, "projection_dim": 512}
CLIP_TINY = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32, "patch_size": 4, "image_size": 32, "projection_dim": 8}


@BACKBONES.register("clip")
def build_clip(
    num_classes: int, in_channels: int, image_size: int, weights: Any = "openai/clip-vit-base-patch32",
    class_names: Sequence[str] | None = None, prompt_init: bool = True, prompt: str = "a chest x-ray showing {}",
    tiny: bool = False, hf_config: dict | None = None,
) -> Built:
    """transformers CLIP vision encoder, fine-tuned, with a linear head on the projected image embedding.

    With pretrained weights and ``prompt_init`` the head starts as the normalised text embeddings of
    ``prompt.format(class name)`` (zero-shot CLIP); the text encoder itself is not kept.
    """
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    default_cfg = CLIP_TINY if tiny else CLIP_DEFAULT
    weights = None if tiny else weights
    model, pretrained, note = _hf_model("clip", CLIPVisionModelWithProjection, CLIPVisionConfig, weights, "openai/clip-vit-base-patch32", hf_config, default_cfg)
    if hf_config is not None:
        pretrained = False

    class _Encoder(nn.Module):  # the vision tower; the projection is kept separately so the head sits on it
        def __init__(self, m):
            super().__init__()
            self.vision_model = m.vision_model

        def forward(self, pixel_values, **kw):
            return self.vision_model(pixel_values=pixel_values, **kw)

    net = _PooledHead(_Encoder(model), model.config.projection_dim, num_classes, projection=model.visual_projection, interpolate=True)
    if pretrained and prompt_init and class_names:
        try:
            net.head.weight.data.copy_(_clip_text_head(weights if weights not in ("default", "auto", True) else "openai/clip-vit-base-patch32", class_names, prompt))
            net.head.bias.data.zero_()
            note += f"; head initialised from prompts {prompt!r}"
        except Exception as exc:
            logger.warning("clip: could not initialise the head from class-name prompts (%s); using a random head", _short(exc))
    return Built(net, 3, CLIP_MEAN, CLIP_STD, pretrained, note, {"hf_config": _hf_config_dict(model.config, False)})


def _clip_text_head(model_id: str, class_names: Sequence[str], prompt: str) -> torch.Tensor:
    from transformers import AutoTokenizer, CLIPModel

    clip = CLIPModel.from_pretrained(model_id)
    tok = AutoTokenizer.from_pretrained(model_id)
    with torch.no_grad():
        tokens = tok([prompt.format(n.lower()) for n in class_names], padding=True, return_tensors="pt")
        text = clip.get_text_features(**tokens)
        text = text / text.norm(dim=-1, keepdim=True)
    return text * clip.logit_scale.exp().item() / 10.0


def _hf_config_dict(config, frozen: bool) -> dict[str, Any]:
    """The whole transformers config (so a saved classifier rebuilds offline), plus whether it was frozen."""
    drop = {"architectures", "transformers_version", "model_type", "torch_dtype", "dtype", "_name_or_path", "_attn_implementation_autoset"}
    out = {k: v for k, v in config.to_dict().items() if k not in drop and not k.startswith("_")}
    out["_synthxray_frozen"] = frozen
    return json.loads(json.dumps(out, default=str))


# ---- the classifier wrapper and its folder -----------------------------------------------------
class Classifier(nn.Module):
    """A backbone behind a fixed interface: ``forward`` takes ``[0, 1]`` pixels with the data's channels."""

    def __init__(self, backbone: str, class_names: Sequence[str], image_size: int, channels: int, options: dict | None = None, _rebuild: bool = False):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.backbone = backbone
        self.class_names = list(class_names)
        self.image_size = int(image_size)
        self.channels = int(channels)
        options = dict(options or {})
        builder = BACKBONES.get(backbone)
        if backbone == "clip" and not _rebuild:
            options.setdefault("class_names", self.class_names)
        if _rebuild:
            options["weights"] = None
        try:
            built = builder(num_classes=len(self.class_names), in_channels=self.channels, image_size=self.image_size, **options)
        except TypeError as exc:
            raise ValueError(f"backbone {backbone!r}: bad option ({exc})") from None
        self.net = built.net
        self.pretrained = built.pretrained
        self.weights_note = built.weights_note
        self.trainable = built.trainable
        self.config = {**{k: v for k, v in options.items() if k not in ("class_names", "weights", "hf_config")}, **built.config}
        self.net_channels = built.in_channels
        self.register_buffer("mean", torch.tensor(built.mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(built.std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.metrics: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.shape[1] != self.net_channels:
            if pixels.shape[1] == 1:
                pixels = pixels.expand(-1, self.net_channels, -1, -1)
            elif self.net_channels == 1:
                pixels = pixels.mean(dim=1, keepdim=True)
        return self.net((pixels - self.mean) / self.std)

    def to_pixels(self, images: Sequence[Any]) -> torch.Tensor:
        """PIL images -> ``[0, 1]`` tensor (N, channels, size, size), resized and centre-cropped."""
        from ..data import image_transform

        tf = image_transform(self.image_size, self.channels, normalize=False)
        return torch.stack([tf(im) for im in images])

    @torch.no_grad()
    def predict_proba(self, images: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """Class probabilities (N, C) for a list of PIL images; columns follow ``class_names``."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        out = []
        for start in range(0, len(images), batch_size):
            x = self.to_pixels(images[start : start + batch_size]).to(device)
            out.append(torch.softmax(self(x).float(), dim=1).cpu())
        self.train(was_training)
        if not out:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        return torch.cat(out).numpy()

    def predict(self, images: Sequence[Any], batch_size: int = 64) -> list[str]:
        probs = self.predict_proba(images, batch_size)
        return [self.class_names[i] for i in probs.argmax(axis=1)]

    # ---- folder format -------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        from .. import __version__

        return {
            "format": "synthxray-classifier", "synthxray_version": __version__,
            "backbone": self.backbone, "backbone_config": self.config, "class_names": self.class_names,
            "image_size": self.image_size, "channels": self.channels, "pretrained": self.pretrained,
            "weights_note": self.weights_note, "trainable": self.trainable, "metrics": self.metrics, **self.extra,
        }

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``model.safetensors`` and ``classifier.json`` into ``directory``."""
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(_unshare(state), str(out / CLASSIFIER_WEIGHTS), metadata={"format": "pt"})
        (out / CLASSIFIER_CONFIG).write_text(json.dumps(self.describe(), indent=2, default=_json_default) + "\n")
        return out

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, revision: str | None = None, device: Any = "cpu") -> "Classifier":
        from safetensors.torch import load_file

        from ..generators.base import resolve_pretrained_dir

        folder = resolve_pretrained_dir(path_or_repo_id, revision=revision)
        cfg_path = folder / CLASSIFIER_CONFIG
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{folder} has no {CLASSIFIER_CONFIG}: it is not a synthxray classifier folder")
        info = json.loads(cfg_path.read_text())
        model = cls(info["backbone"], info["class_names"], info["image_size"], info["channels"], info.get("backbone_config", {}), _rebuild=True)
        state = load_file(str(folder / CLASSIFIER_WEIGHTS))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{folder}: weights do not match the {info['backbone']} architecture (missing {missing[:3]}, unexpected {unexpected[:3]})")
        model.pretrained = info.get("pretrained", False)
        model.weights_note = info.get("weights_note", "")
        model.trainable = info.get("trainable", "all")
        model.metrics = info.get("metrics", {})
        model.extra = {k: v for k, v in info.items() if k not in model.describe() and k not in ("format", "synthxray_version")}
        return model.to(device).eval()


def _unshare(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors sharing storage; clone the repeats."""
    seen: set[int] = set()
    out = {}
    for k, v in state.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else id(v)
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (tuple, set)):
        return list(o)
    return str(o)


def build_classifier(backbone: str, class_names: Sequence[str], image_size: int, channels: int, options: dict | None = None) -> Classifier:
    """A fresh classifier (pretrained where weights can be had)."""
    return Classifier(backbone, class_names, image_size, channels, options)


def load_classifier(path_or_repo_id: str | os.PathLike, revision: str | None = None, device: Any = "cpu") -> Classifier:
    """Load a saved classifier folder (or Hub repo): ``.class_names`` and ``.predict_proba(images)``."""
    return Classifier.from_pretrained(path_or_repo_id, revision=revision, device=device)
