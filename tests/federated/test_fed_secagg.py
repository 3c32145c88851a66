"""SecAgg+ (``secure_aggregation: true``): Flower's SecAggPlusWorkflow on its legacy server loop, secaggplus_mod at the sites.

Config checks; then the protocol itself against plain FedAvg on the same round, through an in-process Grid that hands
each message to the ClientApp as Flower's transport would (a copy per site); then one run through Flower's
simulation engine with a site that fails.
"""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest
import torch

from synthxray.federated import FederatedConfig

pytestmark = pytest.mark.xdist_group("flower-simulation")  # one Ray cluster at a time under -n


def fed(tiny_npz, out, **kw):
    base = dict(dataset=str(tiny_npz), output_dir=str(out), resolution=16, block_out_channels=[8, 16], layers_per_block=1,
                train_batch_size=4, sample_steps=4, num_train_timesteps=50, num_clients=3, num_rounds=1, local_steps=2,
                partition="iid", secure_aggregation=True)
    return FederatedConfig(**{**base, **kw})


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(num_clients=1), "at least 2 sites per round"),
        (dict(num_clients=4, fraction_train=0.25), "at least 2 sites per round"),
        (dict(dp_noise_multiplier=1.0), "either secure_aggregation or dp_noise_multiplier"),
        (dict(secagg_num_shares=2), r"as a count must be in \[3, sites per round=3\]"),
        (dict(secagg_num_shares=5), r"as a count must be in \[3, sites per round=3\]"),
        (dict(secagg_num_shares=3, secagg_reconstruction_threshold=3), "must be >= 2 and < secagg_num_shares"),
        (dict(secagg_num_shares=2.5), "is a count and must be a whole number"),
        (dict(secagg_clipping_range=0), "must be > 0"),
        (dict(partition="supernode", dataset=None, class_names=["a", "b"], channels=1), "needs secagg_max_weight"),
    ],
)
def test_bad_secure_aggregation_settings_fail_before_training(tiny_npz, tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        fed(tiny_npz, tmp_path / "o", **kw)
    assert not (tmp_path / "o").exists()


def test_state_dicts_travel_as_flowers_ndarrays_and_keep_their_dtypes():
    from synthxray.federated.secagg import to_parameters, to_state

    state = {"w": torch.randn(3, 2), "n": torch.tensor(7, dtype=torch.int64), "h": torch.randn(4).half()}
    keys = list(state)
    params = to_parameters(state, keys)
    assert len(params.tensors) == 3
    # SecAgg+ hands every aggregated array back as floats; the template restores the dtypes
    floats = to_parameters({k: v.double() + (0.4 if k == "n" else 0) for k, v in state.items()}, keys)
    back = to_state(floats, keys, like=state)
    assert back["n"].dtype == torch.int64 and int(back["n"]) == 7 and back["h"].dtype == torch.float16
    assert torch.allclose(back["w"], state["w"])
    with pytest.raises(ValueError, match="got 3 arrays for 2 state-dict keys"):
        to_state(params, keys[:2])


class InProcessGrid:
    """Flower's Grid contract in one process: every message goes to the ClientApp as a copy (Flower serialises it in
    transit; SecAgg+'s mod pops keys from the configs it gets), each site keeps its own Context across stages."""

    def __init__(self, app, num_sites: int) -> None:
        from flwr.app import Context, RecordDict

        self.app, self.run = app, SimpleNamespace(run_id=1)
        self.contexts = {i + 1: Context(run_id=1, node_id=i + 1, node_config={"partition-id": i}, state=RecordDict(), run_config={})
                         for i in range(num_sites)}

    def get_node_ids(self):
        return list(self.contexts)

    def send_and_receive(self, messages, *, timeout=None):
        from flwr.app import Error, Message
        from flwr.supercore.task_identity import TaskIdentity

        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            TaskIdentity.node_id = node
            try:
                reply = self.app(copy.deepcopy(msg), self.contexts[node])
            except Exception as exc:  # what the SuperNode reports for a ClientApp that raised
                reply = Message(error=Error(code=1, reason=repr(exc)), reply_to=msg)
            finally:
                TaskIdentity.node_id = 0
            replies.append(reply)
        return replies


def serve_in_process(cfg):
    from flwr.app import Context, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from synthxray.federated.client_app import app
    from synthxray.federated.run import prepare
    from synthxray.federated.server_app import serve

    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0
    names, channels, data = prepare(cfg)
    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})
    return serve(InProcessGrid(app, cfg.num_clients), cfg, names, channels, data, context)


