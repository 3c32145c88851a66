"""Pushing fails clearly (no token, someone else's repo, a dropped connection), leaves local files alone,
and a re-run finishes the upload."""

from __future__ import annotations

from hub_testing import ALICE, snapshot

NO_TOKEN = r'''
from synthxray.cli import main
from synthxray.hub import HubPushError, push_generator
try:
    push_generator(folder, f"alice/{name}")
    message = "no error"
except HubPushError as exc:
    message = str(exc)
code = main(["push", "generator", folder, f"alice/{name}"])
result = {"message": message, "code": code}
'''


def test_hub_push_without_token(hub, hub_client, ddpm_folder, repo_name, capfd):
    before = snapshot(ddpm_folder)  # README.md included: a failed push writes nothing locally
    requests_before = len(hub.log)
    reply = hub_client.call(NO_TOKEN, folder=str(ddpm_folder), name=repo_name)
    assert reply["ok"], reply
    r = reply["result"]
    assert "no Hub token" in r["message"] and "HF_TOKEN" in r["message"] and "--token" in r["message"]
    assert r["code"] == 1 and "synthxray push: error: no Hub token" in reply["output"]
    assert len(hub.log) == requests_before, "nothing may be sent without a token"
    assert snapshot(ddpm_folder) == before


OTHER_OWNER = r'''
from synthxray.hub import HubPushError, push_generator
messages = []
for repo in (f"bob/{name}", f"bob/{name}-new"):
    try:
        push_generator(folder, repo, token=alice)
        messages.append("no error")
    except HubPushError as exc:
        messages.append(str(exc))
result = messages
'''


def test_hub_push_to_someone_elses_repo(hub, hub_client, ddpm_folder, repo_name):
    hub.add_repo(f"bob/{repo_name}", owner="bob", files={"README.md": b"bob's model\n"})
    before = snapshot(ddpm_folder)
    messages = hub_client.run(OTHER_OWNER, folder=str(ddpm_folder), name=repo_name, alice=ALICE)
    for message in messages:  # an existing repo of bob's, and a new repo in bob's namespace
        assert "403" in message and "another user or organisation" in message and "bob/" in message
        assert "is unchanged" in message
    bobs = hub.files(f"bob/{repo_name}")
    assert set(bobs) == {".gitattributes", "README.md"} and bobs["README.md"] == b"bob's model\n"
    assert ("model", f"bob/{repo_name}-new") not in hub.state.repos
    assert snapshot(ddpm_folder) == before


DROPPED = r'''
from synthxray import load_generator
from synthxray.hub import HubPushError, push_generator
try:
    push_generator(folder, f"alice/{name}", token=alice)
    first = "no error"
except HubPushError as exc:
    first = str(exc)
local_still_loads = len(load_generator(folder, device="cpu").generate(1, class_label=0, seed=0, num_inference_steps=2))
second = push_generator(folder, f"alice/{name}", token=alice)
remote = load_generator(f"alice/{name}", device="cpu")
result = {"first": first, "local_still_loads": local_still_loads, "commit": second.commit,
          "same": [list(im.getdata()) for im in remote.generate(2, class_label=1, seed=3, num_inference_steps=2)]
                  == [list(im.getdata()) for im in load_generator(folder, device="cpu").generate(2, class_label=1, seed=3, num_inference_steps=2)]}
'''


def test_hub_push_connection_dropped_then_rerun_completes(hub, hub_client, ddpm_folder, repo_name):
    repo = f"alice/{repo_name}"
    # one LFS upload drops (huggingface_hub retries it), then the commit's connection drops for good
    lfs_fault = hub.fail("PUT", r"^/lfs-objects/", action="close", times=1)
    commit_fault = hub.fail("POST", rf"^/api/models/{repo}/commit/", action="close", times=1)
    before = snapshot(ddpm_folder, skip=("README.md",))
    start = len(hub.log)
    r = hub_client.run(DROPPED, folder=str(ddpm_folder), name=repo_name, alice=ALICE, timeout=240)
    assert lfs_fault.hits == 1 and commit_fault.hits == 1
    assert "network failure" in r["first"] and repo in r["first"] and "run the same push again" in r["first"].lower()
    assert str(ddpm_folder) in r["first"]
    assert r["local_still_loads"] == 1
    assert snapshot(ddpm_folder, skip=("README.md",)) == before
    assert r["same"]
    files = hub.files(repo)
    local = snapshot(ddpm_folder)
    assert {k: v for k, v in files.items() if k != ".gitattributes"} == local
    # the commit landed whole, once; the re-run did not upload the weights again
    commits = [c for c in hub.commits(repo) if c.parent is not None]
    assert len(commits) == 1 and commits[0].oid == r["commit"]
    puts = [p for m, p, s in hub.log[start:] if m == "PUT" and s == 200]
    lfs_files = [k for k in local if k.endswith((".safetensors", ".png"))]
    assert len(puts) == len(lfs_files)
