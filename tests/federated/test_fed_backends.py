"""The GAN and VAE backends of a federation, without the simulation engine: config checks, one site's local steps
(the trainers' own pieces), and the generator folder the global weights make."""

from __future__ import annotations

import pytest
import torch

from synthxray.federated import FederatedConfig

GAN_ARGS = dict(generator_channels=16, discriminator_channels=16, min_channels=8, latent_dim=8)
VAE_ARGS = dict(base_channels=8, max_channels=16, latent_dim=4)


def weight(state, prefix):
    """The first float matrix/kernel under ``prefix`` (biases and batch-norm counters move differently)."""
    return next(k for k in state if k.startswith(prefix + ".") and state[k].is_floating_point() and state[k].ndim > 1)


def fed(tiny_npz, tmp_path, **kw):
    base = dict(dataset=str(tiny_npz), output_dir=str(tmp_path / "o"), resolution=16, train_batch_size=4, num_clients=2,
                num_rounds=3, local_steps=2)
    return FederatedConfig(**{**base, **kw})


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(backend="sd-lora"), "cannot be trained from scratch by a federation"),
        (dict(backend="sd-dreambooth"), "federated training supports acgan, cgan, dcgan, ddpm, vae, wgan-gp"),
        (dict(backend="stylegan"), "is not a synthxray backend"),
        (dict(backend="dcgan", backend_args={"architecture": "wgan-gp"}), "drop architecture"),
        (dict(backend="dcgan", backend_args={"latent_size": 8}), r"\['latent_size'\] are not flags of the dcgan trainer"),
        (dict(backend="vae", backend_args={"max_train_steps": 8}), "are federation fields"),
        (dict(backend="vae", learning_rate=1e-3), r"\['learning_rate'\] are DDPM flags"),
        (dict(backend="vae", backend_args="{not json"), "must be a mapping"),
        (dict(backend="wgan-gp", backend_args={"discriminator_norm": "batch"}), "gradient penalty"),
        (dict(backend="acgan", backend_args={"conditional": False}), "class-conditional by definition"),
        (dict(backend="dcgan", strategy="fedprox"), "adversarial step"),
        (dict(backend_args={"latent_dim": 8}), "backend ddpm takes its flags at the top level"),
        (dict(backend="vae", backend_args={"conditional": False}, fid_every_rounds=1), "no classes to match"),
    ],
)
def test_bad_backend_input_fails_before_training(tiny_npz, tmp_path, kw, match, monkeypatch):
    """``run_federated``'s first step refuses them before it reads any data or writes anything."""
    from synthxray.federated import partition
    from synthxray.federated.run import prepare

    monkeypatch.setattr(partition, "load_training_set", lambda cfg: pytest.fail("the data was read before the check"))
    with pytest.raises(ValueError, match=match):
        prepare(fed(tiny_npz, tmp_path, **kw))
    assert not (tmp_path / "o").exists()


def test_backend_args_from_the_command_line_are_json(tiny_npz, tmp_path):
    from synthxray.training.common import parse_config

    cfg = parse_config(FederatedConfig, ["--dataset", str(tiny_npz), "--output_dir", str(tmp_path / "o"), "--backend", "vae",
                                         "--backend_args", '{"latent_dim": 4, "kl_weight": 0.5}'])
    assert cfg.backend_args == {"latent_dim": 4, "kl_weight": 0.5}
    assert FederatedConfig.from_json(cfg.to_json()).backend_args == cfg.backend_args
    yaml = tmp_path / "fed.yaml"
    yaml.write_text(f"dataset: {tiny_npz}\noutput_dir: {tmp_path / 'o'}\nbackend: wgan-gp\n"
                    "backend_args: {use_ema: true, n_critic: 3}\n")
    cfg = parse_config(FederatedConfig, [str(yaml)])
    assert cfg.backend == "wgan-gp" and cfg.backend_args == {"use_ema": True, "n_critic": 3}


@pytest.mark.parametrize("backend, args", [("wgan-gp", dict(GAN_ARGS, use_ema=True)), ("vae", VAE_ARGS)])
def test_one_site_trains_the_backend_from_the_global_weights(tiny_npz, tmp_path, backend, args):
    from synthxray import load_generator
    from synthxray.data import load_dataset
    from synthxray.federated.client_app import local_train
    from synthxray.federated.report import build_generator
    from synthxray.federated.server_app import initial_state

    cfg = fed(tiny_npz, tmp_path, backend=backend, backend_args=args)
    state = initial_state(cfg, 2, 1)
    assert initial_state(cfg, 2, 1).keys() == state.keys()
    prefixes = {k.split(".")[0] for k in state}
    assert prefixes == ({"generator", "discriminator", "ema"} if backend == "wgan-gp" else {"vae"})
    ds = load_dataset(str(tiny_npz))
    new, metrics = local_train(cfg, state, ds, num_classes=2, channels=1, server_round=2, partition_id=1)
    assert new.keys() == state.keys() and metrics["num-examples"] == len(ds) and metrics["steps"] == 2
    moved = weight(state, "discriminator" if backend == "wgan-gp" else "vae")
    assert (new[moved] - state[moved]).abs().max() > 0  # the site's steps moved the weights
    if backend == "wgan-gp":  # 2 steps with n_critic 5: the critic moves, the generator and its EMA do not yet
        g = weight(state, "generator")
        e = "ema." + g[len("generator."):]
        assert torch.equal(new[g], state[g]) and torch.equal(new[e], state[e])
    gen = build_generator(cfg, new, ["0", "1"], 1, {"rounds_done": [1, 2]})
    assert gen.backend == backend and gen.info.extra["federation"] == {"rounds_done": [1, 2]}
    gen.save_pretrained(tmp_path / "gen")
    loaded = load_generator(tmp_path / "gen", device="cpu")
    images = loaded.generate(2, class_label="1", seed=0)
    assert len(images) == 2 and images[0].size == (16, 16)
    assert loaded.info.extra["backend_config"]["latent_dim"] == args["latent_dim"]
    if backend == "wgan-gp":
        assert (tmp_path / "gen" / "discriminator").is_dir()


def test_a_batch_norm_gan_record_survives_flowers_dp_clipping(tiny_npz, tmp_path):
    """dcgan's batch norm has integer step counters; they stay out of the record, so Flower's in-place clipping
    (fixedclipping_mod) and averaging see float arrays only, and the record still loads."""
    from flwr.app import ArrayRecord
    from flwr.supercore.differential_privacy import compute_clip_model_update, get_norm

    from synthxray.federated.backends import get_backend
    from synthxray.federated.server_app import initial_state

    cfg = fed(tiny_npz, tmp_path, backend="dcgan", backend_args=GAN_ARGS)
    state = initial_state(cfg, 2, 1)
    assert not any(k.endswith("num_batches_tracked") for k in state) and all(v.is_floating_point() for v in state.values())
    assert any(k.endswith("running_var") for k in state)  # the batch-norm statistics are averaged with the weights
    old = ArrayRecord(state).to_numpy_ndarrays()
    new = [a + 0.1 for a in old]
    compute_clip_model_update(param1=new, param2=old, clipping_norm=0.5)
    assert abs(get_norm([n - o for n, o in zip(new, old)]) - 0.5) < 1e-3
    clipped = {k: torch.from_numpy(a.copy()) for k, a in zip(state, new)}
    gen = get_backend(cfg).build_generator(clipped, ["0", "1"], 1, {})
    assert len(gen.generate(1, class_label="0", seed=0)) == 1
