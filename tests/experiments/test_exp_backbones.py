"""Every backbone: tiny config forwards grayscale and RGB; saved classifiers load back; random fallback is loud."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from synthxray import list_backbones, load_classifier
from synthxray.experiments.backbones import TINY_OPTIONS, create_backbone
from synthxray.experiments.classifier import Classifier


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


def test_every_family_registers_itself():
    assert {"densenet121", "dinov2", "resnet18", "resnet50", "vit_b_16", "vit_l_16", "cnn", "clip"} <= set(list_backbones())
    built = create_backbone("cnn", num_classes=2, in_channels=1, image_size=16, **TINY_OPTIONS["cnn"])
    assert built.net(torch.rand(1, 1, 16, 16)).shape == (1, 2)
    with pytest.raises(KeyError, match="known backbones"):
        create_backbone("vgg", 2, 1, 16)


@pytest.mark.parametrize("size", [28, 32])
def test_tiny_vit_runs_at_a_size_the_patch_does_not_divide(size):
    model = Classifier("vit_b_16", ["a", "b"], size, 1, TINY_OPTIONS["vit_b_16"])
    assert model.config["net_size"] == size  # both are multiples of the tiny 4 px patch
    assert model(torch.rand(2, 1, size, size)).shape == (2, 2)
    big_patch = Classifier("vit_b_16", ["a", "b"], 28, 1, {**TINY_OPTIONS["vit_b_16"], "patch_size": 16})
    assert big_patch.config["net_size"] == 32 and big_patch(torch.rand(2, 1, 28, 28)).shape == (2, 2)


def test_resnet50_offline_announces_random_weights_and_works(caplog):
    with caplog.at_level(logging.WARNING, logger="synthxray.experiments"):
        model = Classifier("resnet50", ["a", "b"], 32, 1, {"weights": "/nonexistent/resnet50.pth"})
    assert model.pretrained is False and "RANDOM WEIGHTS" in model.weights_note and "RANDOM WEIGHTS" in caplog.text
    for channels in (1, 3):
        assert model(torch.rand(2, channels, 32, 32)).shape == (2, 2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vit_b_16", "vit_l_16"])
def test_standard_vits_offline_announce_random_weights_and_work(name, caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="synthxray.experiments"):
        model = Classifier(name, ["a", "b"], 28, 1, {"weights": f"/nonexistent/{name}.pth"}).eval()
    assert model.pretrained is False and "RANDOM WEIGHTS" in caplog.text
    assert model.config["net_size"] == 32
    for channels in (1, 3):
        assert model(torch.rand(1, channels, 28, 28)).shape == (1, 2)
