"""Classifiers: a folder of weights + JSON/results files goes up with upload_folder and a card."""

from __future__ import annotations

import json

from hub_testing import ALICE, snapshot


def make_classifier_folder(folder):
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({"head.weight": torch.randn(2, 8), "head.bias": torch.zeros(2)}, str(folder / "model.safetensors"))
    (folder / "classifier.json").write_text(json.dumps({
        "backbone": "cnn", "class_names": ["normal", "pneumonia"], "image_size": 28, "recipe": "synth-50", "seed": 1,
        "dataset": "pneumoniamnist", "metrics": {"accuracy": 0.875, "f1": 0.9, "auc": 0.95},
    }))
    (folder / "results.csv").write_text("backbone,recipe,accuracy,f1,auc\ncnn,baseline,0.85,0.88,0.93\ncnn,synth-50,0.875,0.9,0.95\n")
    (folder / "checkpoints" / "checkpoint_0").mkdir(parents=True)
    (folder / "checkpoints" / "checkpoint_0" / "optimizer.bin").write_bytes(b"\0" * 64)
    return folder


PULL = r'''
import pathlib
from huggingface_hub import snapshot_download
from synthxray.hub import push_classifier
pushed = push_classifier(folder, f"alice/{name}", token=alice)
local = pathlib.Path(snapshot_download(f"alice/{name}", revision=pushed.commit))
result = {p.relative_to(local).as_posix(): p.read_bytes().hex() for p in local.rglob("*") if p.is_file()}
'''


def test_hub_classifier_round_trip(hub, hub_client, tmp_path, repo_name):
    folder = make_classifier_folder(tmp_path / "cnn-synth-50")
    pulled = hub_client.run(PULL, folder=str(folder), name=repo_name, alice=ALICE)
    local = snapshot(folder)
    assert {k: bytes.fromhex(v) for k, v in pulled.items() if k != ".gitattributes"} == {
        k: v for k, v in local.items() if not k.startswith("checkpoints/")
    }
    card = bytes.fromhex(pulled["README.md"]).decode()
    assert "library_name: synthxray" in card and "pipeline_tag: image-classification" in card
    assert "| cnn | synth-50 | 0.875 | 0.9 | 0.95 |" in card and "backbone:cnn" in card
    assert "Not for clinical use" in card
