"""The small-site scenario's library pieces: the large-site partition, saved site folders, the per-site report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from synthxray.experiments.sites import mean_over_sites, partition_sites, relabel, site_markdown, site_table
from synthxray.federated.config import FederatedConfig
from synthxray.federated.partition import LargeSitePartitioner, partition_dataset


def _dataset(n0: int = 60, n1: int = 140):
    import datasets

    labels = [0] * n0 + [1] * n1
    return datasets.Dataset.from_dict(
        {"idx": list(range(len(labels))), "label": labels},
        features=datasets.Features({"idx": datasets.Value("int64"), "label": datasets.ClassLabel(names=["normal", "pneumonia"])}),
    )


def test_large_site_partitioner_sizes_skew_and_determinism():
    ds = _dataset()
    part = LargeSitePartitioner(4, large_fraction=0.6, fraction=0.8, seed=3)
    part.dataset = ds
    sites = [part.load_partition(i) for i in range(4)]
    assert len(sites[0]) == 120  # 60% of 200, an IID draw
    small = [np.bincount(s["label"], minlength=2) for s in sites[1:]]
    assert len({int(c.sum()) for c in small}) == 1  # equal small sites
    for counts, majority in zip(small, part.majority):
        assert counts[majority] / counts.sum() == pytest.approx(0.8, abs=0.03)
    assert sorted(part.majority) == [0, 1, 1]  # a 3:7 rest gives one normal-majority and two pneumonia-majority sites
    ids = [set(s["idx"]) for s in sites]
    assert all(not (a & b) for i, a in enumerate(ids) for b in ids[i + 1:])  # disjoint
    assert sum(map(len, ids)) + part.unused == 200
    again = LargeSitePartitioner(4, large_fraction=0.6, fraction=0.8, seed=3)
    again.dataset = ds
    assert [list(again.load_partition(i)["idx"]) for i in range(4)] == [list(s["idx"]) for s in sites]
    other = LargeSitePartitioner(4, large_fraction=0.6, fraction=0.8, seed=4)
    other.dataset = ds
    assert list(other.load_partition(0)["idx"]) != list(sites[0]["idx"])


def test_large_site_config_validation():
    with pytest.raises(ValueError, match="large_site_fraction"):
        FederatedConfig(dataset="x.npz", output_dir="o", partition="large-site", large_site_fraction=1.0)
    with pytest.raises(ValueError, match="num_clients >= 2"):
        FederatedConfig(dataset="x.npz", output_dir="o", partition="large-site", num_clients=1)


def test_partition_sites_saves_the_federated_sites(tiny_npz, tmp_path):
    from synthxray.data import load_dataset
    from synthxray.federated.partition import load_training_set

    cfg = FederatedConfig(dataset=str(tiny_npz), output_dir=str(tmp_path / "fed"), num_clients=3, partition="large-site",
                          large_site_fraction=0.5, majority_fraction=0.75)
    sites = partition_sites(cfg, tmp_path / "sites")
    expected = partition_dataset(cfg, load_training_set(cfg))  # what the federated simulation's sites hold
    assert [s["num_images"] for s in sites] == [len(p) for p in expected]
    for s, part in zip(sites, expected):
        saved = load_dataset(s["path"])
        assert np.array_equal(np.asarray(saved["image"][0]), np.asarray(part["image"][0]))
        assert list(saved["label"]) == list(part["label"])
    index = json.loads((tmp_path / "sites" / "sites.json").read_text())
    assert index["class_names"] == load_dataset(tiny_npz).features["label"].names
    assert [s["class_counts"] for s in index["sites"]] == [s["class_counts"] for s in sites]
    assert partition_sites(cfg, tmp_path / "sites") == sites  # reused
    cfg.seed = 1
    with pytest.raises(ValueError, match="another partition.*seed=0"):
        partition_sites(cfg, tmp_path / "sites")


def _run(recipe: str, seed: int, acc: float, checksum: str = "w") -> dict:
    return {"backbone": "cnn", "recipe": recipe, "seed": seed, "init_checksum": f"{checksum}{seed}",
            "metrics": {"accuracy": acc, "f1": acc, "auc": acc, "precision": acc, "recall": acc}}


def test_site_table_paired_deltas_per_site_and_mean():
    control = {"site 1": [0.70, 0.72, 0.74], "site 2": [0.80, 0.80, 0.86]}
    synth = {"site 1": [0.71, 0.74, 0.77], "site 2": [0.79, 0.83, 0.86]}  # deltas 1: .01 .02 .03; 2: -.01 .03 .00
    runs = {site: [_run("control", s, a) for s, a in enumerate(control[site])] + [_run("synth", s, a) for s, a in enumerate(synth[site])]
            for site in control}
    rows = site_table(runs, "cnn", ["control", "synth"], ["control"])
    by = {(r["site"], r["recipe"]): r for r in rows}
    assert set(by) == {(s, r) for s in ("site 1", "site 2", "mean") for r in ("control", "synth")}
    d = by[("site 1", "synth")]["paired"]["control"]["accuracy"]
    half = stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3)  # std of (.01, .02, .03) is .01
    assert d["mean"] == pytest.approx(0.02) and d["ci95_low"] == pytest.approx(0.02 - half) and d["n"] == 3
    mean_deltas = [(0.01 - 0.01) / 2, (0.02 + 0.03) / 2, (0.03 + 0.00) / 2]
    m = by[("mean", "synth")]["paired"]["control"]["accuracy"]
    assert m["mean"] == pytest.approx(np.mean(mean_deltas))
    assert m["std"] == pytest.approx(np.std(mean_deltas, ddof=1))
    assert by[("mean", "control")]["accuracy"]["mean"] == pytest.approx(np.mean(control["site 1"] + control["site 2"]))
    assert by[("site 2", "synth")]["paired"]["control"]["shared_init"] is True
    text = site_markdown(rows, ["control"])
    assert "| site 1 | synth | 3 | 74.0% ± 3.0 |" in text and "+2.0 (" in text


def test_mean_over_sites_needs_every_site_and_relabel():
    runs = {"a": [_run("x", 0, 0.5), _run("x", 1, 0.7)], "b": [_run("x", 0, 0.9)]}
    merged = mean_over_sites(runs)
    assert len(merged) == 1 and merged[0]["metrics"]["accuracy"] == pytest.approx(0.7)  # seed 1 is missing at site b
    assert relabel([_run("synth-100", 0, 0.5), _run("baseline", 0, 0.4)], {"synth-100": "own + pool(b)"}) == [
        {**_run("synth-100", 0, 0.5), "recipe": "own + pool(b)"}]
    unshared = site_table({"a": [_run("x", 0, 0.5), _run("y", 0, 0.6, checksum="v")]}, "cnn", ["x", "y"], ["x"])
    assert "Not paired on initial weights" in site_markdown(unshared, ["x"])
