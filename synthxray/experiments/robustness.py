"""Accuracy under perturbation (seed 001): random noise, FGSM and BIM with an L-infinity budget in pixel space."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .train import to_float

ATTACKS = ("noise", "fgsm", "bim")


def perturb(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, attack: str, epsilon: float, steps: int | None = None, gen: torch.Generator | None = None) -> torch.Tensor:
    """Perturbed copies of ``x`` (``[0, 1]`` pixels), each within ``epsilon`` of the original.

    ``noise``: uniform random sign noise of size ``epsilon``. ``fgsm``: one signed-gradient step
    (Goodfellow et al.). ``bim``: ``steps`` steps of size 1/255 projected back to the budget (Kurakin
    et al.; default ``min(eps*255 + 4, 1.25 * eps*255)`` steps, 10 at 8/255).
    """
    if attack == "noise":
        sign = torch.randint(0, 2, x.shape, generator=gen).to(x.device, x.dtype) * 2 - 1
        return (x + epsilon * sign).clamp(0, 1)
    if attack not in ("fgsm", "bim"):
        raise ValueError(f"unknown attack {attack!r}; choose from {ATTACKS}")
    model.eval()
    if attack == "fgsm":
        steps, alpha = 1, epsilon
    else:
        steps = steps or max(1, int(round(min(epsilon * 255 + 4, 1.25 * epsilon * 255))))
        alpha = 1 / 255
    adv = x.clone().detach()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv).float(), y)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.min(torch.max(adv, x - epsilon), x + epsilon).clamp(0, 1).detach()
    return adv


def robustness(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float = 8 / 255,
    attacks: Sequence[str] = ATTACKS, batch_size: int = 128, device: Any = "cpu", seed: int = 0, max_images: int | None = None,
) -> dict[str, float]:
    """Test accuracy under each attack, on uint8 images; ``max_images`` evaluates a fixed subset."""
    unknown = set(attacks) - set(ATTACKS)
    if unknown:
        raise ValueError(f"unknown attack(s) {sorted(unknown)}; choose from {ATTACKS}")
    if max_images is not None and max_images < len(images):
        idx = torch.from_numpy(np.sort(np.random.default_rng(seed).permutation(len(images))[:max_images]))
        images, labels = images[idx], labels[idx]
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    correct = {a: 0 for a in attacks}
    for start in range(0, len(images), batch_size):
        x = to_float(images[start : start + batch_size], device)
        y = labels[start : start + batch_size].to(device)
        for a in attacks:
            adv = perturb(model, x, y, a, epsilon, gen=gen)
            with torch.no_grad():
                correct[a] += int((model(adv).argmax(1) == y).sum())
    out: dict[str, float] = {a: correct[a] / max(len(images), 1) for a in attacks}
    out["epsilon"] = float(epsilon)
    return out
