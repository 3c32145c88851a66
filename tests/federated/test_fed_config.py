"""Config validation, partitions and bad input: everything that must fail before any training (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from synthxray.federated import FederatedConfig, MajorityClassPartitioner, partition_dataset


def tiny(tiny_npz, tmp_path, **kw):
    base = dict(
        dataset=str(tiny_npz), output_dir=str(tmp_path / "fed"), resolution=16, block_out_channels=[8, 16], layers_per_block=1,
        train_batch_size=4, sample_steps=4, num_train_timesteps=50, num_clients=2, num_rounds=2, local_steps=2,
    )
    base.update(kw)
    return FederatedConfig(**base)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"partition": "shards"}, "partition must be one of"),
        ({"fraction_train": 0.0}, r"fraction_train must be in \(0, 1\]"),
        ({"fraction_train": 1.5}, r"fraction_train must be in \(0, 1\]"),
        ({"strategy": "fedsgd"}, "strategy must be one of"),
        ({"partition": "majority", "majority_fraction": 0.4}, "majority_fraction"),
        ({"partition": "dirichlet", "dirichlet_alpha": 0}, "dirichlet_alpha"),
        ({"max_train_steps": 10}, "num_rounds \\* local_steps"),
        ({"inject_failures": ["one"]}, "partition:round"),
        ({"min_train_clients": 3}, "min_train_clients"),
    ],
)
def test_bad_config_is_rejected(tiny_npz, tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(tiny_npz, tmp_path, **kw)


def test_more_clients_than_images_per_class_fails_before_training(tiny_npz, tmp_path, monkeypatch):
    from synthxray.federated import run as fedrun

    called = []
    monkeypatch.setattr("flwr.simulation.run_simulation", lambda **kw: called.append(kw))
    cfg = tiny(tiny_npz, tmp_path, num_clients=13)  # 12 images per class
    with pytest.raises(ValueError, match="num_clients=13 is more than the 12 images of class"):
        fedrun.run_federated(cfg)
    assert not called and not (tmp_path / "fed" / "partitions.json").exists()


def test_majority_that_cannot_fit_fails_before_training(tiny_npz, tmp_path):
    from synthxray.federated.run import prepare

    with pytest.raises(ValueError, match="do not fit class counts"):
        prepare(tiny(tiny_npz, tmp_path, num_clients=12, partition="majority", majority_fraction=0.9))


def test_cli_reports_bad_config_in_one_line(tiny_npz, tmp_path, capsys):
    from synthxray.cli import main

    path = tmp_path / "fed.yaml"
    path.write_text(f"dataset: {tiny_npz}\noutput_dir: {tmp_path / 'out'}\npartition: pathological\n")
    assert main(["federated", "--config", str(path)]) == 2
    assert "partition must be one of" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_partitions_have_the_requested_skew():
    import datasets

    labels = np.array([0] * 300 + [1] * 900)
    ds = datasets.Dataset.from_dict({"label": labels.tolist(), "i": list(range(len(labels)))})
    cfg = FederatedConfig(dataset="x", output_dir="o", num_clients=4, partition="majority", majority_fraction=0.8)
    parts = partition_dataset(cfg, ds)
    shares = []
    for p in parts:
        counts = np.bincount(p["label"], minlength=2)
        shares.append(counts.max() / counts.sum())
        assert len(p) == len(parts[0])  # equal-sized sites
    assert np.allclose(shares, 0.8, atol=0.01)
    majorities = sorted(int(np.bincount(p["label"]).argmax()) for p in parts)
    assert majorities == [0, 1, 1, 1]  # majority classes in proportion to the class sizes (1:3)
    ids = np.concatenate([p["i"] for p in parts])
    assert len(np.unique(ids)) == len(ids)  # no image at two sites

    iid = partition_dataset(FederatedConfig(dataset="x", output_dir="o", num_clients=4, partition="iid"), ds)
    assert sum(len(p) for p in iid) == len(ds)
    for p in iid:  # shuffled before sharding: every site near the global 25 %
        assert abs(np.mean(np.asarray(p["label"]) == 0) - 0.25) < 0.08

    skewed = partition_dataset(FederatedConfig(dataset="x", output_dir="o", num_clients=4, partition="dirichlet", dirichlet_alpha=0.1), ds)
    assert sum(len(p) for p in skewed) == len(ds)
    assert max(abs(np.mean(np.asarray(p["label"]) == 0) - 0.25) for p in skewed) > 0.2


def test_majority_partitioner_uses_flwr_datasets_interface():
    import datasets

    part = MajorityClassPartitioner(num_partitions=3, fraction=0.7)
    part.dataset = datasets.Dataset.from_dict({"label": [0] * 30 + [1] * 30 + [2] * 30})
    assert part.num_partitions == 3
    for pid in range(3):
        counts = np.bincount(part.load_partition(pid)["label"], minlength=3)
        assert counts.argmax() == pid and counts[pid] / counts.sum() == pytest.approx(0.7, abs=0.05)


def test_strategy_is_flowers_weighted_by_examples_and_samples_the_fraction():
    from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg, FedProx

    from synthxray.federated.server_app import make_strategy

    base = dict(dataset="x", output_dir="o", num_clients=10)
    cfg = FederatedConfig(fraction_train=0.3, **base)
    s = make_strategy(cfg)
    assert type(s) is FedAvg and s.weighted_by_key == "num-examples"
    assert s.min_train_nodes == cfg.sites_per_round == 3 and s.min_available_nodes == 10  # fixed before all nodes connect
    assert FederatedConfig(fraction_train=0.05, min_train_clients=2, **base).sites_per_round == 2
    prox = make_strategy(FederatedConfig(strategy="fedprox", proximal_mu=0.1, **base))
    assert isinstance(prox, FedProx) and prox.proximal_mu == 0.1
    dp = make_strategy(FederatedConfig(dp_noise_multiplier=0.5, dp_clipping_norm=2.0, **base))
    assert isinstance(dp, DifferentialPrivacyClientSideFixedClipping) and dp.clipping_norm == 2.0


def test_supernode_partition_needs_class_names_and_is_for_deployment(tmp_path):
    from synthxray.federated.run import prepare
    from synthxray.federated.server_app import server_classes

    with pytest.raises(ValueError, match="class_names"):
        FederatedConfig(output_dir="o", partition="supernode")
    cfg = FederatedConfig(output_dir=str(tmp_path / "o"), partition="supernode", class_names=["normal", "pneumonia"], channels=1)
    assert server_classes(cfg) == (["normal", "pneumonia"], 1)
    with pytest.raises(ValueError, match="deployment engine"):
        prepare(cfg)


def test_plain_and_secagg_servers_average_the_site_losses_by_one_rule():
    """The Message-API server's ``aggregate_losses`` and SecAgg+'s legacy ``fit_metrics_aggregation_fn`` are the same
    example-weighted mean (``federated.metrics.weighted_losses``), of the losses only."""
    from flwr.app import MetricRecord, RecordDict

    from synthxray.federated import secagg
    from synthxray.federated.metrics import metrics_of, weighted_losses
    from synthxray.federated.server_app import aggregate_losses

    sites = [metrics_of([1.0] * 5, 30, 3.0, 0, 5), metrics_of([3.0] * 5, 10, 9.0, 1, 5, **{"train-loss-g": 2.0})]
    expected = {"train-loss": 1.5, "train-loss-last": 1.5, "train-loss-g": 0.5}
    assert weighted_losses([(m["num-examples"], m) for m in sites]) == pytest.approx(expected)
    records = [RecordDict({"metrics": MetricRecord(m)}) for m in sites]
    assert dict(aggregate_losses(records, "num-examples")) == pytest.approx(expected)
    assert secagg.weighted_losses is weighted_losses  # what make_secagg_strategy passes to Flower's legacy strategy
