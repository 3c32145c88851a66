"""``generate_dataset`` and ``synthxray generate`` work unchanged on the Stable Diffusion generators."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from synthxray import generate_dataset, load_generator


def test_generate_dataset_per_class_counts(lora_run, tmp_path):
    gen = load_generator(lora_run, device="cpu")
    ds = generate_dataset(
        gen, images_per_class={"normal": 2, "pneumonia": 1}, seed=0, output_dir=tmp_path / "ds", batch_size=2,
        num_inference_steps=2, progress=False, negative_prompt="noise",
    )
    assert Counter(ds["class_name"]) == {"normal": 2, "pneumonia": 1}
    assert set(ds["generator"]) == {"sd-lora"} and set(ds["scheduler"]) == {"dpm"}
    assert ds.features["label"].names == ["normal", "pneumonia"]


def test_synthxray_generate_command(dreambooth_run, tmp_path):
    import datasets

    from synthxray.cli import main

    out = tmp_path / "synthetic"
    code = main([
        "generate", "--model", str(dreambooth_run), "--per_class", "2", "--output_dir", str(out), "--batch_size", "2",
        "--num_inference_steps", "2", "--negative_prompt", "blurry", "--device", "cpu",
    ])
    assert code == 0
    ds = datasets.load_from_disk(str(out))
    assert Counter(ds["class_name"]) == {"normal": 2, "pneumonia": 2}
    assert set(ds["generator"]) == {"sd-dreambooth"} and set(ds["num_inference_steps"]) == {2}
    assert ds[0]["image"].mode == "L"


def test_lora_generator_needs_its_base_model(lora_run, tiny_sd, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(lora_run, moved, ignore=shutil.ignore_patterns("checkpoints", "class_images", "samples", "logs"))
    info = json.loads((moved / "synthxray.json").read_text())
    info["base_model"] = str(tmp_path / "gone")
    (moved / "synthxray.json").write_text(json.dumps(info))
    with pytest.raises(FileNotFoundError, match="needs its base model"):
        load_generator(moved, device="cpu")
    gen = load_generator(moved, device="cpu", base_model=str(tiny_sd))  # e.g. a local copy of the Hub model
    assert len(gen.generate(1, class_label="normal", seed=0, num_inference_steps=2)) == 1
