"""Fixtures for the hub tests: a Hub-protocol server on 127.0.0.1 and a client process pointed at it.

The real clients (huggingface_hub, diffusers, datasets, synthxray.hub) run unpatched in a separate
process (``client_worker.py``) whose environment names the test hub: ``HF_ENDPOINT``,
``HF_HUB_DISABLE_XET=1``, ``HF_HUB_OFFLINE=0``, a private ``HF_HOME``, and ``HTTP(S)_PROXY`` pointing
at the test hub too, so that a request to any other host (datasets probes a datasets-server host)
ends at the test hub and is logged as a stray instead of leaving the machine.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub_server import HubServer  # noqa: E402
from hub_testing import TOKENS, HubClient, hub_env  # noqa: E402


@pytest.fixture(scope="session")
def hub():
    """The test hub, shared by the hub tests (each test uses its own repo names)."""
    with HubServer(tokens=TOKENS, page_size=4) as server:
        yield server


@pytest.fixture(scope="session")
def hub_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf_home")


@pytest.fixture(scope="session")
def hub_client(hub, hub_home, tmp_path_factory):
    client = HubClient(hub_env(hub.url, hub_home), cwd=tmp_path_factory.mktemp("client_cwd"))
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _hub_test_env(monkeypatch, hub, hub_home):
    """Inside hub tests the Hub is reachable (the test hub): HF_HUB_OFFLINE=0 and the endpoint set.

    The client process got the same values at start; these settings cover code run in the test
    process itself (card rendering, subprocesses started from a test). Faults never leak.
    """
    for key, value in hub_env(hub.url, hub_home).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    hub.clear_faults()
    yield
    hub.clear_faults()


@pytest.fixture
def repo_name(request) -> str:
    """A repo name unique to the test (the hub is shared by the session)."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")
    return f"{name}-{int(time.monotonic_ns()) % 10**9}"[:90]


@pytest.fixture
def ddpm_folder(tiny_ddpm_dir, tmp_path) -> Path:
    """A private copy of the session's tiny trained DDPM (pushing writes README.md into the folder)."""
    target = tmp_path / "tiny-ddpm"
    shutil.copytree(tiny_ddpm_dir, target)
    return target


@pytest.fixture
def synthetic_folder(tiny_ddpm_dir, tmp_path):
    from synthxray import generate_dataset, load_generator

    gen = load_generator(tiny_ddpm_dir, device="cpu")
    counts = {gen.class_names[0]: 2, gen.class_names[1]: 3}
    out = tmp_path / "synthetic"
    generate_dataset(gen, images_per_class=counts, seed=7, output_dir=out, num_inference_steps=2, progress=False)
    return out


# ---- tiny one-pass generators (GAN / VAE), trained for a few steps with checkpoints to leave out ------
@pytest.fixture
def wgan_gp_folder(tiny_npz, tmp_path) -> Path:
    from tiny_oneshot import train_gan

    return train_gan(tiny_npz, tmp_path / "tiny-wgan-gp", architecture="wgan-gp", max_train_steps=4, checkpointing_steps=2)


@pytest.fixture
def vae_folder(tiny_npz, tmp_path) -> Path:
    from tiny_oneshot import train_vae

    return train_vae(tiny_npz, tmp_path / "tiny-vae", max_train_steps=4, checkpointing_steps=2)


# ---- tiny Stable Diffusion generators (random weights, built offline) ------------------------------
from tiny_sd import CLASSES as SD_CLASSES, RESOLUTION as SD_RESOLUTION  # noqa: E402

SD_PROMPTS = {c: f"a chest x-ray showing {c}" for c in SD_CLASSES}
SD_DEFAULTS = {"scheduler": "dpm", "num_inference_steps": 2, "guidance_scale": 2.0}


@pytest.fixture(scope="session")
def tiny_sd_pipeline_dir(tmp_path_factory) -> Path:
    """A full StableDiffusionPipeline folder with tiny random parts (UNet, VAE, CLIP text encoder)."""
    from tiny_sd import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("hub_tiny_sd") / "pipeline")


def _sd_info(backend: str, **kwargs):
    from synthxray.generators.base import GeneratorInfo

    return GeneratorInfo(backend=backend, class_names=list(SD_CLASSES), channels=1, resolution=SD_RESOLUTION,
                         prompts=dict(SD_PROMPTS), defaults=dict(SD_DEFAULTS),
                         data={"source": "tiny-xrays", "modality": "x-ray", "anatomy": "chest"}, **kwargs)


@pytest.fixture
def sd_dreambooth_folder(tiny_sd_pipeline_dir, tmp_path) -> Path:
    """An ``sd-dreambooth`` generator folder: the pipeline files plus ``synthxray.json``."""
    folder = tmp_path / "tiny-dreambooth"
    shutil.copytree(tiny_sd_pipeline_dir, folder)
    _sd_info("sd-dreambooth").save(folder)
    return folder


@pytest.fixture
def sd_lora_folder(tiny_sd_pipeline_dir, tmp_path) -> Path:
    """An ``sd-lora`` generator folder: a random (non-zero) UNet LoRA plus ``synthxray.json`` naming the base."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(1)
    unet = UNet2DConditionModel.from_pretrained(tiny_sd_pipeline_dir / "unet")
    unet.add_adapter(LoraConfig(r=2, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    folder = tmp_path / "tiny-lora"
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)))
    _sd_info("sd-lora", base_model=str(tiny_sd_pipeline_dir)).save(folder)
    return folder


@pytest.fixture
def diffusers_folder(tiny_sd_pipeline_dir, tmp_path) -> Path:
    """A ``diffusers`` generator folder: a plain pipeline someone else trained, wrapped with one prompt per class."""
    from synthxray.generators.diffusers_hub import wrap

    folder = tmp_path / "tiny-wrapped"
    gen = wrap(tiny_sd_pipeline_dir, prompts=dict(SD_PROMPTS), num_inference_steps=2, grayscale=True, device="cpu")
    gen.save_pretrained(folder)
    return folder
