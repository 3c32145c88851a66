"""Every backbone: tiny config forwards grayscale and RGB; saved classifiers load back; random fallback is loud."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from synthxray import list_backbones, load_classifier
from synthxray.experiments.backbones import TINY_OPTIONS, Classifier


def test_registry_lists_the_five_backbones():
    assert {"densenet121", "dinov2", "resnet18", "cnn", "clip"} <= set(list_backbones())
    assert set(TINY_OPTIONS) == set(list_backbones())


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
@pytest.mark.parametrize("channels", [1, 3])
def test_tiny_backbone_forward(name, channels):
    torch.manual_seed(0)
    model = Classifier(name, ["a", "b", "c"], 16, channels, TINY_OPTIONS[name])
    out = model(torch.rand(2, channels, 16, 16))
    assert out.shape == (2, 3)
    loss = out.logsumexp(1).mean()
    loss.backward()
    assert any(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_save_and_load_gives_the_same_probabilities(name, tmp_path):
    torch.manual_seed(1)
    model = Classifier(name, ["NORMAL", "PNEUMONIA"], 16, 1, TINY_OPTIONS[name]).eval()
    model.metrics = {"accuracy": 0.5}
    model.save_pretrained(tmp_path / "clf")
    info = json.loads((tmp_path / "clf" / "classifier.json").read_text())
    assert info["backbone"] == name and info["class_names"] == ["NORMAL", "PNEUMONIA"]
    assert info["image_size"] == 16 and info["channels"] == 1 and info["metrics"] == {"accuracy": 0.5}
    assert (tmp_path / "clf" / "model.safetensors").is_file()
    loaded = load_classifier(tmp_path / "clf")
    images = [Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 24), dtype=np.uint8)) for i in range(3)]
    images.append(images[0].convert("RGB"))  # RGB input to a grayscale classifier is converted
    p1, p2 = model.predict_proba(images), loaded.predict_proba(images)
    assert p1.shape == (4, 2) and np.allclose(p1.sum(1), 1, atol=1e-5)
    assert np.allclose(p1, p2, atol=1e-5)
    assert loaded.class_names == ["NORMAL", "PNEUMONIA"]


@pytest.mark.parametrize("name,options", [("resnet18", {"weights": "/nonexistent/resnet.pth"}), ("dinov2", {"weights": "/nonexistent/dinov2"})])
def test_unreachable_weights_fall_back_to_random_loudly(name, options, caplog):
    with caplog.at_level(logging.WARNING, logger="synthxray.experiments"):
        model = Classifier(name, ["a", "b"], 28, 1, options)
    assert model.pretrained is False
    assert "RANDOM WEIGHTS" in model.weights_note
    assert "RANDOM WEIGHTS" in caplog.text
    # with random weights nothing is frozen (freeze: auto)
    assert all(p.requires_grad for p in model.parameters())


def test_cnn_rejects_weights_and_unknown_options():
    with pytest.raises(ValueError):
        Classifier("cnn", ["a", "b"], 16, 1, {"weights": "imagenet"})
    with pytest.raises(ValueError, match="bad option"):
        Classifier("cnn", ["a", "b"], 16, 1, {"depth": 3})
