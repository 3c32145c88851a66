"""A GAN and the VAE trained through Flower's simulation engine (Ray): 2 sites, tiny networks, 2 rounds each."""

from __future__ import annotations

import json

import pytest

from synthxray.federated import FederatedConfig, run_federated

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("flower-simulation")]  # one Ray cluster at a time under -n

BACKENDS = {
    "dcgan": dict(generator_channels=16, discriminator_channels=16, min_channels=8, latent_dim=8, use_ema=True),
    "vae": dict(base_channels=8, max_channels=16, latent_dim=4),
}


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def run(request, tiny_npz, tmp_path_factory):
    backend = request.param
    out = tmp_path_factory.mktemp(f"fed-{backend}") / "run"
    cfg = FederatedConfig(
        dataset=str(tiny_npz), output_dir=str(out), resolution=16, train_batch_size=4, num_clients=2, num_rounds=2,
        local_steps=2, partition="iid", client_num_cpus=2, backend=backend, backend_args=BACKENDS[backend],
    )
    run_federated(cfg)
    return backend, out


def test_the_federated_backend_is_an_ordinary_generator_folder(run):
    from synthxray import load_generator

    backend, out = run
    gen = load_generator(out, device="cpu")
    assert gen.backend == backend
    images = gen.generate(3, class_label=gen.class_names[1], seed=0)
    assert len(images) == 3 and images[0].size == (16, 16)
    assert gen.generate(1, class_label=gen.class_names[1], seed=0)[0].tobytes() == images[0].tobytes()
    info = json.loads((out / "synthxray.json").read_text())
    fed = info["extra"]["federation"]
    assert fed["sites"] == 2 and fed["rounds"] == 2 and fed["rounds_done"] == [1, 2] and fed["strategy"]["name"] == "FedAvg"
    assert info["extra"]["train_steps"] == 4 and info["extra"]["backend_config"]["latent_dim"] == BACKENDS[backend]["latent_dim"]
    rounds = json.loads((out / "rounds.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [1, 2] and all(len(r["clients"]) == 2 and r["updated"] for r in rounds)
    assert all(r["aggregated"]["train_loss"] > 0 for r in rounds)
    if backend == "dcgan":  # the record carries both networks and the EMA; the discriminator is saved too
        assert (out / "discriminator").is_dir() and info["extra"]["ema"] is True
        assert all("train_loss_g" in c for r in rounds for c in r["clients"])
    card = (out / "README.md").read_text()
    assert "### Federated training" in card and "**2 simulated sites**" in card and "| partition | iid" in card