@pytest.mark.slow
@pytest.mark.parametrize("failures", [[], ["1:1"]], ids=["all-sites", "one-site-drops"])
def test_secagg_round_equals_fedavg_up_to_quantisation(tiny_npz, tmp_path, failures):
    """The same round with and without SecAgg+: the same sites answer, and the global weights agree to Flower's
    quantisation step (clipping range 8 over 2**22 levels), also when a site drops after the keys are shared."""
    from safetensors.torch import load_file

    weights, rounds = {}, {}
    for secure in (False, True):
        out = tmp_path / f"secure-{secure}"
        serve_in_process(fed(tiny_npz, out, secure_aggregation=secure, inject_failures=failures))
        weights[secure] = load_file(str(out / "checkpoints" / "checkpoint_1" / "global.safetensors"))
        rounds[secure] = json.loads((out / "rounds.json").read_text())["rounds"][0]
    plain, secure = weights[False], weights[True]
    assert plain.keys() == secure.keys()
    from synthxray.federated.server_app import initial_state

    start = initial_state(fed(tiny_npz, tmp_path / "unused"), 2, 1)
    diff = max(float((plain[k].float() - secure[k].float()).abs().max()) for k in plain)
    moved = max(float((plain[k].float() - start[k].float()).abs().max()) for k in plain)
    assert diff < 1e-4 and moved > 100 * diff, (diff, moved)  # the round trained, and SecAgg+ changed nothing else
    for r in rounds.values():
        assert r["updated"] and [c["partition_id"] for c in r["clients"]] == ([0, 2] if failures else [0, 1, 2])
        assert len(r["failures"]) == len(failures)
    assert rounds[True]["aggregated"]["train_loss"] == pytest.approx(rounds[False]["aggregated"]["train_loss"])
    # the sites sent masked 64-bit integers: more bytes than the float32 updates of the plain round
    assert rounds[True]["bytes_up"] > 1.5 * rounds[False]["bytes_up"]
    if failures:
        assert "injected failure: site 1 in round 1" in rounds[True]["failures"][0]["reason"]


@pytest.mark.slow
def test_secagg_through_flowers_simulation_engine(tiny_npz, tmp_path):
    """Flower's own engine (Ray): 3 sites, 2 rounds, site 1 fails in round 2; the result is an ordinary generator
    whose card says SecAgg+."""
    from synthxray import load_generator
    from synthxray.federated import run_federated

    out = tmp_path / "run"
    run_federated(fed(tiny_npz, out, num_rounds=2, inject_failures=["1:2"], client_num_cpus=2))
    rounds = json.loads((out / "rounds.json").read_text())["rounds"]
    assert [len(r["clients"]) for r in rounds] == [3, 2] and all(r["updated"] for r in rounds)
    # the global model stays float32 between rounds (SecAgg+ dequantises to float64): round 2 sends what round 1 did
    assert rounds[1]["bytes_down"] < 1.1 * rounds[0]["bytes_down"]
    assert "injected failure: site 1 in round 2" in rounds[1]["failures"][0]["reason"]
    gen = load_generator(out, device="cpu")
    assert len(gen.generate(2, class_label=gen.class_names[0], seed=0, num_inference_steps=2)) == 2
    fed_info = json.loads((out / "synthxray.json").read_text())["extra"]["federation"]
    assert fed_info["strategy"]["secure_aggregation"]["num_shares"] == 1.0
    assert "SecAgg+ (Flower SecAggPlusWorkflow)" in (out / "README.md").read_text()


@pytest.mark.slow
def test_secagg_run_resumes_after_its_last_round(tiny_npz, tmp_path):
    out = tmp_path / "run"
    serve_in_process(fed(tiny_npz, out, num_clients=2))
    first = json.loads((out / "rounds.json").read_text())["rounds"]
    serve_in_process(fed(tiny_npz, out, num_clients=2, num_rounds=2))
    rounds = json.loads((out / "rounds.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [1, 2] and all(r["updated"] for r in rounds)
    assert rounds[0] == first[0]  # round 1 was not run again
    assert [c["steps"] for c in rounds[1]["clients"]] == [2, 2]
    assert (out / "checkpoints" / "checkpoint_2").is_dir() and (out / "synthxray.json").is_file()
