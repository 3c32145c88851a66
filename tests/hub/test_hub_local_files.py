"""A push renders its card in memory: a failed push leaves the local README.md byte for byte as it was;
only a push that succeeded updates it, to exactly the card that was uploaded (issue 16, item 3)."""

from __future__ import annotations

from hub_testing import ALICE, snapshot

from synthxray import hub as synthxray_hub

PUSH = r'''
from synthxray.hub import HubPushError, push
try:
    push(kind, folder, repo, token=alice)
    result = "no error"
except HubPushError as exc:
    result = str(exc)
'''


def test_failed_generator_push_keeps_the_local_card(hub, hub_client, ddpm_folder, repo_name):
    synthxray_hub.write_generator_card(ddpm_folder)  # the card training writes: no repo id yet
    card_before = (ddpm_folder / "README.md").read_bytes()
    assert b"USER/REPO" in card_before
    before = snapshot(ddpm_folder)
    hub.add_repo(f"bob/{repo_name}", owner="bob", files={"README.md": b"bob's model\n"})

    message = hub_client.run(PUSH, kind="generator", folder=str(ddpm_folder), repo=f"bob/{repo_name}", alice=ALICE)
    assert "403" in message and "is unchanged" in message
    assert snapshot(ddpm_folder) == before, "a failed push must not rewrite README.md (nor anything else)"

    repo = f"alice/{repo_name}"
    fault = hub.fail("POST", rf"^/api/models/{repo}/commit/", action=500, times=1)
    message = hub_client.run(PUSH, kind="generator", folder=str(ddpm_folder), repo=repo, alice=ALICE)
    assert fault.hits == 1 and "500" in message and "is unchanged" in message
    assert snapshot(ddpm_folder) == before, "a push the Hub failed part-way must not rewrite README.md"

    assert hub_client.run(PUSH, kind="generator", folder=str(ddpm_folder), repo=repo, alice=ALICE) == "no error"
    local_card = (ddpm_folder / "README.md").read_bytes()
    assert local_card == hub.files(repo)["README.md"], "after a push the local card is the uploaded one"
    assert repo.encode() in local_card and b"USER/REPO" not in local_card
    assert snapshot(ddpm_folder, skip=("README.md",)) == {k: v for k, v in before.items() if k != "README.md"}


def test_failed_dataset_push_keeps_the_local_card(hub, hub_client, synthetic_folder, repo_name):
    before = snapshot(synthetic_folder)
    assert b"synthxray:card" in before["README.md"]
    repo = f"alice/{repo_name}"
    fault = hub.fail("POST", rf"^/api/datasets/{repo}/commit/", action=500, times=1)  # the card + manifest commit
    message = hub_client.run(PUSH, kind="dataset", folder=str(synthetic_folder), repo=repo, alice=ALICE)
    assert fault.hits == 1 and "500" in message
    assert snapshot(synthetic_folder) == before
    assert hub_client.run(PUSH, kind="dataset", folder=str(synthetic_folder), repo=repo, alice=ALICE) == "no error"
    assert repo in (synthetic_folder / "README.md").read_text()


def test_hand_written_readme_is_uploaded_as_it_is_and_kept(hub, hub_client, ddpm_folder, repo_name):
    (ddpm_folder / "README.md").write_text("# my notes\n")
    repo = f"alice/{repo_name}"
    assert hub_client.run(PUSH, kind="generator", folder=str(ddpm_folder), repo=repo, alice=ALICE) == "no error"
    assert (ddpm_folder / "README.md").read_text() == "# my notes\n"
    assert hub.files(repo)["README.md"] == b"# my notes\n"
