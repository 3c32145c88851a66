"""One site's local steps and the server's checkpoints, without the simulation engine."""

from __future__ import annotations

import torch

from synthxray.federated import FederatedConfig


def test_local_train_runs_local_steps_from_the_global_weights(tiny_npz, tmp_path):
    from synthxray.data import load_dataset
    from synthxray.federated.client_app import local_train, split_arrays
    from synthxray.federated.server_app import initial_state

    cfg = FederatedConfig(
        dataset=str(tiny_npz), output_dir=str(tmp_path / "o"), resolution=16, block_out_channels=[8, 16], layers_per_block=1,
        train_batch_size=4, num_train_timesteps=50, num_clients=2, num_rounds=3, local_steps=3,
    )
    state = initial_state(cfg, 2, 1)
    assert initial_state(cfg, 2, 1)["model.conv_in.weight"].equal(state["model.conv_in.weight"])  # seeded round 0
    ds = load_dataset(str(tiny_npz))
    new, metrics = local_train(cfg, state, ds, num_classes=2, channels=1, server_round=2, partition_id=1, proximal_mu=0.1)
    assert set(new) == set(state)
    assert metrics["num-examples"] == len(ds) and metrics["steps"] == 3 and metrics["train-loss"] > 0
    model, ema = split_arrays(new)
    moved = (model["conv_in.weight"] - state["model.conv_in.weight"]).abs().max()
    ema_moved = (ema["conv_in.weight"] - state["ema.conv_in.weight"]).abs().max()
    assert moved > 0 and 0 < ema_moved < moved  # EMA trails the model


def test_checkpoint_round_trip_keeps_the_last(tmp_path):
    from flwr.app import ArrayRecord

    from synthxray.federated.server_app import load_latest_checkpoint, save_checkpoint

    for r in (1, 2, 3):
        save_checkpoint(tmp_path, r, ArrayRecord({"model.w": torch.full((2,), float(r))}), keep=2)
    r, state = load_latest_checkpoint(tmp_path)
    assert r == 3 and state["model.w"].tolist() == [3.0, 3.0]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint_2", "checkpoint_3"]
