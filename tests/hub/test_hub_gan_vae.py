"""GAN and VAE generators through the loopback hub: push -> load_generator(repo, revision) -> same images."""

from __future__ import annotations

import json

import pytest

from hub_testing import ALICE, unexpected_strays
from tiny_oneshot import train_gan, train_vae

PUSH_AND_PULL = r'''
import hashlib
import numpy as np
from synthxray import load_generator
from synthxray.hub import push_generator

def fingerprints(gen):
    return [hashlib.sha256(np.asarray(im).tobytes()).hexdigest()
            for cls in gen.class_names for im in gen.generate(2, class_label=cls, seed=11, batch_size=2)]

before = fingerprints(load_generator(folder, device="cpu"))
pushed = push_generator(folder, f"alice/{name}", token=alice, commit_message="tiny one-pass generator")
remote = load_generator(f"alice/{name}", revision=pushed.commit, device="cpu")
result = {"before": before, "after": fingerprints(remote), "commit": pushed.commit, "revision": remote.revision,
          "backend": remote.backend, "provenance": remote.provenance}
'''


@pytest.mark.parametrize("backend", ["wgan-gp", "vae"])
def test_hub_round_trip_same_images(backend, tiny_npz, tmp_path, hub, hub_client, repo_name):
    out = tmp_path / f"tiny-{backend}"
    kwargs = dict(max_train_steps=4, checkpointing_steps=2)
    folder = train_vae(tiny_npz, out, **kwargs) if backend == "vae" else train_gan(tiny_npz, out, architecture=backend, **kwargs)
    r = hub_client.run(PUSH_AND_PULL, folder=str(folder), name=repo_name, alice=ALICE, timeout=240)
    assert r["after"] == r["before"], "the pulled generator must make the same images for the same seeds"
    assert len(set(r["before"])) == len(r["before"])
    assert r["backend"] == backend and r["revision"] == r["commit"] and r["provenance"]["generator_revision"] == r["commit"]
    files = hub.files(f"alice/{repo_name}")
    assert json.loads(files["synthxray.json"])["backend"] == backend
    net = "vae" if backend == "vae" else "generator"
    assert f"{net}/config.json" in files and f"{net}/diffusion_pytorch_model.safetensors" in files
    assert (backend == "vae") != ("discriminator/config.json" in files)
    assert b"library_name: synthxray" in files["README.md"] and f"backend: {backend}".encode() in files["README.md"]
    assert not any(p.startswith(("checkpoints/", "logs/")) for p in files)
    assert not unexpected_strays(hub)
