"""Generators: push -> load_generator(repo_id, revision) -> generate gives the same images for a seed."""

from __future__ import annotations

import json

import pytest

from hub_testing import ALICE, snapshot, unexpected_strays
from synthxray.generators import list_generators

# backends with a tiny builder here; others are listed as skipped (with the reason) until one is added
# (one GAN stands for the four: dcgan, cgan and acgan share its generator class, save and load path)
TINY_BUILDERS = {"ddpm": "ddpm_folder", "sd-dreambooth": "sd_dreambooth_folder", "sd-lora": "sd_lora_folder",
                 "wgan-gp": "wgan_gp_folder", "vae": "vae_folder", "diffusers": "diffusers_folder"}

GENERATE_AND_HASH = r'''
import hashlib, os
import numpy as np
from synthxray import load_generator
from synthxray.generators.oneshot import OneShotGenerator

def fingerprints(gen):
    # two sampler steps keep the diffusion backends fast; one-pass backends (GAN, VAE) have no sampler
    # and refuse sampler settings by design
    steps = {} if isinstance(gen, OneShotGenerator) else {"num_inference_steps": 2}
    out = []
    for cls in gen.class_names:
        for im in gen.generate(2, class_label=cls, seed=11, batch_size=2, **steps):
            out.append(hashlib.sha256(np.asarray(im).tobytes()).hexdigest())
    return out
'''

PUSH_AND_PULL = GENERATE_AND_HASH + r'''
import json, pathlib
from huggingface_hub import HfApi
from synthxray.hub import push_generator
local = load_generator(folder, device="cpu")
before = fingerprints(local)
info_path = pathlib.Path(folder) / "synthxray.json"
info = json.loads(info_path.read_text())
if info["backend"] == "sd-lora":
    # a LoRA repo names its base model: publish the base first and point the LoRA at its Hub id + commit
    api = HfApi(token=alice)
    api.create_repo(f"alice/{name}-base")
    base_commit = api.upload_folder(folder_path=info["base_model"], repo_id=f"alice/{name}-base").oid
    info.update(base_model=f"alice/{name}-base", base_model_revision=base_commit)
    info_path.write_text(json.dumps(info))
pushed = push_generator(folder, f"alice/{name}", token=alice, commit_message="tiny generator")
remote = load_generator(f"alice/{name}", revision=pushed.commit, device="cpu")
result = {
    "before": before, "after": fingerprints(remote), "commit": pushed.commit, "url": pushed.url,
    "revision": remote.revision, "source": remote.source, "classes": remote.class_names,
    "provenance": remote.provenance, "base_model": remote.info.base_model, "backend": remote.backend,
}
'''


@pytest.mark.parametrize("backend", list_generators())
def test_hub_generator_round_trip_same_images(backend, request, hub, hub_client, repo_name):
    if backend not in TINY_BUILDERS:
        pytest.skip(f"no tiny {backend!r} generator builder in tests/hub yet (TINY_BUILDERS covers {sorted(TINY_BUILDERS)})")
    folder = request.getfixturevalue(TINY_BUILDERS[backend])
    r = hub_client.run(PUSH_AND_PULL, folder=str(folder), name=repo_name, alice=ALICE, timeout=240)
    assert r["after"] == r["before"], "the pulled generator must make the same images for the same seeds"
    assert len(set(r["before"])) == len(r["before"]), "different seeds/classes should give different images"
    assert r["revision"] == r["commit"] and r["source"] == f"alice/{repo_name}"
    assert r["provenance"]["generator_revision"] == r["commit"]
    files = hub.files(f"alice/{repo_name}")
    info = json.loads(files["synthxray.json"])
    assert info["backend"] == backend and r["backend"] == backend
    if backend in ("wgan-gp", "vae"):  # one-pass networks as diffusers folders; a GAN keeps its discriminator
        net = "vae" if backend == "vae" else "generator"
        assert f"{net}/config.json" in files and f"{net}/diffusion_pytorch_model.safetensors" in files
        assert (backend == "vae") != ("discriminator/config.json" in files)
        assert f"backend: {backend}".encode() in files["README.md"]
    if backend == "sd-lora":
        assert r["base_model"] == f"alice/{repo_name}-base" and "pytorch_lora_weights.safetensors" in files
        assert "README.md" in files and f"base_model: alice/{repo_name}-base".encode() in files["README.md"]
    assert "README.md" in files and b"library_name: synthxray" in files["README.md"]
    assert not any(p.startswith(("checkpoints/", "logs/")) for p in files)
    assert not unexpected_strays(hub)


CLI_PUSH = GENERATE_AND_HASH + r'''
import os
from synthxray.cli import main
code = main(["push", "generator", folder, f"alice/{name}", "--token", alice, "--private", "--revision", "exp-1",
             "--commit_message", "from the CLI"])
os.environ["HF_TOKEN"] = alice  # a private repo: load_generator uses the saved/env token like any HF client
try:
    remote = load_generator(f"alice/{name}", revision="exp-1", device="cpu")
    after = fingerprints(remote)
finally:
    del os.environ["HF_TOKEN"]
result = {"code": code, "after": after, "before": fingerprints(load_generator(folder, device="cpu"))}
'''


def test_hub_push_cli_private_branch(hub, hub_client, ddpm_folder, repo_name):
    before_files = snapshot(ddpm_folder)
    r = hub_client.run(CLI_PUSH, folder=str(ddpm_folder), name=repo_name, alice=ALICE, timeout=240)
    assert r["code"] == 0
    assert r["after"] == r["before"]
    repo = hub.state.repos[("model", f"alice/{repo_name}")]
    assert repo.private and set(repo.branches) == {"main", "exp-1"}
    branch = hub.files(f"alice/{repo_name}", revision="exp-1")
    assert "synthxray.json" in branch and "synthxray.json" not in hub.files(f"alice/{repo_name}", revision="main")
    assert [c.title for c in hub.commits(f"alice/{repo_name}") if c.title == "from the CLI"]
    # the push only (re)wrote the card in the local folder, now naming the repo
    after_files = snapshot(ddpm_folder)
    assert set(after_files) == set(before_files) | {"README.md"}
    assert all(after_files[k] == v for k, v in before_files.items() if k != "README.md")
    assert f'load_generator("alice/{repo_name}")'.encode() in after_files["README.md"]


TRAINING_PUSH = r'''
from types import SimpleNamespace
from synthxray.hub import push_to_hub_if_requested
skipped = push_to_hub_if_requested(SimpleNamespace(push_to_hub=False, hub_model_id=None, hub_token=alice), folder)
cfg = SimpleNamespace(push_to_hub=True, hub_model_id=None, hub_token=alice)
pushed = push_to_hub_if_requested(cfg, folder)
result = {"skipped": skipped is None, "repo_id": pushed.repo_id, "commit": pushed.commit}
'''


def test_hub_push_to_hub_if_requested_uses_folder_name(hub, hub_client, ddpm_folder, repo_name):
    folder = ddpm_folder.rename(ddpm_folder.with_name(repo_name))
    r = hub_client.run(TRAINING_PUSH, folder=str(folder), alice=ALICE, timeout=240)
    assert r["skipped"]
    assert r["repo_id"] == f"alice/{repo_name}"  # namespace from whoami, name from the folder
    files = hub.files(f"alice/{repo_name}")
    assert "synthxray.json" in files and "unet/diffusion_pytorch_model.safetensors" in files
