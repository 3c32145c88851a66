"""GAN networks: a DCGAN-style generator and three discriminator families (small CNN, torchvision ResNet,
ViT-B/16 or Swin-T), each a diffusers ``ModelMixin`` + ``ConfigMixin``.

Every discriminator returns ``(adversarial logit [B], class logits [B, K] or None)``. Conditioning is
``projection`` (Miyato & Koyama 2018: the logit gains ``<embed(y), features>``), ``concat`` (Mirza &
Osindero 2014: one-hot label planes concatenated to the image; CNN only) or ``none``; ``aux_classifier``
adds ACGAN's class head (Odena et al. 2017).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn
from torch.nn.utils import parametrize

from .common import channel_plan, maybe_sn, norm_2d, resolution_plan

logger = logging.getLogger("synthxray.networks")

CONDITIONINGS = ("none", "projection", "concat")
TORCHVISION_BACKBONES = {
    # name: (torchvision builder, default weights, the input size those weights need)
    "resnet18": ("resnet18", "IMAGENET1K_V1", 224),
    "resnet50": ("resnet50", "IMAGENET1K_V2", 224),
    "vit_b_16": ("vit_b_16", "IMAGENET1K_V1", 224),
    "swin_t": ("swin_t", "IMAGENET1K_V1", 224),
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.'s initialisation: conv/linear weights N(0, 0.02), norm scales N(1, 0.02), biases 0
    (also the projection embedding, whose default N(0, 1) makes the first logits huge)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) or (isinstance(m, nn.Embedding) and getattr(m, "_dcgan_init", False)):
            weight = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
            nn.init.normal_(weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class ConvGenerator(ModelMixin, ConfigMixin):
    """Seed 000's DCGAN generator: ``z`` -> linear -> ``(C, s, s)`` -> 2x transposed-conv blocks -> tanh.

    The number of blocks follows the resolution (28 px: 7 -> 14 -> 28; 256 px: 4 -> ... -> 256). A
    class-conditional generator multiplies ``z`` by a learnt class embedding (seed 002).
    """

    @register_to_config
    def __init__(
        self,
        latent_dim: int = 100,
        num_classes: int = 0,
        image_channels: int = 1,
        resolution: int = 28,
        base_channels: int = 256,
        min_channels: int = 32,
        norm: str = "batch",
        spectral_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        start, blocks = resolution_plan(resolution, "the GAN generator")
        chans = channel_plan(blocks, base_channels, min_channels)
        self.start = start
        self.embed = nn.Embedding(num_classes, latent_dim) if num_classes else None
        self.fc = maybe_sn(nn.Linear(latent_dim, chans[0] * start * start), spectral_norm)
        self.fc_norm = norm_2d(norm, chans[0])
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [maybe_sn(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=norm == "none"), spectral_norm), norm_2d(norm, cout), nn.ReLU(True)]
            if dropout:
                layers.append(nn.Dropout2d(dropout))
        layers += [maybe_sn(nn.ConvTranspose2d(chans[-1], image_channels, 4, 2, 1), spectral_norm), nn.Tanh()]
        self.blocks = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if class_labels is None:
                raise ValueError("this generator is class-conditional: pass class_labels")
            z = z * self.embed(class_labels)
        h = self.fc(z).view(z.shape[0], -1, self.start, self.start)
        return self.blocks(F.relu(self.fc_norm(h)))


class _Heads(nn.Module):
    """Adversarial logit, optional projection term and optional ACGAN class head on a feature vector."""

    def __init__(self, features: int, num_classes: int, conditioning: str, aux_classifier: bool, spectral_norm: bool) -> None:
        super().__init__()
        self.adv = maybe_sn(nn.Linear(features, 1), spectral_norm)
        self.proj = None
        if conditioning == "projection":
            embed = nn.Embedding(num_classes, features)
            embed._dcgan_init = True
            nn.init.normal_(embed.weight, 0.0, 0.02)
            self.proj = maybe_sn(embed, spectral_norm)
        self.aux = maybe_sn(nn.Linear(features, num_classes), spectral_norm) if aux_classifier else None

    def forward(self, h: torch.Tensor, class_labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.adv(h).squeeze(1)
        if self.proj is not None:
            if class_labels is None:
                raise ValueError("this discriminator is class-conditional (projection): pass class_labels")
            out = out + (self.proj(class_labels) * h).sum(1)
        return out, (self.aux(h) if self.aux is not None else None)


def _check_heads(num_classes: int, conditioning: str, aux_classifier: bool) -> None:
    if conditioning not in CONDITIONINGS:
        raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
    if (conditioning != "none" or aux_classifier) and num_classes < 1:
        raise ValueError("a class-conditional discriminator needs num_classes >= 1")


class ConvDiscriminator(ModelMixin, ConfigMixin):
    """The DCGAN discriminator mirrored from the generator: strided 4x4 convs, LeakyReLU(0.2), a linear head.

    ``norm``: ``batch`` (DCGAN), ``layer`` or ``none`` (WGAN-GP: the gradient penalty is per sample, so no
    batch norm); no norm on the first layer, as in DCGAN.
    """

    @register_to_config
    def __init__(
        self,
        image_channels: int = 1,
        resolution: int = 28,
        num_classes: int = 0,
        conditioning: str = "none",
        aux_classifier: bool = False,
        base_channels: int = 256,
        min_channels: int = 32,
        norm: str = "batch",
        spectral_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_heads(num_classes, conditioning, aux_classifier)
        start, blocks = resolution_plan(resolution, "the GAN discriminator")
        chans = list(reversed(channel_plan(blocks, base_channels, min_channels)))
        cin = image_channels + (num_classes if conditioning == "concat" else 0)
        layers: list[nn.Module] = []
        for i, cout in enumerate(chans):
            layers += [maybe_sn(nn.Conv2d(cin, cout, 4, 2, 1, bias=i == 0 or norm == "none"), spectral_norm)]
            layers += [nn.Identity() if i == 0 else norm_2d(norm, cout), nn.LeakyReLU(0.2, True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            cin = cout
        self.blocks = nn.Sequential(*layers, nn.Flatten())
        self.heads = _Heads(chans[-1] * start * start, num_classes, conditioning, aux_classifier, spectral_norm)
        dcgan_init(self)

    def forward(self, x: torch.Tensor, class_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.config.conditioning == "concat":
            if class_labels is None:
                raise ValueError("this discriminator is class-conditional (concat): pass class_labels")
            planes = F.one_hot(class_labels, self.config.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, planes.expand(-1, -1, x.shape[2], x.shape[3])], 1)
        return self.heads(self.blocks(x), class_labels)


class TorchvisionDiscriminator(ModelMixin, ConfigMixin):
    """A torchvision classifier (ResNet-18/50, ViT-B/16, Swin-T) as the discriminator body (seed 002).

    Images in [-1, 1] are repeated to 3 channels when grayscale, resized to ``input_size`` (default: the
    image's own size for ResNets, 224 for the transformers, whose pretrained weights need it) and
    ImageNet-normalised. The weights are random at
    construction; ``load_pretrained_backbone`` fills them from torchvision when they can be had.
    ``backbone_kwargs`` go to the torchvision builder (e.g. a small ``image_size`` for a random ViT).
    """

    @register_to_config
    def __init__(
        self,
        backbone: str = "resnet18",
        image_channels: int = 1,
        resolution: int = 28,
        input_size: int | None = None,
        num_classes: int = 0,
        conditioning: str = "projection",
        aux_classifier: bool = False,
        spectral_norm: bool = False,
        backbone_kwargs: dict[str, Any] | None = None,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        if backbone not in TORCHVISION_BACKBONES:
            raise ValueError(f"unknown discriminator backbone {backbone!r}; choose one of {sorted(TORCHVISION_BACKBONES)}")
        if conditioning == "concat":
            raise ValueError(f"conditioning 'concat' needs the cnn discriminator; {backbone} takes 3-channel images (use projection)")
        _check_heads(num_classes, conditioning, aux_classifier)
        self.body, features = _torchvision_body(backbone, backbone_kwargs or {})
        native = resolution if backbone.startswith("resnet") else TORCHVISION_BACKBONES[backbone][2]
        self.input_size = int(input_size or (backbone_kwargs or {}).get("image_size") or native)
        self.heads = _Heads(features, num_classes, conditioning, aux_classifier, spectral_norm)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor, class_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return self.heads(self.body(x), class_labels)

    def load_pretrained_backbone(self, weights: Any = "auto") -> tuple[bool, str]:
        """Load torchvision's ImageNet weights into the body; without them (offline, no cache) say so loudly
        and keep the random weights, as the experiments' backbones do. Returns ``(pretrained, note)``."""
        from torchvision import models

        from .weights import torchvision_weights

        name = self.config.backbone
        builder, default, native = TORCHVISION_BACKBONES[name]
        custom = bool(self.config.backbone_kwargs) or (name in ("vit_b_16", "swin_t") and self.input_size != native)
        if custom:
            if weights not in (None, "none", False, "auto"):
                raise ValueError(f"pretrained {name} weights need the standard model at {native} px input")
            return False, f"random initialisation (custom {name} size)"
        model, pretrained, note = torchvision_weights(name, getattr(models, builder), weights, default)
        if pretrained:
            state = {k: v for k, v in model.state_dict().items() if not k.startswith(("fc.", "heads.", "head."))}
            self.body.load_state_dict(state, strict=False)
            self.register_to_config(pretrained=True)
        return pretrained, note


def _torchvision_body(name: str, kwargs: dict[str, Any]) -> tuple[nn.Module, int]:
    """A random-weight torchvision model whose classifier is replaced by the identity; its feature size."""
    from torchvision import models

    model = getattr(models, TORCHVISION_BACKBONES[name][0])(weights=None, **kwargs)
    if name.startswith("resnet"):
        features, model.fc = model.fc.in_features, nn.Identity()
    elif name == "vit_b_16":
        features, model.heads = model.hidden_dim, nn.Identity()
    else:
        features, model.head = model.head.in_features, nn.Identity()
    return model, features
