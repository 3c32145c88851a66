"""The classifier wrapper every part of synthxray reads, and its saved-folder format.

:class:`Classifier` wraps a registered backbone so that its input is always a float tensor in
``[0, 1]`` with the *data's* channels (1 for grayscale): it repeats grayscale to three channels for
backbones that need RGB and applies the backbone's normalisation inside ``forward``, so attacks and
``predict_proba`` work in pixel space. ``save_pretrained`` writes ``model.safetensors`` +
``classifier.json``; :func:`load_classifier` reads a folder or a Hub repo back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .backbones import BACKBONES

CLASSIFIER_CONFIG = "classifier.json"
CLASSIFIER_WEIGHTS = "model.safetensors"


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
