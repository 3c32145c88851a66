"""Provenance records what was run: the steps each sampler actually took, and a manifest that carries its
own schema (provenance columns, seed stride) so the dataset card reads data, not synthesis constants."""

from __future__ import annotations

import json

import pytest

from synthxray import generate_dataset, load_generator
from synthxray.hub import render_dataset_card
from synthxray.manifest import DATASET_MANIFEST, PROVENANCE_COLUMNS, SEED_STRIDE


def _count_unet_calls(gen) -> list[int]:
    calls = [0]
    gen.pipeline.unet.register_forward_hook(lambda *args: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("scheduler, requested", [("ddpm", 3), ("ddpm", None), ("ddim", 3)])
def test_recorded_steps_are_the_steps_run(tiny_ddpm_dir, tmp_path, scheduler, requested):
    gen = load_generator(tiny_ddpm_dir, device="cpu")
    calls = _count_unet_calls(gen)
    out = tmp_path / "syn"
    ds = generate_dataset(gen, images_per_class={gen.class_names[0]: 1}, scheduler=scheduler,
                          num_inference_steps=requested, output_dir=out, progress=False)
    ran = calls[0]  # one image, one UNet call per denoising step
    expected = 50 if scheduler == "ddpm" else requested  # the tiny DDPM has T = 50 training timesteps
    assert ran == expected
    assert ds[0]["num_inference_steps"] == ran
    assert json.loads((out / DATASET_MANIFEST).read_text())["num_inference_steps"] == ran


def test_manifest_carries_its_schema_and_the_card_reads_it(tiny_ddpm_dir, tmp_path):
    gen = load_generator(tiny_ddpm_dir, device="cpu")
    out = tmp_path / "syn"
    generate_dataset(gen, per_class=1, num_inference_steps=2, seed=5, output_dir=out, progress=False)
    manifest = json.loads((out / DATASET_MANIFEST).read_text())
    assert manifest["provenance_columns"] == list(PROVENANCE_COLUMNS) and manifest["seed_stride"] == SEED_STRIDE
    assert set(PROVENANCE_COLUMNS) <= set(manifest["columns"])
    assert f"5 + c × {SEED_STRIDE} + i" in render_dataset_card(out)
    # a manifest written under another scheme is described as written, not as today's constants say
    manifest.update(seed_stride=1000, provenance_columns=["class_name", "seed"])
    (out / DATASET_MANIFEST).write_text(json.dumps(manifest))
    card = render_dataset_card(out)
    assert "5 + c × 1000 + i" in card and "`generator_revision`" not in card
