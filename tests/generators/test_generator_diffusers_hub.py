"""The ``diffusers`` backend: pipelines others trained (no synthxray.json), wrapped, generated from, saved, reloaded.

Every pipeline is tiny, random and built offline from configs, saved with ``save_pretrained`` to a folder that has
no ``synthxray.json`` (as a model on the Hub would be).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from synthxray.cli import main
from synthxray.generators import GENERATORS, load_generator
from synthxray.generators.diffusers_hub import DiffusersHubGenerator
from synthxray.synthesis import generate_dataset

PROMPTS = {"normal": "a chest x-ray showing normal", "pneumonia": "a chest x-ray showing pneumonia"}
CARD = "---\nlicense: openrail\ntags:\n- diffusers\n---\n# a tiny model\n"


def same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory) -> Path:
    """A tiny Stable Diffusion pipeline folder with a model card naming a license, and no synthxray.json."""
    from tiny_sd import build_tiny_sd

    folder = build_tiny_sd(tmp_path_factory.mktemp("plain_sd") / "model")
    (folder / "README.md").write_text(CARD)
    assert not (folder / "synthxray.json").exists()
    return folder


def build_ddpm(folder: Path, seed: int, channels: int = 1) -> Path:
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=8, in_channels=channels, out_channels=channels, layers_per_block=1,
                       block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4, add_attention=False)
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=20)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def ddpm_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plain_ddpm")
    return {"normal": build_ddpm(root / "normal", 0), "pneumonia": build_ddpm(root / "pneumonia", 1)}


@pytest.fixture(scope="module")
def dit_folder(tmp_path_factory) -> Path:
    """A tiny DiT (transformer + VAE) whose model_index.json carries id2label, as facebook/DiT-XL-2-256 does."""
    from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(0)
    # num_embeds_ada_norm stays 1000: DiTPipeline hard-codes label 1000 as the null class of guidance
    transformer = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=4, in_channels=4, out_channels=8,
                                        num_layers=1, sample_size=4, patch_size=2, num_embeds_ada_norm=1000)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, sample_size=8)
    folder = tmp_path_factory.mktemp("plain_dit") / "model"
    pipe = DiTPipeline(transformer=transformer, vae=vae, scheduler=DDIMScheduler(num_train_timesteps=50))
    pipe.save_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["id2label"] = {"0": "tench, Tinca tinca", "1": "goldfish", "2": "lung"}
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def test_registered_like_every_backend():
    assert GENERATORS.get("diffusers") is DiffusersHubGenerator


def test_text_to_image_folder_to_labelled_dataset(sd_folder, tmp_path):
    gen = load_generator(sd_folder, prompts=PROMPTS, negative_prompt="blurry", guidance_scale=3.0,
                         num_inference_steps=2, size=32, grayscale=True, device="cpu")
    assert isinstance(gen, DiffusersHubGenerator) and gen.class_names == ["normal", "pneumonia"]
    assert gen.info.extra["kind"] == "text2image" and gen.info.extra["license"] == "openrail"
    assert gen.info.defaults["negative_prompt"] == "blurry" and gen.info.defaults["grayscale"] is True
    assert gen.info.defaults["guidance_scale"] == 3.0 and gen.info.defaults["num_inference_steps"] == 2
    ds = generate_dataset(gen, per_class=2, seed=5, output_dir=tmp_path / "syn", batch_size=2, progress=False)
    assert ds["class_name"] == ["normal"] * 2 + ["pneumonia"] * 2
    assert set(ds["generator"]) == {"diffusers"} and set(ds["generator_path"]) == {str(sd_folder)}
    assert set(ds["scheduler"]) == {"native"} and set(ds["num_inference_steps"]) == {2}
    image = ds[0]["image"]
    assert image.mode == "L" and image.size == (32, 32)
    alone = gen.generate(1, class_label="pneumonia", seed=[ds[3]["seed"]])  # any image can be remade alone
    assert np.abs(np.asarray(alone[0], float) - np.asarray(ds[3]["image"], float)).max() <= 1


def test_wrap_round_trip_same_images(sd_folder, tmp_path, capsys):
    out = tmp_path / "wrapped"
    rc = main(["wrap", "--model", str(sd_folder), "--prompt", f"normal={PROMPTS['normal']}",
               "--prompt", f"pneumonia={PROMPTS['pneumonia']}", "--num_inference_steps", "2", "--grayscale",
               "--output_dir", str(out)])
    assert rc == 0 and "license openrail" in capsys.readouterr().out
    info = json.loads((out / "synthxray.json").read_text())
    assert info["backend"] == "diffusers" and info["prompts"] == PROMPTS and info["class_names"] == list(PROMPTS)
    assert info["base_model"] == str(sd_folder) and info["extra"]["sources"]["*"]["license"] == "openrail"
    wrapped = load_generator(out, device="cpu")  # no prompts: they are in synthxray.json
    direct = load_generator(sd_folder, prompts=PROMPTS, num_inference_steps=2, grayscale=True, device="cpu")
    for cls in PROMPTS:
        assert same(wrapped.generate(2, class_label=cls, seed=9), direct.generate(2, class_label=cls, seed=9))
    assert wrapped.provenance["generator_path"] == str(out)
    assert main(["wrap", "--model", str(sd_folder), "--prompt", "normal=x", "--output_dir", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_generate_command_takes_prompts(sd_folder, tmp_path, capsys):
    out = tmp_path / "syn"
    rc = main(["generate", "--model", str(sd_folder), "--prompt", f"normal={PROMPTS['normal']}",
               "--prompt", f"pneumonia={PROMPTS['pneumonia']}", "--per_class", "1", "--num_inference_steps", "1",
               "--scheduler", "ddim", "--device", "cpu", "--output_dir", str(out)])
    assert rc == 0 and "wrote 2 images (normal 1, pneumonia 1)" in capsys.readouterr().out
    rc = main(["generate", "--model", str(sd_folder), "--per_class", "1", "--output_dir", str(tmp_path / "none")])
    assert rc == 2 and "pass one prompt per class" in capsys.readouterr().err


def test_unconditional_pipelines_one_per_class(ddpm_folders, tmp_path):
    gen = load_generator(ddpm_folders, num_inference_steps=3, device="cpu")
    assert gen.class_names == ["normal", "pneumonia"] and gen.info.extra["kind"] == "unconditional"
    ds = generate_dataset(gen, per_class=2, seed=1, output_dir=tmp_path / "syn", batch_size=2, progress=False)
    assert ds["label"] == [0, 0, 1, 1] and ds[0]["image"].mode == "L" and ds[0]["image"].size == (8, 8)
    paths = set(ds["generator_path"])
    assert paths == {f"normal={ddpm_folders['normal']};pneumonia={ddpm_folders['pneumonia']}"}
    gen.save_pretrained(tmp_path / "wrapped")
    again = load_generator(tmp_path / "wrapped", device="cpu")
    assert again.per_class_models == {"normal": "normal", "pneumonia": "pneumonia"}
    for cls in gen.class_names:
        assert same(gen.generate(2, class_label=cls, seed=3), again.generate(2, class_label=cls, seed=3))
    a, b = gen.generate(1, class_label=0, seed=3), gen.generate(1, class_label=1, seed=3)
    assert not same(a, b)  # each class comes from its own model


def test_class_conditional_dit(dit_folder, tmp_path):
    with pytest.raises(ValueError, match="knows 4 classes"):
        load_generator(dit_folder, device="cpu")
    gen = load_generator(dit_folder, classes={"normal": "goldfish", "pneumonia": "lung"}, num_inference_steps=2,
                         grayscale=True, device="cpu")
    assert gen.info.extra["kind"] == "class-conditional"
    assert gen.info.extra["label_ids"] == {"normal": 1, "pneumonia": 2}
    ds = generate_dataset(gen, per_class=1, seed=0, output_dir=tmp_path / "syn", progress=False)
    assert ds["class_name"] == ["normal", "pneumonia"] and ds[0]["image"].mode == "L"
    assert set(ds["generator_path"]) == {str(dit_folder)}
    gen.save_pretrained(tmp_path / "wrapped")
    again = load_generator(tmp_path / "wrapped", device="cpu")
    assert same(gen.generate(2, class_label="pneumonia", seed=4), again.generate(2, class_label="pneumonia", seed=4))
    with pytest.raises(ValueError, match="no class"):
        load_generator(dit_folder, classes=["cat"], device="cpu")


def test_clear_errors(tmp_path, sd_folder, ddpm_folders, capsys):
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="neither synthxray.json nor model_index.json"):
        load_generator(empty)
    rc = main(["generate", "--model", str(empty), "--per_class", "1", "--output_dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "neither synthxray.json nor model_index.json" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="no prompt for class"):
        load_generator({"normal": sd_folder, "pneumonia": sd_folder}, prompts={"normal": "x"}, device="cpu")
    with pytest.raises(ValueError, match="one per class"):
        load_generator(ddpm_folders["normal"], device="cpu")
    with pytest.raises(ValueError, match="takes no prompts"):
        load_generator(ddpm_folders, prompts=PROMPTS, device="cpu")
    with pytest.raises(ValueError, match="cpu_offload=True needs a CUDA"):
        load_generator(sd_folder, prompts=PROMPTS, device="cpu", cpu_offload=True)


def test_gated_and_missing_token_errors_say_what_to_do(monkeypatch):
    import httpx
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    from synthxray.generators.base import HubLoadError, explain_hub_load

    response = httpx.Response(401, request=httpx.Request("GET", "https://huggingface.co/api/models/org/gated"))
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(HubLoadError, match="gated and no Hub token is set: accept its license .*hf auth login"):
        with explain_hub_load("org/gated"):
            raise GatedRepoError("Access to model org/gated is restricted", response=response)
    with pytest.raises(HubLoadError, match="repository not found; if it is private, log in"):
        with explain_hub_load("org/private"):
            raise RepositoryNotFoundError("404", response=httpx.Response(404, request=response.request))
    monkeypatch.setattr("huggingface_hub.get_token", lambda: "hf_x")
    with pytest.raises(HubLoadError, match="this token has no access .*accept its license"):
        with explain_hub_load("org/gated"):
            raise GatedRepoError("restricted", response=httpx.Response(403, request=response.request))
