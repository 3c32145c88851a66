"""Synthetic datasets: push_dataset -> synthxray.load_dataset("user/dataset") gives the same rows."""

from __future__ import annotations

import json

from hub_testing import ALICE, snapshot, unexpected_strays


PUSH_AND_LOAD = r'''
import hashlib
import numpy as np
import datasets
from synthxray import load_dataset
from synthxray.hub import push_dataset

def rows(ds):
    out = []
    for row in ds:
        row = dict(row)
        row["image"] = hashlib.sha256(np.asarray(row["image"]).tobytes()).hexdigest()
        out.append(row)
    return out

local = load_dataset(folder)
pushed = push_dataset(folder, f"alice/{name}", token=alice, commit_message="tiny synthetic set")
remote = load_dataset(f"alice/{name}")
raw = datasets.load_dataset(f"alice/{name}", split="train")
result = {
    "local": rows(local), "remote": rows(remote), "local_features": str(local.features),
    "remote_features": str(remote.features), "raw_columns": raw.column_names, "commit": pushed.commit,
    "url": pushed.url,
}
'''


def test_hub_dataset_round_trip_same_rows(hub, hub_client, synthetic_folder, repo_name):
    before = snapshot(synthetic_folder, skip=("README.md",))
    r = hub_client.run(PUSH_AND_LOAD, folder=str(synthetic_folder), name=repo_name, alice=ALICE, timeout=240)
    assert len(r["local"]) == 5
    assert r["remote"] == r["local"], "the pulled dataset must hold the same rows (pixels, labels, provenance)"
    assert r["remote_features"] == r["local_features"]
    assert {"image", "label", "class_name", "generator", "generator_path", "generator_revision", "seed",
            "scheduler", "num_inference_steps", "guidance_scale"} <= set(r["raw_columns"])
    assert r["url"].endswith(f"/datasets/alice/{repo_name}")
    files = hub.files(f"alice/{repo_name}", repo_type="dataset")
    assert any(p.startswith("data/train-") and p.endswith(".parquet") for p in files)
    manifest = json.loads(files["synthxray_dataset.json"])
    assert manifest["seed"] == 7 and sum(manifest["counts"].values()) == 5
    card = files["README.md"].decode()
    # push_to_hub added the schema to our card and kept its text
    assert "dataset_info:" in card and "synthxray:card" in card and "Not for clinical use" in card
    assert snapshot(synthetic_folder, skip=("README.md",)) == before, "the local dataset must be left as it was"
    assert not unexpected_strays(hub)


RETRY = r'''
from synthxray import load_dataset
from synthxray.hub import HubPushError, push_dataset
try:
    push_dataset(folder, f"alice/{name}", token=alice)
    first = "no error"
except HubPushError as exc:
    first = str(exc)
push_dataset(folder, f"alice/{name}", token=alice)
result = {"first": first, "rows": len(load_dataset(f"alice/{name}")), "local_rows": len(load_dataset(folder))}
'''


def test_hub_dataset_push_fails_midway_then_rerun_completes(hub, hub_client, synthetic_folder, repo_name):
    # the card commit lands, then the Hub fails on the commit that adds the Parquet shards
    fault = hub.fail("POST", rf"/api/datasets/alice/{repo_name}/commit/", action=500, after=1)
    before = snapshot(synthetic_folder, skip=("README.md",))
    r = hub_client.run(RETRY, folder=str(synthetic_folder), name=repo_name, alice=ALICE, timeout=240)
    assert "500" in r["first"] and "run the same push again" in r["first"].lower()
    assert f"alice/{repo_name}" in r["first"] and str(synthetic_folder) in r["first"]
    assert fault.hits == 1
    assert r["rows"] == r["local_rows"] == 5
    assert snapshot(synthetic_folder, skip=("README.md",)) == before
