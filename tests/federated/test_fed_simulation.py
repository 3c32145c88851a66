"""Through Flower's simulation engine (Ray): 2 sites, a tiny UNet. One run, then a resume that meets a failing site.

Ray starts once per run (slow on 2 cores), so both runs share one folder and the assertions share the runs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthxray.federated import FederatedConfig, run_federated

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("flower-simulation")]  # one Ray cluster at a time under -n


def config(tiny_npz, out, **kw):
    base = dict(
        dataset=str(tiny_npz), output_dir=str(out), resolution=16, block_out_channels=[8, 16], layers_per_block=1,
        train_batch_size=4, sample_steps=4, num_train_timesteps=50, num_clients=2, num_rounds=1, local_steps=2,
        partition="majority", majority_fraction=0.8, client_num_cpus=2,  # one Ray actor: one import of torch
    )
    base.update(kw)
    return FederatedConfig(**base)


@pytest.fixture(scope="module")
def runs(tiny_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("fed") / "run"
    run_federated(config(tiny_npz, out))
    first = json.loads((out / "rounds.json").read_text())
    # resume to 2 rounds; site 1 raises in round 2
    run_federated(config(tiny_npz, out, num_rounds=2, inject_failures=["1:2"]))
    return out, first


def test_result_loads_and_generates(runs):
    from synthxray import load_generator

    out, _ = runs
    gen = load_generator(out, device="cpu")
    images = gen.generate(2, class_label=gen.class_names[1], seed=0, num_inference_steps=2)
    assert len(images) == 2 and images[0].size == (16, 16)
    fed = json.loads((out / "synthxray.json").read_text())["extra"]["federation"]
    assert fed["sites"] == 2 and fed["partition"] == "majority" and fed["rounds"] == 2
    assert fed["strategy"]["name"] == "FedAvg" and fed["strategy"]["weighted_by"] == "num-examples"
    card = (out / "README.md").read_text()
    assert "### Federated training" in card and "| partition | majority (each site holds 80% of its images from one class) |" in card
    assert (out / "rounds.png").is_file()


def test_sites_have_the_requested_skew(runs):
    out, _ = runs
    counts = json.loads((out / "partitions.json").read_text())["class_counts"]
    shares = [max(c.values()) / sum(c.values()) for c in counts]
    assert np.allclose(shares, 0.8, atol=0.1)
    assert {max(c, key=c.get) for c in counts} == {"0", "1"}


def test_resume_continues_at_the_next_round_and_a_failing_site_is_dropped(runs):
    out, first = runs
    rounds = json.loads((out / "rounds.json").read_text())["rounds"]
    assert [r["round"] for r in first["rounds"]] == [1]
    assert [r["round"] for r in rounds] == [1, 2]
    assert rounds[0] == first["rounds"][0]  # round 1 was not trained again
    assert [c["partition_id"] for c in rounds[0]["clients"]] == [0, 1]
    second = rounds[1]
    assert [c["partition_id"] for c in second["clients"]] == [0] and len(second["failures"]) == 1
    assert "injected failure: site 1 in round 2" in second["failures"][0]["reason"]
    assert second["updated"] and second["aggregated"]["train_loss"] == pytest.approx(second["clients"][0]["train_loss"])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint_1", "checkpoint_2"]
